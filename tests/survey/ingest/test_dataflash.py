"""ArduPilot DataFlash logs (.bin) written in the documented format, read back with known answers.

:class:`DataFlashWriter` writes ``0xA3 0x95 <type> <body>`` records whose layouts are declared
by FMT records, packing each body with the struct codes of pymavlink's ``DFFormat`` (the same
tables pymavlink reads with). :func:`write_flight_bin` is also used by ``test_bad_logs.py``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pymavlink.DFReader import FORMAT_TO_STRUCT, DFFormat, DFReader_binary

from survey.errors import TelemetryError
from survey.ingest import read_log
from survey.ingest.dataflash import read_dataflash

GPS_EPOCH_UNIX = 315_964_800
T0_2024 = 1_714_532_400  # 2024-05-01T03:00:00Z: GPS − UTC = 18 s
T0_2016 = 1_468_435_570  # 2016-07-13T18:46:10Z: GPS − UTC = 17 s
BOOT0 = 100.0
LAT0, LON0 = -19.86, -43.96

LAYOUTS_4X = {
    "GPS": (
        "QBBIHBcLLeffffB",
        "TimeUS,I,Status,GMS,GWk,NSats,HDop,Lat,Lng,Alt,Spd,GCrs,VZ,Yaw,U",
    ),
    "POS": ("QLLfff", "TimeUS,Lat,Lng,Alt,RelHomeAlt,RelOriginAlt"),
    "ATT": ("QccccCCCCB", "TimeUS,DesRoll,Roll,DesPitch,Pitch,DesYaw,Yaw,ErrRP,ErrYaw,AEKF"),
    "CAM": ("QBHIHLLeeeccC", "TimeUS,I,Img,GPSTime,GPSWeek,Lat,Lng,Alt,RelAlt,GPSAlt,R,P,Y"),
    "TRIG": ("QBHIHLLeeeccC", "TimeUS,I,Img,GPSTime,GPSWeek,Lat,Lng,Alt,RelAlt,GPSAlt,R,P,Y"),
    "RATE": ("Qffff", "TimeUS,RDes,R,PDes,P"),
    "PARM": ("QNf", "TimeUS,Name,Value"),
    "MSG": ("QZ", "TimeUS,Message"),
}
# ArduCopter 3.2 (2014-2016): millisecond boot times, GPS.TimeMS is the GPS time of week
LAYOUTS_32 = {
    "GPS": ("BIHBcLLeeEefI", "Status,TimeMS,Week,NSats,HDop,Lat,Lng,RelAlt,Alt,Spd,GCrs,VZ,T"),
    "ATT": ("IccccCCCC", "TimeMS,DesRoll,Roll,DesPitch,Pitch,DesYaw,Yaw,ErrRP,ErrYaw"),
    "CAM": ("IHLLeeccC", "GPSTime,GPSWeek,Lat,Lng,Alt,RelAlt,Roll,Pitch,Yaw"),
    "PARM": ("Nf", "Name,Value"),
}


class DataFlashWriter:
    """DataFlash records with FMT definitions; values are given in physical units."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.formats: dict[str, tuple[int, DFFormat]] = {}
        self.offsets: list[int] = []  # where each record starts
        self.define(0x80, "FMT", "BBnNZ", "Type,Length,Name,Format,Columns")

    def define(self, type_id: int, name: str, fmt: str, columns: str) -> None:
        length = 3 + struct.calcsize("<" + "".join(FORMAT_TO_STRUCT[c][0] for c in fmt))
        self.offsets.append(len(self.buf))
        self.buf += b"\xa3\x95\x80" + struct.pack(
            "<BB4s16s64s", type_id, length, name.encode(), fmt.encode(), columns.encode()
        )
        self.formats[name] = (type_id, DFFormat(type_id, name, length, fmt, columns))

    def layout(self, layouts: dict[str, tuple[str, str]]) -> None:
        for k, (name, (fmt, columns)) in enumerate(layouts.items()):
            self.define(130 + k, name, fmt, columns)

    def add(self, name: str, **values: Any) -> None:
        type_id, f = self.formats[name]
        raw = []
        for col, ch in zip(f.columns, f.format, strict=True):
            v = values.get(col, 0)
            mult = FORMAT_TO_STRUCT[ch][1]
            if mult is not None:
                v = round(v / mult)
            if ch in "nNZ":
                v = str(v).encode()
            elif FORMAT_TO_STRUCT[ch][2] is int:
                v = round(v)
            raw.append(v)
        self.offsets.append(len(self.buf))
        self.buf += b"\xa3\x95" + bytes([type_id]) + struct.pack(f.msg_struct, *raw)

    def write(self, path: Path) -> Path:
        path.write_bytes(bytes(self.buf))
        return path


def gps_week_ms(utc_s: float, leap: int) -> tuple[int, float]:
    """GPS week and ms of week of a UTC time, with ``leap`` seconds of GPS − UTC."""
    gps = utc_s - GPS_EPOCH_UNIX + leap
    week = int(gps // 604_800)
    return week, round((gps - week * 604_800) * 1000, 3)


@dataclass
class BinTruth:
    path: Path
    pos_t: np.ndarray  # UTC seconds of the positions
    lat: np.ndarray
    lon: np.ndarray
    alt: np.ndarray
    shot_t: np.ndarray
    records: int
    writer: DataFlashWriter


def write_flight_bin(
    path: Path,
    *,
    t0: float = T0_2024,
    leap: int = 18,
    duration_s: float = 30.0,
    pos: bool = True,
    camera: str | None = "CAM",
) -> BinTruth:
    """A 30 s straight flight in ArduPilot 4.x layouts: GPS 5 Hz, POS and ATT 10 Hz, RATE
    25 Hz (unused), a CAM (or TRIG) every 2 s, with GPS time of week stamped on the boot clock.
    """
    w = DataFlashWriter()
    w.layout(LAYOUTS_4X)
    w.add("PARM", TimeUS=1000, Name="CAM1_TYPE", Value=1.0)
    w.add("MSG", TimeUS=2000, Message="ArduCopter V4.5.7 (test)")
    n = round(duration_s * 25)
    pos_t: list[float] = []
    shots: list[float] = []
    for k in range(n):
        t = k / 25.0
        us = round((BOOT0 + t) * 1e6)
        lat, lon, alt = LAT0 + 1e-5 * t, LON0 - 2e-5 * t, 800.0 + 0.5 * t
        w.add("RATE", TimeUS=us, R=1.0, P=2.0)
        if k % 5 == 0:
            week, ms = gps_week_ms(t0 + t, leap)
            w.add(
                "GPS", TimeUS=us, Status=3, GMS=ms, GWk=week, NSats=11, HDop=0.8,
                Lat=lat, Lng=lon, Alt=alt, Spd=4.5, GCrs=60.0,
            )  # fmt: skip
            if not pos:
                pos_t.append(t)
        if k % 10 == 0 or (k % 5 == 0 and pos):
            w.add("ATT", TimeUS=us, Roll=2.5, Pitch=-1.5, Yaw=(355.0 + 2 * t) % 360)
            if pos:
                w.add("POS", TimeUS=us, Lat=lat, Lng=lon, Alt=alt, RelHomeAlt=alt - 780.0)
                pos_t.append(t)
        if camera and k % 50 == 25:
            week, ms = gps_week_ms(t0 + t, leap)
            w.add(
                camera, TimeUS=us, Img=len(shots) + 1, GPSTime=int(ms), GPSWeek=week,
                Lat=lat, Lng=lon, Alt=alt, RelAlt=alt - 780.0, GPSAlt=alt, R=2.5, P=-1.5,
                Y=(355.0 + 2 * t) % 360,
            )  # fmt: skip
            shots.append(t)
    w.write(path)
    t_arr = np.array(pos_t)
    return BinTruth(
        path=path,
        pos_t=t0 + t_arr,
        lat=LAT0 + 1e-5 * t_arr,
        lon=LON0 - 2e-5 * t_arr,
        alt=800.0 + 0.5 * t_arr,
        shot_t=t0 + np.array(shots),
        records=len(w.offsets),
        writer=w,
    )


def seconds(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[ns]").astype(np.int64) / 1e9


def test_positions_and_utc_with_the_leap_seconds_of_the_date(tmp_path: Path) -> None:
    truth = write_flight_bin(tmp_path / "flight.bin")
    flight = read_log(truth.path)
    tel = flight.telemetry
    assert flight.report.format == "dataflash"
    assert flight.report.messages == truth.records
    assert flight.report.bad_packets == 0 and flight.report.skipped == {}
    assert tel.sizes["time"] == truth.pos_t.size == 150  # POS at 5 Hz (with the GPS)
    np.testing.assert_allclose(seconds(tel["time"].values), truth.pos_t, atol=1e-6, rtol=0)
    np.testing.assert_allclose(tel["lat"].values, truth.lat, atol=1e-7)
    np.testing.assert_allclose(tel["lon"].values, truth.lon, atol=1e-7)
    np.testing.assert_allclose(tel["alt_amsl"].values, truth.alt, atol=1e-4)
    np.testing.assert_allclose(tel["alt_rel"].values, truth.alt - 780.0, atol=1e-4)
    np.testing.assert_allclose(tel["roll"].values, 2.5, atol=1e-9)
    np.testing.assert_allclose(tel["pitch"].values, -1.5, atol=1e-9)
    yaw = (355.0 + 2 * (truth.pos_t - T0_2024)) % 360
    np.testing.assert_allclose(((tel["yaw"].values - yaw + 180) % 360) - 180, 0, atol=0.006)
    np.testing.assert_allclose(tel["groundspeed"].values, 4.5, atol=1e-6)
    assert (tel["fix_type"].values == 3).all() and (tel["satellites"].values == 11).all()
    assert flight.report.time_source.endswith("GPS − UTC = 18 s")


def test_a_2016_log_takes_17_leap_seconds(tmp_path: Path) -> None:
    truth = write_flight_bin(tmp_path / "old.bin", t0=T0_2016, leap=17)
    flight = read_dataflash(truth.path)
    np.testing.assert_allclose(seconds(flight.telemetry["time"].values), truth.pos_t, atol=1e-6)
    assert flight.report.time_source.endswith("GPS − UTC = 17 s")
    # the same GPS week and ms read with 18 leap seconds would be a second early
    assert str(flight.telemetry["time"].values[0]) == "2016-07-13T18:46:10.000000000"


def test_cam_records_are_the_camera_events(tmp_path: Path) -> None:
    truth = write_flight_bin(tmp_path / "flight.bin")
    ev = read_dataflash(truth.path).camera_events
    assert ev.sizes["shot"] == truth.shot_t.size == 15
    np.testing.assert_allclose(seconds(ev["time"].values), truth.shot_t, atol=1e-6, rtol=0)
    t = truth.shot_t - T0_2024
    np.testing.assert_allclose(ev["lat"].values, LAT0 + 1e-5 * t, atol=1e-7)
    np.testing.assert_allclose(ev["alt_amsl"].values, 800 + 0.5 * t, atol=1e-2)
    np.testing.assert_allclose(ev["alt_rel"].values, 20 + 0.5 * t, atol=1e-2)
    np.testing.assert_allclose(ev["roll"].values, 2.5)
    np.testing.assert_allclose(ev["yaw"].values, (355.0 + 2 * t) % 360, atol=1e-9)
    np.testing.assert_array_equal(ev["image_index"].values, np.arange(1, 16))
    assert set(ev["source"].values.tolist()) == {"CAM"}


def test_trig_records_without_cam_and_gps_without_pos(tmp_path: Path) -> None:
    truth = write_flight_bin(tmp_path / "trig.bin", camera="TRIG", pos=False)
    flight = read_dataflash(truth.path)
    assert flight.telemetry.sizes["time"] == 150  # the GPS at 5 Hz
    np.testing.assert_allclose(seconds(flight.telemetry["time"].values), truth.pos_t, atol=1e-6)
    assert np.isnan(flight.telemetry["alt_rel"].values).all()  # 4.x GPS carries no RelAlt
    ev = flight.camera_events
    assert ev["source"].values.tolist() == ["TRIG"] * 15


def test_records_counted_as_pymavlink_counts_them(tmp_path: Path) -> None:
    truth = write_flight_bin(tmp_path / "flight.bin")
    reader = DFReader_binary(str(truth.path))
    n = 0
    while reader.recv_msg() is not None:
        n += 1
    reader.close()
    assert read_dataflash(truth.path).report.messages == n == truth.records


def test_arducopter_32_layout(tmp_path: Path) -> None:
    w = DataFlashWriter()
    w.layout(LAYOUTS_32)
    w.add("PARM", Name="LOG_BITMASK", Value=830.0)
    for k in range(50):
        t = k / 5.0
        week, ms = gps_week_ms(T0_2016 + t, 17)
        boot_ms = round((BOOT0 + t) * 1000)
        w.add(
            "GPS", Status=3, TimeMS=int(ms), Week=week, NSats=8, HDop=1.8, Lat=LAT0, Lng=LON0,
            RelAlt=0.5 * t, Alt=803.0 + 0.5 * t, Spd=0.1, T=boot_ms,
        )  # fmt: skip
        w.add("ATT", TimeMS=boot_ms, Roll=0.22, Pitch=-3.29, Yaw=251.77)
        if k % 10 == 5:
            w.add("CAM", GPSTime=int(ms), GPSWeek=week, Lat=LAT0, Lng=LON0, Alt=803.0, Yaw=90)
    flight = read_dataflash(w.write(tmp_path / "ac32.bin"))
    tel = flight.telemetry
    np.testing.assert_allclose(seconds(tel["time"].values), T0_2016 + np.arange(50) / 5, atol=1e-6)
    np.testing.assert_allclose(tel["alt_rel"].values, np.arange(50) / 10, atol=1e-9)
    np.testing.assert_allclose(tel["yaw"].values, 251.77, atol=1e-9)
    ev = flight.camera_events  # no boot time: GPS week and ms, 17 leap seconds
    np.testing.assert_allclose(seconds(ev["time"].values), T0_2016 + np.array([1, 3, 5, 7, 9]))
    assert (ev["image_index"].values == -1).all()


def test_header_only_log_is_one_clear_error(tmp_path: Path) -> None:
    w = DataFlashWriter()
    w.layout(LAYOUTS_4X)
    for k in range(20):
        w.add("PARM", TimeUS=k, Name=f"P{k}", Value=float(k))
    path = w.write(tmp_path / "header.bin")
    with pytest.raises(TelemetryError) as info:
        read_log(path)
    message = str(info.value)
    assert "\n" not in message and "header.bin" in message
    assert "no GPS position fix" in message and "only its header" in message


@pytest.mark.realdata
def test_real_arducopter_log(realdata: Path) -> None:
    path = realdata / "logs" / "px4tools_16-07-13_17-52-16.bin"
    flight = read_log(path)
    report = flight.report
    # as pymavlink counts them (DFReader: 62123 records, 1305 GPS); one GPS repeats a boot ms
    assert report.messages == 62123 and report.bad_packets == 0
    assert report.gps_points == 1304 and report.skipped == {"duplicate_time": 1}
    assert report.time_source.endswith("GPS − UTC = 17 s")  # July 2016
    tel = flight.telemetry
    # GPS week 1905, 333987200 ms = 2016-07-13T20:46:27.2 GPS = 20:46:10.2 UTC
    assert str(tel["time"].values[0]) == "2016-07-13T20:46:10.200000000"
    duration = float((tel["time"].values[-1] - tel["time"].values[0]) / np.timedelta64(1, "s"))
    assert 360 < duration < 370  # the log's 365 s, less the time before the first fix
    assert abs(float(tel["lat"].mean()) + 19.861) < 0.01
    assert flight.camera_events.sizes["shot"] == 0
