"""Sub-pixel co-registration of a new survey epoch against a reference epoch.

(A long module, one algorithm with its representations, phase correlation, windows, models and
resampling; a later issue splits it into a package along the section rulers below.)

The algorithm works on two rasters that already share one pixel grid (the xarray layer in
:mod:`change_detection.grids` brings them there) and estimates the residual misregistration:

1. **Illumination-robust representation.** Each image (grey, or RGB averaged to grey) is
   smoothed with a Gaussian (``sigma_px``), its gradient magnitude (central differences) is
   divided by its own local mean (box of half-width ``normalise_px``) plus a floor, so a
   change of brightness, contrast or local shading leaves it nearly unchanged; DSM heights
   are matched the same way (height steps are the structure two DSMs share). Line work (a
   permit map) is matched on its ink instead (see "Line work" below). Invalid pixels are
   weighted out smoothly so mask borders create no structure.
2. **Coarse global shift.** Both images are block-averaged to at most ``coarse_px`` pixels a
   side (read strip by strip, so memory stays bounded) and phase-correlated as a whole. This
   finds shifts of up to half the raster and checks the overlap of the valid areas.
3. **Tie points.** Windows of ``window_px`` on a regular grid are phase-correlated at full
   resolution around the coarse shift, the target window being cut at the coarse offset. The
   integer peak of the normalised cross-power spectrum is refined by the matrix-multiply
   upsampled DFT of Guizar-Sicairos et al. (2008) in stages of 10x (to 1/``upsample`` px); we
   write our own batched version instead of calling ``skimage.registration.
   phase_cross_correlation`` per window because it refines hundreds of windows in one batched
   matrix product, restricts the search to the plausible range around the coarse shift, and
   gives the second-highest peak needed to detect repeating patterns. The normalised
   cross-power spectrum is weighted by a Gaussian low-pass (``spectral_sigma``) with the
   Nyquist terms removed: pure phase correlation on windows is pulled towards whole pixels by
   window leakage (measured bias 0.07 px at a 0.25 px shift, < 0.003 px with the weight).
   When a robust affine fit of this pass moves windows by more than a quarter of the search
   range from the coarse offset (rotation or scale on a large raster), the grid is measured
   again, each target window cut where that fit puts it. Lazy inputs are read through a
   row-band cache so each band of rows is decoded once; a lazy reference's windows, whose
   places do not depend on the shift, are cut out of the chunks the coarse pass decodes, so
   the tie-point passes decode only the target.
4. **Reliability.** A tie point is rejected when its windows are mostly nodata, featureless,
   its peak is weak (peak-to-noise below ``min_snr``), ambiguous (second peak over
   ``max_peak_ratio`` of the first: periodic texture), at the edge of the search range, locally
   inconsistent with its neighbours (after removing a robust affine trend, so smooth warps pass)
   or an outlier of the final model (RANSAC-style threshold ``ransac_threshold_px``).
5. **Model chosen by the data.** Translation, affine and a smooth local warp (affine plus a
   bilinear displacement field on a coarse control grid, fitted by ridge regression with a
   second-difference penalty whose weight is chosen by generalised cross-validation) are
   compared by the Bayesian information criterion (the warp counted with the trace of its hat
   matrix, per component) on the same tie points; ``params.model`` can force one.
6. **Confidence** in 0..1 from the number, spread, inlier fraction and residual of the tie
   points; failures give warnings and low confidence, or :class:`CoregistrationError` under
   ``strict``.

Line work
---------
A georeferenced permit map (outlines of buildings and road edges drawn as ink on plain paper,
rasterised or scanned, with text and hatching) shares with a photograph the places where
things begin and end, not their look. Matching the gradient magnitude of both (step 1) fails:
a stroke's gradient is a double ridge, one on each side of the stroke and zero on it, while a
photo's building edge gives one ridge on the edge; and a map has no texture, so its windows
far from lines hold nothing. Measured on a 512 px rendered town (tests' ``render_lines``:
outlines drawn just inside each footprint) against a photo of it: mapping error 0.68 px for a
shift, 0.71 px at 0.5 deg, 0.57 px at 1.005 scale, 0.93 px at -1 deg and 0.99 scale, at
confidence 0.10-0.19, 32-33 of 49 windows "weak". So, for an input that
:func:`detect_line_work` finds to be line work (or that ``CoregParams.reference_kind`` /
``target_kind`` declares so):

- it is matched on its **ink density** (:func:`ink_representation`: distance from the paper
  level over the ink contrast, blurred by ``sigma_px``), which peaks on the stroke's centre as
  the photo's gradient magnitude peaks on the edge; the other input keeps its representation;
- windows with less ink than a line across a third of the window are "featureless" and do not
  vote;
- the windows are tapered by a flat-topped Tukey window instead of a Hann window, which keeps
  the strokes of whole buildings near the window's edges: with outlines centred on the
  footprint, 47 of 49 windows within 0.3 px (spread 0.10 px) against 30 of 49 (0.18 px);
- after the first pass, the windows are measured once more on the target resampled (cubic)
  through a robust affine fit of that pass, so a rotation or scale no longer smears the broad
  peaks inside a window: at -1 deg and 0.99 scale, 0.23 -> 0.08 px;
- line work that repeats itself exactly (a regular estate drawn identically, a grid; an
  isolated autocorrelation peak of at least 0.75, see :func:`_self_repeat`) cannot tell a
  shift from one a whole repeat longer, which a photo's texture can: the result is capped at
  confidence 0.25 with a warning (an estate shifted by one repeat was reported 40 px off at
  confidence 0.90 before).

Measured after (same scenes): outlines centred on the footprints, antialiased or not, 1.5 or
2.5 px wide, with text clutter and hatching, dark on light or light on dark: 0.04-0.08 px at
confidence 0.84-0.92 for a shift, 1 deg, 0.99 scale, -0.3 deg with 1.003; outlines drawn just
inside the footprints: 0.14-0.22 px at confidence 0.47 (each stroke lies 0.75 px inside its
edge; that cancels only over whole buildings). Twelve towns with other suns, shadows of 4 to
10 px, other contrast and random shifts (up to 8 px), rotations (up to 1 deg) and scales (up
to 1 %): median 0.14 px, worst 0.23 px (a shadow's outer edge a few pixels from an outline
pulls the peak; the shortest shadows pull most). Wrong answers: maps of twelve other towns, a
blank sheet, a grid, text alone and random lines against a photo: confidence 0; photos of other
places against a map: 0. Photo pairs are matched exactly as before (bit-identical tie points).
Outlines drawn from the WHU-CD change labels (only the changed buildings, hand-digitised)
against their real after images: 0.05-1.0 px at confidence 0.08-0.22, i.e. reported as
unreliable.

Conventions
-----------
Pixel coordinates are array indices: ``x`` is the column, ``y`` the row, the centre of pixel
``[row, col]`` is ``(x=col, y=row)``.

The **shift** ``(shift_x_px, shift_y_px)`` is the displacement that maps the target onto the
reference, in reference pixels: a feature seen at target pixel ``(x, y)`` lies at
``(x + shift_x_px, y + shift_y_px)`` in the reference, and the aligned target is
``aligned[y, x] = target[y - shift_y_px, x - shift_x_px]``. It is the same convention as
``skimage.registration.phase_cross_correlation(reference, target)`` and
``scipy.ndimage.shift(target, (shift_y_px, shift_x_px)) ~ reference``. For affine and warp
models it is the displacement at the centre of the reference raster.

The **mapping** of a model is the pull map from a reference pixel ``p = (x, y)`` to the target
pixel ``q`` showing the same ground (what resampling needs): ``q = p - shift`` for a
translation, ``q = A p + b`` for an affine model (``A``, ``b`` in ``parameters["pull_matrix"]``
as a 2x3 matrix ``[A | b]``), ``q = A p + b + w(p)`` for the warp, ``w`` bilinear on the control
grid ``parameters["grid_x"], ["grid_y"]`` with values ``["grid_dx"], ["grid_dy"]``.

Tie point measurements ``dx, dy`` use the shift convention at the window centre ``(x, y)``.

Example
-------
>>> import numpy as np
>>> from scipy import ndimage
>>> rng = np.random.default_rng(0)
>>> scene = ndimage.gaussian_filter(rng.normal(size=(512, 512)), 2.0)
>>> target = ndimage.shift(scene, (-3.25, 1.5), order=3, mode="nearest")
>>> result = coregister(scene, target, params=CoregParams(model="translation"))
>>> round(result.shift_x_px, 1), round(result.shift_y_px, 1)
(-1.5, 3.2)
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import scipy.fft
import scipy.linalg
from scipy import ndimage

from change_detection.errors import CoregistrationError, InsufficientOverlapError

__all__ = [
    "TIEPOINT_DTYPE",
    "CoregParams",
    "CoregResult",
    "LineWork",
    "coregister",
    "detect_line_work",
    "estimate_vertical_offset",
    "gradient_representation",
    "ink_representation",
]

log = logging.getLogger(__name__)

ModelName = Literal["auto", "translation", "affine", "warp"]
#: What an input shows: ``image`` (photo intensities) and ``heights`` (a DSM), both matched on
#: the gradient magnitude; ``lines`` (line work on a plain background, a permit map: matched on
#: its ink); ``auto`` (``lines`` when :func:`detect_line_work` finds line work, else ``image``).
InputKind = Literal["auto", "image", "heights", "lines"]

#: Columns of :attr:`CoregResult.tiepoints`: window centre in reference pixels (x, y), the
#: measured shift (dx, dy, shift convention), the phase-correlation peak height, its
#: peak-to-noise ratio, the second-peak ratio, the valid fraction of both windows, whether it
#: was used by the model, why not (``status``) and the residual to the model (res_x, res_y).
TIEPOINT_DTYPE = np.dtype(
    [
        ("x", "f8"),
        ("y", "f8"),
        ("dx", "f8"),
        ("dy", "f8"),
        ("peak", "f4"),
        ("snr", "f4"),
        ("ratio", "f4"),
        ("valid", "f4"),
        ("used", "?"),
        ("status", "U12"),
        ("res_x", "f8"),
        ("res_y", "f8"),
    ]
)

_BATCH = 128
#: Largest set of reference tie-point windows the coarse pass keeps (grey float32 + mask).
_STASH_MAX_BYTES = 256 * 2**20
_NOISE_FLOOR_PX = 0.02


class _Sliceable(Protocol):
    """An array that can be sliced into numpy windows (ndarray, memmap, dask, DataArray.data)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def ndim(self) -> int: ...

    def __getitem__(self, key: Any) -> Any: ...


@dataclass(frozen=True)
class CoregParams:
    """Parameters of :func:`coregister` (documented defaults).

    Attributes
    ----------
    model : {"auto", "translation", "affine", "warp"}
        ``auto`` picks by the Bayesian information criterion on the tie points.
    window_px : int
        Side of the tie-point windows (pixels; a power of two is fastest).
    spacing_px : int or None
        Spacing of the tie-point grid; None = as dense as ``max_tiepoints`` allows, but never
        closer than ``window_px // 2``.
    max_tiepoints : int
        Upper bound of the number of tie-point windows.
    upsample : int
        Sub-pixel precision of the peak is 1/upsample px.
    sigma_px : float
        Gaussian smoothing before the central-difference gradient (pixels).
    normalise_px : float
        Half-width of the box over which the gradient magnitude is locally normalised (px).
    spectral_sigma : float
        Gaussian low-pass weight of the normalised cross-power spectrum (cycles per pixel).
    coarse_px : int
        Longest side of the block-averaged image of the coarse global search.
    search_px : int or None
        Largest tie-point correction around the coarse shift; None = ``window_px // 4``.
    min_snr : float
        Peak height over the standard deviation of the correlation surface, below which a
        tie point is "weak".
    max_peak_ratio : float
        Second peak over first peak above which a tie point is "ambiguous".
    min_valid_fraction : float
        Valid fraction of both windows below which a tie point is "nodata".
    consistency_px : float
        Largest difference to what the neighbouring tie points predict (their median or their
        plane, after removing a robust affine trend).
    ransac_threshold_px : float
        Largest residual of a tie point used by the final model.
    min_tiepoints : int
        Fewest used tie points for a model; fewer is a failure.
    min_overlap : float
        Smallest overlap of the valid areas, as a fraction of the smaller one.
    warp_smoothness : float
        Scale of the second-difference penalty of the warp's control grid; its weight is
        chosen by generalised cross-validation around this scale.
    strict : bool
        Raise :class:`CoregistrationError` instead of returning a low-confidence identity.
    seed : int
        Seed of the RANSAC sampler (results are deterministic).
    block_px : int
        Output window of :meth:`CoregResult.warp` (bounded memory).
    reference_kind, target_kind : {"auto", "image", "heights", "lines"}
        What each input shows. ``image`` (photo intensities) and ``heights`` (DSM heights in
        metres, NaN for holes): matched on the locally normalised gradient magnitude, the
        result naming it "gradient" or "height gradient"; ``lines``: line work on a plain
        background (a rasterised or scanned permit map), matched on its ink density against
        the other input's edges (see "Line work" in the module docstring); ``auto``:
        ``lines`` when :func:`detect_line_work` finds line work in the raster, else
        ``image``.
    """

    model: ModelName = "auto"
    window_px: int = 128
    spacing_px: int | None = None
    max_tiepoints: int = 625
    upsample: int = 100
    sigma_px: float = 1.0
    normalise_px: float = 8.0
    spectral_sigma: float = 0.1
    coarse_px: int = 1024
    search_px: int | None = None
    min_snr: float = 8.0
    max_peak_ratio: float = 0.6
    min_valid_fraction: float = 0.8
    consistency_px: float = 1.0
    ransac_threshold_px: float = 1.0
    min_tiepoints: int = 6
    min_overlap: float = 0.2
    warp_smoothness: float = 1.0
    strict: bool = False
    seed: int = 0
    block_px: int = 1024
    reference_kind: InputKind = "auto"
    target_kind: InputKind = "auto"

    def __post_init__(self) -> None:
        if self.model not in ("auto", "translation", "affine", "warp"):
            raise ValueError(
                f"model={self.model!r} is unknown; use auto, translation, affine or warp"
            )
        for name in ("reference_kind", "target_kind"):
            if getattr(self, name) not in ("auto", "image", "heights", "lines"):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is unknown; use auto, image, heights or lines"
                )
        if self.window_px < 32:
            raise ValueError(f"window_px={self.window_px} is too small; use 64 or more")
        if self.upsample < 1:
            raise ValueError(f"upsample={self.upsample} must be >= 1")


# --------------------------------------------------------------------------------------------
# Mapping models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mapping:
    """Pull map from reference pixel (x, y) to target pixel (qx, qy)."""

    kind: str
    matrix: np.ndarray  # (2, 3): q = matrix[:, :2] @ p + matrix[:, 2]
    grid_x: np.ndarray | None = None  # (gx,) node columns
    grid_y: np.ndarray | None = None  # (gy,) node rows
    field: np.ndarray | None = None  # (2, gy, gx): added (qx, qy) offsets

    def pull(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.matrix
        qx = m[0, 0] * x + m[0, 1] * y + m[0, 2]
        qy = m[1, 0] * x + m[1, 1] * y + m[1, 2]
        if self.field is not None:
            assert self.grid_x is not None and self.grid_y is not None
            fx = _fractional_index(x, self.grid_x)
            fy = _fractional_index(y, self.grid_y)
            if fy.ndim == 2 and fx.ndim == 2 and fy.shape[1] == 1 and fx.shape[0] == 1:
                # a grid of rows x columns (what warping asks for): bilinear interpolation of
                # the node field is separable, so interpolate the node rows at each row, then
                # those at each column, instead of a 2-D lookup per pixel
                qx = qx + _separable_lerp(self.field[0], fy[:, 0], fx[0])
                qy = qy + _separable_lerp(self.field[1], fy[:, 0], fx[0])
            else:
                coords = np.stack([np.broadcast_to(fy, qx.shape), np.broadcast_to(fx, qx.shape)])
                qx = qx + ndimage.map_coordinates(self.field[0], coords, order=1, mode="nearest")
                qy = qy + ndimage.map_coordinates(self.field[1], coords, order=1, mode="nearest")
        return qx, qy


def _lerp_index(f: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower node and weight of the upper one for fractional indices ``f`` in [0, n - 1]."""
    i0 = np.clip(np.floor(f).astype(np.int64), 0, max(n - 2, 0))
    return i0, f - i0


def _separable_lerp(values: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``values`` (gy, gx) at every (fy[i], fx[j]): (len(fy), len(fx)).

    The same as ``map_coordinates(values, order=1, mode="nearest")`` at fractional indices
    already clipped to the node range, computed as a row interpolation then a column one.
    """
    gy, gx = values.shape
    iy, ty = _lerp_index(fy, gy)
    ix, tx = _lerp_index(fx, gx)
    jy, jx = np.minimum(iy + 1, gy - 1), np.minimum(ix + 1, gx - 1)
    rows = values[iy] * (1.0 - ty)[:, None] + values[jy] * ty[:, None]  # (len(fy), gx)
    return rows[:, ix] * (1.0 - tx) + rows[:, jx] * tx


def _fractional_index(v: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    step = nodes[1] - nodes[0] if nodes.size > 1 else 1.0
    return np.clip((np.asarray(v, dtype=np.float64) - nodes[0]) / step, 0, nodes.size - 1)


def translation_mapping(sx: float, sy: float) -> _Mapping:
    """The pull map of a shift (sx, sy) in the convention of :data:`SHIFT_CONVENTION`."""
    return _Mapping("translation", np.array([[1.0, 0.0, -sx], [0.0, 1.0, -sy]]))


@dataclass(frozen=True)
class CoregResult:
    """The estimated misregistration of a target against the reference.

    Attributes
    ----------
    shift_x_px, shift_y_px : float
        Global shift that maps the target onto the reference, in reference pixels (see the
        module docstring: ``aligned[y, x] = target[y - shift_y_px, x - shift_x_px]``). For
        affine and warp models, the displacement at the centre of the reference raster.
    model : str
        ``translation``, ``affine``, ``warp`` or ``identity`` (nothing reliable was found).
    parameters : dict
        JSON-serialisable parameters of the model (``pull_matrix`` etc., see module docstring).
    rmse_px : float
        Root mean square residual of the used tie points (pixels; NaN without any).
    n_tiepoints, n_used : int
        Tie-point windows measured, and used by the model.
    confidence : float
        0 (nothing reliable) .. 1.
    warnings : tuple of str
        Plain-language warnings (ambiguity, few tie points, ...).
    tiepoints : ndarray of :data:`TIEPOINT_DTYPE`, shape (n_tiepoints,)
    shape : (rows, cols)
        Shape of the reference grid.
    coarse_shift_px : (x, y)
        The coarse whole-image shift (diagnostic).
    representation : (str, str)
        What was matched for the reference and the target: ``gradient`` (locally normalised
        gradient magnitude of the intensities), ``height gradient`` (the same of DSM heights,
        as declared by ``CoregParams.reference_kind``/``target_kind``), or ``lines (dark on
        light)`` / ``lines (light on dark)`` (ink density of line work, see
        :func:`ink_representation`).
    """

    shift_x_px: float
    shift_y_px: float
    model: str
    parameters: dict[str, Any]
    rmse_px: float
    n_tiepoints: int
    n_used: int
    confidence: float
    warnings: tuple[str, ...]
    tiepoints: np.ndarray
    shape: tuple[int, int]
    coarse_shift_px: tuple[float, float] = (0.0, 0.0)
    representation: tuple[str, str] = ("gradient", "gradient")
    mapping: _Mapping = field(
        default_factory=lambda: translation_mapping(0.0, 0.0), repr=False, compare=False
    )

    @property
    def is_identity(self) -> bool:
        """True when the mapping leaves every pixel where it is."""
        m = self.mapping
        return (
            m.field is None
            and bool(np.allclose(m.matrix[:, :2], np.eye(2), atol=0, rtol=0))
            and bool(np.all(m.matrix[:, 2] == 0))
        )

    @property
    def pull_offset(self) -> tuple[float, float] | None:
        """(row, col) added to a reference pixel to get its target pixel when the model is a
        pure translation (the fast bilinear path of :func:`warp_array`), else None."""
        m = self.mapping
        if m.field is not None or not np.array_equal(m.matrix[:, :2], np.eye(2)):
            return None
        return float(m.matrix[1, 2]), float(m.matrix[0, 2])

    def source_coordinates(
        self, rows: np.ndarray, cols: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Target (row, col) coordinates of reference pixels (pull map).

        Parameters
        ----------
        rows, cols : ndarray of float, broadcastable
            Reference pixel coordinates.

        Returns
        -------
        src_rows, src_cols : ndarray of float64
        """
        qx, qy = self.mapping.pull(np.asarray(cols, np.float64), np.asarray(rows, np.float64))
        return qy, qx

    def displacement(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shift (dx, dy) of the model at reference pixels (shift convention)."""
        src_r, src_c = self.source_coordinates(rows, cols)
        return np.asarray(cols) - src_c, np.asarray(rows) - src_r

    def warp(
        self,
        array: _Sliceable,
        order: int = 1,
        *,
        cval: float | None = None,
        out_shape: tuple[int, int] | None = None,
        block_px: int = 1024,
    ) -> np.ndarray:
        """Resample a target-grid array onto the reference grid with the estimated model.

        Parameters
        ----------
        array : array, shape (rows, cols) or (bands, rows, cols)
            On the grid the target had when it was co-registered (any sliceable array).
            bool arrays (validity masks) come back True only where every contributing
            input pixel was True; integer arrays are rounded and clipped to their dtype.
        order : int
            Spline order (0 nearest, 1 bilinear, 3 cubic).
        cval : float, optional
            Fill value outside the target (default NaN for floats, 0 for integers, False).
        out_shape : (rows, cols), optional
            Output grid, default the reference grid ``self.shape``.
        block_px : int
            Output window size; memory is bounded by the window, not the raster.

        Returns
        -------
        ndarray, shape (..., rows, cols), dtype of ``array`` (float32 for float input)
        """
        return warp_array(
            self.source_coordinates,
            array,
            order,
            cval,
            out_shape or self.shape,
            block_px,
            translation=self.pull_offset,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (without the tie-point table)."""
        return {
            "shift_x_px": float(self.shift_x_px),
            "shift_y_px": float(self.shift_y_px),
            "shift_convention": SHIFT_CONVENTION,
            "model": self.model,
            "parameters": self.parameters,
            "rmse_px": None if not math.isfinite(self.rmse_px) else float(self.rmse_px),
            "n_tiepoints": int(self.n_tiepoints),
            "n_used": int(self.n_used),
            "confidence": float(self.confidence),
            "warnings": list(self.warnings),
            "coarse_shift_px": [float(self.coarse_shift_px[0]), float(self.coarse_shift_px[1])],
            "representation": {
                "reference": self.representation[0],
                "target": self.representation[1],
            },
        }


SHIFT_CONVENTION = (
    "shift_x_px/shift_y_px map the target onto the reference in reference pixels: a feature at "
    "target pixel (x, y) lies at (x + shift_x_px, y + shift_y_px) in the reference (x = column, "
    "y = row, positive x east/right, positive y down/south); aligned[y, x] = "
    "target[y - shift_y_px, x - shift_x_px]; same as skimage phase_cross_correlation(reference, "
    "target)"
)


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


def warp_array(
    source_coordinates: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    array: _Sliceable,
    order: int,
    cval: float | None,
    out_shape: tuple[int, int],
    block_px: int = 1024,
    window: tuple[int, int, int, int] | None = None,
    translation: tuple[float, float] | None = None,
) -> np.ndarray:
    """Resample ``array`` by a pull map, one output window at a time.

    Parameters
    ----------
    source_coordinates : callable (rows, cols) -> (src_rows, src_cols)
    array : array, shape (rows, cols) or (bands, rows, cols)
    window : (row0, col0, rows, cols), optional
        Only this window of the output grid (for chunked callers); default all of it.
    translation : (row, col), optional
        Set when the pull map is ``source = output + translation`` (what
        ``source_coordinates`` computes then): bilinear resampling (``order`` 1) then weighs
        four shifted slices of the source instead of interpolating at every coordinate (the
        same values as ``scipy.ndimage.map_coordinates`` in ``constant`` mode up to float32
        rounding, about 10x faster).

    Returns
    -------
    ndarray, shape (..., rows, cols) of the window
    """
    return warp_arrays(
        source_coordinates, [array], [order], [cval], out_shape, block_px, window, translation
    )[0]


def warp_arrays(
    source_coordinates: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    arrays: list[_Sliceable],
    orders: list[int],
    cvals: list[float | None],
    out_shape: tuple[int, int],
    block_px: int = 1024,
    window: tuple[int, int, int, int] | None = None,
    translation: tuple[float, float] | None = None,
) -> list[np.ndarray]:
    """:func:`warp_array` of several arrays on one source grid (an orthophoto, its mask and
    its DSM): the pull map is evaluated once per block for all of them.

    Bilinear (``order`` 1) samples share the indices and weights of each block (the values of
    ``map_coordinates(order=1, mode="constant")`` up to float32 rounding); other orders go
    through ``map_coordinates``.
    """
    r_start, c_start, h, w = window if window is not None else (0, 0, *out_shape)
    kinds = [_warp_kind(a, o, c) for a, o, c in zip(arrays, orders, cvals, strict=True)]
    outs = [
        np.empty((*tuple(a.shape[:-2]), h, w), dtype=k.dtype)
        for a, k in zip(arrays, kinds, strict=True)
    ]
    todo = []
    for a, k, out in zip(arrays, kinds, outs, strict=True):
        if translation is not None and k.order == 1:
            _shift_bilinear(a, out, translation, (r_start, c_start), k.fill, k.is_bool, k.is_int)
        else:
            todo.append((a, k, out))
    if not todo:
        return outs
    order_max = max(k.order for _, k, _ in todo)
    halo = 1 + (order_max + 1) // 2 + (4 if order_max > 1 else 0)
    blocks = [
        (r0, min(h, r0 + block_px), c0, min(w, c0 + block_px))
        for r0 in range(0, h, block_px)
        for c0 in range(0, w, block_px)
    ]

    def one(block_rc: tuple[int, int, int, int]) -> None:
        r0, r1, c0, c1 = block_rc
        rows = np.arange(r_start + r0, r_start + r1, dtype=np.float64)[:, None]
        cols = np.arange(c_start + c0, c_start + c1, dtype=np.float64)[None, :]
        src_r, src_c = source_coordinates(rows, cols)
        src_r = np.broadcast_to(src_r, (r1 - r0, c1 - c0))
        src_c = np.broadcast_to(src_c, (r1 - r0, c1 - c0))
        y0 = math.floor(float(np.nanmin(src_r))) - halo
        y1 = math.ceil(float(np.nanmax(src_r))) + halo + 1
        x0 = math.floor(float(np.nanmin(src_c))) - halo
        x1 = math.ceil(float(np.nanmax(src_c))) + halo + 1
        for array, k, out in todo:
            src_h, src_w = array.shape[-2], array.shape[-1]
            block = out[..., r0:r1, c0:c1]
            if y1 <= 0 or x1 <= 0 or y0 >= src_h or x0 >= src_w:
                block[...] = k.fill if not k.is_bool else False
                continue
            sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, src_h), max(x0, 0), min(x1, src_w)
            src = np.asarray(array[..., sy0:sy1, sx0:sx1])
            src = src.reshape((-1, sy1 - sy0, sx1 - sx0))
            flat = block.reshape((-1, r1 - r0, c1 - c0))
            if k.order == 1 and min(src.shape[-2:]) >= 2:
                _gather_bilinear(src, src_r - sy0, src_c - sx0, flat, k.fill, k.is_bool, k.is_int)
                continue
            coords = np.stack([src_r - sy0, src_c - sx0])
            for b in range(src.shape[0]):
                res = ndimage.map_coordinates(
                    src[b].astype(np.float32),
                    coords,
                    order=k.order,
                    mode="constant",
                    cval=k.fill,
                    prefilter=k.order > 1,
                )
                if k.is_bool:
                    flat[b] = res >= 0.999
                elif k.is_int:
                    info = np.iinfo(k.dtype)
                    flat[b] = np.clip(np.rint(res), info.min, info.max)
                else:
                    flat[b] = res

    in_memory = all(isinstance(a, np.ndarray) for a, _, _ in todo)
    threads = min(len(blocks), _warp_threads()) if in_memory else 1
    if threads <= 1:
        for blk in blocks:
            one(blk)
    else:
        # the blocks write disjoint parts of the outputs; numpy's gathers and arithmetic
        # release the GIL, so a window of many blocks resamples on every core
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, blocks))
    return outs


def _warp_threads() -> int:
    """Threads for the blocks of one :func:`warp_arrays` call on in-memory arrays: every core
    from the main thread, one inside worker threads (dask's, which already run a block per
    core)."""
    if threading.current_thread() is not threading.main_thread():
        return 1
    return os.cpu_count() or 1


@dataclass(frozen=True)
class _WarpKind:
    dtype: np.dtype[Any]
    fill: float
    order: int
    is_bool: bool
    is_int: bool


def _warp_kind(array: _Sliceable, order: int, cval: float | None) -> _WarpKind:
    """Output dtype, fill and order of a warped array: masks stay bool (bilinear, False
    outside), integers keep their dtype (0 outside), floats become float32 (NaN outside)."""
    in_dtype = np.dtype(getattr(array, "dtype", np.float32))
    if in_dtype == np.bool_:
        return _WarpKind(np.dtype(np.bool_), 0.0, max(order, 1), True, False)
    if np.issubdtype(in_dtype, np.integer):
        return _WarpKind(in_dtype, 0.0 if cval is None else float(cval), order, False, True)
    out_dtype = np.dtype(np.float32) if in_dtype.itemsize <= 4 else in_dtype
    return _WarpKind(out_dtype, float("nan") if cval is None else float(cval), order, False, False)


def _gather_bilinear(
    src: np.ndarray,
    qy: np.ndarray,
    qx: np.ndarray,
    out: np.ndarray,
    fill: float,
    is_bool: bool,
    is_int: bool,
) -> None:
    """``out[b] = src[b]`` bilinearly sampled at (qy, qx), the indices and weights computed
    once for every band.

    The values of ``map_coordinates(order=1, mode="constant", cval=fill)`` up to float32
    rounding: a sample outside ``[0, n - 1]`` on either axis is ``fill`` (False for masks); a
    mask is True where the interpolated mask is at least 0.999. ``src`` is (bands, rows, cols)
    with at least two rows and columns; ``out`` is (bands, h, w).
    """
    n_b, sh, sw = src.shape
    h, w = qy.shape
    planes = src.reshape(n_b, -1)
    if planes.dtype != np.float32:
        planes = planes.astype(np.float32)
    info = np.iinfo(out.dtype) if is_int else None
    # row strips keep the temporaries in cache
    step = max(1, 2**16 // max(w, 1))
    for a in range(0, h, step):
        b = min(h, a + step)
        y, x = qy[a:b], qx[a:b]
        inside = (y >= 0) & (y <= sh - 1) & (x >= 0) & (x <= sw - 1)  # False for NaN too
        yc = np.where(inside, y, 0.0)
        xc = np.where(inside, x, 0.0)
        y0 = np.minimum(yc.astype(np.int64), sh - 2)
        x0 = np.minimum(xc.astype(np.int64), sw - 2)
        ty = (yc - y0).astype(np.float32)
        tx = (xc - x0).astype(np.float32)
        i00 = y0 * sw + x0
        for k in range(n_b):
            p = planes[k]
            v00, v01 = p.take(i00), p.take(i00 + 1)
            v10, v11 = p.take(i00 + sw), p.take(i00 + sw + 1)
            v01 -= v00
            v01 *= tx
            v01 += v00
            v11 -= v10
            v11 *= tx
            v11 += v10
            v11 -= v01
            v11 *= ty
            v11 += v01
            res = v11
            target = out[k, a:b]
            if is_bool:
                np.greater_equal(res, 0.999, out=target)
                target &= inside
                continue
            res[~inside] = fill
            if info is not None:
                np.rint(res, out=res)
                np.clip(res, info.min, info.max, out=res)
            target[...] = res


def _shift_bilinear(
    array: _Sliceable,
    out: np.ndarray,
    translation: tuple[float, float],
    start: tuple[int, int],
    fill: float,
    is_bool: bool,
    is_int: bool,
) -> None:
    """``out[..., i, j] = array`` bilinearly sampled at ``(start + (i, j) + translation)``.

    Like ``map_coordinates(order=1, mode="constant")``: a sample whose coordinate lies outside
    ``[0, n - 1]`` on either axis is ``fill`` (False for masks); a mask is True only where
    every neighbour with a weight of 0.001 or more is True.
    """
    src_h, src_w = array.shape[-2], array.shape[-1]
    h, w = out.shape[-2], out.shape[-1]
    ty, tx = translation
    iy, ix = math.floor(ty), math.floor(tx)
    fy, fx = np.float32(ty - iy), np.float32(tx - ix)
    # output rows/cols whose sample coordinate lies inside [0, n - 1]
    rows = start[0] + np.arange(h) + ty
    cols = start[1] + np.arange(w) + tx
    ok_r = np.flatnonzero((rows >= 0) & (rows <= src_h - 1))
    ok_c = np.flatnonzero((cols >= 0) & (cols <= src_w - 1))
    out[...] = False if is_bool else fill
    if ok_r.size == 0 or ok_c.size == 0:
        return
    i0, i1 = int(ok_r[0]), int(ok_r[-1]) + 1
    j0, j1 = int(ok_c[0]), int(ok_c[-1]) + 1
    # source rows y0 .. y0 + (i1 - i0) (one more for the lower neighbour), same for columns
    y0, x0 = start[0] + i0 + iy, start[1] + j0 + ix
    ny, nx = i1 - i0 + 1, j1 - j0 + 1
    dest = out[..., i0:i1, j0:j1]
    sy1, sx1 = min(y0 + ny, src_h), min(x0 + nx, src_w)
    info = np.iinfo(out.dtype) if is_int else None
    # strips of rows keep the temporaries in cache (whole-window temporaries ran 3x slower)
    strip = max(8, 2**17 // max(nx, 1))
    for a in range(0, i1 - i0, strip):
        b = min(i1 - i0, a + strip)
        # source rows y0 + a .. y0 + b (+1 for the lower neighbour); the neighbour past the
        # last row or column only ever has weight 0, so it is zero-padded
        ra, rb = y0 + a, min(y0 + b + 1, sy1)
        win = np.zeros((*dest.shape[:-2], b - a + 1, nx), np.float32)
        win[..., : rb - ra, : sx1 - x0] = np.asarray(array[..., ra:rb, x0:sx1])
        if fy:
            rows_lerp = win[..., 1:, :] - win[..., :-1, :]
            rows_lerp *= fy
            rows_lerp += win[..., :-1, :]
        else:
            rows_lerp = win[..., :-1, :]
        if fx:
            res = rows_lerp[..., :, 1:] - rows_lerp[..., :, :-1]
            res *= fx
            res += rows_lerp[..., :, :-1]
        else:
            res = rows_lerp[..., :, :-1]
        target = dest[..., a:b, :]
        if is_bool:
            np.greater_equal(res, 0.999, out=target)
        elif info is not None:
            np.rint(res, out=res)
            np.clip(res, info.min, info.max, out=res)
            target[...] = res
        else:
            target[...] = res


# --------------------------------------------------------------------------------------------
# Representation
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Line work (permit maps)
# --------------------------------------------------------------------------------------------

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


def _hann2d(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)


def _tukey2d(h: int, w: int, alpha: float = 0.25) -> np.ndarray:
    def tukey(n: int) -> np.ndarray:
        x = np.linspace(0, 1, n)
        win = np.ones(n)
        edge = alpha / 2
        lo = x < edge
        hi = x > 1 - edge
        win[lo] = 0.5 * (1 + np.cos(np.pi * (x[lo] / edge - 1)))
        win[hi] = 0.5 * (1 + np.cos(np.pi * ((x[hi] - 1) / edge + 1)))
        return win

    return np.outer(tukey(h), tukey(w)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Phase correlation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Peaks:
    dy: np.ndarray
    dx: np.ndarray
    peak: np.ndarray
    snr: np.ndarray
    ratio: np.ndarray
    at_edge: np.ndarray


@functools.lru_cache(maxsize=16)
def _spectral_weight(h: int, w: int, sigma: float) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    weight = np.exp(-(fy**2 + fx**2) / (2 * sigma**2)) if sigma > 0 else np.ones((h, w))
    if h % 2 == 0:
        weight[h // 2, :] = 0
    if w % 2 == 0:
        weight[:, w // 2] = 0
    out = weight.astype(np.float32)
    out.flags.writeable = False  # cached and shared
    return out


def _phase_correlate(
    ref: np.ndarray,
    tgt: np.ndarray,
    search: int | None,
    upsample: int,
    exclude: int = 4,
    spectral_sigma: float = 0.1,
) -> _Peaks:
    """Batched phase correlation of weighted representations, shape (K, H, W).

    Returns the shift (dy, dx) that registers ``tgt`` onto ``ref`` (skimage convention), the
    peak height, its peak-to-noise ratio, the ratio of the second peak (outside +-``exclude``
    px of the first) to the first, and whether the peak is at the edge of the search range.
    """
    k, h, w = ref.shape
    # real inputs: half spectra (rfft) suffice, the cross-power spectrum is Hermitian
    fr = scipy.fft.rfft2(ref, workers=-1)
    ft = scipy.fft.rfft2(tgt, workers=-1)
    cross = fr * np.conj(ft)
    cross /= (
        np.abs(cross)
        + np.float32(1e-12) * np.abs(cross).max(axis=(1, 2), keepdims=True)
        + (np.float32(1e-30))
    )
    # The Nyquist row/column has no sign (it makes the interpolated peak asymmetric), and
    # the pure-phase spectrum gives equal weight to high frequencies where window leakage and
    # aliasing dominate and pull the sub-pixel peak towards whole pixels: weight it by a
    # Gaussian low-pass (measured: bias 0.07 px -> < 0.003 px at 0.25 px shifts).
    cross *= _spectral_weight(h, w, spectral_sigma)[:, : w // 2 + 1]
    corr = scipy.fft.irfft2(cross, s=(h, w), workers=-1)
    sy = np.fft.fftfreq(h) * h  # signed integer shifts of each row index
    sx = np.fft.fftfreq(w) * w
    if search is not None:
        allowed = (np.abs(sy)[:, None] <= search) & (np.abs(sx)[None, :] <= search)
    else:
        allowed = np.ones((h, w), dtype=bool)
    masked = np.where(allowed, corr, -np.inf)
    flat = masked.reshape(k, -1)
    idx = np.argmax(flat, axis=1)
    iy, ix = np.divmod(idx, w)
    peak = flat[np.arange(k), idx]
    noise = corr[:, allowed].std(axis=1) + 1e-12
    snr = peak / noise
    # second peak: mask a (2e+1)^2 neighbourhood (circular) of the first
    dyy = np.abs(((np.arange(h)[None, :] - iy[:, None]) + h // 2) % h - h // 2)
    dxx = np.abs(((np.arange(w)[None, :] - ix[:, None]) + w // 2) % w - w // 2)
    near = (dyy[:, :, None] <= exclude) & (dxx[:, None, :] <= exclude)
    second = np.where(near, -np.inf, masked).reshape(k, -1).max(axis=1)
    ratio = np.clip(second / np.maximum(peak, 1e-12), 0, None)
    py = sy[iy].astype(np.float64)
    px = sx[ix].astype(np.float64)
    lim = search if search is not None else min(h, w) // 2 - 1
    at_edge = (np.abs(py) >= lim) | (np.abs(px) >= lim)
    if upsample > 1:
        py, px = _refine_upsampled(cross, py, px, upsample, w)
    return _Peaks(py, px, peak.astype(np.float64), snr, ratio, at_edge)


def _refine_upsampled(
    cross: np.ndarray, py: np.ndarray, px: np.ndarray, upsample: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Refine integer peaks by matrix-multiply DFT upsampling (Guizar-Sicairos 2008).

    In stages: +-1 px at 1/10 px, then +-0.1 px at 1/100 px, ... until 1/``upsample``, then
    a parabolic fit of the 3x3 neighbourhood on the finest grid.
    """
    k, h, w = cross.shape  # half spectrum: w = width // 2 + 1 columns
    fy = np.fft.fftfreq(h).astype(np.float64)
    fx = np.fft.rfftfreq(width).astype(np.float64)
    # Re sum over the full Hermitian spectrum = Re sum over the half with the columns that
    # stand for a conjugate pair counted twice
    pair = np.full(w, 2.0)
    pair[0] = 1.0
    if width % 2 == 0:
        pair[-1] = 1.0
    ctype: type[np.complexfloating[Any, Any]] = (
        np.complex128 if cross.dtype == np.complex128 else np.complex64
    )
    c: np.ndarray = (cross * pair[None, None, :]).astype(ctype, copy=False)
    step = 1.0
    target = 1.0 / upsample
    offsets = np.array([0.0])
    while step > target * 1.0001:
        new_step = max(step / 10.0, target)
        half = round(step / new_step)
        offsets = np.arange(-half, half + 1) * new_step
        m = offsets.size
        # Kernel exp(2i pi (p + o) f) = exp(2i pi p f) exp(2i pi o f): the per-window part is a
        # phase ramp on the spectrum, the rest one shared kernel, so each stage is two plain
        # 2-D GEMMs over the whole batch (batched small matmuls are far slower).
        ramp_y = np.exp(2j * np.pi * py[:, None] * fy[None, :]).astype(ctype)  # (k, h)
        ramp_x = np.exp(2j * np.pi * px[:, None] * fx[None, :]).astype(ctype)  # (k, w)
        c2 = c * ramp_y[:, :, None] * ramp_x[:, None, :]
        ey = np.exp(2j * np.pi * offsets[:, None] * fy[None, :]).astype(ctype)  # (m, h)
        ex = np.exp(2j * np.pi * offsets[:, None] * fx[None, :]).astype(ctype)  # (m, w)
        a = ey @ c2.transpose(1, 0, 2).reshape(h, k * w)  # (m, k*w)
        a = a.reshape(m, k, w).transpose(1, 0, 2).reshape(k * m, w)
        up = (a @ ex.T).real.reshape(k, m, m)
        flat = up.reshape(k, -1).argmax(axis=1)
        iy, ix = np.divmod(flat, m)
        # parabolic refinement on the last stage
        if new_step <= target * 1.0001:
            iyc = np.clip(iy, 1, m - 2)
            ixc = np.clip(ix, 1, m - 2)
            kk = np.arange(k)
            c0 = up[kk, iyc, ixc]
            ym, yp = up[kk, iyc - 1, ixc], up[kk, iyc + 1, ixc]
            xm, xp = up[kk, iyc, ixc - 1], up[kk, iyc, ixc + 1]
            deny = ym - 2 * c0 + yp
            denx = xm - 2 * c0 + xp
            oy = np.where(deny < 0, 0.5 * (ym - yp) / np.where(deny < 0, deny, -1), 0.0)
            ox = np.where(denx < 0, 0.5 * (xm - xp) / np.where(denx < 0, denx, -1), 0.0)
            py = py + offsets[iyc] + np.clip(oy, -0.5, 0.5) * new_step
            px = px + offsets[ixc] + np.clip(ox, -0.5, 0.5) * new_step
        else:
            py = py + offsets[iy]
            px = px + offsets[ix]
        step = new_step
    return py, px


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def _read_window(
    arr: _Sliceable, valid: _Sliceable | None, r0: int, c0: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Grey window and validity at (r0, c0) of size (h, w), padded as invalid outside."""
    H, W = arr.shape[-2], arr.shape[-1]
    out = np.zeros((h, w), np.float32)
    ok = np.zeros((h, w), bool)
    y0, y1, x0, x1 = max(r0, 0), min(r0 + h, H), max(c0, 0), min(c0 + w, W)
    if y1 <= y0 or x1 <= x0:
        return out, ok
    g = _to_grey(arr[..., y0:y1, x0:x1])
    v = np.isfinite(g)
    if valid is not None:
        v &= np.asarray(valid[y0:y1, x0:x1], dtype=bool)
    out[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = np.where(v, g, 0)
    ok[y0 - r0 : y1 - r0, x0 - c0 : x1 - c0] = v
    return out, ok


def _read_pulled_window(
    arr: _Sliceable, valid: _Sliceable | None, pull: np.ndarray, r0: int, c0: int, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Target window resampled through an affine pull map: pixel (r0 + i, c0 + j) of the
    result shows target pixel ``pull @ (c0 + j, r0 + i, 1)`` (cubic spline), and is valid
    where every target pixel it draws on is."""
    cols = c0 + np.arange(m, dtype=np.float64)
    rows = r0 + np.arange(m, dtype=np.float64)
    qx = pull[0, 0] * cols[None, :] + pull[0, 1] * rows[:, None] + pull[0, 2]
    qy = pull[1, 0] * cols[None, :] + pull[1, 1] * rows[:, None] + pull[1, 2]
    y0, x0 = math.floor(qy.min()) - 2, math.floor(qx.min()) - 2
    h, w = math.ceil(qy.max()) + 3 - y0, math.ceil(qx.max()) + 3 - x0
    g, ok = _read_window(arr, valid, y0, x0, h, w)
    coords = np.stack([qy - y0, qx - x0])
    out = ndimage.map_coordinates(g, coords, order=3, mode="nearest").astype(np.float32)
    if ok.all():
        return out, np.ones((m, m), bool)
    # a pixel is valid when its cubic support (4 x 4) was: erode by one, then interpolate
    ok = ndimage.binary_erosion(ok, structure=np.ones((3, 3), bool), border_value=0)
    still = ndimage.map_coordinates(ok.astype(np.float32), coords, order=1, mode="constant")
    good = still >= 0.999
    return np.where(good, out, np.float32(0)), good


class _BandCache:
    """Row-band cache over a lazy array: windows read in row order decode each row once.

    Slicing a dask (or file-backed) array window by window would read and decode whole
    chunks hundreds of times; tie windows come in row-major order, so a band of at least
    ``band_px`` rows read once serves every window inside it. When the windows move below
    the band, the rows the new band shares with the old one are kept and only the rows
    below are read; on a dask array the band's edges are its chunk rows, so no chunk row is
    decoded twice. Memory: one band (``band_px`` rows plus up to two chunk rows).
    """

    def __init__(self, arr: _Sliceable, band_px: int = 2048) -> None:
        self.arr = arr
        self.shape = tuple(arr.shape)
        self.ndim = len(self.shape)
        self.band_px = band_px
        self._rows = (0, 0)
        self._band: np.ndarray | None = None
        # edges of the chunk rows of a dask array ((rows, ...), ...); other arrays (zarr,
        # h5py, memmaps) are cut where the windows need (None)
        chunks = getattr(arr, "chunks", None)
        self._edges: np.ndarray | None = None
        if chunks is not None and len(chunks) >= 2 and isinstance(chunks[-2], tuple):
            self._edges = np.concatenate([[0], np.cumsum(chunks[-2])]).astype(np.int64)

    def _read(self, b0: int, b1: int) -> np.ndarray:
        """Rows b0 .. b1, reusing what the current band holds of them."""
        a0, a1 = self._rows
        if self._band is None or b0 < a0 or b0 >= a1:
            return np.asarray(self.arr[..., b0:b1, :])
        kept = self._band[..., b0 - a0 : min(a1, b1) - a0, :]
        if b1 <= a1:
            return kept.copy()
        return np.concatenate([kept, np.asarray(self.arr[..., a1:b1, :])], axis=-2)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = tuple(k for k in key if k is not Ellipsis)
        rs, cs = key[-2], key[-1]
        H = self.shape[-2]
        r0, r1, _ = rs.indices(H)
        if self._band is None or r0 < self._rows[0] or r1 > self._rows[1]:
            # start a little above: windows of one grid row may climb (rotated targets)
            b0 = max(0, min(r0, r0 - self.band_px // 8))
            b1 = min(H, max(r1, b0 + self.band_px))
            e = self._edges
            if e is not None:
                # out to the chunk rows' edges: a chunk row is decoded whole anyway
                b0 = int(e[np.searchsorted(e, b0, "right") - 1])
                b1 = int(e[min(len(e) - 1, np.searchsorted(e, b1, "left"))])
            self._band = self._read(b0, b1)
            self._rows = (b0, b1)
        a0 = self._rows[0]
        return self._band[..., r0 - a0 : r1 - a0, cs]


def _banded(arr: _Sliceable) -> _Sliceable:
    return arr if isinstance(arr, np.ndarray) else _BandCache(arr)


def _tie_geometry(H: int, W: int, params: CoregParams) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Tie-point grid: window rows, window columns, the halo read around each window and the
    side of what is read (window plus two halos)."""
    n = params.window_px
    rows0, cols0 = _grid_positions(H, W, n, params)
    halo = min(math.ceil(3 * params.sigma_px + params.normalise_px) + 2, n)
    return rows0, cols0, halo, n + 2 * halo


class _WindowStash:
    """The reference's tie-point windows, cut out of the chunks the coarse pass decodes.

    The coarse pass reads every pixel of both rasters; the tie-point windows of the reference
    sit where the grid puts them whatever the shift, so they are kept on the way (grey and
    validity exactly as :func:`_read_window` makes them) and the tie-point passes decode only
    the target. Memory: the windows of the grid (about 74 MB with the defaults); a grid
    whose windows would take more than :data:`_STASH_MAX_BYTES` is not stashed
    (:meth:`for_grid` gives None) and the reference is read window by window as before.
    Chunks fill disjoint parts of the windows, so dask's threads fill them side by side. The
    stash is used only when every pixel of every window was filled (:attr:`complete`): chunks
    computed in other processes (a dask.distributed cluster) fill copies of it, and then the
    tie-point passes read the reference themselves.
    """

    def __init__(self, shape: tuple[int, int], params: CoregParams) -> None:
        rows0, cols0, halo, m = _tie_geometry(shape[0], shape[1], params)
        self.key = (shape, params.window_px, params.spacing_px, params.max_tiepoints, halo)
        self.tops = rows0 - halo
        self.lefts = cols0 - halo
        self.m = m
        k = rows0.size * cols0.size
        self.grey = np.zeros((k, m, m), np.float32)
        self.ok = np.zeros((k, m, m), bool)
        # pixels of the windows inside the raster, and those filled so far
        inside_r = np.clip(self.tops + m, 0, shape[0]) - np.clip(self.tops, 0, shape[0])
        inside_c = np.clip(self.lefts + m, 0, shape[1]) - np.clip(self.lefts, 0, shape[1])
        self.expected = int(inside_r.sum()) * int(inside_c.sum())
        self._filled: list[int] = []
        self.complete = False

    @staticmethod
    def for_grid(shape: tuple[int, int], params: CoregParams) -> _WindowStash | None:
        """A stash for the tie-point grid of ``params`` on ``shape``, None if too large."""
        rows0, cols0, _, m = _tie_geometry(shape[0], shape[1], params)
        if rows0.size * cols0.size * m * m * 5 > _STASH_MAX_BYTES:
            return None
        return _WindowStash(shape, params)

    def finish(self) -> None:
        """Mark the stash usable if the chunks filled every pixel of every window."""
        self.complete = sum(self._filled) == self.expected

    def fill(self, raw: np.ndarray, vraw: np.ndarray | None, y0: int, x0: int) -> None:
        """Copy the parts of the windows inside the block whose top-left pixel is (y0, x0)."""
        h, w = raw.shape[-2], raw.shape[-1]
        m = self.m
        rows = np.flatnonzero((self.tops < y0 + h) & (self.tops + m > y0))
        cols = np.flatnonzero((self.lefts < x0 + w) & (self.lefts + m > x0))
        for i in rows:
            top = int(self.tops[i])
            a0, a1 = max(top, y0), min(top + m, y0 + h)
            for j in cols:
                left = int(self.lefts[j])
                b0, b1 = max(left, x0), min(left + m, x0 + w)
                src = (slice(a0 - y0, a1 - y0), slice(b0 - x0, b1 - x0))
                g = _to_grey(raw[(..., *src)])
                v = np.isfinite(g)
                if vraw is not None:
                    v &= np.asarray(vraw[src], dtype=bool)
                k = i * self.lefts.size + j
                dst = (k, slice(a0 - top, a1 - top), slice(b0 - left, b1 - left))
                self.grey[dst] = np.where(v, g, 0)
                self.ok[dst] = v
                self._filled.append((a1 - a0) * (b1 - b0))


def _block_sum(a: np.ndarray, f: int) -> np.ndarray:
    """Sum of f x f blocks of a 2-D array whose sides are multiples of f."""
    h, w = a.shape
    rows = a.reshape(h // f, f, w).sum(axis=1, dtype=a.dtype)
    return rows.reshape(h // f, w // f, f).sum(axis=2, dtype=a.dtype)


def _compute(*parts: Any) -> list[np.ndarray]:
    """numpy arrays of sliced windows; dask ones computed together (their reads in parallel)."""
    lazy = [i for i, p in enumerate(parts) if p is not None and hasattr(p, "dask")]
    out = [None if p is None else p for p in parts]
    if lazy:
        import dask

        done = dask.compute(*(parts[i] for i in lazy))
        for i, v in zip(lazy, done, strict=True):
            out[i] = v
    return [None if p is None else np.asarray(p) for p in out]  # type: ignore[misc]


def _block_sums_of(raw: np.ndarray, vraw: np.ndarray | None, f: int) -> np.ndarray:
    """(2, rows // f, cols // f) float64: sum of the band-mean grey and count of valid pixels
    of each f x f block (8-bit bands in integer arithmetic, exact)."""
    raw = raw.reshape((-1, *raw.shape[-2:]))
    h, w = (raw.shape[-2] // f) * f, (raw.shape[-1] // f) * f
    raw = raw[:, :h, :w]
    bands = raw.shape[0]
    if np.issubdtype(raw.dtype, np.integer) and raw.dtype.itemsize == 1:
        s = raw.sum(axis=0, dtype=np.uint16) if bands > 1 else raw[0].astype(np.uint16)
        if vraw is None:
            n = np.full((h // f, w // f), f * f, np.float64)
        else:
            v = np.asarray(vraw, dtype=bool)[:h, :w]
            s *= v
            n = _block_sum(v.astype(np.uint32), f).astype(np.float64)
        total = _block_sum(s.astype(np.uint32), f).astype(np.float64) / bands
        return np.stack([total, n])
    g = raw.astype(np.float32).mean(axis=0) if bands > 1 else raw[0].astype(np.float32)
    v = np.isfinite(g)
    if vraw is not None:
        v &= np.asarray(vraw, dtype=bool)[:h, :w]
    g = np.where(v, g, np.float32(0))
    return np.stack(
        [_block_sum(g, f).astype(np.float64), _block_sum(v.astype(np.uint32), f).astype(np.float64)]
    )


def _chunked(arr: Any, valid: Any) -> bool:
    """Whether an array and its validity mask (or None) are both dask arrays."""
    return hasattr(arr, "dask") and (valid is None or hasattr(valid, "dask"))


def _block_mean_lazy(
    arr: Any, valid: Any, f: int, stash: _WindowStash | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_block_mean` of dask arrays chunk by chunk on dask's threads (rechunked to
    multiples of ``f`` where they are not), or None for other arrays. With ``stash``, each
    chunk also fills the tie-point windows it holds."""
    import dask.array as dsa

    if not _chunked(arr, valid):
        return None
    a = arr if arr.ndim == 3 else arr[None]
    rows, cols = a.chunks[-2], a.chunks[-1]
    if any(c % f for c in rows[:-1]) or any(c % f for c in cols[:-1]):
        # a grid snapped by a few pixels starts with a short chunk: cut at multiples of f
        size = max(f, (max(*rows, *cols) // f) * f)
        a = a.rechunk({1: size, 2: size})
    a = a.rechunk({0: -1})
    # every chunk but the last of a row or column is a multiple of f; the last one's rest
    # (under f pixels) makes no whole block and is left out of the sums
    out_rows = tuple(c // f for c in a.chunks[-2])
    out_cols = tuple(c // f for c in a.chunks[-1])
    parts = [a]
    if valid is not None:
        parts.append(valid.rechunk(a.chunks[-2:]))

    def one(*blocks: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        vraw = blocks[1] if len(blocks) > 1 else None
        if stash is not None and block_info is not None:
            (_, _), (y0, _), (x0, _) = block_info[0]["array-location"]
            stash.fill(blocks[0], vraw, y0, x0)
        return _block_sums_of(blocks[0], vraw, f)

    sums = dsa.map_blocks(
        one,
        *parts,
        chunks=((2,), out_rows, out_cols),
        dtype=np.float64,
        meta=np.zeros((0, 0, 0)),
    )
    out = _mean_and_fraction(np.asarray(sums.compute()), f)
    if stash is not None:
        stash.finish()
    return out


def _mean_and_fraction(sums: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Block mean and valid fraction (float32) from :func:`_block_sums_of`'s sums."""
    total, n = sums
    return (total / np.maximum(n, 1)).astype(np.float32), (n / float(f * f)).astype(np.float32)


def _block_mean(
    arr: _Sliceable,
    valid: _Sliceable | None,
    f: int,
    strip_rows: int = 2048,
    stash: _WindowStash | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Block-averaged grey image and valid fraction, read strip by strip (dask arrays: chunk
    by chunk on dask's threads, filling ``stash`` on the way)."""
    lazy = _block_mean_lazy(arr, valid, f, stash)
    if lazy is not None:
        return lazy
    H, W = arr.shape[-2], arr.shape[-1]
    hc, wc = H // f, W // f
    grey = np.zeros((hc, wc), np.float32)
    frac = np.zeros((hc, wc), np.float32)
    rows_per = max(1, strip_rows // f)
    for i0 in range(0, hc, rows_per):
        i1 = min(hc, i0 + rows_per)
        rows = slice(i0 * f, i1 * f)
        raw, vraw = _compute(
            arr[..., rows, : wc * f], None if valid is None else valid[rows, : wc * f]
        )
        grey[i0:i1], frac[i0:i1] = _mean_and_fraction(_block_sums_of(raw, vraw, f), f)
    return grey, frac


# --------------------------------------------------------------------------------------------
# Model fitting
# --------------------------------------------------------------------------------------------


def _fit_affine(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Least-squares affine q = A p + b; p, q shape (n, 2); returns (2, 3)."""
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


def _apply_affine(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ m[:, :2].T + m[:, 2]


def _ransac_affine(
    p: np.ndarray, q: np.ndarray, threshold: float, rng: np.random.Generator, iters: int = 300
) -> np.ndarray:
    """Boolean inlier mask of the best affine model by RANSAC (vectorised hypotheses)."""
    n = p.shape[0]
    if n < 4:
        return np.ones(n, bool)
    samples = np.array([rng.choice(n, 3, replace=False) for _ in range(iters)])
    ps = p[samples]  # (iters, 3, 2)
    qs = q[samples]
    design = np.concatenate([ps, np.ones((iters, 3, 1))], axis=2)  # (iters, 3, 3)
    det = np.linalg.det(design)
    good = np.abs(det) > 1e-6 * np.abs(ps).max() ** 2 + 1e-9
    design[~good] = np.eye(3)
    sol = np.linalg.solve(design, qs)  # (iters, 3, 2)
    pred = np.einsum("nk,ikj->inj", np.column_stack([p, np.ones(n)]), sol)
    err = np.hypot(*(pred - q[None]).transpose(2, 0, 1))
    counts = np.where(good, (err <= threshold).sum(axis=1), -1)
    best = int(np.argmax(counts))
    inl = err[best] <= threshold
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
    n = res.size
    rss = max(float((res**2).sum()), n * _NOISE_FLOOR_PX**2)
    return n * math.log(rss / n) + dof * math.log(n)


# --------------------------------------------------------------------------------------------
# The algorithm
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coarse:
    factor: int
    shift: tuple[float, float]  # (x, y) full-resolution px
    snr: float
    ratio: float
    overlap: float
    reliable: bool
    # line work found in (or declared for) the reference and the target; None = an image
    reference_lines: LineWork | None = None
    target_lines: LineWork | None = None
    # line work only: how much it repeats itself, (ratio, lag x, lag y) (see _self_repeat)
    reference_repeat: tuple[float, float, float] | None = None
    target_repeat: tuple[float, float, float] | None = None
    representation: tuple[str, str] = ("gradient", "gradient")

    @property
    def lines(self) -> tuple[LineWork | None, LineWork | None]:
        return self.reference_lines, self.target_lines


def _coarse_shift(
    reference: _Sliceable,
    target: _Sliceable,
    reference_valid: _Sliceable | None,
    target_valid: _Sliceable | None,
    params: CoregParams,
    stash: _WindowStash | None = None,
) -> _Coarse:
    H, W = reference.shape[-2], reference.shape[-1]
    f = max(1, math.ceil(max(H, W) / params.coarse_px))
    gr, vr_frac = _block_mean(reference, reference_valid, f, stash=stash)
    gt, vt_frac = _block_mean(target, target_valid, f)
    vr = vr_frac > 0.99
    vt = vt_frac > 0.99
    nr, nt = int(vr.sum()), int(vt.sum())
    if nr == 0:
        raise InsufficientOverlapError(
            "the reference has no valid pixels; check its mask or nodata value"
        )
    if nt == 0:
        raise InsufficientOverlapError(
            "the target has no valid pixels on the reference grid; check its mask, nodata "
            "value and that it covers the reference area"
        )
    overlap = float((vr & vt).sum()) / min(nr, nt)
    if overlap < params.min_overlap:
        raise InsufficientOverlapError(
            f"the epochs overlap on {overlap:.0%} of the smaller valid area, less than the "
            f"{params.min_overlap:.0%} needed; check that both rasters cover the same site"
        )
    sigma = params.sigma_px if f == 1 else 0.7
    norm = max(2.0, params.normalise_px / f)
    lines_r = _line_work_of(gr, vr, params.reference_kind)
    lines_t = _line_work_of(gt, vt, params.target_kind)
    rr, rt = (
        gradient_representation(g, v, sigma_px=sigma, normalise_px=norm)
        if work is None
        else ink_representation(g, v, line_work=work, sigma_px=sigma)
        for g, v, work in ((gr, vr, lines_r), (gt, vt, lines_t))
    )
    apod = _tukey2d(*gr.shape)
    wr = _weights(vr, 3, apod)
    wt = _weights(vt, 3, apod)
    rr = _center(rr, wr)
    rt = _center(rt, wt)
    repeats = [
        None if work is None else _self_repeat(rep, f)
        for rep, work in ((rr, lines_r), (rt, lines_t))
    ]
    # zero-pad to a fast FFT size
    fh = scipy.fft.next_fast_len(gr.shape[0] * 2 if gr.shape[0] < 64 else gr.shape[0])
    fw = scipy.fft.next_fast_len(gr.shape[1] * 2 if gr.shape[1] < 64 else gr.shape[1])
    a = np.zeros((1, fh, fw), np.float32)
    b = np.zeros((1, fh, fw), np.float32)
    a[0, : gr.shape[0], : gr.shape[1]] = rr
    b[0, : gr.shape[0], : gr.shape[1]] = rt
    pk = _phase_correlate(a, b, None, 10, exclude=6, spectral_sigma=0.2)
    sx, sy = float(pk.dx[0]) * f, float(pk.dy[0]) * f
    reliable = bool(pk.snr[0] >= params.min_snr and pk.ratio[0] <= params.max_peak_ratio)
    log.debug(
        "coarse shift (x=%.2f, y=%.2f) px at 1/%d, snr %.1f, ratio %.2f, overlap %.2f",
        sx,
        sy,
        f,
        pk.snr[0],
        pk.ratio[0],
        overlap,
    )
    return _Coarse(
        f,
        (sx, sy),
        float(pk.snr[0]),
        float(pk.ratio[0]),
        overlap,
        reliable,
        reference_lines=lines_r,
        target_lines=lines_t,
        reference_repeat=repeats[0],
        target_repeat=repeats[1],
        representation=(
            _representation_name(lines_r, params.reference_kind),
            _representation_name(lines_t, params.target_kind),
        ),
    )


def _center(rep: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted zero-mean representation times its weight (axes -2, -1)."""
    s = weight.sum(axis=(-2, -1), keepdims=True)
    mean = (rep * weight).sum(axis=(-2, -1), keepdims=True) / np.maximum(s, 1e-9)
    return ((rep - mean) * weight).astype(np.float32)


def _grid_positions(H: int, W: int, n: int, params: CoregParams) -> tuple[np.ndarray, np.ndarray]:
    spacing = params.spacing_px
    if spacing is None:
        spacing = max(
            params.window_px // 2,
            math.ceil(math.sqrt(max(H - n, 1) * max(W - n, 1) / params.max_tiepoints)),
        )
    margin = 0

    def axis(L: int) -> np.ndarray:
        span = L - n - 2 * margin
        if span < 0:
            return np.array([max(0, (L - n) // 2)])
        k = max(1, span // spacing + 1)
        start = margin + (span - (k - 1) * spacing) // 2
        return start + spacing * np.arange(k)

    return axis(H), axis(W)


def _measure_tiepoints(
    reference: _Sliceable,
    target: _Sliceable,
    reference_valid: _Sliceable | None,
    target_valid: _Sliceable | None,
    coarse: tuple[int, int] | np.ndarray,
    params: CoregParams,
    stash: _WindowStash | None = None,
    lines: tuple[LineWork | None, LineWork | None] = (None, None),
    pull: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Measure the tie-point grid; ``coarse`` is one (row, col) offset or one per window.
    The reference's windows come from ``stash`` when the coarse pass filled it. ``lines``:
    the line work of the reference and the target (None = an image, matched on gradients).
    With ``pull`` (an affine pull matrix, 2 x 3), each target window is resampled through it
    instead of cut at an offset, and the residual shift measured there is turned back into
    a tie point of the original target."""
    H, W = reference.shape[-2], reference.shape[-1]
    n = params.window_px
    rows0, cols0, halo, m = _tie_geometry(H, W, params)
    offsets = np.broadcast_to(
        np.asarray(coarse, dtype=np.int64).reshape(-1, 2), (rows0.size * cols0.size, 2)
    )
    search = params.search_px if params.search_px is not None else n // 4
    lines_r, lines_t = lines
    # sparse line work: a flat-topped window keeps the strokes near the window's edges, which
    # a Hann window all but removes (see "Line work" in the module docstring)
    apod = _hann2d(n, n) if lines_r is None and lines_t is None else _tukey2d(n, n)
    pos = [(r, c) for r in rows0 for c in cols0]
    if stash is not None and not (
        stash.complete and stash.key == ((H, W), n, params.spacing_px, params.max_tiepoints, halo)
    ):
        stash = None
    if stash is None:
        reference = _banded(reference)
        reference_valid = None if reference_valid is None else _banded(reference_valid)
    target = _banded(target)
    target_valid = None if target_valid is None else _banded(target_valid)
    table = np.zeros(len(pos), dtype=TIEPOINT_DTYPE)
    erode = math.ceil(2 * params.sigma_px) + 1

    def read(b0: int) -> tuple[np.ndarray, ...]:
        batch = pos[b0 : b0 + _BATCH]
        k = len(batch)
        gref = np.zeros((k, m, m), np.float32)
        vref = np.zeros((k, m, m), bool)
        gtgt = np.zeros((k, m, m), np.float32)
        vtgt = np.zeros((k, m, m), bool)
        off = offsets[b0 : b0 + k]
        for i, (r, c) in enumerate(batch):
            if stash is not None:
                gref[i], vref[i] = stash.grey[b0 + i], stash.ok[b0 + i]
            else:
                gref[i], vref[i] = _read_window(
                    reference, reference_valid, r - halo, c - halo, m, m
                )
            if pull is not None:
                gtgt[i], vtgt[i] = _read_pulled_window(
                    target, target_valid, pull, r - halo, c - halo, m
                )
                continue
            oy, ox = int(off[i, 0]), int(off[i, 1])
            gtgt[i], vtgt[i] = _read_window(
                target, target_valid, r - oy - halo, c - ox - halo, m, m
            )
        return gref, vref, gtgt, vtgt

    def measure(
        b0: int, gref: np.ndarray, vref: np.ndarray, gtgt: np.ndarray, vtgt: np.ndarray
    ) -> None:
        batch = pos[b0 : b0 + _BATCH]
        k = len(batch)
        off = offsets[b0 : b0 + k]
        inner = (slice(None), slice(halo, halo + n), slice(halo, halo + n))
        rep_r, raw_r = _window_representation(gref, vref, lines_r, params)
        rep_t, raw_t = _window_representation(gtgt, vtgt, lines_t, params)
        rep_r, rep_t = rep_r[inner], rep_t[inner]
        vr, vt = vref[inner], vtgt[inner]
        wr = _weights(vr, erode, apod)
        wt = _weights(vt, erode, apod)
        a = _center(rep_r, wr)
        bb = _center(rep_t, wt)
        pk = _phase_correlate(a, bb, search, params.upsample, 4, params.spectral_sigma)
        sl = slice(b0, b0 + k)
        rr = np.array([p[0] for p in batch], dtype=np.float64)
        cc = np.array([p[1] for p in batch], dtype=np.float64)
        table["x"][sl] = cc + (n - 1) / 2.0
        table["y"][sl] = rr + (n - 1) / 2.0
        if pull is not None:
            # the resampled window shows target pixel pull(p) at p: the ground at the centre
            # p_c lies at target pixel pull(p_c - residual)
            p_c = np.column_stack([cc, rr]) + (n - 1) / 2.0
            q_c = _apply_affine(pull, p_c - np.column_stack([pk.dx, pk.dy]))
            table["dx"][sl] = p_c[:, 0] - q_c[:, 0]
            table["dy"][sl] = p_c[:, 1] - q_c[:, 1]
        else:
            table["dx"][sl] = pk.dx + off[:, 1]
            table["dy"][sl] = pk.dy + off[:, 0]
        table["peak"][sl] = pk.peak
        table["snr"][sl] = pk.snr
        table["ratio"][sl] = pk.ratio
        table["valid"][sl] = np.minimum(vr.mean(axis=(1, 2)), vt.mean(axis=(1, 2)))
        # texture: mean raw gradient magnitude (or ink) inside the window (for "featureless")
        tex_r = (raw_r[inner] * vr).sum(axis=(1, 2)) / np.maximum(vr.sum(axis=(1, 2)), 1)
        tex_t = (raw_t[inner] * vt).sum(axis=(1, 2)) / np.maximum(vt.sum(axis=(1, 2)), 1)
        status = np.full(k, "candidate", dtype="U12")
        status[pk.at_edge] = "edge"
        status[pk.ratio > params.max_peak_ratio] = "ambiguous"
        status[pk.snr < params.min_snr] = "weak"
        table["status"][sl] = status
        table["res_x"][sl] = tex_r  # temporarily: texture
        table["res_y"][sl] = tex_t

    # Batches are measured on two worker threads while the next ones are read (the FFTs and
    # filters release the GIL); the windows are read in order on this thread (the band caches
    # are not thread-safe). Two threads, not one per core: each holds a batch, and the FFTs
    # use every core already. Memory: three batches of windows.
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        pending: list[Any] = []
        for b0 in range(0, len(pos), _BATCH):
            windows = read(b0)
            if len(pending) >= workers:
                pending.pop(0).result()
            pending.append(pool.submit(measure, b0, *windows))
        for job in pending:
            job.result()
    table["status"][_featureless(table, lines, params)] = "featureless"
    table["res_x"] = np.nan
    table["res_y"] = np.nan
    table["status"][table["valid"] < params.min_valid_fraction] = "nodata"
    return table, (len(rows0), len(cols0))


def _window_representation(
    g: np.ndarray, v: np.ndarray, work: LineWork | None, params: CoregParams
) -> tuple[np.ndarray, np.ndarray]:
    """Matched representation of a batch of windows (K, m, m) and its raw strength (the
    gradient magnitude, or the ink density of line work) for the "featureless" test."""
    if work is not None:
        ink = ink_representation(g, v, line_work=work, sigma_px=params.sigma_px, axes=(1, 2))
        return ink, ink
    raw = _raw_gradient(g, v, params.sigma_px)
    return _normalise(raw, v, params.normalise_px), raw


def _featureless(
    table: np.ndarray,
    lines: tuple[LineWork | None, LineWork | None],
    params: CoregParams,
) -> np.ndarray:
    """Windows with nothing to match, from the textures the measuring pass left in res_x
    (reference) and res_y (target).

    Images: the weaker side's mean gradient magnitude under 5 % of its median over the
    windows with data. Line work: less ink than a line across a third of the window.
    """
    out = np.zeros(table.size, bool)
    if not table.size:
        return out
    textures = [table["res_x"], table["res_y"]]
    images = [t for t, work in zip(textures, lines, strict=True) if work is None]
    if images:
        texture = np.minimum(*images) if len(images) == 2 else images[0]
        with_data = table["valid"] >= params.min_valid_fraction
        ref_level = float(np.median(texture[with_data])) if with_data.any() else 0.0
        out |= texture < 0.05 * ref_level + 1e-6
    min_ink = _MIN_INK_SPAN / params.window_px  # a line 1 px wide across a third of it
    for t, work in zip(textures, lines, strict=True):
        if work is not None:
            out |= t < min_ink
    return out


def _raw_gradient(g: np.ndarray, v: np.ndarray, sigma: float) -> np.ndarray:
    # fill invalid with the window's valid mean so mask borders make no edges
    s = v.sum(axis=(1, 2), keepdims=True)
    mean = (g * v).sum(axis=(1, 2), keepdims=True) / np.maximum(s, 1)
    g = np.where(v, g, mean).astype(np.float32)
    return _gradient_magnitude(g, sigma, (1, 2))


def _gradient_magnitude(g: np.ndarray, sigma: float, ax: tuple[int, ...]) -> np.ndarray:
    """Magnitude of the derivative-of-Gaussian gradient over axes ``ax`` (rows, cols) only."""
    # Gaussian smoothing then central differences: two filter passes instead of the four of
    # a derivative-of-Gaussian pair, same result to within the kernel truncation.
    g = np.asarray(g, dtype=np.float32)
    if sigma > 0:
        g = ndimage.gaussian_filter(g, sigma, axes=ax, truncate=3.0)
    gy, gx = np.gradient(g, axis=ax)
    return np.hypot(gx, gy).astype(np.float32, copy=False)


def _normalise(mag: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    size = 2 * round(scale) + 1
    local = ndimage.uniform_filter(mag, size=(1, size, size))
    valid_mag = mag[:, ::3, ::3][v[:, ::3, ::3]]
    floor = 0.25 * float(np.median(valid_mag)) if valid_mag.size else 0.0
    return np.where(v, mag / (local + np.float32(floor + 1e-6)), 0).astype(np.float32)


def _local_consistency(
    values: np.ndarray, cand: np.ndarray, grid: tuple[int, int], tol: float, loose: float
) -> np.ndarray:
    """Keep candidates within ``tol`` of what their grid neighbours predict.

    A candidate passes when it is close either to its neighbours' median (robust to an
    outlier among them) or to the plane fitted through them (exact for any linear trend, so
    points at the edge of a smoothly warped grid are not lost); a candidate with fewer than
    two candidate neighbours must lie within ``loose`` of zero (values are detrended).
    """
    ny, nx = grid
    vx = np.full((ny + 2, nx + 2), np.nan)
    vy = np.full((ny + 2, nx + 2), np.nan)
    vx[1:-1, 1:-1] = np.where(cand, values[:, 0], np.nan).reshape(ny, nx)
    vy[1:-1, 1:-1] = np.where(cand, values[:, 1], np.nan).reshape(ny, nx)
    nbx, nby, offs = [], [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            nbx.append(vx[1 + di : ny + 1 + di, 1 + dj : nx + 1 + dj].ravel())
            nby.append(vy[1 + di : ny + 1 + di, 1 + dj : nx + 1 + dj].ravel())
            offs.append((1.0, float(di), float(dj)))
    sx, sy = np.stack(nbx, axis=1), np.stack(nby, axis=1)  # (n, 8)
    have = np.isfinite(sx)
    count = have.sum(axis=1)
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mx = np.nanmedian(sx, axis=1)
        my = np.nanmedian(sy, axis=1)
    dev_med = np.hypot(values[:, 0] - mx, values[:, 1] - my)
    # plane through the neighbours, evaluated at the centre: batched 3x3 normal equations
    design = np.asarray(offs)  # (8, 3)
    wgt = have.astype(np.float64)
    normal = np.einsum("nk,ki,kj->nij", wgt, design, design)
    rhs = np.stack(
        [
            np.einsum("nk,ki->ni", wgt * np.nan_to_num(sx), design),
            np.einsum("nk,ki->ni", wgt * np.nan_to_num(sy), design),
        ],
        axis=2,
    )  # (n, 3, 2)
    det = np.linalg.det(normal)
    solvable = (count >= 4) & (np.abs(det) > 1e-6)
    normal[~solvable] = np.eye(3)
    coef = np.linalg.solve(normal, rhs)  # (n, 3, 2)
    dev_plane = np.hypot(values[:, 0] - coef[:, 0, 0], values[:, 1] - coef[:, 0, 1])
    dev_plane = np.where(solvable, dev_plane, np.inf)
    mag = np.hypot(values[:, 0], values[:, 1])
    ok = np.where(count >= 2, np.minimum(dev_med, dev_plane) <= tol, mag <= loose)
    return cand & ok


def coregister(
    reference: _Sliceable,
    target: _Sliceable,
    *,
    reference_valid: _Sliceable | None = None,
    target_valid: _Sliceable | None = None,
    params: CoregParams = CoregParams(),
) -> CoregResult:
    """Estimate the misregistration of ``target`` against ``reference`` on one pixel grid.

    Parameters
    ----------
    reference, target : array, shape (rows, cols) or (bands, rows, cols)
        Intensities on the same grid (grey, RGB uint8, DSM heights, or any representation;
        RGB is averaged to grey and the illumination-robust gradient representation is built
        inside, window by window). Either may be a permit map (line work on a plain
        background, 1 or 3 bands, either polarity): it is found by :func:`detect_line_work`
        (or declared by ``params.reference_kind``/``target_kind``) and matched on its ink
        (see "Line work" in the module docstring; ``CoregResult.representation`` says what
        was matched). Any sliceable array works (ndarray, np.memmap, dask array): only
        windows and strips are read, so memory stays bounded for large rasters. NaN counts
        as invalid.
    reference_valid, target_valid : array of bool, shape (rows, cols), optional
        Validity masks (True = data); default all valid.
    params : CoregParams

    Returns
    -------
    CoregResult
        Shift, model, residuals, tie points and confidence. See the module docstring for the
        sign conventions.

    Raises
    ------
    InsufficientOverlapError
        No valid pixels, or the valid areas overlap on less than ``params.min_overlap``.
    GridMismatchError
        The two arrays do not have the same grid shape.
    CoregistrationError
        Under ``params.strict`` when no reliable model could be estimated.
    """
    from change_detection.errors import GridMismatchError

    shape = (int(reference.shape[-2]), int(reference.shape[-1]))
    if (int(target.shape[-2]), int(target.shape[-1])) != shape:
        raise GridMismatchError(
            f"reference grid {shape} and target grid {tuple(target.shape[-2:])} differ; "
            "bring the target onto the reference grid first (change_detection.align_epoch)"
        )
    for name, v in (("reference_valid", reference_valid), ("target_valid", target_valid)):
        if v is not None and tuple(v.shape) != shape:
            raise GridMismatchError(f"{name} has shape {tuple(v.shape)}, expected {shape}")
    warnings: list[str] = []
    small = min(shape)
    if small < 2 * params.window_px:
        # small rasters: windows of at most half the short side (never below 32 px)
        fit_px = max(32, 2 ** math.floor(math.log2(max(small // 2, 32))))
        if fit_px < params.window_px:
            params = _replace(params, window_px=fit_px)
    # A lazy reference is decoded once: the coarse pass keeps its tie-point windows.
    stash = _WindowStash.for_grid(shape, params) if _chunked(reference, reference_valid) else None
    coarse = _coarse_shift(reference, target, reference_valid, target_valid, params, stash)
    if not coarse.reliable:
        if coarse.ratio > params.max_peak_ratio:
            warnings.append(
                f"{_COARSE_DOUBT} has several similar peaks (repeating pattern?); "
                "the global shift may be ambiguous"
            )
        else:
            warnings.append(f"{_COARSE_DOUBT} peak is weak")
    if coarse.overlap < 0.5:
        warnings.append(f"the epochs overlap on only {coarse.overlap:.0%} of the valid area")
    ci = (round(coarse.shift[1]), round(coarse.shift[0])) if coarse.reliable else (0, 0)
    if not coarse.reliable and params.search_px is None:
        # nothing trustworthy to centre on: search the widest range the windows allow
        params = _replace(params, search_px=params.window_px // 2 - 2)
    table, grid = _measure_tiepoints(
        reference, target, reference_valid, target_valid, ci, params, stash, coarse.lines
    )
    guided = _guided_offsets(table, ci, params)
    if guided is not None:
        # A rotation or scale moves the corners of a large raster further than the search
        # range around one global shift: measure again, each window cut where a robust affine
        # fit of the first pass puts it.
        log.debug("second tie-point pass at affine-predicted offsets")
        table, grid = _measure_tiepoints(
            reference, target, reference_valid, target_valid, guided, params, stash, coarse.lines
        )
    if coarse.reference_lines is not None or coarse.target_lines is not None:
        pull = _robust_affine(table, params)
        if pull is not None:
            # Line work against an image: broad, unlike peaks lose what a rotation or scale
            # smears inside a window, so the windows are measured once more on the target
            # resampled through the first estimate (see "Line work" in the module docstring).
            log.debug("tie-point pass on the target resampled through the first affine fit")
            table, grid = _measure_tiepoints(
                reference,
                target,
                reference_valid,
                target_valid,
                ci,
                params,
                stash,
                coarse.lines,
                pull=pull,
            )
    return _fit(table, grid, shape, coarse, warnings, params)


def _guided_offsets(
    table: np.ndarray, first: tuple[int, int], params: CoregParams
) -> np.ndarray | None:
    """Per-window (row, col) offsets from a robust affine fit of a first pass, if they differ.

    None when the first pass is too poor to fit, or when the affine offsets stay within a
    quarter of the search range of the first pass's single offset everywhere.
    """
    m = _robust_affine(table, params)
    if m is None:
        return None
    p = np.column_stack([table["x"], table["y"]])
    shift = p - _apply_affine(m, p)  # (n, 2) as (x, y)
    guided = np.column_stack([np.round(shift[:, 1]), np.round(shift[:, 0])]).astype(np.int64)
    search = params.search_px if params.search_px is not None else params.window_px // 4
    if np.abs(guided - np.asarray(first)).max() <= max(2, search // 4):
        return None
    return guided


def _robust_affine(table: np.ndarray, params: CoregParams) -> np.ndarray | None:
    """Pull matrix (2, 3) of a loose RANSAC affine fit of a pass's candidate tie points, or
    None when there are too few of them."""
    cand = table["status"] == "candidate"
    if cand.sum() < max(params.min_tiepoints, 4):
        return None
    p = np.column_stack([table["x"], table["y"]])
    q = p - np.column_stack([table["dx"], table["dy"]])
    rng = np.random.default_rng(params.seed)
    inl = _ransac_affine(p[cand], q[cand], max(4 * params.ransac_threshold_px, 3.0), rng)
    if inl.sum() < max(params.min_tiepoints, 4):
        return None
    return _fit_affine(p[cand][inl], q[cand][inl])


_COARSE_DOUBT = "the whole-image correlation"


def _replace_coarse(coarse: _Coarse, **kw: Any) -> _Coarse:
    from dataclasses import replace

    return replace(coarse, **kw)


def _replace(params: CoregParams, **kw: Any) -> CoregParams:
    from dataclasses import replace

    return replace(params, **kw)


def _fit(
    table: np.ndarray,
    grid: tuple[int, int],
    shape: tuple[int, int],
    coarse: _Coarse,
    warnings: list[str],
    params: CoregParams,
) -> CoregResult:
    rng = np.random.default_rng(params.seed)
    cand = table["status"] == "candidate"
    p_all = np.column_stack([table["x"], table["y"]])
    q_all = p_all - np.column_stack([table["dx"], table["dy"]])
    n_meas = int(np.isin(table["status"], ("candidate", "ambiguous", "weak", "edge")).sum())
    n_amb = int((table["status"] == "ambiguous").sum())
    if n_amb > 0.3 * max(n_meas, 1):
        warnings.append(
            f"{n_amb} of {n_meas} tie windows have several similar correlation peaks "
            "(repeating pattern); their shifts were not used"
        )
    thr = params.ransac_threshold_px
    if cand.sum() >= max(params.min_tiepoints, 3):
        loose = max(4 * thr, 3.0)
        idx = np.flatnonzero(cand)
        inl = _ransac_affine(p_all[idx], q_all[idx], loose, rng)
        trend = _fit_affine(p_all[idx][inl], q_all[idx][inl]) if inl.sum() >= 3 else None
        if trend is not None:
            detr = q_all - _apply_affine(trend, p_all)
            cons = _local_consistency(detr, cand, grid, params.consistency_px, loose)
            table["status"][cand & ~cons] = "inconsistent"
            cand = cons
    idx = np.flatnonzero(cand)
    if idx.size < params.min_tiepoints:
        return _failure(table, shape, coarse, warnings, params, n_meas)
    p, q = p_all[idx], q_all[idx]
    # robust evaluation set: inliers of the most flexible model allowed
    flex = (
        "warp"
        if params.model in ("auto", "warp") and idx.size >= 16
        else ("affine" if params.model in ("auto", "affine", "warp") else "translation")
    )
    if flex == "translation":
        keep = _ransac_translation(p, q, thr)
    else:
        keep = _ransac_affine(p, q, max(2 * thr, 2.0) if flex == "warp" else thr, rng)
        if flex == "warp":
            keep = np.ones(idx.size, bool) if keep.sum() < 0.5 * idx.size else keep
    for _ in range(4):
        if keep.sum() < params.min_tiepoints:
            break
        fit = _fit_model(flex, p[keep], q[keep], shape, params.warp_smoothness)
        full = _predict_residual(fit.mapping, p, q)
        e = np.hypot(full[:, 0], full[:, 1])
        mad = 1.4826 * float(np.median(e[keep])) if keep.any() else thr
        new = e <= max(min(thr, 3 * mad + 0.05), 0.1) if flex != "translation" else e <= thr
        if np.array_equal(new, keep):
            break
        keep = new
    if keep.sum() < params.min_tiepoints:
        table["status"][idx] = "outlier"
        return _failure(table, shape, coarse, warnings, params, n_meas)
    pe, qe = p[keep], q[keep]
    candidates = ["translation", "affine", "warp"] if params.model == "auto" else [params.model]
    if pe.shape[0] < 16:
        candidates = [c for c in candidates if c != "warp"] or ["affine"]
    fits = {c: _fit_model(c, pe, qe, shape, params.warp_smoothness) for c in candidates}
    scores = {c: _bic(f.residual, f.dof) for c, f in fits.items()}
    chosen = min(scores, key=lambda c: scores[c])
    log.debug("model scores (BIC): %s -> %s", scores, chosen)
    # final fit of the chosen model on its own inliers
    used = keep.copy()
    fit = fits[chosen]
    for _ in range(3):
        res = _predict_residual(fit.mapping, p, q)
        new = np.hypot(res[:, 0], res[:, 1]) <= thr
        if new.sum() < params.min_tiepoints or np.array_equal(new, used):
            break
        used = new
        fit = _fit_model(chosen, p[used], q[used], shape, params.warp_smoothness)
    res = _predict_residual(fit.mapping, p, q)
    table["status"][idx] = np.where(used, "used", "outlier")
    table["used"][idx] = used
    # residual in shift units: measured shift - model shift = -(q_meas - q_model)
    table["res_x"][idx] = -res[:, 0]
    table["res_y"][idx] = -res[:, 1]
    n_used = int(used.sum())
    rmse = float(np.sqrt(np.mean(np.sum(res[used] ** 2, axis=1))))
    mapping = fit.mapping
    cx, cy = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    qx, qy = mapping.pull(np.array([cx]), np.array([cy]))
    sx, sy = float(cx - qx[0]), float(cy - qy[0])
    if coarse.reliable and math.hypot(sx - coarse.shift[0], sy - coarse.shift[1]) > max(
        2.0 * coarse.factor, 3.0
    ):
        warnings.append(
            f"the tie points' shift ({sx:.1f}, {sy:.1f}) px disagrees with the whole-image "
            f"estimate ({coarse.shift[0]:.1f}, {coarse.shift[1]:.1f}) px"
        )
    if not coarse.reliable and n_used >= max(20, 0.5 * n_meas):
        # The whole-image peak was doubtful (and not used), but most tie windows have one
        # clear peak each and agree on one model: they settled it, so the doubt is withdrawn.
        warnings[:] = [w for w in warnings if not w.startswith(_COARSE_DOUBT)]
        coarse = _replace_coarse(coarse, reliable=True)
    confidence = _confidence(table, used, p[used], rmse, shape, n_meas, coarse, params)
    confidence = _repeat_doubt(coarse, confidence, warnings)
    if n_used < 2 * params.min_tiepoints:
        warnings.append(f"only {n_used} tie points were reliable")
    if n_meas and n_used < 0.3 * n_meas:
        warnings.append(
            f"only {n_used} of {n_meas} measurable tie windows agree; the images may differ "
            "too much (different kind of image, large changes or shadows)"
        )
    if confidence < 0.5:
        warnings.append(f"low co-registration confidence ({confidence:.2f}); check the result")
    return CoregResult(
        shift_x_px=sx,
        shift_y_px=sy,
        model=chosen,
        parameters=_parameters(mapping, sx, sy, scores),
        rmse_px=rmse,
        n_tiepoints=int(table.size),
        n_used=n_used,
        confidence=confidence,
        warnings=tuple(warnings),
        tiepoints=table,
        shape=shape,
        coarse_shift_px=coarse.shift,
        representation=coarse.representation,
        mapping=mapping,
    )


def _repeat_doubt(coarse: _Coarse, confidence: float, warnings: list[str]) -> float:
    """Confidence capped at :data:`_REPEAT_CONFIDENCE`, and a warning, when line work
    repeats itself (see :func:`_self_repeat`)."""
    for side, repeat in (("reference", coarse.reference_repeat), ("target", coarse.target_repeat)):
        if repeat is not None and repeat[0] >= _REPEAT_RATIO:
            warnings.append(
                f"the {side}'s line work repeats itself every ({repeat[1]:.0f}, "
                f"{repeat[2]:.0f}) px (x, y), a regular pattern: a shift by whole repeats "
                "cannot be told apart, so the result may be off by one"
            )
            confidence = min(confidence, _REPEAT_CONFIDENCE)
    return confidence


def _predict_residual(mapping: _Mapping, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    qx, qy = mapping.pull(p[:, 0], p[:, 1])
    return q - np.column_stack([qx, qy])


def _confidence(
    table: np.ndarray,
    used: np.ndarray,
    pu: np.ndarray,
    rmse: float,
    shape: tuple[int, int],
    n_meas: int,
    coarse: _Coarse,
    params: CoregParams,
) -> float:
    """Confidence in 0..1 as a product of plain factors.

    count: 1 - exp(-n_used / 8); agreement: (n_used / measurable windows) ** 0.5;
    residual: 1 / (1 + (rmse / 0.5 px) ** 2); spread: share of the 3x3 cells of the used
    tie points' bounding grid that hold a used tie point, ** 0.5; capped at 0.3 when the
    whole-image peak was ambiguous and the tie points were few.
    """
    n_used = int(used.sum())
    c_count = 1.0 - math.exp(-n_used / 8.0)
    c_agree = math.sqrt(n_used / max(n_meas, n_used, 1))
    c_res = 1.0 / (1.0 + (rmse / 0.5) ** 2)
    meas = table[
        np.isin(table["status"], ("used", "outlier", "inconsistent", "ambiguous", "weak", "edge"))
    ]
    if meas.size:
        x0, x1 = float(meas["x"].min()), float(meas["x"].max())
        y0, y1 = float(meas["y"].min()), float(meas["y"].max())
        cx = np.clip(((pu[:, 0] - x0) / max(x1 - x0, 1e-9) * 3).astype(int), 0, 2)
        cy = np.clip(((pu[:, 1] - y0) / max(y1 - y0, 1e-9) * 3).astype(int), 0, 2)
        nx = 3 if x1 - x0 > params.window_px else 1
        ny = 3 if y1 - y0 > params.window_px else 1
        cells = len({(int(a) * ny // 3, int(b) * nx // 3) for a, b in zip(cy, cx, strict=True)})
        c_spread = math.sqrt(cells / (nx * ny))
    else:
        c_spread = 0.0
    conf = c_count * c_agree * c_res * c_spread
    if not coarse.reliable and coarse.ratio > params.max_peak_ratio and n_used < 20:
        conf = min(conf, 0.3)
    return float(np.clip(conf, 0.0, 1.0))


def _parameters(
    mapping: _Mapping, sx: float, sy: float, scores: dict[str, float]
) -> dict[str, Any]:
    m = mapping.matrix
    out: dict[str, Any] = {"shift_x_px": sx, "shift_y_px": sy}
    if mapping.kind in ("affine", "warp"):
        a = m[:, :2]
        # push map (target -> reference) is the inverse of the pull map
        ainv = np.linalg.inv(a)
        push = np.column_stack([ainv, -ainv @ m[:, 2]])
        out["pull_matrix"] = m.tolist()
        out["push_matrix"] = push.tolist()
        out["rotation_deg"] = float(math.degrees(math.atan2(push[1, 0], push[0, 0])))
        out["scale_x"] = float(math.hypot(push[0, 0], push[1, 0]))
        out["scale_y"] = float(math.hypot(push[0, 1], push[1, 1]))
    if mapping.kind == "warp":
        assert mapping.grid_x is not None and mapping.grid_y is not None
        assert mapping.field is not None
        out["grid_x"] = mapping.grid_x.tolist()
        out["grid_y"] = mapping.grid_y.tolist()
        out["grid_dx"] = mapping.field[0].tolist()
        out["grid_dy"] = mapping.field[1].tolist()
        out["max_warp_px"] = float(np.abs(mapping.field).max())
    out["bic"] = {k: float(v) for k, v in scores.items()}
    return out


def _failure(
    table: np.ndarray,
    shape: tuple[int, int],
    coarse: _Coarse,
    warnings: list[str],
    params: CoregParams,
    n_meas: int,
) -> CoregResult:
    counts = {s: int((table["status"] == s).sum()) for s in np.unique(table["status"])}
    why = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    msg = (
        f"no reliable co-registration: fewer than {params.min_tiepoints} consistent tie points "
        f"({why})"
    )
    if params.strict:
        raise CoregistrationError(
            msg + "; the images may be featureless, periodic or too different; try a larger "
            "--window-px or check that both rasters show the same site"
        )
    if coarse.reliable:
        sx, sy = coarse.shift
        conf = 0.2
        model = "translation"
        warnings.append(msg + "; only the coarse whole-image shift was applied")
    else:
        sx, sy = 0.0, 0.0
        conf = 0.0
        model = "identity"
        warnings.append(msg + "; the target was left unshifted")
    return CoregResult(
        shift_x_px=sx,
        shift_y_px=sy,
        model=model,
        parameters={"shift_x_px": sx, "shift_y_px": sy},
        rmse_px=float("nan"),
        n_tiepoints=int(table.size),
        n_used=0,
        confidence=conf,
        warnings=tuple(warnings),
        tiepoints=table,
        shape=shape,
        coarse_shift_px=coarse.shift,
        representation=coarse.representation,
        mapping=translation_mapping(sx, sy),
    )


# --------------------------------------------------------------------------------------------
# DSM vertical offset
# --------------------------------------------------------------------------------------------


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
        from change_detection.errors import GridMismatchError

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
