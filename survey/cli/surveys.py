"""``sitewatch surveys``: the surveys of a site, and their approval.

Subcommands::

    list NAME               the surveys of site NAME, oldest first
    show SURVEY_ID          one survey: files, evidence, QC verdict, approval
    approve SURVEY_ID       approve it as the reference of the next surveys (recorded in the
                            custody ledger; a survey whose flight QC failed cannot be approved)
    discard SURVEY_ID --reason TEXT
                            remove a survey whose run failed (refused once leads were recorded
                            from it, it was approved or another survey was compared with it;
                            the custody ledger keeps its registration and records the discard)

Surveys are registered by ``sitewatch run`` (or :meth:`survey.registry.Registry.register_survey`).
Each takes ``--db`` and ``--json``.
"""

from __future__ import annotations

from pathlib import Path

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

__all__ = ["command"]


@click.group(name="surveys")
def command() -> None:
    """Surveys of a site: files, evidence, QC verdict, approval."""


@command.command(name="list")
@click.argument("name")
@db_option
@json_option
def list_cmd(name: str, db: str | None, as_json: bool) -> None:
    """The surveys of the site NAME."""
    with open_registry(db) as reg:
        surveys = reg.surveys(name)
    if as_json:
        echo_json([s.to_dict() for s in surveys])
        return
    echo_table(
        [
            (
                s.survey_id,
                s.date,
                s.qc_verdict,
                s.reference,
                s.leads,
                s.approved,
                s.approved_by,
                s.case,
            )
            for s in surveys
        ],
        ("id", "date", "qc", "against", "leads", "approved", "by", "case"),
    )


@command.command(name="show")
@click.argument("survey_id", type=int)
@db_option
@json_option
def show_cmd(survey_id: int, db: str | None, as_json: bool) -> None:
    """One survey."""
    with open_registry(db) as reg:
        survey = reg.survey(survey_id)
    d = survey.to_dict()
    if as_json:
        echo_json(d)
        return
    for key in ("survey_id", "site", "date", "case", "qc_verdict", "reference", "approved"):
        click.echo(f"{key:<12} {d[key] if d[key] is not None else '-'}")
    if survey.approved:
        click.echo(f"{'approved by':<12} {survey.approved_by} at {d['approved_at']}")
    for key in ("flight_log", "images", "ortho", "dsm", "dtm"):
        if d[key]:
            click.echo(f"{key:<12} {d[key]}")
    for role, path in sorted(survey.products.items()):
        click.echo(f"{role:<12} {path}")
    click.echo(f"{'evidence':<12} {len(survey.evidence)} original(s); {survey.leads} lead(s)")


@command.command(name="approve")
@click.argument("survey_id", type=int)
@change_options
def approve_cmd(
    survey_id: int, db: str | None, store: Path | None, user: str | None, as_json: bool
) -> None:
    """Approve SURVEY_ID as the reference of the site's next surveys."""
    with open_registry(db, store=store) as reg:
        survey = reg.approve_survey(survey_id, user=user)
    if as_json:
        echo_json(survey.to_dict())
    elif not is_quiet():
        click.echo(
            f"survey {survey.survey_id} of {survey.site} ({survey.date}) approved by "
            f"{survey.approved_by}"
        )


@command.command(name="discard")
@click.argument("survey_id", type=int)
@click.option("--reason", required=True, help="Why (e.g. the error that stopped its run).")
@change_options
def discard_cmd(
    survey_id: int,
    reason: str,
    db: str | None,
    store: Path | None,
    user: str | None,
    as_json: bool,
) -> None:
    """Remove SURVEY_ID, a survey whose run failed (nothing may rest on it yet)."""
    with open_registry(db, store=store) as reg:
        survey = reg.discard_survey(survey_id, reason=reason, user=user)
    if as_json:
        echo_json(survey.to_dict())
    elif not is_quiet():
        click.echo(f"survey {survey.survey_id} of {survey.site} ({survey.date}) discarded")
