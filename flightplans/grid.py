"""Parallel flight lines (transects) over a site at a given bearing.

Geometry
--------
Work is done in a frame rotated so that the flight lines run along ``u`` (the bearing) and are
stacked along ``v``. Lines are spaced ``spacing`` apart and centred on the site's extent in
``v``. Line ``k`` is responsible for the *band* ``|v - v_k| <= half_band`` (bands of
neighbouring lines overlap): its photo span along ``u`` is the ``u``-extent of each connected
piece of (site ∩ band), so every point of the site lies in the band of at least one line whose
photos reach it, and the photos at both ends of every span are level (the drone flies the
turnaround outside the span with the trigger off). A piece of band that the line itself crosses
outside the site (a notch narrower than the band) is flown only when the band needs it; a line
never crosses a notch wider than ``half_band``: its spans are split there.

Keep-out areas (holes, no-fly zones, each already grown by the safety margin) cut the spans;
the turnaround at a cut end is shortened so that it never enters them. Triggering starts at the
span's start and the span is lengthened to a whole number of trigger distances so that a photo
falls on (or past) its far end.

Two implementations share the post-processing: :func:`make_transects` (exact, shapely band
clipping, used for the final plan) and :func:`estimate_spans` (vectorized scan lines at the
band edges and centre plus the vertices inside the band, used inside the angle sweep).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = [
    "GridGeometry",
    "Spans",
    "Transect",
    "estimate_spans",
    "estimate_transects",
    "make_transects",
]

_EPS_M = 0.05


@dataclass(frozen=True)
class Transect:
    """One flight line segment, flown from ``start`` to ``end`` with the trigger on.

    ``start``/``end`` are (x, y) metres in the plan CRS; ``lead_in``/``lead_out`` the
    turnaround lengths (m) flown before ``start`` and after ``end`` on the same line;
    ``bearing_deg`` the direction of flight from ``start`` to ``end``.
    """

    pass_index: int
    line_index: int
    start: tuple[float, float]
    end: tuple[float, float]
    lead_in: float
    lead_out: float

    @property
    def length(self) -> float:
        """Length of the photo span in metres."""
        return math.hypot(self.end[0] - self.start[0], self.end[1] - self.start[1])

    def direction(self) -> tuple[float, float]:
        """Unit vector from start to end."""
        n = self.length
        if n == 0:
            return (0.0, 1.0)
        return ((self.end[0] - self.start[0]) / n, (self.end[1] - self.start[1]) / n)

    def entry(self) -> tuple[float, float]:
        """Where the line is entered: ``lead_in`` before ``start``."""
        dx, dy = self.direction()
        return (self.start[0] - dx * self.lead_in, self.start[1] - dy * self.lead_in)

    def exit(self) -> tuple[float, float]:
        """Where the line is left: ``lead_out`` after ``end``."""
        dx, dy = self.direction()
        return (self.end[0] + dx * self.lead_out, self.end[1] + dy * self.lead_out)

    def reversed(self) -> Transect:
        """The same line flown the other way."""
        return Transect(
            self.pass_index, self.line_index, self.end, self.start, self.lead_out, self.lead_in
        )

    def photo_positions(self, trigger_m: float) -> np.ndarray:
        """(n, 2) photo centres: ``start`` and every ``trigger_m`` metres up to ``end``."""
        n = math.floor(self.length / trigger_m + 1e-6) + 1
        k = np.arange(n, dtype=np.float64)[:, None] * trigger_m
        d = np.asarray(self.direction())
        return np.asarray(self.start) + k * d


def _ring_edges(geom: BaseGeometry) -> np.ndarray:
    """(E, 4) edges x1, y1, x2, y2 of every ring of a (multi)polygon."""
    rings = shapely.get_rings(shapely.get_parts(geom))
    out = []
    for r in rings:
        c = shapely.get_coordinates(r)
        if len(c) >= 2:
            out.append(np.hstack([c[:-1], c[1:]]))
    if not out:
        return np.zeros((0, 4))
    return np.vstack(out)


@dataclass(frozen=True, eq=False)
class GridGeometry:
    """The site prepared once for many bearings.

    ``target`` is the area to photograph (site minus holes and no-fly zones), ``keepout`` the
    area never to fly over (holes and no-fly zones grown by the margin) or ``None``.
    """

    target: BaseGeometry
    keepout: BaseGeometry | None
    target_edges: np.ndarray
    keepout_edges: np.ndarray
    vertices: np.ndarray

    @classmethod
    def build(cls, target: BaseGeometry, keepout: BaseGeometry | None) -> GridGeometry:
        """Prepare ``target`` and ``keepout`` (metric CRS) for :func:`make_transects`."""
        ko = keepout if keepout is not None and not keepout.is_empty else None
        return cls(
            target=target,
            keepout=ko,
            target_edges=_ring_edges(target),
            keepout_edges=_ring_edges(ko) if ko is not None else np.zeros((0, 4)),
            vertices=shapely.get_coordinates(target),
        )


def _frame(bearing_deg: float) -> tuple[float, float]:
    t = math.radians(bearing_deg)
    return math.sin(t), math.cos(t)


def _to_uv(x: np.ndarray, y: np.ndarray, s: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    # u along the bearing, v across; the matrix [[s, c], [c, -s]] is its own inverse.
    return x * s + y * c, x * c - y * s


@dataclass(frozen=True, eq=False)
class Spans:
    """Photo spans of one bearing as flat arrays (all lines together).

    ``line`` (n,) line index, ``a``/``b`` (n,) start/end of the trigger span along ``u`` (m),
    ``lead_in``/``lead_out`` (n,) turnarounds (m), ``v`` (L,) line offsets, ``s``/``c`` the
    frame (sine and cosine of the bearing).
    """

    line: np.ndarray
    a: np.ndarray
    b: np.ndarray
    lead_in: np.ndarray
    lead_out: np.ndarray
    v: np.ndarray
    s: float
    c: float

    def entries_exits(self) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) entry and exit points (x, y) when flown in the +u direction."""
        vv = self.v[self.line]
        ue, ux = self.a - self.lead_in, self.b + self.lead_out
        ex, ey = _to_uv(ue, vv, self.s, self.c)
        xx, xy = _to_uv(ux, vv, self.s, self.c)
        return np.column_stack([ex, ey]), np.column_stack([xx, xy])


def _scan(
    edges: np.ndarray, vs: np.ndarray, s: float, c: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Even-odd intervals of lines ``v = vs`` inside the rings: flat (row, u0, u1).

    Only the (edge, line) pairs that cross are computed: each edge spans a range of the
    sorted line offsets, found by binary search.
    """
    z = np.zeros(0)
    if len(edges) == 0 or len(vs) == 0:
        return z.astype(np.int64), z, z
    u1, v1 = _to_uv(edges[:, 0], edges[:, 1], s, c)
    u2, v2 = _to_uv(edges[:, 2], edges[:, 3], s, c)
    order = np.argsort(vs, kind="stable")
    vsort = vs[order]
    lo, hi = np.minimum(v1, v2), np.maximum(v1, v2)
    i0 = np.searchsorted(vsort, lo, "left")
    i1 = np.searchsorted(vsort, hi, "left")
    counts = i1 - i0
    total = int(counts.sum())
    if total == 0:
        return z.astype(np.int64), z, z
    e = np.repeat(np.arange(len(edges)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    r = i0[e] + (np.arange(total) - first)
    V = vsort[r]
    u = u1[e] + (V - v1[e]) * (u2[e] - u1[e]) / (v2[e] - v1[e])
    k = np.lexsort((u, r))
    r, u = r[k], u[k]
    start = np.searchsorted(r, r, "left")
    even = np.flatnonzero(((np.arange(total) - start) % 2) == 0)
    even = even[even + 1 < total]
    even = even[r[even + 1] == r[even]]
    return order[r[even]], u[even], u[even + 1]


def _merge(
    line: np.ndarray, a: np.ndarray, b: np.ndarray, gap: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of intervals per line (intervals closer than ``gap`` are joined)."""
    if len(a) == 0:
        return line, a, b
    base = float(np.min(a))
    big = float(np.max(b)) - base + 2 * gap + 10.0
    A = a - base + line * big
    B = b - base + line * big
    order = np.lexsort((A, line))
    A, B, ln = A[order], B[order], line[order]
    cmax = np.maximum.accumulate(B)
    new = np.ones(len(A), dtype=bool)
    new[1:] = A[1:] > cmax[:-1] + gap
    idx = np.flatnonzero(new)
    ends = np.maximum.reduceat(B, idx)
    lm = ln[idx]
    return lm, A[idx] - lm * big + base, ends - lm * big + base


def _line_offsets(vmin: float, vmax: float, spacing: float) -> np.ndarray:
    n = max(1, math.ceil((vmax - vmin) / spacing - 1e-9))
    first = (vmin + vmax) / 2 - (n - 1) * spacing / 2
    return first + spacing * np.arange(n)


def _spans_exact(
    geom: GridGeometry, s: float, c: float, vs: np.ndarray, half_band: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u0, _ = _to_uv(geom.vertices[:, 0], geom.vertices[:, 1], s, c)
    umin, umax = float(u0.min()) - 1.0, float(u0.max()) + 1.0

    def fwd(xy: np.ndarray) -> np.ndarray:
        u, v = _to_uv(xy[:, 0], xy[:, 1], s, c)
        return np.column_stack([u, v])

    rot = shapely.transform(geom.target, fwd)
    boxes = shapely.box(umin, vs - half_band, umax, vs + half_band)
    pieces = shapely.intersection(boxes, rot)
    parts, idx = shapely.get_parts(pieces, return_index=True)
    keep = shapely.area(parts) > 1e-9
    parts, idx = parts[keep], idx[keep]
    bnd = shapely.bounds(parts).reshape(-1, 4)
    return _merge(idx.astype(np.int64), bnd[:, 0], bnd[:, 2], gap=half_band)


def _spans_fast(
    geom: GridGeometry, s: float, c: float, vs: np.ndarray, half_band: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = np.array([-half_band, 0.0, half_band])
    sub = (vs[:, None] + offsets[None, :]).ravel()
    row, a, b = _scan(geom.target_edges, sub, s, c)
    line = row // len(offsets)
    # vertices inside a band extend that line's spans (extremes of a band piece lie on the
    # band edges or at vertices)
    u0, v0 = _to_uv(geom.vertices[:, 0], geom.vertices[:, 1], s, c)
    spacing = float(vs[1] - vs[0]) if len(vs) > 1 else 2 * half_band + 1.0
    k_lo = np.ceil((v0 - half_band - vs[0]) / spacing).astype(np.int64)
    k_hi = np.floor((v0 + half_band - vs[0]) / spacing).astype(np.int64)
    n_k = int(np.max(k_hi - k_lo)) + 1 if len(v0) else 0
    vl, vu = [], []
    for off in range(max(n_k, 0)):
        k = k_lo + off
        ok = (k <= k_hi) & (k >= 0) & (k < len(vs))
        vl.append(k[ok])
        vu.append(u0[ok])
    ln, la, lb = _merge(line, a, b, gap=half_band)
    if not vl:
        return ln, la, lb
    pk, pu = np.concatenate(vl), np.concatenate(vu)
    # a vertex in the band belongs to a piece that reaches the scan lines (or to none):
    # extend the nearest span of its line; lines without a span get the vertices' extent
    has = np.isin(pk, ln)
    if has.any():
        k, u = pk[has], pu[has]
        base = float(min(la.min(), u.min())) if len(la) else float(u.min())
        big = float(max(lb.max(), u.max())) - base + 10.0
        A = la - base + ln * big
        U = u - base + k * big
        j = np.clip(np.searchsorted(A, U) - 1, 0, len(A) - 1)
        j2 = np.clip(j + 1, 0, len(A) - 1)
        d1 = np.where(ln[j] == k, np.maximum(0.0, np.maximum(la[j] - u, u - lb[j])), np.inf)
        d2 = np.where(ln[j2] == k, np.maximum(0.0, np.maximum(la[j2] - u, u - lb[j2])), np.inf)
        pick = np.where(d2 < d1, j2, j)
        la, lb = la.copy(), lb.copy()
        np.minimum.at(la, pick, u)
        np.maximum.at(lb, pick, u)
    lone = ~has
    if lone.any():
        ln = np.concatenate([ln, pk[lone]])
        la = np.concatenate([la, pu[lone]])
        lb = np.concatenate([lb, pu[lone]])
    return _merge(ln, la, lb, gap=half_band)


def _subtract(
    line: np.ndarray, a: np.ndarray, b: np.ndarray, cl: np.ndarray, ca: np.ndarray, cb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(cl) == 0:
        return line, a, b
    cut_lines = set(cl.tolist())
    has = np.array([k in cut_lines for k in line.tolist()], dtype=bool)
    out_l, out_a, out_b = [line[~has]], [a[~has]], [b[~has]]
    for k, pa, pb in zip(line[has].tolist(), a[has].tolist(), b[has].tolist(), strict=True):
        pieces = [(pa, pb)]
        sel = cl == k
        for qa, qb in zip(ca[sel].tolist(), cb[sel].tolist(), strict=True):
            nxt = []
            for xa, xb in pieces:
                if qb <= xa or qa >= xb:
                    nxt.append((xa, xb))
                    continue
                if qa > xa:
                    nxt.append((xa, qa))
                if qb < xb:
                    nxt.append((qb, xb))
            pieces = nxt
        out_l.append(np.full(len(pieces), k, dtype=np.int64))
        out_a.append(np.array([p[0] for p in pieces], dtype=np.float64))
        out_b.append(np.array([p[1] for p in pieces], dtype=np.float64))
    line, a, b = np.concatenate(out_l), np.concatenate(out_a), np.concatenate(out_b)
    order = np.lexsort((a, line))
    return line[order], a[order], b[order]


def _neighbour_limits(
    line: np.ndarray, a: np.ndarray, b: np.ndarray, cl: np.ndarray, ca: np.ndarray, cb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each span: end of the keep-out cut before it and start of the one after (or inf)."""
    lo = np.full(len(a), -np.inf)
    hi = np.full(len(a), np.inf)
    if len(cl) == 0 or len(a) == 0:
        return lo, hi
    base = float(min(np.min(a), np.min(ca)))
    big = float(max(np.max(b), np.max(cb))) - base + 10.0
    S = ca - base + cl * big
    E = cb - base + cl * big
    order_s, order_e = np.argsort(S), np.argsort(E)
    S, E = S[order_s], E[order_e]
    ls, le = cl[order_s], cl[order_e]
    A = a - base + line * big
    B = b - base + line * big
    i = np.searchsorted(S, B - 1e-6)
    ok = (i < len(S)) & (ls[np.minimum(i, len(S) - 1)] == line)
    hi[ok] = S[i[ok]] - line[ok] * big + base
    j = np.searchsorted(E, A + 1e-6) - 1
    ok = (j >= 0) & (le[np.maximum(j, 0)] == line)
    lo[ok] = E[j[ok]] - line[ok] * big + base
    return lo, hi


def _spans(
    geom: GridGeometry,
    bearing_deg: float,
    spacing: float,
    half_band: float,
    trigger: float,
    turnaround: float,
    exact: bool,
) -> Spans:
    s, c = _frame(bearing_deg)
    _, v0 = _to_uv(geom.vertices[:, 0], geom.vertices[:, 1], s, c)
    vs = _line_offsets(float(v0.min()), float(v0.max()), spacing)
    line, a, b = (_spans_exact if exact else _spans_fast)(geom, s, c, vs, half_band)
    cr, ca, cb = _scan(geom.keepout_edges, vs, s, c)
    if len(cr):
        cr, ca, cb = _merge(cr, ca, cb)
        line, a, b = _subtract(line, a, b, cr, ca, cb)
        lo, hi = _neighbour_limits(line, a, b, cr, ca, cb)
    else:
        lo, hi = np.full(len(a), -np.inf), np.full(len(a), np.inf)
    eps = min(_EPS_M, 0.05 * trigger)
    n = np.maximum(0, np.ceil((b - a) / trigger - 1e-9))
    end = np.minimum(a + n * trigger + eps, hi)
    end = np.maximum(end, a + np.minimum(eps, hi - a))
    lead_in = np.clip(np.minimum(turnaround, a - lo - _EPS_M), 0.0, None)
    lead_out = np.clip(np.minimum(turnaround, hi - end - _EPS_M), 0.0, None)
    return Spans(line, a, end, lead_in, lead_out, vs, s, c)


def _to_transects(sp: Spans, pass_index: int) -> list[Transect]:
    vv = sp.v[sp.line]
    x0, y0 = _to_uv(sp.a, vv, sp.s, sp.c)
    x1, y1 = _to_uv(sp.b, vv, sp.s, sp.c)
    return [
        Transect(
            pass_index, int(k), (float(p), float(q)), (float(r), float(t)), float(li), float(lo)
        )
        for k, p, q, r, t, li, lo in zip(
            sp.line, x0, y0, x1, y1, sp.lead_in, sp.lead_out, strict=True
        )
    ]


def make_transects(
    geom: GridGeometry,
    bearing_deg: float,
    spacing: float,
    half_band: float,
    trigger: float,
    turnaround: float,
    pass_index: int = 0,
) -> list[Transect]:
    """Exact transects over ``geom`` at ``bearing_deg`` (degrees clockwise from grid north).

    Parameters
    ----------
    geom
        Prepared site (:meth:`GridGeometry.build`).
    bearing_deg
        Direction of the lines.
    spacing
        Distance between lines (m).
    half_band
        Half-width (m) of the strip each line must photograph; at least ``spacing / 2`` and
        at most half the side footprint.
    trigger
        Distance between photos (m).
    turnaround
        Extension flown beyond each span, trigger off (m).
    pass_index
        0 for the main pass, 1 for the crosshatch.

    Returns
    -------
    list of Transect
        In line order (``v`` increasing), all flown in the direction of ``bearing_deg``.
    """
    sp = _spans(geom, bearing_deg, spacing, half_band, trigger, turnaround, True)
    return _to_transects(sp, pass_index)


def estimate_spans(
    geom: GridGeometry,
    bearing_deg: float,
    spacing: float,
    half_band: float,
    trigger: float,
    turnaround: float,
) -> Spans:
    """Spans from three scan lines per band plus the vertices in it (vectorized, approximate).

    Used inside the angle sweep; spans can differ slightly from :func:`make_transects`.
    """
    return _spans(geom, bearing_deg, spacing, half_band, trigger, turnaround, False)


def estimate_transects(
    geom: GridGeometry,
    bearing_deg: float,
    spacing: float,
    half_band: float,
    trigger: float,
    turnaround: float,
    pass_index: int = 0,
) -> list[Transect]:
    """:func:`estimate_spans` as :class:`Transect` objects."""
    sp = estimate_spans(geom, bearing_deg, spacing, half_band, trigger, turnaround)
    return _to_transects(sp, pass_index)
