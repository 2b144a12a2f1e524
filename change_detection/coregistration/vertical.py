"""The vertical offset between two DSMs on stable ground."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage

from change_detection.coregistration.caches import _BandCache
from change_detection.coregistration.params import _Sliceable
from change_detection.errors import CoregistrationError, GridMismatchError


def estimate_vertical_offset(
    reference_dsm: _Sliceable,
    target_dsm: _Sliceable,
    stable_mask: _Sliceable | None = None,
    *,
    pixel_size_m: float = 1.0,
    max_slope: float = 0.15,
    window_px: int = 512,
    max_windows: int = 64,
) -> float:
    """Vertical offset of the target DSM against the reference on stable ground (metres).

    The offset is ``median(target - reference)`` over pixels where both are valid, the local
    slope of both is low (rise over run below ``max_slope``) and ``stable_mask`` (if given) is
    True, refined by a second median within 3 robust standard deviations (so buildings that
    changed do not bias it). Subtract it from the target to remove it:
    ``target_dsm - offset ~ reference_dsm`` on stable ground.

    Parameters
    ----------
    reference_dsm, target_dsm : array of float, shape (rows, cols)
        Heights in metres on the same grid, NaN for nodata.
    stable_mask : array of bool, shape (rows, cols), optional
        True where nothing is expected to have changed.
    pixel_size_m : float
        Ground size of a pixel, to turn height steps into slopes.
    window_px, max_windows : int
        Large rasters are sampled on a grid of at most ``max_windows`` windows.

    Returns
    -------
    float
        Offset in metres (target minus reference).

    Raises
    ------
    CoregistrationError
        No stable pixel in common.
    """
    H, W = reference_dsm.shape[-2], reference_dsm.shape[-1]
    if (target_dsm.shape[-2], target_dsm.shape[-1]) != (H, W):
        raise GridMismatchError(
            f"DSM grids differ: {(H, W)} and {tuple(target_dsm.shape[-2:])}; align them first"
        )
    nwin = max(1, math.ceil(H / window_px) * math.ceil(W / window_px))
    step = max(1, math.ceil(math.sqrt(nwin / max_windows)))

    # Sampled on a grid of step x step windows, each window half a window in from the corner
    # of its cell: away from the cell's edges, which on lazy rasters are often chunk edges,
    # so a window (and the target's, shifted by the misregistration) decodes one chunk, not
    # the two or four that meet there.
    def inset(n: int) -> int:  # not on a side too short for it
        return window_px // 2 if step > 1 and n >= window_px + window_px // 2 else 0

    windows = [
        (slice(r0, min(H, r0 + window_px)), slice(c0, min(W, c0 + window_px)))
        for i, r0 in enumerate(range(inset(H), H, window_px))
        for j, c0 in enumerate(range(inset(W), W, window_px))
        if not (i % step or j % step)
    ]

    def stable_differences(sl: tuple[slice, slice]) -> np.ndarray:
        a = np.asarray(reference_dsm[sl], dtype=np.float64)
        b = np.asarray(target_dsm[sl], dtype=np.float64)
        ok = np.isfinite(a) & np.isfinite(b)
        if stable_mask is not None:
            ok &= np.asarray(stable_mask[sl], dtype=bool)
        if a.shape[0] > 2 and a.shape[1] > 2:
            for z in (a, b):
                zf = np.where(np.isfinite(z), z, 0.0)
                gy, gx = np.gradient(zf, pixel_size_m)
                flat = np.hypot(gx, gy) <= max_slope
                # np.gradient touches neighbours: a NaN neighbour makes the slope unknown
                fin = ndimage.binary_erosion(np.isfinite(z), iterations=1, border_value=1)
                ok &= flat & fin
        return (b - a)[ok]

    if len(windows) > 1 and not any(isinstance(x, _BandCache) for x in (reference_dsm, target_dsm)):
        # windows of lazy rasters are read (decoded, warped) side by side
        with ThreadPoolExecutor(min(len(windows), os.cpu_count() or 1)) as pool:
            found = list(pool.map(stable_differences, windows))
    else:
        found = [stable_differences(sl) for sl in windows]
    diffs = [d for d in found if d.size]
    if not diffs:
        raise CoregistrationError(
            "no stable ground in common between the DSMs (both valid, low slope); check that "
            "they cover the same area and their nodata values"
        )
    d = np.concatenate(diffs)
    med = float(np.median(d))
    mad = 1.4826 * float(np.median(np.abs(d - med)))
    keep = np.abs(d - med) <= max(3 * mad, 0.05)
    return float(np.median(d[keep])) if keep.any() else med
