"""The whole estimate: coarse shift, tie-point passes, model (:func:`coregister`)."""

from __future__ import annotations

import logging
import math

from change_detection.coregistration.caches import _chunked, _WindowStash
from change_detection.coregistration.coarse import _COARSE_DOUBT, _coarse_shift
from change_detection.coregistration.params import CoregParams, _replace, _Sliceable
from change_detection.coregistration.result import CoregResult
from change_detection.coregistration.selection import _fit
from change_detection.coregistration.tiepoints import (
    _guided_offsets,
    _measure_tiepoints,
    _robust_affine,
)
from change_detection.errors import GridMismatchError

log = logging.getLogger(__name__)

_DEFAULTS = CoregParams()


def coregister(
    reference: _Sliceable,
    target: _Sliceable,
    *,
    reference_valid: _Sliceable | None = None,
    target_valid: _Sliceable | None = None,
    params: CoregParams = _DEFAULTS,
) -> CoregResult:
    """Estimate the misregistration of ``target`` against ``reference`` on one pixel grid.

    Parameters
    ----------
    reference, target : array, shape (rows, cols) or (bands, rows, cols)
        Intensities on the same grid (grey, RGB uint8, DSM heights, or any representation;
        RGB is averaged to grey and the illumination-robust gradient representation is built
        inside, window by window). Either may be a permit map (line work on a plain
        background, 1 or 3 bands, either polarity): it is found by :func:`detect_line_work`
        (or declared by ``params.reference_kind``/``target_kind``) and matched on its ink
        (see "Line work" in the package docstring; ``CoregResult.representation`` says what
        was matched). Any sliceable array works (ndarray, np.memmap, dask array): only
        windows and strips are read, so memory stays bounded for large rasters. NaN counts
        as invalid.
    reference_valid, target_valid : array of bool, shape (rows, cols), optional
        Validity masks (True = data); default all valid.
    params : CoregParams

    Returns
    -------
    CoregResult
        Shift, model, residuals, tie points and confidence. See the package docstring for the
        sign conventions.

    Raises
    ------
    InsufficientOverlapError
        No valid pixels, or the valid areas overlap on less than ``params.min_overlap``.
    GridMismatchError
        The two arrays do not have the same grid shape.
    CoregistrationError
        Under ``params.strict`` when no reliable model could be estimated.
    """
    shape = (int(reference.shape[-2]), int(reference.shape[-1]))
    if (int(target.shape[-2]), int(target.shape[-1])) != shape:
        raise GridMismatchError(
            f"reference grid {shape} and target grid {tuple(target.shape[-2:])} differ; "
            "bring the target onto the reference grid first (change_detection.align_epoch)"
        )
    for name, v in (("reference_valid", reference_valid), ("target_valid", target_valid)):
        if v is not None and tuple(v.shape) != shape:
            raise GridMismatchError(f"{name} has shape {tuple(v.shape)}, expected {shape}")
    warnings: list[str] = []
    small = min(shape)
    if small < 2 * params.window_px:
        # small rasters: windows of at most half the short side (never below 32 px)
        fit_px = max(32, 2 ** math.floor(math.log2(max(small // 2, 32))))
        if fit_px < params.window_px:
            params = _replace(params, window_px=fit_px)
    # A lazy reference is decoded once: the coarse pass keeps its tie-point windows.
    stash = _WindowStash.for_grid(shape, params) if _chunked(reference, reference_valid) else None
    coarse = _coarse_shift(reference, target, reference_valid, target_valid, params, stash)
    if not coarse.reliable:
        if coarse.ratio > params.max_peak_ratio:
            warnings.append(
                f"{_COARSE_DOUBT} has several similar peaks (repeating pattern?); "
                "the global shift may be ambiguous"
            )
        else:
            warnings.append(f"{_COARSE_DOUBT} peak is weak")
    if coarse.overlap < 0.5:
        warnings.append(f"the epochs overlap on only {coarse.overlap:.0%} of the valid area")
    ci = (round(coarse.shift[1]), round(coarse.shift[0])) if coarse.reliable else (0, 0)
    if not coarse.reliable and params.search_px is None:
        # nothing trustworthy to centre on: search the widest range the windows allow
        params = _replace(params, search_px=params.window_px // 2 - 2)
    table, grid = _measure_tiepoints(
        reference, target, reference_valid, target_valid, ci, params, stash, coarse.lines
    )
    guided = _guided_offsets(table, ci, params)
    if guided is not None:
        # A rotation or scale moves the corners of a large raster further than the search
        # range around one global shift: measure again, each window cut where a robust affine
        # fit of the first pass puts it.
        log.debug("second tie-point pass at affine-predicted offsets")
        table, grid = _measure_tiepoints(
            reference, target, reference_valid, target_valid, guided, params, stash, coarse.lines
        )
    if coarse.reference_lines is not None or coarse.target_lines is not None:
        pull = _robust_affine(table, params)
        if pull is not None:
            # Line work against an image: broad, unlike peaks lose what a rotation or scale
            # smears inside a window, so the windows are measured once more on the target
            # resampled through the first estimate (see "Line work" in the package docstring).
            log.debug("tie-point pass on the target resampled through the first affine fit")
            table, grid = _measure_tiepoints(
                reference,
                target,
                reference_valid,
                target_valid,
                ci,
                params,
                stash,
                coarse.lines,
                pull=pull,
            )
    return _fit(table, grid, shape, coarse, warnings, params)
