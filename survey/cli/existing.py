"""``sitewatch existing``: a site's layer of legally existing buildings.

Subcommands::

    import FILE --site NAME     replace the site's layer with the buildings of FILE
                                (building_id, height_m, floors; any vector format and CRS)
    list --site NAME            the buildings registered

Each takes ``--db`` and ``--json``.
"""

from __future__ import annotations

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


@click.group(name="existing")
def command() -> None:
    """The existing-buildings layer of a site (the other half of the permit atlas)."""


@command.command(name="import")
@click.argument("file", type=existing_file)
@click.option("--site", required=True, help="The site the buildings belong to.")
@change_options
def import_cmd(
    file: Path, site: str, db: str | None, store: Path | None, user: str | None, as_json: bool
) -> None:
    """Replace the site's existing buildings with those of FILE."""
    with open_registry(db, store=store) as reg:
        n = reg.import_existing(file, site, user=user)
    if as_json:
        echo_json({"site": site, "buildings": n})
    elif not is_quiet():
        click.echo(f"site {site!r}: {n} existing building(s) from {file}")


@command.command(name="list")
@click.option("--site", required=True, help="The site.")
@db_option
@json_option
def list_cmd(site: str, db: str | None, as_json: bool) -> None:
    """The existing buildings of a site (footprint areas in m²)."""
    with open_registry(db) as reg:
        buildings = reg.existing_buildings(site)
    rows = [(b.building_id, b.geometry.area, b.height_m, b.floors) for b in buildings]
    if as_json:
        echo_json(
            [
                {"building_id": r[0], "area_m2": round(r[1], 1), "height_m": r[2], "floors": r[3]}
                for r in rows
            ]
        )
        return
    echo_table(rows, ("building_id", "area_m2", "height_m", "floors"))
