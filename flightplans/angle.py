"""Choose the grid bearing of least flight time.

The cost of a bearing is the flight time (:func:`flightplans.ordering.polyline_time`) of the
whole route home → segments → home, with spans from :func:`flightplans.grid.estimate_spans`
ordered by :func:`flightplans.ordering.order_indices`: line length, turnarounds, transits and
turns (straight transits; routing around no-fly zones is left to the final plan). With a
crosshatch both passes are counted.

The sweep first tries the bearing windows where the fewest lines fit (from the convex hull's
width every 0.25°), then covers the full half-turn [0°, 180°): every 10°, then 2° steps around
the two best coarse bearings, then 0.5° and 0.2° steps around the best: about 40 estimates
instead of 180. The three best distinct bearings (3° apart or more) are then compared with
their exact transects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from flightplans.grid import GridGeometry, estimate_spans, make_transects
from flightplans.ordering import order_indices, order_transects, polyline_time

__all__ = ["GridSpec", "best_bearing", "route_time"]


@dataclass(frozen=True)
class GridSpec:
    """Line spacing, band, trigger and turnaround (m) and the time model (m/s, m/s²)."""

    spacing: float
    half_band: float
    trigger: float
    turnaround: float
    speed: float
    accel: float
    crosshatch: bool = False


def _pass_points(
    geom: GridGeometry, bearing: float, spec: GridSpec, start: tuple[float, float], exact: bool
) -> np.ndarray:
    args = (spec.spacing, spec.half_band, spec.trigger, spec.turnaround)
    if exact:
        tr = order_transects(make_transects(geom, bearing, *args), start, spec.speed, spec.accel)
        pts = [[t.entry(), t.exit()] for t in tr]
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    sp = estimate_spans(geom, bearing, *args)
    entries, exits = sp.entries_exits()
    idx, rev = order_indices(entries, exits, sp.line, start, spec.speed, spec.accel)
    a = np.where(rev[:, None], exits[idx], entries[idx])
    b = np.where(rev[:, None], entries[idx], exits[idx])
    return np.column_stack([a, b]).reshape(-1, 2)


def route_time(
    geom: GridGeometry,
    bearing: float,
    spec: GridSpec,
    home: tuple[float, float],
    exact: bool = False,
) -> float:
    """Flight time (s) of the straight-transit route at ``bearing`` (degrees).

    ``exact`` lays the final transects (:func:`~flightplans.grid.make_transects`) instead of
    estimating them.
    """
    pts = _pass_points(geom, bearing, spec, home, exact)
    if spec.crosshatch:
        pos = (float(pts[-1, 0]), float(pts[-1, 1])) if len(pts) else home
        pts = np.vstack([pts, _pass_points(geom, (bearing + 90.0) % 180.0, spec, pos, exact)])
    p0 = np.asarray(home, dtype=np.float64)[None]
    return polyline_time(np.vstack([p0, pts, p0]), spec.speed, spec.accel)


def _fewest_lines(geom: GridGeometry, spacing: float, step: float = 0.25) -> list[float]:
    """Middles (and near-ends) of the bearing windows with the fewest lines, from the hull."""
    hull = shapely.get_coordinates(shapely.convex_hull(geom.target))
    t = np.radians(np.arange(0.0, 180.0, step))
    v = hull[None, :, 0] * np.cos(t)[:, None] - hull[None, :, 1] * np.sin(t)[:, None]
    n = np.ceil((v.max(axis=1) - v.min(axis=1)) / spacing - 1e-9)
    low = n <= n.min()
    out: list[float] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], low.astype(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2], strict=True):  # runs [a, b) of low
        lo, hi = a * step, (b - 1) * step
        out.extend({lo + min(0.5, (hi - lo) / 2), (lo + hi) / 2, hi - min(0.5, (hi - lo) / 2)})
    return out[:12]


def best_bearing(
    geom: GridGeometry, spec: GridSpec, home: tuple[float, float]
) -> tuple[float, float]:
    """Sweep [0, 180) and return (bearing in degrees, estimated route time in s)."""
    cache: dict[float, float] = {}

    def cost(b: float) -> float:
        key = round(b % 180.0, 6)
        if key not in cache:
            cache[key] = route_time(geom, key, spec, home)
        return cache[key]

    # bearings where the fewest lines fit: the time jumps with the line count, and a bearing
    # window of low count can be narrower than any coarse step
    for b in _fewest_lines(geom, spec.spacing):
        cost(b)
    coarse = np.arange(0.0, 180.0, 10.0)
    costs = np.array([cost(b) for b in coarse])
    for b0 in coarse[np.argsort(costs)[:2]]:
        for d in (-6.0, -4.0, -2.0, 2.0, 4.0, 6.0):
            cost(float(b0) + d)
    best = min(cache, key=lambda k: cache[k])
    for step in (-1.5, -1.0, -0.5, 0.5, 1.0, 1.5):
        cost(best + step)
    best = min(cache, key=lambda k: cache[k])
    for step in (-0.2, 0.2):
        cost(best + step)
    # the estimate ranks; the exact transects decide among the best distinct bearings
    finalists: list[float] = []
    for b in sorted(cache, key=lambda k: cache[k]):
        if all(abs((b - f + 90.0) % 180.0 - 90.0) >= 3.0 for f in finalists):
            finalists.append(b)
        if len(finalists) == 3:
            break
    exact = {b: route_time(geom, b, spec, home, exact=True) for b in finalists}
    best = min(exact, key=lambda k: exact[k])
    return best, exact[best]
