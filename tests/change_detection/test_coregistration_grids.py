"""The xarray layer: grids, align_epoch (in memory and lazy), and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from rasterio.enums import Resampling
from scipy import ndimage

from change_detection import align_epoch
from change_detection.errors import GridMismatchError
from change_detection.grids import AlignedEpoch, onto_reference_grid
from tests.change_detection.test_coregistration_scenes import make_scene, render, sample, shift_push

T = Affine(0.05, 0, 500000.0, 0, -0.05, 4100000.0)
CRS = "EPSG:32650"
SHAPE = (320, 384)
SHIFT = (2.6, -4.4)


def _da(arr: np.ndarray, t: Affine = T, crs: str | None = CRS) -> xr.DataArray:
    h, w = arr.shape[-2:]
    coords = {"y": t.f + t.e * (np.arange(h) + 0.5), "x": t.c + t.a * (np.arange(w) + 0.5)}
    dims: tuple[str, ...] = ("y", "x")
    if arr.ndim == 3:
        dims = ("band", "y", "x")
        coords["band"] = np.arange(1, arr.shape[0] + 1)
    da = xr.DataArray(arr, dims=dims, coords=coords)
    da = da.rio.write_transform(t)
    return da.rio.write_crs(crs) if crs else da


@pytest.fixture(scope="module")
def pair() -> dict[str, xr.DataArray]:
    scene = make_scene(SHAPE, seed=21)
    grey = render(scene)
    push = shift_push(*SHIFT)
    rgb = np.stack([grey, grey * 0.9, grey * 0.8]).round().astype(np.uint8)
    tgt = sample(np.stack([grey, grey * 0.9, grey * 0.8]), push).round().astype(np.uint8)
    ground = 30 + ndimage.gaussian_filter(np.random.default_rng(0).normal(size=SHAPE), 30) * 5
    dsm_t = (sample(ground, push, order=1) - 0.6).astype(np.float32)
    return {
        "ref": _da(rgb),
        "tgt": _da(tgt),
        "valid": _da(np.ones(SHAPE, bool)),
        "ref_dsm": _da(ground.astype(np.float32)),
        "tgt_dsm": _da(dsm_t),
    }


def test_align_epoch_in_memory(pair: dict[str, xr.DataArray]) -> None:
    a = align_epoch(pair["ref"], pair["tgt"], pair["valid"], pair["tgt_dsm"], pair["ref_dsm"])
    assert (a.result.shift_x_px, a.result.shift_y_px) == pytest.approx(SHIFT, abs=0.05)
    assert a.vertical_offset_m == pytest.approx(-0.6, abs=0.05)
    assert a.rgb.dtype == np.uint8 and a.rgb.shape == pair["ref"].shape
    assert a.rgb.rio.transform() == T and a.valid.dtype == np.bool_
    assert a.dsm is not None and a.dsm.dtype == np.float32
    inner = (slice(20, -20), slice(20, -20))
    diff = a.dsm.values[inner] - pair["ref_dsm"].values[inner]
    assert float(np.nanmedian(diff)) == pytest.approx(0.0, abs=0.05)
    grey_ref = pair["ref"].values[0].astype(float)[inner]
    assert np.abs(a.rgb.values[0].astype(float)[inner] - grey_ref).mean() < 1.5
    report = json.loads(json.dumps(a.report(), allow_nan=False))
    assert report["model"] == "translation" and report["vertical_offset_m"] == pytest.approx(
        -0.6, abs=0.05
    )
    assert report["grid"]["crs"] == CRS and report["grid"]["shape"] == list(SHAPE)
    assert report["residuals"]["features"][0]["geometry"]["type"] == "Point"


def _align_chunked(pair: dict[str, xr.DataArray], ch: dict[str, int]) -> AlignedEpoch:
    """align_epoch of the pair, every raster dask-backed in chunks ``ch``."""
    return align_epoch(*(pair[k].chunk(ch) for k in ("ref", "tgt", "valid", "tgt_dsm", "ref_dsm")))


def test_align_epoch_lazy_equals_in_memory(pair: dict[str, xr.DataArray]) -> None:
    eager = align_epoch(pair["ref"], pair["tgt"], pair["valid"], pair["tgt_dsm"], pair["ref_dsm"])
    lazy = _align_chunked(pair, {"y": 128, "x": 128})
    assert lazy.rgb.chunks is not None and lazy.dsm is not None and eager.dsm is not None
    assert lazy.result.shift_x_px == eager.result.shift_x_px
    np.testing.assert_array_equal(lazy.rgb.values, eager.rgb.values)
    np.testing.assert_array_equal(lazy.valid.values, eager.valid.values)
    np.testing.assert_allclose(lazy.dsm.values, eager.dsm.values, atol=1e-3)
    assert lazy.vertical_offset_m == pytest.approx(eager.vertical_offset_m, abs=1e-4)


def test_without_dsms_and_with_target_dsm_only(pair: dict[str, xr.DataArray]) -> None:
    a = align_epoch(pair["ref"], pair["tgt"], pair["valid"])
    assert a.dsm is None and a.vertical_offset_m is None
    assert a.report()["vertical_offset_m"] is None
    b = align_epoch(pair["ref"], pair["tgt"], pair["valid"], pair["tgt_dsm"], None)
    assert b.dsm is not None and b.vertical_offset_m is None
    assert any("no reference DSM" in w for w in b.warnings)


def test_onto_reference_grid_integer_offset_is_exact(pair: dict[str, xr.DataArray]) -> None:
    tgt = pair["tgt"]
    crop = _da(tgt.values[:, 10:, 7:], T * Affine.translation(7, 10))
    back = onto_reference_grid(crop, tgt, fill=0)
    np.testing.assert_array_equal(back.values[:, 10:, 7:], tgt.values[:, 10:, 7:])
    assert not back.values[:, :10, :].any() and not back.values[:, :, :7].any()
    assert back.rio.transform() == T


def test_subpixel_grid_offset_is_snapped_and_measured(pair: dict[str, xr.DataArray]) -> None:
    """Target grid 0.3 px east and 0.45 px north of the reference's: aligned once, lazily,
    and the report gives the georeferenced shift (the snap taken back out)."""
    t_off = T * Affine.translation(0.3, -0.45)  # target pixel (r, c) at reference (r-0.45, c+0.3)
    geo = (SHIFT[0] - 0.3, SHIFT[1] + 0.45)
    ch = {"y": 128, "x": 128}
    tgt = _da(pair["tgt"].values, t_off).chunk(ch)
    valid = _da(pair["valid"].values, t_off).chunk(ch)
    dsm = _da(pair["tgt_dsm"].values, t_off).chunk(ch)
    a = align_epoch(pair["ref"].chunk(ch), tgt, valid, dsm, pair["ref_dsm"].chunk(ch))
    assert a.rgb.chunks is not None and a.dsm is not None and a.dsm.chunks is not None
    assert a.grid_snap_px == pytest.approx((-0.3, 0.45))  # content moved by snapping
    report = a.report()
    assert (report["shift_x_px"], report["shift_y_px"]) == pytest.approx(geo, abs=0.05)
    assert report["grid_snap_px"] == pytest.approx([-0.3, 0.45])
    assert report["shift_east_m"] == pytest.approx(geo[0] * 0.05, abs=0.003)
    # the model works on the snapped grid, where the content sits where it was unshifted
    assert (a.result.shift_x_px, a.result.shift_y_px) == pytest.approx(SHIFT, abs=0.05)
    inner = (slice(20, -20), slice(20, -20))
    grey_ref = pair["ref"].values[0].astype(float)[inner]
    assert np.abs(a.rgb.values[0].astype(float)[inner] - grey_ref).mean() < 1.5
    diff = a.dsm.values[inner] - pair["ref_dsm"].values[inner]
    assert float(np.nanmedian(diff)) == pytest.approx(0.0, abs=0.05)


def test_onto_reference_grid_subpixel_offset_is_a_lazy_translation(
    pair: dict[str, xr.DataArray],
) -> None:
    """Same CRS and pixel size, grids 0.3 / -0.45 px apart: bilinear gives GDAL's values
    (reproject_match) inside, lazily for dask; nearest is the rounded offset, exactly."""
    t_off = T * Affine.translation(0.3, -0.45)
    dsm = _da(pair["tgt_dsm"].values, t_off)
    ref = pair["ref_dsm"]
    eager = onto_reference_grid(dsm, ref, fill=np.nan)
    lazy = onto_reference_grid(
        dsm.chunk({"y": 100, "x": 100}), ref.chunk({"y": 128, "x": 128}), fill=np.nan
    )
    assert lazy.chunks is not None and eager.rio.transform() == T and eager.shape == SHAPE
    # bilinear is exact on a plane: target pixel (r, c) holds 1000 r + c, and reference pixel
    # (r, c) lies at target (r + 0.45, c - 0.3)
    plane = _da(1000 * np.arange(320.0)[:, None] + np.arange(384.0)[None, :], t_off)
    onto = onto_reference_grid(plane.astype(np.float32), ref, fill=np.nan).values
    rr, cc = np.mgrid[0:320, 0:384]
    expected = 1000 * (rr + 0.45) + (cc - 0.3)
    inside = (rr + 0.45 <= 319) & (cc - 0.3 >= 0)
    np.testing.assert_allclose(onto[inside], expected[inside], atol=2e-3)
    assert np.isnan(onto[~inside]).all()
    np.testing.assert_array_equal(lazy.values, eager.values)
    rgb = onto_reference_grid(_da(pair["tgt"].values, t_off), pair["ref"], fill=0)
    assert rgb.dtype == np.uint8 and rgb.shape == pair["ref"].shape
    mask = _da(pair["valid"].values, t_off)
    near = onto_reference_grid(mask, pair["valid"], resampling=Resampling.nearest, fill=False)
    assert near.dtype == np.bool_ and near.values.all()  # offsets 0.45 and -0.3 round to 0


def test_onto_reference_grid_other_crs_is_reprojected(pair: dict[str, xr.DataArray]) -> None:
    other = pair["tgt_dsm"].rio.reproject("EPSG:3857")
    back = onto_reference_grid(other, pair["tgt_dsm"])
    assert back.shape == SHAPE and back.rio.crs == pair["tgt_dsm"].rio.crs
    inner = (slice(30, -30), slice(30, -30))
    assert np.nanmax(np.abs(back.values[inner] - pair["tgt_dsm"].values[inner])) < 0.1


@pytest.mark.parametrize("other", ["EPSG:32651", "resolution"])
def test_lazy_reprojection_equals_reproject_match(
    pair: dict[str, xr.DataArray], other: str
) -> None:
    """A dask-backed target in another CRS (the neighbouring UTM zone) or at another
    resolution is reprojected chunk by chunk: the values of the eager reproject_match (uint8
    within 1 DN, heights within 1e-3 m, masks equal), and nothing is read until asked."""
    import dask

    src = {k: pair[k] for k in ("tgt", "tgt_dsm")}
    src["valid"] = pair["valid"].astype(np.uint8).rio.write_nodata(0)
    if other == "resolution":
        t = Affine(0.07, 0, T.c - 1.3, 0, -0.07, T.f + 0.9)
        src = {k: v.rio.reproject(CRS, transform=t, shape=(240, 280)) for k, v in src.items()}
    else:
        src = {k: v.rio.reproject(other) for k, v in src.items()}
    src["valid"] = src["valid"] > 0
    ref = pair["ref"]
    for key, resampling, fill in (
        ("tgt", Resampling.bilinear, 0),
        ("valid", Resampling.nearest, False),
        ("tgt_dsm", Resampling.bilinear, np.nan),
    ):
        eager = onto_reference_grid(src[key], ref, resampling=resampling, fill=fill)
        lazy = onto_reference_grid(
            src[key].chunk({"y": 64, "x": 64}), ref, resampling=resampling, fill=fill
        )
        assert hasattr(lazy.data, "dask") and lazy.dtype == eager.dtype
        assert lazy.shape == eager.shape and lazy.rio.transform() == T
        got, want = dask.compute(lazy.data)[0], eager.values
        if key == "tgt":
            diff = np.abs(got.astype(int) - want.astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.001
            assert (got == 0).mean() == pytest.approx((want == 0).mean(), abs=0.001)
        elif key == "valid":
            np.testing.assert_array_equal(got, want)
            assert 0.3 < got.mean() < 1.0  # part of the grid has no source
        else:
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_allclose(got, want, atol=1e-3)


def test_lazy_reprojection_of_one_chunk_reads_only_the_source_under_it() -> None:
    """Memory follows the chunks: one output chunk decodes a few source chunks, not all."""
    import dask.array as dsa

    reads: list[tuple[int, int]] = []

    def counted(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None
        reads.append(tuple(block_info[0]["chunk-location"]))
        return block

    n = 1024
    data = dsa.from_array(
        np.random.default_rng(2).normal(30, 2, (n, n)).astype(np.float32), chunks=128
    ).map_blocks(counted, dtype=np.float32)
    t = Affine(0.07, 0, T.c, 0, -0.07, T.f)
    target = _da(np.zeros((n, n), np.float32), t).copy(data=data)
    ref = _da(np.zeros((1400, 1400), np.float32))
    out = onto_reference_grid(target, ref, fill=np.nan)
    assert not reads  # lazy
    part = np.asarray(out.data[:128, :128])
    assert np.isfinite(part).all()
    assert 1 <= len(set(reads)) <= 4 < 64


def test_raster_without_crs_is_an_error(pair: dict[str, xr.DataArray]) -> None:
    bare = _da(pair["tgt"].values, crs=None)
    with pytest.raises(GridMismatchError, match="no CRS"):
        align_epoch(pair["ref"], bare, pair["valid"])


@pytest.mark.parametrize("model", ["translation", "affine"])
def test_strips_equal_the_lazy_warp(pair: dict[str, xr.DataArray], model: str) -> None:
    """AlignedEpoch.strips (each source chunk row read once) gives the lazy warp's values."""
    from dataclasses import replace

    from change_detection.coregistration import _Mapping
    from change_detection.grids import _warp_dataarray

    ch = {"y": 96, "x": 128}
    a = _align_chunked(pair, ch)
    assert a.sources is not None and a.dsm is not None
    if model == "affine":
        rot = np.deg2rad(0.4)
        m = np.array([[np.cos(rot), -np.sin(rot), 3.2], [np.sin(rot), np.cos(rot), -1.7]])
        result = replace(a.result, mapping=_Mapping("affine", m))
        assert result.pull_offset is None
        src_rgb, src_valid, src_dsm = a.sources
        ref = pair["ref"].chunk(ch)
        a = replace(
            a,
            result=result,
            rgb=_warp_dataarray(result, a.rgb.copy(data=src_rgb), ref, 1, 128),
            valid=_warp_dataarray(result, a.valid.copy(data=src_valid), ref, 1, 128),
            dsm=_warp_dataarray(result, a.dsm.copy(data=src_dsm), ref, 1, 128)
            - np.float32(a.vertical_offset_m),
        )
    assert a.dsm is not None
    got = list(a.strips(rows_per_strip=70))
    assert [r0 for r0, *_ in got] == list(range(0, SHAPE[0], 70))
    np.testing.assert_array_equal(np.concatenate([g[2] for g in got], axis=1), a.rgb.values)
    np.testing.assert_array_equal(np.concatenate([g[3] for g in got]), a.valid.values)
    dsm = np.concatenate([g[4] for g in got if g[4] is not None])
    np.testing.assert_allclose(dsm, a.dsm.values, atol=1e-5, equal_nan=True)
