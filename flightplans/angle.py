"""Choose the grid bearing of least flight time.

The cost of a bearing is the flight time (:func:`flightplans.ordering.polyline_time`) of the
whole route home → segments → home, with spans from :func:`flightplans.grid.estimate_spans`
ordered by :func:`flightplans.ordering.order_indices`: line length, turnarounds, transits and
turns (straight transits; routing around no-fly zones is left to the final plan). With a
crosshatch both passes are counted.

The sweep covers the full half-turn [0°, 180°): every 10°, then 2° steps around the three best
coarse bearings, then 0.5° and 0.2° steps around the best: 44 evaluations instead of 180.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flightplans.grid import GridGeometry, estimate_spans
from flightplans.ordering import order_indices, polyline_time

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
    geom: GridGeometry, bearing: float, spec: GridSpec, start: tuple[float, float]
) -> np.ndarray:
    sp = estimate_spans(geom, bearing, spec.spacing, spec.half_band, spec.trigger, spec.turnaround)
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
) -> float:
    """Estimated flight time (s) of the straight-transit route at ``bearing`` (degrees)."""
    pts = _pass_points(geom, bearing, spec, home)
    if spec.crosshatch:
        pos = (float(pts[-1, 0]), float(pts[-1, 1])) if len(pts) else home
        pts = np.vstack([pts, _pass_points(geom, (bearing + 90.0) % 180.0, spec, pos)])
    p0 = np.asarray(home, dtype=np.float64)[None]
    return polyline_time(np.vstack([p0, pts, p0]), spec.speed, spec.accel)


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

    coarse = np.arange(0.0, 180.0, 10.0)
    costs = np.array([cost(b) for b in coarse])
    for b0 in coarse[np.argsort(costs)[:3]]:
        for d in (-6.0, -4.0, -2.0, 2.0, 4.0, 6.0):
            cost(float(b0) + d)
    best = min(cache, key=lambda k: cache[k])
    for step in (-1.5, -1.0, -0.5, 0.5, 1.0, 1.5):
        cost(best + step)
    best = min(cache, key=lambda k: cache[k])
    for step in (-0.2, 0.2):
        cost(best + step)
    best = min(cache, key=lambda k: cache[k])
    return best, cache[best]
