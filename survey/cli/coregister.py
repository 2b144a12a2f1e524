"""``sitewatch coregister``: bring a new epoch onto the reference to a fraction of a pixel.

``--store STORE`` (with ``--case`` and ``--operator``) records the run in the evidence store's
custody ledger: the rasters read, the aligned rasters, report and residuals written, the
parameters and the model found (:mod:`survey.evidence.wiring`).
"""

from __future__ import annotations

from pathlib import Path

import click

from survey.cli._common import existing_file, is_quiet
from survey.cli._store import _CASE_HELP, _OPERATOR_HELP, _STORE_HELP, check_store, say_recorded
from survey.progress import quiet_option, reporting

__all__ = ["command"]


@click.command(name="coregister")
@quiet_option
@click.option(
    "--reference",
    required=True,
    type=existing_file,
    help="Reference: an orthophoto (RGB, RGBA, RGB+NIR, 8-bit to float), a greyscale or "
    "paletted image, a georeferenced permit-map / atlas raster, or a DSM (a single float band).",
)
@click.option(
    "--target",
    required=True,
    type=existing_file,
    help="Raster to align onto the reference: any of the kinds --reference takes.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The aligned target on the reference grid: an image (uint8 + mask) or, for a DSM "
    "target, heights (float32, NaN nodata; vertical offset removed when the reference is a "
    "DSM too).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON report; the residual layer is also written beside it (.residuals.geojson).",
)
@click.option("--reference-dsm", type=existing_file, help="Reference DSM (metres, with nodata).")
@click.option("--target-dsm", type=existing_file, help="DSM of the new epoch.")
@click.option(
    "--out-dsm",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Aligned DSM with the vertical offset removed (needs --target-dsm).",
)
@click.option(
    "--model",
    type=click.Choice(["auto", "translation", "affine", "warp"]),
    default="auto",
    show_default=True,
    help="Mapping model; auto chooses by the tie points (information criterion).",
)
@click.option(
    "--window-px",
    type=click.IntRange(min=32, max=1024),
    default=128,
    show_default=True,
    help="Side of the tie-point windows.",
)
@click.option(
    "--max-tiepoints",
    type=click.IntRange(min=9),
    default=625,
    show_default=True,
    help="Most tie-point windows on the grid.",
)
@click.option(
    "--order",
    type=click.IntRange(min=0, max=3),
    default=1,
    show_default=True,
    help="Interpolation order of the orthophoto (1 bilinear, 3 cubic).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Fail instead of writing an unaligned target when no reliable model is found.",
)
@click.option("--store", type=click.Path(path_type=Path), help=_STORE_HELP)
@click.option("--case", "case", help=_CASE_HELP)
@click.option("--operator", help=_OPERATOR_HELP)
def command(
    reference: Path,
    target: Path,
    out: Path,
    report: Path | None,
    reference_dsm: Path | None,
    target_dsm: Path | None,
    out_dsm: Path | None,
    model: str,
    window_px: int,
    max_tiepoints: int,
    order: int,
    strict: bool,
    store: Path | None,
    case: str | None,
    operator: str | None,
) -> None:
    """Co-register TARGET onto REFERENCE: sub-pixel shift, affine or smooth warp, DSM offset.

    The shift printed and reported maps the target onto the reference in reference pixels:
    a feature at target pixel (x, y) lies at (x + shift_x_px, y + shift_y_px) in the
    reference (x = column to the east, y = row to the south).

    Each side is matched as what it holds (the report's inputs.<side>.representation): rgb,
    grey, palette (expanded), line-work (a map; every pixel valid) or heights (a DSM, matched
    on its height gradients). Two DSMs alone (--reference ref_dsm.tif --target tgt_dsm.tif)
    give the target DSM on the reference grid with the vertical offset removed. What was
    assumed about a file (no mask: the edge collar is nodata; scaling to 8 bits; band order)
    is one warning line and is listed in the report (inputs.<side>.assumptions).
    """
    from change_detection.coregistration import CoregParams
    from survey.coregister import coregister_files

    if target_dsm is not None and out_dsm is None:
        raise click.UsageError("--target-dsm needs --out-dsm for the aligned DSM")
    if out_dsm is not None and target_dsm is None:
        raise click.UsageError("--out-dsm needs --target-dsm")
    if reference_dsm is not None and target_dsm is None:
        raise click.UsageError("--reference-dsm needs --target-dsm (and --out-dsm)")
    params = CoregParams(
        model=model,  # type: ignore[arg-type]
        window_px=window_px,
        max_tiepoints=max_tiepoints,
        strict=strict,
    )
    recorder = check_store(store, case=case, operator=operator)
    with reporting(quiet=is_quiet(), command="coregister"):
        outputs = coregister_files(
            reference,
            target,
            out,
            report=report,
            reference_dsm=reference_dsm,
            target_dsm=target_dsm,
            out_dsm=out_dsm,
            params=params,
            order=order,
        )
    entry = None
    if recorder is not None:
        from survey.evidence.wiring import record_coregister

        entry = record_coregister(
            recorder,
            outputs,
            inputs={
                "reference": reference,
                "target": target,
                "reference_dsm": reference_dsm,
                "target_dsm": target_dsm,
            },
            parameters={"coregistration": params, "order": order},
        )
    rep = outputs.report
    rmse = rep["rmse_px"]
    click.echo(
        f"{target.name} -> {reference.name}: {rep['model']}, shift "
        f"({rep['shift_x_px']:+.3f}, {rep['shift_y_px']:+.3f}) px = "
        f"({rep['shift_east_m']:+.3f} m east, {rep['shift_north_m']:+.3f} m north), "
        f"rmse {'-' if rmse is None else f'{rmse:.3f}'} px, "
        f"{rep['n_used']}/{rep['n_tiepoints']} tie points, confidence {rep['confidence']:.2f}"
    )
    if rep["vertical_offset_m"] is not None:
        click.echo(f"  DSM vertical offset {rep['vertical_offset_m']:+.3f} m removed")
    if not is_quiet():
        inputs = rep["inputs"]
        click.echo(
            f"  matched as: reference {inputs['reference']['representation']}, "
            f"target {inputs['target']['representation']}"
        )
        click.echo(f"  wrote {outputs.out}")
        for p in (outputs.out_dsm, outputs.report_path, outputs.residuals_path):
            if p is not None:
                click.echo(f"  wrote {p}")
    for w in rep["warnings"]:
        click.echo(f"  warning: {w}", err=True)
    if recorder is not None and entry is not None:
        say_recorded(recorder, [entry.seq])
