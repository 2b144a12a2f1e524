"""Reading the layer of legally existing buildings (the other half of the permit atlas).

An existing-buildings file is any vector file :func:`survey.vectors.read_features` reads
(GeoJSON, GeoPackage, Shapefile, KML, ...) in any CRS: a cadastral or base-map building layer
with one polygon footprint per building and the attributes

``building_id`` (text; ``id`` is taken where ``building_id`` is absent or blank; a whole
number read as a float, ``7.0``, is ``7``), ``height_m`` (recorded height above ground in
metres, highest point; optional) and ``floors`` (optional).

Footprints are reprojected to the detection grid's CRS and invalid rings are repaired (one
warning line each). A layer without ids is accepted: its buildings are named ``B-<n>`` by their
position in the file (one warning line). An empty file, a feature without a polygon, a
footprint of no area or with coordinates outside its CRS's range, a duplicate id or a height
that is not a number >= 0 is an error naming the file, the feature and the fix.

Those errors are :class:`~survey.errors.VectorFormatError`, not the ``PermitError`` of the
permits: a building record is a feature of a vector layer whose content cannot be used, and
nothing in it is a permit (a script that catches ``PermitError`` to fix a permit register
would otherwise be sent to the wrong file).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from change_detection.permits import ExistingBuilding
from survey.errors import VectorFormatError
from survey.vectors import feature_id, read_features

__all__ = ["read_existing_buildings"]

log = logging.getLogger(__name__)

_ROLE = "existing-buildings file"


def _shown(text: str) -> str:
    """An id for a message: as it is when short and printable, else quoted and cut."""
    if len(text) <= 40 and text.isprintable() and not any(c.isspace() for c in text):
        return text
    quoted = repr(text)
    return quoted if len(quoted) <= 40 else quoted[:39] + "…"


def _footprint(geom: BaseGeometry, name: str, path: os.PathLike[str] | str) -> BaseGeometry:
    """The polygonal, valid footprint of a building; invalid rings repaired, degenerate refused."""
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise VectorFormatError(
            f"{path}: existing building {name} has coordinates outside the range of the file's "
            "CRS; check the footprint's coordinates and the CRS the file declares"
        )
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        repaired = shapely.make_valid(geom)
        parts = [
            g for g in shapely.get_parts(repaired) if g.geom_type in ("Polygon", "MultiPolygon")
        ]
        geom = shapely.union_all(parts) if parts else shapely.Polygon()
        if not geom.is_empty:
            log.warning(
                "%s: existing building %s had an invalid footprint (%s); repaired",
                path,
                name,
                reason,
            )
    if geom.is_empty or geom.area <= 0:
        raise VectorFormatError(
            f"{path}: existing building {name} has a footprint of no area (its corners are "
            "collinear or repeated); draw the footprint as a polygon"
        )
    return geom


def _number(value: Any, field: str, name: str, path: os.PathLike[str] | str) -> float | None:
    if value is None or value == "":
        return None
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise VectorFormatError(
            f"{path}: existing building {name} has {field}={value!r}, not a number; fix the "
            "attribute or remove it"
        ) from exc
    if not math.isfinite(x) or x < 0:
        raise VectorFormatError(
            f"{path}: existing building {name} has {field}={value!r}; use a number >= 0"
        )
    return x


def read_existing_buildings(
    path: str | os.PathLike[str],
    crs: CRS | str | int,
    assumptions: list[str] | None = None,
) -> list[ExistingBuilding]:
    """Read an existing-buildings layer and return its buildings in ``crs``.

    Parameters
    ----------
    path : path
        Vector file with one (multi)polygon per building (see the module docstring).
    crs : CRS
        The projected CRS of the detection grid.
    assumptions : list of str, optional
        What was assumed about the file (ids given by position) is appended here, for the
        caller's provenance record, besides the warning line.

    Returns
    -------
    list of ExistingBuilding
        In file order; footprints in ``crs`` (metres).

    Raises
    ------
    VectorFormatError
        The file has no features, a feature has no polygon, an id appears twice, or a height
        or a number of floors cannot be read; from :func:`survey.vectors.read_features`, GDAL
        cannot read the file or a geometry cannot be decoded.
    InputFileError, NotGeoreferencedError
        From :func:`survey.vectors.read_features`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from shapely.geometry import box
    >>> from survey.vectors import write_features
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "existing.geojson"
    >>> _ = write_features(f, [box(114.5, 37.07, 114.5001, 37.0701)],
    ...                    [{"building_id": "B-1", "height_m": 6.0}])
    >>> (b,) = read_existing_buildings(f, 32650)
    >>> b.building_id, b.height_m, round(b.geometry.area)
    ('B-1', 6.0, 99)
    """
    features = read_features(path, role=_ROLE)
    if len(features) == 0:
        raise VectorFormatError(
            f"{path}: the existing-buildings file has no features; give a building layer or "
            "leave --existing out"
        )
    features = features.to_crs(crs)
    buildings: list[ExistingBuilding] = []
    seen: set[str] = set()
    unnamed = 0
    for i, (geom, props) in enumerate(zip(features.geometries, features.properties, strict=True)):
        given = feature_id(props, ("building_id", "id"))
        if given is None:
            unnamed += 1
            name = f"B-{i + 1}"
        else:
            name = given
        shown = _shown(name)
        if name in seen:
            raise VectorFormatError(
                f"{path}: building_id {shown} appears twice (feature {i}); make the ids unique"
            )
        seen.add(name)
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            kind = "no geometry" if geom is None or geom.is_empty else geom.geom_type
            raise VectorFormatError(
                f"{path}: existing building {shown} (feature {i}) has {kind}; a building needs "
                "a polygon footprint (remove the feature or draw its outline)"
            )
        geom = _footprint(geom, shown, path)
        floors = _number(props.get("floors"), "floors", shown, path)
        buildings.append(
            ExistingBuilding(
                building_id=name,
                geometry=geom,
                height_m=_number(props.get("height_m"), "height_m", shown, path),
                floors=None if floors is None else round(floors),
            )
        )
    if unnamed:
        text = (
            f"{path}: {unnamed} of {len(buildings)} existing buildings have no building_id; "
            "named B-<n> by their position in the file"
        )
        log.warning("%s", text)
        if assumptions is not None:
            assumptions.append(text)
    return buildings
