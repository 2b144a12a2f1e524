"""What is matched: the illumination-robust gradient representation, validity weights and tapers."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.signal import windows


def _to_grey(window: np.ndarray) -> np.ndarray:
    arr = np.asarray(window)
    if arr.ndim == 3:
        return arr.astype(np.float32).mean(axis=0)
    return arr.astype(np.float32, copy=False)


def gradient_representation(
    grey: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    sigma_px: float = 1.0,
    normalise_px: float = 8.0,
    floor: float | None = None,
    axes: tuple[int, int] = (-2, -1),
) -> np.ndarray:
    """Locally normalised gradient magnitude: the illumination-robust image that is matched.

    Parameters
    ----------
    grey : ndarray of float, shape (..., rows, cols)
        Intensities (any linear scale); invalid pixels may hold anything.
    valid : ndarray of bool, same shape, optional
    sigma_px : float
        Gaussian smoothing before the Sobel gradient (pixels).
    normalise_px : float
        Half-width of the box whose mean the magnitude is divided by (pixels).
    floor : float, optional
        Added to the local mean so featureless areas stay flat instead of amplifying noise;
        default a quarter of the median magnitude over the valid pixels.

    Returns
    -------
    ndarray of float32, same shape; 0 on invalid pixels.
    """
    g = np.asarray(grey, dtype=np.float32)
    ax = tuple(a % g.ndim for a in axes)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if not v.all():
            fill = float(g[v].mean()) if v.any() else 0.0
            g = np.where(v, g, np.float32(fill))
    mag = _gradient_magnitude(g, sigma_px, ax)
    if floor is None:
        sample = mag[v] if valid is not None and not v.all() else mag
        floor = 0.25 * float(np.median(sample)) if sample.size else 0.0
    size = [1] * mag.ndim
    for a in ax:
        size[a] = 2 * round(normalise_px) + 1
    local = ndimage.uniform_filter(mag, size=size)
    rep = mag / (local + np.float32(floor) + np.float32(1e-6))
    if valid is not None:
        rep = np.where(v, rep, np.float32(0))
    return rep.astype(np.float32, copy=False)


def _gradient_magnitude(g: np.ndarray, sigma: float, ax: tuple[int, ...]) -> np.ndarray:
    """Magnitude of the derivative-of-Gaussian gradient over axes ``ax`` (rows, cols) only."""
    # Gaussian smoothing then central differences: two filter passes instead of the four of
    # a derivative-of-Gaussian pair, same result to within the kernel truncation.
    g = np.asarray(g, dtype=np.float32)
    if sigma > 0:
        g = ndimage.gaussian_filter(g, sigma, axes=ax, truncate=3.0)
    gy, gx = np.gradient(g, axis=ax)
    return np.hypot(gx, gy).astype(np.float32, copy=False)


def _raw_gradient(g: np.ndarray, v: np.ndarray, sigma: float) -> np.ndarray:
    # fill invalid with the window's valid mean so mask borders make no edges
    s = v.sum(axis=(1, 2), keepdims=True)
    mean = (g * v).sum(axis=(1, 2), keepdims=True) / np.maximum(s, 1)
    g = np.where(v, g, mean).astype(np.float32)
    return _gradient_magnitude(g, sigma, (1, 2))


def _normalise(mag: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    size = 2 * round(scale) + 1
    local = ndimage.uniform_filter(mag, size=(1, size, size))
    valid_mag = mag[:, ::3, ::3][v[:, ::3, ::3]]
    floor = 0.25 * float(np.median(valid_mag)) if valid_mag.size else 0.0
    return np.where(v, mag / (local + np.float32(floor + 1e-6)), 0).astype(np.float32)


def _weights(valid: np.ndarray, erode_px: int, apod: np.ndarray | None) -> np.ndarray:
    """Smooth weights: eroded validity, blurred, times an apodisation window."""
    v = np.asarray(valid, dtype=bool)
    w = np.ones(v.shape, np.float32)
    if v.ndim == 2:
        if not v.all():
            e = ndimage.binary_erosion(v, structure=np.ones((3, 3), bool), iterations=erode_px)
            w = ndimage.gaussian_filter(e.astype(np.float32), 2.0) * e
    else:
        # only the windows that hold invalid pixels need the erosion
        part = np.flatnonzero(~v.all(axis=(1, 2)))
        if part.size:
            structure = np.zeros((3, 3, 3), bool)
            structure[1] = True
            e = ndimage.binary_erosion(v[part], structure=structure, iterations=erode_px)
            w[part] = ndimage.gaussian_filter(e.astype(np.float32), 2.0, axes=(1, 2)) * e
    if apod is not None:
        w = w * apod
    return w.astype(np.float32)


def _center(rep: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted zero-mean representation times its weight (axes -2, -1)."""
    s = weight.sum(axis=(-2, -1), keepdims=True)
    mean = (rep * weight).sum(axis=(-2, -1), keepdims=True) / np.maximum(s, 1e-9)
    return ((rep - mean) * weight).astype(np.float32)


def _hann2d(h: int, w: int) -> np.ndarray:
    """Separable Hann taper (h, w), float32: the tie windows of images."""
    return np.outer(windows.hann(h), windows.hann(w)).astype(np.float32)


def _tukey2d(h: int, w: int, alpha: float = 0.25) -> np.ndarray:
    """Separable flat-topped Tukey taper (h, w), float32, a share ``alpha`` of each side
    tapered: the coarse image and the tie windows of line work."""
    return np.outer(windows.tukey(h, alpha), windows.tukey(w, alpha)).astype(np.float32)
