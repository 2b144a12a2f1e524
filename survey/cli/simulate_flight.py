"""``sitewatch simulate-flight``: fly a plan over the synthetic site, with ground truth.

Writes ``DIR/flight.tlog`` (the ground station's MAVLink log), ``DIR/photos/DJI_NNNN.JPG``
(rendered from the site, EXIF and DJI XMP) and ``DIR/truth.json`` (the true trajectory at
each exposure, the planted camera-clock offset, the noise figures); see
:mod:`survey.simulate`. ``sitewatch ingest --log DIR/flight.tlog --images DIR/photos --plan
PLAN`` then ingests it.

``--store STORE`` (with ``--case`` and ``--operator``) records the run in the evidence store's
custody ledger: the plan's and the site's files read, the log, photos and truth.json written,
with their SHA-256 and the simulation's parameters
(:func:`survey.evidence.wiring.record_simulate_flight`); a missing store is created, as
``ingest --store`` does, so that a simulated survey is recorded from its first step.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from survey.cli._common import is_quiet
from survey.cli._store import _CASE_HELP, _OPERATOR_HELP, check_store, say_recorded

__all__ = ["command"]

existing_dir = click.Path(exists=True, file_okay=False, readable=True, path_type=Path)


def _progress() -> Any:
    if is_quiet() or not sys.stderr.isatty():
        return None
    return lambda message: click.echo(message, err=True)


@click.command(name="simulate-flight")
@click.option(
    "--plan", "plan", required=True, type=existing_dir, help="Folder of `sitewatch plan --out`."
)
@click.option(
    "--site", "site", required=True, type=existing_dir, help="Folder of `sitewatch synth --out`."
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if missing).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--clock-offset-s",
    type=float,
    default=None,
    help="Camera clock minus UTC in seconds [default: drawn from the seed, within 8 s].",
)
@click.option(
    "--gps-noise-m",
    type=click.FloatRange(min=0.0, max=50.0),
    default=1.0,
    show_default=True,
    help="Standard deviation of the (correlated) horizontal GNSS error per axis.",
)
@click.option(
    "--epoch",
    type=click.Choice(["after", "before"]),
    default="after",
    show_default=True,
    help="The site epoch to fly over.",
)
@click.option(
    "--photo-width-px",
    type=click.IntRange(min=32, max=8192),
    default=600,
    show_default=True,
    help="Width of the rendered photos (the camera's aspect is kept).",
)
@click.option("--camera", help="Camera preset; default the plan's.")
@click.option("--no-photos", is_flag=True, help="Write the log and truth.json only.")
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Evidence store (created if missing): record the plan's and site's files read and "
    "the log, photos and truth.json written (hashes, parameters, version, operator).",
)
@click.option("--case", "case", help=_CASE_HELP)
@click.option("--operator", help=_OPERATOR_HELP)
def command(
    plan: Path,
    site: Path,
    out: Path,
    seed: int,
    clock_offset_s: float | None,
    gps_noise_m: float,
    epoch: str,
    photo_width_px: int,
    camera: str | None,
    no_photos: bool,
    store: Path | None,
    case: str | None,
    operator: str | None,
) -> None:
    """Fly the plan's sorties over the synthetic site (acceleration-limited kinematics,
    correlated GNSS noise, wind, a camera-clock offset) and write flight.tlog, the photos
    with EXIF, and truth.json into --out."""
    from survey.simulate import SimParams, simulate_flight

    params = SimParams(
        seed=seed,
        epoch=epoch,
        clock_offset_s=clock_offset_s,
        gps_noise_m=gps_noise_m,
        photo_width_px=photo_width_px,
        photos=not no_photos,
        camera=camera,
    )
    recorder = check_store(store, case=case, operator=operator, create=True)
    flight = simulate_flight(plan, site, out, params, progress=_progress())
    entry = None
    if recorder is not None:
        from survey.evidence.wiring import record_simulate_flight

        entry = record_simulate_flight(recorder, flight, plan=plan, site=site)
    if is_quiet():
        return
    t = flight.truth
    noise = t["noise"]
    click.echo(
        f"flew {t['flight']['sorties']} sortie(s) in {t['flight']['duration_s'] / 60:.1f} min: "
        f"{t['flight']['photos']} photos, camera clock {flight.clock_offset_s:+.3f} s, "
        f"GNSS error {noise['horizontal_rms_m']:.2f} m RMS (max {noise['horizontal_max_m']:.2f} m)"
    )
    click.echo(f"log   : {flight.tlog}")
    if flight.photos_dir is not None:
        click.echo(f"photos: {flight.photos_dir}")
    click.echo(f"truth : {flight.truth_json}")
    if recorder is not None and entry is not None:
        say_recorded(recorder, [entry.seq])
