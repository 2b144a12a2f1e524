"""Small OpenDroneMap project folders for the command-line tests of epochs (``--before``,
``--after``, ``--epoch``): the layout ODM writes, with a building planted where asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp

from survey.rasters import write_geotiff

CRS = 32650
GSD = 0.5
SHAPE = (120, 160)  # rows, cols: 60 x 80 m
T = Affine(GSD, 0.0, 500_000.0, 0.0, -GSD, 2_500_000.0)
GROUND_M = 30.0
#: The planted building: rows and columns, 10 x 10 m, 6 m tall.
BUILDING = (slice(50, 70), slice(70, 90))
BUILDING_M = 6.0
LOG = {"odmVersion": "3.5.4", "options": {"dsm": True, "dtm": True}, "success": True}


def texture() -> np.ndarray:
    """A smooth RGB texture (uint8, (3, rows, cols)) that co-registers well."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    r = 120 + 60 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    g = 110 + 50 * np.cos(xx / 11.0 + yy / 13.0)
    b = 100 + 40 * np.sin((xx + 2 * yy) / 17.0)
    return np.stack([r, g, b]).clip(1, 255).astype(np.uint8)


def heights(building: bool) -> np.ndarray:
    z = np.full(SHAPE, GROUND_M, np.float32)
    if building:
        z[BUILDING] += BUILDING_M
    return z


def write_heights(path: Path, z: np.ndarray) -> Path:
    return write_geotiff(path, z, transform=T, crs=CRS, nodata=-9999.0)


def write_project(root: Path, *, building: bool, dsm: bool = True) -> Path:
    """An ODM project: RGBA orthophoto, DSM (with the building when asked), DTM, log.json."""
    rgb = texture()
    alpha = np.full(SHAPE, 255, np.uint8)
    write_geotiff(
        root / "odm_orthophoto" / "odm_orthophoto.tif",
        np.concatenate([rgb, alpha[None]]),
        transform=T,
        crs=CRS,
        colorinterp=(ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha),
        tags={"SITEWATCH_SURVEY_DATE": "2025-10-15" if building else "2025-04-15"},
    )
    if dsm:
        write_heights(root / "odm_dem" / "dsm.tif", heights(building))
    write_heights(root / "odm_dem" / "dtm.tif", heights(False))
    (root / "log.json").write_text(json.dumps(LOG))
    return root
