"""Write every output of a plan into one folder: :func:`write_mission_files`.

``DIR/sortie-NN.plan`` and ``DIR/sortie-NN.waypoints`` per sortie (NN from 01; the site is the
GeoFence inclusion polygon, holes and no-fly zones exclusion polygons), ``DIR/mission.geojson``
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
from shapely.geometry import Polygon

from flightplans._files import write_text_atomic
from flightplans.geojson import write_mission_geojson
from flightplans.planner import SurveyPlan
from flightplans.qgc import write_plan, write_waypoints

__all__ = ["fence_rings", "write_mission_files", "write_summary"]

_SORTIE_FILE = re.compile(r"^sortie-(\d{2,})\.(plan|waypoints)$")


def fence_rings(
    plan: SurveyPlan,
) -> tuple[list[list[tuple[float, float]]], list[list[tuple[float, float]]]]:
    """(inclusion, exclusion) rings as (lat, lon) lists: site outlines; holes and no-fly zones."""
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
        inclusion.append(latlon(poly.exterior))
        exclusion.extend(latlon(r) for r in poly.interiors)
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
