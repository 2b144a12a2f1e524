"""Reading and writing vector files: site boundaries, permits, no-fly zones, leads.

Any format GDAL reads through pyogrio (GeoJSON, GeoPackage, KML, Shapefile, ...) in any CRS.
Features come back as :class:`VectorFeatures`: shapely geometries, their attributes as plain
dicts, and the CRS of the geometries. :func:`reproject_geometries` moves them to another CRS
with one reused ``pyproj.Transformer``. :func:`read_leads` is the one reader of a
``leads.geojson`` written by ``sitewatch detect``.

A file that cannot be used is one line naming the file, the feature and the fix (a polygon ring
that is not closed, a ring of fewer than four points, a CRS that cannot be parsed, broken
JSON), never a GEOS, pyogrio or JSON traceback; GDAL's warnings about a file are logged as
one line each. A missing or unreadable file is :class:`~survey.errors.InputFileError`; a file
whose content cannot be used is :class:`~survey.errors.VectorFormatError`.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.errors
import pyproj.exceptions
import shapely
import shapely.errors
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from change_detection.errors import ChangeDetectionError
from change_detection.leads import Lead, leads_from_feature_collection
from survey.errors import (
    InputFileError,
    NotGeoreferencedError,
    RasterFormatError,
    VectorFormatError,
)
from survey.rasters import atomic_path

__all__ = [
    "VectorFeatures",
    "feature_id",
    "read_features",
    "read_leads",
    "reproject_geometries",
    "write_features",
]

WGS84 = CRS.from_epsg(4326)
log = logging.getLogger(__name__)

# What a GEOS refusal of a feature's geometry means for the user, and the fix.
_GEOMETRY_FIXES = (
    (
        "do not form a closed linestring",
        "a polygon ring that is not closed",
        "repeat each ring's first point as its last",
    ),
    (
        "Invalid number of points in LinearRing",
        "a polygon ring of fewer than 4 points",
        "give every ring at least 3 corners and repeat the first point as the last",
    ),
    (
        "point array must contain 0 or >1 elements",
        "a line of a single point",
        "give every line at least two points",
    ),
)
# Attributes that name a feature in a message, in order of preference.
_NAME_FIELDS = ("permit_id", "building_id", "lead_id", "id", "name")


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
        The file does not exist or cannot be read (permissions).
    VectorFormatError
        GDAL cannot read it as a vector layer (damaged, not a vector format), or a feature's
        geometry cannot be decoded (a ring that is not closed, too few points); the message
        names the feature.
    NotGeoreferencedError
        The layer has no CRS (and is not GeoJSON), or its CRS cannot be parsed.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: {role} not found; check the path")
    if not os.access(p, os.R_OK):
        raise InputFileError(f"{p}: {role} cannot be read (permission denied); check its mode")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            meta, _, geometry, field_data = pyogrio.raw.read(
                p, layer=layer, datetime_as_string=True
            )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise VectorFormatError(
            f"{p}: {role} cannot be read ({_first_line(exc)}); pass GeoJSON, GeoPackage or KML"
        ) from exc
    except UnicodeDecodeError as exc:
        # GDAL quoted bytes of the file in its message, and they are not UTF-8
        raise VectorFormatError(
            f"{p}: {role} cannot be read (GDAL refused it, quoting bytes that are not UTF-8 "
            "text: the file is damaged or not a vector file); pass GeoJSON, GeoPackage or KML"
        ) from exc
    except ValueError as exc:
        # a value GDAL read that pyogrio cannot convert (a date in the year 12026)
        raise VectorFormatError(
            f"{p}: {role} holds a value that cannot be read ({_first_line(exc)}); correct the "
            "attribute (a date must lie in the years 1-9999) and save the file again"
        ) from exc
    for warning in caught:
        log.warning("%s: GDAL: %s", p, " ".join(str(warning.message).split()))
    crs_text = meta.get("crs")
    if crs_text and "undefined" in crs_text.lower():
        crs_text = None  # GeoPackage srs_id 0 / -1: "Undefined geographic/Cartesian SRS"
    if crs_text:
        try:
            crs = CRS.from_user_input(crs_text)
        except pyproj.exceptions.CRSError as exc:
            raise NotGeoreferencedError(
                f"{p}: {role} has a CRS that cannot be parsed ({_first_line(exc)}); "
                "save it again with a known one (e.g. EPSG:4326)"
            ) from exc
    elif p.suffix.lower() in (".geojson", ".json"):
        crs = WGS84
    else:
        raise NotGeoreferencedError(
            f"{p}: {role} has no CRS; save it with one (e.g. EPSG:4326) and try again"
        )
    names = list(meta["fields"])
    geoms = _decode_geometries(geometry, names, field_data, p, role)
    props = []
    for i in range(len(geoms)):
        props.append({name: _plain(field_data[j][i]) for j, name in enumerate(names)})
    return VectorFeatures(p, tuple(geoms), tuple(props), crs)


def _decode_geometries(
    wkb: np.ndarray | None,
    names: list[str],
    field_data: list[np.ndarray],
    path: Path,
    role: str,
) -> np.ndarray:
    """Shapely geometries of the features' WKB; one line naming the feature GEOS refuses."""
    if wkb is None:
        return np.array([], dtype=object)
    try:
        return np.asarray(shapely.from_wkb(wkb), dtype=object)
    except shapely.errors.ShapelyError:
        pass  # find the feature, below
    for i, one in enumerate(wkb):
        try:
            shapely.from_wkb(one)
        except shapely.errors.ShapelyError as exc:
            raise VectorFormatError(
                f"{path}: feature {i}{_feature_name(names, field_data, i)} of the {role} has "
                f"{_geometry_problem(exc)}"
            ) from exc
    raise AssertionError("unreachable: every feature decoded one by one")  # pragma: no cover


def _feature_name(names: list[str], field_data: list[np.ndarray], i: int) -> str:
    """`` (permit_id 'P-7')`` from the first naming attribute with a value, else ``""``."""
    for field in _NAME_FIELDS:
        if field in names:
            value = _plain(field_data[names.index(field)][i])
            if value is not None and str(value).strip():
                return f" ({field} {_quoted(str(value).strip())})"
    return ""


def _geometry_problem(exc: BaseException) -> str:
    """What is wrong with a geometry GEOS refused, and the fix: the tail of a message."""
    text = _first_line(exc)
    for needle, problem, fix in _GEOMETRY_FIXES:
        if needle in text:
            return f"{problem} ({text}); {fix}, then save the file again"
    return (
        f"a geometry that cannot be read ({text}); repair it (e.g. QGIS: Fix Geometries) and "
        "save the file again"
    )


def feature_id(properties: Mapping[str, Any], fields: Sequence[str]) -> str | None:
    """A feature's id: the first of ``fields`` with a value that is not blank, as text.

    An attribute present but empty (a ``permit_id`` column left blank, NULL) falls through to
    the next field (``id``). A whole number stored as a float (an integer column with NULLs
    read from a GeoPackage or Shapefile comes back as float) is written without ``.0``, so
    ``7.0`` is ``"7"``. Returns None when no field has a value.

    Examples
    --------
    >>> feature_id({"permit_id": "", "id": 7.0}, ("permit_id", "id"))
    '7'
    >>> feature_id({"permit_id": " P-1 "}, ("permit_id", "id"))
    'P-1'
    >>> feature_id({"permit_id": None}, ("permit_id", "id")) is None
    True
    """
    for name in fields:
        value = properties.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = "" if value is None else str(value).strip()
        if text:
            return text
    return None


def read_leads(path: str | os.PathLike[str]) -> list[Lead]:
    """Read a leads file (``leads.geojson``) written by ``sitewatch detect``.

    Parameters
    ----------
    path : path
        An RFC 7946 FeatureCollection of leads (WGS84), as written by
        :func:`change_detection.leads.leads_to_feature_collection`.

    Returns
    -------
    list of Lead
        In file order; geometries are (multi)polygons in WGS84 degrees.

    Raises
    ------
    InputFileError
        The file is missing or cannot be read.
    VectorFormatError
        The file is not UTF-8, not JSON (or JSON with NaN/Infinity), or not a
        FeatureCollection.
    ChangeDetectionError
        A feature is not a sitewatch lead (a missing or wrong property, a geometry that is not
        a polygon in longitude and latitude, an id used twice); the message names the file
        and the feature.
    """
    p = Path(path)
    fix = "pass the leads.geojson written by sitewatch detect"
    if not p.exists():
        raise InputFileError(f"{p}: leads file not found; check the path")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VectorFormatError(
            f"{p}: leads file is not UTF-8 text (byte {exc.start}); {fix}"
        ) from exc
    except OSError as exc:
        raise InputFileError(f"{p}: leads file cannot be read ({exc.strerror}); {fix}") from exc

    def refuse_constant(name: str) -> Any:
        raise VectorFormatError(f"{p}: leads file holds {name}, which JSON does not allow; {fix}")

    try:
        data = json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise VectorFormatError(
            f"{p}: leads file is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}); {fix}"
        ) from exc
    except RecursionError as exc:
        raise VectorFormatError(
            f"{p}: leads file nests JSON too deeply to be a leads file; {fix}"
        ) from exc
    if not isinstance(data, dict):
        raise VectorFormatError(
            f"{p}: leads file holds a JSON {type(data).__name__}, not a FeatureCollection; {fix}"
        )
    try:
        leads = leads_from_feature_collection(data)
    except ChangeDetectionError as exc:
        raise ChangeDetectionError(f"{p}: {exc}") from exc
    seen: set[str] = set()
    for i, lead in enumerate(leads):
        problem = _lead_geometry_problem(lead.geometry)
        if problem:
            raise ChangeDetectionError(
                f"{p}: lead {_quoted(lead.lead_id)} (feature {i}) {problem}; {fix}"
            )
        if lead.lead_id in seen:
            raise ChangeDetectionError(
                f"{p}: lead id {_quoted(lead.lead_id)} appears twice (feature {i}); lead ids are "
                f"unique in a leads file, {fix}"
            )
        seen.add(lead.lead_id)
    return leads


def _lead_geometry_problem(geom: BaseGeometry) -> str:
    """Why a lead's geometry is not a (multi)polygon in lon/lat degrees; "" when it is."""
    if geom is None or geom.is_empty:
        return "has no geometry"
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return f"is a {geom.geom_type}, not a polygon"
    xy = shapely.get_coordinates(geom)
    if not np.isfinite(xy).all():
        return "has coordinates that are not finite numbers"
    if (np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any():
        return "has coordinates outside longitude -180..180, latitude -90..90"
    return ""


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


def _quoted(text: str, limit: int = 40) -> str:
    """``repr(text)`` cut to ``limit`` characters: a value from a file, on one line."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
