"""Place photos on the flight: camera-clock offset, pairing with camera events, interpolation.

:func:`geotag` takes the photos (:mod:`survey.ingest.images`) and, when there is a log, its
telemetry and camera events (the ``xarray`` Datasets of ``FlightLog``), and gives each photo a
time on the log's clock, a position and a camera attitude, each with its source.

The camera-clock offset is ``camera time - log time`` in seconds (a camera on local time
shows whole hours). ``time_offset="auto"`` estimates it from the data:

* with camera events: every photo-event time difference votes for an offset; the few
  strongest candidates are scored by a monotone pairing (:func:`match_events`: a dynamic
  programme over the candidate pairs that keeps photos and events in order, skipping missing
  photos and extra ones), and the offset is the median residual of the best pairing. Photos
  and events evenly spaced all along can pair equally well at several offsets (a multiple of
  the interval apart): the smallest is taken, with a warning.
  Mission Planner averages the offsets of the first photos paired in order
  (:func:`mission_planner_offset`); one missing or extra photo at the start puts that off by
  a whole trigger interval, which this does not;
* without events, from photos that carry their own GPS: each photo votes for the log times
  at which the track passes near it, and the offset is refined by least squares along the
  track (Gauss-Newton on the distance between each photo and the track at its shifted time,
  with outliers trimmed);
* otherwise it cannot be estimated: 0 is assumed with a warning.

Positions at exposure (``position_source``): ``log`` — the camera event's own position;
``interpolated`` — the telemetry interpolated linearly at the exposure time (yaw on the circle);
``exif`` — the photo's own. By default the log wins over the photo (``prefer="log"``).
Camera attitude comes from the photo's XMP when it has one; otherwise from the vehicle's
attitude in the log, through the camera mount (``gimbal``: nadir, the vehicle's yaw;
``fixed``: pitch and roll follow the airframe), an assumption recorded as a warning.

This module is longer than most (about 800 lines): the two offset estimators, the pairing and
the interpolation are the one algorithm of placing photos on a flight, and each is public so
that tests and benchmarks can measure it against the floor.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xarray as xr
from pyproj import Transformer
from scipy.spatial import cKDTree

from survey.errors import GeotagError
from survey.ingest.images import ImageRecord
from survey.sites import utm_crs_for

__all__ = [
    "CameraMount",
    "ClockOffset",
    "GeotagError",
    "GeotagResult",
    "GeotaggedPhoto",
    "PositionSource",
    "estimate_offset_from_events",
    "estimate_offset_from_positions",
    "geotag",
    "interpolate_telemetry",
    "match_events",
    "mission_planner_offset",
]

log = logging.getLogger(__name__)

PositionSource = Literal["exif", "log", "interpolated"]
CameraMount = Literal["gimbal", "fixed"]

_NAN = math.nan
_POSE = ("lat", "lon", "alt_amsl", "alt_rel", "roll", "pitch", "yaw")


@dataclass(frozen=True)
class ClockOffset:
    """The camera clock's offset against the log.

    Attributes
    ----------
    offset_s
        Camera time minus log time, seconds.
    method
        ``"given"``, ``"camera events"``, ``"photo positions"`` or ``"assumed"`` (0).
    n_used
        Photos the estimate rests on.
    spread_s
        Robust spread (1.4826 x median absolute deviation) of the per-photo offsets, seconds.
    drift_ppm
        Linear drift of the per-photo offsets over the flight (parts per million); NaN when
        not measured.
    """

    offset_s: float
    method: str
    n_used: int = 0
    spread_s: float = _NAN
    drift_ppm: float = _NAN


@dataclass(frozen=True, eq=False)
class GeotaggedPhoto:
    """A photo placed on the flight.

    ``time_utc`` is the exposure time on the log's clock (the camera's own when there is no
    log); positions in degrees WGS84 and metres (``alt_m`` above sea level, ``alt_rel_m``
    above take-off); attitude as in :mod:`survey.ingest.images`. ``event_index`` is the
    camera event (shot) it was paired with, -1 for none. ``sources`` says where each value
    came from.
    """

    image: ImageRecord
    time_utc: dt.datetime | None
    lat: float
    lon: float
    alt_m: float
    alt_rel_m: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    position_source: PositionSource | None
    event_index: int = -1
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The photo's file name."""
        return self.image.name

    @property
    def has_position(self) -> bool:
        """True when latitude and longitude are known."""
        return math.isfinite(self.lat) and math.isfinite(self.lon)


@dataclass(frozen=True, eq=False)
class GeotagResult:
    """What :func:`geotag` found: the photos in input order and the figures of the pairing."""

    photos: tuple[GeotaggedPhoto, ...]
    offset: ClockOffset | None
    images_matched: int
    unmatched_events: tuple[int, ...] = ()
    unmatched_images: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- time helpers


def _seconds(times: xr.DataArray | np.ndarray) -> np.ndarray:
    """datetime64 values to float seconds since 1970 (UTC); NaT to NaN."""
    arr = np.asarray(times).astype("datetime64[ns]")
    out = arr.astype(np.int64).astype(np.float64) / 1e9
    out[np.isnat(arr)] = _NAN
    return out


def _photo_seconds(images: Sequence[ImageRecord]) -> np.ndarray:
    return np.array([im.time_utc.timestamp() if im.time_utc is not None else _NAN for im in images])


def _to_datetime(seconds: float) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


def _robust_spread(v: np.ndarray) -> float:
    if len(v) == 0:
        return _NAN
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


# ----------------------------------------------------------------------------- with events


def mission_planner_offset(photo_s: np.ndarray, event_s: np.ndarray, first: int = 10) -> float:
    """Mission Planner's estimate: mean of ``photo - event`` over the first photos in order.

    The floor :func:`estimate_offset_from_events` is measured against (module docstring).
    """
    p = np.sort(np.asarray(photo_s, dtype=np.float64)[np.isfinite(photo_s)])
    e = np.sort(np.asarray(event_s, dtype=np.float64)[np.isfinite(event_s)])
    k = min(first, len(p), len(e))
    if k == 0:
        return _NAN
    return float(np.mean(p[:k] - e[:k]))


def _default_tolerance(photo_s: np.ndarray, event_s: np.ndarray) -> float:
    """Half-width (s) within which a photo and an event may pair."""
    e = np.sort(event_s[np.isfinite(event_s)])
    gaps = np.diff(e)
    gaps = gaps[gaps > 0]
    interval = float(np.median(gaps)) if len(gaps) else 10.0
    p = photo_s[np.isfinite(photo_s)]
    whole_seconds = len(p) > 0 and bool(np.all(np.abs(p - np.round(p)) < 1e-6))
    return min(0.45 * interval, 1.0 if whole_seconds else 0.5)


def match_events(
    photo_s: np.ndarray, event_s: np.ndarray, offset_s: float, tol_s: float
) -> list[tuple[int, int]]:
    """Pair photos with camera events in order.

    A photo ``i`` may pair with an event ``j`` when ``|photo_s[i] - offset_s - event_s[j]|
    <= tol_s``; among the pairings that keep both in time order (no crossing), the one with
    the most pairs wins, then the one with the smallest residuals. Photos without a time,
    missing photos and extra photos are skipped. Dynamic programme over the candidate pairs
    (a weighted longest chain with a Fenwick tree), O(k log m) for k candidates.

    Returns
    -------
    list of (photo index, event index), in time order.
    """
    p = np.asarray(photo_s, dtype=np.float64)
    e = np.asarray(event_s, dtype=np.float64)
    e_order = np.argsort(e, kind="stable")
    e_order = e_order[np.isfinite(e[e_order])]
    e_sorted = e[e_order]
    p_order = np.argsort(p, kind="stable")
    p_order = p_order[np.isfinite(p[p_order])]
    m = len(e_sorted)
    edges: list[tuple[int, int, float]] = []  # (photo rank, event rank, |residual|)
    for rank, i in enumerate(p_order):
        target = p[i] - offset_s
        lo = int(np.searchsorted(e_sorted, target - tol_s, side="left"))
        hi = int(np.searchsorted(e_sorted, target + tol_s, side="right"))
        edges.extend((rank, j, abs(target - float(e_sorted[j]))) for j in range(lo, hi))
    if not edges or m == 0:
        return []
    eps = 1.0 / (len(p_order) + 2)
    tree_val = [0.0] * (m + 1)
    tree_arg = [-1] * (m + 1)
    score = [0.0] * len(edges)
    back = [-1] * len(edges)

    def query(j: int) -> tuple[float, int]:  # best chain ending at an event rank < j
        best, arg = 0.0, -1
        while j > 0:
            if tree_val[j] > best:
                best, arg = tree_val[j], tree_arg[j]
            j -= j & -j
        return best, arg

    def update(j: int, val: float, arg: int) -> None:
        j += 1
        while j <= m:
            if val > tree_val[j]:
                tree_val[j], tree_arg[j] = val, arg
            j += j & -j

    k = 0
    while k < len(edges):
        group_end = k
        while group_end < len(edges) and edges[group_end][0] == edges[k][0]:
            group_end += 1
        for g in range(k, group_end):  # queries before updates: one event per photo
            _rank, j, res = edges[g]
            best, arg = query(j)
            score[g] = best + 1.0 + eps * (1.0 - res / tol_s if tol_s > 0 else 1.0)
            back[g] = arg
        for g in range(k, group_end):
            update(edges[g][1], score[g], g)
        k = group_end
    g = int(np.argmax(score))
    pairs: list[tuple[int, int]] = []
    while g >= 0:
        rank, j, _res = edges[g]
        pairs.append((int(p_order[rank]), int(e_order[j])))
        g = back[g]
    return pairs[::-1]


def estimate_offset_from_events(
    photo_s: np.ndarray,
    event_s: np.ndarray,
    *,
    tol_s: float | None = None,
    max_pairs: int = 2_000_000,
) -> tuple[ClockOffset, list[tuple[int, int]]]:
    """Camera-clock offset from photo times and camera-event times (module docstring).

    Parameters
    ----------
    photo_s, event_s
        Photo times (camera clock) and event times (log clock), seconds; NaN unknown.
    tol_s
        Pairing half-width (default: 0.45 of the typical trigger interval, at most 0.5 s,
        or 1 s when the photos carry whole seconds only).
    max_pairs
        Cap on the photo-event differences voted on (photos are thinned evenly past it).

    Returns
    -------
    (ClockOffset, pairs)
        The offset and the pairing (photo index, event index) it rests on.

    Raises
    ------
    GeotagError
        No photo with a time, or no event.
    """
    p = np.asarray(photo_s, dtype=np.float64)
    e = np.asarray(event_s, dtype=np.float64)
    pf, ef = p[np.isfinite(p)], e[np.isfinite(e)]
    if len(pf) == 0 or len(ef) == 0:
        raise GeotagError(
            "cannot estimate the camera-clock offset: no photo has a time or the log has no "
            "camera event; pass --time-offset SECONDS"
        )
    tol = tol_s if tol_s is not None else _default_tolerance(p, e)
    step = max(1, math.ceil(len(pf) * len(ef) / max_pairs))
    diffs = np.sort((pf[::step, None] - ef[None, :]).ravel())
    width = 2.0 * tol
    counts = np.searchsorted(diffs, diffs + width, side="right") - np.arange(len(diffs))
    candidates: list[float] = []
    for k in np.argsort(-counts, kind="stable"):
        centre = float(np.median(diffs[k : k + counts[k]]))
        if all(abs(centre - c) > width for c in candidates):
            candidates.append(centre)
        if len(candidates) == 5 or counts[k] < 0.5 * counts.max():
            break
    scored: list[tuple[tuple[int, float, float], float, list[tuple[int, int]]]] = []
    for c in candidates:
        pairs = match_events(p, e, c, tol)
        if not pairs:
            continue
        res = np.array([p[i] - e[j] for i, j in pairs])
        off = float(np.median(res))
        pairs = match_events(p, e, off, tol)  # re-pair around the refined offset
        res = np.array([p[i] - e[j] for i, j in pairs])
        off = float(np.median(res))
        spread = float(np.abs(res - off).sum())
        scored.append(((len(pairs), -round(spread / tol, 1), -abs(off)), off, pairs))
    if not scored:
        raise GeotagError(
            "cannot pair any photo with a camera event at any clock offset; check that the "
            "photos belong to this flight or pass --time-offset SECONDS"
        )
    scored.sort(key=lambda s: s[0], reverse=True)
    best = scored[0]
    rivals = [s for s in scored[1:] if s[0][:2] == best[0][:2]]
    if rivals:
        log.warning(
            "the camera-clock offset is ambiguous: %.2f s and %.2f s pair the photos with the "
            "camera events equally well (evenly spaced shots); took the smaller; pass "
            "--time-offset SECONDS if that is wrong",
            best[1],
            rivals[0][1],
        )
    _key, off, pairs = best
    res = np.array([p[i] - e[j] for i, j in pairs])
    drift = _NAN
    if len(pairs) >= 10:
        t = np.array([e[j] for _i, j in pairs])
        span = float(t.max() - t.min())
        if span > 0:
            slope = float(np.polyfit(t - t.mean(), res, 1)[0])
            drift = slope * 1e6
            if abs(slope) * span > tol / 2:
                log.warning(
                    "the camera clock drifts %.0f ppm against the log (%.2f s over the flight); "
                    "photos at the ends may stay unpaired",
                    drift,
                    slope * span,
                )
    return ClockOffset(off, "camera events", len(pairs), _robust_spread(res), drift), pairs


# ----------------------------------------------------------------------------- interpolation


def _interp(
    t: np.ndarray, v: np.ndarray, ts: np.ndarray, max_gap_s: float, circular: bool = False
) -> np.ndarray:
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    out = np.full(ts.shape, _NAN)
    if len(t) == 0:
        return out
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    if circular:
        v = np.unwrap(np.radians(v))
    idx = np.searchsorted(t, ts, side="left")
    finite = np.isfinite(ts)
    inside = finite & (ts >= t[0]) & (ts <= t[-1])
    lo = np.clip(idx - 1, 0, len(t) - 1)
    hi = np.clip(idx, 0, len(t) - 1)
    exact = inside & (t[hi] == ts)
    gap_ok = exact | (inside & (t[hi] - t[lo] <= max_gap_s))
    vals = np.interp(ts[gap_ok], t, v)
    if circular:
        vals = np.degrees(vals) % 360.0
    out[gap_ok] = vals
    return out


def interpolate_telemetry(
    telemetry: xr.Dataset, times_s: np.ndarray, *, max_gap_s: float = 2.0
) -> dict[str, np.ndarray]:
    """Telemetry at given times: linear, yaw on the circle, NaN outside or across gaps.

    Parameters
    ----------
    telemetry
        Dataset along ``time`` (datetime64 UTC) with lat, lon (deg), alt_amsl, alt_rel (m),
        roll, pitch, yaw (deg); rows with a known fix type below 2 (no 2D/3D fix) are not
        used for the position.
    times_s
        Times in seconds since 1970 (UTC), any shape.
    max_gap_s
        Two samples farther apart than this are not interpolated between.

    Returns
    -------
    dict
        ``lat, lon, alt_amsl, alt_rel, roll, pitch, yaw`` arrays shaped like ``times_s``.
    """
    ts = np.asarray(times_s, dtype=np.float64)
    t = _seconds(telemetry["time"].values)
    fix_ok = np.ones(t.shape, dtype=bool)
    if "fix_type" in telemetry:
        fix = np.asarray(telemetry["fix_type"].values, dtype=np.float64)
        fix_ok = ~((fix >= 0) & (fix < 2))
    out: dict[str, np.ndarray] = {}
    for name in _POSE:
        if name not in telemetry:
            out[name] = np.full(ts.shape, _NAN)
            continue
        v = np.asarray(telemetry[name].values, dtype=np.float64)
        if name in ("lat", "lon", "alt_amsl", "alt_rel"):
            v = np.where(fix_ok, v, _NAN)
        out[name] = _interp(t, v, ts, max_gap_s, circular=name == "yaw")
    return out


# ----------------------------------------------------------------------------- from positions


def estimate_offset_from_positions(
    photo_s: np.ndarray,
    photo_lat: np.ndarray,
    photo_lon: np.ndarray,
    telemetry: xr.Dataset,
    *,
    radius_m: float | None = None,
    max_gap_s: float = 2.0,
) -> ClockOffset:
    """Camera-clock offset from photos' own GPS positions against the flown track.

    Each photo votes for ``photo time - t`` at every log time ``t`` the track passes within
    ``radius_m`` of it; the strongest vote is refined by Gauss-Newton on the distance between
    the photos and the track at ``photo time - offset``, trimming outliers (3 robust
    deviations). Needs a moving vehicle: photos taken hovering carry no timing information.

    Raises
    ------
    GeotagError
        Fewer than 3 photos with a time and a position, or no consistent offset.
    """
    ps = np.asarray(photo_s, dtype=np.float64)
    ok = np.isfinite(ps) & np.isfinite(photo_lat) & np.isfinite(photo_lon)
    if ok.sum() < 3:
        raise GeotagError(
            "cannot estimate the camera-clock offset from positions: fewer than 3 photos "
            "carry both a time and a GPS position; pass --time-offset SECONDS"
        )
    t = _seconds(telemetry["time"].values)
    lat = np.asarray(telemetry["lat"].values, dtype=np.float64)
    lon = np.asarray(telemetry["lon"].values, dtype=np.float64)
    good = np.isfinite(t) & np.isfinite(lat) & np.isfinite(lon)
    t, lat, lon = t[good], lat[good], lon[good]
    order = np.argsort(t, kind="stable")
    t, lat, lon = t[order], lat[order], lon[order]
    if len(t) < 2:
        raise GeotagError("the log has fewer than 2 positions; cannot place photos on it")
    to_m = Transformer.from_crs(
        4326, utm_crs_for(float(np.median(lon)), float(np.median(lat))), always_xy=True
    )
    tx, ty = to_m.transform(lon, lat)
    px, py = to_m.transform(np.asarray(photo_lon)[ok], np.asarray(photo_lat)[ok])
    p_t = ps[ok]
    step = np.hypot(np.diff(tx), np.diff(ty))
    radius = radius_m if radius_m is not None else max(15.0, 0.75 * float(np.median(step)))
    tree = cKDTree(np.column_stack([tx, ty]))
    hits = tree.query_ball_point(np.column_stack([px, py]), r=radius)
    votes = np.sort(
        np.concatenate(
            [p_t[i] - t[np.asarray(h, dtype=int)] for i, h in enumerate(hits)] + [np.zeros(0)]
        )
    )
    if len(votes) == 0:
        raise GeotagError(
            "no photo lies near the flown track at any time: the photos' GPS positions and "
            "the log do not belong to the same flight"
        )
    width = 2.0
    counts = np.searchsorted(votes, votes + width, side="right") - np.arange(len(votes))
    k = int(np.argmax(counts))
    off = float(np.median(votes[k : k + counts[k]]))

    def track_at(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x = _interp(t, tx, ts, max_gap_s)
        y = _interp(t, ty, ts, max_gap_s)
        dt_ = 0.25
        vx = (_interp(t, tx, ts + dt_, max_gap_s) - _interp(t, tx, ts - dt_, max_gap_s)) / (2 * dt_)
        vy = (_interp(t, ty, ts + dt_, max_gap_s) - _interp(t, ty, ts - dt_, max_gap_s)) / (2 * dt_)
        return x, y, vx, vy

    inliers = np.ones(len(p_t), dtype=bool)
    along = np.zeros(0)
    for _ in range(20):
        x, y, vx, vy = track_at(p_t - off)
        rx, ry = px - x, py - y
        dist = np.hypot(rx, ry)
        valid = np.isfinite(dist) & np.isfinite(vx) & np.isfinite(vy)
        if valid.sum() < 3:
            break
        med = float(np.median(dist[valid]))
        spread = max(_robust_spread(dist[valid]), 0.5)
        inliers = valid & (dist <= med + 3.0 * spread)
        speed2 = vx**2 + vy**2
        moving = inliers & (speed2 > 0.25)
        if moving.sum() < 3:
            break
        along = (rx * vx + ry * vy)[moving] / speed2[moving]  # seconds, per photo
        delta = -float(np.sum((rx * vx + ry * vy)[moving]) / np.sum(speed2[moving]))
        off += delta
        if abs(delta) < 1e-4:
            break
    n_used = int(inliers.sum())
    if n_used < 3:
        raise GeotagError(
            "the photos' GPS positions do not follow the flown track at one clock offset; "
            "pass --time-offset SECONDS"
        )
    return ClockOffset(off, "photo positions", n_used, _robust_spread(along))


# ----------------------------------------------------------------------------- geotag


def _events_arrays(events: xr.Dataset) -> dict[str, np.ndarray]:
    n = events.sizes.get("shot", 0)
    out = {"time": _seconds(events["time"].values) if n else np.zeros(0)}
    for name in _POSE:
        out[name] = (
            np.asarray(events[name].values, dtype=np.float64)
            if name in events
            else np.full(n, _NAN)
        )
    return out


def _resolve_offset(
    time_offset: float | str,
    photo_s: np.ndarray,
    images: Sequence[ImageRecord],
    telemetry: xr.Dataset | None,
    ev: dict[str, np.ndarray] | None,
    warnings: list[str],
) -> tuple[ClockOffset | None, list[tuple[int, int]] | None]:
    has_times = bool(np.isfinite(photo_s).any())
    if not isinstance(time_offset, str):
        value = float(time_offset)
        if not math.isfinite(value):
            raise GeotagError(f"time offset {time_offset!r} is not a number of seconds")
        return ClockOffset(value, "given"), None
    if time_offset != "auto":
        raise GeotagError(
            f"time offset {time_offset!r} is neither 'auto' nor a number of seconds; "
            "pass --time-offset auto or e.g. --time-offset -3.5"
        )
    try:
        if ev is not None and len(ev["time"]) and has_times:
            offset, pairs = estimate_offset_from_events(photo_s, ev["time"])
            return offset, pairs
        if telemetry is not None and has_times:
            lat = np.array([im.lat for im in images])
            lon = np.array([im.lon for im in images])
            if (np.isfinite(lat) & np.isfinite(photo_s)).sum() >= 3:
                return estimate_offset_from_positions(photo_s, lat, lon, telemetry), None
    except GeotagError as exc:
        _warn(warnings, f"{exc}; the photos are not placed from the log")
        return None, []
    if telemetry is not None or ev is not None:
        _warn(
            warnings,
            "no camera events paired by time and too few photos with GPS to estimate the "
            "camera-clock offset; assumed 0 s (pass --time-offset SECONDS if the camera clock "
            "is off)",
        )
        return ClockOffset(0.0, "assumed"), None
    return None, None


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    log.warning("%s", message)


def _describe_offset(offset: ClockOffset, warnings: list[str]) -> None:
    hours = offset.offset_s / 3600.0
    quarter = round(offset.offset_s / 900.0)
    if quarter != 0 and abs(offset.offset_s - 900.0 * quarter) < 120.0:
        zone = dt.timezone(dt.timedelta(minutes=15 * quarter))
        _warn(
            warnings,
            f"camera clock is {offset.offset_s:+.2f} s ({hours:+.2f} h) off the log: it was "
            f"probably set to local time {zone}; photo times were corrected",
        )


def _warn_placement(
    images: Sequence[ImageRecord],
    photos: list[GeotaggedPhoto],
    log_s: np.ndarray,
    interp: dict[str, np.ndarray],
    with_log: bool,
    camera_mount: str,
    warnings: list[str],
) -> None:
    """Warn of photos timed outside the log's positions and of camera angles assumed."""
    if with_log:
        outside = [
            images[i].name
            for i in range(len(images))
            if math.isfinite(log_s[i]) and not math.isfinite(interp["lat"][i])
        ]
        if outside:
            _warn(
                warnings,
                f"{len(outside)} photo(s) fall outside the log's positions (e.g. {outside[0]}); "
                "they keep their own position if they have one",
            )
    if any("assumed" in p.sources.get("pitch_deg", "") for p in photos):
        _warn(
            warnings,
            f"photos without camera angles: attitude from the vehicle with a "
            f"'{camera_mount}' camera mount assumed"
            + (" (nadir, the vehicle's yaw)" if camera_mount == "gimbal" else ""),
        )


def geotag(
    images: Sequence[ImageRecord],
    telemetry: xr.Dataset | None = None,
    camera_events: xr.Dataset | None = None,
    *,
    time_offset: float | str = "auto",
    prefer: Literal["log", "exif"] = "log",
    camera_mount: CameraMount = "gimbal",
    max_gap_s: float = 2.0,
) -> GeotagResult:
    """Give each photo its exposure time on the log's clock, position and attitude.

    Parameters
    ----------
    images
        The photos (:func:`survey.ingest.images.read_images`).
    telemetry
        ``FlightLog.telemetry`` (dim ``time``), or ``None`` for photos placed by their GPS.
    camera_events
        ``FlightLog.camera_events`` (dim ``shot``), or ``None``.
    time_offset
        ``"auto"`` or the camera clock minus the log clock in seconds.
    prefer
        Whose position wins when both exist: the log's (default) or the photo's.
    camera_mount
        How to turn the vehicle attitude into a camera attitude for photos without their
        own camera angles: ``"gimbal"`` (nadir, the vehicle's yaw) or ``"fixed"`` (camera
        fixed to the airframe looking down: pitch - 90 and roll of the vehicle).
    max_gap_s
        Telemetry samples farther apart than this are not interpolated between.

    Returns
    -------
    GeotagResult

    Raises
    ------
    GeotagError
        A ``time_offset`` that is neither ``"auto"`` nor a number.
    """
    warnings: list[str] = []
    photo_s = _photo_seconds(images)
    ev = (
        _events_arrays(camera_events)
        if camera_events is not None and camera_events.sizes.get("shot", 0) > 0
        else None
    )
    offset, pairs = _resolve_offset(time_offset, photo_s, images, telemetry, ev, warnings)
    if offset is not None and offset.method != "assumed":
        _describe_offset(offset, warnings)
    if ev is not None and pairs is None:
        if offset is not None and np.isfinite(photo_s).any():
            pairs = match_events(
                photo_s, ev["time"], offset.offset_s, _default_tolerance(photo_s, ev["time"])
            )
        elif len(images) == len(ev["time"]):
            order = sorted(range(len(images)), key=lambda i: images[i].name)
            pairs = list(zip(order, np.argsort(ev["time"], kind="stable").tolist(), strict=True))
            _warn(
                warnings,
                "photos carry no time: paired with the camera events in file-name "
                "order (same count)",
            )
        else:
            pairs = []
            _warn(
                warnings,
                f"photos carry no time and their count ({len(images)}) differs from "
                f"the camera events' ({len(ev['time'])}); they cannot be paired",
            )
    event_of = dict(pairs or [])
    log_s = np.full(len(images), _NAN)
    for i in range(len(images)):
        if i in event_of:
            log_s[i] = ev["time"][event_of[i]] if ev is not None else _NAN
        elif offset is not None:
            log_s[i] = photo_s[i] - offset.offset_s
    interp = (
        interpolate_telemetry(telemetry, log_s, max_gap_s=max_gap_s)
        if telemetry is not None
        else {k: np.full(len(images), _NAN) for k in _POSE}
    )
    photos = [
        _place(im, i, event_of.get(i, -1), ev, interp, log_s[i], prefer, camera_mount)
        for i, im in enumerate(images)
    ]
    _warn_placement(images, photos, log_s, interp, telemetry is not None, camera_mount, warnings)
    unmatched_events: tuple[int, ...] = ()
    unmatched_images: tuple[str, ...] = ()
    if ev is not None:
        used = set(event_of.values())
        unmatched_events = tuple(j for j in range(len(ev["time"])) if j not in used)
        unmatched_images = tuple(im.name for i, im in enumerate(images) if i not in event_of)
        if unmatched_events or unmatched_images:
            _warn(
                warnings,
                f"{len(unmatched_events)} camera event(s) without a photo and "
                f"{len(unmatched_images)} photo(s) without a camera event",
            )
    return GeotagResult(
        photos=tuple(photos),
        offset=offset,
        images_matched=len(event_of),
        unmatched_events=unmatched_events,
        unmatched_images=unmatched_images,
        warnings=tuple(warnings),
    )


def _place(
    im: ImageRecord,
    i: int,
    event: int,
    ev: dict[str, np.ndarray] | None,
    interp: dict[str, np.ndarray],
    log_s: float,
    prefer: str,
    mount: str,
) -> GeotaggedPhoto:
    sources: dict[str, str] = {}
    options: list[tuple[PositionSource, dict[str, float]]] = []
    if ev is not None and event >= 0:
        options.append(("log", {k: float(ev[k][event]) for k in _POSE}))
    options.append(("interpolated", {k: float(interp[k][i]) for k in _POSE}))
    exif = {"lat": im.lat, "lon": im.lon, "alt_amsl": im.alt_m, "alt_rel": im.alt_rel_m}
    if prefer == "exif":
        options.insert(0, ("exif", exif))
    else:
        options.append(("exif", exif))
    source: PositionSource | None = None
    pose: dict[str, float] = {}
    for name, values in options:
        if math.isfinite(values["lat"]) and math.isfinite(values["lon"]):
            source, pose = name, values
            break
    lat = pose.get("lat", _NAN)
    lon = pose.get("lon", _NAN)
    alt = pose.get("alt_amsl", _NAN)
    rel = pose.get("alt_rel", _NAN)
    if source is not None:
        what = {"log": "camera event", "interpolated": "telemetry at exposure", "exif": "photo"}[
            source
        ]
        sources["position"] = what
        if source != "exif":  # heights the log lacks are taken from the photo
            if not math.isfinite(alt) and math.isfinite(im.alt_m):
                alt, sources["alt_m"] = im.alt_m, "photo"
            if not math.isfinite(rel) and math.isfinite(im.alt_rel_m):
                rel, sources["alt_rel_m"] = im.alt_rel_m, "photo"
        elif not math.isfinite(rel):
            rel = float(interp["alt_rel"][i])
            if math.isfinite(rel):
                sources["alt_rel_m"] = "telemetry at exposure"
    # camera attitude: the photo's own, else the vehicle's through the mount
    yaw, pitch, roll = im.yaw_deg, im.pitch_deg, im.roll_deg
    vehicle: dict[str, float] | None = None
    if ev is not None and event >= 0 and math.isfinite(ev["yaw"][event]):
        vehicle = {k: float(ev[k][event]) for k in ("roll", "pitch", "yaw")}
    elif math.isfinite(interp["yaw"][i]):
        vehicle = {k: float(interp[k][i]) for k in ("roll", "pitch", "yaw")}
    if math.isfinite(pitch):
        sources["attitude"] = "photo"
        if not math.isfinite(yaw) and vehicle is not None:
            yaw, sources["yaw_deg"] = vehicle["yaw"] % 360.0, "log (vehicle yaw)"
    elif vehicle is not None:
        yaw = vehicle["yaw"] % 360.0
        if mount == "fixed":
            pitch, roll = vehicle["pitch"] - 90.0, vehicle["roll"]
            sources["pitch_deg"] = "log (vehicle attitude, fixed camera assumed)"
        else:
            pitch, roll = -90.0, 0.0
            sources["pitch_deg"] = "assumed nadir gimbal; yaw from the log"
        sources["attitude"] = "log"
    if math.isfinite(log_s):
        time_utc: dt.datetime | None = _to_datetime(log_s)
        sources["time_utc"] = "camera event" if event >= 0 else "photo time - clock offset"
    else:
        time_utc = im.time_utc
        sources["time_utc"] = "photo (camera clock)"
    return GeotaggedPhoto(
        image=im,
        time_utc=time_utc,
        lat=lat,
        lon=lon,
        alt_m=alt,
        alt_rel_m=rel,
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        position_source=source,
        event_index=event,
        sources=sources,
    )
