"""The review pages: files, offline links, escaping, the lead table and its links."""

from __future__ import annotations

import html
import re
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import folium
from PIL import Image

from maps.assets import remote_references
from maps.review import CLASS_COLORS, ReviewMap, lead_slug, render_review_map
from tests.maps.scenes import Scene


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.refs.append(a["src"] or "")
        if tag == "link" and a.get("href"):
            self.refs.append(a["href"] or "")
        if tag == "img" and a.get("src"):
            self.refs.append(a["src"] or "")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")


def _parse(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_pages_and_files_are_written(review_map: ReviewMap, scene: Scene) -> None:
    rm = review_map
    for page in (rm.html, rm.dual_html, rm.overview_html):
        assert page.is_file() and page.parent == rm.html.parent
    assert rm.files_dir == rm.html.parent / "review_files"
    assert set(rm.tiles) == {"before", "after"}
    for lead in scene.leads:
        b, a = rm.chips[lead.lead_id]
        assert b.name == f"{lead_slug(lead.lead_id)}_before.png"
        for chip in (b, a):
            with Image.open(chip) as im:
                assert im.format == "PNG" and im.width >= 300
    assert all(p.is_file() for p in rm.paths)


def test_no_page_fetches_anything_remote(review_map: ReviewMap) -> None:
    rm = review_map
    css = sorted(rm.files_dir.rglob("*.css"))
    assert css
    for page in (rm.html, rm.dual_html, rm.overview_html):
        text = page.read_text(encoding="utf-8")
        assert remote_references(text, css) == []
        for ref in _parse(page).refs:
            assert not re.match(r"^(https?:)?//", ref), ref
            assert (page.parent / urllib.parse.unquote(ref)).is_file(), f"{page.name}: {ref}"
    main = rm.html.read_text(encoding="utf-8")
    for needle in (
        "L.control.sideBySide",
        "L.Control.Measure",
        "L.control.fullscreen",
        "L.Control.MousePosition",
        "L.control.layers",
        "L.control.scale",
        '"numDigits": 7',
        "review_files/tiles/before/{z}/{x}/{y}.png",
        "review_files/tiles/after/{z}/{x}/{y}.png",
    ):
        assert needle in main, needle
    dual = rm.dual_html.read_text(encoding="utf-8")
    assert ".sync(" in dual and "L.Map.Sync.js" in dual


def test_text_from_files_is_escaped(review_map: ReviewMap) -> None:
    for page in (review_map.html, review_map.dual_html, review_map.overview_html):
        text = page.read_text(encoding="utf-8")
        assert "<script>alert(1)" not in text
        assert "<img src='x'" not in text and "<b>bold</b>" not in text
        assert "<review>" not in text  # the title too
    main = review_map.html.read_text(encoding="utf-8")
    # the payload is present, escaped twice over: HTML entities inside JSON-escaped JS strings
    assert "\\u0026lt;script\\u0026gt;alert(1)\\u0026lt;/script\\u0026gt;" in main
    overview = review_map.overview_html.read_text(encoding="utf-8")
    assert html.escape("<script>alert(1)</script>") in overview


def test_overview_lists_every_lead_with_a_link(review_map: ReviewMap, scene: Scene) -> None:
    p = _parse(review_map.overview_html)
    for lead in scene.leads:
        assert f"review.html#lead={urllib.parse.quote(lead.lead_id, safe='')}" in p.links
    text = review_map.overview_html.read_text(encoding="utf-8")
    for cls in {lead.lead_class for lead in scene.leads}:
        assert CLASS_COLORS[cls] in text
    assert "review_dual.html" in p.links and "review.html" in p.links


def test_no_leads_still_shows_the_imagery(scene: Scene, tmp_path: Path) -> None:
    rm = render_review_map(
        [],
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        out_html=tmp_path / "empty.html",
    )
    assert rm.tiles["after"].tile_count > 0
    assert "No leads in this run" in rm.overview_html.read_text(encoding="utf-8")
    assert rm.files_dir.name == "empty_files"
    assert folium.Map.default_js[0][1].startswith("https://")  # folium itself untouched
