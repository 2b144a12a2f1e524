"""``sitewatch leads``: enforcement leads followed from the first sighting to the closed case.

Subcommands::

    list [--site NAME] [--state S] [--class C]       leads, by id
    show ID                                          one lead: measures, history, sightings
    set-status ID STATE [--reason TEXT] [--user U]   move it through its lifecycle
    set-risk ID RISK [--reason TEXT] [--user U]      change its risk tier (high, medium, low)

STATE is one of new, under_review, confirmed, dismissed, notice_issued, rectified, demolished,
closed; the legal changes are those of :mod:`survey.registry.lifecycle` (a dismissal and a
reopening need ``--reason``; closed is final). Each change is recorded with who and when, and in
the custody ledger of the registry's evidence store (``--store`` or ``db set-store``); confirming a
lead puts its evidence on legal hold, closing it releases the hold. A lead's risk tier (its site's
when it was opened) sets the retention of its evidence; ``set-risk`` changes it, recorded the same
way, and the cases of the surveys that saw the lead take the new tier
(:mod:`survey.registry.lead_risk`). Each takes ``--db`` and ``--json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from survey.cli._common import is_quiet
from survey.cli.db import (
    change_options,
    db_option,
    echo_json,
    echo_table,
    json_option,
    open_registry,
)

if TYPE_CHECKING:
    from survey.registry import LeadRecord, LeadSummary

__all__ = ["command"]

_STATES = (
    "new",
    "under_review",
    "confirmed",
    "dismissed",
    "notice_issued",
    "rectified",
    "demolished",
    "closed",
)
_RISKS = ("high", "medium", "low")
_CLASSES = (
    "no_permit",
    "outside_footprint",
    "over_height",
    "demolished",
    "new_structure",
    "raised",
)


@click.group(name="leads")
def command() -> None:
    """Enforcement leads and their lifecycle."""


@command.command(name="list")
@click.option("--site", help="Only the leads of this site.")
@click.option("--state", type=click.Choice(_STATES), help="Only leads in this state.")
@click.option("--class", "lead_class", type=click.Choice(_CLASSES), help="Only this class.")
@db_option
@json_option
def list_cmd(
    site: str | None, state: str | None, lead_class: str | None, db: str | None, as_json: bool
) -> None:
    """Leads, by id."""
    from survey.registry.core import gc_paused

    with open_registry(db) as reg:
        leads = reg.leads(site=site, state=state, lead_class=lead_class)
    with gc_paused():  # a city's 100,000 rows of text: see gc_paused
        _print_leads(leads, as_json)


#: rows of ``leads list --json`` written at a time (the output is streamed, not built whole)
_JSON_CHUNK = 10_000


def _json_number(value: float | None) -> str:
    """``value`` rounded to 2 decimals as ``json.dumps`` writes it (``null`` for None)."""
    if value is None:
        return "null"
    rounded = round(value, 2)
    if type(rounded) is int or (type(rounded) is float and math.isfinite(rounded)):
        return repr(rounded)  # what json.dumps writes for a finite float or an int
    return json.dumps(rounded)


def _json_lines(leads: Sequence[LeadSummary]) -> Iterator[str]:
    """The objects of ``leads list --json``, each exactly as ``json.dumps(lead.to_dict(),
    ensure_ascii=False, separators=(",", ":"))`` writes it, formatted from the row's columns
    (text values, few distinct, are encoded once each)."""
    text: dict[str, str] = {}
    days: dict[Any, str] = {}

    def enc(value: str) -> str:
        out = text.get(value)
        if out is None:
            out = text[value] = json.dumps(value, ensure_ascii=False)
        return out

    for lead_id, site, lead_class, kind, state, risk, area, height, seen, closing in leads:
        day = days.get(seen)
        if day is None:
            day = days[seen] = seen.isoformat()
        yield (
            f'{{"lead_id":{int(lead_id)!r},"site":{enc(site)},"class":{enc(lead_class)},'
            f'"kind":{enc(kind)},"state":{enc(state)},"risk":{enc(risk)},'
            f'"area_m2":{_json_number(area)},"height_gain_m":{_json_number(height)},'
            f'"last_seen":"{day}","closure_proposed":{"true" if closing else "false"}}}'
        )


def _echo_leads_json(leads: Sequence[LeadSummary]) -> None:
    """Print ``leads`` as compact JSON, byte for byte what ``echo_json([ld.to_dict() ...],
    compact=True)`` prints, written in chunks of :data:`_JSON_CHUNK` objects."""
    lines = _json_lines(leads)
    for start in range(0, max(len(leads), 1), _JSON_CHUNK):
        chunk = ",".join(next(lines) for _ in range(min(_JSON_CHUNK, len(leads) - start)))
        opening = "[" if start == 0 else ","
        click.echo(opening + chunk, nl=False)
    click.echo("]")


def _print_leads(leads: list[LeadSummary], as_json: bool) -> None:
    if as_json:
        _echo_leads_json(leads)
        return
    echo_table(
        [
            (
                ld.lead_id,
                ld.site,
                ld.lead_class,
                ld.state,
                ld.area_m2,
                ld.height_gain_m,
                ld.last_seen,
                "close?" if ld.closure_proposed else "",
            )
            for ld in leads
        ],
        ("id", "site", "class", "state", "area_m2", "height_m", "last_seen", "flag"),
    )


@command.command(name="show")
@click.argument("lead_id", type=int)
@db_option
@json_option
def show_cmd(lead_id: int, db: str | None, as_json: bool) -> None:
    """One lead: measures, reasons, history and sightings (GeoJSON outline under --json)."""
    with open_registry(db) as reg:
        lead = reg.lead(lead_id)
    if as_json:
        echo_json(lead.to_dict())
        return
    d = lead.to_dict(geometry=False)
    height = "-" if lead.height_gain_m is None else f"{lead.height_gain_m:.1f} m"
    click.echo(f"lead {lead.lead_id} at {lead.site}: {lead.lead_class} ({lead.kind}), {lead.state}")
    click.echo(f"  area {lead.area_m2:.1f} m2, height {height}, risk {lead.risk}")
    if lead.closure_proposed:
        click.echo(f"  proposed for closure (survey {lead.closure_survey_id})")
    if lead.previous_lead_id is not None:
        click.echo(f"  built again where lead {lead.previous_lead_id} was closed")
    for reason in lead.reasons:
        click.echo(f"  - {reason}")
    if lead.permit_ids:
        click.echo(f"  permits: {', '.join(lead.permit_ids)}")
    click.echo(f"  evidence cases: {', '.join(lead.cases) or '-'}")
    click.echo("history:")
    for e in d["events"]:
        change = f"{e['from']} -> {e['to']}" if e["kind"] == "state" else e["kind"]
        why = f": {e['reason']}" if e["reason"] else ""
        seq = f" [ledger {e['ledger_seq']}]" if e["ledger_seq"] is not None else ""
        click.echo(f"  {e['at']}  {e['user']}  {change}{why}{seq}")
    click.echo("seen in:")
    for o in lead.observations:
        click.echo(
            f"  survey {o.survey_id} ({o.date}): {o.lead_class} {o.area_m2:.1f} m2, "
            f"detection {o.detection_id}, {o.action}"
        )


@command.command(name="set-status")
@click.argument("lead_id", type=int)
@click.argument("state", type=click.Choice(_STATES))
@click.option("--reason", help="Why (required to dismiss, to reopen, to close a new lead).")
@change_options
def set_status_cmd(
    lead_id: int,
    state: str,
    reason: str | None,
    db: str | None,
    store: Path | None,
    user: str | None,
    as_json: bool,
) -> None:
    """Move lead LEAD_ID to STATE."""
    with open_registry(db, store=store) as reg:
        lead = reg.set_lead_status(lead_id, state, reason=reason, user=user)
    last = lead.events[-1]
    _say_change(lead, f"{last.from_state} -> {lead.state}", as_json)


@command.command(name="set-risk")
@click.argument("lead_id", type=int)
@click.argument("risk", type=click.Choice(_RISKS))
@click.option("--reason", help="Why (recorded with the change).")
@change_options
def set_risk_cmd(
    lead_id: int,
    risk: str,
    reason: str | None,
    db: str | None,
    store: Path | None,
    user: str | None,
    as_json: bool,
) -> None:
    """Set lead LEAD_ID's risk tier to RISK (the retention of its evidence follows)."""
    with open_registry(db, store=store) as reg:
        lead = reg.set_lead_risk(lead_id, risk, reason=reason, user=user)
    _say_change(lead, str(lead.events[-1].reason), as_json)


def _say_change(lead: LeadRecord, what: str, as_json: bool) -> None:
    """The lead after a change: JSON, or one line with who made it and its ledger entry."""
    if as_json:
        echo_json(lead.to_dict(geometry=False))
    elif not is_quiet():
        last = lead.events[-1]
        seq = f", custody ledger entry {last.ledger_seq}" if last.ledger_seq is not None else ""
        click.echo(f"lead {lead.lead_id}: {what} by {last.user}{seq}")
