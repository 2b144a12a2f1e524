"""What the pages and the API read from the registry beyond its own calls: sites with their
due dates, leads filtered by class, state, site, date and score, counts by state and age,
comments, a site's construction timeline.

Each is one or two SQL statements on the registry's tables (read only); the registry's own
calls (:meth:`Registry.lead`, :meth:`Registry.surveys`) give the rest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from survey.registry import LEAD_STATES
from survey.registry.models import LeadEventRow, LeadObservationRow, LeadRow, SiteRow, SurveyRow
from survey.registry.schedule import last_survey_dates
from survey.web.accounts import User
from survey.web.db import reading
from survey.web.models import CommentRow, UserRow

__all__ = [
    "AGE_BUCKETS",
    "LeadFilter",
    "LeadListRow",
    "SiteListRow",
    "comments",
    "dashboard_counts",
    "filter_leads",
    "site_events",
    "visible_sites",
]

AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("< 7 d", 0, 7),
    ("7–30 d", 7, 30),
    ("30–90 d", 30, 90),
    ("> 90 d", 90, None),
)
"""Age of a lead in its state: label, from (days, inclusive), to (days, exclusive)."""

MAX_ROWS = 1000


@dataclass(frozen=True)
class SiteListRow:
    """A site on the map: its outline (GeoJSON), team, risk, last survey and due date."""

    site_id: int
    name: str
    team: str | None
    risk: str
    cadence_days: int
    last_survey: dt.date | None
    due: dt.date | None
    open_leads: int
    bounds: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "name": self.name,
            "team": self.team,
            "risk": self.risk,
            "cadence_days": self.cadence_days,
            "last_survey": None if self.last_survey is None else self.last_survey.isoformat(),
            "due": None if self.due is None else self.due.isoformat(),
            "open_leads": self.open_leads,
            "bounds": list(self.bounds),
        }


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def team_clause(user: User) -> sa.ColumnElement[bool]:
    """Operators see their team's sites only; everyone else sees every site."""
    if user.role != "operator":
        return sa.true()
    if user.team is None:
        return sa.false()
    return SiteRow.team == user.team


def visible_sites(engine: Engine, user: User) -> list[SiteListRow]:
    """The sites ``user`` may see, with last survey, next due date and open leads, by name."""
    last = last_survey_dates()
    open_leads = (
        sa.select(LeadRow.site_id, sa.func.count().label("n"))
        .where(LeadRow.state.not_in(("closed", "dismissed")))
        .group_by(LeadRow.site_id)
        .subquery()
    )
    query = (
        sa.select(
            SiteRow.id,
            SiteRow.name,
            SiteRow.team,
            SiteRow.risk,
            SiteRow.cadence_days,
            last.c.last,
            sa.func.coalesce(open_leads.c.n, 0),
            SiteRow.min_lon,
            SiteRow.min_lat,
            SiteRow.max_lon,
            SiteRow.max_lat,
        )
        .outerjoin(last, last.c.site_id == SiteRow.id)
        .outerjoin(open_leads, open_leads.c.site_id == SiteRow.id)
        .where(team_clause(user))
        .order_by(SiteRow.name)
    )
    with reading(engine) as s:
        rows = s.execute(query).all()
    out = []
    for sid, name, team, risk, cadence, last_day, n, w, so, e, no in rows:
        day = _date(last_day)
        due = None if day is None else day + dt.timedelta(days=int(cadence))
        out.append(SiteListRow(sid, name, team, risk, cadence, day, due, int(n), (w, so, e, no)))
    return out


@dataclass(frozen=True)
class LeadFilter:
    """Filters of the lead list (``None``: any)."""

    lead_class: str | None = None
    state: str | None = None
    site: str | None = None
    seen_from: dt.date | None = None
    seen_to: dt.date | None = None
    min_score: float | None = None


@dataclass(frozen=True)
class LeadListRow:
    """A row of the lead list."""

    lead_id: int
    site: str
    lead_class: str
    state: str
    risk: str
    area_m2: float
    height_gain_m: float | None
    score: float | None
    last_seen: dt.date
    state_changed_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "site": self.site,
            "class": self.lead_class,
            "state": self.state,
            "risk": self.risk,
            "area_m2": round(self.area_m2, 2),
            "height_gain_m": None if self.height_gain_m is None else round(self.height_gain_m, 2),
            "score": None if self.score is None else round(self.score, 3),
            "last_seen": self.last_seen.isoformat(),
            "state_changed_at": self.state_changed_at.isoformat().replace("+00:00", "Z"),
        }


def filter_leads(engine: Engine, flt: LeadFilter, *, limit: int = MAX_ROWS) -> list[LeadListRow]:
    """Leads matching ``flt``, newest sighting first (at most ``limit``). The score is that
    of the lead's latest sighting; the date is the date of that survey."""
    last = sa.orm.aliased(SurveyRow)
    score = (
        sa.select(LeadObservationRow.score)
        .where(
            LeadObservationRow.lead_id == LeadRow.id,
            LeadObservationRow.survey_id == LeadRow.last_survey_id,
        )
        .order_by(LeadObservationRow.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        sa.select(
            LeadRow.id,
            SiteRow.name,
            LeadRow.lead_class,
            LeadRow.state,
            LeadRow.risk,
            LeadRow.area_m2,
            LeadRow.height_gain_m,
            score.label("score"),
            last.date,
            LeadRow.state_changed_at,
        )
        .join(SiteRow, SiteRow.id == LeadRow.site_id)
        .join(last, last.id == LeadRow.last_survey_id)
        .order_by(last.date.desc(), LeadRow.id.desc())
        .limit(limit)
    )
    if flt.lead_class:
        query = query.where(LeadRow.lead_class == flt.lead_class)
    if flt.state:
        query = query.where(LeadRow.state == flt.state)
    if flt.site:
        query = query.where(SiteRow.name == flt.site)
    if flt.seen_from:
        query = query.where(last.date >= flt.seen_from)
    if flt.seen_to:
        query = query.where(last.date <= flt.seen_to)
    if flt.min_score is not None:
        query = query.where(score >= flt.min_score)
    with reading(engine) as s:
        rows = s.execute(query).all()
    return [
        LeadListRow(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _date(r[8]) or dt.date.min, r[9]
        )
        for r in rows
    ]


def dashboard_counts(engine: Engine, now: dt.datetime) -> dict[str, list[int]]:
    """State → counts of leads by how long they have been in it (:data:`AGE_BUCKETS`)."""
    counts = {state: [0] * len(AGE_BUCKETS) for state in LEAD_STATES}
    cases = []
    for i, (_, lo, hi) in enumerate(AGE_BUCKETS):
        newer_than = now - dt.timedelta(days=lo)
        cond = LeadRow.state_changed_at <= newer_than
        if hi is not None:
            cond = sa.and_(cond, LeadRow.state_changed_at > now - dt.timedelta(days=hi))
        cases.append((cond, i))
    bucket = sa.case(*cases, else_=0).label("bucket")
    query = sa.select(LeadRow.state, bucket, sa.func.count()).group_by(LeadRow.state, bucket)
    with reading(engine) as s:
        for state, b, n in s.execute(query):
            counts.setdefault(state, [0] * len(AGE_BUCKETS))[int(b)] += int(n)
    return counts


@dataclass(frozen=True)
class Comment:
    """A comment on a lead."""

    comment_id: int
    username: str
    display_name: str
    body: str
    at: dt.datetime
    ledger_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "comment_id": self.comment_id,
            "user": self.username,
            "body": self.body,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "ledger_seq": self.ledger_seq,
        }


def comments(engine: Engine, lead_id: int) -> list[Comment]:
    """The comments on a lead, oldest first."""
    with reading(engine) as s:
        rows = s.execute(
            sa.select(CommentRow, UserRow.username, UserRow.display_name)
            .join(UserRow, UserRow.id == CommentRow.user_id)
            .where(CommentRow.lead_id == int(lead_id))
            .order_by(CommentRow.id)
        ).all()
    return [Comment(c.id, u, d, c.body, c.at, c.ledger_seq) for c, u, d in rows]


def site_events(engine: Engine, site_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """A site's construction timeline: every change of its leads, newest first."""
    with reading(engine) as s:
        rows = s.execute(
            sa.select(LeadEventRow, LeadRow.lead_class)
            .join(LeadRow, LeadRow.id == LeadEventRow.lead_id)
            .where(LeadRow.site_id == int(site_id))
            .order_by(LeadEventRow.at.desc(), LeadEventRow.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "lead_id": e.lead_id,
            "class": cls,
            "at": e.at,
            "user": e.by_user,
            "kind": e.kind,
            "from": e.from_state,
            "to": e.to_state,
            "reason": e.reason,
        }
        for e, cls in rows
    ]
