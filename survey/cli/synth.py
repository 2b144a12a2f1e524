"""``sitewatch synth``: write the synthetic survey site (two epochs, permits, truth)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from survey.cli._common import ensure_out_dir, is_quiet
from survey.progress import quiet_option, reporting, stage

__all__ = ["command"]


@click.command(name="synth")
@quiet_option
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if missing).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of the layout, textures, noise and misregistration.",
)
@click.option(
    "--size-m",
    type=click.FloatRange(min=60.0, max=1000.0),
    default=160.0,
    show_default=True,
    help="Side of the square site raster in metres.",
)
@click.option(
    "--gsd-cm",
    type=click.FloatRange(min=2.0, max=20.0),
    default=5.0,
    show_default=True,
    help="Ground sampling distance in cm per pixel.",
)
def command(out: Path, seed: int, size_m: float, gsd_cm: float) -> None:
    """Write the synthetic survey site: before/after orthophotos and DSMs, the site boundary,
    permits and the ground truth of every planted change."""
    from survey.synth import SynthParams, render_scene, write_scene

    params = SynthParams(seed=seed, size_m=size_m, gsd_cm=gsd_cm)
    ensure_out_dir(out)
    t0 = time.perf_counter()
    # survey.synth.generate_site, in its two stages
    with reporting(quiet=is_quiet(), command="synth"):
        with stage("render the scene"):
            scene = render_scene(params)
        with stage("write the rasters and vectors"):
            site = write_scene(scene, out)
    if is_quiet():
        return
    truth = site.truth
    n = truth["shape_px"][0]
    click.echo(
        f"synthetic site (seed {seed}, {size_m:g} m at {gsd_cm:g} cm, {n}x{n} px, "
        f"{truth['crs']}) written to {site.root} in {time.perf_counter() - t0:.1f} s"
    )
    click.echo(f"  rasters : {site.before_ortho.parent}/, {site.after_ortho.parent}/")
    click.echo(f"  vectors : {site.site.name}, {site.permits.name}, {site.truth_geojson.name}")
    click.echo(
        f"  truth   : {truth['n_planted']} planted changes and distractors, "
        f"{len(truth['must_flag'])} must be flagged ({', '.join(truth['must_flag'])})"
    )
