"""Flight planning: planning time and the quality of the automatic grid bearing.

Figures (each against a baseline measured in the same run):

* planning time of a 10-vertex site (~300 m across, GSD 2 cm/px) with ``--angle auto``
  against a plan at one fixed bearing (the sweep's overhead) and against shapely's buffer of
  the site (a unit of geometry work); target under 50 ms;
* planning time of a 1,000-vertex site (~1.1 km², 10 holes of 24 vertices each, several
  sorties) against the same baselines; target under 1 s;
* flight time and flight length of ``--angle auto`` against the best of the 180 plans of a
  1° sweep of fixed bearings (all full plans, routed transits), on the 10-vertex site, an L,
  a U shape and four concave 10-vertex stars; target within 1 %.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from _common import Result, median_time, traced_peak_mb
from shapely.geometry import Point, Polygon, box

from flightplans import PlanParams, plan_survey

CRS = 32650
X0, Y0 = 278000.0, 4105600.0


def _star(n: int, r: float, seed: int, wobble: float = 0.25) -> Polygon:
    rng = np.random.default_rng(seed)
    t = (
        np.sort(rng.uniform(0, 2 * math.pi, n))
        if n < 50
        else np.linspace(0, 2 * math.pi, n, endpoint=False)
    )
    rad = r * (1 + wobble * rng.uniform(-1, 1, n))
    return Polygon(np.column_stack([X0 + rad * np.cos(t), Y0 + rad * np.sin(t)]))


def _ten() -> Polygon:
    p = _star(10, 150.0, seed=3, wobble=0.2)
    assert p.is_valid and len(p.exterior.coords) == 11
    return p


def _thousand() -> Polygon:
    outer = _star(1000, 600.0, seed=7, wobble=0.04)
    rng = np.random.default_rng(11)
    holes = []
    while len(holes) < 10:
        c = rng.uniform(-400, 400, 2)
        h = Point(X0 + c[0], Y0 + c[1]).buffer(30.0, quad_segs=6)
        if all(h.distance(o) > 60 for o in holes) and outer.contains(h.buffer(60)):
            holes.append(h)
    site = Polygon(outer.exterior.coords, [h.exterior.coords for h in holes])
    assert site.is_valid
    return site


def _l_shape() -> Polygon:
    return shapely.affinity.translate(box(0, 0, 400, 120).union(box(0, 0, 140, 350)), X0, Y0)


def _u_shape() -> Polygon:
    return shapely.affinity.translate(
        box(0, 0, 420, 320).difference(box(140, 110, 280, 330)), X0, Y0
    )


def _sweep(site: Polygon, params: PlanParams, step: int) -> tuple[float, float, float]:
    """(best duration, its length, bearing) over fixed bearings 0, step, ... < 180."""
    best = (math.inf, math.inf, -1.0)
    for b in range(0, 180, step):
        p = plan_survey(site, _with(params, float(b)), crs=CRS)
        d = p.stats["duration_s"]
        if d < best[0]:
            best = (d, p.stats["length_m"], float(b))
    return best


def _with(params: PlanParams, angle: float | None) -> PlanParams:
    from dataclasses import replace

    return replace(params, angle_deg=angle)


def run(quick: bool) -> list[Result]:
    out: list[Result] = []
    params = PlanParams(gsd_cm=2.0)
    for name, site, target in (
        ("10-vertex site", _ten(), 0.05),
        ("1000-vertex site, 10 holes", _thousand(), 1.0),
    ):
        repeat = 3 if quick else 7
        t_auto = median_time(lambda s=site: plan_survey(s, params, crs=CRS), repeat)
        t_fixed = median_time(lambda s=site: plan_survey(s, _with(params, 30.0), crs=CRS), repeat)
        t_buf = median_time(lambda s=site: s.buffer(5.0), repeat)
        plan = plan_survey(site, params, crs=CRS)
        note = (
            f"{len(shapely.get_coordinates(site)) - 1 - len(site.interiors)} coords, "
            f"{plan.stats['n_lines']} lines, {plan.stats['n_photos']} photos, "
            f"{plan.stats['n_sorties']} sorties"
        )
        out.append(
            Result(
                "flightplans",
                f"plan {name}, angle auto",
                t_auto,
                "s",
                baseline=t_fixed,
                baseline_name="same plan at one fixed bearing",
                target=f"< {target * 1000:.0f} ms",
                ok=t_auto < target,
                note=note,
            )
        )
        out.append(
            Result(
                "flightplans",
                f"plan {name}, vs shapely buffer",
                t_auto,
                "s",
                baseline=t_buf,
                baseline_name="site.buffer(5 m)",
                note="ratio = planning time in units of one buffer of the site",
            )
        )
    peak = traced_peak_mb(lambda: plan_survey(_thousand(), params, crs=CRS))
    out.append(Result("flightplans", "peak memory, 1000-vertex plan", peak, "MiB"))
    sites = [("10-vertex", _ten())]
    if not quick:
        sites += [("L shape", _l_shape()), ("U shape", _u_shape())]
        for seed in (20, 24, 29, 32):  # concave 10-vertex stars
            star = _star(10, 150.0, seed=seed, wobble=0.35)
            sites.append((f"star seed {seed}", star if star.is_valid else star.convex_hull))
    step = 3 if quick else 1
    for name, site in sites:
        auto = plan_survey(site, params, crs=CRS)
        best_d, best_len, best_b = _sweep(site, params, step)
        out.append(
            Result(
                "flightplans",
                f"{name}: flight time, angle auto",
                auto.stats["duration_s"],
                "s",
                baseline=best_d,
                baseline_name=f"best of {step} deg sweep ({best_b:.0f} deg)",
                target="ratio <= 1.01",
                ok=auto.stats["duration_s"] <= 1.01 * best_d,
                note=f"auto bearing {auto.angle_deg:.1f} deg",
            )
        )
        out.append(
            Result(
                "flightplans",
                f"{name}: flight length, angle auto",
                auto.stats["length_m"],
                "m",
                baseline=best_len,
                baseline_name="length of the fastest swept plan",
                target="ratio <= 1.01",
                ok=auto.stats["length_m"] <= 1.01 * best_len,
            )
        )
    return out
