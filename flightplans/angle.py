"""Choose the grid bearing of least flight time.

The cost of a bearing is the flight time (:func:`flightplans.ordering.polyline_time`) of the
whole route home → transects in greedy order → home, counting line length, turnarounds,
transits and turns (straight transits; routing around no-fly zones is left to the final plan).
With a crosshatch both passes are counted.

The sweep covers the full half-turn [0°, 180°): every 5°, then 1° steps around the three best
coarse bearings, then 0.2° steps around the best — 66 evaluations of
:func:`flightplans.grid.estimate_transects` instead of the 180 of a 1° sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flightplans.grid import GridGeometry, Transect, estimate_transects, make_transects
from flightplans.ordering import order_transects, polyline_time, route_points

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


def _passes(geom: GridGeometry, bearing: float, spec: GridSpec, exact: bool) -> list[Transect]:
    fn = make_transects if exact else estimate_transects
    args = (spec.spacing, spec.half_band, spec.trigger, spec.turnaround)
    out = fn(geom, bearing, *args, pass_index=0)
    if spec.crosshatch:
        out += fn(geom, (bearing + 90.0) % 180.0, *args, pass_index=1)
    return out


def route_time(
    geom: GridGeometry,
    bearing: float,
    spec: GridSpec,
    home: tuple[float, float],
    exact: bool = False,
) -> float:
    """Flight time (s) of the straight-transit route at ``bearing`` (degrees)."""
    tr = _passes(geom, bearing, spec, exact)
    if spec.crosshatch:
        first = order_transects([t for t in tr if t.pass_index == 0], home)
        pos = first[-1].exit() if first else home
        ordered = first + order_transects([t for t in tr if t.pass_index == 1], pos)
    else:
        ordered = order_transects(tr, home)
    return polyline_time(route_points(ordered, home, home), spec.speed, spec.accel)


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

    coarse = np.arange(0.0, 180.0, 5.0)
    costs = np.array([cost(b) for b in coarse])
    for b0 in coarse[np.argsort(costs)[:3]]:
        for d in range(-4, 5):
            cost(float(b0) + d)
    best = min(cache, key=lambda k: cache[k])
    for step in np.arange(-0.8, 0.81, 0.2):
        cost(best + float(step))
    best = min(cache, key=lambda k: cache[k])
    return best, cache[best]
