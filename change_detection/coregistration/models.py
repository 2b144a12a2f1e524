"""Mapping models fitted to tie points: translation, affine, a smooth warp; RANSAC; the BIC.

RANSAC is scikit-image's (``skimage.measure.ransac`` with an ``AffineTransform`` model);
the affine least squares, the exhaustive translation consensus and the ridge-regularised warp
field are ours, each for the reason in its docstring.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from skimage.measure import ransac
from skimage.transform import AffineTransform

from change_detection.coregistration.result import _fractional_index, _Mapping

_NOISE_FLOOR_PX = 0.02


def _fit_affine(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Least-squares affine ``q = A p + b`` (ordinary least squares on centred, scaled points).

    Kept hand-written: scikit-image's ``AffineTransform.from_estimate`` solves the same fit
    as total least squares through a full SVD of the (2n, 7) system, whose (2n, 2n) left
    factor makes it the bottleneck: on 625 tie points (the default grid's most) 0.27 s
    against 0.23 ms here, median of 5 alternating runs (``benchmarks/bench_coreg_kernels.py``,
    "affine fit"), and a co-registration fits dozens of times.

    Parameters
    ----------
    p, q : ndarray of float, shape (n, 2)
        Points (x, y) in reference and target pixels.

    Returns
    -------
    ndarray, shape (2, 3)
        ``[A | b]``; the mean translation for fewer than three points.
    """
    if p.shape[0] < 3:
        t = (q - p).mean(axis=0)
        return np.array([[1.0, 0.0, t[0]], [0.0, 1.0, t[1]]])
    c = p.mean(axis=0)
    s = max(float(np.abs(p - c).max()), 1.0)
    pn = (p - c) / s
    design = np.column_stack([pn, np.ones(len(p))])
    sol, *_ = np.linalg.lstsq(design, q, rcond=None)  # (3, 2)
    a = sol[:2].T / s
    b = sol[2] - a @ c
    return np.column_stack([a, b])


class _LeastSquaresAffine(AffineTransform):
    """scikit-image's affine model for :func:`skimage.measure.ransac`, estimated by
    :func:`_fit_affine` (see there why)."""

    @classmethod
    def from_estimate(
        cls, src: np.ndarray, dst: np.ndarray, weights: Any = None
    ) -> _LeastSquaresAffine:
        fitted = _fit_affine(np.asarray(src, np.float64), np.asarray(dst, np.float64))
        return cls(matrix=np.vstack([fitted, [0.0, 0.0, 1.0]]))


def _apply_affine(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Affine ``[A | b]`` (2, 3) applied to points (n, 2)."""
    return p @ m[:, :2].T + m[:, 2]


def _ransac_affine(
    p: np.ndarray, q: np.ndarray, threshold: float, rng: np.random.Generator, iters: int = 300
) -> np.ndarray:
    """Inliers of the best affine model by RANSAC, refined by least squares.

    ``skimage.measure.ransac`` with scikit-image's ``AffineTransform`` model (fitted by
    :func:`_fit_affine`) over ``iters`` samples of three points drawn from ``rng``
    (deterministic for a seeded generator; samples whose triangle is degenerate are skipped,
    and all points start as inliers when every sample is), then up to three rounds of
    refitting on the inliers and taking those within ``threshold`` px of the refit.

    Parameters
    ----------
    p, q : ndarray of float, shape (n, 2)
        Tie points in reference and target pixels (x, y).
    threshold : float
        Largest distance (px) of an inlier from the model.
    rng : numpy.random.Generator
        Drawn from; the caller's state advances.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    n = p.shape[0]
    if n < 4:
        return np.ones(n, bool)
    tiny = 1e-6 * float(np.abs(p).max()) ** 2 + 1e-9

    def is_data_valid(ps: np.ndarray, qs: np.ndarray) -> bool:
        (x0, y0), (x1, y1), (x2, y2) = ps
        return abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) > tiny

    with warnings.catch_warnings():
        # every sample degenerate: "No inliers found", answered below with all points
        warnings.simplefilter("ignore", UserWarning)
        _, found = ransac(
            (p, q),
            _LeastSquaresAffine,
            min_samples=3,
            residual_threshold=threshold,
            max_trials=iters,
            is_data_valid=is_data_valid,
            rng=rng,
        )
    inl = np.ones(n, bool) if found is None else np.asarray(found, bool)
    for _ in range(3):
        if inl.sum() < 3:
            break
        m = _fit_affine(p[inl], q[inl])
        e = np.hypot(*(_apply_affine(m, p) - q).T)
        new = e <= threshold
        if np.array_equal(new, inl):
            break
        inl = new
    return inl


def _ransac_translation(p: np.ndarray, q: np.ndarray, threshold: float) -> np.ndarray:
    """Inliers of the best translation: every tie point's shift is tried as the hypothesis
    (exhaustive, so no sampling and no seed), the one most others agree with within
    ``threshold`` px wins, then refined by the median shift of its inliers up to three
    times. scikit-image has no translation-only model for ``ransac`` (``EuclideanTransform``
    would add a rotation), and trying every point is cheaper than sampling here.

    Parameters
    ----------
    p, q : ndarray of float, shape (n, 2)
        Tie points in reference and target pixels (x, y).
    threshold : float
        Largest distance (px) of an inlier from the translation.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    d = q - p
    err = np.hypot(d[:, None, 0] - d[None, :, 0], d[:, None, 1] - d[None, :, 1])
    counts = (err <= threshold).sum(axis=1)
    best = int(np.argmax(counts))
    inl = err[best] <= threshold
    for _ in range(3):
        t = np.median(d[inl], axis=0)
        new = np.hypot(*(d - t).T) <= threshold
        if np.array_equal(new, inl) or new.sum() == 0:
            break
        inl = new
    return inl


@dataclass(frozen=True)
class _Fit:
    mapping: _Mapping
    dof: float
    residual: np.ndarray  # (n, 2) measured q - predicted q


def _fit_model(
    kind: str, p: np.ndarray, q: np.ndarray, shape: tuple[int, int], smoothness: float
) -> _Fit:
    """Least-squares fit of a ``translation``, ``affine`` or ``warp`` pull map to tie points
    p (reference) -> q (target), (n, 2) px each, on a reference grid of ``shape``."""
    if kind == "translation":
        t = (q - p).mean(axis=0)
        mp = _Mapping("translation", np.array([[1.0, 0.0, t[0]], [0.0, 1.0, t[1]]]))
        return _Fit(mp, 2.0, q - (p + t))
    m = _fit_affine(p, q)
    res = q - _apply_affine(m, p)
    if kind == "affine":
        return _Fit(_Mapping("affine", m), 6.0, res)
    gx, gy, fieldv, dof = _fit_warp_field(p, res, shape, smoothness)
    mp = _Mapping("warp", m, gx, gy, fieldv)
    pred = np.column_stack(mp.pull(p[:, 0], p[:, 1]))
    return _Fit(mp, 6.0 + 2.0 * dof, q - pred)  # dof per component, two components


def _fit_warp_field(
    p: np.ndarray, r: np.ndarray, shape: tuple[int, int], smoothness: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Ridge fit of a bilinear control-grid field to residuals r (n, 2) at points p (n, 2)."""
    n = p.shape[0]
    h, w = shape
    g = int(np.clip(round(0.75 * math.sqrt(max(n, 1))), 3, 16))
    gy_n = g if h >= w else max(3, round(g * h / w))
    gx_n = g if w >= h else max(3, round(g * w / h))
    grid_y = np.linspace(0.0, h - 1.0, gy_n)
    grid_x = np.linspace(0.0, w - 1.0, gx_n)
    fy = _fractional_index(p[:, 1], grid_y)
    fx = _fractional_index(p[:, 0], grid_x)
    iy = np.minimum(np.floor(fy).astype(int), gy_n - 2)
    ix = np.minimum(np.floor(fx).astype(int), gx_n - 2)
    ty, tx = fy - iy, fx - ix
    G = gy_n * gx_n
    B = np.zeros((n, G))
    rows = np.arange(n)
    for dyi, dxi, wgt in (
        (0, 0, (1 - ty) * (1 - tx)),
        (0, 1, (1 - ty) * tx),
        (1, 0, ty * (1 - tx)),
        (1, 1, ty * tx),
    ):
        np.add.at(B, (rows, (iy + dyi) * gx_n + ix + dxi), wgt)
    # second differences along rows and columns of the node grid
    idx = np.arange(G).reshape(gy_n, gx_n)
    d_rows = []
    for a, b, c in (
        (idx[:-2, :], idx[1:-1, :], idx[2:, :]),
        (idx[:, :-2], idx[:, 1:-1], idx[:, 2:]),
    ):
        for i0, i1, i2 in zip(a.ravel(), b.ravel(), c.ravel(), strict=True):
            row = np.zeros(G)
            row[[i0, i1, i2]] = (1.0, -2.0, 1.0)
            d_rows.append(row)
    D = np.array(d_rows) if d_rows else np.zeros((0, G))
    btb = B.T @ B
    dtd = D.T @ D
    btr = B.T @ r
    base = smoothness * max(float(np.trace(btb)) / G, 1e-6)
    # One generalised eigendecomposition D V = A V L (V' A V = I, A = B'B + mu I) gives every
    # ridge solution (A + lam D)^-1 = V diag(1 / (1 + lam L)) V' and its hat-matrix trace, so
    # the penalty weight is chosen by generalised cross-validation over a log grid cheaply.
    evals, vecs = scipy.linalg.eigh(dtd, btb + 1e-6 * base * np.eye(G))
    evals = np.clip(evals, 0.0, None)
    proj = vecs.T @ btr  # (G, 2)
    bv = B @ vecs  # (n, G)
    lever = (bv**2).sum(axis=0)  # (G,)
    best: tuple[float, np.ndarray, float] | None = None
    for mult in (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0):
        shrink = 1.0 / (1.0 + base * mult * evals)
        coef = vecs @ (shrink[:, None] * proj)
        dof = float((lever * shrink).sum())
        rss = float(((bv @ (shrink[:, None] * proj) - r) ** 2).sum())
        gcv = n * rss / max(n - dof, 1e-3) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, coef, dof)
    assert best is not None
    _, coef, dof = best
    fieldv = coef.T.reshape(2, gy_n, gx_n)
    return grid_x, grid_y, fieldv, dof


def _bic(res: np.ndarray, dof: float) -> float:
    """Bayesian information criterion of residuals ``res`` (n, 2) px for a model with ``dof``
    degrees of freedom; the residual sum is floored at the noise of
    :data:`_NOISE_FLOOR_PX` per component so exact fits do not run to minus infinity."""
    n = res.size
    rss = max(float((res**2).sum()), n * _NOISE_FLOOR_PX**2)
    return n * math.log(rss / n) + dof * math.log(n)


def _predict_residual(mapping: _Mapping, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Measured minus predicted target points (n, 2) px."""
    qx, qy = mapping.pull(p[:, 0], p[:, 1])
    return q - np.column_stack([qx, qy])
