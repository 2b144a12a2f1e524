"""QGroundControl .plan and QGC WPL 110 writers and readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pymavlink import mavwp

from flightplans.errors import FlightPlanError, PlanFileError
from flightplans.mission import (
    FRAME_AMSL,
    FRAME_RELATIVE,
    MAV_CMD_DO_SET_CAM_TRIGG_DIST,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_NAV_TAKEOFF,
    MAV_CMD_NAV_WAYPOINT,
    Mission,
    MissionItem,
)
from flightplans.qgc import read_plan, read_waypoints, write_plan, write_waypoints

NAN = math.nan


def _mission(frame: int = FRAME_RELATIVE) -> Mission:
    items = (
        MissionItem(MAV_CMD_NAV_TAKEOFF, frame, (0.0, 0.0, 0.0, NAN), 37.0701234, 114.5012345, 60),
        MissionItem(MAV_CMD_NAV_WAYPOINT, frame, (0.0, 0.0, 0.0, NAN), 37.0702, 114.5013, 60.25),
        MissionItem(MAV_CMD_DO_SET_CAM_TRIGG_DIST, frame, (12.5, 0.0, 1.0, 0.0)),
        MissionItem(MAV_CMD_NAV_WAYPOINT, frame, (0.0, 0.0, 0.0, NAN), 37.0712345, 114.5023456, 61),
        MissionItem(MAV_CMD_DO_SET_CAM_TRIGG_DIST, frame, (0.0, 0.0, 0.0, 0.0)),
        MissionItem(MAV_CMD_NAV_RETURN_TO_LAUNCH, frame),
    )
    return Mission(home=(37.07, 114.5, 75.5), items=items, cruise_speed_ms=9.0, hover_speed_ms=4.0)


def test_plan_round_trip_and_format(tmp_path: Path) -> None:
    m = _mission()
    ring = [(37.07, 114.5), (37.07, 114.51), (37.08, 114.51), (37.07, 114.5)]
    out = write_plan(m, tmp_path / "a.plan", inclusion=[ring], exclusions=[ring[:3]])
    doc = json.loads(out.read_text())
    assert doc["fileType"] == "Plan" and doc["version"] == 1
    assert isinstance(doc["groundStation"], str)
    mis = doc["mission"]
    assert mis["version"] == 2 and mis["firmwareType"] == 3 and mis["vehicleType"] == 2
    assert mis["cruiseSpeed"] == 9.0 and mis["hoverSpeed"] == 4.0
    assert mis["plannedHomePosition"] == [37.07, 114.5, 75.5]
    for n, item in enumerate(mis["items"], start=1):
        assert item["type"] == "SimpleItem"
        assert isinstance(item["autoContinue"], bool)
        assert item["doJumpId"] == n
        assert isinstance(item["command"], int) and isinstance(item["frame"], int)
        assert len(item["params"]) == 7
        assert all(v is None or isinstance(v, float) for v in item["params"])
    wp = mis["items"][1]
    assert wp["params"][3] is None  # NaN yaw written as null
    assert wp["params"][4:] == [37.0702, 114.5013, 60.25]
    assert wp["Altitude"] == 60.25 and wp["AltitudeMode"] == 1
    assert "AltitudeMode" not in mis["items"][2]
    polys = doc["geoFence"]["polygons"]
    assert [p["inclusion"] for p in polys] == [True, False]
    assert polys[0]["polygon"] == [[37.07, 114.5], [37.07, 114.51], [37.08, 114.51]]
    assert all(p["version"] == 1 for p in polys)
    assert doc["rallyPoints"] == {"points": [], "version": 2}

    back = read_plan(out)
    assert back.home == m.home
    assert back.cruise_speed_ms == 9.0 and back.hover_speed_ms == 4.0
    assert len(back.items) == len(m.items)
    for a, b in zip(m.items, back.items, strict=True):
        assert a.same_as(b, tol_deg=1e-12, tol_m=1e-9)


def test_plan_amsl_mode(tmp_path: Path) -> None:
    out = write_plan(_mission(FRAME_AMSL), tmp_path / "b.plan")
    mis = json.loads(out.read_text())["mission"]
    assert mis["globalPlanAltitudeMode"] == 2
    assert mis["items"][1]["AMSLAltAboveTerrain"] == 60.25


def test_waypoints_load_in_pymavlink(tmp_path: Path) -> None:
    m = _mission()
    out = write_waypoints(m, tmp_path / "a.waypoints")
    lines = out.read_text().splitlines()
    assert lines[0] == "QGC WPL 110"
    assert all(len(line.split("\t")) == 12 for line in lines[1:])
    loader = mavwp.MAVWPLoader()
    assert loader.load(str(out)) == len(m.items) + 1
    home = loader.wp(0)
    assert (home.seq, home.frame) == (0, 0)
    assert home.x == pytest.approx(37.07, abs=1e-8) and home.z == pytest.approx(75.5)
    for i, it in enumerate(m.items, start=1):
        w = loader.wp(i)
        assert (w.seq, w.command, w.frame) == (i, it.command, it.frame)
        assert w.x == pytest.approx(it.lat, abs=1e-8)
        assert w.y == pytest.approx(it.lon, abs=1e-8)
        assert w.z == pytest.approx(it.alt, abs=1e-3)
        for k, v in enumerate(it.params):
            got = getattr(w, f"param{k + 1}")
            assert (math.isnan(got) and math.isnan(v)) or got == pytest.approx(v, abs=1e-6)
    back = read_waypoints(out)
    assert back.home == pytest.approx(m.home)
    for a, b in zip(m.items, back.items, strict=True):
        assert a.same_as(b, tol_deg=1e-8, tol_m=1e-3)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not json at all", "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"fileType": "GeoFence", "version": 1}', "fileType"),
        ('{"fileType": "Plan", "version": 1, "mission": {}}', "mission.items"),
        (
            '{"fileType": "Plan", "version": 1, "mission": {"items": [],'
            ' "plannedHomePosition": [1, 2]}}',
            "plannedHomePosition",
        ),
        (
            '{"fileType": "Plan", "version": 1, "mission": {"plannedHomePosition": [1,2,3],'
            ' "items": [{"type": "SimpleItem", "command": 16, "frame": 3, "params": [1]}]}}',
            "7 values",
        ),
    ],
)
def test_read_plan_errors_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.plan"
    p.write_text(text)
    with pytest.raises(PlanFileError) as info:
        read_plan(p)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg and str(p) in msg
    assert isinstance(info.value, FlightPlanError) and isinstance(info.value, ValueError)


def test_read_plan_flattens_qgc_survey_items(tmp_path: Path) -> None:
    inner = {
        "type": "SimpleItem",
        "command": 16,
        "frame": 3,
        "params": [0, 0, 0, None, 37.0, 114.0, 50],
        "autoContinue": True,
        "doJumpId": 2,
    }
    doc = {
        "fileType": "Plan",
        "groundStation": "QGroundControl",
        "version": 1,
        "mission": {
            "plannedHomePosition": [37, 114, 10],
            "items": [
                {
                    "type": "ComplexItem",
                    "complexItemType": "survey",
                    "TransectStyleComplexItem": {"Items": [inner, inner]},
                }
            ],
        },
    }
    p = tmp_path / "qgc.plan"
    p.write_text(json.dumps(doc))
    m = read_plan(p)
    assert len(m.items) == 2 and m.items[0].lat == 37.0 and math.isnan(m.items[0].params[3])


def test_read_waypoints_errors(tmp_path: Path) -> None:
    p = tmp_path / "x.waypoints"
    p.write_text("QGC WPL 110\n0\t1\t0\n")
    with pytest.raises(PlanFileError, match="12 tab-separated"):
        read_waypoints(p)
    p.write_text("hello\n")
    with pytest.raises(PlanFileError, match="QGC WPL 110"):
        read_waypoints(p)
