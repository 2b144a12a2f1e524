"""The ground under a first survey: a digital terrain model (DTM) derived from a DSM.

(One subject, about 570 lines: the filter, its whole-array and chunked forms, and the
measurements that chose it, which this docstring keeps beside the code.)

Structures are what stands on the ground (``DSM − DTM ≥ min_height_m``). When no DTM comes
with the survey (OpenDroneMap writes one only with ``--dtm``), :func:`derive_dtm` derives it
from the DSM with a *progressive morphological filter* on a coarse grid:

1. The DSM is reduced to cells of about ``DetectParams.ground_cell_m`` (0.4 m): the lower
   quartile of each cell (robust to noise and edge spikes) and its median.
2. Grey-scale openings of the lower-quartile grid with square windows that grow from one cell
   to ``DetectParams.ground_window_m`` (40 m) flag as *objects* the cells that one step of the
   window lowers by more than ``STEP_M`` (0.2 m) plus what terrain of curvature up to
   ``TERRAIN_CURVATURE`` (0.02 /m) loses in that step. A building or a tree vanishes in the
   one step whose window no longer fits inside it (its full height at once); a hill is worn
   down a little at every step, so it stays ground. The radii grow so that the terrain
   allowance per step stays under ``CURVATURE_ALLOWANCE_M`` (0.5 m): 23 openings from 0.4 m
   to 20 m; every step's threshold is at most 0.7 m, far below a storey.
3. The flagged cells, grown by one cell (the ramps that DSM edges leave), are filled by
   harmonic (Laplace) interpolation from the ground cells around them, which is exact on
   planar slopes; the surface is smoothed over ``SMOOTH_M`` (1 m) and raised by the DSM
   noise's median − lower-quartile gap measured on the ground cells (so it sits on the ground,
   not at the noise's lower quartile).
4. The coarse ground is upsampled bilinearly, strip by strip (or block by block with
   :func:`derive_dtm_lazy`), so a DSM needs its own memory, the output's and a few arrays of
   the coarse grid: a 20480 x 20480 px DSM at 5 cm (2560 x 2560 cells) took 49 s and a peak
   RSS of 3768 MiB against the 3200 MiB of its input and output.

The grey-scale opening that :func:`change_detection.detect.detect_changes` uses for its nDSM
(``method="opening"``: a single 40 m opening of the lower-quartile grid, nearest-neighbour
upsampling) is kept as an option and is the baseline of ``benchmarks/bench_ground.py``.

Why this filter and not CNES's Bulldozer (``bulldozer-dtm`` 1.3.1, the manylinux wheel
installs cleanly from PyPI) or the plain opening — measured by ``benchmarks/bench_ground.py``
(and by hand with Bulldozer in a separate virtualenv), on the synthetic site's after epoch
(160 m, seeds 0-3, at 5 and 10 cm, three of them draped over a hillier terrain: an 8 % slope
and a 6 m hill; errors against the true terrain, detection = ``DSM − DTM ≥ 2.5 m`` against
the buildings' footprints, trees excluded) and on the real DSMs of ``../shared/realdata``:

==========================  ===============  ===============  ===============
8 synthetic scenes          opening (40 m)   Bulldozer 16 m*  this filter
==========================  ===============  ===============  ===============
open ground RMSE            0.28 - 0.73 m    0.16 - 0.63 m    0.005 - 0.009 m
open ground P95 abs. error  0.60 - 1.51 m    0.32 - 1.66 m    0.011 - 0.016 m
under buildings RMSE        0.36 - 0.51 m    0.18 - 0.36 m    0.035 - 0.062 m
under buildings P95         0.73 - 1.28 m    0.35 - 0.87 m    0.07 - 0.14 m
structure pixels F1         0.964 - 0.970    0.960 - 0.970    0.966 - 0.971
time at 3200 x 3200 px      0.4 s            6 - 13 s         0.8 s
==========================  ===============  ===============  ===============

\\* with ``dsm_z_accuracy=0.3``. With its defaults Bulldozer returned an all-nodata DTM on
the 5 cm scenes of seed 0 (flat and hilly): its "regular area" test (2 x GSD = 0.1 m)
rejects every pixel of a DSM with 9 cm noise. It stops with a ``ZeroDivisionError`` on the
1 cm real DSM (957 x 640 px). A larger ``max_object_size`` (24 m, needed for buildings wider
than 16 m) cut its F1 on the hilly scenes to 0.68 - 0.82. The opening's error is terrain it
cuts off: a 40 m window shaves 1-2 m off every hilltop. Pixel precision (0.93 - 0.95 for all
three) is limited by the DSM's smeared building edges, not by the ground.

On the real DSMs (a crop field at 0.27 m on four dates, a 1 cm DSM of a small plot; no
structures) no method flags any pixel at 2.5 m. The field's canopy (up to 0.9 m on the later
dates) is where they differ: the opening and Bulldozer put the ground under the crops (39 %
and 41 % of the pixels 0.5 m above it on one date), this filter keeps a dense, smooth canopy
as ground (no pixel 0.5 m above it) and is rougher there: RMS Laplacian over 1 m of
0.003 - 0.08 /m against 0.004 - 0.006 /m for the opening and 0.0002 - 0.0004 /m for
Bulldozer. For structures of 2.5 m neither matters.

Decision: this filter is the default; no new dependency.

(The module is over 500 lines because of these measurements and the numpydoc of its public
functions; the filter itself is one subject, kept in one place.)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from change_detection.change import ground_surface, pixel_scale
from change_detection.errors import ChangeDetectionError
from change_detection.params import DetectParams

__all__ = [
    "CURVATURE_ALLOWANCE_M",
    "SMOOTH_M",
    "STEP_M",
    "TERRAIN_CURVATURE",
    "GroundModel",
    "cell_quartiles",
    "derive_dtm",
    "derive_dtm_lazy",
    "model_ground",
    "opening_radii",
]

log = logging.getLogger(__name__)

#: A cell is an object when one step of the growing opening lowers it by more than this
#: (metres) beyond the terrain allowance.
STEP_M = 0.2
#: Largest terrain curvature (1/m) kept as ground: a step of the opening from radius r0 to r1
#: may lower terrain by up to ``TERRAIN_CURVATURE * (r1² − r0²)``.
TERRAIN_CURVATURE = 0.02
#: Largest terrain allowance of one step (metres); it sets how fast the radii grow.
CURVATURE_ALLOWANCE_M = 0.5
#: Gaussian smoothing of the coarse ground (sigma, metres).
SMOOTH_M = 1.0

Method = Literal["progressive", "opening"]
_METHODS = ("progressive", "opening")
_FILL_SWEEPS = 40  # Jacobi sweeps per pyramid level of the harmonic fill


@dataclass(frozen=True)
class GroundModel:
    """The ground on the coarse grid, from which the DTM of any window is interpolated.

    Attributes
    ----------
    heights : ndarray of float32, shape (ceil(rows / cell), ceil(cols / cell))
        Ground height of each cell (metres), defined everywhere (filled).
    known : ndarray of bool, same shape
        Cells holding at least one DSM value; the DTM is NaN over the others.
    cell : int
        Cell side in DSM pixels.
    shape : (int, int)
        Shape of the DSM.
    method : str
        ``"progressive"`` or ``"opening"``.
    upsampling : str
        ``"bilinear"`` or ``"nearest"``.
    ground_fraction : float
        Fraction of the known cells taken as ground (the rest was filled).
    noise_offset_m : float
        Median − lower quartile of the DSM on the ground cells, added to the ground.
    """

    heights: np.ndarray
    known: np.ndarray
    cell: int
    shape: tuple[int, int]
    method: str
    upsampling: str
    ground_fraction: float
    noise_offset_m: float

    def window(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """The DTM over DSM rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]``.

        Returns
        -------
        ndarray of float32, shape (rows[1] − rows[0], cols[1] − cols[0]); metres, NaN where
        the DSM's cell holds no data. Any tiling of the DSM gives the same values.
        """
        r = _axis_weights(rows, self.cell, self.heights.shape[0], self.upsampling)
        c = _axis_weights(cols, self.cell, self.heights.shape[1], self.upsampling)
        # separable: along the columns on the coarse rows needed, then along the rows
        first = int(r.lo[0]) if r.lo.size else 0
        needed = self.heights[first : int(r.hi[-1]) + 1 if r.hi.size else first]
        across = needed[:, c.lo] * c.w_lo + needed[:, c.hi] * c.w_hi
        out = across[r.lo - first] * r.w_lo[:, None] + across[r.hi - first] * r.w_hi[:, None]
        known = self.known[r.own]
        if not known.all():
            out[~known[:, c.own]] = np.nan
        return out.astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for provenance records)."""
        return {
            "method": self.method,
            "upsampling": self.upsampling,
            "cell_px": self.cell,
            "coarse_shape": list(self.heights.shape),
            "ground_fraction": round(self.ground_fraction, 4),
            "noise_offset_m": round(self.noise_offset_m, 4),
        }


@dataclass(frozen=True)
class _Weights:
    lo: np.ndarray
    hi: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray
    own: np.ndarray


def _axis_weights(span: tuple[int, int], cell: int, n: int, upsampling: str) -> _Weights:
    """Interpolation indices and weights of the DSM pixels ``span`` along one axis."""
    i = np.arange(span[0], span[1])
    own = i // cell
    if upsampling == "nearest" or n == 1:
        ones = np.ones(i.size, np.float32)
        return _Weights(own, own, ones, np.zeros(i.size, np.float32), own)
    # pixel centres in coarse-cell coordinates (cell centres at integers)
    x = np.clip((i + 0.5) / cell - 0.5, 0.0, n - 1.0)
    lo = np.minimum(np.floor(x).astype(np.intp), n - 2)
    w_hi = (x - lo).astype(np.float32)
    return _Weights(lo, lo + 1, np.float32(1.0) - w_hi, w_hi, own)


def cell_quartiles(dsm: np.ndarray, cell: int) -> np.ndarray:
    """Lower quartile and median of each ``cell`` x ``cell`` block of a DSM (NaN ignored).

    The lower quartile is the same order statistic as
    :func:`change_detection.change.block_minimum` (element ``n // 4`` of the ``n`` finite
    values, sorted); the median is element ``n // 2``.

    Parameters
    ----------
    dsm : ndarray of float, shape (rows, cols)
        Metres, NaN for nodata.
    cell : int

    Returns
    -------
    ndarray of float32, shape (2, ceil(rows / cell), ceil(cols / cell))
        Lower quartiles, then medians; NaN where a block has no value.
    """
    rows, cols = dsm.shape
    hr, hc = -(-rows // cell), -(-cols // cell)
    padded = np.full((hr * cell, hc * cell), np.inf, np.float32)
    padded[:rows, :cols] = dsm
    padded[~np.isfinite(padded)] = np.inf  # NaN (and stray infinities) are no data
    groups = padded.reshape(hr, cell, hc, cell).transpose(0, 2, 1, 3).reshape(-1, cell * cell)
    del padded
    groups.sort(axis=-1)  # no data (+inf) last; a sort beats a two-element partition here
    n_finite = np.isfinite(groups).sum(axis=-1)
    out = np.empty((2, groups.shape[0]), np.float32)
    size = groups.shape[1]
    if (n_finite == size).all():
        out[0], out[1] = groups[:, size // 4], groups[:, size // 2]
    else:
        top = size - 1
        for row, k in ((0, n_finite // 4), (1, n_finite // 2)):
            out[row] = np.take_along_axis(groups, k.clip(0, top)[:, None], axis=-1)[:, 0]
        out[:, n_finite == 0] = np.nan
    return out.reshape(2, hr, hc)


def opening_radii(cell_m: float, max_m: float) -> list[float]:
    """Half-widths (metres) of the growing openings of the progressive filter.

    From one cell to ``max_m``, each at least one cell more than the last and growing so that
    the terrain allowance of a step, ``TERRAIN_CURVATURE * (r1² − r0²)``, stays within
    ``CURVATURE_ALLOWANCE_M``.

    >>> [round(r, 1) for r in opening_radii(0.4, 6.0)]
    [0.4, 4.8, 6.0]
    """
    area = CURVATURE_ALLOWANCE_M / TERRAIN_CURVATURE
    radii = [cell_m]
    while radii[-1] < max_m - 1e-9:
        r = radii[-1]
        grown = math.floor(math.sqrt(r * r + area) / cell_m + 1e-9) * cell_m
        radii.append(min(max(r + cell_m, grown), max_m))
    return radii


def _opening(z: np.ndarray, size: int) -> np.ndarray:
    """Grey-scale opening by a ``size`` square of ``z`` (+inf = no data, ignored)."""
    eroded = ndimage.minimum_filter(z, size=size, mode="nearest")
    eroded[np.isinf(eroded)] = -np.inf
    opened = ndimage.maximum_filter(eroded, size=size, mode="nearest")
    opened[np.isinf(opened)] = np.inf
    return opened


def _flag_objects(lower: np.ndarray, cell_m: float, max_m: float) -> np.ndarray:
    """Cells lowered by more than the allowance by one step of the growing opening."""
    known = np.isfinite(lower)
    z = np.where(known, lower, np.float32(np.inf)).astype(np.float32)
    flagged = np.zeros(z.shape, bool)
    # windows wider than the grid change nothing more
    max_m = min(max_m, max(z.shape) * cell_m)
    previous, r_previous = z, 0.0
    for r in opening_radii(cell_m, max_m):
        opened = _opening(z, 2 * round(r / cell_m) + 1)
        allowance = STEP_M + TERRAIN_CURVATURE * (r * r - r_previous * r_previous)
        with np.errstate(invalid="ignore"):
            flagged |= known & np.isfinite(opened) & (previous - opened > allowance)
        previous, r_previous = opened, r
    return flagged


def _fill_harmonic(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the unknown cells by harmonic interpolation of the known ones (float64).

    A pyramid of weighted 2 x 2 means carries the known values to every cell at the coarsest
    level; from there down, each level starts from the level above and relaxes its unknown
    cells with Jacobi sweeps of the 4-neighbour mean (a cascadic multigrid for Laplace's
    equation): exact on planes, smooth over building-sized holes, O(cells).
    """
    levels = [(np.where(known, values, 0.0).astype(np.float64), known.astype(np.float64))]
    while min(levels[-1][0].shape) > 2:
        v, w = levels[-1]
        pr, pc = v.shape[0] % 2, v.shape[1] % 2
        vw = np.pad(v * w, ((0, pr), (0, pc)))
        wp = np.pad(w, ((0, pr), (0, pc)))
        r2, c2 = vw.shape[0] // 2, vw.shape[1] // 2
        vs = vw.reshape(r2, 2, c2, 2).sum(axis=(1, 3))
        ws = wp.reshape(r2, 2, c2, 2).sum(axis=(1, 3))
        mean = np.divide(vs, ws, out=np.zeros_like(vs), where=ws > 0)
        levels.append((mean, (ws > 0).astype(np.float64)))
    v, w = levels[-1]
    solution = np.where(w > 0, v, v[w > 0].mean())
    for v, w in reversed(levels[:-1]):
        have = w > 0
        up = np.repeat(np.repeat(solution, 2, axis=0), 2, axis=1)[: v.shape[0], : v.shape[1]]
        cur = np.where(have, v, up)
        if not have.all():
            for _ in range(_FILL_SWEEPS):
                p = np.pad(cur, 1, mode="edge")
                mean4 = 0.25 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
                cur = np.where(have, v, mean4)
        solution = cur
    return solution


def _progressive_ground(
    quartiles: np.ndarray, cell_m: float, max_m: float
) -> tuple[np.ndarray, float, float]:
    """Filled, smoothed ground of the coarse grid, its ground fraction and noise offset."""
    lower, median = quartiles[0], quartiles[1]
    known = np.isfinite(lower)
    flagged = _flag_objects(lower, cell_m, max_m)
    flagged = ndimage.binary_dilation(flagged) & known
    ground = known & ~flagged
    n_known = int(known.sum())
    if not ground.any():
        log.warning(
            "no ground found in the DSM (all %d cells are raised structures or vegetation); "
            "the ground is taken as the %g m grey-scale opening",
            n_known,
            2 * max_m,
        )
        opened = _opening(np.where(known, lower, np.float32(np.inf)), 2 * round(max_m / cell_m) + 1)
        ground = known & np.isfinite(opened)
        lower = np.where(ground, opened, np.nan).astype(np.float32)
        median = lower
    offset = float(np.median((median - lower)[ground]))
    filled = _fill_harmonic(lower.astype(np.float64) + offset, ground)
    smooth = ndimage.gaussian_filter(filled, SMOOTH_M / cell_m, mode="nearest")
    return smooth.astype(np.float32), float(ground.sum()) / max(n_known, 1), offset


def _ground_from_quartiles(
    quartiles: np.ndarray,
    shape: tuple[int, int],
    gsd_m: float,
    params: DetectParams,
    method: str,
) -> GroundModel:
    scale = pixel_scale(params, gsd_m)
    cell_m = scale.cell * gsd_m
    lower = quartiles[0]
    known = np.isfinite(lower)
    extent = (shape[0] * gsd_m, shape[1] * gsd_m)
    if known.any() and max(extent) < params.ground_window_m:
        log.warning(
            "the DSM is %.1f x %.1f m, smaller than the %g m ground window: a structure "
            "covering most of it cannot be told from the ground",
            extent[1],
            extent[0],
            params.ground_window_m,
        )
    if not known.any():
        heights = np.full(lower.shape, np.nan, np.float32)
        return GroundModel(heights, known, scale.cell, shape, method, "nearest", 0.0, 0.0)
    if method == "opening":
        heights = ground_surface(lower, scale.ground_cells)
        return GroundModel(heights, known, scale.cell, shape, method, "nearest", 1.0, 0.0)
    max_m = (scale.ground_cells // 2) * cell_m
    heights, fraction, offset = _progressive_ground(quartiles, cell_m, max_m)
    log.info(
        "ground from the DSM (progressive filter, %g m cells, windows to %g m): %.0f %% of "
        "the cells are ground, noise offset %.3f m",
        cell_m,
        2 * max_m,
        100 * fraction,
        offset,
    )
    return GroundModel(heights, known, scale.cell, shape, method, "bilinear", fraction, offset)


def _check(gsd_m: float, method: str, ndim: int) -> None:
    if ndim != 2:
        raise ChangeDetectionError(f"the DSM has {ndim} dimensions; pass one band (rows, cols)")
    if not (math.isfinite(gsd_m) and gsd_m > 0):
        raise ChangeDetectionError(f"gsd_m = {gsd_m}; pass the DSM's pixel size in metres (> 0)")
    if method not in _METHODS:
        raise ChangeDetectionError(f"method = {method!r}; use one of {', '.join(_METHODS)}")


def model_ground(
    dsm: np.ndarray,
    gsd_m: float,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    *,
    method: Method = "progressive",
    strip_px: int = 2048,
) -> GroundModel:
    """The coarse ground under a DSM (the first half of :func:`derive_dtm`).

    Parameters
    ----------
    dsm : ndarray of float, shape (rows, cols)
        Heights in metres, NaN for nodata (a numpy array or memory map; read in strips).
    gsd_m : float
        Pixel size in metres (square pixels).
    params : DetectParams
        ``ground_cell_m`` (coarse cell) and ``ground_window_m`` (widest structure) are used.
    method : {"progressive", "opening"}
        The progressive morphological filter (default) or the single grey-scale opening of
        :mod:`change_detection.detect`.
    strip_px : int
        Rows of the DSM reduced at a time (rounded to whole cells).

    Returns
    -------
    GroundModel
    """
    _check(gsd_m, method, np.ndim(dsm))
    cell = pixel_scale(params, gsd_m).cell
    rows, cols = dsm.shape
    step = max(cell, (strip_px // cell) * cell)
    parts = [
        cell_quartiles(np.asarray(dsm[r : r + step], dtype=np.float32), cell)
        for r in range(0, rows, step)
    ]
    quartiles = np.concatenate(parts, axis=1)
    return _ground_from_quartiles(quartiles, (rows, cols), gsd_m, params, method)


def derive_dtm(
    dsm: np.ndarray,
    gsd_m: float,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    *,
    method: Method = "progressive",
) -> np.ndarray:
    """Ground heights (float32 metres, same shape as dsm, NaN where unknown) under a DSM.

    Parameters
    ----------
    dsm : ndarray of float, shape (rows, cols)
        Heights in metres, NaN for nodata, on a north-up grid of square pixels.
    gsd_m : float
        Pixel size in metres.
    params : DetectParams
        ``ground_cell_m`` and ``ground_window_m`` (structures up to this width are lifted
        off the ground).
    method : {"progressive", "opening"}
        See the module docstring.

    Returns
    -------
    ndarray of float32, shape (rows, cols)
        NaN only where the DSM's coarse cell (``ground_cell_m``) holds no value.

    Examples
    --------
    A 6 m tall, 12 x 10 m building on a 5 % slope; the ground under it is the slope:

    >>> import numpy as np
    >>> rows, cols = np.mgrid[0:600, 0:600]
    >>> dsm = (0.05 * 0.1 * cols).astype(np.float32)
    >>> dsm[250:350, 240:360] += 6.0
    >>> dtm = derive_dtm(dsm, 0.1)
    >>> round(float(np.abs(dtm - 0.005 * cols).max()), 2) <= 0.05
    True
    >>> int(((dsm - dtm) >= 2.5).sum())
    12000
    """
    model = model_ground(dsm, gsd_m, params, method=method)
    rows, cols = model.shape
    out = np.empty((rows, cols), np.float32)
    step = max(model.cell, (2048 // model.cell) * model.cell)
    for r in range(0, rows, step):
        out[r : r + step] = model.window((r, min(rows, r + step)), (0, cols))
    return out


def derive_dtm_lazy(
    dsm: Any,
    gsd_m: float,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    *,
    method: Method = "progressive",
    scheduler: Any = None,
) -> Any:
    """:func:`derive_dtm` of a dask array: the coarse ground now, the DTM lazily.

    The DSM is read once, chunk by chunk, to reduce it to the coarse grid (computed here,
    with ``scheduler``); the returned array interpolates each of its chunks from that grid
    when computed, so ``dsm - derive_dtm_lazy(dsm, ...)`` never holds the whole raster.

    Parameters
    ----------
    dsm : dask.array.Array of float, shape (rows, cols)
    gsd_m, params, method
        As :func:`derive_dtm`.
    scheduler : str or dask.distributed.Client, optional

    Returns
    -------
    dask.array.Array of float32, shape (rows, cols), chunked like ``dsm``
        Equal, value for value, to ``derive_dtm(dsm.compute(), ...)``.
    """
    import dask.array as da

    _check(gsd_m, method, dsm.ndim)
    cell = pixel_scale(params, gsd_m).cell
    aligned = dsm.rechunk(tuple(_cell_chunks(c, cell) for c in dsm.chunks))
    crow = tuple(-(-s // cell) for s in aligned.chunks[0])
    ccol = tuple(-(-s // cell) for s in aligned.chunks[1])
    reduced = aligned.map_blocks(
        _quartile_block,
        cell,
        chunks=((2,), crow, ccol),
        new_axis=0,
        dtype=np.float32,
        meta=np.zeros((0, 0, 0), np.float32),
    )
    quartiles = np.asarray(reduced.compute(scheduler=scheduler))
    model = _ground_from_quartiles(quartiles, tuple(dsm.shape), gsd_m, params, method)
    return da.map_blocks(
        _dtm_block,
        model.heights,
        model.known,
        dtype=np.float32,
        chunks=dsm.chunks,
        meta=np.zeros((0, 0), np.float32),
        cell=model.cell,
        shape=model.shape,
        method=model.method,
        upsampling=model.upsampling,
    )


def _cell_chunks(chunks: tuple[int, ...], cell: int) -> tuple[int, ...]:
    """Chunk sizes along one axis that start every chunk on a cell boundary."""
    if all(c % cell == 0 for c in chunks[:-1]):
        return chunks
    total = sum(chunks)
    size = max(cell, (max(chunks) // cell) * cell)
    sizes = [size] * (total // size)
    if total % size:
        sizes.append(total % size)
    return tuple(sizes)


def _quartile_block(block: np.ndarray, cell: int) -> np.ndarray:
    return cell_quartiles(np.asarray(block, dtype=np.float32), cell)


def _dtm_block(
    heights: np.ndarray,
    known: np.ndarray,
    *,
    cell: int,
    shape: tuple[int, int],
    method: str,
    upsampling: str,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    assert block_info is not None
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    model = GroundModel(heights, known, cell, shape, method, upsampling, 0.0, 0.0)
    return model.window((r0, r1), (c0, c1))
