"""The thin xarray/rioxarray layer of co-registration: grids in, aligned epoch out.

:func:`align_epoch` brings a target epoch (orthophoto, validity mask, DSM) onto the reference
grid (CRS, resolution, extent), estimates the residual misregistration with
:func:`change_detection.coregistration.coregister`, resamples the target with the estimated
model window by window, removes the DSM's vertical offset on stable ground and returns an
:class:`AlignedEpoch` whose :meth:`AlignedEpoch.report` is the JSON co-registration report.

Bringing onto the grid: a target on the same grid is used as it is; a target in the same CRS
and resolution whose grid is offset by whole pixels is cropped and padded exactly (lazily for
dask arrays, no resampling); one offset by a fraction of a pixel is a translation, resampled
lazily (nearest: the rounded offset; bilinear: four weighted slices); anything else is
resampled with ``.rio.reproject_match`` (bilinear for imagery and heights, nearest for the
mask; this loads the target in memory).
:func:`align_epoch` snaps a target in the same CRS and resolution whose grid is offset by a
fraction of a pixel (two photogrammetry runs rarely share a grid origin) to the nearest whole
pixel instead: the misregistration it measures next includes that fraction, so the target is
resampled once (by the model) rather than twice, and lazily. The report's shift is the
georeferenced one (the snap taken back out) and ``grid_snap_px`` records the snap.

Dask-backed inputs (``open_orthophoto(..., chunks=...)``) give dask-backed outputs: the warp is
built as one task per output chunk reading only the source window it needs (plus a halo), so
memory stays bounded by the chunk size.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rioxarray  # noqa: F401 - registers the .rio accessor used throughout
import xarray as xr
from affine import Affine
from rasterio.enums import Resampling

from change_detection.coregistration import (
    SHIFT_CONVENTION,
    TIEPOINT_DTYPE,
    CoregParams,
    CoregResult,
    _warp_kind,
    coregister,
    estimate_vertical_offset,
    translation_mapping,
    warp_arrays,
)
from change_detection.errors import CoregistrationError, GridMismatchError

__all__ = [
    "SHIFT_CONVENTION",
    "VERTICAL_OFFSET_CONVENTION",
    "AlignedEpoch",
    "align_epoch",
    "grid_snap",
    "onto_reference_grid",
    "residuals_feature_collection",
]

log = logging.getLogger(__name__)

VERTICAL_OFFSET_CONVENTION = (
    "vertical_offset_m = median(target DSM - reference DSM) on stable ground, after horizontal "
    "alignment; it has been subtracted from the aligned target DSM"
)


@dataclass(frozen=True)
class AlignedEpoch:
    """A target epoch resampled onto the reference grid.

    Attributes
    ----------
    rgb : DataArray, uint8, dims (band, y, x)
        Target orthophoto on the reference grid (same coords, CRS and transform).
    valid : DataArray, bool, dims (y, x)
        True where the aligned target has data.
    dsm : DataArray, float32 metres, dims (y, x), or None
        Target DSM on the reference grid with the vertical offset removed (NaN = nodata).
    nir : DataArray, uint8, dims (y, x), or None
        Target near-infrared band on the reference grid, warped like ``rgb``; None when the
        target has none.
    result : CoregResult
        The estimated model (shift, residuals, confidence, tie points).
    vertical_offset_m : float or None
        ``median(target - reference)`` on stable ground before removal; None without DSMs.
    """

    rgb: xr.DataArray
    valid: xr.DataArray
    dsm: xr.DataArray | None
    result: CoregResult
    vertical_offset_m: float | None
    extra_warnings: tuple[str, ...] = ()
    reference_crs: Any = field(default=None, repr=False)
    reference_transform: Affine = field(default=Affine.identity(), repr=False)
    grid_snap_px: tuple[float, float] = (0.0, 0.0)
    #: (rgb, valid, dsm) of the target on the reference grid before the warp, and the warp's
    #: interpolation order: what :meth:`strips` resamples from.
    sources: tuple[Any, Any, Any] | None = field(default=None, repr=False, compare=False)
    order: int = 1
    nir: xr.DataArray | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings of the estimate and of the grid and DSM handling."""
        return tuple(self.result.warnings) + tuple(self.extra_warnings)

    def strips(
        self, rows_per_strip: int = 1024
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray | None]]:
        """The aligned epoch as numpy strips ``(row0, row1, rgb, valid, dsm)``, top to bottom.

        The same values as computing ``rgb``, ``valid`` and ``dsm`` window by window, but
        each chunk row of the lazy sources is decoded once (slicing the lazy warp strip by
        strip decodes the chunk rows a strip shares with the next twice, and its graph is
        walked again for every strip). Memory: a strip plus the source rows it needs.
        """
        import dask

        rows, cols = self.result.shape
        if self.sources is None:
            for r0 in range(0, rows, rows_per_strip):
                r1 = min(rows, r0 + rows_per_strip)
                parts = [self.rgb.data[:, r0:r1], self.valid.data[r0:r1]]
                if self.dsm is not None:
                    parts.append(self.dsm.data[r0:r1])
                got = [np.asarray(v) for v in dask.compute(*parts)]
                yield r0, r1, got[0], got[1].astype(bool), got[2] if len(got) > 2 else None
            return
        src_rgb, src_valid, src_dsm = self.sources
        arrays = [a for a in (src_rgb, src_valid, src_dsm) if a is not None]
        cache = _RowCache(arrays)
        result = self.result
        src_shape = (arrays[0].shape[-2], arrays[0].shape[-1])
        for r0 in range(0, rows, rows_per_strip):
            r1 = min(rows, r0 + rows_per_strip)
            window = (r0, 0, r1 - r0, cols)
            # full source rows: the cache holds whole rows, and columns cost nothing to keep
            y0, y1, _, _ = _source_window(result, window, self.order, src_shape)
            windows = cache.get(y0, y1)
            planes = [windows[0], windows[1].astype(bool, copy=False)]
            orders = [self.order, 1]
            if src_dsm is not None:
                planes.append(windows[2].astype(np.float32, copy=False))
                orders.append(1)
            warped = _warp_blocks(result, planes, orders, (y0, 0), window, 1024)
            rgb, valid = warped[0], warped[1]
            dsm = None
            if src_dsm is not None:
                dsm = warped[2]
                if self.vertical_offset_m is not None:
                    dsm = (dsm - np.float32(self.vertical_offset_m)).astype(np.float32)
            yield r0, r1, rgb, valid, dsm

    def report(self) -> dict[str, Any]:
        """The co-registration report (the content of ``R.json``), JSON-serialisable.

        Keys: shift_x_px, shift_y_px, shift_convention, shift_east_m, shift_north_m, model,
        parameters, rmse_px, rmse_m, n_tiepoints, n_used, vertical_offset_m,
        vertical_offset_convention, confidence, warnings, grid (crs, transform, shape),
        grid_snap_px and residuals (a GeoJSON FeatureCollection in WGS84 of the tie points
        with their measured shift, residual vectors and used flag).

        ``shift_x_px``/``shift_y_px`` are georeferenced: how far the target's content lies
        from the reference's by their georeferencing. When the target's grid was snapped to
        the reference's by a fraction of a pixel (``grid_snap_px``, x and y), the model (its
        ``parameters`` and the tie points) works on the snapped grid, where the shift is the
        reported one minus the snap.
        """
        r = self.result
        t = self.reference_transform
        res_x, res_y = abs(t.a), abs(t.e)
        out = r.to_dict()
        snap_x, snap_y = self.grid_snap_px
        sx, sy = r.shift_x_px + snap_x, r.shift_y_px + snap_y
        out["shift_x_px"], out["shift_y_px"] = float(sx), float(sy)
        out["grid_snap_px"] = [float(snap_x), float(snap_y)]
        out["shift_east_m"] = float(sx * t.a + sy * t.b)
        out["shift_north_m"] = float(sx * t.d + sy * t.e)
        out["rmse_m"] = (
            None if out["rmse_px"] is None else float(out["rmse_px"] * math.sqrt(res_x * res_y))
        )
        out["vertical_offset_m"] = (
            None if self.vertical_offset_m is None else float(self.vertical_offset_m)
        )
        out["vertical_offset_convention"] = VERTICAL_OFFSET_CONVENTION
        out["warnings"] = list(self.warnings)
        out["grid"] = {
            "crs": None if self.reference_crs is None else str(self.reference_crs),
            "transform": list(t)[:6],
            "shape": list(r.shape),
        }
        out["residuals"] = residuals_feature_collection(r, t, self.reference_crs)
        return out


def residuals_feature_collection(
    result: CoregResult, transform: Affine, crs: Any
) -> dict[str, Any]:
    """Tie points as an RFC 7946 FeatureCollection (WGS84 points) for the review map.

    Properties: ``dx_px, dy_px`` (measured shift, shift convention), ``res_dx_px, res_dy_px``
    (measured minus model), ``res_east_m, res_north_m`` (the same on the ground), ``used``,
    ``status`` (why a point was not used), ``peak``, ``snr``, ``ratio``.
    """
    from pyproj import CRS, Transformer

    tp = result.tiepoints
    features: list[dict[str, Any]] = []
    if tp.size == 0 or crs is None:
        return {"type": "FeatureCollection", "features": features}
    px, py = tp["x"] + 0.5, tp["y"] + 0.5
    mx = transform.a * px + transform.b * py + transform.c
    my = transform.d * px + transform.e * py + transform.f
    tr = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)
    lon, lat = tr.transform(np.asarray(mx), np.asarray(my))
    rex = tp["res_x"] * transform.a + tp["res_y"] * transform.b
    rny = tp["res_x"] * transform.d + tp["res_y"] * transform.e

    def num(v: float, nd: int = 4) -> float | None:
        return round(float(v), nd) if math.isfinite(float(v)) else None

    for i in range(tp.size):
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(float(lon[i]), 8), round(float(lat[i]), 8)],
                },
                "properties": {
                    "id": i,
                    "x_px": float(tp["x"][i]),
                    "y_px": float(tp["y"][i]),
                    "dx_px": num(tp["dx"][i]),
                    "dy_px": num(tp["dy"][i]),
                    "res_dx_px": num(tp["res_x"][i]),
                    "res_dy_px": num(tp["res_y"][i]),
                    "res_east_m": num(rex[i]),
                    "res_north_m": num(rny[i]),
                    "used": bool(tp["used"][i]),
                    "status": str(tp["status"][i]),
                    "peak": num(tp["peak"][i]),
                    "snr": num(tp["snr"][i], 2),
                    "ratio": num(tp["ratio"][i], 3),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


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


def grid_snap(target: xr.DataArray, reference: xr.DataArray) -> tuple[float, float] | None:
    """The sub-pixel (x, y) part of the offset between two grids of one CRS and pixel size.

    None when the grids differ otherwise (CRS, pixel size, rotation): they need resampling.
    (0, 0) when they are offset by whole pixels. Otherwise :func:`onto_reference_grid` with
    ``snap=True`` places the target at the nearest whole pixel, which moves its content by
    the returned amount in reference pixels: a feature at x on the exact placement is at
    x + snap_x on the snapped one.
    """
    r_crs, r_t, _ = _grid_of(reference)
    t_crs, t_t, _ = _grid_of(target)
    if r_crs != t_crs:
        return None
    off = _grid_offset(r_t, t_t)
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
    r_crs, r_t, r_shape = _grid_of(reference)
    t_crs, t_t, t_shape = _grid_of(target)
    exact = _grid_offset(r_t, t_t) if r_crs == t_crs else None
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


def _chunk_sizes(n: int, size: int) -> tuple[int, ...]:
    """Chunks of ``size`` along an axis of ``n`` (the last one shorter)."""
    return tuple(min(size, n - i) for i in range(0, n, size))


def _lazy_grid(
    ych: tuple[int, ...],
    xch: tuple[int, ...],
    lead: tuple[int, ...],
    dtype: Any,
    name: str,
    block: Any,
) -> Any:
    """A dask array of chunks ``ych`` x ``xch`` (leading dims ``lead``), one delayed block
    each: ``block((row0, col0, rows, cols), key)`` returns the block, named ``key``."""
    import dask.array as dsa

    rows_blocks: list[list[Any]] = []
    r0 = 0
    for i, h in enumerate(ych):
        row_blocks: list[Any] = []
        c0 = 0
        for j, w in enumerate(xch):
            blk = block((r0, c0, h, w), (name, i, j))
            row_blocks.append(dsa.from_delayed(blk, shape=(*lead, h, w), dtype=dtype))
            c0 += w
        rows_blocks.append(row_blocks)
        r0 += h
    return dsa.block(rows_blocks)


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
        import dask

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
        for (i, k), v in zip(todo, dask.compute(*parts), strict=True):
            self.rows[i][k] = np.asarray(v)
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


# --------------------------------------------------------------------------------------------
# Warping DataArrays
# --------------------------------------------------------------------------------------------


def _warp_dataarray(
    result: CoregResult,
    data: xr.DataArray,
    like: xr.DataArray,
    order: int,
    block_px: int,
) -> xr.DataArray:
    """Resample ``data`` (on the reference grid, pre-alignment) with the model of ``result``."""
    arr = data.data
    out_shape = result.shape
    if result.is_identity:
        warped: Any = arr
    elif hasattr(arr, "dask"):
        warped = _warp_lazy(result, arr, order, like, block_px)
    else:
        warped = result.warp(np.asarray(arr), order=order, block_px=block_px)
    out = xr.DataArray(
        warped, dims=data.dims, coords=data.coords, name=data.name, attrs=dict(data.attrs)
    )
    assert out.shape[-2:] == out_shape
    return out.rio.write_crs(like.rio.crs).rio.write_transform(like.rio.transform())


def _warp_lazy(result: CoregResult, arr: Any, order: int, like: xr.DataArray, block_px: int) -> Any:
    import dask
    from dask.base import tokenize

    H, W = result.shape
    if like.chunks is not None:
        ych, xch = like.chunks[-2], like.chunks[-1]
    else:
        ych, xch = _chunk_sizes(H, block_px), _chunk_sizes(W, block_px)
    src_h, src_w = arr.shape[-2], arr.shape[-1]
    out_dtype = _warp_kind(arr, order, None).dtype
    # The model is bound once and every block named: dask would otherwise walk and hash the
    # result (its tie-point table) for each block (2 s of graph building at 8192 px).
    warp_block = dask.delayed(functools.partial(_warp_block, result), pure=True)
    name = f"warp-{tokenize(arr.name, result.to_dict(), order, ych, xch)}"

    def block(window: tuple[int, int, int, int], key: tuple[Any, ...]) -> Any:
        y0, y1, x0, x1 = _source_window(result, window, order, (src_h, src_w))
        src = arr[..., y0:y1, x0:x1]
        return warp_block(src, (y0, x0), window, order, dask_key_name=key)

    return _lazy_grid(ych, xch, tuple(arr.shape[:-2]), out_dtype, name, block)


def _source_window(
    result: CoregResult,
    window: tuple[int, int, int, int],
    order: int,
    src_shape: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Source rows and columns ``(y0, y1, x0, x1)`` that output ``window`` (row0, col0, rows,
    cols) samples at interpolation ``order``, with a halo; one pixel when it falls outside."""
    r0, c0, h, w = window
    halo = 2 + (order + 1) // 2 + (4 if order > 1 else 0)
    rr = np.unique(np.r_[np.arange(r0, r0 + h, 32), r0 + h - 1]).astype(np.float64)
    cc = np.unique(np.r_[np.arange(c0, c0 + w, 32), c0 + w - 1]).astype(np.float64)
    sr, sc = result.source_coordinates(rr[:, None], cc[None, :])
    y0 = max(0, math.floor(float(np.min(sr))) - halo)
    y1 = min(src_shape[0], math.ceil(float(np.max(sr))) + halo + 1)
    x0 = max(0, math.floor(float(np.min(sc))) - halo)
    x1 = min(src_shape[1], math.ceil(float(np.max(sc))) + halo + 1)
    if y1 <= y0 or x1 <= x0:
        return 0, 1, 0, 1  # outside: any pixel, every sample falls outside
    return y0, y1, x0, x1


def _warp_block(
    result: CoregResult,
    src: np.ndarray,
    origin: tuple[int, int],
    window: tuple[int, int, int, int],
    order: int,
    block_px: int | None = None,
) -> np.ndarray:
    """Output ``window`` (row0, col0, rows, cols) from ``src``, the source from ``origin``
    (row, col) on, computed ``block_px`` at a time (default: the window at once)."""
    return _warp_blocks(result, [src], [order], origin, window, block_px)[0]


def _warp_blocks(
    result: CoregResult,
    sources: list[np.ndarray],
    orders: list[int],
    origin: tuple[int, int],
    window: tuple[int, int, int, int],
    block_px: int | None = None,
) -> list[np.ndarray]:
    """:func:`_warp_block` of several sources on one grid, the pull map evaluated once."""
    oy, ox = origin

    def coords(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sr, sc = result.source_coordinates(rows, cols)
        return sr - oy, sc - ox

    shift = result.pull_offset
    return warp_arrays(
        coords,
        [np.asarray(s) for s in sources],
        orders,
        [None] * len(sources),
        result.shape,
        block_px=block_px or window[2] + window[3],
        window=window,
        translation=None if shift is None else (shift[0] - oy, shift[1] - ox),
    )


class _WarpedView:
    """The aligned target as a sliceable array that resamples only the window asked for.

    Sampling a few windows of a lazy (dask) warp would compute whole output chunks each
    time; this reads just the source region a window needs.
    """

    def __init__(self, result: CoregResult, source: Any) -> None:
        self.result = result
        self.source = source
        self.shape = (*tuple(source.shape[:-2]), *result.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = tuple(k for k in key if k is not Ellipsis)
        r0, r1, _ = key[-2].indices(self.result.shape[0])
        c0, c1, _ = key[-1].indices(self.result.shape[1])
        window = (r0, c0, r1 - r0, c1 - c0)
        src_shape = (self.source.shape[-2], self.source.shape[-1])
        # the source region in one read (sliced strip by strip, a lazy source would decode
        # the chunks under it once per strip)
        y0, y1, x0, x1 = _source_window(self.result, window, 1, src_shape)
        src = np.asarray(self.source[..., y0:y1, x0:x1])
        return _warp_block(self.result, src, (y0, x0), window, 1, max(r1 - r0, c1 - c0, 1))


# --------------------------------------------------------------------------------------------
# The epoch
# --------------------------------------------------------------------------------------------


def align_epoch(
    reference_rgb: xr.DataArray,
    target_rgb: xr.DataArray,
    target_valid: xr.DataArray,
    target_dsm: xr.DataArray | None = None,
    reference_dsm: xr.DataArray | None = None,
    params: CoregParams = CoregParams(),  # noqa: B008 - frozen dataclass, immutable default
    *,
    reference_valid: xr.DataArray | None = None,
    order: int = 1,
    target_nir: xr.DataArray | None = None,
) -> AlignedEpoch:
    """Bring a target epoch onto the reference grid and remove its misregistration.

    Parameters
    ----------
    reference_rgb : DataArray, dims (band, y, x) or (y, x), with CRS and transform
        The reference orthophoto (uint8, 1 or 3 bands: RGB, grey, a rasterised line map) or
        any other 2-D representation of the ground, e.g. DSM heights (float, NaN = nodata,
        matched on their gradients); its grid is the output grid.
    target_rgb : DataArray, dims (band, y, x) or (y, x)
        The new epoch (any representation, as the reference), any CRS/resolution/extent
        overlapping the reference; float data is resampled with NaN outside its footprint.
    target_valid : DataArray, bool, dims (y, x)
        Validity of ``target_rgb`` (same grid as it).
    target_dsm, reference_dsm : DataArray, float32 metres, dims (y, x), optional
        DSMs (NaN = nodata). With both, the vertical offset is estimated and removed; with
        only the target's, it is aligned horizontally and the offset is None.
    params : CoregParams
    reference_valid : DataArray, bool, dims (y, x), optional
        Validity of the reference (default: all pixels valid).
    order : int
        Interpolation order of the imagery warp (1 bilinear, 3 cubic); DSMs use 1, masks
        keep only pixels whose neighbours are all valid.
    target_nir : DataArray, uint8, dims (y, x), optional
        The target's near-infrared band (same grid as ``target_rgb``), warped like it into
        :attr:`AlignedEpoch.nir`.

    Returns
    -------
    AlignedEpoch

    Raises
    ------
    GridMismatchError
        A raster without CRS.
    InsufficientOverlapError
        The epochs do not overlap (or less than ``params.min_overlap``).
    CoregistrationError
        Under ``params.strict`` when no reliable model is found.
    """
    warnings: list[str] = []
    r_crs, r_t, _ = _grid_of(reference_rgb)
    t_crs = _grid_of(target_rgb)[0]
    if r_crs != t_crs:
        warnings.append(f"the target's CRS ({t_crs}) was reprojected to the reference's ({r_crs})")
    snap = grid_snap(target_rgb, reference_rgb)
    snapped = snap is not None
    if snap is not None and any(snap):
        log.info("target grid snapped to the reference grid by (%.3f, %.3f) px", *snap)
    image_fill = np.nan if np.issubdtype(target_rgb.dtype, np.floating) else 0
    tgt = onto_reference_grid(
        target_rgb, reference_rgb, resampling=Resampling.bilinear, fill=image_fill, snap=snapped
    )
    tval = onto_reference_grid(
        target_valid, reference_rgb, resampling=Resampling.nearest, fill=False, snap=snapped
    )
    rval = None
    if reference_valid is not None:
        rval = onto_reference_grid(
            reference_valid, reference_rgb, resampling=Resampling.nearest, fill=False
        ).data
    result = coregister(
        reference_rgb.data,
        tgt.data,
        reference_valid=rval,
        target_valid=tval.data,
        params=params,
    )
    log.info(
        "co-registration: %s, shift (%.3f, %.3f) px, rmse %.3f px, %d/%d tie points, "
        "confidence %.2f",
        result.model,
        result.shift_x_px,
        result.shift_y_px,
        result.rmse_px,
        result.n_used,
        result.n_tiepoints,
        result.confidence,
    )
    for w in result.warnings:
        log.warning("co-registration: %s", w)
    rgb = _warp_dataarray(result, tgt, reference_rgb, order, params.block_px)
    valid = _warp_dataarray(result, tval, reference_rgb, 1, params.block_px)
    valid = valid.rename("valid")
    nir_out: xr.DataArray | None = None
    if target_nir is not None:
        tnir = onto_reference_grid(
            target_nir, reference_rgb, resampling=Resampling.bilinear, fill=0, snap=snapped
        )
        nir_out = _warp_dataarray(result, tnir, reference_rgb, order, params.block_px)
        nir_out = nir_out.rename("nir")
    dsm_out: xr.DataArray | None = None
    offset: float | None = None
    if target_dsm is not None:
        tdsm = onto_reference_grid(
            target_dsm,
            reference_rgb,
            resampling=Resampling.bilinear,
            fill=np.nan,
            snap=snapped and grid_snap(target_dsm, reference_rgb) == snap,
        )
        if not np.issubdtype(tdsm.dtype, np.floating):
            tdsm = tdsm.astype(np.float32)
        dsm_w = _warp_dataarray(result, tdsm, reference_rgb, 1, params.block_px)
        if reference_dsm is not None:
            rdsm = onto_reference_grid(
                reference_dsm, reference_rgb, resampling=Resampling.bilinear, fill=np.nan
            )
            try:
                lazy = hasattr(dsm_w.data, "dask") or hasattr(rdsm.data, "dask")
                offset = estimate_vertical_offset(
                    rdsm.data,
                    _WarpedView(result, tdsm.data) if lazy else dsm_w.data,
                    pixel_size_m=math.sqrt(abs(r_t.a * r_t.e)),
                    max_windows=16 if lazy else 64,
                )
            except CoregistrationError as exc:
                warnings.append(f"DSM vertical offset not estimated: {exc}")
                offset = None
            if offset is not None:
                dsm_w = (dsm_w - np.float32(offset)).astype(np.float32)
                dsm_w = dsm_w.rio.write_crs(r_crs).rio.write_transform(r_t)
        else:
            warnings.append("no reference DSM: the vertical offset was not estimated")
        dsm_out = dsm_w.rio.write_nodata(np.nan, encoded=False).rename("dsm")
    return AlignedEpoch(
        rgb=rgb.rename("rgb"),
        valid=valid,
        dsm=dsm_out,
        result=result,
        vertical_offset_m=offset,
        extra_warnings=tuple(warnings),
        reference_crs=r_crs,
        reference_transform=r_t,
        grid_snap_px=snap if snap is not None else (0.0, 0.0),
        sources=(tgt.data, tval.data, None if target_dsm is None else tdsm.data)
        if hasattr(tgt.data, "dask")
        else None,
        order=order,
        nir=nir_out,
    )
