"""Terrain following: altitudes along a leg that hold the height above ground.

A leg from ``p0`` to ``p1`` is sampled every ``step`` metres on the DEM. The flight altitude
(AMSL) must stay within ``[ground + H - tol, min(ground + H + tol, ground + max_agl - 0.3)]``
at every sample (the 0.3 m keeps the limit strict between samples). Between waypoints the
vehicle flies straight lines, so waypoints are added only where a straight line would leave
that corridor: a greedy "cone" pass keeps, from each anchor, the interval of slopes that
satisfies every sample so far and places the next waypoint at the last sample before the
interval becomes empty. Both ends of a leg sit exactly at ``ground + H``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from flightplans.errors import SiteGeometryError

__all__ = ["Terrain", "ground_at", "terrain_profile"]

#: Ground elevation (m AMSL) at (x, y) arrays in the plan CRS; NaN where unknown.
Terrain = Callable[[np.ndarray, np.ndarray], np.ndarray]

_LIMIT_MARGIN_M = 0.3


def ground_at(terrain: Terrain, xy: np.ndarray) -> np.ndarray:
    """Ground elevation (m) at (n, 2) points; an error if the DEM does not cover them."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(terrain(xy[:, 0], xy[:, 1]), dtype=np.float64)
    if np.isnan(z).any():
        bad = xy[np.isnan(z)][0]
        raise SiteGeometryError(
            f"the DEM has no elevation at ({bad[0]:.1f}, {bad[1]:.1f}) on the flight path; "
            "pass a --dem that covers the site with a margin of a few hundred metres"
        )
    return z


def terrain_profile(
    p0: tuple[float, float],
    p1: tuple[float, float],
    terrain: Terrain,
    height: float,
    tol: float,
    max_agl: float,
    step: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Waypoints along one leg that keep the height above ground.

    Returns
    -------
    xy : ndarray, shape (m, 2)
        Waypoints from ``p0`` to ``p1`` inclusive (metres, plan CRS).
    alt : ndarray, shape (m,)
        Their altitudes in metres AMSL.
    """
    a, b = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    length = float(np.hypot(*(b - a)))
    n = max(2, math.ceil(length / step) + 1)
    s = np.linspace(0.0, length, n)
    frac = s / length if length > 0 else np.zeros(n)
    xy = a + frac[:, None] * (b - a)
    g = ground_at(terrain, xy)
    target = g + height
    lo = target - tol
    hi = np.minimum(target + tol, g + max_agl - _LIMIT_MARGIN_M)
    keep = [0]
    z = {0: float(target[0])}
    anchor, smin, smax = 0, -math.inf, math.inf
    k = 1
    while k < n:
        ds = s[k] - s[anchor]
        if ds <= 0:
            k += 1
            continue
        za = z[anchor]
        nmin = max(smin, (lo[k] - za) / ds)
        nmax = min(smax, (hi[k] - za) / ds)
        end_ok = True
        if k == n - 1:
            slope_end = (target[k] - za) / ds
            end_ok = smin - 1e-12 <= slope_end <= smax + 1e-12
        if nmin <= nmax and end_ok:
            smin, smax = nmin, nmax
            k += 1
            continue
        j = k - 1
        if j == anchor:  # cannot happen with lo <= hi; keep the loop safe
            j = k
        dsj = s[j] - s[anchor]
        want = (target[j] - za) / dsj
        slope = min(max(want, smin), smax) if j != k else want
        z[j] = za + slope * dsj
        keep.append(j)
        anchor, smin, smax = j, -math.inf, math.inf
        k = j + 1
    if keep[-1] != n - 1:
        keep.append(n - 1)
        z[n - 1] = float(target[-1])
    idx = np.asarray(keep)
    return xy[idx], np.array([z[i] for i in keep])
