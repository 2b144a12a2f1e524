"""Known-answer tests of the per-pixel change core (change_detection.change)."""

from __future__ import annotations

import numpy as np
import pytest

from change_detection.change import (
    CODE_ARTEFACT,
    CODE_NEW,
    CODE_NODATA,
    CODE_NONE,
    CODE_RAISED,
    CODE_REMOVED,
    CODE_SHADOW,
    CODE_SPECTRAL,
    CODE_VEGETATION,
    block_minimum,
    block_sums,
    box_sum,
    classify_height_change,
    classify_spectral_change,
    excess_green,
    excess_red,
    green_leaf_index,
    ground_surface,
    local_means,
    pixel_scale,
    upsample,
    vegetation_mask,
)
from change_detection.params import DetectParams

P = DetectParams()
GSD = 0.1


def _rgb(value: tuple[int, int, int], shape: tuple[int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(value, np.uint8)[:, None, None], (3, *shape)).copy()


def test_rgb_indices_known_values() -> None:
    px = np.array([[[40]], [[120]], [[40]]], np.uint8)  # chromatic r=0.2, g=0.6, b=0.2
    assert excess_green(px)[0, 0] == pytest.approx(0.8)
    assert excess_red(px)[0, 0] == pytest.approx(1.4 * 0.2 - 0.6)
    assert green_leaf_index(px)[0, 0] == pytest.approx((240 - 80) / (240 + 80))
    black = np.zeros((3, 1, 1), np.uint8)
    assert excess_green(black)[0, 0] == 0.0 and green_leaf_index(black)[0, 0] == 0.0


def test_vegetation_mask_takes_leaves_but_not_teal_roofs_or_grey() -> None:
    leaves = _rgb((45, 80, 28), (20, 20))
    teal = _rgb((41, 158, 158), (20, 20))
    grey = _rgb((120, 122, 118), (20, 20))
    assert vegetation_mask(leaves, P).all()
    assert not vegetation_mask(teal, P).any()
    assert not vegetation_mask(grey, P).any()


def test_box_sum_matches_brute_force_with_replicated_edges() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (2, 13, 17))
    got = box_sum(x, 5)
    padded = np.pad(x, [(0, 0), (2, 2), (2, 2)], mode="edge")
    want = np.zeros_like(got)
    for dy in range(5):
        for dx in range(5):
            want += padded[:, dy : dy + 13, dx : dx + 17]
    np.testing.assert_array_equal(got, want)


def test_block_minimum_ignores_nan_and_pads_partial_cells() -> None:
    dsm = np.arange(36, dtype=np.float32).reshape(6, 6)
    dsm[0, 0] = np.nan
    dsm[4:, 4:] = np.nan
    out = block_minimum(dsm, 4)
    assert out.shape == (2, 2)
    assert out[0, 0] == np.sort(dsm[:4, :4].ravel())[15 // 4]  # lower quartile of 15 values
    assert np.isfinite(out).sum() == 3 and np.isnan(out[1, 1])
    assert np.isnan(block_minimum(np.full((4, 4), np.nan, np.float32), 4)).all()


def test_ground_surface_removes_structures_narrower_than_the_window() -> None:
    ground = np.full((40, 40), 10.0, np.float32)
    ground[10:16, 10:18] = 25.0  # a 6x8-cell building
    out = ground_surface(ground, 11)
    np.testing.assert_allclose(out, 10.0)


def test_local_means_of_a_uniform_brightening() -> None:
    before = _rgb((100, 100, 100), (16, 16))
    after = _rgb((150, 150, 150), (16, 16))
    sums = block_sums(before, after, np.ones((16, 16), bool), 4)
    assert sums.shape == (6, 4, 4)
    means = local_means(sums, 3)
    np.testing.assert_allclose(means[0:2], 0.0, atol=1e-6)  # no chromaticity change
    np.testing.assert_allclose(means[2], np.log(151 / 101), atol=1e-3)
    np.testing.assert_allclose(means[3], 100.0)
    np.testing.assert_allclose(means[4], 150.0)
    assert upsample(means, 4, (15, 13)).shape == (5, 15, 13)


def _height_scene() -> dict[str, np.ndarray]:
    n = 120
    rng = np.random.default_rng(3)
    before = (50 + rng.normal(0, 0.05, (n, n))).astype(np.float32)
    after = before.copy()
    after[20:50, 20:60] += 6.0  # new: 3 m x 4 m
    before[70:100, 20:60] += 4.0  # existing building ...
    after[70:100, 20:60] += 7.0  # ... raised by 3 m
    before[20:50, 80:110] += 5.0  # demolished
    after[60:62, 80:110] += 6.0  # a 20 cm sliver (misregistration at an edge): artefact
    rgb = _rgb((120, 118, 115), (n, n))
    return {"before": before, "after": after, "rgb": rgb}


def test_classify_height_change_codes_of_a_planted_scene() -> None:
    s = _height_scene()
    n = s["before"].shape[0]
    ground = np.full((n, n), 50.0, np.float32)
    layers = classify_height_change(
        s["rgb"],
        s["rgb"],
        np.ones((n, n), bool),
        s["before"],
        s["after"],
        ground,
        P,
        pixel_scale(P, GSD),
    )
    codes = layers.codes
    assert (codes[20:50, 20:60] == CODE_NEW).all()
    assert (codes[70:100, 20:60] == CODE_RAISED).all()
    assert (codes[20:50, 80:110] == CODE_REMOVED).all()
    assert (codes[60:62, 80:110] == CODE_ARTEFACT).all()
    outside = np.ones((n, n), bool)
    for rows, cols in (
        (slice(20, 50), slice(20, 60)),
        (slice(70, 100), slice(20, 60)),
        (slice(20, 50), slice(80, 110)),
        (slice(60, 62), slice(80, 110)),
    ):
        outside[rows, cols] = False
    assert (codes[outside] == CODE_NONE).all()
    assert layers.dh is not None
    np.testing.assert_allclose(np.nanmedian(layers.dh[25:45, 25:55]), 6.0, atol=0.02)
    assert layers.interior[35, 40] and not layers.interior[20, 40]


def test_vegetation_and_nodata_are_not_changes() -> None:
    s = _height_scene()
    n = s["before"].shape[0]
    after_rgb = s["rgb"].copy()
    after_rgb[:, 20:50, 20:60] = np.array([45, 80, 28], np.uint8)[
        :, None, None
    ]  # a tree grew there: green, and a rough canopy (0.5 m clumps, not a plane)
    after = s["after"].copy()
    clumps = np.random.default_rng(4).uniform(-0.5, 0.5, (6, 8)).repeat(5, 0).repeat(5, 1)
    after[20:50, 20:60] += clumps.astype(np.float32)
    after[70:100, 20:60] = np.nan  # a hole in the after DSM
    layers = classify_height_change(
        s["rgb"],
        after_rgb,
        np.ones((n, n), bool),
        s["before"],
        after,
        np.full((n, n), 50.0, np.float32),
        P,
        pixel_scale(P, GSD),
    )
    assert (layers.codes[20:50, 20:60] == CODE_VEGETATION).all()
    assert (layers.codes[70:100, 20:60] == CODE_NODATA).all()


def test_classify_is_exact_on_a_window_with_enough_halo() -> None:
    """What a chunk with a halo computes for its core equals the whole-array answer."""
    s = {k: np.tile(v, (1, 2, 2) if v.ndim == 3 else (2, 2)) for k, v in _height_scene().items()}
    n = s["before"].shape[0]
    scale = pixel_scale(P, GSD)
    args = (
        s["rgb"],
        s["rgb"],
        np.ones((n, n), bool),
        s["before"],
        s["after"],
        np.full((n, n), 50.0, np.float32),
    )
    whole = classify_height_change(*args, P, scale)
    h = scale.halo_px()
    r0, r1, c0, c1 = 90, 150, 90, 150
    win = (slice(r0 - h, r1 + h), slice(c0 - h, c1 + h))
    assert win[0].start > 0 and win[1].stop < n  # the window cuts the scene
    sub = [a[..., win[0], win[1]] for a in args]
    part = classify_height_change(*sub, P, scale)
    dr, dc = r0 - win[0].start, c0 - win[1].start
    np.testing.assert_array_equal(
        part.codes[dr : dr + r1 - r0, dc : dc + c1 - c0], whole.codes[r0:r1, c0:c1]
    )


def _local(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
    scale = pixel_scale(P, GSD)
    coarse = local_means(block_sums(before, after, valid, scale.cell), scale.norm_cells)
    return upsample(coarse, scale.cell, valid.shape)


def test_spectral_change_ignores_a_global_colour_change_and_finds_a_new_roof() -> None:
    n = 240
    rng = np.random.default_rng(5)
    grey = rng.integers(90, 140, (n, n)).astype(np.float32)  # textured grey ground
    base = grey + rng.integers(-3, 4, (3, n, n)).astype(np.float32)
    before = base.astype(np.uint8)
    after_f = base * np.array([1.1, 1.05, 0.92])[:, None, None] + 12  # colour/brightness change
    after_f[:, 50:90, 40:100] = np.array([200.0, 60.0, 40.0])[:, None, None]  # a red roof
    after_f[:, 150:190, 40:100] = np.array([235.0, 235.0, 230.0])[:, None, None]  # a white one
    after = np.clip(after_f, 0, 255).astype(np.uint8)
    valid = np.ones((n, n), bool)
    layers = classify_spectral_change(
        before, after, valid, _local(before, after, valid), P, pixel_scale(P, GSD)
    )
    for rows in (slice(50, 90), slice(150, 190)):
        assert (layers.codes[rows, 40:100] == CODE_SPECTRAL).mean() > 0.95
    background = layers.codes.copy()
    background[45:95, 35:105] = CODE_NONE
    background[145:195, 35:105] = CODE_NONE
    assert not (background == CODE_SPECTRAL).any()
    assert layers.dh is None


def test_shadows_that_move_are_suppressed_in_rgb_only_mode() -> None:
    n = 120
    rng = np.random.default_rng(6)
    grey = rng.integers(120, 140, (n, n))
    before = (grey + rng.integers(-2, 3, (3, n, n))).astype(np.uint8)
    after = before.copy()
    after[:, 30:60, 30:60] = (after[:, 30:60, 30:60] * 0.35).astype(np.uint8)  # a new shadow
    valid = np.ones((n, n), bool)
    layers = classify_spectral_change(
        before, after, valid, _local(before, after, valid), P, pixel_scale(P, GSD)
    )
    assert not (layers.codes == CODE_SPECTRAL).any()
    assert (layers.codes[35:55, 35:55] == CODE_SHADOW).mean() > 0.9


# --- the exact neighbourhood operations (issue 15: fused and flat, same answers) ---------------


def _clipped_window(x: np.ndarray, radius: int, reduce: np.ufunc) -> np.ndarray:
    """``reduce`` over the (2r+1)^2 square around each pixel, clipped at the array's edges
    (the definition; replicating the edges gives the same for min, max, and, or)."""
    rows, cols = x.shape[-2:]
    out = np.empty_like(x)
    for i in range(rows):
        for j in range(cols):
            win = x[..., max(0, i - radius) : i + radius + 1, max(0, j - radius) : j + radius + 1]
            out[..., i, j] = reduce.reduce(reduce.reduce(win, axis=-1), axis=-1)
    return out


@pytest.mark.parametrize("shape", [(1, 1), (4, 3), (7, 30), (23, 17), (2, 9, 12)])
@pytest.mark.parametrize("radius", [1, 3, 5])
def test_window_reduce_is_the_clipped_window_at_every_edge(
    shape: tuple[int, ...], radius: int
) -> None:
    from change_detection.change import _window_reduce

    rng = np.random.default_rng(radius)
    planes = rng.integers(0, 4, shape).astype(np.uint8)  # two bit planes
    heights = rng.normal(0.0, 1.0, shape).astype(np.float32)
    heights[rng.random(shape) < 0.3] = np.nan
    for x, op in (
        (planes, np.bitwise_and),
        (planes, np.bitwise_or),
        (heights, np.fmax),
        (heights, np.fmin),
    ):
        want = _clipped_window(x, radius, op)
        np.testing.assert_array_equal(_window_reduce(x, radius, op), want)
        scratch = x.copy()  # may be overwritten, and may be the answer
        np.testing.assert_array_equal(_window_reduce(scratch, radius, op, overwrite_x=True), want)
    assert _window_reduce(planes, 0, np.bitwise_and) is planes


def test_half_height_growth_on_a_ramp() -> None:
    """A 6 m plateau whose edge ramps down by 1 m a pixel: the growth stops at 3 m."""
    from change_detection.change import _grow_half_height

    ramp = np.array([6, 6, 6, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0], np.float32)
    dh = np.tile(ramp, (9, 1))
    core = dh >= 6
    allowed = np.ones(dh.shape, bool)
    grown = _grow_half_height(core, dh, 5, allowed)
    np.testing.assert_array_equal(grown, np.tile(ramp >= 3, (9, 1)) & ~core)
    # a loss, the same ramp below ground; a lower peak lowers the bar, a radius stops it
    lost = _grow_half_height(-dh <= -6, -dh, 5, allowed, loss=True)
    np.testing.assert_array_equal(lost, grown)
    low = np.where(core, np.float32(4.0), dh)  # a 4 m plateau: grow to 2 m
    np.testing.assert_array_equal(
        _grow_half_height(core, low, 5, allowed)[0], (ramp >= 2) & ~(ramp >= 6)
    )
    np.testing.assert_array_equal(
        _grow_half_height(core, dh, 2, allowed)[0, 4:7], [True, True, False]
    )
    # unknown changes neither grow nor count towards the peak; disallowed pixels stay out
    holes = dh.copy()
    holes[:, 5] = np.nan
    holes[0, 0] = np.nan  # a core pixel of unknown change
    got = _grow_half_height(core, holes, 5, allowed & (np.arange(15) != 6))
    np.testing.assert_array_equal(got[:, 4:8], np.tile([True, False, False, False], (9, 1)))
    assert not _grow_half_height(np.zeros_like(core), dh, 5, allowed).any()


def test_half_height_growth_is_the_same_in_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    """The growth runs in strips of rows with a halo; any strip height gives the definition."""
    import change_detection.change as change

    rng = np.random.default_rng(7)
    blocks = np.kron(rng.normal(0.0, 4.0, (13, 10)), np.ones((5, 5)))[:61, :47]  # 5 px plateaus
    dh = (blocks + rng.normal(0.0, 1.0, blocks.shape)).astype(np.float32)
    dh[rng.random(dh.shape) < 0.05] = np.nan
    core = change._open(dh >= 2.5, 1)
    allowed = rng.random(dh.shape) < 0.8
    with np.errstate(invalid="ignore"):
        peak = _clipped_window(np.where(core, dh, np.float32(np.nan)), 4, np.fmax)
        want = ~core & allowed & (dh >= 0.5 * peak)
    assert core.sum() > 200 and want.sum() > 50  # plateaus and their grown edges
    for rows in (5, 8, 64):
        monkeypatch.setattr(change, "_STRIP_ROWS", rows)
        np.testing.assert_array_equal(change._grow_half_height(core, dh, 4, allowed), want)


@pytest.mark.parametrize("reach", [2, 3])
def test_on_planar_surface_reach_in_pixels_not_whole_cells(reach: int) -> None:
    """Windows of 2 x 2 cells of 2 px on a flat changed square [8, 24): the roof is the
    square grown by ``reach`` pixels (3: one whole cell and one pixel)."""
    from change_detection.change import on_planar_surface

    dsm = np.full((40, 40), 10.0, np.float32)
    centres = np.zeros(dsm.shape, bool)
    centres[8:24, 8:24] = True
    where = np.ones(dsm.shape, bool)
    roof = on_planar_surface(dsm, where, centres, 2, 2, reach, 0.05)
    want = np.zeros(dsm.shape, bool)
    want[8 - reach : 24 + reach, 8 - reach : 24 + reach] = True
    np.testing.assert_array_equal(roof, want)
    # ... and on an array cut across a cell (odd size), the same where the array is
    np.testing.assert_array_equal(
        on_planar_surface(dsm[:25, :27], where[:25, :27], centres[:25, :27], 2, 2, reach, 0.05),
        want[:25, :27],
    )


def test_plane_residual_of_a_checkerboard_on_a_mountain() -> None:
    """±1 cm in a checkerboard on a plane 8848 m up: the residual sum is 256 cm² for every
    16 x 16 window (the pattern has no plane in it), whatever the height."""
    from change_detection.change import plane_fit_residual

    rows, cols = np.mgrid[0:40, 0:48]
    cm = 884800 + 3 * cols - 2 * rows + np.where((rows + cols) % 2, 1, -1)
    res = plane_fit_residual((cm / 100.0).astype(np.float64), 4, 4)
    np.testing.assert_allclose(res, np.sqrt(256 / 253) / 100.0, rtol=1e-12)


def test_upsample_repeats_cells_and_crops() -> None:
    coarse = np.array([[1, 2], [3, 4]], np.uint8)
    np.testing.assert_array_equal(
        upsample(coarse, 2, (3, 4)), [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4]]
    )
    assert upsample(np.stack([coarse, coarse]), 3, (5, 6)).shape == (2, 5, 6)


def test_plane_fit_residual_of_an_array_narrower_than_a_window_is_empty() -> None:
    from change_detection.change import on_planar_surface, plane_fit_residual

    strip = np.full((5, 40), 12.0, np.float32)  # 3 cells of 2 px high; windows are 4 cells
    assert plane_fit_residual(strip, 2, 4).shape == (0, 17)
    changed = np.ones(strip.shape, bool)
    assert not on_planar_surface(strip, changed, changed, 2, 4, 2, 0.1).any()
    # one window high: a single row of windows, all planar, covers it all
    one_row = np.ones((8, 40), bool)
    assert on_planar_surface(np.full((8, 40), 12.0), one_row, one_row, 2, 4, 2, 0.1).all()
