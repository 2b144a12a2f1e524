"""Damaged logs: every good record is kept, what was skipped is counted, and never a traceback.

Each test damages a log written by ``test_tlog.py``, ``test_dataflash.py`` or ``test_ulog.py``
in one known way and expects the exact count of skipped records, or one clear line.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from survey.errors import InputFileError, SurveyError, TelemetryError
from survey.ingest import read_log
from survey.ingest.dataflash import read_dataflash
from survey.ingest.mavlink import read_tlog
from survey.ingest.ulog import read_ulog
from tests.survey.ingest.test_dataflash import BinTruth, write_flight_bin
from tests.survey.ingest.test_tlog import FlightTruth, write_flight_tlog
from tests.survey.ingest.test_ulog import write_flight_ulg

GPI = mavlink.MAVLINK_MSG_ID_GLOBAL_POSITION_INT


@pytest.fixture(scope="module")
def tlog(tmp_path_factory: pytest.TempPathFactory) -> FlightTruth:
    return write_flight_tlog(tmp_path_factory.mktemp("tlog") / "flight.tlog")


def _damaged(tmp_path: Path, data: bytes | bytearray, name: str = "damaged.tlog") -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def _records(truth: FlightTruth, msgid: int) -> list[tuple[int, int, int]]:
    return [r for r in truth.writer.layout if r[2] == msgid]


# --- tlog ---------------------------------------------------------------------------------------


def test_tlog_cut_mid_record(tmp_path: Path, tlog: FlightTruth) -> None:
    data = tlog.path.read_bytes()
    last_offset, last_len, _ = tlog.writer.layout[-1]
    flight = read_tlog(_damaged(tmp_path, data[: last_offset + last_len // 2]))
    assert flight.report.skipped == {"truncated": 1}
    assert flight.report.bad_packets == 1
    assert flight.report.messages == tlog.records - 1


def test_tlog_flipped_payload_bytes_are_bad_checksums(tmp_path: Path, tlog: FlightTruth) -> None:
    data = bytearray(tlog.path.read_bytes())
    hit = _records(tlog, GPI)[10:13]
    for offset, _, _ in hit:
        data[offset + 8 + 10 + 5] ^= 0x40  # a byte of the latitude
    flight = read_tlog(_damaged(tmp_path, data))
    assert flight.report.skipped == {"bad_crc": 3}
    assert flight.report.messages == tlog.records - 3
    assert flight.telemetry.sizes["time"] == tlog.gpi_t.size - 3
    kept = np.isin(np.arange(tlog.gpi_t.size), [10, 11, 12], invert=True)
    np.testing.assert_allclose(flight.telemetry["lat"].values, tlog.lat[kept], atol=1e-7)


def test_tlog_broken_checksum_bytes(tmp_path: Path, tlog: FlightTruth) -> None:
    data = bytearray(tlog.path.read_bytes())
    for offset, length, _ in tlog.writer.layout[100:105]:
        data[offset + length - 1] ^= 0xFF
    flight = read_tlog(_damaged(tmp_path, data))
    assert flight.report.skipped == {"bad_crc": 5}
    assert flight.report.messages == tlog.records - 5


def test_tlog_broken_length_byte_loses_one_record(tmp_path: Path, tlog: FlightTruth) -> None:
    data = bytearray(tlog.path.read_bytes())
    offset, _, _ = _records(tlog, GPI)[20]
    data[offset + 9] = 200  # the payload length: the frame no longer ends where it should
    flight = read_tlog(_damaged(tmp_path, data))
    assert flight.report.skipped == {"corrupt": 1}
    assert flight.report.messages == tlog.records - 1
    assert flight.telemetry.sizes["time"] == tlog.gpi_t.size - 1


def test_tlog_garbage_between_records(tmp_path: Path, tlog: FlightTruth) -> None:
    data = tlog.path.read_bytes()
    cut = tlog.writer.layout[500][0]
    rng = np.random.default_rng(3)
    garbage = rng.integers(0, 256, 300, dtype=np.uint8).tobytes() + b"\xfd\xfe" * 10
    flight = read_tlog(_damaged(tmp_path, data[:cut] + garbage + data[cut:]))
    assert flight.report.skipped == {"corrupt": 1}
    assert flight.report.messages == tlog.records
    assert flight.telemetry.sizes["time"] == tlog.gpi_t.size


def test_tlog_absurd_receive_times(tmp_path: Path, tlog: FlightTruth) -> None:
    data = bytearray(tlog.path.read_bytes())
    for k, (offset, _, _) in enumerate(_records(tlog, GPI)[40:43]):
        data[offset : offset + 8] = struct.pack(">Q", [0, 4_102_444_800_000_000, 12345][k])
    flight = read_tlog(_damaged(tmp_path, data))
    assert flight.report.skipped == {"absurd_timestamp": 3}
    assert flight.report.bad_packets == 0  # the frames are intact
    assert flight.telemetry.sizes["time"] == tlog.gpi_t.size - 3


def test_tlog_junk_tail_and_leading_junk(tmp_path: Path, tlog: FlightTruth) -> None:
    data = tlog.path.read_bytes()
    flight = read_log(_damaged(tmp_path, b"\x00" * 37 + data + b"\xff" * 5))
    assert flight.report.messages == tlog.records
    assert flight.report.skipped == {"corrupt": 1, "truncated": 1}


def test_original_is_left_byte_identical_and_alone(tmp_path: Path) -> None:
    paths = [
        write_flight_tlog(tmp_path / "a.tlog").path,
        write_flight_bin(tmp_path / "b.bin").path,
        write_flight_ulg(tmp_path / "c.ulg").path,
    ]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    listing = sorted(tmp_path.iterdir())
    for p in paths:
        read_log(p)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths} == before
    assert sorted(tmp_path.iterdir()) == listing


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(0, 10**6), min_size=1, max_size=8),
    values=st.lists(st.integers(0, 255), min_size=8, max_size=8),
    truncate=st.integers(0, 10**6),
)
def test_tlog_random_damage_never_a_traceback(
    tmp_path_factory: pytest.TempPathFactory,
    tlog: FlightTruth,
    cuts: list[int],
    values: list[int],
    truncate: int,
) -> None:
    data = bytearray(tlog.path.read_bytes())
    for k, at in enumerate(cuts):
        data[at % len(data)] = values[k]
    data = data[: max(1, len(data) - truncate % 2000)]
    path = _damaged(tmp_path_factory.mktemp("fuzz"), data)
    try:
        flight = read_log(path)
    except TelemetryError as exc:
        assert "\n" not in str(exc)
        return
    report = flight.report
    assert report.messages + report.bad_packets + report.skipped.get("unknown_message", 0) <= (
        tlog.records + len(cuts)
    )
    assert report.messages >= tlog.records - 3 * len(cuts) - 50
    times = flight.telemetry["time"].values.astype(np.int64)
    assert (np.diff(times) > 0).all()


# --- DataFlash ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binlog(tmp_path_factory: pytest.TempPathFactory) -> BinTruth:
    return write_flight_bin(tmp_path_factory.mktemp("bin") / "flight.bin")


def test_dataflash_cut_mid_record(tmp_path: Path, binlog: BinTruth) -> None:
    data = binlog.path.read_bytes()
    flight = read_dataflash(_damaged(tmp_path, data[:-7], "cut.bin"))
    assert flight.report.skipped == {"truncated": 1}
    assert flight.report.messages == binlog.records - 1


def test_dataflash_broken_headers_lose_only_their_records(tmp_path: Path, binlog: BinTruth) -> None:
    data = bytearray(binlog.path.read_bytes())
    starts = binlog.writer.offsets
    for k in (300, 700, 701):  # two neighbours: one stretch
        data[starts[k]] = 0x00
    flight = read_dataflash(_damaged(tmp_path, data, "broken.bin"))
    assert flight.report.skipped == {"corrupt": 2}
    assert flight.report.messages == binlog.records - 3


def test_dataflash_absurd_boot_times(tmp_path: Path, binlog: BinTruth) -> None:
    data = bytearray(binlog.path.read_bytes())
    pos_type = binlog.writer.formats["POS"][0]
    pos = [o for o in binlog.writer.offsets if data[o + 2] == pos_type]
    for o in pos[50:52]:
        data[o + 3 + 5] ^= 0x10  # a high byte of TimeUS: days away
    flight = read_dataflash(_damaged(tmp_path, data, "absurd.bin"))
    assert flight.report.skipped == {"absurd_timestamp": 2}
    assert flight.telemetry.sizes["time"] == binlog.pos_t.size - 2


def test_dataflash_padding_after_the_last_record_is_not_damage(
    tmp_path: Path, binlog: BinTruth
) -> None:
    data = binlog.path.read_bytes()
    for pad in (b"\xff" * 300, b"\x00" * 100):
        flight = read_dataflash(_damaged(tmp_path, data + pad, "padded.bin"))
        assert flight.report.skipped == {} and flight.report.messages == binlog.records


def test_dataflash_garbage_inside(tmp_path: Path, binlog: BinTruth) -> None:
    data = binlog.path.read_bytes()
    cut = binlog.writer.offsets[1000]
    junk = bytes(range(7, 250, 3)) + b"\xa3\x95\x01"
    flight = read_dataflash(_damaged(tmp_path, data[:cut] + junk + data[cut:], "junk.bin"))
    assert flight.report.skipped == {"corrupt": 1}
    assert flight.report.messages == binlog.records


# --- ULog ---------------------------------------------------------------------------------------


def test_ulog_cut_mid_message_keeps_what_came_before(tmp_path: Path) -> None:
    truth = write_flight_ulg(tmp_path / "flight.ulg")
    data = truth.path.read_bytes()
    flight = read_ulog(_damaged(tmp_path, data[: len(data) // 2 + 3], "cut.ulg"))
    n = flight.telemetry.sizes["time"]
    assert 90 <= n <= 110  # about half of the 200 positions, all intact
    np.testing.assert_allclose(flight.telemetry["lat"].values, 63.417 + 1e-5 * np.arange(n) / 10)


def test_ulog_corrupt_stretch_is_reported(tmp_path: Path) -> None:
    truth = write_flight_ulg(tmp_path / "flight.ulg", sync_every=20)
    data = truth.path.read_bytes()
    cut = len(data) // 2
    junk = b"\x05\x00\xee" + bytes(range(200))
    flight = read_ulog(_damaged(tmp_path, data[:cut] + junk + data[cut:], "junk.ulg"))
    assert flight.report.skipped == {"corrupt": 1}
    assert "corrupt" in {w["reason"] for w in flight.report.warnings}
    assert flight.telemetry.sizes["time"] >= 190  # pyulog found the next sync marker


# --- not a log at all ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.tlog", b"", "empty"),
        ("photo.bin", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "not a MAVLink .tlog"),
        ("text.ulg", b"time,lat,lon\n" * 50, "not a MAVLink .tlog"),
        ("short.tlog", b"\x00\x05", "not a MAVLink .tlog"),
    ],
)
def test_not_a_log_is_one_clear_error(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = _damaged(tmp_path, content, name)
    with pytest.raises(TelemetryError) as info:
        read_log(path)
    message = str(info.value)
    assert "\n" not in message and name in message and expected in message
    assert isinstance(info.value, SurveyError) and isinstance(info.value, OSError)


def test_missing_log_is_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as info:
        read_log(tmp_path / "nowhere.tlog")
    assert "nowhere.tlog" in str(info.value) and "\n" not in str(info.value)


def test_wrong_extension_is_read_by_content(tmp_path: Path, tlog: FlightTruth) -> None:
    path = _damaged(tmp_path, tlog.path.read_bytes(), "flight.bin")
    flight = read_log(path)
    assert flight.report.format == "tlog" and flight.report.messages == tlog.records
    assert "extension" in {w["reason"] for w in flight.report.warnings}


def test_dataflash_unusable_layout_skips_its_records_only(tmp_path: Path, binlog: BinTruth) -> None:
    data = bytearray(binlog.path.read_bytes())
    att_type = binlog.writer.formats["ATT"][0]
    fmt_at = next(
        o for o in binlog.writer.offsets if data[o + 2] == 0x80 and data[o + 3] == att_type
    )
    data[fmt_at + 3 + 6] = ord("!")  # the first format character of ATT: not a DataFlash one
    flight = read_dataflash(_damaged(tmp_path, data, "layout.bin"))
    assert flight.report.skipped == {} and flight.report.messages == binlog.records
    assert [w["types"] for w in flight.report.warnings if w["reason"] == "bad_format"] == [["ATT"]]
    assert np.isnan(flight.telemetry["roll"].values).all()
    assert flight.telemetry.sizes["time"] == binlog.pos_t.size


def test_ulog_damaged_definitions_are_one_clear_error(tmp_path: Path) -> None:
    data = bytearray(write_flight_ulg(tmp_path / "flight.ulg").path.read_bytes())
    first_format = 16 + 3 + 40  # after the header and the flag-bits message
    data[first_format : first_format + 2] = struct.pack("<H", 60000)  # its size runs off
    with pytest.raises(TelemetryError) as info:
        read_log(_damaged(tmp_path, data[:5000], "defs.ulg"))
    assert "\n" not in str(info.value) and "defs.ulg" in str(info.value)
