"""Cast shadows from a DSM under a given sun (vectorized horizon march on a coarse grid)."""

from __future__ import annotations

import math

import numpy as np

from survey.synth.resample import upsample_linear

__all__ = ["cast_shadows"]


def cast_shadows(
    dsm: np.ndarray,
    gsd_m: float,
    azimuth_deg: float,
    elevation_deg: float,
    cell_m: float = 0.2,
    tolerance_m: float = 0.05,
    upsample: bool = True,
) -> np.ndarray:
    """Fraction of each pixel in cast shadow (0 = sunlit, 1 = shadow).

    The DSM is pooled to cells of about ``cell_m`` (maximum as occluder, minimum as
    receiver); each cell marches toward the sun in steps of one cell, keeping the running
    maximum of ``occluder - distance * tan(elevation)``, and is in shadow where that horizon
    rises above it. The coarse mask is upsampled bilinearly, which softens its edges over one
    cell (a penumbra). Cost: (relief / tan(elevation) / cell) array maxima on the coarse grid.

    Parameters
    ----------
    dsm : ndarray of float, shape (rows, cols)
        Heights in metres, no NaN.
    gsd_m : float
        Pixel size in metres.
    azimuth_deg, elevation_deg : float
        Sun azimuth clockwise from north and elevation above the horizon, degrees.

    upsample : bool
        False returns the binary mask of the coarse cells, shape
        (ceil(rows / f), ceil(cols / f)) with f = max(1, round(cell_m / gsd_m)).

    Returns
    -------
    ndarray of float32, shape (rows, cols)

    Examples
    --------
    >>> z = np.zeros((40, 40)); z[18:22, 18:22] = 5.0
    >>> s = cast_shadows(z, 0.5, 180.0, 45.0, cell_m=0.5)  # sun due south: shadow to the north
    >>> bool(s[15, 20] > 0.5), bool(s[25, 20] > 0.5)
    (True, False)
    """
    rows, cols = dsm.shape
    f = max(1, round(cell_m / gsd_m))
    rc, cc = -(-rows // f), -(-cols // f)
    padded = np.pad(dsm, ((0, rc * f - rows), (0, cc * f - cols)), mode="edge")
    blocks = padded.reshape(rc, f, cc, f)
    occluder = blocks.max(axis=(1, 3)).astype(np.float32)
    receiver = blocks.min(axis=(1, 3)).astype(np.float32)
    step = f * gsd_m
    tan_el = math.tan(math.radians(elevation_deg))
    az = math.radians(azimuth_deg)
    dcol, drow = math.sin(az), -math.cos(az)  # toward the sun, in cells (rows grow southward)
    relief = float(occluder.max() - receiver.min())
    n_steps = max(1, math.ceil(relief / tan_el / step))
    horizon = np.full((rc, cc), -np.inf, dtype=np.float32)
    last: tuple[int, int] | None = None
    for k in range(1, n_steps + 1):
        oc, orow = round(k * dcol), round(k * drow)
        if (oc, orow) == last or abs(oc) >= cc or abs(orow) >= rc:
            continue
        last = (oc, orow)
        drop = np.float32(k * step * tan_el)
        dst_r = slice(max(0, -orow), rc - max(0, orow))
        dst_c = slice(max(0, -oc), cc - max(0, oc))
        src_r = slice(max(0, orow), rc - max(0, -orow))
        src_c = slice(max(0, oc), cc - max(0, -oc))
        np.maximum(horizon[dst_r, dst_c], occluder[src_r, src_c] - drop, out=horizon[dst_r, dst_c])
    coarse = (horizon > receiver + np.float32(tolerance_m)).astype(np.float32)
    if not upsample:
        return coarse
    if f == 1:
        return coarse[:rows, :cols]
    return upsample_linear(coarse, f, (rows, cols))
