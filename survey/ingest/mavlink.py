"""MAVLink telemetry logs (``.tlog``): stream the records, check them, decode the few we use.

A tlog is what a ground station (Mission Planner, QGroundControl, MAVProxy) records: every
MAVLink frame it received, each prefixed by its own 8-byte big-endian receive time in
microseconds since the Unix epoch. The file is read in chunks of :data:`CHUNK_BYTES`; every
record's checksum is verified (CRC-16/MCRF4XX with the message's ``crc_extra``, as
pymavlink does), and only the records of :data:`WANTED` are kept, as raw payloads that are
decoded chunk by chunk into numpy columns of their native dtypes. Memory therefore grows with
the columns kept, never with the file; nothing is ever loaded whole.

Message definitions (ids, field layouts, ``crc_extra``) are pymavlink's
(``pymavlink.dialects.v20.ardupilotmega``), so MAVLink 1 and 2 frames, truncated MAVLink 2
payloads and signed frames are read as pymavlink reads them.

Damage is kept local: a frame with a bad checksum whose neighbours are intact is skipped
alone (``bad_crc``); bytes that do not frame are skipped up to the next intact record
(``corrupt``, once per stretch); a record cut by the end of the file is ``truncated``; a
record whose ground-station time jumps away from its neighbours' is ``absurd_timestamp``.

Time (see :func:`_time_model`): the vehicle's boot clock (``time_boot_ms``) is put on UTC
through ``SYSTEM_TIME`` (the vehicle's GPS-derived UTC) where the vehicle sends it; otherwise
through the ground station's receive times, aligned to their lower envelope (the least-delayed
records). ``LogReport.time_source`` says which.

The module is long (about 950 lines) because both halves are one format's knowledge: the
record walk, which has to be fast (framing, checksums, resynchronisation, raw payloads), and
what turns the kept columns into a flight (boots, the vehicle's and the ground station's
clocks, the vehicle among several systems, camera events from four message types).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from pymavlink.dialects.v20 import ardupilotmega as mavlink
from pymavlink.generator import mavcrc
from scipy.ndimage import median_filter

from survey.errors import TelemetryError
from survey.ingest.telemetry import (
    NS,
    FlightLog,
    LogTally,
    align_boot_clock,
    hold_previous,
    interp_attitude,
    make_camera_events,
    make_flight_log,
    make_telemetry,
)

__all__ = ["CHUNK_BYTES", "WANTED", "looks_like_tlog", "read_tlog", "scan_tlog"]

CHUNK_BYTES = 1 << 20
"""Bytes read from the file at a time."""

# The longest record: 8-byte time, MAVLink 2 header (10), payload (255), CRC (2), signature (13).
_MAX_RECORD = 8 + 10 + 255 + 2 + 13
_MAX_BAD_RUN = 16  # consecutive bad checksums told apart from lost framing
_LOOKAHEAD = (_MAX_BAD_RUN + 2) * _MAX_RECORD  # what judging a bad checksum may read ahead
_STX = re.compile(rb"[\xfd\xfe]")
_OFFSET = struct.Struct("<Q")

WANTED: dict[int, tuple[str, ...]] = {
    mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: (
        "time_boot_ms",
        "lat",
        "lon",
        "alt",
        "relative_alt",
        "vx",
        "vy",
        "hdg",
    ),
    mavlink.MAVLINK_MSG_ID_GPS_RAW_INT: (
        "time_usec",
        "lat",
        "lon",
        "alt",
        "vel",
        "fix_type",
        "satellites_visible",
    ),
    mavlink.MAVLINK_MSG_ID_ATTITUDE: ("time_boot_ms", "roll", "pitch", "yaw"),
    mavlink.MAVLINK_MSG_ID_SYSTEM_TIME: ("time_unix_usec", "time_boot_ms"),
    mavlink.MAVLINK_MSG_ID_CAMERA_FEEDBACK: (
        "time_usec",
        "lat",
        "lng",
        "alt_msl",
        "alt_rel",
        "roll",
        "pitch",
        "yaw",
        "img_idx",
    ),
    mavlink.MAVLINK_MSG_ID_CAMERA_TRIGGER: ("time_usec", "seq"),
    mavlink.MAVLINK_MSG_ID_COMMAND_LONG: (
        "command",
        "target_system",
        "confirmation",
        "param5",
        "param7",
    ),
    mavlink.MAVLINK_MSG_ID_COMMAND_INT: ("command", "target_system", "x", "z"),
    mavlink.MAVLINK_MSG_ID_MISSION_ITEM: ("command",),
    mavlink.MAVLINK_MSG_ID_MISSION_ITEM_INT: ("command",),
}
"""Message id → the payload fields kept (every kept record also keeps its ground-station time,
source system and component, and file offset)."""

_GPI = mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT
_GPS = mavlink.MAVLINK_MSG_ID_GPS_RAW_INT
_ATT = mavlink.MAVLINK_MSG_ID_ATTITUDE
_SYSTIME = mavlink.MAVLINK_MSG_ID_SYSTEM_TIME
_FEEDBACK = mavlink.MAVLINK_MSG_ID_CAMERA_FEEDBACK
_TRIGGER = mavlink.MAVLINK_MSG_ID_CAMERA_TRIGGER
_CMD_LONG = mavlink.MAVLINK_MSG_ID_COMMAND_LONG
_CMD_INT = mavlink.MAVLINK_MSG_ID_COMMAND_INT
_DIGICAM = mavlink.MAV_CMD_DO_DIGICAM_CONTROL

_UNIX_MIN_US = 946_684_800 * 1_000_000  # 2000-01-01: smaller "UTC" times are boot times
_REBOOT_DROP_NS = 5 * NS  # the boot clock going back by more than this is a reboot
_ABSURD_JUMP_US = 60 * 1_000_000  # a receive time this far off its neighbours' is absurd


def _crc16(data: Any, crc: int) -> int:
    """CRC-16/MCRF4XX of ``data`` continuing from ``crc`` (pymavlink's, through fastcrc)."""
    acc = mavcrc.x25crc()
    acc.crc = crc
    acc.accumulate(bytes(data))
    return int(acc.crc)


_mcrf4xx = mavcrc.mcrf4xx if mavcrc.mcrf4xx is not None else _crc16
_CRC_EXTRA: dict[int, bytes] = {
    mid: bytes([cls.crc_extra]) for mid, cls in mavlink.mavlink_map.items()
}

_STRUCT_TO_NUMPY = {
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
    "c": "S1",
    "s": "S1",
}


def _record_dtype(msgid: int) -> np.dtype[Any]:
    """The kept record: file offset, receive time, system, component, then the payload."""
    cls = mavlink.mavlink_map[msgid]
    fields: list[tuple[Any, ...]] = [
        ("offset", "<u8"),
        ("gcs_us", ">u8"),
        ("sysid", "u1"),
        ("compid", "u1"),
    ]
    codes = bytes(cls.native_format).decode("ascii")[1:]  # drop the "<"
    for name, code, n in zip(cls.ordered_fieldnames, codes, cls.array_lengths, strict=True):
        fields.append((name, _STRUCT_TO_NUMPY[code], (n,)) if n else (name, _STRUCT_TO_NUMPY[code]))
    dtype = np.dtype(fields)
    assert dtype.itemsize == 18 + cls.unpacker.size, cls.msgname
    return dtype


_DTYPES = {mid: _record_dtype(mid) for mid in WANTED}
_PAYLOAD_LEN = {mid: mavlink.mavlink_map[mid].unpacker.size for mid in WANTED}
_ZEROS = [bytes(k) for k in range(256)]


@dataclass
class _ScanState:
    """What survives from one chunk to the next."""

    stores: dict[int, bytearray]
    good: int = 0
    bad_crc: int = 0
    corrupt: int = 0
    truncated: int = 0
    unknown: int = 0
    resyncing: bool = False


def _frame_at(data: bytes, q: int, n: int) -> tuple[int, bool]:
    """(end, checksum good) of the record starting at ``q``; end -1 if none can start there.

    A record can start at ``q`` if its marker is 0xFD or 0xFE, its message is known and it
    ends within ``data[:n]``.
    """
    if q + 16 > n:
        return -1, False
    stx = data[q + 8]
    if stx == 0xFD:
        if q + 20 > n:
            return -1, False
        plen = data[q + 9]
        ce = q + 18 + plen
        end = ce + 2 + (13 if data[q + 10] & 1 else 0)
        mid = data[q + 15] | (data[q + 16] << 8) | (data[q + 17] << 16)
    elif stx == 0xFE:
        plen = data[q + 9]
        ce = q + 14 + plen
        end = ce + 2
        mid = data[q + 13]
    else:
        return -1, False
    x = _CRC_EXTRA.get(mid)
    if end > n or x is None:
        return -1, False
    crc = _mcrf4xx(x, _mcrf4xx(memoryview(data)[q + 9 : ce], 0xFFFF))
    return end, crc == (data[ce] | (data[ce + 1] << 8))


def _valid_at(data: bytes, q: int, n: int) -> int:
    """End of the intact record starting at ``q`` (checksum verified), or -1."""
    end, ok = _frame_at(data, q, n)
    return end if ok else -1


def _bad_run(data: bytes, q: int, n: int) -> tuple[int, int]:
    """After a record with a bad checksum ending at ``q``: (records in the bad run, next good).

    Follows records that frame but fail their checksum, up to :data:`_MAX_BAD_RUN`; the next
    good position is -1 if the run does not end on an intact record (or the end of the file).
    """
    count = 1
    while count <= _MAX_BAD_RUN:
        if q == n:
            return count, q
        end, ok = _frame_at(data, q, n)
        if end < 0:
            return count, -1
        if ok:
            return count, q
        count += 1
        q = end
    return count, -1


def looks_like_tlog(head: bytes) -> bool:
    """Whether the first bytes of a file hold two tlog records in a row with valid checksums."""
    n = len(head)
    for m in _STX.finditer(head, 8):
        q = m.start() - 8
        end = _valid_at(head, q, n)
        if end >= 0 and (end == n or _valid_at(head, end, n) >= 0):
            return True
    return False


def _resync(data: bytes, start: int, n: int, final: bool) -> int:
    """Position of the next intact record at or after ``start``.

    Returns ``n`` if there is none in the file (``final``), or the position from which to
    search again once more bytes are read (not ``final``).
    """
    q = start
    while True:
        m = _STX.search(data, q + 8, n)
        if m is None:
            return n if final else max(start, n - _LOOKAHEAD)
        q = m.start() - 8
        if not final and q + _MAX_RECORD > n:
            return q
        if _valid_at(data, q, n) >= 0:
            return q
        q += 1


def _scan(data: bytes, n: int, base: int, final: bool, st: _ScanState) -> int:
    """Walk the records of ``data[:n]``; return where the next chunk must start.

    ``data`` extends at least :data:`_LOOKAHEAD` bytes past ``n`` when ``final`` (zero
    padding), so headers can be read without bounds checks. ``base`` is the file offset of
    ``data[0]``.
    """
    stop = n if final else n - _LOOKAHEAD
    mv = memoryview(data)
    extra = _CRC_EXTRA
    crc = _mcrf4xx
    stores = st.stores
    plen_full = _PAYLOAD_LEN
    zeros = _ZEROS
    pack_offset = _OFFSET.pack
    good = 0
    p = 0
    if st.resyncing:
        p = _resync(data, 0, n, final)
        if p >= stop:
            return p
        st.resyncing = False
    while p < stop:
        if n - p < 16:  # shorter than any record: the end of the file cut one
            st.truncated += 1
            p = n
            break
        stx = data[p + 8]
        if stx == 0xFD:
            plen = data[p + 9]
            ce = p + 18 + plen
            end = ce + 2 + (13 if data[p + 10] & 1 else 0)
            mid = data[p + 15] | (data[p + 16] << 8) | (data[p + 17] << 16)
            hs = p + 13
        elif stx == 0xFE:
            plen = data[p + 9]
            ce = p + 14 + plen
            end = ce + 2
            mid = data[p + 13]
            hs = p + 11
        else:
            st.corrupt += 1
            p = _resync(data, p + 1, n, final)
            if p >= stop:
                st.resyncing = not final
                break
            continue
        if end > n:
            st.truncated += 1
            p = n
            break
        x = extra.get(mid)
        if x is None:
            if end == n or _valid_at(data, end, n) >= 0:
                st.unknown += 1
                p = end
            else:
                st.corrupt += 1
                p = _resync(data, p + 1, n, final)
                if p >= stop:
                    st.resyncing = not final
                    break
            continue
        if crc(x, crc(mv[p + 9 : ce], 0xFFFF)) != (data[ce] | (data[ce + 1] << 8)):
            run, after = _bad_run(data, end, n)
            if after >= 0:
                st.bad_crc += run
                p = after
            else:
                st.corrupt += 1
                p = _resync(data, p + 1, n, final)
                if p >= stop:
                    st.resyncing = not final
                    break
            continue
        good += 1
        s = stores.get(mid)
        if s is not None:
            s += pack_offset(base + p)
            s += mv[p : p + 8]
            s += mv[hs : hs + 2]
            full = plen_full[mid]
            ps = ce - plen
            if plen >= full:
                s += mv[ps : ps + full]
            else:
                s += mv[ps:ce]
                s += zeros[full - plen]
        p = end
    st.good += good
    return p


class _Columns:
    """Kept records of each message, decoded chunk by chunk into native-dtype numpy columns."""

    def __init__(self) -> None:
        self.stores: dict[int, bytearray] = {mid: bytearray() for mid in WANTED}
        self.parts: dict[int, dict[str, list[np.ndarray]]] = {
            mid: {name: [] for name in ("offset", "gcs_us", "sysid", "compid", *fields)}
            for mid, fields in WANTED.items()
        }

    def flush(self) -> None:
        """Decode what the stores hold and empty them."""
        for mid, store in self.stores.items():
            if not store:
                continue
            records = np.frombuffer(store, dtype=_DTYPES[mid])
            for name, chunks in self.parts[mid].items():
                # astype copies: nothing may keep a view of the store emptied below
                chunks.append(records[name].astype(records.dtype[name].newbyteorder("=")))
            del records
            del store[:]

    def take(self, mid: int) -> dict[str, np.ndarray]:
        """Every column of message ``mid``, concatenated (the chunks are let go)."""
        out = {}
        for name, chunks in self.parts[mid].items():
            dtype = _DTYPES[mid][name].newbyteorder("=")
            out[name] = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
            chunks.clear()
        return out


def scan_tlog(path: Path, tally: LogTally) -> dict[int, dict[str, np.ndarray]]:
    """Stream a tlog and return the kept columns of every message of :data:`WANTED`.

    Counts good records and every skipped one into ``tally``.

    Parameters
    ----------
    path : pathlib.Path
    tally : LogTally

    Returns
    -------
    dict
        Message id → field name → numpy array (file order); each message also has
        ``offset`` (file offset), ``gcs_us`` (receive time, µs), ``sysid`` and ``compid``.
    """
    cols = _Columns()
    st = _ScanState(stores=cols.stores)
    base = 0
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            final = not chunk
            data = carry + chunk
            if final:
                n = len(data)
                if n == 0:
                    break
                data += bytes(_LOOKAHEAD)
                _scan(data, n, base, True, st)
                cols.flush()
                break
            n = len(data)
            if n < _LOOKAHEAD * 2:
                carry = data
                continue
            p = _scan(data, n, base, False, st)
            cols.flush()
            carry = data[p:n]
            base += p
    tally.messages += st.good
    tally.skip("bad_crc", st.bad_crc)
    tally.skip("corrupt", st.corrupt)
    tally.skip("truncated", st.truncated)
    tally.skip("unknown_message", st.unknown)
    return {mid: cols.take(mid) for mid in WANTED}


# --- from columns to the flight log -------------------------------------------------------------

Columns = dict[str, np.ndarray]


def _select(cols: Columns, mask: np.ndarray) -> Columns:
    if mask.all():
        return cols
    return {name: a[mask] for name, a in cols.items()}


def _drop_absurd_times(cols: dict[int, Columns], tally: LogTally) -> None:
    """Drop records whose receive time jumps more than a minute off their neighbours'.

    A running median over 31 records of the same message keeps any monotonic sequence (gaps
    included) and flags only records out of order with it.
    """
    for mid, c in cols.items():
        t = c["gcs_us"]
        if t.size < 3 or (t[1:] >= t[:-1]).all():  # in order: nothing to flag
            continue
        size = min(31, t.size if t.size % 2 else t.size - 1)
        med = median_filter(t, size=size, mode="nearest")
        np.subtract(np.maximum(t, med), np.minimum(t, med), out=med)  # |t - med|, unsigned
        bad = med > _ABSURD_JUMP_US
        del med
        if bad.any():
            tally.skip("absurd_timestamp", int(bad.sum()))
            cols[mid] = _select(c, ~bad)


def _has_fix_gpi(c: Columns) -> np.ndarray:
    lat, lon = c["lat"], c["lon"]
    return ((lat != 0) | (lon != 0)) & (np.abs(lat) <= 900_000_000) & (np.abs(lon) <= 1_800_000_000)


def _has_fix_gps(c: Columns) -> np.ndarray:
    return (c["fix_type"] >= 2) & _has_fix_gpi(c)


def _pick_vehicle(cols: dict[int, Columns], tally: LogTally) -> tuple[int, int]:
    """(system, component) that sent the most positions with a fix; error if none did."""
    gpi, gps = cols[_GPI], cols[_GPS]
    keys = np.concatenate(
        [
            gpi["sysid"][_has_fix_gpi(gpi)].astype(np.int64) * 256
            + gpi["compid"][_has_fix_gpi(gpi)],
            gps["sysid"][_has_fix_gps(gps)].astype(np.int64) * 256
            + gps["compid"][_has_fix_gps(gps)],
        ]
    )
    if keys.size == 0:
        damage = f", {sum(tally.skipped.values())} records skipped" if tally.skipped else ""
        raise TelemetryError(
            f"{tally.path}: no GPS position fix in the log ({gpi['lat'].size} "
            f"GLOBAL_POSITION_INT, {gps['lat'].size} GPS_RAW_INT, none with a fix"
            f"{damage}); use the log of a flight flown with GPS, or photos with their own GPS"
        )
    uniq, counts = np.unique(keys, return_counts=True)
    best = int(uniq[np.argmax(counts)])
    sysid, compid = best // 256, best % 256
    others = sorted({int(k) // 256 for k in uniq} - {sysid})
    if others:
        tally.warn(
            "several_vehicles",
            f"positions from systems {[sysid, *others]}; read system {sysid} "
            f"(most positions), ignored the others",
            system=sysid,
            ignored_systems=others,
        )
    return sysid, compid


def _vehicle_only(cols: dict[int, Columns], vehicle: tuple[int, int]) -> dict[int, Columns]:
    """The records of the vehicle: its autopilot's state, its system's camera messages."""
    sysid, compid = vehicle
    out = dict(cols)
    for mid in (_GPI, _GPS, _ATT, _SYSTIME):
        c = cols[mid]
        out[mid] = _select(c, (c["sysid"] == sysid) & (c["compid"] == compid))
    for mid in (_FEEDBACK, _TRIGGER):
        out[mid] = _select(cols[mid], cols[mid]["sysid"] == sysid)
    return out


def _envelope_refs(
    streams: list[tuple[np.ndarray, np.ndarray]], window_s: float = 60.0, q: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """(clock, UTC) reference pairs from receive times: the least-delayed records of each minute.

    A record reaches the ground station some latency after it was stamped, and each message
    has its own (a GPS fix is stamped before it is sent). ``streams`` holds, per message,
    (stamp ns, receive µs). In each window of ``window_s`` seconds of the stamp clock, the
    clock's offset is the smallest over the messages of the low percentile ``q`` of
    receive − stamp.
    """
    c0 = min(int(c.min()) for c, _ in streams if c.size)
    width = int(window_s * NS)
    best: dict[int, int] = {}
    for stamp, receive_us in streams:
        if not stamp.size:
            continue
        bins = (stamp - c0) // width
        order = np.argsort(bins, kind="stable")
        lag = (receive_us.astype(np.int64) * 1000 - stamp)[order]
        windows, first = np.unique(bins[order], return_index=True)
        for key, part in zip(windows.tolist(), np.split(lag, first[1:]), strict=True):
            value = int(np.percentile(part, q))
            best[key] = min(best.get(key, value), value)
    keys = sorted(best)
    ref_c = c0 + np.array(keys, dtype=np.int64) * width + width // 2
    return ref_c, ref_c + np.array([best[k] for k in keys], dtype=np.int64)


class _Clock:
    """Put the three clocks of a tlog on one UTC scale (see :func:`_time_model`)."""

    def __init__(
        self,
        seg_starts: np.ndarray,
        seg_maps: list[tuple[np.ndarray, np.ndarray, bool]],
        gcs_shift_ns: int,
        vehicle_utc_refs: tuple[np.ndarray, np.ndarray] | None,
        source: str,
    ) -> None:
        self.seg_starts = seg_starts
        self.seg_maps = seg_maps
        self.gcs_shift_ns = gcs_shift_ns
        self.vehicle_utc_refs = vehicle_utc_refs
        self.source = source

    def boot(self, offset: np.ndarray, boot_ns: np.ndarray) -> np.ndarray:
        """UTC of boot-clock stamps of records at file offsets ``offset``."""
        if len(self.seg_maps) == 1:
            ref_boot, ref_utc, on_vehicle_clock = self.seg_maps[0]
            utc = align_boot_clock(boot_ns, ref_boot, ref_utc)[0]
            return utc if on_vehicle_clock else utc + self.gcs_shift_ns
        out = np.zeros(boot_ns.shape, dtype=np.int64)
        seg = self.boot_segment(offset)
        for k, (ref_boot, ref_utc, on_vehicle_clock) in enumerate(self.seg_maps):
            sel = seg == k
            if sel.any():
                utc, _ = align_boot_clock(boot_ns[sel], ref_boot, ref_utc)
                out[sel] = utc if on_vehicle_clock else utc + self.gcs_shift_ns
        return out

    def boot_segment(self, offset: np.ndarray) -> np.ndarray:
        """Index of the boot (0 before the first reboot) of records at file offsets ``offset``."""
        return np.clip(np.searchsorted(self.seg_starts, offset, side="right") - 1, 0, None)

    def boot_key(self, offset: np.ndarray, boot_ns: np.ndarray) -> np.ndarray:
        """Boot-clock stamps made increasing across reboots: boot k is moved 2**52 ns × k on.

        Messages of one boot share its clock, so one can be interpolated at the stamps of
        another without putting either on UTC first (a boot clock in ms ends before 2**52 ns).
        """
        if len(self.seg_maps) <= 1:
            return boot_ns
        return boot_ns + self.boot_segment(offset) * (1 << 52)

    def vehicle_utc(self, utc_ns: np.ndarray) -> np.ndarray:
        """UTC of the vehicle's own UTC stamps (GPS time in ``time_usec`` fields)."""
        if self.vehicle_utc_refs is None:
            return utc_ns.astype(np.int64)
        ref_v, ref_u = self.vehicle_utc_refs
        return align_boot_clock(utc_ns, ref_v, ref_u, max_jump_s=1e9)[0]

    def gcs(self, gcs_ns: np.ndarray) -> np.ndarray:
        """UTC of ground-station receive times."""
        return gcs_ns.astype(np.int64) + self.gcs_shift_ns


def _boot_streams(cols: dict[int, Columns]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(file offset, boot ns, receive µs) of each message stamped on the vehicle's boot clock."""
    gps = cols[_GPS]
    boot_like = gps["time_usec"] < _UNIX_MIN_US
    streams = [
        (c["offset"], c["time_boot_ms"].astype(np.int64) * 1_000_000, c["gcs_us"])
        for c in (cols[_GPI], cols[_ATT], cols[_SYSTIME])
    ]
    streams.append(
        (
            gps["offset"][boot_like],
            gps["time_usec"][boot_like].astype(np.int64) * 1000,
            gps["gcs_us"][boot_like],
        )
    )
    return [s for s in streams if s[0].size]


def _reboots(streams: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """File offsets at which the boot clock goes back by more than :data:`_REBOOT_DROP_NS`."""
    if not any((np.diff(boot) < -_REBOOT_DROP_NS).any() for _, boot, _ in streams):
        return np.zeros(0, dtype=np.int64)  # no message's clock goes back: no reboot
    offset = np.concatenate([s[0] for s in streams]).astype(np.int64)
    order = np.argsort(offset, kind="stable")
    boot = np.concatenate([s[1] for s in streams])[order]
    return offset[order][np.flatnonzero(np.diff(boot) < -_REBOOT_DROP_NS) + 1]


def _time_model(cols: dict[int, Columns], tally: LogTally) -> _Clock:
    """How this log's stamps become UTC.

    The boot clock is cut into boots where it goes back (a reboot). A boot during which the
    vehicle sent ``SYSTEM_TIME`` with a UTC time is put on UTC through those pairs; another is
    aligned to the receive times and shifted by the median difference between the vehicle's
    UTC and the receive times (0 if the vehicle never sent its UTC). Receive times of records
    without a vehicle stamp (ground-station commands) get the same shift; the vehicle's own
    UTC stamps (``time_usec``) are used as they are when ``SYSTEM_TIME`` exists, else aligned
    to the receive times.
    """
    streams = _boot_streams(cols)
    reboots = _reboots(streams)
    seg_starts = np.concatenate([[0], reboots]).astype(np.int64)
    seg_ends = np.concatenate([reboots, [np.iinfo(np.int64).max]]).astype(np.int64)
    if reboots.size:
        tally.warn(
            "reboot",
            f"the vehicle's boot clock restarts {reboots.size} time(s) in the log "
            f"(reboots); each boot is put on UTC on its own",
            reboots=int(reboots.size),
        )
    st = cols[_SYSTIME]
    st_ok = st["time_unix_usec"] >= _UNIX_MIN_US
    seg_maps: list[tuple[np.ndarray, np.ndarray, bool]] = []
    shifts: list[np.ndarray] = []
    for start, end in zip(seg_starts.tolist(), seg_ends.tolist(), strict=True) if streams else ():
        here = st_ok & (st["offset"] >= start) & (st["offset"] < end)
        if here.any():
            ref_boot = st["time_boot_ms"][here].astype(np.int64) * 1_000_000
            ref_utc = st["time_unix_usec"][here].astype(np.int64) * 1000
            seg_maps.append((ref_boot, ref_utc, True))
            shifts.append(ref_utc - st["gcs_us"][here].astype(np.int64) * 1000)
            tally.skip("absurd_timestamp", align_boot_clock(ref_boot, ref_boot, ref_utc)[1])
        else:
            inside = [((o >= start) & (o < end), b, g) for o, b, g in streams]
            ref_boot, ref_utc = _envelope_refs([(b[m], g[m]) for m, b, g in inside if m.any()])
            seg_maps.append((ref_boot, ref_utc, False))
    on_vehicle = [m[2] for m in seg_maps]
    gcs_shift = int(np.median(np.concatenate(shifts))) if shifts else 0
    vehicle_refs = None
    if not any(on_vehicle):
        utc_streams = _vehicle_utc_streams(cols)
        if utc_streams:
            vehicle_refs = _envelope_refs(utc_streams)
    if on_vehicle and all(on_vehicle):
        source = "vehicle SYSTEM_TIME (GPS UTC) over the boot clock"
    elif any(on_vehicle):
        source = (
            "vehicle SYSTEM_TIME (GPS UTC) over the boot clock; boots without it aligned to "
            "the ground-station timestamps"
        )
    else:
        source = "ground-station timestamps (vehicle clock aligned to the least-delayed records)"
        _check_gcs_clock(cols, tally)
    if any(on_vehicle) and abs(gcs_shift) > NS:
        tally.warn(
            "clock_offset",
            f"the vehicle's UTC (SYSTEM_TIME) is {gcs_shift / NS:+.2f} s from the ground "
            f"station's clock; times follow the vehicle",
            vehicle_minus_ground_station_s=round(gcs_shift / NS, 3),
        )
    return _Clock(seg_starts, seg_maps, gcs_shift, vehicle_refs, source)


def _vehicle_utc_streams(cols: dict[int, Columns]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(vehicle UTC ns, receive µs) of each message carrying a UTC ``time_usec``."""
    streams = []
    for mid in (_GPS, _FEEDBACK, _TRIGGER):
        c = cols[mid]
        ok = c["time_usec"] >= _UNIX_MIN_US
        if ok.any():
            streams.append((c["time_usec"][ok].astype(np.int64) * 1000, c["gcs_us"][ok]))
    return streams


def _check_gcs_clock(cols: dict[int, Columns], tally: LogTally) -> None:
    t = np.concatenate([c["gcs_us"] for c in cols.values()]).astype(np.int64)
    if t.size == 0:
        return
    lo, hi = int(t.min()), int(t.max())
    now_us = int(np.datetime64("now", "us").astype(np.int64))
    if lo < _UNIX_MIN_US or hi > now_us + 86_400_000_000:
        first = np.datetime64(lo, "us")
        tally.warn(
            "ground_station_clock",
            f"the ground station's timestamps start at {first} (its clock was not set) and "
            f"the vehicle sent no SYSTEM_TIME: times are on that clock, not UTC",
            first_timestamp=str(first),
        )


def _utc_of_time_usec(clock: _Clock, c: Columns) -> np.ndarray:
    """UTC of a ``time_usec`` field that holds the vehicle's UTC, its boot time, or 0."""
    t_us = c["time_usec"].astype(np.int64)
    unix = t_us >= _UNIX_MIN_US
    boot = (t_us > 0) & ~unix
    out = clock.gcs(c["gcs_us"].astype(np.int64) * 1000)
    if unix.any():
        out[unix] = clock.vehicle_utc(t_us[unix] * 1000)
    if boot.any():
        out[boot] = clock.boot(c["offset"][boot].astype(np.int64), t_us[boot] * 1000)
    return out


def _sorted(t: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(t, kind="stable")
    return (t[order], *(v[order] for v in values))


def _telemetry(cols: dict[int, Columns], clock: _Clock, tally: LogTally) -> xr.Dataset:
    """The telemetry Dataset; takes GLOBAL_POSITION_INT, GPS_RAW_INT and ATTITUDE out of
    ``cols`` and lets each go once used (memory is the kept columns, not twice them)."""
    gpi, gps, att = cols.pop(_GPI), cols.pop(_GPS), cols.pop(_ATT)
    gps_fix = _has_fix_gps(gps)
    gps_t, gps_fix_type, gps_sats = _sorted(
        _utc_of_time_usec(clock, gps), gps["fix_type"], gps["satellites_visible"]
    )
    gpi_fix = _has_fix_gpi(gpi)
    yaw_from_hdg = None
    att_boot = att["time_boot_ms"].astype(np.int64) * 10**6
    if gpi_fix.any():
        tally.skip("no_fix", int((~gpi_fix).sum()))
        p = _select(gpi, gpi_fix)
        boot = p["time_boot_ms"].astype(np.int64) * 10**6
        t = clock.boot(p["offset"], boot)
        # attitude is interpolated on the boot clock both messages share
        at, att_at = clock.boot_key(p["offset"], boot), clock.boot_key(att["offset"], att_boot)
        alt_rel = p["relative_alt"] / 1000.0
        speed = np.hypot(p["vx"].astype(np.float64), p["vy"].astype(np.float64)) / 100.0
        hdg = p["hdg"].astype(np.float64)
        yaw_from_hdg = np.where(hdg == 65535, np.nan, hdg / 100.0)
    else:
        tally.skip("no_fix", int((~gps_fix).sum()))
        p = _select(gps, gps_fix)
        t = _utc_of_time_usec(clock, p)
        alt_rel = np.full(t.size, np.nan)
        vel = p["vel"].astype(np.float64)
        speed = np.where(vel == 65535, np.nan, vel / 100.0)
        tally.warn(
            "raw_gps_only",
            "no GLOBAL_POSITION_INT in the log: positions are the raw GPS_RAW_INT fixes and "
            "alt_rel is unknown",
        )
        at, att_at = t, clock.boot(att["offset"], att_boot)
    lat, lon, alt_amsl = p["lat"] * 1e-7, p["lon"] * 1e-7, p["alt"] / 1000.0
    del gpi, gps, p, att_boot
    fix = hold_previous(t, gps_t, gps_fix_type.astype(np.int16), -1)
    sats = hold_previous(t, gps_t, gps_sats.astype(np.int16), -1)
    sats[sats == 255] = -1
    del gps_t, gps_fix_type, gps_sats
    roll, pitch, yaw = att["roll"], att["pitch"], att["yaw"]
    del att
    if att_at.size > 1 and (np.diff(att_at) < 0).any():
        att_at, roll, pitch, yaw = _sorted(att_at, roll, pitch, yaw)
    roll_d, pitch_d, yaw_d = interp_attitude(
        at, att_at, np.rad2deg(roll), np.rad2deg(pitch), np.rad2deg(yaw)
    )
    if att_at.size == 0 and yaw_from_hdg is not None:
        yaw_d = yaw_from_hdg
    del roll, pitch, yaw, att_at, at
    return make_telemetry(
        t,
        lat=lat,
        lon=lon,
        alt_amsl=alt_amsl,
        alt_rel=alt_rel,
        roll=roll_d,
        pitch=pitch_d,
        yaw=yaw_d,
        groundspeed=speed,
        fix_type=fix,
        satellites=sats,
        tally=tally,
    )


def _camera_events(
    cols: dict[int, Columns], vehicle: tuple[int, int], clock: _Clock, tally: LogTally
) -> xr.Dataset:
    """Camera events from the richest source present; the others are named in a warning."""
    sysid = vehicle[0]
    fb, trig = cols[_FEEDBACK], cols[_TRIGGER]
    commands = _digicam_commands(cols, sysid, tally)
    found = {
        "CAMERA_FEEDBACK": fb["time_usec"].size,
        "CAMERA_TRIGGER": trig["time_usec"].size,
        "DO_DIGICAM_CONTROL": commands[0].size,
    }
    _warn_planned_shots(cols, tally)
    chosen = next((name for name, k in found.items() if k), None)
    unused = {name: k for name, k in found.items() if k and name != chosen}
    if unused:
        tally.warn(
            "camera_sources",
            f"camera events from {chosen}; not used: "
            + ", ".join(f"{k} {name}" for name, k in unused.items()),
            used=chosen,
            unused=unused,
        )
    if chosen == "CAMERA_FEEDBACK":
        return make_camera_events(
            _utc_of_time_usec(clock, fb),
            source="CAMERA_FEEDBACK",
            lat=fb["lat"] * 1e-7,
            lon=fb["lng"] * 1e-7,
            alt_amsl=fb["alt_msl"],
            alt_rel=fb["alt_rel"],
            roll=fb["roll"],
            pitch=fb["pitch"],
            yaw=fb["yaw"],
            image_index=fb["img_idx"],
            tally=tally,
        )
    if chosen == "CAMERA_TRIGGER":
        return make_camera_events(
            _utc_of_time_usec(clock, trig),
            source="CAMERA_TRIGGER",
            image_index=trig["seq"],
            tally=tally,
        )
    t, index = commands
    return make_camera_events(
        clock.gcs(t), source="DO_DIGICAM_CONTROL", image_index=index, tally=tally
    )


def _digicam_commands(
    cols: dict[int, Columns], sysid: int, tally: LogTally
) -> tuple[np.ndarray, np.ndarray]:
    """(receive ns, shot id or -1) of DO_DIGICAM_CONTROL "shoot" commands sent to the vehicle.

    A command repeated by the ground station (``confirmation`` > 0) is counted as
    ``retransmitted_command`` and left out.
    """
    times, index = [], []
    for mid, shoot_field, id_field in ((_CMD_LONG, "param5", "param7"), (_CMD_INT, "x", "z")):
        c = cols[mid]
        sel = (
            (c["command"] == _DIGICAM)
            & np.isin(c["target_system"], (0, sysid))
            & (np.round(c[shoot_field].astype(np.float64)) == 1)
        )
        if "confirmation" in c:
            repeat = sel & (c["confirmation"] > 0)
            tally.skip("retransmitted_command", int(repeat.sum()))
            sel &= ~repeat
        shot_id = c[id_field][sel].astype(np.float64)
        times.append(c["gcs_us"][sel].astype(np.int64) * 1000)
        index.append(np.where(shot_id > 0, np.round(shot_id), -1).astype(np.int64))
    return np.concatenate(times), np.concatenate(index)


def _warn_planned_shots(cols: dict[int, Columns], tally: LogTally) -> None:
    planned = sum(
        int((cols[mid]["command"] == _DIGICAM).sum())
        for mid in (mavlink.MAVLINK_MSG_ID_MISSION_ITEM, mavlink.MAVLINK_MSG_ID_MISSION_ITEM_INT)
    )
    if planned:
        tally.warn(
            "planned_shots",
            f"the mission transferred in this log holds {planned} DO_DIGICAM_CONTROL item(s): "
            f"planned shots, not exposures; not used as camera events",
            mission_items=planned,
        )


def read_tlog(path: str | os.PathLike[str]) -> FlightLog:
    """Read a MAVLink telemetry log (``.tlog``) into telemetry, camera events and a report.

    Parameters
    ----------
    path : str or os.PathLike
        The tlog, opened read-only.

    Returns
    -------
    FlightLog

    Raises
    ------
    TelemetryError
        The log holds no position with a GPS fix.

    Examples
    --------
    >>> flight = read_tlog("flight.tlog")  # doctest: +SKIP
    >>> flight.telemetry["lat"].values[:3]  # doctest: +SKIP
    """
    path = Path(path)
    tally = LogTally(path, "tlog")
    cols = scan_tlog(path, tally)
    _drop_absurd_times(cols, tally)
    vehicle = _pick_vehicle(cols, tally)
    cols = _vehicle_only(cols, vehicle)
    clock = _time_model(cols, tally)
    telemetry = _telemetry(cols, clock, tally)
    events = _camera_events(cols, vehicle, clock, tally)
    return make_flight_log(tally, telemetry, events, clock.source)
