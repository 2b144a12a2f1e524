"""Raster I/O: the orthophoto mask conventions, DSM checks, atomic writes, hashing.

The interpretation of unusual inputs (collars, scaling, band roles, palettes, damaged files) is
tested in ``test_real_inputs.py``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows
from affine import Affine
from rasterio.enums import ColorInterp

from survey.errors import InputFileError, NotGeoreferencedError, OutputError, RasterFormatError
from survey.rasters import atomic_path, open_dsm, open_orthophoto, sha256_file, write_geotiff

TRANSFORM = Affine(0.05, 0, 500000.0, 0, -0.05, 4100000.0)
CRS = "EPSG:32650"


def _rgb(rows: int = 64, cols: int = 80) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(1, 255, size=(3, rows, cols), dtype=np.uint8)


def _valid(rows: int = 64, cols: int = 80) -> np.ndarray:
    v = np.ones((rows, cols), bool)
    v[:5] = False
    v[:, -7:] = False
    return v


def test_orthophoto_with_mask_band(tmp_path: Path) -> None:
    rgb, valid = _rgb(), _valid()
    path = write_geotiff(tmp_path / "o.tif", rgb, transform=TRANSFORM, crs=CRS, mask=valid)
    da, v = open_orthophoto(path)
    assert da.dims == ("band", "y", "x") and da.dtype == np.uint8
    np.testing.assert_array_equal(da.values, rgb)
    np.testing.assert_array_equal(v.values, valid)
    assert da.rio.crs.to_epsg() == 32650
    assert da.rio.transform() == TRANSFORM
    with rasterio.open(path) as ds:
        assert ds.profile["tiled"] and ds.compression is not None


def test_orthophoto_with_mask_band_chunked(tmp_path: Path) -> None:
    rgb, valid = _rgb(600, 700), _valid(600, 700)
    path = write_geotiff(tmp_path / "o.tif", rgb, transform=TRANSFORM, crs=CRS, mask=valid)
    da, v = open_orthophoto(path, chunks=256)
    assert da.chunks is not None
    np.testing.assert_array_equal(v.values, valid)
    np.testing.assert_array_equal(da.values, rgb)


def test_orthophoto_with_alpha(tmp_path: Path) -> None:
    rgb, valid = _rgb(), _valid()
    rgba = np.concatenate([rgb, np.where(valid, 255, 0).astype(np.uint8)[None]])
    path = write_geotiff(
        tmp_path / "o.tif",
        rgba,
        transform=TRANSFORM,
        crs=CRS,
        colorinterp=(ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha),
    )
    da, v = open_orthophoto(path)
    assert da.sizes["band"] == 3
    np.testing.assert_array_equal(v.values, valid)


def test_orthophoto_with_nodata(tmp_path: Path) -> None:
    rgb, valid = _rgb(), _valid()
    rgb[:, ~valid] = 0
    path = write_geotiff(tmp_path / "o.tif", rgb, transform=TRANSFORM, crs=CRS, nodata=0)
    _, v = open_orthophoto(path)
    np.testing.assert_array_equal(v.values, valid)


def test_orthophoto_without_any_mask_is_read_as_all_valid(tmp_path: Path) -> None:
    """No mask, alpha or nodata (and no fill colour on the edge): every pixel is valid, and
    the file is left as it was, with nothing written beside it."""
    path = write_geotiff(tmp_path / "o.tif", _rgb(), transform=TRANSFORM, crs=CRS)
    before = path.read_bytes()
    rgb, valid = open_orthophoto(path)
    assert bool(valid.values.all())
    np.testing.assert_array_equal(rgb.values, _rgb())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif"]


def test_orthophoto_float_in_0_1_keeps_its_scale(tmp_path: Path) -> None:
    rgb, valid = _rgb(), _valid()
    data = (rgb.astype(np.float64) / 255.0).astype(np.float32)
    data[:, ~valid] = 0
    path = write_geotiff(tmp_path / "o.tif", data, transform=TRANSFORM, crs=CRS, nodata=0)
    da, v = open_orthophoto(path)
    assert da.dtype == np.uint8
    np.testing.assert_array_equal(v.values, valid)
    assert np.abs(da.values[:, valid].astype(int) - rgb[:, valid]).max() <= 1


def test_orthophoto_16bit_is_stretched_between_percentiles(tmp_path: Path) -> None:
    """Full-range 16-bit data has no display range to keep: each band is stretched between
    its 0.5 and 99.5 % percentiles (the exact mapping is tested in test_real_inputs.py)."""
    rgb, valid = _rgb(), _valid()
    data = rgb.astype(np.uint16) * 257
    data[:, ~valid] = 0
    path = write_geotiff(tmp_path / "o.tif", data, transform=TRANSFORM, crs=CRS, nodata=0)
    da, v = open_orthophoto(path)
    np.testing.assert_array_equal(v.values, valid)
    for band in range(3):
        lo, hi = np.percentile(data[band][valid].astype(np.float64), (0.5, 99.5))
        want = np.clip((data[band][valid] - lo) / (hi - lo) * 255, 0, 255)
        assert np.abs(da.values[band][valid] - want).max() <= 0.51


@pytest.mark.realdata
def test_real_float_orthophoto_and_dsm(realdata: Path) -> None:
    rgb, valid = open_orthophoto(realdata / "rasters/multidate/1_30_RGB.tif")
    assert rgb.dtype == np.uint8 and bool(valid.all())
    assert int(rgb.min()) >= 40 and int(rgb.max()) <= 160
    dsm = open_dsm(realdata / "rasters/multidate/1_30_dsm.tif")
    assert 290 < float(dsm.min()) < float(dsm.max()) < 300


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_missing_and_not_georeferenced(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nope.tif"):
        open_orthophoto(tmp_path / "nope.tif")
    path = tmp_path / "plain.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32", nodata=-9999
    ) as ds:
        ds.write(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(NotGeoreferencedError, match="no CRS"):
        open_dsm(path)


def test_dsm_nodata_becomes_nan(tmp_path: Path) -> None:
    z = np.full((40, 50), 62.5, np.float32)
    z[3:6, 4:9] = -9999
    path = write_geotiff(tmp_path / "dsm.tif", z, transform=TRANSFORM, crs=CRS, nodata=-9999)
    dsm = open_dsm(path)
    assert dsm.dims == ("y", "x") and dsm.dtype == np.float32
    assert np.isnan(dsm.values[3:6, 4:9]).all()
    assert np.nanmax(dsm.values) == pytest.approx(62.5)


def _same_arrays(lazy: object, eager: object) -> None:
    import xarray as xr

    assert isinstance(lazy, xr.DataArray) and isinstance(eager, xr.DataArray)
    assert lazy.chunks is not None and eager.chunks is None
    assert lazy.dims == eager.dims and lazy.dtype == eager.dtype
    np.testing.assert_array_equal(lazy.values, eager.values)
    for dim in lazy.dims:
        np.testing.assert_array_equal(lazy[dim].values, eager[dim].values)
    assert lazy.rio.transform() == eager.rio.transform()
    assert lazy.rio.crs == eager.rio.crs
    assert lazy.rio.nodata is eager.rio.nodata or (
        np.isnan(lazy.rio.nodata) and np.isnan(eager.rio.nodata)
    )


@pytest.mark.parametrize("convention", ["mask", "alpha", "nodata", "uint16"])
def test_chunked_orthophoto_reads_what_the_whole_read_gives(
    tmp_path: Path, convention: str
) -> None:
    """Chunks are read by our own block reader (one dataset per thread); the values, masks,
    coordinates and georeferencing are those of the eager read."""
    rgb, valid = _rgb(300, 340), _valid(300, 340)
    kw: dict[str, object] = {"transform": TRANSFORM, "crs": CRS}
    if convention == "mask":
        kw["mask"] = valid
    elif convention == "alpha":
        rgb = np.concatenate([rgb, np.where(valid, 255, 0).astype(np.uint8)[None]])
        kw["colorinterp"] = (
            ColorInterp.red,
            ColorInterp.green,
            ColorInterp.blue,
            ColorInterp.alpha,
        )
    elif convention == "nodata":
        rgb[:, ~valid] = 0
        kw["nodata"] = 0
    else:
        rgb = rgb.astype(np.uint16) * 257
        kw["mask"] = valid
    path = write_geotiff(tmp_path / "o.tif", rgb, **kw)  # type: ignore[arg-type]
    eager_rgb, eager_valid = open_orthophoto(path)
    lazy_rgb, lazy_valid = open_orthophoto(path, chunks=128)
    _same_arrays(lazy_rgb, eager_rgb)
    _same_arrays(lazy_valid, eager_valid)
    np.testing.assert_array_equal(lazy_valid.values, valid)


@pytest.mark.parametrize(
    ("dtype", "nodata", "mask"),
    [
        ("float32", -9999.0, False),
        ("float32", float("nan"), False),
        ("float64", -32767.0, False),
        ("int16", -32768, False),
        ("float32", None, True),
    ],
)
def test_chunked_dsm_reads_what_the_whole_read_gives(
    tmp_path: Path, dtype: str, nodata: float | None, mask: bool
) -> None:
    """Nodata (a value, NaN, or an internal mask instead) becomes NaN in chunks as in the
    eager masked read; other data types become float32."""
    rng = np.random.default_rng(4)
    z = (rng.normal(50, 10, (300, 340))).astype(dtype)
    holes = rng.random((300, 340)) < 0.1
    kw: dict[str, object] = {"transform": TRANSFORM, "crs": CRS}
    if nodata is not None:
        z[holes] = nodata
        kw["nodata"] = nodata
    if mask:
        kw["mask"] = ~holes
    path = write_geotiff(tmp_path / "dsm.tif", z, **kw)  # type: ignore[arg-type]
    eager = open_dsm(path)
    lazy = open_dsm(path, chunks=128)
    _same_arrays(lazy, eager)
    np.testing.assert_array_equal(np.isnan(lazy.values), holes)


def test_a_slice_of_a_chunked_raster_reads_only_its_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small windows of a large lazy raster (tie points, DSM samples) decode only what they
    cover, not the whole chunks under them; any numpy index gives what numpy gives."""
    from survey import rasters

    z = np.arange(300 * 340, dtype=np.float32).reshape(300, 340)
    path = write_geotiff(tmp_path / "dsm.tif", z, transform=TRANSFORM, crs=CRS, nodata=-1.0)
    windows = []
    heights = rasters._BlockReader.heights

    def recorded(self, window):  # type: ignore[no-untyped-def]
        windows.append((window.row_off, window.col_off, window.height, window.width))
        return heights(self, window)

    monkeypatch.setattr(rasters._BlockReader, "heights", recorded)
    lazy = open_dsm(path, chunks=128).data
    np.testing.assert_array_equal(np.asarray(lazy[130:150, 200:230]), z[130:150, 200:230])
    assert windows == [(130, 200, 20, 30)]
    for index in [
        (slice(None, None, 7), slice(5, 300, 3)),
        ([3, 140, 2], slice(250, 330)),
        (17, [0, 339, 128]),
        (slice(299, 100, -2), slice(None)),
        (slice(40, 40), slice(3, 9)),
    ]:
        np.testing.assert_array_equal(np.asarray(lazy[index]), z[index])


def test_read_view_takes_any_numpy_index(tmp_path: Path) -> None:
    """The view dask slices reads the bounding window of an index and indexes it there, so
    arrays, ints, Ellipsis and steps give numpy's answer."""
    from survey.rasters import _BlockReader, _ReadView

    rgb = _rgb(60, 70)
    path = write_geotiff(tmp_path / "o.tif", rgb, transform=TRANSFORM, crs=CRS, nodata=0)
    view = _ReadView(_BlockReader(path), "bands", rgb.shape, rgb.dtype)
    for index in [
        (slice(None), [3, 40, 2], slice(5, 9)),
        (1, [0, 59], [69, 1]),
        (Ellipsis, slice(3, 9)),
        (slice(0, 2), Ellipsis, 7),
        (slice(None), slice(50, 10, -3), np.array([True] * 35 + [False] * 35)),
    ]:
        np.testing.assert_array_equal(view[index], rgb[index])


def test_a_raster_replaced_during_a_run_is_an_error_and_close_releases_it(
    tmp_path: Path,
) -> None:
    """Blocks of two different files never mix in one array: a thread that finds the file
    replaced stops with a clear error; .close() closes the datasets the threads opened."""
    z = np.full((300, 340), 5.0, np.float32)
    path = write_geotiff(tmp_path / "dsm.tif", z, transform=TRANSFORM, crs=CRS, nodata=-1.0)
    dsm = open_dsm(path, chunks=128)
    np.asarray(dsm.data[:128, :128])
    dsm.close()
    write_geotiff(tmp_path / "dsm.tif", z + 1, transform=TRANSFORM, crs=CRS, nodata=-1.0)
    with pytest.raises(InputFileError, match="changed while it was being read"):
        np.asarray(dsm.data[128:, :])


def test_dsm_without_nodata_is_refused(tmp_path: Path) -> None:
    path = write_geotiff(
        tmp_path / "dsm.tif", np.ones((8, 8), np.float32), transform=TRANSFORM, crs=CRS
    )
    with pytest.raises(RasterFormatError, match="no nodata"):
        open_dsm(path)


def test_dsm_in_feet_is_refused(tmp_path: Path) -> None:
    path = write_geotiff(
        tmp_path / "dsm.tif", np.ones((8, 8), np.float32), transform=TRANSFORM, crs=CRS, nodata=-1
    )
    with rasterio.open(path, "r+") as ds:
        ds.units = ("ft",)
    with pytest.raises(RasterFormatError, match="'ft'.*metres"):
        open_dsm(path)


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_path_gives_default_file_mode(tmp_path: Path) -> None:
    import os

    target = tmp_path / "out.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_path_unwritable_parent(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="choose a writable"), atomic_path(blocker / "a" / "b"):
        pass


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"abc" * 1000)
    assert sha256_file(p) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_close_waits_for_reads_in_progress(tmp_path: Path) -> None:
    """``.close()`` while other threads read (what happens when one dask task of a damaged
    file fails and the caller closes the arrays while the other tasks still run) waits for
    each read instead of closing the dataset under it (that crashed GDAL); threads that read
    afterwards open the file again and get the right pixels."""
    import threading

    from survey.rasters import _BlockReader

    rgb = np.random.default_rng(2).integers(0, 255, (3, 1024, 1024), dtype=np.uint8)
    path = write_geotiff(tmp_path / "o.tif", rgb, transform=TRANSFORM, crs=CRS, nodata=0)
    reader = _BlockReader(path)
    window = rasterio.windows.Window(0, 0, 1024, 1024)
    wrong: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            if not np.array_equal(reader.bands(window, (1, 2, 3)), rgb):
                wrong.append(1)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(2000):  # the old close() crashed in 2 runs of 3 on this
        reader.close()
    stop.set()
    for t in threads:
        t.join()
    reader.close()
    assert not wrong
