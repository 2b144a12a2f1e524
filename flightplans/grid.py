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
clipping, used for the final plan) and :func:`estimate_transects` (vectorized scan lines, used
inside the angle sweep, where a few per cent error on a span does not change the best angle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = ["GridGeometry", "Transect", "estimate_transects", "make_transects"]

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


def _scan(edges: np.ndarray, vs: np.ndarray, s: float, c: float) -> list[np.ndarray]:
    """Even-odd crossing intervals of horizontal lines ``v = vs`` with the rings (u frame)."""
    if len(edges) == 0:
        return [np.zeros((0, 2)) for _ in vs]
    u1, v1 = _to_uv(edges[:, 0], edges[:, 1], s, c)
    u2, v2 = _to_uv(edges[:, 2], edges[:, 3], s, c)
    V = vs[:, None]
    crosses = (v1[None, :] <= V) != (v2[None, :] <= V)
    dv = np.where(v2 != v1, v2 - v1, 1.0)
    u = u1[None, :] + (V - v1[None, :]) * ((u2 - u1) / dv)[None, :]
    u = np.where(crosses, u, np.inf)
    u.sort(axis=1)
    starts, ends = u[:, 0::2], u[:, 1::2]
    m = min(starts.shape[1], ends.shape[1])
    starts, ends = starts[:, :m], ends[:, :m]
    out = []
    for i in range(len(vs)):
        ok = np.isfinite(ends[i])
        out.append(np.column_stack([starts[i][ok], ends[i][ok]]))
    return out


def _merge(iv: np.ndarray, gap: float = 0.0) -> np.ndarray:
    if len(iv) == 0:
        return iv.reshape(0, 2)
    iv = iv[np.argsort(iv[:, 0])]
    out = [list(iv[0])]
    for a, b in iv[1:]:
        if a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.asarray(out, dtype=np.float64)


def _line_offsets(vmin: float, vmax: float, spacing: float) -> np.ndarray:
    n = max(1, math.ceil((vmax - vmin) / spacing - 1e-9))
    first = (vmin + vmax) / 2 - (n - 1) * spacing / 2
    return first + spacing * np.arange(n)


def _spans_exact(
    geom: GridGeometry, s: float, c: float, vs: np.ndarray, half_band: float
) -> list[np.ndarray]:
    u0, _v0 = _to_uv(geom.vertices[:, 0], geom.vertices[:, 1], s, c)
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
    b = shapely.bounds(parts)
    out = []
    for k in range(len(vs)):
        sel = idx == k
        out.append(_merge(np.column_stack([b[sel, 0], b[sel, 2]])))
    return out


def _spans_fast(
    geom: GridGeometry, s: float, c: float, vs: np.ndarray, half_band: float
) -> list[np.ndarray]:
    offsets = np.linspace(-half_band, half_band, 5)
    sub = (vs[:, None] + offsets[None, :]).ravel()
    scans = _scan(geom.target_edges, sub, s, c)
    u0, v0 = _to_uv(geom.vertices[:, 0], geom.vertices[:, 1], s, c)
    out = []
    for k, vk in enumerate(vs):
        iv = np.vstack(scans[k * 5 : (k + 1) * 5])
        iv = _merge(iv, gap=half_band)
        inband = np.abs(v0 - vk) <= half_band
        if len(iv) and inband.any():
            for u in u0[inband]:
                j = int(np.argmin(np.maximum(iv[:, 0] - u, u - iv[:, 1])))
                iv[j, 0] = min(iv[j, 0], u)
                iv[j, 1] = max(iv[j, 1], u)
            iv = _merge(iv)
        elif inband.any():
            iv = np.array([[u0[inband].min(), u0[inband].max()]])
        out.append(iv)
    return out


def _subtract(spans: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    out = []
    for a, b in spans:
        pieces = [(a, b)]
        for ca, cb in cuts:
            nxt = []
            for pa, pb in pieces:
                if cb <= pa or ca >= pb:
                    nxt.append((pa, pb))
                    continue
                if ca > pa:
                    nxt.append((pa, ca))
                if cb < pb:
                    nxt.append((cb, pb))
            pieces = nxt
        out.extend(pieces)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _finish(
    spans_per_line: list[np.ndarray],
    cuts_per_line: list[np.ndarray],
    vs: np.ndarray,
    s: float,
    c: float,
    trigger: float,
    turnaround: float,
    pass_index: int,
) -> list[Transect]:
    out: list[Transect] = []
    for k, (spans, cuts) in enumerate(zip(spans_per_line, cuts_per_line, strict=True)):
        flyable = _subtract(spans, cuts)
        cut_starts = np.sort(cuts[:, 0]) if len(cuts) else np.zeros(0)
        cut_ends = np.sort(cuts[:, 1]) if len(cuts) else np.zeros(0)
        for a, b in flyable:
            if b - a < 0:
                continue
            nxt = cut_starts[cut_starts >= b - 1e-9]
            prv = cut_ends[cut_ends <= a + 1e-9]
            limit_hi = float(nxt.min()) if len(nxt) else math.inf
            limit_lo = float(prv.max()) if len(prv) else -math.inf
            n = max(0, math.ceil((b - a) / trigger - 1e-9))
            end = min(a + n * trigger + min(_EPS_M, 0.05 * trigger), limit_hi)
            end = max(end, a + min(_EPS_M, limit_hi - a))
            lead_in = max(0.0, min(turnaround, a - limit_lo - _EPS_M))
            lead_out = max(0.0, min(turnaround, limit_hi - end - _EPS_M))
            vk = float(vs[k])
            x0, y0 = _to_uv(np.array([a, end]), np.array([vk, vk]), s, c)
            out.append(
                Transect(
                    pass_index,
                    k,
                    (float(x0[0]), float(y0[0])),
                    (float(x0[1]), float(y0[1])),
                    lead_in,
                    lead_out,
                )
            )
    return out


def _transects(
    geom: GridGeometry,
    bearing_deg: float,
    spacing: float,
    half_band: float,
    trigger: float,
    turnaround: float,
    pass_index: int,
    exact: bool,
) -> list[Transect]:
    s, c = _frame(bearing_deg)
    _, v0 = _to_uv(geom.vertices[:, 0], geom.vertices[:, 1], s, c)
    vs = _line_offsets(float(v0.min()), float(v0.max()), spacing)
    spans = (_spans_exact if exact else _spans_fast)(geom, s, c, vs, half_band)
    cuts = _scan(geom.keepout_edges, vs, s, c)
    return _finish(spans, cuts, vs, s, c, trigger, turnaround, pass_index)


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
    return _transects(geom, bearing_deg, spacing, half_band, trigger, turnaround, pass_index, True)


def estimate_transects(
    geom: GridGeometry,
    bearing_deg: float,
    spacing: float,
    half_band: float,
    trigger: float,
    turnaround: float,
    pass_index: int = 0,
) -> list[Transect]:
    """Like :func:`make_transects`, from five scan lines per band plus the vertices in it.

    About ten times faster on large polygons; spans can differ slightly from the exact ones.
    """
    return _transects(geom, bearing_deg, spacing, half_band, trigger, turnaround, pass_index, False)
