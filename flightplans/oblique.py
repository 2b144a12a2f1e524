"""Oblique capture for tall structures: the five-route pattern of DJI's oblique template.

A 3D model of high-rise buildings needs their facades, which nadir photos hardly see. DJI's
oblique ("倾斜摄影", ``mapping3d``) template flies five routes: one nadir (gimbal -90°) and
four with the gimbal tilted (``wpml:inclinedGimbalPitch``, e.g. -45°), the camera looking
in four directions 90° apart. :func:`plan_oblique` plans the same pattern with our planner,
so each route keeps its battery split, holes, no-fly avoidance and terrain following:

* every route flies the nadir plan's line bearing at its height, spacing and trigger
  distance (the oblique footprint is larger than the nadir one, so the overlaps are at least
  the planned ones at the image centre);
* on oblique route ``k`` the aircraft holds the heading ``bearing + 90°·k`` (the camera looks
  that way, tilted by ``pitch``), and its image centres land ``d = H / tan(|pitch|)`` ahead of
  it (``H`` the height above ground; ``d = H`` at -45°), so it flies over the site shifted
  by ``d`` against the look direction: the site's outline moved by ``-d`` is the area planned,
  with the site's holes and the no-fly zones kept where they are (the aircraft must not fly
  over them, wherever the camera looks).

The headings are true azimuths (DJI's ``wpml:waypointHeadingAngle``, clockwise from north,
-180..180), converted from the plan's grid bearing at home.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import shapely
from pyproj import Geod, Transformer
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from flightplans.errors import PlanParameterError
from flightplans.planner import SurveyPlan, plan_survey
from flightplans.terrain import Terrain

__all__ = ["NADIR", "ObliqueRoute", "RouteLook", "plan_oblique"]

#: Gimbal pitches accepted for the oblique routes (degrees below the horizon, negative).
OBLIQUE_PITCH_RANGE = (-85.0, -30.0)


@dataclass(frozen=True)
class RouteLook:
    """Where the camera looks on a route.

    ``heading_deg`` ``None`` keeps the aircraft's nose along the route (WPML
    ``followWayline``: the image's width across the track, as the planner assumes);
    a number holds that true heading (degrees clockwise from north, -180..180) on the whole
    route (WPML ``smoothTransition`` to the same angle at every waypoint).
    """

    name: str = "nadir"
    gimbal_pitch_deg: float = -90.0
    heading_deg: float | None = None


#: The nadir look of an ordinary survey.
NADIR = RouteLook()


@dataclass(frozen=True, eq=False)
class ObliqueRoute:
    """One route of the pattern: its look, its plan and how far its photos land ahead (m)."""

    look: RouteLook
    plan: SurveyPlan
    offset_m: float


def _true_heading(plan: SurveyPlan, grid_bearing_deg: float) -> float:
    """True azimuth (deg, -180..180) at home of a grid bearing of the plan's CRS."""
    tr = Transformer.from_crs(plan.crs, 4326, always_xy=True)
    b = math.radians(grid_bearing_deg)
    x0, y0 = plan.home
    lon0, lat0 = tr.transform(x0, y0)
    lon1, lat1 = tr.transform(x0 + 100.0 * math.sin(b), y0 + 100.0 * math.cos(b))
    az, _back, _dist = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)
    return round((float(az) + 180.0) % 360.0 - 180.0, 6)


def _outline(site: BaseGeometry) -> BaseGeometry:
    """The site without its holes (they stay keep-out where they are)."""
    shells = [Polygon(p.exterior) for p in shapely.get_parts(site) if isinstance(p, Polygon)]
    return shapely.union_all(shells)


def _holes(site: BaseGeometry) -> list[BaseGeometry]:
    return [
        Polygon(r) for p in shapely.get_parts(site) if isinstance(p, Polygon) for r in p.interiors
    ]


def plan_oblique(
    nadir: SurveyPlan, *, pitch_deg: float = -45.0, terrain: Terrain | None = None
) -> tuple[ObliqueRoute, ...]:
    """The five routes: ``nadir`` itself and four oblique ones at ``pitch_deg``.

    Parameters
    ----------
    nadir
        The ordinary plan of the site (:func:`flightplans.plan_survey`).
    pitch_deg
        Gimbal pitch of the oblique routes, degrees (-85 to -30; -45 is usual).
    terrain
        The DEM sampler the nadir plan followed, if any (the oblique routes follow it too).

    Returns
    -------
    tuple of ObliqueRoute
        Five routes: the nadir one (offset 0), then camera headings bearing + 0°, 90°, 180°
        and 270°.

    Raises
    ------
    PlanParameterError
        A pitch outside -85..-30 degrees; and the errors of :func:`plan_survey` for a shifted
        site that cannot be flown.
    """
    lo, hi = OBLIQUE_PITCH_RANGE
    if not (lo <= pitch_deg <= hi) or math.isnan(pitch_deg):
        raise PlanParameterError(
            f"oblique gimbal pitch {pitch_deg:g} deg is outside {lo:g} to {hi:g}; "
            "pass --oblique-pitch between them (-45 is usual)"
        )
    height = nadir.alt_m
    offset = height / math.tan(math.radians(abs(pitch_deg)))
    params = dataclasses.replace(nadir.params, angle_deg=nadir.angle_deg)
    outline = _outline(nadir.site)
    keep_out = _holes(nadir.site) + (
        list(shapely.get_parts(nadir.nofly)) if nadir.nofly is not None else []
    )
    routes = [ObliqueRoute(NADIR, nadir, 0.0)]
    for k in range(4):
        grid_az = (nadir.angle_deg + 90.0 * k) % 360.0
        b = math.radians(grid_az)
        dx, dy = -offset * math.sin(b), -offset * math.cos(b)
        shifted = affinity.translate(outline, dx, dy)
        plan = plan_survey(
            shifted, params, crs=nadir.crs, nofly=keep_out, home=nadir.home, terrain=terrain
        )
        look = RouteLook(
            name=f"oblique {k + 1}/4",
            gimbal_pitch_deg=float(pitch_deg),
            heading_deg=_true_heading(nadir, grid_az),
        )
        routes.append(ObliqueRoute(look, plan, offset))
    return tuple(routes)
