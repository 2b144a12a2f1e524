"""What a flight log becomes: the telemetry and camera-event Datasets, the read report, UTC.

Every log reader (:mod:`survey.ingest.mavlink`, :mod:`survey.ingest.dataflash`,
:mod:`survey.ingest.ulog`) ends in :func:`make_flight_log`, so the three formats give the same
:class:`FlightLog`:

- ``telemetry``: an :class:`xarray.Dataset` along ``time`` (``datetime64[ns]``, UTC, strictly
  increasing) with ``lat``, ``lon`` (degrees WGS84, float64), ``alt_amsl``, ``alt_rel`` (m),
  ``roll``, ``pitch``, ``yaw`` (degrees, yaw in [0, 360) from north), ``groundspeed`` (m/s)
  (NaN where unknown; float32 from the tlog and DataFlash readers, whose logs hold them at
  that precision or coarser, float64 from ULog: :data:`COMPACT_VARS`), ``fix_type`` (int8,
  MAVLink ``GPS_FIX_TYPE``, -1 unknown) and ``satellites`` (int16, -1 unknown): 47 bytes a
  row when compact, 75 otherwise;
- ``camera_events``: a Dataset along ``shot`` with a ``time`` coordinate and the same position
  and attitude variables (NaN where the event carries none), ``image_index`` (int64, -1
  unknown) and ``source`` (the message the events came from);
- ``report``: a :class:`LogReport` that counts what was read and what was skipped, and why.

It also holds the clock conversions every reader needs (GPS week and milliseconds to UTC with
the leap second of the date, a boot clock onto UTC through reference pairs) and the writers of
``telemetry.csv`` and ``track.geojson``.

Reasons counted in :attr:`LogReport.skipped` (records left out, never silently):

``bad_crc``       a MAVLink frame whose checksum does not match (one per frame, when the
                  frames around it still frame: the damage was inside it)
``corrupt``       bytes skipped to find the next intact record (one count per damaged stretch)
``truncated``     a record cut by the end of the file
``absurd_timestamp``  a record whose timestamp jumps away from its neighbours'
``unknown_message``   a record of a message type the reader does not know (not checkable)
``no_fix``        a position record without a GPS fix (zero or out-of-range coordinates)
``duplicate_time``    a position or event at a time already taken
``retransmitted_command``  a repeated ground-station command (MAVLink ``confirmation`` > 0)
``no_time``       a DataFlash camera record with neither a boot time nor a GPS week

``bad_packets`` is the sum of the first three (records that could not be decoded).

The module is over 500 lines because it is the whole interface the three readers and the
image half share (the two Datasets and the report, the clock conversions, the two writers);
most of its length is their documentation.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import median_filter

from survey.rasters import atomic_path

__all__ = [
    "BAD_PACKET_REASONS",
    "CAMERA_SOURCES",
    "COMPACT_VARS",
    "TELEMETRY_CSV_COLUMNS",
    "BootClockMap",
    "FlightLog",
    "LogReport",
    "LogTally",
    "align_boot_clock",
    "boot_clock_map",
    "camera_events_from_columns",
    "gps_to_utc",
    "hold_previous",
    "interp_attitude",
    "leap_seconds_at",
    "make_camera_events",
    "make_flight_log",
    "make_telemetry",
    "telemetry_from_columns",
    "write_telemetry_csv",
    "write_track_geojson",
]

log = logging.getLogger(__name__)

BAD_PACKET_REASONS = ("bad_crc", "corrupt", "truncated")
CAMERA_SOURCES = ("CAMERA_FEEDBACK", "CAM", "TRIG", "CAMERA_TRIGGER", "DO_DIGICAM_CONTROL")
TELEMETRY_CSV_COLUMNS = (
    "time_utc",
    "lat",
    "lon",
    "alt_amsl_m",
    "alt_rel_m",
    "roll_deg",
    "pitch_deg",
    "yaw_deg",
    "groundspeed_ms",
    "fix_type",
    "satellites",
)
_FLOAT_VARS = ("lat", "lon", "alt_amsl", "alt_rel", "roll", "pitch", "yaw")

NS = 1_000_000_000
"""Nanoseconds per second: every time inside the readers is int64 ns (Unix epoch or boot)."""

# --- GPS time -----------------------------------------------------------------------------------
GPS_EPOCH_UNIX_S = 315_964_800  # 1980-01-06T00:00:00Z in Unix seconds
SECONDS_PER_WEEK = 604_800

LEAP_SECONDS: tuple[tuple[str, int], ...] = (
    ("1981-07-01", 1),
    ("1982-07-01", 2),
    ("1983-07-01", 3),
    ("1985-07-01", 4),
    ("1988-01-01", 5),
    ("1990-01-01", 6),
    ("1991-01-01", 7),
    ("1992-07-01", 8),
    ("1993-07-01", 9),
    ("1994-07-01", 10),
    ("1996-01-01", 11),
    ("1997-07-01", 12),
    ("1999-01-01", 13),
    ("2006-01-01", 14),
    ("2009-01-01", 15),
    ("2012-07-01", 16),
    ("2015-07-01", 17),
    ("2017-01-01", 18),
)
"""GPS − UTC in whole seconds from each UTC date on (IERS Bulletin C; none inserted since 2017).

A log written after a future leap second is read 1 s late until a row is added here.
"""

_LEAP_UNIX_S = np.array(
    [np.datetime64(day, "s").astype(np.int64) for day, _ in LEAP_SECONDS], dtype=np.int64
)
_LEAP_VALUES = np.array([0] + [n for _, n in LEAP_SECONDS], dtype=np.int64)
# The same instants on the GPS time scale (GPS seconds since 1980-01-06, no leap seconds).
_LEAP_GPS_S = _LEAP_UNIX_S - GPS_EPOCH_UNIX_S + _LEAP_VALUES[1:]


def leap_seconds_at(gps_seconds: np.ndarray | float) -> np.ndarray:
    """GPS − UTC (s) in force at GPS times given in seconds since 1980-01-06.

    Parameters
    ----------
    gps_seconds : array_like, shape (n,)
        Seconds on the GPS time scale.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)

    Examples
    --------
    >>> int(leap_seconds_at(1_151_000_000.0)[0])  # 2016-06
    17
    """
    t = np.atleast_1d(np.asarray(gps_seconds, dtype=np.float64))
    return _LEAP_VALUES[np.searchsorted(_LEAP_GPS_S, np.floor(t), side="right")]


def gps_to_utc(week: np.ndarray | int, ms: np.ndarray | float) -> np.ndarray:
    """UTC of GPS week numbers and milliseconds of the week, with the leap seconds of the date.

    Parameters
    ----------
    week : array_like of int, shape (n,)
        Full GPS week number (weeks since 1980-01-06, not modulo 1024).
    ms : array_like, shape (n,)
        Milliseconds into the week (GPS time of week).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Nanoseconds since the Unix epoch, UTC.

    Examples
    --------
    >>> np.datetime64(int(gps_to_utc(2000, 0)[0]), "ns")  # 18 leap seconds in 2018
    np.datetime64('2018-05-05T23:59:42.000000000')
    """
    week_a = np.atleast_1d(np.asarray(week, dtype=np.int64))
    ms_a = np.atleast_1d(np.asarray(ms, dtype=np.float64))
    gps_ns = week_a * (SECONDS_PER_WEEK * NS) + np.round(ms_a * 1e6).astype(np.int64)
    leap = leap_seconds_at(gps_ns // NS)
    return gps_ns - leap * NS + GPS_EPOCH_UNIX_S * NS


# --- boot clocks onto UTC -----------------------------------------------------------------------


@dataclass(frozen=True)
class BootClockMap:
    """A clock put on UTC: the offset UTC − clock at knots, linear between them.

    Made by :func:`boot_clock_map`; outside the knots the nearest offset holds.

    Attributes
    ----------
    origin_ns : int
        Clock time the knot abscissae are counted from (ns).
    base_ns : int
        Offset the knot ordinates are counted from (ns).
    knot_clock : numpy.ndarray of float64, shape (m,), increasing
        Clock − ``origin_ns`` at each knot (ns).
    knot_offset : numpy.ndarray of float64, shape (m,)
        UTC − clock − ``base_ns`` at each knot (ns).
    """

    origin_ns: int
    base_ns: int
    knot_clock: np.ndarray
    knot_offset: np.ndarray

    def apply(self, clock_ns: np.ndarray) -> np.ndarray:
        """UTC (int64 ns since the Unix epoch) of clock times ``clock_ns`` (int64 ns)."""
        t = np.asarray(clock_ns, dtype=np.int64)
        b = (t - self.origin_ns).astype(np.float64)
        x, y = self.knot_clock, self.knot_offset
        off = np.interp(b, x, y) if x.size > 1 else np.full(b.shape, y[0])
        return t + self.base_ns + np.round(off).astype(np.int64)


def boot_clock_map(
    ref_boot_ns: np.ndarray,
    ref_utc_ns: np.ndarray,
    *,
    window: int = 9,
    max_jump_s: float = 1.0,
) -> tuple[BootClockMap, int]:
    """The map of :func:`align_boot_clock` from (boot, UTC) reference pairs, and the pairs
    dropped as absurd.

    Parameters
    ----------
    ref_boot_ns, ref_utc_ns : numpy.ndarray of int64, shape (m,), m >= 1
    window : int
        References in the running median.
    max_jump_s : float
        A reference whose offset is further than this from the running median is dropped.

    Returns
    -------
    BootClockMap
    int
        References dropped.
    """
    order = np.argsort(ref_boot_ns, kind="stable")
    rb = np.asarray(ref_boot_ns, dtype=np.int64)[order]
    offset = np.asarray(ref_utc_ns, dtype=np.int64)[order] - rb
    base = int(np.median(offset))
    rel = (offset - base).astype(np.float64)
    size = min(window, rel.size)
    smooth = median_filter(rel, size=size, mode="nearest") if size > 1 else rel
    keep = np.abs(rel - smooth) <= max_jump_s * NS
    if not keep.any():  # pragma: no cover - a median is always within its own window
        keep[:] = True
    rb0 = int(rb[0])
    x = (rb[keep] - rb0).astype(np.float64)
    return BootClockMap(rb0, base, x, rel[keep]), int((~keep).sum())


def align_boot_clock(
    boot_ns: np.ndarray,
    ref_boot_ns: np.ndarray,
    ref_utc_ns: np.ndarray,
    *,
    window: int = 9,
    max_jump_s: float = 1.0,
) -> tuple[np.ndarray, int]:
    """Put times of a vehicle's boot clock on UTC through (boot, UTC) reference pairs.

    The offset UTC − boot of the references is cleaned by a running median over ``window``
    references (an offset more than ``max_jump_s`` from it is dropped as absurd) and
    interpolated linearly in boot time, so a drifting crystal is followed; outside the
    references the nearest offset holds.

    Parameters
    ----------
    boot_ns : numpy.ndarray of int64, shape (n,)
        Boot-clock times to convert (ns since the autopilot started).
    ref_boot_ns, ref_utc_ns : numpy.ndarray of int64, shape (m,), m >= 1
        The same instants on the boot clock and in UTC (ns since the Unix epoch), e.g. from
        GPS messages or MAVLink ``SYSTEM_TIME``.

    Returns
    -------
    utc_ns : numpy.ndarray of int64, shape (n,)
    n_dropped : int
        References dropped as absurd.
    """
    clock_map, dropped = boot_clock_map(
        ref_boot_ns, ref_utc_ns, window=window, max_jump_s=max_jump_s
    )
    return clock_map.apply(boot_ns), dropped


def interp_attitude(
    t_ns: np.ndarray,
    att_t_ns: np.ndarray,
    roll: np.ndarray,
    pitch: np.ndarray,
    yaw: np.ndarray,
    *,
    max_gap_s: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roll, pitch and yaw (degrees) at times ``t_ns``, interpolated from attitude samples.

    Linear between the two samples around each time; yaw the short way round the circle
    (359° → 1° passes through 0°, not 180°), returned in [0, 360). A time further than
    ``max_gap_s`` from the nearest sample gets NaN. Only arrays the size of ``t_ns`` are made,
    whatever the number of samples.

    Parameters
    ----------
    t_ns : numpy.ndarray of int64, shape (n,)
    att_t_ns : numpy.ndarray of int64, shape (m,), increasing
    roll, pitch, yaw : numpy.ndarray, shape (m,), degrees

    Returns
    -------
    roll, pitch, yaw : numpy.ndarray of float64, shape (n,)
    """
    n, m = t_ns.size, att_t_ns.size
    if m == 0:
        nan = np.full(n, np.nan)
        return nan, nan.copy(), nan.copy()
    after = np.minimum(np.searchsorted(att_t_ns, t_ns), m - 1)
    before = np.maximum(after - 1, 0)
    before = np.where(att_t_ns[after] <= t_ns, after, before)  # at or past the last sample
    t0 = att_t_ns[before]
    span = (att_t_ns[after] - t0).astype(np.float64)
    w = np.divide((t_ns - t0).astype(np.float64), span, out=np.zeros(n), where=span > 0)
    w = np.clip(w, 0.0, 1.0)
    nearest = np.minimum(np.abs(t_ns - t0), np.abs(att_t_ns[after] - t_ns))
    far = nearest > max_gap_s * NS

    def lerp(a: np.ndarray) -> np.ndarray:
        a0 = a[before].astype(np.float64)
        out = a0 + w * (a[after] - a0)
        out[far] = np.nan
        return out

    y0 = yaw[before].astype(np.float64)
    turn = np.mod(yaw[after] - y0 + 180.0, 360.0) - 180.0
    yaw_out = np.mod(y0 + w * turn, 360.0)
    yaw_out[far] = np.nan
    return lerp(roll), lerp(pitch), yaw_out


def hold_previous(
    t_ns: np.ndarray, src_t_ns: np.ndarray, values: np.ndarray, fill: float | int
) -> np.ndarray:
    """Value of the last sample at or before each time (``fill`` before the first sample).

    Parameters
    ----------
    t_ns : numpy.ndarray of int64, shape (n,)
    src_t_ns : numpy.ndarray of int64, shape (m,), increasing
    values : numpy.ndarray, shape (m,)

    Returns
    -------
    numpy.ndarray, shape (n,), dtype of ``values``
    """
    out = np.full(t_ns.shape, fill, dtype=values.dtype)
    if src_t_ns.size == 0:
        return out
    idx = np.searchsorted(src_t_ns, t_ns, side="right") - 1
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


# --- the data model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogReport:
    """What reading one log found: counts, what was skipped and why, how UTC was obtained.

    Attributes
    ----------
    path : pathlib.Path
        The log as given.
    format : str
        ``"tlog"``, ``"dataflash"`` or ``"ulog"``.
    messages : int
        Good records read (every message type, not only those used).
    bad_packets : int
        Records that could not be decoded (corrupt bytes, bad checksum, truncated); the sum
        of ``skipped[r]`` for ``r`` in :data:`BAD_PACKET_REASONS`.
    skipped : dict of str to int
        Reason → number of records left out (see the module docstring for the reasons).
    gps_points : int
        Rows of the telemetry (positions with a fix).
    camera_events : int
        Shots in the camera events.
    time_source : str
        How UTC was obtained, in words.
    warnings : tuple of dict
        Each ``{"reason": ..., "message": ..., **details}``; also logged as one warning line.
    """

    path: Path
    format: str
    messages: int
    bad_packets: int
    skipped: dict[str, int]
    gps_points: int
    camera_events: int
    time_source: str
    warnings: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``path`` as a string)."""
        return {
            "path": str(self.path),
            "format": self.format,
            "messages": self.messages,
            "bad_packets": self.bad_packets,
            "skipped": dict(self.skipped),
            "gps_points": self.gps_points,
            "camera_events": self.camera_events,
            "time_source": self.time_source,
            "warnings": [dict(w) for w in self.warnings],
        }


@dataclass(frozen=True)
class FlightLog:
    """A flight log read into the telemetry and camera-event Datasets (see the module doc)."""

    telemetry: xr.Dataset
    camera_events: xr.Dataset
    report: LogReport


@dataclass
class LogTally:
    """Counts and warnings gathered while a reader works; becomes the :class:`LogReport`."""

    path: Path
    format: str
    messages: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` records left out for ``reason``."""
        if n:
            self.skipped[reason] += int(n)

    def warn(self, reason: str, message: str, **details: Any) -> None:
        """Record an assumption or a repair: one warning line and an entry of the report."""
        log.warning("%s: %s", self.path.name, message)
        self.warnings.append({"reason": reason, "message": message, **details})

    def report(self, *, gps_points: int, camera_events: int, time_source: str) -> LogReport:
        """The frozen report."""
        skipped = {k: int(v) for k, v in sorted(self.skipped.items()) if v}
        return LogReport(
            path=self.path,
            format=self.format,
            messages=int(self.messages),
            bad_packets=sum(skipped.get(r, 0) for r in BAD_PACKET_REASONS),
            skipped=skipped,
            gps_points=int(gps_points),
            camera_events=int(camera_events),
            time_source=time_source,
            warnings=tuple(self.warnings),
        )


def _f64(a: np.ndarray | None, n: int) -> np.ndarray:
    if a is None:
        return np.full(n, np.nan)
    return np.asarray(a, dtype=np.float64)


COMPACT_VARS = ("alt_amsl", "alt_rel", "roll", "pitch", "yaw", "groundspeed")
"""Telemetry variables stored as float32 by readers whose log holds them at that precision or
coarser (``compact=True``): millimetres of altitude, float32 radians of attitude, cm/s of
speed lose nothing a survey can see (float32 keeps 7 significant digits: 0.5 mm at 4 km).
Positions stay float64 (1e-7° is 1 cm; float32 would round longitudes to a metre)."""

_TELEMETRY_UNITS = {
    "lat": "degrees_north",
    "lon": "degrees_east",
    "alt_amsl": "m",
    "alt_rel": "m",
    "roll": "degree",
    "pitch": "degree",
    "yaw": "degree",
    "groundspeed": "m s-1",
}


def make_telemetry(
    time_ns: np.ndarray,
    *,
    lat: np.ndarray,
    lon: np.ndarray,
    alt_amsl: np.ndarray | None = None,
    alt_rel: np.ndarray | None = None,
    roll: np.ndarray | None = None,
    pitch: np.ndarray | None = None,
    yaw: np.ndarray | None = None,
    groundspeed: np.ndarray | None = None,
    fix_type: np.ndarray | None = None,
    satellites: np.ndarray | None = None,
    tally: LogTally | None = None,
    compact: bool = False,
) -> xr.Dataset:
    """The telemetry Dataset: sorted by time, one row per instant, the documented dtypes.

    Rows whose time repeats an earlier row's are dropped (counted as ``duplicate_time``).
    The arrays given are not modified.

    Parameters
    ----------
    time_ns : numpy.ndarray of int64, shape (n,)
        UTC, ns since the Unix epoch.
    lat, lon : numpy.ndarray, shape (n,)
        Degrees WGS84.
    alt_amsl, alt_rel, roll, pitch, yaw, groundspeed : numpy.ndarray, shape (n,), optional
        Metres, degrees and m/s; missing ones are NaN. Yaw is wrapped into [0, 360).
    fix_type, satellites : numpy.ndarray of int, shape (n,), optional
        MAVLink ``GPS_FIX_TYPE`` and satellites used; -1 where unknown.
    compact : bool
        Store :data:`COMPACT_VARS` as float32 (else float64).

    Returns
    -------
    xarray.Dataset
        Dimension ``time`` (``datetime64[ns]``).
    """
    values = {
        "lat": lat,
        "lon": lon,
        "alt_amsl": alt_amsl,
        "alt_rel": alt_rel,
        "roll": roll,
        "pitch": pitch,
        "yaw": yaw,
        "groundspeed": groundspeed,
        "fix_type": fix_type,
        "satellites": satellites,
    }
    # copies: telemetry_from_columns may work in place
    columns = {k: np.array(v) for k, v in values.items() if v is not None}
    return telemetry_from_columns(
        np.array(time_ns, dtype=np.int64), columns, tally=tally, compact=compact
    )


def telemetry_from_columns(
    time_ns: np.ndarray,
    columns: dict[str, np.ndarray],
    *,
    tally: LogTally | None = None,
    compact: bool = False,
) -> xr.Dataset:
    """:func:`make_telemetry` taking over the arrays it is given (for readers).

    ``time_ns`` and the arrays of ``columns`` (named as the Dataset's variables; missing ones
    are unknown) may be modified in place and end up in the Dataset without a copy when they
    have its dtypes and the times are already sorted and unique; ``columns`` is emptied as
    they are used, so each array given is let go of as soon as its variable is made.

    Parameters
    ----------
    time_ns : numpy.ndarray of int64, shape (n,)
    columns : dict of str to numpy.ndarray, each shape (n,)
    tally : LogTally, optional
    compact : bool
        Store :data:`COMPACT_VARS` as float32.

    Returns
    -------
    xarray.Dataset
    """
    t = np.ascontiguousarray(time_ns, dtype=np.int64)
    n = t.size
    sel: np.ndarray | None = None
    if n > 1 and not (t[1:] > t[:-1]).all():
        order = np.argsort(t, kind="stable")
        t = t[order]
        keep = np.ones(n, dtype=bool)
        keep[1:] = t[1:] != t[:-1]
        if tally is not None:
            tally.skip("duplicate_time", int((~keep).sum()))
        sel = order[keep]
        t = t[keep]
        del order, keep
    m = t.size

    def take(name: str, dtype: type, fill: float) -> np.ndarray:
        a = columns.pop(name, None)
        if a is None:
            return np.full(m, fill, dtype=dtype)
        out: np.ndarray = np.asarray(a, dtype=dtype)
        return out[sel] if sel is not None else out

    data: dict[str, tuple[str, np.ndarray]] = {}
    for name in ("lat", "lon"):
        data[name] = ("time", take(name, np.float64, np.nan))
    for name in COMPACT_VARS:
        data[name] = ("time", take(name, np.float32 if compact else np.float64, np.nan))
    yaw = data["yaw"][1]
    np.mod(yaw, 360.0, out=yaw)
    yaw[yaw >= 360.0] = 0.0  # a tiny negative angle rounds to 360 in float32
    data["fix_type"] = ("time", take("fix_type", np.int8, -1))
    data["satellites"] = ("time", take("satellites", np.int16, -1))
    # a pandas index made without a copy: xarray would copy a datetime64 array into its own
    index = pd.Index(t.view("datetime64[ns]"), copy=False, name="time")
    ds = xr.Dataset(data, coords={"time": index})
    for name, unit in _TELEMETRY_UNITS.items():
        ds[name].attrs["units"] = unit
    ds["fix_type"].attrs["description"] = "MAVLink GPS_FIX_TYPE; -1 unknown"
    ds["satellites"].attrs["description"] = "satellites used; -1 unknown"
    ds["time"].attrs["description"] = "UTC"
    return ds


def make_camera_events(
    time_ns: np.ndarray,
    *,
    source: str | Sequence[str] | np.ndarray,
    lat: np.ndarray | None = None,
    lon: np.ndarray | None = None,
    alt_amsl: np.ndarray | None = None,
    alt_rel: np.ndarray | None = None,
    roll: np.ndarray | None = None,
    pitch: np.ndarray | None = None,
    yaw: np.ndarray | None = None,
    image_index: np.ndarray | None = None,
    tally: LogTally | None = None,
) -> xr.Dataset:
    """The camera-event Dataset along ``shot``, sorted by time.

    An event identical in time and image index to an earlier one (the same message relayed
    twice) is dropped and counted as ``duplicate_time``.

    Parameters
    ----------
    time_ns : numpy.ndarray of int64, shape (k,)
        UTC, ns since the Unix epoch.
    source : str or sequence of str
        One of :data:`CAMERA_SOURCES`, for all events or per event.
    lat, lon, alt_amsl, alt_rel, roll, pitch, yaw : numpy.ndarray, shape (k,), optional
        What the event carries (NaN where it carries nothing).
    image_index : numpy.ndarray of int, shape (k,), optional
        The camera's image number; -1 unknown.

    Returns
    -------
    xarray.Dataset
        Dimension ``shot``, coordinate ``time`` (``datetime64[ns]``) along it.
    """
    values = {
        "lat": lat,
        "lon": lon,
        "alt_amsl": alt_amsl,
        "alt_rel": alt_rel,
        "roll": roll,
        "pitch": pitch,
        "yaw": yaw,
        "image_index": image_index,
    }
    columns = {k: np.array(v) for k, v in values.items() if v is not None}
    return camera_events_from_columns(
        np.array(time_ns, dtype=np.int64), columns, source=source, tally=tally
    )


def camera_events_from_columns(
    time_ns: np.ndarray,
    columns: dict[str, np.ndarray],
    *,
    source: str | Sequence[str] | np.ndarray,
    tally: LogTally | None = None,
) -> xr.Dataset:
    """:func:`make_camera_events` taking over the arrays it is given (for readers).

    As :func:`telemetry_from_columns`: the arrays of ``columns`` may be modified in place or
    end up in the Dataset, and ``columns`` is emptied as they are used.

    Parameters
    ----------
    time_ns : numpy.ndarray of int64, shape (k,)
    columns : dict of str to numpy.ndarray, each shape (k,)
        ``lat``, ``lon``, ``alt_amsl``, ``alt_rel``, ``roll``, ``pitch``, ``yaw``,
        ``image_index`` (missing ones are unknown).
    source : str or sequence of str
    tally : LogTally, optional

    Returns
    -------
    xarray.Dataset
    """
    t = np.asarray(time_ns, dtype=np.int64)
    k = t.size
    given = columns.pop("image_index", None)
    idx = np.full(k, -1, dtype=np.int64) if given is None else np.asarray(given, dtype=np.int64)
    sel: np.ndarray | None = None
    in_order = k < 2 or bool(((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (idx[1:] > idx[:-1]))).all())
    if not in_order:
        order = np.lexsort((idx, t))
        keep = np.ones(k, dtype=bool)
        keep[1:] = (t[order][1:] != t[order][:-1]) | (idx[order][1:] != idx[order][:-1])
        if tally is not None:
            tally.skip("duplicate_time", int((~keep).sum()))
        sel = order[keep]
    m = k if sel is None else sel.size

    def take(a: np.ndarray | None) -> np.ndarray:
        if a is None:
            return np.full(m, np.nan)
        out = np.asarray(a, dtype=np.float64)
        return out if sel is None else out[sel]

    names = ("lat", "lon", "alt_amsl", "alt_rel", "roll", "pitch", "yaw")
    data: dict[str, tuple[str, np.ndarray]] = {
        name: ("shot", take(columns.pop(name, None))) for name in names
    }
    np.mod(data["yaw"][1], 360.0, out=data["yaw"][1])
    data["image_index"] = ("shot", idx if sel is None else idx[sel])
    if isinstance(source, str):
        data["source"] = ("shot", np.full(m, source))
    else:
        src = np.asarray(list(source), dtype=str)
        data["source"] = ("shot", src if sel is None else src[sel])
    times = t if sel is None else t[sel]
    return xr.Dataset(
        data,
        coords={
            "time": ("shot", pd.Index(times.view("datetime64[ns]"), copy=False)),
            "shot": np.arange(m),
        },
    )


def make_flight_log(
    tally: LogTally, telemetry: xr.Dataset, camera_events: xr.Dataset, time_source: str
) -> FlightLog:
    """Bundle the Datasets with the report made from ``tally``."""
    report = tally.report(
        gps_points=telemetry.sizes["time"],
        camera_events=camera_events.sizes["shot"],
        time_source=time_source,
    )
    telemetry.attrs.update(source_file=tally.path.name, log_format=tally.format)
    telemetry.attrs["time_source"] = time_source
    camera_events.attrs.update(source_file=tally.path.name, log_format=tally.format)
    return FlightLog(telemetry=telemetry, camera_events=camera_events, report=report)


# --- writers ------------------------------------------------------------------------------------


def _iso_times(times: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(times.astype("datetime64[us]"), unit="us"), "Z")


def _fmt(a: np.ndarray, digits: int) -> list[str]:
    return ["" if math.isnan(v) else f"{v:.{digits}f}" for v in a.tolist()]


def write_telemetry_csv(log: FlightLog, path: Path) -> Path:
    """Write the telemetry as CSV (atomically); the columns are :data:`TELEMETRY_CSV_COLUMNS`.

    Times are ISO 8601 UTC with microseconds and a ``Z``; unknown values are empty cells
    (``fix_type`` and ``satellites`` are -1 where unknown, as in the Dataset).

    Parameters
    ----------
    log : FlightLog
    path : pathlib.Path
        The CSV to write (its folder is created).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    ds = log.telemetry
    columns = [
        _iso_times(ds["time"].values).tolist(),
        _fmt(ds["lat"].values, 8),
        _fmt(ds["lon"].values, 8),
        _fmt(ds["alt_amsl"].values, 3),
        _fmt(ds["alt_rel"].values, 3),
        _fmt(ds["roll"].values, 3),
        _fmt(ds["pitch"].values, 3),
        _fmt(ds["yaw"].values, 3),
        _fmt(ds["groundspeed"].values, 3),
        ds["fix_type"].values.tolist(),
        ds["satellites"].values.tolist(),
    ]
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(TELEMETRY_CSV_COLUMNS)
        writer.writerows(zip(*columns, strict=True))
    return path


def _track_pieces(times: np.ndarray, max_gap_s: float) -> list[slice]:
    if times.size == 0:
        return []
    t = times.astype("datetime64[ns]").astype(np.int64)
    breaks = np.flatnonzero(np.diff(t) > max_gap_s * NS) + 1
    edges = [0, *breaks.tolist(), t.size]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def write_track_geojson(log: FlightLog, path: Path, *, max_gap_s: float = 30.0) -> Path:
    """Write the flown track as an RFC 7946 FeatureCollection (atomically).

    One LineString Feature per stretch of the track without a gap longer than ``max_gap_s``
    (a stretch of a single position is a Point). Positions are ``[lon, lat, alt_amsl]`` (the
    altitude left out where unknown). Properties: ``start_time``, ``end_time`` (ISO 8601
    UTC), ``n_points``, ``source_file``, ``log_format``, ``time_source``.

    Parameters
    ----------
    log : FlightLog
    path : pathlib.Path
        The GeoJSON to write (its folder is created).
    max_gap_s : float
        A longer gap between two positions starts a new Feature.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    ds = log.telemetry
    times = ds["time"].values
    lat = ds["lat"].values
    lon = ds["lon"].values
    alt = ds["alt_amsl"].values
    iso = _iso_times(times) if times.size else np.array([], dtype=str)
    features = []
    for part in _track_pieces(times, max_gap_s):
        coords = [
            [round(x, 8), round(y, 8)] if math.isnan(z) else [round(x, 8), round(y, 8), round(z, 3)]
            for x, y, z in zip(
                lon[part].tolist(), lat[part].tolist(), alt[part].tolist(), strict=True
            )
        ]
        geometry: dict[str, Any] = (
            {"type": "LineString", "coordinates": coords}
            if len(coords) > 1
            else {"type": "Point", "coordinates": coords[0]}
        )
        features.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {
                    "start_time": str(iso[part][0]),
                    "end_time": str(iso[part][-1]),
                    "n_points": len(coords),
                    "source_file": log.report.path.name,
                    "log_format": log.report.format,
                    "time_source": log.report.time_source,
                },
            }
        )
    doc = {"type": "FeatureCollection", "features": features}
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    return path
