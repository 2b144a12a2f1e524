"""The review pages: files, offline links, escaping, the lead table and its links."""

from __future__ import annotations

import html
import re
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import folium
import pytest
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


def test_mission_geojson_works_as_track_and_photos(scene: Scene, tmp_path: Path) -> None:
    from shapely.geometry import LineString, Point, box

    import maps.review as review
    from maps.errors import MapError

    mission = [
        (box(114.0, 22.0, 114.001, 22.001), {"kind": "site"}),
        (Point(114.0, 22.0), {"kind": "home"}),
        (LineString([(114.0, 22.0), (114.001, 22.0)]), {"kind": "route", "sortie": 1}),
        (LineString([(114.0, 22.0005), (114.001, 22.0005)]), {"kind": "flight_line"}),
        (Point(114.0002, 22.0), {"kind": "photo", "index": 0}),
        (Point(114.0004, 22.0), {"kind": "photo", "index": 1}),
    ]
    track = review._select(mission, ("LineString", "MultiLineString"), "route", "flight track")
    photos = review._select(mission, ("Point", "MultiPoint"), "photo", "photo positions")
    assert track is not None and [p["kind"] for _, p in track] == ["route"]
    assert photos is not None and [p["index"] for _, p in photos] == [0, 1]
    with pytest.raises(MapError, match="flight track: none of its 1 feature"):
        render_review_map(
            [],
            before_ortho=scene.before_ortho,
            after_ortho=scene.after_ortho,
            out_html=tmp_path / "r.html",
            track=[mission[0]],
        )
    assert not (tmp_path / "r.html").exists()


# --- a single survey checked against the permit atlas (sitewatch check) ------------------------


def test_a_single_survey_is_shown_alone_with_the_atlas(scene: Scene, tmp_path: Path) -> None:
    existing = [(g, {"building_id": f"B-{i}", "height_m": 6.0}) for i, (g, _) in
                enumerate(scene.permits)]  # fmt: skip
    rm = render_review_map(
        scene.leads,
        ortho=scene.after_ortho,
        out_html=tmp_path / "review.html",
        permits=scene.permits,
        existing=existing,
        after_date="2025-10-15",
    )
    assert rm.dual_html is None and rm.pages == [rm.html, rm.overview_html]
    assert set(rm.tiles) == {"survey"}
    assert not (tmp_path / "review_dual.html").exists()
    page = rm.html.read_text()
    assert "Existing buildings" in page and "existing building" in page
    assert "SideBySide" not in page and "against the permit atlas" in page
    assert remote_references(page) == []
    for lead in scene.leads:
        (chip,) = rm.chips[lead.lead_id]
        assert chip.name == f"{lead_slug(lead.lead_id)}_survey.png" and chip.is_file()
    table = rm.overview_html.read_text()
    assert "Survey 2025-10-15, checked against the permit atlas" in table
    assert "dual view" not in table


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ortho": "after", "before_ortho": "before"},
        {"before_ortho": "before"},
        {},
    ],
)
def test_one_survey_or_two_never_both(scene: Scene, tmp_path: Path, kwargs: dict[str, str]) -> None:
    from maps.errors import MapError

    paths = {"after": scene.after_ortho, "before": scene.before_ortho}
    with pytest.raises(MapError, match="--ortho"):
        render_review_map(
            scene.leads,
            out_html=tmp_path / "r.html",
            **{k: paths[v] for k, v in kwargs.items()},  # type: ignore[arg-type]
        )
