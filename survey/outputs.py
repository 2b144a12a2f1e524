"""Writing the products of a detection run: JSON records, the class raster, the leads.

Shared by the commands that turn rasters into leads (``sitewatch detect`` in
:mod:`survey.pipeline`, ``sitewatch check`` in :mod:`survey.check`), so that every one writes
``leads.geojson``, ``leads.gpkg``, ``change.tif`` and its JSON records the same way, each
atomically (:func:`survey.rasters.atomic_path`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.windows
from rasterio.enums import Resampling

from change_detection.change import CHANGE_CODES, CODE_NODATA
from change_detection.leads import Lead, leads_to_feature_collection
from survey import __version__
from survey.rasters import atomic_path
from survey.vectors import write_features

__all__ = [
    "Clock",
    "WindowWriter",
    "finish_change_tif",
    "jsonable",
    "new_change_tif",
    "write_json",
    "write_leads",
]

log = logging.getLogger(__name__)


class Clock:
    """Wall time of the stages of a run: ``lap(name)`` records the time since the last lap."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.t, 3)
        self.t = now
        log.info("%s: %.2f s", name, self.laps[name])


class WindowWriter:
    """``sink[(rows, cols)] = block`` writes a window of band 1 of an existing GeoTIFF.

    Picklable (it holds a path), so dask.distributed workers can write through it.
    """

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __setitem__(self, key: tuple[slice, slice], value: np.ndarray) -> None:
        rows, cols = key
        window = rasterio.windows.Window.from_slices(rows, cols)
        with rasterio.open(self.path, "r+") as dst:
            dst.write(np.asarray(value, np.uint8), 1, window=window)


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented UTF-8 JSON, atomically; numpy values, dates and paths are
    converted (:func:`jsonable`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=jsonable)
            + "\n",
            encoding="utf-8",
        )
    return path


def jsonable(obj: Any) -> Any:
    """``json.dumps`` default: numpy scalars and arrays, dates and paths as JSON values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _overview_factors(rows: int, cols: int) -> list[int]:
    factors = []
    f = 2
    while max(rows, cols) / f >= 256:
        factors.append(f)
        f *= 2
    return factors


def new_change_tif(path: Path, shape: tuple[int, int], transform: Any, crs: Any) -> None:
    """Create an empty class raster (uint8, tiled 512, DEFLATE, nodata 255) to be filled
    window by window through :class:`WindowWriter`."""
    profile = {
        "driver": "GTiff",
        "width": shape[1],
        "height": shape[0],
        "count": 1,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "nodata": CODE_NODATA,
        "compress": "deflate",
        "predictor": 2,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "sparse_ok": False,
    }
    with rasterio.open(path, "w", **profile):
        pass


def finish_change_tif(path: Path, mode: str) -> None:
    """Tag a filled class raster with its code table and mode, and build its overviews."""
    with rasterio.open(path, "r+") as dst:
        tags = {f"CHANGE_CODE_{k}": v for k, v in CHANGE_CODES.items()}
        tags["CHANGE_CODES"] = json.dumps({str(k): v for k, v in CHANGE_CODES.items()})
        tags["SITEWATCH_MODE"] = mode
        tags["TIFFTAG_SOFTWARE"] = f"sitewatch {__version__}"
        dst.update_tags(**tags)
        dst.set_band_description(1, "change class (see CHANGE_CODES tag)")
        factors = _overview_factors(dst.height, dst.width)
        if factors:
            dst.build_overviews(factors, Resampling.nearest)


def write_leads(out: Path, leads: Sequence[Lead]) -> tuple[Path, Path]:
    """Write ``leads.geojson`` (RFC 7946) and ``leads.gpkg`` (layer ``leads``, WGS84) into
    ``out`` and return their paths.

    Each lead's feature is built once (:meth:`Lead.to_feature` rounds and serialises its
    geometry: 3.7 s for 971 leads when built twice) and serves both files.
    """
    collection = leads_to_feature_collection(leads)
    leads_geojson = write_json(out / "leads.geojson", collection)
    leads_gpkg = out / "leads.gpkg"
    write_features(
        leads_gpkg,
        [lead.geometry for lead in leads],
        [feature["properties"] for feature in collection["features"]],
        crs=4326,
        layer="leads",
    )
    return leads_geojson, leads_gpkg
