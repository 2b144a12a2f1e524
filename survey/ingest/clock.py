"""The clocks of a MAVLink telemetry log, modelled while the log streams past.

A tlog carries three clocks: the vehicle's boot clock (``time_boot_ms``), the vehicle's UTC
(``SYSTEM_TIME.time_unix_usec``, the ``time_usec`` of GPS and camera messages) and the ground
station's receive time in front of every record. :mod:`survey.ingest.mavlink` feeds this module
the stamps chunk by chunk; what is kept is the model's reference pairs only (one knot per
``SYSTEM_TIME`` message, one per minute of the receive-time envelope), never a column per
record, so memory follows the number of those pairs, not the log.

How the stamps become UTC (:func:`build_clock`): the boot clock is cut into boots where it goes
back by more than :data:`REBOOT_DROP_NS` (a reboot, :class:`RebootCounter`). A boot during which
the vehicle sent ``SYSTEM_TIME`` with a UTC time is put on UTC through those pairs
(:class:`SystemTimeKnots`: the offset UTC − boot, cleaned by a running median over 9 pairs,
linear between them); another is aligned to the receive times (:class:`EnvelopeRefs`: in each
minute, the least-delayed records) and shifted by the median difference between the vehicle's
UTC and the receive times (0 if the vehicle never sent its UTC). Receive times of records
without a vehicle stamp (ground-station commands) get the same shift; the vehicle's own UTC
stamps are used as they are when ``SYSTEM_TIME`` exists, else aligned to the receive times.

:class:`RunningMedian` is :func:`scipy.ndimage.median_filter` (mode ``"nearest"``) over a
stream fed in pieces, with the same result as over the whole stream; the reader uses it to find
records whose receive time jumps away from their neighbours', and the knots use it to drop
absurd ``SYSTEM_TIME`` pairs.

A little over 500 lines: the streamed pieces of the model (running median, reboots, knots,
envelope, shift) each carry the argument that they give what the whole-log model gives.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import median_filter

from survey.ingest.telemetry import NS, BootClockMap, LogTally, boot_clock_map

__all__ = [
    "REBOOT_DROP_NS",
    "SEGMENT_SHIFT",
    "UNIX_MIN_US",
    "ClockInputs",
    "EnvelopeRefs",
    "RebootCounter",
    "RunningMedian",
    "ShiftMedian",
    "SystemTimeKnots",
    "TlogClock",
    "build_clock",
    "distinct",
]

UNIX_MIN_US = 946_684_800 * 1_000_000
"""2000-01-01 in µs: smaller "UTC" stamps are boot times (or 0, unknown)."""
REBOOT_DROP_NS = 5 * NS
"""The boot clock going back by more than this is a reboot."""
SEGMENT_SHIFT = 52
"""Boot k of a log is keyed ``boot_ns + k << SEGMENT_SHIFT`` (a ms boot clock ends before 2**52
ns), so stamps of several boots sort, and interpolate, on one axis."""
_BOOT_MASK = (1 << SEGMENT_SHIFT) - 1
_REORDER_NS = 60 * NS  # records logged up to this much out of order are put back in order
_INT32 = np.iinfo(np.int32)


class RunningMedian:
    """``median_filter(values, size, mode="nearest")`` of a stream given in pieces.

    :meth:`feed` returns the records whose window is complete (the last ``size // 2`` wait for
    the next piece), with their medians; :meth:`finish` returns the rest. The medians are those
    of the whole stream at once. A stream shorter than ``size`` is held back and filtered at the
    end with ``short_size(n)`` (1: no filtering), as the whole-stream code does.

    Parameters
    ----------
    size : int
        Odd window length (records).
    short_size : callable
        Window length for a stream of ``n < size`` records.
    """

    def __init__(self, size: int, short_size: Callable[[int], int]) -> None:
        self.size = size
        self.half = size // 2
        self.short_size = short_size
        self.seen = 0
        self.decided = 0
        self._left = np.zeros(0)  # the last ``half`` decided values: the windows' left part
        self._values: list[np.ndarray] = []
        self._rows: list[dict[str, np.ndarray]] = []

    def feed(
        self, values: np.ndarray, rows: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Add records; return (values, medians, rows) of those now decided.

        Parameters
        ----------
        values : numpy.ndarray, shape (k,)
            The filtered quantity of each new record.
        rows : dict of str to numpy.ndarray, each shape (k,)
            Columns carried along (returned for the decided records).
        """
        if values.size:
            self._values.append(values)
            self._rows.append(rows)
            self.seen += values.size
        if self.seen < self.size:
            return self._nothing()
        return self._decide(final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Decide every record still held (the stream has ended)."""
        if not self._values:
            return self._nothing()
        if self.decided == 0 and self.seen < self.size:
            values, rows = self._take(self.seen)
            size = self.short_size(values.size)
            med = median_filter(values, size=size, mode="nearest") if size > 1 else values
            self.decided += values.size
            return values, med, rows
        return self._decide(final=True)

    @staticmethod
    def _nothing() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return np.zeros(0), np.zeros(0), {}

    def _take(self, count: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The first ``count`` held records, let go of."""
        values = np.concatenate(self._values) if len(self._values) > 1 else self._values[0]
        rows = _concat_rows(self._rows)
        self._values = [values[count:]] if count < values.size else []
        self._rows = [{k: v[count:] for k, v in rows.items()}] if count < values.size else []
        return values[:count], {k: v[:count] for k, v in rows.items()}

    def _decide(self, final: bool) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        held = sum(v.size for v in self._values)
        count = held if final else held - self.half
        if count <= 0:
            return self._nothing()
        pending = np.concatenate(self._values) if len(self._values) > 1 else self._values[0]
        buf = np.concatenate([self._left.astype(pending.dtype), pending])
        lead = self._left.size
        if (buf[1:] >= buf[:-1]).all():  # in order: every median is the value itself
            med = buf
        else:
            med = median_filter(buf, size=self.size, mode="nearest")
        values, rows = self._take(count)
        self._left = buf[max(0, lead + count - self.half) : lead + count].copy()
        self.decided += count
        return values, med[lead : lead + count], rows


def distinct(values: np.ndarray) -> list[int]:
    """The distinct integers of ``values``, sorted (quickly when there is one, the usual case:
    one vehicle, one boot)."""
    if not values.size:
        return []
    if (values == values[0]).all():
        return [int(values[0])]
    return [int(v) for v in np.unique(values).tolist()]


def _concat_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class RebootCounter:
    """Finds reboots in one vehicle's boot-clock stamps, given in file order piece by piece."""

    def __init__(self) -> None:
        self.offsets: list[int] = []  # file offset of the first record of each boot after the 1st
        self.last_boot_ns: int | None = None

    def feed(self, offset: np.ndarray, boot_ns: np.ndarray) -> None:
        """Stamps (ns) of records at file offsets ``offset`` (any order; sorted here)."""
        if not offset.size:
            return
        order = np.argsort(offset, kind="stable")
        boot = boot_ns[order]
        if self.last_boot_ns is not None:
            boot = np.concatenate([[self.last_boot_ns], boot])
            at = offset[order]
            drops = np.flatnonzero(np.diff(boot) < -REBOOT_DROP_NS)
        else:
            at = offset[order][1:]
            drops = np.flatnonzero(np.diff(boot) < -REBOOT_DROP_NS)
        self.offsets.extend(int(o) for o in at[drops])
        self.last_boot_ns = int(boot[-1])

    def segment(self, offset: np.ndarray) -> np.ndarray:
        """Boot index (0 before the first reboot) of records at file offsets ``offset``."""
        if not self.offsets:
            return np.zeros(offset.shape, dtype=np.int64)
        return np.searchsorted(np.array(self.offsets, dtype=np.int64), offset, side="right")


@dataclass
class SystemTimeKnots:
    """One boot's ``SYSTEM_TIME`` pairs, reduced as they come to the knots of its clock map.

    Equivalent to :func:`survey.ingest.telemetry.boot_clock_map` over all the pairs of the
    boot: pairs in boot-time order (a ground station can log records out of order: pairs are
    held :data:`_REORDER_NS` of boot time to be sorted), the offset UTC − boot of each, a
    running median over 9 pairs, pairs more than 1 s from it dropped (counted in
    ``dropped``). Knots are two float64 per pair kept (16 bytes a second at 1 Hz).
    """

    origin_ns: int | None = None
    base_ns: int = 0
    dropped: int = 0
    _median: RunningMedian = field(default_factory=lambda: RunningMedian(9, lambda n: min(9, n)))
    _held: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0, np.int64), np.zeros(0, np.int64))
    )
    _x: list[np.ndarray] = field(default_factory=list)
    _y: list[np.ndarray] = field(default_factory=list)

    def add(self, boot_ns: np.ndarray, utc_ns: np.ndarray) -> None:
        """Pairs of boot-clock and UTC stamps (int64 ns), in file order."""
        if boot_ns.size:
            self._release(boot_ns, utc_ns, final=False)

    def _release(self, boot_ns: np.ndarray, utc_ns: np.ndarray, final: bool) -> None:
        boot = np.concatenate([self._held[0], boot_ns])
        utc = np.concatenate([self._held[1], utc_ns])
        if not boot.size:
            return
        if not (boot[1:] >= boot[:-1]).all():
            order = np.argsort(boot, kind="stable")
            boot, utc = boot[order], utc[order]
        n = boot.size if final else int(np.searchsorted(boot, boot[-1] - _REORDER_NS))
        self._held = (boot[n:], utc[n:])
        if n == 0:
            return
        boot, utc = boot[:n], utc[:n]
        if self.origin_ns is None:
            self.origin_ns = int(boot[0])
            self.base_ns = int(utc[0] - boot[0])
        rel = (utc - boot - self.base_ns).astype(np.float64)
        self._keep(*self._median.feed(rel, {"boot": boot}))

    def _keep(self, rel: np.ndarray, smooth: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        if not rel.size:
            return
        keep = np.abs(rel - smooth) <= NS
        self.dropped += int((~keep).sum())
        assert self.origin_ns is not None
        self._x.append((rows["boot"][keep] - self.origin_ns).astype(np.float64))
        self._y.append(rel[keep])

    def finish(self) -> BootClockMap | None:
        """The clock map of this boot (None if it had no pair)."""
        self._release(np.zeros(0, np.int64), np.zeros(0, np.int64), final=True)
        self._keep(*self._median.finish())
        if self.origin_ns is None or not self._x:
            return None
        x = np.concatenate(self._x)
        self._x = []
        y = np.concatenate(self._y)
        self._y = []
        return BootClockMap(self.origin_ns, self.base_ns, x, y)


class EnvelopeRefs:
    """(clock, UTC) reference pairs from receive times: the least-delayed records of each minute.

    A record reaches the ground station some latency after it was stamped, and each message
    has its own (a GPS fix is stamped before it is sent). Stamps (ns) and receive times (µs)
    come per stream (one per message) piece by piece; in each window of ``window_s`` seconds of
    the stamp clock, the clock's offset is the smallest over the streams of the low percentile
    ``q`` of receive − stamp. Windows are counted from the earliest stamp of the first two
    windows' worth of records (held until then: the streams start at about the same time), and
    a stream's window is reduced to its percentile once the stream has moved two windows on,
    so only a value per minute is kept.
    """

    def __init__(self, window_s: float = 60.0, q: float = 5.0) -> None:
        self.width = int(window_s * NS)
        self.q = q
        self.c0: int | None = None
        self.best: dict[int, int] = {}
        self._first: list[tuple[Hashable, np.ndarray, np.ndarray]] = []  # until c0 is known
        self._open: dict[Hashable, dict[int, list[np.ndarray]]] = {}
        self._last: dict[Hashable, int] = {}

    def add(self, stream: Hashable, stamp_ns: np.ndarray, receive_us: np.ndarray) -> None:
        """Stamps (int64 ns) and receive times (µs) of records of ``stream``."""
        if not stamp_ns.size:
            return
        stamp = stamp_ns.astype(np.int64)
        lag = receive_us.astype(np.int64) * 1000 - stamp
        if self.c0 is None:
            self._first.append((stream, stamp, lag))
            lo = min(int(s.min()) for _, s, _ in self._first)
            hi = max(int(s.max()) for _, s, _ in self._first)
            if hi - lo >= 2 * self.width:
                self._start()
            return
        self._bin(stream, stamp, lag)

    def _start(self) -> None:
        first, self._first = self._first, []
        if first:
            self.c0 = min(int(s.min()) for _, s, _ in first)
            for stream, stamp, lag in first:
                self._bin(stream, stamp, lag)

    def _bin(self, stream: Hashable, stamp: np.ndarray, lag: np.ndarray) -> None:
        assert self.c0 is not None
        bins = (stamp - self.c0) // self.width
        windows = self._open.setdefault(stream, {})
        if (bins == bins[0]).all():
            windows.setdefault(int(bins[0]), []).append(lag)
        else:
            order = np.argsort(bins, kind="stable")
            keys, first = np.unique(bins[order], return_index=True)
            for key, part in zip(keys.tolist(), np.split(lag[order], first[1:]), strict=True):
                windows.setdefault(key, []).append(part)
        last = max(self._last.get(stream, int(bins.max())), int(bins.max()))
        self._last[stream] = last
        for key in [k for k in windows if k < last - 1]:
            self._close(windows.pop(key), key)

    def _close(self, parts: list[np.ndarray], key: int) -> None:
        value = int(np.percentile(np.concatenate(parts), self.q))
        self.best[key] = min(self.best.get(key, value), value)

    def refs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(clock ns, UTC ns) at each window's centre, or None if nothing was given."""
        self._start()
        for windows in self._open.values():
            for key, parts in windows.items():
                self._close(parts, key)
            windows.clear()
        if self.c0 is None or not self.best:
            return None
        keys = sorted(self.best)
        ref_c = self.c0 + np.array(keys, dtype=np.int64) * self.width + self.width // 2
        return ref_c, ref_c + np.array([self.best[k] for k in keys], dtype=np.int64)


@dataclass
class ShiftMedian:
    """Median of the vehicle's UTC − receive time over all ``SYSTEM_TIME`` pairs (µs).

    Kept as int32 µs around the first piece's median (4 bytes a pair); values beyond ±35 min
    of it are clipped, which leaves the median as it is unless most pairs are that far off.
    """

    ref_us: int | None = None
    _parts: list[np.ndarray] = field(default_factory=list)

    def add(self, shift_us: np.ndarray) -> None:
        if not shift_us.size:
            return
        if self.ref_us is None:
            self.ref_us = int(np.median(shift_us))
        rel = np.clip(shift_us - self.ref_us, _INT32.min, _INT32.max)
        self._parts.append(rel.astype(np.int32))

    def median_ns(self) -> int | None:
        if self.ref_us is None:
            return None
        rel = np.concatenate(self._parts)
        self._parts = [rel]
        # the median of the ns values, as the whole-log code takes it (exact: a half µs at most)
        return int((float(np.median(rel)) + self.ref_us) * 1000)


class TlogClock:
    """Put the three clocks of a tlog on one UTC scale (see the module docstring).

    Parameters
    ----------
    maps : list of (BootClockMap or None, bool)
        Per boot: its clock map and whether it is on the vehicle's UTC (``SYSTEM_TIME``);
        a boot without a map takes the nearest boot's.
    gcs_shift_ns : int
        Vehicle UTC − ground-station clock.
    vehicle_utc_map : BootClockMap or None
        Aligns the vehicle's UTC stamps to the receive times when it sent no ``SYSTEM_TIME``.
    reboots : list of int
        File offsets at which each boot after the first starts.
    source : str
        How UTC was obtained, in words.
    """

    def __init__(
        self,
        maps: list[tuple[BootClockMap | None, bool]],
        gcs_shift_ns: int,
        vehicle_utc_map: BootClockMap | None,
        reboots: list[int],
        source: str,
    ) -> None:
        have = {k: (m, on) for k, (m, on) in enumerate(maps) if m is not None}
        # a boot whose records were all dropped has no map: it takes the nearest boot's
        self.maps = [
            have[min(have, key=lambda j: abs(j - k))] for k in range(len(maps) if have else 0)
        ]
        self.gcs_shift_ns = gcs_shift_ns
        self.vehicle_utc_map = vehicle_utc_map
        self.reboots = np.array(reboots, dtype=np.int64)
        self.source = source

    def _segment_utc(self, k: int, boot_ns: np.ndarray) -> np.ndarray:
        clock_map, on_vehicle_clock = self.maps[min(k, len(self.maps) - 1)]
        utc = clock_map.apply(boot_ns)
        return utc if on_vehicle_clock else utc + self.gcs_shift_ns

    def boot_keys(self, keys: np.ndarray) -> np.ndarray:
        """UTC (int64 ns) of boot keys (``boot_ns + boot index << SEGMENT_SHIFT``)."""
        if not self.maps:
            return np.zeros(keys.shape, dtype=np.int64)
        if len(self.maps) == 1:
            return self._segment_utc(0, keys)
        seg = keys >> SEGMENT_SHIFT
        boot = keys & _BOOT_MASK
        out = np.empty(keys.shape, dtype=np.int64)
        for k in distinct(seg):
            sel = seg == k
            out[sel] = self._segment_utc(int(k), boot[sel])
        return out

    def boot(self, offset: np.ndarray, boot_ns: np.ndarray) -> np.ndarray:
        """UTC of boot-clock stamps of records at file offsets ``offset``."""
        seg = np.searchsorted(self.reboots, offset, side="right") if self.reboots.size else 0
        return self.boot_keys(np.asarray(boot_ns, dtype=np.int64) + (seg << SEGMENT_SHIFT))

    def vehicle_utc(self, utc_ns: np.ndarray) -> np.ndarray:
        """UTC of the vehicle's own UTC stamps (GPS time in ``time_usec`` fields)."""
        if self.vehicle_utc_map is None:
            return utc_ns.astype(np.int64)
        return self.vehicle_utc_map.apply(utc_ns)

    def gcs(self, gcs_ns: np.ndarray) -> np.ndarray:
        """UTC of ground-station receive times (ns)."""
        return gcs_ns.astype(np.int64) + self.gcs_shift_ns


@dataclass
class ClockInputs:
    """What one vehicle's records left for its clock model (filled while the log streams)."""

    reboots: RebootCounter = field(default_factory=RebootCounter)
    system_time: dict[int, SystemTimeKnots] = field(default_factory=dict)  # per boot
    shifts: ShiftMedian = field(default_factory=ShiftMedian)
    envelopes: dict[int, EnvelopeRefs] = field(default_factory=dict)  # per boot
    utc_envelope: EnvelopeRefs = field(default_factory=EnvelopeRefs)  # vehicle UTC stamps
    gcs_min_us: int | None = None
    gcs_max_us: int | None = None

    def receive_times(self, gcs_us: np.ndarray) -> None:
        """Track the range of the receive times (µs) of the vehicle's records."""
        if gcs_us.size:
            lo, hi = int(gcs_us.min()), int(gcs_us.max())
            self.gcs_min_us = lo if self.gcs_min_us is None else min(self.gcs_min_us, lo)
            self.gcs_max_us = hi if self.gcs_max_us is None else max(self.gcs_max_us, hi)

    def boot_stream(
        self, stream: str, seg: np.ndarray, boot_ns: np.ndarray, gcs_us: np.ndarray
    ) -> None:
        """Stamps of records on the boot clock, for the boots without ``SYSTEM_TIME`` (a boot
        that has it is put on UTC through it: its stamps are not needed)."""
        for k in distinct(seg):
            if k in self.system_time:
                continue
            sel = seg == k
            env = self.envelopes.setdefault(int(k), EnvelopeRefs())
            env.add(stream, boot_ns[sel], gcs_us[sel])

    def vehicle_utc_stamps(self, stream: str, utc_ns: np.ndarray, gcs_us: np.ndarray) -> None:
        """The vehicle's UTC stamps, aligned to the receive times if it sends no
        ``SYSTEM_TIME`` (not needed once it has)."""
        if not self.system_time:
            self.utc_envelope.add(stream, utc_ns, gcs_us)

    def system_time_pairs(
        self, seg: np.ndarray, boot_ns: np.ndarray, unix_us: np.ndarray, gcs_us: np.ndarray
    ) -> None:
        """``SYSTEM_TIME`` pairs with a UTC time: boot ns, vehicle UTC µs, receive µs."""
        for k in distinct(seg):
            sel = seg == k
            knots = self.system_time.setdefault(int(k), SystemTimeKnots())
            knots.add(boot_ns[sel], unix_us[sel].astype(np.int64) * 1000)
            self.envelopes.pop(int(k), None)
        self.utc_envelope = EnvelopeRefs()
        self.shifts.add(unix_us.astype(np.int64) - gcs_us.astype(np.int64))


def build_clock(
    inputs: ClockInputs,
    n_boots: int,
    more_stamps: list[tuple[np.ndarray, np.ndarray]],
    more_receive_us: list[np.ndarray],
    tally: LogTally,
) -> TlogClock:
    """The clock model of a vehicle from what its records left (see the module docstring).

    Parameters
    ----------
    inputs : ClockInputs
    n_boots : int
        Boots in the log (0 if the vehicle sent no boot-clock stamp).
    more_stamps : list of (time_usec, receive µs)
        The ``time_usec`` stamps of the vehicle's camera messages (UTC, boot time or 0:
        the UTC ones align the vehicle's UTC to the receive times when it sent no
        ``SYSTEM_TIME``).
    more_receive_us : list of numpy.ndarray
        Receive times of the vehicle's camera messages and of the commands.
    tally : LogTally
    """
    if n_boots > 1:
        tally.warn(
            "reboot",
            f"the vehicle's boot clock restarts {n_boots - 1} time(s) in the log "
            f"(reboots); each boot is put on UTC on its own",
            reboots=n_boots - 1,
        )
    maps: list[tuple[BootClockMap | None, bool]] = []
    for k in range(n_boots):
        knots = inputs.system_time.get(k)
        clock_map = knots.finish() if knots is not None else None
        if clock_map is not None:
            assert knots is not None
            tally.skip("absurd_timestamp", knots.dropped)
            maps.append((clock_map, True))
            continue
        env = inputs.envelopes.get(k)
        refs = env.refs() if env is not None else None
        maps.append((boot_clock_map(*refs)[0] if refs is not None else None, False))
    on_vehicle = [m[1] for m in maps]
    shift = inputs.shifts.median_ns()
    gcs_shift = shift if shift is not None and any(on_vehicle) else 0
    vehicle_map = None
    if not any(on_vehicle):
        for k, (stamp_us, receive_us) in enumerate(more_stamps):
            ok = stamp_us >= UNIX_MIN_US
            if ok.any():
                utc_ns = stamp_us[ok].astype(np.int64) * 1000
                inputs.utc_envelope.add(("camera", k), utc_ns, receive_us[ok])
        refs = inputs.utc_envelope.refs()
        if refs is not None:
            vehicle_map = boot_clock_map(*refs, max_jump_s=1e9)[0]
    if on_vehicle and all(on_vehicle):
        source = "vehicle SYSTEM_TIME (GPS UTC) over the boot clock"
    elif any(on_vehicle):
        source = (
            "vehicle SYSTEM_TIME (GPS UTC) over the boot clock; boots without it aligned to "
            "the ground-station timestamps"
        )
    else:
        source = "ground-station timestamps (vehicle clock aligned to the least-delayed records)"
        for t in more_receive_us:
            inputs.receive_times(t)
        _check_gcs_clock(inputs, tally)
    if any(on_vehicle) and abs(gcs_shift) > NS:
        tally.warn(
            "clock_offset",
            f"the vehicle's UTC (SYSTEM_TIME) is {gcs_shift / NS:+.2f} s from the ground "
            f"station's clock; times follow the vehicle",
            vehicle_minus_ground_station_s=round(gcs_shift / NS, 3),
        )
    return TlogClock(maps, gcs_shift, vehicle_map, inputs.reboots.offsets, source)


def _check_gcs_clock(inputs: ClockInputs, tally: LogTally) -> None:
    if inputs.gcs_min_us is None or inputs.gcs_max_us is None:
        return
    lo, hi = inputs.gcs_min_us, inputs.gcs_max_us
    now_us = int(np.datetime64("now", "us").astype(np.int64))
    if lo < UNIX_MIN_US or hi > now_us + 86_400_000_000:
        first = np.datetime64(lo, "us")
        tally.warn(
            "ground_station_clock",
            f"the ground station's timestamps start at {first} (its clock was not set) and "
            f"the vehicle sent no SYSTEM_TIME: times are on that clock, not UTC",
            first_timestamp=str(first),
        )
