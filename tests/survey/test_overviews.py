"""The coarse co-registration pass from the overviews GeoTIFFs carry (survey.overviews).

Real GeoTIFFs written into ``tmp_path``: two epochs of a textured site with masks, the after
one misregistered by a planted sub-pixel shift and georeferenced on a grid offset by a
non-integer number of pixels (snapped by an offset that is no multiple of the coarse factor).
With average or nearest overviews the coarse pass reads them, and the result is the planted
shift, as without them; files without overviews take today's path (identical reports);
overviews that do not show their file fall back to it with one warning line; nothing is
written beside the inputs.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.errors
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from scipy import ndimage

from change_detection.coregistration import CoregParams
from change_detection.grids import AlignedEpoch, align_epoch, snapped_offset
from survey.imagery import Orthophoto, read_orthophoto
from survey.overviews import coarse_from_overviews
from tests.change_detection.test_coreg_overviews import assert_same_estimate, texture

SIDE = 768
#: coarse factor ceil(768 / 96) = 8, an overview level of the files
PARAMS = CoregParams(coarse_px=96, max_tiepoints=144)
#: the planted misregistration (georeferenced, shift convention, px)
SHIFT = (-7.3, 12.6)
#: where the after file's grid starts, in before pixels (x east, y south)
AFTER_GRID = (13.3, 4.6)
T = Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 4100000.0)
CRS = "EPSG:32650"


def _ground(seed: int) -> np.ndarray:
    """Grey ground texture, 64 px larger than the before grid on every side."""
    return texture((SIDE + 128, SIDE + 128), seed=seed)


def _rgb(grey: np.ndarray) -> np.ndarray:
    """uint8 (3, rows, cols) colour of a grey texture, never 0 in every band."""
    bands = [grey, 0.9 * grey + 12, 0.8 * grey + 25]
    return np.clip(np.stack(bands), 1, 255).round().astype(np.uint8)


def _collar(seed: int) -> np.ndarray:
    """A valid area of a rotated square, as a mosaic of a flight leaves it (bool)."""
    rows, cols = np.mgrid[0:SIDE, 0:SIDE] - SIDE / 2
    a = np.deg2rad(20 + 5 * seed)
    u = np.abs(rows * np.cos(a) + cols * np.sin(a))
    v = np.abs(-rows * np.sin(a) + cols * np.cos(a))
    return (u < 0.42 * SIDE) & (v < 0.45 * SIDE)


def write_ortho(
    path: Path,
    rgb: np.ndarray,
    valid: np.ndarray,
    transform: Affine,
    *,
    overviews: Resampling | None = None,
    validity: str = "mask",
    **env: Any,
) -> Path:
    """A tiled GeoTIFF (256 px tiles) whose validity is a mask band, an alpha band or a nodata
    value, with overviews at 2, 4, 8 built after the pixels (``env``: GDAL options then)."""
    data = np.where(valid, rgb, 0).astype(np.uint8)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": SIDE,
        "height": SIDE,
        "count": 4 if validity == "alpha" else 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "photometric": "RGB",
    }
    if validity == "nodata":
        profile["nodata"] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data, [1, 2, 3])
        if validity == "alpha":
            dst.write(np.where(valid, 255, 0).astype(np.uint8), 4)
            ci = ColorInterp
            dst.colorinterp = (ci.red, ci.green, ci.blue, ci.alpha)
        elif validity == "mask":
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    if overviews is not None:
        with rasterio.Env(**env), rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4, 8], overviews)
    return path


def write_epochs(
    root: Path, overviews: Resampling | None, validity: str = "mask"
) -> tuple[Path, Path]:
    """The before epoch on T; the after one showing the same ground moved by SHIFT, on a grid
    starting AFTER_GRID before pixels east and south of T."""
    root.mkdir(parents=True, exist_ok=True)
    ground = _ground(seed=1)
    before = ground[64:-64, 64:-64]
    gx, gy = AFTER_GRID
    # after pixel (r, c) lies at before pixel (r + gy, c + gx) by its georeferencing and
    # shows what the before epoch shows at (r + gy + SHIFT[1], c + gx + SHIFT[0])
    moved = ndimage.shift(ground, (-(gy + SHIFT[1]), -(gx + SHIFT[0])), order=3, mode="nearest")
    after = moved[64:-64, 64:-64]
    t_after = T * Affine.translation(gx, gy)
    b = write_ortho(
        root / "before.tif", _rgb(before), _collar(0), T, overviews=overviews, validity=validity
    )
    a = write_ortho(
        root / "after.tif",
        _rgb(after),
        _collar(1),
        t_after,
        overviews=overviews,
        validity=validity,
    )
    return b, a


def read(path: Path) -> Orthophoto:
    """As ``detect`` reads a large orthophoto: lazily, in chunks."""
    return read_orthophoto(path, 256, log_assumptions=False)


def align(before: Orthophoto, after: Orthophoto, coarse: Any = None) -> AlignedEpoch:
    return align_epoch(
        before.rgb,
        after.rgb,
        after.valid,
        reference_valid=before.valid,
        params=PARAMS,
        coarse=coarse,
    )


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> AlignedEpoch:
    """The pair without overviews, aligned as today."""
    b, a = write_epochs(tmp_path_factory.mktemp("plain"), None)
    return align(read(b), read(a))


def test_the_planted_pair_is_recovered_without_overviews(plain: AlignedEpoch) -> None:
    report = plain.report()
    assert report["shift_x_px"] == pytest.approx(SHIFT[0], abs=0.03)
    assert report["shift_y_px"] == pytest.approx(SHIFT[1], abs=0.03)
    # snapped by (-5, -13) px: no multiple of the factor 8
    assert report["grid_snap_px"] == pytest.approx([-0.3, 0.4])


@pytest.mark.parametrize("resampling", [Resampling.average, Resampling.nearest])
def test_overviews_give_the_planted_shift_as_the_full_resolution_pass(
    tmp_path: Path, plain: AlignedEpoch, resampling: Resampling
) -> None:
    b, a = write_epochs(tmp_path, resampling)
    before, after = read(b), read(a)
    assert snapped_offset(after.rgb, before.rgb) == (-5, -13)
    coarse = coarse_from_overviews(before, after, params=PARAMS)
    assert coarse is not None and coarse.factor == 8
    assert coarse.source == (f"overviews at 1/8 of both orthophotos ({resampling.name} resampling)")
    # the after overview starts at its pixel (-1, -2), 3 px above and 3 px left of the grid
    assert coarse.target_origin_px == (-3.0, -3.0)
    assert coarse.reference_origin_px == (0.0, 0.0)
    # blocks taken as valid: (nearly) those wholly valid at full resolution, none of the
    # collar's (an average overview's mask marks a block valid if any pixel under it is)
    n = SIDE // 8
    whole = _collar(0).reshape(n, 8, n, 8).all(axis=(1, 3))
    taken = coarse.reference_valid > 0.99
    assert taken.sum() >= 0.95 * whole.sum()
    if resampling == Resampling.average:
        assert not (taken & ~whole).any()
    got = align(before, after, coarse)
    result, today = got.result, plain.result
    assert abs(result.coarse_shift_px[0] - today.coarse_shift_px[0]) < 1.5
    assert abs(result.coarse_shift_px[1] - today.coarse_shift_px[1]) < 1.5
    report = got.report()
    assert report["coarse_pass"] == coarse.source
    assert report["shift_x_px"] == pytest.approx(SHIFT[0], abs=0.03)
    assert report["shift_y_px"] == pytest.approx(SHIFT[1], abs=0.03)
    assert abs(result.shift_x_px - today.shift_x_px) < 0.01
    assert abs(result.shift_y_px - today.shift_y_px) < 0.01


def test_the_same_rounded_coarse_shift_gives_the_identical_model(
    tmp_path: Path, plain: AlignedEpoch
) -> None:
    b, a = write_epochs(tmp_path, Resampling.average)
    got = align(read(b), read(a), coarse_from_overviews(read(b), read(a), params=PARAMS))
    result, today = got.result, plain.result
    # the tie windows are cut at the rounded coarse shift: the same here ((-7, 12) px on
    # the snapped grid, where the planted shift is (-7.0, 12.2))
    assert np.round(result.coarse_shift_px).tolist() == [-7.0, 12.0]
    assert np.round(today.coarse_shift_px).tolist() == [-7.0, 12.0]
    assert_same_estimate(result, today)


def test_files_without_overviews_take_todays_path(tmp_path: Path) -> None:
    b, a = write_epochs(tmp_path / "none", None)
    before, after = read(b), read(a)
    assert coarse_from_overviews(before, after, params=PARAMS) is None
    # what detect will run (coarse=coarse_from_overviews(...)) is what it ran before
    wired = align(before, after, coarse_from_overviews(before, after, params=PARAMS)).report()
    assert wired == align(before, after).report()
    # overviews in one file only: no common level
    _, a_ovr = write_epochs(tmp_path / "one", Resampling.average)
    assert coarse_from_overviews(before, read(a_ovr), params=PARAMS) is None


def test_overviews_above_the_coarse_factor_are_not_used(tmp_path: Path) -> None:
    b, a = write_epochs(tmp_path, Resampling.average)
    # 768 / 384: factor 2, and the files have 2, 4, 8: the 1/2 overview
    fine = coarse_from_overviews(read(b), read(a), params=CoregParams(coarse_px=384))
    assert fine is not None and fine.factor == 2 and fine.shape == (384, 384)
    # factor 3: the 1/2 overview averaged over 2 x 2 (factor 4, the nearest multiple)
    odd = coarse_from_overviews(read(b), read(a), params=CoregParams(coarse_px=256))
    assert odd is not None and odd.factor == 4 and "averaged over 2 x 2" in odd.source
    assert coarse_from_overviews(read(b), read(a), params=CoregParams(coarse_px=768)) is None


@pytest.mark.parametrize("validity", ["alpha", "nodata"])
def test_alpha_and_nodata_files_give_the_coarse_images_of_a_mask_file(
    tmp_path: Path, validity: str
) -> None:
    masked = write_epochs(tmp_path / "mask", Resampling.average)
    other = write_epochs(tmp_path / validity, Resampling.average, validity=validity)
    want = coarse_from_overviews(read(masked[0]), read(masked[1]), params=PARAMS)
    got = coarse_from_overviews(read(other[0]), read(other[1]), params=PARAMS)
    assert want is not None and got is not None
    np.testing.assert_array_equal(got.reference_valid, want.reference_valid)
    np.testing.assert_array_equal(got.target_valid, want.target_valid)
    np.testing.assert_allclose(got.reference_grey, want.reference_grey, atol=1e-4)
    np.testing.assert_allclose(got.target_grey, want.target_grey, atol=1e-4)


def test_12_bit_files_are_scaled_as_read_orthophoto_scales_them(tmp_path: Path) -> None:
    """16-bit data of a declared 12-bit depth (values x 16): the fixed 0..4095 scale."""
    masked = write_epochs(tmp_path / "mask", Resampling.average)
    deep = []
    for path in masked:
        with rasterio.open(path) as src:
            data, profile, mask = src.read(), src.profile, src.dataset_mask()
        profile.update(dtype="uint16", nbits=12, photometric="RGB")
        out = tmp_path / f"deep_{path.name}"
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(out, "w", **profile) as dst:
            dst.write(data.astype(np.uint16) * 16)
            dst.write_mask(mask)
        with rasterio.open(out, "r+") as dst:
            dst.build_overviews([2, 4, 8], Resampling.average)
        deep.append(out)
    want = coarse_from_overviews(read(masked[0]), read(masked[1]), params=PARAMS)
    before, after = read(deep[0]), read(deep[1])
    assert before.scaling is not None and before.scaling.method == "fixed"
    got = coarse_from_overviews(before, after, params=PARAMS)
    assert want is not None and got is not None
    np.testing.assert_array_equal(got.target_valid, want.target_valid)
    gain = 16 * 255 / 4095
    # within the rounding of the 8-bit overviews (each of 3 levels an integer average)
    np.testing.assert_allclose(got.target_grey, gain * want.target_grey, atol=1.5)


def test_a_site_crop_of_the_reference_is_placed_exactly(tmp_path: Path) -> None:
    b, a = write_epochs(tmp_path, Resampling.average)
    before, after = read(b), read(a)
    # the site starts 37 rows and 21 columns into the before file (no multiple of 8)
    grid = before.rgb.isel(y=slice(37, 37 + 680), x=slice(21, 21 + 720))
    coarse = coarse_from_overviews(before, after, grid, params=PARAMS)
    assert coarse is not None and coarse.shape == (85, 90)
    assert coarse.reference_origin_px == (3.0, 3.0)  # overview pixels (5, 3) start at 40, 24
    valid = before.valid.isel(y=slice(37, 37 + 680), x=slice(21, 21 + 720))
    got = align_epoch(
        grid, after.rgb, after.valid, reference_valid=valid, params=PARAMS, coarse=coarse
    )
    assert got.report()["coarse_pass"] == coarse.source
    # on the snapped grid the planted shift is (-7.0, 12.2) px, the crop whatever it is
    assert got.result.coarse_shift_px == pytest.approx((-7.0, 12.2), abs=1.0)
    assert got.report()["shift_x_px"] == pytest.approx(SHIFT[0], abs=0.03)
    assert got.report()["shift_y_px"] == pytest.approx(SHIFT[1], abs=0.03)


def _one_warning(caplog: pytest.LogCaptureFixture) -> str:
    """The one warning line of survey.overviews."""
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "survey.overviews"
    ]
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    return lines[0]


def test_overviews_of_other_pixels_fall_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b, a = write_epochs(tmp_path, Resampling.average)
    # the after file's pixels rewritten after its overviews were built (another site)
    with rasterio.open(a, "r+") as dst:
        dst.write(_rgb(texture((SIDE, SIDE), seed=5)), [1, 2, 3])
    with caplog.at_level(logging.WARNING, logger="survey.overviews"):
        assert coarse_from_overviews(read(b), read(a), params=PARAMS) is None
    line = _one_warning(caplog)
    assert line.startswith(f"{a}: its overview 1/8 does not show its pixels")
    assert "reads the full-resolution rasters instead" in line


def test_an_overview_masked_everywhere_falls_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b, a = write_epochs(tmp_path, Resampling.average)
    # overviews built while the mask said "no data" everywhere, the mask written after
    with rasterio.open(a, "r+") as dst:
        dst.write_mask(np.zeros((SIDE, SIDE), np.uint8))
        dst.build_overviews([2, 4, 8], Resampling.average)
        dst.write_mask(np.where(_collar(1), 255, 0).astype(np.uint8))
    with caplog.at_level(logging.WARNING, logger="survey.overviews"):
        assert coarse_from_overviews(read(b), read(a), params=PARAMS) is None
    assert _one_warning(caplog).startswith(
        f"{a}: its overview 1/8 is masked everywhere it covers the reference grid"
    )


def test_a_mask_without_overviews_falls_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # gdaladdo -ro: the overviews in a .ovr beside the file, none for its internal mask
    # (GDAL then reads every overview pixel as valid, the collar included)
    b, a = write_epochs(tmp_path, None)
    for path in (b, a):
        with rasterio.Env(TIFF_USE_OVR=True), rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4, 8], Resampling.average)
        assert path.with_suffix(".tif.ovr").exists()
    with caplog.at_level(logging.WARNING, logger="survey.overviews"):
        assert coarse_from_overviews(read(b), read(a), params=PARAMS) is None
    assert "contradicts its mask on" in _one_warning(caplog)


def test_external_overviews_with_their_masks_are_used(tmp_path: Path) -> None:
    # a file without a mask band (nodata) keeps its validity in the .ovr's pixels
    b, a = write_epochs(tmp_path, None, validity="nodata")
    for path in (b, a):
        with rasterio.Env(TIFF_USE_OVR=True), rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4, 8], Resampling.average)
    coarse = coarse_from_overviews(read(b), read(a), params=PARAMS)
    assert coarse is not None and coarse.factor == 8


def test_other_grids_and_collars_take_todays_path_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b, _ = write_epochs(tmp_path, Resampling.average)
    before = read(b)
    with caplog.at_level(logging.INFO, logger="survey.overviews"):
        # a target of another pixel size is resampled onto the grid
        coarser = write_ortho(
            tmp_path / "coarser.tif",
            _rgb(texture((SIDE, SIDE), 2)),
            _collar(1),
            Affine(0.2, 0, 500000, 0, -0.2, 4100000),
            overviews=Resampling.average,
        )
        assert coarse_from_overviews(before, read(coarser), params=PARAMS) is None
        # a file without mask, alpha or nodata: its collar is found at full resolution
        grey = _rgb(texture((SIDE, SIDE), 2))
        collar = write_ortho(
            tmp_path / "collar.tif",
            grey,
            _collar(1),
            T,
            overviews=Resampling.average,
            validity="collar",
        )
        assert coarse_from_overviews(before, read(collar), params=PARAMS) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "edge collar" in caplog.text


def test_the_inputs_are_left_untouched(tmp_path: Path) -> None:
    b, a = write_epochs(tmp_path, Resampling.nearest)
    with rasterio.open(a, "r+") as dst:  # stale, so that the check reads and rejects
        dst.write(_rgb(texture((SIDE, SIDE), seed=5)), [1, 2, 3])
    b2, a2 = write_epochs(tmp_path / "ok", Resampling.nearest)
    files = [b, a, b2, a2]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert coarse_from_overviews(read(b), read(a), params=PARAMS) is None  # checked, refused
    assert coarse_from_overviews(read(b2), read(a2), params=PARAMS) is not None
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "after.tif",
        "after.tif",
        "before.tif",
        "before.tif",
    ]


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["lgpnet_train_3.tif", "lgpnet_test_11.tif"])
def test_nearest_overviews_of_real_aerial_texture_land_within_the_search_range(
    realdata: Path, tmp_path: Path, name: str
) -> None:
    """A real aerial tile (WHU-CD, Christchurch, 0.3 m: houses, gardens, roads) against itself
    moved by a planted shift and brightened, both with gdaladdo's default (nearest)
    overviews: the coarse shift from the 1/4 overviews is within the search range, and the
    answer is the planted shift, as without overviews. (The tile against its 2016 image is
    no known answer: the two measure 4.6 px apart at confidence 0.09.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(realdata / "cd" / "WHU-CD" / "A" / name) as src:
            image = src.read().astype(np.float64)
    side = image.shape[1]
    shift = (-5.4, 3.7)
    moved = np.stack([ndimage.shift(band, (-shift[1], -shift[0]), order=3) for band in image])
    brighter = np.clip(0.8 * moved + 30, 0, 255).round().astype(np.uint8)
    # what the planted shift pulled in from outside the tile is no data
    inside = ndimage.shift(np.ones((side, side)), (-shift[1], -shift[0]), order=1) > 0.999
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": T,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "photometric": "RGB",
    }
    paths = []
    pairs = (("a", image.round().astype(np.uint8), np.ones_like(inside)), ("b", brighter, inside))
    for label, img, valid in pairs:
        path = tmp_path / f"{label}.tif"
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
            dst.write(img)
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4], Resampling.nearest)
        paths.append(path)
    params = CoregParams(coarse_px=128)
    ref, tgt = read_orthophoto(paths[0], 256), read_orthophoto(paths[1], 256)
    coarse = coarse_from_overviews(ref, tgt, params=params)
    assert coarse is not None and coarse.factor == 4
    got = align_epoch(
        ref.rgb, tgt.rgb, tgt.valid, reference_valid=ref.valid, params=params, coarse=coarse
    )
    today = align_epoch(ref.rgb, tgt.rgb, tgt.valid, reference_valid=ref.valid, params=params)
    assert got.report()["coarse_pass"] == coarse.source
    for k, want in enumerate(shift):
        assert abs(got.result.coarse_shift_px[k] - want) < 2.0  # the search range is 32 px
    assert got.result.shift_x_px == pytest.approx(shift[0], abs=0.05)
    assert got.result.shift_y_px == pytest.approx(shift[1], abs=0.05)
    assert got.result.shift_x_px == pytest.approx(today.result.shift_x_px, abs=0.01)
    assert got.result.shift_y_px == pytest.approx(today.result.shift_y_px, abs=0.01)
