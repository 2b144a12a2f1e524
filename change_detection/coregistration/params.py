"""Parameters of :func:`~change_detection.coregistration.coregister`, its tie-point table."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np

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
        the other input's edges (see "Line work" in the package docstring); ``auto``:
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


def _tie_geometry(H: int, W: int, params: CoregParams) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Tie-point grid: window rows, window columns, the halo read around each window and the
    side of what is read (window plus two halos)."""
    n = params.window_px
    rows0, cols0 = _grid_positions(H, W, n, params)
    halo = min(math.ceil(3 * params.sigma_px + params.normalise_px) + 2, n)
    return rows0, cols0, halo, n + 2 * halo


def _replace(params: CoregParams, **kw: Any) -> CoregParams:
    return replace(params, **kw)
