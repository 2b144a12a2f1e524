"""A small hand-made survey scene for the map tests: two orthophotos, two DSMs, leads.

The scene is a 80 m x 80 m patch at 0.1 m/px in EPSG:32650 (south China). The after epoch
has a new 20 m x 30 m red-roofed building 6 m tall (lead L-0001, no permit) and a white
annex raised by 3 m inside a permit footprint (lead L-0002, over height). One permit is named
``<script>alert(1)</script>`` and another carries an ``<img onerror>`` payload, to prove that
text from users' files is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import LineString, Point, box
from shapely.geometry.base import BaseGeometry

from change_detection.leads import Lead
from survey.rasters import sha256_file, write_geotiff

RES = 0.1
N = 800
X0, Y0 = 200_000.0, 2_500_000.0
CRS = 32650
TRANSFORM = Affine(RES, 0, X0, 0, -RES, Y0)

_TO_WGS84 = Transformer.from_crs(CRS, 4326, always_xy=True)


def to_wgs84(geom: BaseGeometry) -> BaseGeometry:
    return shapely.transform(
        geom, lambda xy: np.column_stack(_TO_WGS84.transform(xy[:, 0], xy[:, 1]))
    )


def pixel_box(r0: int, r1: int, c0: int, c1: int) -> BaseGeometry:
    """WGS84 polygon of the pixel block rows r0..r1, cols c0..c1."""
    return to_wgs84(box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES))


@dataclass(frozen=True)
class Scene:
    root: Path
    before_ortho: Path
    after_ortho: Path
    before_dsm: Path
    after_dsm: Path
    leads: list[Lead]
    permits: list[tuple[BaseGeometry, dict[str, Any]]]
    track: list[tuple[BaseGeometry, dict[str, Any]]]
    photos: list[tuple[BaseGeometry, dict[str, Any]]]


def make_scene(root: Path) -> Scene:
    rng = np.random.default_rng(7)
    before = rng.normal(110, 10, (3, N, N)).clip(0, 255).astype(np.uint8)
    before[1] += 25  # greenish ground
    after = before.copy()
    after[:, 200:400, 300:600] = np.array([190, 55, 45], np.uint8)[:, None, None]
    after[:, 560:660, 100:300] = 235
    before[:, 560:660, 100:300] = 200
    valid = np.ones((N, N), bool)
    valid[:, :40] = False  # a strip without data must stay transparent
    dsm_b = np.full((N, N), 20.0, np.float32)
    dsm_b[560:660, 100:300] = 26.0
    dsm_a = dsm_b.copy()
    dsm_a[200:400, 300:600] = 26.0
    dsm_a[560:660, 100:300] = 29.0
    paths = {}
    for name, arr, kw in (
        ("before_ortho", before, {"mask": valid}),
        ("after_ortho", after, {"mask": valid}),
        ("before_dsm", dsm_b, {"nodata": -9999.0}),
        ("after_dsm", dsm_a, {"nodata": -9999.0}),
    ):
        paths[name] = write_geotiff(root / f"{name}.tif", arr, transform=TRANSFORM, crs=CRS, **kw)
    hashes = {role: sha256_file(p) for role, p in paths.items()}
    leads = [
        Lead(
            "L-0001",
            "no_permit",
            pixel_box(200, 400, 300, 600),
            ("new roofed structure of 600 m² with no permit",),
            600.0,
            6.0,
            2,
            (),
            0.93,
            "new",
            "2024-01-10",
            "2024-06-02",
            False,
            hashes,
        ),
        Lead(
            "L-0002",
            "over_height",
            pixel_box(560, 660, 100, 300),
            ("height 9.0 m exceeds the permitted 6.0 m <b>bold</b>",),
            200.0,
            3.0,
            1,
            ("<script>alert(1)</script>",),
            0.71,
            "raised",
            "2024-01-10",
            "2024-06-02",
            False,
            hashes,
        ),
    ]
    permits = [
        (pixel_box(540, 680, 80, 320), {"permit_id": "<script>alert(1)</script>", "max_h": 6.0}),
        (
            pixel_box(60, 160, 600, 760),
            {"permit_id": "P-9", "note": "<img src='x' onerror='window.__xss=1'>"},
        ),
    ]
    route = LineString([(X0 + 5, Y0 - 5), (X0 + 75, Y0 - 5), (X0 + 75, Y0 - 40), (X0 + 5, Y0 - 40)])
    track = [(to_wgs84(route), {"kind": "route"})]
    photos = [
        (to_wgs84(Point(X0 + 5 + 7 * i, Y0 - 5)), {"image": f"DJI_{i:04d}.JPG"}) for i in range(10)
    ]
    return Scene(
        root,
        paths["before_ortho"],
        paths["after_ortho"],
        paths["before_dsm"],
        paths["after_dsm"],
        leads,
        permits,
        track,
        photos,
    )
