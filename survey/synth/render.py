"""Rendering the two epochs of the synthetic site into orthophoto and DSM arrays.

Both epochs are first painted on the same "true" grid (the before grid): terrain, ground
texture, roads, then the objects standing in that epoch. Sun shading and cast shadows are
computed from each epoch's DSM, photogrammetric artefacts are smeared along height jumps, and
the after epoch is resampled through the planted misregistration (bilinear,
:func:`scipy.ndimage.affine_transform`) before its colour change, vertical offset and noise.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio import features as rio_features
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from survey.synth.layout import (
    MIN_AREA_M2,
    MIN_HEIGHT_M,
    STOREY_HEIGHT_M,
    Layout,
    plan_layout,
)
from survey.synth.paint import _Grid, _Painter, draw_look
from survey.synth.paint import _smooth_noise as _smooth_noise  # re-exported: survey.synth
from survey.synth.params import SynthParams
from survey.synth.resample import upsample_linear
from survey.synth.shadows import cast_shadows

__all__ = ["Misregistration", "SynthScene", "polygon_mask", "render_scene"]

log = logging.getLogger(__name__)

F32 = np.float32
_AMBIENT = 0.42
_SKY = np.array([0.90, 0.97, 1.10], dtype=F32)  # ambient (skylight) tint: shadows are bluish
_RGB_NOISE_DN = 1.2
_EDGE_M = 0.3
_SUN_CELL_M = 0.2


@dataclass(frozen=True)
class Misregistration:
    """The after epoch's planted misregistration.

    A ground point at true UTM (E, N) appears in the after rasters at
    ``R(rotation_deg) @ ((E, N) - center) + center + shift_m`` where R is the counter-clockwise
    rotation in the (E, N) plane.
    """

    shift_m: tuple[float, float]
    rotation_deg: float
    center: tuple[float, float]

    def forward(self, e: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True ground coordinates -> where they appear in the after rasters (metres)."""
        r = math.radians(self.rotation_deg)
        de, dn = e - self.center[0], n - self.center[1]
        return (
            math.cos(r) * de - math.sin(r) * dn + self.center[0] + self.shift_m[0],
            math.sin(r) * de + math.cos(r) * dn + self.center[1] + self.shift_m[1],
        )

    def matrix(self) -> np.ndarray:
        """The forward map as a 3x3 homogeneous matrix on (E, N, 1)."""
        r = math.radians(self.rotation_deg)
        rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
        c = np.asarray(self.center, dtype=float)
        out = np.eye(3)
        out[:2, :2] = rot
        out[:2, 2] = c - rot @ c + np.asarray(self.shift_m, dtype=float)
        return out


@dataclass(frozen=True)
class SynthScene:
    """The rendered site in memory (what :func:`survey.synth.generate_site` writes).

    All arrays are on the raster grid of ``transform`` (shape (rows, cols) = ``shape``);
    the ``true_*``, ``shadow_*`` and ``edge_zone`` arrays are in true (before-epoch)
    coordinates, the ``after_*`` arrays in the misregistered after grid.

    Attributes
    ----------
    before_rgb, after_rgb : ndarray of uint8, shape (3, rows, cols)
    before_dsm, after_dsm : ndarray of float32, shape (rows, cols); NaN where invalid
    before_valid, after_valid : ndarray of bool, shape (rows, cols)
    true_before_dsm, true_after_dsm : ndarray of float32; noise- and artefact-free heights
    shadow_before, shadow_after : ndarray of float32 in [0, 1]; cast-shadow fraction
    edge_zone : ndarray of bool; pixels within the artefact band of a height jump (either epoch)
    truth : dict
        The content of ``truth.json``.
    features : list of (geometry, properties)
        Truth features in UTM metres.
    """

    params: SynthParams
    transform: Affine
    epsg: int
    layout: Layout
    misregistration: Misregistration
    before_rgb: np.ndarray
    before_dsm: np.ndarray
    before_valid: np.ndarray
    after_rgb: np.ndarray
    after_dsm: np.ndarray
    after_valid: np.ndarray
    true_before_dsm: np.ndarray
    true_after_dsm: np.ndarray
    shadow_before: np.ndarray
    shadow_after: np.ndarray
    edge_zone: np.ndarray
    truth: dict[str, Any]
    features: list[tuple[BaseGeometry, dict[str, Any]]]


def _shade(dsm: np.ndarray, gsd: float, az_deg: float, el_deg: float) -> np.ndarray:
    """Direct-light factor relative to flat ground (1 on level ground), shape (rows, cols)."""
    dz_drow, dz_dcol = np.gradient(dsm, gsd)
    gx, gy = dz_dcol, -dz_drow  # slopes along E and N
    az, el = math.radians(az_deg), math.radians(el_deg)
    sx, sy, sz = math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)
    cos_i = (-gx * sx - gy * sy + sz) / np.sqrt(gx * gx + gy * gy + 1.0)
    return np.clip(cos_i / sz, 0.0, 2.0).astype(F32)


def _light(dsm: np.ndarray, gsd: float, sun: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Direct-light factor (shading x cast shadow) and the shadow fraction, (rows, cols).

    Both are computed on cells of ~0.2 m (shading from the cell-mean DSM) and upsampled once.
    """
    rows, cols = dsm.shape
    f = max(1, round(_SUN_CELL_M / gsd))
    shadow_c = cast_shadows(dsm, gsd, sun[0], sun[1], cell_m=_SUN_CELL_M, upsample=False)
    rc, cc = shadow_c.shape
    padded = np.pad(dsm, ((0, rc * f - rows), (0, cc * f - cols)), mode="edge")
    mean_c = padded.reshape(rc, f, cc, f).mean(axis=(1, 3), dtype=np.float64)
    direct_c = _shade(mean_c, gsd * f, sun[0], sun[1]) * (F32(1.0) - shadow_c)
    if f == 1:
        return direct_c, shadow_c
    return upsample_linear(direct_c, f, (rows, cols)), upsample_linear(shadow_c, f, (rows, cols))


def _illuminate(albedo: np.ndarray, direct: np.ndarray) -> np.ndarray:
    """Radiance in place: albedo x (tinted skylight + direct sun), shape (3, rows, cols)."""
    for c in range(3):
        albedo[c] *= F32(_AMBIENT) * _SKY[c] + F32(1.0 - _AMBIENT) * direct
    return albedo


def _add_channel_noise(rgb: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
    """Add sensor noise in place to (3, rows, cols): one Gaussian field, channels offset by
    rolls (independent-looking per channel at a third of the cost)."""
    n = rgb.shape[1]
    base = rng.standard_normal((n, n), dtype=F32)
    base *= F32(sigma)
    rgb[0] += base
    rgb[1] += np.roll(base, 7, axis=1)
    rgb[2] += np.roll(base, -5, axis=0)


def _dilate_box(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1) x (2r+1) square: running ORs with doubling spans."""
    out = mask
    length = 2 * r + 1
    for axis in (0, 1):
        src = np.moveaxis(out, axis, 0)
        grown = src.copy()  # grown[i] = any(src[i : i + width])
        width = 1
        while width < length:
            step = min(width, length - width)
            grown[:-step] |= grown[step:]
            width += step
        centred = np.empty_like(grown)  # centred[i] = any(src[i - r : i + r + 1])
        if r:
            centred[r:] = grown[:-r]
            centred[:r] = np.logical_or.accumulate(src[: 2 * r], axis=0)[r:]
        else:
            centred[:] = grown
        out = np.ascontiguousarray(np.moveaxis(centred, 0, axis))
    return out


def _artefacts(
    dsm: np.ndarray, gsd: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Smear and spike the DSM within ~0.3 m of height jumps, as dense matching does."""
    rows, cols = dsm.shape
    jump = np.zeros(dsm.shape, dtype=np.uint8)
    dc = np.abs(np.diff(dsm, axis=1)) > 1.0
    dr = np.abs(np.diff(dsm, axis=0)) > 1.0
    jump[:, :-1] |= dc
    jump[:, 1:] |= dc
    jump[:-1] |= dr
    jump[1:] |= dr
    r = max(1, round(_EDGE_M / gsd))
    zone = _dilate_box(jump.view(bool), r)
    idx = np.flatnonzero(zone)
    if idx.size == 0:
        return dsm, zone
    # the two sides of the jump: extremes of the 8 neighbours at the band's half-width
    pr, pc = np.divmod(idx, cols)
    samples = [
        dsm[np.clip(pr + sr * r, 0, rows - 1), np.clip(pc + sc * r, 0, cols - 1)]
        for sr in (-1, 0, 1)
        for sc in (-1, 0, 1)
    ]
    lo = np.minimum.reduce(samples)
    hi = np.maximum.reduce(samples)
    z = dsm.ravel()[idx]
    target = np.where(z < (lo + hi) / 2, hi, lo)
    alpha = (rng.random(idx.size, dtype=F32) ** 2) * F32(0.8)
    out = z + alpha * (target - z)
    spike = rng.random(idx.size, dtype=F32)
    out = np.where(spike < 0.015, hi + rng.uniform(0.0, 1.5, idx.size).astype(F32), out)
    out = np.where(spike > 0.99, lo - rng.uniform(0.0, 1.0, idx.size).astype(F32), out)
    res = dsm.copy()
    res.ravel()[idx] = out
    return res, zone


def _border(n: int, gsd: float, rng: np.random.Generator) -> np.ndarray:
    """Validity mask with a thin irregular invalid strip (1 to 3.5 m) along the edges."""
    pos = np.arange(n) * gsd
    widths = []
    for _ in range(4):
        knots = np.arange(0.0, n * gsd + 6.0, 5.0)
        w = np.interp(pos, knots, rng.uniform(1.0, 3.5, knots.size))
        widths.append(w + rng.uniform(0.0, 0.12, n))
    dist = pos + 0.5 * gsd
    left = dist[None, :] < widths[0][:, None]
    right = dist[::-1][None, :] < widths[1][:, None]
    top = dist[:, None] < widths[2][None, :]
    bottom = dist[::-1][:, None] < widths[3][None, :]
    return ~(left | right | top | bottom)


def _resample(src: np.ndarray, mat: np.ndarray, cval: float) -> np.ndarray:
    return ndimage.affine_transform(
        src,
        mat[:2, :2],
        offset=mat[:2, 2],
        order=1,
        mode="constant",
        cval=cval,
        prefilter=False,
    )


class _Clock:
    """Logs the CPU time of each rendering stage at DEBUG level."""

    def __init__(self) -> None:
        self.t = time.process_time()

    def lap(self, what: str) -> None:
        now = time.process_time()
        log.debug("%s: %.2f s CPU", what, now - self.t)
        self.t = now


def render_scene(params: SynthParams = SynthParams()) -> SynthScene:  # noqa: B008
    """Render both epochs of the synthetic site in memory.

    Returns
    -------
    SynthScene
        Rasters of both epochs, the noise-free true DSMs, shadow masks, the layout and the
        ``truth.json`` record. :func:`survey.synth.generate_site` writes it to disk.
    """
    gsd, n = params.gsd_m, params.side_px
    to_utm = Transformer.from_crs(4326, params.epsg, always_xy=True)
    ce, cn = to_utm.transform(params.lon, params.lat)
    x0, y0 = float(round(ce - params.size_m / 2)), float(round(cn + params.size_m / 2))
    grid = _Grid(x0, y0, gsd, n)
    layout = plan_layout(params, (x0, y0))
    look = draw_look(params, layout.center)
    if params.misregister:
        mis = Misregistration(look["shift_m"], look["rotation_deg"], layout.center)
    else:
        mis = Misregistration((0.0, 0.0), 0.0, layout.center)

    clock = _Clock()
    painter = _Painter(params, grid, layout)
    clock.lap("terrain and ground")
    true_b, alb_b = painter.paint("before")
    true_a, alb_a = painter.paint("after")
    micro = painter.micro
    del painter
    clock.lap("objects")

    light_b, shadow_b = _light(true_b, gsd, look["sun_before"])
    light_a, shadow_a = _light(true_a, gsd, look["sun_after"])
    clock.lap("shading and shadows")
    rad_b = _illuminate(alb_b, light_b)
    rad_a = _illuminate(alb_a, light_a)
    del light_b, light_a

    sigma = look["dsm_noise"]
    rng_b = np.random.default_rng([params.seed, 3])
    rng_a = np.random.default_rng([params.seed, 4])
    art_b, zone_b = _artefacts(true_b, gsd, rng_b)
    art_a, zone_a = _artefacts(true_a, gsd, rng_a)
    clock.lap("edge artefacts")

    valid_b = _border(n, gsd, rng_b)
    dsm_b = art_b + micro + F32(sigma) * rng_b.standard_normal((n, n), dtype=F32)
    dsm_b[~valid_b] = np.nan
    rad_b *= F32(255.0)
    _add_channel_noise(rad_b, rng_b, _RGB_NOISE_DN)
    rgb_b = np.clip(np.rint(rad_b), 0, 255).astype(np.uint8)
    rgb_b[:, ~valid_b] = 0
    clock.lap("before epoch")

    # after pixel (row', col') -> true pixel (row, col): W^-1 F^-1 W on (row, col, 1)
    after_to_true = np.linalg.inv(_pixel_matrix(grid, mis))
    dsm_a = _resample(art_a + micro, after_to_true, np.nan)
    valid_a = _border(n, gsd, rng_a) & np.isfinite(dsm_a)
    dsm_a += F32(look["dz"]) + F32(sigma) * rng_a.standard_normal((n, n), dtype=F32)
    dsm_a[~valid_a] = np.nan
    gain, offset, gamma = look["gain"], look["offset"], look["gamma"]
    dn_a = np.empty((3, n, n), dtype=F32)
    for c in range(3):
        v = np.clip(_resample(rad_a[c], after_to_true, 0.0), 0.0, 1.0)
        np.multiply(F32(255.0 * gain[c]), v ** F32(gamma), out=dn_a[c])
        dn_a[c] += F32(offset[c])
    del rad_a
    _add_channel_noise(dn_a, rng_a, _RGB_NOISE_DN)
    rgb_a = np.clip(np.rint(dn_a, out=dn_a), 0, 255, out=dn_a).astype(np.uint8)
    rgb_a[:, ~valid_a] = 0
    clock.lap("after epoch (misregistration, colour)")

    feats = _truth_features(layout, grid, true_b, true_a)
    truth = _truth_record(params, grid, layout, look, mis, feats)
    clock.lap("truth")
    return SynthScene(
        params=params,
        transform=grid.transform,
        epsg=params.epsg,
        layout=layout,
        misregistration=mis,
        before_rgb=rgb_b,
        before_dsm=dsm_b.astype(F32),
        before_valid=valid_b,
        after_rgb=rgb_a,
        after_dsm=dsm_a.astype(F32),
        after_valid=valid_a,
        true_before_dsm=true_b,
        true_after_dsm=true_a,
        shadow_before=shadow_b,
        shadow_after=shadow_a,
        edge_zone=zone_b | zone_a,
        truth=truth,
        features=feats,
    )


def polygon_mask(geom: BaseGeometry, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre lies inside ``geom`` (same CRS as ``transform``), bool (rows, cols)."""
    return rio_features.geometry_mask([geom], out_shape=shape, transform=transform, invert=True)


def _truth_features(
    layout: Layout, grid: _Grid, true_b: np.ndarray, true_a: np.ndarray
) -> list[tuple[BaseGeometry, dict[str, Any]]]:
    out = []
    for feat in layout.truth:
        rs, cs, _, _ = grid.window(feat.geometry.bounds, pad_m=1.0)
        sub_t = grid.transform * Affine.translation(cs.start, rs.start)
        shape = (rs.stop - rs.start, cs.stop - cs.start)
        mask = polygon_mask(feat.geometry, sub_t, shape)
        diff = (true_a[rs, cs].astype(np.float64) - true_b[rs, cs])[mask]
        props = dict(feat.props)
        props["height_change_m"] = round(float(diff.mean()), 3) if diff.size else 0.0
        out.append((feat.geometry, props))
    return out


def _pixel_matrix(grid: _Grid, mis: Misregistration) -> np.ndarray:
    """W^-1 F W: true (before) pixel-centre indices (row, col, 1) -> after indices, 3x3."""
    g = grid.gsd
    w = np.array([[0.0, g, grid.x0 + g / 2], [-g, 0.0, grid.y0 - g / 2], [0.0, 0.0, 1.0]])
    out: np.ndarray = np.linalg.inv(w) @ mis.matrix() @ w
    return out


def _as_lists(m: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in m]


def _truth_record(
    params: SynthParams,
    grid: _Grid,
    layout: Layout,
    look: dict[str, Any],
    mis: Misregistration,
    feats: list[tuple[BaseGeometry, dict[str, Any]]],
) -> dict[str, Any]:
    gsd = grid.gsd
    dx, dy = mis.shift_m
    planted = [p for _, p in feats if p["kind"] not in ("car_moved", "tree_growth")]
    return {
        "seed": params.seed,
        "size_m": params.size_m,
        "gsd_m": gsd,
        "shape_px": [grid.n, grid.n],
        "crs": f"EPSG:{params.epsg}",
        "origin": [grid.x0, grid.y0],
        "before_date": params.before_date,
        "after_date": params.after_date,
        "misregistration": {
            "shift_m": [dx, dy],
            "rotation_deg": mis.rotation_deg,
            "center": [mis.center[0], mis.center[1]],
            "shift_px": {"col": round(dx / gsd, 6), "row": round(-dy / gsd, 6)},
            "register_shift_rc_px": [round(dy / gsd, 6), round(-dx / gsd, 6)],
            "forward_matrix_m": _as_lists(mis.matrix()),
            "after_rc_from_before_rc": _as_lists(_pixel_matrix(grid, mis)),
            "convention": (
                "a ground point at true UTM (E, N) appears in the after rasters at "
                "R(r)·((E, N) − c) + c + (dx, dy), R(r) the counter-clockwise rotation by "
                "rotation_deg in the (E, N) plane, c = center, (dx, dy) = shift_m; both epochs "
                "share one grid, so features of the after rasters sit shift_px.col columns "
                "right and shift_px.row rows down of the before rasters (plus the rotation), "
                "and register_shift_rc_px is the (row, col) shift that maps the after raster "
                "onto the before one (skimage phase_cross_correlation(before, after) sign); "
                "forward_matrix_m is that map on (E, N, 1), after_rc_from_before_rc the same "
                "on (row, col, 1) pixel-centre indices (scipy.ndimage.affine_transform(after, "
                "it) puts the after raster on the before grid)"
            ),
        },
        "sun": {
            "before": {
                "azimuth_deg": look["sun_before"][0],
                "elevation_deg": look["sun_before"][1],
            },
            "after": {"azimuth_deg": look["sun_after"][0], "elevation_deg": look["sun_after"][1]},
        },
        "colour": {
            "gain": look["gain"],
            "offset": look["offset"],
            "gamma": look["gamma"],
            "formula": (
                "after_DN = clip(255·gain_c·(v^gamma) + offset_c, 0, 255), v = DN/255 that "
                "the before camera would record for the same ground under the same light"
            ),
        },
        "dsm_noise_m": look["dsm_noise"],
        "rgb_noise_dn": _RGB_NOISE_DN,
        "vertical_offset_m": look["dz"],
        "edge_artefact_m": _EDGE_M,
        "min_area_m2": MIN_AREA_M2,
        "min_height_m": MIN_HEIGHT_M,
        "storey_height_m": STOREY_HEIGHT_M,
        "n_planted": len(planted),
        "must_flag": sorted(p["change_id"] for p in planted if p["must_flag"]),
    }
