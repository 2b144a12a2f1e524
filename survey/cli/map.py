"""``sitewatch map``: the offline review map of a run.

Reads the leads (``leads.geojson`` written by ``sitewatch detect``), the two orthophotos and,
optionally, the permits, the flight track and the photo positions (any vector format GDAL
reads, any CRS; a track is any LineString layer, photos any Point layer — the planner's
``mission.geojson`` works for both), and hands them to :func:`maps.render_review_map`.
Writes ``review.html``, ``review_dual.html``, ``review_overview.html`` and ``review_files/``
beside each other; the pages open offline. ``--after-registered`` (the
``after_registered.tif`` of the detection run) draws the after epoch co-registered onto the
before grid, where the leads are, instead of the original after orthophoto.

The output of ``sitewatch check`` (a first survey checked against the permit atlas) has one
orthophoto: pass it as ``--ortho`` instead of ``--before-ortho``/``--after-ortho``, with the
atlas as the check used it (``--permits atlas_permits.geojson --existing
atlas_existing.geojson`` from the check's folder, moved onto the survey when an offset was
removed). Writes ``review.html``, ``review_overview.html`` and ``review_files/`` (no dual
view).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from survey.cli._common import existing_file, is_quiet
from survey.errors import InputFileError

if TYPE_CHECKING:
    from change_detection.leads import Lead

__all__ = ["check_epochs", "check_store", "command", "load_features", "load_leads"]

_REGISTERED_HELP = (
    "The after orthophoto co-registered to the before grid (after_registered.tif of "
    "sitewatch detect): after tiles and chips are drawn from it so outlines fit both epochs."
)

_ORTHO_HELP = (
    "The orthophoto of a single survey checked against the permit atlas (sitewatch check), "
    "instead of --before-ortho and --after-ortho."
)

_EXISTING_HELP = (
    "Existing buildings of the permit atlas (atlas_existing.geojson of sitewatch check, or "
    "any building layer, any format, any CRS)."
)

_STORE_HELP = (
    "Evidence store (not supported yet: the store and its custody ledger arrive in a later "
    "release; giving it fails)."
)


def load_leads(path: Path) -> list[Lead]:
    """Read a leads FeatureCollection written by ``sitewatch detect``."""
    from change_detection.errors import ChangeDetectionError
    from change_detection.leads import leads_from_feature_collection

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not a text file; pass the leads.geojson of a run") from exc
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); "
            "pass the leads.geojson written by sitewatch detect"
        ) from exc
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: not a GeoJSON FeatureCollection of leads")
    try:
        return leads_from_feature_collection(data)
    except ChangeDetectionError as exc:
        raise ChangeDetectionError(f"{path}: {exc}") from exc


def load_features(path: Path | None, role: str) -> list[tuple[Any, dict[str, Any]]] | None:
    """Read a vector file as WGS84 (geometry, properties) pairs; None when not given."""
    if path is None:
        return None
    from survey.vectors import read_features

    return read_features(path, role).to_crs(4326).pairs()


def check_store(store: Path | None) -> None:
    """Refuse ``--store`` until the evidence store exists (no pretend support)."""
    if store is None:
        return
    if not store.exists():
        raise click.ClickException(
            f"{store}: no such evidence store; evidence stores are not supported yet, "
            "run without --store"
        )
    raise click.ClickException(
        f"{store}: not an evidence store (evidence stores are not supported yet: they arrive "
        "with the custody ledger); run without --store"
    )


def check_epochs(before: Path | None, after: Path | None, ortho: Path | None) -> None:
    """Two surveys (--before-ortho and --after-ortho) or one (--ortho), as a usage error."""
    if ortho is not None and (before is not None or after is not None):
        raise click.UsageError(
            "give --ortho (a single survey, sitewatch check) or --before-ortho and "
            "--after-ortho (two surveys, sitewatch detect), not both"
        )
    if ortho is None and (before is None or after is None):
        raise click.UsageError(
            "give --before-ortho and --after-ortho (sitewatch detect), or --ortho (the "
            "survey of sitewatch check)"
        )


def _lines(paths: Sequence[Path]) -> None:
    for p in paths:
        click.echo(str(p))


@click.command(name="map")
@click.option("--leads", "leads_path", required=True, type=existing_file, help="leads.geojson.")
@click.option("--before-ortho", type=existing_file, help="Before orthophoto.")
@click.option("--after-ortho", type=existing_file, help="After orthophoto.")
@click.option("--ortho", type=existing_file, help=_ORTHO_HELP)
@click.option("--permits", type=existing_file, help="Permit footprints (any format, any CRS).")
@click.option("--existing", type=existing_file, help=_EXISTING_HELP)
@click.option("--track", type=existing_file, help="Flight track: LineString GeoJSON (or any).")
@click.option("--photos", type=existing_file, help="Photo positions: Point GeoJSON (or any).")
@click.option("--store", type=click.Path(path_type=Path), help=_STORE_HELP)
@click.option("--after-registered", type=existing_file, help=_REGISTERED_HELP)
@click.option("--title", default="sitewatch review", show_default=True, help="Page title.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The review page to write (e.g. review.html); its files go beside it.",
)
def command(
    leads_path: Path,
    before_ortho: Path | None,
    after_ortho: Path | None,
    ortho: Path | None,
    permits: Path | None,
    existing: Path | None,
    track: Path | None,
    photos: Path | None,
    store: Path | None,
    after_registered: Path | None,
    title: str,
    out: Path,
) -> None:
    """Write the offline review map, dual view and lead table of a run."""
    check_store(store)
    check_epochs(before_ortho, after_ortho, ortho)
    if out.suffix.lower() not in (".html", ".htm"):
        raise click.BadParameter(f"{out}: the review page must end in .html", param_hint="--out")
    from maps import render_review_map

    leads = load_leads(leads_path)
    result = render_review_map(
        leads,
        before_ortho=before_ortho,
        after_ortho=after_ortho,
        out_html=out,
        ortho=ortho,
        permits=load_features(permits, "permits"),
        existing=load_features(existing, "existing buildings"),
        track=load_features(track, "flight track"),
        photos=load_features(photos, "photo positions"),
        title=title,
        after_registered=after_registered,
    )
    if not is_quiet():
        click.echo(f"review map ({len(leads)} leads):", err=True)
    _lines(result.pages)
