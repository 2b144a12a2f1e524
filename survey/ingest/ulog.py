"""PX4 ULog flight logs (``.ulg``) through pyulog.

pyulog parses the file and keeps only the topics of :data:`TOPICS` (their raw records, in
memory; the other topics are skipped as they are read). Positions are
``vehicle_global_position`` (the estimator's) where the log has it, else
``vehicle_gps_position``; attitude is ``vehicle_attitude`` (quaternion → roll, pitch, yaw);
``alt_rel`` is the altitude above ``home_position``. Camera events are ``camera_capture``
(the exposures PX4 reports as MAVLink ``CAMERA_FEEDBACK``) else ``camera_trigger`` (as
``CAMERA_TRIGGER``).

Time: PX4 stamps every record on its boot clock (µs); the GPS topic's ``time_utc_usec``
(UTC from the receiver, leap seconds applied by it) puts that clock on UTC.

pyulog recovers from corrupt stretches by searching for the next sync marker; it reports that
it did, not how much it skipped, so a corrupt ULog shows ``corrupt: 1`` and a warning.
``messages`` counts the records of the topics read.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from survey.errors import TelemetryError
from survey.ingest.telemetry import (
    FlightLog,
    LogTally,
    align_boot_clock,
    hold_previous,
    interp_attitude,
    make_camera_events,
    make_flight_log,
    make_telemetry,
)

__all__ = ["TOPICS", "ULOG_MAGIC", "read_ulog"]

ULOG_MAGIC = b"ULog\x01\x12\x35"
"""The first bytes of every ULog file."""

TOPICS = (
    "vehicle_global_position",
    "vehicle_gps_position",
    "vehicle_attitude",
    "home_position",
    "camera_capture",
    "camera_trigger",
)
"""The topics read."""

Columns = dict[str, np.ndarray]

_REQUIRED = {
    "vehicle_global_position": ("timestamp", "lat", "lon", "alt"),
    "vehicle_gps_position": ("timestamp", "time_utc_usec", "fix_type", "satellites_used"),
    "vehicle_attitude": ("timestamp", "q[0]", "q[1]", "q[2]", "q[3]"),
    "home_position": ("timestamp", "alt"),
    "camera_capture": ("timestamp", "lat", "lon", "alt", "seq"),
    "camera_trigger": ("timestamp", "seq"),
}


def _usable(name: str, fields: Columns) -> bool:
    """Whether a topic has the fields its use needs (a damaged format definition may not)."""
    if not set(_REQUIRED[name]) <= set(fields):
        return False
    if name == "vehicle_gps_position":
        return {"lat", "lon", "alt"} <= set(fields) or {"latitude_deg", "longitude_deg"} <= set(
            fields
        )
    return True


def _load(path: Path, tally: LogTally) -> dict[str, Columns]:
    """Topic name → field → array (instance 0 of each topic), through pyulog."""
    try:
        from pyulog import ULog
        from pyulog.core import ULogException
    except ImportError as exc:  # pragma: no cover - pyulog is a dependency
        raise TelemetryError(
            f"{path}: reading PX4 ULog needs pyulog; install it with pip install pyulog"
        ) from exc
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            ulog = ULog(str(path), message_name_filter_list=list(TOPICS))
    # pyulog's own error, or what its parser raises on bytes it cannot frame
    except (ULogException, OSError, ValueError, LookupError, struct.error, OverflowError) as exc:
        raise TelemetryError(
            f"{path}: pyulog cannot read this ULog ({type(exc).__name__}: {exc}); the file is "
            f"damaged before its data starts"
        ) from exc
    if ulog.file_corruption:
        tally.skip("corrupt")
        tally.warn(
            "corrupt",
            "pyulog found corrupt data and skipped to the next sync marker; the records in "
            "the damaged stretch are lost (pyulog does not count them)",
        )
    if ulog.dropouts:
        lost_ms = int(sum(d.duration for d in ulog.dropouts))
        tally.warn(
            "dropouts",
            f"the logger dropped data {len(ulog.dropouts)} time(s), {lost_ms} ms in all",
            dropouts=len(ulog.dropouts),
            lost_ms=lost_ms,
        )
    topics: dict[str, Columns] = {}
    unusable = []
    for d in ulog.data_list:
        if d.multi_id != 0:
            continue
        if not _usable(d.name, d.data):
            unusable.append(d.name)
            continue
        topics[d.name] = {k: np.asarray(v) for k, v in d.data.items()}
        tally.messages += int(d.data["timestamp"].size)
    if unusable:
        tally.warn(
            "bad_format",
            f"the format of {sorted(unusable)} lacks the fields read; those topics were skipped",
            topics=sorted(unusable),
        )
    return topics


def _first(c: Columns, *names: str) -> np.ndarray | None:
    for name in names:
        if name in c:
            return c[name]
    return None


def _gps_position(gps: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lat, lon, alt AMSL) of ``vehicle_gps_position`` in degrees and metres, any PX4 version."""
    if "latitude_deg" in gps:  # PX4 v1.14 and later
        alt = _first(gps, "altitude_msl_m")
        return (
            gps["latitude_deg"].astype(np.float64),
            gps["longitude_deg"].astype(np.float64),
            alt.astype(np.float64) if alt is not None else np.full(gps["timestamp"].size, np.nan),
        )
    return (
        gps["lat"].astype(np.float64) * 1e-7,
        gps["lon"].astype(np.float64) * 1e-7,
        gps["alt"].astype(np.float64) / 1000.0,
    )


def _euler_deg(c: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roll, pitch, yaw (degrees) of the quaternion ``q[0..3]`` (w, x, y, z), ZYX order."""
    w, x, y, z = (c[f"q[{i}]"].astype(np.float64) for i in range(4))
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.rad2deg(roll), np.rad2deg(pitch), np.rad2deg(yaw)


def _valid(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return (
        np.isfinite(lat)
        & np.isfinite(lon)
        & ((lat != 0) | (lon != 0))
        & (np.abs(lat) <= 90)
        & (np.abs(lon) <= 180)
    )


def _clock_refs(gps: Columns, path: Path) -> tuple[np.ndarray, np.ndarray]:
    utc = gps.get("time_utc_usec", np.zeros(0, dtype=np.uint64)).astype(np.int64)
    ok = utc > 946_684_800 * 1_000_000
    if not ok.any():
        raise TelemetryError(
            f"{path}: vehicle_gps_position has no UTC time (time_utc_usec is 0 in all "
            f"{utc.size} records); the log cannot be put on UTC"
        )
    return gps["timestamp"][ok].astype(np.int64) * 1000, utc[ok] * 1000


def read_ulog(path: str | os.PathLike[str]) -> FlightLog:
    """Read a PX4 ULog (``.ulg``) into telemetry, camera events and a report.

    Parameters
    ----------
    path : str or os.PathLike
        The log, opened read-only.

    Returns
    -------
    FlightLog

    Raises
    ------
    TelemetryError
        The file is not a ULog, holds no position with a GPS fix, or no GPS UTC time.
    """
    path = Path(path)
    tally = LogTally(path, "ulog")
    topics = _load(path, tally)
    gps = topics.get("vehicle_gps_position", {})
    glob = topics.get("vehicle_global_position", {})
    gps_lat, gps_lon, gps_alt = _gps_position(gps) if gps else (np.zeros(0),) * 3
    gps_fix = gps["fix_type"].astype(np.int16) if gps else np.zeros(0, dtype=np.int16)
    gps_ok = _valid(gps_lat, gps_lon) & (gps_fix >= 2)
    glob_ok = _valid(glob["lat"], glob["lon"]) if glob else np.zeros(0, dtype=bool)
    if not gps_ok.any() and not glob_ok.any():
        raise TelemetryError(
            f"{path}: no GPS position fix in the log ({gps_fix.size} vehicle_gps_position, "
            f"{glob_ok.size} vehicle_global_position, none with a fix); use the log of a "
            f"flight flown with GPS, or photos with their own GPS"
        )
    refs = _clock_refs(gps, path)

    def utc(c: Columns) -> np.ndarray:
        return align_boot_clock(c["timestamp"].astype(np.int64) * 1000, *refs)[0]

    gps_t = utc(gps)
    if glob_ok.any():
        tally.skip("no_fix", int((~glob_ok).sum()))
        t = utc(glob)[glob_ok]
        lat, lon = glob["lat"][glob_ok], glob["lon"][glob_ok]
        alt = glob["alt"][glob_ok].astype(np.float64)
    else:
        tally.skip("no_fix", int((~gps_ok).sum()))
        t, lat, lon, alt = gps_t[gps_ok], gps_lat[gps_ok], gps_lon[gps_ok], gps_alt[gps_ok]
    home = topics.get("home_position", {})
    alt_rel = None
    if home:
        alt_rel = alt - hold_previous(t, utc(home), home["alt"].astype(np.float64), np.nan)
    att = topics.get("vehicle_attitude", {})
    roll = pitch = yaw = None
    if att:
        roll, pitch, yaw = interp_attitude(t, utc(att), *_euler_deg(att))
    speed_src = _first(gps, "vel_m_s") if gps else None
    telemetry = make_telemetry(
        t,
        lat=lat,
        lon=lon,
        alt_amsl=alt,
        alt_rel=alt_rel,
        roll=roll,
        pitch=pitch,
        yaw=yaw,
        groundspeed=None
        if speed_src is None
        else hold_previous(t, gps_t, speed_src.astype(np.float64), np.nan),
        fix_type=hold_previous(t, gps_t, gps_fix, -1),
        satellites=hold_previous(t, gps_t, gps["satellites_used"].astype(np.int16), -1),
        tally=tally,
        compact=True,  # the dtypes of every log format (telemetry.COMPACT_VARS)
    )
    home_alt: tuple[np.ndarray, np.ndarray | None] = (
        (utc(home), home["alt"].astype(np.float64)) if home else (np.zeros(0, np.int64), None)
    )
    events = _camera_events(topics, utc, home_alt, tally)
    return make_flight_log(
        tally, telemetry, events, "GPS UTC (vehicle_gps_position.time_utc_usec) over the boot clock"
    )


def _camera_events(
    topics: dict[str, Columns],
    utc: Any,
    home_alt: tuple[np.ndarray, np.ndarray | None],
    tally: LogTally,
) -> xr.Dataset:
    capture = topics.get("camera_capture", {})
    trigger = topics.get("camera_trigger", {})
    if capture and trigger:
        tally.warn(
            "camera_sources",
            f"camera events from camera_capture; not used: {trigger['timestamp'].size} "
            f"camera_trigger",
            used="CAMERA_FEEDBACK",
            unused={"CAMERA_TRIGGER": int(trigger["timestamp"].size)},
        )
    if capture:
        placed = _valid(capture["lat"].astype(np.float64), capture["lon"].astype(np.float64))
        roll, pitch, yaw = _euler_deg(capture) if "q[0]" in capture else (None, None, None)

        def where_placed(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.where(placed, a.astype(np.float64), np.nan)

        t = utc(capture)
        alt = where_placed(capture["alt"])
        home_t, home_values = home_alt
        alt_rel = (
            None
            if home_values is None or alt is None
            else alt - hold_previous(t, home_t, home_values, np.nan)
        )
        return make_camera_events(
            t,
            source="CAMERA_FEEDBACK",
            lat=where_placed(capture["lat"]),
            lon=where_placed(capture["lon"]),
            alt_amsl=alt,
            alt_rel=alt_rel,
            roll=roll,
            pitch=pitch,
            yaw=yaw,
            image_index=capture["seq"].astype(np.int64),
            tally=tally,
        )
    if trigger:
        return make_camera_events(
            utc(trigger),
            source="CAMERA_TRIGGER",
            image_index=trigger["seq"].astype(np.int64),
            tally=tally,
        )
    return make_camera_events(np.zeros(0, dtype=np.int64), source="CAMERA_FEEDBACK")
