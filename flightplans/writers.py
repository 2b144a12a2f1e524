"""Write every output of a plan into one folder: :func:`write_mission_files`.

``DIR/sortie-NN.plan`` and ``DIR/sortie-NN.waypoints`` per sortie (NN from 01; the site and
every flown path, grown by a margin, is the GeoFence inclusion polygon, holes and no-fly zones
exclusion polygons), ``DIR/mission.geojson``
and ``DIR/summary.json``. Sortie files left in ``DIR`` by an earlier plan with more sorties
are removed so that the folder always describes one plan.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Polygon

from flightplans._files import write_text_atomic
from flightplans.geojson import write_mission_geojson
from flightplans.planner import SurveyPlan
from flightplans.qgc import write_plan, write_waypoints

__all__ = ["FENCE_MARGIN_M", "fence_rings", "write_mission_files", "write_summary"]

_SORTIE_FILE = re.compile(r"^sortie-(\d{2,})\.(plan|waypoints)$")


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


def write_summary(plan: SurveyPlan, path: str | os.PathLike[str]) -> Path:
    """Write ``summary.json`` (see :meth:`SurveyPlan.summary`)."""
    return write_text_atomic(path, json.dumps(plan.summary(), indent=2, sort_keys=True) + "\n")


def write_mission_files(plan: SurveyPlan, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write all outputs of ``plan`` into ``out_dir`` (created if needed); return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inclusion, exclusion = fence_rings(plan)
    written: list[Path] = []
    width = max(2, len(str(len(plan.sorties))))
    for s in plan.sorties:
        stem = f"sortie-{s.number:0{width}d}"
        written.append(
            write_plan(s.mission, out / f"{stem}.plan", inclusion=inclusion, exclusions=exclusion)
        )
        written.append(write_waypoints(s.mission, out / f"{stem}.waypoints"))
    for f in out.iterdir():
        m = _SORTIE_FILE.match(f.name)
        if m and int(m.group(1)) > len(plan.sorties):
            f.unlink()
    written.append(write_mission_geojson(plan, out / "mission.geojson"))
    written.append(write_summary(plan, out / "summary.json"))
    return written
