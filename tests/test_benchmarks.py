"""Smoke run of every benchmark in quick mode (``pytest -m benchmark``; not in the default run).

The figures themselves are read from ``python benchmarks/run.py``; this only proves each
benchmark runs and reports every figure against a baseline measured in the same run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
MODULES = sorted(BENCH.glob("bench_*.py"))


@pytest.mark.benchmark
@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_benchmark_quick(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    results = module.run(quick=True)
    assert results, f"{path.name} reported nothing"
    for r in results:
        assert r.value == r.value, f"{r.name}: NaN"
    assert any(r.baseline is not None for r in results), f"{path.name}: no baseline figure"
