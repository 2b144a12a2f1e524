"""Per-pixel change between two co-registered epochs: the pure numpy core of the height mode.

Two modes:

* **Height** (both DSMs), here: the height change ``dh = after − before`` (after the vertical
  alignment of the co-registration) is thresholded at ``min_height_m``; vegetation
  suppresses growing or felled trees — where the colour says vegetation (RGB indices
  ExG − ExR and GLI, or NDVI when a near-infrared band exists) *and* the surface is not
  planar: a roof is a plane at metre scale whatever its colour (green, blue or red steel
  sheets), a canopy is not (:func:`plane_fit_residual`, :func:`on_planar_surface`); for a
  gain the after epoch decides, for a loss the before epoch. A morphological opening
  removes speckle and the slivers that residual misregistration leaves along building edges;
  the before epoch's height above ground (an nDSM from a grey-scale opening of the DSM on a
  coarse grid) tells a new structure from a raised one.
* **RGB only** (weaker): :mod:`change_detection.spectral` — segments of each epoch compared
  with the other epoch and judged as roofs. The earlier pixel classifier
  (:func:`classify_spectral_change` and its local means) lives there too and is still
  importable from here.

Every operation has a bounded support, listed by :func:`halo_px`, so the same function
applied to chunks with that much overlap gives exactly the whole-array answer (integer box
sums, min/max filters; no running floating-point sums).

The per-pixel classes written to ``change.tif`` are :data:`CHANGE_CODES`.

The module is longer than the house's ~500 lines because the vegetation test (colour and
planarity) is part of the per-pixel classification and shares its exact neighbourhood
operations; it could move to a module of its own with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from change_detection.params import DetectParams

__all__ = [
    "CHANGE_CODES",
    "CODE_ARTEFACT",
    "CODE_NEW",
    "CODE_NODATA",
    "CODE_NONE",
    "CODE_RAISED",
    "CODE_REMOVED",
    "CODE_SHADOW",
    "CODE_SPECTRAL",
    "CODE_VEGETATION",
    "ChangeLayers",
    "PixelScale",
    "block_minimum",
    "block_sums",
    "box_sum",
    "classify_height_change",
    "classify_spectral_change",
    "excess_green",
    "excess_red",
    "green_leaf_index",
    "ground_surface",
    "local_means",
    "means_of_box_sums",
    "ndvi",
    "on_planar_surface",
    "pixel_scale",
    "plane_fit_residual",
    "upsample",
    "vegetation_mask",
]

CODE_NONE = 0
CODE_NEW = 1
CODE_RAISED = 2
CODE_REMOVED = 3
CODE_SPECTRAL = 4
CODE_VEGETATION = 10
CODE_SHADOW = 11
CODE_ARTEFACT = 12
CODE_NODATA = 255

#: Per-pixel change classes (``change.tif``, uint8). Codes 1-4 are candidate changes (before
#: the object filters on area and height); 10-12 are changes that were seen and suppressed.
CHANGE_CODES: dict[int, str] = {
    CODE_NONE: "no change",
    CODE_NEW: "height gain on open ground (new structure)",
    CODE_RAISED: "height gain on an existing structure (raised)",
    CODE_REMOVED: "height loss of a structure (removed)",
    CODE_SPECTRAL: "spectral change without height data (RGB-only mode)",
    CODE_VEGETATION: "change suppressed: vegetation (growing or felled trees)",
    CODE_SHADOW: "change suppressed: shadow that appeared or vanished",
    CODE_ARTEFACT: "change suppressed: speckle or edge artefact (morphological opening)",
    CODE_NODATA: "no data in one of the epochs",
}


@dataclass(frozen=True)
class PixelScale:
    """Parameters converted to pixels for one ground sampling distance.

    Attributes
    ----------
    gsd_m : float
        Pixel size in metres.
    cell : int
        Side of the coarse cells in pixels (a power of two), for the ground filter and the
        local statistics.
    open_px, close_px, margin_px, grow_px : int
        Radii of the opening, the closing, the edge erosion and the edge growth in pixels.
    ground_cells, norm_cells : int
        Odd window widths, in coarse cells, of the ground filter and the local normalisation.
    planar_cell : int
        Side in pixels of the cells of the vegetation test's plane fit: half a coarse cell
        (about 0.2 m), so the cells are on the grid of every chunk.
    planar_cells : int
        Side of the plane-fit windows in those cells (0: no test).
    roof_reach_px : int
        How far around its planar windows a roof's pixels are kept (``roof_edge_m``).
    """

    gsd_m: float
    cell: int
    open_px: int
    close_px: int
    margin_px: int
    grow_px: int
    ground_cells: int
    norm_cells: int
    planar_cells: int = 0
    planar_cell: int = 1
    roof_reach_px: int = 0

    @property
    def pixel_area_m2(self) -> float:
        return self.gsd_m * self.gsd_m

    def halo_px(self) -> int:
        """Overlap (pixels) a chunk needs so fine-grid results equal the whole-array ones."""
        support = 2 * self.open_px + 2 * self.close_px + self.grow_px + self.margin_px + 2
        if self.planar_cells > 0:  # the vegetation test: planar windows within the roof's
            # reach of a pixel, on the plane-fit cell grid
            support += (self.planar_cells + 1) * self.planar_cell + self.roof_reach_px
        return int(math.ceil(support / self.cell) * self.cell)

    def ground_halo_cells(self) -> int:
        """Overlap (coarse cells) of the ground filter (a min then a max filter)."""
        return 2 * (self.ground_cells // 2) + 1

    def norm_halo_cells(self) -> int:
        """Overlap (coarse cells) of the local normalisation box filter."""
        return self.norm_cells // 2 + 1


# Leaves reflect more green than blue; a teal or cyan roof (G ~ B) is not vegetation.
_GREEN_OVER_BLUE = 0.08


def pixel_scale(params: DetectParams, gsd_m: float) -> PixelScale:
    """Convert the metric parameters to pixels for a grid of ``gsd_m`` metres per pixel."""
    cell = 2 ** max(0, round(math.log2(max(params.ground_cell_m / gsd_m, 1.0))))
    cell_m = cell * gsd_m

    def odd(n: float) -> int:
        k = max(3, math.ceil(n))
        return k if k % 2 else k + 1

    return PixelScale(
        gsd_m=gsd_m,
        cell=cell,
        open_px=round(params.open_radius_m / gsd_m),
        close_px=round(params.close_radius_m / gsd_m),
        margin_px=round(params.edge_margin_m / gsd_m),
        grow_px=math.ceil(params.edge_grow_m / gsd_m),
        ground_cells=odd(params.ground_window_m / cell_m),
        norm_cells=odd(params.norm_window_m / cell_m),
        planar_cell=max(1, cell // 2),
        roof_reach_px=math.ceil(params.roof_edge_m / gsd_m) if params.planar_residual_m > 0 else 0,
        planar_cells=max(2, round(params.planar_window_m / (max(1, cell // 2) * gsd_m)))
        if params.planar_residual_m > 0
        else 0,
    )


@dataclass(frozen=True)
class ChangeLayers:
    """Per-pixel outputs for one block.

    Attributes
    ----------
    codes : ndarray of uint8, shape (rows, cols)
        :data:`CHANGE_CODES`.
    dh : ndarray of float32, shape (rows, cols), or None
        Height change in metres (after − before; NaN where unknown); None in RGB-only mode.
    height_after : ndarray of float32, shape (rows, cols), or None
        Height of the after surface above the before ground (m); None in RGB-only mode.
    interior : ndarray of bool, shape (rows, cols)
        Change pixels at least ``edge_margin_m`` inside their region (for robust heights).
    planar_vegetation_colour : ndarray of bool, shape (rows, cols), or None
        Change pixels whose colour (or NDVI) says vegetation in the deciding epoch but that
        were kept because the surface there is planar (a green roof, not a canopy); None in
        RGB-only mode.
    """

    codes: np.ndarray
    dh: np.ndarray | None
    height_after: np.ndarray | None
    interior: np.ndarray
    planar_vegetation_colour: np.ndarray | None = None


# --- RGB indices ------------------------------------------------------------------------------


def _chromatic(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rgb.astype(np.float32)
    total = x[0] + x[1] + x[2]
    total[total == 0] = 1.0
    return x[0] / total, x[1] / total, x[2] / total


def excess_green(rgb: np.ndarray) -> np.ndarray:
    """ExG = 2g − r − b on chromatic coordinates, shape (rows, cols), in [−1, 2].

    >>> import numpy as np
    >>> round(float(excess_green(np.array([[[40]], [[120]], [[40]]], np.uint8))[0, 0]), 3)
    0.8
    """
    r, g, b = _chromatic(rgb)
    return 2 * g - r - b


def excess_red(rgb: np.ndarray) -> np.ndarray:
    """ExR = 1.4 r − g on chromatic coordinates, shape (rows, cols)."""
    r, g, _ = _chromatic(rgb)
    return 1.4 * r - g


def green_leaf_index(rgb: np.ndarray) -> np.ndarray:
    """GLI = (2G − R − B) / (2G + R + B), shape (rows, cols), in [−1, 1]."""
    x = rgb.astype(np.float32)
    num = 2 * x[1] - x[0] - x[2]
    den = 2 * x[1] + x[0] + x[2]
    den[den == 0] = 1.0
    return num / den


def ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    """NDVI = (NIR − R) / (NIR + R), shape (rows, cols), in [−1, 1] (0 where both are 0).

    >>> import numpy as np
    >>> round(float(ndvi(np.array([[180]], np.uint8), np.array([[40]], np.uint8))[0, 0]), 3)
    0.636
    """
    n = nir.astype(np.float32)
    r = red.astype(np.float32)
    den = n + r
    den[den == 0] = 1.0
    return (n - r) / den


def _vegetation(rgb: np.ndarray, params: DetectParams, nir: np.ndarray | None = None) -> np.ndarray:
    if nir is not None:
        return ndvi(nir, rgb[0]) > params.vegetation_ndvi
    r, g, b = _chromatic(rgb)
    exg = 2 * g - r - b
    exr = 1.4 * r - g
    x = rgb.astype(np.float32)
    den = 2 * x[1] + x[0] + x[2]
    den[den == 0] = 1.0
    gli = (2 * x[1] - x[0] - x[2]) / den
    green_over_blue = (x[1] - x[2]) > _GREEN_OVER_BLUE * (x[1] + x[2])
    return (
        ((exg - exr) > params.vegetation_exg_exr)
        & (gli > params.vegetation_gli)
        & (green_over_blue)
    )


def vegetation_mask(
    rgb: np.ndarray, params: DetectParams, nir: np.ndarray | None = None
) -> np.ndarray:
    """The colour of vegetation: from RGB, ExG − ExR > threshold and GLI > threshold, and
    green exceeds blue by 8 % (so teal and cyan roofs are not taken for leaves); with a
    near-infrared band, NDVI > ``params.vegetation_ndvi`` instead.

    Colour alone does not make vegetation: a green roof has it too. The height mode also
    asks the DSM (:func:`on_planar_surface`).

    Parameters
    ----------
    rgb : ndarray of uint8, shape (3, rows, cols)
    nir : ndarray of uint8, shape (rows, cols), optional

    Returns
    -------
    ndarray of bool, shape (rows, cols)
    """
    return _vegetation(rgb, params, nir)


# --- exact neighbourhood operations -----------------------------------------------------------


def _window_reduce(x: np.ndarray, radius: int, op: np.ufunc) -> np.ndarray:
    """``op`` (minimum/maximum, bitwise and/or) over a (2r+1)^2 square, edges replicated.

    Separable, with windows doubled per step (3 operations per axis for r = 3), so bit
    planes of a uint8 array are eroded or dilated together and floats are max-filtered
    exactly (min/max are exact), like ``scipy.ndimage`` filters with ``mode="nearest"``.
    """
    if radius <= 0:
        return x
    w = 2 * radius + 1
    out = x
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        cur = np.pad(out, pad, mode="edge")
        size = 1
        while 2 * size <= w:
            n = cur.shape[axis]
            cur = op(_slice(cur, axis, 0, n - size), _slice(cur, axis, size, n))
            size *= 2
        rest = w - size
        if rest:
            n = cur.shape[axis]
            cur = op(_slice(cur, axis, 0, n - rest), _slice(cur, axis, rest, n))
        out = cur
    return out


def _slice(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _square(mask: np.ndarray, radius: int, op: str) -> np.ndarray:
    if radius <= 0:
        return mask
    u8 = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
    red = np.bitwise_and if op == "min" else np.bitwise_or
    out = _window_reduce(u8, radius, red)
    return out.astype(bool) if mask.dtype == np.bool_ else out


def _open(mask: np.ndarray, radius: int) -> np.ndarray:
    return _square(_square(mask, radius, "min"), radius, "max")


def _close(mask: np.ndarray, radius: int) -> np.ndarray:
    return _square(_square(mask, radius, "max"), radius, "min")


def box_sum(values: np.ndarray, size: int) -> np.ndarray:
    """Exact moving sum over a ``size`` x ``size`` window of an integer array (edges replicated).

    Parameters
    ----------
    values : ndarray of int, shape (..., rows, cols)
    size : int, odd

    Returns
    -------
    ndarray of int64, same shape.
    """
    r = size // 2
    pad = [(0, 0)] * (values.ndim - 2) + [(r + 1, r), (r + 1, r)]
    c = np.pad(values.astype(np.int64), pad, mode="edge")
    c[..., 0, :] = 0
    c[..., :, 0] = 0
    c = c.cumsum(axis=-2).cumsum(axis=-1)
    rows, cols = values.shape[-2:]
    return (
        c[..., size : size + rows, size : size + cols]
        - c[..., 0:rows, size : size + cols]
        - c[..., size : size + rows, 0:cols]
        + c[..., 0:rows, 0:cols]
    )


def block_minimum(dsm: np.ndarray, cell: int) -> np.ndarray:
    """Lower quartile of each ``cell`` x ``cell`` block (NaN ignored; NaN where all are NaN).

    The lower quartile rather than the minimum keeps DSM noise from biasing the ground low.

    Parameters
    ----------
    dsm : ndarray of float32, shape (rows, cols)

    Returns
    -------
    ndarray of float32, shape (ceil(rows / cell), ceil(cols / cell))
    """
    rows, cols = dsm.shape
    hr, hc = -(-rows // cell), -(-cols // cell)
    padded = np.full((hr * cell, hc * cell), np.inf, np.float32)
    padded[:rows, :cols] = np.where(np.isnan(dsm), np.inf, dsm)
    groups = padded.reshape(hr, cell, hc, cell).transpose(0, 2, 1, 3).reshape(-1, cell * cell)
    n_finite = np.isfinite(groups).sum(axis=-1)
    k = n_finite // 4
    out = np.empty(groups.shape[0], np.float32)
    # Full cells (the usual case) all take the same order statistic: a partial partition finds
    # it without sorting; cells with holes are sorted and take their own.
    full = n_finite == groups.shape[1]
    if full.any():
        kf = groups.shape[1] // 4
        out[full] = np.partition(groups[full], kf, axis=-1)[:, kf]
    if not full.all():
        part = ~full
        ordered = np.sort(groups[part], axis=-1)
        kp = k[part].clip(0, ordered.shape[-1] - 1)[:, None]
        out[part] = np.take_along_axis(ordered, kp, axis=-1)[:, 0]
    out[n_finite == 0] = np.nan
    return out.reshape(hr, hc)


def ground_surface(coarse_min: np.ndarray, window_cells: int) -> np.ndarray:
    """Ground under the structures: grey-scale opening of the coarse minimum surface.

    Parameters
    ----------
    coarse_min : ndarray of float32, shape (rows, cols)
        :func:`block_minimum` of a DSM.
    window_cells : int
        Opening width in cells; structures narrower than this are removed.

    Returns
    -------
    ndarray of float32, same shape; NaN where no ground is known.
    """
    x = np.where(np.isnan(coarse_min), np.inf, coarse_min)
    opened = ndimage.maximum_filter(
        ndimage.minimum_filter(x, size=window_cells, mode="nearest"),
        size=window_cells,
        mode="nearest",
    )
    opened = opened.astype(np.float32)
    opened[np.isinf(opened)] = np.nan
    return opened


def upsample(coarse: np.ndarray, cell: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of a coarse grid by ``cell``, cropped to ``shape``."""
    out = np.repeat(np.repeat(coarse, cell, axis=-2), cell, axis=-1)
    return out[..., : shape[0], : shape[1]]


# --- classification ---------------------------------------------------------------------------


def _grow_half_height(
    core: np.ndarray, signed: np.ndarray, radius: int, allowed: np.ndarray
) -> np.ndarray:
    """Pixels within ``radius`` of ``core`` whose change is at least half the local peak."""
    out = np.zeros_like(core)
    rows = np.flatnonzero(core.any(axis=1))
    if radius <= 0 or rows.size == 0:
        return out
    cols = np.flatnonzero(core.any(axis=0))
    # Only around the changed pixels; a margin of 2 r keeps the window maxima exact (beyond
    # r from the core every value is -inf, so replicating the crop's edge changes nothing).
    m = 2 * radius
    win = (
        slice(max(0, rows[0] - m), min(core.shape[0], rows[-1] + m + 1)),
        slice(max(0, cols[0] - m), min(core.shape[1], cols[-1] + m + 1)),
    )
    c, v = core[win], signed[win]
    peak = _window_reduce(np.where(c, v, -np.inf), radius, np.maximum)
    out[win] = np.isfinite(peak) & ~c & allowed[win] & (v >= 0.5 * peak)
    return out


def _vegetation_at(
    rgb: np.ndarray, where: np.ndarray, params: DetectParams, nir: np.ndarray | None = None
) -> np.ndarray:
    """:func:`vegetation_mask` evaluated only at the pixels ``where`` (False elsewhere)."""
    out = np.zeros(where.shape, bool)
    idx = np.flatnonzero(where)
    if idx.size:
        pixels = rgb.reshape(3, -1)[:, idx][:, None, :]
        nir_px = None if nir is None else np.asarray(nir).reshape(-1)[idx][None, :]
        out.ravel()[idx] = _vegetation(pixels, params, nir_px)[0]
    return out


# --- planarity: roofs are planes, canopies are not ------------------------------------------


def _anchored_reduce(mask: np.ndarray, size: int, op: np.ufunc) -> np.ndarray:
    """``op`` (bitwise and / or) over every ``size`` x ``size`` window inside a uint8 array,
    indexed by the window's first row and column (doubling; overlaps are harmless for
    idempotent operations)."""
    out = mask
    for axis in (-2, -1):
        span = 1
        while 2 * span <= size:
            n = out.shape[axis]
            out = op(_slice(out, axis, 0, n - span), _slice(out, axis, span, n))
            span *= 2
        rest = size - span
        if rest:
            n = out.shape[axis]
            out = op(_slice(out, axis, 0, n - rest), _slice(out, axis, rest, n))
    return out


def _cells_of_windows(windows: np.ndarray, size: int) -> np.ndarray:
    """Cells covered by any True window of ``size`` x ``size`` cells (windows indexed by
    their first cell), uint8 (windows' rows + size − 1, cols + size − 1)."""
    k = size - 1
    return _anchored_reduce(np.pad(windows.view(np.uint8), k), size, np.bitwise_or)


def _cell_counts(mask: np.ndarray, cell: int) -> np.ndarray:
    """Per-cell count of True of a bool array of whole cells, int64 (rows / cell, cols / cell);
    strided slices (reductions over short reshaped axes are slow)."""
    u8 = mask.view(np.uint8)
    out = np.zeros((mask.shape[0] // cell, mask.shape[1] // cell), np.int32)
    for k in range(cell):
        for j in range(cell):
            out += u8[k::cell, j::cell]
    return out.astype(np.int64)


def _window_ok(dsm: np.ndarray, centres: np.ndarray | None, cell: int, cells: int) -> np.ndarray:
    """Windows of ``cells`` x ``cells`` cells entirely finite (and on ``centres``), bool,
    indexed by their first cell, of an array of whole cells."""
    cell_ok = _cell_counts(np.isfinite(dsm), cell) == cell * cell
    if centres is not None:
        cell_ok &= _cell_counts(centres, cell) == cell * cell
    return _anchored_reduce(cell_ok.view(np.uint8), cells, np.bitwise_and).astype(bool)


def _window_ssr(dsm: np.ndarray, cell: int, cells: int, wanted: np.ndarray) -> np.ndarray:
    """Sum of squared residuals (cm²) of the least-squares plane of each ``wanted`` window.

    The DSM (whole cells, the wanted windows finite) is quantised to integer centimetres and
    reduced to per-cell integer sums of q, q², x·q and y·q, so every window's moments are exact
    integers; the residual is formed from their *centred* combinations (n·Σq² − (Σq)²,
    Σ(x − x₀)·q, Σ(y − y₀)·q), which depend neither on the array's origin nor on a height
    offset: a chunk and the whole array give the same float for the same window, as long as
    both are cut on the cell grid. Only the cells of the wanted windows are read.

    Returns
    -------
    ndarray of float64, shape (number of wanted windows,), in ``np.nonzero`` order.
    """
    hr, hc = dsm.shape[0] // cell, dsm.shape[1] // cell
    side = cells * cell
    n = side * side
    ii, jj = np.nonzero(_cells_of_windows(wanted, cells))
    per_cell = np.zeros((4, hr, hc), np.int64)
    blocks = dsm.reshape(hr, cell, hc, cell)[ii, :, jj, :]  # (k, cell, cell)
    q = np.round(np.multiply(blocks, 100.0, dtype=np.float64))
    q -= q.min()
    # float64 sums of at most cell² integers below 2^40 are exact integers; x and y are
    # pixel coordinates in the array: Σ x·q = cell·J·Σq + Σ x_local·q in cell column J
    local = np.arange(cell, dtype=np.float64)
    per_cell[0, ii, jj] = q.sum(axis=(1, 2))
    per_cell[1, ii, jj] = (q * q).sum(axis=(1, 2))
    per_cell[2, ii, jj] = q.sum(axis=1) @ local
    per_cell[2, ii, jj] += cell * jj.astype(np.int64) * per_cell[0, ii, jj]
    per_cell[3, ii, jj] = q.sum(axis=2) @ local
    per_cell[3, ii, jj] += cell * ii.astype(np.int64) * per_cell[0, ii, jj]
    wi, wj = np.nonzero(wanted)
    view = np.lib.stride_tricks.sliding_window_view(per_cell, (cells, cells), axis=(1, 2))
    sums = np.empty((4, wi.size), np.int64)
    for a in range(0, wi.size, 4096):  # in batches: each gathers cells² cells per window
        b = slice(a, a + 4096)
        sums[:, b] = view[:, wi[b], wj[b]].sum(axis=(-2, -1))
    s, s2, sx, sy = sums
    # 2 Σ (x − x0) q with x0 = J·cell + (side − 1) / 2 the window's centre: exact integers
    sx2 = 2 * sx - (2 * cell * wj.astype(np.int64) + side - 1) * s
    sy2 = 2 * sy - (2 * cell * wi.astype(np.int64) + side - 1) * s
    centred = n * s2 - s * s  # n Σ (q − mean)²
    sxx = side * side * (side * side - 1) / 12.0  # Σ (x − x0)² over a window
    ssr = centred / n - (sx2.astype(np.float64) ** 2 + sy2.astype(np.float64) ** 2) / (4 * sxx)
    return np.asarray(np.maximum(ssr, 0.0))


def _whole_cells(a: np.ndarray, cell: int, fill: Any) -> np.ndarray:
    """``a`` padded at its end with ``fill`` to whole cells."""
    rows, cols = a.shape
    pad = ((0, -rows % cell), (0, -cols % cell))
    return a if pad == ((0, 0), (0, 0)) else np.pad(a, pad, constant_values=fill)


def plane_fit_residual(dsm: np.ndarray, cell: int, cells: int) -> np.ndarray:
    """RMS residual (metres) of the least-squares plane z = a + b·x + c·y fitted to every
    window of ``cells`` x ``cells`` coarse cells of ``cell`` pixels, heights quantised to
    centimetres.

    Exact with integer moments: a chunk cut on the cell grid gives the same value for the
    same window as the whole array. A roof facet gives about the DSM noise; a canopy's clumps
    and gaps give tens of centimetres.

    Parameters
    ----------
    dsm : ndarray of float, shape (rows, cols)
        Heights in metres, NaN for nodata.
    cell, cells : int
        Cell side in pixels and window side in cells (>= 2).

    Returns
    -------
    ndarray of float64, shape (ceil(rows / cell) − cells + 1, ceil(cols / cell) − cells + 1)
        Indexed by the window's first cell; NaN where the window holds a NaN or reaches
        outside the array.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[0:16, 0:16]
    >>> tilted = (0.3 * x - 0.1 * y + 50).astype(np.float32)  # a pitched roof: a plane
    >>> float(plane_fit_residual(tilted, 4, 2).max()) < 0.005
    True
    """
    if cells < 2 or cell < 1:
        raise ValueError(f"cell = {cell}, cells = {cells}; use cell >= 1 and cells >= 2")
    dsm = _whole_cells(dsm, cell, np.nan)
    ok = _window_ok(dsm, None, cell, cells)
    out = np.full(ok.shape, np.nan)
    if ok.any():
        n = (cells * cell) ** 2
        out[ok] = np.sqrt(_window_ssr(dsm, cell, cells, ok) / (n - 3)) / 100.0
    return out


def on_planar_surface(
    dsm: np.ndarray,
    where: np.ndarray,
    centres: np.ndarray,
    cell: int,
    cells: int,
    reach: int,
    max_residual_m: float,
) -> np.ndarray:
    """Pixels of ``where`` in or within ``reach`` pixels of a planar window.

    The windows are squares of ``cells`` x ``cells`` coarse cells at every cell of the grid
    (:func:`plane_fit_residual`). A window is planar when its residual is at most
    ``max_residual_m`` and all its pixels are ``centres`` (a height change in the same
    direction: a lawn beside a tree is planar but did not change). Windows that straddle a
    wall are not planar, so a roof's planar windows stop short of its walls by the band of DSM
    artefacts and the cell grid's step; ``reach`` covers the step. Computed only on the
    bounding box of ``where`` (plus the support, ``(cells + 1) * cell + reach`` pixels, cut on
    the cell grid), and only in windows entirely on ``centres``, so it costs little where no
    vegetation colour changed height or where the changes are a canopy's rings and gaps.

    Parameters
    ----------
    dsm : ndarray of float32, shape (rows, cols)
        The deciding epoch's heights (metres, NaN for nodata).
    where, centres : ndarray of bool, shape (rows, cols)
    cell, cells : int
        Cell side in pixels, window side in cells.
    reach : int
        Pixels.
    max_residual_m : float

    Returns
    -------
    ndarray of bool, shape (rows, cols); False outside ``where``.
    """
    out = np.zeros(where.shape, bool)
    rows = np.flatnonzero(where.any(axis=1))
    if rows.size == 0 or cells < 2:
        return out
    cols = np.flatnonzero(where.any(axis=0))
    m = (cells + 1) * cell + reach
    r0, c0 = max(0, rows[0] - m) // cell * cell, max(0, cols[0] - m) // cell * cell
    win = (
        slice(r0, min(where.shape[0], rows[-1] + m + 1)),
        slice(c0, min(where.shape[1], cols[-1] + m + 1)),
    )
    dsm_w = _whole_cells(dsm[win], cell, np.nan)
    wanted = _window_ok(dsm_w, _whole_cells(centres[win], cell, False), cell, cells)
    # only windows whose pixels and reach meet a pixel of ``where``
    rc = -(-reach // cell)
    where_cells = _cell_counts(_whole_cells(where[win], cell, False), cell) > 0
    near = _anchored_reduce(np.pad(where_cells.view(np.uint8), rc), cells + 2 * rc, np.bitwise_or)
    wanted &= near.astype(bool)
    if not wanted.any():
        return out
    limit_cm2 = (max_residual_m * 100.0) ** 2 * ((cells * cell) ** 2 - 3)
    planar = np.zeros(wanted.shape, bool)
    planar[wanted] = _window_ssr(dsm_w, cell, cells, wanted) <= limit_cm2
    covered = _cells_of_windows(planar, cells).astype(bool)  # (cells of the crop)
    shape = (win[0].stop - win[0].start, win[1].stop - win[1].start)
    roof = np.ascontiguousarray(upsample(covered, cell, shape))
    out[win] = _square(roof, reach, "max") & where[win]
    return out


def classify_height_change(
    before_rgb: np.ndarray,
    after_rgb: np.ndarray,
    valid: np.ndarray,
    before_dsm: np.ndarray,
    after_dsm: np.ndarray,
    before_ground: np.ndarray,
    params: DetectParams,
    scale: PixelScale,
    before_nir: np.ndarray | None = None,
    after_nir: np.ndarray | None = None,
) -> ChangeLayers:
    """Classify every pixel from the height change of two aligned DSMs.

    A height change is vegetation (suppressed) where the deciding epoch — the after one for
    a gain, the before one for a loss — has the colour of vegetation (:func:`vegetation_mask`,
    NDVI when that epoch has a near-infrared band) and its surface is not planar
    (:func:`on_planar_surface`; not with ``planar_residual_m = 0``).

    Parameters
    ----------
    before_rgb, after_rgb : ndarray of uint8, shape (3, rows, cols)
    valid : ndarray of bool, shape (rows, cols)
        Both orthophotos valid.
    before_dsm, after_dsm : ndarray of float32, shape (rows, cols)
        Metres, NaN for nodata, vertically aligned.
    before_ground : ndarray of float32, shape (rows, cols)
        Ground height under the before epoch (:func:`ground_surface`, upsampled).
    before_nir, after_nir : ndarray of uint8, shape (rows, cols), optional
        Near-infrared bands.

    Returns
    -------
    ChangeLayers

    Examples
    --------
    >>> import numpy as np
    >>> rgb = np.full((3, 40, 40), 120, np.uint8)
    >>> before = np.zeros((40, 40), np.float32)
    >>> after = before.copy(); after[10:30, 10:30] = 6.0
    >>> scale = pixel_scale(DetectParams(), 0.1)
    >>> layers = classify_height_change(
    ...     rgb, rgb, np.ones((40, 40), bool), before, after, before, DetectParams(), scale)
    >>> int((layers.codes == CODE_NEW).sum())
    400
    """
    ok = valid & np.isfinite(before_dsm) & np.isfinite(after_dsm)
    dh = np.where(ok, after_dsm - before_dsm, np.float32(np.nan)).astype(np.float32, copy=False)
    with np.errstate(invalid="ignore"):
        up = dh >= params.min_height_m
        down = dh <= -params.min_height_m
    # Vegetation only where the height changed (growing trees, felled trees): the colour of
    # the deciding epoch, then its DSM, which keeps planar roofs of any colour.
    veg_after = _vegetation_at(after_rgb, up, params, after_nir)
    veg_before = _vegetation_at(before_rgb, down, params, before_nir)
    # A roof keeps the pixels of its planar windows (and a cell around them), whatever its
    # colour; the band along its walls, where windows are not planar, is left to the outline
    # growth below only where the colour is not vegetation (as before), so a lawn beside a
    # wall is not taken for roof.
    planar_colour = np.zeros(dh.shape, bool)
    if scale.planar_cells > 0:
        roof = [
            on_planar_surface(
                dsm,
                veg,
                centres,
                scale.planar_cell,
                scale.planar_cells,
                scale.roof_reach_px,
                params.planar_residual_m,
            )
            for veg, dsm, centres in ((veg_after, after_dsm, up), (veg_before, before_dsm, down))
        ]
        veg_after &= ~roof[0]
        veg_before &= ~roof[1]
        planar_colour = roof[0] | roof[1]
    up_kept = up & ~veg_after
    down_kept = down & ~veg_before
    # Both masks go through the morphology together, as two bit planes of one uint8 array.
    opened = _open(up_kept.view(np.uint8) | (down_kept.view(np.uint8) << 1), scale.open_px)
    up_open = (opened & 1).astype(bool)
    down_open = (opened & 2).astype(bool) & ~up_open
    # Outlines at half the local step height: DSM edges are ramps, and a fixed threshold
    # would put the outline of a tall building outside its walls and of a low one inside.
    # The closing after the growth fills the notches that edge artefacts leave.
    finite = np.where(np.isfinite(dh), dh, np.float32(-np.inf))
    up_open |= _grow_half_height(up_open, finite, scale.grow_px, ok & ~veg_after & ~down_open)
    neg = np.where(np.isfinite(dh), -dh, np.float32(-np.inf))
    down_open |= _grow_half_height(down_open, neg, scale.grow_px, ok & ~veg_before) & ~up_open
    closed = _close(up_open.view(np.uint8) | (down_open.view(np.uint8) << 1), scale.close_px)
    up_clean = (closed & 1).astype(bool) & ok
    down_clean = (closed & 2).astype(bool) & ok & ~up_clean
    codes = np.zeros(dh.shape, np.uint8)
    codes[(up & veg_after) | (down & veg_before)] = CODE_VEGETATION
    codes[(up_kept | down_kept) & ~(up_clean | down_clean)] = CODE_ARTEFACT
    # New or raised: the before height above ground, needed only at the height gains.
    before_ndsm = before_dsm[up_clean] - before_ground[up_clean]
    with np.errstate(invalid="ignore"):
        was_structure = before_ndsm >= params.min_height_m
    codes[up_clean] = np.where(was_structure, CODE_RAISED, CODE_NEW).astype(np.uint8)
    codes[down_clean] = CODE_REMOVED
    codes[~ok] = CODE_NODATA
    both = up_clean.view(np.uint8) | (down_clean.view(np.uint8) << 1)
    interior = _square(both, scale.margin_px, "min") > 0
    height_after = (after_dsm - before_ground).astype(np.float32, copy=False)
    return ChangeLayers(
        codes=codes,
        dh=dh,
        height_after=height_after,
        interior=interior,
        planar_vegetation_colour=planar_colour & (up_clean | down_clean),
    )


# The RGB-only method moved to change_detection.spectral (it imports this module's exact
# neighbourhood operations); its public names stay importable from here.
from change_detection.spectral import (  # noqa: E402
    block_sums,
    classify_spectral_change,
    local_means,
    means_of_box_sums,
)
