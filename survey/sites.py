"""Sites for flight planning: read a site (and no-fly zones, a DEM), plan it, write the mission.

* :func:`read_site` reads a GeoJSON / GeoPackage / KML polygon file in any CRS, unions its
  polygons and reprojects them to the UTM zone of the site's centroid (:func:`utm_crs_for`).
* :func:`read_site_area` reads the same file as a valid area in a given CRS (invalid rings
  repaired, one warning line): the form change detection crops to.
* :func:`read_nofly` reads no-fly polygons into that CRS.
* :func:`read_dem_sampler` opens any single-band GeoTIFF DEM/DSM (any CRS) and returns a
  bilinear sampler of ground elevation at (x, y) in the plan CRS (NaN outside or on nodata).
* :func:`plan_site` does all of it, runs :func:`flightplans.plan_survey` and writes the
  outputs with :func:`flightplans.write_mission_files`; the CLI and the demo call it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj.exceptions
import rasterio
import rasterio.windows
import shapely
from pyproj import CRS, Transformer
from scipy.ndimage import distance_transform_edt, map_coordinates
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from flightplans import PlanParams, SurveyPlan, plan_survey, write_mission_files
from survey.errors import NotGeoreferencedError, RasterFormatError, VectorFormatError
from survey.rasters import (
    READ_ERRORS,
    damaged_raster_error,
    open_checked,
    quiet_gdal_messages,
    quiet_nans,
)
from survey.vectors import read_features, reproject_geometries

__all__ = [
    "Site",
    "plan_site",
    "read_dem_sampler",
    "read_nofly",
    "read_site",
    "read_site_area",
    "utm_crs_for",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Site:
    """A site polygon in its UTM zone, and where it came from."""

    path: Path
    geometry: BaseGeometry
    crs: CRS


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS (EPSG 326zz north / 327zz south) containing lon, lat."""
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _polygon_parts(geoms: tuple[BaseGeometry, ...], path: Path, role: str) -> list[BaseGeometry]:
    """The non-empty polygons of a layer; an error naming the file when there is none."""
    polys = [
        g
        for geom in geoms
        if geom is not None
        for g in shapely.get_parts(geom)
        if isinstance(g, Polygon | MultiPolygon) and not g.is_empty
    ]
    if not polys:
        raise VectorFormatError(
            f"{path}: the {role} file holds no polygon; draw the {role} as a polygon"
        )
    return polys


def _check_placed(geoms: list[BaseGeometry], src: CRS, path: Path, role: str) -> list[BaseGeometry]:
    """``geoms`` in WGS84, refusing points that are no place on Earth (a latitude of 117, a
    coordinate of 1e308, a CRS that does not fit the numbers)."""
    ll = reproject_geometries(geoms, src, 4326)
    xy = shapely.get_coordinates(np.asarray(ll, dtype=object))
    bad = ~np.isfinite(xy).all(axis=1) | (np.abs(xy[:, 0]) > 180) | (np.abs(xy[:, 1]) > 90)
    if bad.any():
        raw = shapely.get_coordinates(np.asarray(geoms, dtype=object))[int(np.argmax(bad))]
        raise VectorFormatError(
            f"{path}: the {role} has a point ({raw[0]:.6g}, {raw[1]:.6g}) that is no place on "
            f"Earth in {src.name}; check the coordinate order (x = longitude / easting first) "
            "and the CRS the file declares"
        )
    return ll


def _valid_area(polys: list[BaseGeometry], path: Path, role: str) -> BaseGeometry:
    """The union of ``polys`` as a valid (multi)polygon; invalid rings repaired with a warning."""
    fixed: list[BaseGeometry] = []
    for g in polys:
        if not g.is_valid:
            log.warning(
                "%s: a %s polygon is invalid (%s); repaired as its valid parts",
                path,
                role,
                shapely.is_valid_reason(g),
            )
            g = shapely.make_valid(g)
        fixed.extend(p for p in shapely.get_parts(g) if isinstance(p, Polygon | MultiPolygon))
    area = shapely.union_all(fixed) if fixed else Polygon()
    if area.is_empty or area.area <= 0:
        raise VectorFormatError(
            f"{path}: the {role} polygons have no area (collinear or repeated corners); draw "
            f"the {role} as a polygon"
        )
    return area


def read_site(path: str | os.PathLike[str], crs: CRS | str | int | None = None) -> Site:
    """Read the polygons of a site file into ``crs`` (default: the site's UTM zone).

    An invalid (e.g. self-intersecting) polygon is passed on as it is, so that the planner
    reports it with its reason.

    Raises
    ------
    VectorFormatError
        No polygon in the file, or a point that is no place on Earth (a latitude beyond 90,
        a non-finite coordinate); and the errors of :func:`survey.vectors.read_features`.
    """
    feats = read_features(path, role="site")
    polys = _polygon_parts(feats.geometries, feats.path, "site")
    ll = _check_placed(polys, feats.crs, feats.path, "site")
    if crs is None:
        c = shapely.union_all([shapely.envelope(g) for g in ll]).centroid
        target = utm_crs_for(c.x, c.y)
    else:
        target = CRS.from_user_input(crs)
    geoms = reproject_geometries(polys, feats.crs, target)
    if len(geoms) == 1:
        geom = geoms[0]
    elif all(g.is_valid for g in geoms):
        geom = shapely.union_all(geoms)
    else:
        geom = next(g for g in geoms if not g.is_valid)
    return Site(feats.path, geom, target)


def read_site_area(path: str | os.PathLike[str], crs: CRS | str | int) -> BaseGeometry:
    """The area of a site file in ``crs``: the union of its polygons, valid (an invalid ring is
    repaired to its valid parts, with one warning line), for cropping and filtering.

    Raises
    ------
    VectorFormatError
        No polygon, polygons of no area, or a point that is no place on Earth; and the errors
        of :func:`survey.vectors.read_features`.
    """
    feats = read_features(path, role="site")
    polys = _polygon_parts(feats.geometries, feats.path, "site")
    _check_placed(polys, feats.crs, feats.path, "site")
    return _valid_area(reproject_geometries(polys, feats.crs, crs), feats.path, "site")


def read_nofly(path: str | os.PathLike[str], crs: CRS | str | int) -> list[BaseGeometry]:
    """No-fly polygons of a vector file, reprojected to ``crs`` (invalid rings repaired)."""
    feats = read_features(path, role="no-fly")
    polys = _polygon_parts(feats.geometries, feats.path, "no-fly")
    _check_placed(polys, feats.crs, feats.path, "no-fly")
    geom = _valid_area(polys, feats.path, "no-fly")
    return reproject_geometries(list(shapely.get_parts(geom)), feats.crs, crs)


def read_dem_sampler(
    path: str | os.PathLike[str],
    crs: CRS | str | int,
    bounds: tuple[float, float, float, float] | None = None,
    margin_m: float = 500.0,
    extend_m: float = 150.0,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Ground elevation sampler from a single-band DEM/DSM GeoTIFF in any CRS.

    Parameters
    ----------
    path
        The DEM (metres).
    crs
        CRS of the points that will be asked for (the plan CRS).
    bounds
        (minx, miny, maxx, maxy) in ``crs`` of the area of interest; only the DEM window
        covering it plus ``margin_m`` is read. ``None`` reads the whole DEM.
    extend_m
        A DSM from an earlier survey often ends at the site's edge while turnarounds and
        transits run past it: up to ``extend_m`` outside the DEM the elevation of its nearest
        edge is used. Nodata holes inside take the nearest valid elevation.

    Returns
    -------
    callable
        ``f(x, y) -> z`` for arrays of equal shape; bilinear, NaN farther than ``extend_m``
        outside the DEM.

    Raises
    ------
    InputFileError, NotGeoreferencedError, RasterFormatError
        A missing or damaged DEM (one line naming the file: :func:`survey.rasters.
        open_checked`, a tile that cannot be decoded), several bands, a CRS that cannot be
        transformed to ``crs``, no valid elevation over the area.
    """
    to_dem: Transformer | None = None
    with quiet_gdal_messages(), open_checked(path, "DEM") as ds:
        if ds.count != 1:
            raise RasterFormatError(f"{path}: a DEM has one band, found {ds.count}; pass a DEM")
        dem_crs = CRS.from_user_input(ds.crs.to_wkt())
        plan_crs = CRS.from_user_input(crs)
        if dem_crs != plan_crs:
            try:
                to_dem = Transformer.from_crs(plan_crs, dem_crs, always_xy=True)
            except pyproj.exceptions.ProjError as exc:
                # a local (engineering) CRS, or a damaged one, has no way to the plan's
                raise NotGeoreferencedError(
                    f"{path}: the DEM's CRS ({dem_crs.type_name} {dem_crs.name!r}) cannot be "
                    f"transformed to {plan_crs.name} ({' '.join(str(exc).split())}); give the "
                    "DEM its real CRS (gdal_edit.py -a_srs EPSG:xxxx) or reproject it "
                    "(gdalwarp -t_srs)"
                ) from exc
        window = None
        if bounds is not None:
            minx, miny, maxx, maxy = bounds
            xs = np.array([minx - margin_m, maxx + margin_m, minx - margin_m, maxx + margin_m])
            ys = np.array([miny - margin_m, miny - margin_m, maxy + margin_m, maxy + margin_m])
            if to_dem is not None:
                xs, ys = to_dem.transform(xs, ys)
            window = rasterio.windows.from_bounds(
                float(np.min(xs)),
                float(np.min(ys)),
                float(np.max(xs)),
                float(np.max(ys)),
                transform=ds.transform,
            )
            window = window.round_offsets().round_lengths()
            full = rasterio.windows.Window(0, 0, ds.width, ds.height)
            try:
                window = window.intersection(full)
            except rasterio.errors.WindowError as exc:
                raise RasterFormatError(
                    f"{path}: the DEM does not cover the site; pass a DEM of the site's area"
                ) from exc
        try:
            arr = ds.read(1, window=window, masked=True)
        except READ_ERRORS as exc:
            raise damaged_raster_error(path, exc, "the DEM heights (band 1)", window) from exc
        transform = ds.window_transform(window) if window is not None else ds.transform
    z = quiet_nans(np.ma.getdata(arr)).astype(np.float64)
    invalid = np.ma.getmaskarray(arr) | ~np.isfinite(z)
    z[invalid] = np.nan
    if invalid.all():
        raise RasterFormatError(f"{path}: the DEM has no valid elevation over the site")
    if invalid.any():
        # nodata holes (water, matching gaps) take the nearest valid elevation
        idx = distance_transform_edt(invalid, return_distances=False, return_indices=True)
        z = z[tuple(idx)]
    inv = ~transform
    px = max(abs(transform.a), abs(transform.e))
    if to_dem is not None and dem_crs.is_geographic:
        px *= 111_320.0  # degrees to metres, near enough for a distance limit
    reach = extend_m / px  # in pixels
    rows, cols = z.shape

    def sample(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if to_dem is not None:
            xa, ya = to_dem.transform(xa, ya)
        col, row = inv * (xa, ya)
        r = np.ravel(row) - 0.5
        c = np.ravel(col) - 0.5
        outside = np.maximum(np.maximum(-r, r - (rows - 1)), np.maximum(-c, c - (cols - 1)))
        coords = np.stack([np.clip(r, 0, rows - 1), np.clip(c, 0, cols - 1)])
        out = map_coordinates(z, coords, order=1, mode="nearest")
        out = np.where(outside > reach, np.nan, out)
        return np.asarray(out).reshape(np.shape(xa))

    return sample


def plan_site(
    site_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None,
    params: PlanParams,
    *,
    nofly_path: str | os.PathLike[str] | None = None,
    dem_path: str | os.PathLike[str] | None = None,
    home_lonlat: tuple[float, float] | None = None,
) -> SurveyPlan:
    """Read a site file, plan it and (if ``out_dir``) write every mission file there.

    ``home_lonlat`` is (longitude, latitude) in degrees WGS84.
    """
    site = read_site(site_path)
    nofly = read_nofly(nofly_path, site.crs) if nofly_path is not None else []
    home = None
    if home_lonlat is not None:
        tr = Transformer.from_crs(4326, site.crs, always_xy=True)
        hx, hy = tr.transform(float(home_lonlat[0]), float(home_lonlat[1]))
        home = (float(hx), float(hy))
    terrain = None
    if dem_path is not None:
        terrain = read_dem_sampler(dem_path, site.crs, bounds=site.geometry.bounds)
    plan = plan_survey(site.geometry, params, crs=site.crs, nofly=nofly, home=home, terrain=terrain)
    if out_dir is not None:
        paths = write_mission_files(plan, out_dir)
        log.info("wrote %d files to %s", len(paths), out_dir)
    return plan
