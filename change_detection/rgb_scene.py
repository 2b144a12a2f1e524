"""RGB-only mode, step 1: pixel scales and whole-scene statistics of the two orthophotos.

The colour spread and mean brightness of each orthophoto (the yardsticks every RGB-only
threshold is a multiple of) and the **radiometric normalisation** between the epochs: per
band, the gain of the after orthophoto at the mode of the log-ratio of 0.4 m cell means
*nearest to no change* (a mean shift started at 0), so a global change of exposure or white
balance cancels while changed areas, off that mode, do not pull it (a robust relative
normalisation on the unchanged majority of the scene, in the spirit of pseudo-invariant
features). Exact integer histograms, summed over chunks, so chunked equals whole. The method
as a whole is described in :mod:`change_detection.spectral`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from change_detection.change import (
    PixelScale,
)
from change_detection.params import DetectParams

__all__ = [
    "GAIN",
    "LOSS",
    "N_SCENE",
    "RgbScale",
    "SceneStats",
    "rgb_scale",
    "scene_histograms",
    "scene_stats",
]

#: Directions: a segment of the after epoch that is a new roof, of the before epoch that is a
#: removed one.
GAIN = 0
LOSS = 1

_MIN_SPREAD_DN = 8.0  # colour spread floor: 8-bit steps below ~4 DN are noise, not edges
_LOG_RATIO_BINS = np.arange(-2.0, 2.0 + 1e-9, 0.005)  # bin edges of the log-ratio histogram
_GAIN_BANDWIDTH = 0.1  # mean-shift bandwidth of the gain, in log units (10 %)
_MIN_GAIN_CELLS = 64  # fewer fully valid cells than this: no normalisation (gain 1)
_TRUNCATE = 4.0  # Gaussian support in standard deviations (scipy.ndimage's default)

# --- scales ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RgbScale:
    """RGB-only parameters converted to pixels for one ground sampling distance.

    Attributes
    ----------
    gsd_m : float
    sigma_px : float
        Standard deviation of the smoothing (``rgb_smooth_m``, at least 0.7 px).
    tolerance_px : int
        ``rgb_tolerance_m`` in pixels (at least 1).
    open_px : int
        Radius of the opening of the segments (``open_radius_m``, at least 1 px: a segment
        is at least 3 px wide, nothing narrower can be told from an edge).
    cell : int
        Side of the cells of the radiometric normalisation (the ground cell of
        :class:`~change_detection.change.PixelScale`, about 0.4 m).
    """

    gsd_m: float
    sigma_px: float
    tolerance_px: int
    open_px: int
    cell: int

    @property
    def smooth_radius_px(self) -> int:
        """Reach of the Gaussian (scipy.ndimage's ``int(truncate * sigma + 0.5)``)."""
        return int(_TRUNCATE * self.sigma_px + 0.5)

    def halo_px(self) -> int:
        """Overlap (pixels) a chunk needs so its core equals the whole-array result: the
        smoothing, one pixel of gradient, the opening, one pixel of outline and the tolerance
        (rounded up to whole cells)."""
        r = self.smooth_radius_px
        support = max(r + 2 + 2 * self.open_px, r + 1 + self.tolerance_px) + 1
        return int(math.ceil(support / self.cell) * self.cell)


def rgb_scale(params: DetectParams, scale: PixelScale) -> RgbScale:
    """The RGB-only pixel scale for the grid of ``scale``."""
    gsd = scale.gsd_m
    return RgbScale(
        gsd_m=gsd,
        sigma_px=max(0.7, params.rgb_smooth_m / gsd),
        tolerance_px=max(1, round(params.rgb_tolerance_m / gsd)),
        open_px=max(1, round(params.open_radius_m / gsd)),
        cell=scale.cell,
    )


# --- scene statistics and radiometric normalisation -------------------------------------------


@dataclass(frozen=True)
class SceneStats:
    """Whole-scene statistics of the two orthophotos (valid pixels of both).

    Attributes
    ----------
    spread_before, spread_after : float
        Colour spread (DN): RMS over the bands of the inter-quartile range / 1.349, at least
        8 DN (of each orthophoto as it came; the gain is not applied).
    brightness_before, brightness_after : float
        Mean brightness (mean of the three bands, DN).
    gain : tuple of 3 float
        Per-band radiometric normalisation: the after orthophoto times ``gain`` is compared
        with the before one (1 where it was not estimated).
    n_pixels, n_cells : int
        Valid pixels, and fully valid cells behind the gain.
    saturated_px : int
        Valid pixels blown out (a band at ``rgb_saturated_dn`` or above) in either orthophoto:
        treated as unknown.
    """

    spread_before: float
    spread_after: float
    brightness_before: float
    brightness_after: float
    gain: tuple[float, float, float]
    n_pixels: int
    n_cells: int
    saturated_px: int = 0

    def spread(self, direction: int) -> float:
        return self.spread_after if direction == GAIN else self.spread_before

    def brightness(self, direction: int) -> float:
        return self.brightness_after if direction == GAIN else self.brightness_before

    def record(self) -> dict[str, Any]:
        """JSON-ready record (for logs and provenance)."""
        return {
            "spread_before_dn": round(self.spread_before, 2),
            "spread_after_dn": round(self.spread_after, 2),
            "brightness_before_dn": round(self.brightness_before, 2),
            "brightness_after_dn": round(self.brightness_after, 2),
            "gain": [round(g, 4) for g in self.gain],
            "n_cells": self.n_cells,
            "saturated_px": self.saturated_px,
        }


_N_HIST = 2 * 3 * 256
_N_RATIO = 3 * (len(_LOG_RATIO_BINS) - 1)
N_SCENE = _N_HIST + _N_RATIO + 1  # the last: pixels saturated in either epoch


def scene_histograms(
    before_rgb: np.ndarray,
    after_rgb: np.ndarray,
    valid: np.ndarray,
    cell: int,
    *,
    saturated_dn: int = 255,
) -> np.ndarray:
    """Exact integer histograms of one block, to be summed over blocks (:func:`scene_stats`).

    Cells are ``cell`` x ``cell`` squares of the block; blocks are cut on the cell grid, so a
    chunked sum equals the whole-array one.

    Parameters
    ----------
    before_rgb, after_rgb : ndarray of uint8, shape (3, rows, cols)
    valid : ndarray of bool, shape (rows, cols)
        Both orthophotos valid.
    cell : int
    saturated_dn : int
        A pixel with a band at this value or above is saturated (blown out).

    Returns
    -------
    ndarray of int64, shape (N_SCENE,)
        Per-band 256-bin histograms of both epochs, then per-band histograms of
        log((before + 1) / (after + 1)) of the means of fully valid cells, then the count of
        valid pixels saturated in either epoch.
    """
    out = np.zeros(N_SCENE, np.int64)
    v = np.asarray(valid, bool)
    every = bool(v.all())  # no boolean indexing (a copy per band) when all are valid
    for e, rgb in enumerate((before_rgb, after_rgb)):
        for k in range(3):
            at = (e * 3 + k) * 256
            band = np.asarray(rgb[k])
            values = band.ravel() if every else band[v]
            out[at : at + 256] = np.bincount(values, minlength=256)[:256]
    blown = (np.asarray(before_rgb).max(axis=0) >= saturated_dn) | (
        np.asarray(after_rgb).max(axis=0) >= saturated_dn
    )
    out[-1] = int((blown & v).sum())
    rows, cols = v.shape
    hr, hc = rows // cell, cols // cell
    if hr == 0 or hc == 0:
        return out
    cut = (slice(0, hr * cell), slice(0, hc * cell))
    full = v[cut].reshape(hr, cell, hc, cell).all(axis=(1, 3)).ravel()
    if not full.any():
        return out
    nb = len(_LOG_RATIO_BINS) - 1
    for k in range(3):
        means = []
        for rgb in (before_rgb, after_rgb):
            band = np.asarray(rgb[k])[cut].astype(np.int64)
            means.append(band.reshape(hr, cell, hc, cell).sum(axis=(1, 3)).ravel()[full])
        n = float(cell * cell)
        ratio = np.log((means[0] / n + 1.0) / (means[1] / n + 1.0))
        at = _N_HIST + k * nb
        out[at : at + nb] = np.histogram(ratio, bins=_LOG_RATIO_BINS)[0]
    return out


def _spread(hist: np.ndarray) -> float:
    """RMS over bands of IQR / 1.349 from three 256-bin histograms, shape (3, 256)."""
    sq = []
    for h in hist:
        c = np.cumsum(h)
        if c[-1] == 0:
            return _MIN_SPREAD_DN
        q1 = int(np.searchsorted(c, 0.25 * c[-1]))
        q3 = int(np.searchsorted(c, 0.75 * c[-1]))
        sq.append(((q3 - q1) / 1.349) ** 2)
    return max(_MIN_SPREAD_DN, float(np.sqrt(np.mean(sq))))


def _nearest_mode(counts: np.ndarray) -> float:
    """Mean shift from 0 over a histogram on :data:`_LOG_RATIO_BINS` (Gaussian kernel)."""
    centres = 0.5 * (_LOG_RATIO_BINS[:-1] + _LOG_RATIO_BINS[1:])
    w0 = counts.astype(np.float64)
    m = 0.0
    for _ in range(200):
        w = w0 * np.exp(-0.5 * ((centres - m) / _GAIN_BANDWIDTH) ** 2)
        if w.sum() <= 0:
            return 0.0
        nxt = float((w * centres).sum() / w.sum())
        if abs(nxt - m) < 1e-6:
            return nxt
        m = nxt
    return m


def scene_stats(hist: np.ndarray, params: DetectParams) -> SceneStats:
    """Scene statistics from the sum of :func:`scene_histograms` over all blocks.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> before = rng.integers(40, 200, (3, 64, 64)).astype(np.uint8)
    >>> after = np.clip(before * 0.8, 0, 255).astype(np.uint8)  # 20 % darker
    >>> s = scene_stats(scene_histograms(before, after, np.ones((64, 64), bool), 4), DetectParams())
    >>> [round(g, 2) for g in s.gain]
    [1.25, 1.25, 1.25]
    """
    bands = hist[:_N_HIST].reshape(2, 3, 256)
    dn = np.arange(256, dtype=np.float64)
    n = int(bands[0, 0].sum())
    bright = [float((b * dn).sum() / max(1, b.sum())) for b in bands.reshape(6, 256)]
    ratios = hist[_N_HIST : _N_HIST + _N_RATIO].reshape(3, -1)
    n_cells = int(ratios[0].sum())
    gain = (1.0, 1.0, 1.0)
    if params.rgb_normalise and n_cells >= _MIN_GAIN_CELLS:
        g = [float(np.exp(_nearest_mode(r))) for r in ratios]
        gain = (g[0], g[1], g[2])
    return SceneStats(
        spread_before=_spread(bands[0]),
        spread_after=_spread(bands[1]),
        brightness_before=float(np.mean(bright[0:3])),
        brightness_after=float(np.mean(bright[3:6])),
        gain=gain,
        n_pixels=n,
        n_cells=n_cells,
        saturated_px=int(hist[-1]),
    )
