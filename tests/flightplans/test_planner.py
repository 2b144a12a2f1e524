"""Plans over test sites, checked through the files written: coverage, keep-out, notches."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import shapely
from pymavlink import mavwp
from shapely import affinity
from shapely.geometry import LineString, MultiPoint, MultiPolygon, Point, Polygon, box

from flightplans import PlanParams, SurveyPlan, get_camera, plan_survey, read_plan, read_waypoints
from flightplans.mission import (
    MAV_CMD_DO_SET_CAM_TRIGG_DIST,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_NAV_TAKEOFF,
)
from survey.sites import plan_site
from survey.vectors import write_features
from tests.flightplans._sim import coverage_counts, simulate

UTM = 32650  # the test sites sit near 114.5E 37.07N, UTM zone 50N
X0, Y0 = 278000.0, 4105600.0
CAM = get_camera("phantom4pro")


def _site_u() -> Polygon:
    outer = box(0, 0, 400, 300)
    notch = box(120, 100, 280, 300.1)
    return outer.difference(notch)


SITES: dict[str, tuple[Polygon, list[Polygon]]] = {
    "rectangle": (box(0, 0, 300, 200), []),
    "rotated": (affinity.rotate(box(0, 0, 300, 120), 30, origin=(0, 0)), []),
    "L": (box(0, 0, 300, 100).union(box(0, 0, 100, 260)), []),
    "U": (_site_u(), []),
    "holes_nofly": (
        Polygon(
            [(0, 0), (320, 0), (320, 260), (0, 260)],
            [[(60, 60), (120, 60), (120, 120), (60, 120)]],
        ),
        [Point(220, 150).buffer(30), box(280, -40, 360, 60)],
    ),
    "thin": (affinity.rotate(box(0, 0, 800, 40), -20, origin=(0, 0)), []),
    "two_parts": (MultiPolygon([box(0, 0, 200, 120), box(320, 40, 480, 260)]), []),
}


def _shift(g: Polygon) -> Polygon:
    return affinity.translate(g, X0, Y0)


@dataclass
class Planned:
    plan: SurveyPlan
    out: Path
    site: Polygon
    nofly: list[Polygon]


def _write_site(
    tmp: Path, name: str, site: Polygon, nofly: list[Polygon]
) -> tuple[Path, Path | None]:
    site_path = write_features(tmp / f"{name}.geojson", [_shift(site)], [{"name": name}], crs=UTM)
    nofly_path = None
    if nofly:
        # no-fly zones in another CRS (WGS84 GeoPackage) to exercise the reprojection
        from survey.vectors import reproject_geometries

        ll = reproject_geometries([_shift(g) for g in nofly], UTM, 4326)
        nofly_path = write_features(tmp / f"{name}-nofly.gpkg", ll, [{} for _ in ll], crs=4326)
    return site_path, nofly_path


@pytest.fixture(scope="session")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Planned]:
    tmp = tmp_path_factory.mktemp("plans")
    out: dict[str, Planned] = {}
    for name, (site, nofly) in SITES.items():
        site_path, nofly_path = _write_site(tmp, name, site, nofly)
        params = PlanParams(alt_m=40.0, camera=CAM)
        plan = plan_site(site_path, tmp / name, params, nofly_path=nofly_path)
        out[name] = Planned(plan, tmp / name, _shift(site), [_shift(g) for g in nofly])
    return out


def _target(p: Planned) -> Polygon:
    t = p.site
    for g in p.nofly:
        t = t.difference(g)
    return t


def _obstacles(p: Planned) -> shapely.Geometry:
    holes = [Polygon(r) for part in shapely.get_parts(p.site) for r in part.interiors]
    return shapely.union_all([*holes, *p.nofly])


def _flights(p: Planned, kind: str = "plan") -> list:
    files = sorted(p.out.glob(f"sortie-*.{kind}"))
    assert files, "no sortie files written"
    reader = read_plan if kind == "plan" else read_waypoints
    return [simulate(reader(f), UTM) for f in files]


@pytest.mark.parametrize("name", list(SITES))
def test_written_missions_cover_the_site(planned: dict[str, Planned], name: str) -> None:
    p = planned[name]
    for kind in ("plan", "waypoints"):
        flights = _flights(p, kind)
        photos = np.vstack([f.photos for f in flights])
        bearings = np.concatenate([f.bearings for f in flights])
        alts = np.concatenate([f.photo_alts for f in flights])
        assert len(photos) == len(bearings) == p.plan.stats["n_photos"]
        side = alts * CAM.sensor_w_mm / CAM.focal_mm
        front = alts * CAM.sensor_h_mm / CAM.focal_mm
        counts = coverage_counts(_target(p), photos, bearings, side, front, res=1.0)
        assert counts.size > 1000
        assert (counts >= 1).mean() == 1.0, f"{name}: uncovered points"
        assert (counts >= 2).mean() >= 0.99, f"{name}: double coverage {(counts >= 2).mean():.4f}"


#: The sites with holes or no-fly zones (the others have neither).
OBSTACLE_SITES = ["holes_nofly"]


def test_only_sites_with_holes_or_nofly_get_a_keepout(planned: dict[str, Planned]) -> None:
    for name, p in planned.items():
        has_obstacles = not _obstacles(p).is_empty
        assert has_obstacles == (name in OBSTACLE_SITES), name
        assert (p.plan.keepout is not None) == has_obstacles, name


@pytest.mark.parametrize("name", OBSTACLE_SITES)
def test_no_segment_enters_holes_or_nofly(planned: dict[str, Planned], name: str) -> None:
    p = planned[name]
    obstacles = _obstacles(p)
    assert not obstacles.is_empty
    margin = p.plan.params.nofly_margin_m
    flights = _flights(p)
    for f in flights:
        assert LineString(f.waypoints).distance(obstacles) >= 0.9 * margin, name
    # the route really goes around them, not just luckily beside: they lie inside the area
    # the flown waypoints span (the hole and the round zone are inside the site)
    flown = MultiPoint(np.vstack([f.waypoints for f in flights])).convex_hull
    outline = Polygon(p.site.exterior).buffer(-1.0)
    inner = [g for g in shapely.get_parts(obstacles) if outline.contains(g)]
    assert len(inner) == 2
    assert all(flown.contains(g) for g in inner)


@pytest.mark.parametrize("name", list(SITES))
def test_photo_spans_never_cross_a_wide_notch(planned: dict[str, Planned], name: str) -> None:
    p = planned[name]
    side, _ = CAM.footprint_m(40.0)
    near = p.site.buffer(0.5 * side)
    for f in _flights(p):
        assert f.trigger_spans
        for span in f.trigger_spans:
            assert near.contains(LineString(span)), name
    if name == "U":
        # the notch core (farther than half a footprint from the site) is never photographed
        notch = _shift(box(120, 100, 280, 300)).buffer(-0.5 * side)
        assert not notch.is_empty
        for f in _flights(p):
            for span in f.trigger_spans:
                assert not LineString(span).intersects(notch)


@pytest.mark.parametrize("name", ["rectangle", "U"])
def test_waypoints_load_in_mavwp_and_match_plan(planned: dict[str, Planned], name: str) -> None:
    p = planned[name]
    plan_files = sorted(p.out.glob("sortie-*.plan"))
    assert len(plan_files) == p.plan.stats["n_sorties"] >= 1
    for plan_file in plan_files:
        wp_file = plan_file.with_suffix(".waypoints")
        loader = mavwp.MAVWPLoader()
        m = read_plan(plan_file)
        assert loader.load(str(wp_file)) == len(m.items) + 1
        for i, it in enumerate(m.items, start=1):
            w = loader.wp(i)
            assert (w.command, w.frame) == (it.command, it.frame)
            assert w.x == pytest.approx(it.lat, abs=1e-8)
            assert w.y == pytest.approx(it.lon, abs=1e-8)
            assert w.z == pytest.approx(it.alt, abs=1e-3)


def test_plan_files_follow_qgc_format(planned: dict[str, Planned]) -> None:
    p = planned["holes_nofly"]
    doc = json.loads((p.out / "sortie-01.plan").read_text())
    assert doc["fileType"] == "Plan" and doc["version"] == 1
    mis = doc["mission"]
    assert set(mis) >= {
        "version",
        "firmwareType",
        "vehicleType",
        "cruiseSpeed",
        "hoverSpeed",
        "plannedHomePosition",
        "items",
    }
    items = mis["items"]
    assert items[0]["command"] == MAV_CMD_NAV_TAKEOFF
    assert items[-1]["command"] == MAV_CMD_NAV_RETURN_TO_LAUNCH
    trig = [i for i in items if i["command"] == MAV_CMD_DO_SET_CAM_TRIGG_DIST]
    on = [i for i in trig if i["params"][0] > 0]
    off = [i for i in trig if i["params"][0] == 0]
    assert len(on) == len(off) > 0
    assert all(i["params"][2] == 1 for i in on)
    assert on[0]["params"][0] == pytest.approx(p.plan.trigger_m)
    # trigger on/off alternate
    assert [i["params"][0] > 0 for i in trig] == [True, False] * len(on)
    fence = doc["geoFence"]["polygons"]
    assert sum(f["inclusion"] for f in fence) == 1
    assert sum(not f["inclusion"] for f in fence) == 3  # one hole + two no-fly zones
    for f in fence:
        assert all(len(v) == 2 and 36 < v[0] < 38 and 114 < v[1] < 115 for v in f["polygon"])


@pytest.mark.parametrize("name", list(SITES))
def test_route_stays_inside_the_inclusion_fence(planned: dict[str, Planned], name: str) -> None:
    """A vehicle enforcing the written GeoFence never breaches it on the planned route."""
    p = planned[name]
    plan_files = sorted(p.out.glob("sortie-*.plan"))
    assert len(plan_files) == p.plan.stats["n_sorties"] >= 1
    for path in plan_files:
        doc = json.loads(path.read_text())
        fence = [
            Polygon([(lon, lat) for lat, lon in f["polygon"]])
            for f in doc["geoFence"]["polygons"]
            if f["inclusion"]
        ]
        inside = shapely.union_all(fence)
        mission = read_plan(path)
        home = (mission.home[1], mission.home[0])
        pts = [home] + [(i.lon, i.lat) for i in mission.items if i.has_position] + [home]
        route = LineString(pts)
        # 1e-6 deg (about 0.1 m) for the rounding of the fence to 8 decimals
        assert inside.buffer(1e-6).covers(route), name
        assert inside.covers(_shift_ll(p.site)), name


def _shift_ll(site: Polygon) -> shapely.Geometry:
    from survey.vectors import reproject_geometries

    return reproject_geometries([site], UTM, 4326)[0].buffer(-1e-6)


def test_outputs_and_summary(planned: dict[str, Planned]) -> None:
    p = planned["rectangle"]
    s = json.loads((p.out / "summary.json").read_text())
    for key in (
        "gsd_cm",
        "alt_m",
        "spacing_m",
        "trigger_m",
        "angle_deg",
        "n_photos",
        "length_m",
        "duration_s",
        "n_sorties",
        "area_m2",
        "camera",
    ):
        assert key in s
    assert s["camera"] == "phantom4pro"
    assert s["area_m2"] == pytest.approx(60000, rel=1e-3)
    assert s["gsd_cm"] == pytest.approx(40 * 13.2 * 100 / (5472 * 8.8), rel=1e-3)
    assert s["spacing_m"] == pytest.approx(40 * 13.2 / 8.8 * 0.35, rel=1e-3)
    assert s["trigger_m"] == pytest.approx(40 * 8.8 / 8.8 * 0.25, rel=1e-3)
    gj = json.loads((p.out / "mission.geojson").read_text())
    kinds = {f["properties"]["kind"] for f in gj["features"]}
    assert kinds >= {"site", "home", "route", "flight_line", "photo", "footprint"}
    n_photo = sum(f["properties"]["kind"] == "photo" for f in gj["features"])
    assert n_photo == s["n_photos"]
    lon, lat = gj["features"][0]["geometry"]["coordinates"][0][0]
    assert 114 < lon < 115 and 37 < lat < 38
    # a 300 x 200 m rectangle is flown along its long side
    assert min(abs(s["angle_deg"] - 90), abs(s["angle_deg"] - 270)) < 3


def test_crosshatch_adds_perpendicular_pass(tmp_path: Path) -> None:
    site_path, _ = _write_site(tmp_path, "r", box(0, 0, 200, 160), [])
    one = plan_site(site_path, None, PlanParams(alt_m=40.0, angle_deg=90.0))
    two = plan_site(
        site_path, tmp_path / "x", PlanParams(alt_m=40.0, angle_deg=90.0, crosshatch=True)
    )
    passes = {t.pass_index for s in two.sorties for t in s.transects}
    assert passes == {0, 1}
    bearings = {round(b) % 180 for b in two.photo_bearing}
    assert bearings == {90, 0}
    assert two.stats["n_photos"] > 1.8 * one.stats["n_photos"]


def test_hover_capture_covers(tmp_path: Path) -> None:
    site = box(0, 0, 160, 120)
    site_path, _ = _write_site(tmp_path, "h", site, [])
    plan = plan_site(site_path, tmp_path / "o", PlanParams(alt_m=40.0, hover_capture=True))
    m = read_plan(tmp_path / "o" / "sortie-01.plan")
    cmds = [i.command for i in m.items]
    assert MAV_CMD_DO_SET_CAM_TRIGG_DIST not in cmds
    assert cmds.count(2000) == plan.stats["n_photos"]
    f = simulate(m, UTM)
    side, front = CAM.footprint_m(40.0)
    counts = coverage_counts(_shift(site), f.photos, f.bearings, side, front, res=1.0)
    assert (counts >= 1).all() and (counts >= 2).mean() >= 0.99


def test_battery_split_into_complete_sorties(tmp_path: Path) -> None:
    site = box(0, 0, 400, 300)
    site_path, _ = _write_site(tmp_path, "big", site, [])
    params = PlanParams(alt_m=40.0, battery_min=4.0, speed_ms=6.0)
    plan = plan_site(site_path, tmp_path / "o", params)
    files = sorted((tmp_path / "o").glob("sortie-*.plan"))
    assert len(files) == plan.stats["n_sorties"] >= 3
    assert [f.name for f in files][:2] == ["sortie-01.plan", "sortie-02.plan"]
    budget = 4.0 * 60 * (1 - params.reserve_frac)
    photos = []
    for f in files:
        m = read_plan(f)
        assert m.items[0].command == MAV_CMD_NAV_TAKEOFF
        assert m.items[-1].command == MAV_CMD_NAV_RETURN_TO_LAUNCH
        fl = simulate(m, UTM)
        length = LineString(np.vstack([fl.waypoints, fl.waypoints[:1]])).length
        climb = 40 / params.climb_ms + 40 / params.descent_ms
        assert length / params.speed_ms + climb <= budget  # a lower bound of its time fits
        photos.append(fl.photos)
    assert all(s.duration_s <= budget for s in plan.sorties)
    side, front = CAM.footprint_m(40.0)
    allp = np.vstack(photos)
    assert len(allp) == plan.stats["n_photos"]
    # sorties together still cover everything
    b = np.concatenate([simulate(read_plan(f), UTM).bearings for f in files])
    counts = coverage_counts(_shift(site), allp, b, side, front, res=2.0)
    assert (counts >= 1).all()


def test_stale_sortie_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "sortie-07.plan").write_text("{}")
    site_path, _ = _write_site(tmp_path, "s", box(0, 0, 200, 150), [])
    plan_site(site_path, tmp_path / "o", PlanParams(alt_m=40.0))
    assert not (tmp_path / "o" / "sortie-07.plan").exists()


def test_default_home_on_south_edge(planned: dict[str, Planned]) -> None:
    p = planned["rectangle"]
    hx, hy = p.plan.home
    assert hy == pytest.approx(Y0, abs=0.01)
    assert hx == pytest.approx(X0 + 150, abs=1.0)
    m = read_plan(p.out / "sortie-01.plan")
    assert math.isclose(m.home[0], m.items[0].lat) and math.isclose(m.home[1], m.items[0].lon)


def test_default_home_steps_out_of_a_nofly_zone_on_the_south_edge() -> None:
    # the south-middle edge point lies inside the zone: the default home moves along the
    # boundary to the nearest point clear of the zone and its margin, rather than failing
    site = box(X0, Y0, X0 + 300, Y0 + 200)
    zone = Point(X0 + 150, Y0).buffer(40.0)
    params = PlanParams(alt_m=40.0)
    plan = plan_survey(site, params, crs=UTM, nofly=[zone])
    hx, hy = plan.home
    assert hy == pytest.approx(Y0, abs=0.01)
    assert Point(hx, hy).distance(zone) >= params.nofly_margin_m
    assert abs(hx - (X0 + 150)) == pytest.approx(40.0 + params.nofly_margin_m, abs=1.0)


def test_geojson_is_rfc7946(planned: dict[str, Planned]) -> None:
    gj = json.loads((planned["holes_nofly"].out / "mission.geojson").read_text())
    assert gj["type"] == "FeatureCollection"
    for f in gj["features"]:
        g = shapely.geometry.shape(f["geometry"])
        assert g.is_valid, f["properties"]
        if isinstance(g, Polygon):
            assert g.exterior.is_ccw
        lon, lat = shapely.get_coordinates(g)[0]
        assert 114 < lon < 115 and 37 < lat < 38


def test_auto_bearing_is_as_fast_as_a_sweep() -> None:
    """--angle auto against a 2-degree sweep of fixed bearings (full plans), on the U shape."""
    from dataclasses import replace

    site = _shift(SITES["U"][0])
    params = PlanParams(gsd_cm=2.0)
    auto = plan_survey(site, params, crs=UTM).stats["duration_s"]
    best = min(
        plan_survey(site, replace(params, angle_deg=float(b)), crs=UTM).stats["duration_s"]
        for b in range(0, 180, 2)
    )
    assert auto <= 1.01 * best
