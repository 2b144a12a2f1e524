"""``benchmarks/bench_detect.py`` reports each child's own peak memory, not its parent's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from affine import Affine

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench_detect(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("_bench_detect_memory", BENCH / "bench_detect.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _tiny_scene(n: int = 64) -> SimpleNamespace:
    rgb = np.full((3, n, n), 120, np.uint8)
    dsm = np.full((n, n), 5.0, np.float32)
    valid = np.ones((n, n), bool)
    return SimpleNamespace(
        transform=Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 4000000.0),
        epsg=32650,
        before_rgb=rgb,
        after_rgb=rgb,
        before_dsm=dsm,
        after_dsm=dsm,
        before_valid=valid,
        after_valid=valid,
    )


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc")
def test_a_small_child_reports_a_small_peak_after_a_large_parent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bench = _bench_detect(monkeypatch)
    paths = bench._write_mosaic(_tiny_scene(), tmp_path / "in", 512)
    ballast = np.ones(1000 * 2**20 // 8)  # 1000 MB, every page touched
    try:
        child = bench._child(paths, tmp_path / "out", "read")
    finally:
        del ballast
    # the trap the figure avoids: Linux hands the parent's peak to the child's ru_maxrss
    assert child["ru_maxrss_mb"] > 1000
    # the child's own peak (VmHWM since its exec): an interpreter with the pipeline's imports
    # (numpy, rasterio, xarray, dask.distributed: about 260 MB) reading 4 tiny rasters
    assert child["rss_mb"] < 400


def test_mosaic_tiles_are_turned_copies_of_the_scene_the_same_in_both_epochs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import rasterio

    bench = _bench_detect(monkeypatch)
    n = 64
    scene = _tiny_scene(n)
    # a scene with no symmetry, so each of the eight turns is told apart
    rng = np.random.default_rng(3)
    scene.before_rgb = rng.integers(0, 255, (3, n, n), dtype=np.uint8)
    scene.after_rgb = scene.before_rgb[:, ::-1, :].copy()
    paths = bench._write_mosaic(scene, tmp_path / "in", 4 * n)
    turns = {
        0: lambda a: a,
        1: lambda a: a[::-1, :],
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a.T,
        5: lambda a: a.T[::-1, :],
        6: lambda a: a.T[:, ::-1],
        7: lambda a: a.T[::-1, ::-1],
    }
    seen = {}
    for epoch, source in (("before", scene.before_rgb[0]), ("after", scene.after_rgb[0])):
        with rasterio.open(paths[f"{epoch}_ortho"]) as src:
            band = src.read(1)
        for i in range(4):
            for j in range(4):
                tile = band[i * n : (i + 1) * n, j * n : (j + 1) * n]
                found = [k for k, turn in turns.items() if np.array_equal(tile, turn(source))]
                assert len(found) == 1, (epoch, i, j)
                seen.setdefault((i, j), []).append(found[0])
    # both epochs turn each tile alike (the mosaic differs between them only by the scene)
    assert all(a == b for a, b in seen.values())
    # and the tiles are not one repetition: a period would beat against the tie-point grid
    assert len({a for a, _ in seen.values()}) >= 4
