"""What a flight achieved from its photo footprints: coverage, holes and thin parts of an area
(:func:`compute_coverage`), front and side overlaps along and between lines
(:func:`achieved_overlaps`).

Pure geometry in one projected metric CRS (metres); the footprints come from
:func:`flightplans.footprints.image_footprint` (``survey.ingest.qc`` does both).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

__all__ = ["Coverage", "Overlaps", "achieved_overlaps", "compute_coverage"]


@dataclass(frozen=True)
class Coverage:
    """How well a set of footprints covers an area (see :func:`compute_coverage`).

    Attributes
    ----------
    area_m2
        Area of the region checked.
    covered_frac
        Fraction of it seen by at least one photo.
    overlapped_frac
        Fraction seen by at least ``min_views`` photos.
    min_views
        Number of photos that makes a point well overlapped.
    views_median
        Median number of photos seeing a point of the region.
    holes
        Parts seen by no photo (Polygon/MultiPolygon, possibly empty), in the input CRS.
    thin
        Parts seen by 1 to ``min_views - 1`` photos.
    cell_m
        Side of the grid cells the figures were counted on.
    """

    area_m2: float
    covered_frac: float
    overlapped_frac: float
    min_views: int
    views_median: float
    holes: BaseGeometry
    thin: BaseGeometry
    cell_m: float


@dataclass(frozen=True)
class Overlaps:
    """Front and side overlaps achieved along and between flight lines, in percent.

    NaN where not measurable (fewer than two photos on a line, one line only).
    """

    front_median_pct: float
    front_min_pct: float
    side_median_pct: float
    side_min_pct: float
    n_lines: int


def _cell_size(area: BaseGeometry, footprints: Sequence[BaseGeometry], max_cells: int) -> float:
    minx, miny, maxx, maxy = area.bounds
    by_area = math.sqrt(max((maxx - minx) * (maxy - miny), 1e-6) / max_cells)
    sides = [math.sqrt(f.area) for f in footprints if f is not None and f.area > 0]
    by_photo = float(np.median(sides)) / 20.0 if sides else 0.0
    return max(by_area, by_photo, 0.05)


def _mask_to_geometry(mask: np.ndarray, x0: float, y0: float, cell: float) -> BaseGeometry:
    """Union of the cells set in ``mask`` (rows from y0 upwards) as polygons."""
    boxes: list[Polygon] = []
    for r in range(mask.shape[0]):
        row = mask[r]
        if not row.any():
            continue
        d = np.diff(np.concatenate([[0], row.view(np.int8), [0]]))
        starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        ya, yb = y0 + r * cell, y0 + (r + 1) * cell
        boxes.extend(
            box(x0 + a * cell, ya, x0 + b * cell, yb) for a, b in zip(starts, stops, strict=True)
        )
    if not boxes:
        return Polygon()
    return shapely.union_all(boxes)


def compute_coverage(
    footprints: Sequence[BaseGeometry | None],
    area: BaseGeometry,
    *,
    min_views: int = 5,
    cell_m: float | None = None,
    min_hole_m2: float | None = None,
    max_cells: int = 1_000_000,
) -> Coverage:
    """Count how many footprints see each part of ``area``; find its holes.

    Parameters
    ----------
    footprints
        Photo footprints in the CRS of ``area`` (``None`` entries are skipped).
    area
        The region to check (the site, or the planned area), metres.
    min_views
        A point is well overlapped when this many photos see it (5 by default, what
        photogrammetry needs for a reliable 3D point; a 75/65 % plan gives about 11).
    cell_m
        Grid cell side (default: fine enough for ``max_cells`` cells over the area and a
        twentieth of a footprint side).
    min_hole_m2
        Holes and thin parts smaller than this are dropped from the geometries (not from
        the fractions); default 4 cells.

    Returns
    -------
    Coverage
    """
    fps = [f for f in footprints if f is not None and not f.is_empty]
    cell = float(cell_m) if cell_m else _cell_size(area, fps, max_cells)
    minx, miny, maxx, maxy = area.bounds
    nx = max(1, math.ceil((maxx - minx) / cell))
    ny = max(1, math.ceil((maxy - miny) / cell))
    xc = minx + (np.arange(nx) + 0.5) * cell
    yc = miny + (np.arange(ny) + 0.5) * cell
    gx, gy = np.meshgrid(xc, yc)
    inside = shapely.contains_xy(area, gx, gy)
    counts = np.zeros((ny, nx), dtype=np.int32)
    for fp in fps:
        fx0, fy0, fx1, fy1 = fp.bounds
        c0, c1 = np.searchsorted(xc, [fx0, fx1])
        r0, r1 = np.searchsorted(yc, [fy0, fy1])
        if c1 <= c0 or r1 <= r0:
            continue
        sub = shapely.contains_xy(fp, gx[r0:r1, c0:c1], gy[r0:r1, c0:c1])
        counts[r0:r1, c0:c1] += sub
    n_in = int(inside.sum())
    if n_in == 0:
        empty = Polygon()
        return Coverage(float(area.area), 0.0, 0.0, min_views, 0.0, empty, empty, cell)
    seen = counts[inside]
    min_area = min_hole_m2 if min_hole_m2 is not None else 4.0 * cell * cell

    def parts(mask: np.ndarray) -> BaseGeometry:
        geom = _mask_to_geometry(mask & inside, minx, miny, cell).intersection(area)
        keep = [g for g in shapely.get_parts(geom) if g.area >= min_area and g.area > 0]
        return shapely.union_all(keep) if keep else Polygon()

    return Coverage(
        area_m2=float(area.area),
        covered_frac=float((seen > 0).mean()),
        overlapped_frac=float((seen >= min_views).mean()),
        min_views=min_views,
        views_median=float(np.median(seen)),
        holes=parts(counts == 0),
        thin=parts((counts > 0) & (counts < min_views)),
        cell_m=cell,
    )


def _extent_along(poly: BaseGeometry, direction: np.ndarray) -> float:
    c = shapely.get_coordinates(poly)
    proj = c @ direction
    return float(proj.max() - proj.min())


def _strips(xy: np.ndarray, max_turn_deg: float, gap_factor: float) -> list[np.ndarray]:
    """Split photo indices (in flying order) into straight lines."""
    if len(xy) < 2:
        return [np.arange(len(xy))]
    step = np.diff(xy, axis=0)
    dist = np.linalg.norm(step, axis=1)
    typical = float(np.median(dist[dist > 0])) if (dist > 0).any() else 1.0
    heading = np.degrees(np.arctan2(step[:, 0], step[:, 1]))
    strips: list[list[int]] = [[0]]
    for i in range(1, len(xy)):
        j = i - 1  # the step from photo i-1 to photo i
        turn = abs((heading[j] - heading[j - 1] + 180.0) % 360.0 - 180.0) if j > 0 else 0.0
        new_line = dist[j] > gap_factor * typical or (len(strips[-1]) > 1 and turn > max_turn_deg)
        if new_line:
            strips.append([i])
        else:
            strips[-1].append(i)
    return [np.asarray(s) for s in strips]


def achieved_overlaps(
    centres: np.ndarray,
    footprints: Sequence[BaseGeometry | None],
    *,
    max_turn_deg: float = 25.0,
    gap_factor: float = 2.5,
) -> Overlaps:
    """Front and side overlaps the photos achieved.

    Photos (in flying order) are split into straight lines where the flight turns by more
    than ``max_turn_deg`` or two photos lie farther apart than ``gap_factor`` times the
    typical spacing. Front overlap of consecutive photos on a line is
    ``1 - spacing / footprint length along the line``; side overlap of a photo is
    ``1 - d / footprint width across the line``, with ``d`` the distance to the nearest
    parallel line beside it — the definitions the planner's trigger distance and line spacing
    follow (:mod:`flightplans.camera`).

    Parameters
    ----------
    centres
        (n, 2) footprint centres or camera positions in metres, in flying order.
    footprints
        The n footprints (``None`` where unknown: that photo is left out).
    """
    xy = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    keep = np.array([f is not None and not f.is_empty for f in footprints], dtype=bool)
    keep &= np.isfinite(xy).all(axis=1)
    idx = np.flatnonzero(keep)
    fronts: list[float] = []
    sides: list[float] = []
    lines: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (indices, origin, unit)
    for s in _strips(xy[idx], max_turn_deg, gap_factor):
        members = idx[s]
        if len(members) < 2:
            continue
        vec = xy[members[-1]] - xy[members[0]]
        norm = float(np.linalg.norm(vec))
        if norm == 0:
            continue
        unit = vec / norm
        lines.append((members, xy[members[0]], unit))
        for a, b in itertools.pairwise(members):
            fp = footprints[a]
            assert fp is not None
            length = _extent_along(fp, unit)
            if length > 0:
                fronts.append(100.0 * (1.0 - abs(float((xy[b] - xy[a]) @ unit)) / length))
    for k, (members, _o, unit) in enumerate(lines):
        normal = np.array([-unit[1], unit[0]])
        for i in members:
            fp = footprints[i]
            assert fp is not None
            width = _extent_along(fp, normal)
            best = math.inf
            for m, (_other, origin, u2) in enumerate(lines):
                if m == k or abs(float(unit @ u2)) < math.cos(math.radians(max_turn_deg)):
                    continue
                d = abs(float((xy[i] - origin) @ normal))
                if 0.2 * width < d < best:
                    best = d
            if math.isfinite(best) and width > 0:
                sides.append(100.0 * (1.0 - best / width))

    def stats(v: list[float]) -> tuple[float, float]:
        return (float(np.median(v)), float(np.min(v))) if v else (math.nan, math.nan)

    fm, fmin = stats(fronts)
    sm, smin = stats(sides)
    return Overlaps(fm, fmin, sm, smin, len(lines))
