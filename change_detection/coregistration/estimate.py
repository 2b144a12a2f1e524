"""The whole estimate: coarse shift, tie-point passes, model (:func:`coregister`)."""

from __future__ import annotations

import logging
import math

from change_detection.coregistration.caches import _chunked, _stash_windows, _WindowStash
from change_detection.coregistration.coarse import (
    _COARSE_DOUBT,
    COARSE_IMAGES_UNUSED,
    CoarseImages,
    _Coarse,
    _coarse_from_images,
    _coarse_shift,
)
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
    coarse: CoarseImages | None = None,
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
    coarse : CoarseImages, optional
        Both inputs already block-averaged on the reference's coarse grid (e.g. from the
        overviews the files carry: :func:`survey.overviews.coarse_from_overviews`). The
        coarse pass then correlates them instead of reading both rasters in full, and only
        the tie-point windows are read at full resolution. Images that give no usable
        estimate (too little valid overlap, a weak or ambiguous peak) are set aside with a
        warning and the rasters are block-averaged as without them.

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
    whole_image, stash = _coarse_pass(
        reference, target, reference_valid, target_valid, shape, params, coarse, warnings
    )
    if not whole_image.reliable:
        if whole_image.ratio > params.max_peak_ratio:
            warnings.append(
                f"{_COARSE_DOUBT} has several similar peaks (repeating pattern?); "
                "the global shift may be ambiguous"
            )
        else:
            warnings.append(f"{_COARSE_DOUBT} peak is weak")
    if whole_image.overlap < 0.5:
        warnings.append(f"the epochs overlap on only {whole_image.overlap:.0%} of the valid area")
    ci = (
        (round(whole_image.shift[1]), round(whole_image.shift[0]))
        if whole_image.reliable
        else (0, 0)
    )
    if not whole_image.reliable and params.search_px is None:
        # nothing trustworthy to centre on: search the widest range the windows allow
        params = _replace(params, search_px=params.window_px // 2 - 2)
    table, grid = _measure_tiepoints(
        reference, target, reference_valid, target_valid, ci, params, stash, whole_image.lines
    )
    guided = _guided_offsets(table, ci, params)
    if guided is not None:
        # A rotation or scale moves the corners of a large raster further than the search
        # range around one global shift: measure again, each window cut where a robust affine
        # fit of the first pass puts it.
        log.debug("second tie-point pass at affine-predicted offsets")
        table, grid = _measure_tiepoints(
            reference,
            target,
            reference_valid,
            target_valid,
            guided,
            params,
            stash,
            whole_image.lines,
        )
    if whole_image.reference_lines is not None or whole_image.target_lines is not None:
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
                whole_image.lines,
                pull=pull,
            )
    return _fit(table, grid, shape, whole_image, warnings, params)


def _coarse_pass(
    reference: _Sliceable,
    target: _Sliceable,
    reference_valid: _Sliceable | None,
    target_valid: _Sliceable | None,
    shape: tuple[int, int],
    params: CoregParams,
    images: CoarseImages | None,
    warnings: list[str],
) -> tuple[_Coarse, _WindowStash | None]:
    """The whole-image shift: from the handed-in coarse images when they give one, else from
    block means of the rasters; either way a lazy reference's tie-point windows are stashed
    (decoded once, chunk by chunk)."""
    # A lazy reference is decoded once: whichever pass reads it keeps its tie-point windows.
    lazy = _chunked(reference, reference_valid)
    stash = _WindowStash.for_grid(shape, params) if lazy else None
    if images is not None:
        found, why = _coarse_from_images(images, shape, params)
        if found is not None:
            if stash is not None:
                _stash_windows(reference, reference_valid, stash)
            return found, stash
        warnings.append(
            f"{COARSE_IMAGES_UNUSED} ({images.source}) were not used: {why}; the coarse pass "
            "block-averaged the full-resolution rasters instead"
        )
    return _coarse_shift(reference, target, reference_valid, target_valid, params, stash), stash
