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
