"""``mission.geojson``: what a plan flies and photographs, as RFC 7946 GeoJSON (WGS84).

Every feature has a ``kind`` property:

* ``site`` — the site polygon; ``nofly`` — the no-fly zones (unbuffered);
* ``home`` — the take-off point;
* ``flight_line`` — one LineString per transect, from where photos start to where they stop
  (``sortie``, ``pass``, ``line``, ``bearing_deg``, ``n_photos``);
* ``route`` — the full horizontal path of each sortie, home to home (``sortie``,
  ``length_m``, ``duration_s``);
* ``photo`` — one Point per photo (``index``, ``sortie``, ``bearing_deg``);
* ``footprint`` — the nominal ground footprint of each photo (``index``, ``sortie``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from flightplans._files import write_text_atomic
from flightplans.planner import SurveyPlan, footprint_rectangles

__all__ = ["mission_features", "write_mission_geojson"]


def _feature(geom: BaseGeometry, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": props,
        "geometry": json.loads(shapely.to_geojson(geom)),
    }


def mission_features(plan: SurveyPlan) -> list[dict[str, Any]]:
    """GeoJSON Feature dicts (WGS84 lon/lat, 8 decimals) of ``plan``."""
    tr = Transformer.from_crs(plan.crs, 4326, always_xy=True)

    def ll(g: Any) -> Any:
        def f(xy: np.ndarray) -> np.ndarray:
            lon, lat = tr.transform(xy[:, 0], xy[:, 1])
            return np.round(np.column_stack([lon, lat]), 8)

        out = shapely.transform(g, f)
        if shapely.get_type_id(out) in (3, 6):  # RFC 7946: exteriors counterclockwise
            out = shapely.orient_polygons(out, exterior_cw=False)
        return out

    feats = [_feature(ll(plan.site), {"kind": "site", "area_m2": plan.stats["area_m2"]})]
    if plan.nofly is not None:
        for g in shapely.get_parts(plan.nofly):
            feats.append(_feature(ll(g), {"kind": "nofly"}))
    feats.append(
        _feature(
            ll(shapely.points(plan.home)),
            {"kind": "home", "amsl_m": plan.home_amsl},
        )
    )
    index = 0
    side, front = plan.footprint_m
    for s in plan.sorties:
        feats.append(
            _feature(
                ll(shapely.linestrings(s.path)),
                {
                    "kind": "route",
                    "sortie": s.number,
                    "length_m": round(s.length_m, 1),
                    "duration_s": round(s.duration_s, 1),
                },
            )
        )
        for t in s.transects:
            dx, dy = t.direction()
            feats.append(
                _feature(
                    ll(shapely.linestrings([t.start, t.end])),
                    {
                        "kind": "flight_line",
                        "sortie": s.number,
                        "pass": t.pass_index,
                        "line": t.line_index,
                        "bearing_deg": round(float(np.degrees(np.arctan2(dx, dy)) % 360), 2),
                        "n_photos": len(t.photo_positions(plan.trigger_m)),
                    },
                )
            )
        rects = footprint_rectangles(s.photos, s.photo_bearing, side, front)
        for p, b, rect in zip(s.photos, s.photo_bearing, rects, strict=True):
            props = {"index": index, "sortie": s.number, "bearing_deg": round(float(b), 2)}
            feats.append(_feature(ll(shapely.points(p)), {"kind": "photo", **props}))
            feats.append(
                _feature(ll(rect), {"kind": "footprint", "index": index, "sortie": s.number})
            )
            index += 1
    return feats


def write_mission_geojson(plan: SurveyPlan, path: str | os.PathLike[str]) -> Path:
    """Write :func:`mission_features` as a FeatureCollection (atomically)."""
    doc = {"type": "FeatureCollection", "features": mission_features(plan)}
    return write_text_atomic(path, json.dumps(doc, separators=(",", ":")) + "\n")
