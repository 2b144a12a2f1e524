"""Co-registration speed, memory and accuracy against scikit-image's whole-image baseline.

Figures (each against a baseline measured in the same run):

- ``global 4096`` — the global translation estimate (``coregister(model="translation")``)
  on a 4096 x 4096 overlap, time and error, against
  ``skimage.registration.phase_cross_correlation(reference, target, upsample_factor=100)``
  on the whole image; target < 1 s.
- ``local 16k`` — the full estimate (``model="auto"``: tie points, affine / warp) on a
  16384 x 16384 pair read window by window from raw files on disk, time, peak RSS of the
  process that ran it (a fresh child process, so setup does not count) and the RMS error of the
  mapping against the planted one, against the time and RSS of merely reading both rasters
  once; target < 30 s with bounded memory.

Scenes are procedural (value-noise ground texture, buildings with roofs and shadows, roads),
rendered window by window so even the 16k pair is generated with bounded memory; the target
is the scene seen through a planted affine map plus a smooth warp, and a different
brightness/contrast. ``quick`` uses 2048 and 4096 px.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Result, peak_rss_mb

from change_detection.coregistration import CoregParams, CoregResult, coregister

BENCH = "coregistration"


# ------------------------------------------------------------------------------------------
# Procedural scene, rendered by windows
# ------------------------------------------------------------------------------------------


def _hash(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    h = (i.astype(np.uint64) * np.uint64(73856093)) ^ (j.astype(np.uint64) * np.uint64(19349663))
    h ^= np.uint64(seed * 83492791 + 1)
    h = (h ^ (h >> np.uint64(13))) * np.uint64(0x5BD1E995)
    h ^= h >> np.uint64(15)
    return (h & np.uint64(0xFFFFFF)).astype(np.float32) / np.float32(0xFFFFFF)


def _value_noise(rows: np.ndarray, cols: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1) at float pixel coordinates (any shape), lattice ``cell`` px."""
    fr, fc = rows / cell, cols / cell
    i0, j0 = np.floor(fr), np.floor(fc)
    tr, tc = fr - i0, fc - j0
    tr = tr * tr * (3 - 2 * tr)
    tc = tc * tc * (3 - 2 * tc)
    i0 = i0.astype(np.int64) + 1_000_000
    j0 = j0.astype(np.int64) + 1_000_000
    a = _hash(i0, j0, seed)
    b = _hash(i0, j0 + 1, seed)
    c = _hash(i0 + 1, j0, seed)
    d = _hash(i0 + 1, j0 + 1, seed)
    return ((a * (1 - tc) + b * tc) * (1 - tr) + (c * (1 - tc) + d * tc) * tr).astype(np.float32)


class _Scene:
    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        nb = n * n // 2500
        self.n, self.seed = n, seed
        self.b = np.column_stack(
            [
                rng.uniform(-40, n, nb),
                rng.uniform(-40, n, nb),
                rng.uniform(10, 48, nb),
                rng.uniform(10, 48, nb),
                rng.uniform(130, 230, nb),
            ]
        ).astype(np.float32)

    def window(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Grey image of rows r0:r1, cols c0:c1 (float32)."""
        rows = np.arange(r0, r1, dtype=np.float32)[:, None]
        cols = np.arange(c0, c1, dtype=np.float32)[None, :]
        rr, cc = np.broadcast_arrays(rows, cols)
        img = 60 + 60 * _value_noise(rr, cc, 96.0, self.seed)
        img += 30 * _value_noise(rr, cc, 13.0, self.seed + 1)
        img += 12 * _value_noise(rr, cc, 3.0, self.seed + 2)
        b = self.b
        sel = (b[:, 0] < r1 + 8) & (b[:, 0] + b[:, 2] > r0 - 8)
        sel &= (b[:, 1] < c1 + 8) & (b[:, 1] + b[:, 3] > c0 - 8)
        for y, x, h, w, grey in b[sel]:
            ys0, xs0 = int(y) + 5 - r0, int(x) + 5 - c0  # shadow, then roof
            ys1, xs1 = int(y + h) + 5 - r0, int(x + w) + 5 - c0
            img[max(ys0, 0) : max(ys1, 0), max(xs0, 0) : max(xs1, 0)] *= 0.5
            ys0, xs0, ys1, xs1 = ys0 - 5, xs0 - 5, ys1 - 5, xs1 - 5
            img[max(ys0, 0) : max(ys1, 0), max(xs0, 0) : max(xs1, 0)] = grey
        return ndimage.gaussian_filter(img, 0.8)


class _Truth:
    """Planted push map (target pixel -> reference pixel): affine about the centre + warp."""

    def __init__(
        self, n: int, shift: tuple[float, float], rot_deg: float, scale: float, warp_px: float
    ) -> None:
        self.n, self.shift, self.warp = n, shift, warp_px
        a = math.radians(rot_deg)
        self.m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * scale
        self.c = (n - 1) / 2.0

    def push(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = cols - self.c, rows - self.c
        px = self.m[0, 0] * x + self.m[0, 1] * y + self.c + self.shift[0]
        py = self.m[1, 0] * x + self.m[1, 1] * y + self.c + self.shift[1]
        if self.warp:
            k = 2 * math.pi / (0.8 * self.n)
            px = px + self.warp * np.sin(k * rows)
            py = py + self.warp * np.cos(k * cols)
        return py, px


def _write_pair(d: Path, n: int, truth: _Truth, seed: int) -> tuple[Path, Path]:
    scene = _Scene(n, seed)
    ref_p, tgt_p = d / f"ref{n}.u8", d / f"tgt{n}.u8"
    strip = 512
    with open(ref_p, "wb") as fr, open(tgt_p, "wb") as ft:
        for r0 in range(0, n, strip):
            r1 = min(n, r0 + strip)
            fr.write(np.clip(scene.window(r0, r1, 0, n), 0, 255).astype(np.uint8).tobytes())
            rows = np.arange(r0, r1, dtype=np.float64)[:, None]
            cols = np.arange(0, n, dtype=np.float64)[None, :]
            rr, cc = np.broadcast_arrays(rows, cols)
            py, px = truth.push(rr, cc)
            y0, y1 = int(np.floor(py.min())) - 3, int(np.ceil(py.max())) + 4
            x0, x1 = int(np.floor(px.min())) - 3, int(np.ceil(px.max())) + 4
            src = scene.window(y0, y1, x0, x1)
            out = ndimage.map_coordinates(src, [py - y0, px - x0], order=1, mode="nearest")
            ft.write(np.clip(out * 0.8 + 35, 0, 255).astype(np.uint8).tobytes())
    return ref_p, tgt_p


class RawRaster:
    """A (rows, cols) uint8 raster in a raw file, read window by window with pread."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n = path, n
        self.shape = (n, n)
        self.ndim = 2
        self.dtype = np.dtype(np.uint8)
        self._fd = os.open(path, os.O_RDONLY)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = tuple(k for k in key if k is not Ellipsis)
        rs = key[0] if key else slice(None)
        cs = key[1] if len(key) > 1 else slice(None)
        r0, r1, _ = rs.indices(self.n)
        c0, c1, _ = cs.indices(self.n)
        if r1 <= r0 or c1 <= c0:
            return np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), np.uint8)
        buf = os.pread(self._fd, (r1 - r0) * self.n, r0 * self.n)
        rows = np.frombuffer(buf, np.uint8).reshape(r1 - r0, self.n)
        return rows[:, c0:c1].copy()


def _mapping_error(result: CoregResult, truth: _Truth, n: int) -> float:
    rows, cols = np.mgrid[64 : n - 64 : max(16, n // 64), 64 : n - 64 : max(16, n // 64)]
    qr, qc = result.source_coordinates(rows.astype(float), cols.astype(float))
    pr, pc = truth.push(qr, qc)
    return float(np.sqrt(np.mean((pr - rows) ** 2 + (pc - cols) ** 2)))


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------


def _global(n: int, d: Path) -> list[Result]:
    from skimage.registration import phase_cross_correlation

    truth = _Truth(n, (-7.3, 12.6), 0.0, 1.0, 0.0)
    ref_p, tgt_p = _write_pair(d, n, truth, seed=1)
    ref = np.fromfile(ref_p, np.uint8).reshape(n, n)
    tgt = np.fromfile(tgt_p, np.uint8).reshape(n, n)
    params = CoregParams(model="translation", max_tiepoints=64)
    coregister(ref[:512, :512], tgt[:512, :512], params=params)  # warm-up (imports, FFT plans)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = coregister(ref, tgt, params=params)
        times.append(time.perf_counter() - t0)
    ours_t = float(np.median(times))
    ours_err = math.hypot(res.shift_x_px - 7.3 * -1, res.shift_y_px - 12.6)
    reff, tgtf = ref.astype(np.float64), tgt.astype(np.float64)
    t0 = time.perf_counter()
    sk, _, _ = phase_cross_correlation(reff, tgtf, upsample_factor=100)
    sk_t = time.perf_counter() - t0
    sk_err = math.hypot(float(sk[1]) + 7.3, float(sk[0]) - 12.6)
    label = f"{n}x{n}"
    return [
        Result(BENCH, f"global shift {label}: time", ours_t, "s", sk_t,
               "skimage phase_cross_correlation(upsample 100), whole image", "< 1 s",
               ours_t < 1.0, f"ours {res.n_used} tie points"),
        Result(BENCH, f"global shift {label}: error", ours_err, "px", sk_err,
               "skimage phase_cross_correlation(upsample 100), whole image", "< 0.05 px",
               ours_err < 0.05, "planted (-7.3, 12.6) px, brightness/contrast changed"),
    ]  # fmt: skip


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process since its exec (VmHWM; ru_maxrss survives exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def _local_child(n: int, d: str) -> dict[str, Any]:
    truth = _Truth(n, (5.4, -3.7), 0.3, 1.003, 1.0)
    ref = RawRaster(Path(d) / f"ref{n}.u8", n)
    tgt = RawRaster(Path(d) / f"tgt{n}.u8", n)
    t0 = time.perf_counter()
    res = coregister(ref, tgt, params=CoregParams(model="auto"))
    elapsed = time.perf_counter() - t0
    return {
        "time": elapsed,
        "rss": _vm_hwm_mb(),
        "err": _mapping_error(res, truth, n),
        "model": res.model,
        "n_used": res.n_used,
        "n": res.n_tiepoints,
        "conf": res.confidence,
    }


def _read_child(n: int, d: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    total = 0
    for name in (f"ref{n}.u8", f"tgt{n}.u8"):
        r = RawRaster(Path(d) / name, n)
        for r0 in range(0, n, 512):
            total += int(r[r0 : r0 + 512, :].sum(dtype=np.uint64) & 1)
    return {"time": time.perf_counter() - t0, "rss": _vm_hwm_mb()}


def _in_child(mode: str, n: int, d: Path) -> dict[str, Any]:
    """Run a measurement in a fresh interpreter so its peak RSS is its own."""
    proc = subprocess.run(
        [sys.executable, __file__, mode, str(n), str(d)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _local(n: int, d: Path) -> list[Result]:
    truth = _Truth(n, (5.4, -3.7), 0.3, 1.003, 1.0)
    t0 = time.perf_counter()
    _write_pair(d, n, truth, seed=2)
    setup = time.perf_counter() - t0
    read = _in_child("--child-read", n, d)
    ours = _in_child("--child-local", n, d)
    label = f"{n}x{n}"
    raster_mb = 2 * n * n / 2**20
    return [
        Result(BENCH, f"local model {label}: time", ours["time"], "s", read["time"],
               "read both rasters once (pread by strips)", "< 30 s", ours["time"] < 30.0,
               f"model {ours['model']}, {ours['n_used']}/{ours['n']} tie points, confidence "
               f"{ours['conf']:.2f}; scene generation {setup:.0f} s not counted"),
        Result(BENCH, f"local model {label}: peak RSS", ours["rss"], "MB", read["rss"],
               "peak RSS of the plain read", "flat (<< rasters)",
               ours["rss"] < 0.5 * raster_mb + 400,
               f"both rasters are {raster_mb:.0f} MB; fresh process each"),
        Result(BENCH, f"local model {label}: mapping error", ours["err"], "px", None, "",
               "< 0.2 px", ours["err"] < 0.2,
               "planted shift (5.4, -3.7) px, 0.3 deg, scale 1.003, 1 px warp; RMS over grid"),
    ]  # fmt: skip


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-coreg-") as tmp:
        d = Path(tmp)
        results += _global(2048 if quick else 4096, d)
        for f in d.iterdir():
            f.unlink()
        results += _local(4096 if quick else 16384, d)
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("--child-local", "--child-read"):
        fn = _local_child if sys.argv[1] == "--child-local" else _read_child
        print(json.dumps(fn(int(sys.argv[2]), sys.argv[3])))
    else:
        from _common import format_table

        print(format_table(run(quick="--quick" in sys.argv)))
