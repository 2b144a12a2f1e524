"""``sitewatch check``: the first survey of a site checked against the permit atlas.

The survey is given as files (``--ortho``, ``--dsm``, ``--dtm``) or as an epoch (``--epoch``):
an OpenDroneMap project folder, whose orthophoto, DSM and DTM (``odm_dem/dtm.tif``) are used
(``--dsm`` / ``--dtm`` replace the project's), or an orthophoto with ``--dsm``. An epoch is
checked with :func:`survey.ingest.odm.find_epoch` first and its record is kept in
``provenance.json`` (``epoch``).

``--store STORE`` (with ``--case`` and ``--operator``) records the check in the evidence
store's custody ledger (the inputs' and outputs' SHA-256 of ``provenance.json``, parameters,
version); ``--derived-from SOURCE`` also records the user's statement that the survey's rasters
were made from SOURCE (an ingest output folder, the photos' folder, a file or a SHA-256), so the
leads trace back to the photos and the flight log (:mod:`survey.evidence.wiring`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from survey.cli._common import ensure_out_dir, existing_file, is_quiet
from survey.cli._epochs import epoch_path
from survey.cli._store import _CASE_HELP, _OPERATOR_HELP, _STORE_HELP, check_store, say_recorded
from survey.progress import quiet_option, reporting

__all__ = ["command"]


@click.command(name="check")
@quiet_option
@click.option(
    "--epoch",
    type=epoch_path,
    help="The survey as an OpenDroneMap project folder (its orthophoto, DSM and DTM) or an "
    "orthophoto; instead of --ortho.",
)
@click.option("--ortho", type=existing_file, help="Orthophoto of the survey (or give --epoch).")
@click.option(
    "--dsm",
    type=existing_file,
    help="DSM of the survey (metres); replaces the DSM of an --epoch project.",
)
@click.option(
    "--dtm",
    type=existing_file,
    help="DTM of the survey (OpenDroneMap's odm_dem/dtm.tif, the default with --epoch); "
    "derived from the DSM if absent.",
)
@click.option(
    "--permits",
    required=True,
    type=existing_file,
    help="Permit footprints (any vector format/CRS): permit_id, max_height_m, floors, "
    "valid_from, valid_to.",
)
@click.option(
    "--existing",
    type=existing_file,
    help="Legally existing buildings (cadastral or base-map layer, any format/CRS): "
    "building_id, height_m, floors.",
)
@click.option("--site", type=existing_file, help="Site boundary; the check is cropped to it.")
@click.option("--date", "survey_date", help="Date of the survey (YYYY-MM-DD; default: tags).")
@click.option(
    "--atlas-date",
    help="Date of the atlas (YYYY-MM-DD): permits that ended before it cover nothing.",
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
    help="Smallest structure footprint that becomes a lead.",
)
@click.option(
    "--min-height-m",
    type=click.FloatRange(min=0.0, min_open=True),
    default=2.5,
    show_default=True,
    help="Smallest height above ground that counts as built.",
)
@click.option(
    "--storey-m",
    type=click.FloatRange(min=0.0, min_open=True),
    default=3.0,
    show_default=True,
    help="Height of one floor.",
)
@click.option(
    "--chunk-px",
    type=click.IntRange(min=64),
    default=1024,
    show_default=True,
    help="Side of the processing chunks in pixels.",
)
@click.option(
    "--no-align",
    is_flag=True,
    help="Use the atlas as given; do not measure and remove its offset against the survey.",
)
@click.option(
    "--max-offset-m",
    type=click.FloatRange(min=0.0, min_open=True, max=50.0),
    default=3.0,
    show_default=True,
    help="Largest atlas offset the alignment looks for.",
)
@click.option("--store", type=click.Path(path_type=Path), help=_STORE_HELP)
@click.option("--case", "case", help=_CASE_HELP)
@click.option("--operator", help=_OPERATOR_HELP)
@click.option(
    "--derived-from",
    "derived_from",
    multiple=True,
    metavar="SOURCE",
    help="With --store: the survey's rasters were made from SOURCE (an ingest output folder, "
    "the photos' folder, a file or a SHA-256) by photogrammetry; recorded as your statement "
    "so the leads trace back to the photos. Repeatable.",
)
def command(
    epoch: Path | None,
    ortho: Path | None,
    dsm: Path | None,
    dtm: Path | None,
    permits: Path,
    existing: Path | None,
    site: Path | None,
    survey_date: str | None,
    atlas_date: str | None,
    out: Path,
    min_area_m2: float,
    min_height_m: float,
    storey_m: float,
    chunk_px: int,
    no_align: bool,
    max_offset_m: float,
    store: Path | None,
    case: str | None,
    operator: str | None,
    derived_from: tuple[str, ...],
) -> None:
    """Check a site's first survey against the permit atlas: structures from the height above
    ground (DSM - DTM) that neither a valid permit nor an existing building covers, the parts
    outside their footprints and the ones taller than allowed; writes leads.geojson,
    leads.gpkg, change.tif, check.json, provenance.json and the atlas as used
    (atlas_permits.geojson, atlas_existing.geojson) into --out."""
    from change_detection.params import DetectParams
    from survey.check import run_check
    from survey.pipeline import GDAL_CACHE_MB

    ctx = click.get_current_context(silent=True)
    if epoch is not None and ortho is not None:
        raise click.UsageError("--epoch and --ortho both name the survey; give one of them", ctx)
    if epoch is None and (ortho is None or dsm is None):
        raise click.UsageError(
            "the survey is missing: give --epoch (an OpenDroneMap project folder, or an "
            "orthophoto with --dsm), or --ortho and --dsm",
            ctx,
        )
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
    params = DetectParams(
        min_area_m2=min_area_m2,
        min_height_m=min_height_m,
        storey_height_m=storey_m,
        chunk_px=chunk_px,
        coregister=False,
    )
    recorder = check_store(store, case=case, operator=operator, derived_from=derived_from)
    statements = []
    if recorder is not None:
        from survey.evidence.wiring import resolve_derived_from

        statements = resolve_derived_from(derived_from, epochs=("survey",))
    ensure_out_dir(out)
    t0 = time.perf_counter()
    record = None
    if epoch is not None:
        from survey.cli._epochs import open_epoch

        found = open_epoch(epoch, "survey", dsm=dsm, dtm=dtm, site=site, needs_dsm=True)
        ortho, dsm, dtm, record = found.ortho, found.dsm, found.dtm, found.record()
    assert ortho is not None and dsm is not None
    with reporting(quiet=is_quiet(), command="check"):
        result = run_check(
            ortho,
            dsm,
            out,
            permits=permits,
            dtm=dtm,
            existing=existing,
            site=site,
            survey_date=survey_date,
            atlas_date=atlas_date,
            params=params,
            align=not no_align,
            max_offset_m=max_offset_m,
            epoch=record,
        )
    entries: list[int] = []
    if recorder is not None:
        from survey.evidence.wiring import record_check

        entries = [record_check(recorder, result, statements).seq]
    if is_quiet():
        return
    source = "given DTM" if dtm is not None else "derived DTM"
    click.echo(
        f"{len(result.leads)} lead(s) from DSM - {source} in {time.perf_counter() - t0:.1f} s "
        f"-> {result.out_dir}"
    )
    a = result.alignment
    if a.get("applied"):
        click.echo(
            f"  atlas moved by ({a['dx_m']:+.2f}, {a['dy_m']:+.2f}) m onto the survey "
            f"(residual {a.get('residual_m', float('nan')):.2f} m, "
            f"{a.get('n_used', '?')} of {a.get('n_outlines', '?')} outlines)"
        )
    else:
        click.echo(f"  atlas used as given ({a.get('summary', 'not aligned')})")
    for lead in result.leads:
        height = "" if lead.height_gain_m is None else f" {lead.height_gain_m:+.1f} m"
        click.echo(
            f"  {lead.lead_id}  {lead.lead_class:<17} {lead.area_m2:7.1f} m2{height}  "
            f"score {lead.score:.2f}  {lead.reasons[0] if lead.reasons else ''}"
        )
    if recorder is not None:
        say_recorded(recorder, entries)
