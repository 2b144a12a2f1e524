"""``sitewatch sites``: the sites a bureau watches (:mod:`survey.registry`).

Subcommands::

    add NAME --boundary FILE [--nofly FILE] [--cadence-days N] [--risk high|medium|low]
        [--team T] [--gsd-cm G]     register a site (any polygon file, any CRS; holes kept)
    list                            every site
    show NAME                       one site
    import FILE                     every feature of a GeoPackage / GeoJSON (properties name,
                                    cadence_days, risk, team, gsd_cm), all or nothing

Each takes ``--db`` and ``--json``.
"""

from __future__ import annotations

from pathlib import Path

import click

from survey.cli._common import existing_file, is_quiet
from survey.cli.db import db_option, echo_json, echo_table, json_option, open_registry, user_option

__all__ = ["command"]


@click.group(name="sites")
def command() -> None:
    """Watched sites: boundary, no-fly zones, cadence, risk tier, team."""


@command.command(name="add")
@click.argument("name")
@click.option("--boundary", type=existing_file, required=True, help="Site polygon file.")
@click.option("--nofly", type=existing_file, help="No-fly polygons (any format and CRS).")
@click.option(
    "--cadence-days", type=int, default=30, show_default=True, help="Days between surveys."
)
@click.option(
    "--risk",
    type=click.Choice(["high", "medium", "low"]),
    default="medium",
    show_default=True,
    help="Risk tier: the retention of its leads' evidence.",
)
@click.option("--team", help="The responsible team.")
@click.option("--gsd-cm", type=float, default=2.0, show_default=True, help="Planned GSD (cm/px).")
@db_option
@user_option
@json_option
def add_cmd(
    name: str,
    boundary: Path,
    nofly: Path | None,
    cadence_days: int,
    risk: str,
    team: str | None,
    gsd_cm: float,
    db: str | None,
    user: str | None,
    as_json: bool,
) -> None:
    """Register the site NAME."""
    with open_registry(db, create=True) as reg:
        site = reg.add_site(
            name,
            boundary,
            nofly=nofly,
            cadence_days=cadence_days,
            risk=risk,
            team=team,
            gsd_cm=gsd_cm,
            user=user,
        )
    if as_json:
        echo_json(site.to_dict())
    elif not is_quiet():
        click.echo(
            f"site {site.site_id} {site.name!r}: {site.area_m2 / 10_000:.2f} ha, {site.holes} "
            f"hole(s), every {site.cadence_days} days, risk {site.risk}"
            + (f", team {site.team}" if site.team else "")
        )


@command.command(name="import")
@click.argument("file", type=existing_file)
@db_option
@user_option
@json_option
def import_cmd(file: Path, db: str | None, user: str | None, as_json: bool) -> None:
    """Register every site of FILE (one polygon feature each)."""
    with open_registry(db, create=True) as reg:
        sites = reg.import_sites(file, user=user)
    if as_json:
        echo_json([s.to_dict() for s in sites])
    elif not is_quiet():
        click.echo(f"{len(sites)} site(s) registered from {file}")


@command.command(name="list")
@db_option
@json_option
def list_cmd(db: str | None, as_json: bool) -> None:
    """Every site."""
    with open_registry(db) as reg:
        sites = reg.sites()
    if as_json:
        echo_json([s.to_dict() for s in sites])
        return
    echo_table(
        [(s.site_id, s.name, s.area_m2 / 10_000, s.cadence_days, s.risk, s.team) for s in sites],
        ("id", "name", "ha", "cadence_d", "risk", "team"),
    )


@command.command(name="show")
@click.argument("name")
@db_option
@json_option
def show_cmd(name: str, db: str | None, as_json: bool) -> None:
    """One site, with its boundary as GeoJSON under --json."""
    with open_registry(db) as reg:
        site = reg.site(name)
        surveys = reg.surveys(name)
        versions = reg.permit_versions(name)
    if as_json:
        out = site.to_dict(geometry=True)
        out["surveys"] = len(surveys)
        out["permit_versions"] = len(versions)
        echo_json(out)
        return
    d = site.to_dict()
    last = surveys[-1].date.isoformat() if surveys else "never"
    for key, value in (
        ("site", f"{d['site_id']} {d['name']}"),
        (
            "area",
            f"{site.area_m2 / 10_000:.2f} ha, {d['holes']} hole(s), "
            f"{d['nofly_zones']} no-fly zone(s)",
        ),
        ("cadence", f"every {d['cadence_days']} days (last survey: {last}, {len(surveys)} in all)"),
        ("risk", d["risk"]),
        ("team", d["team"] or "-"),
        ("plans at", f"{d['gsd_cm']} cm/px"),
        ("permits", f"{len({v.permit_id for v in versions})} ({len(versions)} version(s))"),
        ("boundary", d["boundary_source"] or "-"),
        ("added", f"{d['created_at']} by {d['created_by']}"),
    ):
        click.echo(f"{key:<9} {value}")
