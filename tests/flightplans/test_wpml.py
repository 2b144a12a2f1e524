"""DJI WPML route files: written from our plans, read back, checked against the published format.

Known answers: the waypoints, actions and heights of the plan (round trip within 1e-7° and
0.1 m), the planted geoid of ``test_geoid.py`` (and the real EGM96 through pyproj where it is
installed), DJI's enum values, a hand-written route in the style DJI Pilot 2 exports, and
hostile archives that must give one clear line and extract nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from flightplans import (
    PlanFileError,
    PlanParameterError,
    PlanParams,
    SurveyPlan,
    WpmlOptions,
    get_drone,
    plan_oblique,
    plan_survey,
    read_wpml,
    wpml_survey,
    write_mission_files,
    write_wpml,
)
from flightplans.mission import (
    FRAME_AMSL,
    FRAME_RELATIVE,
    FRAME_TERRAIN,
    MAV_CMD_DO_SET_CAM_TRIGG_DIST,
    MAV_CMD_IMAGE_START_CAPTURE,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_NAV_TAKEOFF,
    MAV_CMD_NAV_WAYPOINT,
    Mission,
)
from flightplans.wpml import (
    EXECUTE_HEIGHT_MODES,
    EXIT_ON_RC_LOST,
    HEADING_MODES,
    RC_LOST_ACTIONS,
    TEMPLATE_HEIGHT_MODES,
    TRIGGER_TYPES,
    TURN_MODES,
)
from tests.flightplans.test_geoid import MONGOLIA, planted_undulation, real_grid, write_gtx

UTM50 = 32650
X0, Y0 = 278000.0, 4105600.0
KML = "{http://www.opengis.net/kml/2.2}"
WPML = "{http://www.dji.com/wpmz/1.0.2}"

#: Every element name DJI documents for the files we write (template.kml, waylines.wpml and
#: the common elements), so that a name we invent would fail here.
DOCUMENTED = {
    "author",
    "createTime",
    "updateTime",
    "missionConfig",
    "flyToWaylineMode",
    "finishAction",
    "exitOnRCLost",
    "executeRCLostAction",
    "takeOffSecurityHeight",
    "globalTransitionalSpeed",
    "globalRTHHeight",
    "takeOffRefPoint",
    "takeOffRefPointAGLHeight",
    "droneInfo",
    "droneEnumValue",
    "droneSubEnumValue",
    "payloadInfo",
    "payloadEnumValue",
    "payloadSubEnumValue",
    "payloadPositionIndex",
    "templateType",
    "templateId",
    "waylineCoordinateSysParam",
    "coordinateMode",
    "heightMode",
    "positioningType",
    "autoFlightSpeed",
    "globalHeight",
    "gimbalPitchMode",
    "globalWaypointHeadingParam",
    "waypointHeadingMode",
    "waypointHeadingAngle",
    "waypointHeadingPathMode",
    "globalWaypointTurnMode",
    "globalUseStraightLine",
    "index",
    "ellipsoidHeight",
    "height",
    "useGlobalHeight",
    "useGlobalSpeed",
    "useGlobalHeadingParam",
    "useGlobalTurnParam",
    "waypointTurnParam",
    "waypointTurnMode",
    "waypointTurnDampingDist",
    "gimbalPitchAngle",
    "payloadParam",
    "imageFormat",
    "executeHeightMode",
    "waylineId",
    "executeHeight",
    "waypointSpeed",
    "waypointHeadingParam",
    "actionGroup",
    "actionGroupId",
    "actionGroupStartIndex",
    "actionGroupEndIndex",
    "actionGroupMode",
    "actionTrigger",
    "actionTriggerType",
    "actionTriggerParam",
    "action",
    "actionId",
    "actionActuatorFunc",
    "actionActuatorFuncParam",
    "fileSuffix",
    "payloadLensIndex",
    "useGlobalPayloadLensIndex",
    "gimbalHeadingYawBase",
    "gimbalRotateMode",
    "gimbalPitchRotateEnable",
    "gimbalPitchRotateAngle",
    "gimbalRollRotateEnable",
    "gimbalRollRotateAngle",
    "gimbalYawRotateEnable",
    "gimbalYawRotateAngle",
    "gimbalRotateTimeEnable",
    "gimbalRotateTime",
    "hoverTime",
}


def _site(w: float = 240.0, h: float = 160.0, x0: float = X0, y0: float = Y0) -> Polygon:
    return affinity.translate(box(0, 0, w, h), x0, y0)


@pytest.fixture(scope="module")
def split_plan() -> SurveyPlan:
    """Two battery sorties around a no-fly zone and a hole, for an M30T."""
    site = Polygon(
        _site(400, 260).exterior, [affinity.translate(box(40, 40, 80, 80), X0, Y0).exterior]
    )
    nofly = Point(X0 + 250, Y0 + 130).buffer(30)
    params = PlanParams(gsd_cm=2.0, camera=get_drone("m30t").camera, battery_min=6.0)
    return plan_survey(site, params, crs=UTM50, nofly=[nofly])


def _wps(m: Mission) -> list:  # type: ignore[type-arg]
    return [it for it in m.items if it.command == MAV_CMD_NAV_WAYPOINT]


def _scale(plan: SurveyPlan) -> float:
    from pyproj import Proj

    lon, lat = plan.stats["home_lonlat"]
    return 1.0 / float(Proj(plan.crs).get_factors(lon, lat).meridional_scale)


def _xml(path: Path, member: str) -> ET.Element:
    with zipfile.ZipFile(path) as zf:
        return ET.fromstring(zf.read(member))


def _w(el: ET.Element, name: str) -> str:
    found = el.find(WPML + name)
    assert found is not None and found.text is not None, name
    return found.text


# ----------------------------------------------------------------------------- round trip


def test_plan_to_kmz_and_back_gives_the_same_mission(
    split_plan: SurveyPlan, tmp_path: Path
) -> None:
    plan = split_plan
    assert len(plan.sorties) >= 2
    write_mission_files(plan, tmp_path, formats=("wpml",), wpml=WpmlOptions(get_drone("m30t")))
    kmz = sorted(tmp_path.glob("sortie-*.kmz"))
    assert [p.name for p in kmz] == [f"sortie-{k:02d}.kmz" for k in range(1, len(plan.sorties) + 1)]
    assert not list(tmp_path.glob("*.plan"))
    scale = _scale(plan)
    to_utm = Transformer.from_crs(4326, UTM50, always_xy=True)
    for sortie, path in zip(plan.sorties, kmz, strict=True):
        route = read_wpml(path).routes[0]
        ours, back = sortie.mission.items, route.mission.items
        assert [it.command for it in back] == [it.command for it in ours]
        for a, b in zip(ours, back, strict=True):
            if a.command == MAV_CMD_NAV_WAYPOINT:
                assert a.frame == b.frame == FRAME_RELATIVE
                assert abs(a.lat - b.lat) <= 1e-7 and abs(a.lon - b.lon) <= 1e-7
                assert abs(a.alt - b.alt) <= 0.1 and a.params[0] == b.params[0]
            elif a.command == MAV_CMD_DO_SET_CAM_TRIGG_DIST:
                # the planner's trigger distance is in UTM metres, the aircraft's in true ones
                assert b.params[0] == pytest.approx(a.params[0] * scale, abs=1e-6)
                assert b.params[2] == a.params[2]
            elif a.command == MAV_CMD_NAV_TAKEOFF:
                assert b.alt == pytest.approx(a.alt, abs=0.01) and b.frame == a.frame
        # the photos the aircraft will take are where the planner put them
        photos = wpml_survey(read_wpml(path)).lonlat
        x, y = to_utm.transform(photos[:, 0], photos[:, 1])
        assert len(x) == len(sortie.photos)
        assert np.hypot(x - sortie.photos[:, 0], y - sortie.photos[:, 1]).max() < 0.1
        # and no waypoint is over the no-fly zone or the hole
        wx, wy = to_utm.transform(
            [w.lon for w in _wps(route.mission)], [w.lat for w in _wps(route.mission)]
        )
        assert plan.nofly is not None
        forbidden = shapely.union_all([plan.nofly, *[Polygon(r) for r in plan.site.interiors]])
        assert not shapely.contains_xy(forbidden, np.asarray(wx), np.asarray(wy)).any()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [f["file"] for f in summary["wpml"]["files"]] == [p.name for p in kmz]
    assert {f["execute_height_mode"] for f in summary["wpml"]["files"]} == {"relativeToStartPoint"}
    assert summary["formats"] == ["wpml"] and "qgc" not in summary


def test_the_archive_follows_the_published_format(split_plan: SurveyPlan, tmp_path: Path) -> None:
    drone = get_drone("m30t")
    mission = split_plan.sorties[0].mission
    path = tmp_path / "route.kmz"
    write_wpml(mission, path, WpmlOptions(drone), takeoff_amsl_m=None)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["wpmz/template.kml", "wpmz/waylines.wpml"]
        raw = {n: zf.read(n).decode("utf-8") for n in zf.namelist()}
    for text in raw.values():
        assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<kml ')
        assert 'xmlns="http://www.opengis.net/kml/2.2"' in text
        assert 'xmlns:wpml="http://www.dji.com/wpmz/1.0.2"' in text
    tmpl, way = _xml(path, "wpmz/template.kml"), _xml(path, "wpmz/waylines.wpml")
    for root in (tmpl, way):
        assert root.tag == KML + "kml"
        names = {el.tag.split("}")[1] for el in root.iter() if el.tag.startswith(WPML)}
        assert names <= DOCUMENTED, names - DOCUMENTED
        doc = root.find(KML + "Document")
        assert doc is not None
        mc = doc.find(WPML + "missionConfig")
        assert mc is not None
        assert _w(mc, "flyToWaylineMode") == "safely" and _w(mc, "finishAction") == "goHome"
        assert _w(mc, "exitOnRCLost") in EXIT_ON_RC_LOST
        assert _w(mc, "executeRCLostAction") in RC_LOST_ACTIONS
        assert 1.2 <= float(_w(mc, "takeOffSecurityHeight")) <= 1500
        assert 2 <= float(_w(mc, "globalRTHHeight")) <= 1500
        di, pi = mc.find(WPML + "droneInfo"), mc.find(WPML + "payloadInfo")
        assert di is not None and pi is not None
        assert (_w(di, "droneEnumValue"), _w(di, "droneSubEnumValue")) == ("67", "1")
        assert (_w(pi, "payloadEnumValue"), _w(pi, "payloadPositionIndex")) == ("53", "0")
        for tag, allowed in (
            ("heightMode", TEMPLATE_HEIGHT_MODES),
            ("executeHeightMode", EXECUTE_HEIGHT_MODES),
            ("waypointTurnMode", TURN_MODES),
            ("globalWaypointTurnMode", TURN_MODES),
            ("waypointHeadingMode", HEADING_MODES),
            ("actionTriggerType", TRIGGER_TYPES),
            ("actionActuatorFunc", ("takePhoto", "gimbalRotate", "hover")),
        ):
            for el in root.iter(WPML + tag):
                assert el.text in allowed, (tag, el.text)
        folders = doc.findall(KML + "Folder")
        assert len(folders) == 1
        pms = folders[0].findall(KML + "Placemark")
        assert [int(_w(p, "index")) for p in pms] == list(range(len(_wps(mission))))
        ids = [int(_w(g, "actionGroupId")) for g in root.iter(WPML + "actionGroup")]
        assert len(ids) == len(set(ids))
        for g in root.iter(WPML + "actionGroup"):
            assert 0 <= int(_w(g, "actionGroupStartIndex")) <= int(_w(g, "actionGroupEndIndex"))
            assert int(_w(g, "actionGroupEndIndex")) < len(pms)
    folder = tmpl.find(f"{KML}Document/{KML}Folder")
    assert folder is not None and _w(folder, "templateType") == "waypoint"
    assert all(_w(p, "useGlobalHeight") == "0" for p in folder.findall(KML + "Placemark"))
    assert {_w(p, "gimbalPitchAngle") for p in folder.findall(KML + "Placemark")} == {"-90"}
    coords = [
        [c.text for c in r.iter(KML + "coordinates")] for r in (tmpl, way)
    ]  # the template holds exactly the executed waypoints
    assert coords[0] == coords[1]
    pitch = [
        a
        for a in way.iter(WPML + "actionActuatorFuncParam")
        if a.find(WPML + "gimbalPitchRotateAngle") is not None
    ]
    assert [_w(a, "gimbalPitchRotateAngle") for a in pitch] == ["-90"]
    triggers = [t for t in way.iter(WPML + "actionTrigger")]
    assert {_w(t, "actionTriggerType") for t in triggers} == {"reachPoint", "multipleDistance"}


def test_hover_capture_and_timed_shooting_round_trip(tmp_path: Path) -> None:
    drone = get_drone("mavic3e")
    hover = plan_survey(
        _site(120, 90), PlanParams(alt_m=40, camera=drone.camera, hover_capture=True), crs=UTM50
    )
    m = hover.sorties[0].mission
    write_wpml(m, tmp_path / "hover.kmz", WpmlOptions(drone), takeoff_amsl_m=None)
    back = read_wpml(tmp_path / "hover.kmz").routes[0].mission
    assert [it.command for it in back.items] == [it.command for it in m.items]
    assert [it.params[0] for it in _wps(back)] == [it.params[0] for it in _wps(m)]
    n_cap = sum(it.command == MAV_CMD_IMAGE_START_CAPTURE for it in m.items)
    assert n_cap == len(hover.photos) > 0
    way = _xml(tmp_path / "hover.kmz", "wpmz/waylines.wpml")
    funcs = [el.text for el in way.iter(WPML + "actionActuatorFunc")]
    assert funcs.count("hover") == funcs.count("takePhoto") == n_cap
    # by time: every trigger distance / speed seconds, read back as that distance
    flat = plan_survey(_site(), PlanParams(alt_m=60, camera=drone.camera), crs=UTM50)
    m = flat.sorties[0].mission
    write_wpml(m, tmp_path / "t.kmz", WpmlOptions(drone, shoot="time"), takeoff_amsl_m=None)
    way = _xml(tmp_path / "t.kmz", "wpmz/waylines.wpml")
    params = {
        float(_w(t, "actionTriggerParam"))
        for t in way.iter(WPML + "actionTrigger")
        if _w(t, "actionTriggerType") == "multipleTiming"
    }
    (seconds,) = params  # write_wpml alone keeps the mission's distances (scale 1)
    assert seconds == pytest.approx(flat.trigger_m / 8.0, abs=1e-6)
    route = read_wpml(tmp_path / "t.kmz").routes[0]
    assert {iv.timed_s for iv in route.intervals} == params
    d = {it.params[0] for it in route.mission.items if it.command == MAV_CMD_DO_SET_CAM_TRIGG_DIST}
    (distance,) = d - {0.0}
    assert distance == pytest.approx(flat.trigger_m, abs=1e-4)


# ----------------------------------------------------------------------------- heights


def _terrain_plan(drone_name: str = "m30t") -> tuple[SurveyPlan, object]:
    """A terrain-following plan at the Mongolian test point (EGM96 N = -43.6 m)."""
    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)
    x0, y0 = to_utm.transform(*MONGOLIA)

    def ground(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 1500.0 + 0.15 * (np.asarray(x) - x0) + 8.0 * np.sin((np.asarray(y) - y0) / 40.0)

    params = PlanParams(alt_m=60.0, camera=get_drone(drone_name).camera)
    plan = plan_survey(_site(260, 180, x0, y0), params, crs=32648, terrain=ground)
    assert plan.alt_frame == FRAME_AMSL
    return plan, ground


@pytest.fixture(scope="module")
def terrain_plan() -> SurveyPlan:
    return _terrain_plan()[0]


def _placemarks(path: Path, member: str) -> list[ET.Element]:
    root = _xml(path, member)
    return list(root.iter(KML + "Placemark"))


def _lonlat(pms: list[ET.Element]) -> tuple[np.ndarray, np.ndarray]:
    c = [p.find(f"{KML}Point/{KML}coordinates") for p in pms]
    ll = np.array([[float(v) for v in (e.text or "").split(",")] for e in c if e is not None])
    return ll[:, 0], ll[:, 1]


def test_heights_in_all_three_modes_at_a_large_undulation(
    terrain_plan: SurveyPlan, tmp_path: Path
) -> None:
    grid = write_gtx(tmp_path / "planted.gtx")
    plan, m = terrain_plan, terrain_plan.sorties[0].mission
    amsl = np.array([w.alt for w in _wps(m)])
    drone = get_drone("m30t")
    opts = WpmlOptions(drone, dem_datum="egm96", geoid_grid=grid)
    rec = write_wpml(m, tmp_path / "egm.kmz", opts, takeoff_amsl_m=plan.home_amsl)
    tpl = _placemarks(tmp_path / "egm.kmz", "wpmz/template.kml")
    way = _placemarks(tmp_path / "egm.kmz", "wpmz/waylines.wpml")
    lon, lat = _lonlat(way)
    n = planted_undulation(lon, lat)
    assert n.min() < -43.5
    # EGM96 (orthometric) in the template = the DEM heights; WGS84 = EGM96 + N, executed
    np.testing.assert_allclose([float(_w(p, "height")) for p in tpl], amsl, atol=1e-3)
    np.testing.assert_allclose([float(_w(p, "ellipsoidHeight")) for p in tpl], amsl + n, atol=2e-3)
    np.testing.assert_allclose([float(_w(p, "executeHeight")) for p in way], amsl + n, atol=2e-3)
    assert (rec["template_height_mode"], rec["execute_height_mode"]) == ("EGM96", "WGS84")
    assert "EGM96 geoid" in rec["template_height_datum"]
    assert "WGS84 ellipsoid" in rec["execute_height_datum"]
    assert rec["geoid_undulation_m"][0] == pytest.approx(float(n.min()), abs=0.01)
    mc = _xml(tmp_path / "egm.kmz", "wpmz/template.kml").find(f"{KML}Document/{WPML}missionConfig")
    assert mc is not None
    r_lat, r_lon, r_h = (float(v) for v in _w(mc, "takeOffRefPoint").split(","))
    home_n = float(planted_undulation(r_lon, r_lat))
    assert r_h == pytest.approx(plan.home_amsl + home_n, abs=2e-3)
    assert float(_w(mc, "takeOffRefPointAGLHeight")) == pytest.approx(plan.home_amsl, abs=1e-3)
    # relative to the take-off point: the DEM heights minus home's, in both files
    write_wpml(
        m,
        tmp_path / "rel.kmz",
        WpmlOptions(drone, height_mode="relative", dem_datum="egm96", geoid_grid=grid),
        takeoff_amsl_m=plan.home_amsl,
    )
    for member, tag in (("wpmz/template.kml", "height"), ("wpmz/waylines.wpml", "executeHeight")):
        got = [float(_w(p, tag)) for p in _placemarks(tmp_path / "rel.kmz", member)]
        np.testing.assert_allclose(got, amsl - plan.home_amsl, atol=1e-3)
    # a DEM of ellipsoid heights: executed as they are, EGM96 = h - N in the template
    write_wpml(
        m,
        tmp_path / "wgs.kmz",
        WpmlOptions(drone, dem_datum="wgs84", geoid_grid=grid),
        takeoff_amsl_m=plan.home_amsl,
    )
    got = [
        float(_w(p, "executeHeight"))
        for p in _placemarks(tmp_path / "wgs.kmz", "wpmz/waylines.wpml")
    ]
    np.testing.assert_allclose(got, amsl, atol=1e-3)
    got = [float(_w(p, "height")) for p in _placemarks(tmp_path / "wgs.kmz", "wpmz/template.kml")]
    np.testing.assert_allclose(got, amsl - n, atol=2e-3)
    # read back: above sea level again (frame 0), the same mission within 0.1 m
    back = read_wpml(tmp_path / "egm.kmz", geoid_grid=grid).routes[0].mission
    assert back.home[2] == pytest.approx(plan.home_amsl, abs=1e-3)
    for a, b in zip(m.items, back.items, strict=True):
        assert a.same_as(b, tol_m=0.1), (a, b)


def test_heights_against_pyproj_with_the_real_egm96(
    terrain_plan: SurveyPlan, tmp_path: Path
) -> None:
    import pyproj

    grid = real_grid()
    plan, m = terrain_plan, terrain_plan.sorties[0].mission
    write_wpml(
        m,
        tmp_path / "egm.kmz",
        WpmlOptions(get_drone("m30t"), dem_datum="egm96", geoid_grid=grid),
        takeoff_amsl_m=plan.home_amsl,
    )
    way = _placemarks(tmp_path / "egm.kmz", "wpmz/waylines.wpml")
    lon, lat = _lonlat(way)
    amsl = np.array([w.alt for w in _wps(m)])
    folder = tmp_path / "grid"
    folder.mkdir()
    (folder / grid.name).symlink_to(grid)
    saved = pyproj.datadir.get_data_dir()
    pyproj.datadir.append_data_dir(folder)
    try:  # pyproj's own EPSG path: WGS 84 + EGM96 height → WGS 84 ellipsoidal 3D
        tr = Transformer.from_crs("EPSG:9707", "EPSG:4979", always_xy=True)
        _x, _y, expected = tr.transform(lon, lat, amsl)
    finally:
        pyproj.datadir.set_data_dir(saved)
    got = np.array([float(_w(p, "executeHeight")) for p in way])
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert np.all(np.abs(got - amsl + 43.6) < 0.2)  # N at the NGA test point, -43.6 m


def test_heights_that_need_an_unknown_take_off_elevation_are_refused(
    split_plan: SurveyPlan, terrain_plan: SurveyPlan, tmp_path: Path
) -> None:
    drone = get_drone("m300rtk")
    rel = split_plan.sorties[0].mission
    with pytest.raises(PlanParameterError) as e:
        write_wpml(
            rel, tmp_path / "x.kmz", WpmlOptions(drone, height_mode="egm96"), takeoff_amsl_m=None
        )
    msg = str(e.value)
    assert "take-off point's elevation is unknown" in msg and "--dem" in msg and "\n" not in msg
    amsl = terrain_plan.sorties[0].mission
    with pytest.raises(PlanParameterError, match="take-off point's elevation is unknown"):
        write_wpml(
            amsl,
            tmp_path / "y.kmz",
            WpmlOptions(drone, height_mode="relative"),
            takeoff_amsl_m=None,
        )
    terrain_frame = Mission(
        home=rel.home,
        items=tuple(
            dataclasses.replace(it, frame=FRAME_TERRAIN) if it.frame == FRAME_RELATIVE else it
            for it in rel.items
        ),
    )
    with pytest.raises(PlanParameterError, match="above the terrain"):
        write_wpml(terrain_frame, tmp_path / "z.kmz", WpmlOptions(drone), takeoff_amsl_m=None)
    fast = Mission(home=rel.home, items=rel.items, cruise_speed_ms=16.0)
    with pytest.raises(PlanParameterError, match="outside the 1-15 m/s"):
        write_wpml(fast, tmp_path / "f.kmz", WpmlOptions(drone), takeoff_amsl_m=None)
    assert not list(tmp_path.iterdir())  # nothing half-written


# ----------------------------------------------------------------------------- oblique


def test_oblique_gives_five_routes_with_the_right_gimbal_pitches(tmp_path: Path) -> None:
    drone = get_drone("m350rtk")
    nofly = Point(X0 + 300, Y0 + 80).buffer(20)
    plan = plan_survey(
        _site(200, 140), PlanParams(alt_m=50.0, camera=drone.camera), crs=UTM50, nofly=[nofly]
    )
    routes = plan_oblique(plan, pitch_deg=-45.0)
    assert len(routes) == 5 and routes[0].plan is plan
    write_mission_files(plan, tmp_path, formats=("wpml",), wpml=WpmlOptions(drone), routes=routes)
    files = sorted(tmp_path.glob("sortie-*.kmz"))
    assert len(files) == sum(len(r.plan.sorties) for r in routes) >= 5
    read = [read_wpml(f).routes[0] for f in files]
    by_route: dict[str, list] = {}  # type: ignore[type-arg]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for rec, r in zip(summary["wpml"]["files"], read, strict=True):
        by_route.setdefault(rec["route"], []).append(r)
    assert list(by_route) == ["nadir", "oblique 1/4", "oblique 2/4", "oblique 3/4", "oblique 4/4"]
    assert {r.gimbal_pitch_deg for r in by_route["nadir"]} == {-90.0}
    assert {r.heading_mode for r in by_route["nadir"]} == {"followWayline"}
    headings = []
    for name in list(by_route)[1:]:
        assert {r.gimbal_pitch_deg for r in by_route[name]} == {-45.0}
        assert {r.heading_mode for r in by_route[name]} == {"smoothTransition"}
        (h,) = {r.heading_deg for r in by_route[name]}
        headings.append(h)
    steps = [(b - a) % 360.0 for a, b in itertools.pairwise(headings)]
    assert steps == pytest.approx([90.0, 90.0, 90.0], abs=0.01)
    to_utm = Transformer.from_crs(4326, UTM50, always_xy=True)
    centre = np.array(shapely.centroid(plan.site).coords[0])
    for route, name in zip(routes[1:], list(by_route)[1:], strict=True):
        # the aircraft flies H / tan(45°) = 50 m behind what the camera looks at
        assert route.offset_m == pytest.approx(50.0)
        ll = np.vstack(
            [
                wpml_survey(read_wpml(f)).lonlat
                for f in files
                if f.name
                in {rec["file"] for rec in summary["wpml"]["files"] if rec["route"] == name}
            ]
        )
        x, y = to_utm.transform(ll[:, 0], ll[:, 1])
        shift = np.array([np.mean(x), np.mean(y)]) - centre
        b = math.radians(route.plan.angle_deg + 90.0 * (int(name[8]) - 1))
        look = np.array([math.sin(b), math.cos(b)])
        assert float(shift @ look) == pytest.approx(-50.0, abs=8.0)
        for r in by_route[name]:  # never over the no-fly zone
            wx, wy = to_utm.transform(
                [w.lon for w in _wps(r.mission)], [w.lat for w in _wps(r.mission)]
            )
            assert not shapely.contains_xy(nofly, np.asarray(wx), np.asarray(wy)).any()
    assert summary["oblique"]["gimbal_pitch_deg"] == -45.0
    with pytest.raises(PlanParameterError, match="outside -85 to -30"):
        plan_oblique(plan, pitch_deg=-20.0)
    with pytest.raises(PlanParameterError, match="WPML only"):
        write_mission_files(
            plan, tmp_path, formats=("qgc", "wpml"), wpml=WpmlOptions(drone), routes=routes
        )


# ----------------------------------------------------------------------------- hostile input


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


_GOOD_WAYLINES = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<kml xmlns="http://www.opengis.net/kml/2.2" xmlns:wpml="http://www.dji.com/wpmz/1.0.2">'
    b"<Document><wpml:missionConfig><wpml:finishAction>goHome</wpml:finishAction>"
    b"</wpml:missionConfig><Folder><wpml:executeHeightMode>relativeToStartPoint"
    b"</wpml:executeHeightMode><wpml:autoFlightSpeed>5</wpml:autoFlightSpeed>"
    b"<Placemark><Point><coordinates>114.5,37.07</coordinates></Point><wpml:index>0</wpml:index>"
    b"<wpml:executeHeight>50</wpml:executeHeight></Placemark></Folder></Document></kml>"
)

_BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE kml [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">'
    b'<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">'
    b'<!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"><!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">]>'
    b'<kml xmlns="http://www.opengis.net/kml/2.2"><Document>&i;</Document></kml>'
)

_EXTERNAL = (
    b'<?xml version="1.0"?>\n<!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<kml xmlns="http://www.opengis.net/kml/2.2"><Document>&x;</Document></kml>'
)

HOSTILE = {
    "not_a_zip": (None, "not a ZIP archive"),
    "no_wpmz": ({"template.kml": b"x", "waylines.wpml": _GOOD_WAYLINES}, "no wpmz/ folder"),
    "template_only": ({"wpmz/template.kml": _GOOD_WAYLINES}, "only wpmz/template.kml"),
    "dot_dot": (
        {"wpmz/waylines.wpml": _GOOD_WAYLINES, "wpmz/res/../../../evil.txt": b"pwned"},
        "names a path outside the archive",
    ),
    "absolute": (
        {"wpmz/waylines.wpml": _GOOD_WAYLINES, "/tmp/evil.txt": b"pwned"},
        "names a path outside the archive",
    ),
    "xml_bomb": ({"wpmz/waylines.wpml": _BOMB}, "possible XML bomb"),
    "external_entity": ({"wpmz/waylines.wpml": _EXTERNAL}, "possible XML bomb or external"),
    "malformed": ({"wpmz/waylines.wpml": b"<kml><Document>"}, "not well-formed XML"),
    "not_kml": ({"wpmz/waylines.wpml": b"<html><body/></html>"}, "not KML 2.2"),
    "no_wpml": (
        {"wpmz/waylines.wpml": b'<kml xmlns="http://www.opengis.net/kml/2.2"><Document/></kml>'},
        "no http://www.dji.com/wpmz/1.0.x elements",
    ),
    "index_gap": (
        {"wpmz/waylines.wpml": _GOOD_WAYLINES.replace(b"<wpml:index>0<", b"<wpml:index>3<")},
        "indices are not 0..0",
    ),
    "lat_lon_swapped": (
        {"wpmz/waylines.wpml": _GOOD_WAYLINES.replace(b"114.5,37.07", b"37.07,114.5")},
        "no place on Earth",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_malformed_and_hostile_files_are_one_clear_line(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    members, needle = HOSTILE[case]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "route.kmz"
    if members is None:
        path.write_bytes(b"PK? this is not an archive")
    else:
        _zip(path, members)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(PlanFileError) as e:
        read_wpml(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and needle in msg, msg
    # nothing was extracted anywhere, the input is untouched, nothing written beside it
    assert sorted(p.name for p in inbox.iterdir()) == ["route.kmz"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not list(work.iterdir()) and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/evil.txt").exists()


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    from flightplans.wpml_read import MAX_MEMBER_BYTES

    path = _zip(tmp_path / "bomb.kmz", {"wpmz/waylines.wpml": bytes(MAX_MEMBER_BYTES + 1)})
    assert path.stat().st_size < 1_000_000  # 64 MB of zeros deflate to about 64 kB
    with pytest.raises(PlanFileError, match="would unpack to 67108865 bytes, more than"):
        read_wpml(path)


# ----------------------------------------------------------------------------- Pilot 2's files


def _pilot2_route(tmp_path: Path) -> Path:
    """A route as DJI Pilot 2 exports one for a Mavic 3E (namespace 1.0.6, EGM96 template,
    WGS84 execution, timed photos, a zoom and a hover, finish without going home)."""
    ns = 'xmlns="http://www.opengis.net/kml/2.2" xmlns:wpml="http://www.dji.com/wpmz/1.0.6"'
    lon0, lat0 = MONGOLIA
    pts = [(lon0 + 0.001 * k, lat0, 1560.0 + k) for k in range(5)]  # EGM96 heights
    n = planted_undulation(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    cfg = (
        "<wpml:missionConfig><wpml:flyToWaylineMode>safely</wpml:flyToWaylineMode>"
        "<wpml:finishAction>noAction</wpml:finishAction>"
        "<wpml:exitOnRCLost>goContinue</wpml:exitOnRCLost>"
        "<wpml:takeOffSecurityHeight>30</wpml:takeOffSecurityHeight>"
        "{ref}<wpml:globalTransitionalSpeed>10</wpml:globalTransitionalSpeed>"
        "<wpml:droneInfo><wpml:droneEnumValue>77</wpml:droneEnumValue>"
        "<wpml:droneSubEnumValue>0</wpml:droneSubEnumValue></wpml:droneInfo>"
        "<wpml:payloadInfo><wpml:payloadEnumValue>66</wpml:payloadEnumValue>"
        "<wpml:payloadSubEnumValue>0</wpml:payloadSubEnumValue>"
        "<wpml:payloadPositionIndex>0</wpml:payloadPositionIndex></wpml:payloadInfo>"
        "</wpml:missionConfig>"
    )
    ref = (
        f"<wpml:takeOffRefPoint>{lat0:.6f},{lon0 - 0.001:.6f},{1500 - 43.6:.3f}"
        "</wpml:takeOffRefPoint><wpml:takeOffRefPointAGLHeight>1500</wpml:takeOffRefPointAGLHeight>"
    )
    group = (
        "<wpml:actionGroup><wpml:actionGroupId>{gid}</wpml:actionGroupId>"
        "<wpml:actionGroupStartIndex>{s}</wpml:actionGroupStartIndex>"
        "<wpml:actionGroupEndIndex>{e}</wpml:actionGroupEndIndex>"
        "<wpml:actionGroupMode>sequence</wpml:actionGroupMode><wpml:actionTrigger>"
        "<wpml:actionTriggerType>{t}</wpml:actionTriggerType>{p}</wpml:actionTrigger>{a}"
        "</wpml:actionGroup>"
    )

    def action(k: int, func: str, params: str) -> str:
        return (
            f"<wpml:action><wpml:actionId>{k}</wpml:actionId><wpml:actionActuatorFunc>{func}"
            f"</wpml:actionActuatorFunc><wpml:actionActuatorFuncParam>{params}"
            "<wpml:payloadPositionIndex>0</wpml:payloadPositionIndex>"
            "</wpml:actionActuatorFuncParam></wpml:action>"
        )

    gimbal = action(
        0,
        "gimbalRotate",
        "<wpml:gimbalRotateMode>absoluteAngle</wpml:gimbalRotateMode>"
        "<wpml:gimbalPitchRotateEnable>1</wpml:gimbalPitchRotateEnable>"
        "<wpml:gimbalPitchRotateAngle>-90</wpml:gimbalPitchRotateAngle>",
    )
    zoom = action(1, "zoom", "<wpml:focalLength>24</wpml:focalLength>")
    groups = {
        0: group.format(gid=0, s=0, e=0, t="reachPoint", p="", a=gimbal + zoom),
        1: group.format(
            gid=1,
            s=1,
            e=3,
            t="multipleTiming",
            p="<wpml:actionTriggerParam>2</wpml:actionTriggerParam>",
            a=action(0, "takePhoto", "<wpml:fileSuffix>x</wpml:fileSuffix>"),
        ),
        4: group.format(
            gid=2,
            s=4,
            e=4,
            t="reachPoint",
            p="",
            a=action(0, "hover", "<wpml:hoverTime>2.5</wpml:hoverTime>")
            + action(1, "takePhoto", ""),
        ),
    }
    tpl_pm, way_pm = [], []
    for k, (lon, lat, h) in enumerate(pts):
        coord = f"<Point><coordinates>\n  {lon:.8f},{lat:.8f}\n</coordinates></Point>"
        tpl_pm.append(
            f"<Placemark>{coord}<wpml:index>{k}</wpml:index>"
            f"<wpml:ellipsoidHeight>{h + n[k]:.3f}</wpml:ellipsoidHeight>"
            f"<wpml:height>{h}</wpml:height><wpml:useGlobalHeight>0</wpml:useGlobalHeight>"
            f"{groups.get(k, '')}</Placemark>"
        )
        way_pm.append(
            f"<Placemark>{coord}<wpml:index>{k}</wpml:index>"
            f"<wpml:executeHeight>{h + n[k]:.3f}</wpml:executeHeight>"
            "<wpml:waypointSpeed>6</wpml:waypointSpeed><wpml:waypointHeadingParam>"
            "<wpml:waypointHeadingMode>followWayline</wpml:waypointHeadingMode>"
            f"</wpml:waypointHeadingParam>{groups.get(k, '')}</Placemark>"
        )
    template = (
        f'<?xml version="1.0" encoding="UTF-8"?><kml {ns}><Document>'
        f"<wpml:author>pilot</wpml:author>{cfg.format(ref=ref)}<Folder>"
        "<wpml:templateType>waypoint</wpml:templateType><wpml:templateId>0</wpml:templateId>"
        "<wpml:waylineCoordinateSysParam><wpml:coordinateMode>WGS84</wpml:coordinateMode>"
        "<wpml:heightMode>EGM96</wpml:heightMode></wpml:waylineCoordinateSysParam>"
        "<wpml:autoFlightSpeed>6</wpml:autoFlightSpeed><wpml:globalHeight>60</wpml:globalHeight>"
        f"{''.join(tpl_pm)}</Folder></Document></kml>"
    )
    waylines = (
        f'<?xml version="1.0" encoding="UTF-8"?><kml {ns}><Document>{cfg.format(ref="")}'
        "<Folder><wpml:templateId>0</wpml:templateId>"
        "<wpml:executeHeightMode>WGS84</wpml:executeHeightMode>"
        "<wpml:waylineId>0</wpml:waylineId><wpml:autoFlightSpeed>6</wpml:autoFlightSpeed>"
        f"{''.join(way_pm)}</Folder></Document></kml>"
    )
    return _zip(
        tmp_path / "Pilot route 1.kmz",
        {
            "wpmz/": b"",
            "wpmz/res/": b"",
            "wpmz/template.kml": template.encode(),
            "wpmz/waylines.wpml": waylines.encode(),
        },
    )


def test_a_route_made_in_pilot_2_is_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    grid = write_gtx(tmp_path / "planted.gtx")
    path = _pilot2_route(tmp_path)
    with caplog.at_level(logging.WARNING, logger="flightplans"):
        wf = read_wpml(path, geoid_grid=grid)
    assert wf.namespace == "http://www.dji.com/wpmz/1.0.6"
    assert wf.drone is not None and wf.drone.name == "mavic3e"
    assert wf.template_type == "waypoint" and wf.template_height_mode == "EGM96"
    assert wf.finish_action == "noAction" and wf.rc_lost == "goContinue"
    assert wf.takeoff_amsl_m == 1500.0 and wf.global_height_m == 60.0
    (route,) = wf.routes
    m = route.mission
    assert m.home[:2] == pytest.approx((MONGOLIA[1], MONGOLIA[0] - 0.001))
    cmds = [it.command for it in m.items]
    assert cmds == [
        MAV_CMD_NAV_TAKEOFF,
        *[MAV_CMD_NAV_WAYPOINT],
        MAV_CMD_NAV_WAYPOINT,
        MAV_CMD_DO_SET_CAM_TRIGG_DIST,
        MAV_CMD_NAV_WAYPOINT,
        MAV_CMD_NAV_WAYPOINT,
        MAV_CMD_DO_SET_CAM_TRIGG_DIST,
        MAV_CMD_NAV_WAYPOINT,
        MAV_CMD_IMAGE_START_CAPTURE,
    ]  # no RTL: the route ends without going home
    assert MAV_CMD_NAV_RETURN_TO_LAUNCH not in cmds
    wps = _wps(m)
    np.testing.assert_allclose([w.alt for w in wps], [1560.0 + k for k in range(5)], atol=1e-3)
    assert {w.frame for w in wps} == {FRAME_AMSL}
    assert m.items[0].alt == pytest.approx(1530.0) and m.items[0].frame == FRAME_AMSL
    assert wps[4].params[0] == 2.5 and route.gimbal_pitch_deg == -90.0
    (iv,) = route.intervals
    assert (iv.start, iv.end, iv.timed_s, iv.distance_m) == (1, 3, 2.0, 12.0)
    assert any("1 zoom" in w for w in wf.warnings)
    assert "1 zoom" in caplog.text
    survey = wpml_survey(wf)
    # 2 waypoints of ~76 m along the interval: photos every 12 m from the first, plus the hover
    assert survey.figures["n_photos"] == math.floor(2 * 76.2 / 12.0 + 1e-6) + 1 + 1
    assert survey.figures["camera"] == "mavic3e"
    assert survey.height_agl_m[0] == pytest.approx(61.0, abs=0.1)  # above the take-off point


# ----------------------------------------------------------------------------- coverage checks


def test_ingest_takes_a_kmz_as_the_planned_mission(
    split_plan: SurveyPlan, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from survey.errors import InputFileError
    from survey.ingest import read_plan

    write_mission_files(
        split_plan, tmp_path, formats=("wpml",), wpml=WpmlOptions(get_drone("m30t"))
    )
    with caplog.at_level(logging.WARNING, logger="survey"):
        planned = read_plan(tmp_path / "sortie-01.kmz")
    assert "carries no site polygon" in caplog.text
    assert planned.summary["site_source"].startswith("assumed")
    assert planned.camera is not None and planned.camera.name == "matrice30-wide"
    assert planned.summary["gsd_cm"] == pytest.approx(2.0, abs=1e-3)
    assert planned.summary["front_pct"] == 75 and planned.summary["side_pct"] == 65
    first = split_plan.sorties[0]
    assert len(planned.footprints) == len(first.photos)
    # the planned area is the union of the plan's own nominal footprints of that sortie
    k = len(first.photos)
    ours = shapely.union_all(split_plan.footprints()[:k])
    to_ll = Transformer.from_crs(UTM50, 4326, always_xy=True)
    ours_ll = shapely.transform(ours, lambda xy: np.column_stack(to_ll.transform(*xy.T)))
    assert planned.area.symmetric_difference(ours_ll).area < 0.002 * ours_ll.area
    assert planned.site.symmetric_difference(planned.area).area < 1e-12  # no site polygon
    with pytest.raises(InputFileError, match="takes the folder .* or a DJI WPML route"):
        read_plan(tmp_path / "summary.json")


def test_photo_start_and_stop_points_are_flown_through(tmp_path: Path) -> None:
    """Entry and exit of a line are stops (the aircraft turns on them); the points where the
    photos start and stop lie on the straight line between them and are passed at speed."""
    drone = get_drone("m30t")
    plan = plan_survey(_site(), PlanParams(alt_m=60, camera=drone.camera), crs=UTM50)
    m = plan.sorties[0].mission
    write_wpml(m, tmp_path / "r.kmz", WpmlOptions(drone), takeoff_amsl_m=None)
    trig: list[int] = []
    k = -1
    for it in m.items:
        if it.command == MAV_CMD_NAV_WAYPOINT:
            k += 1
        elif it.command == MAV_CMD_DO_SET_CAM_TRIGG_DIST:
            trig.append(k)
    assert len(trig) == 2 * plan.stats["n_lines"]
    pms = _placemarks(tmp_path / "r.kmz", "wpmz/waylines.wpml")
    modes = [_w(p.find(WPML + "waypointTurnParam"), "waypointTurnMode") for p in pms]  # type: ignore[arg-type]
    passing = [i for i, mode in enumerate(modes) if mode == "coordinateTurn"]
    assert passing == trig
    assert {modes[i] for i in range(len(modes)) if i not in trig} == {
        "toPointAndStopWithDiscontinuityCurvature"
    }
