"""A season of surveys of one small synthetic site, for the season tests (issue #16).

``survey.synth`` renders two epochs of one scene; a season needs several epochs in which known
structures appear, grow and are demolished. :func:`write_epoch` writes one epoch of a site
from the list of structures standing on its date: real GeoTIFFs (orthophoto uint8 RGB with a
mask band, DSM and DTM float32 metres, nodata -9999) on one UTM grid shared by every epoch,
the ground and its texture the same in each (the seed), so that two epochs differ exactly by
the structures planted. :func:`write_site_files` writes the site boundary, permits (with
versions) and existing buildings as GeoJSON (WGS84), as a bureau would import them.

Heights: a structure of ``floors`` floors is ``3 * floors + 0.4`` m tall (a parapet), so
``round(height / 3)`` gives its floors back; an ``excavation`` (a foundation pit) is
``depth`` m below the ground, in the DSM and in the DTM (OpenDroneMap's DTM follows the pit).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Transformer
from scipy import ndimage
from shapely.geometry import box, mapping

from survey.rasters import write_geotiff

CRS = "EPSG:32650"
STOREY_M = 3.0
PARAPET_M = 0.4
NODATA = -9999.0


def floors_height(floors: int) -> float:
    """Height above ground of a flat-roofed building of ``floors`` floors, metres."""
    return STOREY_M * floors + PARAPET_M


@dataclass(frozen=True)
class Structure:
    """A rectangle ``w`` x ``h`` m whose south-west corner is ``(x, y)`` m from the site's
    south-west corner, ``height`` m above ground (negative: a pit), roof colour ``rgb``."""

    name: str
    x: float
    y: float
    w: float
    h: float
    height: float
    rgb: tuple[int, int, int] = (150, 150, 155)

    def grown(self, height: float) -> Structure:
        return Structure(self.name, self.x, self.y, self.w, self.h, height, self.rgb)


@dataclass(frozen=True)
class SeasonSite:
    """One site's grid: origin (UTM metres of the south-west corner), size and pixel size."""

    name: str
    east0: float
    north0: float
    size_m: float = 80.0
    gsd_m: float = 0.2
    ground_m: float = 50.0
    seed: int = 0

    @property
    def n_px(self) -> int:
        return round(self.size_m / self.gsd_m)

    @property
    def transform(self) -> Affine:
        return Affine(self.gsd_m, 0.0, self.east0, 0.0, -self.gsd_m, self.north0 + self.size_m)

    def wgs84(self, x0: float, y0: float, x1: float, y1: float) -> Any:
        """The rectangle (x0, y0)-(x1, y1), site metres, as a WGS84 polygon."""
        to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        ll = [to_ll.transform(self.east0 + x, self.north0 + y) for x, y in corners]
        from shapely.geometry import Polygon

        return Polygon(ll)

    def footprint(self, s: Structure) -> Any:
        return self.wgs84(s.x, s.y, s.x + s.w, s.y + s.h)

    def _window(self, s: Structure) -> tuple[slice, slice]:
        n = self.n_px
        c0, c1 = round(s.x / self.gsd_m), round((s.x + s.w) / self.gsd_m)
        r0 = n - round((s.y + s.h) / self.gsd_m)
        r1 = n - round(s.y / self.gsd_m)
        return slice(max(r0, 0), min(r1, n)), slice(max(c0, 0), min(c1, n))

    def ground(self) -> tuple[np.ndarray, np.ndarray]:
        """The bare terrain (m) and the ground's colour, the same in every epoch."""
        n = self.n_px
        rng = np.random.default_rng(self.seed)
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) * self.gsd_m
        terrain = self.ground_m + 0.01 * xx + 0.005 * yy
        texture = ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 3.0)
        texture /= texture.std()
        coarse = ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 12.0)
        coarse /= coarse.std()
        base = np.array([168, 150, 120], np.float32)
        rgb = base[:, None, None] + 12 * texture[None] + 10 * coarse[None]
        road = (yy > 8) & (yy < 14)
        rgb[:, road] = np.array([95, 95, 98], np.float32)[:, None] + 4 * texture[None, road]
        return terrain.astype(np.float32), rgb

    def write_epoch(
        self, folder: Path, structures: Sequence[Structure], date: str
    ) -> dict[str, Path]:
        """Write ``orthophoto.tif``, ``dsm.tif`` and ``dtm.tif`` of the site on ``date``."""
        folder.mkdir(parents=True, exist_ok=True)
        terrain, rgb = self.ground()
        dsm = terrain.copy()
        dtm = terrain.copy()
        rng = np.random.default_rng(self.seed + 1000)
        for s in structures:
            rows, cols = self._window(s)
            if s.height < 0:  # a pit: in the DTM too
                dsm[rows, cols] = terrain[rows, cols] + s.height
                dtm[rows, cols] = dsm[rows, cols]
                rgb[:, rows, cols] = np.array([120, 100, 80], np.float32)[:, None, None]
                continue
            dsm[rows, cols] = terrain[rows, cols] + s.height
            roof = np.array(s.rgb, np.float32)[:, None, None]
            rgb[:, rows, cols] = roof + rng.normal(0, 2, rgb[:, rows, cols].shape)
            # a darker 2-pixel rim: the parapet
            rim = np.zeros(dsm.shape, bool)
            rim[rows, cols] = True
            rim &= ~ndimage.binary_erosion(rim, iterations=2)
            rgb[:, rim] *= 0.75
        dsm += rng.normal(0, 0.02, dsm.shape).astype(np.float32)
        tags = {"TIFFTAG_DATETIME": f"{date.replace('-', ':')} 10:00:00"}
        ortho = np.clip(rgb, 0, 255).astype(np.uint8)
        paths = {
            "ortho": write_geotiff(
                folder / "orthophoto.tif",
                ortho,
                transform=self.transform,
                crs=CRS,
                mask=np.ones(dsm.shape, bool),
                tags=tags,
            ),
            "dsm": write_geotiff(
                folder / "dsm.tif",
                dsm.astype(np.float32),
                transform=self.transform,
                crs=CRS,
                nodata=NODATA,
            ),
            "dtm": write_geotiff(
                folder / "dtm.tif",
                dtm.astype(np.float32),
                transform=self.transform,
                crs=CRS,
                nodata=NODATA,
            ),
        }
        return paths

    def write_boundary(self, path: Path, inset_m: float = 1.0) -> Path:
        geom = self.wgs84(inset_m, inset_m, self.size_m - inset_m, self.size_m - inset_m)
        return _write_geojson(path, [(geom, {"name": self.name})])

    def write_permits(self, path: Path, versions: Sequence[dict[str, Any]]) -> Path:
        """Permits: each with ``structure`` (its footprint), ``permit_id``, ``floors``,
        ``max_height_m``, ``valid_from`` and ``valid_to``."""
        feats = []
        for v in versions:
            props = {k: val for k, val in v.items() if k != "structure"}
            feats.append((self.footprint(v["structure"]), props))
        return _write_geojson(path, feats)

    def write_existing(self, path: Path, buildings: Sequence[tuple[str, Structure]]) -> Path:
        feats = [
            (
                self.footprint(s),
                {"building_id": bid, "height_m": round(s.height, 2), "floors": round(s.height / 3)},
            )
            for bid, s in buildings
        ]
        return _write_geojson(path, feats)


def _write_geojson(path: Path, feats: Sequence[tuple[Any, dict[str, Any]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "geometry": mapping(g), "properties": p} for g, p in feats
                ],
            }
        )
    )
    return path


def site_box(site: SeasonSite) -> Any:
    """The whole raster extent, WGS84 (for a survey placed elsewhere: shift it)."""
    return site.wgs84(0, 0, site.size_m, site.size_m)


__all__ = [
    "CRS",
    "SeasonSite",
    "Structure",
    "box",
    "floors_height",
    "site_box",
]
