"""Orchestration of change detection on two epochs on one grid, chunked with halos.

:func:`detect_changes` takes two :class:`Epoch` records (xarray ``DataArray`` layers, numpy or
dask backed, already on one grid: same CRS, transform and shape) and returns the change
objects and the per-pixel class raster.

Over 500 lines on purpose: one subject, the chunked run of the detection, whose named steps and
the block tasks they wire (height mode, RGB-only mode, the ground of a block from its
neighbours) are read together; the grid checks and the records returned sit with them. The
scheduling and memory machinery is already out (:mod:`change_detection._exec`,
:mod:`change_detection._memory`). :func:`detect_changes` runs as named steps: the chunk plan
(:func:`_plan_chunks`), the halo'd inputs (:func:`_halo_inputs`, :func:`_height_inputs`), the
scene statistics in RGB-only mode (:func:`_scene_of`), the per-block graph
(:func:`_block_graph`), the groups of chunks computed into the sink
(:func:`change_detection._exec.compute_in_groups`) and the merge into objects
(:func:`_merge_objects`).

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
bounded by a group, not the raster (measured for the whole pipeline by ``make bench``: 0.99 GB
at 8192 px, 1.43 GB at 20480 px, inputs with DSMs). ``scheduler`` may be a
``dask.distributed.Client``.

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
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from dask.base import tokenize

from change_detection._exec import (
    BlockOutput,
    ChunkGrid,
    as_dask,
    block_graph,
    chunk_grid,
    compute_in_groups,
    neighbourhood,
    overlap_depth,
)

# re-exported: survey.pipeline and scripts import it from here
from change_detection._memory import limit_malloc_arenas as limit_malloc_arenas
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
class _Inputs:
    """The layers as dask arrays on the chunk plan.

    Attributes
    ----------
    plain : (rgb_b, rgb_a, valid_b, valid_a)
        Orthophotos (band, y, x) and validity masks (y, x), chunked, without halos.
    grids : list of dask.array.Array
        With halos: ``plain``, then in height mode the before and after DSMs and the ground
        layer (the coarse minima without halos when ``ground_per_block``, else the coarse
        ground surface with its halo).
    nir : [nir_b, nir_a]
        Near-infrared bands with halos, or None.
    ground_per_block : bool
        Each block opens the coarse minima of it and its neighbours into its ground.
    ground_halo_cells : int
        Reach of the ground filter in coarse cells (height mode; 0 otherwise).
    """

    plain: tuple[da.Array, da.Array, da.Array, da.Array]
    grids: list[da.Array]
    nir: list[da.Array | None]
    ground_per_block: bool = False
    ground_halo_cells: int = 0


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


def _pixel_size(transform: Affine) -> float:
    """Pixel size in metres of a grid with square, north-up pixels."""
    gx, gy = abs(transform.a), abs(transform.e)
    if not math.isclose(gx, gy, rel_tol=0.01) or transform.b or transform.d:
        raise ChangeDetectionError(
            f"the grid has {gx} x {gy} pixels or a rotation; resample to square, north-up "
            "pixels (gdalwarp -tr) first"
        )
    return (gx + gy) / 2


def _plan_chunks(
    shape: tuple[int, int], params: DetectParams, cell: int, halo: int, mode: str
) -> ChunkGrid:
    """Square chunks of ``params.chunk_px`` rounded down to the ground cell ``cell`` (px)."""
    size = max(cell, (params.chunk_px // cell) * cell)
    plan = chunk_grid(shape, size, halo, min_last=max(halo, cell))
    log.info(
        "change detection (%s) on %dx%d px in %dx%d chunks, halo %d px, ground cell %d px",
        mode,
        shape[0],
        shape[1],
        len(plan.row_chunks),
        len(plan.col_chunks),
        halo,
        cell,
    )
    return plan


def _with_halo(arr: da.Array, depth: dict[int, int]) -> da.Array:
    return da.overlap.overlap(arr, depth=depth, boundary="none")


def _halo_inputs(before: Epoch, after: Epoch, plan: ChunkGrid, scale: PixelScale) -> _Inputs:
    """The layers of both epochs chunked on ``plan``, each chunk extended by its halo."""
    chunks = (plan.row_chunks, plan.col_chunks)
    rgb_b = as_dask(before.rgb, ((3,), *chunks))
    rgb_a = as_dask(after.rgb, ((3,), *chunks))
    valid_b = as_dask(before.valid, chunks)
    valid_a = as_dask(after.valid, chunks)
    hy, hx = plan.halo_yx
    depth2, depth3 = {0: hy, 1: hx}, {0: 0, 1: hy, 2: hx}
    grids = [
        _with_halo(rgb_b, depth3),
        _with_halo(rgb_a, depth3),
        _with_halo(valid_b, depth2),
        _with_halo(valid_a, depth2),
    ]
    # Near-infrared bands, when given, with the same halo as the orthophotos.
    nir: list[da.Array | None] = [
        None if epoch.nir is None else _with_halo(as_dask(epoch.nir, chunks), depth2)
        for epoch in (before, after)
    ]
    plain = (rgb_b, rgb_a, valid_b, valid_a)
    if before.dsm is None:
        return _Inputs(plain, grids, nir)
    height, ground_per_block, ground_halo_cells = _height_inputs(before, after, plan, scale)
    return _Inputs(plain, grids + height, nir, ground_per_block, ground_halo_cells)


def _height_inputs(
    before: Epoch, after: Epoch, plan: ChunkGrid, scale: PixelScale
) -> tuple[list[da.Array], bool, int]:
    """Both DSMs with halos and the ground layer; whether the ground is made per block; the
    ground filter's reach in coarse cells."""
    assert before.dsm is not None and after.dsm is not None
    chunks = (plan.row_chunks, plan.col_chunks)
    cell = scale.cell
    crow = tuple(-(-s // cell) for s in plan.row_chunks)
    ccol = tuple(-(-s // cell) for s in plan.col_chunks)
    hy, hx = plan.halo_yx
    cy, cx = hy // cell, hx // cell
    dsm_b = as_dask(before.dsm, chunks).astype(np.float32)
    dsm_a = as_dask(after.dsm, chunks).astype(np.float32)
    cmin = dsm_b.map_blocks(
        block_minimum, cell, chunks=(crow, ccol), dtype=np.float32, meta=np.zeros((0, 0))
    )
    gh = scale.ground_halo_cells()
    arrays = [_with_halo(dsm_b, {0: hy, 1: hx}), _with_halo(dsm_a, {0: hy, 1: hx})]
    # The ground of a block and its halo comes from the coarse minima of the block and its
    # eight neighbours when a chunk is wider than the ground filter's reach, so a block
    # waits for the DSM of its neighbours only, not of theirs (less held in memory).
    ground_per_block = plan.size // cell >= gh + max(cy, cx)
    if ground_per_block:
        arrays.append(cmin)
    else:
        ground = da.map_overlap(
            ground_surface,
            cmin,
            depth={0: overlap_depth(gh, crow), 1: overlap_depth(gh, ccol)},
            boundary="none",
            dtype=np.float32,
            window_cells=scale.ground_cells,
        ).rechunk((crow, ccol))
        arrays.append(_with_halo(ground, {0: cy, 1: cx}))
    return arrays, ground_per_block, gh


def _process_block(
    rgb_b: np.ndarray,
    rgb_a: np.ndarray,
    valid_b: np.ndarray,
    valid_a: np.ndarray,
    dsm_b: np.ndarray | None,
    dsm_a: np.ndarray | None,
    coarse_b: np.ndarray,
    nir_b: np.ndarray | None = None,
    nir_a: np.ndarray | None = None,
    *,
    block: tuple[int, int],
    pads: tuple[int, int, int, int],
    origin: tuple[int, int],
    params: DetectParams,
    scale: PixelScale,
    min_pixels: int,
) -> BlockOutput:
    """Height mode on one block with its halo: its core's classes and pieces."""
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
    return BlockOutput(codes=np.ascontiguousarray(core.codes), found=pieces)


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
) -> BlockOutput:
    """RGB-only mode on one block with its halo: its core's classes and segment pieces."""
    shape = valid_b.shape
    valid = np.asarray(valid_b, bool) & np.asarray(valid_a, bool)
    layers = classify_rgb_change(rgb_b, rgb_a, valid, scene, params, rgb, nir_b, nir_a)
    top, bottom, left, right = pads
    core = layers.crop(slice(top, shape[0] - bottom), slice(left, shape[1] - right))
    pieces = extract_segment_pieces(core, block, origin[0], origin[1], scene, params, rgb)
    return BlockOutput(codes=np.ascontiguousarray(core.codes), found=pieces)


def _scene_of(
    rgb_b: da.Array,
    rgb_a: da.Array,
    valid_b: da.Array,
    valid_a: da.Array,
    cell: int,
    params: DetectParams,
    scheduler: Any,
) -> SceneStats:
    """Scene statistics of the whole grid: exact histograms of every chunk, summed (logged)."""
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
    scene = scene_stats(np.sum(blocks, axis=0), params)
    log.info("RGB-only scene: %s", scene.record())
    if scene.saturated_px:
        log.warning(
            "RGB-only: %d px (%.1f%%) blown out (a band at %d or above) in either "
            "orthophoto were treated as unknown, neither roof nor ground",
            scene.saturated_px,
            100.0 * scene.saturated_px / max(scene.n_pixels, 1),
            params.rgb_saturated_dn,
        )
    return scene


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


def _block_graph(
    inputs: _Inputs,
    plan: ChunkGrid,
    params: DetectParams,
    scale: PixelScale,
    rgb: RgbScale,
    scene: SceneStats | None,
) -> tuple[list[list[da.Array]], dict[tuple[int, int], Any]]:
    """One delayed block task per chunk (RGB-only when ``scene`` is given, else height mode):
    the codes blocks and what each block found (:func:`change_detection._exec.block_graph`)."""
    # Unoptimised graphs, so a read shared by two inputs (the before DSM feeds its own halo
    # exchange and the coarse minima) stays one task; the key names are given so dask need not
    # hash every argument of every block.
    grids = [arr.to_delayed(optimize_graph=False) for arr in inputs.grids]
    nir = [None if arr is None else arr.to_delayed(optimize_graph=False) for arr in inputs.nir]
    token = tokenize(
        *(arr.name for arr in inputs.grids),
        *(None if arr is None else arr.name for arr in inputs.nir),
        params,
        scale,
        scene is not None,
        rgb,
        None if scene is None else scene.record(),
    )
    min_pixels = max(1, math.ceil(params.min_area_m2 / scale.pixel_area_m2))
    task: Any = (
        functools.partial(_process_block, params=params, scale=scale, min_pixels=min_pixels)
        if scene is None
        else functools.partial(_process_rgb_block, params=params, rgb=rgb, scene=scene)
    )
    ground_block = dask.delayed(_ground_block, pure=True)
    ny, nx = len(plan.row_chunks), len(plan.col_chunks)
    hy, hx = plan.halo_yx
    cy, cx = hy // scale.cell, hx // scale.cell
    gh = inputs.ground_halo_cells

    def args_of(i: int, j: int) -> list[Any]:
        args = [grid[0, i, j] if grid.ndim == 3 else grid[i, j] for grid in grids]
        if inputs.ground_per_block:
            args[6] = ground_block(
                neighbourhood(grids[6], i, j),
                (i > 0, i < ny - 1, j > 0, j < nx - 1),
                (gh + cy, gh + cx),
                (cy, cx),
                scale.ground_cells,
                dask_key_name=("ground-" + token, i, j),
            )
        return args + [None if grid is None else grid[i, j] for grid in nir]

    def kwargs_of(i: int, j: int) -> dict[str, Any]:
        return {"block": (i, j), "pads": plan.pads(i, j), "origin": plan.origin(i, j)}

    return block_graph(task, plan.row_chunks, plan.col_chunks, args_of, kwargs_of, token)


def _merge_objects(
    found: list[Any],
    before: Epoch,
    after: Epoch,
    transform: Affine,
    params: DetectParams,
    scale: PixelScale,
    rgb: RgbScale,
    scene: SceneStats | None,
) -> tuple[ChangeObject, ...]:
    """The pieces of every block joined across seams into change objects, filtered."""
    if scene is not None:
        segments = {bs.block: bs for bs in found if isinstance(bs, BlockSegments)}
        nir_decides = (after.nir is not None, before.nir is not None)
        objects = merge_segment_pieces(segments, transform, params, scale, rgb, scene, nir_decides)
    else:
        blocks = {bp.block: bp for bp in found if isinstance(bp, BlockPieces)}
        objects = merge_pieces(blocks, transform, params, scale, rgb_only=False)
    log.info("%d change objects passed the filters", len(objects))
    return tuple(objects)


def _codes_array(
    codes: np.ndarray, like: xr.DataArray, crs: Any, transform: Affine
) -> xr.DataArray:
    """The class raster as a georeferenced DataArray on the grid of ``like``."""
    codes_xr = xr.DataArray(
        codes,
        dims=("y", "x"),
        coords={"y": like["y"], "x": like["x"]} if "y" in like.coords else None,
        name="change",
    )
    codes_xr = codes_xr.rio.write_nodata(CODE_NODATA)
    if crs is not None:
        codes_xr = codes_xr.rio.write_crs(crs)
    return codes_xr.rio.write_transform(transform)


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
    scale = pixel_scale(params, _pixel_size(transform))
    rgb_only = before.dsm is None
    rgb = rgb_scale(params, scale)
    halo = rgb.halo_px() if rgb_only else scale.halo_px()
    plan = _plan_chunks(shape, params, scale.cell, halo, "rgb_only" if rgb_only else "dsm")
    inputs = _halo_inputs(before, after, plan, scale)
    if scheduler is None:
        scheduler = "synchronous" if plan.n_chunks == 1 else "threads"
    scene = _scene_of(*inputs.plain, scale.cell, params, scheduler) if rgb_only else None
    codes_blocks, found = _block_graph(inputs, plan, params, scale, rgb, scene)
    codes, found_list = compute_in_groups(
        codes_blocks,
        found,
        plan.row_chunks,
        plan.col_chunks,
        max(1, int(params.group_px) // plan.size),
        codes_sink=codes_sink,
        sink_lock=sink_lock,
        scheduler=scheduler,
    )
    return ChangeResult(
        objects=_merge_objects(found_list, before, after, transform, params, scale, rgb, scene),
        codes=None if codes is None else _codes_array(codes, before.rgb, crs, transform),
        mode="rgb_only" if rgb_only else "dsm",
        crs=crs,
        transform=transform,
        shape=shape,
        scale=scale,
        n_chunks=plan.n_chunks,
    )
