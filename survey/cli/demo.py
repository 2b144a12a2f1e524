"""``sitewatch demo``: run every stage on the bundled synthetic site and say where it all is."""

from __future__ import annotations

from pathlib import Path

import click

from survey.cli._common import ensure_out_dir, is_quiet

__all__ = ["command"]


@click.command(name="demo")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if missing).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--size-m", type=click.FloatRange(min=60.0, max=1000.0), default=160.0, show_default=True
)
@click.option("--gsd-cm", type=click.FloatRange(min=2.0, max=20.0), default=5.0, show_default=True)
def command(out: Path, seed: int, size_m: float, gsd_cm: float) -> None:
    """Generate the default synthetic site and run every stage of sitewatch on it."""
    ensure_out_dir(out)
    from survey.demo import run_demo
    from survey.synth import SynthParams

    quiet = is_quiet()
    result = run_demo(
        out,
        synth=SynthParams(seed=seed, size_m=size_m, gsd_cm=gsd_cm),
        progress=(lambda _m: None) if quiet else (lambda m: click.echo(m, err=True)),
    )
    if quiet:
        return
    click.echo(f"\nsitewatch demo -> {result.out_dir}")
    for stage in result.stages:
        click.echo(f"  {stage.name:<16} {stage.headline}  ({stage.seconds:.1f} s)")
        for line in stage.details:
            click.echo(f"  {'':<16}   {line}")
        for label, path in stage.outputs.items():
            click.echo(f"  {'':<16}   {label}: {path}")
