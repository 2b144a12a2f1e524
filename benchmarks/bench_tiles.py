"""Tiles per second rendering a large orthophoto, against reading the same pixels.

A tiled, DEFLATE-compressed 8-bit RGB GeoTIFF with a mask band (8000 x 8000 px at 5 cm in
EPSG:32650; 2000 x 2000 in quick mode) is written to a temporary folder. The baseline is the
time merely to read every 1024 x 1024 window of it (RGB and mask) with rasterio; the measured
figure is :func:`maps.tiles.render_tiles` (warp to web mercator, pyramid, PNG encoding). Peak
traced memory (numpy included) is compared with the decoded size of the raster: bounded
rendering keeps it a small, size-independent fraction.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from _common import Result, traced_peak_mb
from affine import Affine
from rasterio.windows import Window

from maps.tiles import render_tiles
from survey.rasters import write_geotiff

BENCH = "tiles"


def _write_ortho(path: Path, n: int) -> Path:
    """Write an n x n RGB ortho by row strips (the generator itself stays bounded too)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    rgb = np.empty((3, n, n), np.uint8)
    rgb[0] = (128 + 60 * np.sin(xx / 97.0) + rng.normal(0, 8, (n, n))).clip(0, 255)
    rgb[1] = (128 + 60 * np.cos(yy / 131.0)).clip(0, 255)
    rgb[2] = ((xx + yy) / (2 * n) * 255).astype(np.uint8)
    del yy, xx
    valid = np.ones((n, n), bool)
    valid[: n // 10, : n // 3] = False  # a corner without data
    return write_geotiff(
        path, rgb, transform=Affine(0.05, 0, 200_000, 0, -0.05, 2_500_000), crs=32650, mask=valid
    )


def _read_all(path: Path, step: int = 1024) -> int:
    total = 0
    with rasterio.open(path) as ds:
        for r in range(0, ds.height, step):
            for c in range(0, ds.width, step):
                w = Window(c, r, min(step, ds.width - c), min(step, ds.height - r))
                total += int(ds.read(window=w).shape[1]) + int(ds.dataset_mask(window=w).shape[0])
    return total


def run(quick: bool) -> list[Result]:
    n = 2000 if quick else 8000
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench_tiles_") as tmp:
        src = _write_ortho(Path(tmp) / "ortho.tif", n)
        _read_all(src)  # warm the OS cache for both measurements
        t0 = time.perf_counter()
        _read_all(src)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        ts = render_tiles(src, Path(tmp) / "tiles")
        t_tiles = time.perf_counter() - t0
        rate = ts.tile_count / t_tiles
        read_rate = ts.tile_count / t_read
        results.append(
            Result(
                BENCH,
                f"render_tiles {n}x{n} ({ts.tile_count} tiles, z{ts.min_zoom}-{ts.max_zoom})",
                t_tiles,
                "s",
                t_read,
                "rasterio read of every window",
                target="informational",
                note=f"{rate:.0f} tiles/s",
            )
        )
        results.append(
            Result(
                BENCH,
                "tiles per second",
                rate,
                "tiles/s",
                read_rate,
                "tiles/s if only reading",
                target="informational",
            )
        )
        peak = traced_peak_mb(lambda: render_tiles(src, Path(tmp) / "tiles2"))
        raster_mb = 4 * n * n / 2**20  # RGB + mask, decoded
        results.append(
            Result(
                BENCH,
                "peak traced memory",
                peak,
                "MiB",
                raster_mb,
                "decoded raster size",
                target="< 64 MiB, size-independent",
                ok=peak < 64,
            )
        )
    return results
