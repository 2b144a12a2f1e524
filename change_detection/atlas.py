"""The offset between a permit atlas and a survey, measured on the buildings' outlines.

(One subject, about 690 lines: one measurement, per outline then combined, with the method
and its figures written out below.)

A 1 m GNSS (or atlas) error makes a compliant wall look 1 m outside its footprint. Where the
footprints of permitted or existing buildings are known, :func:`estimate_atlas_offset`
measures the shift that puts their outlines on the building edges of the survey's height
above ground (DSM − DTM), and says whether it is well determined.

Method, per outline (only a window around it is read: its bounds plus ``max_offset_m`` and a
margin):

1. The height above ground is clipped to ``[0, 2 · min_height_m]`` (every wall counts about
   the same; roofs, trees and tall walls do not dominate), NaN filled from the nearest value,
   and smoothed (Gaussian, sigma ``EDGE_SIGMA_M`` and at least one pixel); its negative
   gradient is the *edge field*, pointing from the high side to the low side of every wall.
2. The outline's boundary is sampled every half pixel with its outward normal. The fit of
   the outline shifted by ``s`` is the sum over the samples of ``normal · edge(p + s)``: it
   is large where the outline's walls lie on walls that fall outward. Computed for every
   whole-pixel shift within ``±max_offset_m`` at once by FFT correlation (the samples are
   splatted bilinearly, so this equals bilinear sampling of the edge field), then refined to
   a fraction of a pixel by a quadratic fit of the 3 x 3 peak (the edge field is smooth, so
   the peak is too); the same fit's curvature says whether the shift is pinned in both
   directions. An outline pinned in one direction only (a unit of a terrace, whose side walls
   are shared) is fitted again with the orthophoto's edges when ``rgb`` is given:
   ``(normal · ∇grey)²`` (sign-free: a roof may be darker or brighter than the ground), each
   fit normalised to its peak, the image at half weight. The orthophoto is not used
   otherwise: added to every fit it pulled the offset on the synthetic site by 0.05-0.26 m
   (cast shadows and roof markings are edges too) where the heights alone were within
   0.006 m.
3. At that shift the outline is *used* when the survey holds it (at least half of its
   boundary on valid data), a structure stands under it (``h ≥ min_height_m`` over at least
   half of it; an outline of a building not yet built or demolished is left out), its
   walls are found (an inside-to-outside drop of at least ``min_height_m / 2`` on at least
   ``MIN_EDGE_AGREEMENT`` of its boundary: that fraction is its ``score``), and the fit is
   pinned in both directions.

Then across outlines: the median of the per-outline shifts is a first consensus; each outline
is searched again within ``NEAR_M`` of it (an unpermitted extension attached to a building
adds a second, equal fit as far away as the extension is long; near the consensus the
outline fits the original part), outlines farther than ``max(GATE_M, 3 x the median
deviation)`` from the median are dropped as disagreeing, and the offset is the mean of the
rest, with their RMS deviation about it as the residual. It is ``reliable`` when at least
``MIN_OUTLINES`` outlines are used and the residual is at most ``RELIABLE_RESIDUAL_M``: more
disagreement than that (a rotated or scaled atlas, a wrong atlas) is not something one shift
removes, so the caller then applies nothing.

Measured (``benchmarks/bench_ground.py`` and the tests): a planted shift of about 1 m in both
axes is recovered within 0.01 m on planted buildings at 10 and 5 cm (rectangles, an L-shape,
extensions attached at the same and at a lower height, a tree and a shed beside outlines, an
outline of a building that is not there; each outline within 0.05 m) and within 0.006 m on
the synthetic site (existing buildings and permits on DSM − DTM from
:func:`change_detection.terrain.derive_dtm`); with the atlas also rotated by 0.3° the
residual (0.16 m) reports the rotation. An outline shifted
beyond ``max_offset_m`` can match the wrong walls (an edge agreement of 0.5-0.6 was seen,
against 0.7-1.0 for true fits), which is why one outline is never enough.

(The module is over 500 lines: the outline geometry, the per-outline fit and the consensus
are one measurement, documented in full here, and read best together.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine
from rasterio import features as rio_features
from scipy import fft as sp_fft
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from change_detection.errors import ChangeDetectionError

__all__ = [
    "EDGE_SIGMA_M",
    "GATE_M",
    "MIN_EDGE_AGREEMENT",
    "MIN_OUTLINES",
    "NEAR_M",
    "RELIABLE_RESIDUAL_M",
    "AtlasOffset",
    "OutlineMatch",
    "estimate_atlas_offset",
]

log = logging.getLogger(__name__)

#: Smoothing of the height above ground before its gradient is taken (metres; >= 1 pixel).
EDGE_SIGMA_M = 0.1
#: Fewest outlines whose agreement makes the offset reliable.
MIN_OUTLINES = 3
#: Largest RMS deviation of the used outlines about the offset for it to be reliable (m).
RELIABLE_RESIDUAL_M = 0.5
#: Outlines are searched again within this distance of the first consensus (m).
NEAR_M = 1.0
#: Smallest gate (m) beyond which an outline disagrees with the median of the others.
GATE_M = 0.5
#: Smallest fraction of an outline's boundary on a wall for the outline to be used.
MIN_EDGE_AGREEMENT = 0.3
#: Smallest fraction of an outline covered by a structure for the outline to be used.
MIN_COVER = 0.5
#: Smallest ratio of the weaker to the stronger curvature of the fit's peak: below it the
#: outline is pinned in one direction only (its walls are all parallel, or slide along).
MIN_PINNING = 0.05
#: Weight of the orthophoto's edges against the height edges (each normalised to its peak).
RGB_WEIGHT = 0.5


@dataclass(frozen=True)
class OutlineMatch:
    """How one outline fits the survey.

    Attributes
    ----------
    outline_id : str
    dx_m, dy_m : float
        Shift (grid CRS units, metres) that puts this outline on its structure; NaN when
        no fit was found.
    score : float
        Edge agreement at that shift, 0..1: the fraction of the outline's boundary that lies
        on a wall (a drop of at least ``min_height_m / 2`` from inside to outside).
    used : bool
        Whether it contributes to the offset.
    reason : str
        Why it is not used ("" when used).
    """

    outline_id: str
    dx_m: float
    dy_m: float
    score: float
    used: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (NaN written as None)."""
        return {
            "outline_id": self.outline_id,
            "dx_m": _round(self.dx_m),
            "dy_m": _round(self.dy_m),
            "score": _round(self.score),
            "used": self.used,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class AtlasOffset:
    """The offset between an atlas of building outlines and a survey.

    Attributes
    ----------
    dx_m, dy_m : float
        Shift to ADD to the atlas geometries (grid CRS units, metres) to put them on the
        survey (0 when nothing matched).
    residual_m : float
        RMS of the used outlines' shifts about (dx, dy) (NaN when none is used).
    n_used, n_outlines : int
        Outlines used, outlines given.
    reliable : bool
        Well determined: at least ``MIN_OUTLINES`` used and residual at most
        ``RELIABLE_RESIDUAL_M``. The caller applies the offset only when True.
    summary : str
        One line for the report and the log.
    matches : tuple of OutlineMatch
        One per outline, in the order given.
    """

    dx_m: float
    dy_m: float
    residual_m: float
    n_used: int
    n_outlines: int
    reliable: bool
    summary: str
    matches: tuple[OutlineMatch, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for ``provenance.json`` and the report."""
        return {
            "dx_m": _round(self.dx_m),
            "dy_m": _round(self.dy_m),
            "residual_m": _round(self.residual_m),
            "n_used": self.n_used,
            "n_outlines": self.n_outlines,
            "reliable": self.reliable,
            "summary": self.summary,
            "matches": [m.to_dict() for m in self.matches],
            "method": "outline edges on the height above ground (FFT correlation, sub-pixel)",
        }


def _round(x: float, nd: int = 4) -> float | None:
    return None if not math.isfinite(x) else round(float(x), nd)


# --- geometry of one outline ------------------------------------------------------------------


@dataclass(frozen=True)
class _Boundary:
    """Samples of an outline's boundary in window pixel coordinates (col, row)."""

    col: np.ndarray
    row: np.ndarray
    n_col: np.ndarray  # outward normal, pixel axes
    n_row: np.ndarray
    weight: np.ndarray  # boundary length of each sample, pixels


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]


def _apply(t: Affine, xy: np.ndarray) -> np.ndarray:
    """Affine ``t`` applied to points ``xy`` of shape (n, 2)."""
    x, y = xy[:, 0], xy[:, 1]
    return np.column_stack([t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f])


def _sample_boundary(geom: BaseGeometry, to_pixel: Affine, spacing_px: float = 0.5) -> _Boundary:
    """Boundary samples every ``spacing_px`` with outward normals, in pixel coordinates."""
    cols: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    ncs: list[np.ndarray] = []
    nrs: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    for poly in _polygons(geom):
        # exterior counter-clockwise, holes clockwise (map axes): the right-hand normal of
        # every ring then points out of the building
        oriented = orient(poly, sign=1.0)
        for ring in (oriented.exterior, *oriented.interiors):
            xy = np.asarray(ring.coords, dtype=np.float64)
            a, b = xy[:-1], xy[1:]
            pa, pb = _apply(to_pixel, a), _apply(to_pixel, b)
            seg = pb - pa
            length = np.hypot(seg[:, 0], seg[:, 1])
            keep = length > 1e-9
            pa, seg, length = pa[keep], seg[keep], length[keep]
            tx, ty = (b - a)[keep, 0], (b - a)[keep, 1]
            # outward normal in map axes, then in pixel axes (col = +x, row = ±y)
            norm = np.hypot(tx, ty)
            nx, ny = ty / norm, -tx / norm
            n_col = nx * np.sign(to_pixel.a)
            n_row = ny * np.sign(to_pixel.e)
            count = np.maximum(1, np.ceil(length / spacing_px)).astype(int)
            idx = np.repeat(np.arange(length.size), count)
            k = np.arange(idx.size) - np.repeat(np.cumsum(count) - count, count)
            t = (k + 0.5) / count[idx]
            cols.append(pa[idx, 0] + t * seg[idx, 0])
            rows.append(pa[idx, 1] + t * seg[idx, 1])
            ncs.append(n_col[idx])
            nrs.append(n_row[idx])
            ws.append(length[idx] / count[idx])
    if not cols:
        empty = np.zeros(0)
        return _Boundary(empty, empty, empty, empty, empty)
    return _Boundary(*(np.concatenate(x) for x in (cols, rows, ncs, nrs, ws)))


def _splat(shape: tuple[int, int], b: _Boundary, values: np.ndarray) -> np.ndarray:
    """Bilinear splat of ``values`` at the samples (the transpose of bilinear sampling)."""
    out = np.zeros(shape, np.float64)
    # pixel (r, c) has its centre at (c + 0.5, r + 0.5) in window pixel coordinates
    x, y = b.col - 0.5, b.row - 0.5
    c0, r0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - c0, y - r0
    for dr, dc, w in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        r, c = r0 + dr, c0 + dc
        ok = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
        np.add.at(out, (r[ok], c[ok]), (w * values)[ok])
    return out


def _sample(field_: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Bilinear samples of a window array at pixel coordinates (edges replicated)."""
    return ndimage.map_coordinates(field_, [row - 0.5, col - 0.5], order=1, mode="nearest")


def _correlate(template: np.ndarray, image: np.ndarray, reach: int) -> np.ndarray:
    """``out[dr + reach, dc + reach] = sum(template[q] * image[q + (dr, dc)])``, |d| <= reach."""
    shape = template.shape
    ft = sp_fft.rfft2(template)
    fi = sp_fft.rfft2(image)
    full = sp_fft.irfft2(np.conj(ft) * fi, s=shape)
    idx_r = np.arange(-reach, reach + 1) % shape[0]
    idx_c = np.arange(-reach, reach + 1) % shape[1]
    out: np.ndarray = full[np.ix_(idx_r, idx_c)]
    return out


# --- one outline ------------------------------------------------------------------------------


@dataclass
class _Fit:
    """Working record of one outline."""

    outline_id: str
    geom: BaseGeometry
    reason: str = ""
    surface: np.ndarray | None = None  # fit of every whole-pixel shift, (2 reach + 1)^2
    image_surface: np.ndarray | None = None  # the same with the orthophoto's edges added
    height: np.ndarray | None = None  # the window's height above ground (NaN filled)
    valid: np.ndarray | None = None
    window_transform: Affine | None = None
    boundary: _Boundary | None = None
    shift_px: tuple[float, float] = (math.nan, math.nan)  # (col, row)
    score: float = math.nan


def _read(array: Any, rows: slice, cols: slice, band: bool = False) -> np.ndarray:
    window = array[:, rows, cols] if band else array[rows, cols]
    if hasattr(window, "compute"):
        window = window.compute()
    return np.asarray(window)


def _prepare(
    fit: _Fit,
    height: Any,
    rgb: Any,
    transform: Affine,
    shape: tuple[int, int],
    reach: int,
    min_height_m: float,
    sigma_px: float,
) -> None:
    """Read the outline's window and compute its fit for every whole-pixel shift."""
    to_pixel = ~transform
    x0, y0, x1, y1 = fit.geom.bounds
    corners = [to_pixel * (x, y) for x in (x0, x1) for y in (y0, y1)]
    margin = reach + math.ceil(4 * sigma_px) + 3
    c_lo = math.floor(min(c for c, _ in corners)) - margin
    c_hi = math.ceil(max(c for c, _ in corners)) + margin
    r_lo = math.floor(min(r for _, r in corners)) - margin
    r_hi = math.ceil(max(r for _, r in corners)) + margin
    rs = slice(max(0, r_lo), min(shape[0], r_hi))
    cs = slice(max(0, c_lo), min(shape[1], c_hi))
    if rs.stop - rs.start < 3 or cs.stop - cs.start < 3:
        fit.reason = "outside the survey"
        return
    # the window as if the raster extended beyond its edges (no data there)
    wshape = (r_hi - r_lo, c_hi - c_lo)
    h = np.full(wshape, np.nan, np.float32)
    inner = (slice(rs.start - r_lo, rs.stop - r_lo), slice(cs.start - c_lo, cs.stop - c_lo))
    h[inner] = _read(height, rs, cs).astype(np.float32)
    valid = np.isfinite(h)
    wt = transform * Affine.translation(c_lo, r_lo)
    boundary = _sample_boundary(fit.geom, ~wt)
    fit.window_transform, fit.boundary, fit.valid = wt, boundary, valid
    if boundary.weight.size == 0:
        fit.reason = "not a polygon"
        return
    on_data = _sample(valid.astype(np.float32), boundary.col, boundary.row) > 0.5
    if np.sum(boundary.weight * on_data) < 0.5 * np.sum(boundary.weight):
        fit.reason = "outside the survey (less than half of its boundary on valid data)"
        return
    if valid.all():
        filled = h
    else:
        nearest = ndimage.distance_transform_edt(
            ~valid, return_distances=False, return_indices=True
        )
        filled = h[tuple(nearest)]
    fit.height = filled
    # a structure under the outline at some shift in the search range (else it is not built
    # yet, or demolished: said first, whatever else would fail)
    inside = rio_features.geometry_mask([fit.geom], out_shape=wshape, transform=wt, invert=True)
    if inside.any():
        standing = ((filled >= min_height_m) & valid).astype(np.float64)
        cover = float(np.max(_correlate(inside.astype(np.float64), standing, reach)))
        cover /= float(inside.sum())
        if cover < MIN_COVER:
            fit.reason = _no_structure(cover, min_height_m)
            return
    clipped = np.clip(filled, 0.0, 2.0 * min_height_m)
    edge_col = -ndimage.gaussian_filter(clipped, sigma_px, order=(0, 1), mode="nearest")
    edge_row = -ndimage.gaussian_filter(clipped, sigma_px, order=(1, 0), mode="nearest")
    w = boundary.weight
    surface = _correlate(_splat(wshape, boundary, w * boundary.n_col), edge_col, reach)
    surface += _correlate(_splat(wshape, boundary, w * boundary.n_row), edge_row, reach)
    fit.surface = surface
    if rgb is not None:
        fit.image_surface = _add_image_edges(
            surface, fit, rgb, rs, cs, inner, wshape, reach, sigma_px
        )


def _add_image_edges(
    surface: np.ndarray,
    fit: _Fit,
    rgb: Any,
    rs: slice,
    cs: slice,
    inner: tuple[slice, slice],
    wshape: tuple[int, int],
    reach: int,
    sigma_px: float,
) -> np.ndarray:
    """The fit with the orthophoto's sign-free edges, ``(normal · ∇grey)²``, at half weight."""
    assert fit.boundary is not None
    grey = np.zeros(wshape, np.float32)
    window = _read(rgb, rs, cs, band=True).astype(np.float32)
    grey[inner] = window[:3].mean(axis=0)
    gc = ndimage.gaussian_filter(grey, sigma_px, order=(0, 1), mode="nearest")
    gr = ndimage.gaussian_filter(grey, sigma_px, order=(1, 0), mode="nearest")
    b = fit.boundary
    image = np.zeros_like(surface)
    for tn, field_ in (
        (b.n_col * b.n_col, gc * gc),
        (2.0 * b.n_col * b.n_row, gc * gr),
        (b.n_row * b.n_row, gr * gr),
    ):
        image += _correlate(_splat(wshape, b, b.weight * tn), field_, reach)
    top_h, top_i = float(np.max(np.abs(surface))), float(np.max(image))
    if top_h <= 0 or top_i <= 0:
        return surface
    combined: np.ndarray = surface / top_h + RGB_WEIGHT * image / top_i
    return combined


def _peak(
    surface: np.ndarray, reach: int, centre: tuple[float, float] | None, radius: float
) -> tuple[tuple[float, float], str]:
    """Sub-pixel (col, row) shift of the best fit (near ``centre`` when given) and a reason."""
    rr, cc = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    allowed = np.ones(surface.shape, bool)
    if centre is not None:
        allowed = np.hypot(cc - centre[0], rr - centre[1]) <= radius
        if not allowed.any():
            return (math.nan, math.nan), "no fit near the other outlines"
    masked = np.where(allowed, surface, -np.inf)
    i, j = np.unravel_index(int(np.argmax(masked)), surface.shape)
    if not surface[i, j] > 0:
        return (math.nan, math.nan), "no wall of the outline matches an edge"
    if i in (0, surface.shape[0] - 1) or j in (0, surface.shape[1] - 1):
        return (math.nan, math.nan), "best fit at the search limit (raise max_offset_m?)"
    s = surface[i - 1 : i + 2, j - 1 : j + 2].astype(np.float64)
    g = np.array([(s[1, 2] - s[1, 0]) / 2, (s[2, 1] - s[0, 1]) / 2])
    hess = np.array(
        [
            [s[1, 2] - 2 * s[1, 1] + s[1, 0], (s[2, 2] - s[2, 0] - s[0, 2] + s[0, 0]) / 4],
            [(s[2, 2] - s[2, 0] - s[0, 2] + s[0, 0]) / 4, s[2, 1] - 2 * s[1, 1] + s[0, 1]],
        ]
    )
    curv = np.linalg.eigvalsh(-hess)
    if curv[1] <= 0 or curv[0] < MIN_PINNING * curv[1]:
        return (math.nan, math.nan), "fits along one direction only (ambiguous)"
    if centre is not None and np.hypot(cc[i, j] - centre[0], rr[i, j] - centre[1]) > radius - 1:
        return (math.nan, math.nan), "no fit near the other outlines"
    step = -np.linalg.solve(hess, g)
    step = np.clip(step, -1.0, 1.0)
    return (float(cc[i, j] + step[0]), float(rr[i, j] + step[1])), ""


def _no_structure(cover: float, min_height_m: float) -> str:
    return (
        f"no structure under the outline (at most {cover:.0%} of it {min_height_m:g} m high "
        "or more; not built, or demolished)"
    )


def _judge(fit: _Fit, shift_px: tuple[float, float], min_height_m: float, gsd: float) -> str:
    """Cover and edge agreement of the outline at ``shift_px``; sets ``fit.score``."""
    assert fit.boundary is not None and fit.height is not None and fit.valid is not None
    assert fit.window_transform is not None
    b, h = fit.boundary, fit.height
    dc, dr = shift_px
    wt = fit.window_transform
    shifted = affinity.translate(fit.geom, dc * wt.a, dr * wt.e)
    inside = rio_features.geometry_mask(
        [shifted], out_shape=h.shape, transform=wt, invert=True, all_touched=False
    )
    if inside.sum() == 0:
        return "smaller than a pixel"
    cover = (
        float(np.mean(h[inside & fit.valid] >= min_height_m)) if (inside & fit.valid).any() else 0.0
    )
    step = max(2.0, 0.3 / gsd)
    col, row = b.col + dc, b.row + dr
    h_in = _sample(h, col - b.n_col * step, row - b.n_row * step)
    h_out = _sample(h, col + b.n_col * step, row + b.n_row * step)
    wall = (h_in >= min_height_m) & (h_in - h_out >= 0.5 * min_height_m)
    fit.score = float(np.sum(b.weight * wall) / np.sum(b.weight))
    if cover < MIN_COVER:
        return _no_structure(cover, min_height_m)
    if fit.score < MIN_EDGE_AGREEMENT:
        return f"its walls are not found ({fit.score:.0%} of the outline on a wall)"
    return ""


def _best(
    fit: _Fit, reach: int, centre: tuple[float, float] | None, radius: float
) -> tuple[tuple[float, float], str]:
    """:func:`_peak` of the height fit; of the fit with the orthophoto's edges when the
    height fit is pinned in one direction only and an orthophoto was given."""
    assert fit.surface is not None
    shift, reason = _peak(fit.surface, reach, centre, radius)
    if reason.startswith("fits along one direction") and fit.image_surface is not None:
        shift, reason = _peak(fit.image_surface, reach, centre, radius)
    return shift, reason


# --- all outlines -----------------------------------------------------------------------------


def _check_grid(transform: Affine, shape: tuple[int, ...], max_offset_m: float) -> float:
    if len(shape) != 2:
        raise ChangeDetectionError(
            f"the height raster has shape {tuple(shape)}; pass one band (rows, cols)"
        )
    gx, gy = abs(transform.a), abs(transform.e)
    if transform.b or transform.d or not math.isclose(gx, gy, rel_tol=0.01) or gx == 0:
        raise ChangeDetectionError(
            f"the height raster's grid has {gx} x {gy} pixels or a rotation; resample it to "
            "square, north-up pixels (gdalwarp -tr) first"
        )
    if not (math.isfinite(max_offset_m) and max_offset_m > 0):
        raise ChangeDetectionError(f"max_offset_m = {max_offset_m}; pass a distance > 0 m")
    return (gx + gy) / 2


def estimate_atlas_offset(
    height_above_ground: Any,
    transform: Affine,
    outlines: Sequence[tuple[str, BaseGeometry]],
    *,
    min_height_m: float = 2.5,
    max_offset_m: float = 3.0,
    rgb: Any = None,
) -> AtlasOffset:
    """Measure the shift between building outlines and the building edges of a survey.

    Parameters
    ----------
    height_above_ground : array-like of float, shape (rows, cols)
        DSM − DTM in metres, NaN for nodata, on the grid of ``transform``; numpy or dask (or
        anything sliceable): only a window around each outline is read.
    transform : Affine
        North-up grid of square pixels.
    outlines : sequence of (str, shapely Polygon or MultiPolygon)
        Ids and footprints of permitted and existing buildings, in the grid's CRS.
    min_height_m : float
        Height above ground of a structure (default 2.5 m).
    max_offset_m : float
        Largest offset searched, along each axis (default 3 m).
    rgb : array-like of uint8, shape (3, rows, cols), optional
        Orthophoto on the same grid; its edges join the height edges.

    Returns
    -------
    AtlasOffset
        ``dx_m, dy_m`` to add to the outlines; ``reliable`` says whether to apply it.

    Raises
    ------
    ChangeDetectionError
        The grid is rotated or its pixels are not square, the raster is not 2-D, or
        ``max_offset_m`` is not positive.

    Examples
    --------
    Three buildings, their outlines drawn 0.8 m east and 0.5 m south of where they stand:

    >>> import numpy as np
    >>> from affine import Affine
    >>> from shapely.geometry import box
    >>> h = np.zeros((600, 600), np.float32)
    >>> t = Affine(0.1, 0, 0, 0, -0.1, 60)
    >>> sites = [(5, 5, 17, 13), (30, 10, 40, 24), (12, 35, 26, 47)]
    >>> for x0, y0, x1, y1 in sites:
    ...     h[int((60 - y1) / 0.1):int((60 - y0) / 0.1), int(x0 / 0.1):int(x1 / 0.1)] = 6.0
    >>> outlines = [(f"b{i}", box(x0 + 0.8, y0 - 0.5, x1 + 0.8, y1 - 0.5))
    ...             for i, (x0, y0, x1, y1) in enumerate(sites)]
    >>> off = estimate_atlas_offset(h, t, outlines)
    >>> round(off.dx_m, 2), round(off.dy_m, 2), off.n_used, off.reliable
    (-0.8, 0.5, 3, True)
    """
    shape = tuple(height_above_ground.shape)
    gsd = _check_grid(transform, shape, max_offset_m)
    rows_cols = (int(shape[0]), int(shape[1]))
    reach = max(1, math.ceil(max_offset_m / gsd))
    sigma_px = max(1.0, EDGE_SIGMA_M / gsd)
    fits = [_Fit(str(oid), geom) for oid, geom in outlines]
    for fit in fits:
        if fit.geom is None or fit.geom.is_empty or not _polygons(fit.geom):
            fit.reason = "not a polygon"
            continue
        _prepare(fit, height_above_ground, rgb, transform, rows_cols, reach, min_height_m, sigma_px)

    # first pass: each outline's best fit anywhere in the search range
    first: list[tuple[float, float]] = []
    for fit in fits:
        if fit.surface is None:
            continue
        shift, reason = _best(fit, reach, None, 0.0)
        if not reason:
            reason = _judge(fit, shift, min_height_m, gsd)
        if not reason:
            first.append(shift)
    # second pass: near the consensus, which settles fits that an attached extension doubled
    centre = tuple(np.median(np.asarray(first), axis=0)) if first else None
    for fit in fits:
        if fit.surface is None:
            continue
        if centre is None:
            shift, reason = _best(fit, reach, None, 0.0)
        else:
            shift, reason = _best(fit, reach, (centre[0], centre[1]), NEAR_M / gsd)
        if not reason:
            reason = _judge(fit, shift, min_height_m, gsd)
        fit.shift_px, fit.reason = shift, reason
    return _combine(fits, transform, gsd)


def _combine(fits: list[_Fit], transform: Affine, gsd: float) -> AtlasOffset:
    """Gate the fitted outlines against their median and average the rest."""
    ok = [f for f in fits if not f.reason]
    metres = {
        id(f): (f.shift_px[0] * transform.a, f.shift_px[1] * transform.e)
        for f in fits
        if math.isfinite(f.shift_px[0])
    }
    if ok:
        pts = np.array([metres[id(f)] for f in ok])
        med = np.median(pts, axis=0)
        dev = np.hypot(*(pts - med).T)
        gate = max(GATE_M, 3.0 * 1.4826 * float(np.median(dev)))
        for f, d in zip(ok, dev, strict=True):
            if d > gate:
                f.reason = f"disagrees with the other outlines by {d:.2f} m"
    used = [f for f in fits if not f.reason]
    n = len(fits)
    if used:
        pts = np.array([metres[id(f)] for f in used])
        dx, dy = (float(v) for v in pts.mean(axis=0))
        residual = float(np.sqrt(np.mean(np.sum((pts - (dx, dy)) ** 2, axis=1))))
    else:
        dx = dy = 0.0
        residual = math.nan
    reliable = len(used) >= MIN_OUTLINES and residual <= RELIABLE_RESIDUAL_M
    if reliable:
        summary = (
            f"atlas offset ({dx:+.2f}, {dy:+.2f}) m from {len(used)} of {n} outlines, "
            f"residual {residual:.2f} m"
        )
    elif len(used) < MIN_OUTLINES:
        summary = (
            f"atlas offset not determined: {len(used)} of {n} outlines matched a structure "
            f"({MIN_OUTLINES} needed); the atlas is used as it is"
        )
    else:
        summary = (
            f"atlas offset not determined: {len(used)} of {n} outlines give "
            f"({dx:+.2f}, {dy:+.2f}) m but disagree by {residual:.2f} m RMS (more than "
            f"{RELIABLE_RESIDUAL_M:g} m: a rotated, scaled or mismatched atlas?); the atlas "
            "is used as it is"
        )
    matches = tuple(
        OutlineMatch(
            outline_id=f.outline_id,
            dx_m=metres[id(f)][0] if id(f) in metres else math.nan,
            dy_m=metres[id(f)][1] if id(f) in metres else math.nan,
            score=f.score if math.isfinite(f.score) else 0.0,
            used=not f.reason,
            reason=f.reason,
        )
        for f in fits
    )
    log.info("%s", summary)
    return AtlasOffset(dx, dy, residual, len(used), n, reliable, summary, matches)
