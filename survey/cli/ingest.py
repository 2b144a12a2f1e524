"""``sitewatch ingest``: a flight's log and photos into a geotagged, checked survey.

Writes ``DIR/telemetry.csv`` and ``DIR/track.geojson`` (with a log), ``DIR/photos.geojson``
and ``DIR/geo.txt`` (with photos) and ``DIR/report.json`` (figures, warnings with their
reasons, provenance); see :mod:`survey.ingest.run`.

``--store STORE --case CASE`` (with ``--risk`` and ``--operator``) also copies the originals —
the flight log and the photos — into the evidence store bit-exact, with the device serials
found in them, and records the ingest (inputs, outputs, parameters, version) in its custody
ledger; a missing store is created, as ``sitewatch evidence add`` does
(:func:`survey.evidence.wiring.record_ingest`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from survey.cli._common import existing_file, is_quiet
from survey.cli._store import _OPERATOR_HELP, check_store, say_recorded

__all__ = ["command"]

existing_dir = click.Path(exists=True, file_okay=False, readable=True, path_type=Path)


def _time_offset(_ctx: click.Context, _param: click.Parameter, value: str) -> str | float:
    from survey.errors import GeotagError
    from survey.ingest.run import parse_time_offset

    try:
        return parse_time_offset(value)
    except GeotagError as exc:
        raise click.BadParameter(f"{value!r}: use auto or a number of seconds, e.g. -3.5") from exc


def _odm_option(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r}: write it as NAME=VALUE, e.g. orthophoto-resolution=2")
    value = raw.strip()
    try:
        parsed = json.loads(value.lower() if value.lower() in ("true", "false") else value)
    except json.JSONDecodeError:
        parsed = value
    if not isinstance(parsed, bool | int | float | str):
        parsed = value
    return name.strip(), parsed


def _progress() -> Any:
    if is_quiet() or not sys.stderr.isatty():
        return None
    return lambda message: click.echo(message, err=True)


def _pct(cov: dict[str, Any]) -> str:
    holes = cov.get("holes") or 0
    gaps = f", {holes} hole(s) {cov.get('holes_m2', 0):.0f} m2" if holes else ", no holes"
    return f"{cov['covered_pct']:.1f} % covered{gaps}"


def _summary(report: dict[str, Any], out: Path) -> None:
    if report["log"] is not None:
        lg = report["log"]
        click.echo(
            f"log: {Path(lg['path']).name} ({lg['format']}), {report['messages']} messages, "
            f"{report['bad_packets']} bad packet(s), {report['gps_points']} GPS points, "
            f"{report['camera_events']} camera event(s)"
        )
    if report["images"]:
        offset = report["time_offset"]
        clock = (
            f"; camera clock {offset['offset_s']:+.2f} s off the log ({offset['method']})"
            if offset is not None and offset["offset_s"] is not None
            else ""
        )
        click.echo(
            f"photos: {report['images']} read, {report['images_placed']} placed, "
            f"{report['images_matched']} paired with camera events{clock}"
        )
    cov = report["coverage"]
    if cov is not None:
        parts = [
            f"{label} {_pct(cov.get(key))}"
            for key, label in (("site", "site"), ("planned_area", "planned area"))
            if cov.get(key)
        ]
        gsd = cov.get("gsd_cm_median")
        if gsd is not None:
            parts.append(f"GSD {gsd:.2f} cm/px")
        click.echo("coverage: " + ("; ".join(parts) if parts else "not measured (no footprints)"))
        if cov.get("flags"):
            flags = ", ".join(f"{k} {v}" for k, v in cov["flags"].items())
            click.echo(f"flagged photos: {flags}")
    task = report.get("nodeodm_task")
    if task:
        click.echo(f"NodeODM task {task['uuid']} ({task['status']}) on {task['server']}")
    n_warn = len(report["warnings"])
    click.echo(f"{n_warn} warning(s) in report.json -> {out}")


@click.command(name="ingest")
@click.option("--log", "log_path", type=existing_file, help="Flight log (.tlog, .bin, .ulg).")
@click.option("--images", type=existing_dir, help="Folder of the flight's photos.")
@click.option(
    "--plan",
    type=click.Path(exists=True, path_type=Path),
    help="Folder written by `sitewatch plan --out`, or a DJI WPML route (.kmz): planned area, "
    "camera, GSD, overlaps.",
)
@click.option(
    "--site", type=existing_file, help="Site boundary (any vector format/CRS); default the plan's."
)
@click.option(
    "--dem", type=existing_file, help="DEM GeoTIFF (any CRS) for the footprints; default flat."
)
@click.option(
    "--time-offset",
    default="auto",
    show_default=True,
    callback=_time_offset,
    metavar="auto|SECONDS",
    help="Camera clock minus log clock, or auto to estimate it from the data.",
)
@click.option(
    "--camera", help="Camera preset (see `sitewatch plan --list-cameras`); default plan/EXIF."
)
@click.option(
    "--geotagged-copies",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Also save copies of the photos with their geotag in the EXIF (originals untouched).",
)
@click.option(
    "--nodeodm",
    metavar="URL",
    help="Send the photos and geo.txt to this NodeODM server (http://HOST:PORT; needs pyodm).",
)
@click.option(
    "--odm-option",
    "odm_options",
    multiple=True,
    metavar="NAME=VALUE",
    help="ODM option of the NodeODM task (repeatable), e.g. orthophoto-resolution=2.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if missing).",
)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Evidence store: copy the log and the photos into it as originals and record the "
    "ingest in its custody ledger (created if missing; needs --case).",
)
@click.option("--case", "case", help="Case id the originals are filed under (with --store).")
@click.option("--risk", help="The case's risk tier: high, medium, low (with --store).")
@click.option("--operator", help=_OPERATOR_HELP)
def command(
    log_path: Path | None,
    images: Path | None,
    plan: Path | None,
    site: Path | None,
    dem: Path | None,
    time_offset: str | float,
    camera: str | None,
    geotagged_copies: Path | None,
    nodeodm: str | None,
    odm_options: tuple[str, ...],
    out: Path,
    store: Path | None,
    case: str | None,
    risk: str | None,
    operator: str | None,
) -> None:
    """Read a flight's log and photos, place each photo (camera-clock offset, camera events,
    interpolation), check them (blur, exposure, distance, nadir, duplicates, coverage of the
    site and plan) and write telemetry.csv, track.geojson, photos.geojson, geo.txt and
    report.json into --out. Give --log, --images or both: photos with their own GPS need no
    log."""
    from survey.ingest.run import run_ingest

    if log_path is None and images is None:
        raise click.UsageError("give the flight log (--log), its photos (--images) or both")
    if odm_options and not nodeodm:
        raise click.UsageError("--odm-option needs --nodeodm URL")
    options = dict(_odm_option(o) for o in odm_options)
    if risk is not None and store is None:
        raise click.UsageError("--risk is the tier of the store's case: give --store STORE too")
    if risk is not None and store is not None:
        from survey.evidence.cases import validate_risk
        from survey.evidence.config import DEFAULT_RETENTION, MARKER_NAME

        if not (store / MARKER_NAME).is_file():  # a store made now has the default tiers
            validate_risk(risk, DEFAULT_RETENTION)
    recorder = check_store(store, case=case, operator=operator, create=True, case_required=True)
    if recorder is not None and risk is not None:
        validate_risk(risk, recorder.store.config.tiers)
    result = run_ingest(
        out,
        log=log_path,
        images=images,
        plan=plan,
        site=site,
        dem=dem,
        time_offset=time_offset,
        camera=camera,
        geotagged_copies=geotagged_copies,
        nodeodm=nodeodm,
        nodeodm_options=options or None,
        progress=_progress(),
    )
    entries: list[int] = []
    if recorder is not None:
        from survey.evidence.wiring import record_ingest

        items, entry = record_ingest(recorder, result, risk=risk)
        entries = [entry.seq, *(item.seq for item in items)]
        if not is_quiet():
            new = sum(item.new for item in items)
            click.echo(
                f"originals: {len(items)} file(s) in the evidence store, {new} new, case {case}"
            )
    if not is_quiet():
        _summary(result.report, result.out_dir)
    if recorder is not None:
        say_recorded(recorder, entries)
