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
