"""PX4 ULog files written in the documented format (header, F/A/D messages), read through pyulog.

:class:`ULogWriter` follows PX4's "ULog File Format" page: a 16-byte header, a flag-bits
message, format definitions (``F``), subscriptions (``A``) and data (``D``), each message a
``uint16`` size and a ``uint8`` type. :func:`write_flight_ulg` is also used by
``test_bad_logs.py``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from survey.errors import TelemetryError
from survey.ingest import read_log
from survey.ingest.ulog import read_ulog

T0 = 1_714_532_400.0  # 2024-05-01T03:00:00Z
BOOT0 = 30.0
LAT0, LON0 = 63.417, 10.408
HOME_ALT = 40.0
_CODES = {
    "uint64_t": "Q",
    "int64_t": "q",
    "uint32_t": "I",
    "int32_t": "i",
    "uint16_t": "H",
    "int16_t": "h",
    "uint8_t": "B",
    "int8_t": "b",
    "float": "f",
    "double": "d",
    "bool": "?",
}
SYNC = bytes([0x2F, 0x73, 0x13, 0x20, 0x25, 0x0C, 0xBB, 0x12])

GPS_OLD = [
    ("uint64_t", "timestamp"),
    ("uint64_t", "time_utc_usec"),
    ("int32_t", "lat"),
    ("int32_t", "lon"),
    ("int32_t", "alt"),
    ("float", "vel_m_s"),
    ("uint8_t", "fix_type"),
    ("uint8_t", "satellites_used"),
]
GPS_NEW = [  # PX4 v1.14 and later: sensor_gps in degrees and metres
    ("uint64_t", "timestamp"),
    ("uint64_t", "time_utc_usec"),
    ("double", "latitude_deg"),
    ("double", "longitude_deg"),
    ("double", "altitude_msl_m"),
    ("float", "vel_m_s"),
    ("uint8_t", "fix_type"),
    ("uint8_t", "satellites_used"),
]
GLOBAL = [("uint64_t", "timestamp"), ("double", "lat"), ("double", "lon"), ("float", "alt")]
ATTITUDE = [("uint64_t", "timestamp"), ("float[4]", "q")]
HOME = [("uint64_t", "timestamp"), ("double", "lat"), ("double", "lon"), ("float", "alt")]
CAPTURE = [
    ("uint64_t", "timestamp"),
    ("uint64_t", "timestamp_utc"),
    ("double", "lat"),
    ("double", "lon"),
    ("float", "alt"),
    ("float", "ground_distance"),
    ("float[4]", "q"),
    ("uint32_t", "seq"),
    ("int8_t", "result"),
]


class ULogWriter:
    """A ULog file: definitions first, then subscriptions and data in time order."""

    def __init__(self, start_us: int = 0) -> None:
        self.buf = bytearray(b"ULog\x01\x12\x35" + bytes([1]) + struct.pack("<Q", start_us))
        self._message("B", bytes(40))  # flag bits: no compat/incompat flags, no appended data
        self.fields: dict[str, list[tuple[str, str]]] = {}
        self.ids: dict[str, int] = {}

    def _message(self, kind: str, payload: bytes) -> None:
        self.buf += struct.pack("<HB", len(payload), ord(kind)) + payload

    def define(self, name: str, fields: list[tuple[str, str]]) -> None:
        text = name + ":" + "".join(f"{t} {n};" for t, n in fields)
        self._message("F", text.encode())
        self.fields[name] = fields

    def info(self, key: str, value: str) -> None:
        k = f"char[{len(value)}] {key}".encode()
        self._message("I", bytes([len(k)]) + k + value.encode())

    def subscribe(self, name: str) -> None:
        self.ids[name] = len(self.ids)
        self._message("A", struct.pack("<BH", 0, self.ids[name]) + name.encode())

    def data(self, name: str, **values: float | list[float]) -> None:
        payload = struct.pack("<H", self.ids[name])
        for type_, field in self.fields[name]:
            if type_.endswith("]"):
                base, n = type_[:-1].split("[")
                v = values.get(field, [0.0] * int(n))
                payload += struct.pack(f"<{n}{_CODES[base]}", *v)
            else:
                code = _CODES[type_]
                v = values.get(field, 0)
                payload += struct.pack("<" + code, round(v) if code in "QqIiHhBb" else v)
        self._message("D", payload)

    def sync(self) -> None:
        self._message("S", SYNC)

    def write(self, path: Path) -> Path:
        path.write_bytes(bytes(self.buf))
        return path


def quaternion(roll: float, pitch: float, yaw: float) -> list[float]:
    """(w, x, y, z) of ZYX Euler angles in degrees."""
    r, p, y = (math.radians(a) / 2 for a in (roll, pitch, yaw))
    return [
        math.cos(r) * math.cos(p) * math.cos(y) + math.sin(r) * math.sin(p) * math.sin(y),
        math.sin(r) * math.cos(p) * math.cos(y) - math.cos(r) * math.sin(p) * math.sin(y),
        math.cos(r) * math.sin(p) * math.cos(y) + math.sin(r) * math.cos(p) * math.sin(y),
        math.cos(r) * math.cos(p) * math.sin(y) - math.sin(r) * math.sin(p) * math.cos(y),
    ]


@dataclass
class ULogTruth:
    path: Path
    pos_t: np.ndarray
    shot_t: np.ndarray
    writer: ULogWriter


def position(t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=np.float64)
    return LAT0 + 1e-5 * t, LON0 + 1e-5 * t, HOME_ALT + 50.0 + 0.2 * t


def write_flight_ulg(
    path: Path,
    *,
    duration_s: float = 20.0,
    global_position: bool = True,
    gps_fields: list[tuple[str, str]] = GPS_OLD,
    capture: bool = True,
    sync_every: int = 0,
) -> ULogTruth:
    """A 20 s flight: GPS 5 Hz, global position 10 Hz, attitude 20 Hz, a capture every 2 s."""
    w = ULogWriter(start_us=round(BOOT0 * 1e6))
    topics = {
        "vehicle_gps_position": gps_fields,
        "vehicle_global_position": GLOBAL,
        "vehicle_attitude": ATTITUDE,
        "home_position": HOME,
        "camera_capture": CAPTURE,
        "sensor_baro": [("uint64_t", "timestamp"), ("float", "pressure")],  # not read
    }
    for name, fields in topics.items():
        w.define(name, fields)
    w.info("sys_name", "PX4")
    for name in topics:
        w.subscribe(name)
    w.data("home_position", timestamp=BOOT0 * 1e6, lat=LAT0, lon=LON0, alt=HOME_ALT)
    pos_t, shot_t = [], []
    for k in range(round(duration_s * 20)):
        t = k / 20.0
        us = round((BOOT0 + t) * 1e6)
        lat, lon, alt = (float(v) for v in position(t))
        w.data("vehicle_attitude", timestamp=us, q=quaternion(5.0, -2.0, 30.0 + t))
        w.data("sensor_baro", timestamp=us, pressure=1000.0)
        if k % 2 == 0 and global_position:
            w.data("vehicle_global_position", timestamp=us, lat=lat, lon=lon, alt=alt)
            pos_t.append(t)
        if k % 4 == 0:
            utc = round((T0 + t) * 1e6)
            if "lat" in dict((n, t) for t, n in gps_fields):
                gps = {"lat": lat * 1e7, "lon": lon * 1e7, "alt": alt * 1000}
            else:
                gps = {"latitude_deg": lat, "longitude_deg": lon, "altitude_msl_m": alt}
            w.data(
                "vehicle_gps_position", timestamp=us, time_utc_usec=utc, vel_m_s=6.0,
                fix_type=3, satellites_used=14, **gps,
            )  # fmt: skip
            if not global_position:
                pos_t.append(t)
        if capture and k % 40 == 20:
            w.data(
                "camera_capture", timestamp=us, timestamp_utc=round((T0 + t) * 1e6),
                lat=lat, lon=lon, alt=alt, ground_distance=50.0,
                q=quaternion(0.0, -90.0, 30.0 + t), seq=len(shot_t), result=1,
            )  # fmt: skip
            shot_t.append(t)
        if sync_every and k % sync_every == 0:
            w.sync()
    w.write(path)
    return ULogTruth(path, T0 + np.array(pos_t), T0 + np.array(shot_t), w)


def seconds(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[ns]").astype(np.int64) / 1e9


def test_global_position_attitude_and_home_relative_altitude(tmp_path: Path) -> None:
    truth = write_flight_ulg(tmp_path / "flight.ulg")
    flight = read_log(truth.path)
    tel = flight.telemetry
    assert flight.report.format == "ulog" and flight.report.bad_packets == 0
    assert tel.sizes["time"] == truth.pos_t.size == 200
    np.testing.assert_allclose(seconds(tel["time"].values), truth.pos_t, atol=1e-6, rtol=0)
    lat, lon, alt = position(truth.pos_t - T0)
    np.testing.assert_allclose(tel["lat"].values, lat, atol=1e-9)
    np.testing.assert_allclose(tel["lon"].values, lon, atol=1e-9)
    np.testing.assert_allclose(tel["alt_amsl"].values, alt, atol=1e-4)
    np.testing.assert_allclose(tel["alt_rel"].values, alt - HOME_ALT, atol=1e-4)
    np.testing.assert_allclose(tel["roll"].values, 5.0, atol=1e-4)
    np.testing.assert_allclose(tel["pitch"].values, -2.0, atol=1e-4)
    np.testing.assert_allclose(tel["yaw"].values, 30.0 + (truth.pos_t - T0), atol=1e-4)
    np.testing.assert_allclose(tel["groundspeed"].values, 6.0)
    assert (tel["fix_type"].values == 3).all() and (tel["satellites"].values == 14).all()
    # records of the six topics read (the barometer is skipped by pyulog)
    assert flight.report.messages == 1 + 400 + 200 + 100 + 10
    assert "time_utc_usec" in flight.report.time_source


def test_camera_capture_events(tmp_path: Path) -> None:
    truth = write_flight_ulg(tmp_path / "flight.ulg")
    ev = read_ulog(truth.path).camera_events
    assert ev.sizes["shot"] == 10
    np.testing.assert_allclose(seconds(ev["time"].values), truth.shot_t, atol=1e-6, rtol=0)
    lat, _, alt = position(truth.shot_t - T0)
    np.testing.assert_allclose(ev["lat"].values, lat, atol=1e-9)
    np.testing.assert_allclose(ev["alt_rel"].values, alt - HOME_ALT, atol=1e-4)
    np.testing.assert_allclose(ev["pitch"].values, -90.0, atol=0.05)
    np.testing.assert_array_equal(ev["image_index"].values, np.arange(10))
    assert set(ev["source"].values.tolist()) == {"CAMERA_FEEDBACK"}


def test_gps_only_new_px4_fields(tmp_path: Path) -> None:
    truth = write_flight_ulg(tmp_path / "new.ulg", global_position=False, gps_fields=GPS_NEW)
    tel = read_ulog(truth.path).telemetry
    assert tel.sizes["time"] == 100
    np.testing.assert_allclose(seconds(tel["time"].values), truth.pos_t, atol=1e-6)
    lat, _, alt = position(truth.pos_t - T0)
    np.testing.assert_allclose(tel["lat"].values, lat, atol=1e-12)
    np.testing.assert_allclose(tel["alt_amsl"].values, alt, atol=1e-4)  # float32 metres


def test_no_gps_fix_is_one_clear_error(tmp_path: Path) -> None:
    w = ULogWriter()
    w.define("vehicle_gps_position", GPS_OLD)
    w.subscribe("vehicle_gps_position")
    for k in range(10):
        w.data("vehicle_gps_position", timestamp=k * 200_000, fix_type=1)
    path = w.write(tmp_path / "nofix.ulg")
    with pytest.raises(TelemetryError) as info:
        read_log(path)
    assert "\n" not in str(info.value) and "no GPS position fix" in str(info.value)


@pytest.mark.realdata
def test_real_px4_ulog(realdata: Path) -> None:
    flight = read_log(realdata / "logs" / "pyulog_sample_log_small.ulg")
    tel = flight.telemetry
    assert flight.report.gps_points == 32  # the log's GPS records (no global position topic)
    assert str(tel["time"].values[0]) == "2021-04-21T06:30:58.600345000"  # time_utc_usec
    assert abs(float(tel["lat"].mean()) - 63.417) < 0.001
    assert np.isfinite(tel["yaw"].values).all()
    assert [w["reason"] for w in flight.report.warnings] == ["dropouts"]
