"""Offline assets: vendored files and licences present, folium rewired, remote links caught."""

from __future__ import annotations

import re
from pathlib import Path

import folium
import folium.plugins
import pytest

from maps.assets import (
    LIBRARIES,
    VENDOR_DIR,
    check_offline,
    copy_assets,
    localize_assets,
    remote_references,
)
from maps.errors import MapError

_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")


def test_every_library_ships_with_its_licence() -> None:
    for lib in LIBRARIES:
        folder = VENDOR_DIR / lib.folder
        assert (folder / lib.licence_file).is_file(), lib
        assert lib.version in lib.folder
        assert any(folder.glob("*.js")), lib
    assert (VENDOR_DIR / "VENDOR.md").is_file()


def test_css_references_resolve_to_vendored_files() -> None:
    for css in VENDOR_DIR.rglob("*.css"):
        for ref in _URL.findall(css.read_text()):
            if ref.startswith(("#", "data:")):
                continue  # leaflet.css: `behavior: url(#default#VML)` is not a fetch
            assert not re.match(r"^(https?:)?//", ref), f"{css.name} fetches {ref}"
            assert (css.parent / ref).is_file(), f"{css.name}: {ref} is not vendored"


def _every_plugin_map() -> folium.Map:
    m = folium.Map(location=[22.5, 114.0], zoom_start=18, tiles=None)
    a = folium.TileLayer("t/a/{z}/{x}/{y}.png", attr="a", name="a", overlay=True).add_to(m)
    b = folium.TileLayer("t/b/{z}/{x}/{y}.png", attr="b", name="b", overlay=True).add_to(m)
    folium.plugins.SideBySideLayers(a, b).add_to(m)
    folium.plugins.MeasureControl().add_to(m)
    folium.plugins.Fullscreen().add_to(m)
    folium.plugins.MousePosition(num_digits=7).add_to(m)
    folium.LayerControl().add_to(m)
    return m


def test_localized_map_has_no_remote_reference(tmp_path: Path) -> None:
    m = _every_plugin_map()
    assert remote_references(m.get_root().render())  # folium's defaults are CDN links
    m = _every_plugin_map()
    vendor = copy_assets(tmp_path / "files" / "vendor")
    localize_assets(m.get_root(), "files/vendor")
    html = m.get_root().render()
    assert remote_references(html, sorted(vendor.rglob("*.css"))) == []
    srcs = re.findall(r'<script src="([^"]+)"', html) + re.findall(
        r'<link rel="stylesheet" href="([^"]+)"', html
    )
    assert len(srcs) >= 10
    for src in srcs:
        assert (tmp_path / src).is_file(), src
    assert "jquery" not in html.lower() and "bootstrap" not in html.lower()
    # folium's class-level defaults are untouched for other users of folium
    assert folium.Map.default_js[0][1].startswith("https://")


def test_dual_map_is_localized_too(tmp_path: Path) -> None:
    dm = folium.plugins.DualMap(location=[22.5, 114.0], tiles=None)
    localize_assets(dm.get_root(), "v")
    html = dm.get_root().render()
    assert remote_references(html) == []
    assert "v/leaflet.sync-0.2.4/L.Map.Sync.js" in html


def test_unvendored_cdn_plugin_is_refused() -> None:
    m = folium.Map(tiles=None)
    folium.plugins.MiniMap().add_to(m)
    with pytest.raises(MapError, match="CDN"):
        localize_assets(m.get_root(), "v")


@pytest.mark.parametrize(
    "snippet",
    [
        '<script src="https://cdn.example/x.js"></script>',
        '<link rel="stylesheet" href="//cdn.example/x.css">',
        '<img src="http://example.org/a.png">',
        "<style>.a{background:url('https://example.org/f.woff2')}</style>",
        "<style>@import 'https://example.org/x.css';</style>",
        '<div style="background-image:url(http://e.org/i.png)"></div>',
    ],
)
def test_remote_references_are_caught(snippet: str, tmp_path: Path) -> None:
    assert remote_references(f"<html><head></head><body>{snippet}</body></html>")
    page = tmp_path / "p.html"
    page.write_text(snippet)
    with pytest.raises(MapError, match="network"):
        check_offline(page)


def test_plain_links_and_local_files_are_fine() -> None:
    html = '<a href="https://leafletjs.com">Leaflet</a><script src="v/leaflet.js"></script>'
    assert remote_references(html) == []
