"""Co-registration kernels: the hand-written ones against the library call they replace.

The issue (#15) asks to use scikit-image and SciPy where they serve and to keep a
hand-written piece only where a benchmark shows the library is the bottleneck. Each figure
here times our kernel (``value``) against the library on the same inputs (``baseline``),
as the median of alternating runs (ours, library, ours, library, ...), so a slow moment of a
shared machine hits both:

- ``phase correlation`` — :func:`change_detection.coregistration.correlation._phase_correlate`
  on one batch of 128 tie windows of 128 x 128 px refined to 1/100 px, against
  ``skimage.registration.phase_cross_correlation(upsample_factor=100)`` window by window
  (what the batch replaces). Kept hand-written when the ratio is well under 1.
- ``bilinear warp (translation)`` / ``bilinear warp (affine)`` —
  :func:`change_detection.coregistration.warp_arrays` of an RGB orthophoto, its DSM and its
  mask (``order=1``), against ``scipy.ndimage.map_coordinates(order=1)`` band by band at the
  same coordinates. Kept hand-written when the ratio is well under 1.
- ``affine fit`` — :func:`change_detection.coregistration.models._fit_affine` (ordinary least
  squares) on 625 tie points (the default grid's most), against scikit-image's
  ``AffineTransform.from_estimate`` (total least squares by a full SVD of the (2n, 7)
  system). Kept hand-written when the ratio is well under 1.
- ``RANSAC affine (skimage)`` — the library RANSAC the models use now
  (:func:`change_detection.coregistration.models._ransac_affine`, ``skimage.measure.ransac``
  with ``AffineTransform``, 300 samples) against a whole ``coregister`` call on a 1024 px
  pair: the share it takes shows whether the library is a bottleneck (it is used when not).

``quick`` uses smaller rasters and fewer repeats.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation
from skimage.transform import AffineTransform

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Result

from change_detection.coregistration import CoregParams, coregister, warp_arrays
from change_detection.coregistration.correlation import _phase_correlate
from change_detection.coregistration.models import _fit_affine, _ransac_affine

BENCH = "coreg_kernels"


def _alternating(
    ours: Callable[[], Any], library: Callable[[], Any], repeat: int
) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``library``, run alternately ``repeat`` times each."""
    t_ours, t_lib = [], []
    for _ in range(repeat):
        for fn, times in ((ours, t_ours), (library, t_lib)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(t_ours), statistics.median(t_lib)


def _versus_library(name: str, times: tuple[float, float], library: str, note: str = "") -> Result:
    """A figure of a kernel kept hand-written: our median time against the library's."""
    t_ours, t_lib = times
    return Result(
        BENCH,
        name,
        t_ours,
        "s",
        t_lib,
        library,
        target="< 1 (keep hand-written)",
        ok=t_ours < t_lib,
        note=f"{t_lib / t_ours:.1f}x faster{note}",
    )


def _windows(k: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k pairs of smooth random windows (n x n, float32), each target shifted sub-pixel."""
    rng = np.random.default_rng(seed)
    ref = np.empty((k, n, n), np.float32)
    tgt = np.empty((k, n, n), np.float32)
    for i in range(k):
        base = ndimage.gaussian_filter(rng.normal(size=(n + 16, n + 16)), 2.0)
        moved = ndimage.shift(base, rng.uniform(-3, 3, 2), order=3, mode="nearest")
        ref[i], tgt[i] = base[8:-8, 8:-8], moved[8:-8, 8:-8]
    taper = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    return ref * taper, tgt * taper


def _bench_phase_correlation(quick: bool) -> Result:
    k, n = (32, 128) if quick else (128, 128)
    ref, tgt = _windows(k, n)

    def ours() -> None:
        _phase_correlate(ref, tgt, n // 4, 100)

    def library() -> None:
        for i in range(k):
            phase_cross_correlation(ref[i], tgt[i], upsample_factor=100, normalization="phase")

    t_ours, t_lib = _alternating(ours, library, 3 if quick else 5)
    return _versus_library(
        f"phase correlation, {k} windows of {n}x{n} at 1/100 px",
        (t_ours, t_lib),
        "skimage phase_cross_correlation per window",
    )


def _epoch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (3, n, n)).astype(np.uint8)
    dsm = rng.normal(30.0, 4.0, (n, n)).astype(np.float32)
    mask = rng.random((n, n)) > 0.02
    return rgb, dsm, mask


def _map_coordinates_all(
    arrays: tuple[np.ndarray, ...], qy: np.ndarray, qx: np.ndarray
) -> list[np.ndarray]:
    """What warp_arrays computes, band by band through scipy (constant mode, order 1)."""
    out = []
    for arr in arrays:
        planes = arr.reshape((-1, *arr.shape[-2:]))
        fill = np.nan if arr.dtype == np.float32 else 0.0
        out.append(
            np.stack(
                [
                    ndimage.map_coordinates(
                        p.astype(np.float32), [qy, qx], order=1, mode="constant", cval=fill
                    )
                    for p in planes
                ]
            )
        )
    return out


def _bench_warp(quick: bool, kind: str) -> Result:
    n = 1024 if quick else 4096
    arrays = _epoch(n)
    rows = np.arange(n, dtype=np.float64)[:, None]
    cols = np.arange(n, dtype=np.float64)[None, :]
    if kind == "translation":
        ty, tx = -3.3, 2.7

        def pull(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return r + ty, c + tx

        translation: tuple[float, float] | None = (ty, tx)
    else:
        a = np.deg2rad(0.5)

        def pull(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return 1.002 * (np.sin(a) * c + np.cos(a) * r) - 3.3, 1.002 * (
                np.cos(a) * c - np.sin(a) * r
            ) + 2.7

        translation = None
    qy, qx = (np.ascontiguousarray(np.broadcast_to(v, (n, n))) for v in pull(rows, cols))

    def ours() -> None:
        warp_arrays(pull, list(arrays), [1, 1, 1], [None] * 3, (n, n), translation=translation)

    def library() -> None:
        _map_coordinates_all(arrays, qy, qx)

    t_ours, t_lib = _alternating(ours, library, 3 if quick else 5)
    return _versus_library(
        f"bilinear warp ({kind}), RGB + DSM + mask {n}x{n}",
        (t_ours, t_lib),
        "scipy map_coordinates order=1 per band",
    )


def _bench_affine_fit(quick: bool) -> Result:
    n = 625
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 8192, (n, 2))
    a = np.array([[1.001, 0.004], [-0.004, 0.999]])
    q = p @ a.T + np.array([3.2, -1.7]) + rng.normal(0, 0.1, (n, 2))
    repeat = 3 if quick else 5
    ours = _fit_affine(p, q)
    theirs = AffineTransform.from_estimate(p, q).params[:2]
    t_ours, t_lib = _alternating(
        lambda: _fit_affine(p, q), lambda: AffineTransform.from_estimate(p, q), repeat
    )
    return _versus_library(
        f"affine fit, {n} tie points",
        (t_ours, t_lib),
        "skimage AffineTransform.from_estimate",
        f"; max |difference| {np.abs(ours - theirs).max():.1e}",
    )


def _bench_ransac(quick: bool) -> Result:
    from tests.change_detection.test_coregistration_scenes import (
        affine_push,
        make_scene,
        render,
        sample,
    )

    n = 512 if quick else 1024
    ref = render(make_scene((n, n), seed=2))
    tgt = sample(ref, affine_push(1.3, -2.1, 0.3, 1.002, ((n - 1) / 2, (n - 1) / 2)))
    result = coregister(ref, tgt)
    tp = result.tiepoints
    p = np.column_stack([tp["x"], tp["y"]])
    q = p - np.column_stack([tp["dx"], tp["dy"]])
    q[::7] += 5.0  # some outliers

    def ransac_calls() -> None:
        # as many as one coregister call makes: the trend, the evaluation set, the guided pass
        for _ in range(3):
            _ransac_affine(p, q, 1.0, np.random.default_rng(0))

    def whole() -> None:
        coregister(ref, tgt, params=CoregParams())

    t_ransac, t_whole = _alternating(ransac_calls, whole, 3)
    return Result(
        BENCH,
        f"RANSAC affine (skimage) x3 on {p.shape[0]} tie points",
        t_ransac,
        "s",
        t_whole,
        f"one coregister call, {n}x{n}",
        target="small share (library kept)",
        ok=t_ransac < 0.25 * t_whole,
        note=f"{100 * t_ransac / t_whole:.0f}% of coregister",
    )


def run(quick: bool) -> list[Result]:
    return [
        _bench_phase_correlation(quick),
        _bench_warp(quick, "translation"),
        _bench_warp(quick, "affine"),
        _bench_affine_fit(quick),
        _bench_ransac(quick),
    ]


if __name__ == "__main__":
    from _common import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
