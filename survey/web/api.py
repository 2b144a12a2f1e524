"""The JSON API under ``/api/`` for other city systems (the 数字城管 case system pulls leads).

The same objects and the same permissions as the pages (:data:`~.permissions.ROUTES`);
authentication by an API token (``Authorization: Bearer swt_...``, made on the Account page)
or a browser session (whose writes need the ``X-CSRF-Token`` header). The schema is served at
``/api/openapi.json``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from survey.web import queries
from survey.web.app import Platform
from survey.web.db import utc_now
from survey.web.packages import store_status
from survey.web.pages import add_comment, parse_filter, store_path, visible_site
from survey.web.security import (
    MayAccount,
    MayChangeLeads,
    MayComment,
    MayDashboard,
    MayVerifyEvidence,
    MayViewJobs,
    MayViewLeads,
    MayViewSites,
)
from survey.web.upload_routes import job_dict, own_job, visible_jobs

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["api"])


class StateChange(BaseModel):
    """A lead's next state, and why (required for ``dismissed``)."""

    state: str = Field(max_length=32, examples=["confirmed"])
    reason: str | None = Field(default=None, max_length=2000)


class NewComment(BaseModel):
    """A comment on a lead."""

    body: str = Field(min_length=1, max_length=5000)


def platform(request: Request) -> Platform:
    out: Platform = request.app.state.platform
    return out


@router.get("/me", name="api_me")
def api_me(who: MayAccount) -> dict[str, Any]:
    """The user the token or session belongs to."""
    return who.user.to_dict()


@router.get("/sites", name="api_sites")
def api_sites(request: Request, who: MayViewSites) -> list[dict[str, Any]]:
    """The sites the user may see, with last survey, due date and open leads."""
    return [s.to_dict() for s in queries.visible_sites(platform(request).engine, who.user)]


@router.get("/sites/{site_id}", name="api_site")
def api_site(request: Request, site_id: int, who: MayViewSites) -> dict[str, Any]:
    """A site with its outline and its surveys."""
    p = platform(request)
    site = visible_site(p, who, site_id)
    reg = p.registry()
    out = reg.site(site.name).to_dict(geometry=True)
    out.update(site.to_dict())
    out["surveys"] = [s.to_dict() for s in reg.surveys(site.name)]
    return out


@router.get("/leads", name="api_leads")
def api_leads(
    request: Request,
    who: MayViewLeads,
    lead_class: Annotated[str | None, Query(alias="class")] = None,
    state: str | None = None,
    site: str | None = None,
    seen_from: Annotated[str | None, Query(alias="from")] = None,
    seen_to: Annotated[str | None, Query(alias="to")] = None,
    min_score: str | None = None,
) -> list[dict[str, Any]]:
    """Leads filtered by class, state, site, date of last sighting and score (newest first,
    at most 1000)."""
    flt = parse_filter(lead_class, state, site, seen_from, seen_to, min_score)
    return [r.to_dict() for r in queries.filter_leads(platform(request).engine, flt)]


@router.get("/leads/{lead_id}", name="api_lead")
def api_lead(request: Request, lead_id: int, who: MayViewLeads) -> dict[str, Any]:
    """A lead with its outline (GeoJSON), history of states, sightings and comments."""
    p = platform(request)
    out = p.registry().lead(lead_id).to_dict()
    out["comments"] = [c.to_dict() for c in queries.comments(p.engine, lead_id)]
    return out


@router.post("/leads/{lead_id}/state", name="api_lead_state")
def api_lead_state(
    request: Request,
    lead_id: int,
    change: StateChange,
    who: MayChangeLeads,
) -> dict[str, Any]:
    """Move a lead to its next state (recorded with the user in the registry and the ledger)."""
    reg = platform(request).registry(who.user.username)
    record = reg.set_lead_status(
        lead_id, change.state, reason=change.reason, user=who.user.username
    )
    return record.to_dict()


@router.post("/leads/{lead_id}/comments", name="api_lead_comment")
def api_lead_comment(
    request: Request,
    lead_id: int,
    comment: NewComment,
    who: MayComment,
) -> dict[str, Any]:
    """Comment on a lead (recorded in the ledger)."""
    return add_comment(platform(request), who, lead_id, comment.body).to_dict()


@router.get("/dashboard", name="api_dashboard")
def api_dashboard(request: Request, who: MayDashboard) -> dict[str, Any]:
    """Leads counted by state and by how long they have been in it."""
    counts = queries.dashboard_counts(platform(request).engine, utc_now())
    return {"buckets": [b[0] for b in queries.AGE_BUCKETS], "counts": counts}


@router.get("/evidence", name="api_evidence")
def api_evidence(request: Request, who: MayVerifyEvidence) -> dict[str, Any]:
    """The evidence store verified now (chain, signed heads, stored files)."""
    return store_status(store_path(platform(request))).to_dict()


@router.get("/jobs", name="api_jobs")
def api_jobs(request: Request, who: MayViewJobs) -> list[dict[str, Any]]:
    """Upload jobs the user may see (an operator: their own), newest first."""
    return [job_dict(j, u) for j, u in visible_jobs(platform(request), who)]


@router.get("/jobs/{job_id}", name="api_job")
def api_job(request: Request, job_id: int, who: MayViewJobs) -> dict[str, Any]:
    """One upload job: status, progress, stage, result."""
    return job_dict(*own_job(platform(request), who, job_id))
