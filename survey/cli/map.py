"""``sitewatch map``: the offline review map of a run.

Reads the leads (``leads.geojson`` written by ``sitewatch detect``, through
:func:`survey.vectors.read_leads`), the two orthophotos and, optionally, the permits, the
flight track and the photo positions (any vector format GDAL reads, any CRS; a track is any
LineString layer, photos any Point layer — the planner's ``mission.geojson`` works for both,
shown as the planned route and planned photos), and hands them to
:func:`maps.render_review_map`. The flight as flown comes from ``sitewatch ingest``:
``--track track.geojson`` (the flown track) and ``--photos photos.geojson`` (each photo's
popup shows its thumbnail, time, position source and QC flags; the thumbnails are made from
the photo files, found in ``--photo-dir`` or the images folder that ingest's ``report.json``
records); ``--route mission.geojson`` adds the planned route beside it.
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

``--store STORE`` (with ``--case`` and ``--operator``) records the map in the evidence store's
custody ledger: the leads and layers read, the pages written (:mod:`survey.evidence.wiring`).
:func:`survey.cli._store.check_store` opens the store of every command that takes ``--store``
(also importable from here, as :func:`say_recorded` is).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from survey.cli._common import existing_file, is_quiet
from survey.cli._store import _CASE_HELP, _OPERATOR_HELP, _STORE_HELP, check_store, say_recorded
from survey.progress import quiet_option, reporting, stage

if TYPE_CHECKING:
    from change_detection.leads import Lead

__all__ = [
    "check_epochs",
    "check_store",
    "command",
    "find_photo_dir",
    "load_features",
    "load_leads",
    "say_recorded",
]

log = logging.getLogger(__name__)

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


def load_leads(path: Path) -> list[Lead]:
    """Read a leads FeatureCollection written by ``sitewatch detect`` or ``sitewatch check``
    (:func:`survey.vectors.read_leads`: a damaged file is one line naming it)."""
    from survey.vectors import read_leads

    return read_leads(path)


def load_features(path: Path | None, role: str) -> list[tuple[Any, dict[str, Any]]] | None:
    """Read a vector file as WGS84 (geometry, properties) pairs; None when not given."""
    if path is None:
        return None
    from survey.vectors import read_features

    return read_features(path, role).to_crs(4326).pairs()


def find_photo_dir(photos: Path | None, given: Path | None) -> Path | None:
    """The folder of the photo files named in ``photos`` (``photos.geojson`` of ingest).

    ``given`` (``--photo-dir``) when given; else the images folder recorded in the
    ``report.json`` beside ``photos`` (``inputs.images.path``) when it exists; else the
    folder of ``photos`` itself. None without photos.
    """
    if photos is None:
        return None
    if given is not None:
        return given
    report = photos.parent / "report.json"
    try:
        recorded = json.loads(report.read_text(encoding="utf-8"))["inputs"]["images"]["path"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        recorded = None
    if isinstance(recorded, str) and Path(recorded).is_dir():
        log.info("photos: thumbnails from %s (recorded in %s)", recorded, report)
        return Path(recorded)
    return photos.parent


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
@quiet_option
@click.option("--leads", "leads_path", required=True, type=existing_file, help="leads.geojson.")
@click.option("--before-ortho", type=existing_file, help="Before orthophoto.")
@click.option("--after-ortho", type=existing_file, help="After orthophoto.")
@click.option("--ortho", type=existing_file, help=_ORTHO_HELP)
@click.option("--permits", type=existing_file, help="Permit footprints (any format, any CRS).")
@click.option("--existing", type=existing_file, help=_EXISTING_HELP)
@click.option(
    "--track",
    type=existing_file,
    help="Flight track: track.geojson of sitewatch ingest (flown), or any LineString layer.",
)
@click.option(
    "--route",
    type=existing_file,
    help="Planned route, drawn beside the flown track (the planner's mission.geojson works).",
)
@click.option(
    "--photos",
    type=existing_file,
    help="Photos: photos.geojson of sitewatch ingest (popups with thumbnails, time, position "
    "source, QC flags), or any Point layer.",
)
@click.option(
    "--photo-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the photos named in --photos, for the thumbnails [default: the images "
    "folder in the report.json beside --photos, else the folder of --photos].",
)
@click.option("--store", type=click.Path(path_type=Path), help=_STORE_HELP)
@click.option("--case", "case", help=_CASE_HELP)
@click.option("--operator", help=_OPERATOR_HELP)
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
    route: Path | None,
    photos: Path | None,
    photo_dir: Path | None,
    store: Path | None,
    case: str | None,
    operator: str | None,
    after_registered: Path | None,
    title: str,
    out: Path,
) -> None:
    """Write the offline review map, dual view and lead table of a run."""
    check_epochs(before_ortho, after_ortho, ortho)
    if out.suffix.lower() not in (".html", ".htm"):
        raise click.BadParameter(f"{out}: the review page must end in .html", param_hint="--out")
    recorder = check_store(store, case=case, operator=operator)
    from maps import render_review_map

    leads = load_leads(leads_path)
    permit_features = load_features(permits, "permits")
    existing_features = load_features(existing, "existing buildings")
    track_features = load_features(track, "flight track")
    route_features = load_features(route, "planned route")
    photo_features = load_features(photos, "photo positions")
    # one stage, once the leads and layers have been read (a bad one is one line alone)
    with reporting(quiet=is_quiet(), command="map"), stage("render the review map"):
        result = render_review_map(
            leads,
            before_ortho=before_ortho,
            after_ortho=after_ortho,
            out_html=out,
            ortho=ortho,
            permits=permit_features,
            existing=existing_features,
            track=track_features,
            route=route_features,
            photos=photo_features,
            photo_dir=find_photo_dir(photos, photo_dir),
            title=title,
            after_registered=after_registered,
        )
    if recorder is not None:
        inputs = {
            "leads": leads_path,
            "before_ortho": before_ortho,
            "after_ortho": after_ortho,
            "ortho": ortho,
            "permits": permits,
            "existing": existing,
            "track": track,
            "route": route,
            "photos": photos,
            "after_registered": after_registered,
        }
        entry = recorder.record(
            "sitewatch map",
            inputs=inputs,
            outputs={p.name: p for p in result.pages},
            parameters={"title": title, "photo_dir": find_photo_dir(photos, photo_dir)},
        )
        say_recorded(recorder, [entry.seq], err=True)
    if not is_quiet():
        click.echo(f"review map ({len(leads)} leads):", err=True)
    _lines(result.pages)
