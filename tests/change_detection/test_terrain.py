"""derive_dtm: the ground under planted structures on hilly terrain, lazy == eager, edges."""

from __future__ import annotations

import itertools
import logging
import math
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio import features
from shapely import affinity
from shapely.geometry import Polygon, box

from change_detection.change import block_minimum
from change_detection.errors import ChangeDetectionError
from change_detection.params import DetectParams
from change_detection.terrain import (
    cell_quartiles,
    derive_dtm,
    derive_dtm_lazy,
    model_ground,
    opening_radii,
)

GSD = 0.1
N = 1200  # 120 m at 10 cm
T = Affine(GSD, 0.0, 500000.0, 0.0, -GSD, 4001200 * GSD)
NODATA = -9999.0


def _terrain(n: int = N, gsd: float = GSD) -> np.ndarray:
    """A 3 % slope, a 4 m hill and a 1.2 m swell of 90 m wavelength (curvature ~0.006 /m)."""
    rows, cols = np.mgrid[0:n, 0:n] * gsd
    hill = 4.0 * np.exp(-((cols - 70.0) ** 2 + (rows - 50.0) ** 2) / (2 * 25.0**2))
    swell = 1.2 * np.sin(2 * np.pi * (cols + 0.5 * rows) / 90.0)
    return (60.0 + 0.03 * cols + hill + swell).astype(np.float64)


def _mask(geom: Polygon, n: int = N) -> np.ndarray:
    return features.geometry_mask([geom], out_shape=(n, n), transform=T, invert=True)


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """DSM, true terrain, building footprints and the pixels to leave out (trees, collar)."""
    rng = np.random.default_rng(seed)
    terrain = _terrain()
    dsm = terrain.copy()
    x0, y1 = T.c, T.f
    buildings = [
        (box(x0 + 10, y1 - 30, x0 + 22, y1 - 22), 6.0),  # 12 x 8 m
        (box(x0 + 40, y1 - 45, x0 + 70, y1 - 27), 7.0),  # 30 x 18 m, on the hill
        (affinity.rotate(box(x0 + 80, y1 - 100, x0 + 94, y1 - 90), 25), 9.0),
        (Polygon([(x0 + 15, y1 - 100), (x0 + 33, y1 - 100), (x0 + 33, y1 - 92),
                  (x0 + 23, y1 - 92), (x0 + 23, y1 - 80), (x0 + 15, y1 - 80)]), 7.5),
        (box(x0 + 95, y1 - 30, x0 + 110, y1 - 12), 12.0),
    ]  # fmt: skip
    build = np.zeros((N, N), bool)
    for geom, height in buildings:
        m = _mask(geom)
        base = terrain[m].mean()  # a level platform, as builders make
        dsm[m] = base + height
        build |= m
    # a gable roof: 10 x 8 m, eaves 5 m, ridge 2.5 m higher
    gm = _mask(box(x0 + 60, y1 - 80, x0 + 70, y1 - 72))
    rows, _ = np.nonzero(gm)
    v = np.abs(rows - rows.mean()) * GSD / 4.0
    dsm[gm] = terrain[gm].mean() + 5.0 + 2.5 * (1.0 - v)
    build |= gm
    # trees (domes 5-9 m) and cars (1.5 m)
    leave_out = np.zeros((N, N), bool)
    rr, cc = np.mgrid[0:N, 0:N] * GSD
    for cx, cy, r, h in ((35, 60, 3.0, 7.0), (50, 90, 2.5, 5.0), (100, 60, 3.5, 9.0)):
        d = np.hypot(cc - cx, rr - cy)
        crown = d < r
        dsm[crown] = np.maximum(dsm[crown], terrain[crown] + h * np.sqrt(1 - (d[crown] / r) ** 2))
        leave_out |= d < r + 0.5
    for cx, cy in ((30, 10), (36, 10), (75, 110)):
        car = _mask(box(x0 + cx, y1 - cy - 1.8, x0 + cx + 4.5, y1 - cy))
        dsm[car] = terrain[car] + 1.5
    dsm += rng.normal(0.0, 0.06, dsm.shape)
    dsm[:25] = np.nan  # a nodata collar of 2.5 m
    leave_out[:28] = True
    return dsm.astype(np.float32), terrain, build, leave_out


def _write(path: Path, dsm: np.ndarray) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=dsm.shape[1], height=dsm.shape[0], count=1,
        dtype="float32", crs="EPSG:32650", transform=T, nodata=NODATA, tiled=True,
    ) as dst:  # fmt: skip
        dst.write(np.where(np.isfinite(dsm), dsm, NODATA).astype(np.float32), 1)
    return path


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, masked=True).filled(np.nan).astype(np.float32)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, ...]:
    dsm, terrain, build, leave_out = _planted()
    path = _write(tmp_path_factory.mktemp("terrain") / "dsm.tif", dsm)
    return _read(path), terrain, build, leave_out


def test_ground_under_planted_buildings_on_hilly_terrain(planted: tuple[np.ndarray, ...]) -> None:
    dsm, terrain, build, leave_out = planted
    before = dsm.copy()
    dtm = derive_dtm(dsm, GSD)
    np.testing.assert_array_equal(dsm, before)  # the input is not modified
    assert dtm.dtype == np.float32 and dtm.shape == dsm.shape
    err = dtm.astype(np.float64) - terrain
    standing = (np.abs(dsm - terrain) > 0.3) | leave_out
    open_ground = np.isfinite(dsm) & ~standing & ~build
    # DSM noise of 6 cm: the ground is known to a centimetre or two in the open ...
    assert np.percentile(np.abs(err[open_ground]), 95) < 0.05
    # ... and under the buildings (filled from around them; the hill's curvature costs a bit)
    under = build & np.isfinite(dsm)
    assert math.sqrt(np.mean(err[under] ** 2)) < 0.12
    # structures: the buildings, and neither the cars nor the hill
    flagged = ((dsm - dtm) >= 2.5) & ~leave_out
    inter = np.sum(flagged & build)
    union = np.sum((flagged | build) & ~leave_out)
    assert inter / union > 0.97
    assert np.sum(flagged & ~build) * GSD**2 < 3.0  # m², the ragged roof edges at most


def test_the_single_opening_cuts_the_hilltop(planted: tuple[np.ndarray, ...]) -> None:
    """The known answer above is one the old filter fails: a 40 m opening shaves the hill."""
    dsm, terrain, build, leave_out = planted
    dtm = derive_dtm(dsm, GSD, method="opening")
    err = dtm.astype(np.float64) - terrain
    open_ground = np.isfinite(dsm) & ~build & ~leave_out & (np.abs(dsm - terrain) < 0.3)
    assert np.percentile(np.abs(err[open_ground]), 95) > 0.3


def test_lazy_equals_eager_for_any_chunking() -> None:
    dsm, _, _, _ = _planted(seed=1)
    small = dsm[:400, :300].copy()
    small[200:213, 40:61] = np.nan  # a hole
    eager = derive_dtm(small, GSD)
    for chunks in ((97, 131), (128, 128), (400, 300)):
        lazy = derive_dtm_lazy(da.from_array(small, chunks=chunks), GSD)
        assert lazy.chunks == da.from_array(small, chunks=chunks).chunks
        np.testing.assert_array_equal(lazy.compute(), eager)
    # the strips the eager function reduces the DSM in do not matter either
    a = model_ground(small, GSD, strip_px=64)
    b = model_ground(small, GSD)
    np.testing.assert_array_equal(a.heights, b.heights)


def test_nan_exactly_where_a_cell_holds_no_data() -> None:
    rng = np.random.default_rng(2)
    dsm = (10.0 + rng.normal(0, 0.03, (203, 150))).astype(np.float32)
    dsm[:13] = np.nan  # cells of 4 px (0.4 m at 10 cm): rows 0-11 empty, 12-15 partly valid
    dsm[100:108, 60:72] = np.nan  # two rows of three cells fully empty
    dtm = derive_dtm(dsm, GSD)
    expected = np.zeros(dsm.shape, bool)
    expected[:12] = True
    expected[100:108, 60:72] = True
    np.testing.assert_array_equal(np.isnan(dtm), expected)
    assert np.nanmax(np.abs(dtm - 10.0)) < 0.05


def test_cell_quartiles_lower_quartile_is_block_minimum() -> None:
    rng = np.random.default_rng(3)
    dsm = rng.normal(0, 1, (37, 45)).astype(np.float32)
    dsm[rng.random(dsm.shape) < 0.3] = np.nan
    dsm[:8, :8] = np.nan
    q = cell_quartiles(dsm, 4)
    np.testing.assert_array_equal(q[0], block_minimum(dsm, 4))
    cell = dsm[4:8, 8:12]
    vals = np.sort(cell[np.isfinite(cell)])
    assert q[1, 1, 2] == vals[vals.size // 2]
    assert np.isnan(q[:, 0, 0]).all()


def test_a_structure_wider_than_the_window_needs_a_wider_window() -> None:
    """``ground_window_m`` is the widest structure lifted off the ground (documented)."""
    n = 1000
    dsm = np.full((n, n), 20.0, np.float32)
    dsm[300:800, 250:750] += 5.0  # a 50 x 50 m hall at 10 cm
    default = derive_dtm(dsm, GSD)
    # taken for ground: only its rim, where the 1 m smoothing rounds the step, stands out
    assert ((dsm - default) >= 2.5)[320:780, 270:730].sum() == 0
    wide = derive_dtm(dsm, GSD, DetectParams(ground_window_m=70.0))
    assert ((dsm - wide) >= 2.5).sum() == 500 * 500


def test_a_dsm_smaller_than_the_window_says_so(caplog: pytest.LogCaptureFixture) -> None:
    dsm = np.full((90, 60), 5.0, np.float32)
    with caplog.at_level(logging.WARNING, logger="change_detection.terrain"):
        dtm = derive_dtm(dsm, GSD)
    assert np.allclose(dtm, 5.0, atol=1e-4)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1 and "6.0 x 9.0 m" in lines[0] and "40 m ground window" in lines[0]


def test_all_nodata_gives_all_nan() -> None:
    dtm = derive_dtm(np.full((50, 40), np.nan, np.float32), GSD)
    assert np.isnan(dtm).all()


@pytest.mark.parametrize(
    ("dsm", "gsd", "kwargs", "match"),
    [
        (np.zeros((2, 10, 10), np.float32), 0.1, {}, "3 dimensions; pass one band"),
        (np.zeros((10, 10), np.float32), 0.0, {}, "gsd_m = 0.0"),
        (np.zeros((10, 10), np.float32), math.nan, {}, "gsd_m = nan"),
        (np.zeros((10, 10), np.float32), 0.1, {"method": "bulldozer"}, "method = 'bulldozer'"),
    ],
)
def test_bad_arguments_are_one_clear_error(
    dsm: np.ndarray, gsd: float, kwargs: dict[str, str], match: str
) -> None:
    with pytest.raises(ChangeDetectionError, match=match):
        derive_dtm(dsm, gsd, **kwargs)  # type: ignore[arg-type]


def test_opening_radii_grow_within_the_terrain_allowance() -> None:
    radii = opening_radii(0.4, 20.0)
    assert radii[0] == 0.4 and radii[-1] == 20.0
    steps = [b * b - a * a for a, b in itertools.pairwise(radii)]
    assert all(b - a >= 0.4 - 1e-9 for a, b in itertools.pairwise(radii))
    assert max(steps[:-1]) <= 0.5 / 0.02 + 1e-6


def test_synthetic_site_building_heights() -> None:
    """On the synthetic site's after epoch the unchanged buildings stand at their height."""
    from survey.synth import SynthParams, polygon_mask, render_scene

    scene = render_scene(SynthParams(seed=0, size_m=80.0, gsd_cm=10.0, misregister=False))
    dsm = scene.after_dsm
    dtm = derive_dtm(dsm, 0.1)
    unchanged = [
        b
        for b in scene.layout.buildings
        if b.before and b.after and b.roof == "flat" and b.height_after is None
    ]
    assert len(unchanged) == 1  # of the 11 buildings of seed 0; the others changed or slope
    for b in unchanged:
        inner = polygon_mask(b.footprint.polygon().buffer(-0.6), scene.transform, dsm.shape)
        measured = float(np.nanmedian((dsm - dtm)[inner]))
        assert measured == pytest.approx(b.height, abs=0.2), b.name


@pytest.mark.realdata
def test_real_dsms_have_no_false_structures(realdata: Path) -> None:
    paths = sorted((realdata / "rasters" / "multidate").glob("*_dsm.tif"))
    paths.append(realdata / "rasters" / "dsm" / "d2spy_dsm.tif")
    assert len(paths) == 5
    for path in paths:
        with rasterio.open(path) as src:  # read-only
            dsm = src.read(1, masked=True).filled(np.nan).astype(np.float32)
            gsd = abs(src.transform.a)
        dsm[~np.isfinite(dsm) | (np.abs(dsm) > 1e30)] = np.nan
        dtm = derive_dtm(dsm, gsd)
        height = dsm - dtm
        assert np.isfinite(dtm[np.isfinite(dsm)]).all(), path.name
        assert np.sum(height >= 2.5) == 0, path.name  # a field and a plot: no structures
        assert np.nanpercentile(height, 99) < 0.6, path.name
    assert not list(realdata.rglob("*.aux.xml"))


@pytest.mark.slow
def test_a_20480_px_dsm_in_bounded_memory(tmp_path: Path) -> None:
    """Peak memory stays near the input plus the output (both 1.6 GB), run in a fresh process."""
    code = """
import resource, numpy as np
from change_detection.terrain import derive_dtm
n = 20480
dsm = np.empty((n, n), np.float32)
rng = np.random.default_rng(0)
for r in range(0, n, 2048):
    dsm[r:r + 2048] = (0.0015 * np.arange(n, dtype=np.float32))[None] + rng.normal(
        0, 0.05, (2048, n)).astype(np.float32)
dsm[5000:5300, 7000:7250] += 6.0
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
dtm = derive_dtm(dsm, 0.05)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
assert int(((dsm - dtm) >= 2.5).sum()) == 300 * 250
print(before, peak)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    before, peak = (float(v) for v in out.stdout.split())
    size_mb = 20480 * 20480 * 4 / 2**20
    assert peak < max(before, 2 * size_mb) + 900, (before, peak)
