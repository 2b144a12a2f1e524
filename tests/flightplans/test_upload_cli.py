"""``sitewatch upload`` end to end: a .plan file on disk to the loopback vehicle."""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import pytest

from flightplans.mission import FRAME_RELATIVE, Mission, MissionItem
from flightplans.qgc import write_plan, write_waypoints
from survey.cli import EXIT_ERROR, run
from tests.flightplans.mavlink_vehicle import (
    DEFAULT_HOME,
    LoopbackVehicle,
    free_udp_port,
    survey_mission,
)


@pytest.fixture(scope="module")
def sortie() -> Mission:
    return survey_mission(n_lines=6, seed=21)


@pytest.fixture
def plan_file(tmp_path: Path, sortie: Mission) -> Path:
    return write_plan(sortie, tmp_path / "sortie-01.plan")


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("sitewatch: error: ")
    return lines[0]


def test_upload_plan_file_end_to_end(
    plan_file: Path, sortie: Mission, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "upload-report.json"
    with LoopbackVehicle() as vehicle:
        code = run(
            [
                "upload",
                str(plan_file),
                "--connect",
                vehicle.connection_string,
                "--timeout-s",
                "5",
                "--wait-ready-s",
                "5",
                "--report",
                str(report_path),
            ]
        )
        received = {r.seq: r for r in vehicle.received}
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"uploaded sortie-01.plan to {vehicle.connection_string}: ok" in out
    n = len(sortie.items)
    assert f"sent    : {n + 1} MISSION_ITEM_INT (home + {n} items)" in out
    assert "cleared and replaced" in out
    # The integers that went over the wire are the plan's, rounded once to 1e-7 degrees.
    for seq, item in enumerate(sortie.items, start=1):
        assert received[seq].msg_type == "MISSION_ITEM_INT"
        assert (received[seq].x, received[seq].y) == (item.lat_e7(), item.lon_e7())
    assert (received[0].x, received[0].y) == (
        round(sortie.home[0] * 1e7),
        round(sortie.home[1] * 1e7),
    )
    report = json.loads(report_path.read_text())
    assert report["result"] == "ok"
    assert report["items_sent"] == report["items_received"] == n + 1
    assert report["max_position_diff_deg"] <= 1e-7
    assert report["mismatches"] == []
    assert [row["seq"] for row in report["sent"]] == list(range(n + 1))
    for row, item in zip(report["sent"][1:], sortie.items, strict=True):
        assert (row["lat_e7"], row["lon_e7"]) == (item.lat_e7(), item.lon_e7())
        assert row["command"] == item.command
    assert [(r["lat_e7"], r["lon_e7"]) for r in report["received"][1:]] == [
        (i.lat_e7(), i.lon_e7()) for i in sortie.items
    ]
    assert report["sent"][2]["param4"] is None  # a waypoint's NaN yaw, written as null
    assert not list(tmp_path.glob("*.part"))


def test_upload_waypoints_file(tmp_path: Path, sortie: Mission) -> None:
    path = write_waypoints(sortie, tmp_path / "sortie-01.waypoints")
    with LoopbackVehicle(transport="udp") as vehicle:
        code = run(["-q", "upload", str(path), "--connect", vehicle.connection_string])
        stored = vehicle.mission()
    assert code == 0
    assert [(s.x, s.y) for s in stored[1:]] == [(i.lat_e7(), i.lon_e7()) for i in sortie.items]


def test_no_vehicle_is_one_line_within_the_timeout(
    plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dronekit  # noqa: F401 - import time (pymavlink dialects) is not link time

    import flightplans.vehicle  # noqa: F401

    # Warm the CLI's error path too (it imports every package's errors on first use).
    bad = plan_file.with_name("not-a-plan.plan")
    bad.write_text("[]")
    assert run(["upload", str(bad), "--connect", "tcp:127.0.0.1:5760"]) == EXIT_ERROR
    capsys.readouterr()

    conn = f"udpin:127.0.0.1:{free_udp_port()}"
    t0 = time.monotonic()
    code = run(["upload", str(plan_file), "--connect", conn, "--timeout-s", "1.5"])
    elapsed = time.monotonic() - t0
    captured = capsys.readouterr()
    assert code == EXIT_ERROR
    line = _one_line_error(captured.err)
    assert conn in line and "no HEARTBEAT within 1.5 s" in line
    assert "Traceback" not in captured.err + captured.out
    assert elapsed < 1.5 + 8.0


def test_nothing_listening_on_tcp_is_one_line(
    plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A TCP port bound but not listening refuses connections; holding it keeps another test
    # (or xdist worker) from taking it meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        conn = f"tcp:127.0.0.1:{held.getsockname()[1]}"
        code = run(["upload", str(plan_file), "--connect", conn, "--timeout-s", "2"])
    captured = capsys.readouterr()
    assert code == EXIT_ERROR
    line = _one_line_error(captured.err)
    assert conn in line and "cannot open the link" in line
    assert captured.out == ""  # pymavlink's "sleeping" chatter is kept off stdout


def test_bad_plan_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "sortie-01.plan"
    bad.write_text('{"fileType": "Plan", "version": 1, "mission": {"items": [}}')
    code = run(["upload", str(bad), "--connect", "tcp:127.0.0.1:5760"])
    line = _one_line_error(capsys.readouterr().err)
    assert code == EXIT_ERROR
    assert "sortie-01.plan" in line and "invalid JSON" in line


def test_readback_mismatch_fails_and_still_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lat, lon, _ = DEFAULT_HOME
    mission = Mission(
        home=DEFAULT_HOME,
        items=(
            MissionItem(22, FRAME_RELATIVE, (0.0, 0.0, 0.0, math.nan), 0.0, 0.0, 30.0),
            MissionItem(16, FRAME_RELATIVE, (1.5, 0.0, 0.0, math.nan), lat + 2e-4, lon, 30.0),
        ),
    )
    plan = write_plan(mission, tmp_path / "hold.plan")
    report_path = tmp_path / "report.json"
    with LoopbackVehicle() as vehicle:
        code = run(
            [
                "upload",
                str(plan),
                "--connect",
                vehicle.connection_string,
                "--report",
                str(report_path),
            ]
        )
    line = _one_line_error(capsys.readouterr().err)
    assert code == EXIT_ERROR
    assert "param1 is 1, plan 1.5" in line
    report = json.loads(report_path.read_text())
    assert report["result"] == "mismatch"
    assert report["mismatches"] == ["item 2 (NAV_WAYPOINT): param1 is 1, plan 1.5"]


def test_help_names_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["upload", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in (
        "--connect",
        "--baud",
        "--timeout-s",
        "--wait-ready-s",
        "--boot-wait-s",
        "--no-clear",
        "--report",
    ):
        assert flag in out


def test_planner_sortie_uploads_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `sitewatch plan` writes is what `sitewatch upload` sends, integer for integer."""
    from shapely.geometry import box

    from flightplans import PlanParams, plan_survey, read_plan, write_mission_files

    site = box(500000, 4100000, 500260, 4100100).union(box(500000, 4100000, 500090, 4100230))
    plan = plan_survey(site, PlanParams(alt_m=60), crs=32650)
    write_mission_files(plan, tmp_path / "out")
    sortie_path = tmp_path / "out" / "sortie-01.plan"
    mission = read_plan(sortie_path)
    with LoopbackVehicle() as vehicle:
        code = run(["upload", str(sortie_path), "--connect", vehicle.connection_string])
        received = {r.seq: r for r in vehicle.received}
        stored = vehicle.mission()
    assert code == 0, capsys.readouterr().err
    assert ": ok" in capsys.readouterr().out
    assert len(stored) == len(mission.items) + 1
    for seq, item in enumerate(mission.items, start=1):
        assert received[seq].msg_type == "MISSION_ITEM_INT"
        assert (received[seq].x, received[seq].y) == (item.lat_e7(), item.lon_e7())
        assert received[seq].command == item.command
