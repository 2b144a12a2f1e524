"""A tlog's records become a flight as they stream past, chunk by chunk.

:func:`survey.ingest.mavlink.read_tlog` walks the file and hands :class:`TlogStream` the
decoded columns of each chunk; each chunk is reduced before the next is read, so memory holds
the telemetry being made and little else, whatever the length of the flight:

- positions (``GLOBAL_POSITION_INT`` with a fix) go straight into the telemetry's columns in
  their final dtypes (:data:`survey.ingest.telemetry.COMPACT_VARS`), into blocks of anonymous
  memory handed over to the Dataset without a copy; their times stay on the boot clock until
  the clock model is known, then are put on UTC in place;
- ``ATTITUDE`` samples wait in a short buffer until the positions around them are read, are
  interpolated at them on the boot clock both share, and are let go;
- of ``GPS_RAW_INT`` only the records where the fix type or the satellite count changes are
  kept (the telemetry holds the last one), and its positions only while no
  ``GLOBAL_POSITION_INT`` has a fix (a log with none takes its track from the GPS, and keeps
  every attitude sample to put them on UTC at the end);
- the clock keeps its reference pairs only (:mod:`survey.ingest.clock`);
- ``CAMERA_FEEDBACK`` goes into the camera events' columns as it comes, per system;
  ``CAMERA_TRIGGER`` and the ground-station commands (a few a flight) are kept whole.

What still grows with the flight besides the Datasets returned: one clock knot per
``SYSTEM_TIME`` (20 bytes, a second of flight at 1 Hz) and the receive time and file offset
of each ``CAMERA_FEEDBACK`` (16 bytes).

Each step gives what the whole-log computation gives (``tests/survey/ingest/test_tlog.py``
reads logs in chunks of 3 kB and whole, and compares): records whose receive time jumps more
than a minute from their neighbours' (``absurd_timestamp``) are found by a running median
streamed with :class:`survey.ingest.clock.RunningMedian`; reboots (the boot clock going
back) by each system's last stamp, before that filter (the stamps it drops are intact: the
checksum covers them); the vehicle is the system and component that sent the most positions
with a fix, and every system's state is kept until the end decides. A ground station
buffering a link logs records out of order: ``SYSTEM_TIME`` pairs up to a minute late are put
back in order, attitude samples are kept 10 s behind the positions waiting for them; records
later than that may give a slightly different attitude or ``GPS_RAW_INT`` fix type.

About 750 lines because the streamed reduction and the whole-log steps it replaces are one
subject: each step (telemetry columns, attitude, GPS changes, vehicle choice, camera events
from four message types) sits beside the argument that it gives the whole-log result.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import xarray as xr
from pymavlink.dialects.v20 import ardupilotmega as mavlink
from scipy.ndimage import median_filter

from survey.errors import TelemetryError
from survey.ingest.clock import (
    SEGMENT_SHIFT,
    UNIX_MIN_US,
    ClockInputs,
    RunningMedian,
    TlogClock,
    build_clock,
    distinct,
)
from survey.ingest.telemetry import (
    NS,
    FlightLog,
    LogTally,
    camera_events_from_columns,
    hold_previous,
    interp_attitude,
    make_flight_log,
    telemetry_from_columns,
)

__all__ = ["Columns", "TlogStream"]

Columns = dict[str, np.ndarray]
"""Field name → numpy array of one message's records."""

_GPI = mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT
_GPS = mavlink.MAVLINK_MSG_ID_GPS_RAW_INT
_ATT = mavlink.MAVLINK_MSG_ID_ATTITUDE
_SYSTIME = mavlink.MAVLINK_MSG_ID_SYSTEM_TIME
_FEEDBACK = mavlink.MAVLINK_MSG_ID_CAMERA_FEEDBACK
_TRIGGER = mavlink.MAVLINK_MSG_ID_CAMERA_TRIGGER
_CMD_LONG = mavlink.MAVLINK_MSG_ID_COMMAND_LONG
_CMD_INT = mavlink.MAVLINK_MSG_ID_COMMAND_INT
_MISSION_ITEM = mavlink.MAVLINK_MSG_ID_MISSION_ITEM
_MISSION_ITEM_INT = mavlink.MAVLINK_MSG_ID_MISSION_ITEM_INT
_DIGICAM = mavlink.MAV_CMD_DO_DIGICAM_CONTROL

_ABSURD_JUMP_US = 60 * 1_000_000  # a receive time this far off its neighbours' is absurd
_BOOT_MESSAGES = (_GPI, _ATT, _SYSTIME, _GPS)  # reduced as they come
_STREAMED = (*_BOOT_MESSAGES, _FEEDBACK)  # receive times checked as they come
_KEPT_WHOLE = (_TRIGGER, _CMD_LONG, _CMD_INT, _MISSION_ITEM, _MISSION_ITEM_INT)
_ABSURD_WINDOW = 31  # records of one message in the running median of receive times
_BLOCK_ROWS = 1 << 22  # rows of a telemetry column allocated at a time (233 h at 5 Hz)
_SHOT_BLOCK_ROWS = 1 << 18  # shots of a camera-event column allocated at a time
_ATT_SPAN_NS = 10 * NS  # attitude kept behind the positions waiting for it
_JOIN_PARTS = 32  # chunks' records of a message kept whole are joined by this many
_SLICE = 1 << 16  # rows converted at a time at the end (bounds the temporaries)


def _concat(parts: list[Columns]) -> Columns:
    """The parts' columns joined; the parts are emptied as each column is made, so no more
    than one column is held twice."""
    if len(parts) == 1:
        return dict(parts[0])
    return {name: np.concatenate([p.pop(name) for p in parts]) for name in list(parts[0])}


def _select(cols: Columns, mask: np.ndarray) -> Columns:
    if mask.all():
        return cols
    return {name: a[mask] for name, a in cols.items()}


def _absurd_size(n: int) -> int:
    """Window of the receive-time median for a message with only ``n`` < 31 records."""
    return 1 if n < 3 else (n if n % 2 else n - 1)


def _absurd(t: np.ndarray, med: np.ndarray) -> np.ndarray:
    """Receive times (µs, unsigned) more than a minute from their running median."""
    return np.maximum(t, med) - np.minimum(t, med) > _ABSURD_JUMP_US


def _drop_absurd_times(cols: dict[int, Columns], tally: LogTally) -> None:
    """Drop records whose receive time jumps more than a minute off their neighbours'.

    A running median over 31 records of the same message keeps any monotonic sequence (gaps
    included) and flags only records out of order with it. (The streamed messages get the
    same through :class:`~survey.ingest.clock.RunningMedian`.)
    """
    for mid, c in cols.items():
        t = c["gcs_us"]
        if t.size < 3 or (t[1:] >= t[:-1]).all():  # in order: nothing to flag
            continue
        size = min(_ABSURD_WINDOW, _absurd_size(t.size))
        bad = _absurd(t, median_filter(t, size=size, mode="nearest"))
        if bad.any():
            tally.skip("absurd_timestamp", int(bad.sum()))
            cols[mid] = _select(c, ~bad)


def _has_fix_gpi(c: Columns) -> np.ndarray:
    lat, lon = c["lat"], c["lon"]
    return ((lat != 0) | (lon != 0)) & (np.abs(lat) <= 900_000_000) & (np.abs(lon) <= 1_800_000_000)


def _has_fix_gps(c: Columns) -> np.ndarray:
    return (c["fix_type"] >= 2) & _has_fix_gpi(c)


def _boot_ns(mid: int, c: Columns) -> tuple[np.ndarray, np.ndarray | None]:
    """Boot-clock stamps (ns) of records of ``mid``, and which records carry one (None: all)."""
    if mid == _GPS:
        like = c["time_usec"] < UNIX_MIN_US
        return c["time_usec"][like].astype(np.int64) * 1000, like
    return c["time_boot_ms"].astype(np.int64) * 1_000_000, None


class _Column:
    """A growing column of the telemetry, in blocks of ``block_rows`` rows.

    Blocks are anonymous memory maps: the operating system commits their pages as they are
    written, 4 KiB at a time (numpy would ask for 2 MiB huge pages at this size, each
    committed whole), so a column costs what it holds. :meth:`take` hands a column that fits
    one block over without a copy, as a view of its block.
    """

    def __init__(self, dtype: Any, block_rows: int = _BLOCK_ROWS) -> None:
        self.dtype = np.dtype(dtype)
        self.block_rows = block_rows
        self.blocks: list[np.ndarray] = []
        self.size = 0

    def append(self, values: np.ndarray) -> None:
        rows = self.block_rows
        done = 0
        while done < values.size:
            at = self.size % rows
            if at == 0:
                memory = mmap.mmap(-1, rows * self.dtype.itemsize)
                self.blocks.append(np.frombuffer(memory, dtype=self.dtype))
            k = min(values.size - done, rows - at)
            self.blocks[-1][at : at + k] = values[done : done + k]
            done += k
            self.size += k

    def get(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (a view, or a copy when they span blocks)."""
        rows = self.block_rows
        if stop <= start:
            return np.zeros(0, dtype=self.dtype)
        first, last = start // rows, (stop - 1) // rows
        parts = [
            self.blocks[b][max(start - b * rows, 0) : min(stop - b * rows, rows)]
            for b in range(first, last + 1)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def put(self, start: int, values: np.ndarray) -> None:
        """Overwrite rows from ``start`` on with ``values``."""
        rows = self.block_rows
        done = 0
        while done < values.size:
            b, at = divmod(start + done, rows)
            k = min(values.size - done, rows - at)
            self.blocks[b][at : at + k] = values[done : done + k]
            done += k

    def take(self) -> np.ndarray:
        """The whole column as one array (this column is emptied)."""
        blocks, self.blocks = self.blocks, []
        n, self.size = self.size, 0
        if not blocks:
            return np.zeros(0, dtype=self.dtype)
        if len(blocks) == 1:
            return blocks[0][:n]  # the unused tail was never committed
        rows = self.block_rows
        out = np.empty(n, dtype=self.dtype)
        for b in range(len(blocks)):
            block = blocks[b]
            blocks[b] = np.zeros(0, dtype=self.dtype)  # let each block go once copied
            out[b * rows : min(n, (b + 1) * rows)] = block[: n - b * rows]
            del block
        return out


_ROW_DTYPES: dict[str, Any] = {
    "key": np.int64,  # boot key while reading (boot ns + boot index << 52), UTC ns at the end
    "lat": np.float64,
    "lon": np.float64,
    "alt_amsl": np.float32,
    "alt_rel": np.float32,
    "groundspeed": np.float32,
    "roll": np.float32,
    "pitch": np.float32,
    "yaw": np.float32,
}
_GPS_ROW_FIELDS = ("time_usec", "gcs_us", "seg", "lat", "lon", "alt", "vel", "fix_type",
                   "satellites_visible")  # fmt: skip
_GPS_CHANGE_FIELDS = ("time_usec", "gcs_us", "seg", "fix_type", "satellites_visible")


class _Vehicle:
    """What the records of one system and component leave while the log streams past.

    - positions (``GLOBAL_POSITION_INT`` with a fix) go straight into the telemetry's
      columns, with yaw from ``hdg`` until the attitude is known;
    - ``ATTITUDE`` samples wait in a short buffer until the positions around them are read,
      are interpolated at them (on the boot clock both share) and let go;
    - of ``GPS_RAW_INT`` only the records where the fix type or the satellite count changes
      are kept (the telemetry holds the last one), and its positions only while no
      ``GLOBAL_POSITION_INT`` has a fix (a log without them takes its track from the GPS, and
      then keeps every attitude sample too, to put them on UTC at the end);
    - the clock's reference pairs (:class:`survey.ingest.clock.ClockInputs`).
    """

    def __init__(self) -> None:
        self.clock = ClockInputs()
        self.has_boot_clock = False
        self.gpi_fixes = self.gpi_no_fix = self.gps_fixes = self.gps_no_fix = 0
        self.rows = {name: _Column(dtype) for name, dtype in _ROW_DTYPES.items()}
        self.n = 0
        self.settled = 0  # rows whose attitude is final
        self.att_key = np.zeros(0, dtype=np.int64)
        self.att = np.zeros((3, 0), dtype=np.float32)  # roll, pitch, yaw (degrees)
        self.has_attitude = False
        self.gps_changes: list[Columns] = []
        self._last_gps: tuple[int, int, int, int] | None = None  # value, kind, boot, stamp
        self.gps_rows: list[Columns] = []

    @property
    def n_boots(self) -> int:
        return 1 + len(self.clock.reboots.offsets) if self.has_boot_clock else 0

    def add(self, mid: int, c: Columns) -> None:
        """Decided records of message ``mid`` (with their boot index ``seg``)."""
        self.clock.receive_times(c["gcs_us"])
        if mid == _GPI:
            self._positions(c)
        elif mid == _ATT:
            self._attitude(c)
        elif mid == _GPS:
            self._gps(c)
        else:
            self._system_time(c)

    def _positions(self, c: Columns) -> None:
        boot = c["time_boot_ms"].astype(np.int64) * 1_000_000
        self.clock.boot_stream("gpi", c["seg"], boot, c["gcs_us"])
        fix = _has_fix_gpi(c)
        n_fix = int(fix.sum())
        self.gpi_no_fix += fix.size - n_fix
        if not n_fix:
            return
        if not self.gpi_fixes:
            self.gps_rows = []  # the track comes from GLOBAL_POSITION_INT
        self.gpi_fixes += n_fix
        p = _select(c, fix)
        hdg = p["hdg"].astype(np.float64)
        nan = np.full(n_fix, np.nan, dtype=np.float32)
        values = {
            "key": boot[fix] + (p["seg"] << SEGMENT_SHIFT),
            "lat": p["lat"] * 1e-7,
            "lon": p["lon"] * 1e-7,
            "alt_amsl": p["alt"] / 1000.0,
            "alt_rel": p["relative_alt"] / 1000.0,
            "groundspeed": np.hypot(p["vx"].astype(np.float64), p["vy"].astype(np.float64)) / 100.0,
            "roll": nan,
            "pitch": nan,
            "yaw": np.where(hdg == 65535, np.nan, hdg / 100.0),  # until the attitude is known
        }
        for name, v in values.items():
            self.rows[name].append(v)
        self.n += n_fix

    def _attitude(self, c: Columns) -> None:
        boot = c["time_boot_ms"].astype(np.int64) * 1_000_000
        self.clock.boot_stream("att", c["seg"], boot, c["gcs_us"])
        key = boot + (c["seg"] << SEGMENT_SHIFT)
        deg = np.rad2deg(np.stack([c["roll"], c["pitch"], c["yaw"]]))
        in_order = bool((key[1:] >= key[:-1]).all()) and (
            not self.att_key.size or key[0] >= self.att_key[-1]
        )
        self.att_key = np.concatenate([self.att_key, key])
        self.att = np.concatenate([self.att, deg], axis=1)
        if not in_order:
            order = np.argsort(self.att_key, kind="stable")
            self.att_key, self.att = self.att_key[order], self.att[:, order]
        self.has_attitude = True

    def _system_time(self, c: Columns) -> None:
        boot = c["time_boot_ms"].astype(np.int64) * 1_000_000
        self.clock.boot_stream("systime", c["seg"], boot, c["gcs_us"])
        ok = c["time_unix_usec"] >= UNIX_MIN_US
        if ok.any():
            self.clock.system_time_pairs(
                c["seg"][ok], boot[ok], c["time_unix_usec"][ok], c["gcs_us"][ok]
            )

    def _gps(self, c: Columns) -> None:
        boot, like = _boot_ns(_GPS, c)
        assert like is not None
        if like.any():
            self.clock.boot_stream("gps", c["seg"][like], boot, c["gcs_us"][like])
        if not like.all():
            unix = ~like
            self.clock.vehicle_utc_stamps(
                "gps", c["time_usec"][unix].astype(np.int64) * 1000, c["gcs_us"][unix]
            )
        self._gps_changes(c)
        fix = _has_fix_gps(c)
        n_fix = int(fix.sum())
        self.gps_fixes += n_fix
        self.gps_no_fix += fix.size - n_fix
        if n_fix and not self.gpi_fixes:
            p = _select(c, fix)
            self.gps_rows.append({k: p[k] for k in _GPS_ROW_FIELDS})

    def _gps_changes(self, c: Columns) -> None:
        """Keep the GPS records whose fix type or satellite count differs from the record
        before (or whose time is not after its time): holding the last value at each
        position then gives what holding every record's would."""
        t = c["time_usec"]
        kind = np.where(t >= UNIX_MIN_US, 2, np.where(t > 0, 1, 0))
        stamp = np.where(kind == 0, c["gcs_us"], t).astype(np.int64)
        value = c["fix_type"].astype(np.int64) * 256 + c["satellites_visible"]
        seg = c["seg"]
        now = np.stack([value, kind, seg, stamp])
        before = np.empty_like(now)
        before[:, 1:] = now[:, :-1]
        if self._last_gps is None:
            before[:, 0] = -1  # the first record is kept
        else:
            before[:, 0] = self._last_gps
        same = (now[:3] == before[:3]).all(axis=0) & (stamp >= before[3])
        self._last_gps = (int(value[-1]), int(kind[-1]), int(seg[-1]), int(stamp[-1]))
        keep = ~same
        if keep.any():
            self.gps_changes.append({k: c[k][keep] for k in _GPS_CHANGE_FIELDS})

    def settle(self, final: bool = False) -> None:
        """Interpolate the attitude of the positions it is now known around (all at the end),
        and let go of the samples no later position needs."""
        if self.settled < self.n and self.att_key.size:
            end = self.n if final else self._coverable()
            key = self.rows["key"]
            for a in range(self.settled, end, _SLICE):
                b = min(end, a + _SLICE)
                roll, pitch, yaw = interp_attitude(key.get(a, b), self.att_key, *self.att)
                self.rows["roll"].put(a, roll)
                self.rows["pitch"].put(a, pitch)
                self.rows["yaw"].put(a, yaw)
            self.settled = max(self.settled, end)
        elif final:
            self.settled = self.n  # no attitude at all: yaw stays the heading
        self._trim()

    def _coverable(self) -> int:
        """End of the run of waiting positions that have an attitude sample at or after them."""
        last = self.att_key[-1]
        end = self.settled
        while end < self.n:
            stop = min(self.n, end + (1 << 16))
            over = np.flatnonzero(self.rows["key"].get(end, stop) > last)
            if over.size:
                return end + int(over[0])
            end = stop
        return end

    def _trim(self) -> None:
        if self.att_key.size < 2 or (self.gps_rows and not self.gpi_fixes):
            return  # a track from GPS_RAW_INT alone needs every sample at the end
        if self.n:
            row = self.settled if self.settled < self.n else self.n - 1
            cut = int(self.rows["key"].get(row, row + 1)[0])
        else:
            cut = int(self.att_key[-1])
        first = int(np.searchsorted(self.att_key, cut - _ATT_SPAN_NS, side="right")) - 1
        first = min(max(first, 0), self.att_key.size - 1)
        if first > 0:
            self.att_key = self.att_key[first:].copy()
            self.att = self.att[:, first:].copy()

    def telemetry(self, clock: TlogClock, tally: LogTally) -> xr.Dataset:
        """The telemetry Dataset (the columns are handed over, not copied)."""
        if not self.gpi_fixes:
            return self._telemetry_from_gps(clock, tally)
        tally.skip("no_fix", self.gpi_no_fix)
        t = self.rows["key"].take()
        for a in range(0, t.size, _SLICE):  # boot keys become UTC in place
            t[a : a + _SLICE] = clock.boot_keys(t[a : a + _SLICE])
        fix, sats = self._fix_and_satellites(clock, t)
        columns = {name: col.take() for name, col in self.rows.items() if name != "key"}
        columns.update(fix_type=fix, satellites=sats)
        return telemetry_from_columns(t, columns, tally=tally, compact=True)

    def _telemetry_from_gps(self, clock: TlogClock, tally: LogTally) -> xr.Dataset:
        tally.skip("no_fix", self.gps_no_fix)
        p = _concat(self.gps_rows)
        self.gps_rows = []
        t = _utc_of_time_usec(clock, p)
        vel = p["vel"].astype(np.float64)
        tally.warn(
            "raw_gps_only",
            "no GLOBAL_POSITION_INT in the log: positions are the raw GPS_RAW_INT fixes and "
            "alt_rel is unknown",
        )
        att_t = clock.boot_keys(self.att_key)
        att = self.att
        if att_t.size > 1 and (np.diff(att_t) < 0).any():
            order = np.argsort(att_t, kind="stable")
            att_t, att = att_t[order], att[:, order]
        roll, pitch, yaw = interp_attitude(t, att_t, *att)
        fix, sats = self._fix_and_satellites(clock, t)
        columns = {
            "lat": p["lat"] * 1e-7,
            "lon": p["lon"] * 1e-7,
            "alt_amsl": p["alt"] / 1000.0,
            "roll": roll,
            "pitch": pitch,
            "yaw": yaw,
            "groundspeed": np.where(vel == 65535, np.nan, vel / 100.0),
            "fix_type": fix,
            "satellites": sats,
        }
        return telemetry_from_columns(t, columns, tally=tally, compact=True)

    def _fix_and_satellites(self, clock: TlogClock, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Fix type and satellites of the last GPS record at or before each time ``t``."""
        changes = _concat(self.gps_changes) if self.gps_changes else None
        fix = np.full(t.size, -1, dtype=np.int8)
        sats = np.full(t.size, -1, dtype=np.int16)
        if changes is None:
            return fix, sats
        gps_t, gps_fix, gps_sats = _sorted(
            _utc_of_time_usec(clock, changes),
            changes["fix_type"].astype(np.int16),
            changes["satellites_visible"].astype(np.int16),
        )
        for a in range(0, t.size, _SLICE):
            part = t[a : a + _SLICE]
            fix[a : a + _SLICE] = hold_previous(part, gps_t, gps_fix, -1)
            sats[a : a + _SLICE] = hold_previous(part, gps_t, gps_sats, -1)
        sats[sats == 255] = -1
        return fix, sats


_SHOT_DTYPES: dict[str, Any] = {
    "time": np.int64,  # the message's time_usec while reading, UTC ns at the end
    "gcs_us": np.uint64,
    "offset": np.uint64,
    "lat": np.float64,
    "lon": np.float64,
    "alt_amsl": np.float64,
    "alt_rel": np.float64,
    "roll": np.float64,
    "pitch": np.float64,
    "yaw": np.float64,
    "image_index": np.int64,
}


class _Shots:
    """One system's ``CAMERA_FEEDBACK``, in the camera events' columns as it comes (the
    receive time and file offset too, to put ``time_usec`` on UTC at the end)."""

    def __init__(self) -> None:
        self.columns = {k: _Column(v, _SHOT_BLOCK_ROWS) for k, v in _SHOT_DTYPES.items()}
        self.n = 0

    def add(self, c: Columns) -> None:
        values = {
            "time": c["time_usec"],
            "gcs_us": c["gcs_us"],
            "offset": c["offset"],
            "lat": c["lat"] * 1e-7,
            "lon": c["lng"] * 1e-7,
            "alt_amsl": c["alt_msl"],
            "alt_rel": c["alt_rel"],
            "roll": c["roll"],
            "pitch": c["pitch"],
            "yaw": c["yaw"],
            "image_index": c["img_idx"],
        }
        for name, v in values.items():
            self.columns[name].append(v)
        self.n += c["gcs_us"].size

    def stamps(self) -> tuple[np.ndarray, np.ndarray]:
        """(time_usec, receive µs) of every shot (views)."""
        return self.columns["time"].get(0, self.n), self.columns["gcs_us"].get(0, self.n)

    def events(self, clock: TlogClock, tally: LogTally) -> xr.Dataset:
        """The camera events (the columns are handed over; times put on UTC in place)."""
        columns = {name: col.take() for name, col in self.columns.items()}
        t, gcs, offset = columns.pop("time"), columns.pop("gcs_us"), columns.pop("offset")
        for a in range(0, t.size, _SLICE):
            b = a + _SLICE
            part = {"time_usec": t[a:b], "gcs_us": gcs[a:b], "offset": offset[a:b]}
            t[a:b] = _utc_of_time_usec(clock, part)
        del gcs, offset
        return camera_events_from_columns(t, columns, source="CAMERA_FEEDBACK", tally=tally)


class TlogStream:
    """Reduces the records of a tlog chunk by chunk; :meth:`finish` makes the flight.

    Parameters
    ----------
    tally : LogTally
        Receives the records skipped and the warnings.

    Examples
    --------
    >>> stream = TlogStream(tally)  # doctest: +SKIP
    >>> for chunk in iter_tlog_chunks(path, tally):  # doctest: +SKIP
    ...     stream.feed(chunk)
    >>> flight = stream.finish()  # doctest: +SKIP
    """

    def __init__(self, tally: LogTally) -> None:
        self.tally = tally
        self.vehicles: dict[int, _Vehicle] = {}  # sysid * 256 + compid
        self.filters = {mid: RunningMedian(_ABSURD_WINDOW, _absurd_size) for mid in _STREAMED}
        self.shots: dict[int, _Shots] = {}  # per system
        self.kept: dict[int, list[Columns]] = {mid: [] for mid in _KEPT_WHOLE}
        self.fresh = dict.fromkeys(_KEPT_WHOLE, 0)  # parts added since the last join
        self.records = dict.fromkeys(_BOOT_MESSAGES, 0)  # kept records, every system

    def feed(self, chunk: dict[int, Columns]) -> None:
        """Take the decoded records of one chunk of the file."""
        self._boots(chunk)
        for mid in _STREAMED:
            c = chunk.get(mid)
            if c is not None:
                self._dispatch(mid, *self.filters[mid].feed(c["gcs_us"], c))
        for mid in _KEPT_WHOLE:
            parts = self.kept[mid]
            if mid in chunk and (chunk[mid]["gcs_us"].size or not parts):  # the 1st: a template
                parts.append(chunk[mid])
                self.fresh[mid] += 1
                if self.fresh[mid] == _JOIN_PARTS:  # fewer, larger arrays
                    parts[-_JOIN_PARTS:] = [_concat(parts[-_JOIN_PARTS:])]
                    self.fresh[mid] = 0
        for vehicle in self.vehicles.values():
            vehicle.settle()

    def _boots(self, chunk: dict[int, Columns]) -> None:
        """Find reboots in each system's boot-clock stamps (file order) and give every record
        of the streamed messages its boot index ``seg``."""
        stamped: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for mid in _BOOT_MESSAGES:
            c = chunk.get(mid)
            if c is None:
                continue
            keys = c["sysid"].astype(np.int64) * 256 + c["compid"]
            boot, like = _boot_ns(mid, c)
            if like is None:
                stamped[mid] = (keys, c["offset"], boot)
            else:
                stamped[mid] = (keys[like], c["offset"][like], boot)
        if not stamped:
            return
        for key in distinct(np.concatenate([s[0] for s in stamped.values()])):
            parts = [(o[k == key], b[k == key]) for k, o, b in stamped.values()]
            vehicle = self.vehicles.setdefault(key, _Vehicle())
            vehicle.has_boot_clock = True
            vehicle.clock.reboots.feed(
                np.concatenate([o for o, _ in parts]), np.concatenate([b for _, b in parts])
            )
        for mid in _BOOT_MESSAGES:
            c = chunk.get(mid)
            if c is None:
                continue
            keys = c["sysid"].astype(np.int64) * 256 + c["compid"]
            seg = np.zeros(keys.size, dtype=np.int64)
            for key in distinct(keys):
                reboots = self.vehicles[key].clock.reboots if key in self.vehicles else None
                if reboots is not None and reboots.offsets:
                    sel = keys == key
                    seg[sel] = reboots.segment(c["offset"][sel])
            c["seg"] = seg

    def _dispatch(self, mid: int, gcs: np.ndarray, med: np.ndarray, rows: Columns) -> None:
        """Give the records whose receive time is decided to their system."""
        if not gcs.size:
            return
        bad = _absurd(gcs, med)
        if bad.any():
            self.tally.skip("absurd_timestamp", int(bad.sum()))
            rows = _select(rows, ~bad)
        if mid == _FEEDBACK:  # camera messages go with the system (any component)
            systems = rows["sysid"]
            for sysid in distinct(systems):
                part = _select(rows, systems == sysid)
                self.shots.setdefault(sysid, _Shots()).add(part)
            return
        self.records[mid] += rows["gcs_us"].size
        keys = rows["sysid"].astype(np.int64) * 256 + rows["compid"]
        uniq = distinct(keys)
        for key in uniq:
            part = rows if len(uniq) == 1 else _select(rows, keys == key)
            self.vehicles.setdefault(int(key), _Vehicle()).add(mid, part)

    def finish(self) -> FlightLog:
        """The flight log, once every chunk has been fed."""
        tally = self.tally
        for mid in _STREAMED:
            self._dispatch(mid, *self.filters[mid].finish())
        kept = {mid: _concat(p) for mid, p in self.kept.items() if p}  # none: an empty file
        self.kept = {}
        _drop_absurd_times(kept, tally)
        sysid, compid = self._pick_vehicle()
        vehicle = self.vehicles[sysid * 256 + compid]
        vehicle.settle(final=True)
        trig = kept[_TRIGGER] = _select(kept[_TRIGGER], kept[_TRIGGER]["sysid"] == sysid)
        shots = self.shots.get(sysid, _Shots())
        self.shots = {}
        fb_time, fb_gcs = shots.stamps()
        clock = build_clock(
            vehicle.clock,
            vehicle.n_boots,
            [(fb_time, fb_gcs), (trig["time_usec"], trig["gcs_us"])],
            [fb_gcs, *(c["gcs_us"] for c in kept.values())],
            tally,
        )
        del fb_time, fb_gcs, trig
        telemetry = vehicle.telemetry(clock, tally)
        self.vehicles = {}
        events = _camera_events(kept, shots, (sysid, compid), clock, tally)
        return make_flight_log(tally, telemetry, events, clock.source)

    def _pick_vehicle(self) -> tuple[int, int]:
        """(system, component) that sent the most positions with a fix; error if none did."""
        counts = {
            key: v.gpi_fixes + v.gps_fixes
            for key, v in sorted(self.vehicles.items())
            if v.gpi_fixes + v.gps_fixes
        }
        if not counts:
            tally = self.tally
            damage = f", {sum(tally.skipped.values())} records skipped" if tally.skipped else ""
            raise TelemetryError(
                f"{tally.path}: no GPS position fix in the log ({self.records[_GPI]} "
                f"GLOBAL_POSITION_INT, {self.records[_GPS]} GPS_RAW_INT, none with a fix"
                f"{damage}); use the log of a flight flown with GPS, or photos with their own GPS"
            )
        best = max(counts, key=counts.__getitem__)  # ties: the lowest system and component
        sysid, compid = best // 256, best % 256
        others = sorted({k // 256 for k in counts} - {sysid})
        if others:
            self.tally.warn(
                "several_vehicles",
                f"positions from systems {[sysid, *others]}; read system {sysid} "
                f"(most positions), ignored the others",
                system=sysid,
                ignored_systems=others,
            )
        return sysid, compid


def _utc_of_time_usec(clock: TlogClock, c: Columns) -> np.ndarray:
    """UTC of a ``time_usec`` field that holds the vehicle's UTC, its boot time, or 0."""
    t_us = c["time_usec"].astype(np.int64)
    unix = t_us >= UNIX_MIN_US
    boot = (t_us > 0) & ~unix
    out = clock.gcs(c["gcs_us"].astype(np.int64) * 1000)
    if unix.any():
        out[unix] = clock.vehicle_utc(t_us[unix] * 1000)
    if boot.any():
        if "seg" in c:
            out[boot] = clock.boot_keys(t_us[boot] * 1000 + (c["seg"][boot] << SEGMENT_SHIFT))
        else:
            out[boot] = clock.boot(c["offset"][boot].astype(np.int64), t_us[boot] * 1000)
    return out


def _sorted(t: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(t, kind="stable")
    return (t[order], *(v[order] for v in values))


def _camera_events(
    cols: dict[int, Columns],
    shots: _Shots,
    vehicle: tuple[int, int],
    clock: TlogClock,
    tally: LogTally,
) -> xr.Dataset:
    """Camera events from the richest source present; the others are named in a warning."""
    sysid = vehicle[0]
    trig = cols[_TRIGGER]
    commands = _digicam_commands(cols, sysid, tally)
    found = {
        "CAMERA_FEEDBACK": shots.n,
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
        return shots.events(clock, tally)
    if chosen == "CAMERA_TRIGGER":
        return camera_events_from_columns(
            _utc_of_time_usec(clock, trig),
            {"image_index": trig["seq"]},
            source="CAMERA_TRIGGER",
            tally=tally,
        )
    t, index = commands
    return camera_events_from_columns(
        clock.gcs(t), {"image_index": index}, source="DO_DIGICAM_CONTROL", tally=tally
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
        int((cols[mid]["command"] == _DIGICAM).sum()) for mid in (_MISSION_ITEM, _MISSION_ITEM_INT)
    )
    if planned:
        tally.warn(
            "planned_shots",
            f"the mission transferred in this log holds {planned} DO_DIGICAM_CONTROL item(s): "
            f"planned shots, not exposures; not used as camera events",
            mission_items=planned,
        )
