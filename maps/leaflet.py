"""Leaflet pieces of the review pages: the map, its tile layers, tools, controls and page file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import folium
import folium.plugins
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from folium.template import Template
from shapely.geometry.base import BaseGeometry

from maps.assets import check_offline, write_text_atomic
from maps.markup import _CSS, _e
from maps.tiles import TileSet


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
