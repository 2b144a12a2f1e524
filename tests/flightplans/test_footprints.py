"""Footprints, coverage, holes, GSD and overlaps (flightplans.footprints): known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from flightplans.camera import Camera, get_camera
from flightplans.footprints import (
    ElevationGrid,
    achieved_overlaps,
    camera_rotation,
    centre_gsd_cm,
    compute_coverage,
    image_footprint,
)
from flightplans.planner import footprint_rectangles

CAM = get_camera("phantom4pro")  # 13.2 x 8.8 mm, f 8.8 mm: footprint 1.5 H x 1.0 H


def test_nadir_footprint_is_the_planners_rectangle_at_any_yaw() -> None:
    for yaw in (0.0, 30.0, 90.0, 217.5):
        fp = image_footprint(CAM, (500.0, 800.0, 120.0), yaw, -90.0, 0.0, 20.0)
        assert fp is not None
        side, front = CAM.footprint_m(100.0)
        rect = footprint_rectangles(np.array([[500.0, 800.0]]), np.array([yaw]), side, front)[0]
        assert fp.area == pytest.approx(side * front, rel=1e-9)
        assert fp.symmetric_difference(rect).area < 1e-6


def test_top_of_image_points_along_yaw() -> None:
    r = camera_rotation(90.0, -90.0, 0.0)
    np.testing.assert_allclose(r @ [0, 0, 1], [0, 0, -1], atol=1e-12)  # looks down
    np.testing.assert_allclose(r @ [0, -1, 0], [1, 0, 0], atol=1e-12)  # image top: east
    np.testing.assert_allclose(r @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # image right: south


def test_oblique_footprint_edges_follow_the_tilt() -> None:
    h, tilt = 100.0, 30.0  # pitch -60: 30 degrees forward of nadir, looking north
    fp = image_footprint(CAM, (0.0, 0.0, h), 0.0, -90.0 + tilt, 0.0, 0.0)
    assert fp is not None
    half_v = math.degrees(math.atan(CAM.sensor_h_mm / 2 / CAM.focal_mm))
    _minx, miny, _maxx, maxy = fp.bounds
    assert miny == pytest.approx(h * math.tan(math.radians(tilt - half_v)), abs=1e-6)
    assert maxy == pytest.approx(h * math.tan(math.radians(tilt + half_v)), abs=1e-6)


def test_positive_roll_turns_a_nadir_view_left() -> None:
    fp = image_footprint(CAM, (0.0, 0.0, 100.0), 0.0, -90.0, 10.0, 0.0)
    assert fp is not None
    assert fp.centroid.x < -10.0  # heading north, left is west
    axis = camera_rotation(0.0, -90.0, 10.0)[:, 2]
    assert axis[0] / -axis[2] == pytest.approx(-math.tan(math.radians(10.0)))


def test_looking_above_the_horizon_has_no_footprint() -> None:
    assert image_footprint(CAM, (0.0, 0.0, 100.0), 0.0, -10.0, 0.0, 0.0) is None
    assert image_footprint(CAM, (0.0, 0.0, 10.0), 0.0, -90.0, 0.0, 20.0) is None  # underground
    assert math.isnan(centre_gsd_cm(CAM, (0.0, 0.0, 100.0), 0.0, 5.0, 0.0, 0.0))


def test_centre_gsd_is_the_camera_gsd_at_nadir_and_grows_with_tilt() -> None:
    assert centre_gsd_cm(CAM, (0, 0, 80.0), 45.0, -90.0, 0.0, 0.0) == pytest.approx(
        CAM.gsd_cm(80.0)
    )
    tilted = centre_gsd_cm(CAM, (0, 0, 80.0), 0.0, -60.0, 0.0, 0.0)
    assert tilted == pytest.approx(CAM.gsd_cm(80.0) / math.cos(math.radians(30.0)))


def test_flat_dem_gives_the_flat_footprint() -> None:
    dem = ElevationGrid(np.full((300, 300), 20.0), (1.0, 0.0, -150.0, 0.0, -1.0, 150.0))
    fp_dem = image_footprint(CAM, (3.0, -4.0, 80.0), 25.0, -90.0, 0.0, dem)
    fp_flat = image_footprint(CAM, (3.0, -4.0, 80.0), 25.0, -90.0, 0.0, 20.0)
    assert fp_dem is not None and fp_flat is not None
    assert fp_dem.symmetric_difference(fp_flat).area < 0.05 * 0.05 * 40  # mm along the edge


def test_sloped_dem_corners_match_the_ray_plane_intersection() -> None:
    # ground z = 0.2 x (a 11 degree slope rising east), 0.5 m cells
    cols = np.arange(800)
    xs = -200.0 + (cols + 0.5) * 0.5
    heights = np.tile(0.2 * xs, (800, 1))
    dem = ElevationGrid(heights, (0.5, 0.0, -200.0, 0.0, -0.5, 200.0))
    origin = np.array([0.0, 0.0, 100.0])
    fp = image_footprint(CAM, origin, 0.0, -90.0, 0.0, dem, points_per_side=1)
    assert fp is not None
    rot = camera_rotation(0.0, -90.0, 0.0)
    hw, hh = CAM.sensor_w_mm / 2 / CAM.focal_mm, CAM.sensor_h_mm / 2 / CAM.focal_mm
    corners = []
    for u, v in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
        d = rot @ [u, v, 1.0]
        t = -origin[2] / (d[2] - 0.2 * d[0])  # z0 + t dz = 0.2 (x0 + t dx)
        corners.append(origin[:2] + t * d[:2])
    got = shapely.get_coordinates(fp)[:4]
    np.testing.assert_allclose(got, np.array(corners), atol=0.02)
    # the uphill (east) side is nearer the camera: narrower than the downhill side
    assert corners[1][0] < -corners[0][0]


def _pointwise_ground_hits(
    origin: np.ndarray, rays: np.ndarray, ground: ElevationGrid, max_range_m: float
) -> np.ndarray:
    """The DEM branch of ``_ground_hits`` as it was before it was vectorized (each bisection
    step asked the sampler for one point): the reference the vectorized one must equal."""
    out = np.full(rays.shape, np.nan)
    unit = rays / np.linalg.norm(rays, axis=1, keepdims=True)
    step = max(0.25, 0.5 * ground.pixel_m)
    n = math.ceil(max_range_m / step) + 1
    s = np.arange(n) * step
    pts = origin[None, None, :] + s[None, :, None] * unit[:, None, :]
    below = pts[..., 2] <= ground(pts[..., 0], pts[..., 1])
    for i in range(len(rays)):
        idx = np.flatnonzero(below[i])
        if len(idx) == 0 or idx[0] == 0:
            continue
        lo, hi = s[idx[0] - 1], s[idx[0]]
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            p = origin + mid * unit[i]
            g = float(ground(np.array([p[0]]), np.array([p[1]]))[0])
            if not math.isfinite(g) or p[2] > g:
                lo = mid
            else:
                hi = mid
        out[i] = origin + hi * unit[i]
    return out


def test_dem_ground_hits_equal_the_pointwise_search_in_31_sampler_calls() -> None:
    """Rays over a rough sloped DEM with a nodata hole, some looking past its edge or above
    the horizon: the vectorized search gives exactly the hits of the one-point-at-a-time
    search, asking the sampler once to march and once per bisection step."""
    from flightplans.footprints import _ground_hits

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:400, 0:400]
    heights = 30.0 + 0.15 * xx - 0.08 * yy + 3.0 * np.sin(xx / 13.0) * np.cos(yy / 9.0)
    heights[180:220, 150:260] = np.nan  # a hole: no hit can be found in it
    dem = ElevationGrid(heights, (0.5, 0.0, -100.0, 0.0, -0.5, 100.0))
    calls: list[int] = []

    def counted(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        calls.append(np.size(x))
        return dem(x, y)

    counted.pixel_m = dem.pixel_m  # type: ignore[attr-defined]
    down_the_hole = np.array([[0.0, 0.0, -1.0], [0.01, 0.0, -1.0]])
    hits = misses = 0
    for pitch in (-90.0, -60.0, -35.0, 10.0):
        origin = np.array([*rng.uniform(-5.0, 5.0, 2), 110.0])
        rays = np.vstack([_image_rays_for(pitch, float(rng.uniform(0.0, 360.0))), down_the_hole])
        expected = _pointwise_ground_hits(origin, rays, dem, 400.0)
        calls.clear()
        got = _ground_hits(origin, rays, counted, 400.0)
        np.testing.assert_array_equal(got, expected)
        assert len(calls) <= 31
        assert np.isnan(got[-2:]).all()  # straight down into the nodata hole: no ground
        found = np.isfinite(got[:-2]).all(axis=1)
        hits, misses = hits + int(found.sum()), misses + int((~found).sum())
    assert hits > 60 and misses > 20  # ground met, and rays past the DEM or above the horizon


def _image_rays_for(pitch_deg: float, yaw_deg: float) -> np.ndarray:
    from flightplans.footprints import _image_rays

    return _image_rays(CAM, camera_rotation(yaw_deg, pitch_deg, 0.0), 8)


def _grid(spacing: float, trigger: float, n_lines: int, length: float) -> np.ndarray:
    pts = []
    for k in range(n_lines):
        ys = np.arange(0.0, length + 1e-9, trigger)
        ys = ys if k % 2 == 0 else ys[::-1]
        pts.extend((k * spacing, y) for y in ys)
    return np.array(pts)


def test_achieved_overlaps_are_the_planned_ones() -> None:
    h = 60.0
    side, front = CAM.footprint_m(h)  # 90 x 60 m
    xy = _grid(spacing=31.5, trigger=15.0, n_lines=4, length=150.0)
    yaw = [0.0 if (k // 11) % 2 == 0 else 180.0 for k in range(len(xy))]
    fps = [
        image_footprint(CAM, (x, y, h), a, -90.0, 0.0, 0.0)
        for (x, y), a in zip(xy, yaw, strict=True)
    ]
    o = achieved_overlaps(xy, fps)
    assert o.n_lines == 4
    assert o.front_median_pct == pytest.approx(100 * (1 - 15.0 / front), abs=1e-6)
    assert o.side_median_pct == pytest.approx(100 * (1 - 31.5 / side), abs=1e-6)


def test_a_missing_photo_lowers_the_minimum_front_overlap() -> None:
    xy = _grid(spacing=30.0, trigger=15.0, n_lines=2, length=150.0)
    keep = np.ones(len(xy), dtype=bool)
    keep[5] = False
    fps = [image_footprint(CAM, (x, y, 60.0), 0.0, -90.0, 0.0, 0.0) for x, y in xy[keep]]
    o = achieved_overlaps(xy[keep], fps)
    assert o.front_min_pct == pytest.approx(100 * (1 - 30.0 / 60.0), abs=1e-6)


def test_coverage_hole_is_where_photos_were_removed() -> None:
    h = 40.0  # footprint 60 x 40 m
    xy = _grid(spacing=20.0, trigger=10.0, n_lines=8, length=200.0)
    site = box(10.0, 10.0, 130.0, 190.0)
    fps = [image_footprint(CAM, (x, y, h), 0.0, -90.0, 0.0, 0.0) for x, y in xy]
    full = compute_coverage(fps, site, min_views=5, cell_m=1.0)
    assert full.covered_frac == 1.0 and full.holes.is_empty
    # remove every photo within 45 m of (70, 100): a hole opens there
    gone = np.hypot(xy[:, 0] - 70.0, xy[:, 1] - 100.0) < 45.0
    cut = compute_coverage(
        [f for f, g in zip(fps, gone, strict=True) if not g], site, min_views=5, cell_m=1.0
    )
    assert cut.covered_frac < 1.0
    assert not cut.holes.is_empty
    assert cut.holes.centroid.distance(Point(70.0, 100.0)) < 3.0
    expected = site.difference(
        shapely.union_all([f for f, g in zip(fps, gone, strict=True) if not g])
    )
    assert cut.holes.area == pytest.approx(expected.area, rel=0.05)
    assert cut.thin.area > 0  # the rim of the hole is seen by fewer than 5 photos


@settings(max_examples=30, deadline=None)
@given(
    yaw=st.floats(0.0, 360.0),
    height=st.floats(20.0, 120.0),
    ground=st.floats(-50.0, 500.0),
)
def test_nadir_footprint_area_and_centre(yaw: float, height: float, ground: float) -> None:
    cam = Camera("custom", 17.3, 13.0, 12.3, 5280, 3956)
    fp = image_footprint(cam, (10.0, -20.0, ground + height), yaw, -90.0, 0.0, ground)
    assert fp is not None
    side = height * cam.sensor_w_mm / cam.focal_mm
    front = height * cam.sensor_h_mm / cam.focal_mm  # the sensor, not Ih x GSD
    assert fp.area == pytest.approx(side * front, rel=1e-9)
    assert fp.centroid.distance(Point(10.0, -20.0)) < 1e-6
