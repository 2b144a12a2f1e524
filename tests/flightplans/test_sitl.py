"""The same upload against a real ArduPilot SITL binary (``ARDUPILOT_SITL=/path/to/arducopter``).

Run with ``pytest -m sitl tests/flightplans/test_sitl.py``. ``ARDUPILOT_SITL_DEFAULTS`` may name
a defaults file (ArduPilot's ``Tools/autotest/default_params/copter.parm``); otherwise a
minimal one is written. SITL's serial 0 listens on TCP 5760 + 10 * instance.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightplans.mission import MAV_CMD_NAV_WAYPOINT
from flightplans.vehicle import download_mission, upload_mission
from tests.flightplans.mavlink_vehicle import DEFAULT_HOME, survey_mission

pytestmark = pytest.mark.sitl

_MINIMAL_COPTER_PARAMS = "FRAME_CLASS 1\nFRAME_TYPE 1\nSYSID_THISMAV 1\nSR0_POSITION 4\n"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if not _port_free(port):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def sitl_connection(tmp_path: Path) -> Iterator[str]:
    binary = os.environ.get("ARDUPILOT_SITL")
    if not binary:
        pytest.skip("set ARDUPILOT_SITL=/path/to/arducopter to run against ArduPilot SITL")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"ARDUPILOT_SITL={binary} is not an executable file")
    defaults = os.environ.get("ARDUPILOT_SITL_DEFAULTS")
    if not defaults:
        parm = tmp_path / "copter.parm"
        parm.write_text(_MINIMAL_COPTER_PARAMS)
        defaults = str(parm)
    instance = next(i for i in range(20) if _port_free(5760 + 10 * i))
    port = 5760 + 10 * instance
    lat, lon, alt = DEFAULT_HOME
    log_path = tmp_path / "sitl.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                binary,
                "--model",
                "+",
                "--speedup",
                "1",
                "--defaults",
                defaults,
                "-I",
                str(instance),
                "--home",
                f"{lat},{lon},{alt},0",
            ],
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            if not _wait_listening(port, proc, 30.0):
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"SITL did not listen on TCP {port} within 30 s:\n{tail}")
            yield f"tcp:127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_upload_round_trips_on_ardupilot_sitl(sitl_connection: str) -> None:
    mission = survey_mission(n_lines=10, seed=5)
    report = upload_mission(
        mission, sitl_connection, timeout_s=30.0, wait_ready_s=120.0, boot_wait_s=60.0
    )
    assert report.ok, report.mismatches
    assert report.items_sent == report.items_received == len(mission.items) + 1
    assert report.max_position_diff_deg <= 1e-7
    assert report.max_alt_diff_m <= 0.011
    back = download_mission(sitl_connection, timeout_s=30.0, wait_ready_s=120.0)
    assert len(back.items) == len(mission.items)
    for plan, got in zip(mission.items, back.items, strict=True):
        assert got.command == plan.command
        if plan.command == MAV_CMD_NAV_WAYPOINT:
            assert (got.lat_e7(), got.lon_e7()) == (plan.lat_e7(), plan.lon_e7())
