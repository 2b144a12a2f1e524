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


# --- damaged directories: one line naming the file, never a warning or an assertion ------------


def _tiff_entries(raw: bytes) -> list[tuple[int, int, int]]:
    """(directory index, offset of the 12-byte entry, tag) of every entry of a classic
    little-endian TIFF, directory by directory."""
    assert raw[:4] == b"II*\x00", "a classic little-endian TIFF"
    out = []
    ifd, k = int.from_bytes(raw[4:8], "little"), 0
    while ifd:
        n = int.from_bytes(raw[ifd : ifd + 2], "little")
        for i in range(n):
            at = ifd + 2 + 12 * i
            out.append((k, at, int.from_bytes(raw[at : at + 2], "little")))
        ifd, k = int.from_bytes(raw[ifd + 2 + 12 * n : ifd + 6 + 12 * n], "little"), k + 1
    return out


def _entry(raw: bytes, directory: int, tag: int) -> int:
    return next(at for k, at, t in _tiff_entries(raw) if k == directory and t == tag)


def _damaged(path: Path, damage: str) -> Path:
    """``path`` damaged in one place of its TIFF directories (the pixels stay intact)."""
    raw = bytearray(path.read_bytes())
    if damage == "mask not marked":  # NewSubfileType of the mask's directory: 4 -> 0
        at = _entry(raw, 1, 254)
        raw[at + 8 : at + 12] = (0).to_bytes(4, "little")
    elif damage == "no tie point":  # ModelTiepointTag renumbered to a tag nobody knows
        at = _entry(raw, 0, 33922)
        raw[at : at + 2] = (33923).to_bytes(2, "little")
    elif damage == "huge pixel":  # ModelPixelScaleTag x = 1.8e307 (a flipped exponent bit)
        at = _entry(raw, 0, 33550)
        where = int.from_bytes(raw[at + 8 : at + 12], "little")
        raw[where : where + 8] = np.float64(1.797e307).tobytes()
    path.write_bytes(bytes(raw))
    return path


def _small_ortho(path: Path) -> Path:
    return write_geotiff(path, _rgb(48, 48), transform=TRANSFORM, crs=CRS, mask=_valid(48, 48))


def _small_dsm(path: Path, mask: bool = False) -> Path:
    z = np.full((48, 48), 30.0, np.float32)
    return write_geotiff(
        path, z, transform=TRANSFORM, crs=CRS, nodata=-9999.0, mask=_valid(48, 48) if mask else None
    )


@pytest.mark.parametrize("chunks", [None, 16])
def test_a_file_of_several_images_is_refused_in_one_line(
    tmp_path: Path, chunks: int | None
) -> None:
    """A mask whose directory no longer says it is one makes GDAL list two images: rioxarray
    then returned a Dataset and the reader stopped on an AssertionError (the fuzz campaign).
    Reading the first image alone would drop the mask without a word: refused."""
    from survey.sites import read_dem_sampler

    ortho = _damaged(_small_ortho(tmp_path / "ortho.tif"), "mask not marked")
    with rasterio.open(ortho) as ds:
        assert len(ds.subdatasets) == 2  # the damage is what the test says it is
    with pytest.raises(RasterFormatError) as info:
        open_orthophoto(ortho, chunks=chunks)
    text = str(info.value)
    assert text.startswith(f"{ortho}: the orthophoto holds 2 images (GTIFF_DIR:1, GTIFF_DIR:2)")
    assert "damaged or a multi-page TIFF; re-export" in text and "\n" not in text
    dsm = _damaged(_small_dsm(tmp_path / "dsm.tif", mask=True), "mask not marked")
    with pytest.raises(RasterFormatError, match=r"dsm\.tif: the DSM holds 2 images"):
        open_dsm(dsm, chunks=chunks)
    with pytest.raises(RasterFormatError, match=r"dsm\.tif: the DEM holds 2 images"):
        read_dem_sampler(dsm, CRS)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no tie point", "has no geotransform; export it georeferenced"),
        ("huge pixel", r"has a geotransform that puts it nowhere \(pixel size 1\.797e\+307"),
    ],
)
def test_a_damaged_geotransform_is_refused_without_a_warning(
    tmp_path: Path, damage: str, message: str
) -> None:
    """A pixel scale without its tie point puts the raster at (0, 0): rasterio warns
    (NotGeoreferencedWarning, an error under pytest, two lines in the CLI) and the reader
    went on with it; a scale of 1.8e307 overflowed in rioxarray's coordinates. Each is now
    one NotGeoreferencedError (warnings are errors here: none may escape)."""
    ortho = _damaged(_small_ortho(tmp_path / "ortho.tif"), damage)
    dsm = _damaged(_small_dsm(tmp_path / "dsm.tif"), damage)
    for read, path in ((open_orthophoto, ortho), (open_dsm, dsm)):
        for chunks in (None, 16):
            with pytest.raises(NotGeoreferencedError, match=message) as info:
                read(path, chunks=chunks)
            assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_gdal_quoting_bytes_of_a_damaged_file_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL quotes the bytes of a damaged GDAL_METADATA tag ("Didn't find expected '=' for
    value of attribute '\\xaa'"); rasterio's logging callback failed to decode them and Python
    printed "Exception ignored in: 'rasterio._env.log_error'" with a traceback on stderr (12-16
    per 3,000 fuzzed orthophotos), and GDAL's own "ERROR 1:" lines came where rasterio had no
    handler. The file is read (its pixels are intact; the tag is lost), and nothing is printed."""
    import sys

    from survey.imagery import heights_reason
    from survey.sites import read_dem_sampler

    def damage(path: Path) -> Path:
        raw = path.read_bytes()
        at = raw.index(b'<Item name="SITEWATCH') + len(b"<Item ")
        path.write_bytes(raw[:at] + b"\xaa\xaa\xaa\xaa\xaa " + raw[at + 6 :])
        return path

    tags = {"SITEWATCH_SURVEY_DATE": "2025-10-15"}
    ortho = damage(
        write_geotiff(tmp_path / "ortho.tif", _rgb(48, 48), transform=TRANSFORM, crs=CRS, tags=tags)
    )
    z = np.full((48, 48), 30.0, np.float32)
    dsm = damage(
        write_geotiff(tmp_path / "dsm.tif", z, transform=TRANSFORM, crs=CRS, nodata=-1, tags=tags)
    )
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    capfd.readouterr()
    for chunks in (None, 16):
        rgb, valid = open_orthophoto(ortho, chunks=chunks)
        np.testing.assert_array_equal(rgb.values, _rgb(48, 48))
        assert bool(valid.values.all())
        assert float(open_dsm(dsm, chunks=chunks).values.max()) == 30.0
    assert heights_reason(dsm) is not None
    read_dem_sampler(dsm, CRS)
    assert unraisable == []
    assert capfd.readouterr().err == ""


def test_a_damaged_dem_for_planning_is_one_line_naming_the_file_and_the_fix(
    tmp_path: Path,
) -> None:
    """The planner's DEM sampler read through rasterio alone: a damaged tile ended in
    "Read failed. See previous exception for details." (no file, no fix)."""
    from survey.sites import read_dem_sampler

    z = np.random.default_rng(3).normal(50.0, 2.0, (1024, 1024)).astype(np.float32)
    path = write_geotiff(tmp_path / "dem.tif", z, transform=TRANSFORM, crs=CRS, nodata=-9999.0)
    with rasterio.open(path) as ds:
        off = int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
        size = int(ds.get_tag_item("BLOCK_SIZE_1_1", "TIFF", bidx=1))
    raw = bytearray(path.read_bytes())
    raw[off + 8 : off + size - 8] = bytes(range(256)) * ((size - 16) // 256) + bytes(
        (size - 16) % 256
    )
    path.write_bytes(bytes(raw))
    with pytest.raises(RasterFormatError) as info:
        read_dem_sampler(path, CRS)
    text = str(info.value)
    assert text.startswith(f"{path}: the DEM heights (band 1) cannot be decoded")
    assert f"check it with gdalinfo -checksum {path}" in text and "\n" not in text
    assert "See previous exception" not in text


def test_a_dem_in_a_local_crs_is_one_line(tmp_path: Path) -> None:
    """A damaged GeoKey directory read as a LOCAL_CS: pyproj's ProjError ("Error creating
    Transformer from CRS.") escaped from the planner's DEM sampler (the fuzz campaign)."""
    from rasterio.crs import CRS as RasterioCRS

    from survey.sites import read_dem_sampler

    local = RasterioCRS.from_wkt(
        'LOCAL_CS["WGS 84 / UTM zone 50N",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
        'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
    )
    z = np.full((48, 48), 30.0, np.float32)
    path = write_geotiff(tmp_path / "dem.tif", z, transform=TRANSFORM, crs=local, nodata=-1.0)
    with pytest.raises(NotGeoreferencedError) as info:
        read_dem_sampler(path, CRS)
    text = str(info.value)
    assert text.startswith(f"{path}: the DEM's CRS (Engineering CRS 'WGS 84 / UTM zone 50N')")
    assert "gdal_edit.py -a_srs" in text and "\n" not in text


@pytest.mark.parametrize("chunks", [None, 16])
def test_signalling_nans_of_a_damaged_dsm_are_read_as_nodata_quietly(
    tmp_path: Path, chunks: int | None
) -> None:
    """A flipped bit can make a signalling NaN: numpy's casts and arithmetic then warned
    "invalid value encountered" (the DEM sampler's float64 cast, in the fuzz campaign)."""
    from survey.sites import read_dem_sampler

    z = np.full((48, 48), 30.0, np.float32)
    z.view(np.uint32)[10, 10:13] = 0x7FA00000  # signalling NaNs
    path = write_geotiff(tmp_path / "dsm.tif", z, transform=TRANSFORM, crs=CRS, nodata=-9999.0)
    dsm = open_dsm(path, chunks=chunks).values
    assert np.isnan(dsm[10, 10:13]).all() and float(np.nanmax(dsm + 1.0)) == 31.0
    x0, y0 = TRANSFORM * (11.5, 10.5)  # the middle of the three
    height = read_dem_sampler(path, CRS)(np.array([x0]), np.array([y0]))
    assert height.tolist() == [30.0]  # a hole takes the nearest valid height
