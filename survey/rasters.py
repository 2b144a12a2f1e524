"""Reading and writing the rasters of a survey epoch.

Orthophotos come out of OpenDroneMap and other photogrammetry tools in three shapes: RGB with a
GDAL mask band, RGB with a nodata value, or RGBA with an alpha band. :func:`open_orthophoto`
accepts all three and returns the uint8 RGB ``DataArray`` (dims ``band, y, x``) and a boolean
validity mask (dims ``y, x``). DSMs are returned as float32 metres with NaN for nodata
(:func:`open_dsm`). Everything is written atomically through :func:`write_geotiff`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.windows
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling

from survey.errors import (
    InputFileError,
    NotGeoreferencedError,
    OutputError,
    RasterFormatError,
)

__all__ = [
    "atomic_path",
    "open_dsm",
    "open_orthophoto",
    "sha256_file",
    "write_geotiff",
]

_HASH_CHUNK = 1 << 22


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_HASH_CHUNK), b""):
                h.update(block)
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: no such file; check the path") from exc
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves no half-written file and never touches an existing one.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(
            f"{target.parent}: cannot write here ({exc.strerror}); choose a writable --out"
        ) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the output the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def write_geotiff(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    transform: Affine,
    crs: CRS | str | int,
    nodata: float | None = None,
    mask: np.ndarray | None = None,
    blocksize: int = 512,
    compress: str = "deflate",
    overviews: tuple[int, ...] = (),
    tags: dict[str, str] | None = None,
    colorinterp: tuple[ColorInterp, ...] | None = None,
) -> Path:
    """Write a tiled, compressed GeoTIFF atomically and return its path.

    Parameters
    ----------
    data : ndarray, shape (bands, rows, cols) or (rows, cols)
    mask : ndarray of bool, shape (rows, cols), optional
        Validity mask written as an internal GDAL mask band (True = valid).
    overviews : tuple of int
        Decimation factors of internal overviews (e.g. ``(2, 4, 8)``); nearest resampling
        for integer data, average for float.
    """
    arr = data[np.newaxis] if data.ndim == 2 else data
    if arr.ndim != 3:
        raise RasterFormatError(f"{path}: expected a 2-D or 3-D array, got shape {data.shape}")
    count, rows, cols = arr.shape
    crs_obj = CRS.from_user_input(crs)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": count,
        "dtype": arr.dtype.name,
        "crs": crs_obj,
        "transform": transform,
        "compress": compress,
        "predictor": 2 if np.issubdtype(arr.dtype, np.integer) else 3,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        "interleave": "pixel" if count > 1 else "band",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if count == 3 and arr.dtype == np.uint8:
        profile["photometric"] = "RGB"
    with (
        atomic_path(path) as tmp,
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        dst.write(arr)
        if mask is not None:
            dst.write_mask(np.where(mask, 255, 0).astype(np.uint8))
        if colorinterp is not None:
            dst.colorinterp = colorinterp
        if tags:
            dst.update_tags(**tags)
        if overviews:
            resampling = (
                Resampling.nearest if np.issubdtype(arr.dtype, np.integer) else Resampling.average
            )
            dst.build_overviews(list(overviews), resampling)
    return Path(path)


def _open_checked(path: str | os.PathLike[str], role: str) -> rasterio.DatasetReader:
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: {role} not found; check the path")
    try:
        with warnings.catch_warnings():
            # A missing geotransform is reported below as a one-line error of our own.
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            ds = rasterio.open(p)
    except rasterio.errors.RasterioIOError as exc:
        raise RasterFormatError(f"{p}: cannot be read as a raster ({exc}); pass a GeoTIFF") from exc
    if ds.crs is None:
        ds.close()
        raise NotGeoreferencedError(
            f"{p}: {role} has no CRS; write one with gdal_edit.py -a_srs EPSG:xxxx"
        )
    if ds.transform == Affine.identity():
        ds.close()
        raise NotGeoreferencedError(
            f"{p}: {role} has no geotransform; export it georeferenced from the photogrammetry tool"
        )
    return ds


def open_orthophoto(
    path: str | os.PathLike[str], chunks: int | None = None
) -> tuple[xr.DataArray, xr.DataArray]:
    """Open an orthophoto as (rgb, valid).

    Returns
    -------
    rgb : DataArray, uint8, dims (band, y, x), band = 1..3
    valid : DataArray, bool, dims (y, x); False where the image has no data
        (mask band, alpha band or nodata value, whichever the file declares).

    Raises
    ------
    RasterFormatError
        Fewer than 3 bands, values that cannot be mapped to 8 bits, or no way to tell
        valid pixels from nodata. 16-bit and floating-point RGB (0-1 or 0-255) are scaled.
    """
    with _open_checked(path, "orthophoto") as ds:
        if ds.count < 3:
            raise RasterFormatError(
                f"{path}: orthophoto must be RGB or RGBA, found {ds.count} band(s); "
                "export the RGB orthomosaic, not a single band or index"
            )
        has_alpha = ds.count >= 4 and ds.colorinterp[3] == ColorInterp.alpha
        flags = ds.mask_flag_enums[0]
        has_mask = any(f.name == "per_dataset" for f in flags) or has_alpha
        if not has_mask and ds.nodata is None:
            raise RasterFormatError(
                f"{path}: orthophoto has neither a mask, an alpha band nor a nodata value, so "
                "valid pixels cannot be told from fill; add one with gdal_translate -a_nodata"
            )
        scale = _to_uint8_scale(ds, path)
    kwargs: dict[str, Any] = {"masked": False}
    if chunks is not None:
        kwargs.update(chunks={"band": -1, "y": chunks, "x": chunks}, lock=False)
    raw = rioxarray.open_rasterio(path, **kwargs)
    assert isinstance(raw, xr.DataArray)
    reader = None
    if chunks is not None:
        # rioxarray gives the coordinates and metadata; the blocks are read by our reader
        reader = _BlockReader(path)
        raw = raw.copy(data=reader.lazy("bands", raw, raw.dtype))
    rgb = raw.isel(band=slice(0, 3))
    rgb.attrs.pop("_FillValue", None)
    if has_alpha:
        valid = raw.isel(band=3) > 0
    elif has_mask:
        valid = _mask_array(path, rgb, reader)
    else:
        valid = (rgb != raw.rio.nodata).any("band")
    if scale is not None:
        # 16-bit or floating-point RGB (some photogrammetry tools write it): bring it to the
        # 8-bit range the detectors work in; fill values become 0.
        scaled = (rgb.where(valid, 0) * scale).clip(0, 255).round().astype(np.uint8)
        scaled.attrs = rgb.attrs
        rgb = scaled.rio.write_crs(raw.rio.crs).rio.write_transform(raw.rio.transform())
    valid = valid.drop_vars("band", errors="ignore").rename("valid")
    if reader is not None:
        # .close() on either closes the datasets the reader's threads opened
        rgb.set_close(reader.close)
        valid.set_close(reader.close)
    return rgb, valid


def _to_uint8_scale(ds: rasterio.DatasetReader, path: str | os.PathLike[str]) -> float | None:
    """Factor that brings the RGB bands to 0..255, None for 8-bit input; error if unknown."""
    dtype = np.dtype(ds.dtypes[0])
    if dtype == np.uint8:
        return None
    if dtype == np.uint16:
        return 255.0 / 65535.0
    if np.issubdtype(dtype, np.floating):
        # A decimated read (overviews when present) bounds the cost; no statistics are
        # computed through GDAL, which could leave a .aux.xml beside the user's file.
        k = max(1, max(ds.height, ds.width) // 1024)
        sample = ds.read(
            (1, 2, 3), out_shape=(3, max(1, ds.height // k), max(1, ds.width // k)), masked=True
        )
        top = float(sample.max()) if sample.count() else 0.0
        if top <= 1.0:
            return 255.0
        if top <= 255.0:
            return 1.0
    raise RasterFormatError(
        f"{path}: orthophoto bands are {dtype.name} with values outside 0-255; "
        "convert to 8-bit with gdal_translate -ot Byte -scale"
    )


class _BlockReader:
    """Windows of one raster read on dask's threads straight into numpy.

    GDAL datasets are not thread-safe, so each thread keeps its own open dataset, reused for
    every block it reads (reading the after epoch of the 8192 px benchmark, RGB, mask and
    DSM, took 2.13 s of CPU through rioxarray's masked reads and a file opened per mask
    block, 1.81 s this way). The arrays are built with :func:`dask.array.from_array`, whose
    reads dask schedules as it did rioxarray's; reads made root tasks of their own
    (``map_blocks``) were run ahead of their consumers and raised the peak RSS of a detection
    at 8192 px from 0.88 to 1.13 GB. The datasets close when the arrays that read through
    them are gone. Pickled (for the workers of a dask.distributed cluster), a reader carries
    only its path.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self.token = self._identity()
        self._local = threading.local()
        self._open: list[rasterio.DatasetReader] = []
        self._lock = threading.Lock()

    def _identity(self) -> str:
        stat = os.stat(self.path)
        return f"{self.path}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "token": self.token}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.token = state["path"], state["token"]
        self._local = threading.local()
        self._open = []
        self._lock = threading.Lock()

    def dataset(self) -> rasterio.DatasetReader:
        ds: rasterio.DatasetReader | None = getattr(self._local, "ds", None)
        if ds is None:
            ds = rasterio.open(self.path)
            if self._identity() != self.token:
                # a file replaced under the same name would mix two rasters in one array
                ds.close()
                raise InputFileError(
                    f"{self.path}: the file changed while it was being read; leave the inputs "
                    "untouched during a run (copy them first if another program updates them)"
                )
            self._local.ds = ds
            with self._lock:
                self._open.append(ds)
        return ds

    def close(self) -> None:
        """Close the datasets every thread opened (a thread that reads again reopens)."""
        with self._lock:
            opened, self._open = self._open, []
        for ds in opened:
            ds.close()
        self._local = threading.local()

    def bands(self, window: rasterio.windows.Window) -> np.ndarray:
        """Every band, shape (bands, rows, cols), in the file's data type."""
        return self.dataset().read(window=window)

    def valid(self, window: rasterio.windows.Window) -> np.ndarray:
        """The dataset mask (True = data), shape (rows, cols)."""
        return np.asarray(self.dataset().dataset_mask(window=window) > 0)

    def heights(self, window: rasterio.windows.Window) -> np.ndarray:
        """Band 1 as float32 with NaN where GDAL's mask says nodata (as a masked read)."""
        ds = self.dataset()
        raw = ds.read(1, window=window)
        flags = ds.mask_flag_enums[0]
        if MaskFlags.all_valid in flags:
            invalid = None
        elif MaskFlags.nodata in flags:
            # GDAL's nodata mask, without reading the band a second time
            nodata = np.asarray(ds.nodata, dtype=raw.dtype)
            invalid = np.isnan(raw) if np.isnan(nodata) else raw == nodata
        else:
            invalid = ds.read_masks(1, window=window) == 0
        out = raw.astype(np.float32, copy=False)
        if invalid is not None:
            out[invalid] = np.nan
        return out

    def lazy(self, what: str, template: xr.DataArray, dtype: Any) -> Any:
        """A dask array of ``what`` (``bands``, ``valid`` or ``heights``) on the chunks of
        ``template`` (dims ``band, y, x`` or ``y, x``). A slice of it reads only the pixels
        it covers (dask hands the composed slice to the reader), not whole chunks."""
        import dask.array as da
        from dask.base import tokenize

        assert template.chunks is not None
        chunks = template.chunks
        view = _ReadView(self, what, tuple(template.shape), np.dtype(dtype))
        return da.from_array(
            view,
            chunks=chunks,
            name=f"read-{what}-{tokenize(self.token, chunks)}",
            asarray=False,
            lock=False,
            meta=np.zeros((0,) * len(chunks), dtype),
        )


class _ReadView:
    """What :func:`dask.array.from_array` slices: ``[..., rows, cols]`` reads the window the
    index covers (any numpy index on the last two axes; the others index the result)."""

    def __init__(self, reader: _BlockReader, what: str, shape: tuple[int, ...], dtype: Any):
        self.reader = reader
        self.what = what
        self.shape = shape
        self.ndim = len(shape)
        self.dtype = dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:at] + fill + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        spans, local = [], []
        for k, n in zip(key[-2:], self.shape[-2:], strict=True):
            # read the bounding window of what the index picks, then index it there
            if isinstance(k, slice):
                picked = range(n)[k]
                lo, hi = 0, 0
                if len(picked):
                    lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
                start, stop, step = k.indices(n)
                local.append(slice(start - lo, stop - lo if stop - lo >= 0 else None, step))
            else:
                where = np.arange(n)[k]
                lo = int(where.min()) if where.size else 0
                hi = int(where.max()) + 1 if where.size else 0
                local.append(where - lo)
            spans.append((lo, max(lo, hi)))
        (r0, r1), (c0, c1) = spans
        if r1 == r0 or c1 == c0:
            block = np.zeros((*self.shape[:-2], r1 - r0, c1 - c0), self.dtype)
        else:
            window = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
            block = getattr(self.reader, self.what)(window)
        return np.asarray(block[(*key[:-2], *local)])


def _mask_array(
    path: str | os.PathLike[str], like: xr.DataArray, reader: _BlockReader | None
) -> xr.DataArray:
    """The dataset mask on ``like``'s grid: read now, or lazily through ``reader``."""
    coords = {"y": like["y"], "x": like["x"]}
    if reader is None:
        with rasterio.open(path) as ds:
            m = ds.dataset_mask() > 0
        out = xr.DataArray(m, dims=("y", "x"), coords=coords)
    else:
        template = like.isel(band=0, drop=True) if "band" in like.dims else like
        arr = reader.lazy("valid", template, bool)
        out = xr.DataArray(arr, dims=("y", "x"), coords=coords)
    out = out.rio.write_crs(like.rio.crs).rio.write_transform(like.rio.transform())
    return out


def open_dsm(path: str | os.PathLike[str], chunks: int | None = None) -> xr.DataArray:
    """Open a DSM as float32 metres with NaN for nodata, dims (y, x).

    Raises
    ------
    RasterFormatError
        Several bands, no nodata declared, or a vertical unit that is not metres.
    """
    with _open_checked(path, "DSM") as ds:
        if ds.count != 1:
            raise RasterFormatError(f"{path}: a DSM has one band, found {ds.count}")
        units = (ds.units[0] or "").lower() if ds.units else ""
        if units and units not in ("m", "metre", "meter", "metres", "meters"):
            raise RasterFormatError(
                f"{path}: DSM heights are in {units!r}; convert them to metres "
                "(e.g. gdal_calc.py --calc='A*0.3048') and set the unit to 'm'"
            )
        if ds.nodata is None and not any(f.name == "per_dataset" for f in ds.mask_flag_enums[0]):
            raise RasterFormatError(
                f"{path}: DSM declares no nodata value, so holes would read as real heights; "
                "set one with gdal_edit.py -a_nodata -9999"
            )
    kwargs: dict[str, Any] = {"masked": True}
    if chunks is not None:
        kwargs.update(chunks={"band": 1, "y": chunks, "x": chunks}, lock=False)
    raw = rioxarray.open_rasterio(path, **kwargs)
    assert isinstance(raw, xr.DataArray)
    dsm = raw.squeeze("band", drop=True)
    reader = None
    if chunks is not None:
        # rioxarray gives the coordinates and metadata; the blocks are read by our reader
        reader = _BlockReader(path)
        dsm = dsm.copy(data=reader.lazy("heights", dsm, np.float32))
    dsm = dsm.astype(np.float32)
    dsm.attrs.pop("_FillValue", None)
    dsm = dsm.rio.write_nodata(np.nan, encoded=False).rename("dsm")
    if reader is not None:
        dsm.set_close(reader.close)  # .close() closes the datasets its threads opened
    return dsm
