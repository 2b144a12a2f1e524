"""EXIF / XMP reading of photos (survey.ingest.images) on files the tests write."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from survey.errors import InputFileError, SurveyError
from survey.ingest.images import read_image, read_images
from tests.survey.ingest._flight import texture, write_photo

DJI_XMP = {
    "AbsoluteAltitude": "+150.25",
    "RelativeAltitude": "+100.10",
    "GimbalYawDegree": "-135.5",
    "GimbalPitchDegree": "-89.9",
    "GimbalRollDegree": "+0.3",
    "FlightYawDegree": "+44.0",
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.mark.parametrize("suffix", [".JPG", ".tif"])
def test_dji_photo_known_answers(tmp_path: Path, suffix: str) -> None:
    t = dt.datetime(2024, 5, 1, 10, 0, 7, 250000)
    path = write_photo(
        tmp_path / f"DJI_0001{suffix}",
        texture(1),
        time=t,
        offset_tag="+08:00",
        lat=22.5512345,
        lon=-114.0498765,
        alt=150.25,
        xmp=DJI_XMP,
        make=b"DJI\x00\x00\x00",
    )
    before = _snapshot(tmp_path)
    rec = read_image(path)
    assert _snapshot(tmp_path) == before  # nothing written, nothing beside it
    assert rec.name == path.name
    assert rec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rec.time_utc == dt.datetime(2024, 5, 1, 2, 0, 7, 250000, tzinfo=dt.UTC)
    assert rec.sources["time_utc"] == "EXIF DateTimeOriginal + OffsetTimeOriginal"
    assert rec.lat == pytest.approx(22.5512345, abs=1e-9)
    assert rec.lon == pytest.approx(-114.0498765, abs=1e-9)
    assert rec.alt_m == pytest.approx(150.25)
    assert rec.alt_rel_m == pytest.approx(100.10)
    assert rec.yaw_deg == pytest.approx(224.5)  # -135.5 on [0, 360)
    assert rec.pitch_deg == pytest.approx(-89.9)
    assert rec.roll_deg == pytest.approx(0.3)
    assert rec.sources["yaw_deg"] == "XMP drone-dji:GimbalYawDegree"
    assert rec.make == "DJI"  # NUL padding removed
    assert (rec.width_px, rec.height_px) == (128, 96)
    assert rec.focal_mm == pytest.approx(8.8)
    assert rec.warnings == ()


def test_time_without_zone_is_utc_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_photo(tmp_path / "a.jpg", texture(2), time=dt.datetime(2024, 5, 1, 10, 0, 0))
    with caplog.at_level(logging.WARNING):
        rec = read_image(path)
    assert rec.time_utc == dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC)
    assert rec.sources["time_utc"].endswith("assumed UTC")
    assert len(rec.warnings) == 1 and "assumed UTC" in rec.warnings[0]
    assert "a.jpg" in caplog.text and "assumed UTC" in caplog.text


def test_zone_from_the_gps_time_stamp(tmp_path: Path) -> None:
    gps = {
        ExifTags.GPS.GPSDateStamp: "2024:05:01",
        ExifTags.GPS.GPSTimeStamp: (IFDRational(2), IFDRational(0), IFDRational(3)),
    }
    path = write_photo(
        tmp_path / "a.jpg",
        texture(3),
        time=dt.datetime(2024, 5, 1, 10, 0, 0),
        lat=22.5,
        lon=114.0,
        extra_gps=gps,
    )
    rec = read_image(path)
    assert rec.time_utc == dt.datetime(2024, 5, 1, 2, 0, 0, tzinfo=dt.UTC)
    assert "GPS time stamp" in rec.sources["time_utc"]
    assert rec.warnings == ()


def test_subseconds_order_two_photos_in_the_same_second(tmp_path: Path) -> None:
    for name, ms in (("b.jpg", 100000), ("a.jpg", 700000)):
        write_photo(tmp_path / name, texture(4), time=dt.datetime(2024, 5, 1, 10, 0, 5, ms))
    folder = read_images(tmp_path)
    assert [r.name for r in folder.images] == ["b.jpg", "a.jpg"]  # time order, not name
    t0, t1 = (r.time_utc for r in folder.images)
    assert t0 is not None and t1 is not None
    assert (t1 - t0).total_seconds() == pytest.approx(0.6)


def test_swapped_width_and_height_tags(tmp_path: Path) -> None:
    path = write_photo(tmp_path / "a.jpg", texture(5), exif_size=(96, 128))
    rec = read_image(path)
    assert (rec.width_px, rec.height_px) == (128, 96)
    assert any("swapped" in w for w in rec.warnings)


def test_gps_altitude_that_is_the_height_above_take_off(tmp_path: Path) -> None:
    xmp = dict(DJI_XMP, RelativeAltitude="+60.00", AbsoluteAltitude="+81.50")
    path = write_photo(tmp_path / "a.jpg", texture(6), lat=22.5, lon=114.0, alt=60.0, xmp=xmp)
    rec = read_image(path)
    assert rec.alt_m == pytest.approx(81.5)
    assert rec.alt_rel_m == pytest.approx(60.0)
    assert rec.sources["alt_m"] == "XMP drone-dji:AbsoluteAltitude"
    assert any("height above take-off" in w for w in rec.warnings)


def test_photo_without_exif(tmp_path: Path) -> None:
    path = write_photo(tmp_path / "a.jpg", texture(7), with_exif=False)
    rec = read_image(path)
    assert rec.time_utc is None
    assert not rec.has_position and math.isnan(rec.alt_m) and math.isnan(rec.yaw_deg)
    assert rec.make == "" and (rec.width_px, rec.height_px) == (128, 96)
    assert any("no EXIF" in w for w in rec.warnings)


def test_null_island_is_not_a_position(tmp_path: Path) -> None:
    path = write_photo(tmp_path / "a.jpg", texture(8), lat=0.0, lon=0.0, alt=10.0)
    rec = read_image(path)
    assert not rec.has_position and "lat" not in rec.sources
    assert any("not a valid place" in w for w in rec.warnings)


def test_camera_from_exif(tmp_path: Path) -> None:
    rec = read_image(write_photo(tmp_path / "a.jpg", texture(9)))
    assert rec.camera() is None  # a focal length alone gives no sensor size
    cam = dataclasses.replace(rec, focal_35mm=24.0).camera()
    assert cam is not None
    assert cam.sensor_w_mm == pytest.approx(36.0 * 8.8 / 24.0)
    assert cam.sensor_h_mm == pytest.approx(cam.sensor_w_mm * 96 / 128)
    assert (cam.image_w_px, cam.image_h_px, cam.focal_mm) == (128, 96, pytest.approx(8.8))


def test_not_an_image_is_one_clear_error_and_skipped_in_a_folder(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputFileError) as exc:
        read_image(bad)
    assert isinstance(exc.value, SurveyError)
    msg = str(exc.value)
    assert "broken.jpg" in msg and "JPEG or TIFF" in msg and "\n" not in msg
    write_photo(tmp_path / "good.jpg", texture(10), time=dt.datetime(2024, 1, 1))
    folder = read_images(tmp_path)
    assert [r.name for r in folder.images] == ["good.jpg"]
    assert folder.skipped[0][0] == "broken.jpg"
    assert bad.read_bytes() == b"not a jpeg at all"


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such folder"):
        read_images(tmp_path / "nope")
    with pytest.raises(InputFileError, match="no photos"):
        read_images(tmp_path)
    with pytest.raises(InputFileError, match="no such file"):
        read_image(tmp_path / "nope.jpg")


def test_truncated_xmp_is_a_warning_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(texture(11)).save(path, xmp=b"<x:xmpmeta><rdf:RDF>broken")
    rec = read_image(path)
    assert any("XMP packet cannot be read" in w for w in rec.warnings)


# ----------------------------------------------------------------------------- real files


@pytest.mark.realdata
def test_real_images_read_with_their_metadata(realdata: Path) -> None:
    real = realdata / "images"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in real.iterdir()}
    folder = read_images(real)
    assert len(folder.images) == len(before) == 6 and folder.skipped == ()
    got = {r.name: r for r in folder.images}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in real.iterdir()} == before
    for name, r in got.items():
        assert r.sha256 == before[name]

    # Skydio X2: EXIF GPS in degrees + decimal minutes, time from xmp:CreateDate (Z)
    x2 = got["openathena_S1008521.JPG"]
    assert x2.time_utc == dt.datetime(2023, 12, 16, 20, 19, 45, tzinfo=dt.UTC)
    assert (x2.lat, x2.lon) == pytest.approx((29 + 47.156034 / 60, -(95 + 38.125038 / 60)))
    assert x2.alt_m == pytest.approx(46.021)
    assert (x2.yaw_deg, x2.pitch_deg, x2.roll_deg) == pytest.approx(
        (0.100350, -59.679573, -0.519399)
    )
    assert x2.sources["pitch_deg"] == "XMP drone-skydio:CameraOrientationNED/Pitch"
    assert (x2.make, x2.model, x2.serial) == ("Skydio", "X2 Narrow", "E1.0J.A.00K7BK")
    assert x2.gps_xy_accuracy_m == pytest.approx(0.446)

    # Skydio 2 edited in Photoshop: no DateTimeOriginal, DateTimeDigitized + its offset
    s2 = got["openathena_skydio-catilina.jpg"]
    assert s2.time_utc == dt.datetime(2021, 1, 27, 23, 9, 51, tzinfo=dt.UTC)
    assert s2.sources["time_utc"] == "EXIF DateTimeDigitized + OffsetTimeDigitized"
    assert (s2.yaw_deg, s2.pitch_deg) == pytest.approx((127.444323, -7.468572))
    assert (s2.width_px, s2.height_px) == (1500, 844)
    assert any("4056 x 2282" in w for w in s2.warnings)  # resized after capture
    cam = s2.camera()  # focal-plane tags hold 72 dpi: the 35 mm equivalent is used
    assert cam is not None and cam.sensor_w_mm == pytest.approx(36.0 * 4.7 / 21.0)

    # Parrot Disco: Camera: XMP (pitch 0 at nadir there), NUL-terminated serial
    parrot = got["openathena_parrot-1.jpg"]
    assert parrot.time_utc == dt.datetime(2021, 9, 25, 11, 1, 41, tzinfo=dt.UTC)
    assert parrot.sources["time_utc"].endswith("assumed UTC")
    assert (parrot.yaw_deg, parrot.pitch_deg, parrot.roll_deg) == pytest.approx(
        (18.678611755, 2.054081678 - 90.0, -2.391976595)
    )
    assert parrot.serial == "PI020656AA6F405528"
    assert parrot.lat == pytest.approx(57 + 59 / 60 + 58.31617047080177 / 3600)

    # Teal 2 / FLIR Boson: camera angles relative to the platform, zone from XMP
    teal = got["openathena_teal2_img_ir_00015.jpg"]
    assert teal.time_utc == dt.datetime(2024, 7, 31, 19, 17, 50, tzinfo=dt.UTC)
    assert "zone from XMP exif:DateTimeOriginal" in teal.sources["time_utc"]
    assert teal.yaw_deg == pytest.approx((359.986359 + 319.01593) % 360.0)
    assert teal.pitch_deg == pytest.approx(-86831 / 1600 - 785007 / 200000)
    assert teal.alt_m == pytest.approx(1320.454956)
    assert (teal.make, teal.model) == ("Teledyne FLIR", "Boson 640")

    # senseFly eBee (Canon S110) thumbnails: GPS, Camera: XMP with accuracies
    for name, yaw, pitch, acc, alt in (
        (
            "webodm_sensefly_tiny_drone_image.jpg",
            274.931243896484375,
            2.36006498336792,
            5.027999877929688,
            438.18859649122805,
        ),
        (
            "webodm_sensefly_tiny_drone_image_2.jpg",
            283.95501708984375,
            3.328363656997681,
            5.118000030517578,
            439.4963680387409,
        ),
    ):
        sf = got[name]
        assert sf.yaw_deg == pytest.approx(yaw) and sf.pitch_deg == pytest.approx(pitch - 90)
        assert sf.gps_xy_accuracy_m == pytest.approx(acc)
        assert sf.alt_m == pytest.approx(alt)
        assert sf.lon < 0 and sf.lat == pytest.approx(41.2264, abs=1e-3)
        assert (sf.width_px, sf.height_px) == (48, 36)
    t1, t2 = (
        got[n].time_utc
        for n in ("webodm_sensefly_tiny_drone_image.jpg", "webodm_sensefly_tiny_drone_image_2.jpg")
    )
    assert t1 is not None and t2 is not None and (t2 - t1).total_seconds() == 4.0


@pytest.mark.realdata
def test_realdata_images_all_have_positions_and_times(realdata: Path) -> None:
    for p in sorted((realdata / "images").iterdir()):
        rec = read_image(p)
        assert rec.has_position and rec.time_utc is not None, p.name
        assert np.isfinite(rec.yaw_deg), p.name


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(st.tuples(st.integers(2, 1500), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.integers(20, 3000)),
)
def test_corrupt_metadata_is_a_record_or_one_clear_error(
    tmp_path: Path, edits: list[tuple[int, int]], cut: int | None
) -> None:
    src = tmp_path / "src.jpg"
    if not src.exists():
        write_photo(
            src,
            texture(12),
            time=dt.datetime(2024, 5, 1, 2),
            lat=22.5,
            lon=114.0,
            alt=80.0,
            xmp=DJI_XMP,
        )
    data = bytearray(src.read_bytes())
    for pos, value in edits:
        data[pos % len(data)] = value
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(bytes(data[:cut] if cut else data))
    try:
        rec = read_image(bad)
    except InputFileError as exc:
        assert "bad.jpg" in str(exc) and "\n" not in str(exc)
    else:
        assert rec.name == "bad.jpg"
        assert rec.time_utc is None or rec.time_utc.tzinfo is not None
