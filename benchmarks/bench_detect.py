"""Benchmark of ``sitewatch detect`` (run_detect) against the floor of merely reading the rasters.

Inputs: the synthetic site (seed 0, 80 m at 10 cm, both epochs with DSMs, rendered on one
frame) is tiled into square mosaics of N x N px, each tile one of the scene's eight flips and
quarter turns (:func:`_tile_orientations`: a plain repetition beats against the tie-point
grid), and written as tiled, DEFLATE-compressed GeoTIFFs (512 px tiles, like OpenDroneMap's),
orthophotos with an internal mask and DSMs with a nodata value. The orthophotos carry internal
overviews at 2, 4, 8 and 16 (average, JPEG), as OpenDroneMap builds them (see
:func:`_write_mosaic`), which the co-registration's coarse pass reads (``survey.overviews``).
The after mosaic is georeferenced ``AFTER_OFFSET_M`` off the before one (the GNSS error between
two flights: a global shift of a non-integer number of pixels, so the grids differ too); a
misregistration rendered into the 80 m tile would repeat in every tile, a saw-tooth no survey
has.

For every size three fresh subprocesses read all four rasters with rasterio, tile by tile on
as many threads as there are cores (the read: nothing can be faster than decoding the
inputs), run ``run_detect`` with ``coregister=False`` (everything but the co-registration),
and run the whole ``run_detect`` (read, co-register, classify, vectorize, write). Each
child's peak memory is its own: ``VmHWM`` of the exec'd child, read at its end
(:data:`_OWN_PEAK`; ``ru_maxrss`` would carry the parent's peak into every child).

At the headline size (8192 px) a fourth subprocess does only the work no implementation can
skip, each part once, streamed strip by strip: decode every tile of the four rasters once,
hash the files (provenance), resample the after epoch by its sub-pixel offset (the
co-registration must be applied), and write ``change.tif`` (the mandated-work floor). The
headline size runs the read, the floor and the detect in turn three times
(``SITEWATCH_BENCH_REPEATS``) and reports the medians: on a 2-core machine one run of the
8192 px detect moved between 13.4 and 16.8 s.

Reported, against the targets of issue #15: the whole detect within 5x the read and within
2.5x the floor at 8192 px; the time of each stage (``DetectResult.timings_s``) against the
read at 8192 px; seconds per megapixel along the series, and at the largest size within 1.2x
of that at 8192 px; peak memory at most 1.5 GB.

Sizes: 2048, 4096, 8192, 20480 px (``--quick``: 1024, 2048, 4096);
``SITEWATCH_BENCH_SIZES=2048,8192`` runs a partial series.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import Result  # noqa: E402

BENCH = "detect"
_BLOCK = 512
#: Georeferencing error of the after mosaic (east, north) in metres: 8.3 and -4.7 px at 10 cm.
AFTER_OFFSET_M = (0.83, -0.47)


def _tile_orientations(side: int, n: int) -> np.ndarray:
    """One of the eight flips and quarter turns (bits: 1 flip rows, 2 flip columns, 4
    transpose) for each n x n tile of a side x side mosaic, drawn from a fixed seed.

    A plain repetition of the scene has a period of n px, and at 20480 px the tie-point grid
    (25 x 25 windows) is 819 px apart: each tie window then saw nearly the content of its
    neighbour 19 px on, so their measurement errors agreed, and the co-registration fitted
    them as a smooth warp (up to 2.5 px) on a pure translation. Real sites do not repeat;
    turned tiles give neighbouring windows unrelated content, as on a real site.
    """
    k = -(-side // n)
    return np.random.default_rng(20480).integers(0, 8, size=(k, k))


def _tile_source(
    orient: np.ndarray, n: int, r0: int, r1: int, c0: int, c1: int
) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays into the n x n scene for mosaic rows r0:r1 and columns c0:c1."""
    rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    o = orient[rr // n, cc // n]
    u, v = rr % n, cc % n
    u, v = np.where(o & 4, v, u), np.where(o & 4, u, v)
    u = np.where(o & 1, n - 1 - u, u)
    v = np.where(o & 2, n - 1 - v, v)
    return u, v


def _write_mosaic(scene: Any, root: Path, side: int) -> dict[str, Path]:
    """Tile the rendered scene into side x side GeoTIFFs written block by block; the
    orthophotos get OpenDroneMap's overviews."""
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    root.mkdir(parents=True, exist_ok=True)
    t = scene.transform
    transform = Affine(t.a, t.b, t.c, t.d, t.e, t.f)
    n = scene.before_rgb.shape[1]
    assert scene.before_rgb.shape[2] == n, "quarter turns need a square scene"
    crs = f"EPSG:{scene.epsg}"
    common = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": _BLOCK,
        "blockysize": _BLOCK,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    paths: dict[str, Path] = {}
    orient = _tile_orientations(side, n)
    for epoch, rgb, dsm, valid, (de, dn) in (
        ("before", scene.before_rgb, scene.before_dsm, scene.before_valid, (0.0, 0.0)),
        ("after", scene.after_rgb, scene.after_dsm, scene.after_valid, AFTER_OFFSET_M),
    ):
        ortho = root / f"{epoch}_ortho.tif"
        dsm_path = root / f"{epoch}_dsm.tif"
        dsm_filled = np.where(np.isfinite(dsm), dsm, np.float32(-9999.0)).astype(np.float32)
        geo = {**common, "transform": Affine(t.a, t.b, t.c + de, t.d, t.e, t.f + dn)}
        with (
            rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
            rasterio.open(
                ortho, "w", count=3, dtype="uint8", photometric="RGB", predictor=2, **geo
            ) as o,
            rasterio.open(
                dsm_path, "w", count=1, dtype="float32", nodata=-9999.0, predictor=3, **geo
            ) as d,
        ):
            for r0 in range(0, side, _BLOCK):
                for c0 in range(0, side, _BLOCK):
                    ix = _tile_source(
                        orient, n, r0, min(r0 + _BLOCK, side), c0, min(c0 + _BLOCK, side)
                    )
                    win = Window(c0, r0, ix[1].shape[1], ix[0].shape[0])
                    o.write(np.stack([b[ix] for b in rgb]), window=win)
                    o.write_mask(np.where(valid[ix], 255, 0).astype(np.uint8), window=win)
                    d.write(dsm_filled[ix], 1, window=win)
        # OpenDroneMap's overviews (ODM's opendm/orthophoto.py::build_overviews, run with
        # --build-overviews unless --cog: "gdaladdo -r average --config COMPRESS_OVERVIEW JPEG
        # --config INTERLEAVE_OVERVIEW PIXEL --config PHOTOMETRIC_OVERVIEW YCBCR ... 2 4 8 16"),
        # internal, the orthophoto's only; both options are off by default in ODM, whose
        # plain orthophoto has none (then the coarse pass reads the full-resolution pixels).
        with (
            rasterio.Env(
                COMPRESS_OVERVIEW="JPEG",
                INTERLEAVE_OVERVIEW="PIXEL",
                PHOTOMETRIC_OVERVIEW="YCBCR",
                BIGTIFF_OVERVIEW="IF_SAFER",
            ),
            rasterio.open(ortho, "r+") as o,
        ):
            o.build_overviews([2, 4, 8, 16], Resampling.average)
        paths[f"{epoch}_ortho"] = ortho
        paths[f"{epoch}_dsm"] = dsm_path
    return paths


_CHILD = r"""
import json, os, sys, time
import dask.distributed  # imports outside the timings: every run and the read start warm
import survey.pipeline
from concurrent.futures import ThreadPoolExecutor
import rasterio
paths = json.loads(sys.argv[1]); out = sys.argv[2]; what = sys.argv[3]

def read_all(path):
    with rasterio.open(path) as ds:
        wins = [w for _, w in ds.block_windows(1)]
    def job(chunk):
        with rasterio.open(path) as ds:
            for w in chunk:
                ds.read(window=w)
                if ds.count == 3:
                    ds.read_masks(1, window=w)
    n = os.cpu_count() or 2
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(job, [wins[i::n] for i in range(n)]))

def mandated_floor():
    # The work no implementation can skip, in one streaming pass, each part once: every tile
    # row of the four rasters decoded once, the after epoch's rows resampled by its sub-pixel
    # offset (RGB, mask and DSM: the co-registration must be applied), a change class from a
    # single threshold of the DSM difference written to change.tif as run_detect writes it,
    # and the four files hashed beside it. No co-registration estimate, no change
    # classification beyond that threshold, no vectorizing. Each thread streams its own
    # contiguous share of the rows (so the tile row two strips share stays in its cache).
    import math
    import threading
    import numpy as np
    from rasterio.windows import Window
    from change_detection.coregistration import warp_arrays
    from survey.outputs import finish_change_tif, new_change_tif
    from survey.rasters import sha256_file
    n = os.cpu_count() or 2
    with rasterio.open(paths["before_ortho"]) as b, rasterio.open(paths["after_ortho"]) as a:
        H, W, crs, tb, ta = b.height, b.width, b.crs, b.transform, a.transform
        Ha, Wa = a.height, a.width
    with rasterio.open(paths["before_dsm"]) as bd, rasterio.open(paths["after_dsm"]) as ad:
        nodata_b, nodata_a = np.float32(bd.nodata), np.float32(ad.nodata)
    shift = ((tb.f - ta.f) / tb.e, (tb.c - ta.c) / tb.a)
    iy = math.floor(shift[0])
    change = os.path.join(out + "-floor", "change.tif")
    os.makedirs(os.path.dirname(change), exist_ok=True)
    new_change_tif(change, (H, W), tb, crs)
    hashing = ThreadPoolExecutor(1)
    hashed = hashing.submit(lambda: [sha256_file(p) for p in paths.values()])
    lock = threading.Lock()
    strips = list(range(0, H, 512))
    with rasterio.open(change, "r+") as dst:
        def run(part):
            with rasterio.open(paths["before_ortho"]) as bo, \
                    rasterio.open(paths["before_dsm"]) as bd, \
                    rasterio.open(paths["after_ortho"]) as ao, \
                    rasterio.open(paths["after_dsm"]) as ad:
                for r0 in part:
                    r1 = min(H, r0 + 512)
                    win = Window(0, r0, W, r1 - r0)
                    bo.read(window=win)
                    bo.read_masks(1, window=win)
                    zb = bd.read(1, window=win)
                    zb[zb == nodata_b] = np.nan
                    s0, s1 = max(0, r0 + iy), min(Ha, r1 + iy + 2)
                    awin = Window(0, s0, Wa, max(1, s1 - s0))
                    rgb = ao.read(window=awin)
                    valid = ao.read_masks(1, window=awin) > 0
                    za = ad.read(1, window=awin)
                    za[za == nodata_a] = np.nan
                    _, _, z = warp_arrays(
                        None, [rgb, valid, za], [1, 1, 1], [0, None, np.nan], (H, W),
                        window=(r0, 0, r1 - r0, W), translation=(shift[0] - s0, shift[1]),
                    )
                    with np.errstate(invalid="ignore"):
                        codes = (np.abs(z - zb) > 2.5).astype(np.uint8)
                    with lock:
                        dst.write(codes, 1, window=win)
        halves = [strips[k * len(strips) // n:(k + 1) * len(strips) // n] for k in range(n)]
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(run, halves))
    hashed.result()
    hashing.shutdown()
    finish_change_tif(change, "floor")

t0, c0 = time.perf_counter(), time.process_time()
n_leads, stages, model = None, None, None
if what == "read":
    for p in paths.values():
        read_all(p)
elif what == "floor":
    mandated_floor()
else:
    from change_detection.params import DetectParams
    from survey.pipeline import run_detect
    res = run_detect(paths["before_ortho"], paths["after_ortho"], out,
                     before_dsm=paths["before_dsm"], after_dsm=paths["after_dsm"],
                     params=DetectParams(coregister=what == "detect"))
    n_leads, stages = len(res.leads), res.timings_s
    model = res.coregistration.get("model")
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"s": seconds, "cpu_s": cpu, "n_leads": n_leads, "stages": stages,
                  "model": model, **own_peak()}))
"""

#: Appended to every child: its own peak memory, read at its end. ``VmHWM`` of
#: ``/proc/self/status`` is the high-water mark of this process's address space since its
#: exec; ``ru_maxrss`` of RUSAGE_SELF is not: Linux carries the parent's peak into it through
#: fork and exec, so after a parent that generated large scenes in-process every child would
#: report the parent's peak (kept as ``ru_maxrss_mb`` to show the difference).
_OWN_PEAK = r"""
def own_peak():
    import resource
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return {"rss_mb": int(line.split()[1]) / 1024, "ru_maxrss_mb": inherited}
    raise RuntimeError("no VmHWM in /proc/self/status: the peak memory needs Linux")
"""


def _child(paths: dict[str, Path], out: Path, what: str) -> dict[str, Any]:
    """Run one measurement (``read``, ``own``, ``detect`` or ``floor``) in a fresh
    interpreter, so that its peak memory is its own and not what an earlier run left in the
    allocator; ``rss_mb`` is the child's own peak (``VmHWM``, see :data:`_OWN_PEAK`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    # GDAL's block cache (5 % of RAM by default) would keep what the floor read decoded;
    # a single pass over each tile gains nothing from it (run_detect bounds it the same way).
    env["GDAL_CACHEMAX"] = "128"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _OWN_PEAK + _CHILD,
            json.dumps({k: str(v) for k, v in paths.items()}),
            str(out),
            what,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child ({what}) failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _measure(paths: dict[str, Path], out: Path, floor: bool, repeats: int) -> dict[str, Any]:
    """The read, the floor (with ``floor``) and the whole detect, in turn ``repeats`` times
    (read, floor, detect, read, floor, detect, ...), and ``--no-coregister`` once. Times are
    medians over the repeats; the stage split, leads and model are those of the detect run
    of median time; peaks are the largest of any repeat."""
    runs = []
    for _ in range(repeats):
        got = {"read": _child(paths, out, "read")}
        if floor:
            got["floor"] = _child(paths, out, "floor")
        got["detect"] = _child(paths, out, "detect")
        runs.append(got)
    own = _child(paths, Path(f"{out}-own"), "own")

    def median(what: str, key: str) -> float:
        return float(np.median([r[what][key] for r in runs]))

    by_time = sorted(runs, key=lambda r: float(r["detect"]["s"]))
    full = by_time[len(by_time) // 2]["detect"]
    return {
        "repeats": repeats,
        "detect_runs_s": [r["detect"]["s"] for r in runs],
        "floor_s": median("floor", "s") if floor else None,
        "floor_cpu_s": median("floor", "cpu_s") if floor else None,
        "read_s": median("read", "s"),
        "read_cpu_s": median("read", "cpu_s"),
        "detect_cpu_s": median("detect", "cpu_s"),
        "read_rss_mb": max(r["read"]["rss_mb"] for r in runs),
        "own_s": own["s"],
        "own_rss_mb": own["rss_mb"],
        "detect_s": median("detect", "s"),
        "peak_rss_mb": max(r["detect"]["rss_mb"] for r in runs),
        "peak_ru_maxrss_mb": max(r["detect"]["ru_maxrss_mb"] for r in runs),
        "n_leads": full["n_leads"],
        "stages": full["stages"],
        "model": full["model"],
    }


def run(quick: bool) -> list[Result]:
    from survey.synth import SynthParams
    from survey.synth.render import render_scene

    sizes = [1024, 2048, 4096] if quick else [2048, 4096, 8192, 20480]
    if os.environ.get("SITEWATCH_BENCH_SIZES"):  # e.g. "2048,8192" for a partial series
        sizes = [int(v) for v in os.environ["SITEWATCH_BENCH_SIZES"].split(",")]
    headline = 8192 if 8192 in sizes else sizes[-1]
    scene = render_scene(SynthParams(seed=0, size_m=80.0, gsd_cm=10.0, misregister=False))
    series: list[tuple[int, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        for side in sizes:
            t0 = time.perf_counter()
            paths = _write_mosaic(scene, Path(tmp) / f"in{side}", side)
            gen_s = time.perf_counter() - t0
            at_headline = side == headline
            m = _measure(
                paths,
                Path(tmp) / f"out{side}",
                floor=at_headline,
                repeats=_headline_repeats() if at_headline else 1,
            )
            m["gen_s"] = gen_s
            series.append((side, m))
            for p in paths.values():
                p.unlink()
            each = ", ".join(f"{v:.1f}" for v in m["detect_runs_s"])
            runs = f"; median of {m['repeats']}: {each} s" if m["repeats"] > 1 else ""
            print(
                f"   {side} px: read {m['read_s']:.1f} s ({m['read_cpu_s']:.1f} s CPU, "
                f"{m['read_rss_mb']:.0f} MB), "
                f"detect {m['detect_s']:.1f} s ({m['detect_cpu_s']:.1f} s CPU{runs}), "
                f"peak {m['peak_rss_mb']:.0f} MB (ru_maxrss {m['peak_ru_maxrss_mb']:.0f} MB), "
                f"{m['n_leads']} leads, co-registration model {m['model']}, "
                f"stages {m['stages']}; "
                f"--no-coregister {m['own_s']:.1f} s, {m['own_rss_mb']:.0f} MB",
                flush=True,
            )
    return _results(series, headline)


def _headline_repeats() -> int:
    """Repeats at the headline size: ``SITEWATCH_BENCH_REPEATS``, else 3 (the 8192 px detect
    moved between 13.4 and 16.8 s from one run to the next on a 2-core machine)."""
    return max(1, int(os.environ.get("SITEWATCH_BENCH_REPEATS", "3")))


#: Targets of issue #15.
READ_TARGET = 5.0
FLOOR_TARGET = 2.5
SCALING_TARGET = 1.2
PEAK_TARGET_MB = 1536.0


def _results(series: list[tuple[int, dict[str, Any]]], headline: int) -> list[Result]:
    """The figures of a series of sizes, each as a ratio to a baseline of the same run."""
    base_side, base = series[0]
    rates = {side: m["detect_s"] / (side * side / 1e6) for side, m in series}
    results: list[Result] = []
    for side, m in series:
        read = {"baseline": m["read_s"], "baseline_name": "rasterio read of the 4 rasters"}
        at_headline = side == headline
        if m["floor_s"] is not None:
            results.append(
                Result(
                    bench=BENCH,
                    name=f"mandated work alone at {side} px",
                    value=m["floor_s"],
                    unit="s",
                    note="decode once, hash, resample the after epoch, write change.tif",
                    **read,
                )
            )
            results.append(
                Result(
                    bench=BENCH,
                    name=f"detect {side}x{side} against the mandated-work floor",
                    value=m["detect_s"],
                    unit="s",
                    baseline=m["floor_s"],
                    baseline_name="mandated work alone",
                    target=f"<= {FLOOR_TARGET:g}x floor",
                    ok=m["detect_s"] <= FLOOR_TARGET * m["floor_s"],
                )
            )
        results.append(
            Result(
                bench=BENCH,
                name=f"detect {side}x{side} (2 epochs + DSMs)",
                value=m["detect_s"],
                unit="s",
                target=f"<= {READ_TARGET:g}x read" if at_headline else "",
                ok=(m["detect_s"] <= READ_TARGET * m["read_s"]) if at_headline else None,
                **read,
            )
        )
        if at_headline:
            results.append(
                Result(
                    bench=BENCH,
                    name=f"CPU time of detect at {side} px",
                    value=m["detect_cpu_s"],
                    unit="s",
                    baseline=m["read_cpu_s"],
                    baseline_name="CPU time of the read",
                    note=f"all threads; {os.cpu_count()} cores bound how far the wall time falls",
                )
            )
            results += [
                Result(
                    bench=BENCH,
                    name=f"stage {stage} at {side} px",
                    value=seconds,
                    unit="s",
                    note="run_detect's timings_s",
                    **read,
                )
                for stage, seconds in (m["stages"] or {}).items()
            ]
        results.append(
            Result(
                bench=BENCH,
                name=f"detect {side}x{side} with --no-coregister",
                value=m["own_s"],
                unit="s",
                note="read, classify, vectorize, write; no co-registration",
                **read,
            )
        )
        results.append(
            Result(
                bench=BENCH,
                name=f"time per Mpx at {side} px",
                value=rates[side],
                unit="s/Mpx",
                baseline=rates[base_side],
                baseline_name=f"s/Mpx at {base_side} px",
                target="flat (linear time)",
            )
        )
        for what, key in (("detect", "peak_rss_mb"), ("--no-coregister", "own_rss_mb")):
            results.append(
                Result(
                    bench=BENCH,
                    name=f"peak memory of {what} at {side} px",
                    value=m[key],
                    unit="MB",
                    baseline=base[key],
                    baseline_name=f"at {base_side} px",
                    target=f"<= {PEAK_TARGET_MB:g} MB",
                    ok=m[key] <= PEAK_TARGET_MB,
                    note="VmHWM of the child",
                )
            )
    largest = series[-1][0]
    if headline in rates and largest > headline:
        results.append(
            Result(
                bench=BENCH,
                name=f"time per Mpx at {largest} px against {headline} px",
                value=rates[largest],
                unit="s/Mpx",
                baseline=rates[headline],
                baseline_name=f"s/Mpx at {headline} px",
                target=f"<= {SCALING_TARGET:g}x",
                ok=rates[largest] <= SCALING_TARGET * rates[headline],
            )
        )
    return results
