"""MAVLink telemetry logs (.tlog) written with pymavlink's encoder, read back with known answers.

:class:`TlogWriter` and :func:`write_flight_tlog` are also used by ``test_bad_logs.py`` and
``test_telemetry.py``.
"""

from __future__ import annotations

import gc
import json
import math
import struct
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from survey.errors import TelemetryError
from survey.ingest import read_log
from survey.ingest.mavlink import read_tlog
from survey.ingest.telemetry import align_boot_clock

T0 = 1_714_532_400.0  # 2024-05-01T03:00:00Z, the vehicle's UTC when the log starts
BOOT0 = 100.0  # the vehicle booted this many seconds before the log starts
LAT0, LON0 = 30.1, 120.2
GCS_AHEAD = 0.4  # the ground station's clock runs this far ahead of UTC
GPI = mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT


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


# --- streaming --------------------------------------------------------------------------------


def _absurd_receive_times(tmp_path: Path) -> Path:
    truth = write_flight_tlog(tmp_path / "absurd.tlog", duration_s=120)
    data = bytearray(truth.path.read_bytes())
    hit = [r for r in truth.writer.layout if r[2] in (mavlink.MAVLINK_MSG_ID_ATTITUDE, GPI)]
    for k, (offset, _, _) in enumerate(hit[100::97]):
        data[offset : offset + 8] = struct.pack(">Q", [0, 4_102_444_800_000_000][k % 2])
    path = tmp_path / "absurd_damaged.tlog"
    path.write_bytes(bytes(data))
    return path


def _two_boots(tmp_path: Path) -> Path:
    w = TlogWriter()
    write_flight_tlog(tmp_path / "a.tlog", duration_s=60, writer=w, feedback=False)
    return write_flight_tlog(
        tmp_path / "b.tlog", duration_s=60, writer=w, boot0=5.0, t_offset=300.0, seed=1
    ).path


def _second_vehicle(tmp_path: Path) -> Path:
    w = TlogWriter()
    for k in range(200):
        w.add(
            T0 + k * 0.5,
            mavlink.MAVLink_global_position_int_message(
                k * 500, 100_000_000, 100_000_000, 0, 0, 0, 0, 0, 0
            ),
            sysid=7,
        )
    return write_flight_tlog(tmp_path / "two.tlog", writer=w, duration_s=120).path


_STREAMED_LOGS = {
    "plain": lambda p: write_flight_tlog(p / "f.tlog", duration_s=120).path,
    "ground_station_clock": lambda p: (
        write_flight_tlog(p / "f.tlog", duration_s=180, system_time=False, gps_utc=False).path
    ),
    "absurd_receive_times": _absurd_receive_times,
    "reboot": _two_boots,
    "second_vehicle": _second_vehicle,
}


@pytest.mark.parametrize("name", list(_STREAMED_LOGS))
def test_reading_in_small_chunks_gives_the_same_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # the log is one chunk at the default size, and about 40 at 3 kB: every record waits for
    # the next chunk somewhere, yet every time, value and count comes out the same
    path = _STREAMED_LOGS[name](tmp_path)
    whole = read_tlog(path)
    monkeypatch.setattr("survey.ingest.mavlink.CHUNK_BYTES", 3000)
    streamed = read_tlog(path)
    xr.testing.assert_identical(streamed.telemetry, whole.telemetry)
    xr.testing.assert_identical(streamed.camera_events, whole.camera_events)
    assert streamed.report == whole.report
    assert whole.report.gps_points > 500


def test_system_time_logged_out_of_order_is_put_back_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ground station that buffers a link logs some records seconds late (the real SITL log
    # does). The vehicle's UTC jitters by up to 0.4 ms here, so each SYSTEM_TIME pair shows:
    # they must be taken in the vehicle's order, also when a late one comes in a later chunk,
    # to give the times the whole-log clock model gives.
    monkeypatch.setattr("survey.ingest.mavlink.CHUNK_BYTES", 3000)
    rng = np.random.default_rng(7)
    w = TlogWriter()
    boot_ns, ref_boot, ref_utc = [], [], []
    for k in range(1500):
        boot_s = BOOT0 + 0.2 * k
        ms = round(boot_s * 1000)
        gcs = T0 + boot_s - BOOT0 + 0.03
        w.add(
            gcs,
            mavlink.MAVLink_global_position_int_message(
                ms, 301_000_000 + k, 1_202_000_000, 50_000, 10_000, 0, 0, 0, 0
            ),
        )
        boot_ns.append(ms * 1_000_000)
        if k % 5 == 0:
            utc_us = round((T0 + boot_s - BOOT0) * 1e6 + rng.uniform(-400, 400))
            late = 3.5 if k % 10 == 0 else 0.0
            w.add(gcs + late, mavlink.MAVLink_system_time_message(utc_us, ms))
            ref_boot.append(ms * 1_000_000)
            ref_utc.append(utc_us * 1000)
    flight = read_tlog(w.write(tmp_path / "late.tlog"))
    expected, _ = align_boot_clock(np.array(boot_ns), np.array(ref_boot), np.array(ref_utc))
    np.testing.assert_array_equal(flight.telemetry["time"].values.astype(np.int64), expected)
    assert flight.report.skipped == {}


def test_memory_besides_the_telemetry_does_not_grow_with_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A four times longer flight, read in 16 kB chunks: what is allocated on the Python heap
    # (every numpy array but the telemetry's columns, which live in memory maps) peaks at
    # nearly the same size. Reading whole columns and reducing them at the end, as this
    # reader did before, grows by more than the file (ATTITUDE at 10 Hz, GPS_RAW_INT, ...).
    # The end converts the positions' times 2048 at a time here (64 Ki in use: 2 MB of
    # temporaries at most, which would hide the growth of logs this small).
    monkeypatch.setattr("survey.ingest.mavlink.CHUNK_BYTES", 16_000)
    monkeypatch.setattr("survey.ingest.tlog_flight._SLICE", 2048)
    paths = [
        write_flight_tlog(tmp_path / f"{m}.tlog", duration_s=60.0 * m, feedback=False).path
        for m in (3, 12)
    ]
    read_tlog(paths[0])  # first use: imports and caches are not the reader's state
    peaks, sizes = [], []
    for minutes, path in zip((3, 12), paths, strict=True):
        sizes.append(path.stat().st_size)
        gc.collect()
        tracemalloc.start()
        try:
            gps_points = read_tlog(path).report.gps_points
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks.append(peak)
        assert gps_points == minutes * 300
    growth = peaks[1] - peaks[0]
    # what may grow (27 kB here): a clock knot per SYSTEM_TIME (20 B/s, and their join at
    # the end) and the fix type and satellites of each position (3 B, 15 B/s, in the
    # Dataset), against 1 kB/s of file; the reader before grew by 725 kB
    assert growth < 0.1 * (sizes[1] - sizes[0]), (peaks, sizes)


def test_telemetry_dtypes_are_as_compact_as_the_log_allows(tmp_path: Path) -> None:
    truth = write_flight_tlog(tmp_path / "flight.tlog")
    tel = read_tlog(truth.path).telemetry
    dtypes = {name: str(tel[name].dtype) for name in tel.data_vars}
    assert dtypes == {
        "lat": "float64",  # 1e-7 degrees: float32 would round to a metre
        "lon": "float64",
        "alt_amsl": "float32",  # millimetres
        "alt_rel": "float32",
        "roll": "float32",  # float32 radians in the log
        "pitch": "float32",
        "yaw": "float32",
        "groundspeed": "float32",  # cm/s
        "fix_type": "int8",
        "satellites": "int16",
    }
    # nothing is lost: the millimetres of the log come back
    np.testing.assert_array_equal(
        np.round(tel["alt_amsl"].values.astype(np.float64) * 1000),
        np.round(truth.alt_amsl * 1000),
    )
