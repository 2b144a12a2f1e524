"""Painting one epoch of the synthetic site on the true grid: terrain, ground texture, roads,
then the objects standing in that epoch, as a DSM and an albedo (:class:`_Painter`).

:mod:`survey.synth.render` lights, smears, misregisters and adds noise to what is painted
here. ``_Grid`` and ``_Painter`` keep their private names because benchmarks reach them
through :mod:`survey.synth.render`, which re-exports them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from scipy import ndimage

from survey.synth.layout import (
    CAR_HEIGHT_M,
    Building,
    Hedge,
    Layout,
)
from survey.synth.params import SynthParams
from survey.synth.resample import upsample_linear

__all__ = ["F32", "_Grid", "_Painter", "draw_look"]

log = logging.getLogger(__name__)

F32 = np.float32


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


def draw_look(params: SynthParams, center: tuple[float, float]) -> dict[str, Any]:
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
