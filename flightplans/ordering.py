"""Order transects into a route, and the flight-time model of a route.

When every line holds a single segment (convex sites) the order is the boustrophedon
(lawn-mower) one, the best of its four variants. Otherwise it is greedy nearest-entry: from the
current position, fly next the unvisited segment whose entry or exit (then flown reversed) is
closest, which finishes one arm of a concave site before moving on.

Flight time of a polyline at cruise speed ``v`` with horizontal acceleration ``a``::

    t = length / v + sum over vertices of (v / a) * (1 - cos(phi)) / 2

where ``phi`` is the change of heading at the vertex: a full reversal costs ``v / a`` (the
time lost braking to zero and accelerating back), a straight pass costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flightplans.grid import Transect

__all__ = [
    "order_indices",
    "order_transects",
    "polyline_length",
    "polyline_time",
    "route_points",
]


def order_indices(
    entries: np.ndarray,
    exits: np.ndarray,
    line: np.ndarray,
    start: tuple[float, float],
    speed: float = 8.0,
    accel: float = 2.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Order segments given their (n, 2) entry and exit points and (n,) line indices.

    When every line holds one segment the best of the four boustrophedon orders (first or
    last line first, either direction) by flight time from ``start`` and back is taken;
    otherwise greedy nearest-entry. Returns (indices in flying order, reversed flags).
    """
    n = len(entries)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    p0 = np.asarray(start, dtype=np.float64)
    srt = np.sort(line)
    if n == 1 or bool(np.all(srt[1:] != srt[:-1])):
        by_line = np.argsort(line, kind="stable")
        ii = np.stack([by_line, by_line, by_line[::-1], by_line[::-1]])
        odd = np.arange(n) % 2 == 1
        rr = np.stack([odd, ~odd, odd, ~odd])[:, :, None]
        a = np.where(rr, exits[ii], entries[ii])
        b = np.where(rr, entries[ii], exits[ii])
        legs = np.stack([a, b], axis=2).reshape(4, 2 * n, 2)
        ends = np.broadcast_to(p0, (4, 1, 2))
        k = int(np.argmin(_batch_time(np.concatenate([ends, legs, ends], axis=1), speed, accel)))
        return ii[k], rr[k, :, 0]
    left = np.ones(n, dtype=bool)
    pos = p0
    order = np.empty(n, dtype=np.int64)
    flags = np.empty(n, dtype=bool)
    for k in range(n):
        d_in = np.hypot(entries[:, 0] - pos[0], entries[:, 1] - pos[1])
        d_out = np.hypot(exits[:, 0] - pos[0], exits[:, 1] - pos[1])
        d_in[~left] = np.inf
        d_out[~left] = np.inf
        i_in, i_out = int(np.argmin(d_in)), int(np.argmin(d_out))
        if d_in[i_in] <= d_out[i_out]:
            order[k], flags[k] = i_in, False
            pos = exits[i_in]
        else:
            order[k], flags[k] = i_out, True
            pos = entries[i_out]
        left[order[k]] = False
    return order, flags


def order_transects(
    transects: Sequence[Transect],
    start: tuple[float, float],
    speed: float = 8.0,
    accel: float = 2.5,
) -> list[Transect]:
    """Order transects from ``start`` (see :func:`order_indices`); some come back reversed."""
    if not transects:
        return []
    entries = np.array([t.entry() for t in transects], dtype=np.float64)
    exits = np.array([t.exit() for t in transects], dtype=np.float64)
    line = np.array([t.line_index for t in transects])
    idx, rev = order_indices(entries, exits, line, start, speed, accel)
    return [transects[i].reversed() if r else transects[i] for i, r in zip(idx, rev, strict=True)]


def route_points(
    ordered: Sequence[Transect], start: tuple[float, float], end: tuple[float, float]
) -> np.ndarray:
    """(n, 2) polyline start → each transect (entry, start, end, exit) → end, straight."""
    pts = [start]
    for t in ordered:
        pts.extend([t.entry(), t.start, t.end, t.exit()])
    pts.append(end)
    return np.asarray(pts, dtype=np.float64)


def _clean(points: np.ndarray) -> np.ndarray:
    if len(points) < 2:
        return points
    d = np.hypot(*np.diff(points, axis=0).T)
    keep = np.concatenate([[True], d > 1e-6])
    return points[keep]


def _batch_time(p: np.ndarray, speed: float, accel: float) -> np.ndarray:
    """Times of k polylines of equal length, (k, m, 2) → (k,), zero-length legs ignored."""
    seg = np.diff(p, axis=1)
    lengths = np.hypot(seg[..., 0], seg[..., 1])
    t = lengths.sum(axis=1) / speed
    u = seg / np.where(lengths > 1e-9, lengths, 1.0)[..., None]
    # pair each leg with the previous non-zero leg: zero legs carry no direction
    nz = lengths > 1e-9
    last = np.where(nz, np.arange(seg.shape[1])[None, :], -1)
    last = np.maximum.accumulate(last, axis=1)
    prev = np.concatenate([np.full((p.shape[0], 1), -1), last[:, :-1]], axis=1)
    ok = nz & (prev >= 0)
    rows = np.arange(p.shape[0])[:, None]
    up = u[rows, np.maximum(prev, 0)]
    cosphi = np.clip((u * up).sum(axis=2), -1.0, 1.0)
    t += np.where(ok, (speed / accel) * (1.0 - cosphi) / 2.0, 0.0).sum(axis=1)
    return t


def polyline_length(points: np.ndarray) -> float:
    """Length of an (n, 2) polyline in metres."""
    if len(points) < 2:
        return 0.0
    return float(np.hypot(*np.diff(points, axis=0).T).sum())


def polyline_time(points: np.ndarray, speed: float, accel: float) -> float:
    """Flight time (s) of an (n, 2) polyline with the turn model of this module."""
    p = _clean(np.asarray(points, dtype=np.float64))
    if len(p) < 2:
        return 0.0
    seg = np.diff(p, axis=0)
    lengths = np.hypot(*seg.T)
    t = float(lengths.sum()) / speed
    if len(seg) >= 2:
        u = seg / lengths[:, None]
        cosphi = np.clip((u[:-1] * u[1:]).sum(axis=1), -1.0, 1.0)
        t += float(((speed / accel) * (1.0 - cosphi) / 2.0).sum())
    return t
