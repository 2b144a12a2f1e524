"""The offline review map of a run: swipe map, dual view and the site overview of the leads.

:func:`render_review_map` writes, for ``out_html = review.html``::

    review.html            swipe comparison of the before/after orthophotos (SideBySideLayers),
                           permits, leads coloured by class with popups, flight track (flown
                           or planned), planned route, photos (with thumbnails), measure
                           tool, mouse coordinates (7 decimals), fullscreen, layer control,
                           legend and scale bar; ``review.html#lead=<id>`` zooms to a
                           lead and opens its popup
    review_dual.html       the two epochs side by side in synchronised maps (DualMap)
    review_overview.html   every lead of the run in a table, each linked to its view
    review_files/          vendor/ (Leaflet and plugins), tiles/{before,after}/{z}/{x}/{y}.png,
                           chips/<lead>_{before,after}.png, photos/<n>_<photo>.jpg (thumbnails)

Leads are in the before (reference) frame. When ``after_registered`` (the co-registered after
orthophoto written by ``sitewatch detect``) is given, the after tiles and chips come from it
and are labelled "after (co-registered to before)", so outlines fit both images; each lead's
popup lists the images shown with their SHA-256 and the original each derives from.

A first survey checked against the permit atlas (``sitewatch check``) has one orthophoto:
with ``ortho`` instead of ``before_ortho``/``after_ortho``, the swipe page shows that survey
alone (tiles in ``tiles/survey/``, no swipe), each lead has one chip, the dual view is not
written, and the permits and existing buildings (``existing``) are drawn over it.

The flight is shown as it is named: a track from a flight log (``track.geojson`` of
``sitewatch ingest``) is the "Flight track (flown)", the planner's route given as the track
is the "Flight track (planned route)", and ``route`` draws the planned route as its own
layer beside the flown track. Photos from ``sitewatch ingest`` (``photos.geojson``) are
"Photo positions (taken)": their popups show the time, the position source, the QC flags
and, with ``photo_dir``, a thumbnail written beside the page (:mod:`maps.photos`); the
planner's photo points are "Photo positions (planned)".

Nothing on the pages is fetched from the network (see :mod:`maps.assets`), and all text taken
from input files (permit attributes, reasons, ids) is HTML-escaped before it reaches a page.
:func:`render_lead_view` writes the small map page of one lead used by evidence packages.

The module is long (about 1,100 lines) because the three pages and the lead view are one
map drawn four ways: they share the layers, popups, legend and tools defined here. What is
specific to photos (thumbnails, their popups) is in :mod:`maps.photos`.
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import folium
import folium.plugins
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from folium.template import Template
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from change_detection.leads import LEAD_CLASSES, Lead
from maps.assets import check_offline, copy_assets, localize_assets, write_text_atomic
from maps.chips import render_chip
from maps.derived import REGISTERED_LABEL, derived_record, file_sha256
from maps.errors import MapError
from maps.photos import photo_kind, photo_popup, write_thumbnails
from maps.tiles import TileSet, render_tiles

__all__ = [
    "CLASS_COLORS",
    "Feature",
    "ReviewMap",
    "lead_slug",
    "render_lead_view",
    "render_review_map",
]

log = logging.getLogger(__name__)

#: A vector feature handed to the map: geometry in WGS84 (lon, lat) and its attributes.
Feature = tuple[BaseGeometry, Mapping[str, Any]]

#: Colour of each lead class on the map, the legend and the overview table.
CLASS_COLORS: dict[str, str] = {
    "no_permit": "#e31a1c",
    "outside_footprint": "#ff7f00",
    "over_height": "#6a3d9a",
    "demolished": "#1f78b4",
    "new_structure": "#e7298a",
    "raised": "#b15928",
}
_PERMIT_COLOR = "#1a9850"
_EXISTING_COLOR = "#7f7f7f"
_TRACK_COLOR = "#00b7ff"
_ROUTE_COLOR = "#f032e6"
_PHOTO_COLOR = "#ffd700"

_CSS = """
.sw-popup{font:12px/1.35 system-ui,sans-serif;max-width:500px}
.sw-popup h4{margin:0 0 6px;font-size:14px}
.sw-popup table{border-collapse:collapse}
.sw-popup th{text-align:left;padding:1px 8px 1px 0;vertical-align:top;color:#444;
 font-weight:600;white-space:nowrap}
.sw-popup td{padding:1px 0;vertical-align:top}
.sw-popup ul{margin:0;padding-left:16px}
.sw-popup code{font-size:10px;word-break:break-all}
.sw-chips{display:flex;gap:6px;margin-top:6px}
.sw-chips figure{margin:0;text-align:center;font-size:11px}
.sw-chips img{width:150px;height:178px;border:1px solid #999}
.sw-swatch{display:inline-block;width:11px;height:11px;border:1px solid #333;
 margin-right:4px;vertical-align:-1px}
.sw-legend,.sw-links{background:rgba(255,255,255,.92);padding:6px 9px;border-radius:5px;
 box-shadow:0 1px 5px rgba(0,0,0,.4);font:12px/1.5 system-ui,sans-serif}
.sw-legend b{display:block;margin-bottom:2px}
.sw-links a{margin-right:8px}
.sw-popup-open .leaflet-sbs{visibility:hidden}
.sw-thumb{display:block;max-width:320px;max-height:240px;border:1px solid #999;margin:0 0 6px}
"""

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def lead_slug(lead_id: str) -> str:
    """File-name-safe form of a lead id (letters, digits, ``.``, ``_``, ``-``)."""
    slug = _SLUG.sub("_", lead_id).strip("._") or "lead"
    return slug[:80]


@dataclass(frozen=True)
class ReviewMap:
    """Paths written by :func:`render_review_map`.

    Attributes
    ----------
    html : Path
        The swipe map page.
    dual_html : Path or None
        The synchronised dual view page (None for a single survey).
    overview_html : Path
        The table of every lead, linked to ``html#lead=<id>``.
    files_dir : Path
        Folder beside the pages with vendor assets, tiles and chips.
    tiles : dict of str to TileSet
        ``"before"`` and ``"after"`` tile pyramids (``"survey"`` for a single survey).
    chips : dict of str to tuple of Path
        Before/after chip PNGs of each lead (the survey chip alone for a single survey), by
        lead id.
    """

    html: Path
    dual_html: Path | None
    overview_html: Path
    files_dir: Path
    tiles: dict[str, TileSet]
    chips: dict[str, tuple[Path, ...]] = field(default_factory=dict)

    @property
    def pages(self) -> list[Path]:
        """The pages written: swipe map, dual view (two surveys only) and lead table."""
        return [p for p in (self.html, self.dual_html, self.overview_html) if p is not None]

    @property
    def paths(self) -> list[Path]:
        """The pages and every file under ``files_dir``."""
        files = sorted(p for p in self.files_dir.rglob("*") if p.is_file())
        return [*self.pages, *files]


def write_page(figure: Figure, out_html: Path, asset_dir: Path) -> Path:
    """Render a folium figure to ``out_html`` atomically and check that it is offline."""
    text = figure.render()
    write_text_atomic(out_html, text)
    check_offline(out_html, asset_dir)
    return out_html


class _GeoLayer(Layer):
    """A GeoJSON overlay whose style, popup and tooltip come precomputed in each feature.

    Popups and tooltips are HTML built (and escaped) in Python; the data reach the page
    through Jinja's ``tojson`` (``<``, ``>``, ``&``, ``'`` escaped), so no input text can
    close the script or inject markup.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJSON({{ this.data|tojson }}, {
            style: function (f) { return f.properties._style; },
            pointToLayer: function (f, latlng) {
                return L.circleMarker(latlng, f.properties._style);
            },
            onEachFeature: function (f, layer) {
                var p = f.properties;
                if (p._popup) { layer.bindPopup(p._popup, {maxWidth: 520, minWidth: 240}); }
                if (p._tooltip) { layer.bindTooltip(p._tooltip, {sticky: true}); }
                if (p._id !== undefined) {
                    layer.on("add", function () {
                        if (layer._path) {
                            layer._path.setAttribute("data-{{ this.kind }}-id", p._id);
                        }
                    });
                }
            }
        });
        {% endmacro %}
        """
    )

    def __init__(self, name: str, kind: str, data: dict[str, Any], show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "GeoLayer"
        self.kind = kind
        self.data = data


class _LeadFocus(MacroElement):
    """``#lead=<id>`` in the URL zooms to that lead and opens its popup; exposes the index."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var layer = {{ this.layer.get_name() }};
            var byId = {};
            layer.eachLayer(function (l) { byId[l.feature.properties._id] = l; });
            window.sitewatch = {map: map, leadLayer: layer, leads: byId};
            function focusLead() {
                var m = /[#&]lead=([^&]+)/.exec(window.location.hash);
                if (!m) { return; }
                var l = byId[decodeURIComponent(m[1])];
                if (!l) { return; }
                map.fitBounds(l.getBounds(), {
                    maxZoom: {{ this.max_zoom }}, padding: [60, 60], animate: false
                });
                l.openPopup();
            }
            // the swipe handle sits above the map panes: hide it while a popup is read
            map.on("popupopen", function () {
                map.getContainer().classList.add("sw-popup-open");
            });
            map.on("popupclose", function () {
                map.getContainer().classList.remove("sw-popup-open");
            });
            window.addEventListener("hashchange", focusLead);
            focusLead();
        })();
        {% endmacro %}
        """
    )

    def __init__(self, layer: _GeoLayer, max_zoom: int) -> None:
        super().__init__()
        self._name = "LeadFocus"
        self.layer = layer
        self.max_zoom = int(max_zoom)


class _HtmlControl(MacroElement):
    """A Leaflet control holding fixed HTML (built and escaped in Python)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var c = L.control({position: {{ this.position|tojson }}});
            c.onAdd = function () {
                var div = L.DomUtil.create("div", {{ this.css_class|tojson }});
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                return div;
            };
            c.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, position: str, css_class: str) -> None:
        super().__init__()
        self._name = "HtmlControl"
        self.html = html_text
        self.position = position
        self.css_class = css_class


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}".strip()


def _rel(path: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(path, page_dir)).as_posix()


def _imagery_sources(
    before_ortho: Path | None, after_ortho: Path, after_registered: Path | None
) -> str:
    """HTML rows naming every image shown on the page, with its SHA-256 and lineage
    (``before_ortho`` None: ``after_ortho`` is the single survey)."""
    if before_ortho is None:
        rows = [("survey", after_ortho.name, file_sha256(after_ortho), "original")]
        return "".join(
            f"<tr><th>{_e(label)}</th><td>{_e(name)}<br><code>{_e(digest)}</code><br>"
            f"{_e(note)}</td></tr>"
            for label, name, digest, note in rows
        )
    rows = [("before", before_ortho.name, file_sha256(before_ortho), "original")]
    if after_registered is None:
        rows.append(("after", after_ortho.name, file_sha256(after_ortho), "original"))
    else:
        rec = derived_record(after_registered, "after_ortho")
        src = rec["derived_from"]
        lineage = (
            f"derived from {src['file'] or after_ortho.name} "
            f"(SHA-256 {src['sha256'] or 'not recorded'}) by the "
            f"{rec['coregistration']['model'] or '?'} co-registration model"
        )
        rows.append((REGISTERED_LABEL, rec["file"], rec["sha256"], lineage))
    return "".join(
        f"<tr><th>{_e(label)}</th><td>{_e(name)}<br><code>{_e(digest)}</code><br>{_e(note)}"
        "</td></tr>"
        for label, name, digest, note in rows
    )


def _lead_popup(
    lead: Lead,
    chips: tuple[Path, ...] | None,
    page_dir: Path,
    dates: tuple[str | None, str | None],
    overview_href: str | None,
    imagery: str = "",
    after_label: str = "after",
) -> str:
    """The popup of a lead; ``chips`` are (before, after), or (survey,) for a single survey."""
    before_date = lead.before_date or dates[0]
    after_date = lead.after_date or dates[1]
    color = CLASS_COLORS.get(lead.lead_class, "#000")
    reasons = "".join(f"<li>{_e(r)}</li>" for r in lead.reasons) or "<li>—</li>"
    permits = ", ".join(_e(p) for p in lead.permit_ids) or "none"
    hashes = "".join(
        f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>"
        for k, v in sorted(lead.input_hashes.items())
    )
    rows = [
        (
            "class",
            f'<span class="sw-swatch" style="background:{color}"></span>'
            f"{_e(lead.lead_class)} ({_e(lead.kind)})",
        ),
        ("reasons", f"<ul>{reasons}</ul>"),
        ("area", _e(_fmt(lead.area_m2, "m²", 1))),
        ("height gain", _e(_fmt(lead.height_gain_m, "m"))),
        ("floors added", _e("—" if lead.floors_added is None else lead.floors_added)),
        ("permits", permits),
        ("score", _e(f"{lead.score:.2f}")),
        (
            ("survey", f"{_e(after_date or '?')} (checked against the permit atlas)")
            if chips is not None and len(chips) == 1
            else ("surveys", f"{_e(before_date or '?')} → {_e(after_date or '?')}")
        ),
    ]
    if lead.rgb_only:
        rows.append(("evidence", "RGB only (no DSM): heights not measured"))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    parts = [f'<div class="sw-popup"><h4>Lead {_e(lead.lead_id)}</h4><table>{body}</table>']
    if hashes:
        parts.append(
            f"<details><summary>input hashes (SHA-256)</summary><table>{hashes}</table></details>"
        )
    if imagery:
        parts.append(
            f"<details><summary>images shown (SHA-256)</summary><table>{imagery}</table></details>"
        )
    if chips is not None:
        figs = []
        captions = (("before", before_date), (after_label, after_date))[-len(chips) :]
        for (label, date), chip in zip(captions, chips, strict=True):
            href = _e(_rel(chip, page_dir))
            figs.append(
                f'<figure><a href="{href}" target="_blank"><img src="{href}" '
                f'alt="{_e(label)} chip"></a><figcaption>{_e(label)} {_e(date or "")}'
                "</figcaption>"
                "</figure>"
            )
        parts.append(f'<div class="sw-chips">{"".join(figs)}</div>')
    if overview_href:
        parts.append(f'<p><a href="{_e(overview_href)}">all leads</a></p>')
    parts.append("</div>")
    return "".join(parts)


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


def _base_map(title: str, bounds: list[list[float]], max_zoom: int) -> folium.Map:
    center = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    m = folium.Map(
        location=center,
        tiles=None,
        zoom_start=max(max_zoom - 3, 1),
        max_zoom=max_zoom + 3,
        control_scale=True,
    )
    _add_head(m.get_root(), title)
    return m


def _add_head(root: Element, title: str) -> None:
    assert isinstance(root, Figure)
    root.header.add_child(Element(f"<title>{_e(title)}</title>"), name="sw_title")
    root.header.add_child(Element(f"<style>{_CSS}</style>"), name="sw_css")


def _tile_layer(ts: TileSet, page_dir: Path, label: str, date: str | None) -> folium.TileLayer:
    name = f"{label} ({date})" if date else label
    return folium.TileLayer(
        tiles=ts.url_template(page_dir),
        attr=_e(f"{label} orthophoto{f', {date}' if date else ''}"),
        name=_e(name),
        overlay=True,
        control=True,
        show=True,
        min_zoom=0,
        max_zoom=ts.max_zoom + 3,
        max_native_zoom=ts.max_zoom,
        min_native_zoom=ts.min_zoom,
        bounds=ts.leaflet_bounds,
        no_wrap=True,
    )


def _add_tools(m: folium.Map) -> None:
    folium.plugins.Fullscreen(position="topleft").add_to(m)
    folium.plugins.MeasureControl(
        position="topleft",
        primary_length_unit="meters",
        secondary_length_unit="kilometers",
        primary_area_unit="sqmeters",
        secondary_area_unit="hectares",
    ).add_to(m)
    folium.plugins.MousePosition(
        position="bottomleft",
        separator=", ",
        prefix="lat, lon:",
        num_digits=7,
        lat_formatter="function (n) { return n.toFixed(7); }",
        lng_formatter="function (n) { return n.toFixed(7); }",
    ).add_to(m)


def _union_bounds(*bounds: list[list[float]]) -> list[list[float]]:
    return [
        [min(b[0][0] for b in bounds), min(b[0][1] for b in bounds)],
        [max(b[1][0] for b in bounds), max(b[1][1] for b in bounds)],
    ]


def _geom_bounds(geoms: Sequence[BaseGeometry]) -> list[list[float]] | None:
    gs = [g for g in geoms if g is not None and not g.is_empty]
    if not gs:
        return None
    w = min(g.bounds[0] for g in gs)
    s = min(g.bounds[1] for g in gs)
    e = max(g.bounds[2] for g in gs)
    n = max(g.bounds[3] for g in gs)
    return [[s, w], [n, e]]


def _dates(
    leads: Sequence[Lead], before_date: str | None, after_date: str | None
) -> tuple[str | None, str | None]:
    b = before_date or next((lead.before_date for lead in leads if lead.before_date), None)
    a = after_date or next((lead.after_date for lead in leads if lead.after_date), None)
    return b, a


def _check_unique(leads: Sequence[Lead]) -> None:
    seen: dict[str, str] = {}
    for lead in leads:
        if lead.lead_id in seen:
            raise MapError(f"lead id {lead.lead_id!r} appears twice; lead ids must be unique")
        slug = lead_slug(lead.lead_id)
        if slug in seen.values():
            raise MapError(
                f"lead ids {lead.lead_id!r} and another map to the same file name {slug!r}; "
                "rename one of them"
            )
        seen[lead.lead_id] = slug


def render_review_map(
    leads: Sequence[Lead],
    *,
    before_ortho: Path | None = None,
    after_ortho: Path | None = None,
    out_html: Path,
    permits: Sequence[Feature] | None = None,
    track: Sequence[Feature] | None = None,
    photos: Sequence[Feature] | None = None,
    before_date: str | None = None,
    after_date: str | None = None,
    title: str = "sitewatch review",
    after_registered: Path | None = None,
    ortho: Path | None = None,
    existing: Sequence[Feature] | None = None,
    route: Sequence[Feature] | None = None,
    photo_dir: Path | None = None,
) -> ReviewMap:
    """Write the offline review pages of a run (see the module docstring for the layout).

    Parameters
    ----------
    leads : sequence of Lead
        Every lead of the run (may be empty: the pages still show the imagery).
    before_ortho, after_ortho : Path
        Orthophotos of the two epochs (8-bit RGB(A) GeoTIFF, any CRS).
    out_html : Path
        The swipe map page; the other pages and ``<stem>_files/`` are written beside it.
    permits, track, photos : sequence of (geometry, properties), optional
        Permit footprints, flight track lines and photo positions, geometries in WGS84. The
        track is named for what it is: the flown track of a log (``track.geojson`` of
        ``sitewatch ingest``) or the planner's route (``mission.geojson``); photos from
        ``photos.geojson`` of ``sitewatch ingest`` get popups with their time, position
        source and QC flags.
    before_date, after_date : str, optional
        Survey dates; default the dates carried by the leads.
    title : str
        Page title.
    after_registered : Path, optional
        The after orthophoto co-registered onto the before grid (``after_registered.tif`` of
        ``sitewatch detect``). When given, the after tiles and chips are drawn from it and
        labelled "after (co-registered to before)", so the lead outlines (in the before frame)
        fit both images; ``after_ortho`` stays the original the popups trace it back to.
    ortho : Path, optional
        The one orthophoto of a first survey checked against the permit atlas (``sitewatch
        check``), instead of ``before_ortho`` and ``after_ortho``: no swipe, no dual view.
    existing : sequence of (geometry, properties), optional
        Legally existing buildings of the atlas (WGS84), drawn as their own layer.
    route : sequence of (geometry, properties), optional
        The planned route (the planner's ``mission.geojson`` works: its ``route`` features),
        drawn dashed as "Planned route" beside the flown track.
    photo_dir : Path, optional
        Folder of the photo files named in ``photos`` (their ``name``): a thumbnail of each
        photo found there is written to ``<stem>_files/photos/`` and shown in its popup.

    Returns
    -------
    ReviewMap

    Raises
    ------
    MapError
        Neither ``ortho`` nor both ``before_ortho`` and ``after_ortho`` are given, or both.
    """
    out_html = Path(out_html)
    page_dir = out_html.parent
    page_dir.mkdir(parents=True, exist_ok=True)
    _check_unique(leads)
    single = _single_survey(before_ortho, after_ortho, ortho, after_registered)
    files = page_dir / f"{out_html.stem}_files"
    flight = _flight_layers(track, route, photos, photo_dir, files, page_dir)
    vendor = copy_assets(files / "vendor")
    vendor_url = _rel(vendor, page_dir)
    dates = _dates(leads, before_date, after_date)
    if single:
        assert ortho is not None
        after_shown, after_title, after_label = Path(ortho), "Survey", "survey"
        imagery = _imagery_sources(None, Path(ortho), None)
        tiles = {"survey": render_tiles(ortho, files / "tiles" / "survey")}
    else:
        assert before_ortho is not None and after_ortho is not None
        after_shown, after_title, after_label = _after_view(after_ortho, after_registered)
        imagery = _imagery_sources(Path(before_ortho), Path(after_ortho), after_registered)
        tiles = {
            "before": render_tiles(before_ortho, files / "tiles" / "before"),
            "after": render_tiles(after_shown, files / "tiles" / "after"),
        }
    chips: dict[str, tuple[Path, ...]] = {}
    for lead in leads:
        slug = lead_slug(lead.lead_id)
        shown: list[Path] = []
        if before_ortho is not None:
            shown.append(
                render_chip(
                    before_ortho,
                    lead.geometry,
                    files / "chips" / f"{slug}_before.png",
                    title="Before",
                    date=lead.before_date or dates[0],
                    size_in=3.2,
                    dpi=100,
                )
            )
        shown.append(
            render_chip(
                after_shown,
                lead.geometry,
                files / "chips" / f"{slug}_{'survey' if single else 'after'}.png",
                title=after_title,
                date=lead.after_date or dates[1],
                size_in=3.2,
                dpi=100,
            )
        )
        chips[lead.lead_id] = tuple(shown)
    overview = page_dir / f"{out_html.stem}_overview.html"
    dual = None if single else page_dir / f"{out_html.stem}_dual.html"
    popups = {
        lead.lead_id: _lead_popup(
            lead,
            chips[lead.lead_id],
            page_dir,
            dates,
            f"{overview.name}#lead-{urllib.parse.quote(lead.lead_id, safe='')}",
            imagery,
            after_label,
        )
        for lead in leads
    }
    zmax = max(ts.max_zoom for ts in tiles.values())
    bounds = _union_bounds(*(ts.leaflet_bounds for ts in tiles.values()))
    links = f'<a href="{_e(overview.name)}">lead table ({len(leads)})</a>'
    if dual is not None:
        links += f'<a href="{_e(dual.name)}">dual view</a>'

    # Swipe page (a single survey: the survey alone)
    m = _base_map(title, bounds, zmax)
    if single:
        _tile_layer(tiles["survey"], page_dir, "Survey", dates[1]).add_to(m)
        heading = f"<b>{_e(title)}</b> — survey {_e(dates[1] or '')} against the permit atlas"
    else:
        before_layer = _tile_layer(tiles["before"], page_dir, "Before", dates[0]).add_to(m)
        after_layer = _tile_layer(tiles["after"], page_dir, after_title, dates[1]).add_to(m)
        folium.plugins.SideBySideLayers(before_layer, after_layer).add_to(m)
        heading = f"<b>{_e(title)}</b> — swipe: before | {_e(after_label)}"
    lead_layer = _add_vectors(m, leads, popups, permits, flight, existing)
    _add_tools(m)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    classes = [c for c in LEAD_CLASSES if any(lead.lead_class == c for lead in leads)]
    _HtmlControl(
        _legend_html(classes, bool(permits), flight, bool(existing)),
        "bottomright",
        "sw-legend",
    ).add_to(m)
    _HtmlControl(f"{heading} &nbsp; {links}", "topright", "sw-links").add_to(m)
    m.fit_bounds(bounds)
    _LeadFocus(lead_layer, zmax).add_to(m)
    localize_assets(m.get_root(), vendor_url)
    write_page(m.get_root(), out_html, files / "vendor")  # type: ignore[arg-type]

    # Dual page
    if dual is not None:
        dm = folium.plugins.DualMap(
            location=[(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2],
            layout="horizontal",
            tiles=None,
            zoom_start=max(zmax - 3, 1),
            max_zoom=zmax + 3,
            control_scale=True,
        )
        _add_head(dm.get_root(), f"{title} — dual view")
        _tile_layer(tiles["before"], page_dir, "Before", dates[0]).add_to(dm.m1)
        _tile_layer(tiles["after"], page_dir, after_title, dates[1]).add_to(dm.m2)
        for sub, label in ((dm.m1, "before"), (dm.m2, after_label)):
            _add_vectors(sub, leads, popups, permits, flight, existing)
            folium.LayerControl(position="topright", collapsed=True).add_to(sub)
            folium.plugins.MousePosition(
                position="bottomleft",
                separator=", ",
                prefix=f"{label}: lat, lon:",
                num_digits=7,
                lat_formatter="function (n) { return n.toFixed(7); }",
                lng_formatter="function (n) { return n.toFixed(7); }",
            ).add_to(sub)
        _HtmlControl(
            f"<b>{_e(dates[0] or 'before')}</b> (left) | <b>{_e(dates[1] or 'after')}</b> "
            f"({_e(after_label)}, right)"
            f' &nbsp; <a href="{_e(out_html.name)}">swipe map</a>'
            f'<a href="{_e(overview.name)}">lead table</a>',
            "topright",
            "sw-links",
        ).add_to(dm.m2)
        dm.fit_bounds(bounds)
        localize_assets(dm.get_root(), vendor_url)
        write_page(dm.get_root(), dual, files / "vendor")  # type: ignore[arg-type]

    # Overview page
    write_text_atomic(
        overview,
        _overview_html(
            leads,
            chips,
            page_dir,
            out_html.name,
            None if dual is None else dual.name,
            title,
            dates,
            after_label,
        ),
    )
    check_offline(overview)
    log.info("review map: %s (%d leads)", out_html, len(leads))
    return ReviewMap(out_html, dual, overview, files, tiles, chips)


def _single_survey(
    before_ortho: Path | None,
    after_ortho: Path | None,
    ortho: Path | None,
    after_registered: Path | None,
) -> bool:
    """True for one survey (``ortho``), False for two; MapError for any other combination."""
    if ortho is not None:
        if before_ortho is not None or after_ortho is not None or after_registered is not None:
            raise MapError(
                "give either the orthophoto of a single survey (ortho, --ortho) or the before "
                "and after orthophotos (--before-ortho, --after-ortho), not both"
            )
        return True
    if before_ortho is None or after_ortho is None:
        given = "before" if before_ortho is not None else "after" if after_ortho is not None else ""
        raise MapError(
            (f"only the {given} orthophoto was given; " if given else "no orthophoto was given; ")
            + "pass --before-ortho and --after-ortho for two surveys, or --ortho for a single "
            "survey checked against the permit atlas (sitewatch check)"
        )
    return False


def _after_view(after_ortho: Path, after_registered: Path | None) -> tuple[Path, str, str]:
    """(raster to show as the after epoch, its title, its lower-case label)."""
    if after_registered is None:
        return Path(after_ortho), "After", "after"
    reg = Path(after_registered)
    if not reg.is_file():
        raise MapError(f"{reg}: co-registered after orthophoto not found; check the path")
    return reg, REGISTERED_LABEL[0].upper() + REGISTERED_LABEL[1:], REGISTERED_LABEL


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


def _overview_html(
    leads: Sequence[Lead],
    chips: Mapping[str, tuple[Path, ...]],
    page_dir: Path,
    map_name: str,
    dual_name: str | None,
    title: str,
    dates: tuple[str | None, str | None],
    after_label: str = "after",
) -> str:
    counts: dict[str, int] = {}
    for lead in leads:
        counts[lead.lead_class] = counts.get(lead.lead_class, 0) + 1
    summary = ", ".join(f"{n} {_e(c.replace('_', ' '))}" for c, n in sorted(counts.items()))
    rows = []
    for lead in sorted(leads, key=lambda x: (-x.score, x.lead_id)):
        qid = urllib.parse.quote(lead.lead_id, safe="")
        href = _e(f"{map_name}#lead={qid}")
        color = CLASS_COLORS.get(lead.lead_class, "#000")
        thumbs = ""
        if lead.lead_id in chips:
            shown = chips[lead.lead_id]
            labels = ("before", after_label)[-len(shown) :]
            thumbs = "".join(
                f'<a href="{_e(_rel(p, page_dir))}"><img src="{_e(_rel(p, page_dir))}" '
                f'alt="{_e(lab)}" width="90"></a>'
                for p, lab in zip(shown, labels, strict=True)
            )
        rows.append(
            f'<tr id="lead-{_e(qid)}"><td><a class="lead-link" href="{href}">'
            f"{_e(lead.lead_id)}</a></td>"
            f'<td><span class="sw-swatch" style="background:{color}"></span>'
            f"{_e(lead.lead_class)}</td>"
            f"<td>{_e(lead.kind)}</td>"
            f'<td class="num">{lead.area_m2:.1f}</td>'
            f'<td class="num">{_e(_fmt(lead.height_gain_m, ""))}</td>'
            f'<td class="num">{_e("—" if lead.floors_added is None else lead.floors_added)}</td>'
            f"<td>{_e(', '.join(lead.permit_ids) or '—')}</td>"
            f'<td class="num">{lead.score:.2f}</td>'
            f"<td>{'<br>'.join(_e(r) for r in lead.reasons)}</td>"
            f"<td>{thumbs}</td></tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="10">No leads in this run.</td></tr>'
    if dual_name is None:  # a single survey checked against the permit atlas
        surveys = f"Survey {_e(dates[1] or '?')}, checked against the permit atlas."
        pages = f'Open the <a href="{_e(map_name)}">map</a>;'
        chip_head = _e(after_label)
    else:
        surveys = f"Surveys: before {_e(dates[0] or '?')}, after {_e(dates[1] or '?')}."
        pages = (
            f'Open the <a href="{_e(map_name)}">swipe map</a> or the '
            f'<a href="{_e(dual_name)}">dual view</a>;'
        )
        chip_head = f"before / {_e(after_label)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} — leads</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222}}
table{{border-collapse:collapse;width:100%}}
th,td{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f2f2f2;position:sticky;top:0}}
td.num{{text-align:right;white-space:nowrap}}
tr:target{{background:#fff4c2}}
img{{border:1px solid #999;margin-right:3px}}
.sw-swatch{{display:inline-block;width:11px;height:11px;border:1px solid #333;margin-right:4px}}
</style></head><body>
<h1>{_e(title)}</h1>
<p>{surveys}
{len(leads)} lead(s){": " + summary if summary else ""}.
{pages}
each lead id opens the map zoomed to it with its popup.</p>
<table id="leads"><thead><tr><th>lead</th><th>class</th><th>kind</th><th>area (m²)</th>
<th>height gain (m)</th><th>floors added</th><th>permits</th><th>score</th><th>reasons</th>
<th>{chip_head}</th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""


def render_lead_view(
    lead: Lead,
    *,
    before_ortho: Path | None = None,
    after_ortho: Path | None = None,
    out_html: Path,
    permits: Sequence[Feature] | None = None,
    chips: tuple[Path, ...] | None = None,
    before_date: str | None = None,
    after_date: str | None = None,
    margin_m: float = 40.0,
    after_registered: Path | None = None,
    ortho: Path | None = None,
    existing: Sequence[Feature] | None = None,
) -> list[Path]:
    """Write a small offline swipe map centred on one lead; return every file written.

    Tiles are rendered only around the lead (its bounding box plus ``margin_m``), so the page
    stays small enough to travel in an evidence package. Its files go to
    ``<stem>_files/`` beside ``out_html``. With ``after_registered`` (see
    :func:`render_review_map`) the after tiles come from it, labelled as co-registered. With
    ``ortho`` (a single survey checked against the permit atlas) the survey is shown alone,
    with the permits and existing buildings (``existing``) near the lead.
    """
    out_html = Path(out_html)
    page_dir = out_html.parent
    single = _single_survey(before_ortho, after_ortho, ortho, after_registered)
    files = page_dir / f"{out_html.stem}_files"
    vendor = copy_assets(files / "vendor")
    w, s, e, n = lead.geometry.bounds
    lat = (s + n) / 2
    dlat = margin_m / 111_320.0
    dlon = margin_m / (111_320.0 * max(math.cos(math.radians(lat)), 1e-6))
    area = (w - dlon, s - dlat, e + dlon, n + dlat)
    dates = _dates([lead], before_date, after_date)
    if single:
        assert ortho is not None
        after_shown, after_title, after_label = Path(ortho), "Survey", "survey"
        imagery = _imagery_sources(None, Path(ortho), None)
        tiles = {"survey": render_tiles(ortho, files / "tiles" / "survey", area=area, max_levels=4)}
    else:
        assert before_ortho is not None and after_ortho is not None
        after_shown, after_title, after_label = _after_view(after_ortho, after_registered)
        imagery = _imagery_sources(Path(before_ortho), Path(after_ortho), after_registered)
        tiles = {
            "before": render_tiles(
                before_ortho, files / "tiles" / "before", area=area, max_levels=4
            ),
            "after": render_tiles(after_shown, files / "tiles" / "after", area=area, max_levels=4),
        }
    zmax = max(t.max_zoom for t in tiles.values())
    lead_bounds = _geom_bounds([lead.geometry])
    assert lead_bounds is not None
    m = _base_map(f"Lead {lead.lead_id}", lead_bounds, zmax)
    if single:
        _tile_layer(tiles["survey"], page_dir, after_title, dates[1]).add_to(m)
    else:
        bl = _tile_layer(tiles["before"], page_dir, "Before", dates[0]).add_to(m)
        al = _tile_layer(tiles["after"], page_dir, after_title, dates[1]).add_to(m)
        folium.plugins.SideBySideLayers(bl, al).add_to(m)
    popup = _lead_popup(lead, chips, page_dir, dates, None, imagery, after_label)
    zone = lead.geometry.buffer(margin_m / 111_320.0)
    near = None
    if permits:
        near = [(g, p) for g, p in permits if g is not None and g.intersects(zone)]
    near_existing = None
    if existing:
        near_existing = [(g, p) for g, p in existing if g is not None and g.intersects(zone)]
    layer = _add_vectors(m, [lead], {lead.lead_id: popup}, near, _Flight(), near_existing)
    _add_tools(m)
    folium.LayerControl(position="topright", collapsed=False).add_to(m)
    _HtmlControl(
        _legend_html([lead.lead_class], bool(near), _Flight(), bool(near_existing)),
        "bottomright",
        "sw-legend",
    ).add_to(m)
    m.fit_bounds(lead_bounds, padding=(60, 60), max_zoom=zmax)
    _LeadFocus(layer, zmax).add_to(m)
    localize_assets(m.get_root(), _rel(vendor, page_dir))
    write_page(m.get_root(), out_html, vendor)  # type: ignore[arg-type]
    return [out_html, *sorted(p for p in files.rglob("*") if p.is_file())]
