"""Writers of geotagged photos (survey.ingest.photos): photos.geojson, geo.txt, copies."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from survey.errors import OutputError
from survey.ingest.geotag import GeotagResult, geotag
from survey.ingest.images import read_image, read_images
from survey.ingest.photos import (
    PHOTO_PROPERTIES,
    write_geo_txt,
    write_geotagged_copies,
    write_photos_geojson,
)
from survey.ingest.qc import QCFlag
from tests.survey.ingest._flight import make_flight, texture, write_flight_photos, write_photo


@pytest.fixture
def tagged(tmp_path: Path) -> GeotagResult:
    fl = make_flight(n_lines=1)
    folder = tmp_path / "photos"
    write_flight_photos(folder, fl, offset_s=2.0, keep=range(4))
    write_photo(folder / "NOPOS.JPG", texture(5))  # no time, no position
    return geotag(read_images(folder).images, fl.telemetry, fl.events, time_offset=2.0)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_photos_geojson_properties_exactly(tmp_path: Path, tagged: GeotagResult) -> None:
    flags = [[] for _ in tagged.photos]
    flags[1] = [QCFlag("blurred", "sharpness 0.1 of the median")]
    out = write_photos_geojson(tagged.photos, tmp_path / "out" / "photos.geojson", flags)
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 5
    by_name = {f["properties"]["name"]: f for f in doc["features"]}
    for f in doc["features"]:
        assert tuple(f["properties"]) == PHOTO_PROPERTIES
    first = by_name["IMG_0000.JPG"]
    p0 = next(p for p in tagged.photos if p.name == "IMG_0000.JPG")
    assert first["geometry"] == {
        "type": "Point",
        "coordinates": [round(p0.lon, 8), round(p0.lat, 8)],
    }
    props = first["properties"]
    assert props["position_source"] == "log"
    assert props["sha256"] == p0.image.sha256
    assert props["time_utc"].endswith("Z") and props["time_utc"].startswith("2024-05-01T02:00:00.")
    assert props["pitch_deg"] == -90.0 and props["qc"] == []
    assert by_name["IMG_0001.JPG"]["properties"]["qc"] == [
        {"flag": "blurred", "reason": "sharpness 0.1 of the median"}
    ]
    nopos = by_name["NOPOS.JPG"]
    assert nopos["geometry"] is None
    assert nopos["properties"]["lat"] is None and nopos["properties"]["position_source"] is None
    assert nopos["properties"]["time_utc"] is None


def test_geo_txt_is_opendronemaps_format(tmp_path: Path, tagged: GeotagResult) -> None:
    out = write_geo_txt(tagged.photos, tmp_path / "geo.txt")
    lines = out.read_text().splitlines()
    assert lines[0] == "EPSG:4326"
    assert len(lines) == 1 + 4  # the photo without a position is left out
    cols = lines[1].split(" ")
    p0 = next(p for p in tagged.photos if p.name == cols[0])
    assert float(cols[1]) == pytest.approx(p0.lon, abs=1e-8)  # x = lon
    assert float(cols[2]) == pytest.approx(p0.lat, abs=1e-8)  # y = lat
    assert float(cols[3]) == pytest.approx(p0.alt_m, abs=1e-3)
    assert float(cols[4]) == pytest.approx(p0.yaw_deg, abs=1e-3)
    assert float(cols[5]) == pytest.approx(0.0)  # pitch 0 at nadir in OpenDroneMap
    assert len(cols) == 7  # no accuracies for log positions


def test_geotagged_copies_leave_the_originals_untouched(
    tmp_path: Path, tagged: GeotagResult
) -> None:
    originals = tagged.photos[0].image.path.parent
    before = _hashes(originals)
    written = write_geotagged_copies(tagged.photos, tmp_path / "tagged")
    assert _hashes(originals) == before
    assert sorted(p.name for p in written) == [f"IMG_{i:04d}.JPG" for i in range(4)]
    placed = [p for p in tagged.photos if p.has_position]
    assert placed, "no photo was placed: the copies' geotags are not checked"
    for p in placed:
        copy = read_image(tmp_path / "tagged" / p.name)
        assert copy.lat == pytest.approx(p.lat, abs=1e-7)
        assert copy.lon == pytest.approx(p.lon, abs=1e-7)
        assert copy.alt_m == pytest.approx(p.alt_m, abs=1e-3)
        assert copy.yaw_deg == pytest.approx(p.yaw_deg % 360, abs=0.01)
        assert copy.make == p.image.make and (copy.width_px, copy.height_px) == (128, 96)
    with pytest.raises(OutputError, match="folder of the original photos"):
        write_geotagged_copies(tagged.photos, originals)
    assert _hashes(originals) == before


def test_geotagged_tiff_copy(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_photo(
        src / "a.tif",
        texture(3),
        time=dt.datetime(2024, 5, 1, 2, 0, 0),
        offset_tag="+00:00",
        xmp={"GimbalPitchDegree": "-90.0"},
    )
    before = _hashes(src)
    tagged = geotag(read_images(src).images)
    assert not tagged.photos[0].has_position
    placed = [
        dataclasses.replace(
            tagged.photos[0], lat=22.5, lon=114.1, alt_m=80.0, position_source="log"
        )
    ]
    write_geotagged_copies(placed, tmp_path / "out")
    copy = read_image(tmp_path / "out" / "a.tif")
    assert (copy.lat, copy.lon, copy.alt_m) == pytest.approx((22.5, 114.1, 80.0), abs=1e-6)
    assert copy.pitch_deg == pytest.approx(-90.0)  # XMP kept
    assert _hashes(src) == before
