"""Transits that go around keep-out areas (holes and no-fly zones).

A straight transit is kept when it does not enter the keep-out area. Otherwise the shortest
path is taken on a visibility graph whose nodes are the convex corners of the keep-out area
grown by a small clearance (shortest paths among polygonal obstacles bend only there); the
all-pairs distances of the graph are computed once (scipy's Dijkstra), so each routed transit
costs two visibility scans and one small matrix minimum.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy.sparse.csgraph import shortest_path
from shapely.geometry.base import BaseGeometry

from flightplans.errors import SiteGeometryError

__all__ = ["Router"]


def _convex_corners(geom: BaseGeometry) -> np.ndarray:
    pts = []
    for poly in shapely.get_parts(geom):
        rings = shapely.get_rings(poly)
        for i, ring in enumerate(rings):
            c = shapely.get_coordinates(ring)[:-1]
            if len(c) < 3:
                continue
            prev, nxt = np.roll(c, 1, axis=0), np.roll(c, -1, axis=0)
            cross = (c[:, 0] - prev[:, 0]) * (nxt[:, 1] - c[:, 1]) - (c[:, 1] - prev[:, 1]) * (
                nxt[:, 0] - c[:, 0]
            )
            turn = cross * (1.0 if bool(shapely.is_ccw(ring)) else -1.0)
            # exterior: corners convex towards the outside; a hole of the keep-out (free space
            # enclosed by it): corners reflex as seen from inside the ring
            pts.append(c[turn > 0] if i == 0 else c[turn < 0])
    return np.vstack(pts) if pts else np.zeros((0, 2))


def _hits_boxes(a: np.ndarray, b: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n, m) True where segment a→b (n, 2) meets box (m, 4: minx, miny, maxx, maxy)."""
    d = (b - a)[:, None, :]
    a3 = a[:, None, :]
    lo, hi = boxes[None, :, 0:2], boxes[None, :, 2:4]
    flat = np.abs(d) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t1 = (lo - a3) / d
        t2 = (hi - a3) / d
    t_lo = np.where(flat, -np.inf, np.minimum(t1, t2))
    t_hi = np.where(flat, np.inf, np.maximum(t1, t2))
    inside_flat = ~flat | ((a3 >= lo) & (a3 <= hi))
    tmin = np.maximum(t_lo.max(axis=2), 0.0)
    tmax = np.minimum(t_hi.min(axis=2), 1.0)
    return inside_flat.all(axis=2) & (tmin <= tmax)


class Router:
    """Shortest transits avoiding ``keepout`` (metric CRS).

    Parameters
    ----------
    keepout
        Area never to fly over, or ``None``.
    clearance
        Extra distance (m) the graph nodes keep from ``keepout``.
    """

    def __init__(self, keepout: BaseGeometry | None, clearance: float = 1.0) -> None:
        self._keepout = keepout if keepout is not None and not keepout.is_empty else None
        self._clearance = clearance
        self._nodes: np.ndarray | None = None
        self._fine = False
        self._dist: np.ndarray | None = None
        self._pred: np.ndarray | None = None
        self._cache: dict[tuple[float, float, float, float], np.ndarray] = {}
        self._parts: list[tuple[np.ndarray, BaseGeometry]] = []
        if self._keepout is not None:
            # a hair inside, so that a path touching the boundary is not "inside"
            test = shapely.buffer(self._keepout, -0.01, join_style="mitre")
            for part in shapely.get_parts(test):
                shapely.prepare(part)
                self._parts.append((np.asarray(shapely.bounds(part)), part))
        self._boxes = np.array([bx for bx, _ in self._parts]).reshape(-1, 4)

    def blocked(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """For (n, 2) start and end arrays: True where the straight segment enters keep-out."""
        out = np.zeros(len(a), dtype=bool)
        if not self._parts or len(a) == 0:
            return out
        hits = _hits_boxes(a, b, self._boxes)
        for k in np.flatnonzero(hits.any(axis=0)):
            idx = np.flatnonzero(hits[:, k] & ~out)
            if len(idx):
                lines = shapely.linestrings(np.stack([a[idx], b[idx]], axis=1))
                out[idx] = np.asarray(shapely.intersects(self._parts[k][1], lines), dtype=bool)
        return out

    def free_around(
        self, home: tuple[float, float], extent: np.ndarray | None = None
    ) -> BaseGeometry | None:
        """The open space connected to ``home`` with room to pass, grown back to the keep-out.

        ``extent`` (n, 2) are points the answer must reach (the frame is their bounding box).
        Points inside the answer can be reached from ``home``; points outside may still be
        (narrow passages), which :meth:`path` decides.
        """
        if self._keepout is None:
            return None
        c = self._clearance
        x0, y0, x1, y1 = shapely.bounds(self._keepout)
        pts = np.vstack([np.asarray(home, dtype=np.float64)[None], [[x0, y0], [x1, y1]]])
        if extent is not None:
            pts = np.vstack([pts, np.asarray(extent, dtype=np.float64).reshape(-1, 2)])
        lo, hi = pts.min(axis=0) - 100.0, pts.max(axis=0) + 100.0
        frame = shapely.box(lo[0], lo[1], hi[0], hi[1])
        free = shapely.difference(frame, shapely.buffer(self._keepout, c))
        parts = list(shapely.get_parts(free))
        if not parts:
            return None
        p = shapely.points(home)
        part = min(parts, key=lambda g: float(shapely.distance(g, p)))
        out = shapely.buffer(part, c + 0.5)
        shapely.prepare(out)
        return out

    def _build(self, fine: bool = False) -> None:
        assert self._keepout is not None
        c = self._clearance
        found = []
        for part in shapely.get_parts(shapely.buffer(self._keepout, c, join_style="mitre")):
            hull = shapely.convex_hull(part)
            if not fine and part.area > 0.97 * hull.area:
                # nearly convex: a coarse polygon around the hull (simplify by t, then grow
                # by t again so that it still encloses the part), few nodes
                t = max(c, 0.08 * math.sqrt(hull.area))
                coarse = shapely.buffer(shapely.simplify(hull, t), t, join_style="mitre")
                found.append(_convex_corners(coarse))
            else:
                found.append(_convex_corners(shapely.simplify(part, c / 2.0)))
        nodes = np.vstack(found) if found else np.zeros((0, 2))
        if len(nodes):
            inside = np.zeros(len(nodes), dtype=bool)
            for _, part in self._parts:
                inside |= np.asarray(shapely.intersects(part, shapely.points(nodes)), dtype=bool)
            nodes = nodes[~inside]
        n = len(nodes)
        dist = np.full((n, n), np.inf)
        if n:
            ii, jj = np.triu_indices(n, k=1)
            free = ~self.blocked(nodes[ii], nodes[jj])
            d = np.hypot(*(nodes[ii] - nodes[jj]).T)
            dist[ii[free], jj[free]] = d[free]
            dist[jj[free], ii[free]] = d[free]
            np.fill_diagonal(dist, 0.0)
            graph = np.where(np.isfinite(dist), dist, 0.0)
            self._dist, self._pred = shortest_path(
                graph, method="D", directed=False, return_predecessors=True
            )
        else:
            self._dist = dist
            self._pred = np.zeros((0, 0), dtype=np.int32)
        self._nodes = nodes
        self._fine = fine

    def path(self, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
        """(n, 2) polyline from ``a`` to ``b`` (both ends included) outside keep-out."""
        key = (a[0], a[1], b[0], b[1])
        if key in self._cache:
            return self._cache[key]
        pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        out = np.array([pa, pb]) if not self.blocked(pa[None], pb[None])[0] else self._route(pa, pb)
        self._cache[key] = out
        return out

    def _route(self, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
        if self._nodes is None:
            self._build()
        out = self._search(pa, pb)
        if out is None and not self._fine:
            # a pocket of the keep-out area hidden from the coarse hull nodes: all corners
            self._build(fine=True)
            out = self._search(pa, pb)
        if out is None:
            raise SiteGeometryError(
                f"no transit from ({pa[0]:.1f}, {pa[1]:.1f}) to ({pb[0]:.1f}, {pb[1]:.1f}) "
                "around the no-fly zones; move --home or check that the zones leave a way"
            )
        return out

    def _search(self, pa: np.ndarray, pb: np.ndarray) -> np.ndarray | None:
        nodes, dist, pred = self._nodes, self._dist, self._pred
        assert nodes is not None and dist is not None and pred is not None
        n = len(nodes)
        va = ~self.blocked(np.repeat(pa[None], n, 0), nodes) if n else np.zeros(0, bool)
        vb = ~self.blocked(nodes, np.repeat(pb[None], n, 0)) if n else np.zeros(0, bool)
        ia, ib = np.flatnonzero(va), np.flatnonzero(vb)
        if len(ia) == 0 or len(ib) == 0:
            return None
        da = np.hypot(*(nodes[ia] - pa).T)
        db = np.hypot(*(nodes[ib] - pb).T)
        total = da[:, None] + dist[np.ix_(ia, ib)] + db[None, :]
        k = int(np.argmin(total))
        if not math.isfinite(float(total.ravel()[k])):
            return None
        i, j = ia[k // len(ib)], ib[k % len(ib)]
        chain = [j]
        while chain[-1] != i:
            p = int(pred[i, chain[-1]])
            if p < 0:
                break
            chain.append(p)
        chain.reverse()
        return np.vstack([pa, nodes[chain], pb])
