"""Mission upload over real MAVLink bytes to the loopback ArduPilot-like vehicle."""

from __future__ import annotations

import math
import struct
import time
from typing import Any

import pytest

from flightplans.errors import (
    MissionMismatchError,
    VehicleError,
    VehicleLinkError,
    VehicleRefusedError,
)
from flightplans.mission import FRAME_RELATIVE, MAV_CMD_NAV_WAYPOINT, Mission, MissionItem
from flightplans.vehicle import UploadReport, download_mission, upload_mission
from tests.flightplans.mavlink_vehicle import (
    DEFAULT_HOME,
    LoopbackVehicle,
    StoredItem,
    free_udp_port,
    survey_mission,
)

# Short protocol timeouts keep the failure tests quick; the link is loopback.
FAST: dict[str, Any] = {"timeout_s": 5.0, "wait_ready_s": 5.0, "resend_s": 0.4, "retries": 10}


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture(scope="module")
def sortie() -> Mission:
    return survey_mission(n_lines=10, seed=7)


def _check_received_exactly(vehicle: LoopbackVehicle, mission: Mission) -> None:
    """The last upload's items arrived as MISSION_ITEM_INT with the plan's exact integers."""
    by_seq: dict[int, Any] = {}
    for rec in vehicle.received:  # keep the last copy of each seq
        by_seq[rec.seq] = rec
    assert sorted(by_seq) == list(range(len(mission.items) + 1))
    home = by_seq[0]
    assert home.msg_type == "MISSION_ITEM_INT"
    assert (home.command, home.frame) == (16, 0)
    assert home.x == round(mission.home[0] * 1e7)
    assert home.y == round(mission.home[1] * 1e7)
    assert home.z == _f32(mission.home[2])
    for seq, item in enumerate(mission.items, start=1):
        rec = by_seq[seq]
        assert rec.msg_type == "MISSION_ITEM_INT"
        assert rec.x == round(item.lat * 1e7), seq
        assert rec.y == round(item.lon * 1e7), seq
        assert rec.z == _f32(item.alt)
        assert (rec.command, rec.frame, rec.autocontinue) == (item.command, item.frame, 1)
        assert all(_same(a, _f32(b)) for a, b in zip(rec.params, item.params, strict=True)), seq
        assert (rec.src_system, rec.src_component) == (255, 190)


def test_upload_round_trips_to_1e7_degrees(sortie: Mission) -> None:
    with LoopbackVehicle() as vehicle:
        report = upload_mission(sortie, vehicle.connection_string, **FAST)
        stored = vehicle.mission()
        _check_received_exactly(vehicle, sortie)
    assert isinstance(report, UploadReport)
    assert report.ok and report.mismatches == ()
    n = len(sortie.items)
    assert (report.items_sent, report.items_received) == (n + 1, n + 1)
    assert report.items_before == 0
    assert report.upload_attempts == 1 and report.boot_wait_s == 0.0
    # ArduPilot asks with the float MISSION_REQUEST; every answer was MISSION_ITEM_INT.
    assert set(report.request_types) == {"MISSION_REQUEST"}
    assert report.request_types["MISSION_REQUEST"] >= n + 1  # more if the vehicle re-asked
    # Rounding to the 1e-7 grid is the only difference: at most half a unit.
    assert 0.0 < report.max_position_diff_deg <= 0.5e-7 + 1e-15
    assert report.max_alt_diff_m == 0.0
    assert report.vehicle_home is not None
    assert report.vehicle_home[:2] == pytest.approx(DEFAULT_HOME[:2], abs=1e-9)
    assert "Flight plan received" in report.statustexts
    # What the vehicle stored: the plan's integers, home kept as the vehicle's own.
    assert len(stored) == n + 1
    for seq, item in enumerate(sortie.items, start=1):
        assert (stored[seq].x, stored[seq].y) == (item.lat_e7(), item.lon_e7())
        # ArduPilot keeps no frame for DO commands and RTL: they read back as frame 0, which
        # is not a mismatch.
        assert stored[seq].frame == (item.frame if item.command in (16, 22) else 0)
    # The NaN yaw of the waypoints is not stored by ArduCopter and reads back 0: not a failure,
    # and not even a note; param3 = 1 of DO_SET_CAM_TRIGG_DIST is a dropped value, noted.
    assert report.dropped_params
    assert all("param3 1 not stored" in line for line in report.dropped_params)
    d = report.to_dict()
    assert d["result"] == "ok" and d["items_sent"] == n + 1 and isinstance(d["mismatches"], list)


def test_upload_answers_mission_request_int_over_udp(sortie: Mission) -> None:
    """A vehicle asking with MISSION_REQUEST_INT (as PX4 does), client listening with udpin."""
    with LoopbackVehicle(transport="udp", request_int=True) as vehicle:
        assert vehicle.connection_string.startswith("udpin:")
        report = upload_mission(sortie, vehicle.connection_string, **FAST)
        _check_received_exactly(vehicle, sortie)
    assert report.ok
    assert set(report.request_types) == {"MISSION_REQUEST_INT"}
    assert report.request_types["MISSION_REQUEST_INT"] >= len(sortie.items) + 1


def test_existing_mission_is_counted_cleared_and_replaced(sortie: Mission) -> None:
    old = [
        StoredItem(i, FRAME_RELATIVE, MAV_CMD_NAV_WAYPOINT, (0.0,) * 4, 1, 2, 30.0)
        for i in range(1, 61)
    ]
    with LoopbackVehicle(initial_items=old) as vehicle:
        report = upload_mission(sortie, vehicle.connection_string, **FAST)
        assert vehicle.message_counts["MISSION_CLEAR_ALL"] == 1
        assert len(vehicle.mission()) == len(sortie.items) + 1
    assert report.items_before == 60 and report.ok


def test_bench_vehicle_without_gps_or_attitude_is_loaded(sortie: Mission) -> None:
    with LoopbackVehicle(telemetry=False) as vehicle:
        report = upload_mission(sortie, vehicle.connection_string, **FAST)
        assert vehicle.sent_counts["GPS_RAW_INT"] == 0
    assert report.ok


def test_no_clear_skips_mission_clear_all(sortie: Mission) -> None:
    with LoopbackVehicle() as vehicle:
        report = upload_mission(sortie, vehicle.connection_string, clear=False, **FAST)
        assert vehicle.message_counts["MISSION_CLEAR_ALL"] == 0
    assert report.ok


def test_booting_vehicle_is_retried_until_ready(sortie: Mission) -> None:
    with LoopbackVehicle(boot_s=4.0) as vehicle:
        t0 = time.monotonic()
        report = upload_mission(sortie, vehicle.connection_string, boot_wait_s=15.0, **FAST)
        elapsed = time.monotonic() - t0
        refusals = vehicle.acks_sent.count(4)  # MAV_MISSION_NO_SPACE
        _check_received_exactly(vehicle, sortie)
    assert report.ok
    assert refusals >= 1
    assert report.upload_attempts >= 2
    assert report.boot_wait_s > 0.0
    assert "ArduPilot Ready" in report.statustexts
    assert elapsed < 4.0 + 15.0  # bounded (loaded CI machines are slow to connect)


def test_vehicle_that_never_finishes_booting_is_a_clean_error(sortie: Mission) -> None:
    with LoopbackVehicle(boot_s=math.inf) as vehicle:
        t0 = time.monotonic()
        with pytest.raises(VehicleRefusedError) as info:
            upload_mission(sortie, vehicle.connection_string, boot_wait_s=2.0, **FAST)
        elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert "\n" not in msg
    assert vehicle.connection_string in msg
    assert "MAV_MISSION_NO_SPACE" in msg and "Only 0 items are supported" in msg
    assert "--boot-wait-s" in msg
    assert elapsed < 2.0 + 15.0


def test_mission_larger_than_storage_is_refused_at_once(sortie: Mission) -> None:
    """ "Only 5 items are supported": waiting cannot help, so no boot wait is spent."""
    with LoopbackVehicle(max_items=5) as vehicle:
        t0 = time.monotonic()
        with pytest.raises(VehicleRefusedError) as info:
            upload_mission(sortie, vehicle.connection_string, boot_wait_s=30.0, **FAST)
        elapsed = time.monotonic() - t0
        assert vehicle.message_counts["MISSION_COUNT"] == 1
    msg = str(info.value)
    assert "stores at most 5 mission items" in msg and "MAV_MISSION_NO_SPACE" in msg
    assert f"{len(sortie.items) + 1}-item mission" in msg
    assert elapsed < 15.0  # not the 30 s boot wait


def test_vehicle_without_parameters_never_becomes_ready(sortie: Mission) -> None:
    with LoopbackVehicle(answer_params=False) as vehicle:
        t0 = time.monotonic()
        with pytest.raises(VehicleLinkError, match="no parameter request within 1.5 s"):
            upload_mission(sortie, vehicle.connection_string, timeout_s=5.0, wait_ready_s=1.5)
        assert time.monotonic() - t0 < 1.5 + 10.0
        assert vehicle.message_counts["PARAM_REQUEST_LIST"] >= 1


def test_no_vehicle_at_all_fails_within_the_timeout(sortie: Mission) -> None:
    conn = f"udpin:127.0.0.1:{free_udp_port()}"
    t0 = time.monotonic()
    with pytest.raises(VehicleLinkError, match="no HEARTBEAT within 1.5 s") as info:
        upload_mission(sortie, conn, timeout_s=1.5)
    assert time.monotonic() - t0 < 1.5 + 8.0
    assert conn in str(info.value) and isinstance(info.value, VehicleError)


def test_vehicle_without_mission_int_is_refused(sortie: Mission) -> None:
    with (
        LoopbackVehicle(mission_int=False) as vehicle,
        pytest.raises(VehicleRefusedError, match="does not support MISSION_ITEM_INT"),
    ):
        upload_mission(sortie, vehicle.connection_string, **FAST)
    assert vehicle.message_counts["MISSION_COUNT"] == 0


def test_other_autopilots_are_refused(sortie: Mission) -> None:
    px4_manual = 1 << 16
    with (
        LoopbackVehicle(autopilot=12, custom_mode=px4_manual) as vehicle,
        pytest.raises(VehicleRefusedError, match="not ArduPilot"),
    ):
        upload_mission(sortie, vehicle.connection_string, **FAST)


def test_lost_items_and_requests_are_resent_by_us(sortie: Mission) -> None:
    """Our side resends after ``resend_s`` of silence: the lost item (upload) or request
    (download) goes again, before the vehicle's own 1 s re-request."""
    with LoopbackVehicle(drop_items={2: 1, 9: 2}, drop_requests={0: 1, 4: 1}) as vehicle:
        report = upload_mission(sortie, vehicle.connection_string, **FAST)
        _check_received_exactly(vehicle, sortie)
        requests = vehicle.sent_counts["MISSION_REQUEST"]
    assert report.ok
    # 3 items resent in the upload; the request for item 0 lost in the first download and
    # the one for item 4 in the read-back (item 4 exists only then).
    assert report.retransmissions >= 5
    assert requests >= len(sortie.items) + 1


def test_lost_item_is_re_requested_by_the_vehicle(sortie: Mission) -> None:
    """With our resend slower than ArduPilot's 1 s, the vehicle's re-request recovers it."""
    slow: dict[str, Any] = {**FAST, "resend_s": 3.0}
    with LoopbackVehicle(drop_items={5: 1}) as vehicle:
        report = upload_mission(sortie, vehicle.connection_string, **slow)
        _check_received_exactly(vehicle, sortie)
        requests = vehicle.sent_counts["MISSION_REQUEST"]
    assert report.ok
    # One re-request at least: the vehicle's, after 1 s without item 5.
    assert requests >= len(sortie.items) + 2
    assert report.request_types["MISSION_REQUEST"] >= len(sortie.items) + 2


def test_lost_final_ack_is_settled_by_the_read_back(sortie: Mission) -> None:
    quick: dict[str, Any] = {**FAST, "retries": 3}
    with LoopbackVehicle(drop_final_ack=True) as vehicle:
        report = upload_mission(sortie, vehicle.connection_string, **quick)
        assert len(vehicle.uploads) == 1
    assert report.ok
    assert "the final MISSION_ACK was lost; the read-back confirmed the upload" in (
        report.dropped_params
    )


def test_vehicle_refusing_an_item_names_it() -> None:
    """ArduPilot refuses a NaN where the command allows none (MAV_MISSION_INVALID_PARAMn)."""
    lat, lon, _ = DEFAULT_HOME
    mission = Mission(
        home=DEFAULT_HOME,
        items=(
            MissionItem(16, FRAME_RELATIVE, (0.0, 0.0, 0.0, math.nan), lat, lon, 40.0),
            MissionItem(206, FRAME_RELATIVE, (math.nan, 0.0, 1.0, 0.0)),
        ),
    )
    with LoopbackVehicle() as vehicle:
        with pytest.raises(VehicleRefusedError) as info:
            upload_mission(mission, vehicle.connection_string, **FAST)
        assert vehicle.uploads == []
    msg = str(info.value)
    assert "mission item 2 with MAV_MISSION_INVALID_PARAM1" in msg and "\n" not in msg


def test_silent_mission_link_gives_up_after_the_retries(sortie: Mission) -> None:
    quick: dict[str, Any] = {**FAST, "retries": 3}
    with LoopbackVehicle(ignore_mission=True) as vehicle:
        t0 = time.monotonic()
        with pytest.raises(VehicleLinkError, match="no MISSION_COUNT after 4 MISSION_REQUEST_LIST"):
            upload_mission(sortie, vehicle.connection_string, **quick)
        assert time.monotonic() - t0 < 15.0
        assert vehicle.message_counts["MISSION_REQUEST_LIST"] == 4


def test_firmware_rounding_a_value_is_a_mismatch() -> None:
    """ArduCopter stores a waypoint's hold time as whole seconds: 2.5 s reads back 2 s."""
    lat, lon, _ = DEFAULT_HOME
    mission = Mission(
        home=DEFAULT_HOME,
        items=(
            MissionItem(22, FRAME_RELATIVE, (0.0, 0.0, 0.0, math.nan), 0.0, 0.0, 40.0),
            MissionItem(16, FRAME_RELATIVE, (2.5, 0.0, 0.0, math.nan), lat + 1e-3, lon, 40.0),
            MissionItem(20, FRAME_RELATIVE),
        ),
    )
    with LoopbackVehicle() as vehicle, pytest.raises(MissionMismatchError) as info:
        upload_mission(mission, vehicle.connection_string, **FAST)
    report = info.value.report
    assert isinstance(report, UploadReport)
    assert report.result == "mismatch"
    assert report.mismatches == ("item 2 (NAV_WAYPOINT): param1 is 2, plan 2.5",)
    assert "param1 is 2, plan 2.5" in str(info.value)


def test_altitude_is_checked_to_the_stored_centimetre() -> None:
    lat, lon, _ = DEFAULT_HOME
    mission = Mission(
        home=DEFAULT_HOME,
        items=(MissionItem(16, FRAME_RELATIVE, (0.0, 0.0, 0.0, 0.0), lat, lon, 57.129),),
    )
    with LoopbackVehicle() as vehicle:
        report = upload_mission(mission, vehicle.connection_string, **FAST)
        stored_alt = vehicle.mission()[1].z
    assert stored_alt == pytest.approx(57.12)  # whole centimetres, truncated
    assert 0.008 < report.max_alt_diff_m < 0.011
    assert report.ok


def test_download_mission_reads_home_and_items(sortie: Mission) -> None:
    with LoopbackVehicle() as vehicle:
        upload_mission(sortie, vehicle.connection_string, **FAST)
        back = download_mission(vehicle.connection_string, timeout_s=5.0, wait_ready_s=5.0)
        assert vehicle.message_counts["MISSION_REQUEST_INT"] > 0
    assert back.home[:2] == pytest.approx(DEFAULT_HOME[:2], abs=1e-9)
    assert len(back.items) == len(sortie.items)
    for plan, got in zip(sortie.items, back.items, strict=True):
        assert (got.lat_e7(), got.lon_e7()) == (plan.lat_e7(), plan.lon_e7())
        assert got.command == plan.command


def test_malformed_connection_string_is_one_line(sortie: Mission) -> None:
    with pytest.raises(VehicleLinkError, match=r"write it as tcp:HOST:PORT"):
        upload_mission(sortie, "tcp:127.0.0.1")


# --------------------------------------------------------------------------- classic dronekit
def _classic_dronekit_upload(mission: Mission, connection: str) -> None:
    """What classic dronekit code does: Command (float MISSION_ITEM) + commands.upload()."""
    import dronekit

    vehicle = dronekit.connect(connection, wait_ready=True, timeout=10, heartbeat_timeout=5)
    try:
        cmds = vehicle.commands
        cmds.download()
        cmds.wait_ready(timeout=5)
        cmds.clear()
        # clear() keeps the downloaded home as item 0 ("Added by DroneKit").
        for it in mission.items:
            cmds.add(
                dronekit.Command(
                    0, 0, 0, it.frame, it.command, 0, 1, *it.params, it.lat, it.lon, it.alt
                )
            )
        cmds.upload(timeout=10)
    finally:
        vehicle.close()


def _max_error(vehicle: LoopbackVehicle, mission: Mission) -> tuple[float, float]:
    """Largest stored-minus-plan error over the waypoints: (degrees, metres)."""
    stored = vehicle.mission()
    worst_deg = worst_m = 0.0
    for seq, item in enumerate(mission.items, start=1):
        if item.command != MAV_CMD_NAV_WAYPOINT:
            continue
        dlat = abs(stored[seq].x * 1e-7 - item.lat)
        dlon = abs(stored[seq].y * 1e-7 - item.lon)
        worst_deg = max(worst_deg, dlat, dlon)
        metres = math.hypot(dlat * 111_320.0, dlon * 111_320.0 * math.cos(math.radians(item.lat)))
        worst_m = max(worst_m, metres)
    return worst_deg, worst_m


def test_float_mission_item_loses_up_to_a_metre_where_int_is_exact() -> None:
    """The measured figure: float32 MISSION_ITEM moves waypoints near 149 deg E by ~0.5-0.8 m.

    At longitudes of 128-256 deg the float32 step is 2**-16 deg = 1.53e-5 deg, so rounding
    moves a longitude by up to 7.6e-6 deg (0.69 m at 35 deg S, 0.85 m at the equator).
    """
    mission = survey_mission(n_lines=20, seed=3)
    with LoopbackVehicle() as vehicle:
        _classic_dronekit_upload(mission, vehicle.connection_string)
        assert vehicle.wait_for(lambda: len(vehicle.uploads) == 1)
        assert len(vehicle.uploads[0]) == len(mission.items) + 1
        float_deg, float_m = _max_error(vehicle, mission)
        kinds = {r.msg_type for r in vehicle.received}
        warned = "got MISSION_ITEM; GCS should send MISSION_ITEM_INT" in vehicle.statustexts
    assert kinds == {"MISSION_ITEM"} and warned
    assert 3e-6 < float_deg <= 2**-17 + 1e-12
    assert 0.25 < float_m < 0.9

    with LoopbackVehicle() as vehicle:
        report = upload_mission(mission, vehicle.connection_string, **FAST)
        int_deg, int_m = _max_error(vehicle, mission)
    assert report.ok
    assert int_deg <= 0.5e-7 + 1e-15 and int_m < 0.008
    assert float_deg / int_deg > 100


def test_dronekit_high_level_upload_ignores_mission_request_int(sortie: Mission) -> None:
    """Why the transfer is driven by hand: dronekit2's commands.upload() never answers
    MISSION_REQUEST_INT, so against such a vehicle it times out (ours answers it:
    test_upload_answers_mission_request_int_over_udp)."""
    import dronekit

    with LoopbackVehicle(request_int=True) as vehicle:
        dk = dronekit.connect(
            vehicle.connection_string, wait_ready=True, timeout=10, heartbeat_timeout=5
        )
        try:
            cmds = dk.commands
            cmds.download()
            cmds.wait_ready(timeout=5)
            cmds.clear()
            alt = sortie.home[2]
            cmds.add(dronekit.CommandInt(0, 0, 0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0, alt))
            with pytest.raises(dronekit.TimeoutError):
                cmds.upload(timeout=1.5)
        finally:
            dk.close()
        assert vehicle.uploads == []
        assert vehicle.sent_counts["MISSION_REQUEST_INT"] >= 1
