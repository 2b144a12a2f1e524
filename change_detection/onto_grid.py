"""Bringing a raster onto a reference grid: as it is, by whole pixels, by a fraction, or
reprojected (lazily, chunk by chunk, for dask-backed rasters).

A target on the same grid is used as it is; a target in the same CRS and resolution whose grid
is offset by whole pixels is cropped and padded exactly (lazily for dask arrays, no
resampling); one offset by a fraction of a pixel is a translation, resampled lazily (nearest:
the rounded offset; bilinear: four weighted slices); anything else is reprojected (bilinear for
imagery and heights, nearest for the mask). See :mod:`change_detection.grids` for how
:func:`~change_detection.grids.align_epoch` uses it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from typing import Any

import numpy as np
import rioxarray  # noqa: F401 - registers the .rio accessor used throughout
import xarray as xr
from affine import Affine
from rasterio.enums import Resampling

from change_detection._memory import read_into
from change_detection.coregistration import TIEPOINT_DTYPE, CoregResult, translation_mapping
from change_detection.errors import GridMismatchError
from change_detection.warped import _chunk_sizes, _lazy_grid, _warp_lazy

__all__ = ["grid_snap", "onto_reference_grid"]

log = logging.getLogger(__name__)


def _grid_of(da: xr.DataArray) -> tuple[Any, Affine, tuple[int, int]]:
    crs = da.rio.crs
    if crs is None:
        raise GridMismatchError(
            f"raster {da.name or ''} has no CRS; write one (rio.write_crs) before aligning"
        )
    return crs, da.rio.transform(), (int(da.sizes["y"]), int(da.sizes["x"]))


def _grid_offset(ref_t: Affine, tgt_t: Affine) -> tuple[float, float] | None:
    """(row, col) of the reference grid origin in the target grid when both grids have the
    same pixel size and orientation (so they differ by a translation), else None."""
    if not all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        for a, b in zip(
            (ref_t.a, ref_t.b, ref_t.d, ref_t.e), (tgt_t.a, tgt_t.b, tgt_t.d, tgt_t.e), strict=True
        )
    ):
        return None
    col, row = ~tgt_t * (ref_t.c, ref_t.f)
    return float(row), float(col)


def _translation_offset(
    target: xr.DataArray, reference: xr.DataArray
) -> tuple[float, float] | None:
    """(row, col) of the reference grid origin in the target grid when the two differ by a
    translation only (one CRS, pixel size and orientation), else None."""
    r_crs, r_t, _ = _grid_of(reference)
    t_crs, t_t, _ = _grid_of(target)
    return _grid_offset(r_t, t_t) if r_crs == t_crs else None


def grid_snap(target: xr.DataArray, reference: xr.DataArray) -> tuple[float, float] | None:
    """The sub-pixel (x, y) part of the offset between two grids of one CRS and pixel size.

    None when the grids differ otherwise (CRS, pixel size, rotation): they need resampling.
    (0, 0) when they are offset by whole pixels. Otherwise :func:`onto_reference_grid` with
    ``snap=True`` places the target at the nearest whole pixel, which moves its content by
    the returned amount in reference pixels: a feature at x on the exact placement is at
    x + snap_x on the snapped one.
    """
    off = _translation_offset(target, reference)
    if off is None:
        return None
    row, col = off
    return float(col - round(col)), float(row - round(row))


def onto_reference_grid(
    target: xr.DataArray,
    reference: xr.DataArray,
    *,
    resampling: Resampling = Resampling.bilinear,
    fill: float | bool = 0,
    snap: bool = False,
) -> xr.DataArray:
    """Put ``target`` (dims (..., y, x)) on the grid of ``reference``.

    Same grid: returned as is (with the reference's coordinates). Same CRS and resolution,
    offset by whole pixels (or by any offset with ``snap=True``, rounded to whole pixels: see
    :func:`grid_snap`): cropped/padded exactly with ``fill`` (lazy for dask); offset by a
    fraction of a pixel with the default fill (0, NaN, False): nearest rounds the offset,
    bilinear is a lazy translation. Otherwise (another CRS, pixel size or rotation) GDAL
    reprojects it: a dask-backed target chunk by chunk, each chunk warping only the source
    window under it (memory follows the chunks), an in-memory one with
    ``reproject_match``; both with one resampling scale for the whole raster, so they agree.

    Raises
    ------
    GridMismatchError
        Either raster has no CRS.
    """
    r_shape, t_shape = _grid_of(reference)[2], _grid_of(target)[2]
    exact = _translation_offset(target, reference)
    whole = exact is not None and all(abs(v - round(v)) <= 1e-6 for v in exact)
    default_fill = _default_fill(target.dtype, fill)
    if exact is not None and (whole or snap or (resampling == Resampling.nearest and default_fill)):
        # whole pixels apart (or snapped, or nearest, which rounds the offset): crop and pad
        r0, c0 = round(exact[0]), round(exact[1])
        H, W = r_shape
        th, tw = t_shape
        ys = slice(max(r0, 0), max(min(r0 + H, th), max(r0, 0)))
        xs = slice(max(c0, 0), max(min(c0 + W, tw), max(c0, 0)))
        cropped = target.isel(y=ys, x=xs)
        pad_y = (max(-r0, 0), H - max(-r0, 0) - (ys.stop - ys.start))
        pad_x = (max(-c0, 0), W - max(-c0, 0) - (xs.stop - xs.start))
        data = cropped.data
        if any(pad_y) or any(pad_x):
            widths = [(0, 0)] * (data.ndim - 2) + [pad_y, pad_x]
            if hasattr(data, "dask"):
                import dask.array as dsa

                data = dsa.pad(data, widths, mode="constant", constant_values=fill)
            else:
                data = np.pad(np.asarray(data), widths, mode="constant", constant_values=fill)
        return _on_grid_of(data, target, reference)
    if exact is not None and default_fill and resampling == Resampling.bilinear:
        # offset by a fraction of a pixel: a translation, warped lazily (four-slice bilinear)
        return _translate_onto(target, reference, exact)
    log.info("reprojecting the target onto the reference grid (%s)", resampling.name)
    if hasattr(target.data, "dask"):
        return _on_grid_of(_reproject_lazy(target, reference, resampling, fill), target, reference)
    src = target
    if src.dtype == np.bool_:
        src = src.astype(np.uint8).rio.write_nodata(0)
    elif np.issubdtype(src.dtype, np.floating):
        src = src.rio.write_nodata(np.nan, encoded=False)
    else:
        src = src.rio.write_nodata(fill)
    out = src.rio.reproject_match(
        reference, resampling=resampling, **_warp_scale(target, reference)
    )
    if target.dtype == np.bool_:
        out = out > 0
    out = out.assign_coords(y=reference["y"].values, x=reference["x"].values)
    return out


def _reproject_lazy(
    target: xr.DataArray, reference: xr.DataArray, resampling: Resampling, fill: float | bool
) -> Any:
    """``target`` (dask-backed) reprojected onto the reference grid chunk by chunk: a dask
    array whose every chunk warps (GDAL, as ``reproject_match`` does) only the source window
    its footprint needs, so memory follows the chunks rather than the rasters. The values
    equal ``reproject_match``'s up to GDAL's approximate transformer (measured below 1e-3 on
    float32 heights between UTM zones); masks (bool) travel as uint8 with False as nodata, as
    in the eager path, and pixels with no source get ``fill``."""
    import dask
    from dask.base import tokenize

    r_crs, r_t, (H, W) = _grid_of(reference)
    t_crs, t_t, (th, tw) = _grid_of(target)
    arr = target.data
    size = max(arr.chunks[-2][0], arr.chunks[-1][0])
    ych, xch = _chunk_sizes(H, size), _chunk_sizes(W, size)
    lead = tuple(arr.shape[:-2])
    in_dtype = np.dtype(arr.dtype)
    nodata: float
    if in_dtype == np.bool_:
        # as the eager path: 0 (False) is nodata, so resampling never blends it in
        arr = arr.astype(np.uint8)
        nodata, out_dtype = 0.0, np.dtype(np.bool_)
    elif np.issubdtype(in_dtype, np.floating):
        nodata, out_dtype = float("nan"), in_dtype
    else:
        nodata, out_dtype = float(fill), in_dtype
    chunk = dask.delayed(
        functools.partial(
            _reproject_chunk,
            src_crs=t_crs,
            dst_crs=r_crs,
            nodata=nodata,
            resampling=resampling,
            scale=_warp_scale(target, reference),
            dtype=np.dtype(np.uint8) if in_dtype == np.bool_ else in_dtype,
            as_bool=in_dtype == np.bool_,
        ),
        pure=True,
    )
    token = tokenize(
        arr.name,
        str(r_crs),
        tuple(r_t),
        (H, W),
        str(t_crs),
        tuple(t_t),
        size,
        resampling.value,
        nodata,
    )
    name = f"reproject-{token}"

    def block(window: tuple[int, int, int, int], key: tuple[Any, ...]) -> Any:
        r0, c0, h, w = window
        dst_t = r_t * Affine.translation(c0, r0)
        win = _reprojected_source_window(dst_t, (h, w), r_crs, t_t, t_crs, (th, tw))
        if win is None:
            src, src_t = None, t_t
        else:
            y0, y1, x0, x1 = win
            src, src_t = arr[..., y0:y1, x0:x1], t_t * Affine.translation(x0, y0)
        return chunk(src, src_t, dst_t, (*lead, h, w), dask_key_name=key)

    return _lazy_grid(ych, xch, lead, out_dtype, name, block)


def _warp_scale(target: xr.DataArray, reference: xr.DataArray) -> dict[str, float]:
    """GDAL's ``XSCALE``/``YSCALE`` warp options (reference pixels per target pixel) for the
    whole raster. GDAL otherwise derives them for each chunk it processes from the shape of
    the regions, so the same pixel could be resampled with different kernels in a whole-raster
    and a chunked warp (up to 27 DN apart on texture between UTM zones)."""
    r_crs, r_t, (H, W) = _grid_of(reference)
    t_crs, t_t, (th, tw) = _grid_of(target)
    win = _reprojected_source_window(r_t, (H, W), r_crs, t_t, t_crs, (th, tw), clip=False)
    assert win is not None
    y0, y1, x0, x1 = win
    return {"XSCALE": round(W / max(x1 - x0, 1), 6), "YSCALE": round(H / max(y1 - y0, 1), 6)}


def _reprojected_source_window(
    dst_t: Affine,
    shape: tuple[int, int],
    dst_crs: Any,
    src_t: Affine,
    src_crs: Any,
    src_shape: tuple[int, int],
    clip: bool = True,
) -> tuple[int, int, int, int] | None:
    """Source rows and columns ``(y0, y1, x0, x1)`` under a destination window (its outline
    densified and transformed), with a margin of two pixels plus the widest resampling
    kernel's reach (wider when the destination is coarser), cut to the source; None when the
    window misses the source. ``clip=False``: the exact footprint, no margin, not cut."""
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    h, w = shape
    bounds = array_bounds(h, w, dst_t)  # (west, south, east, north)
    if dst_crs != src_crs:
        bounds = transform_bounds(dst_crs, src_crs, *bounds, densify_pts=21)
    inv = ~src_t
    cols, rows = zip(
        *(inv * (x, y) for x in (bounds[0], bounds[2]) for y in (bounds[1], bounds[3])),
        strict=True,
    )
    if not clip:
        return (
            math.floor(min(rows)),
            math.ceil(max(rows)),
            math.floor(min(cols)),
            math.ceil(max(cols)),
        )
    ratio = max((max(rows) - min(rows)) / max(h, 1), (max(cols) - min(cols)) / max(w, 1), 1.0)
    # GDAL widens a kernel by the downsampling ratio; 3 pixels is Lanczos' radius, the widest
    margin = 2 + math.ceil(3 * ratio)
    y0 = max(0, math.floor(min(rows)) - margin)
    y1 = min(src_shape[0], math.ceil(max(rows)) + margin)
    x0 = max(0, math.floor(min(cols)) - margin)
    x1 = min(src_shape[1], math.ceil(max(cols)) + margin)
    if y1 - y0 < 2 or x1 - x0 < 2:
        return None
    return y0, y1, x0, x1


def _reproject_chunk(
    src: np.ndarray | None,
    src_t: Affine,
    dst_t: Affine,
    shape: tuple[int, ...],
    *,
    src_crs: Any,
    dst_crs: Any,
    nodata: float,
    resampling: Resampling,
    scale: dict[str, float],
    dtype: np.dtype[Any],
    as_bool: bool,
) -> np.ndarray:
    """One chunk of :func:`_reproject_lazy`: ``src`` (None: no source under it) warped onto
    the destination window, ``nodata`` where no source pixel lands (a mask travels as uint8
    and comes back as bool)."""
    from rasterio.warp import reproject

    out = np.full(shape, nodata, dtype=dtype)
    if src is not None:
        src = np.ascontiguousarray(src)
        # rasterio wraps its in-memory datasets in warnings.catch_warnings, which is not
        # thread-safe: two chunks warped at once can lose each other's warning filters. One
        # chunk is warped at a time, on GDAL's threads (the source reads still run in parallel).
        with _REPROJECT_LOCK:
            reproject(
                src,
                out,
                src_transform=src_t,
                src_crs=src_crs,
                src_nodata=nodata,
                dst_transform=dst_t,
                dst_crs=dst_crs,
                dst_nodata=nodata,
                resampling=resampling,
                num_threads=os.cpu_count() or 1,
                **scale,
            )
    return out > 0 if as_bool else out


_REPROJECT_LOCK = threading.Lock()


def _default_fill(dtype: Any, fill: float | bool) -> bool:
    """Whether ``fill`` is what :func:`warp_array` fills with for ``dtype`` (0, NaN, False)."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return fill is False or fill == 0
    if np.issubdtype(dt, np.integer):
        return bool(fill == 0)
    return isinstance(fill, float) and math.isnan(fill)


def _translate_onto(
    target: xr.DataArray, reference: xr.DataArray, offset: tuple[float, float]
) -> xr.DataArray:
    """Bilinear resampling of ``target`` onto the grid of ``reference`` when the grids differ
    by ``offset`` (row, col of the reference origin in the target grid) only; lazy for dask."""
    r_shape = _grid_of(reference)[2]
    row_off, col_off = offset
    result = CoregResult(
        shift_x_px=-col_off,
        shift_y_px=-row_off,
        model="translation",
        parameters={},
        rmse_px=float("nan"),
        n_tiepoints=0,
        n_used=0,
        confidence=1.0,
        warnings=(),
        tiepoints=np.zeros(0, TIEPOINT_DTYPE),
        shape=r_shape,
        mapping=translation_mapping(-col_off, -row_off),
    )
    log.info("target grid offset by (%.3f, %.3f) px: resampled bilinearly", col_off, row_off)
    arr = target.data
    if hasattr(arr, "dask"):
        warped: Any = _warp_lazy(result, arr, 1, reference, 1024)
    else:
        warped = result.warp(np.asarray(arr), order=1)
    return _on_grid_of(warped, target, reference)


def _on_grid_of(data: Any, target: xr.DataArray, reference: xr.DataArray) -> xr.DataArray:
    """``data`` (the target's values on the reference grid) as a DataArray with the target's
    dims, name and attributes and the reference's coordinates, CRS and transform."""
    r_crs, r_t, _ = _grid_of(reference)
    coords = {"y": reference["y"].values, "x": reference["x"].values}
    for d in target.dims[:-2]:
        coords[str(d)] = target[d].values
    out = xr.DataArray(
        data, dims=target.dims, coords=coords, name=target.name, attrs=dict(target.attrs)
    )
    return out.rio.write_crs(r_crs).rio.write_transform(r_t)


class _RowCache:
    """Rows of lazy arrays (..., rows, cols) read by whole chunk rows, each decoded once while
    the windows asked for move down; the chunk rows above the last window are dropped."""

    def __init__(self, arrays: list[Any]) -> None:
        self.arrays = [a.data if isinstance(a, xr.DataArray) else a for a in arrays]
        self.bounds = []
        for a in self.arrays:
            chunks = a.chunks[-2] if getattr(a, "chunks", None) is not None else (a.shape[-2],)
            self.bounds.append(np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64))
        self.rows: list[dict[int, np.ndarray]] = [{} for _ in self.arrays]

    def get(self, y0: int, y1: int) -> list[np.ndarray]:
        wanted = []
        for i, b in enumerate(self.bounds):
            k0 = int(np.searchsorted(b, y0, "right")) - 1
            k1 = int(np.searchsorted(b, y1 - 1, "right")) - 1
            for k in [k for k in self.rows[i] if k < k0]:
                del self.rows[i][k]
            wanted.append((k0, k1))
        todo = [
            (i, k)
            for i, (k0, k1) in enumerate(wanted)
            for k in range(k0, k1 + 1)
            if k not in self.rows[i]
        ]
        parts = [self.arrays[i][..., self.bounds[i][k] : self.bounds[i][k + 1], :] for i, k in todo]
        for (i, k), v in zip(todo, read_into(parts), strict=True):
            self.rows[i][k] = v
        out = []
        for i, (k0, k1) in enumerate(wanted):
            b = self.bounds[i]
            # only the rows asked for are copied (a view within one chunk row)
            pieces = [
                self.rows[i][k][..., max(y0 - b[k], 0) : min(y1, b[k + 1]) - b[k], :]
                for k in range(k0, k1 + 1)
            ]
            out.append(pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=-2))
        return out
