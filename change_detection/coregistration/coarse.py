"""The coarse whole-image shift on block means, and what each input is (image or line work).

The block means are those of the full-resolution rasters (:func:`_coarse_shift`, read once)
or, when the caller has them, images handed in as :class:`CoarseImages` (the survey layer
makes them from the overviews the orthophoto files carry, :mod:`survey.overviews`): the
same phase correlation runs on them, and the shift is corrected for where each coarse grid
lies on the reference grid. Handed-in images that give no usable estimate (no valid or
overlapping blocks, a weak or ambiguous peak) are set aside for the full-resolution pass
(:func:`_coarse_from_images` says why).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.fft

from change_detection.coregistration.caches import _block_mean, _WindowStash
from change_detection.coregistration.correlation import _phase_correlate
from change_detection.coregistration.lines import (
    LineWork,
    _line_work_of,
    _representation_name,
    _self_repeat,
    ink_representation,
)
from change_detection.coregistration.params import CoregParams, _Sliceable
from change_detection.coregistration.representation import (
    _center,
    _tukey2d,
    _weights,
    gradient_representation,
)
from change_detection.errors import GridMismatchError, InsufficientOverlapError

log = logging.getLogger(__name__)


_COARSE_DOUBT = "the whole-image correlation"

#: How the warning of handed-in coarse images that were not used begins.
COARSE_IMAGES_UNUSED = "the coarse images handed in"


@dataclass(frozen=True, eq=False)
class CoarseImages:
    """Both inputs of the coarse pass, block-averaged by the caller (e.g. from overviews).

    Each image is the grey level (band mean) averaged over blocks of about ``factor`` x
    ``factor`` full-resolution pixels, and the valid fraction of each block, on one coarse
    grid of the reference: what :func:`coregister` computes itself from the full-resolution
    rasters, made from something cheaper to read. Only blocks whose valid fraction exceeds
    0.99 take part (as in the full-resolution pass).

    Attributes
    ----------
    factor : int
        The block side (the overview factor times any further block averaging); it sets the
        smoothing of the coarse representation as in the full-resolution pass.
    reference_grey, target_grey : ndarray, float32, shape (rows, cols)
        Block-mean grey levels (any value where the block has no data).
    reference_valid, target_valid : ndarray, float32, shape (rows, cols)
        Valid fraction of each block, 0..1.
    reference_origin_px, target_origin_px : (float, float)
        Where the top-left corner of coarse pixel ``[0, 0]`` of each image lies on the
        full-resolution reference grid, (x, y) in reference pixels. The full-resolution
        pass has (0, 0) for both; a target snapped onto the reference grid by an offset that
        is not a multiple of the factor has its blocks elsewhere, and the measured shift is
        corrected by ``reference_origin_px - target_origin_px``.
    pixel_px : (float, float) or None
        Size of a coarse pixel in full-resolution pixels (x, y) when it is not exactly
        ``factor`` (GDAL sizes an overview ``ceil(side / factor)``, so its pixels are
        ``side / ceil(side / factor)`` wide); None = ``factor``.
    source : str
        What they were made from, for the co-registration report.

    Raises
    ------
    GridMismatchError
        The four arrays are not 2-D of one shape, or ``factor`` < 1.
    """

    factor: int
    reference_grey: np.ndarray = field(repr=False)
    reference_valid: np.ndarray = field(repr=False)
    target_grey: np.ndarray = field(repr=False)
    target_valid: np.ndarray = field(repr=False)
    reference_origin_px: tuple[float, float] = (0.0, 0.0)
    target_origin_px: tuple[float, float] = (0.0, 0.0)
    pixel_px: tuple[float, float] | None = None
    source: str = "handed in"

    def __post_init__(self) -> None:
        shapes = {
            np.shape(a)
            for a in (
                self.reference_grey,
                self.reference_valid,
                self.target_grey,
                self.target_valid,
            )
        }
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise GridMismatchError(
                f"coarse images of shapes {sorted(shapes)}: the reference's and the target's "
                "grey and valid fraction must be 2-D arrays of one shape (the coarse grid)"
            )
        if self.factor < 1:
            raise GridMismatchError(f"coarse images with factor {self.factor}; use 1 or more")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the coarse grid."""
        rows, cols = np.shape(self.reference_grey)
        return int(rows), int(cols)


@dataclass(frozen=True)
class _Coarse:
    factor: int
    shift: tuple[float, float]  # (x, y) full-resolution px
    snr: float
    ratio: float
    overlap: float
    reliable: bool
    # line work found in (or declared for) the reference and the target; None = an image
    reference_lines: LineWork | None = None
    target_lines: LineWork | None = None
    # line work only: how much it repeats itself, (ratio, lag x, lag y) (see _self_repeat)
    reference_repeat: tuple[float, float, float] | None = None
    target_repeat: tuple[float, float, float] | None = None
    representation: tuple[str, str] = ("gradient", "gradient")

    @property
    def lines(self) -> tuple[LineWork | None, LineWork | None]:
        return self.reference_lines, self.target_lines


def _coarse_shift(
    reference: _Sliceable,
    target: _Sliceable,
    reference_valid: _Sliceable | None,
    target_valid: _Sliceable | None,
    params: CoregParams,
    stash: _WindowStash | None = None,
) -> _Coarse:
    """The coarse shift from block means of the full-resolution rasters (each read once)."""
    H, W = reference.shape[-2], reference.shape[-1]
    f = max(1, math.ceil(max(H, W) / params.coarse_px))
    gr, vr_frac = _block_mean(reference, reference_valid, f, stash=stash)
    gt, vt_frac = _block_mean(target, target_valid, f)
    return _coarse_of(gr, vr_frac, gt, vt_frac, f, params)


def _coarse_of(
    gr: np.ndarray,
    vr_frac: np.ndarray,
    gt: np.ndarray,
    vt_frac: np.ndarray,
    f: int,
    params: CoregParams,
) -> _Coarse:
    """The whole-image phase correlation of two block-mean images at factor ``f`` (grey and
    valid fraction of each, on one coarse grid), the shift in full-resolution pixels."""
    vr = vr_frac > 0.99
    vt = vt_frac > 0.99
    nr, nt = int(vr.sum()), int(vt.sum())
    if nr == 0:
        raise InsufficientOverlapError(
            "the reference has no valid pixels; check its mask or nodata value"
        )
    if nt == 0:
        raise InsufficientOverlapError(
            "the target has no valid pixels on the reference grid; check its mask, nodata "
            "value and that it covers the reference area"
        )
    overlap = float((vr & vt).sum()) / min(nr, nt)
    if overlap < params.min_overlap:
        raise InsufficientOverlapError(
            f"the epochs overlap on {overlap:.0%} of the smaller valid area, less than the "
            f"{params.min_overlap:.0%} needed; check that both rasters cover the same site"
        )
    sigma = params.sigma_px if f == 1 else 0.7
    norm = max(2.0, params.normalise_px / f)
    lines_r = _line_work_of(gr, vr, params.reference_kind)
    lines_t = _line_work_of(gt, vt, params.target_kind)
    rr, rt = (
        gradient_representation(g, v, sigma_px=sigma, normalise_px=norm)
        if work is None
        else ink_representation(g, v, line_work=work, sigma_px=sigma)
        for g, v, work in ((gr, vr, lines_r), (gt, vt, lines_t))
    )
    apod = _tukey2d(*gr.shape)
    wr = _weights(vr, 3, apod)
    wt = _weights(vt, 3, apod)
    rr = _center(rr, wr)
    rt = _center(rt, wt)
    repeats = [
        None if work is None else _self_repeat(rep, f)
        for rep, work in ((rr, lines_r), (rt, lines_t))
    ]
    # zero-pad to a fast FFT size
    fh = scipy.fft.next_fast_len(gr.shape[0] * 2 if gr.shape[0] < 64 else gr.shape[0])
    fw = scipy.fft.next_fast_len(gr.shape[1] * 2 if gr.shape[1] < 64 else gr.shape[1])
    a = np.zeros((1, fh, fw), np.float32)
    b = np.zeros((1, fh, fw), np.float32)
    a[0, : gr.shape[0], : gr.shape[1]] = rr
    b[0, : gr.shape[0], : gr.shape[1]] = rt
    pk = _phase_correlate(a, b, None, 10, exclude=6, spectral_sigma=0.2)
    sx, sy = float(pk.dx[0]) * f, float(pk.dy[0]) * f
    reliable = bool(pk.snr[0] >= params.min_snr and pk.ratio[0] <= params.max_peak_ratio)
    log.debug(
        "coarse shift (x=%.2f, y=%.2f) px at 1/%d, snr %.1f, ratio %.2f, overlap %.2f",
        sx,
        sy,
        f,
        pk.snr[0],
        pk.ratio[0],
        overlap,
    )
    return _Coarse(
        f,
        (sx, sy),
        float(pk.snr[0]),
        float(pk.ratio[0]),
        overlap,
        reliable,
        reference_lines=lines_r,
        target_lines=lines_t,
        reference_repeat=repeats[0],
        target_repeat=repeats[1],
        representation=(
            _representation_name(lines_r, params.reference_kind),
            _representation_name(lines_t, params.target_kind),
        ),
    )


def _replace_coarse(coarse: _Coarse, **kw: Any) -> _Coarse:
    return replace(coarse, **kw)


def _coarse_from_images(
    images: CoarseImages, shape: tuple[int, int], params: CoregParams
) -> tuple[_Coarse | None, str]:
    """The coarse shift from handed-in block means, or None and why they cannot be used
    (their valid blocks do not overlap enough, or the peak is weak or ambiguous: the
    full-resolution pass decides then). ``shape`` is the full-resolution reference grid.

    Raises
    ------
    GridMismatchError
        The coarse grid does not cover ``shape`` (a caller's mistake, not the data's).
    """
    f = images.factor
    px, py = images.pixel_px if images.pixel_px is not None else (float(f), float(f))
    rows, cols = images.shape
    if abs(rows * py - shape[0]) > 2 * py or abs(cols * px - shape[1]) > 2 * px:
        raise GridMismatchError(
            f"coarse images of {rows} x {cols} blocks of {py:g} x {px:g} px do not cover the "
            f"{shape[0]} x {shape[1]} px reference grid; make them on the reference grid"
        )
    try:
        coarse = _coarse_of(
            np.asarray(images.reference_grey, np.float32),
            np.asarray(images.reference_valid, np.float32),
            np.asarray(images.target_grey, np.float32),
            np.asarray(images.target_valid, np.float32),
            f,
            params,
        )
    except InsufficientOverlapError as exc:
        return None, str(exc)
    if not coarse.reliable:
        kind = "ambiguous" if coarse.ratio > params.max_peak_ratio else "weak"
        return None, (
            f"their whole-image correlation peak is {kind} (peak-to-noise {coarse.snr:.1f}, "
            f"second peak {coarse.ratio:.2f})"
        )
    (rx, ry), (tx, ty) = images.reference_origin_px, images.target_origin_px
    # the correlation measured whole coarse pixels: back to full-resolution pixels, then from
    # the coarse grids' corners to the reference grid's
    sx = coarse.shift[0] / f * px + (rx - tx)
    sy = coarse.shift[1] / f * py + (ry - ty)
    log.debug(
        "coarse shift from %s: (x=%.2f, y=%.2f) px (grid corners (%.1f, %.1f), (%.1f, %.1f))",
        images.source,
        sx,
        sy,
        rx,
        ry,
        tx,
        ty,
    )
    return replace(coarse, shift=(sx, sy)), ""
