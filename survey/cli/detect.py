"""``sitewatch detect``: find changes between two survey epochs and write enforcement leads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from survey.cli._common import ensure_out_dir, existing_file, is_quiet

__all__ = ["command"]


@click.command(name="detect")
@click.option("--before-ortho", required=True, type=existing_file, help="Reference orthophoto.")
@click.option("--before-dsm", type=existing_file, help="Reference DSM (metres, with nodata).")
@click.option("--after-ortho", required=True, type=existing_file, help="New orthophoto.")
@click.option("--after-dsm", type=existing_file, help="New DSM (metres, with nodata).")
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
def command(
    before_ortho: Path,
    before_dsm: Path | None,
    after_ortho: Path,
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
) -> None:
    """Detect new, raised and removed structures between two epochs and check them against
    the permits; writes leads.geojson, leads.gpkg, change.tif, coregistration.json,
    provenance.json and the co-registered after epoch (after_registered.tif,
    after_registered_dsm.tif) into --out."""
    from change_detection.params import DetectParams
    from survey.pipeline import GDAL_CACHE_MB, run_detect

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
    ensure_out_dir(out)
    t0 = time.perf_counter()
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
    )
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
