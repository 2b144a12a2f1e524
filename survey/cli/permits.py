"""``sitewatch permits``: a site's permits, by version (:mod:`survey.registry.permit_versions`).

Subcommands::

    import FILE --site NAME         add the versions of a permit file (a feature per version:
                                    permit_id, valid_from, valid_to, max_height_m, floors);
                                    versions already there are skipped, overlaps refused
    list --site NAME [--date D]     every version, or those in force on D

Each takes ``--db`` and ``--json``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from survey.cli._common import existing_file, is_quiet
from survey.cli.db import (
    change_options,
    db_option,
    echo_json,
    echo_table,
    json_option,
    open_registry,
)

__all__ = ["command"]


@click.group(name="permits")
def command() -> None:
    """Permits of a site, versioned: an amendment is a new version."""


@command.command(name="import")
@click.argument("file", type=existing_file)
@click.option("--site", required=True, help="The site the permits belong to.")
@change_options
def import_cmd(
    file: Path, site: str, db: str | None, store: Path | None, user: str | None, as_json: bool
) -> None:
    """Add the permit versions of FILE to the site."""
    with open_registry(db, store=store) as reg:
        result = reg.import_permits(file, site, user=user)
    if as_json:
        echo_json(result.to_dict())
    elif not is_quiet():
        click.echo(
            f"site {site!r}: {len(result.added)} version(s) added, {result.unchanged} already "
            f"registered ({result.permits} permit(s) in {file})"
        )


@command.command(name="list")
@click.option("--site", required=True, help="The site.")
@click.option("--date", "date", help="Only the versions in force on this date (YYYY-MM-DD).")
@db_option
@json_option
def list_cmd(site: str, date: str | None, db: str | None, as_json: bool) -> None:
    """The permit versions of a site."""
    from survey.registry.core import parse_day
    from survey.registry.permit_versions import in_force

    with open_registry(db) as reg:
        versions = reg.permit_versions(site)
    rows: list[tuple[str, dt.date | None, dt.date | None, float | None, int | None]]
    if date is not None:
        rows = [
            (p.permit_id, p.valid_from, p.valid_to, p.max_height_m, p.floors)
            for p in in_force(versions, parse_day(date, "--date"))
        ]
    else:
        rows = [(v.permit_id, v.valid_from, v.valid_to, v.max_height_m, v.floors) for v in versions]
    if as_json:
        echo_json(
            [
                {
                    "permit_id": r[0],
                    "valid_from": None if r[1] is None else r[1].isoformat(),
                    "valid_to": None if r[2] is None else r[2].isoformat(),
                    "max_height_m": r[3],
                    "floors": r[4],
                }
                for r in rows
            ]
        )
        return
    echo_table(rows, ("permit_id", "valid_from", "valid_to", "max_height_m", "floors"))
