"""MAVLink telemetry logs (.tlog) written with pymavlink's encoder, read back with known answers.

:class:`TlogWriter` and :func:`write_flight_tlog` are also used by ``test_bad_logs.py`` and
``test_telemetry.py``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from survey.errors import TelemetryError
from survey.ingest import read_log
from survey.ingest.mavlink import read_tlog

T0 = 1_714_532_400.0  # 2024-05-01T03:00:00Z, the vehicle's UTC when the log starts
BOOT0 = 100.0  # the vehicle booted this many seconds before the log starts
LAT0, LON0 = 30.1, 120.2
GCS_AHEAD = 0.4  # the ground station's clock runs this far ahead of UTC


class TlogWriter:
    """A tlog as a ground station writes it: big-endian µs receive time, then the frame."""

    def __init__(self) -> None:
        self.records: list[tuple[float, bytes]] = []
        self._links: dict[tuple[int, int], Any] = {}

    def link(self, sysid: int, compid: int) -> Any:
        key = (sysid, compid)
        if key not in self._links:
            self._links[key] = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=compid)
        return self._links[key]

    def add(
        self,
        gcs_time_s: float,
        msg: Any,
        *,
        sysid: int = 1,
        compid: int = 1,
        mavlink1: bool = False,
    ) -> None:
        mav = self.link(sysid, compid)
        frame = msg.pack(mav, force_mavlink1=mavlink1)
        mav.seq = (mav.seq + 1) % 256
        self.records.append((gcs_time_s, frame))

    def to_bytes(self) -> bytes:
        """The file; ``self.layout`` gets (offset, length, message id) of each record."""
        order = sorted(range(len(self.records)), key=lambda i: self.records[i][0])
        out = bytearray()
        self.layout: list[tuple[int, int, int]] = []
        for i in order:
            gcs_time, frame = self.records[i]
            msgid = frame[5] if frame[0] == 0xFE else int.from_bytes(frame[7:10], "little")
            self.layout.append((len(out), 8 + len(frame), msgid))
            out += struct.pack(">Q", round(gcs_time * 1e6)) + frame
        return bytes(out)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.to_bytes())
        return path


@dataclass
class FlightTruth:
    """What was planted in a synthetic tlog."""

    path: Path
    gpi_t: np.ndarray  # UTC seconds of the GLOBAL_POSITION_INT records
    lat: np.ndarray
    lon: np.ndarray
    alt_amsl: np.ndarray
    alt_rel: np.ndarray
    yaw: np.ndarray
    shot_t: np.ndarray  # UTC seconds of the camera feedbacks
    shot_index: np.ndarray
    records: int
    writer: TlogWriter


def truth_position(t: np.ndarray) -> tuple[np.ndarray, ...]:
    """lat, lon, alt_amsl, alt_rel, yaw of the planted flight at ``t`` s after the log start."""
    lat = LAT0 + 1e-5 * t
    lon = LON0 + 2e-5 * t
    alt_amsl = 150.0 + 0.1 * t
    alt_rel = 100.0 + 0.1 * t
    yaw = (350.0 + 1.0 * t) % 360.0
    return lat, lon, alt_amsl, alt_rel, yaw


def write_flight_tlog(
    path: Path,
    *,
    duration_s: float = 60.0,
    system_time: bool = True,
    gps_utc: bool = True,
    feedback: bool = True,
    mavlink1: bool = False,
    signed: bool = False,
    seed: int = 0,
    writer: TlogWriter | None = None,
    boot0: float = BOOT0,
    t_offset: float = 0.0,
    gcs_ahead: float = GCS_AHEAD,
) -> FlightTruth:
    """A 60 s straight flight: GLOBAL_POSITION_INT and GPS_RAW_INT at 5 Hz, ATTITUDE at 10 Hz,
    SYSTEM_TIME, HEARTBEAT and VFR_HUD, CAMERA_FEEDBACK every 2 s; each record reaches the
    ground station 20-50 ms after the vehicle stamped it, on a clock ``gcs_ahead`` s fast.
    """
    rng = np.random.default_rng(seed)
    w = writer or TlogWriter()
    if signed:
        mav = w.link(1, 1)
        mav.signing.secret_key = bytes(range(32))
        mav.signing.link_id = 0
        mav.signing.timestamp = 1
        mav.signing.sign_outgoing = True

    def gcs(t: float) -> float:
        return T0 + t_offset + t + gcs_ahead + 0.02 + float(rng.uniform(0.0, 0.03))

    def boot_ms(t: float) -> int:
        return round((boot0 + t) * 1000)

    n = round(duration_s * 10)
    gpi_t = []
    for k in range(n):
        t = k / 10.0
        lat, lon, alt_amsl, alt_rel, yaw = truth_position(np.array([t]))
        yaw_rad = math.radians(float(yaw[0]))
        yaw_rad = yaw_rad - 2 * math.pi if yaw_rad > math.pi else yaw_rad
        w.add(
            gcs(t),
            mavlink.MAVLink_attitude_message(
                boot_ms(t), math.radians(2.0), math.radians(-3.0), yaw_rad, 0, 0, 0
            ),
            mavlink1=mavlink1,
        )
        if k % 2 == 0:
            lat_i, lon_i = round(float(lat[0]) * 1e7), round(float(lon[0]) * 1e7)
            w.add(
                gcs(t),
                mavlink.MAVLink_global_position_int_message(
                    boot_ms(t),
                    lat_i,
                    lon_i,
                    round(float(alt_amsl[0]) * 1000),
                    round(float(alt_rel[0]) * 1000),
                    111,
                    222,
                    0,
                    round(float(yaw[0]) * 100),
                ),
                mavlink1=mavlink1,
            )
            gpi_t.append(t)
            gps_time = round((T0 + t_offset + t) * 1e6) if gps_utc else round((boot0 + t) * 1e6)
            w.add(
                gcs(t + 0.05),
                mavlink.MAVLink_gps_raw_int_message(
                    gps_time, 3, lat_i, lon_i, round(float(alt_amsl[0]) * 1000), 80, 120, 250, 0, 12
                ),
                mavlink1=mavlink1,
            )
        if k % 10 == 0:
            if system_time:
                w.add(
                    gcs(t),
                    mavlink.MAVLink_system_time_message(
                        round((T0 + t_offset + t) * 1e6), boot_ms(t)
                    ),
                    mavlink1=mavlink1,
                )
            w.add(gcs(t), mavlink.MAVLink_heartbeat_message(2, 3, 217, 3, 4, 3))
            w.add(gcs(t), mavlink.MAVLink_vfr_hud_message(0, 2.5, 0, 50, 150.0, 0))
    shot_t = np.arange(1.0, duration_s, 2.0)
    if feedback:
        for i, t in enumerate(shot_t):
            lat, lon, alt_amsl, alt_rel, yaw = truth_position(np.array([t]))
            w.add(
                gcs(t),
                mavlink.MAVLink_camera_feedback_message(
                    round((T0 + t_offset + t) * 1e6),
                    1,
                    0,
                    i + 1,
                    round(float(lat[0]) * 1e7),
                    round(float(lon[0]) * 1e7),
                    float(alt_amsl[0]),
                    float(alt_rel[0]),
                    2.0,
                    -3.0,
                    float(yaw[0]),
                    8.8,
                    0,
                    i + 1,
                ),
                mavlink1=mavlink1,
            )
    w.write(path)
    t_arr = np.array(gpi_t)
    lat, lon, alt_amsl, alt_rel, yaw = truth_position(t_arr)
    s_arr = shot_t if feedback else np.zeros(0)
    return FlightTruth(
        path=path,
        gpi_t=T0 + t_offset + t_arr,
        lat=lat,
        lon=lon,
        alt_amsl=alt_amsl,
        alt_rel=alt_rel,
        yaw=yaw,
        shot_t=T0 + t_offset + s_arr,
        shot_index=np.arange(1, s_arr.size + 1),
        records=len(w.records),
        writer=w,
    )


def seconds(times: np.ndarray) -> np.ndarray:
    """datetime64[ns] → float seconds since the Unix epoch."""
    return times.astype("datetime64[ns]").astype(np.int64) / 1e9


# --- known answers --------------------------------------------------------------------------------


def test_positions_times_and_attitude_are_the_planted_ones(tmp_path: Path) -> None:
    truth = write_flight_tlog(tmp_path / "flight.tlog")
    flight = read_log(truth.path)
    tel = flight.telemetry
    assert flight.report.format == "tlog"
    assert flight.report.messages == truth.records
    assert flight.report.bad_packets == 0 and flight.report.skipped == {}
    assert flight.report.gps_points == truth.gpi_t.size == tel.sizes["time"]
    # SYSTEM_TIME pairs the boot clock with UTC exactly: times to the microsecond
    np.testing.assert_allclose(seconds(tel["time"].values), truth.gpi_t, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tel["lat"].values, truth.lat, atol=1e-7)
    np.testing.assert_allclose(tel["lon"].values, truth.lon, atol=1e-7)
    np.testing.assert_allclose(tel["alt_amsl"].values, truth.alt_amsl, atol=1e-3)
    np.testing.assert_allclose(tel["alt_rel"].values, truth.alt_rel, atol=1e-3)
    np.testing.assert_allclose(tel["roll"].values, 2.0, atol=1e-4)
    np.testing.assert_allclose(tel["pitch"].values, -3.0, atol=1e-4)
    # yaw crosses north at t = 10 s: on the circle, never through 180
    dyaw = (tel["yaw"].values - truth.yaw + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(dyaw, 0.0, atol=1e-3)
    assert ((tel["yaw"].values >= 0) & (tel["yaw"].values < 360)).all()
    np.testing.assert_allclose(tel["groundspeed"].values, math.hypot(1.11, 2.22), atol=1e-9)
    assert (tel["fix_type"].values == 3).all() and (tel["satellites"].values == 12).all()
    assert tel["time"].dtype == np.dtype("datetime64[ns]")
    assert tel["fix_type"].dtype == np.int8 and tel["satellites"].dtype == np.int16
    assert (np.diff(tel["time"].values.astype(np.int64)) > 0).all()
    assert "SYSTEM_TIME" in flight.report.time_source
    assert flight.report.warnings == ()  # a ground-station clock 0.4 s off is not worth one


def test_a_ground_station_clock_far_off_is_reported_not_used(tmp_path: Path) -> None:
    truth = write_flight_tlog(tmp_path / "flight.tlog", gcs_ahead=5.0)
    flight = read_tlog(truth.path)
    np.testing.assert_allclose(seconds(flight.telemetry["time"].values), truth.gpi_t, atol=1e-6)
    (offset,) = [w for w in flight.report.warnings if w["reason"] == "clock_offset"]
    assert -5.05 < offset["vehicle_minus_ground_station_s"] < -5.02  # 5 s + median latency


def test_camera_feedback_events_carry_their_time_position_and_index(tmp_path: Path) -> None:
    truth = write_flight_tlog(tmp_path / "flight.tlog")
    ev = read_tlog(truth.path).camera_events
    assert ev.sizes["shot"] == truth.shot_t.size == 30
    np.testing.assert_allclose(seconds(ev["time"].values), truth.shot_t, atol=1e-6, rtol=0)
    lat, lon, alt_amsl, alt_rel, yaw = truth_position(truth.shot_t - T0)
    np.testing.assert_allclose(ev["lat"].values, lat, atol=1e-7)
    np.testing.assert_allclose(ev["lon"].values, lon, atol=1e-7)
    np.testing.assert_allclose(ev["alt_amsl"].values, alt_amsl, atol=1e-4)
    np.testing.assert_allclose(ev["alt_rel"].values, alt_rel, atol=1e-4)
    np.testing.assert_allclose(ev["yaw"].values, yaw, atol=1e-4)
    np.testing.assert_array_equal(ev["image_index"].values, truth.shot_index)
    assert set(ev["source"].values.tolist()) == {"CAMERA_FEEDBACK"}
    assert ev["image_index"].dtype == np.int64


@pytest.mark.parametrize("variant", ["mavlink1", "signed"])
def test_mavlink1_and_signed_frames_read_the_same(tmp_path: Path, variant: str) -> None:
    base = write_flight_tlog(tmp_path / "v2.tlog")
    other = write_flight_tlog(tmp_path / f"{variant}.tlog", **{variant: True})
    a, b = read_tlog(base.path), read_tlog(other.path)
    assert b.report.messages == other.records and b.report.bad_packets == 0
    np.testing.assert_array_equal(a.telemetry["lat"].values, b.telemetry["lat"].values)
    np.testing.assert_array_equal(a.telemetry["time"].values, b.telemetry["time"].values)
    assert b.camera_events.sizes["shot"] == 30


def test_without_system_time_the_ground_station_clock_is_used(tmp_path: Path) -> None:
    truth = write_flight_tlog(tmp_path / "flight.tlog", system_time=False)
    flight = read_tlog(truth.path)
    assert "ground-station" in flight.report.time_source
    # records arrive 20-50 ms after they were stamped; the least-delayed ones give the clock
    expected = truth.gpi_t + GCS_AHEAD + 0.02
    err = seconds(flight.telemetry["time"].values) - expected
    assert np.abs(err).max() < 0.005
    # the camera's UTC stamps are put on the same clock
    shot_err = seconds(flight.camera_events["time"].values) - (truth.shot_t + GCS_AHEAD + 0.02)
    assert np.abs(shot_err).max() < 0.005


def test_gps_raw_int_alone_gives_the_track(tmp_path: Path) -> None:
    w = TlogWriter()
    for k in range(50):
        t = k * 0.2
        w.add(
            T0 + t + 0.03,
            mavlink.MAVLink_gps_raw_int_message(
                round((T0 + t) * 1e6), 3, 301_000_000 + k, 1_202_000_000, 50_000, 80, 120, 300, 0, 9
            ),
        )
    path = w.write(tmp_path / "raw.tlog")
    flight = read_tlog(path)
    tel = flight.telemetry
    assert tel.sizes["time"] == 50
    np.testing.assert_allclose(tel["lat"].values, (301_000_000 + np.arange(50)) * 1e-7, atol=1e-9)
    np.testing.assert_allclose(tel["groundspeed"].values, 3.0)
    assert np.isnan(tel["alt_rel"].values).all() and np.isnan(tel["roll"].values).all()
    assert "raw_gps_only" in {w["reason"] for w in flight.report.warnings}
    # GPS_RAW_INT's own UTC, put on the ground station's clock (30 ms later here)
    np.testing.assert_allclose(
        seconds(tel["time"].values), T0 + 0.2 * np.arange(50) + 0.03, atol=1e-3
    )


def test_a_reboot_in_the_log_keeps_both_flights_on_utc(tmp_path: Path) -> None:
    w = TlogWriter()
    first = write_flight_tlog(tmp_path / "a.tlog", duration_s=20, writer=w, feedback=False)
    second = write_flight_tlog(
        tmp_path / "both.tlog", duration_s=20, writer=w, boot0=5.0, t_offset=120.0, seed=1
    )
    flight = read_tlog(second.path)
    expected = np.concatenate([first.gpi_t, second.gpi_t])
    np.testing.assert_allclose(seconds(flight.telemetry["time"].values), expected, atol=1e-6)
    assert [w["reboots"] for w in flight.report.warnings if w["reason"] == "reboot"] == [1]


def test_positions_of_a_second_vehicle_are_left_out(tmp_path: Path) -> None:
    w = TlogWriter()
    for k in range(5):
        w.add(
            T0 + k,
            mavlink.MAVLink_global_position_int_message(
                k * 1000, 100_000_000, 100_000_000, 0, 0, 0, 0, 0, 0
            ),
            sysid=7,
        )
    truth = write_flight_tlog(tmp_path / "two.tlog", writer=w)
    flight = read_tlog(truth.path)
    assert flight.telemetry.sizes["time"] == truth.gpi_t.size
    assert float(flight.telemetry["lat"].min()) > 30
    (warning,) = [w for w in flight.report.warnings if w["reason"] == "several_vehicles"]
    assert warning["system"] == 1 and warning["ignored_systems"] == [7]


def test_camera_trigger_and_digicam_commands_are_camera_events(tmp_path: Path) -> None:
    w = TlogWriter()
    for k in range(3):  # CAMERA_TRIGGER stamped on the boot clock, seq from 5
        t = 10.0 + 2 * k
        w.add(
            T0 + t + 0.5,
            mavlink.MAVLink_camera_trigger_message(round((BOOT0 + t) * 1e6), 5 + k),
            compid=100,
        )
    truth = write_flight_tlog(tmp_path / "trig.tlog", writer=w, feedback=False)
    ev = read_tlog(truth.path).camera_events
    assert ev["source"].values.tolist() == ["CAMERA_TRIGGER"] * 3
    np.testing.assert_array_equal(ev["image_index"].values, [5, 6, 7])
    np.testing.assert_allclose(seconds(ev["time"].values), T0 + np.array([10, 12, 14]), atol=1e-6)
    assert np.isnan(ev["lat"].values).all()

    w = TlogWriter()
    for k in range(4):  # the ground station's "trigger now", repeated once (confirmation 1)
        t = 20.0 + 3 * k
        for confirmation in (0, 1) if k == 0 else (0,):
            w.add(
                T0 + GCS_AHEAD + t,
                mavlink.MAVLink_command_long_message(
                    1, 1, mavlink.MAV_CMD_DO_DIGICAM_CONTROL, confirmation, 0, 0, 0, 0, 1, 0, 0
                ),
                sysid=255,
                compid=190,
            )
    w.add(  # a mission item is a planned shot, not an exposure
        T0 + 1,
        mavlink.MAVLink_mission_item_int_message(
            255, 0, 3, 0, mavlink.MAV_CMD_DO_DIGICAM_CONTROL, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0
        ),
    )
    truth = write_flight_tlog(tmp_path / "digicam.tlog", writer=w, feedback=False)
    flight = read_tlog(truth.path)
    ev = flight.camera_events
    assert ev["source"].values.tolist() == ["DO_DIGICAM_CONTROL"] * 4
    # sent on the ground station's clock; shifted onto the vehicle's by the median latency
    err = seconds(ev["time"].values) - (T0 + 20 + 3 * np.arange(4))
    assert np.abs(err).max() < 0.05
    assert flight.report.skipped == {"retransmitted_command": 1}
    assert "planned_shots" in {w["reason"] for w in flight.report.warnings}


def test_no_position_fix_is_one_clear_error(tmp_path: Path) -> None:
    w = TlogWriter()
    for k in range(20):
        w.add(T0 + k, mavlink.MAVLink_gps_raw_int_message(0, 1, 0, 0, 0, 9999, 9999, 0, 0, 0))
        w.add(
            T0 + k,
            mavlink.MAVLink_global_position_int_message(k * 1000, 0, 0, 0, 0, 0, 0, 0, 0),
        )
        w.add(T0 + k, mavlink.MAVLink_heartbeat_message(2, 3, 81, 0, 3, 3))
    path = w.write(tmp_path / "nofix.tlog")
    with pytest.raises(TelemetryError) as info:
        read_log(path)
    message = str(info.value)
    assert "\n" not in message
    assert "nofix.tlog" in message and "no GPS position fix" in message
    assert "20 GLOBAL_POSITION_INT, 20 GPS_RAW_INT" in message


def test_report_is_json(tmp_path: Path) -> None:
    truth = write_flight_tlog(tmp_path / "flight.tlog")
    doc = json.loads(json.dumps(read_log(truth.path).report.to_dict()))
    assert doc["format"] == "tlog" and doc["gps_points"] == truth.gpi_t.size
    assert doc["camera_events"] == 30 and doc["messages"] == truth.records


@pytest.mark.realdata
def test_real_sitl_tlog(realdata: Path) -> None:
    path = realdata / "logs" / "uavlogviewer_vtol_sitl.tlog"
    flight = read_log(path)
    report = flight.report
    # every record checks out; counts as pymavlink's own loop finds them (23894, 807)
    assert report.messages == 23894 and report.bad_packets == 0
    assert report.gps_points == 807
    tel = flight.telemetry
    assert str(tel["time"].values[0]) == "2018-08-08T14:05:45.465009000"  # SYSTEM_TIME pair
    assert -35.37 < float(tel["lat"].min()) < float(tel["lat"].max()) < -35.35
    assert 149.16 < float(tel["lon"].min()) < float(tel["lon"].max()) < 149.17
    assert np.isfinite(tel["yaw"].values).all()
    # the mission download holds no DO_DIGICAM_CONTROL: no camera events
    assert flight.camera_events.sizes["shot"] == 0
