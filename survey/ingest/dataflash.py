"""ArduPilot DataFlash logs (``.bin``): stream the records, decode the few we use.

A DataFlash log is a sequence of records ``0xA3 0x95 <type> <body>``; ``FMT`` records
(type 128) define each type's name, length and field formats, which pymavlink's
:class:`~pymavlink.DFReader.DFFormat` turns into struct codes and scale factors (``L`` is
degrees × 1e7, ``c`` centi-units, ...). The file is read in chunks; the records of
:data:`WANTED` are kept as raw bodies and decoded chunk by chunk into numpy columns, so memory
grows with the columns kept, never with the file.

DataFlash has no checksum. A record header that is not ``0xA3 0x95`` with a defined type is
corruption: bytes are skipped up to the next two consecutive good headers (``corrupt``, once
per stretch); a record cut by the end of the file is ``truncated``; a record whose boot time
jumps more than a minute away from its neighbours' is ``absurd_timestamp``. Zero or 0xFF
padding after the last record (block-based logs) is not counted.

Time: the boot clock (``TimeUS``, or ``TimeMS``/``T`` in logs before 2015) is put on UTC
through the GPS records' week and milliseconds, with the leap seconds of the date
(:func:`survey.ingest.telemetry.gps_to_utc`).

A little over 500 lines: the streaming record walk and the four generations of ArduPilot
record layouts it has to read (boot time in ``TimeUS``, ``TimeMS`` or ``T``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from pymavlink.DFReader import FORMAT_TO_STRUCT, DFFormat, null_term
from scipy.ndimage import median_filter

from survey.errors import TelemetryError
from survey.ingest.telemetry import (
    NS,
    FlightLog,
    LogTally,
    align_boot_clock,
    gps_to_utc,
    hold_previous,
    interp_attitude,
    leap_seconds_at,
    make_camera_events,
    make_flight_log,
    make_telemetry,
)

__all__ = ["CHUNK_BYTES", "WANTED", "looks_like_dataflash", "read_dataflash", "scan_dataflash"]

CHUNK_BYTES = 1 << 20
"""Bytes read from the file at a time."""

WANTED = ("GPS", "POS", "ATT", "CAM", "TRIG")
"""The record types kept."""

_KEEP_COLUMNS = frozenset(
    (
        "TimeUS",
        "TimeMS",
        "T",
        "I",
        "Status",
        "GMS",
        "GWk",
        "Week",
        "NSats",
        "Lat",
        "Lng",
        "Alt",
        "RelAlt",
        "RelHomeAlt",
        "Spd",
        "Roll",
        "Pitch",
        "Yaw",
        "R",
        "P",
        "Y",
        "GPSTime",
        "GPSWeek",
        "Img",
    )
)
_REQUIRED = {
    "GPS": ("Status", "Lat", "Lng"),
    "POS": ("Lat", "Lng", "Alt"),
    "ATT": ("Roll", "Pitch", "Yaw"),
    "CAM": (),
    "TRIG": (),
}
_HEAD1, _HEAD2 = 0xA3, 0x95
_FMT_TYPE = 0x80
_FMT_LEN = 89
_FMT_BODY = struct.Struct("<BB4s16s64s")
_MAX_RECORD = 256
_LOOKAHEAD = 2 * _MAX_RECORD + 8
_ABSURD_JUMP_NS = 60 * NS
_NUMPY_CODES = {
    "b": "i1",
    "B": "u1",
    "h": "<i2",
    "H": "<u2",
    "i": "<i4",
    "I": "<u4",
    "q": "<i8",
    "Q": "<u8",
    "f": "<f4",
    "d": "<f8",
    "e": "<f2",
}


@dataclass
class _Type:
    """A record type defined by an FMT record, and, if kept, its pending bodies and columns."""

    name: str
    length: int
    dtype: np.dtype[Any] | None = None
    scale: dict[str, float] = field(default_factory=dict)
    pending: bytearray | None = None
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)  # shared by name

    def flush(self) -> None:
        if not self.pending or self.dtype is None:
            return
        rec = np.frombuffer(self.pending, dtype=self.dtype)
        part = {}
        for name in self.dtype.names or ():
            mult = self.scale.get(name)
            dtype = self.dtype[name].newbyteorder("=")
            # astype copies: nothing may keep a view of the buffer emptied below
            part[name] = rec[name] * mult if mult is not None else rec[name].astype(dtype)
        self.parts.append(part)
        del rec
        del self.pending[:]


def _body_dtype(fmt: DFFormat) -> tuple[np.dtype[Any] | None, dict[str, float]]:
    """Numpy dtype of a record body (offset first), keeping only :data:`_KEEP_COLUMNS`."""
    names: list[str] = []
    offsets: list[int] = []
    formats: list[Any] = []
    scale: dict[str, float] = {}
    pos = 8  # the file offset of the record is stored first
    for col, ch in zip(fmt.columns, fmt.format, strict=False):
        code, mult, _ = FORMAT_TO_STRUCT[ch]
        size = struct.calcsize("<" + code)
        if col in _KEEP_COLUMNS and code in _NUMPY_CODES and col not in names:
            names.append(col)
            offsets.append(pos)
            formats.append(_NUMPY_CODES[code])
            if mult is not None:
                scale[col] = mult
        pos += size
    if pos - 8 != fmt.len - 3:
        return None, {}
    dtype = np.dtype(
        {
            "names": ["offset", *names],
            "formats": ["<u8", *formats],
            "offsets": [0, *offsets],
            "itemsize": pos,
        }
    )
    return dtype, scale


@dataclass
class _ScanState:
    types: dict[int, _Type]
    parts: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)
    good: int = 0
    corrupt: int = 0
    truncated: int = 0
    resyncing: bool = False
    bad_formats: list[str] = field(default_factory=list)


def _header_ok(data: bytes, q: int, n: int, lengths: list[int]) -> int:
    """End of the record at ``q`` if its header is good, else -1."""
    if q + 3 > n or data[q] != _HEAD1 or data[q + 1] != _HEAD2:
        return -1
    length = lengths[data[q + 2]]
    if length == 0 or q + length > n:
        return -1
    return q + length


def _resync(data: bytes, start: int, n: int, final: bool, lengths: list[int]) -> int:
    """Position of the next record whose header and the next record's header are good."""
    q = start
    head = bytes((_HEAD1, _HEAD2))
    while True:
        q = data.find(head, q, n)
        if q < 0:
            return n if final else max(start, n - _LOOKAHEAD)
        if not final and q + _LOOKAHEAD > n:
            return q
        end = _header_ok(data, q, n, lengths)
        if end >= 0 and (end == n or _header_ok(data, end, n, lengths) >= 0):
            return q
        q += 1


def looks_like_dataflash(head: bytes) -> bool:
    """Whether the first bytes of a file hold DataFlash FMT records (the log's header)."""
    at = head.find(bytes((_HEAD1, _HEAD2, _FMT_TYPE)))
    after = head[at + _FMT_LEN : at + _FMT_LEN + 2]
    return 0 <= at < 1024 and after in (b"", bytes((_HEAD1, _HEAD2)))


def _is_padding(tail: bytes) -> bool:
    return not tail.strip(b"\x00") or not tail.strip(b"\xff")


def _usable(name: str, columns: tuple[str, ...]) -> bool:
    """Whether a kept type's layout has the columns its use needs (a damaged FMT may not)."""
    has = set(columns)
    timed = bool(has & {"TimeUS", "TimeMS", "T"}) or {"GPSTime", "GPSWeek"} <= has
    return timed and set(_REQUIRED[name]) <= has


def _define(st: _ScanState, body: bytes, lengths: list[int]) -> None:
    """Register the type an FMT record defines (its length frames its records even when its
    layout cannot be used, so they are skipped one by one, not as damage)."""
    ftype, flen, name_b, fmt_b, cols_b = _FMT_BODY.unpack(body)
    name = null_term(name_b)
    if flen < 3:
        st.bad_formats.append(name)
        return
    lengths[ftype] = flen
    old = st.types.get(ftype)
    if old is not None:
        old.flush()
    t = _Type(name=name, length=flen, parts=st.parts.setdefault(name, []))
    st.types[ftype] = t
    chars = null_term(fmt_b)
    if any(c not in FORMAT_TO_STRUCT for c in chars):  # DFFormat would print and raise
        st.bad_formats.append(name)
        return
    if name in WANTED:
        t.dtype, t.scale = _body_dtype(DFFormat(ftype, name, flen, chars, null_term(cols_b)))
        if t.dtype is None or not _usable(name, t.dtype.names or ()):
            t.dtype = None
            st.bad_formats.append(name)
        else:
            t.pending = bytearray()


def _scan(data: bytes, n: int, base: int, final: bool, st: _ScanState, lengths: list[int]) -> int:
    """Walk the records of ``data[:n]``; return where the next chunk must start."""
    stop = n if final else n - _LOOKAHEAD
    mv = memoryview(data)
    pending: list[bytearray | None] = [None] * 256
    for code, t in st.types.items():
        pending[code] = t.pending
    pack_offset = struct.Struct("<Q").pack
    good = 0
    p = 0
    if st.resyncing:
        p = _resync(data, 0, n, final, lengths)
        if p >= stop:
            return p
        st.resyncing = False
    while p < stop:
        code = data[p + 2]
        length = lengths[code]
        if data[p] != _HEAD1 or data[p + 1] != _HEAD2 or length == 0:
            if final and _is_padding(data[p:n]):
                p = n
                break
            st.corrupt += 1
            p = _resync(data, p + 1, n, final, lengths)
            if p >= stop:
                st.resyncing = not final
                break
            continue
        end = p + length
        if end > n:
            st.truncated += 1
            p = n
            break
        if code == _FMT_TYPE:
            _define(st, bytes(data[p + 3 : end]), lengths)
            pending[:] = [None] * 256
            for c, t in st.types.items():
                pending[c] = t.pending
        else:
            s = pending[code]
            if s is not None:
                s += pack_offset(base + p)
                s += mv[p + 3 : end]
        good += 1
        p = end
    st.good += good
    return p


def scan_dataflash(path: Path, tally: LogTally) -> dict[str, dict[str, np.ndarray]]:
    """Stream a DataFlash log and return the columns of the kept record types.

    Parameters
    ----------
    path : pathlib.Path
    tally : LogTally
        Receives the count of good records and of skipped ones.

    Returns
    -------
    dict
        Type name → column name → numpy array (file order, scaled to degrees, metres, ...);
        every type also has ``offset`` (file offset). Types absent from the log are absent.
    """
    lengths = [0] * 256
    lengths[_FMT_TYPE] = _FMT_LEN
    st = _ScanState(types={})
    base = 0
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            data = carry + chunk
            if not chunk:
                n = len(data)
                if n:
                    _scan(data + bytes(_LOOKAHEAD), n, base, True, st, lengths)
                break
            n = len(data)
            if n < 2 * _LOOKAHEAD:
                carry = data
                continue
            p = _scan(data, n, base, False, st, lengths)
            for t in st.types.values():
                t.flush()
            carry = data[p:n]
            base += p
    for t in st.types.values():
        t.flush()
    tally.messages += st.good
    tally.skip("corrupt", st.corrupt)
    tally.skip("truncated", st.truncated)
    if st.bad_formats:
        tally.warn(
            "bad_format",
            f"the FMT records of {sorted(set(st.bad_formats))} cannot be used (unknown format "
            f"character, wrong length or missing columns); those records were skipped",
            types=sorted(set(st.bad_formats)),
        )
    return {name: _concat(parts) for name, parts in st.parts.items() if name in WANTED and parts}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join the decoded chunks of a type (NaN where a chunk's layout lacks a column).

    The chunks are emptied as each column is joined, so no more than one column is held twice.
    """
    names = [*sorted({k for p in parts for k in p} - {"offset"}), "offset"]
    return {
        name: np.concatenate(
            [p.pop(name) if name in p else np.full(p["offset"].size, np.nan) for p in parts]
        )
        for name in names
    }


# --- from columns to the flight log -------------------------------------------------------------

Columns = dict[str, np.ndarray]


def _select(c: Columns, mask: np.ndarray) -> Columns:
    return {k: v[mask] for k, v in c.items()}


def _boot_ns(name: str, c: Columns) -> np.ndarray | None:
    """Boot-clock time (ns) of each record, or None when the type carries none."""
    if "TimeUS" in c:
        return c["TimeUS"].astype(np.int64) * 1000
    if name == "GPS":  # before 2015: GPS.TimeMS is the GPS time of week, GPS.T the boot time
        return c["T"].astype(np.int64) * 1_000_000 if "T" in c else None
    if "TimeMS" in c:
        return c["TimeMS"].astype(np.int64) * 1_000_000
    return None


def _gps_week_ms(c: Columns) -> tuple[np.ndarray, np.ndarray] | None:
    week = c.get("GWk", c.get("Week"))
    tow = c.get("GMS", c.get("TimeMS") if "T" in c else None)
    if week is None or tow is None:
        return None
    return week.astype(np.int64), tow.astype(np.float64)


def _drop_absurd_times(cols: dict[str, Columns], tally: LogTally) -> None:
    """Drop records whose boot time jumps more than a minute away from their neighbours'."""
    for name, c in cols.items():
        boot = _boot_ns(name, c)
        if boot is None or boot.size < 3 or (boot[1:] >= boot[:-1]).all():
            continue
        t = boot.astype(np.float64)
        size = min(31, t.size if t.size % 2 else t.size - 1)
        bad = np.abs(t - median_filter(t, size=size, mode="nearest")) > _ABSURD_JUMP_NS
        if bad.any():
            tally.skip("absurd_timestamp", int(bad.sum()))
            cols[name] = _select(c, ~bad)


def _valid_position(c: Columns) -> np.ndarray:
    lat, lon = c["Lat"], c["Lng"]
    return (
        np.isfinite(lat)
        & np.isfinite(lon)
        & ((lat != 0) | (lon != 0))
        & (np.abs(lat) <= 90)
        & (np.abs(lon) <= 180)
    )


def _primary_gps(cols: dict[str, Columns]) -> Columns:
    gps = cols.get("GPS", {})
    if gps and "I" in gps:
        gps = _select(gps, gps["I"] == 0)
    return gps


def _clock(gps: Columns, tally: LogTally) -> tuple[np.ndarray, np.ndarray, str]:
    """(boot, UTC) reference pairs from the GPS records, and the time source in words."""
    wm = _gps_week_ms(gps) if gps else None
    boot = _boot_ns("GPS", gps) if gps else None
    if wm is None or boot is None:
        raise TelemetryError(
            f"{tally.path}: the GPS records carry no GPS week and time ({sorted(gps)}); "
            f"this DataFlash layout cannot be put on UTC"
        )
    week, tow = wm
    ok = (week > 0) & (tow > 0)
    if not ok.any():
        raise TelemetryError(
            f"{tally.path}: no GPS record with a GPS time (week 0 in all {week.size}); the log "
            f"cannot be put on UTC; use a log recorded after the GPS had a fix"
        )
    utc = gps_to_utc(week[ok], tow[ok])
    leaps = sorted({int(x) for x in leap_seconds_at(week[ok] * 604_800 + tow[ok] / 1000)})
    source = f"GPS week/ms over the boot clock, GPS − UTC = {'/'.join(map(str, leaps))} s"
    return boot[ok], utc, source


def _telemetry(
    cols: dict[str, Columns], refs: tuple[np.ndarray, np.ndarray], tally: LogTally
) -> xr.Dataset:
    gps = _primary_gps(cols)
    pos = cols.get("POS", {})

    def utc(name: str, c: Columns) -> np.ndarray:
        boot = _boot_ns(name, c)
        if boot is None:
            return np.zeros(0, dtype=np.int64)
        return align_boot_clock(boot, *refs)[0]

    gps_t = utc("GPS", gps)
    order = np.argsort(gps_t, kind="stable")
    gps_t = gps_t[order]
    gps_sorted = {k: v[order] for k, v in gps.items()}
    if pos and _valid_position(pos).any():
        ok = _valid_position(pos)
        tally.skip("no_fix", int((~ok).sum()))
        p = _select(pos, ok)
        t = utc("POS", p)
        alt_rel = p.get("RelHomeAlt")
    else:
        ok = _valid_position(gps) & (gps["Status"] >= 2)
        tally.skip("no_fix", int((~ok).sum()))
        p = _select(gps, ok)
        t = utc("GPS", p)
        alt_rel = p.get("RelAlt")
    n_gps = gps_t.size
    fix = hold_previous(t, gps_t, gps_sorted["Status"].astype(np.int16), -1)
    nsats = gps_sorted.get("NSats", np.full(n_gps, -1))
    sats = hold_previous(t, gps_t, nsats.astype(np.int16), -1)
    spd = gps_sorted.get("Spd", np.full(n_gps, np.nan))
    speed = hold_previous(t, gps_t, spd.astype(np.float64), np.nan)
    att = cols.get("ATT", {})
    if att:
        att_t = utc("ATT", att)
        order = np.argsort(att_t, kind="stable")
        roll, pitch, yaw = interp_attitude(
            t, att_t[order], att["Roll"][order], att["Pitch"][order], att["Yaw"][order]
        )
    else:
        roll = pitch = yaw = np.full(t.size, np.nan)
    return make_telemetry(
        t,
        lat=p["Lat"],
        lon=p["Lng"],
        alt_amsl=p["Alt"],
        alt_rel=alt_rel,
        roll=roll,
        pitch=pitch,
        yaw=yaw,
        groundspeed=speed,
        fix_type=fix,
        satellites=sats,
        tally=tally,
        compact=True,
    )


def _camera_events(
    cols: dict[str, Columns], refs: tuple[np.ndarray, np.ndarray], tally: LogTally
) -> xr.Dataset:
    """Camera events from CAM records (the exposures), else from TRIG (the trigger pulses)."""
    found = {name: cols[name]["offset"].size for name in ("CAM", "TRIG") if name in cols}
    if not found:
        return make_camera_events(np.zeros(0, dtype=np.int64), source="CAM")
    source = "CAM" if "CAM" in found else "TRIG"
    if len(found) > 1:
        tally.warn(
            "camera_sources",
            f"camera events from CAM; not used: {found['TRIG']} TRIG",
            used="CAM",
            unused={"TRIG": found["TRIG"]},
        )
    c = cols[source]
    boot = _boot_ns(source, c)
    if boot is not None:
        t, _ = align_boot_clock(boot, *refs)
    else:
        week = c["GPSWeek"].astype(np.int64)
        timed = week > 0
        tally.skip("no_time", int((~timed).sum()))
        c = _select(c, timed)
        t = gps_to_utc(c["GPSWeek"], c["GPSTime"])
    placed = _valid_position(c)

    def value(*names: str) -> np.ndarray:
        for name in names:
            if name in c:
                return np.where(placed, c[name].astype(np.float64), np.nan)
        return np.full(t.size, np.nan)

    return make_camera_events(
        t,
        source=source,
        lat=value("Lat"),
        lon=value("Lng"),
        alt_amsl=value("Alt"),
        alt_rel=value("RelAlt"),
        roll=value("Roll", "R"),
        pitch=value("Pitch", "P"),
        yaw=value("Yaw", "Y"),
        image_index=c["Img"].astype(np.int64) if "Img" in c else None,
        tally=tally,
    )


def read_dataflash(path: str | os.PathLike[str]) -> FlightLog:
    """Read an ArduPilot DataFlash log (``.bin``) into telemetry, camera events and a report.

    Positions are the EKF's ``POS`` records where the log has them, else the GPS's;
    attitude is ``ATT`` interpolated at each position; fix type, satellites and ground speed
    are the last GPS record's. Camera events are ``CAM`` (else ``TRIG``) records.

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
        The log holds no position with a GPS fix (e.g. only its header), or no GPS time.
    """
    path = Path(path)
    tally = LogTally(path, "dataflash")
    cols = scan_dataflash(path, tally)
    _drop_absurd_times(cols, tally)
    gps = _primary_gps(cols)
    pos = cols.get("POS", {})
    has_fix = (bool(gps) and bool((_valid_position(gps) & (gps["Status"] >= 2)).any())) or (
        bool(pos) and bool(_valid_position(pos).any())
    )
    if not has_fix:
        n_gps = gps["offset"].size if gps else 0
        raise TelemetryError(
            f"{path}: no GPS position fix in the log ({tally.messages} records, {n_gps} GPS"
            f"{', ' + str(sum(tally.skipped.values())) + ' skipped' if tally.skipped else ''}"
            f"{'; it holds only its header' if n_gps == 0 and tally.messages else ''}); "
            f"use the log of a flight flown with GPS, or photos with their own GPS"
        )
    boot_ref, utc_ref, source = _clock(gps, tally)
    refs = (boot_ref, utc_ref)
    telemetry = _telemetry(cols, refs, tally)
    events = _camera_events(cols, refs, tally)
    return make_flight_log(tally, telemetry, events, source)
