"""Run every benchmark and print its figures as ratios against a baseline of the same run.

Usage::

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py coreg      # only modules whose name contains "coreg"
    python benchmarks/run.py --quick    # smaller sizes, for a smoke run

Each ``benchmarks/bench_*.py`` module defines ``run(quick: bool) -> list[Result]`` (see
:class:`benchmarks._common.Result`). Results are also written to
``benchmark-out/results.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import Result, format_table  # noqa: E402


def _load(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("select", nargs="*", help="substrings of benchmark module names")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    ap.add_argument("--out", type=Path, default=Path("benchmark-out"))
    args = ap.parse_args(argv)
    modules = sorted(HERE.glob("bench_*.py"))
    if args.select:
        modules = [m for m in modules if any(s in m.stem for s in args.select)]
    all_results: list[Result] = []
    for path in modules:
        print(f"== {path.stem}", flush=True)
        t0 = time.perf_counter()
        results = _load(path).run(quick=args.quick)
        print(format_table(results))
        print(f"   ({time.perf_counter() - t0:.1f} s)\n", flush=True)
        all_results.extend(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps([r.as_dict() for r in all_results], indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
