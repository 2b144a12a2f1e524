"""``sitewatch schedule``: the sites due for a survey on a date, with their flight plans.

A site is due when it was never surveyed or its last survey (QC not failed) is ``cadence_days``
old or older (:mod:`survey.registry.schedule`). With ``--out DIR`` a ready-to-fly plan is
written for each under ``DIR/<id>-<name>/`` (``sortie-NN.plan`` for QGroundControl,
``sortie-NN.waypoints``, ``mission.geojson``, ``summary.json``), flown at the site's GSD around
its holes and no-fly zones.
"""

from __future__ import annotations

from pathlib import Path

import click

from survey.cli._common import ensure_out_dir, is_quiet
from survey.cli.db import db_option, echo_json, echo_table, json_option, open_registry

__all__ = ["command"]


@click.command(name="schedule")
@click.option("--date", "date", help="The day to schedule (YYYY-MM-DD; default today, UTC).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a flight plan for each due site under this folder.",
)
@db_option
@json_option
def command(date: str | None, out_dir: Path | None, db: str | None, as_json: bool) -> None:
    """The sites due for a survey on --date (most overdue first)."""
    with open_registry(db) as reg:
        if out_dir is not None:
            ensure_out_dir(out_dir)
            due = reg.plan_due(out_dir, date)
        else:
            due = reg.due_sites(date)
    if as_json:
        echo_json([d.to_dict() for d in due])
        return
    rows = []
    for d in due:
        row = [d.site_id, d.name, d.risk, d.team, d.last_survey, d.due, d.overdue_days]
        if out_dir is not None:
            row.append(d.plan_dir or f"no plan: {d.plan_error}")
        rows.append(row)
    headers = ["id", "site", "risk", "team", "last_survey", "due", "overdue_d"]
    if out_dir is not None:
        headers.append("plan")
    echo_table(rows, headers)
    if not is_quiet():
        click.echo(f"{len(due)} site(s) due", err=True)
