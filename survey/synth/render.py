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
    CAR_HEIGHT_M,
    MIN_AREA_M2,
    MIN_HEIGHT_M,
    STOREY_HEIGHT_M,
    Building,
    Hedge,
    Layout,
    plan_layout,
)
from survey.synth.params import SynthParams
from survey.synth.resample import upsample_linear
from survey.synth.shadows import cast_shadows

__all__ = ["Misregistration", "SynthScene", "render_scene"]

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


@dataclass(frozen=True)
class _Grid:
    x0: float
    y0: float
    gsd: float
    n: int

    @property
    def xs(self) -> np.ndarray:
        return self.x0 + (np.arange(self.n) + 0.5) * self.gsd

    @property
    def ys(self) -> np.ndarray:
        return self.y0 - (np.arange(self.n) + 0.5) * self.gsd

    @property
    def transform(self) -> Affine:
        return Affine(self.gsd, 0.0, self.x0, 0.0, -self.gsd, self.y0)

    def window(
        self, bounds: tuple[float, float, float, float], pad_m: float = 0.5
    ) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        """Row/col slices covering ``bounds`` and the (N column, E row) centre coordinates."""
        e0, n0, e1, n1 = bounds
        c0 = max(0, math.floor((e0 - pad_m - self.x0) / self.gsd))
        c1 = min(self.n, math.ceil((e1 + pad_m - self.x0) / self.gsd))
        r0 = max(0, math.floor((self.y0 - n1 - pad_m) / self.gsd))
        r1 = min(self.n, math.ceil((self.y0 - n0 + pad_m) / self.gsd))
        rs, cs = slice(r0, max(r0, r1)), slice(c0, max(c0, c1))
        return rs, cs, self.ys[rs][:, None], self.xs[cs][None, :]


def _smooth_noise(rng: np.random.Generator, n: int, cell_px: float) -> np.ndarray:
    """Unit-variance noise of correlation length ``cell_px`` pixels, shape (n, n), float32."""
    if cell_px <= 1.5:
        return rng.standard_normal((n, n), dtype=F32)
    m = math.ceil(n / cell_px) + 3
    coarse = ndimage.gaussian_filter(rng.standard_normal((m, m)), 0.8)
    coarse /= coarse.std()
    return upsample_linear(coarse, cell_px, (n, n))


def _patch_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> np.ndarray:
    """Unit-variance noise of correlation length ``cell_px`` pixels, of any shape, float32."""
    if cell_px <= 1.5:
        return rng.standard_normal(shape, dtype=F32)
    m = (math.ceil(shape[0] / cell_px) + 3, math.ceil(shape[1] / cell_px) + 3)
    coarse = ndimage.gaussian_filter(rng.standard_normal(m), 0.8)
    coarse /= coarse.std()
    return upsample_linear(coarse, cell_px, shape)


#: Relief of a photogrammetric canopy (metres): clumps of about 0.3 and 0.8 m, gaps up to
#: 1.5 m deep, some of it moving between flights (leaves, matching noise). The 1 m relief
#: (max - min within 1 m) is about 0.9 m: rough at metre scale, as real canopy is, where a
#: roof is a plane (the vegetation test of change detection relies on it).
_CLUMP_M = ((0.3, 0.35), (0.8, 0.3))  # (correlation length, amplitude)
_LEAF_MOTION_M = 0.12
_GAP_DEPTH_M = 1.5
_GAP_CELL_M = 1.2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return F32(1.0) / (F32(1.0) + np.exp(-x))


def _draw_look(params: SynthParams, center: tuple[float, float]) -> dict[str, Any]:
    """Misregistration, sun, colour change and noise levels (independent of the GSD)."""
    rng = np.random.default_rng([params.seed, 5])
    mag = rng.uniform(0.3, 1.5)
    direction = rng.uniform(0, 2 * math.pi)
    rot = rng.uniform(0.05, 0.3) * (1 if rng.random() < 0.5 else -1)
    dz = rng.uniform(0.1, 0.4) * (1 if rng.random() < 0.5 else -1)
    az_b = rng.uniform(115, 165)
    az_a = rng.uniform(195, 245)
    if rng.random() < 0.5:
        az_b, az_a = az_a, az_b
    el_b = rng.uniform(35, 62)
    el_a = float(np.clip(el_b + rng.choice([-1, 1]) * rng.uniform(6, 15), 30, 68))
    common = rng.uniform(0.85, 1.15)
    gain = [round(common * rng.uniform(0.95, 1.05), 4) for _ in range(3)]
    off_c = rng.uniform(-10, 10)
    offset = [round(off_c + rng.uniform(-3, 3), 3) for _ in range(3)]
    return {
        "shift_m": (round(mag * math.cos(direction), 4), round(mag * math.sin(direction), 4)),
        "rotation_deg": round(rot, 5),
        "center": center,
        "dz": round(dz, 4),
        "sun_before": (round(az_b, 3), round(el_b, 3)),
        "sun_after": (round(az_a, 3), round(el_a, 3)),
        "gain": gain,
        "offset": offset,
        "gamma": round(rng.uniform(0.85, 1.15), 4),
        "dsm_noise": round(rng.uniform(0.05, 0.1), 4),
    }


class _Painter:
    """Paints terrain, ground, roads and objects of one site on the true grid."""

    def __init__(self, params: SynthParams, grid: _Grid, layout: Layout) -> None:
        self.p = params
        self.g = grid
        self.layout = layout
        n, gsd = grid.n, grid.gsd
        rng = np.random.default_rng([params.seed, 2])
        # Smooth fields (relief, soil/grass/gravel mixture) on a coarse grid of ~0.4 m cells,
        # upsampled once; fine texture at full resolution.
        fc = max(1, round(0.4 / gsd))
        m = -(-n // fc) + 1
        cell = fc * gsd
        cx, cy = layout.center
        de = grid.x0 + (np.arange(m) + 0.5) * cell - cx
        dn = grid.y0 - (np.arange(m) + 0.5) * cell - cy
        terrain = np.zeros((m, m), dtype=np.float64)
        for _ in range(3):
            lam = rng.uniform(90.0, 260.0)
            phi = rng.uniform(0, 2 * math.pi)
            amp = rng.uniform(0.6, 1.4)
            k = 2 * math.pi / lam
            ae = k * math.cos(phi) * de + rng.uniform(0, 2 * math.pi)
            an = k * math.sin(phi) * dn
            terrain += amp * (np.outer(np.cos(an), np.sin(ae)) + np.outer(np.sin(an), np.cos(ae)))
        terrain += rng.uniform(58.0, 66.0) + 0.35 * _smooth_noise(rng, m, 12.0 / cell)
        self.terrain = upsample_linear(terrain, fc, (n, n))
        big = _smooth_noise(rng, m, 7.0 / cell)
        mid = _smooth_noise(rng, m, 1.6 / cell)
        big2 = _smooth_noise(rng, m, 10.0 / cell)
        w_grass = _sigmoid(F32(2.5) * big + F32(1.2) * mid - F32(0.3))
        w_gravel = _sigmoid(F32(3.0) * big2 - F32(2.0) + F32(0.8) * mid)
        soil = np.array([0.50, 0.41, 0.30], dtype=F32)
        grass = np.array([0.31, 0.43, 0.19], dtype=F32)
        gravel = np.array([0.60, 0.58, 0.54], dtype=F32)
        colour = (
            soil[:, None, None] * ((1 - w_grass) * (1 - w_gravel))
            + grass[:, None, None] * (w_grass * (1 - w_gravel))
            + gravel[:, None, None] * w_gravel
        )
        colour[1] *= F32(1.0) + F32(0.03) * mid  # a little hue variation
        smooth_tex = _smooth_noise(rng, n, 0.25 / gsd)
        # micro-relief (1 cm) follows the visible texture, as soil clods and grass tufts do
        self.micro = F32(0.012) * smooth_tex
        self.tex = smooth_tex * F32(0.6) + rng.standard_normal((n, n), dtype=F32) * F32(0.4)
        del smooth_tex
        grain = F32(1.0) + F32(0.09) * self.tex
        ground = np.empty((3, n, n), dtype=F32)
        for c in range(3):
            np.multiply(upsample_linear(colour[c], fc, (n, n)), grain, out=ground[c])
        self.ground = ground
        self._paint_roads()
        self.base: dict[str, float] = {}
        self._clumps: dict[tuple[int, str], np.ndarray] = {}

    def canopy(
        self, index: int, name: str, epoch: str, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Relief (m) and gap fraction in [0, 1] of one crown's window, float32 ``shape``.

        Drawn from its own generator per object (``[seed, 6, index]``, and per epoch for what
        moves), so nothing else in the scene changes with it; the clumps are the same in
        both epochs for the same window.
        """
        gsd = self.g.gsd
        key = (index, name)
        if key not in self._clumps:
            rng = np.random.default_rng([self.p.seed, 6, index])
            clumps = np.zeros(shape, F32)
            for cell_m, amp in _CLUMP_M:
                clumps += F32(amp) * _patch_noise(rng, shape, cell_m / gsd)
            self._clumps[key] = np.stack([clumps, _patch_noise(rng, shape, _GAP_CELL_M / gsd)])
        clumps, gaps_shared = self._clumps[key]
        rng_e = np.random.default_rng([self.p.seed, 6, index, 1 if epoch == "after" else 0])
        motion = F32(_LEAF_MOTION_M) * _patch_noise(rng_e, shape, _CLUMP_M[0][0] / gsd)
        gaps = F32(0.8) * gaps_shared + F32(0.6) * _patch_noise(rng_e, shape, _GAP_CELL_M / gsd)
        gap = np.clip((gaps - F32(0.8)) / F32(0.8), 0.0, 1.0)
        return clumps + motion - F32(_GAP_DEPTH_M) * gap, gap

    def _paint_roads(self) -> None:
        g = self.g
        asphalt = np.array([0.25, 0.25, 0.26], dtype=F32)[:, None, None]
        block = 256
        for road in self.layout.roads:
            a = math.radians(road.angle_deg)
            ca, sa = math.cos(a), math.sin(a)
            half = road.width / 2
            # the road is a band of near-constant northing per column: paint it block by block
            for c0 in range(0, g.n, block):
                cs = slice(c0, min(g.n, c0 + block))
                de = (g.xs[cs] - road.px).astype(F32)
                n_mid = road.py + (g.xs[cs] - road.px) * sa / ca
                reach = (half + 0.5) / abs(ca)
                rows = (g.y0 - np.array([n_mid.max() + reach, n_mid.min() - reach])) / g.gsd
                r0, r1 = max(0, math.floor(rows[0])), min(g.n, math.ceil(rows[1]) + 1)
                if r1 <= r0:
                    continue
                rs = slice(r0, r1)
                dn = (g.ys[rs] - road.py).astype(F32)[:, None]
                across = dn * F32(ca) - de[None, :] * F32(sa)
                along = de[None, :] * F32(ca) + dn * F32(sa)
                on = np.abs(across) <= half
                win = self.ground[:, rs, cs]
                paint = asphalt * (F32(1.0) + F32(0.06) * self.tex[rs, cs])
                dash = (np.abs(across) <= 0.075) & (np.mod(along, 9.0) < 4.5)
                edge = np.abs(np.abs(across) - (half - 0.35)) <= 0.06
                paint = np.where(dash | edge, F32(0.86), paint)
                win[:] = np.where(on, paint, win)

    def base_of(self, b: Building) -> float:
        """Mean terrain height under a footprint (the building's platform), metres."""
        if b.name not in self.base:
            rs, cs, nn, ee = self.g.window(b.footprint.polygon().bounds)
            inside = b.footprint.inside(ee, nn)
            vals = self.terrain[rs, cs][inside]
            self.base[b.name] = (
                float(vals.mean()) if vals.size else float(self.terrain[rs, cs].mean())
            )
        return self.base[b.name]

    def paint(self, epoch: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (dsm, albedo) of one epoch on the true grid, noise- and artefact-free."""
        after = epoch == "after"
        dsm = self.terrain.copy()
        alb = self.ground.copy()
        for b in [*self.layout.buildings, self.layout.shed]:
            stands = b.after if after else b.before
            if not stands:
                if after and b.before:  # demolished: disturbed ground and rubble
                    rs, cs, nn, ee = self.g.window(b.footprint.polygon().bounds)
                    inside = b.footprint.inside(ee, nn)
                    rubble = np.array([0.56, 0.50, 0.43], dtype=F32)[:, None, None] * (
                        F32(1.0) + F32(0.18) * self.tex[rs, cs]
                    )
                    win = alb[:, rs, cs]
                    win[:] = np.where(inside, F32(0.4) * win + F32(0.6) * rubble, win)
                continue
            self._paint_building(b, after, dsm, alb)
        for k, tree in enumerate(self.layout.trees):
            r = tree.radius_after if after else tree.radius_before
            h = tree.height_after if after else tree.height_before
            # one window for both epochs (the larger crown), so the clumps stay in place
            rw = 1.1 * max(tree.radius_before, tree.radius_after)
            rs, cs, nn, ee = self.g.window((tree.cx - rw, tree.cy - rw, tree.cx + rw, tree.cy + rw))
            de, dn = ee - tree.cx, nn - tree.cy
            d = np.hypot(de, dn)
            rr = r * (1.0 + 0.08 * np.sin(5 * np.arctan2(dn, de) + tree.lobes_phase))
            q = np.clip(1.0 - (d / rr) ** 2, 0.0, None)
            inside = d < rr
            ground = self.terrain[rs, cs]
            relief, gap = self.canopy(k, "tree", epoch, inside.shape)
            crown = ground + (h * np.sqrt(q) * (0.9 + 0.1 * q)).astype(F32) + relief
            dsm[rs, cs] = np.where(inside, np.maximum(dsm[rs, cs], crown), dsm[rs, cs])
            green = (
                np.array([0.17, 0.31, 0.11], dtype=F32)[:, None, None]
                * (F32(0.75) + F32(0.45) * q.astype(F32))
                * (F32(1.0) + F32(0.2) * self.tex[rs, cs])
                * (F32(1.0) - F32(0.35) * gap)
            )
            win = alb[:, rs, cs]
            win[:] = np.where(inside, green, win)
        for k, hedge in enumerate(self.layout.hedges):
            self._paint_hedge(k, hedge, epoch, dsm, alb)
        for car in self.layout.cars:
            if not (car.after if after else car.before):
                continue
            fp = car.footprint
            rs, cs, nn, ee = self.g.window(fp.polygon().bounds)
            u, v = fp.local(ee, nn)
            inside = (np.abs(u) <= fp.length / 2) & (np.abs(v) <= fp.width / 2)
            cabin = np.abs(u + 0.2) <= 1.3
            top = np.where(cabin, F32(CAR_HEIGHT_M), F32(1.0))
            dsm[rs, cs] = np.where(inside, self.terrain[rs, cs] + top, dsm[rs, cs])
            body = np.array(car.colour, dtype=F32)[:, None, None] * np.ones_like(self.tex[rs, cs])
            glass = cabin & (np.abs(v) <= 0.75) & (np.abs(np.abs(u + 0.2) - 1.0) <= 0.3)
            body = np.where(glass, F32(0.08), body)
            win = alb[:, rs, cs]
            win[:] = np.where(inside, body, win)
        if after:
            for pile in self.layout.piles:
                rmax = max(pile.radii)
                rs, cs, nn, ee = self.g.window(
                    (pile.cx - rmax, pile.cy - rmax, pile.cx + rmax, pile.cy + rmax)
                )
                de, dn = ee - pile.cx, nn - pile.cy
                d = np.hypot(de, dn)
                k = len(pile.radii)
                t = np.mod(np.arctan2(dn, de), 2 * math.pi) / (2 * math.pi) * k
                radii = np.asarray(pile.radii + pile.radii[:1])
                i0 = np.floor(t).astype(int) % k
                frac = t - np.floor(t)
                rad = radii[i0] * (1 - frac) + radii[i0 + 1] * frac
                q = np.clip(1.0 - d / rad, 0.0, None)
                inside = d < rad
                top = self.terrain[rs, cs] + (pile.height * q**0.7).astype(F32)
                dsm[rs, cs] = np.where(inside, np.maximum(dsm[rs, cs], top), dsm[rs, cs])
                col = np.array(pile.colour, dtype=F32)[:, None, None] * (
                    F32(1.0) + F32(0.25) * self.tex[rs, cs]
                )
                win = alb[:, rs, cs]
                win[:] = np.where(inside, col, win)
        return dsm, alb

    def _paint_hedge(
        self, k: int, hedge: Hedge, epoch: str, dsm: np.ndarray, alb: np.ndarray
    ) -> None:
        """A strip of shrubs: rounded across, tapered at the ends, with a canopy's relief."""
        h = hedge.height_after if epoch == "after" else hedge.height_before
        if h <= 0:
            return
        fp = hedge.footprint
        rs, cs, nn, ee = self.g.window(fp.polygon().bounds)
        u, v = fp.local(ee, nn)
        across = np.clip(1.0 - (np.abs(v) / (fp.width / 2)) ** 4, 0.0, None)
        ends = np.clip((fp.length / 2 - np.abs(u)) / 0.5, 0.0, 1.0)
        inside = (across > 0) & (ends > 0)
        relief, gap = self.canopy(1000 + k, "hedge", epoch, inside.shape)
        top = self.terrain[rs, cs] + (h * np.sqrt(across * ends)).astype(F32) + F32(0.8) * relief
        dsm[rs, cs] = np.where(inside, np.maximum(dsm[rs, cs], top), dsm[rs, cs])
        green = (
            np.array([0.15, 0.29, 0.10], dtype=F32)[:, None, None]
            * (F32(1.0) + F32(0.2) * self.tex[rs, cs])
            * (F32(1.0) - F32(0.35) * gap)
        )
        win = alb[:, rs, cs]
        win[:] = np.where(inside, green, win)

    def _paint_building(self, b: Building, after: bool, dsm: np.ndarray, alb: np.ndarray) -> None:
        fp = b.footprint
        rs, cs, nn, ee = self.g.window(fp.polygon().bounds)
        u, v = fp.local(ee, nn)
        inside = (np.abs(u) <= fp.length / 2) & (np.abs(v) <= fp.width / 2)
        height = b.height_after if (after and b.height_after is not None) else b.height
        colour = b.colour_after if (after and b.colour_after is not None) else b.colour
        base = self.base_of(b)
        if b.roof == "gable":
            roof = base + height + b.ridge * (1.0 - np.abs(v) / (fp.width / 2))
        else:
            roof = np.full(u.shape, base + height)
        dsm[rs, cs] = np.where(inside, roof.astype(F32), dsm[rs, cs])
        col = np.array(colour, dtype=F32)[:, None, None] * (F32(1.0) + F32(0.05) * self.tex[rs, cs])
        if b.corrugated:  # steel sheet ribs running down the slope, every 0.25 m
            col = col * (F32(1.0) + F32(0.06) * np.cos(2 * np.pi * u / 0.25)).astype(F32)
        if b.roof == "flat" and not b.corrugated:
            rim = (np.abs(u) > fp.length / 2 - 0.25) | (np.abs(v) > fp.width / 2 - 0.25)
            col = np.where(rim, col * F32(0.8), col)
        elif b.roof == "gable":
            ridge = np.abs(v) < 0.15
            col = np.where(ridge, col * F32(0.75), col)
        win = alb[:, rs, cs]
        win[:] = np.where(inside, col, win)


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
    look = _draw_look(params, layout.center)
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
