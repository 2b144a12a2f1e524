"""Reading building permits for change detection.

A permits file is any vector file :func:`survey.vectors.read_features` reads (GeoJSON,
GeoPackage, KML, ...) in any CRS, with one polygon footprint per permit and the attributes

``permit_id`` (text, required; ``id`` is taken where ``permit_id`` is absent or blank; a whole
number read as a float, ``7.0``, is ``7``), ``max_height_m`` (metres above ground,
optional), ``floors`` (optional), ``valid_from`` and ``valid_to`` (ISO 8601 dates, optional:
open-ended). Footprints are reprojected to the detection grid's CRS; invalid rings are
repaired (one warning line each). An empty file is an error (an empty permit register would
turn every change into a ``no_permit`` lead; leave ``--permits`` out for a plain change report),
and so is a footprint of no area, one outside its CRS's range, or a ring that is not closed
(from :func:`survey.vectors.read_features`): one line naming the file, the permit and the fix.
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

from change_detection.errors import PermitError
from change_detection.permits import Permit, parse_date
from survey.vectors import feature_id, read_features

__all__ = ["read_permits"]

log = logging.getLogger(__name__)


def _shown(pid: str) -> str:
    """A permit id for a message: as it is when short and printable, else quoted and cut."""
    if len(pid) <= 40 and pid.isprintable() and not any(c.isspace() for c in pid):
        return pid
    text = repr(pid)
    return text if len(text) <= 40 else text[:39] + "…"


def _footprint(geom: BaseGeometry, name: str, path: os.PathLike[str] | str) -> BaseGeometry:
    """The polygonal, valid footprint of a permit; invalid rings repaired, degenerate refused."""
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise PermitError(
            f"{path}: permit {name} has coordinates outside the range of the file's CRS; check "
            "the footprint's coordinates and the CRS the file declares"
        )
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        geom = shapely.make_valid(geom)
        parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
        geom = shapely.union_all(parts) if parts else shapely.Polygon()
        if not geom.is_empty:
            log.warning("%s: permit %s had an invalid footprint (%s); repaired", path, name, reason)
    if geom.is_empty or geom.area <= 0:
        raise PermitError(
            f"{path}: permit {name} has a footprint of no area (its corners are collinear or "
            "repeated); draw the footprint as a polygon"
        )
    return geom


def _number(value: Any, field: str, pid: str, path: os.PathLike[str] | str) -> float | None:
    if value is None or value == "":
        return None
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise PermitError(
            f"{path}: permit {pid} has {field}={value!r}, not a number; fix the attribute"
        ) from exc
    if not math.isfinite(x) or x < 0:
        raise PermitError(f"{path}: permit {pid} has {field}={value!r}; use a number >= 0")
    return x


def permit_from_feature(
    geom: BaseGeometry | None, props: dict[str, Any], pid: str, path: os.PathLike[str] | str
) -> Permit:
    """One feature of a permits file as a :class:`Permit` (footprint in the feature's CRS).

    The footprint must be a (multi)polygon (an invalid one is repaired, a degenerate one
    refused); ``max_height_m`` and ``floors`` are numbers >= 0 or absent; ``valid_from`` and
    ``valid_to`` are dates or absent and in that order. Shared by :func:`read_permits` and the
    registry's permit versions (:func:`survey.registry.read_permit_versions`).

    Raises
    ------
    PermitError
        One line naming the file, the permit and the value.
    """
    name = _shown(pid)
    if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        kind = "no geometry" if geom is None or geom.is_empty else f"a {geom.geom_type}"
        raise PermitError(f"{path}: permit {name} has {kind}; a permit needs a polygon footprint")
    footprint = _footprint(geom, name, path)
    valid_from = parse_date(props.get("valid_from"), f"{path}: permit {name} valid_from")
    valid_to = parse_date(props.get("valid_to"), f"{path}: permit {name} valid_to")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise PermitError(
            f"{path}: permit {name} is valid from {valid_from} to {valid_to}, which ends "
            "before it starts; fix valid_from / valid_to"
        )
    floors = _number(props.get("floors"), "floors", name, path)
    return Permit(
        permit_id=pid,
        geometry=footprint,
        max_height_m=_number(props.get("max_height_m"), "max_height_m", name, path),
        floors=None if floors is None else round(floors),
        valid_from=valid_from,
        valid_to=valid_to,
    )


def read_permits(path: str | os.PathLike[str], crs: CRS | str | int) -> list[Permit]:
    """Read a permits file and return its permits in ``crs``.

    Parameters
    ----------
    path : path
        Vector file with one (multi)polygon per permit.
    crs : CRS
        The projected CRS of the detection grid.

    Raises
    ------
    PermitError
        The file has no features, a feature has no permit id or no polygon, a number or a date
        cannot be read, or a validity ends before it starts.
    InputFileError, VectorFormatError, NotGeoreferencedError
        From :func:`survey.vectors.read_features`.
    """
    features = read_features(path, role="permits file")
    if len(features) == 0:
        raise PermitError(
            f"{path}: the permits file has no features; give a file with permit footprints or "
            "leave --permits out"
        )
    features = features.to_crs(crs)
    permits: list[Permit] = []
    seen: set[str] = set()
    for i, (geom, props) in enumerate(zip(features.geometries, features.properties, strict=True)):
        pid = feature_id(props, ("permit_id", "id"))
        if pid is None:
            raise PermitError(
                f"{path}: feature {i} has no permit_id; add a permit_id attribute to every "
                "footprint"
            )
        if pid in seen:
            raise PermitError(f"{path}: permit_id {_shown(pid)} appears twice; make the ids unique")
        seen.add(pid)
        permits.append(permit_from_feature(geom, props, pid, path))
    return permits
