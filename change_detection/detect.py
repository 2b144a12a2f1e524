"""Orchestration of change detection on two epochs on one grid, chunked with halos.

:func:`detect_changes` takes two :class:`Epoch` records (xarray ``DataArray`` layers, numpy or
dask backed, already on one grid: same CRS, transform and shape) and returns the change
objects and the per-pixel class raster.

How it scales: the grid is cut into square chunks (``DetectParams.chunk_px``, a multiple of the
coarse ground cell). With DSMs, a coarse layer is computed first on a grid decimated by the
cell size (block minimum of the before DSM opened into a ground surface) with
``dask.array.map_overlap``; when a chunk is wider than the ground filter's
reach (the default 1024 px chunks are), each block opens the coarse minima of itself and its
eight neighbours instead, so it waits for the DSM of its neighbours only. Every fine chunk is
then extended by a halo (``dask.array.overlap.overlap``, the halo exchange of
``map_overlap``) wide enough for every neighbourhood operation of
:mod:`change_detection.change`, classified, trimmed back to its core, and its regions are
labelled into pieces (:mod:`change_detection.objects`). Pieces that touch across chunk seams
are joined, so an object straddling chunks comes out exactly once, and a chunked run returns
the same objects as a whole-array run. Dask reads ahead and a chunk's data lives until its
neighbours' blocks are done, so the chunk grid is computed in square groups
(``DetectParams.group_px``, at most 8 x 8 chunks by default) one after the other, each
reading the ring of chunks around it for its halos; after each block the heap's free pages
go back to the system (glibc keeps what worker threads freed otherwise). Peak memory is then
bounded by a group, not the raster (measured for the whole pipeline: 0.94 GB at 8192 px,
1.8 GB at 20480 px, inputs with DSMs). ``scheduler`` may be a ``dask.distributed.Client``.

RGB-only mode (:mod:`change_detection.spectral`) first sums exact histograms of both
orthophotos over every chunk (one read) for the scene statistics and the radiometric
normalisation; each chunk then gets the RGB-only halo (:meth:`RgbScale.halo_px`), its
segments are labelled into pieces (:func:`change_detection.objects.extract_segment_pieces`),
and the pieces are joined across seams and judged as whole segments
(:func:`change_detection.objects.merge_segment_pieces`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from dask.base import tokenize

from change_detection.change import (
    CODE_NODATA,
    ChangeLayers,
    PixelScale,
    block_minimum,
    classify_height_change,
    ground_surface,
    pixel_scale,
    upsample,
)
from change_detection.errors import ChangeDetectionError, GridMismatchError
from change_detection.objects import (
    BlockPieces,
    BlockSegments,
    ChangeObject,
    extract_pieces,
    extract_segment_pieces,
    merge_pieces,
    merge_segment_pieces,
)
from change_detection.params import DetectParams
from change_detection.spectral import (
    RgbScale,
    SceneStats,
    classify_rgb_change,
    rgb_scale,
    scene_histograms,
    scene_stats,
)

__all__ = ["ChangeResult", "Epoch", "detect_changes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Epoch:
    """One survey epoch on the common grid.

    Attributes
    ----------
    rgb : DataArray of uint8, dims (band, y, x), 3 bands
        Orthophoto with CRS and transform (rioxarray).
    valid : DataArray of bool, dims (y, x)
        True where the orthophoto has data.
    dsm : DataArray of float32, dims (y, x), or None
        Surface heights in metres, NaN for nodata; None for an orthophoto-only epoch.
    nir : DataArray of uint8, dims (y, x), or None
        Near-infrared band of a multispectral orthophoto, scaled to 8 bits like ``rgb``;
        when present, vegetation is told by NDVI rather than by RGB indices.
    """

    rgb: xr.DataArray
    valid: xr.DataArray
    dsm: xr.DataArray | None = None
    nir: xr.DataArray | None = None


@dataclass(frozen=True)
class ChangeResult:
    """What :func:`detect_changes` found.

    Attributes
    ----------
    objects : tuple of ChangeObject
        Changes that passed the area and height filters, in the grid CRS.
    codes : DataArray of uint8, dims (y, x), or None
        Per-pixel classes (:data:`change_detection.change.CHANGE_CODES`); None when they were
        streamed to ``codes_sink`` instead.
    mode : str
        ``"dsm"`` or ``"rgb_only"``.
    crs : object
        CRS of the grid (as rioxarray reports it).
    transform : Affine
    shape : (int, int)
    scale : PixelScale
    n_chunks : int
    """

    objects: tuple[ChangeObject, ...]
    codes: xr.DataArray | None
    mode: str
    crs: Any
    transform: Affine
    shape: tuple[int, int]
    scale: PixelScale
    n_chunks: int


@dataclass(frozen=True)
class _BlockResult:
    codes: np.ndarray
    pieces: BlockPieces | BlockSegments


def _check_grid(before: Epoch, after: Epoch) -> tuple[Affine, Any, tuple[int, int]]:
    ref = before.rgb
    shape = (ref.sizes["y"], ref.sizes["x"])
    transform = ref.rio.transform()
    crs = ref.rio.crs
    layers = {
        "before valid": before.valid,
        "after rgb": after.rgb,
        "after valid": after.valid,
        "before dsm": before.dsm,
        "after dsm": after.dsm,
        "before nir": before.nir,
        "after nir": after.nir,
    }
    for name, arr in layers.items():
        if arr is None:
            continue
        if name.endswith("nir") and arr.dims != ("y", "x"):
            raise ChangeDetectionError(
                f"{name} has dims {arr.dims}; give the near-infrared band as one (y, x) layer"
            )
        if (arr.sizes["y"], arr.sizes["x"]) != shape:
            raise GridMismatchError(
                f"{name} is {arr.sizes['y']}x{arr.sizes['x']} px but the before orthophoto is "
                f"{shape[0]}x{shape[1]}; bring both epochs onto one grid (align_epoch) first"
            )
        other = arr.rio.transform()
        if not other.almost_equals(transform, precision=1e-6):
            raise GridMismatchError(
                f"{name} has transform {tuple(other)[:6]}, the before orthophoto "
                f"{tuple(transform)[:6]}; bring both epochs onto one grid (align_epoch) first"
            )
        if arr.rio.crs is not None and crs is not None and arr.rio.crs != crs:
            raise GridMismatchError(
                f"{name} is in {arr.rio.crs}, the before orthophoto in {crs}; reproject first"
            )
    if before.rgb.sizes.get("band") != 3 or after.rgb.sizes.get("band") != 3:
        raise ChangeDetectionError("orthophotos must have exactly 3 bands (R, G, B)")
    if (before.dsm is None) != (after.dsm is None):
        raise ChangeDetectionError(
            "only one epoch has a DSM; give both DSMs for height mode or neither for RGB-only"
        )
    return transform, crs, shape


def _axis_chunks(n: int, size: int, min_last: int) -> tuple[int, ...]:
    sizes = [size] * (n // size)
    rem = n - size * len(sizes)
    if rem:
        if sizes and rem < min_last:
            sizes[-1] += rem
        else:
            sizes.append(rem)
    return tuple(sizes) if sizes else (n,)


def _as_dask(arr: xr.DataArray, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    data = arr.data
    if isinstance(data, da.Array):
        return data.rechunk(chunks)
    return da.from_array(np.asarray(data), chunks=chunks)


def _process_block(
    rgb_b: np.ndarray,
    rgb_a: np.ndarray,
    valid_b: np.ndarray,
    valid_a: np.ndarray,
    dsm_b: np.ndarray | None,
    dsm_a: np.ndarray | None,
    coarse_b: np.ndarray,
    unused: None,
    nir_b: np.ndarray | None = None,
    nir_a: np.ndarray | None = None,
    *,
    block: tuple[int, int],
    pads: tuple[int, int, int, int],
    origin: tuple[int, int],
    params: DetectParams,
    scale: PixelScale,
    min_pixels: int,
) -> _BlockResult:
    shape = valid_b.shape
    valid = np.asarray(valid_b, bool) & np.asarray(valid_a, bool)
    # height mode only: RGB-only blocks go through _process_rgb_block
    assert dsm_b is not None and dsm_a is not None
    ground = upsample(coarse_b, scale.cell, shape)
    layers: ChangeLayers = classify_height_change(
        rgb_b, rgb_a, valid, dsm_b, dsm_a, ground, params, scale, nir_b, nir_a
    )
    top, bottom, left, right = pads
    rows = slice(top, shape[0] - bottom)
    cols = slice(left, shape[1] - right)
    core = ChangeLayers(
        codes=layers.codes[rows, cols],
        dh=None if layers.dh is None else layers.dh[rows, cols],
        height_after=None if layers.height_after is None else layers.height_after[rows, cols],
        interior=layers.interior[rows, cols],
        planar_vegetation_colour=None
        if layers.planar_vegetation_colour is None
        else layers.planar_vegetation_colour[rows, cols],
    )
    pieces = extract_pieces(core, block, origin[0], origin[1], min_pixels)
    out = _BlockResult(codes=np.ascontiguousarray(core.codes), pieces=pieces)
    del layers, core, ground, valid
    _release_freed_memory(min_interval_s=1.0)
    return out


def _process_rgb_block(
    rgb_b: np.ndarray,
    rgb_a: np.ndarray,
    valid_b: np.ndarray,
    valid_a: np.ndarray,
    nir_b: np.ndarray | None = None,
    nir_a: np.ndarray | None = None,
    *,
    block: tuple[int, int],
    pads: tuple[int, int, int, int],
    origin: tuple[int, int],
    params: DetectParams,
    rgb: RgbScale,
    scene: SceneStats,
) -> _BlockResult:
    shape = valid_b.shape
    valid = np.asarray(valid_b, bool) & np.asarray(valid_a, bool)
    layers = classify_rgb_change(rgb_b, rgb_a, valid, scene, params, rgb, nir_b, nir_a)
    top, bottom, left, right = pads
    core = layers.crop(slice(top, shape[0] - bottom), slice(left, shape[1] - right))
    pieces = extract_segment_pieces(core, block, origin[0], origin[1], scene, params, rgb)
    out = _BlockResult(codes=np.ascontiguousarray(core.codes), pieces=pieces)
    del layers, core, valid
    _release_freed_memory(min_interval_s=1.0)
    return out


def _scene_of(
    rgb_b: da.Array,
    rgb_a: da.Array,
    valid_b: da.Array,
    valid_a: da.Array,
    cell: int,
    params: DetectParams,
    scheduler: Any,
) -> SceneStats:
    """Scene statistics of the whole grid: exact histograms of every chunk, summed."""
    parts = []
    db, dba = rgb_b.to_delayed(optimize_graph=False), rgb_a.to_delayed(optimize_graph=False)
    dvb, dva = valid_b.to_delayed(optimize_graph=False), valid_a.to_delayed(optimize_graph=False)
    hist = dask.delayed(_scene_block, pure=True)
    for i in range(dvb.shape[0]):
        for j in range(dvb.shape[1]):
            parts.append(
                hist(db[0, i, j], dba[0, i, j], dvb[i, j], dva[i, j], cell, params.rgb_saturated_dn)
            )
    (blocks,) = dask.compute(parts, scheduler=scheduler, optimize_graph=False)
    return scene_stats(np.sum(blocks, axis=0), params)


def _scene_block(
    rgb_b: np.ndarray,
    rgb_a: np.ndarray,
    valid_b: np.ndarray,
    valid_a: np.ndarray,
    cell: int,
    saturated_dn: int,
) -> np.ndarray:
    return scene_histograms(
        rgb_b,
        rgb_a,
        np.asarray(valid_b, bool) & np.asarray(valid_a, bool),
        cell,
        saturated_dn=saturated_dn,
    )


def _ground_block(
    tiles: list[list[np.ndarray]],
    edges: tuple[bool, bool, bool, bool],
    reach: tuple[int, int],
    halo: tuple[int, int],
    window_cells: int,
) -> np.ndarray:
    """Ground of one block and its halo from the coarse minima of it and its neighbours.

    ``tiles`` is the 3 x 3 (fewer at the raster's edges) layout of coarse-minimum blocks,
    ``edges`` says whether there is a neighbour above, below, left and right. Only ``reach``
    (rows, cols) cells of each neighbour are used; the result is the core block with ``halo``
    (rows, cols) cells on the sides that have a neighbour. Exact (equal to
    :func:`ground_surface` of the whole grid) when ``reach`` is the halo plus the filter's
    support, or the neighbour ends at the raster's edge.
    """
    above, below, left, right = edges
    (ry, rx), (hy, hx) = reach, halo
    rows = []
    for r, row in enumerate(tiles):
        cut_rows = slice(-ry, None) if (above and r == 0) else slice(None)
        if below and r == len(tiles) - 1:
            cut_rows = slice(0, ry)
        parts = []
        for c, tile in enumerate(row):
            cut_cols = slice(-rx, None) if (left and c == 0) else slice(None)
            if right and c == len(row) - 1:
                cut_cols = slice(0, rx)
            parts.append(tile[cut_rows, cut_cols])
        rows.append(np.concatenate(parts, axis=1))
    coarse = np.concatenate(rows, axis=0)
    core = tiles[1 if above else 0][1 if left else 0].shape
    top = rows[0].shape[0] if above else 0
    lft = tiles[0][0][:, slice(-rx, None)].shape[1] if left else 0
    ground = ground_surface(coarse, window_cells)
    return ground[
        top - (hy if above else 0) : top + core[0] + (hy if below else 0),
        lft - (hx if left else 0) : lft + core[1] + (hx if right else 0),
    ]


def _codes_of(result: _BlockResult) -> np.ndarray:
    return result.codes


def _pieces_of(result: _BlockResult) -> BlockPieces | BlockSegments:
    return result.pieces


def detect_changes(
    before: Epoch,
    after: Epoch,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    *,
    codes_sink: MutableMapping[Any, Any] | Any = None,
    sink_lock: Any = None,
    scheduler: Any = None,
) -> ChangeResult:
    """Find the changes between two epochs on one grid.

    Parameters
    ----------
    before, after : Epoch
        On the same grid (the after epoch co-registered onto the before one). With both DSMs
        the height mode runs; with neither, the RGB-only mode (weaker). An epoch with a
        near-infrared band (``nir``) tells vegetation by NDVI where it decides: the after
        epoch for height gains, the before epoch for losses (either in RGB-only mode).
    params : DetectParams
    codes_sink : object supporting ``sink[(row_slice, col_slice)] = block``, optional
        Where to stream the per-pixel class raster (for example a windowed GeoTIFF writer);
        when None the classes are returned in memory as ``ChangeResult.codes``.
    sink_lock : lock, optional
        Lock held while writing to ``codes_sink`` (a ``threading.Lock`` or a
        ``distributed.Lock``).
    scheduler : str or dask.distributed.Client, optional
        Dask scheduler; by default ``"synchronous"`` for one chunk and ``"threads"`` otherwise.

    Returns
    -------
    ChangeResult

    Raises
    ------
    GridMismatchError
        The layers are not on one grid.
    ChangeDetectionError
        Only one DSM, not 3 bands, or a non-square pixel.

    Examples
    --------
    Paint a 6 m x 10 m, 6 m tall box into the after DSM and find exactly it:

    >>> import numpy as np, rioxarray, xarray as xr
    >>> from affine import Affine
    >>> t = Affine(0.1, 0, 500000, 0, -0.1, 4000000)
    >>> def grid(a):
    ...     dims = ("band", "y", "x") if a.ndim == 3 else ("y", "x")
    ...     return xr.DataArray(a, dims=dims).rio.write_crs(32650).rio.write_transform(t)
    >>> rgb, ok = grid(np.full((3, 200, 200), 120, np.uint8)), grid(np.ones((200, 200), bool))
    >>> dsm = np.zeros((200, 200), np.float32)
    >>> new = dsm.copy(); new[50:110, 40:140] = 6.0
    >>> result = detect_changes(Epoch(rgb, ok, grid(dsm)), Epoch(rgb, ok, grid(new)))
    >>> [(o.kind, round(o.area_m2, 1), o.height_gain_m) for o in result.objects]
    [('new', 60.0, 6.0)]
    """
    transform, crs, shape = _check_grid(before, after)
    gx, gy = abs(transform.a), abs(transform.e)
    if not math.isclose(gx, gy, rel_tol=0.01) or transform.b or transform.d:
        raise ChangeDetectionError(
            f"the grid has {gx} x {gy} pixels or a rotation; resample to square, north-up "
            "pixels (gdalwarp -tr) first"
        )
    scale = pixel_scale(params, (gx + gy) / 2)
    rgb_only = before.dsm is None
    rgb = rgb_scale(params, scale)
    ground_per_block = False
    cell = scale.cell
    halo = rgb.halo_px() if rgb_only else scale.halo_px()
    size = max(cell, (params.chunk_px // cell) * cell)
    row_chunks = _axis_chunks(shape[0], size, max(halo, cell))
    col_chunks = _axis_chunks(shape[1], size, max(halo, cell))
    crow = tuple(-(-s // cell) for s in row_chunks)
    ccol = tuple(-(-s // cell) for s in col_chunks)
    ny, nx = len(row_chunks), len(col_chunks)
    log.info(
        "change detection (%s) on %dx%d px in %dx%d chunks, halo %d px, ground cell %d px",
        "rgb_only" if rgb_only else "dsm",
        shape[0],
        shape[1],
        ny,
        nx,
        halo,
        cell,
    )

    rgb_b = _as_dask(before.rgb, ((3,), row_chunks, col_chunks))
    rgb_a = _as_dask(after.rgb, ((3,), row_chunks, col_chunks))
    valid_b = _as_dask(before.valid, (row_chunks, col_chunks))
    valid_a = _as_dask(after.valid, (row_chunks, col_chunks))
    hy = halo if ny > 1 else 0
    hx = halo if nx > 1 else 0
    fine_depth2 = {0: hy, 1: hx}
    fine_depth3 = {0: 0, 1: hy, 2: hx}
    cy, cx = hy // cell, hx // cell
    inputs: list[da.Array] = [
        da.overlap.overlap(rgb_b, depth=fine_depth3, boundary="none"),
        da.overlap.overlap(rgb_a, depth=fine_depth3, boundary="none"),
        da.overlap.overlap(valid_b, depth=fine_depth2, boundary="none"),
        da.overlap.overlap(valid_a, depth=fine_depth2, boundary="none"),
    ]
    # Near-infrared bands, when given, with the same halo as the orthophotos.
    nir_inputs: list[da.Array | None] = [
        None
        if epoch.nir is None
        else da.overlap.overlap(
            _as_dask(epoch.nir, (row_chunks, col_chunks)), depth=fine_depth2, boundary="none"
        )
        for epoch in (before, after)
    ]
    if not rgb_only:
        assert before.dsm is not None and after.dsm is not None
        dsm_b = _as_dask(before.dsm, (row_chunks, col_chunks)).astype(np.float32)
        dsm_a = _as_dask(after.dsm, (row_chunks, col_chunks)).astype(np.float32)
        cmin = dsm_b.map_blocks(
            block_minimum, cell, chunks=(crow, ccol), dtype=np.float32, meta=np.zeros((0, 0))
        )
        gh = scale.ground_halo_cells()
        inputs += [
            da.overlap.overlap(dsm_b, depth=fine_depth2, boundary="none"),
            da.overlap.overlap(dsm_a, depth=fine_depth2, boundary="none"),
        ]
        # The ground of a block and its halo comes from the coarse minima of the block and its
        # eight neighbours when a chunk is wider than the ground filter's reach, so a block
        # waits for the DSM of its neighbours only, not of theirs (less held in memory).
        ground_per_block = size // cell >= gh + max(cy, cx)
        if ground_per_block:
            inputs.append(cmin)
        else:
            ground = da.map_overlap(
                ground_surface,
                cmin,
                depth={0: _depth(gh, crow), 1: _depth(gh, ccol)},
                boundary="none",
                dtype=np.float32,
                window_cells=scale.ground_cells,
            ).rechunk((crow, ccol))
            inputs.append(da.overlap.overlap(ground, depth={0: cy, 1: cx}, boundary="none"))
    if scheduler is None:
        scheduler = "synchronous" if ny * nx == 1 else "threads"
    scene: SceneStats | None = None
    if rgb_only:
        scene = _scene_of(rgb_b, rgb_a, valid_b, valid_a, cell, params, scheduler)
        log.info("RGB-only scene: %s", scene.record())
        if scene.saturated_px:
            log.warning(
                "RGB-only: %d px (%.1f%%) blown out (a band at %d or above) in either "
                "orthophoto were treated as unknown, neither roof nor ground",
                scene.saturated_px,
                100.0 * scene.saturated_px / max(scene.n_pixels, 1),
                params.rgb_saturated_dn,
            )

    # Unoptimised graphs, so a read shared by two inputs (the before DSM feeds its own halo
    # exchange and the coarse minima) stays one task; the key names are given so dask need not
    # hash every argument of every block.
    delayed_grids = [arr.to_delayed(optimize_graph=False) for arr in inputs]
    delayed_nir = [
        None if arr is None else arr.to_delayed(optimize_graph=False) for arr in nir_inputs
    ]
    token = tokenize(
        *(arr.name for arr in inputs),
        *(None if arr is None else arr.name for arr in nir_inputs),
        params,
        scale,
        rgb_only,
        rgb,
        None if scene is None else scene.record(),
    )
    row_starts = np.concatenate([[0], np.cumsum(row_chunks)])
    col_starts = np.concatenate([[0], np.cumsum(col_chunks)])
    min_pixels = max(1, math.ceil(params.min_area_m2 / scale.pixel_area_m2))
    # The constant arguments are bound once: dask would otherwise walk the fields of the
    # parameter dataclasses for every block (0.6 s of graph building at 8192 px).
    process = dask.delayed(
        functools.partial(_process_block, params=params, scale=scale, min_pixels=min_pixels),
        pure=True,
    )
    process_rgb = (
        None
        if scene is None
        else dask.delayed(
            functools.partial(_process_rgb_block, params=params, rgb=rgb, scene=scene), pure=True
        )
    )
    ground_block = dask.delayed(_ground_block, pure=True)
    codes_blocks: list[list[da.Array]] = []
    pieces_delayed: dict[tuple[int, int], Any] = {}
    for i in range(ny):
        row_blocks = []
        for j in range(nx):
            args = []
            for grid in delayed_grids:
                args.append(grid[0, i, j] if grid.ndim == 3 else grid[i, j])
            if ground_per_block:
                args[6] = ground_block(
                    [
                        [delayed_grids[6][i + di, j + dj] for dj in (-1, 0, 1) if 0 <= j + dj < nx]
                        for di in (-1, 0, 1)
                        if 0 <= i + di < ny
                    ],
                    (i > 0, i < ny - 1, j > 0, j < nx - 1),
                    (gh + cy, gh + cx),
                    (cy, cx),
                    scale.ground_cells,
                    dask_key_name=("ground-" + token, i, j),
                )
            nir_args = [None if grid is None else grid[i, j] for grid in delayed_nir]
            pads = (
                halo if i > 0 else 0,
                halo if i < ny - 1 else 0,
                halo if j > 0 else 0,
                halo if j < nx - 1 else 0,
            )
            where = {
                "block": (i, j),
                "pads": pads,
                "origin": (int(row_starts[i]), int(col_starts[j])),
                "dask_key_name": ("process-" + token, i, j),
            }
            if process_rgb is not None:
                result = process_rgb(*args[:4], *nir_args, **where)
            else:
                result = process(*args[:7], None, *nir_args, **where)
            codes_block = dask.delayed(_codes_of)(result, dask_key_name=("codes-" + token, i, j))
            row_blocks.append(
                da.from_delayed(codes_block, shape=(row_chunks[i], col_chunks[j]), dtype=np.uint8)
            )
            pieces_delayed[(i, j)] = dask.delayed(_pieces_of)(
                result, dask_key_name=("pieces-" + token, i, j)
            )
        codes_blocks.append(row_blocks)

    codes_np: np.ndarray | None = None
    if codes_sink is None:
        codes_np = np.empty(shape, np.uint8)

    # Square groups of chunks, one compute each: what dask holds at once grows with the chunks
    # of a compute (it reads ahead), so groups keep peak memory flat on larger rasters.
    def spans(n: int) -> list[tuple[int, int]]:
        per = max(1, int(params.group_px) // size)
        k = -(-n // per)
        per = -(-n // k)
        return [(a, min(n, a + per)) for a in range(0, n, per)]

    groups = [(r, c) for r in spans(ny) for c in spans(nx)]
    pieces_list = []
    for (i0, i1), (j0, j1) in groups:
        rows = slice(int(row_starts[i0]), int(row_starts[i1]))
        cols = slice(int(col_starts[j0]), int(col_starts[j1]))
        codes = da.block([row[j0:j1] for row in codes_blocks[i0:i1]])
        wanted = [pieces_delayed[(i, j)] for i in range(i0, i1) for j in range(j0, j1)]
        if codes_sink is not None:
            store = da.store(
                codes,
                codes_sink,
                regions=(rows, cols),
                lock=sink_lock if sink_lock is not None else True,
                compute=False,
            )
            got, _ = dask.compute(wanted, store, scheduler=scheduler, optimize_graph=False)
        else:
            assert codes_np is not None
            got, codes_np[rows, cols] = dask.compute(
                wanted, codes, scheduler=scheduler, optimize_graph=False
            )
        pieces_list.extend(got)
        _release_freed_memory()
    if len(groups) > 1:
        log.info("computed in %d groups of chunks", len(groups))
    if rgb_only:
        assert scene is not None
        segments = {bs.block: bs for bs in pieces_list if isinstance(bs, BlockSegments)}
        nir_decides = (after.nir is not None, before.nir is not None)
        objects = merge_segment_pieces(segments, transform, params, scale, rgb, scene, nir_decides)
    else:
        blocks = {bp.block: bp for bp in pieces_list if isinstance(bp, BlockPieces)}
        objects = merge_pieces(blocks, transform, params, scale, rgb_only=rgb_only)
    log.info("%d change objects passed the filters", len(objects))
    codes_xr: xr.DataArray | None = None
    if codes_np is not None:
        codes_xr = xr.DataArray(
            codes_np,
            dims=("y", "x"),
            coords={"y": before.rgb["y"], "x": before.rgb["x"]}
            if "y" in before.rgb.coords
            else None,
            name="change",
        )
        codes_xr = codes_xr.rio.write_nodata(CODE_NODATA)
        if crs is not None:
            codes_xr = codes_xr.rio.write_crs(crs)
        codes_xr = codes_xr.rio.write_transform(transform)
    return ChangeResult(
        objects=tuple(objects),
        codes=codes_xr,
        mode="rgb_only" if rgb_only else "dsm",
        crs=crs,
        transform=transform,
        shape=shape,
        scale=scale,
        n_chunks=ny * nx,
    )


@functools.cache
def _libc() -> Any:
    """The C library through ctypes (None where it cannot be loaded)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    return getattr(_libc(), "malloc_trim", None)


_M_ARENA_MAX = -8  # glibc's mallopt parameter


@functools.cache
def limit_malloc_arenas(n: int | None = None) -> bool:
    """Cap glibc's malloc arenas at ``n`` (default: one per core; at least 2) for the rest of
    the process, unless ``MALLOC_ARENA_MAX`` is set; True when the cap was applied.

    glibc gives threads their own arenas (up to eight per core) and each keeps the pages that
    numpy freed in it; the pipeline's short-lived thread pools (tie points, vertical offset,
    warps) took the peak of an 8192 px run from 0.96 to 1.23 GB that way, and a cap of one
    arena per core brought it back to 0.95 GB at the same speed. No-op off glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or _malloc_trim() is None:  # not glibc
        return False
    return bool(mallopt(_M_ARENA_MAX, max(2, n or os.cpu_count() or 2)))


_TRIM_LOCK = threading.Lock()
_LAST_TRIM = [0.0]


def _release_freed_memory(min_interval_s: float = 0.0) -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``).

    glibc keeps what numpy freed in its arenas (chunks are allocated and freed by several
    threads), so without this the resident size creeps up although what is alive stays the
    same; dask.distributed trims its workers the same way. A trim walks the heap (tens of
    milliseconds), so blocks trim at most once every ``min_interval_s`` seconds (measured at
    8192 px: every block cost 10 % of the detection time for 20 % less peak memory).
    """
    trim = _malloc_trim()
    if trim is None:
        return
    now = time.monotonic()
    with _TRIM_LOCK:
        if now - _LAST_TRIM[0] < min_interval_s:
            return
        _LAST_TRIM[0] = now
    trim(0)


def _depth(depth: int, chunks: tuple[int, ...]) -> int:
    """Overlap along one axis: none for a single chunk, never more than the axis."""
    return 0 if len(chunks) == 1 else min(depth, sum(chunks) - 1)
