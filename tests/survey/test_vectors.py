"""Vector I/O: formats, CRS handling, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyproj import CRS
from shapely.geometry import Polygon, box

from survey.errors import InputFileError, NotGeoreferencedError
from survey.vectors import read_features, reproject_geometries, write_features

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
    with pytest.raises(InputFileError, match="bad.geojson"):
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
