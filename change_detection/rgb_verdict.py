"""RGB-only mode, step 3: each whole segment judged as a roof, kept roofs assembled into leads.

:func:`judge_segment` keeps a segment of the after epoch as a *new roof* (of the before
epoch as a *removed roof*) when its colour changed, its outline is an edge in its own epoch
but not in the other, it is not a shadow, not vegetation, not a car and compact;
:func:`assemble_roofs` joins kept segments that touch into one roof and
:func:`is_building_sized` keeps the roofs the size of a small building. The statistics are
:func:`change_detection.rgb_segments.segment_sums` of whole segments (joined across chunk
seams by :func:`change_detection.objects.merge_segment_pieces`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from change_detection.params import DetectParams
from change_detection.rgb_scene import GAIN, RgbScale, SceneStats
from change_detection.rgb_segments import (
    _Q,
    S_BLUE,
    S_BOUNDARY,
    S_CHANGE,
    S_COUNT,
    S_EDGE_IN,
    S_EDGE_OTHER,
    S_GRAD_IN,
    S_GRAD_OTHER,
    S_GREEN,
    S_RED,
    S_VEGETATION,
)

__all__ = [
    "MIN_PX_ACROSS",
    "RoofEvidence",
    "SegmentShape",
    "SegmentVerdict",
    "assemble_roofs",
    "grow_distance_px",
    "judge_segment",
    "passes_statistics",
    "resolution_confidence",
    "segment_shape",
]


@dataclass(frozen=True)
class _Measures:
    change_sigma: float
    brightness: float
    outline_in: float
    outline_other: float
    vegetation: float
    step_dn: float


def _measures(stats: np.ndarray, direction: int, scene: SceneStats) -> _Measures:
    n = max(stats[S_COUNT], 1.0)
    nb = max(stats[S_BOUNDARY], 1.0)
    inner_in = max(stats[S_GRAD_IN] / n, 1.0)  # 1/16 DN floor: a perfectly flat segment
    inner_other = max(stats[S_GRAD_OTHER] / n, 1.0)
    edge_in = stats[S_EDGE_IN] / nb
    edge_other = stats[S_EDGE_OTHER] / nb
    lum = (stats[S_RED] + stats[S_GREEN] + stats[S_BLUE]) / (3.0 * n)
    return _Measures(
        change_sigma=float(stats[S_CHANGE] / (_Q * n) / scene.spread_before),
        brightness=float(lum / max(scene.brightness(direction), 1.0)),
        outline_in=float(edge_in / inner_in),
        outline_other=float(edge_other / inner_other),
        vegetation=float(stats[S_VEGETATION] / n),
        step_dn=float(edge_in / _Q),
    )


def grow_distance_px(
    stats: np.ndarray, direction: int, scene: SceneStats, params: DetectParams, scale: RgbScale
) -> float:
    """How far (pixels) a segment's outline lies inside the edge that bounds it.

    A step of height H blurred by the Gaussian of standard deviation s has a step-normalised
    gradient H·exp(−d²/2s²) at distance d; the segment stops where that falls to the
    threshold t, at d = s·sqrt(2·ln(H / t)). H is the mean strongest edge along the outline.
    """
    m = _measures(stats, direction, scene)
    t = params.rgb_edge_contrast * scene.spread(direction)
    ratio = max(m.step_dn / max(t, 1e-6), 1.0)
    return float(scale.sigma_px * math.sqrt(2.0 * math.log(ratio)))


def passes_statistics(
    stats: np.ndarray, direction: int, scene: SceneStats, params: DetectParams, scale: RgbScale
) -> np.ndarray:
    """The tests of :func:`judge_segment` that need no outline (a necessary condition).

    Change, brightness (not a shadow), the outline ratios, and an upper bound of the grown
    area (every pixel grown by the grow distance on each side) against ``min_area_m2``.

    Parameters
    ----------
    stats : ndarray of float64, shape (N_STATS,) or (n, N_STATS)

    Returns
    -------
    bool or ndarray of bool, shape (n,)
    """
    st = np.atleast_2d(stats)
    n = np.maximum(st[:, S_COUNT], 1.0)
    nb = np.maximum(st[:, S_BOUNDARY], 1.0)
    edge_in = st[:, S_EDGE_IN] / nb
    outline_in = edge_in / np.maximum(st[:, S_GRAD_IN] / n, 1.0)
    outline_other = (st[:, S_EDGE_OTHER] / nb) / np.maximum(st[:, S_GRAD_OTHER] / n, 1.0)
    change = st[:, S_CHANGE] / (_Q * n) / scene.spread_before
    lum = (st[:, S_RED] + st[:, S_GREEN] + st[:, S_BLUE]) / (3.0 * n)
    brightness = lum / max(scene.brightness(direction), 1.0)
    t = params.rgb_edge_contrast * scene.spread(direction)
    ratio = np.maximum(edge_in / _Q / max(t, 1e-6), 1.0)
    grow = scale.sigma_px * np.sqrt(2.0 * np.log(ratio))
    most_px = st[:, S_COUNT] * (1.0 + 2.0 * grow) ** 2
    ok = (
        (most_px * scale.gsd_m**2 >= params.min_area_m2)
        & (change >= params.rgb_change_sigma)
        & (brightness >= params.shadow_ratio)
        & (outline_in >= params.rgb_outline_ratio)
        & (outline_other < params.rgb_outline_ratio)
    )
    return ok if np.ndim(stats) == 2 else ok[0]


@dataclass(frozen=True)
class SegmentShape:
    """Shape of a segment's grown outline (metres).

    Attributes
    ----------
    outline : shapely Polygon or MultiPolygon
        The grown outline in pixel coordinates (x = column, y = row).
    area_m2, width_m, length_m : float
        Area; short and long side of the minimum rotated rectangle.
    solidity, rectangularity : float
        Area over the convex hull's, and over the minimum rotated rectangle's.
    """

    outline: BaseGeometry
    area_m2: float
    width_m: float
    length_m: float
    solidity: float
    rectangularity: float


def segment_shape(pixels: BaseGeometry, grow_px: float, gsd_m: float) -> SegmentShape:
    """The outline of a segment (its pixels' polygon) grown by ``grow_px``, and its shape.

    >>> from shapely.geometry import box
    >>> s = segment_shape(box(0, 0, 60, 20), 2.0, 0.1)
    >>> round(s.area_m2, 2), round(s.width_m, 2), round(s.rectangularity, 3)
    (15.36, 2.4, 1.0)
    """
    grown = pixels.buffer(grow_px, join_style="mitre") if grow_px > 0 else pixels
    area = float(grown.area)
    hull = float(grown.convex_hull.area)
    rect = shapely.minimum_rotated_rectangle(grown)
    coords = np.asarray(rect.exterior.coords) if rect.geom_type == "Polygon" else None
    if coords is None or len(coords) < 4:
        sides = (0.0, 0.0)
        rect_area = area
    else:
        a = float(np.hypot(*(coords[1] - coords[0])))
        b = float(np.hypot(*(coords[2] - coords[1])))
        sides = (min(a, b), max(a, b))
        rect_area = a * b
    return SegmentShape(
        outline=grown,
        area_m2=area * gsd_m * gsd_m,
        width_m=sides[0] * gsd_m,
        length_m=sides[1] * gsd_m,
        solidity=area / hull if hull > 0 else 0.0,
        rectangularity=area / rect_area if rect_area > 0 else 0.0,
    )


@dataclass(frozen=True)
class SegmentVerdict:
    """:func:`judge_segment`'s answer and the measurements behind it.

    Attributes
    ----------
    roof : bool
        Kept as a new (``GAIN``) or removed (``LOSS``) roof.
    failed : str
        The first test it failed (``""`` when kept): ``area``, ``change``, ``shadow``,
        ``outline``, ``outline_before`` (the outline was already an edge in the other epoch),
        ``vegetation``, ``narrow``, ``solidity``.
    evidence : RoofEvidence
    """

    roof: bool
    failed: str
    evidence: RoofEvidence


@dataclass(frozen=True)
class RoofEvidence:
    """Why an RGB-only change was kept (or what it measured): for reasons and scores.

    Attributes
    ----------
    what : str
        ``new roof``, ``removed roof`` or ``surface change`` (a roof found in both epochs at
        one place: replaced, or re-shaped).
    area_m2 : float
        Area of the kept segments' grown outlines.
    change_sigma : float
        Mean tolerant colour difference to the other epoch, in before spreads.
    outline_in, outline_other : float
        Edge strength along the outline over the interior's gradient, in the roof's epoch and
        in the other.
    brightness : float
        Mean brightness over its orthophoto's mean.
    vegetation : float
        Fraction in the colour of vegetation (NDVI with a near-infrared band).
    painted : bool
        In a vegetation colour but kept as rectilinear (a painted roof, e.g. green steel).
    width_m, length_m, solidity, rectangularity : float
        Of the grown outline: of the segment for :func:`judge_segment`, of the whole
        assembled roof for :func:`assemble_roofs`.
    colour : tuple of 3 int
        Mean colour (RGB, DN) in the roof's epoch.
    segments : int
        Number of kept segments (roof facets).
    gsd_m : float
        Pixel size of the grid it was found on (0 where not yet known).
    resolution : float
        :func:`resolution_confidence` at that pixel size (1 at 0.5 m or finer); the lead's
        score is scaled by it.
    """

    what: str
    area_m2: float
    change_sigma: float
    outline_in: float
    outline_other: float
    brightness: float
    vegetation: float
    painted: bool
    width_m: float
    length_m: float
    solidity: float
    rectangularity: float
    colour: tuple[int, int, int]
    segments: int = 1
    gsd_m: float = 0.0
    resolution: float = 1.0


def judge_segment(
    stats: np.ndarray,
    shape: SegmentShape,
    direction: int,
    scene: SceneStats,
    params: DetectParams,
    nir_decides: bool = False,
) -> SegmentVerdict:
    """Is this segment a roof that appeared (``GAIN``) or vanished (``LOSS``)?

    Parameters
    ----------
    stats : ndarray of float64, shape (N_STATS,)
        :func:`segment_sums` of the whole segment.
    shape : SegmentShape
        Of its grown outline (:func:`segment_shape`).
    direction : int
        ``GAIN`` (a segment of the after epoch) or ``LOSS`` (of the before epoch).
    nir_decides : bool
        Its epoch has a near-infrared band: vegetation is NDVI, without the painted-roof
        exception.
    """
    m = _measures(stats, direction, scene)
    n = max(stats[S_COUNT], 1.0)
    colour = (
        round(stats[S_RED] / n),
        round(stats[S_GREEN] / n),
        round(stats[S_BLUE] / n),
    )
    vegetation_colour = m.vegetation >= params.rgb_vegetation_fraction
    painted = (
        vegetation_colour
        and not nir_decides
        and shape.rectangularity >= params.rgb_painted_rectangularity
    )
    evidence = RoofEvidence(
        what="new roof" if direction == GAIN else "removed roof",
        area_m2=shape.area_m2,
        change_sigma=m.change_sigma,
        outline_in=m.outline_in,
        outline_other=m.outline_other,
        brightness=m.brightness,
        vegetation=m.vegetation,
        painted=painted,
        width_m=shape.width_m,
        length_m=shape.length_m,
        solidity=shape.solidity,
        rectangularity=shape.rectangularity,
        colour=(int(colour[0]), int(colour[1]), int(colour[2])),
    )
    tests = (
        ("area", shape.area_m2 >= params.min_area_m2),
        ("change", m.change_sigma >= params.rgb_change_sigma),
        ("shadow", m.brightness >= params.shadow_ratio),
        ("outline", m.outline_in >= params.rgb_outline_ratio),
        ("outline_before", m.outline_other < params.rgb_outline_ratio),
        ("vegetation", not vegetation_colour or painted),
        ("narrow", shape.width_m >= params.min_building_width_m),
        ("solidity", shape.solidity >= params.rgb_min_solidity),
    )
    failed = next((name for name, ok in tests if not ok), "")
    return SegmentVerdict(roof=failed == "", failed=failed, evidence=evidence)


# --- kept segments -> change objects -------------------------------------------------------


def _weighted(values: list[float], weights: list[float]) -> float:
    total = sum(weights)
    return float(sum(v * w for v, w in zip(values, weights, strict=True)) / total) if total else 0.0


def assemble_roofs(
    kept: list[tuple[int, SegmentShape, RoofEvidence]], gsd_m: float
) -> list[tuple[BaseGeometry, str, RoofEvidence]]:
    """Join kept segments whose grown outlines touch into roofs.

    Parameters
    ----------
    kept : list of (direction, shape, evidence)
        In a deterministic order (the caller sorts them).
    gsd_m : float
        Pixel size (the outlines are in pixel coordinates).

    Returns
    -------
    list of (outline in pixel coordinates, kind, evidence)
        ``kind`` is ``new`` or ``removed`` (by the larger area of gain or loss segments);
        the evidence's ``what`` is ``surface change`` when neither has two thirds of it.
    """
    if not kept:
        return []
    union = shapely.union_all([s.outline for _, s, _ in kept])
    parts = list(getattr(union, "geoms", [union]))
    tree = shapely.STRtree([s.outline for _, s, _ in kept])
    out: list[tuple[BaseGeometry, str, RoofEvidence]] = []
    for part in parts:
        members = [kept[int(i)] for i in sorted(tree.query(part, predicate="intersects"))]
        areas = [e.area_m2 for _, _, e in members]
        gain = sum(a for (d, _, _), a in zip(members, areas, strict=True) if d == GAIN)
        share = gain / sum(areas) if sum(areas) else 1.0
        kind = "new" if share >= 0.5 else "removed"
        if share >= 2 / 3:
            what = "new roof"
        elif share <= 1 / 3:
            what = "removed roof"
        else:
            what = "surface change"
        ev = [e for _, _, e in members]
        main = max(ev, key=lambda e: e.area_m2)
        whole = segment_shape(part, 0.0, gsd_m)
        evidence = RoofEvidence(
            what=what,
            area_m2=float(part.area) * gsd_m * gsd_m,
            change_sigma=_weighted([e.change_sigma for e in ev], areas),
            outline_in=_weighted([e.outline_in for e in ev], areas),
            outline_other=_weighted([e.outline_other for e in ev], areas),
            brightness=_weighted([e.brightness for e in ev], areas),
            vegetation=_weighted([e.vegetation for e in ev], areas),
            painted=any(e.painted for e in ev),
            width_m=whole.width_m,
            length_m=whole.length_m,
            solidity=whole.solidity,
            rectangularity=whole.rectangularity,
            colour=main.colour,
            segments=len(members),
        )
        out.append((part, kind, evidence))
    return out


#: Pixels across the smallest building below which its segment is not trusted: a segment is
#: opened to at least 3 px and its outline lies inside an edge band of about 2 px (smoothing
#: and tolerance) on each side, so a narrower roof has little interior left to compare.
MIN_PX_ACROSS = 8.0


def resolution_confidence(gsd_m: float, params: DetectParams) -> float:
    """How far the pixel size lets segments resolve the smallest building (0-1).

    ``rgb_lead_min_width_m / gsd_m`` pixels across, over :data:`MIN_PX_ACROSS`, at most 1:
    1 at 0.5 m or finer (4 m wide = 8 px), 0.91 at 0.55 m, 0.33 at 1.5 m.

    >>> round(resolution_confidence(1.5, DetectParams()), 2)
    0.33
    """
    if gsd_m <= 0:
        return 1.0
    return float(min(1.0, params.rgb_lead_min_width_m / gsd_m / MIN_PX_ACROSS))


def is_building_sized(evidence: RoofEvidence, params: DetectParams) -> bool:
    """Is an assembled roof large enough to be an RGB-only lead?

    Without heights, a change narrower than ``rgb_lead_min_width_m`` (default 4 m) or smaller
    than ``rgb_lead_min_area_m2`` (default 25 m²) is more often a vehicle, a container, a
    caravan (all at most 2.6 m wide), a sliver of misregistration along a building's edge or a
    relit roof facet than a building; many building codes exempt smaller single-storey
    detached buildings.
    """
    return evidence.width_m >= params.rgb_lead_min_width_m and evidence.area_m2 >= max(
        params.min_area_m2, params.rgb_lead_min_area_m2
    )
