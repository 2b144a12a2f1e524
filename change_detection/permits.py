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

Without permits (``permits=None``) every change is a lead of class ``new_structure``,
``raised`` or ``demolished``. Lead ids are stable: a hash of the class and of the geometry
snapped to a 0.5 m grid in the projected CRS, so re-running (chunked or not) gives the same id.
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

from change_detection.errors import PermitError
from change_detection.leads import Lead
from change_detection.objects import ChangeObject
from change_detection.params import DetectParams

__all__ = ["Permit", "build_leads", "lead_id", "parse_date"]

_ID_GRID_M = 0.5
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


def lead_id(lead_class: str, geometry: BaseGeometry) -> str:
    """Stable id of a lead: hash of its class and its geometry snapped to a 0.5 m grid.

    >>> from shapely.geometry import box
    >>> lead_id("no_permit", box(0, 0, 10, 10)) == lead_id("no_permit", box(0.1, 0, 10, 10.1))
    True
    """
    snapped = shapely.normalize(shapely.set_precision(geometry, _ID_GRID_M))
    digest = hashlib.sha256(lead_class.encode() + b"|" + shapely.to_wkb(snapped, hex=False))
    return digest.hexdigest()[:16]


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


def _describe_change(obj: ChangeObject, rgb_only: bool) -> str:
    if rgb_only:
        return f"a change of {obj.area_m2:.0f} m² in the orthophotos"
    if obj.kind == "new":
        return (
            f"a new structure of {obj.area_m2:.0f} m², {obj.height_gain_m:.1f} m tall"
            f"{_floors_text(obj.floors_added)}"
        )
    if obj.kind == "raised":
        return (
            f"an existing structure raised by {obj.height_gain_m:.1f} m"
            f"{_floors_text(obj.floors_added)} over {obj.area_m2:.0f} m²"
        )
    return (
        f"a structure of {obj.area_m2:.0f} m² removed (height loss "
        f"{abs(obj.height_gain_m or 0.0):.1f} m)"
    )


def _period_text(start: dt.date | None, end: dt.date | None) -> str:
    return f"{start.isoformat() if start else '?'} to {end.isoformat() if end else '?'}"


def _classify(
    obj: ChangeObject,
    permits: Sequence[Permit] | None,
    start: dt.date | None,
    end: dt.date | None,
    params: DetectParams,
    rgb_only: bool,
) -> list[_Draft]:
    what = _describe_change(obj, rgb_only)
    tail: tuple[str, ...] = (
        ("RGB-only evidence (no DSM): no height measured, verify on site",) if rgb_only else ()
    )

    def draft(
        cls: str, geom: BaseGeometry, reasons: tuple[str, ...], ids: tuple[str, ...], score: float
    ) -> _Draft:
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

    if permits is None:
        cls = {"new": "new_structure", "raised": "raised", "removed": "demolished"}[obj.kind]
        return [draft(cls, obj.geometry, (f"{what}; no permits were checked",), (), obj.score)]

    touching = [
        p
        for p in permits
        if p.geometry.intersects(obj.geometry)
        and p.geometry.intersection(obj.geometry).area >= _MIN_OVERLAP_M2
    ]
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
        return [
            draft(
                "demolished",
                obj.geometry,
                (f"{what}; no valid permit covers it", *stale_reasons),
                (),
                obj.score,
            )
        ]
    if not valid:
        return [
            draft(
                "no_permit",
                obj.geometry,
                (f"{what}; no valid permit covers it", *stale_reasons),
                (),
                obj.score,
            )
        ]
    footprint = shapely.union_all([p.geometry for p in valid])
    ids = tuple(sorted(p.permit_id for p in valid))
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
            draft(
                "outside_footprint",
                outside,
                (f"{area:.0f} m² of {what} lies outside the footprint of permit {', '.join(ids)}",),
                ids,
                obj.score * min(1.0, 0.6 + 0.4 * area / (4 * params.min_area_m2)),
            )
        )
    if rgb_only or obj.height_m is None:
        return drafts
    inside = obj.geometry.intersection(footprint)
    if inside.is_empty or inside.area < params.min_area_m2:
        return drafts
    main = max(valid, key=lambda p: p.geometry.intersection(obj.geometry).area)
    height = obj.height_m
    reasons: list[str] = []
    excess = 0.0
    if main.max_height_m is not None and height > main.max_height_m + params.height_tolerance_m:
        excess = height - main.max_height_m
        reasons.append(
            f"measured height {height:.1f} m above ground exceeds the {main.max_height_m:.1f} m "
            f"allowed by permit {main.permit_id} (+{excess:.1f} m)"
        )
    floors_est = round(height / params.storey_height_m)
    if (
        main.floors is not None
        and floors_est > main.floors
        and (main.max_height_m is None or excess > 0)
    ):
        reasons.append(
            f"about {floors_est} floors measured where permit {main.permit_id} allows {main.floors}"
        )
    if reasons:
        inside = shapely.normalize(shapely.make_valid(inside))
        margin = min(1.0, excess / params.storey_height_m) if excess > 0 else 0.5
        drafts.append(
            draft(
                "over_height",
                inside,
                (f"{what} inside the permitted footprint", *reasons),
                (main.permit_id,),
                obj.score * (0.6 + 0.4 * margin),
            )
        )
    return drafts


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
) -> list[Lead]:
    """Overlay change objects on permits and return the leads in WGS84.

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
    seen: set[str] = set()
    for obj in objects:
        for d in _classify(obj, permits, start, end, params, rgb_only):
            lid = lead_id(d.lead_class, d.geometry)
            if lid in seen:
                continue
            seen.add(lid)
            leads.append(
                Lead(
                    lead_id=lid,
                    lead_class=d.lead_class,
                    geometry=reproject(d.geometry),
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
    leads.sort(key=lambda lead: (-lead.score, lead.lead_id))
    return leads
