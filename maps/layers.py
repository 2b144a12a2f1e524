"""The vector layers of the review pages: leads, permits, existing buildings, the flight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import folium
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from change_detection.leads import Lead
from maps.errors import MapError
from maps.leaflet import _GeoLayer
from maps.markup import (
    _EXISTING_COLOR,
    _PERMIT_COLOR,
    _PHOTO_COLOR,
    _ROUTE_COLOR,
    _TRACK_COLOR,
    CLASS_COLORS,
    _e,
    _rel,
)
from maps.photos import photo_kind, photo_popup, write_thumbnails

#: A vector feature handed to the map: geometry in WGS84 (lon, lat) and its attributes.
Feature = tuple[BaseGeometry, Mapping[str, Any]]


def _props_table(props: Mapping[str, Any], title: str) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
        for k, v in props.items()
        if v is not None and not str(k).startswith("_")
    )
    return f'<div class="sw-popup"><h4>{_e(title)}</h4><table>{rows}</table></div>'


def _label_of(props: Mapping[str, Any], fallback: str) -> str:
    for key in ("permit_id", "building_id", "id", "name", "ref", "number", "kind"):
        if props.get(key) not in (None, ""):
            return str(props[key])
    return fallback


def _features(
    items: Sequence[Feature],
    style: dict[str, Any],
    kind: str,
    title: str,
    popups: Sequence[str] | None = None,
) -> dict[str, Any]:
    feats = []
    for i, (geom, props) in enumerate(items):
        if geom is None or geom.is_empty:
            continue
        label = _label_of(props, f"{title} {i + 1}")
        feats.append(
            {
                "type": "Feature",
                "geometry": mapping(geom),
                "properties": {
                    "_style": style,
                    "_popup": popups[i]
                    if popups is not None
                    else _props_table(props, f"{title}: {label}"),
                    "_tooltip": _e(label),
                    "_id": f"{kind}-{i}",
                },
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def _lead_features(leads: Sequence[Lead], popups: Mapping[str, str]) -> dict[str, Any]:
    feats = []
    for lead in leads:
        color = CLASS_COLORS.get(lead.lead_class, "#000000")
        feat = lead.to_feature()
        feat["properties"].update(
            {
                "_style": {
                    "color": color,
                    "weight": 3,
                    "fillColor": color,
                    "fillOpacity": 0.25,
                    "className": "sitewatch-lead",
                },
                "_popup": popups[lead.lead_id],
                "_tooltip": _e(f"{lead.lead_id} — {lead.lead_class}"),
                "_id": lead.lead_id,
            }
        )
        feats.append(feat)
    return {"type": "FeatureCollection", "features": feats}


@dataclass(frozen=True)
class _Flight:
    """The flight's layers: its track (flown or planned), the planned route, the photos.

    ``photo_popups`` (one per photo, in order) replace the attribute table of the photos'
    popups; ``*_label`` name the layers in the legend.
    """

    track: Sequence[Feature] | None = None
    track_name: str = "Flight track"
    track_label: str = "flight track"
    route: Sequence[Feature] | None = None
    photos: Sequence[Feature] | None = None
    photo_name: str = "Photo positions"
    photo_label: str = "photo position"
    photo_popups: Sequence[str] | None = None


def _select(
    items: Sequence[Feature] | None, geom_types: tuple[str, ...], kind: str, role: str
) -> list[Feature] | None:
    """Features of the wanted geometry types; those whose ``kind`` is ``kind`` when any is.

    The planner's ``mission.geojson`` mixes site, route, flight lines, photo points and
    footprints (``kind`` property), so it can be passed as the track and as the photos.
    """
    if not items:
        return None
    keep = [(g, p) for g, p in items if g is not None and g.geom_type in geom_types]
    if any(p.get("kind") == kind for _, p in keep):
        keep = [(g, p) for g, p in keep if p.get("kind") == kind]
    if not keep:
        raise MapError(
            f"{role}: none of its {len(items)} feature(s) is a {' or '.join(geom_types)}; "
            f"pass a {geom_types[0]} GeoJSON (the planner's mission.geojson works)"
        )
    return keep


def _flight_layers(
    track: Sequence[Feature] | None,
    route: Sequence[Feature] | None,
    photos: Sequence[Feature] | None,
    photo_dir: Path | None,
    files: Path,
    page_dir: Path,
) -> _Flight:
    """Select the flight's features and name its layers for what they are (module doc)."""
    track = _select(track, ("LineString", "MultiLineString"), "route", "flight track")
    route = _select(route, ("LineString", "MultiLineString"), "route", "planned route")
    photos = _select(photos, ("Point", "MultiPoint"), "photo", "photo positions")
    track_name, track_label = "Flight track", "flight track"
    if track and all(p.get("kind") == "route" for _, p in track):
        track_name, track_label = "Flight track (planned route)", "planned route"
    elif track and all("log_format" in p or "start_time" in p for _, p in track):
        track_name, track_label = "Flight track (flown)", "flown track"
    photo_name, photo_label = "Photo positions", "photo position"
    popups: list[str] | None = None
    kind = photo_kind(photos) if photos else "points"
    if photos and kind == "taken":
        photo_name, photo_label = "Photo positions (taken)", "photo taken"
        thumbs = (
            write_thumbnails(photos, photo_dir, files / "photos") if photo_dir is not None else {}
        )
        popups = [
            photo_popup(p, _rel(thumbs[i][0], page_dir), thumbs[i][1])
            if i in thumbs
            else photo_popup(p, None)
            for i, (_g, p) in enumerate(photos)
        ]
    elif photos and kind == "planned":
        photo_name, photo_label = "Photo positions (planned)", "planned photo"
    return _Flight(track, track_name, track_label, route, photos, photo_name, photo_label, popups)


def _add_vectors(
    m: folium.Map,
    leads: Sequence[Lead],
    popups: Mapping[str, str],
    permits: Sequence[Feature] | None,
    flight: _Flight,
    existing: Sequence[Feature] | None = None,
) -> _GeoLayer:
    if existing:
        _GeoLayer(
            "Existing buildings",
            "existing",
            _features(
                existing,
                {"color": _EXISTING_COLOR, "weight": 2, "fill": False},
                "existing",
                "Existing building",
            ),
        ).add_to(m)
    if permits:
        _GeoLayer(
            "Permit footprints",
            "permit",
            _features(
                permits,
                {"color": _PERMIT_COLOR, "weight": 2, "dashArray": "6 4", "fill": False},
                "permit",
                "Permit",
            ),
        ).add_to(m)
    if flight.route:
        _GeoLayer(
            "Planned route",
            "route",
            _features(
                flight.route,
                {"color": _ROUTE_COLOR, "weight": 2, "opacity": 0.9, "dashArray": "4 6"},
                "route",
                "Planned route",
            ),
        ).add_to(m)
    if flight.track:
        _GeoLayer(
            flight.track_name,
            "track",
            _features(
                flight.track,
                {
                    "color": _TRACK_COLOR,
                    "weight": 2,
                    "opacity": 0.9,
                    "radius": 2,
                    "fillOpacity": 0.8,
                },
                "track",
                "Track",
            ),
        ).add_to(m)
    if flight.photos:
        _GeoLayer(
            flight.photo_name,
            "photo",
            _features(
                flight.photos,
                {
                    "color": "#333333",
                    "weight": 1,
                    "fillColor": _PHOTO_COLOR,
                    "fillOpacity": 0.9,
                    "radius": 4,
                },
                "photo",
                "Photo",
                flight.photo_popups,
            ),
        ).add_to(m)
    lead_layer = _GeoLayer("Leads", "lead", _lead_features(leads, popups))
    lead_layer.add_to(m)
    return lead_layer


def _legend_html(
    classes: Sequence[str], permits: bool, flight: _Flight, existing: bool = False
) -> str:
    rows = ["<b>Leads</b>"]
    for cls in classes:
        rows.append(
            f'<div><span class="sw-swatch" style="background:{CLASS_COLORS.get(cls, "#000")}">'
            f"</span>{_e(cls.replace('_', ' '))}</div>"
        )
    if permits:
        rows.append(
            f'<div><span class="sw-swatch" style="background:none;border:2px dashed '
            f'{_PERMIT_COLOR}"></span>permit footprint</div>'
        )
    if existing:
        rows.append(
            f'<div><span class="sw-swatch" style="background:none;border:2px solid '
            f'{_EXISTING_COLOR}"></span>existing building</div>'
        )
    if flight.track:
        rows.append(
            f'<div><span class="sw-swatch" style="height:3px;border:none;background:'
            f'{_TRACK_COLOR}"></span>{_e(flight.track_label)}</div>'
        )
    if flight.route:
        rows.append(
            f'<div><span class="sw-swatch" style="height:0;border:none;border-top:2px dashed '
            f'{_ROUTE_COLOR};background:none"></span>planned route</div>'
        )
    if flight.photos:
        rows.append(
            f'<div><span class="sw-swatch" style="border-radius:6px;background:'
            f'{_PHOTO_COLOR}"></span>{_e(flight.photo_label)}</div>'
        )
    return "".join(rows)
