"""The thin xarray/rioxarray layer of co-registration: grids in, aligned epoch out.

:func:`align_epoch` brings a target epoch (orthophoto, validity mask, DSM) onto the reference
grid (CRS, resolution, extent), estimates the residual misregistration with
:func:`change_detection.coregistration.coregister`, resamples the target with the estimated
model window by window, removes the DSM's vertical offset on stable ground and returns an
:class:`AlignedEpoch` whose :meth:`AlignedEpoch.report` is the JSON co-registration report.

Bringing onto the grid (:mod:`change_detection.onto_grid`): a target on the same grid is used
as it is; a target in the same CRS and resolution whose grid is offset by whole pixels is
cropped and padded exactly (lazily for dask arrays, no resampling); one offset by a fraction of
a pixel is a translation, resampled lazily (nearest: the rounded offset; bilinear: four
weighted slices); anything else is resampled with ``.rio.reproject_match`` (bilinear for
imagery and heights, nearest for the mask; this loads the target in memory).
:func:`align_epoch` snaps a target in the same CRS and resolution whose grid is offset by a
fraction of a pixel (two photogrammetry runs rarely share a grid origin) to the nearest whole
pixel instead: the misregistration it measures next includes that fraction, so the target is
resampled once (by the model) rather than twice, and lazily. The report's shift is the
georeferenced one (the snap taken back out) and ``grid_snap_px`` records the snap.
:func:`snapped_offset` says where the snapped target's pixels come from, so that coarse
images made elsewhere (from the files' overviews, :mod:`survey.overviews`) can be handed to
:func:`align_epoch` (``coarse=``) on the grid the estimate uses.

Dask-backed inputs (``open_orthophoto(..., chunks=...)``) give dask-backed outputs: the warp
(:mod:`change_detection.warped`) is built as one task per output chunk reading only the source
window it needs (plus a halo), so memory stays bounded by the chunk size.
"""

from __future__ import annotations

import logging
import math
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
    CoregParams,
    CoregResult,
    coregister,
    estimate_vertical_offset,
)
from change_detection.coregistration.coarse import COARSE_IMAGES_UNUSED, CoarseImages
from change_detection.errors import CoregistrationError
from change_detection.onto_grid import (
    _grid_of,
    _RowCache,
    _translation_offset,
    grid_snap,
    onto_reference_grid,
)
from change_detection.warped import _source_window, _warp_blocks, _warp_dataarray, _WarpedView

__all__ = [
    "SHIFT_CONVENTION",
    "VERTICAL_OFFSET_CONVENTION",
    "AlignedEpoch",
    "CoarseImages",
    "align_epoch",
    "grid_snap",
    "onto_reference_grid",
    "residuals_feature_collection",
    "snapped_offset",
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
    #: What the coarse pass correlated when it was not the full-resolution rasters (the
    #: :attr:`CoarseImages.source` of images handed to :func:`align_epoch` and used).
    coarse_source: str | None = None

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
        with their measured shift, residual vectors and used flag); ``coarse_pass`` (what
        the whole-image search correlated) when it was not the full-resolution rasters.

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
        if self.coarse_source is not None:
            out["coarse_pass"] = self.coarse_source
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
    coarse: CoarseImages | None = None,
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
    coarse : CoarseImages, optional
        The reference and the target block-averaged on the reference's coarse grid, the
        target placed as this function places it (:func:`snapped_offset`), e.g. from the
        files' overviews (:func:`survey.overviews.coarse_from_overviews`): the coarse pass
        correlates them instead of reading both rasters in full (see
        :func:`~change_detection.coregistration.coregister`). Without it, or when they give
        no usable estimate (a warning says so), the rasters are block-averaged.

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
    result = _coregister_on_grid(reference_rgb, reference_valid, tgt, tval, params, coarse)
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
    tdsm: xr.DataArray | None = None
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
        dsm_out, offset = _aligned_dsm(result, tdsm, reference_dsm, reference_rgb, params, warnings)
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
        sources=(tgt.data, tval.data, None if tdsm is None else tdsm.data)
        if hasattr(tgt.data, "dask")
        else None,
        order=order,
        nir=nir_out,
        coarse_source=_coarse_source(coarse, result),
    )


def snapped_offset(target: xr.DataArray, reference: xr.DataArray) -> tuple[int, int] | None:
    """Where :func:`align_epoch` places the reference grid's corner on the target's grid.

    Returns
    -------
    (row, col) or None
        The target pixel (whole pixels) that pixel ``[0, 0]`` of the reference grid shows
        once the target is brought onto it: the exact offset rounded, as
        :func:`onto_reference_grid` does with ``snap=True``. None when the grids differ by
        more than a translation (another CRS, pixel size or rotation: the target is
        resampled).

    Raises
    ------
    GridMismatchError
        Either raster has no CRS.
    """
    exact = _translation_offset(target, reference)
    if exact is None:
        return None
    return round(exact[0]), round(exact[1])


def _coarse_source(coarse: CoarseImages | None, result: CoregResult) -> str | None:
    """The source of the coarse images when the estimate used them, else None."""
    if coarse is None or any(w.startswith(COARSE_IMAGES_UNUSED) for w in result.warnings):
        return None
    return coarse.source


def _coregister_on_grid(
    reference_rgb: xr.DataArray,
    reference_valid: xr.DataArray | None,
    tgt: xr.DataArray,
    tval: xr.DataArray,
    params: CoregParams,
    coarse: CoarseImages | None = None,
) -> CoregResult:
    """:func:`coregister` of a target already on the reference grid (``tgt`` and its
    validity ``tval``), its summary logged and each warning one line."""
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
        coarse=coarse,
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
    return result


def _aligned_dsm(
    result: CoregResult,
    tdsm: xr.DataArray,
    reference_dsm: xr.DataArray | None,
    reference_rgb: xr.DataArray,
    params: CoregParams,
    warnings: list[str],
) -> tuple[xr.DataArray, float | None]:
    """The target DSM (already on the reference grid, float) warped by ``result`` and, with a
    reference DSM, less its vertical offset on stable ground: (DSM, offset in metres or
    None). What could not be done is appended to ``warnings``."""
    r_crs, r_t, _ = _grid_of(reference_rgb)
    dsm_w = _warp_dataarray(result, tdsm, reference_rgb, 1, params.block_px)
    offset: float | None = None
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
    return dsm_w.rio.write_nodata(np.nan, encoded=False).rename("dsm"), offset
