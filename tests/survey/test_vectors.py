"""Vector I/O: formats, CRS handling, round trips."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import Point, Polygon, box, mapping

from change_detection.errors import ChangeDetectionError
from change_detection.leads import Lead, leads_to_feature_collection
from survey.errors import InputFileError, NotGeoreferencedError, VectorFormatError
from survey.vectors import (
    feature_id,
    read_features,
    read_leads,
    reproject_geometries,
    write_features,
)

SITE = box(114.5, 37.07, 114.5018, 37.0714)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".kml"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    props = {"permit_id": "P-7", "max_height_m": 12.5, "floors": 4, "tags": ["a", "b"]}
    path = write_features(tmp_path / f"permits{suffix}", [SITE], [props])
    got = read_features(path)
    assert got.crs.to_epsg() == 4326
    assert len(got) == 1
    assert got.geometries[0].equals_exact(SITE, 1e-9)
    assert got.properties[0]["permit_id"] == "P-7"
    assert float(got.properties[0]["max_height_m"]) == 12.5


def test_geojson_is_rfc7946(tmp_path: Path) -> None:
    path = write_features(tmp_path / "a.geojson", [SITE], [{"name": "x"}])
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection"
    assert "crs" not in doc


def test_reprojection_to_utm_preserves_area(tmp_path: Path) -> None:
    path = write_features(tmp_path / "a.gpkg", [SITE], [{}])
    utm = read_features(path).to_crs(32650)
    assert utm.crs.to_epsg() == 32650
    # 0.0018 deg x 0.0014 deg at 37 N: about 160 m x 155 m
    assert 23000 < utm.geometries[0].area < 26500
    back = reproject_geometries(utm.geometries, 32650, 4326)[0]
    assert back.equals_exact(SITE, 1e-9)


def test_utm_file_reads_in_its_crs(tmp_path: Path) -> None:
    poly = Polygon([(500000, 4100000), (500100, 4100000), (500100, 4100100)])
    path = write_features(tmp_path / "u.gpkg", [poly], [{"id": 1}], crs=CRS.from_epsg(32650))
    got = read_features(path)
    assert got.crs.to_epsg() == 32650
    assert got.geometries[0].area == pytest.approx(5000)


def test_missing_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="site not found"):
        read_features(tmp_path / "none.geojson", role="site")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(VectorFormatError, match="bad.geojson"):
        read_features(bad)
    assert bad.read_text() == "{not json"


def test_no_crs_outside_geojson(tmp_path: Path) -> None:
    path = write_features(tmp_path / "x.gpkg", [SITE], [{}], crs=4326)
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("UPDATE gpkg_geometry_columns SET srs_id = -1")
    con.commit()
    con.close()
    with pytest.raises(NotGeoreferencedError, match="no CRS"):
        read_features(path)


# --- refusals: one line naming the file, the feature and the fix (issue #12) --------------------

SQUARE = [[114.5, 37.07], [114.5001, 37.07], [114.5001, 37.0701], [114.5, 37.0701]]


def _feature_collection(path: Path, ring: list[list[float]], **props: object) -> Path:
    feature = {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    ok = {"type": "Feature", "properties": {"name": "fine"}, "geometry": mapping(SITE)}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [ok, feature]}))
    return path


def _ring_wkb(ring: list[list[float]]) -> bytes:
    """A polygon's WKB exactly as given: GEOS would close or refuse the ring, a file may not."""
    points = b"".join(struct.pack("<dd", x, y) for x, y in ring)
    return struct.pack("<BIII", 1, 3, 1, len(ring)) + points


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_a_ring_that_is_not_closed_names_the_file_the_feature_and_the_fix(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """GDAL reads it (GeoJSON with a warning), GEOS refused it with a traceback."""
    path = tmp_path / f"site{suffix}"
    if suffix == ".geojson":
        _feature_collection(path, SQUARE, name="yard")
    else:
        wkb = np.array([shapely.to_wkb(SITE), _ring_wkb(SQUARE)], dtype=object)
        names = np.array(["fine", "yard"], dtype=object)
        pyogrio.raw.write(
            path, wkb, [names], ["name"], driver="GPKG", crs="EPSG:4326", geometry_type="Polygon"
        )
    with pytest.raises(VectorFormatError) as info:
        read_features(path, role="site")
    message = str(info.value)
    assert message == (
        f"{path}: feature 1 (name 'yard') of the site has a polygon ring that is not closed "
        "(IllegalArgumentException: Points of LinearRing do not form a closed linestring); "
        "repeat each ring's first point as its last, then save the file again"
    )
    gdal_lines = [r.getMessage() for r in caplog.records if "GDAL:" in r.getMessage()]
    assert all("\n" not in line and str(path) in line for line in gdal_lines)
    if suffix == ".geojson":
        assert any("Non closed ring" in line for line in gdal_lines)  # logged, not a traceback


def test_a_ring_of_two_points_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = _feature_collection(tmp_path / "p.geojson", SQUARE[:2], permit_id="P-2")
    with pytest.raises(VectorFormatError, match=r"feature 1 \(permit_id 'P-2'\) of the permits"):
        read_features(path, role="permits")


def test_gdal_quoting_bytes_that_are_not_utf8_is_one_line(tmp_path: Path) -> None:
    """pyogrio raised UnicodeDecodeError when GDAL's message quoted the damaged bytes."""
    good = write_features(tmp_path / "a.geojson", [SITE], [{"name": "x"}]).read_bytes()
    bad = tmp_path / "bad.geojson"
    bad.write_bytes(good.replace(b'"name"', b'"name\x80"', 1).replace(b"114.5", b"\x80", 1))
    with pytest.raises(VectorFormatError, match=r"bad\.geojson: vector file cannot be read"):
        read_features(bad)


# --- read_leads --------------------------------------------------------------------------------


def _lead(lead_id: str = "3f2a9c0d11e4b6a7", geometry: object = SITE) -> Lead:
    return Lead(lead_id, "no_permit", geometry, ("why",), 80.0, 6.0, 2, score=0.9)  # type: ignore[arg-type]


def _write_leads(path: Path, leads: list[Lead]) -> Path:
    path.write_text(json.dumps(leads_to_feature_collection(leads)), encoding="utf-8")
    return path


def test_read_leads_round_trip(tmp_path: Path) -> None:
    leads = [_lead(), _lead("3f2a9c0d11e4b6a7-2", box(114.6, 37.0, 114.6001, 37.0001))]
    got = read_leads(_write_leads(tmp_path / "leads.geojson", leads))
    assert [x.lead_id for x in got] == [x.lead_id for x in leads]
    assert got[1].geometry.hausdorff_distance(leads[1].geometry) <= 1e-8
    bom = tmp_path / "bom.geojson"  # what some editors save
    bom.write_bytes(b"\xef\xbb\xbf" + (tmp_path / "leads.geojson").read_bytes())
    assert len(read_leads(bom)) == 2


@pytest.mark.parametrize(
    ("content", "error", "expected"),
    [
        (b"", VectorFormatError, "not valid JSON (Expecting value at line 1 column 1)"),
        (b"\xff\xfe{}", VectorFormatError, "not UTF-8 text (byte 0)"),
        (b"[1, 2]", VectorFormatError, "holds a JSON list, not a FeatureCollection"),
        (b'{"type": "FeatureCollection", "features": [], "n": NaN}', VectorFormatError, "NaN"),
        (b'{"type": "FeatureCollection", "features": 3}', ChangeDetectionError, "not a list"),
        (b'{"type": "FeatureCollection", "features": [7]}', ChangeDetectionError, "feature 0: "),
        (b"[" * 100_000, VectorFormatError, "nests JSON too deeply"),
    ],
)
def test_read_leads_refusals_name_the_file(
    tmp_path: Path, content: bytes, error: type[Exception], expected: str
) -> None:
    path = tmp_path / "leads.geojson"
    path.write_bytes(content)
    with pytest.raises(error) as info:
        read_leads(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


@pytest.mark.parametrize(
    ("leads", "expected"),
    [
        ([_lead(), _lead()], "lead id '3f2a9c0d11e4b6a7' appears twice (feature 1)"),
        ([_lead(geometry=Point(114.5, 37.07))], "is a Point, not a polygon"),
        ([_lead(geometry=box(500000, 4000000, 500010, 4000010))], "outside longitude"),
    ],
)
def test_read_leads_refuses_ids_used_twice_and_foreign_geometries(
    tmp_path: Path, leads: list[Lead], expected: str
) -> None:
    path = _write_leads(tmp_path / "leads.geojson", leads)
    with pytest.raises(ChangeDetectionError, match=re.escape(expected)):
        read_leads(path)


def test_read_leads_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="leads file not found"):
        read_leads(tmp_path / "none.geojson")


# --- what is wrong: the file (InputFileError) or its content (VectorFormatError) ----------------


def test_a_missing_file_and_bad_content_are_told_apart(tmp_path: Path) -> None:
    """A missing file is an InputFileError (a FileNotFoundError); a file whose content cannot
    be used is a VectorFormatError (a ValueError), which is not an InputFileError."""
    with pytest.raises(InputFileError) as missing:
        read_features(tmp_path / "none.geojson", role="site")
    assert isinstance(missing.value, FileNotFoundError)
    bad = tmp_path / "site.geojson"
    bad.write_bytes(b"\x00\x01 not a vector file")
    with pytest.raises(VectorFormatError) as content:
        read_features(bad, role="site")
    assert isinstance(content.value, ValueError)
    assert not isinstance(content.value, InputFileError | FileNotFoundError)
    assert str(content.value).startswith(f"{bad}: site cannot be read (")


# --- ids: one helper for permits and existing buildings ----------------------------------------


def test_feature_id_known_answers() -> None:
    fields = ("permit_id", "id")
    assert feature_id({"permit_id": "", "id": "P-9"}, fields) == "P-9"
    assert feature_id({"permit_id": "  ", "id": 12}, fields) == "12"
    assert feature_id({"permit_id": 7.0}, fields) == "7"
    assert feature_id({"permit_id": 7.5}, fields) == "7.5"
    assert feature_id({"permit_id": 0}, fields) == "0"
    assert feature_id({"permit_id": None, "id": None}, fields) is None
    assert feature_id({}, fields) is None


def test_permit_ids_from_a_blank_column_and_from_integers_with_gaps(tmp_path: Path) -> None:
    """``props.get("permit_id", props.get("id"))`` missed ``id`` when the layer had an empty
    permit_id column, and whole-number ids of a column with NULLs (read as float) became
    "7.0"."""
    from survey.permits import read_permits

    squares = [box(114.5 + i * 2e-4, 37.07, 114.5001 + i * 2e-4, 37.0701) for i in range(3)]
    blank = write_features(
        tmp_path / "blank.geojson",
        squares,
        [{"permit_id": "", "id": f"P-{i}"} for i in range(3)],
    )
    assert [p.permit_id for p in read_permits(blank, 32650)] == ["P-0", "P-1", "P-2"]
    gaps = write_features(
        tmp_path / "gaps.gpkg",
        squares,
        [{"permit_id": 7, "id": "x"}, {"permit_id": None, "id": "P-8"}, {"permit_id": 9}],
    )
    assert read_features(gaps).properties[0]["permit_id"] == 7.0  # what the reader sees
    assert [p.permit_id for p in read_permits(gaps, 32650)] == ["7", "P-8", "9"]


def test_existing_building_ids_share_the_permits_rule(tmp_path: Path) -> None:
    """Building id 0 was taken for a missing id (``props.get(k) or ""``) and named by its
    position; the layer's content errors are VectorFormatError, not PermitError."""
    from change_detection.errors import PermitError
    from survey.buildings import read_existing_buildings

    squares = [box(114.5 + i * 2e-4, 37.07, 114.5001 + i * 2e-4, 37.0701) for i in range(3)]
    path = write_features(
        tmp_path / "existing.gpkg",
        squares,
        [{"building_id": 0}, {"building_id": None, "id": "B-x"}, {"building_id": 12}],
    )
    got = read_existing_buildings(path, 32650)
    assert [b.building_id for b in got] == ["0", "B-x", "12"]
    twice = write_features(tmp_path / "twice.geojson", squares[:2], [{"id": 5}, {"id": 5.0}])
    with pytest.raises(VectorFormatError, match=r"twice\.geojson: building_id 5 appears twice"):
        read_existing_buildings(twice, 32650)
    with pytest.raises(VectorFormatError) as info:
        read_existing_buildings(write_features(tmp_path / "none.geojson", [], []), 32650)
    assert not isinstance(info.value, PermitError)


def test_a_date_pyogrio_cannot_convert_is_one_line(tmp_path: Path) -> None:
    """GDAL types "12026-12-31" as a date and pyogrio's conversion raised ValueError ("year
    12026 is out of range"; one byte moved in permits.geojson, the explore campaign)."""
    from survey.permits import read_permits

    path = write_features(
        tmp_path / "permits.geojson", [SITE], [{"permit_id": "P-1", "valid_to": "2026-12-31"}]
    )
    path.write_text(path.read_text().replace('"2026-12-31"', '"12026-12-31"'))
    with pytest.raises(VectorFormatError) as info:
        read_permits(path, 32650)
    assert str(info.value) == (
        f"{path}: permits file holds a value that cannot be read (year 12026 is out of range); "
        "correct the attribute (a date must lie in the years 1-9999) and save the file again"
    )
