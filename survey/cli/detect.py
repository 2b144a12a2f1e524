"""``sitewatch detect``: find changes between two survey epochs and write enforcement leads.

Each epoch is given as files (``--before-ortho`` and ``--before-dsm``) or as an epoch
(``--before``): an OpenDroneMap project folder, whose orthophoto and DSM are used (a DSM
given with ``--before-dsm`` replaces the project's), or an orthophoto. An epoch is checked
with :func:`survey.ingest.odm.find_epoch` before detection starts and its record is kept in
``provenance.json`` (``epochs``).

``--store STORE`` (with ``--case`` and ``--operator``) records the run in the evidence store's
custody ledger: one entry with the inputs' and outputs' SHA-256 of ``provenance.json``, the
parameters and the version. ``--derived-from EPOCH=SOURCE`` (``before=`` or ``after=``, an
ingest output folder, the photos' folder, a file or a SHA-256) also records the user's
statement that the epoch's rasters were made from SOURCE by photogrammetry, so the leads trace
back to the photos and the flight log (:mod:`survey.evidence.wiring`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from survey.cli._common import ensure_out_dir, existing_file, is_quiet
from survey.cli._epochs import epoch_path
from survey.cli._store import _CASE_HELP, _OPERATOR_HELP, _STORE_HELP, check_store, say_recorded
from survey.progress import quiet_option, reporting

if TYPE_CHECKING:
    from survey.ingest.odm import SurveyEpoch

__all__ = ["command"]


@click.command(name="detect")
@quiet_option
@click.option(
    "--before",
    "before_epoch",
    type=epoch_path,
    help="Reference epoch: an OpenDroneMap project folder (its orthophoto and DSM) or an "
    "orthophoto; instead of --before-ortho.",
)
@click.option("--before-ortho", type=existing_file, help="Reference orthophoto (or give --before).")
@click.option(
    "--before-dsm",
    type=existing_file,
    help="Reference DSM (metres, with nodata); replaces the DSM of a --before project.",
)
@click.option(
    "--after",
    "after_epoch",
    type=epoch_path,
    help="New epoch: an OpenDroneMap project folder (its orthophoto and DSM) or an "
    "orthophoto; instead of --after-ortho.",
)
@click.option("--after-ortho", type=existing_file, help="New orthophoto (or give --after).")
@click.option(
    "--after-dsm",
    type=existing_file,
    help="New DSM (metres, with nodata); replaces the DSM of an --after project.",
)
@click.option("--permits", type=existing_file, help="Permit footprints (any vector format/CRS).")
@click.option("--site", type=existing_file, help="Site boundary; detection is cropped to it.")
@click.option("--before-date", help="Date of the reference survey (YYYY-MM-DD; default: tags).")
@click.option("--after-date", help="Date of the new survey (YYYY-MM-DD; default: tags).")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="dask.distributed scheduler address, or 'local' for a LocalCluster of worker "
    "processes (default: threads in this process).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if missing).",
)
@click.option(
    "--min-area-m2",
    type=click.FloatRange(min=0.0, min_open=True),
    default=6.0,
    show_default=True,
    help="Smallest change footprint that becomes a lead.",
)
@click.option(
    "--min-height-m",
    type=click.FloatRange(min=0.0, min_open=True),
    default=2.5,
    show_default=True,
    help="Smallest height change that counts as built.",
)
@click.option(
    "--storey-m",
    type=click.FloatRange(min=0.0, min_open=True),
    default=3.0,
    show_default=True,
    help="Height of one floor for floors_added.",
)
@click.option(
    "--chunk-px",
    type=click.IntRange(min=64),
    default=1024,
    show_default=True,
    help="Side of the processing chunks in pixels.",
)
@click.option(
    "--no-coregister",
    is_flag=True,
    help="Only match the grids; do not estimate and remove the misregistration.",
)
@click.option(
    "--no-registered",
    is_flag=True,
    help="Do not write after_registered.tif / after_registered_dsm.tif (the after epoch "
    "co-registered onto the before grid, for review maps and evidence packages).",
)
@click.option("--store", type=click.Path(path_type=Path), help=_STORE_HELP)
@click.option("--case", "case", help=_CASE_HELP)
@click.option("--operator", help=_OPERATOR_HELP)
@click.option(
    "--derived-from",
    "derived_from",
    multiple=True,
    metavar="EPOCH=SOURCE",
    help="With --store: the rasters of EPOCH (before or after) were made from SOURCE (an "
    "ingest output folder, the photos' folder, a file or a SHA-256) by photogrammetry; "
    "recorded as your statement so the leads trace back to the photos. Repeatable.",
)
def command(
    before_epoch: Path | None,
    before_ortho: Path | None,
    before_dsm: Path | None,
    after_epoch: Path | None,
    after_ortho: Path | None,
    after_dsm: Path | None,
    permits: Path | None,
    site: Path | None,
    before_date: str | None,
    after_date: str | None,
    scheduler: str | None,
    out: Path,
    min_area_m2: float,
    min_height_m: float,
    storey_m: float,
    chunk_px: int,
    no_coregister: bool,
    no_registered: bool,
    store: Path | None,
    case: str | None,
    operator: str | None,
    derived_from: tuple[str, ...],
) -> None:
    """Detect new, raised and removed structures between two epochs and check them against
    the permits; writes leads.geojson, leads.gpkg, change.tif, coregistration.json,
    provenance.json and the co-registered after epoch (after_registered.tif,
    after_registered_dsm.tif) into --out."""
    from change_detection.params import DetectParams
    from survey.pipeline import GDAL_CACHE_MB, run_detect

    _one_of(before_epoch, before_ortho, "--before", "--before-ortho", "reference")
    _one_of(after_epoch, after_ortho, "--after", "--after-ortho", "new")

    # Every tile is decoded once: GDAL's default block cache (5 % of RAM) only adds memory.
    # Set in the environment (in MB) so that LocalCluster worker processes inherit it too.
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))

    params = DetectParams(
        min_area_m2=min_area_m2,
        min_height_m=min_height_m,
        storey_height_m=storey_m,
        chunk_px=chunk_px,
        coregister=not no_coregister,
    )
    recorder = check_store(store, case=case, operator=operator, derived_from=derived_from)
    statements = []
    if recorder is not None:
        from survey.evidence.wiring import resolve_derived_from

        statements = resolve_derived_from(derived_from, epochs=("before", "after"))
    ensure_out_dir(out)
    t0 = time.perf_counter()
    epochs = _epochs(before_epoch, before_dsm, after_epoch, after_dsm, site)
    if "before" in epochs:
        before_ortho, before_dsm = epochs["before"].ortho, epochs["before"].dsm
    if "after" in epochs:
        after_ortho, after_dsm = epochs["after"].ortho, epochs["after"].dsm
    assert before_ortho is not None and after_ortho is not None
    _same_mode(before_dsm, after_dsm, epochs)
    with reporting(quiet=is_quiet(), command="detect"):
        result = run_detect(
            before_ortho,
            after_ortho,
            out,
            before_dsm=before_dsm,
            after_dsm=after_dsm,
            permits=permits,
            site=site,
            before_date=before_date,
            after_date=after_date,
            params=params,
            scheduler=scheduler,
            write_registered=not no_registered,
            epochs={when: epoch.record() for when, epoch in epochs.items()},
        )
    entries: list[int] = []
    if recorder is not None:
        from survey.evidence.wiring import record_detect

        entries = [record_detect(recorder, result, statements).seq]
    if is_quiet():
        return
    mode = "RGB only (weaker: no heights)" if result.mode == "rgb_only" else "DSM heights"
    click.echo(
        f"{len(result.leads)} lead(s) from {mode} in {time.perf_counter() - t0:.1f} s "
        f"-> {result.out_dir}"
    )
    for lead in result.leads:
        height = "" if lead.height_gain_m is None else f" {lead.height_gain_m:+.1f} m"
        click.echo(
            f"  {lead.lead_id}  {lead.lead_class:<17} {lead.area_m2:7.1f} m2{height}  "
            f"score {lead.score:.2f}  {lead.reasons[0] if lead.reasons else ''}"
        )
    if recorder is not None:
        say_recorded(recorder, entries)


def _one_of(epoch: Path | None, ortho: Path | None, flag: str, ortho_flag: str, what: str) -> None:
    """Exactly one of an epoch and an orthophoto: a usage error otherwise."""
    ctx = click.get_current_context(silent=True)
    if epoch is not None and ortho is not None:
        raise click.UsageError(
            f"{flag} and {ortho_flag} both name the {what} survey; give one of them", ctx
        )
    if epoch is None and ortho is None:
        raise click.UsageError(
            f"the {what} survey is missing: give {flag} (an OpenDroneMap project folder or an "
            f"orthophoto) or {ortho_flag}",
            ctx,
        )


def _epochs(
    before: Path | None,
    before_dsm: Path | None,
    after: Path | None,
    after_dsm: Path | None,
    site: Path | None,
) -> dict[str, SurveyEpoch]:
    """The epochs given as --before / --after, checked (before the long work starts)."""
    from survey.cli._epochs import open_epoch

    epochs = {}
    if before is not None:
        epochs["before"] = open_epoch(before, "before epoch", dsm=before_dsm, site=site)
    if after is not None:
        epochs["after"] = open_epoch(after, "after epoch", dsm=after_dsm, site=site)
    return epochs


def _same_mode(
    before_dsm: Path | None, after_dsm: Path | None, epochs: dict[str, SurveyEpoch]
) -> None:
    """Both epochs with a DSM (height mode) or neither (RGB-only): an epoch that lacks the
    DSM the other has is named with its fix."""
    from survey.errors import DetectInputError

    if (before_dsm is None) == (after_dsm is None):
        return
    lacking = "before" if before_dsm is None else "after"
    if lacking in epochs:
        raise DetectInputError(
            f"{epochs[lacking].root}: the {lacking} epoch has no DSM while the other has one; "
            f"run OpenDroneMap with --dsm, give its DSM with --{lacking}-dsm, or leave both "
            "DSMs out for RGB-only mode"
        )
