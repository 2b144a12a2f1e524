"""Geometry as the registry stores it: WKB of WGS84 shapes, bounding boxes, metric areas.

Everything is stored in WGS84 (longitude, latitude), as leads are; areas and overlaps are
measured in the UTM zone of the site (:func:`survey.sites.utm_crs_for` of its centroid), where
a square metre is a square metre.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import shapely
from shapely.geometry.base import BaseGeometry

if TYPE_CHECKING:  # pyproj is imported by the calls that reproject (start-up: survey.registry)
    from pyproj import CRS

__all__ = [
    "bbox",
    "from_metric",
    "from_wkb",
    "metric_crs",
    "to_crs",
    "to_metric",
    "to_wkb",
]


def to_wkb(geometry: BaseGeometry) -> bytes:
    """WKB of a geometry (2D)."""
    return bytes(shapely.to_wkb(geometry, output_dimension=2))


def from_wkb(data: bytes) -> BaseGeometry:
    """The geometry of WKB bytes."""
    geom: BaseGeometry = shapely.from_wkb(bytes(data))
    return geom


def bbox(geometry: BaseGeometry) -> dict[str, float]:
    """The bounding box columns of a WGS84 geometry."""
    minx, miny, maxx, maxy = (float(v) for v in geometry.bounds)
    return {"min_lon": minx, "min_lat": miny, "max_lon": maxx, "max_lat": maxy}


@lru_cache(maxsize=256)
def _utm(lon_cell: int, lat_cell: int) -> CRS:
    from survey.sites import utm_crs_for  # imported when used: see survey.registry

    return utm_crs_for(lon_cell / 10.0, lat_cell / 10.0)


def metric_crs(geometry: BaseGeometry) -> CRS:
    """The UTM zone of a WGS84 geometry's bounding-box centre."""
    minx, miny, maxx, maxy = geometry.bounds
    return _utm(round((minx + maxx) * 5.0), round((miny + maxy) * 5.0))


def to_crs(geometries: Sequence[BaseGeometry], crs: CRS | str | int) -> list[BaseGeometry]:
    """WGS84 geometries in ``crs``."""
    from survey.vectors import reproject_geometries

    return reproject_geometries(list(geometries), 4326, crs)


def from_metric(geometries: Sequence[BaseGeometry], crs: CRS) -> list[BaseGeometry]:
    """Geometries in the metric ``crs`` back in WGS84."""
    from survey.vectors import reproject_geometries

    return reproject_geometries(list(geometries), crs, 4326)


def to_metric(geometries: Sequence[BaseGeometry], crs: CRS) -> list[BaseGeometry]:
    """WGS84 geometries in the metric ``crs`` (see :func:`metric_crs`)."""
    return to_crs(geometries, crs)
