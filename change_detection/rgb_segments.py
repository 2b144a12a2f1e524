"""RGB-only mode, step 2: per-pixel planes and the segments of each epoch.

Both orthophotos are smoothed at ``rgb_smooth_m``; their step-normalised colour gradients
bound the **segments** of each epoch (pixels whose gradient stays below ``rgb_edge_contrast``
times that epoch's colour spread, opened at ``open_radius_m``: homogeneous regions bounded by
edges, so a roof or a roof facet is one segment). Each pixel also gets its **tolerant colour
difference** to the other epoch (the distance of its colour to the range of the other epoch's
colours within ``rgb_tolerance_m``: misregistration and lean forgiven) and the strongest edge
within that distance in both epochs. :func:`segment_sums` sums them per segment as integers,
so pieces of a segment cut by chunk seams add up exactly. Every pixel depends on a bounded
neighbourhood (:meth:`~change_detection.rgb_scene.RgbScale.halo_px`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from change_detection.change import (
    CODE_NODATA,
    CODE_SHADOW,
    CODE_SPECTRAL,
    CODE_VEGETATION,
    _open,
    _square,
    _window_reduce,
    vegetation_mask,
)
from change_detection.params import DetectParams
from change_detection.rgb_scene import _TRUNCATE, RgbScale, SceneStats

__all__ = [
    "N_STATS",
    "RgbLayers",
    "SegmentPlanes",
    "classify_rgb_change",
    "saturated",
    "segment_sums",
]

# Columns of the per-segment sums (:func:`segment_sums`); every entry is an integer.
S_COUNT = 0  # pixels
S_RED, S_GREEN, S_BLUE = 1, 2, 3  # colour of the segment's own epoch (DN)
S_CHANGE = 4  # tolerant colour difference to the other epoch (1/16 DN)
S_VEGETATION = 5  # pixels in the colour of vegetation (NDVI with a near-infrared band)
S_GRAD_IN = 6  # colour gradient of its own epoch inside (1/16 DN)
S_GRAD_OTHER = 7  # colour gradient of the other epoch inside (1/16 DN)
S_BOUNDARY = 8  # outline pixels
S_EDGE_IN = 9  # strongest own-epoch edge within the tolerance of outline pixels (1/16 DN)
S_EDGE_OTHER = 10  # the same in the other epoch (1/16 DN)
N_STATS = 11

_Q = 16.0  # fixed-point scale of the per-pixel quantities summed per segment


# --- per-pixel planes --------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentPlanes:
    """Per-pixel planes of one direction's segmentation.

    Attributes
    ----------
    mask : ndarray of bool, shape (rows, cols)
        Segment pixels (homogeneous, opened) of the segmented epoch.
    colour : ndarray of uint8, shape (3, rows, cols)
        That epoch's orthophoto.
    change : ndarray of uint16, shape (rows, cols)
        Tolerant colour difference to the other epoch (1/16 DN).
    vegetation : ndarray of bool, shape (rows, cols)
    grad_in, grad_other : ndarray of uint16, shape (rows, cols)
        Step-normalised colour gradients of the segmented and the other epoch (1/16 DN).
    boundary : ndarray of bool, shape (rows, cols)
        Segment pixels with a non-segment pixel among their eight neighbours.
    edge_in, edge_other : ndarray of uint16, shape (rows, cols)
        Strongest gradient within the tolerance, of each epoch (1/16 DN).
    """

    mask: np.ndarray
    colour: np.ndarray
    change: np.ndarray
    vegetation: np.ndarray
    grad_in: np.ndarray
    grad_other: np.ndarray
    boundary: np.ndarray
    edge_in: np.ndarray
    edge_other: np.ndarray

    def crop(self, rows: slice, cols: slice) -> SegmentPlanes:
        return SegmentPlanes(
            mask=self.mask[rows, cols],
            colour=self.colour[:, rows, cols],
            change=self.change[rows, cols],
            vegetation=self.vegetation[rows, cols],
            grad_in=self.grad_in[rows, cols],
            grad_other=self.grad_other[rows, cols],
            boundary=self.boundary[rows, cols],
            edge_in=self.edge_in[rows, cols],
            edge_other=self.edge_other[rows, cols],
        )


@dataclass(frozen=True)
class RgbLayers:
    """What :func:`classify_rgb_change` gives for one block.

    Attributes
    ----------
    codes : ndarray of uint8, shape (rows, cols)
        Pixel evidence (:data:`~change_detection.change.CHANGE_CODES`): ``CODE_SPECTRAL``
        where a pixel's colour differs from everything within the tolerance in the other epoch
        by at least ``rgb_change_sigma`` spreads (in either direction), ``CODE_VEGETATION`` /
        ``CODE_SHADOW`` where such a pixel has the colour of vegetation / is darker than
        ``shadow_ratio`` of its orthophoto's mean brightness in either epoch. Leads are
        decided per segment, not from these codes.
    gain, loss : SegmentPlanes
        Segments of the after epoch (new roofs) and of the before epoch (removed roofs).
    """

    codes: np.ndarray
    gain: SegmentPlanes
    loss: SegmentPlanes

    def crop(self, rows: slice, cols: slice) -> RgbLayers:
        return RgbLayers(
            self.codes[rows, cols], self.gain.crop(rows, cols), self.loss.crop(rows, cols)
        )


def _smooth(rgb: np.ndarray, sigma: float, gain: tuple[float, float, float]) -> np.ndarray:
    x = np.empty(rgb.shape, np.float32)
    for k in range(3):
        band = np.asarray(rgb[k], np.float32)
        if gain[k] != 1.0:
            band = band * np.float32(gain[k])
        ndimage.gaussian_filter(band, sigma, output=x[k], mode="nearest", truncate=_TRUNCATE)
    return x


def _gradient(smooth: np.ndarray, sigma: float) -> np.ndarray:
    """Step-normalised colour gradient magnitude (DN) of a smoothed (3, rows, cols) image:
    a step of height H blurred by the Gaussian gives H at its centre."""
    g2 = np.zeros(smooth.shape[1:], np.float32)
    for band in smooth:
        if band.shape[0] > 1 and band.shape[1] > 1:
            gy, gx = np.gradient(band)
            g2 += gx * gx + gy * gy
    return np.sqrt(g2) * np.float32(sigma * math.sqrt(2.0 * math.pi))


def _quantised(x: np.ndarray) -> np.ndarray:
    return np.minimum(np.round(x * _Q), 65535).astype(np.uint16)


def _range_distance(
    x: np.ndarray, other: np.ndarray, other_valid: np.ndarray, radius: int
) -> np.ndarray:
    """Distance (DN) of each colour of ``x`` to the per-band range of ``other`` within
    ``radius`` pixels (a square), invalid pixels of ``other`` left out."""
    big = np.float32(1e6)
    d2 = np.zeros(x.shape[1:], np.float32)
    for k in range(3):
        lo = _window_reduce(np.where(other_valid, other[k], big), radius, np.minimum)
        hi = _window_reduce(np.where(other_valid, other[k], -big), radius, np.maximum)
        d = np.maximum(lo - x[k], 0) + np.maximum(x[k] - hi, 0)
        d2 += np.minimum(d, 4096.0) ** 2
    return np.sqrt(d2)


def _planes(
    rgb: np.ndarray,
    smooth: np.ndarray,
    grad: np.ndarray,
    other_smooth: np.ndarray,
    quantised: tuple[np.ndarray, np.ndarray],
    edges: tuple[np.ndarray, np.ndarray],
    valid: np.ndarray,
    threshold: float,
    veg: np.ndarray,
    scale: RgbScale,
) -> tuple[SegmentPlanes, np.ndarray]:
    """One direction's planes; ``quantised`` and ``edges`` are (own epoch, other epoch):
    the quantised gradients and their maxima within the tolerance, computed once for both
    directions."""
    mask = _open((grad <= threshold) & valid, scale.open_px) & valid
    boundary = mask & ~_square(mask, 1, "min")
    change = _range_distance(smooth, other_smooth, valid, scale.tolerance_px)
    planes = SegmentPlanes(
        mask=mask,
        colour=np.asarray(rgb),
        change=_quantised(change),
        vegetation=veg,
        grad_in=quantised[0],
        grad_other=quantised[1],
        boundary=boundary,
        edge_in=edges[0],
        edge_other=edges[1],
    )
    return planes, change


def saturated(rgb: np.ndarray, params: DetectParams) -> np.ndarray:
    """Blown-out pixels: a band at or above ``rgb_saturated_dn`` (bool, shape (rows, cols)).

    A clipped pixel's colour is unknown (only a lower bound), so it is no evidence of a roof
    either way: RGB-only mode leaves it out of the segments and of the colour ranges it
    compares with.
    """
    return np.asarray(rgb).max(axis=0) >= params.rgb_saturated_dn


def classify_rgb_change(
    before_rgb: np.ndarray,
    after_rgb: np.ndarray,
    valid: np.ndarray,
    scene: SceneStats,
    params: DetectParams,
    scale: RgbScale,
    before_nir: np.ndarray | None = None,
    after_nir: np.ndarray | None = None,
) -> RgbLayers:
    """Segments of both epochs and the per-pixel quantities their statistics sum.

    Every output pixel depends on input pixels within :meth:`RgbScale.halo_px` only, so a
    block with that much halo gives exactly the whole-array values in its core.

    Parameters
    ----------
    before_rgb, after_rgb : ndarray of uint8, shape (3, rows, cols)
    valid : ndarray of bool, shape (rows, cols)
        Both orthophotos valid.
    scene : SceneStats
        :func:`scene_stats` of the whole grid.
    before_nir, after_nir : ndarray of uint8, shape (rows, cols), optional
        Near-infrared bands: vegetation of that epoch by NDVI.

    Returns
    -------
    RgbLayers
    """
    valid = np.asarray(valid, bool)
    known = valid & ~saturated(before_rgb, params) & ~saturated(after_rgb, params)
    sigma = scale.sigma_px
    sb = _smooth(before_rgb, sigma, (1.0, 1.0, 1.0))
    sa = _smooth(after_rgb, sigma, scene.gain)
    gb, ga = _gradient(sb, sigma), _gradient(sa, sigma)
    veg_b = vegetation_mask(before_rgb, params, before_nir)
    veg_a = vegetation_mask(after_rgb, params, after_nir)
    k = params.rgb_edge_contrast
    qa, qb = _quantised(ga), _quantised(gb)
    # max and rounding commute (both monotone), so the edge maxima are taken on the integers
    t = scale.tolerance_px
    ea, eb = _window_reduce(qa, t, np.maximum), _window_reduce(qb, t, np.maximum)
    gain, d_gain = _planes(
        after_rgb, sa, ga, sb, (qa, qb), (ea, eb), known, k * scene.spread_after, veg_a, scale
    )
    loss, d_loss = _planes(
        before_rgb, sb, gb, sa, (qb, qa), (eb, ea), known, k * scene.spread_before, veg_b, scale
    )
    limit = params.rgb_change_sigma * scene.spread_before
    changed = ((d_gain >= limit) | (d_loss >= limit)) & known
    lum_b = np.asarray(before_rgb, np.float32).mean(axis=0)
    lum_a = np.asarray(after_rgb, np.float32).mean(axis=0)
    dark = (lum_b < params.shadow_ratio * scene.brightness_before) | (
        lum_a < params.shadow_ratio * scene.brightness_after
    )
    codes = np.zeros(valid.shape, np.uint8)
    codes[changed] = CODE_SPECTRAL
    codes[changed & dark] = CODE_SHADOW
    codes[changed & (veg_a | veg_b)] = CODE_VEGETATION
    codes[~valid] = CODE_NODATA
    return RgbLayers(codes=codes, gain=gain, loss=loss)


# --- per-segment statistics --------------------------------------------------------------------


def segment_sums(planes: SegmentPlanes, labels: np.ndarray, n: int) -> np.ndarray:
    """Per-label integer sums of the planes (columns ``S_*``).

    Parameters
    ----------
    planes : SegmentPlanes
    labels : ndarray of int, shape (rows, cols)
        0 outside the segments, 1..n inside.

    Returns
    -------
    ndarray of float64 (exact integers), shape (n + 1, N_STATS); row 0 unused.
    """
    out = np.zeros((n + 1, N_STATS), np.float64)
    if n == 0:
        return out
    lab = np.asarray(labels).ravel()

    def total(values: np.ndarray | None, where: np.ndarray = lab) -> np.ndarray:
        # label 0 (outside the segments) collects the rest; its row is unused
        w = None if values is None else np.asarray(values).ravel()
        return np.bincount(where, weights=w, minlength=n + 1)[: n + 1]

    out[:, S_COUNT] = total(None)
    for col, k in ((S_RED, 0), (S_GREEN, 1), (S_BLUE, 2)):
        out[:, col] = total(planes.colour[k])
    out[:, S_CHANGE] = total(planes.change)
    out[:, S_VEGETATION] = total(planes.vegetation)
    out[:, S_GRAD_IN] = total(planes.grad_in)
    out[:, S_GRAD_OTHER] = total(planes.grad_other)
    edge = np.asarray(planes.boundary).ravel()
    lab_b = lab[edge]
    out[:, S_BOUNDARY] = total(None, lab_b)
    out[:, S_EDGE_IN] = total(np.asarray(planes.edge_in).ravel()[edge], lab_b)
    out[:, S_EDGE_OTHER] = total(np.asarray(planes.edge_other).ravel()[edge], lab_b)
    out[0] = 0.0
    return out
