"""Shared benchmark helpers: timing by median of repeats, peak memory, the result table."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Result", "format_table", "median_time", "peak_rss_mb", "traced_peak_mb"]


@dataclass(frozen=True)
class Result:
    """One benchmark figure.

    ``value`` is what was measured (seconds, MB, ...), ``baseline`` the same quantity for the
    baseline measured in the same run, ``ratio`` = value / baseline (lower is better unless the
    note says otherwise), ``target`` a human-readable goal and ``ok`` whether it was met.
    """

    bench: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def median_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Median wall time of ``repeat`` calls of ``fn`` in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def traced_peak_mb(fn: Callable[[], Any]) -> float:
    """Peak Python-heap allocation (numpy included) during ``fn`` in MiB."""
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def format_table(results: list[Result]) -> str:
    rows = [("name", "value", "baseline", "ratio", "target", "ok")]
    for r in results:
        rows.append(
            (
                r.name,
                f"{r.value:.4g} {r.unit}",
                f"{r.baseline:.4g} ({r.baseline_name})" if r.baseline is not None else "-",
                f"{r.ratio:.3g}" if r.ratio is not None else "-",
                r.target or "-",
                {True: "yes", False: "NO", None: "-"}[r.ok],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows
    )
