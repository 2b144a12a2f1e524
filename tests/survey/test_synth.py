"""The synthetic survey site checked against its own truth (issue 3).

The default scene of these tests is the session fixture ``synth_site``: seed 0, 80 m at 10 cm.
Everything is read back from the files on disk; the misregistration is undone with the
convention written in truth.json, computed here independently of the generator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from survey.cli import EXIT_ERROR, EXIT_USAGE, run
from survey.errors import SynthParamsError
from survey.rasters import open_dsm, open_orthophoto, sha256_file
from survey.synth import (
    SynthParams,
    SynthScene,
    SynthSite,
    generate_site,
    polygon_mask,
    render_scene,
)
from survey.synth.layout import plan_layout
from survey.synth.resample import upsample_linear
from survey.synth.shadows import cast_shadows
from survey.vectors import read_features

STRUCTURES = (
    "new_structure",
    "extension",
    "added_storey",
    "permitted_building",
    "demolition",
    "steel_shed",
)
ALL_KINDS = {
    *STRUCTURES,
    "shed",
    "pile",
    "tree_growth",
    "car_moved",
    "hedge",
}
EXPECTED = {
    "new_structure": "no_permit",
    "extension": "outside_footprint",
    "added_storey": "over_height",
    "demolition": "demolished",
    "steel_shed": "no_permit",
}


def _read(site: SynthSite) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for epoch in ("before", "after"):
        with rasterio.open(getattr(site, f"{epoch}_dsm")) as ds:
            out[f"{epoch}_dsm"] = ds.read(1, masked=True).filled(np.nan)
            out["transform"] = ds.transform
        with rasterio.open(getattr(site, f"{epoch}_ortho")) as ds:
            out[f"{epoch}_rgb"] = ds.read().astype(np.float64)
            out[f"{epoch}_valid"] = ds.dataset_mask() > 0
    return out


def _after_coords(
    truth: dict[str, Any],
    transform: Affine,
    shape: tuple[int, int],
    shift: tuple[float, float] | None = None,
    rotation: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) in the after raster of every true pixel centre, by the truth convention."""
    m = truth["misregistration"]
    dx, dy = shift if shift is not None else m["shift_m"]
    r = math.radians(rotation if rotation is not None else m["rotation_deg"])
    cx, cy = m["center"]
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    e, n = transform * (cols + 0.5, rows + 0.5)
    ea = math.cos(r) * (e - cx) - math.sin(r) * (n - cy) + cx + dx
    na = math.sin(r) * (e - cx) + math.cos(r) * (n - cy) + cy + dy
    ca, ra = ~transform * (ea, na)
    return ra - 0.5, ca - 0.5


def _dsm_residual(site: SynthSite, data: dict[str, Any], **kw: Any) -> np.ndarray:
    """After DSM brought back to true coordinates, minus the vertical offset and the before."""
    t = site.truth
    rr, cc = _after_coords(t, data["transform"], data["before_dsm"].shape, **kw)
    back = ndimage.map_coordinates(data["after_dsm"], [rr, cc], order=1, cval=np.nan)
    return np.asarray(back - t["vertical_offset_m"] - data["before_dsm"])


def _exclusion(site: SynthSite, data: dict[str, Any], margin_m: float = 1.0) -> np.ndarray:
    """Truth polygons (and the permitted part of the extension) dilated by ``margin_m``, plus
    the band of DSM artefacts along height jumps of the before DSM."""
    t = site.truth
    shape = data["before_dsm"].shape
    tf = read_features(site.truth_geojson).to_crs(t["crs"])
    pf = read_features(site.permits).to_crs(t["crs"])
    excl = np.zeros(shape, dtype=bool)
    for g in tf.geometries:
        excl |= polygon_mask(g.buffer(margin_m), data["transform"], shape)
    ext_permits = {p["permit_id"] for p in tf.properties if p["kind"] == "extension"}
    for g, p in zip(pf.geometries, pf.properties, strict=True):
        if p["permit_id"] in ext_permits:  # the permitted part of the new extension building
            excl |= polygon_mask(g.buffer(margin_m), data["transform"], shape)
    z = np.nan_to_num(data["before_dsm"])
    jump = ndimage.maximum_filter(z, 3) - ndimage.minimum_filter(z, 3) > 1.0
    excl |= ndimage.binary_dilation(jump, iterations=max(1, round(0.6 / t["gsd_m"])))
    return excl


@pytest.fixture(scope="module")
def data(synth_site: SynthSite) -> dict[str, Any]:
    return _read(synth_site)


@pytest.fixture(scope="module")
def scene() -> SynthScene:
    """The in-memory scene of ``synth_site`` (shadow masks, true DSMs, layout)."""
    return render_scene(SynthParams(seed=0, size_m=80, gsd_cm=10))


# --- files: georeferencing, format ------------------------------------------------------------


def test_rasters_declare_crs_transform_nodata_and_mask(synth_site: SynthSite) -> None:
    t = synth_site.truth
    assert t["crs"] == "EPSG:32650" and t["size_m"] == 80 and t["gsd_m"] == pytest.approx(0.1)
    x0, y0 = t["origin"]
    expected = Affine(0.1, 0.0, x0, 0.0, -0.1, y0)
    for path in (synth_site.before_ortho, synth_site.after_ortho):
        with rasterio.open(path) as ds:
            assert ds.crs.to_epsg() == 32650
            assert ds.transform.almost_equals(expected, precision=1e-9)
            assert (ds.count, ds.dtypes[0], ds.width, ds.height) == (3, "uint8", 800, 800)
            assert ds.profile["tiled"] and ds.compression.name.lower() == "deflate"
            assert all(f.name == "per_dataset" for f in ds.mask_flag_enums[0])
            valid = ds.dataset_mask() > 0
            assert 0.85 < valid.mean() < 0.99  # a thin irregular invalid border
            assert not valid[:, 0].any() and not valid[0].any()
            assert valid[400, 400]
    for path in (synth_site.before_dsm, synth_site.after_dsm):
        with rasterio.open(path) as ds:
            assert ds.crs.to_epsg() == 32650
            assert ds.transform.almost_equals(expected, precision=1e-9)
            assert ds.dtypes[0] == "float32" and ds.nodata == -9999.0
            assert ds.profile["tiled"] and ds.compression.name.lower() == "deflate"
            z = ds.read(1, masked=True)
            assert z.mask.any() and not z.mask[400, 400]
            assert float(z.min()) > 40.0 and float(z.max()) < 110.0  # metres AMSL
    rgb, valid = open_orthophoto(synth_site.after_ortho)
    dsm = open_dsm(synth_site.after_dsm)
    assert rgb.rio.crs.to_epsg() == 32650 and dsm.rio.crs.to_epsg() == 32650
    assert bool(np.isnan(dsm.values[~valid.values]).all())


def test_geotiff_tags_are_explicit(synth_site: SynthSite) -> None:
    with rasterio.open(synth_site.after_ortho) as ds:
        tags = ds.tags()
    assert tags["SITEWATCH_EPOCH"] == "after"
    assert tags["SITEWATCH_SURVEY_DATE"] == synth_site.truth["after_date"]
    assert tags["TIFFTAG_DATETIME"] == synth_site.truth["after_date"].replace("-", ":") + (
        " 10:30:00"
    )


def test_truth_json_declares_misregistration_sun_colour_noise(synth_site: SynthSite) -> None:
    t = json.loads(synth_site.truth_json.read_text())
    assert t == synth_site.truth
    m = t["misregistration"]
    dx, dy = m["shift_m"]
    assert 0.3 <= math.hypot(dx, dy) <= 1.5
    assert 0.05 <= abs(m["rotation_deg"]) <= 0.3
    assert m["shift_px"] == {"col": pytest.approx(dx / 0.1), "row": pytest.approx(-dy / 0.1)}
    assert m["register_shift_rc_px"] == [pytest.approx(dy / 0.1), pytest.approx(-dx / 0.1)]
    assert "R(r)" in m["convention"]
    x0, y0 = t["origin"]
    assert m["center"] == [pytest.approx(x0 + 40.0), pytest.approx(y0 - 40.0)]
    sb, sa = t["sun"]["before"], t["sun"]["after"]
    assert abs(sb["azimuth_deg"] - sa["azimuth_deg"]) >= 30
    assert sb["elevation_deg"] != sa["elevation_deg"]
    assert len(t["colour"]["gain"]) == 3 and len(t["colour"]["offset"]) == 3
    assert 0.05 <= t["dsm_noise_m"] <= 0.1
    assert 0.1 <= abs(t["vertical_offset_m"]) <= 0.4
    assert (t["min_area_m2"], t["min_height_m"], t["storey_height_m"]) == (6.0, 2.5, 3.0)
    assert t["before_date"] < t["after_date"]


# --- vectors: truth, permits, site ------------------------------------------------------------


def test_truth_features_cover_every_planted_kind(synth_site: SynthSite) -> None:
    t = synth_site.truth
    tf = read_features(synth_site.truth_geojson)
    assert tf.crs.to_epsg() == 4326
    utm = tf.to_crs(t["crs"])
    site = read_features(synth_site.site).to_crs(t["crs"]).geometries[0]
    kinds = [p["kind"] for p in tf.properties]
    assert set(kinds) == ALL_KINDS
    assert kinds.count("new_structure") >= 2
    assert kinds.count("steel_shed") == 2 and kinds.count("demolition") == 2
    for g, p in zip(utm.geometries, utm.properties, strict=True):
        assert set(p) >= {
            "change_id",
            "kind",
            "must_flag",
            "expected_class",
            "height_change_m",
            "area_m2",
            "permit_id",
        }
        assert p["area_m2"] == pytest.approx(g.area, rel=5e-3)  # 1e-7 degree coordinates
        assert g.within(site)
        assert p["must_flag"] == (p["kind"] in EXPECTED)
        assert p["expected_class"] == EXPECTED.get(p["kind"])
        if p["kind"] == "new_structure":
            assert 40 <= p["area_m2"] <= 300 and 3 <= p["height_change_m"] <= 12
        if p["kind"] == "steel_shed":  # small, low, above the minimum area and height
            assert 20 <= p["area_m2"] <= 45 and 3 <= p["height_change_m"] <= 4
        if p["kind"] == "hedge":  # a distractor tall enough to pass the height threshold
            assert p["area_m2"] > t["min_area_m2"] and p["height_change_m"] > 1.5
        if p["kind"] in ("shed", "pile"):
            assert p["area_m2"] < t["min_area_m2"]
            assert p["height_change_m"] < t["min_height_m"]
        if p["kind"] == "demolition":
            assert p["height_change_m"] < -t["min_height_m"]
        if p["kind"] == "tree_growth":
            assert p["height_change_m"] > 0
    # planted objects never touch each other
    geoms = list(utm.geometries)
    for i, a in enumerate(geoms):
        for b in geoms[i + 1 :]:
            assert not a.intersects(b)
    ids = [p["change_id"] for p in tf.properties]
    assert len(set(ids)) == len(ids)
    assert (
        sorted(i for i, p in zip(ids, tf.properties, strict=True) if p["must_flag"])
        == (t["must_flag"])
    )


def test_permits_make_extension_storey_permitted_and_expired_cases(synth_site: SynthSite) -> None:
    t = synth_site.truth
    pf = read_features(synth_site.permits)
    assert pf.crs.to_epsg() == 4326
    permits = {
        p["permit_id"]: (g, p)
        for g, p in zip(pf.to_crs(t["crs"]).geometries, pf.properties, strict=True)
    }
    for _, p in permits.values():
        assert set(p) >= {"permit_id", "max_height_m", "floors", "valid_from", "valid_to"}
    valid = {
        k for k, (_, p) in permits.items() if p["valid_from"] <= t["after_date"] <= p["valid_to"]
    }
    expired = set(permits) - valid
    assert any(permits[k][1]["valid_to"] < t["after_date"] for k in expired)
    tf = read_features(synth_site.truth_geojson).to_crs(t["crs"])
    by_kind = {p["kind"]: (g, p) for g, p in zip(tf.geometries, tf.properties, strict=True)}

    g, p = by_kind["extension"]
    fp, permit = permits[p["permit_id"]]
    assert p["permit_id"] in valid
    assert g.area >= 20.0 and g.intersection(fp).area < 0.2  # 1e-7 degree rounding
    assert p["structure_area_m2"] > g.area
    assert p["structure_area_m2"] - g.area > 0.5 * p["structure_area_m2"]  # permit covers most
    assert p["height_change_m"] < permit["max_height_m"]

    g, p = by_kind["added_storey"]
    fp, permit = permits[p["permit_id"]]
    assert p["permit_id"] in valid
    assert g.symmetric_difference(fp).area < 1e-3
    assert p["height_change_m"] == pytest.approx(t["storey_height_m"], abs=0.01)

    g, p = by_kind["permitted_building"]
    fp, permit = permits[p["permit_id"]]
    assert p["permit_id"] in valid and g.within(fp)
    assert p["height_change_m"] < permit["max_height_m"]

    for kind in ("new_structure", "demolition", "shed", "pile", "steel_shed", "hedge"):
        for g, p in zip(tf.geometries, tf.properties, strict=True):
            if p["kind"] == kind:
                assert p["permit_id"] is None
                assert not any(g.intersects(permits[k][0]) for k in permits)


def test_added_storey_exceeds_permit_but_old_height_did_not(
    synth_site: SynthSite, scene: SynthScene
) -> None:
    t = synth_site.truth
    storey = next(b for b in scene.layout.buildings if b.name == "storey-1")
    permit = next(p for p in scene.layout.permits if p.permit_id == "P-2019-112")
    assert storey.height <= permit.max_height_m < storey.height + t["storey_height_m"]


# --- rasters against truth ---------------------------------------------------------------------


def test_dsm_change_inside_each_structure_equals_planted_height(
    synth_site: SynthSite, data: dict[str, Any]
) -> None:
    t = synth_site.truth
    res = _dsm_residual(synth_site, data)
    tf = read_features(synth_site.truth_geojson).to_crs(t["crs"])
    checked = 0
    for g, p in zip(tf.geometries, tf.properties, strict=True):
        if p["kind"] not in (*STRUCTURES, "shed"):
            continue
        inner = polygon_mask(g.buffer(-0.5), data["transform"], res.shape)
        vals = res[inner & np.isfinite(res)]
        assert vals.size > 50, p["change_id"]
        assert float(np.median(vals)) == pytest.approx(p["height_change_m"], abs=0.1), p
        checked += 1
    assert checked >= 10


def test_nothing_changes_in_the_dsm_outside_truth(
    synth_site: SynthSite, data: dict[str, Any]
) -> None:
    t = synth_site.truth
    res = _dsm_residual(synth_site, data)
    ok = ~_exclusion(synth_site, data) & np.isfinite(res)
    assert ok.mean() > 0.4
    r = res[ok]
    sigma = t["dsm_noise_m"]
    robust = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    assert abs(float(np.median(r))) < 0.02
    assert robust < 1.6 * sigma
    assert float(np.mean(np.abs(r) > 0.75)) < 1e-4
    # and inside the truth polygons something did change
    assert float(np.nanmax(np.abs(res))) > 5.0


def _forward(truth: dict[str, Any], e: float, n: float, sign: float = 1.0) -> tuple[float, float]:
    m = truth["misregistration"]
    r = math.radians(sign * m["rotation_deg"])
    (cx, cy), (dx, dy) = m["center"], m["shift_m"]
    return (
        math.cos(r) * (e - cx) - math.sin(r) * (n - cy) + cx + sign * dx,
        math.sin(r) * (e - cx) + math.cos(r) * (n - cy) + cy + sign * dy,
    )


def test_unchanged_buildings_appear_where_the_convention_puts_them(
    synth_site: SynthSite, data: dict[str, Any], scene: SynthScene
) -> None:
    """Roof centroids in the after DSM sit at R(r)((E, N) - c) + c + (dx, dy) of the true ones
    (to a few cm), and clearly not where the opposite convention would put them."""
    t = synth_site.truth
    transform = data["transform"]
    errors, wrong = [], []
    for b in scene.layout.buildings:
        if not (b.before and b.after and b.height_after is None):
            continue
        fp = b.footprint.polygon()
        for epoch in ("before", "after"):
            z = data[f"{epoch}_dsm"]
            if epoch == "after":
                fp = shapely.transform(fp, lambda xy: np.array([_forward(t, *p) for p in xy]))
            near = polygon_mask(fp.buffer(1.2), transform, z.shape)
            ground = float(np.nanpercentile(z[near], 2))
            roof = near & (np.nan_to_num(z, nan=ground) > ground + 0.5 * b.height)
            rows, cols = np.nonzero(roof)
            e, n = transform * (cols.mean() + 0.5, rows.mean() + 0.5)
            if epoch == "before":
                assert math.hypot(e - b.footprint.cx, n - b.footprint.cy) < 0.03
            else:
                fe, fn = _forward(t, b.footprint.cx, b.footprint.cy)
                errors.append(math.hypot(e - fe, n - fn))
                we, wn = _forward(t, b.footprint.cx, b.footprint.cy, sign=-1.0)
                wrong.append(math.hypot(e - we, n - wn))
    assert len(errors) >= 2
    assert max(errors) < 0.04, errors
    assert min(wrong) > 0.5, wrong


def test_declared_matrices_follow_the_convention(synth_site: SynthSite) -> None:
    t = synth_site.truth
    m = t["misregistration"]
    fwd = np.array(m["forward_matrix_m"])
    rc = np.array(m["after_rc_from_before_rc"])
    x0, y0 = t["origin"]
    g = t["gsd_m"]
    for e, n in ((x0 + 3.0, y0 - 70.0), (x0 + 55.5, y0 - 12.25), tuple(m["center"])):
        fe, fn = _forward(t, e, n)
        assert fwd @ [e, n, 1.0] == pytest.approx([fe, fn, 1.0], abs=1e-6)
        row, col = (y0 - n) / g - 0.5, (e - x0) / g - 0.5
        arow, acol = (y0 - fn) / g - 0.5, (fe - x0) / g - 0.5
        assert rc @ [row, col, 1.0] == pytest.approx([arow, acol, 1.0], abs=1e-5)


def test_register_shift_matches_phase_correlation(
    synth_site: SynthSite, data: dict[str, Any]
) -> None:
    """skimage's (row, col) shift of after onto before at the site centre."""
    c = slice(250, 550)  # centred on the rotation centre, where the rotation moves nothing
    before = data["before_rgb"][1][c, c]
    after = data["after_rgb"][1][c, c]
    shift, _, _ = phase_cross_correlation(before, after, upsample_factor=20)
    expected = synth_site.truth["misregistration"]["register_shift_rc_px"]
    assert shift == pytest.approx(expected, abs=0.5)


def test_misregister_false_keeps_one_frame_and_everything_else(scene: SynthScene) -> None:
    """``misregister=False``: no shift or rotation, the same sun, colours and layout."""
    flat = render_scene(SynthParams(seed=0, size_m=80, gsd_cm=10, misregister=False))
    m = flat.truth["misregistration"]
    assert m["shift_m"] == [0.0, 0.0] and m["rotation_deg"] == 0.0
    assert [abs(v) for v in m["register_shift_rc_px"]] == [0.0, 0.0]
    for key in ("sun", "colour", "vertical_offset_m", "must_flag"):
        assert flat.truth.get(key) == scene.truth.get(key)
    assert np.array_equal(flat.before_rgb, scene.before_rgb)
    c = slice(100, 700)
    shift, _, _ = phase_cross_correlation(
        flat.before_rgb[1][c, c], flat.after_rgb[1][c, c], upsample_factor=20
    )
    assert np.abs(shift).max() <= 0.1
    misplaced, _, _ = phase_cross_correlation(
        scene.before_rgb[1][c, c], scene.after_rgb[1][c, c], upsample_factor=20
    )
    assert np.abs(misplaced).max() >= 2.0  # the default scene is misregistered by 0.3-1.5 m


def test_nothing_changes_in_the_orthophoto_outside_truth_and_shadows(
    synth_site: SynthSite, data: dict[str, Any], scene: SynthScene
) -> None:
    """Undo misregistration and colour change analytically; 1 m block means of what is left
    (outside truth, shadows, edges) stay within a few DN: only relief shading differs."""
    t = synth_site.truth
    assert np.array_equal(scene.before_rgb, data["before_rgb"].astype(np.uint8))
    # sun-dependent pixels: cast shadows of either epoch and self-shaded slopes (pitched roofs)
    gy, gx = np.gradient(scene.true_before_dsm, t["gsd_m"])
    sloped = np.hypot(gx, gy) > 0.15
    shade = ndimage.binary_dilation(
        (scene.shadow_before > 0.01) | (scene.shadow_after > 0.01) | sloped, iterations=2
    )
    assert 0.02 < float(scene.shadow_before.mean()) < 0.5
    shape = data["before_dsm"].shape
    rr, cc = _after_coords(t, data["transform"], shape)
    valid_after = (
        ndimage.map_coordinates(data["after_valid"].astype(np.float64), [rr, cc], order=1, cval=0.0)
        > 0.999
    )
    ok = ~_exclusion(synth_site, data) & ~shade & data["before_valid"] & valid_after
    assert ok.mean() > 0.3
    gain, offset = t["colour"]["gain"], t["colour"]["offset"]
    gamma = t["colour"]["gamma"]
    k = 10  # 1 m blocks
    nb = shape[0] // k
    cnt = ok[: nb * k, : nb * k].reshape(nb, k, nb, k).sum(axis=(1, 3))
    full = cnt >= 0.8 * k * k
    shown = 0
    for ch in range(3):
        back = ndimage.map_coordinates(data["after_rgb"][ch], [rr, cc], order=1, cval=0.0)
        v = 255.0 * np.clip((back - offset[ch]) / (255.0 * gain[ch]), 0, None) ** (1 / gamma)
        d = np.where(ok, v - data["before_rgb"][ch], 0.0)
        sums = d[: nb * k, : nb * k].reshape(nb, k, nb, k).sum(axis=(1, 3))
        means = sums[full] / cnt[full]
        assert full.sum() > 1000
        assert float(np.abs(means).max()) < 10.0, ch
        assert abs(float(np.median(d[ok]))) < 2.0
        # without undoing the colour change the same comparison fails clearly (in the
        # channels whose gain changes enough to show)
        raw = np.where(ok, back - data["before_rgb"][ch], 0.0)
        if abs(gain[ch] - 1) >= 0.03:
            assert abs(float(np.mean(raw[ok]))) > 3.0, ch
            shown += 1
    assert shown >= 1, gain  # the site's colour change is visible in some channel


def test_shadows_and_colour_differ_between_epochs(synth_site: SynthSite, scene: SynthScene) -> None:
    sb, sa = scene.shadow_before > 0.5, scene.shadow_after > 0.5
    assert (sb ^ sa).mean() > 0.01  # shadows moved with the sun
    g = scene.before_rgb[1].astype(float)
    lit = ~ndimage.binary_dilation(sb, iterations=3) & scene.before_valid
    assert g[sb & scene.before_valid].mean() < 0.75 * g[lit].mean()


def test_green_roofs_look_like_leaves_and_canopies_are_rough(
    synth_site: SynthSite, data: dict[str, Any]
) -> None:
    """What makes the colour-steel sheds a test of the vegetation test (issue 12): to RGB
    indices the green shed and the demolished green roof are leaves, the blue shed is not;
    in the DSM the roofs are planes and the crowns and the hedge are rough."""
    from change_detection.change import pixel_scale, plane_fit_residual, vegetation_mask
    from change_detection.params import DetectParams

    t = synth_site.truth
    params = DetectParams()
    scale = pixel_scale(params, t["gsd_m"])
    shape = data["before_dsm"].shape
    # the after epoch brought back to true coordinates (truth convention), as detect would
    rr, cc = _after_coords(t, data["transform"], shape)
    after_rgb = np.stack(
        [ndimage.map_coordinates(b, [rr, cc], order=1) for b in data["after_rgb"]]
    ).astype(np.uint8)
    after_dsm = ndimage.map_coordinates(data["after_dsm"], [rr, cc], order=1, cval=np.nan)
    tf = read_features(synth_site.truth_geojson).to_crs(t["crs"])
    leafy, residual = {}, {}
    for g, p in zip(tf.geometries, tf.properties, strict=True):
        if p["kind"] not in ("steel_shed", "demolition", "hedge", "tree_growth"):
            continue
        epoch_rgb, epoch_dsm = (
            (data["before_rgb"].astype(np.uint8), data["before_dsm"])
            if p["kind"] == "demolition"
            else (after_rgb, after_dsm)
        )
        inner = polygon_mask(g.buffer(-0.4), data["transform"], shape)
        leafy[p["change_id"]] = float(vegetation_mask(epoch_rgb, params)[inner].mean())
        rows, cols = np.nonzero(inner)
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        res = plane_fit_residual(
            np.where(inner, epoch_dsm, np.nan)[box], scale.planar_cell, scale.planar_cells
        )
        residual[p["change_id"]] = float(np.nanmedian(res)) if np.isfinite(res).any() else np.inf
    assert leafy["steel-shed-green"] > 0.9 and leafy["demolition-2"] > 0.9
    assert leafy["steel-shed-blue"] == 0.0
    assert leafy["hedge-1"] > 0.9
    for name in ("steel-shed-green", "steel-shed-blue", "demolition-2"):
        assert residual[name] < 0.8 * params.planar_residual_m, (name, residual[name])
    crowns = [v for k, v in residual.items() if k.startswith("tree-")]
    assert len(crowns) >= 3 and min(crowns) > 1.3 * params.planar_residual_m, crowns
    # the hedge is too narrow for a window: no plane can be fitted on it at all
    assert residual["hedge-1"] > params.planar_residual_m


def test_trees_grow_and_cars_move(synth_site: SynthSite, data: dict[str, Any]) -> None:
    t = synth_site.truth
    res = _dsm_residual(synth_site, data)
    tf = read_features(synth_site.truth_geojson).to_crs(t["crs"])
    for g, p in zip(tf.geometries, tf.properties, strict=True):
        if p["kind"] == "car_moved":
            inner = polygon_mask(g.buffer(-0.3), data["transform"], res.shape)
            med = float(np.nanmedian(res[inner]))
            assert abs(med) > 0.8 and np.sign(med) == np.sign(p["height_change_m"])
        if p["kind"] == "tree_growth":
            assert p["height_change_m"] > 0.2


# --- determinism -------------------------------------------------------------------------------


def _hashes(site: SynthSite) -> dict[str, str]:
    paths = (
        site.before_ortho,
        site.before_dsm,
        site.after_ortho,
        site.after_dsm,
        site.site,
        site.permits,
        site.truth_geojson,
        site.truth_json,
    )
    return {p.relative_to(site.root).as_posix(): sha256_file(p) for p in paths}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    params = SynthParams(seed=7, size_m=60, gsd_cm=20)
    a = _hashes(generate_site(tmp_path / "a", params))
    b = _hashes(generate_site(tmp_path / "b", params))
    assert a == b and len(a) == 8
    c = _hashes(generate_site(tmp_path / "c", SynthParams(seed=8, size_m=60, gsd_cm=20)))
    for key in a:
        assert a[key] != c[key], key


@pytest.mark.parametrize("seed", range(24))
def test_every_kind_fits_on_the_smallest_site(seed: int) -> None:
    layout = plan_layout(SynthParams(seed=seed, size_m=60, gsd_cm=20), (500000.0, 4100060.0))
    kinds = {f.props["kind"] for f in layout.truth}
    assert kinds == ALL_KINDS
    for i, a in enumerate(layout.truth):
        for b in layout.truth[i + 1 :]:
            assert not a.geometry.intersects(b.geometry)


# --- parameters and CLI ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"size_m": 20.0}, "size_m"),
        ({"gsd_cm": 1.0}, "gsd_cm"),
        ({"gsd_cm": float("nan")}, "gsd_cm"),
        ({"seed": -1}, "seed"),
        ({"lat": 88.0}, "lat"),
        ({"size_m": 1000.0, "gsd_cm": 2.0}, "px"),
        ({"before_date": "2026-01-01"}, "before_date"),
    ],
)
def test_bad_params_raise_one_line(kwargs: dict[str, Any], word: str) -> None:
    with pytest.raises(SynthParamsError) as exc:
        SynthParams(**kwargs)
    assert isinstance(exc.value, ValueError)
    assert word in str(exc.value) and "\n" not in str(exc.value)


def test_utm_zone_follows_the_location() -> None:
    assert SynthParams().epsg == 32650
    assert SynthParams(lon=-3.7, lat=40.4).epsg == 32630
    assert SynthParams(lon=151.2, lat=-33.9).epsg == 32756


def test_cli_writes_a_site_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert run(["synth", "--out", str(out), "--seed", "3", "--size-m", "60", "--gsd-cm", "20"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "planted" in text
    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == 3 and truth["shape_px"] == [300, 300]
    for rel in (
        "before/orthophoto.tif",
        "before/dsm.tif",
        "after/orthophoto.tif",
        "after/dsm.tif",
        "site.geojson",
        "permits.geojson",
        "truth.geojson",
    ):
        assert (out / rel).is_file()


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--gsd-cm", "50"], "--gsd-cm"),
        (["--size-m", "10"], "--size-m"),
        (["--seed", "-4"], "--seed"),
        (["--seed", "abc"], "--seed"),
    ],
)
def test_cli_bad_flag_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], word: str
) -> None:
    assert run(["synth", "--out", str(tmp_path / "x"), *args]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err
    assert not (tmp_path / "x").exists()


def test_cli_missing_out_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["synth"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err


def test_cli_unwritable_out_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert (
        run(["synth", "--out", str(blocker / "site"), "--size-m", "60", "--gsd-cm", "20"])
        == EXIT_ERROR
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and str(blocker) in err


def _check_site_against_truth(site: SynthSite) -> None:
    data = _read(site)
    t = site.truth
    res = _dsm_residual(site, data)
    tf = read_features(site.truth_geojson).to_crs(t["crs"])
    for g, p in zip(tf.geometries, tf.properties, strict=True):
        if p["kind"] in STRUCTURES:
            inner = polygon_mask(g.buffer(-0.5), data["transform"], res.shape)
            vals = res[inner & np.isfinite(res)]
            assert float(np.median(vals)) == pytest.approx(p["height_change_m"], abs=0.1), p
    ok = ~_exclusion(site, data) & np.isfinite(res)
    r = res[ok]
    robust = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    assert robust < 1.6 * t["dsm_noise_m"]
    assert float(np.mean(np.abs(r) > 0.75)) < 2e-4


def test_smallest_coarse_site_matches_its_truth(
    make_synth_site: Callable[..., SynthSite],
) -> None:
    _check_site_against_truth(make_synth_site(5, 60.0, 20.0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 11, 29])
def test_other_seeds_match_their_truth(
    make_synth_site: Callable[..., SynthSite], seed: int
) -> None:
    _check_site_against_truth(make_synth_site(seed, 80.0, 10.0))


def test_cli_too_many_pixels_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["synth", "--out", str(tmp_path / "big"), "--size-m", "1000", "--gsd-cm", "2"]
    assert run(args) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--gsd-cm" in err and "50000 px" in err


# --- building blocks ---------------------------------------------------------------------------


@pytest.mark.parametrize(("azimuth", "elevation"), [(90.0, 45.0), (90.0, 30.0), (270.0, 60.0)])
def test_cast_shadow_length_is_height_over_tan_elevation(azimuth: float, elevation: float) -> None:
    gsd, h = 0.1, 6.0
    z = np.zeros((200, 400), dtype=np.float32)
    z[80:120, 180:220] = h  # a 4 m block, 6 m high
    s = cast_shadows(z, gsd, azimuth, elevation, cell_m=0.2) > 0.5
    length = h / math.tan(math.radians(elevation))
    row = s[100]
    if azimuth == 90.0:  # sun in the east: shadow to the west of column 180
        lit_cols = np.nonzero(row[:180])[0]
        measured = (180 - lit_cols.min()) * gsd
    else:
        shaded = np.nonzero(row[220:])[0]
        measured = (shaded.max() + 1) * gsd
    assert measured == pytest.approx(length, abs=0.3)
    assert not s[100, 190:210].any()  # the roof itself is lit
    assert not s[40].any() and not s[160].any()  # nothing north or south of it


def test_upsample_linear_matches_ndimage_zoom() -> None:
    rng = np.random.default_rng(0)
    coarse = rng.standard_normal((30, 41)).astype(np.float32)
    ours = upsample_linear(coarse, 4.0, (120, 164))
    ref = ndimage.zoom(coarse, 4.0, order=1, grid_mode=True, mode="nearest")
    assert ours.shape == (120, 164) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.parametrize(("shape", "r"), [((50, 70), 3), ((41, 33), 1), ((30, 30), 0)])
def test_dilate_box_matches_maximum_filter(shape: tuple[int, int], r: int) -> None:
    from survey.synth.render import _dilate_box

    rng = np.random.default_rng(r)
    m = rng.random(shape) < 0.01
    m[0, 5] = m[-1, -3] = m[7, 0] = True
    ref = ndimage.maximum_filter(m.view(np.uint8), 2 * r + 1, mode="constant").astype(bool)
    assert np.array_equal(_dilate_box(m, r), ref)
