"""Terrain following with a DEM GeoTIFF in another CRS than the site."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely import affinity
from shapely.geometry import box

from flightplans import PlanParameterError, PlanParams, SiteGeometryError, get_camera, read_plan
from flightplans.mission import FRAME_AMSL, FRAME_TERRAIN, MAV_CMD_NAV_WAYPOINT
from survey.errors import RasterFormatError
from survey.sites import plan_site, read_dem_sampler
from survey.vectors import write_features
from tests.flightplans._sim import coverage_counts, simulate

UTM = 32650
X0, Y0 = 278000.0, 4105600.0
CAM = get_camera("phantom4pro")
TO_UTM = Transformer.from_crs(4326, UTM, always_xy=True)


def ground(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The synthetic terrain (m AMSL) at UTM x, y: a 12 % slope and a 70 m hill."""
    dx, dy = x - (X0 + 150), y - (Y0 + 100)
    return 300.0 + 0.12 * (x - X0) + 70.0 * np.exp(-(dx**2 + dy**2) / (2 * 70.0**2))


@pytest.fixture(scope="module")
def dem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The terrain as a WGS84 GeoTIFF (~3 m pixels) around the site."""
    path = tmp_path_factory.mktemp("dem") / "dem.tif"
    to_ll = Transformer.from_crs(UTM, 4326, always_xy=True)
    lon0, lat0 = to_ll.transform(X0 - 400, Y0 + 600)
    res = 3.0e-5
    w, h = 900, 900
    lon = lon0 + (np.arange(w) + 0.5) * res
    lat = lat0 - (np.arange(h) + 0.5) * res
    glon, glat = np.meshgrid(lon, lat)
    x, y = TO_UTM.transform(glon, glat)
    z = ground(x, y).astype(np.float32)
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": from_origin(lon0, lat0, res, res),
        "nodata": -9999.0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    g = affinity.translate(box(0, 0, 300, 200), X0, Y0)
    return write_features(tmp_path_factory.mktemp("site") / "site.gpkg", [g], [{}], crs=UTM)


def test_dem_sampler_reprojects(dem: Path) -> None:
    f = read_dem_sampler(dem, UTM)
    x = np.array([X0 + 10.0, X0 + 150.0, X0 + 290.0])
    y = np.array([Y0 + 20.0, Y0 + 100.0, Y0 + 180.0])
    assert np.allclose(f(x, y), ground(x, y), atol=0.3)
    assert np.isnan(f(np.array([X0 + 50_000.0]), np.array([Y0])))[0]


def _legs(m, step: float = 1.0):  # type: ignore[no-untyped-def]
    wps = [it for it in m.items if it.command == MAV_CMD_NAV_WAYPOINT]
    xs, ys = TO_UTM.transform([w.lon for w in wps], [w.lat for w in wps])
    pts = np.column_stack([xs, ys])
    alts = np.array([w.alt for w in wps])
    out_xy, out_z = [], []
    for i in range(len(pts) - 1):
        n = max(2, math.ceil(np.hypot(*(pts[i + 1] - pts[i])) / step) + 1)
        t = np.linspace(0, 1, n)[:, None]
        out_xy.append(pts[i] + t * (pts[i + 1] - pts[i]))
        out_z.append(alts[i] + t[:, 0] * (alts[i + 1] - alts[i]))
    return np.vstack(out_xy), np.concatenate(out_z)


def test_terrain_following_holds_height_and_limit(tmp_path: Path, dem: Path, site: Path) -> None:
    params = PlanParams(alt_m=100.0, max_alt_m=110.0, camera=CAM)
    plan = plan_site(site, tmp_path / "o", params, dem_path=dem)
    tol = params.tolerance_m()
    assert plan.stats["alt_mode"] == "amsl"
    photos, bearings, agl = [], [], []
    n_wp = 0
    for f in sorted((tmp_path / "o").glob("sortie-*.plan")):
        m = read_plan(f)
        assert all(it.frame == FRAME_AMSL for it in m.items if it.has_position)
        assert m.home[2] == pytest.approx(
            float(ground(*TO_UTM.transform(m.home[1], m.home[0]))), abs=0.5
        )
        xy, z = _legs(m)
        above = z - ground(xy[:, 0], xy[:, 1])
        assert above.max() <= 110.0 + 0.05, above.max()  # never over the limit
        assert above.min() >= 100.0 - tol - 0.3, above.min()
        n_wp += sum(it.command == MAV_CMD_NAV_WAYPOINT for it in m.items)
        fl = simulate(m, UTM)
        g = ground(fl.photos[:, 0], fl.photos[:, 1])
        photos.append(fl.photos)
        bearings.append(fl.bearings)
        agl.append(fl.photo_alts - g)
    agl_all = np.concatenate(agl)
    assert np.all(np.abs(agl_all - 100.0) <= tol + 0.3)
    # the hill and slope forced extra waypoints along the lines
    flat = plan_site(site, None, PlanParams(alt_m=100.0, max_alt_m=110.0))
    n_flat = sum(it.command == MAV_CMD_NAV_WAYPOINT for s in flat.sorties for it in s.mission.items)
    assert n_wp > n_flat + 10
    # photos taken at the real height above ground still cover the site
    ph = np.vstack(photos)
    side = agl_all * CAM.sensor_w_mm / CAM.focal_mm
    front = agl_all * CAM.sensor_h_mm / CAM.focal_mm
    target = affinity.translate(box(0, 0, 300, 200), X0, Y0)
    counts = coverage_counts(target, ph, np.concatenate(bearings), side, front, res=1.5)
    assert (counts >= 1).all() and (counts >= 2).mean() >= 0.99


def test_terrain_frame_mode(tmp_path: Path, dem: Path, site: Path) -> None:
    params = PlanParams(alt_m=80.0, alt_mode="terrain")
    plan = plan_site(site, tmp_path / "o", params, dem_path=dem)
    m = read_plan(tmp_path / "o" / "sortie-01.plan")
    pos = [it for it in m.items if it.has_position]
    assert all(it.frame == FRAME_TERRAIN and it.alt == pytest.approx(80.0) for it in pos)
    assert plan.stats["alt_mode"] == "terrain"


def test_height_at_the_limit_is_refused_with_terrain(dem: Path, site: Path) -> None:
    with pytest.raises(PlanParameterError, match=r"coarsest GSD reachable is \d+\.\d+ cm/px"):
        plan_site(site, None, PlanParams(alt_m=120.0), dem_path=dem)


def test_dem_not_covering_the_site(tmp_path: Path, dem: Path) -> None:
    far = affinity.translate(box(0, 0, 300, 200), X0 + 20_000, Y0)
    p = write_features(tmp_path / "far.geojson", [far], [{}], crs=UTM)
    with pytest.raises((RasterFormatError, SiteGeometryError), match="DEM"):
        plan_site(p, None, PlanParams(alt_m=60.0), dem_path=dem)


def test_synthetic_site_with_its_dsm(tmp_path: Path, synth_site) -> None:  # type: ignore[no-untyped-def]
    """The project's synthetic scene: WGS84 site, UTM DSM that ends at the site's edge."""
    params = PlanParams(alt_m=35.0)
    plan = plan_site(synth_site.site, tmp_path / "o", params, dem_path=synth_site.before_dsm)
    assert plan.stats["n_photos"] > 10 and plan.stats["alt_mode"] == "amsl"
    dsm = read_dem_sampler(synth_site.before_dsm, plan.crs)
    plan_files = sorted((tmp_path / "o").glob("sortie-*.plan"))
    assert len(plan_files) == plan.stats["n_sorties"] >= 1
    for f in plan_files:
        m = read_plan(f)
        wps = [it for it in m.items if it.command == MAV_CMD_NAV_WAYPOINT]
        tr = Transformer.from_crs(4326, plan.crs, always_xy=True)
        x, y = tr.transform([w.lon for w in wps], [w.lat for w in wps])
        agl = np.array([w.alt for w in wps]) - dsm(np.asarray(x), np.asarray(y))
        assert agl.max() <= 120.0 and agl.min() >= 35.0 - params.tolerance_m() - 0.5
