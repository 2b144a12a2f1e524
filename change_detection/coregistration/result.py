"""The result of :func:`~change_detection.coregistration.coregister` and its pull map."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from change_detection.coregistration.params import _Sliceable
from change_detection.coregistration.warp import warp_array


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
