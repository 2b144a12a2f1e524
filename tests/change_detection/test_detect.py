"""detect_changes on planted scenes: exact leads, chunked == whole-array, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from change_detection.change import CODE_NEW, CODE_SPECTRAL, pixel_scale
from change_detection.detect import ChangeResult, Epoch, detect_changes
from change_detection.errors import ChangeDetectionError, GridMismatchError
from change_detection.params import DetectParams

T = Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 4000000.0)
CRS = 32650


def _da(data: np.ndarray, transform: Affine = T) -> xr.DataArray:
    dims = ("band", "y", "x") if data.ndim == 3 else ("y", "x")
    return xr.DataArray(data, dims=dims).rio.write_crs(CRS).rio.write_transform(transform)


def _scene(n: int = 600, seed: int = 0) -> tuple[Epoch, Epoch]:
    rng = np.random.default_rng(seed)
    grey = rng.integers(100, 130, (n, n))
    rgb = (grey + rng.integers(-2, 3, (3, n, n))).astype(np.uint8)
    ground = (50 + np.linspace(0, 2, n)[None, :] + rng.normal(0, 0.05, (n, n))).astype(np.float32)
    before = ground.copy()
    after = ground.copy()
    rgb_a = rgb.copy()
    after[100:180, 200:330] += 6.0  # new 8 m x 13 m, straddles chunk borders at 128/256
    rgb_a[:, 100:180, 200:330] = np.array([200, 70, 50], np.uint8)[:, None, None]
    before[300:400, 300:450] += 4.0  # existing building raised by 3 m
    after[300:400, 300:450] += 7.0
    before[450:550, 50:120] += 5.0  # demolished
    after[20:60, 500:540] += 1.5  # a car-sized low change: not a structure
    after[500:520, 400:415] += 5.0  # 1.5 m x 2 m: under the minimum area
    valid = np.ones((n, n), bool)
    b = Epoch(_da(rgb), _da(valid), _da(before))
    a = Epoch(_da(rgb_a), _da(valid), _da(after))
    return b, a


def test_a_painted_box_gives_exactly_that_object() -> None:
    n = 300
    rgb = np.full((3, n, n), 120, np.uint8)
    dsm = np.full((n, n), 10.0, np.float32)
    after = dsm.copy()
    after[100:160, 80:180] += 6.0  # 6 m x 10 m, 6 m tall
    res = detect_changes(
        Epoch(_da(rgb), _da(np.ones((n, n), bool)), _da(dsm)),
        Epoch(_da(rgb), _da(np.ones((n, n), bool)), _da(after)),
    )
    (obj,) = res.objects
    assert obj.kind == "new"
    assert obj.area_m2 == pytest.approx(60.0)
    assert obj.height_gain_m == pytest.approx(6.0)
    assert obj.floors_added == 2
    assert obj.geometry.bounds == pytest.approx((500008.0, 3999984.0, 500018.0, 3999990.0))
    assert res.mode == "dsm" and res.codes is not None
    assert int((res.codes.values == CODE_NEW).sum()) == 6000


def test_planted_scene_kinds_areas_and_heights() -> None:
    b, a = _scene()
    res = detect_changes(b, a)
    got = sorted((o.kind, round(o.area_m2, 1), o.height_gain_m) for o in res.objects)
    assert got == [("new", 104.0, 6.0), ("raised", 150.0, 3.0), ("removed", 70.0, -5.0)]


def _assert_same_result(whole: ChangeResult, parts: ChangeResult) -> None:
    """The same objects (outline, kind, area, heights) and the same class raster."""
    for x, y in zip(whole.objects, parts.objects, strict=True):
        assert x.geometry.equals_exact(y.geometry, 0.0)
        assert (x.kind, x.area_m2, x.height_gain_m, x.height_m) == (
            y.kind,
            y.area_m2,
            y.height_gain_m,
            y.height_m,
        )
    assert whole.codes is not None and parts.codes is not None
    np.testing.assert_array_equal(whole.codes.values, parts.codes.values)


@pytest.mark.parametrize(("chunk", "group"), [(128, 8192), (192, 8192), (128, 128), (128, 256)])
def test_chunked_and_whole_array_runs_give_the_same_objects(chunk: int, group: int) -> None:
    """Chunked, and chunked in groups of one or two chunks a side computed one after the
    other (objects that straddle groups come out once), equal the whole-array run."""
    b, a = _scene()
    whole = detect_changes(b, a, DetectParams(chunk_px=4096))
    parts = detect_changes(b, a, DetectParams(chunk_px=chunk, group_px=group), scheduler="threads")
    assert whole.n_chunks == 1 and parts.n_chunks > 4
    assert len(whole.objects) == len(parts.objects) == 3
    _assert_same_result(whole, parts)


@pytest.mark.parametrize(("chunk", "window_m"), [(128, 8.0), (512, 40.0)])
def test_blocks_wider_than_the_ground_reach_take_their_ground_from_neighbours(
    chunk: int, window_m: float
) -> None:
    params = DetectParams(ground_window_m=window_m)
    scale = pixel_scale(params, 0.1)
    # the per-block ground path is the one taken at these sizes
    assert chunk // scale.cell >= scale.ground_halo_cells() + scale.halo_px() // scale.cell
    b, a = _scene()
    whole = detect_changes(b, a, replace(params, chunk_px=4096))
    parts = detect_changes(b, a, replace(params, chunk_px=chunk), scheduler="threads")
    assert whole.n_chunks == 1 and parts.n_chunks >= 4
    assert len(whole.objects) == len(parts.objects) == 3
    _assert_same_result(whole, parts)


def test_dask_backed_inputs_and_a_sink_stream_the_classes() -> None:
    b, a = _scene(seed=1)
    lazy = [Epoch(e.rgb.chunk(200), e.valid.chunk(200), e.dsm.chunk(200)) for e in (b, a)]  # type: ignore[union-attr]
    sink = np.zeros((600, 600), np.uint8)
    res = detect_changes(
        lazy[0], lazy[1], DetectParams(chunk_px=256, group_px=256), codes_sink=sink
    )
    assert res.codes is None and len(res.objects) == 3
    ref = detect_changes(b, a)
    assert ref.codes is not None
    np.testing.assert_array_equal(sink, ref.codes.values)


def test_rgb_only_mode_finds_the_new_roof() -> None:
    b, a = _scene()
    res = detect_changes(Epoch(b.rgb, b.valid), Epoch(a.rgb, a.valid))
    assert res.mode == "rgb_only"
    (obj,) = res.objects
    assert obj.height_gain_m is None and obj.kind == "new"
    assert obj.area_m2 == pytest.approx(104.0, rel=0.05)
    assert res.codes is not None and (res.codes.values == CODE_SPECTRAL).sum() > 9000


def test_unchanged_epochs_give_nothing() -> None:
    b, _ = _scene()
    assert detect_changes(b, b).objects == ()


def test_grids_must_match() -> None:
    b, a = _scene(n=200)
    shifted = Affine(0.1, 0.0, 500001.0, 0.0, -0.1, 4000000.0)
    moved = Epoch(
        _da(a.rgb.values, shifted), _da(a.valid.values, shifted), _da(a.dsm.values, shifted)
    )  # type: ignore[union-attr]
    with pytest.raises(GridMismatchError, match="align_epoch"):
        detect_changes(b, moved)
    with pytest.raises(ChangeDetectionError, match="only one epoch has a DSM"):
        detect_changes(b, Epoch(a.rgb, a.valid))


def test_rgb_only_in_groups_equals_the_whole_array() -> None:
    b, a = _scene()
    rb, ra = Epoch(b.rgb, b.valid), Epoch(a.rgb, a.valid)
    whole = detect_changes(rb, ra, DetectParams(chunk_px=4096))
    parts = detect_changes(rb, ra, DetectParams(chunk_px=128, group_px=256), scheduler="threads")
    assert parts.n_chunks > 4 and len(whole.objects) == len(parts.objects) >= 1
    _assert_same_result(whole, parts)


def test_group_px_must_be_positive_and_may_be_below_the_chunk() -> None:
    assert DetectParams(chunk_px=17000).group_px == 8192  # a group of one chunk
    with pytest.raises(ChangeDetectionError, match="group_px = 0; use a positive"):
        DetectParams(group_px=0)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc arenas")
def test_malloc_arenas_are_capped_unless_the_user_set_malloc_arena_max() -> None:
    code = "from change_detection.detect import limit_malloc_arenas as f; print(f(2))"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = [sys.executable, "-c", code]
    capped = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert capped.stdout.strip() == "True"
    kept = subprocess.run(
        run, env={**env, "MALLOC_ARENA_MAX": "4"}, capture_output=True, text=True, check=True
    )
    assert kept.stdout.strip() == "False"
