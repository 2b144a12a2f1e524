"""The review pages: files, offline links, escaping, the lead table and its links."""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import folium
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import LineString, Point

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


# --- the flight: flown track, planned route, photos with thumbnails ------------------------------


def _flight_features(scene: Scene, photo_dir: Path) -> dict[str, Any]:
    """A flight as ``sitewatch ingest`` writes it (track.geojson, photos.geojson read back
    through GDAL: ``qc`` is JSON text) and the planner's route, over the scene."""
    (line,) = [g for g, _ in scene.track]
    coords = list(line.coords)
    flown = [
        (
            LineString([(x + 2e-6, y - 2e-6) for x, y in coords]),
            {"start_time": "2025-10-15T02:30:00Z", "log_format": "tlog", "n_points": 4},
        )
    ]
    route = [(line, {"kind": "route", "sortie": 1})]
    photo_dir.mkdir()
    rng = np.random.default_rng(0)
    photos = []
    for i, (x, y) in enumerate(coords):
        name = f"DJI_{i + 1:04d}.JPG"
        if i != 2:  # the third photo is missing from the folder
            Image.fromarray(rng.integers(0, 255, (400, 600, 3), dtype=np.uint8)).save(
                photo_dir / name, quality=85
            )
        qc = [] if i else [{"flag": "blurred", "reason": "sharpness <b>0.1</b> of the median"}]
        photos.append(
            (
                Point(x, y),
                {
                    "name": name,
                    "sha256": f"{i:064x}",
                    "time_utc": f"2025-10-15T02:31:0{i}.500Z",
                    "lat": y,
                    "lon": x,
                    "alt_m": 117.0,
                    "yaw_deg": 10.0,
                    "pitch_deg": -90.0,
                    "roll_deg": 0.0,
                    "position_source": "log" if i else "interpolated",
                    "qc": json.dumps(qc) if i % 2 else qc,
                },
            )
        )
    # a name that leads out of the photo folder is never opened
    (photo_dir.parent / "outside.jpg").write_bytes((photo_dir / "DJI_0001.JPG").read_bytes())
    x, y = coords[0]
    photos.append((Point(x, y), {"name": "../outside.jpg", "qc": "[]", "position_source": "log"}))
    return {"track": flown, "route": route, "photos": photos}


def test_flown_track_route_and_photo_popups_with_thumbnails(
    scene: Scene, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    photo_dir = tmp_path / "DCIM"
    flight = _flight_features(scene, photo_dir)
    originals = {p.name: p.read_bytes() for p in photo_dir.iterdir()}
    rm = render_review_map(
        scene.leads,
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        out_html=tmp_path / "map" / "review.html",
        photo_dir=photo_dir,
        **flight,
    )
    page = rm.html.read_text(encoding="utf-8")
    for needle in ("Flight track (flown)", "Planned route", "Photo positions (taken)"):
        assert needle in page and needle in rm.dual_html.read_text(encoding="utf-8"), needle
    assert "flown track" in page and "planned route" in page and "photo taken" in page
    assert "Flight track (planned route)" not in page
    # a thumbnail for each photo found in the folder, none for the missing one or the one
    # whose name leaves the folder; no photo is written, nothing is added beside them
    thumbs = sorted((rm.files_dir / "photos").iterdir())
    assert [t.name for t in thumbs] == [
        "00000_DJI_0001.jpg",
        "00001_DJI_0002.jpg",
        "00003_DJI_0004.jpg",
    ]
    for t in thumbs:
        with Image.open(t) as im:
            assert im.format == "JPEG" and im.size == (320, 213)
        assert f"review_files/photos/{t.name}" in page
    assert {p.name: p.read_bytes() for p in photo_dir.iterdir()} == originals
    assert "1 photo(s) of the photo layer not found" in caplog.text
    # the popups: time, position source, QC flags (escaped), and no table of raw attributes
    assert "2025-10-15T02:31:00.500Z" in page and "interpolated" in page
    assert "sharpness \\u0026lt;b\\u0026gt;0.1" in page and "<b>0.1</b>" not in page
    assert "DJI_0003.JPG" in page  # the missing photo keeps its popup, without a thumbnail


def test_photo_popup_lists_flags_from_a_list_or_json_text() -> None:
    from maps.photos import photo_kind, photo_popup, qc_flags

    flags = [{"flag": "far_from_site", "reason": "412 m from the site"}]
    assert (
        qc_flags(flags) == qc_flags(json.dumps(flags)) == [("far_from_site", "412 m from the site")]
    )
    assert qc_flags("[]") == [] and qc_flags(None) == []
    text = photo_popup({"name": "a<b>.jpg", "qc": "[]", "time_utc": None}, "t/a.jpg")
    assert "a&lt;b&gt;.jpg" in text and 'src="t/a.jpg"' in text and "<td>none</td>" in text
    assert photo_kind([(Point(0, 0), {"kind": "photo"})]) == "planned"
    assert photo_kind([(Point(0, 0), {"name": "x", "qc": []})]) == "taken"
    assert photo_kind([(Point(0, 0), {"image": "x"})]) == "points"


def test_the_planned_route_given_as_the_track_is_named_so(scene: Scene, tmp_path: Path) -> None:
    rm = render_review_map(
        [],
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        out_html=tmp_path / "review.html",
        track=scene.track,
        photos=[(Point(*scene.track[0][0].coords[0]), {"kind": "photo", "index": 0})],
    )
    page = rm.html.read_text(encoding="utf-8")
    assert "Flight track (planned route)" in page and "Flight track (flown)" not in page
    assert "Photo positions (planned)" in page and "planned photo" in page
    assert not (rm.files_dir / "photos").exists()


class _TimelineTables(HTMLParser):
    """Permit → rows of (survey, date, stage, floors, flags) of a timeline fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.projects: dict[str, list[list[str]]] = {}
        self._permit: str | None = None
        self._in: str | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "h3":
            self._in = "h3"
        elif tag == "tr":
            self._row = []
        elif tag == "td" and "text" in cls.split() and self._row is not None:
            self._in = "td"
            self._row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row and self._permit is not None:
            self.projects[self._permit].append(self._row)
        if tag in ("h3", "td", "tr"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "h3":
            self._permit = data.removeprefix("Permit ").strip()
            self.projects[self._permit] = []
        elif self._in == "td" and self._row is not None:
            self._row[-1] += data


def timeline_in_map(page: str) -> dict[str, list[list[str]]]:
    """The construction timeline drawn in a review map page, parsed: permit id → its rows
    (survey, date, stage, floors, height, permitted, flags); {} when the map has none."""
    found = re.findall(r"sw-timeline-control.*?div\.innerHTML = (\".*?\");", page, re.S)
    if not found:
        return {}
    (fragment,) = found
    parser = _TimelineTables()
    parser.feed(json.loads(fragment))
    return parser.projects


def test_the_construction_timeline_is_drawn_in_the_review_map(scene: Scene, tmp_path: Path) -> None:
    stages = [("setting_out", "setting-out"), ("foundation", "foundation"), ("top", "top <b>")]
    row = {"permitted_floors": 3, "permitted_height_m": 10.0, "exceeds": [], "reasons": []}
    timeline = {
        "P-<1>": [
            {**row, "survey_id": 1, "date": "2025-03-01", "stage": "foundation",
             "stage_name": "foundation", "storeys": 0, "height_m": -2.0},
            {**row, "survey_id": 4, "date": "2025-05-20", "stage": "top", "stage_name": "top",
             "storeys": 4, "height_m": 12.4, "exceeds": ["over_height"]},
        ]
    }  # fmt: skip
    rm = render_review_map(
        scene.leads,
        ortho=scene.after_ortho,
        out_html=tmp_path / "review.html",
        after_date="2025-05-20",
        timeline=timeline,
        stages=stages,
    )
    page = rm.html.read_text(encoding="utf-8")
    assert timeline_in_map(page) == {
        "P-<1>": [
            ["1", "2025-03-01", "foundation", "0", "-2.0 m", "3 fl. / 10.0 m", "—"],
            ["4", "2025-05-20", "top", "4", "12.4 m", "3 fl. / 10.0 m", "over_height"],
        ]
    }
    assert "P-<1>" not in page and "top <b>" not in page  # escaped
    assert "Construction progress (1 project)" in page
    plain = render_review_map(
        scene.leads, ortho=scene.after_ortho, out_html=tmp_path / "plain" / "review.html"
    )
    assert timeline_in_map(plain.html.read_text(encoding="utf-8")) == {}
