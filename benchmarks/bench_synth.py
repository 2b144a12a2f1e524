"""Synthetic survey site: generation time against the floor of writing its rasters.

Figures (each against a baseline measured in the same run):

* wall time of ``generate_site`` for the default 160 m site at 5 cm (3200 x 3200 px, both
  epochs, all vectors) against the time to merely write the same four rasters (RGB + mask and
  float32 DSM per epoch, same creation options) with rasterio — the floor no generator can
  beat; target under 10 s on the 2-core development machine, i.e. a ratio of a few;
* the same for rendering alone (``render_scene``, no I/O) against that floor;
* peak resident memory of the process after generating, against the bytes of the eight
  arrays the generator must hold at the end (two RGB, two DSM, two masks);
* ``--quick``: an 80 m site at 5 cm instead.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Result, median_time, peak_rss_mb

from survey.rasters import write_geotiff
from survey.synth import SynthParams, generate_site, render_scene


def _write_floor(scene_arrays: tuple[np.ndarray, ...], transform: object, out: Path) -> None:
    rgb_b, dsm_b, valid_b, rgb_a, dsm_a, valid_a = scene_arrays
    for name, rgb, dsm, valid in (("b", rgb_b, dsm_b, valid_b), ("a", rgb_a, dsm_a, valid_a)):
        write_geotiff(out / f"{name}_ortho.tif", rgb, transform=transform, crs=32650, mask=valid)  # type: ignore[arg-type]
        write_geotiff(out / f"{name}_dsm.tif", dsm, transform=transform, crs=32650, nodata=-9999.0)  # type: ignore[arg-type]


def run(quick: bool) -> list[Result]:
    size = 80.0 if quick else 160.0
    params = SynthParams(seed=0, size_m=size, gsd_cm=5.0)
    label = f"{size:g} m at 5 cm ({params.side_px} px)"
    repeat = 1 if quick else 3
    scene = render_scene(params)
    arrays = (
        scene.before_rgb,
        np.nan_to_num(scene.before_dsm, nan=-9999.0),
        scene.before_valid,
        scene.after_rgb,
        np.nan_to_num(scene.after_dsm, nan=-9999.0),
        scene.after_valid,
    )
    transform = scene.transform
    del scene
    with tempfile.TemporaryDirectory() as tmp:
        floor = median_time(lambda: _write_floor(arrays, transform, Path(tmp)), repeat)
        c0 = time.process_time()
        _write_floor(arrays, transform, Path(tmp))
        floor_cpu = time.process_time() - c0
    with tempfile.TemporaryDirectory() as tmp:
        gen = median_time(lambda: generate_site(Path(tmp), params), repeat)
    render = median_time(lambda: render_scene(params), repeat)
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        generate_site(Path(tmp), params)
    last, cpu = time.perf_counter() - t0, time.process_time() - c0
    held_mb = sum(a.nbytes for a in arrays) / 2**20
    return [
        Result(
            "synth",
            f"generate_site {label}",
            gen,
            "s",
            floor,
            "write 4 rasters (floor)",
            target="< 10 s" if not quick else "-",
            ok=(gen < 10.0) if not quick else None,
            note=f"last single run {last:.2f} s",
        ),
        Result(
            "synth",
            f"generate_site CPU time {label}",
            cpu,
            "s",
            floor_cpu,
            "write 4 rasters CPU (floor)",
            note="process CPU time: robust when other jobs share the cores",
        ),
        Result("synth", f"render_scene {label}", render, "s", floor, "write 4 rasters (floor)"),
        Result(
            "synth",
            f"peak RSS after {label}",
            peak_rss_mb(),
            "MiB",
            held_mb,
            "bytes of the output arrays",
        ),
    ]
