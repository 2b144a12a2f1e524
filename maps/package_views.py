"""What a reviewer looks at in an evidence package: the lead, its chips, the height profile,
the permits and existing buildings near it, and the offline map.

:func:`write_views` writes ``lead.geojson``, ``before.png`` and ``after.png`` (or
``survey.png``), ``profile.png`` (with a DSM), ``permits.geojson`` and ``existing.geojson``
(when any is near the lead) and ``map.html`` with ``map_files/`` into the package folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import mapping

from change_detection.leads import Lead, leads_to_feature_collection
from maps.assets import write_text_atomic
from maps.chips import render_chip, render_height_profile
from maps.derived import REGISTERED_LABEL
from maps.package_inputs import PackageInputs
from maps.package_manifest import json_ready
from maps.review import Feature, render_lead_view

__all__ = ["PackageViews", "related_features", "write_views"]


@dataclass(frozen=True)
class PackageViews:
    """What :func:`write_views` wrote.

    Attributes
    ----------
    chips : tuple of Path
        ``before.png`` and ``after.png``, or ``survey.png``.
    has_profile : bool
        ``profile.png`` was drawn.
    permits, existing : list of (geometry WGS84, properties)
        The permits and existing buildings near the lead (packaged as GeoJSON).
    """

    chips: tuple[Path, ...]
    has_profile: bool
    permits: list[Feature]
    existing: list[Feature]


def write_views(
    work: Path,
    lead: Lead,
    files: PackageInputs,
    permits: Sequence[Feature] | None,
    existing: Sequence[Feature] | None,
    before_date: str | None,
    after_date: str | None,
) -> PackageViews:
    """Write the lead, chips, profile, nearby features and map into the folder ``work``."""
    write_text_atomic(
        work / "lead.geojson", json.dumps(leads_to_feature_collection([lead]), indent=2)
    )
    chips = _write_chips(work, lead, files, before_date, after_date)
    has_profile = _write_profile(work, lead, files, before_date, after_date)
    related = related_features(lead, permits or [])
    if related:
        _write_features_json(work / "permits.geojson", related)
    near_existing = related_features(lead, existing or [])
    if near_existing:
        _write_features_json(work / "existing.geojson", near_existing)
    single = files.single
    render_lead_view(
        lead,
        before_ortho=None if single else files.given["before_ortho"],
        after_ortho=None if single else files.given["after_ortho"],
        ortho=files.given["ortho"] if single else None,
        out_html=work / "map.html",
        permits=related,
        existing=near_existing,
        chips=chips,
        before_date=before_date,
        after_date=after_date,
        after_registered=files.registered,
    )
    return PackageViews(chips, has_profile, related, near_existing)


def _write_chips(
    work: Path,
    lead: Lead,
    files: PackageInputs,
    before_date: str | None,
    after_date: str | None,
) -> tuple[Path, ...]:
    """``before.png`` and ``after.png`` (the co-registered after epoch when given), or
    ``survey.png`` for a single survey."""
    chips: tuple[Path, ...] = ()
    if not files.single:
        before = files.given["before_ortho"]
        assert before is not None
        chips += (
            render_chip(
                before, lead.geometry, work / "before.png", title="Before", date=before_date
            ),
        )
    chips += (
        render_chip(
            files.shown_after,
            lead.geometry,
            work / ("survey.png" if files.single else "after.png"),
            title=files.after_title,
            date=after_date,
        ),
    )
    return chips


def _write_profile(
    work: Path,
    lead: Lead,
    files: PackageInputs,
    before_date: str | None,
    after_date: str | None,
) -> bool:
    """``profile.png`` across the lead when there is a DSM; whether it was drawn."""
    single = files.single
    before = None if single else files.given["before_dsm"]
    after = files.given["dsm"] if single else (files.registered_dsm or files.given["after_dsm"])
    if before is None and after is None:
        return False
    render_height_profile(
        lead.geometry,
        work / "profile.png",
        before_dsm=before,
        after_dsm=after,
        before_date=before_date,
        after_date=after_date,
        title=f"Height profile across lead {lead.lead_id}",
        after_label="survey DSM"
        if single
        else (REGISTERED_LABEL if files.registered_dsm is not None else "after"),
    )
    return True


def related_features(lead: Lead, permits: Sequence[Feature]) -> list[Feature]:
    """Permits (or existing buildings) named by the lead or within about 20 m of it."""
    ids = set(lead.permit_ids)
    zone = lead.geometry.buffer(0.0002)  # ~20 m around the lead
    out = []
    for geom, props in permits:
        if geom is None:
            continue
        pid = next(
            (str(props[k]) for k in ("permit_id", "building_id", "id") if props.get(k) is not None),
            "",
        )
        if pid in ids or geom.intersects(zone):
            out.append((geom, props))
    return out


def _write_features_json(path: Path, features: Sequence[Feature]) -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": mapping(g), "properties": json_ready(dict(p))}
            for g, p in features
        ],
    }
    write_text_atomic(path, json.dumps(fc, indent=2))
