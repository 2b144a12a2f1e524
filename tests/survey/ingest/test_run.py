"""``run_ingest`` end to end on a synthetic flight written as a real .tlog with its photos."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pymavlink.dialects.v20 import ardupilotmega as mavlink
from pyproj import Transformer
from shapely.geometry import Point, box, mapping

from survey.errors import GeotagError, InputFileError, OutputError, TelemetryError
from survey.ingest.photos import PHOTO_PROPERTIES
from survey.ingest.qc import QCParams
from survey.ingest.run import run_ingest
from survey.ingest.telemetry import TELEMETRY_CSV_COLUMNS
from tests.survey.ingest._flight import (
    GROUND_AMSL,
    HEIGHT,
    UTM,
    X0,
    Y0,
    Flight,
    make_flight,
    write_flight_photos,
)
from tests.survey.ingest.test_tlog import TlogWriter

OFFSET = 3.217  # the camera clock runs this far ahead of the log, seconds
BOOT_S = 50.0  # the autopilot booted this long before the flight's first sample
_TO_LL = Transformer.from_crs(UTM, 4326, always_xy=True)
_TO_M = Transformer.from_crs(4326, UTM, always_xy=True)


def seconds(times: np.ndarray) -> np.ndarray:
    return np.asarray(times).astype("datetime64[ns]").astype(np.int64) / 1e9


def write_survey_tlog(
    flight: Flight, path: Path, *, fix: bool = True, feedback: bool = True
) -> tuple[Path, TlogWriter]:
    """The flight as a ground station logs it: GLOBAL_POSITION_INT, GPS_RAW_INT and ATTITUDE
    at the telemetry rate, SYSTEM_TIME and HEARTBEAT each second, CAMERA_FEEDBACK per shot
    (pymavlink's encoder). Without ``fix`` the GPS never has a fix (zero positions); without
    ``feedback`` the log has no camera events."""
    w = TlogWriter()
    tel = flight.telemetry
    t_utc = seconds(tel["time"].values)
    t0 = t_utc[0]
    lat, lon = tel["lat"].values, tel["lon"].values
    yaw = tel["yaw"].values
    last_sys = -math.inf
    for k, t in enumerate(t_utc.tolist()):
        boot_ms = round((BOOT_S + t - t0) * 1000)
        gcs = t + 0.03
        lat_i = round(float(lat[k]) * 1e7) if fix else 0
        lon_i = round(float(lon[k]) * 1e7) if fix else 0
        yaw_rad = math.radians(float(yaw[k]))
        yaw_rad = yaw_rad - 2 * math.pi if yaw_rad > math.pi else yaw_rad
        w.add(gcs, mavlink.MAVLink_attitude_message(boot_ms, 0.0, 0.0, yaw_rad, 0, 0, 0))
        w.add(
            gcs,
            mavlink.MAVLink_global_position_int_message(
                boot_ms,
                lat_i,
                lon_i,
                round((GROUND_AMSL + HEIGHT) * 1000),
                round(HEIGHT * 1000),
                0,
                800,
                0,
                round(float(yaw[k]) * 100),
            ),
        )
        w.add(
            gcs + 0.01,
            mavlink.MAVLink_gps_raw_int_message(
                round(t * 1e6),
                3 if fix else 0,
                lat_i,
                lon_i,
                round((GROUND_AMSL + HEIGHT) * 1000),
                80,
                120,
                800,
                0,
                14 if fix else 0,
            ),
        )
        if t - last_sys >= 1.0:
            last_sys = t
            w.add(gcs, mavlink.MAVLink_system_time_message(round(t * 1e6), boot_ms))
            w.add(gcs, mavlink.MAVLink_heartbeat_message(2, 3, 217, 3, 4, 3))
    ev = flight.events
    for i, t in enumerate(flight.t_events.tolist() if feedback else []):
        w.add(
            t + 0.05,
            mavlink.MAVLink_camera_feedback_message(
                round(t * 1e6),
                1,
                0,
                i + 1,
                round(float(ev["lat"].values[i]) * 1e7),
                round(float(ev["lon"].values[i]) * 1e7),
                GROUND_AMSL + HEIGHT,
                HEIGHT,
                0.0,
                0.0,
                float(ev["yaw"].values[i]),
                8.8,
                0,
                i + 1,
            ),
        )
    w.write(path)
    return path, w


def _hashes(*paths: Path) -> dict[str, str]:
    files = [f for p in paths for f in (sorted(p.rglob("*")) if p.is_dir() else [p])]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


@pytest.fixture(scope="module")
def flight() -> Flight:
    return make_flight()


@pytest.fixture(scope="module")
def tlog(flight: Flight, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_survey_tlog(flight, tmp_path_factory.mktemp("log") / "flight.tlog")
    return path


@pytest.fixture(scope="module")
def photos(flight: Flight, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One photo per camera event, the camera clock OFFSET s ahead of the log (no GPS)."""
    folder = tmp_path_factory.mktemp("photos")
    write_flight_photos(folder, flight, offset_s=OFFSET)
    return folder


def _xy(lon: Any, lat: Any) -> np.ndarray:
    x, y = _TO_M.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.column_stack([x, y])


def _site_file(path: Path, geom_m: shapely.Geometry) -> Path:
    ll = shapely.transform(geom_m, lambda c: np.column_stack(_TO_LL.transform(c[:, 0], c[:, 1])))
    doc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"name": "site"}, "geometry": mapping(ll)}],
    }
    path.write_text(json.dumps(doc))
    return path


# Every footprint (90 x 60 m at 60 m with the Phantom 4 Pro) covers this site with the whole
# flight: lines at x = X0 .. X0 + 120 every 30 m, photos at y = Y0 .. Y0 + 160 every 16 m.
SITE_M = box(X0 - 20.0, Y0 - 10.0, X0 + 140.0, Y0 + 170.0)


def test_log_and_photos_offset_recovered_and_every_output_written(
    tmp_path: Path, flight: Flight, tlog: Path, photos: Path
) -> None:
    site = _site_file(tmp_path / "site.geojson", SITE_M)
    before = _hashes(tlog, photos, site)
    out = tmp_path / "out"
    result = run_ingest(out, log=tlog, images=photos, site=site, camera="phantom4pro")

    report = json.loads((out / "report.json").read_text())
    assert report == result.report
    # the planted camera-clock offset, from the camera events
    assert abs(report["time_offset_s"] - OFFSET) < 0.1
    assert report["time_offset"]["method"] == "camera events"
    n = len(flight.t_events)
    assert report["images"] == report["images_matched"] == report["images_placed"] == n
    assert report["camera_events"] == n and report["unmatched_camera_events"] == 0
    assert report["position_sources"] == {"log": n}
    assert report["messages"] == 2015 and report["bad_packets"] == 0
    assert report["gps_points"] == flight.telemetry.sizes["time"]
    # the photos are where the camera events put them (to the 1e-7 degree of MAVLink)
    geo = json.loads((out / "photos.geojson").read_text())
    feats = sorted(geo["features"], key=lambda f: f["properties"]["name"])
    assert [tuple(f["properties"]) for f in feats] == [PHOTO_PROPERTIES] * n
    got = _xy([f["properties"]["lon"] for f in feats], [f["properties"]["lat"] for f in feats])
    np.testing.assert_allclose(got, flight.xy_events, atol=0.02)
    assert all(f["geometry"]["type"] == "Point" for f in feats)
    assert all(f["properties"]["qc"] == [] for f in feats)
    # exposure times on the log's clock: the camera's minus the offset
    t = np.array(
        [dt.datetime.fromisoformat(f["properties"]["time_utc"]).timestamp() for f in feats]
    )
    np.testing.assert_allclose(t, flight.t_events, atol=2e-3)
    # coverage of the site: complete with the whole flight, as planned
    cov = report["coverage"]
    assert cov["site"]["covered_pct"] == 100.0 and cov["site"]["holes"] == 0
    assert cov["gsd_cm_median"] == pytest.approx(1.645, abs=1e-3)
    assert cov["side_overlap_pct_median"] == pytest.approx(100 * (1 - 30 / 90), abs=0.01)
    assert report["coverage_holes"] == []
    # the files, with the interface's columns and lines
    with open(out / "telemetry.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == TELEMETRY_CSV_COLUMNS
    assert len(rows) - 1 == report["gps_points"]
    track = json.loads((out / "track.geojson").read_text())
    assert track["features"][0]["geometry"]["type"] == "LineString"
    lines = (out / "geo.txt").read_text().splitlines()
    assert lines[0] == "EPSG:4326" and len(lines) == n + 1
    assert sorted(p.name for p in out.iterdir()) == [
        "geo.txt",
        "photos.geojson",
        "report.json",
        "telemetry.csv",
        "track.geojson",
    ]
    assert result.outputs == {p.name: p for p in out.iterdir()}
    # provenance: inputs and outputs with their SHA-256
    assert report["inputs"]["log"]["sha256"] == hashlib.sha256(tlog.read_bytes()).hexdigest()
    assert set(report["inputs"]["images"]["sha256"]) == {p.name for p in photos.iterdir()}
    for name, rec in report["outputs"].items():
        assert rec["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert report["software"]["name"] == "sitewatch" and report["software"]["version"]
    assert report["parameters"]["time_offset"] == "auto"
    assert report["parameters"]["camera_model"]["name"] == "phantom4pro"
    assert all(set(w) >= {"reason", "message"} for w in report["warnings"])
    # originals byte-identical, nothing written beside them
    assert _hashes(tlog, photos, site) == before


def test_offset_from_photo_positions_without_camera_events(tmp_path: Path, flight: Flight) -> None:
    log_path, _ = write_survey_tlog(flight, tmp_path / "nofeedback.tlog", feedback=False)
    folder = tmp_path / "photos"
    write_flight_photos(folder, flight, offset_s=OFFSET, gps_noise_m=1.0, seed=4)
    result = run_ingest(tmp_path / "out", log=log_path, images=folder, camera="phantom4pro")
    report = result.report
    assert report["camera_events"] == 0 and report["images_matched"] == 0
    assert report["time_offset"]["method"] == "photo positions"
    assert abs(report["time_offset_s"] - OFFSET) < 0.1
    # interpolated along the log at the corrected times: within a metre of the truth
    placed = [p for p in result.geotag.photos if p.position_source == "interpolated"]
    assert len(placed) >= len(flight.t_events) - 1
    idx = [int(p.name[4:8]) for p in placed]
    err = np.hypot(
        *(_xy([p.lon for p in placed], [p.lat for p in placed]) - flight.xy_events[idx]).T
    )
    assert err.max() < 1.0


def test_photos_with_their_own_gps_and_no_log(tmp_path: Path, flight: Flight) -> None:
    folder = tmp_path / "photos"
    write_flight_photos(folder, flight, gps_noise_m=0.0)
    out = tmp_path / "out"
    result = run_ingest(out, images=folder, camera="phantom4pro")
    report = result.report
    n = len(flight.t_events)
    assert report["position_sources"] == {"exif": n} and report["images_placed"] == n
    assert report["messages"] is None and report["gps_points"] is None
    assert report["time_offset_s"] is None and report["log"] is None
    assert sorted(p.name for p in out.iterdir()) == ["geo.txt", "photos.geojson", "report.json"]
    assert result.telemetry_csv is None and result.track_geojson is None
    assert [w["reason"] for w in report["warnings"]].count("no_log") == 1
    feats = json.loads((out / "photos.geojson").read_text())["features"]
    got = _xy([f["properties"]["lon"] for f in feats], [f["properties"]["lat"] for f in feats])
    np.testing.assert_allclose(got, flight.xy_events, atol=0.05)


def test_log_without_photos(tmp_path: Path, flight: Flight, tlog: Path) -> None:
    out = tmp_path / "out"
    result = run_ingest(out, log=tlog)
    report = result.report
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "telemetry.csv",
        "track.geojson",
    ]
    assert report["gps_points"] == flight.telemetry.sizes["time"]
    assert report["camera_events"] == len(flight.t_events)
    assert report["images"] == 0 and report["coverage"] is None
    assert result.geotag is None and result.qc is None
    assert "no_photos" in [w["reason"] for w in report["warnings"]]
    tel = result.flight.telemetry
    np.testing.assert_allclose(tel["lat"].values, flight.telemetry["lat"].values, atol=1e-7)


def test_damaged_log_keeps_good_records_and_reports_the_rest(
    tmp_path: Path, flight: Flight, photos: Path
) -> None:
    log_path, writer = write_survey_tlog(flight, tmp_path / "flight.tlog")
    data = bytearray(log_path.read_bytes())
    gpi = [r for r in writer.layout if r[2] == mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT]
    damaged = gpi[100:107]
    for offset, _length, _msgid in damaged:
        data[offset + 8 + 10 + 5] ^= 0xFF  # a byte of the latitude: the checksum fails
    bad = tmp_path / "damaged.tlog"
    bad.write_bytes(bytes(data))
    result = run_ingest(tmp_path / "out", log=bad, images=photos, camera="phantom4pro")
    report = result.report
    assert report["bad_packets"] == len(damaged)
    assert report["log"]["skipped"] == {"bad_crc": len(damaged)}
    assert report["gps_points"] == flight.telemetry.sizes["time"] - len(damaged)
    assert report["messages"] == len(writer.records) - len(damaged)
    skipped = [w for w in report["warnings"] if w["reason"] == "log_records_skipped"]
    assert len(skipped) == 1 and skipped[0]["bad_packets"] == len(damaged)
    # the good records still place every photo
    assert abs(report["time_offset_s"] - OFFSET) < 0.1
    assert report["images_placed"] == len(flight.t_events)


def test_coverage_hole_where_photos_were_removed(
    tmp_path: Path, flight: Flight, tlog: Path
) -> None:
    centre = np.array([X0 + 60.0, Y0 + 80.0])
    d = np.abs(flight.xy_events - centre)
    gone = (d[:, 0] <= 31.0) & (d[:, 1] < 40.0)
    assert gone.sum() == 15  # 5 photos on each of the 3 middle lines
    keep = np.flatnonzero(~gone).tolist()
    folder = tmp_path / "photos"
    write_flight_photos(folder, flight, offset_s=OFFSET, keep=keep)
    site = _site_file(tmp_path / "site.geojson", SITE_M)
    result = run_ingest(
        tmp_path / "out",
        log=tlog,
        images=folder,
        site=site,
        camera="phantom4pro",
        qc_params=QCParams(cell_m=1.0),
    )
    report = result.report
    assert report["images_matched"] == len(keep) and report["unmatched_camera_events"] == 15
    assert abs(report["time_offset_s"] - OFFSET) < 0.1
    # no photo sees |x - cx| < 45 - 30 and |y - cy| < 48 - 30: a 30 x 36 m hole
    site_cov = report["coverage"]["site"]
    assert site_cov["holes"] == 1
    assert site_cov["holes_m2"] == pytest.approx(30 * 36, rel=0.03)
    assert site_cov["covered_pct"] == pytest.approx(100 * (1 - 30 * 36 / SITE_M.area), abs=0.1)
    (hole,) = report["coverage_holes"]
    assert hole["coverage_of"] == "site"
    assert hole["area_m2"] == pytest.approx(30 * 36, rel=0.03)
    c = _xy([hole["centroid_lon"]], [hole["centroid_lat"]])[0]
    assert np.hypot(*(c - centre)) < 2.0
    warned = [w for w in report["warnings"] if w["reason"] == "coverage_hole"]
    assert len(warned) == 1 and warned[0]["holes"] == 1
    assert Point(*c).within(SITE_M)


def test_plan_folder_gives_the_planned_area_and_camera(
    tmp_path: Path, flight: Flight, tlog: Path, photos: Path
) -> None:
    from flightplans import PlanParams, get_camera, plan_survey, write_mission_files

    cam = get_camera("phantom4pro")
    area = box(X0 + 10.0, Y0 + 10.0, X0 + 110.0, Y0 + 150.0)
    plan = plan_survey(area, PlanParams(alt_m=HEIGHT, camera=cam, angle_deg=0.0), crs=UTM)
    write_mission_files(plan, tmp_path / "plan")
    result = run_ingest(tmp_path / "out", log=tlog, images=photos, plan=tmp_path / "plan")
    cov = result.report["coverage"]
    assert cov["planned_gsd_cm"] == pytest.approx(cam.gsd_cm(HEIGHT), abs=1e-3)
    assert cov["gsd_cm_median"] == pytest.approx(cam.gsd_cm(HEIGHT), abs=1e-3)
    assert cov["site"]["covered_pct"] == 100.0  # the plan's site
    assert cov["planned_area"]["covered_pct"] == 100.0
    assert any("camera model from the plan" in w["message"] for w in result.report["warnings"])
    assert set(result.report["inputs"]["plan"]["sha256"]) == {"mission.geojson", "summary.json"}


def test_geotagged_copies_on_request(tmp_path: Path, tlog: Path, photos: Path) -> None:
    from survey.ingest.images import read_image

    before = _hashes(photos)
    copies = tmp_path / "copies"
    result = run_ingest(tmp_path / "out", log=tlog, images=photos, geotagged_copies=copies)
    assert _hashes(photos) == before
    assert len(result.geotagged_copies) == result.report["images"]
    by_name = {p.name: p for p in result.geotag.photos}
    for path in result.geotagged_copies[:3]:
        rec = read_image(path)
        assert rec.lat == pytest.approx(by_name[path.name].lat, abs=1e-7)
        assert rec.lon == pytest.approx(by_name[path.name].lon, abs=1e-7)
    assert set(result.report["outputs"]["geotagged_copies"]["sha256"]) == {
        p.name for p in result.geotagged_copies
    }
    with pytest.raises(OutputError, match="folder of the original photos"):
        run_ingest(tmp_path / "out2", log=tlog, images=photos, geotagged_copies=photos)


# --- one clear line for every malformed input ---------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_missing_log_is_one_line(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(InputFileError) as exc:
        run_ingest(tmp_path / "out", log=tmp_path / "nope.tlog", images=photos)
    assert "nope.tlog" in _one_line(exc)
    assert not (tmp_path / "out" / "report.json").exists()


def test_log_without_a_fix_is_one_line(tmp_path: Path, flight: Flight, photos: Path) -> None:
    log_path, _ = write_survey_tlog(flight, tmp_path / "nofix.tlog", fix=False)
    with pytest.raises(TelemetryError) as exc:
        run_ingest(tmp_path / "out", log=log_path, images=photos)
    text = _one_line(exc)
    assert "nofix.tlog" in text and "fix" in text


def test_empty_images_folder_is_one_line(tmp_path: Path, tlog: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a photo")
    with pytest.raises(InputFileError) as exc:
        run_ingest(tmp_path / "out", log=tlog, images=empty)
    assert str(empty) in _one_line(exc) and "no photos" in str(exc.value)


def test_unreadable_photos_are_one_line(tmp_path: Path, tlog: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "IMG_0001.JPG").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(InputFileError) as exc:
        run_ingest(tmp_path / "out", log=tlog, images=folder)
    assert "none of its 1 photo file(s) can be read" in _one_line(exc)


def test_photos_without_position_and_no_log_is_one_line(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(GeotagError) as exc:
        run_ingest(tmp_path / "out", images=photos)
    assert "carries a GPS position" in _one_line(exc) and "--log" in str(exc.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({}, InputFileError, "nothing to ingest"),
        ({"time_offset": "soon"}, GeotagError, "'soon'"),
        ({"camera": "hasselblad9000"}, Exception, "unknown camera"),
    ],
)
def test_bad_arguments_are_one_line_before_any_work(
    tmp_path: Path, tlog: Path, kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    args = {"log": tlog, **kwargs} if kwargs else {}
    with pytest.raises(error) as exc:
        run_ingest(tmp_path / "out", **args)
    assert words in _one_line(exc)
    assert not (tmp_path / "out").exists()


def test_out_in_the_photos_folder_is_refused(tmp_path: Path, photos: Path) -> None:
    before = _hashes(photos)
    with pytest.raises(OutputError) as exc:
        run_ingest(photos, images=photos)
    assert "folder of the original photos" in _one_line(exc)
    assert _hashes(photos) == before


def test_dem_gives_the_footprints_and_is_left_alone(tmp_path: Path) -> None:
    from affine import Affine

    from survey.rasters import write_geotiff

    short = make_flight(n_lines=2, length=64.0)  # 10 photos: footprints on a DEM are slower
    tlog, _ = write_survey_tlog(short, tmp_path / "short.tlog")
    photos = tmp_path / "photos"
    write_flight_photos(photos, short, offset_s=OFFSET)
    dem_dir = tmp_path / "dem"
    dem = write_geotiff(
        dem_dir / "dem.tif",
        np.full((300, 300), GROUND_AMSL, dtype=np.float32),
        transform=Affine(1.0, 0.0, X0 - 80.0, 0.0, -1.0, Y0 + 230.0),
        crs=UTM,
        nodata=-9999.0,
    )
    before = _hashes(dem_dir)
    result = run_ingest(tmp_path / "out", log=tlog, images=photos, dem=dem, camera="phantom4pro")
    cov = result.report["coverage"]
    # 80 m above sea level over ground at 20 m: the 60 m of the flight, the same GSD
    assert cov["gsd_cm_median"] == pytest.approx(1.645, abs=1e-3)
    assert cov["footprints"] == result.report["images"]
    assert not any("take-off level" in w["message"] for w in result.report["warnings"])
    assert result.report["inputs"]["dem"]["sha256"] == before[str(dem)]
    assert _hashes(dem_dir) == before  # no .aux.xml or anything else beside it
