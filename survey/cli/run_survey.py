"""``sitewatch run``: one survey of a registered site, from its files to leads in the registry.

::

    sitewatch run NAME --date D (--ortho F [--dsm F] [--dtm F] | --odm DIR | --log F --images DIR)
                  [--db PATH_OR_URL] [--store STORE] [--out DIR] [--user U] [--json]
                  [--scheduler ADDRESS]

A flight (``--log`` and ``--images``) is ingested and checked; with an orthophoto (``--ortho``
with ``--dsm``, or ``--odm``) the survey is checked against the permit atlas when it is the
site's first, or compared with the last approved survey; leads go to the registry (a structure
seen before keeps its lead), with the construction stage of every permitted project, a review
map with the per-project timeline, an evidence package per lead and, with an evidence store
(``--store`` or the registry's), the evidence. Prints the survey id and its leads; ``--json``
prints them as JSON (:meth:`survey.run_survey.SurveyRun.to_dict`). ``--scheduler`` runs the
chunked steps of a detection on a dask.distributed cluster (as ``sitewatch detect
--scheduler``). See :mod:`survey.run_survey`.
"""

from __future__ import annotations

from pathlib import Path

import click

from survey.cli._common import existing_file, is_quiet
from survey.cli.db import db_option, echo_json, echo_table, json_option, open_registry, user_option

__all__ = ["command"]


@click.command(name="run")
@click.argument("name")
@click.option("--date", "survey_date", required=True, help="Date of the survey (YYYY-MM-DD).")
@click.option("--ortho", type=existing_file, help="Orthophoto of the survey (with --dsm).")
@click.option("--dsm", type=existing_file, help="DSM of the survey (metres).")
@click.option("--dtm", type=existing_file, help="DTM of the survey (optional; derived if absent).")
@click.option(
    "--odm",
    type=click.Path(exists=True, path_type=Path),
    help="An OpenDroneMap project folder (its orthophoto, DSM and DTM) instead of --ortho.",
)
@click.option("--log", "flight_log", type=existing_file, help="Flight log of the survey.")
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the flight's photos (with --log).",
)
@db_option
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Evidence store for the survey's evidence and the registry's changes (default: the "
    "registry's, `sitewatch db set-store`).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Output root; the survey's folder is OUT/<site>/<date>-s<survey id>/.",
)
@click.option(
    "--min-area-m2",
    type=click.FloatRange(min=0.0, min_open=True),
    default=6.0,
    show_default=True,
    help="Smallest structure or change that becomes a lead.",
)
@click.option(
    "--storey-m",
    type=click.FloatRange(min=0.0, min_open=True),
    default=3.0,
    show_default=True,
    help="Height of one floor.",
)
@click.option("--no-map", is_flag=True, help="Do not write the review map.")
@click.option("--no-packages", is_flag=True, help="Do not write evidence packages.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="dask.distributed scheduler address (tcp://host:8786; its workers must see the "
    "input and output paths) for the chunked steps of a detection against an earlier survey, "
    "or 'local' for a LocalCluster of worker processes (default: threads in this process).",
)
@user_option
@json_option
def command(
    name: str,
    survey_date: str,
    ortho: Path | None,
    dsm: Path | None,
    dtm: Path | None,
    odm: Path | None,
    flight_log: Path | None,
    images: Path | None,
    db: str | None,
    store: Path | None,
    out: Path,
    min_area_m2: float,
    storey_m: float,
    no_map: bool,
    no_packages: bool,
    scheduler: str | None,
    user: str | None,
    as_json: bool,
) -> None:
    """Run one survey of the site NAME: ingest and QC a flight; check a first survey against
    the permit atlas or detect changes against the last approved survey; record the leads,
    construction progress, review map, evidence packages and evidence."""
    from change_detection.params import DetectParams
    from survey.run_survey import run_survey

    ctx = click.get_current_context(silent=True)
    if odm is not None and ortho is not None:
        raise click.UsageError("--odm and --ortho both name the survey; give one of them", ctx)
    if ortho is None and odm is None and flight_log is None and images is None:
        raise click.UsageError(
            "the survey is missing: give --ortho F [--dsm F] [--dtm F], --odm DIR or "
            "--log F --images DIR",
            ctx,
        )
    if (flight_log is None) != (images is None):
        raise click.UsageError("a flight is --log F and --images DIR together", ctx)
    params = DetectParams(min_area_m2=min_area_m2, storey_height_m=storey_m)
    with open_registry(db, create=False, store=store) as reg:
        result = run_survey(
            reg,
            name,
            survey_date,
            out_dir=out,
            ortho=ortho,
            dsm=dsm,
            dtm=dtm,
            odm=odm,
            flight_log=flight_log,
            images=images,
            params=params,
            user=user,
            review_map=not no_map,
            packages=not no_packages,
            scheduler=scheduler,
        )
    if as_json:
        echo_json(result.to_dict())
        return
    if is_quiet():
        return
    against = {
        "atlas": "the permit atlas (first survey)",
        "survey": f"survey {result.reference_survey_id}",
        None: "nothing (no orthophoto)",
    }[result.reference]
    click.echo(
        f"survey {result.survey_id} of {name} on {result.survey.date} (case "
        f"{result.survey.case}, QC {result.survey.qc_verdict or 'not checked'}) against "
        f"{against}: {len(result.leads)} lead(s) -> {result.out_dir}"
    )
    if result.leads:
        echo_table(
            [
                (
                    r.lead_id,
                    r.action,
                    r.lead.lead_class,
                    f"{r.lead.area_m2:.1f}",
                    "" if r.lead.height_gain_m is None else f"{r.lead.height_gain_m:+.1f}",
                    r.lead.reasons[0] if r.lead.reasons else "",
                )
                for r in result.leads
            ],
            ["lead", "action", "class", "area m2", "height m", "reason"],
        )
    if result.proposed_closure:
        click.echo(
            "proposed for closure (structure gone): "
            + ", ".join(str(i) for i in result.proposed_closure)
        )
    for p in result.progress:
        flag = f"  EXCEEDS: {', '.join(p.exceeds)}" if p.exceeds else ""
        click.echo(
            f"permit {p.permit_id}: {p.stage}, {p.storeys} floor(s), {p.height_m:.1f} m{flag}"
        )
