"""Resampling a target-grid array onto the reference grid through a pull map, block by block.

The bilinear kernels are hand-written because they are 3 to 24 times faster than
``scipy.ndimage.map_coordinates`` on the same coordinates (figures in :func:`warp_arrays`);
other orders use SciPy.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from change_detection.coregistration.params import _Sliceable


def warp_array(
    source_coordinates: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    array: _Sliceable,
    order: int,
    cval: float | None,
    out_shape: tuple[int, int],
    block_px: int = 1024,
    window: tuple[int, int, int, int] | None = None,
    translation: tuple[float, float] | None = None,
    tolerance_px: float = 0.01,
) -> np.ndarray:
    """Resample ``array`` by a pull map, one output window at a time.

    Parameters
    ----------
    source_coordinates : callable (rows, cols) -> (src_rows, src_cols)
    array : array, shape (rows, cols) or (bands, rows, cols)
    window : (row0, col0, rows, cols), optional
        Only this window of the output grid (for chunked callers); default all of it.
    translation : (row, col), optional
        Set when the pull map is ``source = output + translation`` (what
        ``source_coordinates`` computes then): bilinear resampling (``order`` 1) then weighs
        four shifted slices of the source instead of interpolating at every coordinate (the
        same values as ``scipy.ndimage.map_coordinates`` in ``constant`` mode up to float32
        rounding, about 10x faster).
    tolerance_px : float
        A bilinear map within this many pixels of a translation over a tile of the output grid
        is applied as that translation there (:func:`_near_translation_tiles`); 0: sampled at
        every coordinate.

    Returns
    -------
    ndarray, shape (..., rows, cols) of the window
    """
    return warp_arrays(
        source_coordinates,
        [array],
        [order],
        [cval],
        out_shape,
        block_px,
        window,
        translation,
        tolerance_px,
    )[0]


def warp_arrays(
    source_coordinates: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    arrays: list[_Sliceable],
    orders: list[int],
    cvals: list[float | None],
    out_shape: tuple[int, int],
    block_px: int = 1024,
    window: tuple[int, int, int, int] | None = None,
    translation: tuple[float, float] | None = None,
    tolerance_px: float = 0.01,
) -> list[np.ndarray]:
    """:func:`warp_array` of several arrays on one source grid (an orthophoto, its mask and
    its DSM): the pull map is evaluated once per block for all of them.

    Bilinear (``order`` 1) samples share the indices and weights of each block (the values of
    ``map_coordinates(order=1, mode="constant")`` up to float32 rounding); other orders go
    through ``map_coordinates``. Where a bilinear map is within ``tolerance_px`` of a
    translation over a tile of the output grid, that tile is resampled as the translation
    (:func:`_near_translation_tiles`; ``tolerance_px=0`` samples every coordinate).

    Kept hand-written for bilinear: an RGB orthophoto, its DSM and its mask of 4096 x 4096 px
    take 0.75 s for a translation (four weighted slices, :func:`_shift_bilinear`) and 8.2 s
    for a rotation and scale (shared indices and weights, :func:`_gather_bilinear`), against
    18.3 s and 25.3 s through ``scipy.ndimage.map_coordinates(order=1)`` band by band at the
    same coordinates; medians of 5 alternating runs on 2 cores
    (``benchmarks/bench_coreg_kernels.py``, "bilinear warp").
    """
    r_start, c_start, h, w = window if window is not None else (0, 0, *out_shape)
    kinds = [_warp_kind(a, o, c) for a, o, c in zip(arrays, orders, cvals, strict=True)]
    outs = [
        np.empty((*tuple(a.shape[:-2]), h, w), dtype=k.dtype)
        for a, k in zip(arrays, kinds, strict=True)
    ]
    todo = []
    for a, k, out in zip(arrays, kinds, outs, strict=True):
        if translation is not None and k.order == 1:
            _shift_bilinear(a, out, translation, (r_start, c_start), k.fill, k.is_bool, k.is_int)
        else:
            todo.append((a, k, out))
    if not todo:
        return outs
    order_max = max(k.order for _, k, _ in todo)
    halo = 1 + (order_max + 1) // 2 + (4 if order_max > 1 else 0)
    blocks = [
        (r0, min(h, r0 + block_px), c0, min(w, c0 + block_px))
        for r0 in range(0, h, block_px)
        for c0 in range(0, w, block_px)
    ]

    def one(block_rc: tuple[int, int, int, int]) -> None:
        r0, r1, c0, c1 = block_rc
        rows, cols = (r_start + r0, r_start + r1), (c_start + c0, c_start + c1)
        tiles = (
            _near_translation_tiles(source_coordinates, tolerance_px, rows, cols)
            if order_max == 1 and tolerance_px > 0
            else None
        )
        exact: tuple[np.ndarray, np.ndarray] | None = None
        if tiles is not None and tiles.ok.all():
            y0, y1, x0, x1 = _window_of_tiles(tiles, rows, cols, halo)
        else:
            exact = _block_coordinates(source_coordinates, rows, cols)
            y0, y1, x0, x1 = _window_of_coordinates(*exact, halo)
        for array, k, out in todo:
            src_h, src_w = array.shape[-2], array.shape[-1]
            block = out[..., r0:r1, c0:c1]
            if y1 <= 0 or x1 <= 0 or y0 >= src_h or x0 >= src_w:
                block[...] = k.fill if not k.is_bool else False
                continue
            sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, src_h), max(x0, 0), min(x1, src_w)
            src = np.asarray(array[..., sy0:sy1, sx0:sx1])
            src = src.reshape((-1, sy1 - sy0, sx1 - sx0))
            flat = block.reshape((-1, r1 - r0, c1 - c0))
            if tiles is not None and min(src.shape[-2:]) >= 2:
                _resample_tiles(tiles, src, exact, flat, (rows[0], cols[0]), (sy0, sx0), k)
                continue
            if exact is None:
                exact = _block_coordinates(source_coordinates, rows, cols)
            src_r, src_c = exact
            if k.order == 1 and min(src.shape[-2:]) >= 2:
                _gather_bilinear(src, src_r - sy0, src_c - sx0, flat, k.fill, k.is_bool, k.is_int)
                continue
            coords = np.stack([src_r - sy0, src_c - sx0])
            for b in range(src.shape[0]):
                res = ndimage.map_coordinates(
                    src[b].astype(np.float32),
                    coords,
                    order=k.order,
                    mode="constant",
                    cval=k.fill,
                    prefilter=k.order > 1,
                )
                if k.is_bool:
                    flat[b] = res >= 0.999
                elif k.is_int:
                    info = np.iinfo(k.dtype)
                    flat[b] = np.clip(np.rint(res), info.min, info.max)
                else:
                    flat[b] = res

    in_memory = all(isinstance(a, np.ndarray) for a, _, _ in todo)
    threads = min(len(blocks), _warp_threads()) if in_memory else 1
    if threads <= 1:
        for blk in blocks:
            one(blk)
    else:
        # the blocks write disjoint parts of the outputs; numpy's gathers and arithmetic
        # release the GIL, so a window of many blocks resamples on every core
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, blocks))
    return outs


def _block_coordinates(
    source_coordinates: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Source (row, col) of every output pixel of ``rows`` x ``cols`` (first, end)."""
    r = np.arange(rows[0], rows[1], dtype=np.float64)[:, None]
    c = np.arange(cols[0], cols[1], dtype=np.float64)[None, :]
    qr, qc = source_coordinates(r, c)
    shape = (rows[1] - rows[0], cols[1] - cols[0])
    return np.broadcast_to(qr, shape), np.broadcast_to(qc, shape)


def _window_of_coordinates(qr: np.ndarray, qc: np.ndarray, halo: int) -> tuple[int, int, int, int]:
    """Source rows and columns (y0, y1, x0, x1) holding the samples and ``halo`` around."""
    return (
        math.floor(float(np.nanmin(qr))) - halo,
        math.ceil(float(np.nanmax(qr))) + halo + 1,
        math.floor(float(np.nanmin(qc))) - halo,
        math.ceil(float(np.nanmax(qc))) + halo + 1,
    )


def _window_of_tiles(
    tiles: _Tiles, rows: tuple[int, int], cols: tuple[int, int], halo: int
) -> tuple[int, int, int, int]:
    """:func:`_window_of_coordinates` of a block whose every tile is a translation: each
    sample is its pixel plus its tile's offset, so the map need not be evaluated at every
    pixel."""
    return (
        math.floor(rows[0] + float(tiles.offsets[0].min())) - halo,
        math.ceil(rows[1] - 1 + float(tiles.offsets[0].max())) + halo + 1,
        math.floor(cols[0] + float(tiles.offsets[1].min())) - halo,
        math.ceil(cols[1] - 1 + float(tiles.offsets[1].max())) + halo + 1,
    )


#: Side of the tiles of the output grid on which a pull map that is nearly a translation is
#: applied as one translation each (see :func:`_near_translation_tiles`).
TILE_PX = 128


@dataclass(frozen=True)
class _Tiles:
    """The tiles of the output grid a block covers (global tile rows and columns from
    ``first``), the translation (row, col) that stands for the map on each, and which may."""

    first: tuple[int, int]
    offsets: np.ndarray  # (2, tile rows, tile cols): source = output + offset
    ok: np.ndarray  # (tile rows, tile cols) bool


def _near_translation_tiles(
    source_coordinates: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    tolerance_px: float,
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> _Tiles | None:
    """Where the pull map over the output ``rows`` x ``cols`` is, tile by tile, a translation
    within ``tolerance_px``; None when no tile is.

    An affine model between two surveys of one site is often nearly a translation (a scale
    of 1e-5 moves a point 0.001 px over a 128 px tile), and a translation resamples faster
    (four weighted slices, :func:`_shift_bilinear`) than bilinear sampling at every coordinate
    (:func:`_gather_bilinear`): an RGB orthophoto, its mask and DSM of 2048 px under an affine
    map of scale 1e-5 took 0.11 s against 0.30 s. A warp field that bends by whole pixels
    (the 20480 px benchmark mosaic's: 35 % of its tiles within 0.01 px) gains little: its
    other tiles are sampled exactly. The tiles are fixed on the output grid (multiples of
    :data:`TILE_PX` from its origin), so a window or chunk gets the same values as the whole
    raster. The map is evaluated on a lattice every 16 px of each tile, edges included (exact
    for an affine model; for the warp field, bilinear between its control points, to within
    the lattice); the translation of a tile is the midrange of the lattice's offsets, so no
    sample moves by more than the tolerance (0.01 px by default, 5 to 20 times below the
    accuracy of the co-registration).
    """
    t0r, t1r = rows[0] // TILE_PX, -(-rows[1] // TILE_PX)
    t0c, t1c = cols[0] // TILE_PX, -(-cols[1] // TILE_PX)
    step = 16
    lattice = np.arange(0, TILE_PX + 1, step, dtype=np.float64)
    lattice[-1] = TILE_PX - 1
    ly = (np.arange(t0r, t1r)[:, None] * TILE_PX + lattice[None, :]).ravel()
    lx = (np.arange(t0c, t1c)[:, None] * TILE_PX + lattice[None, :]).ravel()
    sr, sc = source_coordinates(ly[:, None], lx[None, :])
    n = lattice.size
    shape = (t1r - t0r, n, t1c - t0c, n)
    dy = (np.broadcast_to(sr, (ly.size, lx.size)) - ly[:, None]).reshape(shape)
    dx = (np.broadcast_to(sc, (ly.size, lx.size)) - lx[None, :]).reshape(shape)
    offsets = np.empty((2, t1r - t0r, t1c - t0c))
    ok = np.ones((t1r - t0r, t1c - t0c), bool)
    for axis, d in enumerate((dy, dx)):
        hi, lo = d.max(axis=(1, 3)), d.min(axis=(1, 3))
        # on a grid of 2**-20 px, so that subtracting a window's integer origin is exact and
        # a chunk gets the weights of the whole raster to the last bit
        offsets[axis] = np.round((hi + lo) / 2 * 2.0**20) / 2.0**20
        ok &= (hi - lo) / 2 <= tolerance_px  # False for NaN
    if not ok.any():
        return None
    return _Tiles((t0r, t0c), offsets, ok)


def _resample_tiles(
    tiles: _Tiles,
    src: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray] | None,
    out: np.ndarray,
    start: tuple[int, int],
    src_origin: tuple[int, int],
    kind: _WarpKind,
) -> None:
    """Bilinear resampling of one block ``out`` (bands, h, w), whose first pixel is output
    pixel ``start``, from ``src`` (bands, rows, cols; source pixel ``src_origin`` on): each
    tile that may as its translation, the others at the exact source coordinates ``exact``
    (rows, cols of the block's pixels; needed only when some tile may not)."""
    h, w = out.shape[-2], out.shape[-1]
    t0r, t0c = tiles.first
    if not tiles.ok.all() and src.dtype != np.float32:
        src = src.astype(np.float32)  # once, not for every tile sampled exactly
    for i in range(tiles.ok.shape[0]):
        a = max((t0r + i) * TILE_PX - start[0], 0)
        b = min((t0r + i + 1) * TILE_PX - start[0], h)
        for j in range(tiles.ok.shape[1]):
            c = max((t0c + j) * TILE_PX - start[1], 0)
            d = min((t0c + j + 1) * TILE_PX - start[1], w)
            if a >= b or c >= d:
                continue
            part = out[:, a:b, c:d]
            if tiles.ok[i, j]:
                shift = (
                    float(tiles.offsets[0, i, j]) - src_origin[0],
                    float(tiles.offsets[1, i, j]) - src_origin[1],
                )
                _shift_bilinear(
                    src,
                    part,
                    shift,
                    (start[0] + a, start[1] + c),
                    kind.fill,
                    kind.is_bool,
                    kind.is_int,
                )
                continue
            assert exact is not None  # computed whenever a tile is not a translation
            qy, qx = exact
            _gather_bilinear(
                src,
                qy[a:b, c:d] - src_origin[0],
                qx[a:b, c:d] - src_origin[1],
                part,
                kind.fill,
                kind.is_bool,
                kind.is_int,
            )


def _warp_threads() -> int:
    """Threads for the blocks of one :func:`warp_arrays` call on in-memory arrays: every core
    from the main thread, one inside worker threads (dask's, which already run a block per
    core)."""
    if threading.current_thread() is not threading.main_thread():
        return 1
    return os.cpu_count() or 1


@dataclass(frozen=True)
class _WarpKind:
    dtype: np.dtype[Any]
    fill: float
    order: int
    is_bool: bool
    is_int: bool


def _warp_kind(array: _Sliceable, order: int, cval: float | None) -> _WarpKind:
    """Output dtype, fill and order of a warped array: masks stay bool (bilinear, False
    outside), integers keep their dtype (0 outside), floats become float32 (NaN outside)."""
    in_dtype = np.dtype(getattr(array, "dtype", np.float32))
    if in_dtype == np.bool_:
        return _WarpKind(np.dtype(np.bool_), 0.0, max(order, 1), True, False)
    if np.issubdtype(in_dtype, np.integer):
        return _WarpKind(in_dtype, 0.0 if cval is None else float(cval), order, False, True)
    out_dtype = np.dtype(np.float32) if in_dtype.itemsize <= 4 else in_dtype
    return _WarpKind(out_dtype, float("nan") if cval is None else float(cval), order, False, False)


def _gather_bilinear(
    src: np.ndarray,
    qy: np.ndarray,
    qx: np.ndarray,
    out: np.ndarray,
    fill: float,
    is_bool: bool,
    is_int: bool,
) -> None:
    """``out[b] = src[b]`` bilinearly sampled at (qy, qx), the indices and weights computed
    once for every band.

    The values of ``map_coordinates(order=1, mode="constant", cval=fill)`` up to float32
    rounding: a sample outside ``[0, n - 1]`` on either axis is ``fill`` (False for masks); a
    mask is True where the interpolated mask is at least 0.999. ``src`` is (bands, rows, cols)
    with at least two rows and columns; ``out`` is (bands, h, w).
    """
    n_b, sh, sw = src.shape
    h, w = qy.shape
    planes = src.reshape(n_b, -1)
    if planes.dtype != np.float32:
        planes = planes.astype(np.float32)
    info = np.iinfo(out.dtype) if is_int else None
    # row strips keep the temporaries in cache
    step = max(1, 2**16 // max(w, 1))
    for a in range(0, h, step):
        b = min(h, a + step)
        y, x = qy[a:b], qx[a:b]
        inside = (y >= 0) & (y <= sh - 1) & (x >= 0) & (x <= sw - 1)  # False for NaN too
        yc = np.where(inside, y, 0.0)
        xc = np.where(inside, x, 0.0)
        y0 = np.minimum(yc.astype(np.int64), sh - 2)
        x0 = np.minimum(xc.astype(np.int64), sw - 2)
        ty = (yc - y0).astype(np.float32)
        tx = (xc - x0).astype(np.float32)
        i00 = y0 * sw + x0
        for k in range(n_b):
            p = planes[k]
            v00, v01 = p.take(i00), p.take(i00 + 1)
            v10, v11 = p.take(i00 + sw), p.take(i00 + sw + 1)
            v01 -= v00
            v01 *= tx
            v01 += v00
            v11 -= v10
            v11 *= tx
            v11 += v10
            v11 -= v01
            v11 *= ty
            v11 += v01
            res = v11
            target = out[k, a:b]
            if is_bool:
                np.greater_equal(res, 0.999, out=target)
                target &= inside
                continue
            res[~inside] = fill
            if info is not None:
                np.rint(res, out=res)
                np.clip(res, info.min, info.max, out=res)
            target[...] = res


def _shift_bilinear(
    array: _Sliceable,
    out: np.ndarray,
    translation: tuple[float, float],
    start: tuple[int, int],
    fill: float,
    is_bool: bool,
    is_int: bool,
) -> None:
    """``out[..., i, j] = array`` bilinearly sampled at ``(start + (i, j) + translation)``.

    Like ``map_coordinates(order=1, mode="constant")``: a sample whose coordinate lies outside
    ``[0, n - 1]`` on either axis is ``fill`` (False for masks); a mask is True only where
    every neighbour with a weight of 0.001 or more is True.
    """
    src_h, src_w = array.shape[-2], array.shape[-1]
    h, w = out.shape[-2], out.shape[-1]
    ty, tx = translation
    iy, ix = math.floor(ty), math.floor(tx)
    fy, fx = np.float32(ty - iy), np.float32(tx - ix)
    # output rows/cols whose sample coordinate lies inside [0, n - 1]
    rows = start[0] + np.arange(h) + ty
    cols = start[1] + np.arange(w) + tx
    ok_r = np.flatnonzero((rows >= 0) & (rows <= src_h - 1))
    ok_c = np.flatnonzero((cols >= 0) & (cols <= src_w - 1))
    out[...] = False if is_bool else fill
    if ok_r.size == 0 or ok_c.size == 0:
        return
    i0, i1 = int(ok_r[0]), int(ok_r[-1]) + 1
    j0, j1 = int(ok_c[0]), int(ok_c[-1]) + 1
    # source rows y0 .. y0 + (i1 - i0) (one more for the lower neighbour), same for columns
    y0, x0 = start[0] + i0 + iy, start[1] + j0 + ix
    ny, nx = i1 - i0 + 1, j1 - j0 + 1
    dest = out[..., i0:i1, j0:j1]
    sy1, sx1 = min(y0 + ny, src_h), min(x0 + nx, src_w)
    info = np.iinfo(out.dtype) if is_int else None
    # strips of rows keep the temporaries in cache (whole-window temporaries ran 3x slower)
    strip = max(8, 2**17 // max(nx, 1))
    for a in range(0, i1 - i0, strip):
        b = min(i1 - i0, a + strip)
        # source rows y0 + a .. y0 + b (+1 for the lower neighbour); the neighbour past the
        # last row or column only ever has weight 0, so it is zero-padded
        ra, rb = y0 + a, min(y0 + b + 1, sy1)
        win = np.zeros((*dest.shape[:-2], b - a + 1, nx), np.float32)
        win[..., : rb - ra, : sx1 - x0] = np.asarray(array[..., ra:rb, x0:sx1])
        if fy:
            rows_lerp = win[..., 1:, :] - win[..., :-1, :]
            rows_lerp *= fy
            rows_lerp += win[..., :-1, :]
        else:
            rows_lerp = win[..., :-1, :]
        if fx:
            res = rows_lerp[..., :, 1:] - rows_lerp[..., :, :-1]
            res *= fx
            res += rows_lerp[..., :, :-1]
        else:
            res = rows_lerp[..., :, :-1]
        target = dest[..., a:b, :]
        if is_bool:
            np.greater_equal(res, 0.999, out=target)
        elif info is not None:
            np.rint(res, out=res)
            np.clip(res, info.min, info.max, out=res)
            target[...] = res
        else:
            target[...] = res
