"""Repeat leads: which detections of a new survey are structures the registry already follows.

Detection ids change from survey to survey (they hash both survey dates), so the registry
matches by footprint, in metres (the site's UTM zone):

* A detection **matches** a lead when their footprints overlap by at least
  :data:`MIN_OVERLAP_M2` and by at least :data:`MIN_OVERLAP_FRACTION` of the smaller of the
  two (an extension found as a sliver beside its building still matches it); among several,
  the largest overlap wins. Additions (kind ``new`` / ``raised``) match leads of additions,
  removals (kind ``removed``) leads of removals; a lead not yet closed wins over a closed one.
* A matched lead is **updated** (``observed``): the same structure seen again keeps its id.
  A match with a ``closed`` lead opens a **new** lead that names the closed one
  (``previous``): closed is final.
* A ``dismissed`` lead **reopens** when its structure **grew**: the part of the detection
  outside the lead's footprint exceeds both :data:`GROW_AREA_M2` and
  :data:`GROW_AREA_FRACTION` of the lead's area, or its height gain exceeds the recorded one by
  :data:`GROW_HEIGHT_M`, or it has more added floors. When the survey was compared with a
  reference that already shows the lead as last seen (``detect`` against an approved survey
  taken after that sighting), any addition overlapping it is a change since, hence growth.
* A lead whose structure is **gone** is proposed for closure: a removal detection overlapping
  a lead of an addition (the structure was taken down); and, for a survey checked against the
  permit atlas (``check``: every unpermitted structure is found each time), a lead not yet
  closed that no detection matched although the survey covered it. A removal mostly explained
  by the leads it closes (at least :data:`EXPLAINED_FRACTION` of its area) opens no lead of its
  own.

The rule is a pure function (:func:`match_detections`) of footprints, measures and dates; the
registry applies its plan (:meth:`survey.registry.Registry.record_leads`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import shapely
from shapely.geometry.base import BaseGeometry

__all__ = [
    "EXPLAINED_FRACTION",
    "GROW_AREA_FRACTION",
    "GROW_AREA_M2",
    "GROW_HEIGHT_M",
    "MIN_OVERLAP_FRACTION",
    "MIN_OVERLAP_M2",
    "Detection",
    "KnownLead",
    "MatchPlan",
    "match_detections",
]

MIN_OVERLAP_M2 = 1.0
MIN_OVERLAP_FRACTION = 0.3
GROW_AREA_M2 = 2.0
GROW_AREA_FRACTION = 0.10
GROW_HEIGHT_M = 1.0
EXPLAINED_FRACTION = 0.5


@dataclass(frozen=True)
class KnownLead:
    """A lead of the registry as matching sees it.

    Attributes
    ----------
    lead_id : int
    kind : str
        ``new``, ``raised`` or ``removed`` (:data:`change_detection.leads.LEAD_KINDS`).
    state : str
    footprint : shapely geometry
        In metres (the site's UTM zone).
    height_gain_m : float or None
    floors_added : int or None
    last_seen : datetime.date
        Date of the last survey that saw it.
    """

    lead_id: int
    kind: str
    state: str
    footprint: BaseGeometry
    height_gain_m: float | None
    floors_added: int | None
    last_seen: dt.date


@dataclass(frozen=True)
class Detection:
    """A lead of the new survey as matching sees it (footprint in metres)."""

    kind: str
    footprint: BaseGeometry
    height_gain_m: float | None
    floors_added: int | None


@dataclass
class MatchPlan:
    """What to do with a survey's detections.

    Attributes
    ----------
    observed : list of (int, int)
        (detection index, lead id): the lead is seen again and updated.
    reopened : list of (int, int)
        (detection index, lead id): a dismissed lead that grew; back to ``under_review``.
    new : list of (int, int or None)
        (detection index, previous lead id): a lead to open (previous: the closed lead
        seen again there, else None).
    gone : list of (int, int or None)
        (lead id, detection index or None): a lead whose structure is gone, proposed for
        closure (the removal detection that shows it, or None when it was not seen at all).
    grew : dict of int to str
        lead id → why it counts as grown (for the reopened ones).
    """

    observed: list[tuple[int, int]] = field(default_factory=list)
    reopened: list[tuple[int, int]] = field(default_factory=list)
    new: list[tuple[int, int | None]] = field(default_factory=list)
    gone: list[tuple[int, int | None]] = field(default_factory=list)
    grew: dict[int, str] = field(default_factory=dict)


def _additive(kind: str) -> bool:
    return kind != "removed"


def _overlap(a: BaseGeometry, b: BaseGeometry) -> float:
    """Intersection area when it counts as a match, else 0."""
    inter = float(shapely.intersection(a, b).area)
    if inter < MIN_OVERLAP_M2:
        return 0.0
    smaller = min(float(a.area), float(b.area))
    return inter if smaller > 0 and inter / smaller >= MIN_OVERLAP_FRACTION else 0.0


def _growth(det: Detection, lead: KnownLead, reference_date: dt.date | None) -> str | None:
    """Why ``det`` shows ``lead``'s structure grew, or None."""
    if reference_date is not None and reference_date >= lead.last_seen:
        return (
            f"a {det.kind} change over it since the reference survey of "
            f"{reference_date.isoformat()}, which already showed it"
        )
    lead_area = float(lead.footprint.area)
    outside = float(shapely.difference(det.footprint, lead.footprint).area)
    if outside > max(GROW_AREA_M2, GROW_AREA_FRACTION * lead_area):
        return f"{outside:.1f} m2 beyond its recorded footprint of {lead_area:.1f} m2"
    if det.height_gain_m is not None and (
        lead.height_gain_m is None or det.height_gain_m > lead.height_gain_m + GROW_HEIGHT_M
    ):
        was = "no height" if lead.height_gain_m is None else f"{lead.height_gain_m:.1f} m"
        return f"{det.height_gain_m:.1f} m high, recorded {was}"
    if det.floors_added is not None and det.floors_added > (lead.floors_added or 0):
        return f"{det.floors_added} floor(s) added, recorded {lead.floors_added or 0}"
    return None


def match_detections(
    detections: Sequence[Detection],
    leads: Sequence[KnownLead],
    *,
    atlas: bool,
    covered: BaseGeometry | None = None,
    reference_date: dt.date | None = None,
) -> MatchPlan:
    """Match a survey's detections against the leads of its site (module docstring).

    Parameters
    ----------
    detections : sequence of Detection
        The survey's leads, footprints in metres.
    leads : sequence of KnownLead
        The site's leads (any state), footprints in the same CRS.
    atlas : bool
        True when the survey was checked against the permit atlas (every unpermitted
        structure is found), False when compared with an earlier survey (only changes are).
    covered : shapely geometry, optional
        What the survey covered (metres); default: everywhere.
    reference_date : datetime.date, optional
        Date of the survey it was compared with (``atlas=False``).

    Returns
    -------
    MatchPlan
    """
    plan = MatchPlan()
    tree = shapely.STRtree([lead.footprint for lead in leads]) if leads else None
    matched: set[int] = set()
    gone: dict[int, int | None] = {}
    for i, det in enumerate(detections):
        near = [] if tree is None else [leads[int(j)] for j in tree.query(det.footprint)]
        if _additive(det.kind):
            best = _best(det, [ld for ld in near if _additive(ld.kind)])
            if best is None or best.state == "closed":
                plan.new.append((i, None if best is None else best.lead_id))
                continue
            matched.add(best.lead_id)
            why = _growth(det, best, None if atlas else reference_date)
            if best.state == "dismissed" and why is not None:
                plan.reopened.append((i, best.lead_id))
                plan.grew[best.lead_id] = why
            else:
                plan.observed.append((i, best.lead_id))
            continue
        # a removal: the end of leads of additions there, or a demolition of its own
        ended = [
            ld
            for ld in near
            if _additive(ld.kind) and ld.state != "closed" and _overlap(det.footprint, ld.footprint)
        ]
        for ld in ended:
            gone.setdefault(ld.lead_id, i)
            matched.add(ld.lead_id)
        explained = (
            float(
                shapely.intersection(
                    det.footprint, shapely.union_all([ld.footprint for ld in ended])
                ).area
            )
            if ended
            else 0.0
        )
        if ended and explained >= EXPLAINED_FRACTION * float(det.footprint.area):
            continue
        best = _best(det, [ld for ld in near if not _additive(ld.kind)])
        if best is None or best.state == "closed":
            plan.new.append((i, None if best is None else best.lead_id))
        else:
            matched.add(best.lead_id)
            plan.observed.append((i, best.lead_id))
    if atlas:
        for lead in leads:
            if lead.state == "closed" or lead.lead_id in matched or lead.lead_id in gone:
                continue
            if covered is None or covered.covers(lead.footprint.representative_point()):
                gone[lead.lead_id] = None
    plan.gone = sorted(gone.items())
    return plan


def _best(det: Detection, candidates: Sequence[KnownLead]) -> KnownLead | None:
    """The candidate with the largest matching overlap, leads not closed first."""
    scored = [(c, _overlap(det.footprint, c.footprint)) for c in candidates]
    scored = [(c, s) for c, s in scored if s > 0]
    if not scored:
        return None
    scored.sort(key=lambda cs: (cs[0].state != "closed", cs[1], -cs[0].lead_id), reverse=True)
    return scored[0][0]
