"""The lazy warp (one dask task per output chunk, written as one graph layer) against the
eager warp and against the earlier implementation (a ``dask.delayed`` per chunk): bit for bit,
for translation, affine and warp-field models, on odd sizes and chunks, with band axes."""

from __future__ import annotations

import functools
import time
from typing import Any

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from change_detection.coregistration import CoregResult
from change_detection.coregistration.result import _Mapping
from change_detection.warped import _lazy_grid, _source_window, _warp_block, _warp_lazy


def _result(mapping: _Mapping, shape: tuple[int, int]) -> CoregResult:
    return CoregResult(
        shift_x_px=0.0,
        shift_y_px=0.0,
        model=mapping.kind,
        parameters={},
        rmse_px=0.0,
        n_tiepoints=0,
        n_used=0,
        confidence=1.0,
        warnings=(),
        tiepoints=np.zeros(0),
        shape=shape,
        mapping=mapping,
    )


def _translation(shape: tuple[int, int]) -> CoregResult:
    return _result(_Mapping("translation", np.array([[1.0, 0.0, 7.37], [0.0, 1.0, -4.61]])), shape)


def _affine(shape: tuple[int, int]) -> CoregResult:
    matrix = np.array([[0.9987, 0.0213, 5.4], [-0.0198, 1.0021, 3.1]])
    return _result(_Mapping("affine", matrix), shape)


def _field(shape: tuple[int, int]) -> CoregResult:
    gy, gx = np.linspace(0, shape[0] - 1, 4), np.linspace(0, shape[1] - 1, 5)
    field = np.random.default_rng(1).normal(scale=1.5, size=(2, 4, 5))
    matrix = np.array([[1.0, 0.0, -2.2], [0.0, 1.0, 1.7]])
    return _result(_Mapping("warp", matrix, gx, gy, field), shape)


def _old_warp_lazy(
    result: CoregResult, arr: Any, order: int, ych: tuple[int, ...], xch: tuple[int, ...]
) -> Any:
    """The implementation before issue #15: a ``dask.delayed`` over a slice of the source per
    output chunk (kept here as the reference the new graph must reproduce)."""
    import dask

    from change_detection.coregistration import _warp_kind

    warp_block = dask.delayed(functools.partial(_warp_block, result), pure=True)
    src_shape = (arr.shape[-2], arr.shape[-1])

    def block(window: tuple[int, int, int, int], key: tuple[Any, ...]) -> Any:
        y0, y1, x0, x1 = _source_window(result, window, order, src_shape)
        return warp_block(arr[..., y0:y1, x0:x1], (y0, x0), window, order, dask_key_name=key)

    dtype = _warp_kind(arr, order, None).dtype
    return _lazy_grid(ych, xch, tuple(arr.shape[:-2]), dtype, "old-warp", block)


def _source(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == "bool":
        return rng.random(shape) > 0.3
    if dtype == "uint8":
        return rng.integers(0, 256, shape).astype(np.uint8)
    values = rng.normal(100.0, 20.0, shape).astype(dtype)
    values[..., 5:9, 11:40] = np.nan  # a hole in the DSM
    return values


MODELS = {"translation": _translation, "affine": _affine, "warp": _field}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize(
    ("dtype", "lead", "order"),
    [
        ("float32", (), 1),
        ("float32", (), 3),
        ("uint8", (3,), 1),
        ("bool", (), 1),
        ("float64", (2,), 0),
    ],
)
def test_lazy_warp_equals_eager_and_old(
    model: str, dtype: str, lead: tuple[int, ...], order: int
) -> None:
    """Source 203 x 251 in 64 x 90 chunks (bands in chunks of 2) warped onto 197 x 245 in
    100 x 77 output chunks: the same bits as the old graph, and (nearest and bilinear) as
    the eager warp."""
    out_shape = (197, 245)
    result = MODELS[model](out_shape)
    values = _source((*lead, 203, 251), dtype)
    arr = dsa.from_array(values, chunks=(*(2 for _ in lead), 64, 90))
    like = xr.DataArray(dsa.zeros(out_shape, chunks=(100, 77)), dims=("y", "x"))
    lazy = _warp_lazy(result, arr, order, like, 1024)
    assert lazy.chunks[-2:] == ((100, 97), (77, 77, 77, 14))
    assert lazy.chunks[:-2] == tuple((n,) for n in lead)
    got = lazy.compute()
    eager = result.warp(values, order=order, block_px=64)
    old = _old_warp_lazy(result, arr, order, (100, 97), (77, 77, 77, 14)).compute()
    assert got.dtype == eager.dtype == old.dtype
    assert got.shape == (*lead, *out_shape)
    np.testing.assert_array_equal(got, old)
    if order <= 1:
        np.testing.assert_array_equal(got, eager)
    else:
        # a cubic spline's prefilter runs over the chunk's source window (halo 4 px), not the
        # whole raster: close to the eager warp, not equal to it (the old graph did the same)
        both = np.isfinite(got) & np.isfinite(eager)
        assert both.mean() > 0.8
        np.testing.assert_allclose(got[both], eager[both], atol=1.0)
    # not trivially equal: the warp moved the pixels (and some fall outside the source)
    assert not np.array_equal(got, values[..., : out_shape[0], : out_shape[1]])


def test_lazy_warp_of_an_unchunked_like_uses_block_px() -> None:
    """Without chunks on ``like`` the output is cut in ``block_px`` squares (the last ones
    shorter), one source chunk feeding a window whole, and still equals the eager warp."""
    result = _translation((130, 70))
    values = _source((140, 90), "float32")
    arr = dsa.from_array(values, chunks=-1)
    like = xr.DataArray(np.zeros((130, 70)), dims=("y", "x"))
    lazy = _warp_lazy(result, arr, 1, like, 50)
    assert lazy.chunks == ((50, 50, 30), (50, 20))
    np.testing.assert_array_equal(lazy.compute(), result.warp(values, order=1))


def test_graph_building_is_linear_in_blocks() -> None:
    """A 2048 x 2048 source in 32 px chunks (4,096 of them) warped onto 64 px output chunks:
    each output task depends on the few source chunks under its window only, and building
    the graph takes well under a second (the delayed graph walked every source key per
    block: quadratic)."""
    side = 2048
    result = _affine((side, side))
    arr = dsa.zeros((side, side), chunks=32, dtype=np.float32)
    like = xr.DataArray(dsa.zeros((side, side), chunks=64), dims=("y", "x"))
    t0 = time.perf_counter()
    lazy = _warp_lazy(result, arr, 1, like, 1024)
    built = time.perf_counter() - t0
    layer = lazy.dask.layers[lazy.name]
    assert len(layer) == 32 * 32
    deps = lazy.dask.dependencies[lazy.name]
    assert deps == {arr.name}
    most = max(len(_keys_in(task)) for task in layer.values())
    assert most <= 16  # a 64 px window with its halo spans at most 4 x 4 chunks of 32 px
    assert built < 1.0, f"graph building took {built:.2f} s"


def _keys_in(task: Any) -> list[Any]:
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, tuple) and node and isinstance(node[0], str):
            found.append(node)

    for arg in task[1:] if isinstance(task, tuple) else ():
        walk(arg)
    return found
