"""Line work (permit maps): detecting it, its ink representation and whether it repeats itself."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage

from change_detection.coregistration.params import InputKind

#: A tie window whose line work holds less ink than a line across this share of the window
#: is "featureless": far from the lines a map is blank paper and has nothing to vote with.
_MIN_INK_SPAN = 1.0 / 3.0


@dataclass(frozen=True)
class LineWork:
    """Paper and ink of a line-work raster (a permit map), as :func:`detect_line_work` found.

    Attributes
    ----------
    paper : float
        Grey level of the plain background, in the input's units.
    contrast : float
        Difference between the strongest ink and the paper (> 0, input units).
    dark_ink : bool
        Ink darker than the paper (dark on light); False for light on dark.
    ink_fraction : float
        Share of the valid pixels that differ from the paper by more than a tenth of the
        contrast, on the image it was measured on.
    """

    paper: float
    contrast: float
    dark_ink: bool
    ink_fraction: float

    def describe(self) -> str:
        """Plain words for reports, e.g. ``"lines (dark on light)"``."""
        return "lines (dark on light)" if self.dark_ink else "lines (light on dark)"


def detect_line_work(
    grey: np.ndarray, valid: np.ndarray | None = None, *, force: bool = False
) -> LineWork | None:
    """Whether a grey image is line work on a plain background, and its paper and ink levels.

    A permit map (rasterised or scanned: outlines, road edges, text, hatching) is mostly one
    paper level with thin strokes of ink; a photograph or a DSM is not. The test, on the valid
    pixels:

    - the paper is the mode of a 256-bin histogram between the 0.05 and 99.95 percentiles, the
      contrast the larger distance from it to those percentiles (the ink side);
    - at least half of the pixels lie within a tenth of the contrast of the paper, and at most
      35 % are marked (further from it);
    - the marks are thin: at most 20 % of the marked pixels survive an erosion by a 5 x 5
      square (filled areas of a photo or the roofs in a DSM do);
    - the marks are strokes, not noise: 8 or more marked pixels per connected mark on average
      (a quantised flat image has isolated one- or two-pixel marks).

    It works on the coarse block-averaged image as well as at full resolution: block means of
    strokes stay thin strokes.

    Parameters
    ----------
    grey : ndarray of float, shape (rows, cols)
        Intensities (any linear scale); NaN counts as invalid.
    valid : ndarray of bool, shape (rows, cols), optional
    force : bool
        Skip the test and return the paper and ink levels whenever there is any contrast
        (the caller knows the image is line work).

    Returns
    -------
    LineWork or None
        None when the image is not line work (or, with ``force``, has no contrast at all).

    Examples
    --------
    >>> import numpy as np
    >>> page = np.full((200, 200), 245.0)
    >>> page[40:160, 60] = page[40:160, 140] = page[40, 60:141] = page[160, 60:141] = 20.0
    >>> work = detect_line_work(page)
    >>> work.paper, work.contrast, work.dark_ink
    (245.0, 225.0, True)
    >>> detect_line_work(np.random.default_rng(0).normal(128, 30, (200, 200))) is None
    True
    """
    g = np.asarray(grey, dtype=np.float32)
    v = np.isfinite(g)
    if valid is not None:
        v &= np.asarray(valid, dtype=bool)
    values = g[v]
    if values.size < 256:
        return None
    lo, hi = (float(x) for x in np.percentile(values, [0.05, 99.95]))
    if not hi > lo:
        return None
    hist, edges = np.histogram(values, bins=256, range=(lo, hi))
    k = int(np.argmax(hist))
    paper = float(np.median(values[(values >= edges[k]) & (values <= edges[k + 1])]))
    dark = paper - lo >= hi - paper
    contrast = max(paper - lo, hi - paper)
    if not contrast > 0:
        return None
    marked = v & (np.abs(g - np.float32(paper)) > np.float32(0.1 * contrast))
    n_marked = int(marked.sum())
    work = LineWork(paper, contrast, bool(dark), n_marked / values.size)
    if force:
        return work
    if n_marked == 0 or work.ink_fraction > 0.35:  # also: at least half is paper
        return None
    square = np.ones((3, 3), bool)
    thick = int(ndimage.binary_erosion(marked, structure=square, iterations=2).sum())
    if thick > 0.2 * n_marked:
        return None
    _, n_marks = ndimage.label(marked, structure=square)
    if n_marked < 8 * n_marks:
        return None
    return work


def ink_representation(
    grey: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    line_work: LineWork,
    sigma_px: float = 1.0,
    axes: tuple[int, int] = (-2, -1),
) -> np.ndarray:
    """Ink density of line work: what is matched against the other image's edges.

    ``|grey - paper| / contrast`` clipped to 0..1 (either polarity of ink), 0 on invalid
    pixels, smoothed by a Gaussian of ``sigma_px``. It peaks on the centre of each stroke, as
    the gradient magnitude of a photograph peaks on the centre of each edge; the gradient
    magnitude of the map itself would be a double ridge, one on each side of the stroke with
    a zero on the line, that matches a photo's single edge ridge at neither position.

    Parameters
    ----------
    grey : ndarray of float, shape (..., rows, cols)
        Intensities in the units ``line_work`` was measured in.
    valid : ndarray of bool, same shape, optional
    line_work : LineWork
        Paper and contrast (:func:`detect_line_work`).
    sigma_px : float
        Gaussian smoothing (pixels).
    axes : (int, int)
        The row and column axes.

    Returns
    -------
    ndarray of float32, same shape; ink density in 0..1.
    """
    g = np.asarray(grey, dtype=np.float32)
    ink = np.abs(g - np.float32(line_work.paper)) * np.float32(1.0 / line_work.contrast)
    np.clip(ink, 0.0, 1.0, out=ink)
    ok = np.isfinite(ink)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    ink = np.where(ok, ink, np.float32(0))
    if sigma_px > 0:
        ax = tuple(a % g.ndim for a in axes)
        ink = ndimage.gaussian_filter(ink, sigma_px, axes=ax, truncate=3.0)
    return ink.astype(np.float32, copy=False)


def _line_work_of(grey: np.ndarray, valid: np.ndarray, kind: InputKind) -> LineWork | None:
    """The line work of one input by its declared kind (``auto``: detected)."""
    if kind in ("image", "heights"):
        return None
    return detect_line_work(grey, valid, force=kind == "lines")


def _representation_name(work: LineWork | None, kind: InputKind) -> str:
    if work is not None:
        return work.describe()
    return "height gradient" if kind == "heights" else "gradient"


#: Line work whose autocorrelation has an isolated peak this high (relative to zero lag)
#: repeats itself: a regular estate drawn identically, a grid. Measured on the coarse
#: images: 0.90-0.96 for exact repeats (an estate every 40 or 64 px, a 32 px grid), 0.81
#: with 0.5 px of jitter in the estate, 0.11-0.47 for ordinary maps with and without text
#: and hatching (synthetic towns, outlines of a real WHU-CD tile).
_REPEAT_RATIO = 0.75


#: Confidence left to a result on line work that repeats itself.
_REPEAT_CONFIDENCE = 0.25


def _self_repeat(rep: np.ndarray, factor: int) -> tuple[float, float, float]:
    """How much a centred, weighted representation (rows, cols) repeats itself.

    The highest isolated peak (a maximum of its 7 x 7 neighbourhood) of the linear
    autocorrelation between 8 px and a quarter of the short side from zero lag, relative to
    the zero-lag value, and its lag (x, y) in full-resolution pixels (``factor`` px per
    pixel of ``rep``). Straight lines give ridges that fall away from zero lag, not isolated
    peaks; an exact repeat gives a peak near 1 at the repeat.

    A map is drawn without texture: two identical houses are identical ink, and an estate of
    them on a regular lattice correlates with a photo about as well one lattice step away as
    at the truth (a window's second peak one step away is lowered by the window's taper, not
    by evidence, so the windows cannot settle it). A photo's texture breaks such ties.
    """
    h, w = rep.shape
    spec = scipy.fft.rfft2(rep, s=(2 * h, 2 * w), workers=-1)
    corr = scipy.fft.irfft2(spec.real**2 + spec.imag**2, s=(2 * h, 2 * w), workers=-1)
    zero = float(corr[0, 0])
    reach = min(h, w) // 4
    if not zero > 0 or reach < 9:
        return 0.0, 0.0, 0.0
    lags = np.arange(-reach, reach + 1)
    near = np.fft.fftshift(corr)[h - reach : h + reach + 1, w - reach : w + reach + 1] / zero
    dist = np.hypot(lags[:, None], lags[None, :])
    peaks = (near == ndimage.maximum_filter(near, size=7)) & (dist >= 8)
    if not peaks.any():
        return 0.0, 0.0, 0.0
    iy, ix = np.unravel_index(int(np.argmax(np.where(peaks, near, -np.inf))), near.shape)
    return float(near[iy, ix]), float(lags[ix] * factor), float(lags[iy] * factor)
