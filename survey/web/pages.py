"""The pages of sites, leads, the supervisor's dashboard and the evidence store."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from shapely.geometry import mapping

from change_detection.leads import LEAD_CLASSES
from survey.registry import LEAD_STATES, REASON_REQUIRED, TRANSITIONS
from survey.web import queries
from survey.web.app import Platform
from survey.web.db import audit, utc_now, writing_session
from survey.web.models import CommentRow
from survey.web.packages import build_package, find_package, lead_chip, store_status, zip_folder
from survey.web.rendering import render
from survey.web.security import (
    Anyone,
    MayBuildPackages,
    MayChangeLeads,
    MayComment,
    MayDashboard,
    MayDownloadPackages,
    MayVerifyEvidence,
    MayViewLeads,
    MayViewSites,
    Principal,
)

__all__ = ["add_comment", "parse_filter", "router", "store_path", "visible_site"]

router = APIRouter()

MAX_COMMENT = 5000


def platform(request: Request) -> Platform:
    out: Platform = request.app.state.platform
    return out


def visible_site(p: Platform, who: Principal, site_id: int) -> queries.SiteListRow:
    """The site ``site_id`` if ``who`` may see it (404 otherwise, whether or not it exists)."""
    for site in queries.visible_sites(p.engine, who.user):
        if site.site_id == site_id:
            return site
    raise HTTPException(404, f"no site {site_id} that you may see")


@router.get("/", name="home")
def home(who: MayViewSites) -> Response:
    return RedirectResponse("/sites", status_code=303)


@router.get("/health", name="health")
def health(_who: Anyone) -> dict[str, str]:
    return {"status": "ok"}


@router.get("/sites", name="sites_page", response_class=HTMLResponse)
def sites_page(request: Request, who: MayViewSites) -> Response:
    p = platform(request)
    sites = queries.visible_sites(p.engine, who.user)
    names = {s.name for s in sites}
    outlines = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": mapping(r.boundary),
                "properties": {"site_id": r.site_id, "name": r.name},
            }
            for r in p.registry().sites()
            if r.name in names
        ],
    }
    today = utc_now().date()
    return render(request, "sites.html", sites=sites, outlines=outlines, today=today)


@router.get("/sites/{site_id}", name="site_page", response_class=HTMLResponse)
def site_page(request: Request, site_id: int, who: MayViewSites) -> Response:
    p = platform(request)
    site = visible_site(p, who, site_id)
    reg = p.registry()
    surveys = reg.surveys(site.name)
    events = queries.site_events(p.engine, site.site_id)
    leads = queries.filter_leads(p.engine, queries.LeadFilter(site=site.name), limit=200)
    return render(
        request, "site.html", site=site, record=reg.site(site.name), surveys=surveys,
        events=events, leads=leads,
    )  # fmt: skip


def _day(value: str | None, what: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(400, f"{what} {value!r} is not a date; write YYYY-MM-DD") from exc


def parse_filter(
    lead_class: str | None,
    state: str | None,
    site: str | None,
    seen_from: str | None,
    seen_to: str | None,
    min_score: str | None,
) -> queries.LeadFilter:
    """The lead list's filters from query parameters (400 for a value that is not one)."""
    if lead_class and lead_class not in LEAD_CLASSES:
        raise HTTPException(400, f"class {lead_class!r} is not one of {', '.join(LEAD_CLASSES)}")
    if state and state not in LEAD_STATES:
        raise HTTPException(400, f"state {state!r} is not one of {', '.join(LEAD_STATES)}")
    score = None
    if min_score:
        try:
            score = float(min_score)
        except ValueError as exc:
            raise HTTPException(400, f"score {min_score!r} is not a number") from exc
    return queries.LeadFilter(
        lead_class or None,
        state or None,
        site or None,
        _day(seen_from, "from date"),
        _day(seen_to, "to date"),
        score,
    )


@router.get("/leads", name="leads_page", response_class=HTMLResponse)
def leads_page(
    request: Request,
    who: MayViewLeads,
    lead_class: str | None = None,
    state: str | None = None,
    site: str | None = None,
    seen_from: str | None = None,
    seen_to: str | None = None,
    min_score: str | None = None,
) -> Response:
    p = platform(request)
    flt = parse_filter(lead_class, state, site, seen_from, seen_to, min_score)
    leads = queries.filter_leads(p.engine, flt)
    sites = [s.name for s in queries.visible_sites(p.engine, who.user)]
    return render(
        request, "leads.html", leads=leads, flt=flt, classes=LEAD_CLASSES, states=LEAD_STATES,
        site_names=sites,
    )  # fmt: skip


@router.get("/leads/{lead_id}", name="lead_page", response_class=HTMLResponse)
def lead_page(request: Request, lead_id: int, who: MayViewLeads) -> Response:
    p = platform(request)
    reg = p.registry()
    lead = reg.lead(lead_id)
    chips = {which: lead_chip(reg, lead, which, p.config.data_dir) for which in ("before", "after")}
    swipe = {
        which: {"url": f"/leads/{lead_id}/chip/{which}.png", "bounds": chip.bounds}
        for which, chip in chips.items()
        if chip is not None
    }
    return render(
        request,
        "lead.html",
        lead=lead,
        comments=queries.comments(p.engine, lead_id),
        swipe={"before": swipe.get("before"), "after": swipe.get("after"),
               "outline": mapping(lead.geometry)},
        package=find_package(reg, lead, p.config.data_dir),
        next_states=sorted(TRANSITIONS.get(lead.state, ())),
        reason_required=sorted(REASON_REQUIRED),
        survey=reg.survey(lead.last_survey_id),
    )  # fmt: skip


@router.get("/leads/{lead_id}/chip/{which}.png", name="lead_chip")
def lead_chip_png(request: Request, lead_id: int, which: str, who: MayViewLeads) -> Response:
    if which not in ("before", "after"):
        raise HTTPException(404, "a chip is 'before' or 'after'")
    p = platform(request)
    reg = p.registry()
    chip = lead_chip(reg, reg.lead(lead_id), which, p.config.data_dir)
    if chip is None:
        raise HTTPException(404, f"lead {lead_id} has no {which} orthophoto")
    return FileResponse(chip.path, media_type="image/png")


@router.post("/leads/{lead_id}/state", name="lead_set_state")
def lead_set_state(
    request: Request,
    who: MayChangeLeads,
    lead_id: int,
    state: Annotated[str, Form(max_length=32)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    reg = platform(request).registry(who.user.username)
    reg.set_lead_status(lead_id, state, reason=reason or None, user=who.user.username)
    return RedirectResponse(f"/leads/{lead_id}", status_code=303)


def add_comment(p: Platform, who: Principal, lead_id: int, body: str) -> queries.Comment:
    """Record a comment on a lead (and its entry in the custody ledger)."""
    text = body.strip()
    if not text or len(text) > MAX_COMMENT:
        raise HTTPException(
            400, f"a comment is 1 to {MAX_COMMENT} characters; yours is {len(text)}"
        )
    reg = p.registry(who.user.username)
    lead = reg.lead(lead_id)
    with writing_session(p.engine) as s:
        row = CommentRow(lead_id=lead.lead_id, user_id=who.user.user_id, body=text, at=utc_now())
        s.add(row)
        s.flush()
        row.ledger_seq = audit(
            reg,
            "comment",
            operator=who.user.username,
            case=lead.cases[-1] if lead.cases else None,
            parameters={"lead": lead.lead_id, "comment": row.id, "body": text},
        )
        s.flush()
        return queries.Comment(
            row.id, who.user.username, who.user.display_name, text, row.at, row.ledger_seq
        )


@router.post("/leads/{lead_id}/comments", name="lead_comment")
def lead_comment(
    request: Request,
    lead_id: int,
    body: Annotated[str, Form(max_length=MAX_COMMENT + 100)],
    who: MayComment,
) -> Response:
    add_comment(platform(request), who, lead_id, body)
    return RedirectResponse(f"/leads/{lead_id}#comments", status_code=303)


@router.post("/leads/{lead_id}/package", name="lead_build_package")
def lead_build_package(request: Request, lead_id: int, who: MayBuildPackages) -> Response:
    p = platform(request)
    reg = p.registry(who.user.username)
    folder = build_package(reg, lead_id, p.config.data_dir, analyst=who.user.username)
    lead = reg.lead(lead_id)
    audit(
        reg,
        "package",
        operator=who.user.username,
        case=lead.cases[-1] if lead.cases else None,
        parameters={"lead": lead_id, "package": str(folder)},
    )
    return RedirectResponse(f"/leads/{lead_id}", status_code=303)


@router.get("/leads/{lead_id}/package.zip", name="lead_package")
def lead_package(request: Request, lead_id: int, who: MayDownloadPackages) -> Response:
    p = platform(request)
    reg = p.registry()
    folder = find_package(reg, reg.lead(lead_id), p.config.data_dir)
    if folder is None:
        raise HTTPException(
            404, f"lead {lead_id} has no evidence package yet; an analyst builds it"
        )
    name = f"lead-{lead_id}"
    return Response(
        zip_folder(folder, name),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )


@router.get("/dashboard", name="dashboard_page", response_class=HTMLResponse)
def dashboard_page(request: Request, who: MayDashboard) -> Response:
    p = platform(request)
    counts = queries.dashboard_counts(p.engine, utc_now())
    return render(request, "dashboard.html", counts=counts, buckets=queries.AGE_BUCKETS,
                  states=LEAD_STATES)  # fmt: skip


def store_path(p: Platform) -> str | None:
    """The evidence store the platform records in (flag, else the registry's setting)."""
    return p.config.store or p.registry().setting("evidence_store")


@router.get("/evidence", name="evidence_page", response_class=HTMLResponse)
def evidence_page(request: Request, who: MayVerifyEvidence) -> Response:
    status = store_status(store_path(platform(request)))
    return render(request, "evidence.html", status=status)
