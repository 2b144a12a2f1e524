"""Known-answer tests of the co-registration core on rendered scenes with planted mappings."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from change_detection import CoregParams, coregister, estimate_vertical_offset
from change_detection.coregistration import TIEPOINT_DTYPE, gradient_representation
from change_detection.errors import (
    CoregistrationError,
    GridMismatchError,
    InsufficientOverlapError,
)
from tests.change_detection.test_coregistration_scenes import (
    affine_push,
    make_scene,
    mapping_error,
    render,
    render_lines,
    sample,
    shift_push,
    warp_push,
)

SHAPE = (512, 512)
CENTER = ((SHAPE[0] - 1) / 2, (SHAPE[1] - 1) / 2)


@pytest.fixture(scope="module")
def scene():  # type: ignore[no-untyped-def]
    return make_scene(SHAPE, seed=3)


@pytest.fixture(scope="module")
def reference(scene) -> np.ndarray:  # type: ignore[no-untyped-def]
    return render(scene, sun_deg=135.0)


@pytest.mark.parametrize("shift", [(-7.3, 12.6), (0.37, -0.81), (0.5, 0.5), (-0.13, 0.02)])
def test_pure_shift_recovered(reference: np.ndarray, shift: tuple[float, float]) -> None:
    push = shift_push(*shift)
    target = sample(reference, push)
    r = coregister(reference, target)
    assert r.model == "translation"
    assert r.shift_x_px == pytest.approx(shift[0], abs=0.05)
    assert r.shift_y_px == pytest.approx(shift[1], abs=0.05)
    assert mapping_error(r.source_coordinates, push, SHAPE) < 0.05
    assert r.rmse_px < 0.05
    assert r.confidence > 0.9
    assert r.n_used == r.n_tiepoints > 20
    assert r.warnings == ()


def test_sign_convention_matches_skimage_and_ndimage_shift(reference: np.ndarray) -> None:
    target = ndimage.shift(reference, (-4.0, 6.0), order=3, mode="mirror")  # content moved
    r = coregister(reference, target, params=CoregParams(model="translation"))
    sk, _, _ = phase_cross_correlation(reference, target, upsample_factor=10)
    assert (r.shift_y_px, r.shift_x_px) == pytest.approx(tuple(sk), abs=0.1)
    assert (r.shift_y_px, r.shift_x_px) == pytest.approx((4.0, -6.0), abs=0.05)
    aligned = r.warp(target, order=3)
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(aligned[inner] - reference[inner]).mean() < 0.5
    assert np.abs(target[inner] - reference[inner]).mean() > 10


@pytest.mark.parametrize(
    ("shift", "rot", "scale"),
    [((3.2, -4.7), 0.5, 1.005), ((-1.2, 2.7), -0.3, 0.995), ((0.4, 0.3), 0.2, 1.0)],
)
def test_affine_recovered(
    reference: np.ndarray, shift: tuple[float, float], rot: float, scale: float
) -> None:
    push = affine_push(shift[0], shift[1], rot, scale, CENTER)
    r = coregister(reference, sample(reference, push))
    assert r.model in ("affine", "warp")
    assert mapping_error(r.source_coordinates, push, SHAPE) < 0.2
    assert r.parameters["rotation_deg"] == pytest.approx(rot, abs=0.02)
    assert r.parameters["scale_x"] == pytest.approx(scale, abs=0.001)
    # at the centre the affine model is the plain shift
    assert r.shift_x_px == pytest.approx(shift[0], abs=0.1)
    assert r.shift_y_px == pytest.approx(shift[1], abs=0.1)


def test_brightness_contrast_and_shadows(scene, reference: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    push = affine_push(-3.3, 2.6, 0.25, 1.002, CENTER)
    other_sun = render(scene, sun_deg=250.0, shadow_px=10.0)
    target = np.clip(sample(other_sun, push) * 0.65 + 50, 0, 255)
    r = coregister(reference, target)
    assert mapping_error(r.source_coordinates, push, SHAPE) < 0.3
    assert r.confidence > 0.6


def test_rgb_input_and_translation_model_forced(reference: np.ndarray) -> None:
    rgb = np.stack([reference, reference * 0.8, np.clip(reference * 1.1, 0, 255)]).astype(np.uint8)
    push = shift_push(2.25, -1.5)
    target = sample(rgb.astype(float), push).round().astype(np.uint8)
    r = coregister(rgb, target, params=CoregParams(model="translation"))
    assert r.model == "translation"
    assert (r.shift_x_px, r.shift_y_px) == pytest.approx((2.25, -1.5), abs=0.05)
    out = r.warp(target)
    assert out.dtype == np.uint8 and out.shape == rgb.shape


def test_smooth_warp_chosen_by_the_data() -> None:
    ref = render(make_scene((768, 768), seed=5))
    push = warp_push(1.0, -0.5, 1.2, 900.0)
    r = coregister(ref, sample(ref, push))
    assert r.model == "warp"
    err = mapping_error(r.source_coordinates, push, ref.shape, margin=64)
    assert err < 0.2
    forced = coregister(ref, sample(ref, push), params=CoregParams(model="affine"))
    assert mapping_error(forced.source_coordinates, push, ref.shape, margin=64) > 2 * err


def test_nodata_part_of_target(reference: np.ndarray) -> None:
    push = shift_push(1.6, 2.4)
    target = sample(reference, push)
    valid = np.ones(SHAPE, bool)
    valid[:, 300:] = False
    target[~valid] = 0
    r = coregister(reference, target, target_valid=valid)
    assert (r.shift_x_px, r.shift_y_px) == pytest.approx((1.6, 2.4), abs=0.05)
    status = r.tiepoints["status"]
    assert (status == "nodata").sum() >= 0.3 * r.n_tiepoints
    assert not r.tiepoints["used"][r.tiepoints["x"] > 360].any()


def test_too_little_overlap_is_an_error(reference: np.ndarray) -> None:
    valid = np.zeros(SHAPE, bool)
    valid[:, :70] = True  # 10 of its 70 columns overlap the reference: 14 %
    ref_valid = np.zeros(SHAPE, bool)
    ref_valid[:, 60:] = True
    with pytest.raises(InsufficientOverlapError, match="overlap"):
        coregister(reference, reference, reference_valid=ref_valid, target_valid=valid)
    with pytest.raises(InsufficientOverlapError, match="no valid pixels"):
        coregister(reference, reference, target_valid=np.zeros(SHAPE, bool))


def test_grid_mismatch_is_an_error(reference: np.ndarray) -> None:
    with pytest.raises(GridMismatchError, match="align_epoch"):
        coregister(reference, reference[:500])


def test_featureless_gives_no_confident_answer() -> None:
    rng = np.random.default_rng(0)
    flat = 120 + rng.normal(0, 0.5, SHAPE)
    other = 120 + rng.normal(0, 0.5, SHAPE)
    r = coregister(flat, other)
    assert r.confidence < 0.3
    assert r.warnings
    with pytest.raises(CoregistrationError, match="tie points"):
        coregister(flat, other, params=CoregParams(strict=True))


def _panels(shift_x: int, shift_y: int) -> np.ndarray:
    """Rows of solar panels (14 x 22 px every 20 x 28 px), moved by whole pixels."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    on = (np.mod(xx - shift_x, 20) < 14) & (np.mod(yy - shift_y, 28) < 22)
    return ndimage.gaussian_filter(np.where(on, 190.0, 90.0), 1.0)


def test_repeating_pattern_is_flagged_not_trusted() -> None:
    # moved by half a period: every window matches about as well at several lags
    r = coregister(_panels(0, 0), _panels(10, 0))
    assert r.confidence < 0.3
    assert any("repeating" in w for w in r.warnings)
    with pytest.raises(CoregistrationError):
        coregister(_panels(0, 0), _panels(10, 0), params=CoregParams(strict=True))


def test_repeating_pattern_small_shift_is_recovered() -> None:
    """Moved by less than half a period the panels are unambiguous: recovered, confidently
    (measured: all 49 windows used, confidence 0.998)."""
    r = coregister(_panels(0, 0), _panels(3, -5))
    err = np.hypot(r.shift_x_px + 3, r.shift_y_px - 5)
    assert err < 0.05, (err, r.confidence)
    assert r.confidence > 0.9
    assert not any("repeating" in w for w in r.warnings)


def test_line_map_reference_is_recovered(
    scene,  # type: ignore[no-untyped-def]
    reference: np.ndarray,
) -> None:
    """A permit-map raster (outlines drawn inside the footprints) against a photo: matched on
    its ink (more cases in test_coregistration_maps.py); was 0.68 px at confidence 0.17."""
    lines = render_lines(scene)
    push = shift_push(4.3, -2.1)
    r = coregister(lines, sample(reference, push))
    err = mapping_error(r.source_coordinates, push, SHAPE)
    assert err < 0.3, (err, r.confidence)
    assert r.confidence > 0.3
    assert r.representation == ("lines (dark on light)", "gradient")


def test_tiepoint_table(reference: np.ndarray) -> None:
    r = coregister(reference, sample(reference, shift_push(1.0, 1.0)))
    tp = r.tiepoints
    assert tp.dtype == TIEPOINT_DTYPE and tp.size == r.n_tiepoints
    assert int(tp["used"].sum()) == r.n_used
    used = tp[tp["used"]]
    assert np.all(np.isfinite(used["res_x"])) and np.all(
        np.hypot(used["res_x"], used["res_y"]) < 0.2
    )
    d = r.to_dict()
    assert d["shift_convention"].startswith("shift_x_px")


def test_representation_is_illumination_invariant(reference: np.ndarray) -> None:
    a = gradient_representation(reference)
    b = gradient_representation(reference * 0.5 + 60)
    inner = (slice(16, -16), slice(16, -16))
    assert np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1] > 0.99


def test_vertical_offset_on_stable_ground() -> None:
    rng = np.random.default_rng(2)
    h, w = 600, 700
    ground = 50 + ndimage.gaussian_filter(rng.normal(size=(h, w)), 40) * 30
    ref = ground + rng.normal(0, 0.03, (h, w))
    tgt = ground + 0.73 + rng.normal(0, 0.03, (h, w))
    tgt[100:180, 200:320] += 9.0  # a new building
    tgt[400:450, 50:90] -= 6.0  # a demolition
    tgt[:40] = np.nan
    ref[:, -30:] = np.nan
    off = estimate_vertical_offset(ref, tgt, pixel_size_m=0.1)
    assert off == pytest.approx(0.73, abs=0.05)
    stable = np.ones((h, w), bool)
    stable[300:, :] = False
    assert estimate_vertical_offset(ref, tgt, stable, pixel_size_m=0.1) == pytest.approx(
        0.73, abs=0.05
    )
    with pytest.raises(CoregistrationError, match="stable ground"):
        estimate_vertical_offset(ref, np.full((h, w), np.nan))


def test_vertical_offset_of_lazy_dsms_decodes_one_chunk_per_window() -> None:
    """Sampled windows sit inside their chunks, and the shifted target's window is read once,
    not strip by strip: each window decodes one chunk of each DSM; the offset is found."""
    import dask.array as dsa

    from change_detection.grids import _WarpedView

    rng = np.random.default_rng(6)
    side = 2048
    ground = (50 + ndimage.gaussian_filter(rng.normal(size=(side, side)), 60) * 30).astype(
        np.float32
    )
    reads: list[tuple[str, int, int]] = []

    def lazy(name: str, values: np.ndarray):  # type: ignore[no-untyped-def]
        def block(block_info=None):  # type: ignore[no-untyped-def]
            (r0, r1), (c0, c1) = block_info[None]["array-location"]
            reads.append((name, r0, c0))
            return values[r0:r1, c0:c1]

        return dsa.map_blocks(block, chunks=((1024, 1024), (1024, 1024)), dtype=np.float32)

    target = np.roll(ground, (-5, 8), axis=(0, 1)) + np.float32(0.4)
    result = coregister(ground, target.astype(np.float64), params=CoregParams(model="translation"))
    off = estimate_vertical_offset(
        lazy("reference", ground),
        _WarpedView(result, lazy("target", target)),
        pixel_size_m=0.1,
        max_windows=4,
    )
    assert off == pytest.approx(0.4, abs=0.01)
    assert sorted(reads) == sorted(
        (name, r, c) for name in ("reference", "target") for r in (0, 1024) for c in (0, 1024)
    )


def test_vertical_offset_of_a_narrow_lazy_strip() -> None:
    """A corridor raster (a road or a river bank) shorter than a window and a half keeps its
    sample windows at the edge instead of losing them all to the inset."""
    rng = np.random.default_rng(3)
    ref = (50 + ndimage.gaussian_filter(rng.normal(size=(200, 8193)), 30) * 20).astype(np.float32)
    off = estimate_vertical_offset(ref, ref + np.float32(0.4), pixel_size_m=0.1, max_windows=16)
    assert off == pytest.approx(0.4, abs=1e-4)


def test_warp_of_mask_and_dsm(reference: np.ndarray) -> None:
    r = coregister(reference, sample(reference, shift_push(3.5, -2.0)))
    valid = np.ones(SHAPE, bool)
    out = r.warp(valid)
    assert out.dtype == np.bool_
    # the aligned target reads target[y + 2, x - 3.5]: the leftmost 4 columns and the bottom
    # 2 rows have no source pixel
    assert not out[:, :3].any() and out[:, 5:-5][5:-5].all()
    assert not out[-2:, :].any()
    dsm = np.where(valid, 10.0, np.nan).astype(np.float32)
    dsm[100:110, 100:110] = np.nan
    wd = r.warp(dsm)
    assert wd.dtype == np.float32 and np.isnan(wd[98:108, 104:113]).all()


def test_rotation_beyond_the_search_range_is_followed_by_a_second_pass() -> None:
    ref = render(make_scene((768, 768), seed=8))
    push = affine_push(1.5, -2.0, 2.0, 1.0, (383.5, 383.5))  # corners move ~19 px, search 16
    params = CoregParams(window_px=64, max_tiepoints=196)
    r = coregister(ref, sample(ref, push), params=params)
    assert mapping_error(r.source_coordinates, push, ref.shape) < 0.1  # one pass: 0.21
    assert r.n_used >= 0.9 * r.n_tiepoints
    assert r.parameters["rotation_deg"] == pytest.approx(2.0, abs=0.02)


def test_small_raster_falls_back_to_the_whole_image_shift_with_low_confidence() -> None:
    ref = render(make_scene((100, 100), seed=1))
    r = coregister(ref, sample(ref, shift_push(1.5, -0.5)))
    assert r.confidence <= 0.2 and r.warnings
    assert (r.shift_x_px, r.shift_y_px) == pytest.approx((1.5, -0.5), abs=0.1)


@pytest.mark.parametrize(
    "shift", [(-3.3, 2.7), (0.0, 0.0), (5.0, -2.25), (-0.5, 0.999), (-299.5, 10.0)]
)
def test_translation_fast_path_equals_map_coordinates(shift: tuple[float, float]) -> None:
    """The four-slice bilinear of a translation gives map_coordinates' values (constant mode):
    uint8 within 1 DN (float32 rounding), floats within 1e-6, masks and edges identical."""
    from change_detection.coregistration import warp_array

    rng = np.random.default_rng(3)
    ty, tx = shift

    def pull(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return r + ty, c + tx

    rgb = rng.integers(0, 256, (3, 300, 500)).astype(np.uint8)
    dem = rng.normal(size=(300, 500)).astype(np.float32)
    mask = rng.random((300, 500)) > 0.05
    for arr in (rgb, dem, mask):
        slow = warp_array(pull, arr, 1, None, (300, 500), 128, tolerance_px=0.0)
        fast = warp_array(pull, arr, 1, None, (300, 500), 128, translation=(ty, tx))
        assert fast.dtype == slow.dtype and fast.shape == slow.shape
        if arr.dtype == np.float32:
            np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
            np.testing.assert_allclose(fast, slow, atol=1e-6, equal_nan=True)
        else:
            diff = np.abs(fast.astype(int) - slow.astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_bilinear_warp_of_a_general_model_equals_map_coordinates() -> None:
    """Rotated and scaled pull maps (no translation fast path): the shared-weight bilinear
    gives map_coordinates' values (constant mode) for an orthophoto, a DSM with holes and a
    mask warped together, in blocks on threads; uint8 within 1 DN (float32 rounding)."""
    from scipy import ndimage

    from change_detection.coregistration import warp_arrays

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (3, 300, 400)).astype(np.uint8)
    dem = rng.normal(30.0, 4.0, size=(300, 400)).astype(np.float32)
    dem[40:60, 100:130] = np.nan
    mask = rng.random((300, 400)) > 0.05
    a = np.deg2rad(3.0)

    def pull(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 1.01 * (np.sin(a) * c + np.cos(a) * r) - 7.3, 1.01 * (
            np.cos(a) * c - np.sin(a) * r
        ) + 4.6

    out_shape = (280, 420)
    got = warp_arrays(pull, [rgb, dem, mask], [1, 1, 1], [None] * 3, out_shape, block_px=64)
    rr, cc = np.meshgrid(np.arange(280.0), np.arange(420.0), indexing="ij")
    qy, qx = pull(rr, cc)

    def ref(plane: np.ndarray, cval: float) -> np.ndarray:
        return ndimage.map_coordinates(
            plane.astype(np.float32), [qy, qx], order=1, mode="constant", cval=cval
        )

    want_rgb = np.stack([np.clip(np.rint(ref(b, 0.0)), 0, 255) for b in rgb]).astype(np.uint8)
    diff = np.abs(got[0].astype(int) - want_rgb)
    assert got[0].dtype == np.uint8 and diff.max() <= 1 and (diff > 0).mean() < 0.01
    want_dem = ref(dem, np.nan)
    np.testing.assert_array_equal(np.isnan(got[1]), np.isnan(want_dem))
    np.testing.assert_allclose(got[1], want_dem, atol=1e-4, equal_nan=True)
    assert np.isnan(got[1]).sum() > 400  # the hole and the outside came through as NaN
    np.testing.assert_array_equal(got[2], ref(mask, 0.0) >= 0.999)
    assert got[2].dtype == np.bool_ and 0 < got[2].mean() < 0.95


def _near_translation_pull(
    scale: float, shift: tuple[float, float]
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def pull(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (1 + scale) * r + 0.7 * scale * c + shift[0], (1 - scale) * c + shift[1]

    return pull


def _smooth_layers(n: int) -> list[np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(11)
    rgb = ndimage.gaussian_filter(rng.normal(size=(3, n, n)), (0, 2, 2))
    rgb = np.clip(128 + 300 * rgb, 0, 255).astype(np.uint8)
    dem = (ndimage.gaussian_filter(rng.normal(size=(n, n)), 3) * 40).astype(np.float32)
    dem[100:120, 200:260] = np.nan
    mask = np.ones((n, n), bool)
    mask[:, :6] = False
    return [rgb, dem, mask]


def test_a_nearly_translating_map_is_applied_as_a_translation_per_tile() -> None:
    """An affine map within 0.01 px of a translation over each 128 px tile (a scale of 1e-5,
    as between two surveys of a site) is resampled tile by tile as a translation: within
    1 DN and 0.01 px worth of height of the exact bilinear values, masks identical, and a
    window (a chunk) gets exactly the values of the whole raster."""
    from change_detection.coregistration import warp_arrays

    layers = _smooth_layers(600)
    pull = _near_translation_pull(1e-5, (-4.7, 8.3))
    exact = warp_arrays(pull, layers, [1, 1, 1], [None] * 3, (600, 600), tolerance_px=0.0)
    tiled = warp_arrays(pull, layers, [1, 1, 1], [None] * 3, (600, 600))
    assert np.abs(tiled[0].astype(int) - exact[0]).max() <= 1
    assert not np.array_equal(tiled[1], exact[1], equal_nan=True)  # the tile path ran
    np.testing.assert_array_equal(np.isnan(tiled[1]), np.isnan(exact[1]))
    slope = np.nanmax(np.abs(np.gradient(layers[1])))
    assert np.nanmax(np.abs(tiled[1] - exact[1])) <= 0.01 * 2 * slope
    np.testing.assert_array_equal(tiled[2], exact[2])
    window = (130, 250, 300, 200)
    part = warp_arrays(pull, layers, [1, 1, 1], [None] * 3, (600, 600), 64, window)
    rows, cols = slice(130, 430), slice(250, 450)
    np.testing.assert_array_equal(part[0], tiled[0][:, rows, cols])
    np.testing.assert_array_equal(part[1], tiled[1][rows, cols])
    np.testing.assert_array_equal(part[2], tiled[2][rows, cols])


def test_a_map_far_from_a_translation_is_sampled_at_every_coordinate() -> None:
    """A 1 deg rotation departs from a translation by 1 px over a tile: no tile is taken as a
    translation, and the values are the exact bilinear ones, bit for bit."""
    from change_detection.coregistration import warp_arrays

    layers = _smooth_layers(300)
    a = np.deg2rad(1.0)

    def pull(r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.cos(a) * r + np.sin(a) * c - 2.5, np.cos(a) * c - np.sin(a) * r + 3.25

    exact = warp_arrays(pull, layers, [1, 1, 1], [None] * 3, (300, 300), tolerance_px=0.0)
    got = warp_arrays(pull, layers, [1, 1, 1], [None] * 3, (300, 300))
    for g, e in zip(got, exact, strict=True):
        np.testing.assert_array_equal(g, e)


def test_bilinear_gather_gives_the_fill_at_nan_coordinates() -> None:
    """As map_coordinates does: a NaN coordinate is outside, whatever the array's width."""
    from change_detection.coregistration import _gather_bilinear

    for width in (7, 8):
        src = np.arange(5 * width, dtype=np.float32).reshape(1, 5, width)
        qy = np.array([[1.5, np.nan, 2.0]])
        qx = np.array([[np.nan, 2.5, 3.0]])
        out = np.empty((1, 1, 3), np.float32)
        _gather_bilinear(src, qy, qx, out, -1.0, False, False)
        np.testing.assert_array_equal(out[0, 0], [-1.0, -1.0, 2.0 * width + 3.0])


def test_warp_field_is_interpolated_separably_on_a_grid_as_pointwise() -> None:
    """A warp model's node field interpolated on a rows x columns grid (the separable path)
    equals the pointwise 2-D interpolation at the same pixels."""
    from change_detection.coregistration import _Mapping

    rng = np.random.default_rng(8)
    m = _Mapping(
        "warp",
        np.array([[1.0, 0.001, -2.0], [-0.001, 1.0, 3.0]]),
        grid_x=np.linspace(0.0, 900.0, 7),
        grid_y=np.linspace(0.0, 600.0, 5),
        field=rng.normal(scale=0.5, size=(2, 5, 7)),
    )
    rows = np.arange(-20.0, 640.0, 3.0)[:, None]  # beyond the nodes too: clamped
    cols = np.arange(-30.0, 960.0, 5.0)[None, :]
    qx, qy = m.pull(cols, rows)
    full_r, full_c = np.broadcast_arrays(rows, cols)
    px, py = m.pull(full_c.copy(), full_r.copy())
    np.testing.assert_allclose(qx, px, atol=1e-9)
    np.testing.assert_allclose(qy, py, atol=1e-9)


@pytest.mark.parametrize(("f", "chunk"), [(8, 64), (7, 64), (4, 50), (8, (5, 64, 64, 64, 64, 39))])
def test_block_means_of_dask_arrays_equal_the_strip_by_strip_ones(
    f: int, chunk: int | tuple[int, ...]
) -> None:
    """Chunk by chunk on dask's threads (rechunked to multiples of f where needed)."""
    import dask.array as dsa

    from change_detection.coregistration import _block_mean

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (3, 300, 250)).astype(np.uint8)
    valid = rng.random((300, 250)) > 0.1
    dem = np.where(valid, rng.normal(size=(300, 250)), np.nan).astype(np.float32)
    for arr, v in ((rgb, valid), (dem, None), (rgb, None)):
        eager = _block_mean(arr, v, f)
        lazy = _block_mean(
            dsa.from_array(arr, chunks=(-1, chunk, 50) if arr.ndim == 3 else (chunk, 50)),
            None if v is None else dsa.from_array(v, chunks=(chunk, 50)),
            f,
        )
        for e, la in zip(eager, lazy, strict=True):
            assert e.shape == la.shape == (300 // f, 250 // f)
            np.testing.assert_allclose(la, e, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize(("f", "chunk"), [(8, 64), (7, 64), (4, 50), (8, (5, 64, 64, 64, 64, 39))])
def test_coarse_pass_keeps_the_reference_tie_windows_exactly(
    f: int, chunk: int | tuple[int, ...]
) -> None:
    """The windows cut from the coarse pass's chunks are what reading them would give, at the
    raster's edges (padded as invalid) and across chunk seams; NaN counts as invalid."""
    import dask.array as dsa

    from change_detection.coregistration import (
        _block_mean,
        _read_window,
        _tie_geometry,
        _WindowStash,
    )

    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, (3, 300, 250)).astype(np.uint8)
    valid = rng.random((300, 250)) > 0.1
    dem = np.where(rng.random((300, 250)) > 0.05, rng.normal(size=(300, 250)), np.nan)
    params = CoregParams(window_px=64, max_tiepoints=30)
    rows0, cols0, halo, m = _tie_geometry(300, 250, params)
    assert rows0[0] - halo < 0 and cols0[-1] + m - halo > 250 - 10  # edge windows included
    for arr, v in ((rgb, valid), (dem.astype(np.float32), None)):
        stash = _WindowStash((300, 250), params)
        _block_mean(
            dsa.from_array(arr, chunks=(-1, chunk, 50) if arr.ndim == 3 else (chunk, 50)),
            None if v is None else dsa.from_array(v, chunks=(chunk, 50)),
            f,
            stash=stash,
        )
        assert stash.complete
        for k, (r, c) in enumerate((r, c) for r in rows0 for c in cols0):
            grey, ok = _read_window(arr, v, r - halo, c - halo, m, m)
            np.testing.assert_array_equal(stash.grey[k], grey)
            np.testing.assert_array_equal(stash.ok[k], ok)


def test_band_cache_decodes_each_chunk_row_once() -> None:
    """Windows in row order (the tie-point grid's) slice a lazy array through the row-band
    cache: the values are the array's, and every chunk is computed once."""
    import dask.array as dsa

    from change_detection.coregistration import _BandCache

    values = np.arange(3 * 1000 * 700, dtype=np.float32).reshape(3, 1000, 700)
    computed: list[tuple[int, int]] = []

    def block(block_info=None):  # type: ignore[no-untyped-def]
        (_, _), (r0, r1), (c0, c1) = block_info[None]["array-location"]
        computed.append((r0, c0))
        return values[:, r0:r1, c0:c1]

    lazy = dsa.map_blocks(block, chunks=((3,), (128,) * 7 + (104,), (256, 256, 188)), dtype="f4")
    cache = _BandCache(lazy, band_px=300)
    for r in range(-20, 1000, 90):
        for c in range(0, 700, 150):
            rows, cols = slice(max(r, 0), min(r + 130, 1000)), slice(c, c + 100)
            np.testing.assert_array_equal(cache[..., rows, cols], values[:, rows, cols])
    assert sorted(computed) == sorted({(r, c) for r in range(0, 1000, 128) for c in (0, 256, 512)})


def test_the_stash_is_bounded_and_left_unused_when_chunks_fill_copies_of_it(
    reference: np.ndarray,
) -> None:
    """A dense grid is not stashed; chunks computed in worker processes fill copies of the
    stash, so the caller's is not complete and the reference is read window by window."""
    import dask.array as dsa
    from dask.distributed import Client, LocalCluster

    from change_detection.coregistration import _block_mean, _WindowStash

    assert _WindowStash.for_grid((16384, 16384), CoregParams()) is not None
    assert _WindowStash.for_grid((16384, 16384), CoregParams(spacing_px=32)) is None
    target = sample(reference, shift_push(-3.4, 2.2))
    eager = coregister(reference, target)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        stash = _WindowStash(reference.shape, CoregParams())
        _block_mean(dsa.from_array(reference, chunks=128), None, 4, stash=stash)
        assert not stash.complete
        lazy = coregister(dsa.from_array(reference, chunks=128), dsa.from_array(target, chunks=128))
    assert lazy.n_used == eager.n_used > 40
    np.testing.assert_array_equal(lazy.tiepoints["dx"], eager.tiepoints["dx"])


def test_band_cache_over_other_sliceables_reads_bands_not_the_raster() -> None:
    """Arrays with zarr-style chunks (a tuple of ints) or none are cut where the windows need,
    not at 'chunk edges' that would make a band the whole raster (or empty)."""
    from change_detection.coregistration import _BandCache

    values = np.arange(1000 * 300, dtype=np.float32).reshape(1000, 300)

    class Zarrish:
        shape, ndim, dtype = values.shape, 2, values.dtype

        def __init__(self, chunks: object) -> None:
            self.chunks = chunks

        def __getitem__(self, key: object) -> np.ndarray:
            return values[key]  # type: ignore[index]

    for chunks in ((64, 64), None):
        cache = _BandCache(Zarrish(chunks), band_px=200)
        np.testing.assert_array_equal(cache[500:530, 10:40], values[500:530, 10:40])
        assert cache._rows[1] - cache._rows[0] <= 200 + 25


def test_lazy_and_in_memory_inputs_give_the_same_tie_points(
    reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dask reference is decoded once (its windows kept by the coarse pass), an in-memory
    one read window by window: the tie-point tables are identical."""
    import dask.array as dsa

    from change_detection.coregistration import tiepoints

    reads = []
    read_window = tiepoints._read_window

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(1)
        return read_window(*args, **kwargs)

    monkeypatch.setattr(tiepoints, "_read_window", counted)
    target = sample(reference, shift_push(-3.4, 2.2))
    valid = np.ones(reference.shape, bool)
    valid[:40, :100] = False
    eager = coregister(reference, target, reference_valid=valid)
    eager_reads, reads[:] = len(reads), []
    lazy = coregister(
        dsa.from_array(reference, chunks=100),
        dsa.from_array(target, chunks=128),
        reference_valid=dsa.from_array(valid, chunks=100),
    )
    assert lazy.n_tiepoints == eager.n_tiepoints > 40
    assert eager_reads == 2 * len(reads) == 2 * lazy.n_tiepoints  # only the target is read
    for name in ("x", "y", "dx", "dy", "snr", "status"):
        np.testing.assert_array_equal(lazy.tiepoints[name], eager.tiepoints[name])
    assert (lazy.shift_x_px, lazy.shift_y_px) == (eager.shift_x_px, eager.shift_y_px)
