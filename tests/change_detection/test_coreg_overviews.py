"""The coarse pass from block means handed in (``coregister(..., coarse=CoarseImages)``).

Known answers on textured scenes with a planted shift: block means handed in that equal what
the coarse pass computes give the identical result; a target whose coarse grid starts a few
pixels off the reference's (a snap that is not a multiple of the factor) is corrected
exactly; decimated samples (what a nearest overview holds) land the coarse shift within the
tie-point search range and the same sub-pixel answer; unusable images (another scene, no
valid block) are set aside with a warning and the result is the one without them; lazy
(dask) inputs stash the reference's windows from their chunks and give the numpy answer.
"""

from __future__ import annotations

import dataclasses

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from scipy import ndimage

from change_detection.coregistration import CoregParams, CoregResult, coregister
from change_detection.coregistration.caches import (
    _block_mean,
    _read_window,
    _stash_windows,
    _WindowStash,
)
from change_detection.coregistration.coarse import COARSE_IMAGES_UNUSED, CoarseImages
from change_detection.errors import GridMismatchError
from change_detection.grids import align_epoch, snapped_offset

SIDE = 768
FACTOR = 4
#: f = ceil(768 / 192) = 4; a sparser tie grid keeps each estimate under a second
PARAMS = CoregParams(coarse_px=192, max_tiepoints=144)
#: the planted misregistration (shift convention, px)
SHIFT = (-7.3, 12.6)


def texture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Grey float64 0..255: fine texture over structure a few tens of pixels across."""
    rng = np.random.default_rng(seed)
    fine = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    coarse = ndimage.gaussian_filter(rng.normal(size=shape), 10.0)
    g = fine / fine.std() + 1.5 * coarse / coarse.std()
    return 128 + 30 * g


def shifted(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` moved so that ``coregister(image, result)`` measures ``shift`` (x, y)."""
    return ndimage.shift(image, (-shift[1], -shift[0]), order=3, mode="nearest")


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    reference = texture((SIDE, SIDE), seed=1)
    return reference, shifted(reference, SHIFT)


@pytest.fixture(scope="module")
def plain(pair: tuple[np.ndarray, np.ndarray]) -> CoregResult:
    """The estimate without handed-in images (the full-resolution coarse pass)."""
    return coregister(*pair, params=PARAMS)


def block_images(
    reference: np.ndarray, target: np.ndarray, target_rows_from: int = 0
) -> CoarseImages:
    """What the coarse pass computes, handed in; the target's blocks optionally starting
    ``target_rows_from`` rows down (its coarse grid's corner at y = that)."""
    gr, vr = _block_mean(reference, None, FACTOR)
    moved = target[target_rows_from:]
    gt, vt = _block_mean(moved, None, FACTOR)
    pad = ((0, gr.shape[0] - gt.shape[0]), (0, 0))
    return CoarseImages(
        FACTOR,
        gr,
        vr,
        np.pad(gt, pad),
        np.pad(vt, pad),
        target_origin_px=(0.0, float(target_rows_from)),
        source="test block means",
    )


def assert_same_estimate(a: CoregResult, b: CoregResult) -> None:
    """The same model, parameters and tie points (bit for bit); warnings may differ."""
    assert (a.model, a.shift_x_px, a.shift_y_px) == (b.model, b.shift_x_px, b.shift_y_px)
    assert (a.n_used, a.confidence) == (b.n_used, b.confidence)
    np.testing.assert_array_equal(a.rmse_px, b.rmse_px)  # NaN for a failure
    assert a.parameters.keys() == b.parameters.keys()
    for key, value in a.parameters.items():
        np.testing.assert_array_equal(value, b.parameters[key])
    assert a.tiepoints.dtype == b.tiepoints.dtype
    for name in a.tiepoints.dtype.names or ():
        # field by field: the residuals of unused points are NaN
        np.testing.assert_array_equal(a.tiepoints[name], b.tiepoints[name])


def test_block_means_handed_in_give_the_identical_result(
    pair: tuple[np.ndarray, np.ndarray], plain: CoregResult
) -> None:
    got = coregister(*pair, params=PARAMS, coarse=block_images(*pair))
    assert_same_estimate(got, plain)
    assert got.coarse_shift_px == plain.coarse_shift_px
    assert got.warnings == plain.warnings
    assert abs(plain.shift_x_px - SHIFT[0]) < 0.02 and abs(plain.shift_y_px - SHIFT[1]) < 0.02


def test_a_target_grid_off_the_coarse_blocks_is_corrected_exactly(
    pair: tuple[np.ndarray, np.ndarray], plain: CoregResult
) -> None:
    # The target's blocks start 3 rows down (snapped by an offset that is not a multiple of
    # 4): its content sits 3 px higher in its coarse image, which the origin takes back.
    images = block_images(*pair, target_rows_from=3)
    got = coregister(*pair, params=PARAMS, coarse=images)
    dx = got.coarse_shift_px[0] - plain.coarse_shift_px[0]
    dy = got.coarse_shift_px[1] - plain.coarse_shift_px[1]
    assert abs(dx) <= 0.5 and abs(dy) <= 0.5  # the coarse pass's own step is 0.4 px here
    assert np.round(got.coarse_shift_px).tolist() == np.round(plain.coarse_shift_px).tolist()
    assert_same_estimate(got, plain)
    # without the origin the coarse shift is 3 px off (and the tie windows cut elsewhere)
    unplaced = dataclasses.replace(images, target_origin_px=(0.0, 0.0))
    off = coregister(*pair, params=PARAMS, coarse=unplaced)
    assert off.coarse_shift_px[1] - got.coarse_shift_px[1] == pytest.approx(3.0)


@pytest.mark.parametrize("offset", [(0, 0), (1, 2), (3, 3)])
def test_decimated_samples_land_within_the_search_range_and_give_the_same_shift(
    pair: tuple[np.ndarray, np.ndarray], plain: CoregResult, offset: tuple[int, int]
) -> None:
    """One pixel of each 4 x 4 block (a nearest overview), at any offset in the block."""
    reference, target = pair
    oy, ox = offset
    rows, cols = SIDE // FACTOR, SIDE // FACTOR
    ones = np.ones((rows, cols), np.float32)
    images = CoarseImages(
        FACTOR,
        reference[oy::FACTOR, ox::FACTOR].astype(np.float32),
        ones,
        target[oy::FACTOR, ox::FACTOR].astype(np.float32),
        ones,
        # a sample stands for its block: both grids are off by the same amount
        reference_origin_px=(ox - 1.5, oy - 1.5),
        target_origin_px=(ox - 1.5, oy - 1.5),
    )
    got = coregister(reference, target, params=PARAMS, coarse=images)
    # within a pixel of the block means' coarse shift, far inside the search range (32 px)
    assert abs(got.coarse_shift_px[0] - plain.coarse_shift_px[0]) < 1.0
    assert abs(got.coarse_shift_px[1] - plain.coarse_shift_px[1]) < 1.0
    # the tie points, cut one whole pixel elsewhere, give the same sub-pixel answer
    assert abs(got.shift_x_px - plain.shift_x_px) < 0.01
    assert abs(got.shift_y_px - plain.shift_y_px) < 0.01
    assert abs(got.shift_x_px - SHIFT[0]) < 0.02 and abs(got.shift_y_px - SHIFT[1]) < 0.02


def test_images_of_another_scene_are_set_aside_with_a_warning(
    pair: tuple[np.ndarray, np.ndarray], plain: CoregResult
) -> None:
    reference, target = pair
    other = block_images(reference, texture((SIDE, SIDE), seed=9))
    got = coregister(reference, target, params=PARAMS, coarse=other)
    assert_same_estimate(got, plain)
    unused = [w for w in got.warnings if w.startswith(COARSE_IMAGES_UNUSED)]
    assert len(unused) == 1 and "peak is" in unused[0]
    assert [w for w in got.warnings if w not in unused] == list(plain.warnings)


def test_images_without_a_valid_block_are_set_aside_with_a_warning(
    pair: tuple[np.ndarray, np.ndarray], plain: CoregResult
) -> None:
    images = block_images(*pair)
    masked = dataclasses.replace(images, target_valid=np.zeros_like(images.target_valid))
    got = coregister(*pair, params=PARAMS, coarse=masked)
    assert_same_estimate(got, plain)
    (unused,) = [w for w in got.warnings if w.startswith(COARSE_IMAGES_UNUSED)]
    assert "no valid pixels" in unused and "test block means" in unused


def test_images_of_another_grid_are_refused_in_one_line(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    images = block_images(*pair)
    with pytest.raises(GridMismatchError, match="one shape"):
        dataclasses.replace(images, target_grey=images.target_grey[:-1])
    small = CoarseImages(FACTOR, *(np.ones((20, 20), np.float32) for _ in range(4)))
    with pytest.raises(GridMismatchError, match="do not cover the 768 x 768 px"):
        coregister(*pair, params=PARAMS, coarse=small)


def test_lazy_inputs_stash_the_reference_windows_and_give_the_numpy_answer(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    reference, target = pair
    images = block_images(reference, target, target_rows_from=3)
    eager = coregister(reference, target, params=PARAMS, coarse=images)
    lazy = coregister(
        dsa.from_array(reference, chunks=200),
        dsa.from_array(target, chunks=200),
        reference_valid=dsa.ones((SIDE, SIDE), bool, chunks=200),
        params=PARAMS,
        coarse=images,
    )
    assert_same_estimate(lazy, eager)


def test_the_stash_holds_the_windows_the_tie_points_read() -> None:
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 255, (3, 300, 250), dtype=np.uint8)
    valid = rng.random((300, 250)) > 0.1
    params = CoregParams(window_px=64, max_tiepoints=16)
    stash = _WindowStash((300, 250), params)
    _stash_windows(dsa.from_array(rgb, chunks=(3, 70, 90)), dsa.from_array(valid, 70), stash)
    assert stash.complete
    k = 0
    for top in stash.tops:
        for left in stash.lefts:
            grey, ok = _read_window(rgb, valid, int(top), int(left), stash.m, stash.m)
            np.testing.assert_array_equal(stash.grey[k], grey)
            np.testing.assert_array_equal(stash.ok[k], ok)
            k += 1


def _on_grid(data: np.ndarray, transform: Affine) -> xr.DataArray:
    rows, cols = data.shape
    da = xr.DataArray(
        data,
        dims=("y", "x"),
        coords={
            "y": transform.f + transform.e * (np.arange(rows) + 0.5),
            "x": transform.c + transform.a * (np.arange(cols) + 0.5),
        },
    )
    return da.rio.write_crs("EPSG:32650").rio.write_transform(transform)


def test_align_epoch_reports_the_coarse_images_it_used(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    reference, target = pair
    t = Affine(0.1, 0, 500000, 0, -0.1, 4100000)
    ref = _on_grid(reference.astype(np.float32), t)
    tgt = _on_grid(target.astype(np.float32), t)
    valid = _on_grid(np.ones((SIDE, SIDE), bool), t)
    assert snapped_offset(tgt, ref) == (0, 0)
    used = align_epoch(ref, tgt, valid, params=PARAMS, coarse=block_images(reference, target))
    without = align_epoch(ref, tgt, valid, params=PARAMS)
    assert used.report()["coarse_pass"] == "test block means"
    assert "coarse_pass" not in without.report()
    masked = dataclasses.replace(
        block_images(reference, target), reference_valid=np.zeros((192, 192), np.float32)
    )
    set_aside = align_epoch(ref, tgt, valid, params=PARAMS, coarse=masked)
    assert "coarse_pass" not in set_aside.report()
    assert any(w.startswith(COARSE_IMAGES_UNUSED) for w in set_aside.report()["warnings"])


def test_snapped_offset_is_where_align_epoch_puts_the_target() -> None:
    t = Affine(0.1, 0, 500000, 0, -0.1, 4100000)
    ref = _on_grid(np.zeros((40, 50), np.float32), t)
    # the target's grid starts 13.3 px east and 4.6 px south of the reference's
    moved = Affine(0.1, 0, 500000 + 1.33, 0, -0.1, 4100000 - 0.46)
    tgt = _on_grid(np.zeros((40, 50), np.float32), moved)
    assert snapped_offset(tgt, ref) == (-5, -13)
    coarser = Affine(0.2, 0, 500000, 0, -0.2, 4100000)
    assert snapped_offset(_on_grid(np.zeros((20, 25), np.float32), coarser), ref) is None
