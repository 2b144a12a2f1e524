"""Leads in the registry: recording a survey's leads, following them, changing their state.

:meth:`LeadsMixin.record_leads` takes the leads detection found in a survey and matches them
with those the registry follows (:mod:`survey.registry.matching`): the same structure keeps
its id, a dismissed one that grew reopens, one that is gone is proposed for closure.
:meth:`LeadsMixin.set_lead_status` moves a lead through its lifecycle
(:mod:`survey.registry.lifecycle`). Every change is a row of ``lead_events`` (who, when, what,
why) and, with an evidence store, an entry of the custody ledger whose ``seq`` the row keeps;
retention and legal holds follow (:mod:`survey.registry.custody`).

``leads list`` is one SQL statement whatever the number of leads (a join of leads, sites and
surveys; no geometry read), ``leads show`` four.

This module is longer than most (about 730 lines, a third of them docstrings): recording a
survey's leads (matching, opening, updating, reopening, proposing closure), the lifecycle and
the custody entries they write are one transaction each, and their order (database rows,
ledger entries, ``ledger_seq`` back into the rows, commit) is kept in one place where it can be
checked as a whole. Matching and the lifecycle rules themselves live in their own modules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import Session

from survey.registry.core import RegistryCore, gc_paused
from survey.registry.custody import highest_risk
from survey.registry.errors import RegistryInputError
from survey.registry.geometry import bbox, from_metric, from_wkb, metric_crs, to_metric, to_wkb
from survey.registry.lifecycle import HOLD_STATES, LEAD_STATES, check_transition
from survey.registry.matching import Detection, KnownLead, MatchPlan, match_detections
from survey.registry.models import (
    LeadEventRow,
    LeadObservationRow,
    LeadRow,
    SiteRow,
    SurveyRow,
)
from survey.registry.records import (
    LeadEvent,
    LeadObservation,
    LeadRecord,
    LeadSummary,
    LeadUpdate,
)

if TYPE_CHECKING:
    from change_detection.leads import Lead

__all__ = ["REFERENCES", "LeadsMixin"]

REFERENCES = ("atlas", "survey")
"""What a survey's leads were found against: the permit atlas (``check``) or an earlier
survey (``detect``)."""

_SITE_MARGIN_M = 10.0

LEAD_CLASSES: tuple[str, ...] = (
    "no_permit",
    "outside_footprint",
    "over_height",
    "demolished",
    "new_structure",
    "raised",
)
"""The classes of :data:`change_detection.leads.LEAD_CLASSES`, spelled out so that reading the
registry does not import the detection stack (a test checks they agree)."""


def surveys_seen_in(s: Session, lead_row_id: int) -> list[Any]:
    """(id, case_id, evidence) of every survey a lead was seen in, by date: the cases whose
    retention and holds follow the lead."""
    seen_in = sa.select(LeadObservationRow.survey_id).where(
        LeadObservationRow.lead_id == lead_row_id
    )
    return list(
        s.execute(
            sa.select(SurveyRow.id, SurveyRow.case_id, SurveyRow.evidence)
            .where(SurveyRow.id.in_(seen_in))
            .order_by(SurveyRow.date, SurveyRow.id)
        ).all()
    )


@dataclass
class _Recording:
    """What the steps of :meth:`LeadsMixin.record_leads` share within its transaction: the
    survey and its site, the leads with their outlines in the metric ``crs``, and what the
    steps collect (events to write, detection id → registry id)."""

    session: Session
    survey: SurveyRow
    site: SiteRow
    leads: Sequence[Lead]
    det_m: Sequence[BaseGeometry]
    crs: Any
    reference_date: dt.date | None
    now: dt.datetime
    who: str
    events: list[tuple[LeadRow, LeadEventRow]] = field(default_factory=list)
    by_detection: dict[str, int] = field(default_factory=dict)


class LeadsMixin(RegistryCore):
    """Leads (part of :class:`Registry`)."""

    # ------------------------------------------------------------------ recording

    def record_leads(
        self,
        survey_id: int,
        leads: Sequence[Lead],
        *,
        reference: str,
        reference_survey_id: int | None = None,
        user: str | None = None,
    ) -> LeadUpdate:
        """Record the leads detection found in a survey, matched against the site's leads.

        Parameters
        ----------
        survey_id : int
            A registered survey whose leads are not yet recorded.
        leads : sequence of change_detection.leads.Lead
            What ``check`` or ``detect`` found (WGS84 outlines, as in ``leads.geojson``).
        reference : str
            ``atlas`` (a first survey, checked against the permit atlas: every unpermitted
            structure is found, so a lead not found again is gone) or ``survey`` (compared
            with ``reference_survey_id``: only changes are found).
        reference_survey_id : int, optional
            The earlier survey of the same site (``reference="survey"``).
        user : str, optional

        Returns
        -------
        LeadUpdate
            Leads created, seen again, reopened, proposed for closure.

        Raises
        ------
        RegistryLookupError
            No such survey or reference survey.
        RegistryInputError
            Leads already recorded for the survey, a reference of another site or not
            earlier, a lead outside the site.
        """
        self._check_reference(reference, reference_survey_id)
        who = self._who(user)
        now = self.clock()
        with self._write() as s:
            survey = self._survey_row(s, survey_id, lock=True)
            if survey.reference is not None:
                raise RegistryInputError(
                    f"survey {survey_id} already has its leads recorded (against "
                    f"{survey.reference}); register a new survey for a new flight"
                )
            site = s.get_one(SiteRow, survey.site_id)
            reference_date = self._reference_date(s, survey, site, reference_survey_id)
            boundary = from_wkb(site.boundary)
            crs = metric_crs(boundary)
            det_m = to_metric([ld.geometry for ld in leads], crs)
            self._refuse_outside(site.name, leads, det_m, to_metric([boundary], crs)[0])
            known_rows = self._site_leads(s, site.id)
            known = self._known_leads(known_rows, crs)
            covered = (
                None
                if survey.footprint is None
                else to_metric([from_wkb(survey.footprint)], crs)[0]
            )
            plan = match_detections(
                [
                    Detection(ld.kind, g, ld.height_gain_m, ld.floors_added)
                    for ld, g in zip(leads, det_m, strict=True)
                ],
                known,
                atlas=reference == "atlas",
                covered=covered,
                reference_date=reference_date,
            )
            rec = _Recording(s, survey, site, leads, det_m, crs, reference_date, now, who)
            rows = {r.id: r for r, _ in known_rows}
            geoms = {k.lead_id: k.footprint for k in known}
            survey.reference, survey.reference_survey_id = reference, reference_survey_id
            created = self._open_new_leads(rec, plan)
            reopened = self._observe_known_leads(rec, plan, rows, geoms)
            self._propose_closures(rec, plan, rows)
            for _, event in rec.events:
                s.add(event)
            s.flush()
            self._custody_for_survey(s, survey, site, rec.events, who)
        update = LeadUpdate(
            survey_id=survey_id,
            created=tuple(created),
            updated=tuple(sorted({lead_id for _, lead_id in plan.observed})),
            reopened=tuple(sorted(reopened)),
            proposed_closure=tuple(sorted(lead_id for lead_id, _ in plan.gone)),
            by_detection=rec.by_detection,
        )
        return update

    @staticmethod
    def _check_reference(reference: str, reference_survey_id: int | None) -> None:
        """Refuse a reference that is not one of :data:`REFERENCES`, or a reference survey
        given without ``reference="survey"`` (or missing with it)."""
        if reference not in REFERENCES:
            raise RegistryInputError(
                f"reference {reference!r} is not one of {', '.join(REFERENCES)}"
            )
        if (reference == "survey") != (reference_survey_id is not None):
            raise RegistryInputError(
                "give reference_survey_id with reference='survey' (the survey detect compared "
                "against), and only then"
            )

    def _reference_date(
        self, s: Session, survey: SurveyRow, site: SiteRow, reference_survey_id: int | None
    ) -> dt.date | None:
        """The date of the reference survey (None for the atlas), refused in one line when it
        is of another site or not earlier than ``survey``."""
        if reference_survey_id is None:
            return None
        ref = self._survey_row(s, reference_survey_id)
        if ref.site_id != site.id or ref.date >= survey.date:
            why = "of another site" if ref.site_id != site.id else "not earlier"
            raise RegistryInputError(
                f"survey {reference_survey_id} cannot be the reference of survey "
                f"{survey.id}: it is {why}"
            )
        return ref.date

    @staticmethod
    def _known_leads(known_rows: Sequence[tuple[LeadRow, dt.date]], crs: Any) -> list[KnownLead]:
        """The site's leads as matching sees them (footprints in the metric ``crs``)."""
        return [
            KnownLead(
                lead_id=r.id,
                kind=r.kind,
                state=r.state,
                footprint=g,
                height_gain_m=r.height_gain_m,
                floors_added=r.floors_added,
                last_seen=seen,
            )
            for (r, seen), g in zip(
                known_rows,
                to_metric([from_wkb(r.footprint) for r, _ in known_rows], crs),
                strict=True,
            )
        ]

    def _open_new_leads(self, rec: _Recording, plan: MatchPlan) -> list[int]:
        """A new lead (state ``new``) per detection matching nothing known; its observation
        row, and its ``created`` event queued in ``rec.events``. Returns the new ids."""
        s, survey, site, now, who = rec.session, rec.survey, rec.site, rec.now, rec.who
        created: list[int] = []
        for i, previous in plan.new:
            lead = rec.leads[i]
            row = LeadRow(
                site_id=site.id,
                lead_class=lead.lead_class,
                kind=lead.kind,
                state="new",
                risk=site.risk,
                footprint=to_wkb(lead.geometry),
                **bbox(lead.geometry),
                area_m2=float(rec.det_m[i].area),
                height_gain_m=lead.height_gain_m,
                floors_added=lead.floors_added,
                detection_id=lead.lead_id,
                reasons=list(lead.reasons),
                permit_ids=list(lead.permit_ids),
                first_survey_id=survey.id,
                last_survey_id=survey.id,
                closure_proposed=False,
                previous_lead_id=previous,
                created_at=now,
                updated_at=now,
                state_changed_at=now,
                state_changed_by=who,
            )
            s.add(row)
            s.flush()
            created.append(row.id)
            rec.by_detection[lead.lead_id] = row.id
            s.add(self._observation(row.id, survey.id, lead, rec.det_m[i], "created"))
            note = None if previous is None else f"built again where lead {previous} was closed"
            rec.events.append(
                (row, self._event(row.id, now, who, "created", None, "new", note, survey.id))
            )
        return created

    def _observe_known_leads(
        self,
        rec: _Recording,
        plan: MatchPlan,
        rows: dict[int, LeadRow],
        geoms: dict[int, BaseGeometry],
    ) -> set[int]:
        """Known leads seen again: grown (:meth:`_grow`), their closure proposal withdrawn, an
        observation row each; a dismissed one that grew goes back to ``under_review``. Queues
        an ``observed`` or ``state`` event per lead. Returns the ids reopened."""
        s, survey, now, who = rec.session, rec.survey, rec.now, rec.who
        reopened = {lead_id for _, lead_id in plan.reopened}
        for i, lead_id in [*plan.observed, *plan.reopened]:
            row = rows[lead_id]
            lead = rec.leads[i]
            geoms[lead_id] = self._grow(
                row, lead, rec.det_m[i], geoms[lead_id], rec.crs, rec.reference_date, now
            )
            row.last_survey_id = survey.id
            row.closure_proposed, row.closure_survey_id = False, None
            rec.by_detection[lead.lead_id] = lead_id
            action = "reopened" if lead_id in reopened else "updated"
            s.add(self._observation(lead_id, survey.id, lead, rec.det_m[i], action))
            if lead_id in reopened and row.state == "dismissed":
                why = f"reopened by repeat-lead matching: it grew ({plan.grew[lead_id]})"
                event = self._event(
                    lead_id, now, who, "state", "dismissed", "under_review", why, survey.id
                )
                rec.events.append((row, event))
                row.state, row.state_changed_at, row.state_changed_by = "under_review", now, who
            else:
                event = self._event(
                    lead_id, now, who, "observed", row.state, row.state, None, survey.id
                )
                rec.events.append((row, event))
        return reopened

    def _propose_closures(self, rec: _Recording, plan: MatchPlan, rows: dict[int, LeadRow]) -> None:
        """Known leads the survey found gone (not found where it covered them, or a removal
        over them): proposed for closure once, with a ``closure_proposed`` event."""
        s, survey, now, who = rec.session, rec.survey, rec.now, rec.who
        for lead_id, det in plan.gone:
            row = rows[lead_id]
            if det is None:
                why = f"not found in survey {survey.id} of {survey.date}, which covered it"
            else:
                why = (
                    f"removal {rec.leads[det].lead_id} found over it in survey {survey.id} of "
                    f"{survey.date}"
                )
                s.add(self._observation(lead_id, survey.id, rec.leads[det], rec.det_m[det], "gone"))
            if not row.closure_proposed:
                row.closure_proposed, row.closure_survey_id = True, survey.id
                row.updated_at = now
                event = self._event(
                    lead_id, now, who, "closure_proposed", row.state, row.state, why, survey.id
                )
                rec.events.append((row, event))

    def _refuse_outside(
        self,
        site: str,
        leads: Sequence[Lead],
        det_m: Sequence[BaseGeometry],
        boundary_m: BaseGeometry,
    ) -> None:
        area = boundary_m.buffer(_SITE_MARGIN_M)
        for lead, geom in zip(leads, det_m, strict=True):
            if not shapely.intersects(geom, area):
                c = lead.geometry.centroid
                raise RegistryInputError(
                    f"lead {lead.lead_id} (at lon {c.x:.6f}, lat {c.y:.6f}) lies outside site "
                    f"{site!r}; record it with the survey of its own site — nothing was recorded"
                )

    @staticmethod
    def _site_leads(s: Session, site_id: int) -> list[tuple[LeadRow, dt.date]]:
        last = sa.orm.aliased(SurveyRow)
        rows = s.execute(
            sa.select(LeadRow, last.date)
            .join(last, last.id == LeadRow.last_survey_id)
            .where(LeadRow.site_id == site_id)
            .order_by(LeadRow.id)
            .with_for_update(of=LeadRow)
        ).all()
        return [(r, d) for r, d in rows]

    @staticmethod
    def _grow(
        row: LeadRow,
        lead: Lead,
        geom_m: BaseGeometry,
        old_m: BaseGeometry,
        crs: Any,
        reference_date: dt.date | None,
        now: dt.datetime,
    ) -> BaseGeometry:
        """Update a lead seen again: footprint the union of what was seen, heights the
        highest (or, against a reference that already showed it, raised by the new gain)."""
        union_m = shapely.union(old_m, geom_m) if lead.kind != "removed" else old_m
        changed = union_m is not old_m
        union_ll = from_metric([union_m], crs)[0] if changed else from_wkb(row.footprint)
        since = reference_date is not None and row.height_gain_m is not None
        if lead.height_gain_m is not None:
            if row.height_gain_m is None:
                row.height_gain_m = lead.height_gain_m
            elif since and lead.kind == "raised":
                row.height_gain_m = row.height_gain_m + lead.height_gain_m
            else:
                row.height_gain_m = max(row.height_gain_m, lead.height_gain_m)
        if lead.floors_added is not None:
            row.floors_added = max(row.floors_added or 0, lead.floors_added)
        row.footprint = to_wkb(union_ll)
        for k, v in bbox(union_ll).items():
            setattr(row, k, v)
        row.area_m2 = float(union_m.area)
        row.detection_id = lead.lead_id
        row.reasons = list(lead.reasons)
        row.permit_ids = sorted(set(row.permit_ids) | set(lead.permit_ids))
        row.updated_at = now
        return union_m

    @staticmethod
    def _observation(
        lead_id: int, survey_id: int, lead: Lead, geom_m: BaseGeometry, action: str
    ) -> LeadObservationRow:
        return LeadObservationRow(
            lead_id=lead_id,
            survey_id=survey_id,
            detection_id=lead.lead_id,
            lead_class=lead.lead_class,
            kind=lead.kind,
            footprint=to_wkb(lead.geometry),
            area_m2=float(geom_m.area),
            height_gain_m=lead.height_gain_m,
            floors_added=lead.floors_added,
            score=float(lead.score),
            reasons=list(lead.reasons),
            action=action,
        )

    @staticmethod
    def _event(
        lead_id: int,
        at: dt.datetime,
        user: str,
        kind: str,
        from_state: str | None,
        to_state: str | None,
        reason: str | None,
        survey_id: int | None,
    ) -> LeadEventRow:
        return LeadEventRow(
            lead_id=lead_id,
            at=at,
            by_user=user,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            survey_id=survey_id,
        )

    def _custody_for_survey(
        self,
        s: Session,
        survey: SurveyRow,
        site: SiteRow,
        events: Sequence[tuple[LeadRow, LeadEventRow]],
        who: str,
    ) -> None:
        """The survey's case: tier of its site and leads, hold if a lead seen is held; one
        ledger entry per change."""
        if not self.custody.configured:
            if events:
                self.custody.store()  # the one warning line
            return
        rows = {row.id: row for row, _ in events}
        with self.custody.batch():
            self.custody.retain(
                survey.case_id,
                operator=who,
                risk=highest_risk([site.risk, *(r.risk for r in rows.values())]),
            )
            held = sorted(r.id for r in rows.values() if r.state in HOLD_STATES)
            if held:
                self.custody.retain(
                    survey.case_id,
                    operator=who,
                    hold=True,
                    reason=f"lead(s) {', '.join(map(str, held))} under enforcement",
                )
            for row, event in events:
                event.ledger_seq = self.custody.record(
                    f"lead-{event.kind.replace('_', '-')}",
                    case=survey.case_id,
                    evidence=survey.evidence,
                    parameters=self._ledger_parameters(row, event, site.name),
                    operator=who,
                )
        s.flush()

    @staticmethod
    def _ledger_parameters(row: LeadRow, event: LeadEventRow, site: str) -> dict[str, Any]:
        return {
            "site": site,
            "lead": row.id,
            "class": row.lead_class,
            "detection": row.detection_id,
            "event": event.kind,
            "from": event.from_state,
            "to": event.to_state,
            "reason": event.reason,
            "survey": event.survey_id,
            "at": event.at.isoformat().replace("+00:00", "Z"),
        }

    # ------------------------------------------------------------------ reading

    def leads(
        self,
        *,
        site: str | None = None,
        state: str | None = None,
        lead_class: str | None = None,
    ) -> list[LeadSummary]:
        """Leads, filtered by site, state and class, by id (one SQL statement, no geometry).

        Raises
        ------
        RegistryInputError
            An unknown state or class.
        RegistryLookupError
            An unknown site.
        """
        if state is not None and state not in LEAD_STATES:
            raise RegistryInputError(
                f"state {state!r} is not a lead state; use one of {', '.join(LEAD_STATES)}"
            )
        if lead_class is not None and lead_class not in LEAD_CLASSES:
            raise RegistryInputError(
                f"class {lead_class!r} is not a lead class; use one of {', '.join(LEAD_CLASSES)}"
            )
        last = sa.orm.aliased(SurveyRow)
        query = (
            sa.select(
                LeadRow.id,
                SiteRow.name,
                LeadRow.lead_class,
                LeadRow.kind,
                LeadRow.state,
                LeadRow.risk,
                LeadRow.area_m2,
                LeadRow.height_gain_m,
                last.date,
                LeadRow.closure_proposed,
            )
            .join(SiteRow, SiteRow.id == LeadRow.site_id)
            .join(last, last.id == LeadRow.last_survey_id)
            .order_by(LeadRow.id)
        )
        if state is not None:
            query = query.where(LeadRow.state == state)
        if lead_class is not None:
            query = query.where(LeadRow.lead_class == lead_class)
        with self._read() as s:
            if site is not None:
                query = query.where(LeadRow.site_id == self._site_row(s, site).id)
            with gc_paused():
                rows = s.connection().execute(query).all()  # Core rows: no ORM loading
                return list(map(LeadSummary._make, rows))

    def lead(self, lead_id: int) -> LeadRecord:
        """A lead with its geometry, its history (events) and its sightings.

        Raises
        ------
        RegistryLookupError
        """
        with self._read() as s:
            row = self._lead_row(s, lead_id)
            site = s.get_one(SiteRow, row.site_id)
            events = s.scalars(
                sa.select(LeadEventRow)
                .where(LeadEventRow.lead_id == row.id)
                .order_by(LeadEventRow.id)
            ).all()
            seen = s.execute(
                sa.select(LeadObservationRow, SurveyRow.date, SurveyRow.case_id)
                .join(SurveyRow, SurveyRow.id == LeadObservationRow.survey_id)
                .where(LeadObservationRow.lead_id == row.id)
                .order_by(SurveyRow.date, LeadObservationRow.id)
            ).all()
            return LeadRecord(
                lead_id=row.id,
                site=site.name,
                site_id=site.id,
                lead_class=row.lead_class,
                kind=row.kind,
                state=row.state,
                risk=row.risk,
                geometry=from_wkb(row.footprint),
                area_m2=row.area_m2,
                height_gain_m=row.height_gain_m,
                floors_added=row.floors_added,
                detection_id=row.detection_id,
                reasons=tuple(row.reasons),
                permit_ids=tuple(row.permit_ids),
                first_survey_id=row.first_survey_id,
                last_survey_id=row.last_survey_id,
                closure_proposed=bool(row.closure_proposed),
                closure_survey_id=row.closure_survey_id,
                previous_lead_id=row.previous_lead_id,
                created_at=row.created_at,
                updated_at=row.updated_at,
                state_changed_at=row.state_changed_at,
                state_changed_by=row.state_changed_by,
                cases=tuple(dict.fromkeys(c for _, _, c in seen if c)),
                events=tuple(
                    LeadEvent(
                        e.at,
                        e.by_user,
                        e.kind,
                        e.from_state,
                        e.to_state,
                        e.reason,
                        e.survey_id,
                        e.ledger_seq,
                    )
                    for e in events
                ),
                observations=tuple(
                    LeadObservation(
                        o.survey_id,
                        d,
                        o.detection_id,
                        o.lead_class,
                        o.kind,
                        o.area_m2,
                        o.height_gain_m,
                        o.action,
                    )
                    for o, d, _ in seen
                ),
            )

    # ------------------------------------------------------------------ lifecycle

    def set_lead_status(
        self,
        lead_id: int,
        state: str,
        *,
        reason: str | None = None,
        user: str | None = None,
    ) -> LeadRecord:
        """Move a lead to ``state`` (:mod:`survey.registry.lifecycle`), recording who, when
        and why, in the registry and in the custody ledger; a lead entering a hold state puts
        its evidence on legal hold, one leaving them (closed, dismissed) releases it unless
        another lead seen in the same survey still holds it.

        Raises
        ------
        RegistryLookupError
            No such lead.
        LeadTransitionError
            A change the lifecycle does not allow, or a missing reason; nothing is changed.
        """
        who = self._who(user)
        reason = reason.strip() if reason is not None and reason.strip() else None
        with self._write() as s:
            row = self._lead_row(s, lead_id, lock=True)
            check_transition(row.id, row.state, state, reason)
            now = self.clock()
            before = row.state
            row.state, row.state_changed_at, row.state_changed_by = state, now, who
            row.updated_at = now
            if state == "closed":
                row.closure_proposed = False
            event = self._event(row.id, now, who, "state", before, state, reason, None)
            s.add(event)
            s.flush()
            site = s.get_one(SiteRow, row.site_id)
            surveys = surveys_seen_in(s, row.id)
            cases = sorted({c for _, c, _ in surveys if c})
            evidence = sorted({h for _, _, ev in surveys for h in (ev or [])})
            with self.custody.batch():
                if state in HOLD_STATES and before not in HOLD_STATES:
                    for case in cases:
                        self.custody.retain(
                            case, operator=who, hold=True, reason=f"lead {row.id} {state}"
                        )
                elif before in HOLD_STATES and state not in HOLD_STATES:
                    still = self._held_elsewhere(s, row.id, [sid for sid, _, _ in surveys])
                    for sid, survey_case, _ in surveys:
                        if survey_case and sid not in still:
                            self.custody.retain(
                                survey_case,
                                operator=who,
                                hold=False,
                                reason=f"lead {row.id} {state}",
                            )
                event.ledger_seq = self.custody.record(
                    "lead-state",
                    case=cases[-1] if cases else None,
                    evidence=evidence,
                    parameters={**self._ledger_parameters(row, event, site.name), "cases": cases},
                    operator=who,
                )
            s.flush()
        return self.lead(lead_id)

    @staticmethod
    def _held_elsewhere(s: Session, lead_id: int, survey_ids: Iterable[int]) -> set[int]:
        """Surveys among ``survey_ids`` in which another lead in a hold state was seen."""
        ids = list(survey_ids)
        if not ids:
            return set()
        rows = s.execute(
            sa.select(LeadObservationRow.survey_id)
            .join(LeadRow, LeadRow.id == LeadObservationRow.lead_id)
            .where(
                LeadObservationRow.survey_id.in_(ids),
                LeadObservationRow.lead_id != lead_id,
                LeadRow.state.in_(sorted(HOLD_STATES)),
            )
            .distinct()
        ).all()
        return {int(r[0]) for r in rows}
