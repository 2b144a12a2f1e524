"""Order transects into a route, and the flight-time model of a route.

Ordering is greedy nearest-entry: from the current position, fly next the unvisited transect
whose entry or exit (then flown reversed) is closest. On convex sites this is the usual
boustrophedon (lawn-mower) order; on concave sites it finishes one arm before moving on.

Flight time of a polyline at cruise speed ``v`` with horizontal acceleration ``a``::

    t = length / v + sum over vertices of (v / a) * (1 - cos(phi)) / 2

where ``phi`` is the change of heading at the vertex: a full reversal costs ``v / a`` (the
time lost braking to zero and accelerating back), a straight pass costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flightplans.grid import Transect

__all__ = ["order_transects", "polyline_length", "polyline_time", "route_points"]


def order_transects(transects: Sequence[Transect], start: tuple[float, float]) -> list[Transect]:
    """Greedy nearest-entry order from ``start``; transects come back possibly reversed."""
    n = len(transects)
    if n == 0:
        return []
    entries = np.array([t.entry() for t in transects], dtype=np.float64)
    exits = np.array([t.exit() for t in transects], dtype=np.float64)
    left = np.ones(n, dtype=bool)
    pos = np.asarray(start, dtype=np.float64)
    out: list[Transect] = []
    for _ in range(n):
        d_in = np.hypot(*(entries - pos).T)
        d_out = np.hypot(*(exits - pos).T)
        d_in[~left] = np.inf
        d_out[~left] = np.inf
        i_in, i_out = int(np.argmin(d_in)), int(np.argmin(d_out))
        if d_in[i_in] <= d_out[i_out]:
            t = transects[i_in]
            left[i_in] = False
        else:
            t = transects[i_out].reversed()
            left[i_out] = False
        out.append(t)
        pos = np.asarray(t.exit())
    return out


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
