"""Rasters as they come from the field (issue #12): every input kind, with known answers.

Each test writes a small real GeoTIFF into ``tmp_path`` shaped like what a tool writes (no
mask and a collar, float or 16-bit data, RGB + NIR, grey, paletted, a DSM pair, a damaged
tile) and checks what :func:`survey.imagery.read_orthophoto`, ``sitewatch coregister`` and
``sitewatch detect`` make of it: the exact validity, the recorded scaling and band roles, a
planted shift recovered, a one-line error naming the file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.enums import ColorInterp
from scipy import ndimage

from change_detection.params import DetectParams
from survey.cli import EXIT_ERROR, run
from survey.coregister import coregister_files
from survey.errors import RasterFormatError
from survey.imagery import PERCENTILES, collar_mask, heights_reason, read_orthophoto
from survey.pipeline import run_detect
from survey.rasters import open_dsm, open_orthophoto, write_geotiff
from tests.change_detection.test_coregistration_scenes import make_scene, render, sample, shift_push

T = Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 4100000.0)
CRS = "EPSG:32650"
CI = ColorInterp


def _texture(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB (3, rows, cols) in 20..235: no pixel is black or white in every band."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(size=(3, rows, cols)), (0, 2, 2))
    base = (base - base.min()) / (base.max() - base.min())
    return (20 + base * 215).round().astype(np.uint8)


def _write(
    path: Path,
    data: np.ndarray,
    *,
    colorinterp: tuple[ColorInterp, ...] | None = None,
    descriptions: tuple[str, ...] | None = None,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
    block: int = 64,
    **creation: Any,
) -> Path:
    """A tiled GeoTIFF written as a tool would, with exactly the metadata given (GDAL's
    defaults otherwise: ``gray``/``undefined`` colour interpretation, no mask)."""
    arr = data[None] if data.ndim == 2 else data
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": arr.shape[2],
        "height": arr.shape[1],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": CRS,
        "transform": T,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "photometric": "MINISBLACK" if colormap is None else "PALETTE",
        **creation,
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if colorinterp is not None:
            dst.colorinterp = colorinterp
        if descriptions is not None:
            for i, text in enumerate(descriptions, start=1):
                dst.set_band_description(i, text)
        if mask is not None:
            dst.write_mask(np.where(mask, 255, 0).astype(np.uint8))
        if colormap is not None:
            dst.write_colormap(1, colormap)
    return path


def _rotated_footprint(rows: int, cols: int, angle_deg: float = 17.0) -> np.ndarray:
    """A rotated rectangle, True inside: the valid area of a rotated mosaic."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    a = np.radians(angle_deg)
    u = (xx - cols / 2) * np.cos(a) + (yy - rows / 2) * np.sin(a)
    v = -(xx - cols / 2) * np.sin(a) + (yy - rows / 2) * np.cos(a)
    return (np.abs(u) < cols * 0.36) & (np.abs(v) < rows * 0.36)


def _one_line(text: str, *needles: str) -> None:
    """``text`` is one line (an error message) naming ``needles``; for CLI output, the one
    ``sitewatch: error:`` line (warnings about assumptions are logged before it)."""
    assert "Traceback" not in text and "previous exception" not in text, text
    lines = text.strip().splitlines()
    if any(line.startswith("sitewatch") for line in lines):
        lines = [line for line in lines if not line.startswith("WARNING ")]
    assert len(lines) == 1, text
    for needle in needles:
        assert needle in lines[0], text


# --------------------------------------------------------------------------------------------
# No mask, alpha or nodata: the edge collar
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", [0, 255])
def test_a_collar_connected_to_the_edge_is_nodata_and_a_roof_inside_stays_valid(
    tmp_path: Path, fill: int, caplog: pytest.LogCaptureFixture
) -> None:
    rows, cols = 150, 190
    inside = _rotated_footprint(rows, cols)
    rgb = _texture(rows, cols)
    rgb[:, ~inside] = fill
    rgb[:, 60:75, 80:100] = fill  # a black (white) roof in the middle: not connected
    assert inside[60:75, 80:100].all()
    path = _write(tmp_path / "mosaic.tif", rgb)
    before = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="survey"):
        ortho = read_orthophoto(path)
    np.testing.assert_array_equal(ortho.valid.values, inside)
    assert ortho.collar_px == int((~inside).sum())
    assert ortho.validity == "edge collar"
    np.testing.assert_array_equal(ortho.rgb.values, rgb)
    colour = "black" if fill == 0 else "white"
    assert any(f"{colour} collar" in a and str(ortho.collar_px) in a for a in ortho.assumptions)
    lines = [r for r in caplog.records if "mosaic.tif" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert ortho.record()["assumptions"] == list(ortho.assumptions)
    # chunked: the same mask, chunk by chunk
    lazy = read_orthophoto(path, chunks=48)
    assert lazy.valid.chunks is not None
    np.testing.assert_array_equal(lazy.valid.values, inside)
    assert lazy.collar_px == ortho.collar_px
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic.tif"]  # no .aux.xml


def test_no_mask_and_no_collar_is_all_valid(tmp_path: Path) -> None:
    rgb = _texture(90, 110)
    rgb[:, 30:40, 30:40] = 0  # black inside, not on the edge
    ortho = read_orthophoto(_write(tmp_path / "o.tif", rgb))
    assert bool(ortho.valid.values.all()) and ortho.collar_px == 0
    assert "(0 px)" in ortho.assumptions[-1]


def test_chunked_collar_equals_the_in_memory_one_on_a_snake_across_seams(
    tmp_path: Path,
) -> None:
    """A one-component collar that winds across every chunk seam, islands of fill colour next
    to it (1 px apart, or touching it only diagonally) that must stay valid."""
    rows, cols = 260, 300
    collar = np.zeros((rows, cols), bool)
    collar[:, :3] = True  # the frame on the left edge
    for k, r in enumerate(range(10, rows - 10, 24)):
        collar[r : r + 2, 3 : cols - 20] = True  # horizontal bars, all joined to the frame
        c = cols - 22 if k % 2 == 0 else 40
        collar[r : min(r + 26, rows - 10), c : c + 2] = True  # vertical joins
    islands = np.zeros_like(collar)
    islands[15:19, 100:140] = True  # between bars, 1 px clear of them
    islands[12, cols - 19] = True  # diagonal to the end of the first bar only
    assert not (islands & ndimage.binary_dilation(collar)).any() or islands[12, cols - 19]
    rgb = _texture(rows, cols, seed=3)
    rgb[:, collar | islands] = 0
    path = _write(tmp_path / "snake.tif", rgb)
    eager = read_orthophoto(path)
    np.testing.assert_array_equal(eager.valid.values, ~collar)
    for chunks in (64, 37):
        lazy = read_orthophoto(path, chunks=chunks)
        np.testing.assert_array_equal(lazy.valid.values, ~collar)
        assert lazy.collar_px == eager.collar_px == int(collar.sum())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 48), st.integers(1, 48)),
    chunk=st.tuples(st.integers(4, 20), st.integers(4, 20)),
    density=st.floats(0.3, 0.8),
)
def test_collar_mask_chunked_equals_whole_on_random_patterns(
    seed: int, shape: tuple[int, int], chunk: tuple[int, int], density: float
) -> None:
    import dask.array as da

    rng = np.random.default_rng(seed)
    image = np.where(rng.random(shape) < density, 0, 7).astype(np.uint8)[None]
    whole, n_whole = collar_mask(image, [(0,)])
    lazy, n_lazy = collar_mask(da.from_array(image, chunks=(1, *chunk)), [(0,)])
    np.testing.assert_array_equal(np.asarray(lazy), whole)
    assert n_lazy == n_whole == int(whole.sum())
    labels, _ = ndimage.label(image[0] == 0)
    edge = set(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])) - {0}
    np.testing.assert_array_equal(whole, np.isin(labels, list(edge)))


# --------------------------------------------------------------------------------------------
# float32, uint16, int16: scaling to 8 bits
# --------------------------------------------------------------------------------------------


def _stretched(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((v.astype(np.float64) - lo) / (hi - lo) * 255.0, 0, 255)


@pytest.mark.parametrize(("top", "reason"), [(1.0, "within 0-1"), (255.0, "within 0-255")])
def test_float_in_a_display_range_keeps_a_fixed_scale(
    tmp_path: Path, top: float, reason: str
) -> None:
    rgb = _texture(80, 90)
    data = (rgb.astype(np.float32) * np.float32(top / 255.0)).astype(np.float32)
    path = _write(tmp_path / "odm.tif", data, nodata=-10000.0)
    ortho = read_orthophoto(path)
    assert ortho.scaling is not None and ortho.scaling.method == "fixed"
    assert ortho.scaling.lo == {"red": 0.0, "green": 0.0, "blue": 0.0}
    assert ortho.scaling.hi == {"red": top, "green": top, "blue": top}
    assert reason in ortho.scaling.reason
    assert np.abs(ortho.rgb.values.astype(int) - rgb).max() <= 1
    assert ortho.record()["scaling"]["method"] == "fixed"


def test_wide_float_is_stretched_between_percentiles_and_nodata_stays_nodata(
    tmp_path: Path,
) -> None:
    rgb = _texture(80, 90)
    data = rgb.astype(np.float32) * np.float32([[[12.5]], [[9.0]], [[30.0]]]) - 300
    invalid = np.zeros((80, 90), bool)
    invalid[:7] = True
    data[:, :7] = -9999.0
    data[1, 40:44, 50:52] = np.nan  # NaN in one band: invalid too
    invalid[40:44, 50:52] = True
    path = _write(tmp_path / "wide.tif", data, nodata=-9999.0)
    ortho = read_orthophoto(path)
    np.testing.assert_array_equal(ortho.valid.values, ~invalid)
    assert ortho.scaling is not None and ortho.scaling.method == "percentile"
    assert ortho.scaling.percentiles == PERCENTILES
    for i, name in enumerate(("red", "green", "blue")):
        values = data[i][~invalid]
        lo, hi = np.percentile(values.astype(np.float64), PERCENTILES)
        assert ortho.scaling.lo[name] == pytest.approx(lo, rel=1e-6)
        assert ortho.scaling.hi[name] == pytest.approx(hi, rel=1e-6)
        got = ortho.rgb.values[i][~invalid].astype(np.float64)
        assert np.abs(got - _stretched(values, lo, hi)).max() <= 0.51
    assert (ortho.rgb.values[:, invalid] == 0).all()
    assert "percentiles" in " ".join(ortho.assumptions)


def test_twelve_bit_in_sixteen(tmp_path: Path) -> None:
    """12-bit data in uint16: stretched between percentiles when the depth is not declared,
    on the fixed 0-4095 range when the file declares NBITS=12."""
    rgb = _texture(80, 90)
    data = (rgb.astype(np.uint16) - 20) * 19  # 0..4085
    mask = np.ones((80, 90), bool)
    plain = read_orthophoto(_write(tmp_path / "u16.tif", data, mask=mask))
    assert plain.scaling is not None and plain.scaling.method == "percentile"
    lo, hi = np.percentile(data[0].astype(np.float64), PERCENTILES)
    assert np.abs(plain.rgb.values[0] - _stretched(data[0], lo, hi)).max() <= 0.51
    declared = read_orthophoto(_write(tmp_path / "nbits.tif", data, mask=mask, nbits=12))
    assert declared.scaling is not None and declared.scaling.method == "fixed"
    assert declared.scaling.hi["green"] == 4095.0 and "12-bit" in declared.scaling.reason
    assert np.abs(declared.rgb.values - _stretched(data, 0, 4095)).max() <= 0.51


def test_int16_with_negative_values_and_nodata(tmp_path: Path) -> None:
    rgb = _texture(70, 80)
    data = rgb.astype(np.int16) * 14 - 500
    data[:, -5:, :] = -32768
    path = _write(tmp_path / "i16.tif", data, nodata=-32768)
    ortho = read_orthophoto(path)
    assert not ortho.valid.values[-5:].any() and ortho.valid.values[:-5].all()
    assert ortho.scaling is not None and ortho.scaling.method == "percentile"
    lo, hi = np.percentile(data[2][:-5].astype(np.float64), PERCENTILES)
    assert ortho.scaling.lo["blue"] == pytest.approx(lo)
    assert np.abs(ortho.rgb.values[2][:-5] - _stretched(data[2][:-5], lo, hi)).max() <= 0.51


# --------------------------------------------------------------------------------------------
# Band roles: RGB + NIR, multispectral, undeclared bands
# --------------------------------------------------------------------------------------------


def test_rgbn_from_the_colour_interpretation_in_any_band_order(tmp_path: Path) -> None:
    rgb = _texture(60, 70)
    nir = _texture(60, 70, seed=9)[0]
    data = np.stack([rgb[2], nir, rgb[0], rgb[1]])  # blue, nir, red, green
    path = _write(
        tmp_path / "bnrg.tif",
        data,
        colorinterp=(CI.blue, CI.nir, CI.red, CI.green),
        mask=np.ones((60, 70), bool),
    )
    ortho = read_orthophoto(path)
    np.testing.assert_array_equal(ortho.rgb.values, rgb)
    assert ortho.nir is not None and ortho.nir.dtype == np.uint8 and ortho.nir.dims == ("y", "x")
    np.testing.assert_array_equal(ortho.nir.values, nir)
    assert ortho.band_roles == {"blue": 1, "nir": 2, "red": 3, "green": 4}
    assert ortho.assumptions == ()  # everything was declared
    assert ortho.record()["nir"] is True


def test_rgbn_from_descriptions_scaled_like_the_colour_bands(tmp_path: Path) -> None:
    rgb = _texture(60, 70)
    nir = _texture(60, 70, seed=9)[0]
    data = (np.stack([nir, rgb[0], rgb[1], rgb[2]]).astype(np.uint16) - 20) * 19
    path = _write(
        tmp_path / "nrgb.tif",
        data,
        descriptions=("Near Infrared", "Red", "Green", "Blue"),
        nodata=65535,
    )
    ortho = read_orthophoto(path)
    assert ortho.band_roles == {"nir": 1, "red": 2, "green": 3, "blue": 4}
    assert "descriptions" in ortho.assumptions[0]
    assert ortho.scaling is not None and set(ortho.scaling.lo) == {"red", "green", "blue", "nir"}
    lo, hi = ortho.scaling.lo["nir"], ortho.scaling.hi["nir"]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(data[0].astype(float), PERCENTILES)))
    assert ortho.nir is not None
    assert np.abs(ortho.nir.values - _stretched(data[0], lo, hi)).max() <= 0.51
    lo_r, hi_r = ortho.scaling.lo["red"], ortho.scaling.hi["red"]
    assert np.abs(ortho.rgb.values[0] - _stretched(data[1], lo_r, hi_r)).max() <= 0.51


def test_five_band_multispectral(tmp_path: Path) -> None:
    bands = _texture(50, 60)
    extra = _texture(50, 60, seed=4)[:2]
    data = np.concatenate([bands[::-1], extra])  # blue, green, red, rededge, nir
    path = _write(
        tmp_path / "ms.tif",
        data,
        colorinterp=(CI.blue, CI.green, CI.red, CI.rededge, CI.nir),
        mask=np.ones((50, 60), bool),
    )
    ortho = read_orthophoto(path)
    np.testing.assert_array_equal(ortho.rgb.values, bands)
    assert ortho.nir is not None
    np.testing.assert_array_equal(ortho.nir.values, extra[1])


def test_four_bands_without_roles_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = np.concatenate([_texture(50, 60), _texture(50, 60, seed=2)[:1]])
    path = _write(tmp_path / "four.tif", data, mask=np.ones((50, 60), bool))
    with pytest.raises(RasterFormatError) as err:
        read_orthophoto(path)
    _one_line(str(err.value), "four.tif", "cannot be identified", "gdal_edit.py -colorinterp_1 red")
    code = run(["coregister", "--reference", str(path), "--target", str(path),
                "--out", str(tmp_path / "o.tif")])  # fmt: skip
    assert code == EXIT_ERROR
    _one_line(capsys.readouterr().err, "four.tif", "-colorinterp_4 nir")


def test_an_undeclared_extra_band_is_not_used_and_said_so(tmp_path: Path) -> None:
    data = np.concatenate([_texture(40, 50), _texture(40, 50, seed=8)[:1]])
    path = _write(
        tmp_path / "rgbx.tif",
        data,
        colorinterp=(CI.red, CI.green, CI.blue, CI.undefined),
        mask=np.ones((40, 50), bool),
    )
    ortho = read_orthophoto(path)
    np.testing.assert_array_equal(ortho.rgb.values, data[:3])
    assert ortho.nir is None and ortho.assumptions == (
        "band(s) 4 declare no role (colour interpretation or description) and were not used",
    )


def test_three_undeclared_bands_are_red_green_blue_by_convention(tmp_path: Path) -> None:
    rgb = _texture(40, 50)
    ortho = read_orthophoto(_write(tmp_path / "gis.tif", rgb, mask=np.ones((40, 50), bool)))
    np.testing.assert_array_equal(ortho.rgb.values, rgb)
    assert ortho.band_roles == {"red": 1, "green": 2, "blue": 3}
    assert "read as red, green, blue" in ortho.assumptions[0]


# --------------------------------------------------------------------------------------------
# Single bands: grey and paletted
# --------------------------------------------------------------------------------------------


def test_grey(tmp_path: Path) -> None:
    grey = _texture(40, 50)[1]
    path = _write(tmp_path / "grey.tif", grey, nodata=0)
    with pytest.raises(RasterFormatError) as err:
        open_orthophoto(path)
    _one_line(str(err.value), "grey.tif", "one grey band")
    replicated = read_orthophoto(path, grey="replicate")
    assert replicated.rgb.sizes["band"] == 3 and replicated.representation == "grey"
    for band in replicated.rgb.values:
        np.testing.assert_array_equal(band, grey)
    assert "colour cues" in replicated.assumptions[-1]
    kept = read_orthophoto(path, grey="keep")
    assert kept.rgb.sizes["band"] == 1
    np.testing.assert_array_equal(kept.rgb.values[0], grey)


def test_paletted_is_expanded_and_its_black_collar_found(tmp_path: Path) -> None:
    rows, cols = 60, 80
    inside = _rotated_footprint(rows, cols, 30.0)
    index = (np.arange(rows * cols).reshape(rows, cols) % 5 + 1).astype(np.uint8)
    index[~inside] = 0
    table = {0: (0, 0, 0, 255), 1: (200, 30, 30, 255), 2: (30, 200, 30, 255),
             3: (30, 30, 200, 255), 4: (250, 250, 10, 255), 5: (90, 90, 90, 255)}  # fmt: skip
    path = _write(tmp_path / "pal.tif", index, colormap=table)
    ortho = read_orthophoto(path)
    assert ortho.representation == "palette"
    lut = np.array([table[i][:3] for i in range(6)], np.uint8).T
    np.testing.assert_array_equal(ortho.rgb.values, lut[:, index])
    np.testing.assert_array_equal(ortho.valid.values, inside)
    assert "colour table" in ortho.assumptions[0]
    lazy = read_orthophoto(path, chunks=32)
    np.testing.assert_array_equal(lazy.rgb.values, lut[:, index])
    np.testing.assert_array_equal(lazy.valid.values, inside)


def test_a_map_on_white_paper_is_line_work_with_every_pixel_valid(tmp_path: Path) -> None:
    from tests.change_detection.test_coregistration_scenes import render_lines

    lines = np.where(render_lines(make_scene((120, 140), seed=2)) < 128, 0, 255).astype(np.uint8)
    path = _write(tmp_path / "map.tif", lines)
    photo_rules = read_orthophoto(path, grey="keep")
    assert not photo_rules.valid.values.all()  # as a photo, the white paper is a collar
    ortho = read_orthophoto(path, grey="keep", line_work=True)
    assert ortho.representation == "line-work" and ortho.validity == "every pixel"
    assert bool(ortho.valid.values.all()) and ortho.collar_px is None
    photo = read_orthophoto(_write(tmp_path / "photo.tif", _texture(80, 90)), line_work=True)
    assert photo.representation == "rgb"


# --------------------------------------------------------------------------------------------
# sitewatch coregister: DSMs alone, grey and other representations
# --------------------------------------------------------------------------------------------

DSM_SHIFT = (-2.35, 1.6)


def _dsm_pair(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    rows, cols = 320, 384
    scene = make_scene((rows, cols), seed=5)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    ground = 40 + 0.02 * xx + 0.01 * yy
    for r0, c0, bh, bw, _ in scene.buildings:
        ground[int(max(r0, 0)) : int(r0 + bh), int(max(c0, 0)) : int(c0 + bw)] += 6.0
    ground += 0.6 * ndimage.gaussian_filter(np.random.default_rng(1).normal(size=(rows, cols)), 3)
    target = sample(ground, shift_push(*DSM_SHIFT), order=1) + 0.7
    holes = ndimage.binary_dilation(np.random.default_rng(2).random((rows, cols)) < 0.001, None, 4)
    ref = np.where(holes, -9999.0, ground).astype(np.float32)
    tgt = np.where(np.roll(holes, 37, axis=1), np.nan, target).astype(np.float32)
    ref_p = write_geotiff(tmp_path / "ref_dsm.tif", ref, transform=T, crs=CRS, nodata=-9999.0)
    tgt_p = write_geotiff(tmp_path / "tgt_dsm.tif", tgt, transform=T, crs=CRS, nodata=np.nan)
    return ref_p, tgt_p, ground


def test_two_dsms_alone_are_coregistered_on_their_heights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref_p, tgt_p, ground = _dsm_pair(tmp_path)
    assert heights_reason(ref_p) is not None
    out, rep = tmp_path / "out.tif", tmp_path / "r.json"
    code = run(["coregister", "--reference", str(ref_p), "--target", str(tgt_p),
                "--out", str(out), "--report", str(rep)])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    report = json.loads(rep.read_text())
    assert report["shift_x_px"] == pytest.approx(DSM_SHIFT[0], abs=0.1)
    assert report["shift_y_px"] == pytest.approx(DSM_SHIFT[1], abs=0.1)
    assert report["vertical_offset_m"] == pytest.approx(0.7, abs=0.05)
    assert report["confidence"] > 0.5
    for side in ("reference", "target"):
        assert report["inputs"][side]["representation"] == "heights"
        assert "heights" in report["inputs"][side]["assumptions"][0]
        assert report["representation"][side] == "height gradient"  # what was matched
    assert report["outputs"]["heights"] == str(out) and report["outputs"]["orthophoto"] is None
    assert "vertical offset" in printed.out
    with rasterio.open(out) as ds, rasterio.open(ref_p) as ref:
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata)
        assert ds.transform == ref.transform and ds.shape == ref.shape
    aligned = open_dsm(out).values
    inner = np.isfinite(aligned)
    inner[:12], inner[-12:], inner[:, :12], inner[:, -12:] = False, False, False, False
    assert np.median(np.abs(aligned[inner] - ground[inner])) < 0.05


def test_dsm_pair_chunked_gives_the_same_model(tmp_path: Path) -> None:
    ref_p, tgt_p, _ = _dsm_pair(tmp_path)
    whole = coregister_files(ref_p, tgt_p, tmp_path / "w.tif")
    lazy = coregister_files(ref_p, tgt_p, tmp_path / "c.tif", chunk_px=128)
    assert lazy.report["shift_x_px"] == pytest.approx(whole.report["shift_x_px"], abs=1e-6)
    assert lazy.report["vertical_offset_m"] == pytest.approx(
        whole.report["vertical_offset_m"], abs=0.02
    )


def test_grey_reference_and_paletted_target(tmp_path: Path) -> None:
    shape = (256, 288)
    scene = make_scene(shape, seed=11)
    ref = render(scene, 135.0).round().astype(np.uint8)
    tgt = sample(render(scene, 135.0), shift_push(-3.4, 2.2)).round().astype(np.uint8)
    ref_p = _write(tmp_path / "grey_ref.tif", ref, nodata=0)
    levels = (tgt // 8).astype(np.uint8)  # a 32-colour grey palette
    table = {i: (i * 8 + 4, i * 8 + 4, i * 8 + 4, 255) for i in range(32)}
    tgt_p = _write(tmp_path / "pal_tgt.tif", levels, colormap=table, nodata=255)
    res = coregister_files(ref_p, tgt_p, tmp_path / "out.tif")
    assert res.report["inputs"]["reference"]["representation"] == "grey"
    assert res.report["inputs"]["target"]["representation"] == "palette"
    assert res.report["shift_x_px"] == pytest.approx(-3.4, abs=0.15)
    assert res.report["shift_y_px"] == pytest.approx(2.2, abs=0.15)
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.count == 3 and ds.dtypes[0] == "uint8"  # the palette expanded


def test_a_dsm_given_twice_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref_p, tgt_p, _ = _dsm_pair(tmp_path)
    code = run(["coregister", "--reference", str(ref_p), "--target", str(tgt_p),
                "--out", str(tmp_path / "o.tif"), "--target-dsm", str(tgt_p),
                "--out-dsm", str(tmp_path / "od.tif")])  # fmt: skip
    assert code == EXIT_ERROR
    _one_line(capsys.readouterr().err, "tgt_dsm.tif", "itself heights")


# --------------------------------------------------------------------------------------------
# Damaged files
# --------------------------------------------------------------------------------------------


def _damage_tile(path: Path, band: int = 1, tile: tuple[int, int] = (1, 1)) -> None:
    """Overwrite the middle of one compressed tile with noise (the TIFF stays readable)."""
    with rasterio.open(path) as ds:
        off = int(ds.get_tag_item(f"BLOCK_OFFSET_{tile[0]}_{tile[1]}", "TIFF", bidx=band))
        size = int(ds.get_tag_item(f"BLOCK_SIZE_{tile[0]}_{tile[1]}", "TIFF", bidx=band))
    raw = bytearray(path.read_bytes())
    raw[off + 8 : off + size - 8] = (
        np.random.default_rng(0).integers(0, 256, size - 16).astype(np.uint8).tobytes()
    )
    path.write_bytes(bytes(raw))


@pytest.fixture()
def damaged(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    ortho = write_geotiff(
        tmp_path / "damaged.tif",
        rng.integers(1, 255, (3, 1024, 1024), dtype=np.uint8),
        transform=T,
        crs=CRS,
        mask=np.ones((1024, 1024), bool),
    )
    _damage_tile(ortho)
    dsm = write_geotiff(
        tmp_path / "damaged_dsm.tif",
        rng.normal(50, 5, (1024, 1024)).astype(np.float32),
        transform=T,
        crs=CRS,
        nodata=-9999.0,
    )
    _damage_tile(dsm, tile=(0, 1))
    good = write_geotiff(
        tmp_path / "good.tif",
        rng.integers(1, 255, (3, 1024, 1024), dtype=np.uint8),
        transform=T,
        crs=CRS,
        mask=np.ones((1024, 1024), bool),
    )
    return {"ortho": ortho, "dsm": dsm, "good": good}


def test_a_damaged_tile_is_one_line_naming_the_file_where_and_the_fix(
    damaged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RasterFormatError) as err:
        read_orthophoto(damaged["ortho"])  # the eager path reads at open time
    _one_line(str(err.value), "damaged.tif", "rows 0-1024", "gdalinfo -checksum", "re-export")
    lazy = read_orthophoto(damaged["ortho"], chunks=256)  # the block reader, when computed
    np.asarray(lazy.rgb.data[:, :256, :256])  # an intact tile reads
    with pytest.raises(RasterFormatError) as err:
        np.asarray(lazy.rgb.data[:, 512:768, 512:768])
    _one_line(str(err.value), "damaged.tif", "rows 512-768, columns 512-768", "gdalinfo")
    with pytest.raises(RasterFormatError, match=r"damaged_dsm\.tif.*heights.*gdalinfo"):
        open_dsm(damaged["dsm"])
    lazy_dsm = open_dsm(damaged["dsm"], chunks=256)
    with pytest.raises(RasterFormatError, match=r"damaged_dsm\.tif.*rows 512-768, columns 0-256"):
        np.asarray(lazy_dsm.data[512:768, :256])  # in the damaged tile (x 0, y 1)
    code = run(["coregister", "--reference", str(damaged["good"]),
                "--target", str(damaged["ortho"]), "--out", str(tmp_path / "o.tif")])  # fmt: skip
    assert code == EXIT_ERROR
    _one_line(capsys.readouterr().err, "damaged.tif", "gdalinfo -checksum")
    assert not (tmp_path / "o.tif").exists()
    code = run(["detect", "--before-ortho", str(damaged["good"]), "--after-ortho",
                str(damaged["ortho"]), "--out", str(tmp_path / "det")])  # fmt: skip
    assert code == EXIT_ERROR
    _one_line(capsys.readouterr().err, "damaged.tif", "gdalinfo -checksum")


def test_a_damaged_file_without_mask_fails_in_the_collar_pass(tmp_path: Path) -> None:
    rgb = np.random.default_rng(6).integers(1, 255, (3, 1024, 1024), dtype=np.uint8)
    rgb[:, :, :4] = 0  # a collar on the edge: the chunked collar pass reads every chunk
    path = write_geotiff(tmp_path / "nomask.tif", rgb, transform=T, crs=CRS)
    _damage_tile(path)
    with pytest.raises(RasterFormatError, match=r"nomask\.tif.*rows 512-1024.*gdalinfo"):
        read_orthophoto(path, chunks=512)


# --------------------------------------------------------------------------------------------
# sitewatch detect on such inputs
# --------------------------------------------------------------------------------------------


def _rewrite(src: Path, dst: Path, dtype: str) -> np.ndarray:
    """The orthophoto without its mask (its nodata area, black, becomes an edge collar), as
    uint8 or as 12-bit data in uint16; returns the original validity."""
    with rasterio.open(src) as ds:
        rgb, valid, t, crs = ds.read(), ds.dataset_mask() > 0, ds.transform, ds.crs
    assert (rgb[:, ~valid] == 0).all()
    data = rgb if dtype == "uint8" else rgb.astype(np.uint16) * 16
    write_geotiff(dst, data, transform=t, crs=crs)
    return valid


def test_detect_on_the_synthetic_site_without_masks_and_in_16_bits(
    synth_site: Any, tmp_path: Path
) -> None:
    """The synthetic site's orthophotos without their masks (before: 8-bit; after: 12-bit
    in uint16) give the leads of the originals: the collar is found exactly, and the
    assumptions are recorded in provenance.json."""
    before = tmp_path / "before.tif"
    after = tmp_path / "after.tif"
    valid_b = _rewrite(synth_site.before_ortho, before, "uint8")
    _rewrite(synth_site.after_ortho, after, "uint16")
    assert not valid_b.all()
    ortho = read_orthophoto(before)
    np.testing.assert_array_equal(ortho.valid.values, valid_b)
    common = {
        "before_dsm": synth_site.before_dsm,
        "after_dsm": synth_site.after_dsm,
        "permits": synth_site.permits,
        "site": synth_site.site,
        "before_date": "2025-04-15",
        "after_date": "2025-10-15",
        "params": DetectParams(chunk_px=512),
        "write_registered": False,
    }
    reference = run_detect(
        synth_site.before_ortho, synth_site.after_ortho, tmp_path / "a", **common
    )
    rewritten = run_detect(before, after, tmp_path / "b", **common)
    assert len(reference.leads) >= 5
    assert sorted(x.lead_class for x in rewritten.leads) == sorted(
        x.lead_class for x in reference.leads
    )
    for lead in reference.leads:
        best = max(
            lead.geometry.intersection(o.geometry).area / lead.geometry.union(o.geometry).area
            for o in rewritten.leads
        )
        assert best > 0.8, lead.lead_class
    prov = json.loads(rewritten.provenance_json.read_text())
    b, a = prov["inputs"]["before_ortho"], prov["inputs"]["after_ortho"]
    assert b["validity"] == "edge collar" and b["collar_px"] == int((~valid_b).sum())
    assert a["scaling"]["method"] == "percentile" and a["scaling"]["source_dtype"] == "uint16"
    assert any("collar" in x for x in b["assumptions"])
    assert any("percentiles" in x for x in a["assumptions"])


def _flat_epoch(tmp_path: Path, name: str, rgb: np.ndarray, **kw: Any) -> Path:
    return _write(tmp_path / name, rgb, mask=np.ones(rgb.shape[-2:], bool), **kw)


def test_detect_takes_grey_in_height_mode_only_and_nir_when_both_have_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = 128
    scene = _texture(n, n)
    dsm = write_geotiff(
        tmp_path / "d.tif", np.full((n, n), 5.0, np.float32), transform=T, crs=CRS, nodata=-9999.0
    )
    grey = _flat_epoch(tmp_path, "grey.tif", scene[1])
    rgb = _flat_epoch(tmp_path, "rgb.tif", scene, colorinterp=(CI.red, CI.green, CI.blue))
    with pytest.raises(RasterFormatError) as err:
        run_detect(grey, rgb, tmp_path / "rgbonly")
    _one_line(str(err.value), "grey.tif", "RGB-only mode compares colours", "--before-dsm")
    res = run_detect(grey, rgb, tmp_path / "height", before_dsm=dsm, after_dsm=dsm)
    prov = json.loads(res.provenance_json.read_text())
    assert prov["inputs"]["before_ortho"]["representation"] == "grey"
    assert "colour cues" in " ".join(prov["inputs"]["before_ortho"]["assumptions"])
    rgbn = _flat_epoch(
        tmp_path,
        "rgbn.tif",
        np.concatenate([scene, scene[:1]]),
        colorinterp=(CI.red, CI.green, CI.blue, CI.nir),
    )
    with caplog.at_level(logging.WARNING, logger="survey"):
        res = run_detect(rgbn, rgb, tmp_path / "one_nir", before_dsm=dsm, after_dsm=dsm)
    prov = json.loads(res.provenance_json.read_text())
    b = prov["inputs"]["before_ortho"]
    assert b["nir"] is False and b["band_roles"]["nir"] == 4
    assert "the after orthophoto has none" in " ".join(b["assumptions"])
    assert len([r for r in caplog.records if "rgbn.tif" in r.getMessage()]) == 1
    res = run_detect(rgbn, rgbn, tmp_path / "two_nir", before_dsm=dsm, after_dsm=dsm)
    prov = json.loads(res.provenance_json.read_text())
    assert prov["inputs"]["before_ortho"]["nir"] and prov["inputs"]["after_ortho"]["nir"]


def test_align_epoch_warps_the_nir_band_like_the_colour_bands(tmp_path: Path) -> None:
    from change_detection.grids import align_epoch

    shape = (192, 224)
    scene = make_scene(shape, seed=3)
    ref = np.stack([render(scene)] * 3).round().astype(np.uint8)
    tgt = np.stack([sample(render(scene), shift_push(2.5, -1.25))] * 3).round().astype(np.uint8)
    path = _write(
        tmp_path / "t.tif",
        np.concatenate([tgt, tgt[:1]]),
        colorinterp=(CI.red, CI.green, CI.blue, CI.nir),
        mask=np.ones(shape, bool),
    )
    ref_p = _write(tmp_path / "r.tif", ref, colorinterp=(CI.red, CI.green, CI.blue), nodata=0)
    target = read_orthophoto(path)
    reference = read_orthophoto(ref_p)
    aligned = align_epoch(reference.rgb, target.rgb, target.valid, target_nir=target.nir)
    assert aligned.nir is not None and aligned.nir.dtype == np.uint8
    np.testing.assert_array_equal(aligned.nir.values, aligned.rgb.values[0])
    assert aligned.nir.rio.transform() == reference.rgb.rio.transform()


# --------------------------------------------------------------------------------------------
# Real rasters (../shared/realdata)
# --------------------------------------------------------------------------------------------

MULTIDATE = ("1_30", "2_40", "3_70", "4_100")


@pytest.mark.realdata
def test_real_multidate_and_dsm_rasters_through_the_readers(realdata: Path) -> None:
    """The FIELDimageR float32 RGB mosaics: 3 undeclared bands (RGB by convention) with
    values in 0-255 (a fixed scale, no stretch), nodata declared; the DSMs are heights."""
    for date in MULTIDATE:
        path = realdata / f"rasters/multidate/{date}_RGB.tif"
        ortho = read_orthophoto(path)
        assert ortho.representation == "rgb" and ortho.band_roles["red"] == 1
        assert ortho.scaling is not None and ortho.scaling.method == "fixed"
        assert ortho.scaling.hi["red"] == 255.0
        assert bool(ortho.valid.values.all()) and ortho.validity.startswith("nodata value")
        assert 20 <= float(ortho.rgb.mean()) <= 200
        assert heights_reason(realdata / f"rasters/multidate/{date}_dsm.tif") is not None
    d2spy = realdata / "rasters/dsm/d2spy_dsm.tif"
    assert heights_reason(d2spy) is not None
    dsm = open_dsm(d2spy)
    assert 187.5 < float(dsm.min()) < float(dsm.max()) < 188.5


@pytest.mark.realdata
def test_real_dates_coregistered_sanely(realdata: Path, tmp_path: Path) -> None:
    """Two dates of the real multi-date set (crops grown between them; 71 px wide rasters,
    pixel sizes differ by 1.6 %): orthophotos and DSMs. Measured: RGB 3_70 -> 4_100 and DSM
    both leave at most the coarse whole-image shift (under 1 px, about 0.2 m), at confidence
    0.2; the DSM vertical offset is 5 mm. Sane means no confident wrong answer."""
    root = realdata / "rasters/multidate"
    for kind in ("RGB", "dsm"):
        res = coregister_files(root / f"3_70_{kind}.tif", root / f"4_100_{kind}.tif",
                               tmp_path / f"{kind}.tif")  # fmt: skip
        rep = res.report
        assert np.hypot(rep["shift_east_m"], rep["shift_north_m"]) < 0.5
        assert rep["confidence"] <= 0.3 or rep["rmse_px"] is not None
        want = "heights" if kind == "dsm" else "rgb"
        assert rep["inputs"]["target"]["representation"] == want
        if kind == "dsm":
            assert abs(rep["vertical_offset_m"]) < 0.3


@pytest.mark.realdata
def test_real_dsm_with_a_planted_shift_is_recovered(realdata: Path, tmp_path: Path) -> None:
    """The real d2spy DSM (957 x 640 px, 1 cm) against a copy of itself moved by (-1.37,
    2.62) px and raised 0.5 m, with the moved nodata: measured error 0.002 px, confidence
    1.0, vertical offset 0.500 m."""
    src = realdata / "rasters/dsm/d2spy_dsm.tif"
    with rasterio.open(src) as ds:
        z = ds.read(1, masked=True).filled(np.nan).astype(np.float64)
        t, crs = ds.transform, ds.crs
    push = shift_push(-1.37, 2.62)
    moved = sample(np.where(np.isfinite(z), z, np.nanmean(z)), push, order=3) + 0.5
    moved[np.isnan(sample(z, push, order=1))] = np.nan
    tgt = write_geotiff(tmp_path / "moved.tif", moved.astype(np.float32), transform=t, crs=crs,
                        nodata=np.nan)  # fmt: skip
    rep = coregister_files(src, tgt, tmp_path / "out.tif").report
    assert rep["shift_x_px"] == pytest.approx(-1.37, abs=0.05)
    assert rep["shift_y_px"] == pytest.approx(2.62, abs=0.05)
    assert rep["vertical_offset_m"] == pytest.approx(0.5, abs=0.01)
