"""Permit overlay: which change objects an inspector should look at, and why.

A change covered by a permit that was valid during the survey period, inside its footprint and
within its height, is permitted and is not a lead. Everything else becomes a
:class:`~change_detection.leads.Lead`:

* ``no_permit`` — a new or raised structure that no valid permit covers;
* ``outside_footprint`` — the part of a structure outside the permitted footprint (the lead
  geometry is that part, after an opening by ``footprint_tolerance_m`` against slivers);
* ``over_height`` — inside a footprint but taller than the permit's ``max_height_m`` (plus
  ``height_tolerance_m``) or with more floors than it allows;
* ``demolished`` — a structure removed where no valid permit covers it.

Legally existing buildings (:class:`ExistingBuilding`: a cadastral or base-map building layer,
the other half of the permit atlas) cover a structure as a valid permit does: a structure
matching one is not a lead, the part of a structure outside every permit and existing building
is ``outside_footprint``, and a structure taller than the height recorded for the existing
building (and than every permit over it allows) is ``over_height``. An existing building does
not excuse its own removal; only a valid permit does. Reasons name the record ("permit P-3",
"existing building B-12"), and ``permit_ids`` lists the ids of both kinds the lead was checked
against.

Without permits (``permits=None``) every change is a lead of class ``new_structure``,
``raised`` or ``demolished``. Lead ids are stable (:func:`lead_id`): a hash of the class, the
two survey dates and the 5 m cell of a WGS84 grid that holds the outline's centroid, so a
re-run (chunked or not, inputs in another CRS, pixel size or compression) gives the same id.

This module is longer than most (about 640 lines, half of them docstrings and reason texts):
the classes, the reasons that explain them and the stable lead ids are one subject — what an
inspector reads about a lead — and are kept together so that a class and its wording change
in one place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from change_detection.errors import ChangeDetectionError, PermitError
from change_detection.leads import Lead, with_unique_ids
from change_detection.objects import ChangeObject
from change_detection.params import DetectParams
from change_detection.rgb_verdict import MIN_PX_ACROSS, RoofEvidence

__all__ = ["ExistingBuilding", "Permit", "build_leads", "lead_id", "parse_date"]

_ID_CELL_M = 5.0  # lead ids: side of the WGS84 grid cells that place a lead (see lead_id)
_ID_M_PER_DEGREE = 111_320.0  # the grid's definition of a degree of latitude, in metres
#: Above this fraction of an object's pixels in a vegetation colour kept because the surface
#: is planar (``ChangeObject.vegetation_colour_fraction``), its reasons say so.
_PLANAR_VEGETATION_COLOUR = 0.5
_FOOTPRINT_TOLERANCE_M = 0.5
_MIN_OVERLAP_M2 = 0.5


@dataclass(frozen=True)
class Permit:
    """A building permit on the detection grid.

    Attributes
    ----------
    permit_id : str
    geometry : shapely Polygon or MultiPolygon
        Permitted footprint in the projected CRS of the grid.
    max_height_m : float or None
        Highest permitted point above ground, in metres.
    floors : int or None
        Permitted number of floors.
    valid_from, valid_to : datetime.date or None
        Validity (inclusive); None is open-ended.
    """

    permit_id: str
    geometry: BaseGeometry
    max_height_m: float | None = None
    floors: int | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    def is_valid_during(self, start: dt.date | None, end: dt.date | None) -> bool:
        """True when the permit was valid at some time between ``start`` and ``end``."""
        if end is not None and self.valid_from is not None and self.valid_from > end:
            return False
        return not (start is not None and self.valid_to is not None and self.valid_to < start)

    def validity_text(self) -> str:
        a = self.valid_from.isoformat() if self.valid_from else "open start"
        b = self.valid_to.isoformat() if self.valid_to else "open end"
        return f"{a} to {b}"


@dataclass(frozen=True)
class ExistingBuilding:
    """A legally existing building of the permit atlas, on the detection grid.

    Attributes
    ----------
    building_id : str
    geometry : shapely Polygon or MultiPolygon
        Footprint in the projected CRS of the grid.
    height_m : float or None
        Recorded height above ground in metres (highest point); None when not recorded.
    floors : int or None
        Recorded number of floors.
    """

    building_id: str
    geometry: BaseGeometry
    height_m: float | None = None
    floors: int | None = None


def parse_date(value: str | dt.date | dt.datetime | None, what: str = "date") -> dt.date | None:
    """Parse an ISO 8601 date (or datetime, whose date is used); None stays None.

    Raises
    ------
    PermitError
        The text is not an ISO 8601 date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise PermitError(
            f"{what} {text!r} is not an ISO 8601 date; write it as YYYY-MM-DD"
        ) from exc


def lead_id(
    lead_class: str,
    geometry: BaseGeometry,
    *,
    crs: CRS | str | int = 4326,
    before_date: str | dt.date | None = None,
    after_date: str | dt.date | None = None,
) -> str:
    """Stable id of a lead: what it is, which two surveys found it, and where it is to 5 m.

    The id is the first 16 hex digits of the SHA-256 of
    ``lead-id-v2|<class>|<before date>|<after date>|<row>|<col>``: the lead class, the survey
    dates of the two epochs (ISO 8601; ``-`` when unknown, as for a permit atlas taken as the
    "before" epoch) and the cell of a fixed grid on WGS84 that holds the centroid of the
    outline. Rows are bands of 5 m of latitude (5 / 111 320 degrees, counted from the
    equator); each row is cut into columns 5 m wide at its middle latitude.

    **What changes an id**: the class; either date; the centroid crossing a cell edge. The
    centroid averages the whole outline, so one edge of a 10 m building moving by 0.25 m moves
    it by about 0.12 m, and a centroid moving by (dx, dy) metres changes the id with a chance
    of about (|dx| + |dy|) / 5 m (2 % for 0.1 m). On four synthetic sites, delivering the after
    epoch in the next UTM zone at another pixel size moved the centroids of the 20 leads by
    0.02 m on average and 0.09 m at most.

    **What does not**: the CRS, pixel size, compression or tiling of the inputs, chunking,
    the exact vertices, the area, heights, score, reasons, permits and input hashes. Leads of
    one class and dates whose centroids share a cell share an id; :func:`build_leads` keeps
    them all and appends ``-2``, ``-3``, ... (:func:`change_detection.leads.with_unique_ids`).

    Parameters
    ----------
    lead_class : str
        One of :data:`change_detection.leads.LEAD_CLASSES`.
    geometry : shapely geometry
        The outline, in ``crs``.
    crs : CRS, default EPSG:4326
        CRS of ``geometry``; by default (longitude, latitude) in degrees, as in :class:`Lead`,
        so ``lead_id(lead.lead_class, lead.geometry, before_date=lead.before_date,
        after_date=lead.after_date)`` gives a lead's id back (without a ``-n`` suffix).
    before_date, after_date : ISO 8601 date or None
        Survey dates of the two epochs.

    Returns
    -------
    str
        16 lowercase hex digits.

    Raises
    ------
    ChangeDetectionError
        An empty geometry, or a centroid that is not a longitude and latitude (a projected
        outline given without its ``crs``).

    >>> from shapely.geometry import box
    >>> a = lead_id("no_permit", box(500003, 4000003.5, 500013, 4000011.5), crs=32650)
    >>> a == lead_id("no_permit", box(500003.26, 4000003.5, 500013, 4000011.24), crs=32650)
    True
    >>> a == lead_id("demolished", box(500003, 4000003.5, 500013, 4000011.5), crs=32650)
    False
    """
    if geometry is None or geometry.is_empty:
        raise ChangeDetectionError(f"lead_id: the {lead_class} lead has no outline")
    source = CRS.from_user_input(crs)
    if source != CRS.from_epsg(4326):
        to_wgs84 = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
        geometry = shapely.transform(
            geometry, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1]))
        )
    centroid = geometry.centroid
    lon, lat = float(centroid.x), float(centroid.y)
    if not (np.isfinite(lon) and np.isfinite(lat) and abs(lon) <= 180.0 and abs(lat) <= 90.0):
        raise ChangeDetectionError(
            f"lead_id: the centroid ({lon:.6g}, {lat:.6g}) of the {lead_class} lead is not a "
            "longitude and latitude; pass crs= the CRS of its outline"
        )
    row = int(np.floor(lat * _ID_M_PER_DEGREE / _ID_CELL_M))
    middle = (row + 0.5) * _ID_CELL_M / _ID_M_PER_DEGREE
    metres_per_degree_lon = _ID_M_PER_DEGREE * max(float(np.cos(np.radians(middle))), 0.01)
    col = int(np.floor(lon * metres_per_degree_lon / _ID_CELL_M))
    dates = [parse_date(d, "survey date") for d in (before_date, after_date)]
    when = [d.isoformat() if d else "-" for d in dates]
    key = "|".join(["lead-id-v2", lead_class, *when, str(row), str(col)])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Draft:
    lead_class: str
    geometry: BaseGeometry
    reasons: tuple[str, ...]
    area_m2: float
    height_gain_m: float | None
    floors_added: int | None
    permit_ids: tuple[str, ...]
    score: float
    kind: str


def _floors_text(n: int | None) -> str:
    if n is None:
        return ""
    return f" ({abs(n)} floor{'s' if abs(n) != 1 else ''})"


def _describe_change(obj: ChangeObject, rgb_only: bool, first_survey: bool = False) -> str:
    if rgb_only:
        ev = obj.rgb_evidence
        if ev is None:
            return f"a change of {obj.area_m2:.0f} m² in the orthophotos"
        size = f"{obj.area_m2:.0f} m² ({ev.width_m:.1f} x {ev.length_m:.1f} m)"
        if ev.what == "new roof":
            return f"a new roof of {size} in the after orthophoto"
        if ev.what == "removed roof":
            return f"a roof of {size} in the before orthophoto is gone in the after one"
        return f"a surface change of {size}: different roofs in the two orthophotos"
    if obj.kind == "new":
        return (
            f"a {'' if first_survey else 'new '}structure of {obj.area_m2:.0f} m², "
            f"{obj.height_gain_m:.1f} m tall{_floors_text(obj.floors_added)}"
        )
    if obj.kind == "raised":
        return (
            f"an existing structure raised by {obj.height_gain_m:.1f} m"
            f"{_floors_text(obj.floors_added)} over {obj.area_m2:.0f} m²"
        )
    if obj.height_gain_m is None:
        return f"a structure of {obj.area_m2:.0f} m² removed"
    return (
        f"a structure of {obj.area_m2:.0f} m² removed (height loss {abs(obj.height_gain_m):.1f} m)"
    )


def _rgb_evidence_reasons(ev: RoofEvidence, params: DetectParams) -> tuple[str, ...]:
    """How sure an RGB-only lead is, and why it is not vegetation, a shadow or a car."""
    sure = (
        f"colour changed by {ev.change_sigma:.1f} colour spreads of the scene "
        f"(threshold {params.rgb_change_sigma:g}); its outline is an edge "
        f"{ev.outline_in:.1f}x its texture in its own orthophoto and {ev.outline_other:.1f}x "
        f"in the other (a new outline, threshold {params.rgb_outline_ratio:g})"
    )
    if ev.painted:
        vegetation = (
            f"{ev.vegetation:.0%} of it has the colour of vegetation but it is rectilinear "
            f"(fills {ev.rectangularity:.0%} of its rectangle): a painted roof, not a tree"
        )
    else:
        vegetation = f"not vegetation: {ev.vegetation:.0%} of it has the colour of vegetation"
    shadow = (
        f"not a shadow: {ev.brightness:.2f}x the orthophoto's mean brightness "
        f"(shadows are below {params.shadow_ratio:g}x)"
    )
    car = (
        f"not a car: {ev.width_m:.1f} m wide (vehicles are at most 2.6 m), "
        f"{ev.solidity:.0%} of its convex hull, {ev.rectangularity:.0%} of its rectangle"
    )
    if ev.resolution < 1.0:
        across = params.rgb_lead_min_width_m / ev.gsd_m
        coarse = (
            f"low confidence: at {ev.gsd_m:g} m per pixel a {params.rgb_lead_min_width_m:g} m "
            f"wide building spans {across:.1f} px and segment outlines need about "
            f"{MIN_PX_ACROSS:g} px across (score scaled by {ev.resolution:.2f}); verify on a "
            "finer image"
        )
        return (sure, coarse, vegetation, shadow, car)
    return (sure, vegetation, shadow, car)


def _period_text(start: dt.date | None, end: dt.date | None) -> str:
    return f"{start.isoformat() if start else '?'} to {end.isoformat() if end else '?'}"


@dataclass(frozen=True)
class _Cover:
    """A permit or an existing building as something that covers a structure."""

    label: str  # "permit" or "existing building"
    record_id: str
    geometry: BaseGeometry
    max_height_m: float | None
    floors: int | None
    overlap_m2: float

    @property
    def name(self) -> str:
        return f"{self.label} {self.record_id}"


def _overlap(geometry: BaseGeometry, obj: ChangeObject) -> float:
    if not geometry.intersects(obj.geometry):
        return 0.0
    return float(geometry.intersection(obj.geometry).area)


def _records_text(covers: Sequence[_Cover]) -> str:
    """``permit P-1, P-2 and existing building B-3``."""
    parts = []
    for label in ("permit", "existing building"):
        ids = sorted(c.record_id for c in covers if c.label == label)
        if ids:
            parts.append(f"{label} {', '.join(ids)}")
    return " and ".join(parts)


def _height_reasons(
    height: float, covers: Sequence[_Cover], params: DetectParams
) -> tuple[list[str], float, tuple[str, ...]]:
    """Why a structure inside its footprints is too tall: (reasons, excess m, record ids).

    The records covering at least half as much of the structure as the main one decide, and
    the most permissive of their recorded limits applies (a permit may allow raising an
    existing building); records without a limit are not checked.
    """
    largest = max(c.overlap_m2 for c in covers)
    governing = [c for c in covers if c.overlap_m2 >= 0.5 * largest]
    limited = [c for c in governing if c.max_height_m is not None]
    reasons: list[str] = []
    excess = 0.0
    ids: tuple[str, ...] = ()
    if limited:
        top = max(limited, key=lambda c: (c.max_height_m or 0.0, c.overlap_m2))
        assert top.max_height_m is not None
        ids = (top.record_id,)
        if height > top.max_height_m + params.height_tolerance_m:
            excess = height - top.max_height_m
            verb = "allowed by" if top.label == "permit" else "recorded for"
            reasons.append(
                f"measured height {height:.1f} m above ground exceeds the "
                f"{top.max_height_m:.1f} m {verb} {top.name} (+{excess:.1f} m)"
            )
    counted = [c for c in governing if c.floors is not None]
    floors_est = round(height / params.storey_height_m)
    if counted and (not limited or excess > 0):
        most = max(counted, key=lambda c: (c.floors or 0, c.overlap_m2))
        if most.floors is not None and floors_est > most.floors:
            verb = "allows" if most.label == "permit" else "has"
            reasons.append(
                f"about {floors_est} floors measured where {most.name} {verb} {most.floors}"
            )
            ids = ids or (most.record_id,)
    return reasons, excess, ids


def _reason_tail(obj: ChangeObject, params: DetectParams, rgb_only: bool) -> tuple[str, ...]:
    """The reasons every lead of ``obj`` ends with: the RGB-only evidence and its caveat, and
    a painted roof kept for its planar surface."""
    tail: tuple[str, ...] = (
        ("RGB-only evidence (no DSM): no height measured, verify on site",) if rgb_only else ()
    )
    if rgb_only and obj.rgb_evidence is not None:
        tail = _rgb_evidence_reasons(obj.rgb_evidence, params) + tail
    if obj.vegetation_colour_fraction > _PLANAR_VEGETATION_COLOUR:
        tail += (
            f"{obj.vegetation_colour_fraction:.0%} of it has the colour of vegetation but a "
            "planar surface in the DSM: a painted roof (e.g. green colour steel), not a tree",
        )
    return tail


def _draft(
    obj: ChangeObject,
    tail: tuple[str, ...],
    cls: str,
    geom: BaseGeometry,
    reasons: tuple[str, ...],
    ids: tuple[str, ...],
    score: float,
) -> _Draft:
    """A lead of class ``cls`` over ``geom`` (all of ``obj`` or a part), its score clipped to
    [0, 1] and rounded to 3 decimals, ``tail`` after its reasons."""
    area = obj.area_m2 if geom is obj.geometry else float(geom.area)
    return _Draft(
        cls,
        geom,
        reasons + tail,
        area,
        obj.height_gain_m,
        obj.floors_added,
        ids,
        float(min(1.0, max(0.0, round(score, 3)))),
        obj.kind,
    )


def _covers(
    obj: ChangeObject, valid: Sequence[Permit], existing: Sequence[ExistingBuilding]
) -> list[_Cover]:
    """The valid permits touching ``obj``, then the existing buildings overlapping it by at
    least ``_MIN_OVERLAP_M2``."""
    covers = [
        _Cover(
            "permit", p.permit_id, p.geometry, p.max_height_m, p.floors, _overlap(p.geometry, obj)
        )
        for p in valid
    ]
    for b in existing:
        overlap = _overlap(b.geometry, obj)
        if overlap >= _MIN_OVERLAP_M2:
            covers.append(
                _Cover(
                    "existing building", b.building_id, b.geometry, b.height_m, b.floors, overlap
                )
            )
    return covers


def _demolished_reasons(obj: ChangeObject, existing: Sequence[ExistingBuilding]) -> tuple[str, ...]:
    """The existing buildings of the atlas a removal covers for at least half its area."""
    return tuple(
        f"existing building {b.building_id}"
        + ("" if b.height_m is None else f" ({b.height_m:.1f} m)")
        + " of the atlas stood here"
        for b in existing
        if _overlap(b.geometry, obj) >= 0.5 * obj.area_m2
    )


def _covered_drafts(
    obj: ChangeObject,
    covers: Sequence[_Cover],
    what: str,
    tail: tuple[str, ...],
    params: DetectParams,
    rgb_only: bool,
) -> list[_Draft]:
    """The leads of a structure that permits or existing buildings cover: its part outside
    their footprint (``outside_footprint``) and, with a height measured, the part inside
    that is too tall (``over_height``)."""
    footprint = shapely.union_all([c.geometry for c in covers])
    ids = tuple(sorted(c.record_id for c in covers if c.label == "permit")) + tuple(
        sorted(c.record_id for c in covers if c.label != "permit")
    )
    drafts: list[_Draft] = []
    outside = obj.geometry.difference(footprint)
    tol = _FOOTPRINT_TOLERANCE_M
    if not outside.is_empty:
        outside = outside.buffer(-tol, join_style="mitre").buffer(tol, join_style="mitre")
        outside = outside.intersection(obj.geometry)
    if not outside.is_empty and outside.area >= params.min_area_m2:
        outside = shapely.normalize(shapely.make_valid(outside))
        area = float(outside.area)
        drafts.append(
            _draft(
                obj,
                tail,
                "outside_footprint",
                outside,
                (f"{area:.0f} m² of {what} lies outside the footprint of {_records_text(covers)}",),
                ids,
                obj.score * min(1.0, 0.6 + 0.4 * area / (4 * params.min_area_m2)),
            )
        )
    if rgb_only or obj.height_m is None:
        return drafts
    inside = obj.geometry.intersection(footprint)
    if inside.is_empty or inside.area < params.min_area_m2:
        return drafts
    reasons, excess, height_ids = _height_reasons(obj.height_m, covers, params)
    if reasons:
        inside = shapely.normalize(shapely.make_valid(inside))
        margin = min(1.0, excess / params.storey_height_m) if excess > 0 else 0.5
        drafts.append(
            _draft(
                obj,
                tail,
                "over_height",
                inside,
                (f"{what} inside the footprint of {_records_text(covers)}", *reasons),
                height_ids,
                obj.score * (0.6 + 0.4 * margin),
            )
        )
    return drafts


def _classify(
    obj: ChangeObject,
    permits: Sequence[Permit] | None,
    start: dt.date | None,
    end: dt.date | None,
    params: DetectParams,
    rgb_only: bool,
    existing: Sequence[ExistingBuilding] = (),
    first_survey: bool = False,
) -> list[_Draft]:
    """The leads one change object makes against the permits valid from ``start`` to
    ``end`` and the existing buildings (module docstring); none for a permitted change."""
    what = _describe_change(obj, rgb_only, first_survey)
    tail = _reason_tail(obj, params, rgb_only)
    if permits is None and not existing:
        cls = {"new": "new_structure", "raised": "raised", "removed": "demolished"}[obj.kind]
        reasons: tuple[str, ...] = (f"{what}; no permits were checked",)
        return [_draft(obj, tail, cls, obj.geometry, reasons, (), obj.score)]

    touching = [p for p in permits or () if _overlap(p.geometry, obj) >= _MIN_OVERLAP_M2]
    valid = [p for p in touching if p.is_valid_during(start, end)]
    stale = [p for p in touching if not p.is_valid_during(start, end)]
    stale_reasons = tuple(
        f"permit {p.permit_id} covers it but is valid {p.validity_text()}, outside the survey "
        f"period {_period_text(start, end)}"
        for p in stale
    )
    if obj.kind == "removed":
        if valid:
            return []
        gone = _demolished_reasons(obj, existing)
        reasons = (f"{what}; no valid permit covers it", *gone, *stale_reasons)
        return [_draft(obj, tail, "demolished", obj.geometry, reasons, (), obj.score)]
    covers = _covers(obj, valid, existing)
    if not covers:
        neither = (
            "no valid permit" if not existing else "neither a valid permit nor an existing building"
        )
        reasons = (f"{what}; {neither} covers it", *stale_reasons)
        return [_draft(obj, tail, "no_permit", obj.geometry, reasons, (), obj.score)]
    return _covered_drafts(obj, covers, what, tail, params, rgb_only)


def build_leads(
    objects: Sequence[ChangeObject],
    permits: Sequence[Permit] | None,
    *,
    crs: CRS | str | int,
    params: DetectParams = DetectParams(),  # noqa: B008 (frozen, immutable default)
    before_date: str | dt.date | None = None,
    after_date: str | dt.date | None = None,
    rgb_only: bool = False,
    input_hashes: Mapping[str, str] | None = None,
    existing: Sequence[ExistingBuilding] | None = None,
    first_survey: bool = False,
) -> list[Lead]:
    """Overlay change objects on permits (and existing buildings) and return the leads in WGS84.

    Parameters
    ----------
    objects : sequence of ChangeObject
        In the projected CRS ``crs`` (from :func:`change_detection.detect.detect_changes`).
    permits : sequence of Permit or None
        In the same CRS; None when no permits file was given (classes ``new_structure``,
        ``raised``, ``demolished``).
    crs : CRS
        Projected CRS of the objects and permits.
    before_date, after_date : ISO 8601 date or None
        Survey dates; permits are valid when their validity overlaps this period (unknown
        dates accept every permit).
    existing : sequence of ExistingBuilding, optional
        Legally existing buildings in the same CRS (see the module docstring); with them and
        ``permits=None`` every structure is checked against the buildings alone.
    first_survey : bool
        The objects are the structures of one survey checked against the atlas
        (``sitewatch check``), not changes between two: reasons say "a structure", not
        "a new structure".

    Returns
    -------
    list of Lead, sorted by score (highest first), then id.
    """
    start = parse_date(before_date, "before date")
    end = parse_date(after_date, "after date")
    if start is not None and end is not None and end < start:
        raise PermitError(
            f"after date {end} is before the before date {start}; swap --before-date and "
            "--after-date"
        )
    to_wgs84 = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)

    def reproject(geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(
            geom, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1]))
        )

    leads: list[Lead] = []
    for obj in objects:
        drafts = _classify(obj, permits, start, end, params, rgb_only, existing or (), first_survey)
        for d in drafts:
            outline = reproject(d.geometry)
            leads.append(
                Lead(
                    lead_id=lead_id(d.lead_class, outline, before_date=start, after_date=end),
                    lead_class=d.lead_class,
                    geometry=outline,
                    reasons=d.reasons,
                    area_m2=round(d.area_m2, 2),
                    height_gain_m=None if rgb_only else d.height_gain_m,
                    floors_added=None if rgb_only else d.floors_added,
                    permit_ids=d.permit_ids,
                    score=d.score,
                    kind=d.kind,
                    before_date=start.isoformat() if start else None,
                    after_date=end.isoformat() if end else None,
                    rgb_only=rgb_only,
                    input_hashes=dict(input_hashes or {}),
                )
            )
    leads = with_unique_ids(leads)  # leads sharing a 5 m cell are all kept (see lead_id)
    leads.sort(key=lambda lead: (-lead.score, lead.lead_id))
    return leads
