"""Camera-clock offset, pairing with camera events, interpolation (survey.ingest.geotag)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from survey.errors import SurveyError
from survey.ingest.geotag import (
    GeotagError,
    estimate_offset_from_events,
    geotag,
    interpolate_telemetry,
    match_events,
    mission_planner_offset,
)
from survey.ingest.images import read_images
from tests.survey.ingest._flight import HEIGHT, UTM, Flight, make_flight, write_flight_photos

OFFSET = 3.217  # camera clock ahead of the log, seconds


@pytest.fixture(scope="module")
def flight() -> Flight:
    return make_flight()


def _xy(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, UTM, always_xy=True).transform(lon, lat)
    return np.column_stack([x, y])


def test_offset_from_events_beats_mission_planner_with_missing_and_extra_photos(
    tmp_path: Path, flight: Flight
) -> None:
    n = len(flight.t_events)
    keep = [i for i in range(n) if i not in (0, 1, 17, 30)]  # the first two never saved
    write_flight_photos(tmp_path, flight, offset_s=OFFSET, keep=keep)
    # an extra photo: a test shot on the ground 40 s before take-off
    from tests.survey.ingest._flight import texture, write_photo

    t_test = dt.datetime.fromtimestamp(flight.t_events[0] - 40.0 + OFFSET, dt.UTC)
    write_photo(tmp_path / "IMG_TEST.JPG", texture(99), time=t_test)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    images = read_images(tmp_path).images
    photo_s = np.array([im.time_utc.timestamp() for im in images if im.time_utc is not None])

    mp = mission_planner_offset(photo_s, flight.t_events)
    ours, _pairs = estimate_offset_from_events(photo_s, flight.t_events)
    assert abs(ours.offset_s - OFFSET) < 0.1
    assert abs(mp - OFFSET) > 1.0  # the floor: off by trigger intervals
    assert ours.method == "camera events" and ours.n_used == len(keep)

    result = geotag(images, flight.telemetry, flight.events)
    assert result.offset is not None and abs(result.offset.offset_s - OFFSET) < 0.1
    assert result.images_matched == len(keep)
    assert result.unmatched_events == (0, 1, 17, 30)
    assert result.unmatched_images == ("IMG_TEST.JPG",)
    for p in result.photos:
        if p.name == "IMG_TEST.JPG":
            assert p.event_index == -1
            continue
        assert p.event_index == int(p.name[4:8])  # IMG_0012.JPG is shot 12
        assert p.position_source == "log"
        truth = flight.xy_events[p.event_index]
        got = _xy(np.array([p.lon]), np.array([p.lat]))[0]
        assert np.hypot(*(got - truth)) < 0.01
        assert p.time_utc is not None
        assert abs(p.time_utc.timestamp() - flight.t_events[p.event_index]) < 1e-3
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert after == before


def test_pairing_whole_second_times_keeps_order(flight: Flight) -> None:
    # no SubSec: times truncated to whole seconds, several photos per second
    e = flight.t_events[:30]
    photos = np.floor(e + 0.4)
    pairs = match_events(photos, e, 0.0, 1.0)
    assert pairs == [(i, i) for i in range(30)]


def test_match_events_skips_missing_and_extra() -> None:
    e = np.arange(0.0, 20.0, 2.0)  # 10 events
    p = np.array([2.1, 4.0, 5.0, 8.05, 9.9, 14.0, 16.1, 18.0, np.nan]) + 100.0
    pairs = match_events(p, e, 100.0, 0.5)
    assert pairs == [(0, 1), (1, 2), (3, 4), (4, 5), (5, 7), (6, 8), (7, 9)]


def test_offset_from_photo_positions(tmp_path: Path, flight: Flight) -> None:
    write_flight_photos(tmp_path, flight, offset_s=OFFSET, gps_noise_m=1.5, seed=3)
    images = read_images(tmp_path).images
    result = geotag(images, flight.telemetry)  # no camera events
    assert result.offset is not None and result.offset.method == "photo positions"
    assert abs(result.offset.offset_s - OFFSET) < 0.1
    sources = [p.position_source for p in result.photos]
    # the first photo's shifted time may fall a few ms before the log: it keeps its own
    assert sources.count("interpolated") >= len(sources) - 1
    assert set(sources) <= {"interpolated", "exif"}


def test_camera_on_local_time_is_found(tmp_path: Path, flight: Flight) -> None:
    offset = 8 * 3600 + 2.5
    keep = [i for i in range(len(flight.t_events)) if i not in (5, 40)]
    write_flight_photos(tmp_path, flight, offset_s=offset, keep=keep)
    result = geotag(read_images(tmp_path).images, flight.telemetry, flight.events)
    assert result.offset is not None and abs(result.offset.offset_s - offset) < 0.1
    assert any("UTC+08:00" in w for w in result.warnings)
    assert result.images_matched == len(keep)


def test_interpolated_positions_are_within_the_truth(tmp_path: Path, flight: Flight) -> None:
    write_flight_photos(tmp_path, flight, offset_s=OFFSET)
    images = read_images(tmp_path).images
    result = geotag(images, flight.telemetry, None, time_offset=OFFSET)
    assert result.offset is not None and result.offset.method == "given"
    got = _xy(np.array([p.lon for p in result.photos]), np.array([p.lat for p in result.photos]))
    idx = [int(p.name[4:8]) for p in result.photos]
    err = np.hypot(*(got - flight.xy_events[idx]).T)
    # straight lines at constant speed: linear is exact; at the corners of the lawnmower the
    # 5 Hz samples cut the turn by at most (8 m/s / 5 Hz) / 2 * sqrt(2) / 2 = 0.57 m
    assert np.median(err) < 0.01
    assert err.max() < 0.58
    yaw_err = []
    for p, i in zip(result.photos, idx, strict=True):
        assert p.position_source == "interpolated"
        assert p.alt_rel_m == pytest.approx(HEIGHT)
        yaw_err.append(abs((p.yaw_deg - flight.yaw_events[i] + 180) % 360 - 180))
        assert p.pitch_deg == -90.0 and p.sources["attitude"] == "log"
    # the heading turns at the line ends, where the photos at the corners sit
    on_line = np.array(yaw_err) < 1e-6
    assert on_line.sum() >= len(err) - 2 * flight.lines
    assert any("'gimbal' camera mount assumed" in w for w in result.warnings)


def _telemetry(t: np.ndarray, **values: np.ndarray) -> xr.Dataset:
    n = len(t)
    data = {
        k: ("time", np.full(n, np.nan))
        for k in ("lat", "lon", "alt_amsl", "alt_rel", "roll", "pitch", "yaw")
    }
    data.update({k: ("time", v) for k, v in values.items()})
    return xr.Dataset(data, coords={"time": (t * 1e9).astype("datetime64[ns]")})


def test_yaw_is_interpolated_on_the_circle_and_gaps_are_not_bridged() -> None:
    t = np.array([0.0, 1.0, 2.0, 10.0])
    ds = _telemetry(
        t,
        lat=np.array([1.0, 2.0, 3.0, 4.0]),
        lon=np.array([5.0, 5.0, 5.0, 5.0]),
        yaw=np.array([350.0, 10.0, 30.0, 40.0]),
        fix_type=np.array([3, 3, 1, 3], dtype=np.int8),
    )
    out = interpolate_telemetry(ds, np.array([0.5, 1.5, 5.0, -1.0]), max_gap_s=2.0)
    wrapped = float(out["yaw"][0]) % 360.0  # half-way from 350 to 10 degrees: north
    assert min(wrapped, 360.0 - wrapped) == pytest.approx(0.0, abs=1e-9)
    assert out["yaw"][1] == pytest.approx(20.0)
    assert out["lat"][0] == pytest.approx(1.5)
    assert math.isnan(out["lat"][1])  # the sample at t=2 has no fix: a 9 s gap from t=1
    assert math.isnan(out["yaw"][2])  # 2 -> 10 s gap
    assert math.isnan(out["lat"][3])  # before the log


def test_fixed_camera_takes_the_vehicle_attitude(tmp_path: Path) -> None:
    fl = make_flight(pitch_deg=-8.0)
    write_flight_photos(tmp_path, fl, keep=range(5))
    result = geotag(read_images(tmp_path).images, fl.telemetry, fl.events, camera_mount="fixed")
    assert all(p.pitch_deg == pytest.approx(-90.0) for p in result.photos)  # events: pitch 0
    result = geotag(
        read_images(tmp_path).images, fl.telemetry, None, camera_mount="fixed", time_offset=0.0
    )
    assert all(p.pitch_deg == pytest.approx(-98.0) for p in result.photos)


def test_photos_without_time_pair_in_order_when_counts_match(tmp_path: Path) -> None:
    fl = make_flight(n_lines=1)
    write_flight_photos(tmp_path, fl, with_time=False)
    images = read_images(tmp_path).images
    result = geotag(images, fl.telemetry, fl.events)
    assert result.images_matched == len(images)
    assert [p.event_index for p in result.photos] == list(range(len(images)))
    assert any("file-name order" in w for w in result.warnings)


def test_photos_alone_keep_their_own_positions(tmp_path: Path, flight: Flight) -> None:
    write_flight_photos(tmp_path, flight, keep=range(3), gps_noise_m=0.0)
    result = geotag(read_images(tmp_path).images)
    assert result.offset is None
    assert [p.position_source for p in result.photos] == ["exif"] * 3
    assert all(math.isnan(p.pitch_deg) for p in result.photos)


def test_bad_offset_is_one_clear_error(tmp_path: Path, flight: Flight) -> None:
    write_flight_photos(tmp_path, flight, keep=range(3))
    images = read_images(tmp_path).images
    with pytest.raises(GeotagError) as exc:
        geotag(images, flight.telemetry, time_offset="soon")
    assert isinstance(exc.value, SurveyError) and isinstance(exc.value, ValueError)
    assert "'soon'" in str(exc.value) and "--time-offset" in str(exc.value)
    with pytest.raises(GeotagError, match="no photo has a time"):
        estimate_offset_from_events(np.array([np.nan]), flight.t_events)


def test_evenly_spaced_shots_make_an_ambiguous_offset_that_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    e = np.arange(0.0, 20.0, 2.0)
    p = e[:4] + 2.0 + 1000.0  # 4 photos, offset 1002 s: also fits 1000, 998, ...
    off, pairs = estimate_offset_from_events(p, e)
    assert len(pairs) == 4
    assert off.offset_s % 2.0 == pytest.approx(0.0)
    assert "ambiguous" in caplog.text
