"""XYZ web-mercator tiles rendered from an orthophoto GeoTIFF, by windows with bounded memory.

The deepest zoom (the *native* zoom, picked from the ground sampling distance) is warped from
the source through a :class:`rasterio.vrt.WarpedVRT` aligned on the web-mercator tile grid, one
block of ``block`` x ``block`` tiles at a time. Every shallower level is built by averaging
2 x 2 children (alpha-weighted), depth first through the quadtree, so the source is read once
and memory stays at a few blocks whatever the size of the orthophoto. Pixels without data
(mask band, alpha band or nodata value of the source) are transparent.

Tiles are PNG files ``{z}/{x}/{y}.png`` (Google/OSM XYZ scheme, y down). The tree is written
into a temporary folder and renamed into place when complete.

Example
-------
>>> ts = render_tiles("after/orthophoto.tif", Path("review_files/tiles/after"))  # doctest: +SKIP
>>> ts.min_zoom, ts.max_zoom, ts.tile_count  # doctest: +SKIP
(16, 21, 342)
"""

from __future__ import annotations

import io
import logging
import math
import os
import shutil
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from pyproj import Transformer
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from maps.assets import make_work_dir, replace_dir
from maps.errors import MapError

__all__ = [
    "WEB_MERCATOR_HALF_WORLD_M",
    "TileSet",
    "native_zoom",
    "render_tiles",
    "tile_range",
]

log = logging.getLogger(__name__)

#: Half the width of the web-mercator world in metres (pi x 6378137).
WEB_MERCATOR_HALF_WORLD_M = math.pi * 6378137.0
TILE_SIZE = 256
_MAX_ZOOM = 25
_EPS = 1e-6  # metres; keeps a bound that falls on a tile edge out of the next tile


@dataclass(frozen=True)
class TileSet:
    """A rendered XYZ tile pyramid.

    Attributes
    ----------
    directory : Path
        Folder holding ``{z}/{x}/{y}.png``.
    min_zoom, max_zoom : int
        Shallowest and deepest rendered zoom levels (``max_zoom`` is the native zoom).
    bounds : tuple of float
        (west, south, east, north) of the rendered area in WGS84 degrees.
    tile_count : int
        Number of PNG files written.
    """

    directory: Path
    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float]
    tile_count: int

    def url_template(self, page_dir: Path) -> str:
        """Return the Leaflet URL template of the tiles relative to a page in ``page_dir``."""
        rel = Path(os.path.relpath(self.directory, page_dir)).as_posix()
        return f"{rel}/{{z}}/{{x}}/{{y}}.png"

    @property
    def leaflet_bounds(self) -> list[list[float]]:
        """Bounds as Leaflet wants them: ``[[south, west], [north, east]]``."""
        w, s, e, n = self.bounds
        return [[s, w], [n, e]]


def _tile_m(z: int) -> float:
    return 2.0 * WEB_MERCATOR_HALF_WORLD_M / (1 << z)


def native_zoom(mercator_res_m: float) -> int:
    """Zoom level whose tile pixel best matches a source pixel.

    Parameters
    ----------
    mercator_res_m : float
        Source pixel size expressed in web-mercator metres (ground metres / cos(latitude)).

    Returns
    -------
    int
        ``round(log2(2 pi R / (256 res)))``, clipped to [0, 25]: the level whose pixel size is
        within a factor sqrt(2) of the source's, so tiles neither waste nor lose detail.
    """
    if not mercator_res_m > 0:
        raise MapError(f"pixel size {mercator_res_m} m is not positive; check the geotransform")
    z = round(math.log2(2.0 * WEB_MERCATOR_HALF_WORLD_M / (TILE_SIZE * mercator_res_m)))
    return int(min(max(z, 0), _MAX_ZOOM))


def tile_range(bounds_merc: tuple[float, float, float, float], z: int) -> tuple[int, int, int, int]:
    """Tiles (x0, y0, x1, y1), inclusive, overlapping web-mercator ``bounds_merc`` at zoom ``z``."""
    left, bottom, right, top = bounds_merc
    t = _tile_m(z)
    n = (1 << z) - 1
    x0 = math.floor((left + WEB_MERCATOR_HALF_WORLD_M) / t + _EPS)
    x1 = math.ceil((right + WEB_MERCATOR_HALF_WORLD_M) / t - _EPS) - 1
    y0 = math.floor((WEB_MERCATOR_HALF_WORLD_M - top) / t + _EPS)
    y1 = math.ceil((WEB_MERCATOR_HALF_WORLD_M - bottom) / t - _EPS) - 1
    return (min(max(x0, 0), n), min(max(y0, 0), n), min(max(x1, 0), n), min(max(y1, 0), n))


def _empty_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (TILE_SIZE, TILE_SIZE), (0, 0, 0, 0)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


_EMPTY_PNG = _empty_png()


def _downsample(rgba: np.ndarray) -> np.ndarray:
    """Alpha-weighted 2 x 2 mean of an (H, W, 4) uint8 image -> (H/2, W/2, 4) uint8.

    Colours are averaged premultiplied by alpha, so transparent (nodata) pixels do not darken
    the edges of the data; alpha is the plain mean. Done by Pillow in C: premultiply
    (``RGBa``), 2 x 2 box reduction, unpremultiply.
    """
    img = Image.fromarray(np.ascontiguousarray(rgba), "RGBA").convert("RGBa").reduce(2)
    return np.asarray(img.convert("RGBA"))


class _Writer:
    """Writes tile PNGs under a root folder, encoding them on a small thread pool.

    Pillow releases the GIL while compressing, so encoding overlaps with the next GDAL warp.
    At most ``max_pending`` tiles wait in the queue (256 KiB each), which bounds memory.
    """

    def __init__(self, root: Path, compress_level: int, threads: int = 2) -> None:
        self.root = root
        self.count = 0
        self.compress_level = compress_level
        self._pool = ThreadPoolExecutor(max_workers=max(threads, 1))
        self._pending: deque[Future[None]] = deque()
        self._max_pending = 8 * max(threads, 1)
        self._dirs: set[Path] = set()

    def write(self, z: int, x: int, y: int, rgba: np.ndarray | None) -> None:
        folder = self.root / str(z) / str(x)
        if folder not in self._dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._dirs.add(folder)
        path = folder / f"{y}.png"
        self.count += 1
        if rgba is None or not rgba[..., 3].any():
            path.write_bytes(_EMPTY_PNG)
            return
        if bool((rgba[..., 3] == 255).all()):
            img = Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB")
        else:
            img = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
        while len(self._pending) >= self._max_pending:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._save, img, path))

    def _save(self, img: Image.Image, path: Path) -> None:
        img.save(path, "PNG", compress_level=self.compress_level)

    def close(self) -> None:
        """Wait for every queued tile (re-raising the first error) and stop the pool."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _band_indexes(ds: rasterio.io.DatasetReader, path: Path) -> tuple[list[int], bool]:
    """RGB band indexes of an orthophoto and whether it carries its own alpha band."""
    if ds.count < 3 or ds.dtypes[0] != "uint8":
        raise MapError(
            f"{path}: tiles need an 8-bit RGB(A) orthophoto, found {ds.count} band(s) of "
            f"{ds.dtypes[0]}; convert it with gdal_translate -ot Byte -scale"
        )
    alpha = [i + 1 for i, ci in enumerate(ds.colorinterp) if ci == ColorInterp.alpha]
    return [1, 2, 3], bool(alpha)


def render_tiles(
    src_path: str | os.PathLike[str],
    out_dir: Path,
    *,
    min_zoom: int | None = None,
    max_zoom: int | None = None,
    max_levels: int = 6,
    area: tuple[float, float, float, float] | None = None,
    block: int = 4,
    resampling: Resampling = Resampling.nearest,
    supersample: int = 2,
    compress_level: int = 1,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
) -> TileSet:
    """Render the XYZ tile pyramid of an orthophoto into ``out_dir``.

    Parameters
    ----------
    src_path : path
        8-bit RGB or RGBA GeoTIFF in any CRS, with a mask band, alpha band or nodata value.
    out_dir : Path
        Target folder (replaced atomically when the pyramid is complete).
    min_zoom, max_zoom : int, optional
        Zoom range. By default ``max_zoom`` is the native zoom (:func:`native_zoom`) and
        ``min_zoom`` is the level at which the whole raster fits in about one tile, but at most
        ``max_levels - 1`` levels shallower and at least one level shallower.
    area : tuple of float, optional
        (west, south, east, north) in WGS84: render only the tiles overlapping this box
        (for the map view of one lead).
    block : int
        Tiles per side warped from the source in one read (memory ~ 4 x (256 block)^2 bytes).
    resampling : Resampling
        Warp kernel for the native level; shallower levels are 2 x 2 alpha-weighted means.
    supersample : int
        The native level is warped on a grid ``supersample`` times finer and box-averaged
        down (power of two). Nearest with 2 x supersampling is as smooth as bilinear and
        about 4 times faster in GDAL's masked warp path.
    compress_level : int
        zlib level of the PNGs (1 = fast, 9 = small).
    threads : int
        PNG encoder threads (GDAL warps in the calling thread meanwhile).
    progress : callable, optional
        Called with the number of tiles written after each block.

    Returns
    -------
    TileSet
    """
    path = Path(src_path)
    if not path.is_file():
        raise MapError(f"{path}: orthophoto not found; check the path")
    for label, value in (("block", block), ("supersample", supersample)):
        if value < 1 or value & (value - 1):
            raise MapError(f"{label}={value} must be a power of two (1, 2, 4, 8)")
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), rasterio.open(path) as src:
        if src.crs is None:
            raise MapError(f"{path}: orthophoto has no CRS; tiles cannot be placed on the map")
        indexes, has_alpha = _band_indexes(src, path)
        merc_bounds = _mercator_extent(src, path, area)
        min_zoom, zmax = _zoom_range(src, merc_bounds, min_zoom, max_zoom, max_levels)
        vrt_opts = _native_grid(merc_bounds, zmax, supersample)
        vrt_opts["resampling"] = resampling
        if not has_alpha:
            vrt_opts["add_alpha"] = True
        with WarpedVRT(src, **vrt_opts) as vrt:
            alpha_index = [i + 1 for i, ci in enumerate(vrt.colorinterp) if ci == ColorInterp.alpha]
            if not alpha_index:
                raise MapError(f"{path}: cannot derive transparency for nodata pixels")
            read_indexes = [*indexes, alpha_index[-1]]
            west, south, east, north = transform_bounds("EPSG:3857", "EPSG:4326", *merc_bounds)
            out_dir = Path(out_dir)
            tmp_root = make_work_dir(out_dir)
            try:
                writer = _Writer(tmp_root, compress_level, threads)
                pyramid = _Pyramid(
                    vrt,
                    read_indexes,
                    writer,
                    merc_bounds,
                    (min_zoom, zmax),
                    block,
                    supersample,
                    progress,
                )
                x0, y0, x1, y1 = tile_range(merc_bounds, min_zoom)
                try:
                    for ty in range(y0, y1 + 1):
                        for tx in range(x0, x1 + 1):
                            pyramid.render(min_zoom, tx, ty)
                finally:
                    writer.close()
                replace_dir(tmp_root, out_dir)
            finally:
                if tmp_root.exists():
                    shutil.rmtree(tmp_root, ignore_errors=True)
    log.info("%s: %d tiles, zoom %d..%d, into %s", path.name, writer.count, min_zoom, zmax, out_dir)
    return TileSet(out_dir, min_zoom, zmax, (west, south, east, north), writer.count)


def _mercator_extent(
    src: rasterio.io.DatasetReader, path: Path, area: tuple[float, float, float, float] | None
) -> tuple[float, float, float, float]:
    """The orthophoto's extent in Web Mercator metres, cut to ``area`` (WGS84) if given."""
    merc_bounds = transform_bounds(src.crs, "EPSG:3857", *src.bounds, densify_pts=21)
    if area is None:
        return merc_bounds
    aw, as_, ae, an = transform_bounds("EPSG:4326", "EPSG:3857", *area, densify_pts=21)
    merc_bounds = (
        max(merc_bounds[0], aw),
        max(merc_bounds[1], as_),
        min(merc_bounds[2], ae),
        min(merc_bounds[3], an),
    )
    if merc_bounds[0] >= merc_bounds[2] or merc_bounds[1] >= merc_bounds[3]:
        raise MapError(f"{path}: area {area} does not overlap the orthophoto")
    return merc_bounds


def _zoom_range(
    src: rasterio.io.DatasetReader,
    merc_bounds: tuple[float, float, float, float],
    min_zoom: int | None,
    max_zoom: int | None,
    max_levels: int,
) -> tuple[int, int]:
    """(min, max) zoom: the native zoom down to about one tile (see :func:`render_tiles`)."""
    if max_zoom is None:
        max_zoom = native_zoom(_mercator_pixel_size(src))
    if min_zoom is None:
        extent = max(merc_bounds[2] - merc_bounds[0], merc_bounds[3] - merc_bounds[1])
        px = extent / (_tile_m(max_zoom) / TILE_SIZE)
        fit = math.ceil(math.log2(max(px / TILE_SIZE, 1.0)))
        min_zoom = max(0, max_zoom - min(max(fit, 1), max_levels - 1))
    if not 0 <= min_zoom <= max_zoom <= _MAX_ZOOM:
        raise MapError(f"zoom range {min_zoom}..{max_zoom} is not within 0..{_MAX_ZOOM}")
    return min_zoom, max_zoom


def _native_grid(
    merc_bounds: tuple[float, float, float, float], zmax: int, supersample: int
) -> dict[str, object]:
    """WarpedVRT options of the native level's tiles over ``merc_bounds``, ``supersample``
    times finer than the tiles' pixels."""
    rx0, ry0, rx1, ry1 = tile_range(merc_bounds, zmax)
    res = _tile_m(zmax) / TILE_SIZE / supersample
    return {
        "crs": "EPSG:3857",
        "transform": Affine(
            res,
            0.0,
            -WEB_MERCATOR_HALF_WORLD_M + rx0 * _tile_m(zmax),
            0.0,
            -res,
            WEB_MERCATOR_HALF_WORLD_M - ry0 * _tile_m(zmax),
        ),
        "width": (rx1 - rx0 + 1) * TILE_SIZE * supersample,
        "height": (ry1 - ry0 + 1) * TILE_SIZE * supersample,
    }


def _mercator_pixel_size(src: rasterio.io.DatasetReader) -> float:
    """Size of a source pixel at the raster centre, in web-mercator metres (mean of x, y)."""
    t = src.transform
    cx, cy = t.c + t.a * src.width / 2, t.f + t.e * src.height / 2
    tr = Transformer.from_crs(src.crs, "EPSG:3857", always_xy=True)
    xs, ys = tr.transform([cx, cx + t.a, cx], [cy, cy, cy + t.e])
    dx = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    dy = math.hypot(xs[2] - xs[0], ys[2] - ys[0])
    return (dx + dy) / 2


class _Pyramid:
    """Depth-first quadtree renderer: blocks warped at the native zoom, parents averaged."""

    def __init__(
        self,
        vrt: WarpedVRT,
        indexes: list[int],
        writer: _Writer,
        merc_bounds: tuple[float, float, float, float],
        zooms: tuple[int, int],
        block: int,
        supersample: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.vrt = vrt
        self.indexes = indexes
        self.writer = writer
        zmin, zmax = zooms
        self.zmax = zmax
        self.supersample = supersample
        self.ranges = {z: tile_range(merc_bounds, z) for z in range(zmin, zmax + 1)}
        self.origin = self.ranges[zmax][:2]
        levels_per_block = int(math.log2(block))
        self.block_zoom = max(zmin, zmax - levels_per_block)
        self.progress = progress

    def _in_range(self, z: int, x: int, y: int) -> bool:
        x0, y0, x1, y1 = self.ranges[z]
        return x0 <= x <= x1 and y0 <= y <= y1

    def render(self, z: int, x: int, y: int) -> np.ndarray | None:
        """Write tile (z, x, y) and every descendant; return its RGBA array (None if empty)."""
        if not self._in_range(z, x, y):
            return None
        if z == self.block_zoom:
            return self._render_block(z, x, y)
        half = TILE_SIZE
        mosaic = np.zeros((2 * half, 2 * half, 4), np.uint8)
        any_data = False
        for dy in (0, 1):
            for dx in (0, 1):
                child = self.render(z + 1, 2 * x + dx, 2 * y + dy)
                if child is not None:
                    mosaic[dy * half : (dy + 1) * half, dx * half : (dx + 1) * half] = child
                    any_data = True
        tile = _downsample(mosaic) if any_data else None
        self.writer.write(z, x, y, tile)
        return tile if tile is not None and tile[..., 3].any() else None

    def _render_block(self, z: int, x: int, y: int) -> np.ndarray | None:
        n = 1 << (self.zmax - z)
        gx0, gy0, gx1, gy1 = self.ranges[self.zmax]
        cx0, cy0 = x * n, y * n
        cx1, cy1 = min(cx0 + n - 1, gx1), min(cy0 + n - 1, gy1)
        rx0, ry0 = max(cx0, gx0), max(cy0, gy0)
        data = np.zeros((n * TILE_SIZE, n * TILE_SIZE, 4), np.uint8)
        if rx0 <= cx1 and ry0 <= cy1:
            ox, oy = self.origin
            ss = TILE_SIZE * self.supersample
            win = Window(
                (rx0 - ox) * ss, (ry0 - oy) * ss, (cx1 - rx0 + 1) * ss, (cy1 - ry0 + 1) * ss
            )
            arr = np.moveaxis(self.vrt.read(indexes=self.indexes, window=win), 0, -1)
            for _ in range(int(math.log2(self.supersample))):
                arr = _downsample(arr)
            r0, c0 = (ry0 - cy0) * TILE_SIZE, (rx0 - cx0) * TILE_SIZE
            data[r0 : r0 + arr.shape[0], c0 : c0 + arr.shape[1]] = arr
        level = data
        for zz in range(self.zmax, z - 1, -1):
            k = 1 << (zz - z)
            size = level.shape[0] // k
            for j in range(k):
                for i in range(k):
                    tx, ty = x * k + i, y * k + j
                    if self._in_range(zz, tx, ty):
                        tile = level[j * size : (j + 1) * size, i * size : (i + 1) * size]
                        self.writer.write(zz, tx, ty, tile)
            if zz > z:
                level = _downsample(level)
        if self.progress is not None:
            self.progress(self.writer.count)
        return level if level[..., 3].any() else None
