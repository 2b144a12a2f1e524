"""MAVLink telemetry logs (``.tlog``): stream the records, check them, decode the few we use.

A tlog is what a ground station (Mission Planner, QGroundControl, MAVProxy) records: every
MAVLink frame it received, each prefixed by its own 8-byte big-endian receive time in
microseconds since the Unix epoch. The file is read in chunks of :data:`CHUNK_BYTES`; every
record's checksum is verified (CRC-16/MCRF4XX with the message's ``crc_extra``, as
pymavlink does), and only the records of :data:`WANTED` are kept, as raw payloads decoded
chunk by chunk into numpy columns (:func:`iter_tlog_chunks`). :func:`read_tlog` hands each
chunk's columns to :class:`survey.ingest.tlog_flight.TlogStream`, which reduces them before
the next chunk is read: nothing is ever loaded whole, and memory holds a chunk, the telemetry
being made and the clock's reference pairs, whatever the size of the log.

Message definitions (ids, field layouts, ``crc_extra``) are pymavlink's
(``pymavlink.dialects.v20.ardupilotmega``), so MAVLink 1 and 2 frames, truncated MAVLink 2
payloads and signed frames are read as pymavlink reads them.

Damage is kept local: a frame with a bad checksum whose neighbours are intact is skipped
alone (``bad_crc``); bytes that do not frame are skipped up to the next intact record
(``corrupt``, once per stretch); a record cut by the end of the file is ``truncated``.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pymavlink.dialects.v20 import ardupilotmega as mavlink
from pymavlink.generator import mavcrc

from survey.ingest.telemetry import FlightLog, LogTally
from survey.ingest.tlog_flight import Columns, TlogStream

__all__ = ["CHUNK_BYTES", "WANTED", "iter_tlog_chunks", "looks_like_tlog", "read_tlog", "scan_tlog"]

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
_FIELDS = {mid: ("offset", "gcs_us", "sysid", "compid", *fields) for mid, fields in WANTED.items()}
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

    def flush(self) -> dict[int, Columns]:
        """Decode what the stores hold, empty them, and return the columns of each message."""
        out: dict[int, Columns] = {}
        for mid, store in self.stores.items():
            if not store:
                out[mid] = _empty(mid)
                continue
            records = np.frombuffer(store, dtype=_DTYPES[mid])
            # astype copies: nothing may keep a view of the store emptied below
            out[mid] = {
                name: records[name].astype(records.dtype[name].newbyteorder("="))
                for name in _FIELDS[mid]
            }
            del records
            del store[:]
        return out


def _empty(mid: int) -> Columns:
    return {name: np.zeros(0, dtype=_DTYPES[mid][name].newbyteorder("=")) for name in _FIELDS[mid]}


def iter_tlog_chunks(path: Path, tally: LogTally) -> Iterator[dict[int, Columns]]:
    """Stream a tlog: the kept columns of the records of each chunk of :data:`CHUNK_BYTES`.

    Counts good records and every skipped one into ``tally`` once the file is read.

    Parameters
    ----------
    path : pathlib.Path
    tally : LogTally

    Yields
    ------
    dict
        Message id → field name → numpy array (file order) for every message of
        :data:`WANTED` (empty where the chunk has none); each message also has ``offset``
        (file offset), ``gcs_us`` (receive time, µs), ``sysid`` and ``compid``.
    """
    cols = _Columns()
    st = _ScanState(stores=cols.stores)
    base = 0
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            data = carry + chunk
            n = len(data)
            if not chunk:
                if n:
                    _scan(data + bytes(_LOOKAHEAD), n, base, True, st)
                    yield cols.flush()
                break
            if n < _LOOKAHEAD * 2:
                carry = data
                continue
            p = _scan(data, n, base, False, st)
            carry = data[p:n]
            base += p
            del data
            yield cols.flush()
    tally.messages += st.good
    tally.skip("bad_crc", st.bad_crc)
    tally.skip("corrupt", st.corrupt)
    tally.skip("truncated", st.truncated)
    tally.skip("unknown_message", st.unknown)


def scan_tlog(path: Path, tally: LogTally) -> dict[int, dict[str, np.ndarray]]:
    """Stream a tlog and return the kept columns of every message of :data:`WANTED`, whole.

    :func:`read_tlog` does not use it (it reduces each chunk as it comes); this is for
    looking at a log's raw columns.

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
    parts: dict[int, list[Columns]] = {mid: [_empty(mid)] for mid in WANTED}
    for chunk in iter_tlog_chunks(path, tally):
        for mid, c in chunk.items():
            parts[mid].append(c)
    return {
        mid: {name: np.concatenate([c[name] for c in p]) for name in _FIELDS[mid]}
        for mid, p in parts.items()
    }


def read_tlog(path: str | os.PathLike[str]) -> FlightLog:
    """Read a MAVLink telemetry log (``.tlog``) into telemetry, camera events and a report.

    The file is streamed (see the module docstring): memory does not follow its size.

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
    stream = TlogStream(tally)
    for chunk in iter_tlog_chunks(path, tally):
        stream.feed(chunk)
    return stream.finish()
