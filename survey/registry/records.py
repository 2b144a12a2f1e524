"""What the registry hands out: frozen records, free of database sessions, JSON-ready.

Geometries are WGS84 (longitude, latitude); dates ``datetime.date``; times timezone-aware UTC.
Each record's ``to_dict()`` is what ``--json`` prints (geometries as GeoJSON only where asked).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

__all__ = [
    "DueSite",
    "LeadEvent",
    "LeadObservation",
    "LeadRecord",
    "LeadSummary",
    "LeadUpdate",
    "ProgressRecord",
    "SiteRecord",
    "SurveyRecord",
]


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


@dataclass(frozen=True)
class SiteRecord:
    """A watched site.

    Attributes
    ----------
    site_id : int
    name : str
    boundary : shapely Polygon or MultiPolygon
        WGS84; its interior rings are the holes never flown over.
    nofly : shapely geometry or None
        No-fly zones, WGS84.
    area_m2 : float
        Area of the boundary (holes excluded), square metres.
    cadence_days : int
        Days between surveys.
    risk : str
        ``high``, ``medium`` or ``low``: the retention tier of its leads' evidence.
    team : str or None
        The responsible team.
    gsd_cm : float
        Ground sample distance its flights are planned for, cm/px.
    created_at : datetime.datetime
    created_by : str
    """

    site_id: int
    name: str
    boundary: BaseGeometry
    nofly: BaseGeometry | None
    area_m2: float
    cadence_days: int
    risk: str
    team: str | None
    gsd_cm: float
    boundary_source: str | None
    created_at: dt.datetime
    created_by: str

    @property
    def holes(self) -> int:
        """Number of holes (interior rings) in the boundary."""
        polys = getattr(self.boundary, "geoms", [self.boundary])
        return sum(len(p.interiors) for p in polys)

    def to_dict(self, *, geometry: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "site_id": self.site_id,
            "name": self.name,
            "area_m2": round(self.area_m2, 1),
            "holes": self.holes,
            "nofly_zones": 0 if self.nofly is None else len(getattr(self.nofly, "geoms", [1])),
            "cadence_days": self.cadence_days,
            "risk": self.risk,
            "team": self.team,
            "gsd_cm": self.gsd_cm,
            "boundary_source": self.boundary_source,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
        }
        if geometry:
            out["boundary"] = mapping(self.boundary)
            out["nofly"] = None if self.nofly is None else mapping(self.nofly)
        return out


@dataclass(frozen=True)
class SurveyRecord:
    """One survey of a site.

    Attributes
    ----------
    survey_id : int
    site : str
    date : datetime.date
    case : str or None
        The evidence-store case its originals are filed under.
    flight_log, images, ortho, dsm, dtm : str or None
        Paths as registered.
    evidence : tuple of str
        SHA-256 of its originals in the evidence store.
    products : mapping of str to str
        Other outputs by role (``leads``, ``map``, ``package``, ...).
    qc_verdict : str or None
        ``pass``, ``warn`` or ``fail`` (flight QC), None when not checked.
    reference : str or None
        What it was compared with: ``atlas`` (a first survey, ``check``), ``survey``
        (``detect`` against ``reference_survey_id``), None before leads were recorded.
    approved : bool
    """

    survey_id: int
    site: str
    site_id: int
    date: dt.date
    case: str | None
    flight_log: str | None
    images: str | None
    ortho: str | None
    dsm: str | None
    dtm: str | None
    evidence: tuple[str, ...]
    products: Mapping[str, str]
    qc_verdict: str | None
    reference: str | None
    reference_survey_id: int | None
    approved: bool
    approved_at: dt.datetime | None
    approved_by: str | None
    created_at: dt.datetime
    created_by: str
    leads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "survey_id": self.survey_id,
            "site": self.site,
            "date": _iso(self.date),
            "case": self.case,
            "flight_log": self.flight_log,
            "images": self.images,
            "ortho": self.ortho,
            "dsm": self.dsm,
            "dtm": self.dtm,
            "evidence": list(self.evidence),
            "products": dict(self.products),
            "qc_verdict": self.qc_verdict,
            "reference": self.reference,
            "reference_survey_id": self.reference_survey_id,
            "approved": self.approved,
            "approved_at": _iso(self.approved_at),
            "approved_by": self.approved_by,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "leads": self.leads,
        }


class LeadSummary(NamedTuple):
    """A row of ``leads list``: no geometry, nothing that needs another query (who changed it
    and when is in :class:`LeadRecord`, ``leads show``).

    A named tuple rather than a frozen dataclass: lists of 100,000 are built in a fraction of
    the time (``leads list`` of a whole city under a second).
    """

    lead_id: int
    site: str
    lead_class: str
    kind: str
    state: str
    risk: str
    area_m2: float
    height_gain_m: float | None
    last_seen: dt.date
    closure_proposed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "site": self.site,
            "class": self.lead_class,
            "kind": self.kind,
            "state": self.state,
            "risk": self.risk,
            "area_m2": round(self.area_m2, 2),
            "height_gain_m": None if self.height_gain_m is None else round(self.height_gain_m, 2),
            "last_seen": self.last_seen.isoformat(),
            "closure_proposed": bool(self.closure_proposed),
        }


@dataclass(frozen=True)
class LeadEvent:
    """A change of a lead: who, when, what, why, and its custody-ledger entry."""

    at: dt.datetime
    user: str
    kind: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    survey_id: int | None
    ledger_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at),
            "user": self.user,
            "kind": self.kind,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "survey_id": self.survey_id,
            "ledger_seq": self.ledger_seq,
        }


@dataclass(frozen=True)
class LeadObservation:
    """A lead seen in one survey (what detection reported there)."""

    survey_id: int
    date: dt.date
    detection_id: str
    lead_class: str
    kind: str
    area_m2: float
    height_gain_m: float | None
    action: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "survey_id": self.survey_id,
            "date": _iso(self.date),
            "detection_id": self.detection_id,
            "class": self.lead_class,
            "kind": self.kind,
            "area_m2": round(self.area_m2, 2),
            "height_gain_m": None if self.height_gain_m is None else round(self.height_gain_m, 2),
            "action": self.action,
        }


@dataclass(frozen=True)
class LeadRecord:
    """A lead with its geometry, history and sightings (``leads show``)."""

    lead_id: int
    site: str
    site_id: int
    lead_class: str
    kind: str
    state: str
    risk: str
    geometry: BaseGeometry
    area_m2: float
    height_gain_m: float | None
    floors_added: int | None
    detection_id: str
    reasons: tuple[str, ...]
    permit_ids: tuple[str, ...]
    first_survey_id: int
    last_survey_id: int
    closure_proposed: bool
    closure_survey_id: int | None
    previous_lead_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    state_changed_at: dt.datetime
    state_changed_by: str
    cases: tuple[str, ...] = ()
    events: tuple[LeadEvent, ...] = ()
    observations: tuple[LeadObservation, ...] = ()

    def to_dict(self, *, geometry: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lead_id": self.lead_id,
            "site": self.site,
            "class": self.lead_class,
            "kind": self.kind,
            "state": self.state,
            "risk": self.risk,
            "area_m2": round(self.area_m2, 2),
            "height_gain_m": None if self.height_gain_m is None else round(self.height_gain_m, 2),
            "floors_added": self.floors_added,
            "detection_id": self.detection_id,
            "reasons": list(self.reasons),
            "permit_ids": list(self.permit_ids),
            "first_survey_id": self.first_survey_id,
            "last_survey_id": self.last_survey_id,
            "closure_proposed": self.closure_proposed,
            "closure_survey_id": self.closure_survey_id,
            "previous_lead_id": self.previous_lead_id,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "state_changed_at": _iso(self.state_changed_at),
            "state_changed_by": self.state_changed_by,
            "cases": list(self.cases),
            "events": [e.to_dict() for e in self.events],
            "observations": [o.to_dict() for o in self.observations],
        }
        if geometry:
            out["geometry"] = mapping(self.geometry)
        return out


@dataclass(frozen=True)
class LeadUpdate:
    """What :meth:`~survey.registry.Registry.record_leads` did with a survey's leads.

    Attributes
    ----------
    survey_id : int
    created : tuple of int
        Leads opened (in the order of the detections).
    updated : tuple of int
        Leads seen again (same structure, same id).
    reopened : tuple of int
        Dismissed leads that grew, back to ``under_review``.
    proposed_closure : tuple of int
        Leads whose structure is gone.
    by_detection : mapping of str to int
        Detection lead id → the registry's lead id (removals that only close leads are
        absent).
    """

    survey_id: int
    created: tuple[int, ...] = ()
    updated: tuple[int, ...] = ()
    reopened: tuple[int, ...] = ()
    proposed_closure: tuple[int, ...] = ()
    by_detection: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "survey_id": self.survey_id,
            "created": list(self.created),
            "updated": list(self.updated),
            "reopened": list(self.reopened),
            "proposed_closure": list(self.proposed_closure),
            "by_detection": dict(self.by_detection),
        }


@dataclass(frozen=True)
class ProgressRecord:
    """A permitted project's construction progress as one survey measured it (the fields of
    :class:`survey.progress_stages.ProjectProgress`, with the survey that measured it).

    Attributes
    ----------
    survey_id : int
    site : str
    date : datetime.date
        The survey's date.
    approved : bool
        Whether the survey is approved.
    permit_id : str
    stage : str
        One of :data:`survey.progress_stages.STAGES`.
    height_m : float
        Built height above the surrounding ground, metres.
    storeys : int
    permitted_floors : int or None
    permitted_height_m : float or None
        Of the permit version in force on the survey's date (``permit_valid_from``).
    built_fraction, dug_fraction : float
        Shares of the footprint built on (half a storey or more) and dug out.
    outside_m2 : float
        Built area beyond the footprint, square metres.
    exceeds : tuple of str
        ``over_height`` and/or ``outside_footprint``.
    reasons : tuple of str
    permit_valid_from : datetime.date or None
    lead_ids : tuple of str
        Detection ids of the leads that carry the stage.
    """

    survey_id: int
    site: str
    date: dt.date
    approved: bool
    permit_id: str
    stage: str
    height_m: float
    storeys: int
    permitted_floors: int | None
    permitted_height_m: float | None
    built_fraction: float
    dug_fraction: float
    outside_m2: float
    exceeds: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    permit_valid_from: dt.date | None = None
    lead_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The keys of ``ProjectProgress.to_dict()`` (``progress.json``; without
        ``stage_name``, which :mod:`survey.progress_stages` names) plus ``survey_id``,
        ``site`` and ``approved``."""
        return {
            "survey_id": self.survey_id,
            "site": self.site,
            "approved": self.approved,
            "permit_id": self.permit_id,
            "date": self.date.isoformat(),
            "stage": self.stage,
            "height_m": round(self.height_m, 2),
            "storeys": self.storeys,
            "permitted_floors": self.permitted_floors,
            "permitted_height_m": self.permitted_height_m,
            "built_fraction": round(self.built_fraction, 2),
            "dug_fraction": round(self.dug_fraction, 2),
            "outside_m2": round(self.outside_m2, 2),
            "exceeds": list(self.exceeds),
            "reasons": list(self.reasons),
            "permit_valid_from": _iso(self.permit_valid_from),
            "lead_ids": list(self.lead_ids),
        }


@dataclass(frozen=True)
class DueSite:
    """A site due for a survey on a date (``schedule``).

    Attributes
    ----------
    site_id : int
    name : str
    team : str or None
    risk : str
    cadence_days : int
    last_survey : datetime.date or None
        Date of the last survey that counts (QC not failed); None: never surveyed.
    due : datetime.date or None
        ``last_survey + cadence_days``; None for a first survey (due at once).
    overdue_days : int
        Days past ``due`` on the asked date (0 when due that day or never surveyed).
    plan_dir : str or None
        Where its flight plan was written (``schedule --out``).
    plan_summary : mapping or None
        Sorties, photos, length, duration, height and GSD of that plan.
    plan_error : str or None
        Why the planner refused the site (no plan written).
    """

    site_id: int
    name: str
    team: str | None
    risk: str
    cadence_days: int
    last_survey: dt.date | None
    due: dt.date | None
    overdue_days: int
    plan_dir: str | None = None
    plan_summary: Mapping[str, Any] | None = None
    plan_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "name": self.name,
            "team": self.team,
            "risk": self.risk,
            "cadence_days": self.cadence_days,
            "last_survey": _iso(self.last_survey),
            "due": _iso(self.due),
            "overdue_days": self.overdue_days,
            "plan_dir": self.plan_dir,
            "plan": None if self.plan_summary is None else dict(self.plan_summary),
            "plan_error": self.plan_error,
        }
