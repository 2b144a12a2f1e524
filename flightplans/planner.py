"""Plan a photogrammetric survey of a site: :func:`plan_survey`.

Steps: check the site and parameters; derive altitude, footprint, line spacing and trigger
distance from the camera (:mod:`flightplans.camera`); choose the bearing
(:mod:`flightplans.angle`) unless fixed; lay the transects (:mod:`flightplans.grid`), patch
the pockets that keep-out areas hide from them (:mod:`flightplans.gaps`), add the crosshatch
pass; order them from home (:mod:`flightplans.ordering`); route transits around holes
and no-fly zones (:mod:`flightplans.routing`); split into battery-sized sorties
(:mod:`flightplans.sorties`); give every waypoint its altitude, following the DEM when one is
given (:mod:`flightplans.terrain`); and emit one MAVLink :class:`~flightplans.mission.Mission`
per sortie.

Conventions
-----------
* The site, no-fly zones and ``home`` are in one projected metric CRS (the CLI uses the site's
  UTM zone); missions come out in WGS84.
* Default home: the point of the site's outer boundary nearest to the point due south of the
  site's centroid on the site's southern edge (a take-off spot at the site's south side).
* Each sortie: NAV_TAKEOFF above home, transit, for each line a waypoint at its entry
  (turnaround start), a waypoint where photos start followed by DO_SET_CAM_TRIGG_DIST
  (p1 = trigger distance, p3 = 1: one photo at once), terrain waypoints if any, a waypoint where
  photos stop followed by DO_SET_CAM_TRIGG_DIST 0, a waypoint at its exit; with
  hover-and-capture a waypoint with a hold at every photo followed by IMAGE_START_CAPTURE
  (p3 = 1 image). The sortie ends with a waypoint above home and NAV_RETURN_TO_LAUNCH.
* Lines inside an area that no-fly zones enclose (no transit reaches them from home) are
  left out with a warning, as are pockets of the site that no line can photograph without
  flying over a no-fly zone; everything else of the site is photographed.
* Flight time: cruise at ``speed_ms`` with the turn model of :mod:`flightplans.ordering`,
  plus takeoff climb and landing descent, plus stops with hover-and-capture. A sortie fits
  ``battery_min * (1 - reserve_frac)`` (20 % reserve by default).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from flightplans.angle import GridSpec, best_bearing
from flightplans.errors import PlanParameterError, SiteGeometryError
from flightplans.gaps import fill_gaps
from flightplans.grid import GridGeometry, Transect, make_transects
from flightplans.mission import FRAME_AMSL, FRAME_RELATIVE, FRAME_TERRAIN
from flightplans.ordering import order_transects
from flightplans.params import PlanParams
from flightplans.routing import Router
from flightplans.sortie_mission import FRAME_MISSION, SortieBuilder
from flightplans.sorties import split_sorties
from flightplans.survey_plan import Sortie, SurveyPlan, footprint_rectangles
from flightplans.terrain import Terrain, ground_at

__all__ = ["FRAME_MISSION", "Sortie", "SurveyPlan", "footprint_rectangles", "plan_survey"]

log = logging.getLogger(__name__)


def _polygons_of(geom: BaseGeometry | None, role: str) -> BaseGeometry | None:
    if geom is None or geom.is_empty:
        return None
    polys = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon | MultiPolygon)]
    if not polys:
        raise SiteGeometryError(
            f"the {role} is a {geom.geom_type}, not a polygon; draw it as a polygon"
        )
    for g in polys:
        if not g.is_valid:
            why = shapely.is_valid_reason(g)
            raise SiteGeometryError(
                f"the {role} polygon is not valid ({why}); fix it (e.g. QGIS 'Fix geometries') "
                "or redraw it without self-intersections"
            )
    return shapely.union_all(polys)


def _check_crs(crs: CRS) -> None:
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if not crs.is_projected or unit not in ("metre", "meter"):
        raise SiteGeometryError(
            f"plan_survey needs a projected CRS in metres, got {crs.name!r}; "
            "reproject the site to its UTM zone first (survey.sites.read_site does)"
        )


def _default_home(site: BaseGeometry, keepout: BaseGeometry | None = None) -> tuple[float, float]:
    """The point of the largest part's outer boundary nearest the south of the site's centroid,
    outside the keep-out (no-fly zones and holes plus their margin) where any boundary is."""
    _minx, miny, _maxx, _maxy = site.bounds
    c = site.centroid
    south = Point(c.x, miny - 1.0)
    boundary = shapely.get_exterior_ring(max(shapely.get_parts(site), key=lambda p: p.area))
    if keepout is not None:
        free = boundary.difference(keepout.buffer(0.5))
        if not free.is_empty:
            boundary = free
    p = nearest_points(boundary, south)[0]
    return (float(p.x), float(p.y))


def _reachable(
    transects: list[Transect], home: tuple[float, float], router: Router
) -> list[Transect]:
    """Drop lines inside areas that keep-out encloses (no transit reaches them from home)."""
    entries = np.array([t.entry() for t in transects])
    # cheap test first: entries in the free space connected to home (with room to pass)
    free = router.free_around(home, entries)
    sure = (
        shapely.contains_xy(free, entries[:, 0], entries[:, 1])
        if free is not None
        else np.zeros(len(entries), dtype=bool)
    )
    keep = []
    for t, ok in zip(transects, sure, strict=True):
        if not ok:
            try:
                router.path(home, t.entry())
            except SiteGeometryError:
                continue
        keep.append(t)
    if len(keep) < len(transects):
        log.warning(
            "%d line(s) lie in areas enclosed by no-fly zones or holes and cannot be reached; "
            "left out",
            len(transects) - len(keep),
        )
    if not keep:
        raise SiteGeometryError(
            "no flight line can be reached from home without crossing a no-fly zone; "
            "move --home into the site's open part"
        )
    return keep


def _half_band(spacing: float, side: float) -> float:
    return max(0.51 * spacing, min(0.475 * side, 1.05 * spacing))


def plan_survey(
    site: BaseGeometry,
    params: PlanParams,
    *,
    crs: CRS | str | int,
    nofly: Iterable[BaseGeometry] = (),
    home: tuple[float, float] | None = None,
    terrain: Terrain | None = None,
) -> SurveyPlan:
    """Plan a survey of ``site``.

    Parameters
    ----------
    site
        Polygon or MultiPolygon in ``crs`` (metres). Holes are never flown over.
    params
        What to fly (:class:`~flightplans.params.PlanParams`).
    crs
        The projected metric CRS of ``site``, ``nofly`` and ``home`` (e.g. the UTM zone).
    nofly
        Polygons never to fly over (kept ``params.nofly_margin_m`` away from).
    home
        Take-off point (x, y) in ``crs``; default: the site's south edge (module docstring).
    terrain
        Ground elevation sampler (x, y arrays in ``crs`` → m AMSL); with it the height above
        ground is held within ``params.tolerance_m()`` and never exceeds ``params.max_alt_m``.

    Returns
    -------
    SurveyPlan

    Raises
    ------
    SiteGeometryError
        Empty, invalid or too small site; no-fly zones covering it; no way around them.
    PlanParameterError
        Home too far or inside a no-fly zone, unreachable GSD, a line longer than a battery.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> plan = plan_survey(box(500000, 4100000, 500200, 4100150), PlanParams(alt_m=60),
    ...                    crs=32650)
    >>> plan.stats["n_sorties"], plan.stats["n_photos"] > 20
    (1, True)
    """
    crs_obj = CRS.from_user_input(crs)
    _check_crs(crs_obj)
    areas = _site_areas(site, nofly, params)
    cam = _camera_geometry(params, terrain, areas.target)
    home_xy = _home_point(areas, home, params)
    bearing, ordered = _lay_lines(areas, cam, params, home_xy)
    router = Router(areas.keepout, clearance=max(2.0, 0.4 * params.nofly_margin_m))
    if areas.keepout is not None:
        ordered = _reachable(ordered, home_xy, router)
    overhead = cam.height / params.climb_ms + cam.height / params.descent_ms
    stop_s = params.speed_ms / params.accel_ms2 + params.hover_hold_s
    n_photo = [len(t.photo_positions(cam.trigger)) for t in ordered]
    extra = [n * stop_s if params.hover_capture else 0.0 for n in n_photo]
    groups = split_sorties(
        ordered,
        home_xy,
        router.path,
        speed=params.speed_ms,
        accel=params.accel_ms2,
        budget_s=params.usable_flight_s(),
        overhead_s=overhead,
        extra_s=extra,
    )

    alt_mode, frame = _altitude_frame(params, terrain)
    home_amsl = float(ground_at(terrain, np.array([home_xy]))[0]) if terrain is not None else 0.0
    to_ll = Transformer.from_crs(crs_obj, 4326, always_xy=True)
    builder = SortieBuilder(
        params=params,
        home=home_xy,
        home_amsl=home_amsl,
        height=cam.height,
        tol=cam.tol,
        trigger=cam.trigger,
        frame=frame,
        terrain=terrain if frame != FRAME_TERRAIN else None,
        to_ll=to_ll,
        path=router.path,
    )
    sorties = tuple(builder.build(k + 1, tuple(g), overhead, stop_s) for k, g in enumerate(groups))
    stats = _plan_stats(
        params,
        cam,
        sorties,
        bearing=bearing,
        area_m2=float(areas.target.area),
        alt_mode=alt_mode,
        terrain=terrain,
        n_lines=len(ordered),
        crs=crs_obj,
        home_lonlat=[float(v) for v in to_ll.transform(*home_xy)],
        home_amsl=home_amsl,
    )
    return SurveyPlan(
        crs=crs_obj,
        site=areas.site,
        nofly=areas.nofly,
        keepout=areas.keepout,
        params=params,
        home=home_xy,
        home_amsl=home_amsl,
        alt_m=cam.height,
        gsd_cm=params.camera.gsd_cm(cam.height),
        footprint_m=(cam.side, cam.front),
        spacing_m=cam.spacing,
        trigger_m=cam.trigger,
        angle_deg=bearing,
        alt_frame=frame,
        sorties=sorties,
        stats=stats,
    )


@dataclass(frozen=True)
class _Areas:
    """The site (polygons), its no-fly zones, what is to be photographed (the site less the
    no-fly zones) and the keep-out (holes and no-fly zones plus the margin), plan CRS."""

    site: BaseGeometry
    nofly: BaseGeometry | None
    target: BaseGeometry
    keepout: BaseGeometry | None


def _site_areas(site: BaseGeometry, nofly: Iterable[BaseGeometry], params: PlanParams) -> _Areas:
    """Check the site and the no-fly zones and derive the target and the keep-out."""
    site_g = _polygons_of(site, "site")
    if site_g is None or site_g.area <= 0:
        raise SiteGeometryError("the site polygon is empty; draw a polygon with 3 or more corners")
    nofly_g = _polygons_of(shapely.union_all(list(nofly)) if nofly else None, "no-fly zone")
    holes = [Polygon(r) for p in shapely.get_parts(site_g) for r in p.interiors]
    obstacles = shapely.union_all([*holes, *([nofly_g] if nofly_g is not None else [])])
    obstacles = None if obstacles.is_empty else obstacles
    target = site_g.difference(nofly_g) if nofly_g is not None else site_g
    if target.area < 1e-6 * site_g.area or target.area < 1.0:
        raise SiteGeometryError(
            "the no-fly zones cover the whole site; check the --nofly file (wrong file or CRS?)"
        )
    keepout = obstacles.buffer(params.nofly_margin_m) if obstacles is not None else None
    return _Areas(site_g, nofly_g, target, keepout)


@dataclass(frozen=True)
class _CameraGeometry:
    """Height above ground and terrain tolerance (m), footprint side and front (m) at the
    lowest height flown, line spacing and trigger distance (m)."""

    height: float
    tol: float
    side: float
    front: float
    spacing: float
    trigger: float


def _camera_geometry(
    params: PlanParams, terrain: Terrain | None, target: BaseGeometry
) -> _CameraGeometry:
    """Altitude, footprint, line spacing and trigger distance from the camera; a site smaller
    than a footprint, or no margin under the height limit when following terrain, is an error."""
    h = params.altitude_m()
    tol = params.tolerance_m() if terrain is not None else 0.0
    if terrain is not None and h > params.max_alt_m - 0.3:
        coarsest = params.camera.gsd_cm(params.max_alt_m - 0.3)
        raise PlanParameterError(
            f"a height of {h:.1f} m above ground leaves no margin under --max-alt-m "
            f"{params.max_alt_m:g} when following terrain; the coarsest GSD reachable is "
            f"{coarsest:.2f} cm/px: pass --gsd-cm {math.floor(coarsest * 100) / 100:.2f} or less"
        )
    h_eff = max(h - tol, 0.5 * h)
    side, front = params.camera.footprint_m(h_eff)
    spacing = params.camera.line_spacing_m(h_eff, params.side_pct)
    trigger = params.camera.trigger_distance_m(h_eff, params.front_pct)
    if target.area < side * front:
        raise SiteGeometryError(
            f"the site ({target.area:.0f} m²) is smaller than one photo footprint "
            f"({side:.0f} x {front:.0f} m at {h:.0f} m); fly lower (--alt-m / --gsd-cm) "
            "or take a single photo"
        )
    return _CameraGeometry(h, tol, side, front, spacing, trigger)


def _home_point(
    areas: _Areas, home: tuple[float, float] | None, params: PlanParams
) -> tuple[float, float]:
    """The take-off point: ``home`` or the default (module docstring), checked to be near the
    site and outside the keep-out."""
    keepout = areas.keepout
    home_xy = (
        _default_home(areas.site, keepout) if home is None else (float(home[0]), float(home[1]))
    )
    d_home = areas.site.distance(Point(home_xy))
    if d_home > params.max_home_dist_m:
        raise PlanParameterError(
            f"home is {d_home / 1000:.2f} km from the site, farther than "
            f"{params.max_home_dist_m / 1000:g} km; pass a --home LON,LAT at the site"
        )
    if keepout is not None and keepout.contains(Point(home_xy)):
        raise PlanParameterError(
            f"home ({home_xy[0]:.1f}, {home_xy[1]:.1f}) is inside a no-fly zone or hole; "
            "pass a --home LON,LAT outside it"
        )
    return home_xy


def _lay_lines(
    areas: _Areas, cam: _CameraGeometry, params: PlanParams, home_xy: tuple[float, float]
) -> tuple[float, list[Transect]]:
    """The bearing (chosen unless fixed) and the flight lines in flying order from home: the
    transects, the pockets the keep-out hides from them, and the crosshatch pass."""
    target, keepout = areas.target, areas.keepout
    geom = GridGeometry.build(target, keepout)
    spec = GridSpec(
        spacing=cam.spacing,
        half_band=_half_band(cam.spacing, cam.side),
        trigger=cam.trigger,
        turnaround=params.turnaround_m,
        speed=params.speed_ms,
        accel=params.accel_ms2,
        crosshatch=params.crosshatch,
    )
    if params.angle_deg is None:
        bearing, est = best_bearing(geom, spec, home_xy)
        log.info("auto bearing %.1f deg (estimated %.0f s)", bearing, est)
    else:
        bearing = float(params.angle_deg) % 180.0
    args = (spec.spacing, spec.half_band, spec.trigger, spec.turnaround)
    sa = (params.speed_ms, params.accel_ms2)

    def lay(b: float, k: int) -> list[Transect]:
        tr = make_transects(geom, b, *args, pass_index=k)
        if keepout is not None:
            tr += fill_gaps(
                target,
                keepout,
                tr,
                b,
                trigger=cam.trigger,
                side=cam.side,
                front=cam.front,
                turnaround=params.turnaround_m,
                pass_index=k,
            )
        return tr

    first = order_transects(lay(bearing, 0), home_xy, *sa)
    ordered = list(first)
    if params.crosshatch:
        pos = first[-1].exit() if first else home_xy
        ordered += order_transects(lay((bearing + 90.0) % 180.0, 1), pos, *sa)
    if not ordered:
        raise SiteGeometryError(
            "no flight line fits the site outside the no-fly zones; shrink the no-fly margin "
            "or the zones"
        )
    return bearing, ordered


def _altitude_frame(params: PlanParams, terrain: Terrain | None) -> tuple[str, int]:
    """The altitude mode (``params.alt_mode``, else AMSL with a DEM and relative without) and
    its MAVLink frame."""
    alt_mode = params.alt_mode or ("amsl" if terrain is not None else "relative")
    if alt_mode == "amsl" and terrain is None:
        raise PlanParameterError(
            "AMSL altitudes need the ground height; pass --dem or use --alt-mode relative"
        )
    frame = {"relative": FRAME_RELATIVE, "amsl": FRAME_AMSL, "terrain": FRAME_TERRAIN}[alt_mode]
    return alt_mode, frame


def _plan_stats(
    params: PlanParams,
    cam: _CameraGeometry,
    sorties: tuple[Sortie, ...],
    *,
    bearing: float,
    area_m2: float,
    alt_mode: str,
    terrain: Terrain | None,
    n_lines: int,
    crs: CRS,
    home_lonlat: list[float],
    home_amsl: float,
) -> dict[str, Any]:
    """The figures of ``summary.json`` (:meth:`SurveyPlan.summary`)."""
    h = cam.height
    return {
        "gsd_cm": round(params.camera.gsd_cm(h), 4),
        "alt_m": round(h, 3),
        "spacing_m": round(cam.spacing, 3),
        "trigger_m": round(cam.trigger, 3),
        "angle_deg": round(bearing, 2),
        "n_photos": int(sum(len(s.photos) for s in sorties)),
        "length_m": round(sum(s.length_m for s in sorties), 1),
        "duration_s": round(sum(s.duration_s for s in sorties), 1),
        "n_sorties": len(sorties),
        "area_m2": round(area_m2, 1),
        "camera": params.camera.name,
        "camera_label": params.camera.label,
        "footprint_side_m": round(cam.side, 3),
        "footprint_front_m": round(cam.front, 3),
        "front_pct": params.front_pct,
        "side_pct": params.side_pct,
        "crosshatch": params.crosshatch,
        "angle_auto": params.angle_deg is None,
        "alt_mode": alt_mode,
        "terrain_tol_m": round(cam.tol, 3) if terrain is not None else None,
        "max_alt_m": params.max_alt_m,
        "speed_ms": params.speed_ms,
        "battery_min": params.battery_min,
        "reserve_frac": params.reserve_frac,
        "turnaround_m": params.turnaround_m,
        "hover_capture": params.hover_capture,
        "n_lines": n_lines,
        "crs": crs.to_string(),
        "home_lonlat": home_lonlat,
        "home_amsl_m": home_amsl,
        "sorties": [
            {
                "sortie": s.number,
                "n_lines": len(s.transects),
                "n_photos": len(s.photos),
                "length_m": round(s.length_m, 1),
                "duration_s": round(s.duration_s, 1),
                "n_items": len(s.mission.items),
            }
            for s in sorties
        ],
    }
