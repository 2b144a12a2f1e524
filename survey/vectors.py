"""Reading and writing vector files: site boundaries, permits, no-fly zones, leads.

Any format GDAL reads through pyogrio (GeoJSON, GeoPackage, KML, Shapefile, ...) in any CRS.
Features come back as :class:`VectorFeatures`: shapely geometries, their attributes as plain
dicts, and the CRS of the geometries. :func:`reproject_geometries` moves them to another CRS
with one reused ``pyproj.Transformer``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from survey.errors import InputFileError, NotGeoreferencedError, RasterFormatError
from survey.rasters import atomic_path

__all__ = [
    "VectorFeatures",
    "read_features",
    "reproject_geometries",
    "write_features",
]

WGS84 = CRS.from_epsg(4326)


@dataclass(frozen=True)
class VectorFeatures:
    """Features of one vector layer: geometries, attributes and their CRS."""

    path: Path
    geometries: tuple[BaseGeometry, ...]
    properties: tuple[dict[str, Any], ...]
    crs: CRS

    def __len__(self) -> int:
        return len(self.geometries)

    def pairs(self) -> list[tuple[BaseGeometry, dict[str, Any]]]:
        """(geometry, properties) per feature: the form the review map takes."""
        return list(zip(self.geometries, self.properties, strict=True))

    def to_crs(self, crs: CRS | str | int) -> VectorFeatures:
        """Return the same features with geometries reprojected to ``crs``."""
        target = CRS.from_user_input(crs)
        geoms = reproject_geometries(self.geometries, self.crs, target)
        return VectorFeatures(self.path, tuple(geoms), self.properties, target)


def read_features(
    path: str | os.PathLike[str],
    role: str = "vector file",
    layer: str | int | None = None,
) -> VectorFeatures:
    """Read every feature of a vector file.

    A GeoJSON without a ``crs`` member is WGS84 (RFC 7946). A file of another format without
    a CRS is an error, since its coordinates cannot be placed.

    Raises
    ------
    InputFileError
        The file does not exist or GDAL cannot open it.
    NotGeoreferencedError
        The layer has no CRS (and is not GeoJSON).
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: {role} not found; check the path")
    try:
        meta, _, geometry, field_data = pyogrio.raw.read(p, layer=layer, datetime_as_string=True)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputFileError(
            f"{p}: {role} cannot be read ({_first_line(exc)}); pass GeoJSON, GeoPackage or KML"
        ) from exc
    crs_text = meta.get("crs")
    if crs_text and "undefined" in crs_text.lower():
        crs_text = None  # GeoPackage srs_id 0 / -1: "Undefined geographic/Cartesian SRS"
    if crs_text:
        crs = CRS.from_user_input(crs_text)
    elif p.suffix.lower() in (".geojson", ".json"):
        crs = WGS84
    else:
        raise NotGeoreferencedError(
            f"{p}: {role} has no CRS; save it with one (e.g. EPSG:4326) and try again"
        )
    geoms = shapely.from_wkb(geometry) if geometry is not None else np.array([])
    names = list(meta["fields"])
    props = []
    for i in range(len(geoms)):
        props.append({name: _plain(field_data[j][i]) for j, name in enumerate(names)})
    return VectorFeatures(p, tuple(geoms), tuple(props), crs)


def reproject_geometries(
    geometries: Sequence[BaseGeometry], src: CRS | str | int, dst: CRS | str | int
) -> list[BaseGeometry]:
    """Reproject shapely geometries from ``src`` to ``dst`` (vectorized, axis order x, y)."""
    src_crs, dst_crs = CRS.from_user_input(src), CRS.from_user_input(dst)
    if src_crs == dst_crs:
        return list(geometries)
    tr = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    arr = np.asarray(geometries, dtype=object)
    out = shapely.transform(arr, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    return list(out)


def write_features(
    path: str | os.PathLike[str],
    geometries: Sequence[BaseGeometry],
    properties: Sequence[Mapping[str, Any]],
    crs: CRS | str | int = 4326,
    layer: str | None = None,
) -> Path:
    """Write features atomically; the driver follows the suffix (.geojson, .gpkg, .kml).

    List and dict properties are stored as JSON text (GeoPackage has no array type); a
    ``.geojson`` is written as RFC 7946 (WGS84 required, coordinates as given).
    """
    p = Path(path)
    drivers = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".kml": "KML"}
    driver = drivers.get(p.suffix.lower())
    if driver is None:
        raise RasterFormatError(f"{p}: unknown vector suffix; use .geojson, .gpkg or .kml")
    names: list[str] = []
    for props in properties:
        for k in props:
            if k not in names:
                names.append(k)
    columns = []
    for name in names:
        values = [_storable(props.get(name)) for props in properties]
        columns.append(_column(values))
    wkb = shapely.to_wkb(np.asarray(geometries, dtype=object))
    with atomic_path(p) as tmp:
        tmp.unlink()  # GDAL refuses to overwrite with some drivers; let it create the file
        tmp_named = tmp.with_suffix(p.suffix)
        try:
            pyogrio.raw.write(
                tmp_named,
                wkb,
                columns,
                names,
                driver=driver,
                crs=CRS.from_user_input(crs).to_wkt(),
                layer=layer or p.stem,
                geometry_type="Unknown",
                promote_to_multi=False,
                **({"RFC7946": "YES", "COORDINATE_PRECISION": 9} if driver == "GeoJSON" else {}),
            )
            os.replace(tmp_named, tmp)
        finally:
            if tmp_named.exists():
                tmp_named.unlink()
    return p


def _storable(value: Any) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True)
    return value


def _column(values: list[Any]) -> np.ndarray:
    non_null = [v for v in values if v is not None]
    if non_null and all(isinstance(v, bool) for v in non_null):
        return np.array([bool(v) if v is not None else False for v in values], dtype=bool)
    if non_null and all(isinstance(v, int) and not isinstance(v, bool) for v in non_null):
        if len(non_null) == len(values):
            return np.array(values, dtype=np.int64)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if non_null and all(isinstance(v, int | float) and not isinstance(v, bool) for v in non_null):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
