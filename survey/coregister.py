"""Co-register a new survey epoch onto a reference: files in, aligned GeoTIFFs and a report out.

The computation is :func:`change_detection.grids.align_epoch`; this module opens the rasters,
checks that they can be compared (CRS, footprints that overlap), runs it and writes the
outputs atomically:

- ``OUT.tif``: the target on the reference grid: an image as uint8 (RGB, or one grey band) +
  mask band; heights (a DSM given as the target) as float32 metres with NaN nodata and, when
  the reference is heights too, the vertical offset removed;
- ``OUT_DSM.tif`` (with DSMs): the target DSM on the reference grid, vertical offset removed;
- ``R.json``: the report (shift, model, residuals, confidence, warnings, vertical offset,
  inputs' SHA-256, each input's representation and assumptions) with the tie-point residual
  layer embedded as ``residuals``, and the same layer beside it as ``R.residuals.geojson``
  for the review map.

Reference and target may each be any representation of the ground
(:func:`survey.imagery.read_orthophoto`, :func:`survey.imagery.heights_reason`): an RGB
orthophoto (any data type, RGBA, RGB + NIR), a greyscale image, a paletted one (expanded), a
georeferenced raster of a permit map or atlas (``line-work``: a map on a plain background,
1 or 3 bands or paletted, with or without nodata; without, every pixel is valid), or heights
(a single float or signed-integer band: a DSM, matched on its height gradients). The report
names the representation of each side (``inputs.<side>.representation``) and what was
assumed about it (``inputs.<side>.assumptions``, also one warning line per file).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr
from rasterio.warp import transform_bounds

from change_detection.coregistration import CoregParams
from change_detection.errors import InsufficientOverlapError
from change_detection.grids import AlignedEpoch, align_epoch
from survey.errors import RasterFormatError
from survey.imagery import heights_reason, read_orthophoto
from survey.progress import Stage, stage
from survey.rasters import atomic_path, open_dsm, sha256_file, write_geotiff

__all__ = ["CoregisterOutputs", "coregister_files"]

log = logging.getLogger(__name__)

#: Rasters larger than this many pixels are opened as dask arrays (windowed, bounded memory).
_CHUNKED_ABOVE_PX = 64_000_000

#: Side (px) of the windows a dask-backed aligned raster is computed and written in.
_BLOCK_PX = 2048


@dataclass(frozen=True)
class CoregisterOutputs:
    """What :func:`coregister_files` wrote, and the report it wrote."""

    out: Path
    out_dsm: Path | None
    report_path: Path | None
    residuals_path: Path | None
    report: dict[str, Any] = field(compare=False)
    aligned: AlignedEpoch = field(compare=False, repr=False)


def _pixels(path: Path) -> int:
    try:
        with rasterio.open(path) as ds:
            return int(ds.width) * int(ds.height)
    except rasterio.errors.RasterioIOError:
        return 0


@dataclass(frozen=True)
class _Input:
    """One side of a co-registration: the representation matched, and how it was read."""

    image: xr.DataArray  # uint8 (band, y, x), or float32 heights (y, x)
    valid: xr.DataArray
    representation: str
    record: dict[str, Any]

    @property
    def heights(self) -> bool:
        return self.representation == "heights"


def _read_input(path: Path, chunks: int | None, side: str) -> _Input:
    """Read a reference or target as the representation it holds (module docstring)."""
    why = heights_reason(path, side)
    if why is not None:
        dsm = open_dsm(path, chunks=chunks)
        log.warning("%s: assumed: %s", path, why)
        record: dict[str, Any] = {"representation": "heights", "assumptions": [why]}
        return _Input(dsm, dsm.notnull().rename("valid"), "heights", record)
    ortho = read_orthophoto(path, chunks, role=side, grey="keep", line_work=True)
    return _Input(ortho.rgb, ortho.valid, ortho.representation, ortho.record())


def _check_overlap(reference: Path, target: Path, ref: xr.DataArray, tgt: xr.DataArray) -> None:
    r_bounds = ref.rio.bounds()
    t_bounds = transform_bounds(tgt.rio.crs, ref.rio.crs, *tgt.rio.bounds(), densify_pts=21)
    ix0, iy0 = max(r_bounds[0], t_bounds[0]), max(r_bounds[1], t_bounds[1])
    ix1, iy1 = min(r_bounds[2], t_bounds[2]), min(r_bounds[3], t_bounds[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    r_area = (r_bounds[2] - r_bounds[0]) * (r_bounds[3] - r_bounds[1])
    t_area = (t_bounds[2] - t_bounds[0]) * (t_bounds[3] - t_bounds[1])
    share = inter / max(min(r_area, t_area), 1e-12)
    if inter <= 0:
        raise InsufficientOverlapError(
            f"{target}: does not overlap the reference {reference} (target bounds "
            f"{tuple(round(v, 2) for v in t_bounds)} vs {tuple(round(v, 2) for v in r_bounds)} "
            f"in {ref.rio.crs}); check that both rasters show the same site"
        )
    if share < 0.2:
        raise InsufficientOverlapError(
            f"{target}: overlaps the reference {reference} on only {share:.0%} of the smaller "
            "footprint (20 % needed); check that both rasters show the same site"
        )


@dataclass(frozen=True)
class _Sides:
    """Both sides opened and checked: what is matched, and the DSMs whose offset is removed
    (a side that is itself heights is its own DSM)."""

    ref: _Input
    tgt: _Input
    ref_dsm: xr.DataArray | None
    tgt_dsm: xr.DataArray | None


def coregister_files(
    reference: str | os.PathLike[str],
    target: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    report: str | os.PathLike[str] | None = None,
    reference_dsm: str | os.PathLike[str] | None = None,
    target_dsm: str | os.PathLike[str] | None = None,
    out_dsm: str | os.PathLike[str] | None = None,
    params: CoregParams = CoregParams(),  # noqa: B008 - frozen dataclass, immutable default
    order: int = 1,
    chunk_px: int | None = None,
) -> CoregisterOutputs:
    """Co-register ``target`` onto ``reference`` and write the aligned rasters and the report.

    Four stages, each one function and one named stage of :mod:`survey.progress`: open the
    inputs (:func:`_open_sides`), co-register (:func:`_align`), write the aligned rasters
    (:func:`_write_aligned`; with dask-backed inputs the warp is computed here, window by
    window) and write the report (:func:`_report`).

    Parameters
    ----------
    reference, target : path
        Rasters of the ground: orthophotos, grey or paletted images, map rasters or DSMs (see
        the module docstring).
    out : path
        The aligned target, written on the reference grid (an image, or heights when the
        target is a DSM).
    report : path, optional
        JSON report; the residual layer is also written beside it as ``*.residuals.geojson``.
    reference_dsm, target_dsm, out_dsm : path, optional
        DSMs; ``out_dsm`` receives the aligned target DSM (needs ``target_dsm``).
    params : CoregParams
    order : int
        Interpolation order of the orthophoto (1 bilinear, 3 cubic).
    chunk_px : int, optional
        Open as dask arrays in chunks of this size (default: automatically above 64 Mpx).

    Returns
    -------
    CoregisterOutputs

    Raises
    ------
    InputFileError, NotGeoreferencedError, RasterFormatError
        An input cannot be read as such.
    InsufficientOverlapError
        The footprints (or valid areas) do not overlap enough.
    CoregistrationError
        Under ``params.strict`` when no reliable model is found.
    OutputError
        An output cannot be written.
    """
    ref_p, tgt_p, out_p = Path(reference), Path(target), Path(out)
    if target_dsm is not None and out_dsm is None:
        raise RasterFormatError(f"{target_dsm}: a target DSM needs an output path (--out-dsm)")
    if out_dsm is not None and target_dsm is None:
        raise RasterFormatError(f"{out_dsm}: an output DSM needs --target-dsm")
    with stage("open the inputs"):
        sides = _open_sides(ref_p, tgt_p, reference_dsm, target_dsm, chunk_px)
    with stage("co-register"):
        aligned = _align(sides, params, order)
    n_windows = _window_count(sides.ref.image) * (2 if out_dsm is not None else 1)
    with stage("write the aligned rasters", total=n_windows) as writing:
        out_dsm_p = _write_aligned(
            sides, aligned, ref_p, out_p, None if out_dsm is None else Path(out_dsm), writing
        )
    with stage("write the report"):
        rep = _report(sides, aligned, ref_p, tgt_p, out_p, out_dsm_p, reference_dsm, target_dsm)
        report_p: Path | None = None
        residuals_p: Path | None = None
        if report is not None:
            report_p = Path(report)
            residuals_p = report_p.with_suffix(".residuals.geojson")
            rep["outputs"]["residuals"] = str(residuals_p)
            _write_json(residuals_p, rep["residuals"])
            _write_json(report_p, rep)
    return CoregisterOutputs(out_p, out_dsm_p, report_p, residuals_p, rep, aligned)


def _open_sides(
    ref_p: Path,
    tgt_p: Path,
    reference_dsm: str | os.PathLike[str] | None,
    target_dsm: str | os.PathLike[str] | None,
    chunk_px: int | None,
) -> _Sides:
    """Stage 1: read both sides as what they hold, refuse a DSM given twice, check the
    footprints overlap and open the DSMs."""
    if chunk_px is None:
        big = max(_pixels(ref_p), _pixels(tgt_p)) > _CHUNKED_ABOVE_PX
        chunk_px = 2048 if big else None
    ref = _read_input(ref_p, chunk_px, "reference")
    tgt = _read_input(tgt_p, chunk_px, "target")
    for side, given, flag in (
        (ref, reference_dsm, "--reference-dsm"),
        (tgt, target_dsm, "--target-dsm"),
    ):
        if side.heights and given is not None:
            raise RasterFormatError(
                f"{given}: {flag} was given but the {'reference' if side is ref else 'target'} "
                f"is itself heights (a DSM); pass the DSM once, as --"
                f"{'reference' if side is ref else 'target'}"
            )
    _check_overlap(ref_p, tgt_p, ref.image, tgt.image)
    r_dsm = open_dsm(reference_dsm, chunks=chunk_px) if reference_dsm is not None else None
    t_dsm = open_dsm(target_dsm, chunks=chunk_px) if target_dsm is not None else None
    if ref.heights:
        r_dsm = ref.image
    if tgt.heights:
        # the aligned heights are the output: written from the DSM branch, offset removed
        t_dsm = tgt.image
    return _Sides(ref, tgt, r_dsm, t_dsm)


def _align(sides: _Sides, params: CoregParams, order: int) -> AlignedEpoch:
    """Stage 2: :func:`change_detection.grids.align_epoch` (lazy for dask-backed inputs)."""
    ref, tgt = sides.ref, sides.tgt
    # heights are never line work: the core skips that test and names them in the report
    params = dataclasses.replace(
        params,
        reference_kind="heights" if ref.heights else params.reference_kind,
        target_kind="heights" if tgt.heights else params.target_kind,
    )
    return align_epoch(
        ref.image,
        tgt.image,
        tgt.valid,
        sides.tgt_dsm,
        sides.ref_dsm,
        params,
        reference_valid=ref.valid,
        order=1 if tgt.heights else order,
    )


def _write_aligned(
    sides: _Sides,
    aligned: AlignedEpoch,
    ref_p: Path,
    out_p: Path,
    out_dsm: Path | None,
    writing: Stage,
) -> Path | None:
    """Stage 3: the aligned target at ``out_p`` (heights when the target is a DSM) and the
    aligned DSM at ``out_dsm``, tagged with the model; returns the DSM written or None."""
    result = aligned.result
    grid = sides.ref.image
    tags = {
        "COREGISTRATION_MODEL": result.model,
        "COREGISTRATION_SHIFT_PX": f"{result.shift_x_px:.4f},{result.shift_y_px:.4f}",
        "COREGISTRATION_CONFIDENCE": f"{result.confidence:.3f}",
        "COREGISTRATION_REFERENCE": ref_p.name,
    }
    georef: dict[str, Any] = {
        "transform": grid.rio.transform(),
        "crs": grid.rio.crs,
        "tags": tags,
        "progress": writing,
    }
    if sides.tgt.heights:
        assert aligned.dsm is not None
        heights = aligned.dsm.astype(np.float32)
        _write_raster(out_p, heights, nodata=float("nan"), **georef)
    else:
        _write_raster(out_p, aligned.rgb, mask=aligned.valid, **georef)
    if out_dsm is None or aligned.dsm is None:
        return None
    return _write_raster(out_dsm, aligned.dsm.astype(np.float32), nodata=float("nan"), **georef)


def _report(
    sides: _Sides,
    aligned: AlignedEpoch,
    ref_p: Path,
    tgt_p: Path,
    out_p: Path,
    out_dsm_p: Path | None,
    reference_dsm: str | os.PathLike[str] | None,
    target_dsm: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """Stage 4: the report: the co-registration's, with each input's SHA-256, how it was
    read and what was written."""
    ref, tgt = sides.ref, sides.tgt
    rep = aligned.report()
    rep["inputs"] = {
        "reference": {"path": str(ref_p), "sha256": sha256_file(ref_p), **ref.record},
        "target": {"path": str(tgt_p), "sha256": sha256_file(tgt_p), **tgt.record},
    }
    if ref.heights != tgt.heights:
        rep["warnings"].append(
            f"the reference is {ref.representation} and the target {tgt.representation}: "
            "they were matched on the edges they share only (building outlines), which is "
            "weaker than matching like with like"
        )
    if reference_dsm is not None:
        rep["inputs"]["reference_dsm"] = {
            "path": str(reference_dsm),
            "sha256": sha256_file(reference_dsm),
        }
    if target_dsm is not None:
        rep["inputs"]["target_dsm"] = {"path": str(target_dsm), "sha256": sha256_file(target_dsm)}
    rep["outputs"] = {
        "orthophoto": None if tgt.heights else str(out_p),
        "heights": str(out_p) if tgt.heights else None,
        "dsm": None if out_dsm_p is None else str(out_dsm_p),
    }
    return rep


def _window_count(grid: xr.DataArray, block_px: int = _BLOCK_PX) -> int:
    """Windows :func:`_write_raster` writes a dask-backed raster of ``grid``'s shape in
    (one for an in-memory raster)."""
    if grid.chunks is None:
        return 1
    rows, cols = grid.sizes["y"], grid.sizes["x"]
    return math.ceil(rows / block_px) * math.ceil(cols / block_px)


def _write_raster(
    path: Path,
    data: xr.DataArray,
    *,
    transform: Any,
    crs: Any,
    mask: xr.DataArray | None = None,
    nodata: float | None = None,
    tags: dict[str, str] | None = None,
    block_px: int = _BLOCK_PX,
    progress: Stage | None = None,
) -> Path:
    """Write an aligned raster; dask-backed ones window by window (bounded memory).

    In-memory arrays go through :func:`survey.rasters.write_geotiff`; lazy ones are written
    with the same profile (tiled 512, DEFLATE, internal mask) into an atomic temporary file,
    one ``block_px`` window at a time, so only that window's part of the warp is computed.
    Each window written (the whole raster, in memory) advances ``progress`` by one.
    """
    if data.chunks is None:
        written = write_geotiff(
            path,
            np.asarray(data.values),
            transform=transform,
            crs=crs,
            nodata=nodata,
            mask=None if mask is None else np.asarray(mask.values, dtype=bool),
            tags=tags,
        )
        if progress is not None:
            progress.advance()
        return written
    arr = data if data.ndim == 3 else data.expand_dims("band")
    count, rows, cols = (int(v) for v in arr.shape)
    dtype = np.dtype(arr.dtype)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": count,
        "dtype": dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "predictor": 2 if np.issubdtype(dtype, np.integer) else 3,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "interleave": "pixel" if count > 1 else "band",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if count == 3 and dtype == np.uint8:
        profile["photometric"] = "RGB"
    with (
        atomic_path(path) as tmp,
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        for r0 in range(0, rows, block_px):
            r1 = min(rows, r0 + block_px)
            for c0 in range(0, cols, block_px):
                c1 = min(cols, c0 + block_px)
                win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
                dst.write(np.asarray(arr[:, r0:r1, c0:c1].values), window=win)
                if mask is not None:
                    m = np.asarray(mask[r0:r1, c0:c1].values, dtype=bool)
                    dst.write_mask(np.where(m, 255, 0).astype(np.uint8), window=win)
                if progress is not None:
                    progress.advance()
        if tags:
            dst.update_tags(**tags)
    return path


def _finite(obj: Any) -> Any:
    """Replace NaN/inf by None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(obj), indent=1, allow_nan=False) + "\n")
