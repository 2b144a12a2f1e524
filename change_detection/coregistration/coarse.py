"""The coarse whole-image shift on block means, and what each input is (image or line work)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
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
from change_detection.errors import InsufficientOverlapError

log = logging.getLogger(__name__)


_COARSE_DOUBT = "the whole-image correlation"


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
    H, W = reference.shape[-2], reference.shape[-1]
    f = max(1, math.ceil(max(H, W) / params.coarse_px))
    gr, vr_frac = _block_mean(reference, reference_valid, f, stash=stash)
    gt, vt_frac = _block_mean(target, target_valid, f)
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
