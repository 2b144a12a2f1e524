"""RGB-only change detection: roofs that appear in one orthophoto and not in the other.

Without DSMs the only evidence is the two orthophotos, which differ everywhere a little (a
new sun, a new season, exposure and white balance, misregistration and the relief
displacement of everything tall) and at buildings a lot. Per pixel, a colour difference
scores below a plain change-vector magnitude with an Otsu threshold on real aerial pairs; this
module compares *segments* instead and judges each one as a roof:

1. **Scene statistics** (:func:`scene_histograms`, :func:`scene_stats`; one pass, exact
   integer histograms summed over chunks): each orthophoto's colour spread (RMS over bands of
   the inter-quartile range / 1.349) and mean brightness, and the **radiometric
   normalisation** — per band, the gain of the after orthophoto at the mode of the log-ratio
   of 0.4 m cell means *nearest to no change* (a mean shift from 0), so a global change of
   exposure or white balance cancels while changed areas, off that mode, do not pull it.
2. **Per pixel** (:func:`classify_rgb_change`, bounded support, :meth:`RgbScale.halo_px`):
   both orthophotos smoothed at ``rgb_smooth_m``; their colour gradients, step-normalised
   (a blurred step of height H gives H at its centre); **segments** of each epoch: the
   pixels whose gradient stays below ``rgb_edge_contrast`` times that epoch's spread,
   opened at ``open_radius_m`` — homogeneous regions bounded by edges, so a roof or a roof
   facet is one segment; the **tolerant colour difference** of each pixel to the other
   epoch: the distance of its colour to the range of the other epoch's colours within
   ``rgb_tolerance_m`` (misregistration and lean forgiven); the strongest edge within that
   distance along each segment's outline, in both epochs. A pixel blown out in either
   epoch (a band at ``rgb_saturated_dn``) has an unknown colour: it is in no segment and in
   no colour range (no evidence of a roof either way; counted in the scene record).
3. **Per segment** (sums of integers over its pixels, joined across chunk seams by
   :func:`change_detection.objects.merge_segment_pieces`, so chunked equals whole):
   :func:`judge_segment` keeps a segment of the after epoch as a *new roof* (of the before
   epoch as a *removed roof*) when its colour changed (mean tolerant difference at least
   ``rgb_change_sigma`` times the before spread), its outline is an edge in its own epoch
   (``rgb_outline_ratio`` times its interior's gradient) but not in the other (else the
   outline was already there: a re-coloured roof, a lawn inside old fences), it is not a
   shadow (mean brightness at least ``shadow_ratio`` of its orthophoto's), not vegetation
   (colour, or NDVI with a near-infrared band; a rectilinear segment in a vegetation colour
   is kept as a painted roof), not a car (at least ``min_building_width_m`` wide) and compact
   (``rgb_min_solidity``). Outlines are grown back over the edge band by the distance at
   which a blurred step of the measured height falls to the threshold.
4. **Leads** (:func:`assemble_roofs`): kept segments that touch (the facets of one roof, a
   roof found in both epochs) become one change object with :class:`RoofEvidence`, which the
   permit overlay turns into reasons: what changed, how sure, and why it is not vegetation,
   a shadow or a car. Where the smallest building (``rgb_lead_min_width_m``) is under 8 px
   across, the score is scaled down (:func:`resolution_confidence`: 0.33 at 1.5 m) and the
   lead says its confidence is low.

Why it generalises: every threshold is a ratio to a statistic of the scene (colour spread,
mean brightness, the segment's own interior texture) or a length in metres converted with
the ground sampling distance; no threshold is in DN or pixels. The figures are in
``benchmarks/bench_rgb_only.py``.

The module also keeps the earlier pixel classifier of RGB-only mode,
:func:`classify_spectral_change` with :func:`block_sums` and :func:`local_means` (public
functions; ``detect`` no longer uses them).

The steps live in :mod:`change_detection.rgb_scene`, :mod:`change_detection.rgb_segments` and
:mod:`change_detection.rgb_verdict`, and their public names are importable from here.
"""

from __future__ import annotations

import numpy as np

from change_detection.change import (
    CODE_ARTEFACT,
    CODE_NODATA,
    CODE_SHADOW,
    CODE_SPECTRAL,
    CODE_VEGETATION,
    ChangeLayers,
    PixelScale,
    _chromatic,
    _close,
    _open,
    _square,
    box_sum,
    vegetation_mask,
)
from change_detection.params import DetectParams
from change_detection.rgb_scene import (
    GAIN,
    LOSS,
    N_SCENE,
    RgbScale,
    SceneStats,
    rgb_scale,
    scene_histograms,
    scene_stats,
)
from change_detection.rgb_segments import (
    N_STATS,
    RgbLayers,
    SegmentPlanes,
    classify_rgb_change,
    saturated,
    segment_sums,
)
from change_detection.rgb_verdict import (
    RoofEvidence,
    SegmentShape,
    SegmentVerdict,
    assemble_roofs,
    grow_distance_px,
    is_building_sized,
    judge_segment,
    passes_statistics,
    resolution_confidence,
    segment_shape,
)

__all__ = [
    "GAIN",
    "LOSS",
    "N_SCENE",
    "N_STATS",
    "RgbLayers",
    "RgbScale",
    "RoofEvidence",
    "SceneStats",
    "SegmentPlanes",
    "SegmentShape",
    "SegmentVerdict",
    "assemble_roofs",
    "block_sums",
    "classify_rgb_change",
    "classify_spectral_change",
    "grow_distance_px",
    "is_building_sized",
    "judge_segment",
    "local_means",
    "means_of_box_sums",
    "passes_statistics",
    "resolution_confidence",
    "rgb_scale",
    "saturated",
    "scene_histograms",
    "scene_stats",
    "segment_shape",
    "segment_sums",
]


# --- the earlier pixel classifier (public, no longer used by detect) --------------------------


def _spectral_features(
    before_rgb: np.ndarray, after_rgb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chromaticity change (r, g), log-brightness ratio and both brightnesses, per pixel."""
    rb, gb, _ = _chromatic(before_rgb)
    ra, ga, _ = _chromatic(after_rgb)
    vb = before_rgb.astype(np.float32).mean(axis=0)
    va = after_rgb.astype(np.float32).mean(axis=0)
    dl = np.log((va + 1.0) / (vb + 1.0))
    return ra - rb, ga - gb, dl, vb, va


_QUANTUM = 1000.0  # fixed-point scale of the spectral features in the exact integer sums


def block_sums(
    before_rgb: np.ndarray, after_rgb: np.ndarray, valid: np.ndarray, cell: int
) -> np.ndarray:
    """Per-cell integer sums of the spectral features, for their local means.

    Parameters
    ----------
    before_rgb, after_rgb : ndarray of uint8, shape (3, rows, cols)
    valid : ndarray of bool, shape (rows, cols)

    Returns
    -------
    ndarray of int64, shape (6, ceil(rows / cell), ceil(cols / cell)): sums (in units of
    1/1000) of the chromaticity change in r and g, of the log-brightness ratio, of the before
    and after brightness, and the count of valid pixels.
    """
    rows, cols = valid.shape
    hr, hc = -(-rows // cell), -(-cols // cell)
    padded = np.zeros((6, hr * cell, hc * cell), np.int64)
    v = valid.astype(np.int64)
    for i, f in enumerate(_spectral_features(before_rgb, after_rgb)):
        padded[i, :rows, :cols] = np.round(f * _QUANTUM).astype(np.int64) * v
    padded[5, :rows, :cols] = v
    return padded.reshape(6, hr, cell, hc, cell).sum(axis=(2, 4))


def local_means(sums: np.ndarray, window_cells: int) -> np.ndarray:
    """Local means of the spectral features over ``window_cells`` coarse cells.

    Parameters
    ----------
    sums : ndarray of int64, shape (6, rows, cols)
        :func:`block_sums`.

    Returns
    -------
    ndarray of float32, shape (5, rows, cols): mean chromaticity change (r, g), mean
    log-brightness ratio, mean before and after brightness.
    """
    return means_of_box_sums(box_sum(sums, window_cells))


def means_of_box_sums(box: np.ndarray) -> np.ndarray:
    """Means (float32, shape (5, rows, cols)) from box sums of :func:`block_sums`."""
    n = np.maximum(box[5], 1).astype(np.float64) * _QUANTUM
    return (box[0:5] / n).astype(np.float32)


def _interior(mask: np.ndarray, margin_px: int) -> np.ndarray:
    return _square(mask, margin_px, "min") if margin_px > 0 else mask


def classify_spectral_change(
    before_rgb: np.ndarray,
    after_rgb: np.ndarray,
    valid: np.ndarray,
    local: np.ndarray,
    params: DetectParams,
    scale: PixelScale,
    before_nir: np.ndarray | None = None,
    after_nir: np.ndarray | None = None,
) -> ChangeLayers:
    """Classify every pixel from the orthophotos alone (the earlier RGB-only classifier).

    The chromaticity change and the log-brightness ratio of each pixel are compared with their
    local means (:func:`local_means`), which carry the global or slowly varying change of
    white balance, exposure and illumination between the flights; what remains is change of
    the ground itself. Vegetation in either epoch and shadows that appeared or vanished are
    suppressed. :func:`~change_detection.detect.detect_changes` now compares segments
    (:func:`classify_rgb_change`); this stays for callers of the pixel classes.

    Parameters
    ----------
    before_rgb, after_rgb : ndarray of uint8, shape (3, rows, cols)
    valid : ndarray of bool, shape (rows, cols)
    local : ndarray of float32, shape (5, rows, cols)
        :func:`local_means`, upsampled to the pixels.
    before_nir, after_nir : ndarray of uint8, shape (rows, cols), optional
        Near-infrared bands: vegetation of that epoch by NDVI.

    Returns
    -------
    ChangeLayers
        ``dh`` and ``height_after`` are None.
    """
    dr, dg, dl, vb, va = _spectral_features(before_rgb, after_rgb)
    chroma = np.hypot(dr - local[0], dg - local[1])
    bright = np.abs(dl - local[2])
    changed = (
        (chroma >= params.chroma_threshold) | (bright >= params.brightness_threshold)
    ) & valid
    veg = vegetation_mask(before_rgb, params, before_nir) | vegetation_mask(
        after_rgb, params, after_nir
    )
    shadow_b = vb < params.shadow_ratio * local[3]
    shadow_a = va < params.shadow_ratio * local[4]
    shadow = _close(shadow_b ^ shadow_a, 1)
    kept = changed & ~veg & ~shadow
    clean = _close(_open(kept, scale.open_px), scale.close_px) & valid
    codes = np.zeros(valid.shape, np.uint8)
    codes[changed & shadow] = CODE_SHADOW
    codes[changed & veg] = CODE_VEGETATION
    codes[kept & ~clean] = CODE_ARTEFACT
    codes[clean] = CODE_SPECTRAL
    codes[~valid] = CODE_NODATA
    interior = _interior(clean, scale.margin_px)
    return ChangeLayers(codes=codes, dh=None, height_after=None, interior=interior)
