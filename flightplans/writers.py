"""Write every output of a plan into one folder: :func:`write_mission_files`.

``DIR/sortie-NN.plan`` and ``DIR/sortie-NN.waypoints`` per sortie (NN from 01; the site and
every flown path, grown by a margin, is the GeoFence inclusion polygon, holes and no-fly zones
exclusion polygons) with ``formats`` holding ``qgc`` (the default); ``DIR/sortie-NN.kmz`` per
sortie, DJI WPML for DJI Pilot 2 and FlightHub 2 (:mod:`flightplans.wpml_write`), with
``wpml``; with oblique routes (:func:`flightplans.oblique.plan_oblique`) the KMZ files of the
nadir sorties come first and those of the four oblique routes follow, numbered on.
``DIR/mission.geojson`` (the nadir plan) and ``DIR/summary.json``, which also says which files
were written and, for each, its height mode and datum. Sortie files left in ``DIR`` by an
earlier plan with more sorties, or in a format not written this time, are removed so that the
folder always describes one plan.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Proj, Transformer
from shapely.geometry import LineString, Polygon

from flightplans._files import write_text_atomic
from flightplans.errors import PlanParameterError
from flightplans.geojson import write_mission_geojson
from flightplans.mission import FRAME_AMSL, FRAME_RELATIVE, FRAME_TERRAIN
from flightplans.oblique import NADIR, ObliqueRoute
from flightplans.planner import SurveyPlan
from flightplans.qgc import write_plan, write_waypoints
from flightplans.wpml_write import WpmlOptions, write_wpml

__all__ = ["FENCE_MARGIN_M", "FORMATS", "fence_rings", "write_mission_files", "write_summary"]

log = logging.getLogger(__name__)

_SORTIE_FILE = re.compile(r"^sortie-(\d{2,})\.(plan|waypoints|kmz)$")

#: The mission formats ``write_mission_files`` writes: QGroundControl (.plan, .waypoints)
#: and DJI WPML (.kmz).
FORMATS = ("qgc", "wpml")

_QGC_DATUM = {
    FRAME_RELATIVE: "height above home (the take-off point)",
    FRAME_AMSL: "height above sea level, in the DEM's vertical datum",
    FRAME_TERRAIN: "height above the terrain (the vehicle's terrain data)",
}


#: Clearance of the inclusion fence around every flown path (m): GNSS error, wind drift and
#: the overshoot of a multirotor turning at survey speed.
FENCE_MARGIN_M = 15.0


def fence_rings(
    plan: SurveyPlan, margin_m: float = FENCE_MARGIN_M
) -> tuple[list[list[tuple[float, float]]], list[list[tuple[float, float]]]]:
    """(inclusion, exclusion) rings as (lat, lon) lists.

    The inclusion polygon is the site together with every flown path (turnarounds and transits
    leave the site by design), grown by ``margin_m``: a vehicle enforcing the fence must never
    breach it on the planned route. Holes and no-fly zones are exclusion polygons.
    """
    tr = Transformer.from_crs(plan.crs, 4326, always_xy=True)

    def latlon(ring: object) -> list[tuple[float, float]]:
        c = shapely.get_coordinates(ring)
        lon, lat = tr.transform(c[:, 0], c[:, 1])
        return [
            (float(a), float(b)) for a, b in zip(np.round(lat, 8), np.round(lon, 8), strict=True)
        ]

    inclusion: list[list[tuple[float, float]]] = []
    exclusion: list[list[tuple[float, float]]] = []
    for poly in shapely.get_parts(plan.site):
        assert isinstance(poly, Polygon)
        exclusion.extend(latlon(r) for r in poly.interiors)
    flown = [LineString(s.path) for s in plan.sorties if len(s.path) >= 2]
    area = shapely.union_all(
        [shapely.Polygon(p.exterior) for p in shapely.get_parts(plan.site)]
        + [line.buffer(margin_m) for line in flown]
    )
    area = area.buffer(margin_m / 2).buffer(-margin_m / 2).simplify(1.0)
    for poly in shapely.get_parts(area):
        assert isinstance(poly, Polygon)
        inclusion.append(latlon(poly.exterior))
    if plan.nofly is not None:
        for poly in shapely.get_parts(plan.nofly):
            assert isinstance(poly, Polygon)
            exclusion.append(latlon(poly.exterior))
    return inclusion, exclusion


def write_summary(
    plan: SurveyPlan, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> Path:
    """Write ``summary.json`` (see :meth:`SurveyPlan.summary`), with ``extra`` keys added."""
    doc = {**plan.summary(), **(extra or {})}
    return write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _takeoff_amsl(plan: SurveyPlan) -> float | None:
    """Home's elevation above sea level when the plan knows it (it had a DEM)."""
    return plan.home_amsl if plan.stats.get("terrain_tol_m") is not None else None


def _distance_scale(plan: SurveyPlan) -> float:
    """True metres per plan-CRS metre at home (1 / the CRS's scale factor there)."""
    lon, lat = plan.stats["home_lonlat"]
    k = float(Proj(plan.crs).get_factors(lon, lat).meridional_scale)
    return 1.0 / k if k > 0 and np.isfinite(k) else 1.0


def _wpml_options(plan: SurveyPlan, wpml: WpmlOptions) -> tuple[WpmlOptions, str | None]:
    """The options with the DEM's datum settled: one warning line when it is assumed."""
    absolute = (wpml.height_mode or ("egm96" if plan.alt_frame == FRAME_AMSL else "")) == "egm96"
    if _takeoff_amsl(plan) is None or not (absolute or wpml.drone.takeoff_ref_point):
        return wpml, None
    if wpml.dem_datum is not None:
        return wpml, wpml.dem_datum
    log.warning(
        "the DEM's heights are taken as EGM96 heights above sea level (the datum of SRTM and "
        "most national DEMs); pass --dem-datum wgs84 if it holds heights above the WGS84 "
        "ellipsoid"
    )
    return replace(wpml, dem_datum="egm96"), "egm96 (assumed)"


def write_mission_files(
    plan: SurveyPlan,
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("qgc",),
    wpml: WpmlOptions | None = None,
    routes: Sequence[ObliqueRoute] = (),
) -> list[Path]:
    """Write all outputs of ``plan`` into ``out_dir`` (created if needed); return the paths.

    Parameters
    ----------
    plan
        The (nadir) plan.
    out_dir
        Output folder.
    formats
        Any of :data:`FORMATS`: ``qgc`` (``sortie-NN.plan`` and ``.waypoints``), ``wpml``
        (``sortie-NN.kmz``).
    wpml
        Aircraft, heights and shooting of the WPML files; needed with ``wpml``.
    routes
        The five routes of :func:`flightplans.oblique.plan_oblique` (the first is ``plan``)
        to write as WPML instead of the nadir plan alone.

    Raises
    ------
    PlanParameterError
        An unknown format, ``wpml`` without options, oblique routes with ``qgc``; and the
        errors of :func:`flightplans.wpml_write.write_wpml`.
    """
    fmts = _check_formats(formats, wpml, routes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    extra: dict[str, Any] = {"formats": fmts}
    counts = {"plan": 0, "waypoints": 0, "kmz": 0}
    # WPML first: its height conversions can refuse the plan before anything is written
    if "wpml" in fmts:
        assert wpml is not None
        paths, extra_wpml = _write_wpml_files(plan, out, wpml, routes)
        written += paths
        counts["kmz"] = len(paths)
        extra.update(extra_wpml)
    if "qgc" in fmts:
        paths, extra["qgc"] = _write_qgc_files(plan, out)
        written += paths
        counts["plan"] = counts["waypoints"] = len(plan.sorties)
    for f in out.iterdir():
        m = _SORTIE_FILE.match(f.name)
        if m and int(m.group(1)) > counts[m.group(2)]:
            f.unlink()
    written.append(write_mission_geojson(plan, out / "mission.geojson"))
    written.append(write_summary(plan, out / "summary.json", extra))
    return written


def _check_formats(
    formats: Sequence[str], wpml: WpmlOptions | None, routes: Sequence[ObliqueRoute]
) -> list[str]:
    """The formats asked, lower case; an unknown one, or one without what it needs, is an
    error."""
    fmts = [f.strip().lower() for f in formats]
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown or not fmts:
        raise PlanParameterError(
            f"unknown mission format {', '.join(unknown) or '(none)'}; use --format with "
            f"{' and/or '.join(FORMATS)}, e.g. --format qgc,wpml"
        )
    if "wpml" in fmts and wpml is None:
        raise PlanParameterError("DJI WPML files need the aircraft: pass --drone NAME")
    if routes and "qgc" in fmts:
        raise PlanParameterError(
            "the oblique routes are written as DJI WPML only (QGroundControl missions cannot "
            "hold their gimbal pitch and heading): pass --format wpml with --oblique"
        )
    return fmts


def _write_wpml_files(
    plan: SurveyPlan, out: Path, wpml: WpmlOptions, routes: Sequence[ObliqueRoute]
) -> tuple[list[Path], dict[str, Any]]:
    """``sortie-NN.kmz`` for each sortie of the plan (or of each oblique route, numbered on);
    returns the paths and the ``wpml`` (and ``oblique``) records of ``summary.json``."""
    options, dem_datum = _wpml_options(plan, wpml)
    todo = list(routes) if routes else [ObliqueRoute(NADIR, plan, 0.0)]
    n_files = sum(len(r.plan.sorties) for r in todo)
    width = max(2, len(str(n_files)))
    records = []
    written: list[Path] = []
    k = 0
    for r in todo:
        takeoff = _takeoff_amsl(r.plan)
        scale = _distance_scale(r.plan)
        for s in r.plan.sorties:
            k += 1
            path = out / f"sortie-{k:0{width}d}.kmz"
            rec = write_wpml(
                s.mission,
                path,
                options,
                takeoff_amsl_m=takeoff,
                look=r.look,
                distance_scale=scale,
            )
            rec["sortie"] = k
            rec["route_sortie"] = s.number
            records.append(rec)
            written.append(path)
    extra: dict[str, Any] = {
        "wpml": {
            "drone": options.drone.name,
            "drone_label": options.drone.label,
            "camera": options.drone.camera_name,
            "dem_datum": dem_datum,
            "files": records,
        }
    }
    if routes:
        extra["oblique"] = {
            "gimbal_pitch_deg": routes[-1].look.gimbal_pitch_deg,
            "offset_m": round(routes[-1].offset_m, 2),
            "routes": [
                {
                    "route": r.look.name,
                    "gimbal_pitch_deg": r.look.gimbal_pitch_deg,
                    "heading_deg": r.look.heading_deg,
                    "n_sorties": len(r.plan.sorties),
                    "n_photos": r.plan.stats["n_photos"],
                    "duration_s": r.plan.stats["duration_s"],
                }
                for r in routes
            ],
        }
    return written, extra


def _write_qgc_files(plan: SurveyPlan, out: Path) -> tuple[list[Path], dict[str, Any]]:
    """``sortie-NN.plan`` and ``sortie-NN.waypoints`` for each sortie; returns the paths and
    the ``qgc`` record of ``summary.json``."""
    inclusion, exclusion = fence_rings(plan)
    width = max(2, len(str(len(plan.sorties))))
    names = []
    written: list[Path] = []
    for s in plan.sorties:
        stem = f"sortie-{s.number:0{width}d}"
        written.append(
            write_plan(s.mission, out / f"{stem}.plan", inclusion=inclusion, exclusions=exclusion)
        )
        written.append(write_waypoints(s.mission, out / f"{stem}.waypoints"))
        names += [f"{stem}.plan", f"{stem}.waypoints"]
    record = {
        "files": names,
        "alt_mode": plan.stats.get("alt_mode"),
        "height_datum": _QGC_DATUM.get(plan.alt_frame, str(plan.alt_frame)),
    }
    return written, record
