"""The log data model: GPS time to UTC, boot clocks, the Datasets, telemetry.csv, track.geojson."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymavlink.DFReader import DFReaderClock

from survey.ingest import TELEMETRY_CSV_COLUMNS, read_log, write_telemetry_csv, write_track_geojson
from survey.ingest.telemetry import (
    NS,
    FlightLog,
    LogTally,
    align_boot_clock,
    gps_to_utc,
    interp_attitude,
    leap_seconds_at,
    make_camera_events,
    make_flight_log,
    make_telemetry,
)
from tests.survey.ingest.test_tlog import write_flight_tlog


def _iso(ns: np.ndarray) -> str:
    return str(np.datetime64(int(ns[0]), "ns"))


@pytest.mark.parametrize(
    ("week", "ms", "utc"),
    [
        (1930, 18_000, "2017-01-01T00:00:00"),  # the 18th leap second starts
        (1929, 604_799_000, "2016-12-31T23:59:42"),  # one GPS second before: still 17
        (2000, 0, "2018-05-05T23:59:42"),
        (1905, 333_987_200, "2016-07-13T20:46:10.200"),  # the real ArduCopter log's first fix
        (1356, 0, "2005-12-31T23:59:47"),  # 13 s until 2006-01-01
        (0, 0, "1980-01-06T00:00:00"),
    ],
)
def test_gps_week_and_ms_to_utc(week: int, ms: int, utc: str) -> None:
    assert np.datetime64(int(gps_to_utc(week, ms)[0]), "ns") == np.datetime64(utc, "ns")


@given(st.integers(1930, 3000), st.integers(0, 604_799_999))
def test_after_2017_utc_agrees_with_pymavlink(week: int, ms: int) -> None:
    # pymavlink's DataFlash clock subtracts a fixed 18 s, right for every date since 2017
    theirs = DFReaderClock()._gpsTimeToTime(week, ms)
    ours = int(gps_to_utc(week, ms)[0]) / NS
    if week == 1930 and ms < 18_000:  # still 2016 in UTC: 17 leap seconds, not pymavlink's 18
        assert ours == pytest.approx(theirs + 1.0, abs=1e-6)
    else:
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_leap_seconds_by_date() -> None:
    gps_s = (np.array(["2015-06-30T12:00", "2015-07-02", "2019-01-01"], "datetime64[s]")
             .astype(np.int64) - 315_964_800)  # fmt: skip
    assert leap_seconds_at(gps_s).tolist() == [16, 17, 18]


def test_boot_clock_follows_a_drifting_crystal_and_drops_an_absurd_reference() -> None:
    boot = np.arange(0, 3600, 1.0)  # one reference a second for an hour
    utc = 1.7e9 + boot * (1 + 50e-6)  # the crystal runs 50 ppm slow: 0.18 s in the hour
    ref_boot = (boot * NS).astype(np.int64)
    ref_utc = (utc * NS).astype(np.int64)
    ref_utc[1800] += 30 * NS  # one GPS time 30 s off
    t = (np.array([10.25, 1800.5, 3599.0]) * NS).astype(np.int64)
    got, dropped = align_boot_clock(t, ref_boot, ref_utc)
    expected = 1.7e9 + np.array([10.25, 1800.5, 3599.0]) * (1 + 50e-6)
    np.testing.assert_allclose(got / NS, expected, atol=2e-6, rtol=0)
    assert dropped == 1


def test_attitude_interpolation_wraps_yaw_and_leaves_gaps_unknown() -> None:
    att_t = (np.array([0.0, 0.1, 0.2, 10.0]) * NS).astype(np.int64)
    yaw = np.array([350.0, 0.0, 10.0, 10.0])
    t = (np.array([0.05, 0.15, 5.0]) * NS).astype(np.int64)
    r, p, y = interp_attitude(t, att_t, np.zeros(4), np.ones(4), yaw)
    np.testing.assert_allclose(y[:2], [355.0, 5.0])
    assert np.isnan(y[2]) and np.isnan(r[2]) and np.isnan(p[2])  # 4.8 s from any sample


def test_telemetry_is_sorted_unique_and_typed() -> None:
    tally = LogTally(Path("x.tlog"), "tlog")
    t = np.array([3, 1, 2, 2], dtype=np.int64) * NS
    ds = make_telemetry(
        t,
        lat=np.array([3.0, 1, 2, 2.5]),
        lon=np.zeros(4),
        yaw=np.array([-10.0, 370, 0, 0]),
        fix_type=np.array([3, 3, 3, 3]),
        tally=tally,
    )
    assert ds["lat"].values.tolist() == [1.0, 2.0, 3.0]  # the first of the two at t = 2 kept
    assert ds["yaw"].values.tolist() == [10.0, 0.0, 350.0]
    assert tally.skipped == {"duplicate_time": 1}
    assert ds["satellites"].values.tolist() == [-1, -1, -1]
    assert np.isnan(ds["alt_rel"].values).all()
    assert ds["time"].dtype == np.dtype("datetime64[ns]") and ds["fix_type"].dtype == np.int8


def test_compact_telemetry_is_float32_and_keeps_yaw_below_360() -> None:
    t = np.array([1, 2, 3], dtype=np.int64) * NS
    yaw = np.array([-1e-6, 359.99999, 10.0])
    ds = make_telemetry(t, lat=np.full(3, 30.123456789), lon=np.zeros(3), yaw=yaw, compact=True)
    assert ds["yaw"].dtype == np.float32 and ds["lat"].dtype == np.float64
    # both round to 360 in float32; a yaw is in [0, 360)
    assert ds["yaw"].values.tolist() == [0.0, 0.0, 10.0]
    assert ds["lat"].values[0] == 30.123456789
    assert yaw[0] == -1e-6  # the caller's arrays are left alone


def test_camera_events_are_sorted_and_duplicates_dropped() -> None:
    tally = LogTally(Path("x.tlog"), "tlog")
    t = np.array([5, 3, 3, 4], dtype=np.int64) * NS
    ev = make_camera_events(
        t,
        source=["CAM", "CAM", "CAM", "TRIG"],
        image_index=np.array([3, 1, 1, 2]),
        yaw=np.array([370.0, -90, -90, 0]),
        tally=tally,
    )
    assert ev["image_index"].values.tolist() == [1, 2, 3]
    assert ev["source"].values.tolist() == ["CAM", "TRIG", "CAM"]
    assert ev["yaw"].values.tolist() == [270.0, 0.0, 10.0]
    assert ev["time"].values.astype(np.int64).tolist() == [3 * NS, 4 * NS, 5 * NS]
    assert tally.skipped == {"duplicate_time": 1}
    assert np.isnan(ev["lat"].values).all() and ev["shot"].values.tolist() == [0, 1, 2]


def _flight(times_s: list[float], lat: list[float], alt: list[float]) -> FlightLog:
    tally = LogTally(Path("/data/flight 1.tlog"), "tlog")
    t = (np.array(times_s) * NS).astype(np.int64) + 1_714_532_400 * NS
    tel = make_telemetry(
        t,
        lat=np.array(lat),
        lon=np.full(len(lat), 120.25),
        alt_amsl=np.array(alt),
        fix_type=np.full(len(lat), 3),
        satellites=np.full(len(lat), 10),
    )
    ev = make_camera_events(t[:1], source="CAMERA_FEEDBACK")
    return make_flight_log(tally, tel, ev, "vehicle SYSTEM_TIME")


def test_telemetry_csv_columns_and_values(tmp_path: Path) -> None:
    flight = _flight([0.0, 0.2, 0.4], [30.1, 30.2, 30.3], [100.0, math.nan, 102.5])
    out = write_telemetry_csv(flight, tmp_path / "out" / "telemetry.csv")
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == TELEMETRY_CSV_COLUMNS
    assert rows[0] == [
        "time_utc", "lat", "lon", "alt_amsl_m", "alt_rel_m", "roll_deg", "pitch_deg",
        "yaw_deg", "groundspeed_ms", "fix_type", "satellites",
    ]  # fmt: skip
    assert rows[1][:4] == ["2024-05-01T03:00:00.000000Z", "30.10000000", "120.25000000", "100.000"]
    assert rows[2][0] == "2024-05-01T03:00:00.200000Z" and rows[2][3] == ""  # unknown: empty
    assert rows[3][9:] == ["3", "10"]
    assert len(rows) == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["telemetry.csv"]  # no temporary


def test_track_geojson_is_rfc7946_split_at_gaps(tmp_path: Path) -> None:
    flight = _flight([0, 1, 2, 100, 101, 300], [30.0, 30.1, 30.2, 30.3, 30.4, 30.5], [50] * 6)
    doc = json.loads(write_track_geojson(flight, tmp_path / "track.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    kinds = [f["geometry"]["type"] for f in doc["features"]]
    assert kinds == ["LineString", "LineString", "Point"]
    first = doc["features"][0]
    assert first["geometry"]["coordinates"][0] == [120.25, 30.0, 50.0]  # lon, lat, alt
    assert first["properties"] == {
        "start_time": "2024-05-01T03:00:00.000000Z",
        "end_time": "2024-05-01T03:00:02.000000Z",
        "n_points": 3,
        "source_file": "flight 1.tlog",
        "log_format": "tlog",
        "time_source": "vehicle SYSTEM_TIME",
    }


def test_read_then_write_a_tlog_round_trips(tmp_path: Path) -> None:
    truth = write_flight_tlog(tmp_path / "flight.tlog")
    flight = read_log(truth.path)
    csv_path = write_telemetry_csv(flight, tmp_path / "telemetry.csv")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == truth.gpi_t.size
    np.testing.assert_allclose([float(r["lat"]) for r in rows], truth.lat, atol=1e-8)
    doc = json.loads(write_track_geojson(flight, tmp_path / "track.geojson").read_text())
    (feature,) = doc["features"]
    assert feature["properties"]["n_points"] == truth.gpi_t.size
    assert json.loads(json.dumps(flight.report.to_dict()))["path"] == str(truth.path)
