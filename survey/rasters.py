"""Reading and writing the rasters of a survey epoch: files, windows and blocks.

This module is the file side: opening a raster read-only and checking its georeferencing
(:func:`_open_checked`), reading windows of it on dask's threads (:class:`_BlockReader`, where
every decode failure becomes a one-line :class:`~survey.errors.RasterFormatError` naming the
file, the window and the fix), DSMs as float32 metres with NaN for nodata (:func:`open_dsm`),
and writing GeoTIFFs atomically (:func:`write_geotiff`, :func:`atomic_path`).

What the bands of an orthophoto *mean* (band roles, scaling to 8 bits, the collar of a file
without a mask, palettes, greyscale) is :mod:`survey.imagery`; :func:`open_orthophoto` is kept
here for its callers and returns ``(rgb, valid)`` from :func:`survey.imagery.read_orthophoto`.
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
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling

from survey.errors import (
    InputFileError,
    NotGeoreferencedError,
    OutputError,
    RasterFormatError,
)

__all__ = [
    "READ_ERRORS",
    "atomic_path",
    "damaged_raster_error",
    "open_dsm",
    "open_orthophoto",
    "sha256_file",
    "write_geotiff",
]

#: What rasterio raises when GDAL cannot decode the pixels of a file (a damaged tile, a file
#: cut short): "Read failed. See previous exception for details." with GDAL's message chained.
READ_ERRORS: tuple[type[BaseException], ...] = (rasterio.errors.RasterioError, CPLE_BaseError)

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
        detail = " ".join(str(exc).split())
        raise RasterFormatError(
            f"{p}: cannot be read as a raster ({detail}); pass a GeoTIFF (if it is one, it is "
            "damaged: re-export it or copy it again)"
        ) from exc
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

    The file is interpreted by :func:`survey.imagery.read_orthophoto` (band roles, scaling to
    8 bits, validity from a mask band, an alpha band, a nodata value or, when none is
    declared, the edge collar; a palette is expanded). Use that function for the NIR band and
    the record of what was assumed.

    Returns
    -------
    rgb : DataArray, uint8, dims (band, y, x), band = 1..3
    valid : DataArray, bool, dims (y, x); False where the image has no data.

    Raises
    ------
    RasterFormatError
        A single grey band, bands whose red, green and blue cannot be identified, or pixels
        that cannot be decoded.
    """
    from survey.imagery import read_orthophoto

    ortho = read_orthophoto(path, chunks)
    return ortho.rgb, ortho.valid


def damaged_raster_error(
    path: str | os.PathLike[str],
    exc: BaseException,
    what: str,
    window: rasterio.windows.Window | None = None,
) -> RasterFormatError:
    """The one-line error for pixels GDAL could not decode: the file, where, GDAL's reason
    and the fix. ``what`` names the bands (``"band(s) 1, 2, 3"``, ``"the mask"``)."""
    cause = exc.__cause__ or exc.__context__
    reason = " ".join(str(cause if cause is not None else exc).split())
    where = (
        ""
        if window is None
        else (
            f" in rows {int(window.row_off)}-{int(window.row_off + window.height)}, "
            f"columns {int(window.col_off)}-{int(window.col_off + window.width)}"
        )
    )
    return RasterFormatError(
        f"{path}: {what} cannot be decoded{where} ({reason}); the file is damaged: re-export it "
        f"or copy it again, and check it with gdalinfo -checksum {path}"
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
        """This thread's open dataset (opened on first use)."""
        return self._entry()[0]

    def _entry(self) -> tuple[rasterio.DatasetReader, threading.Lock]:
        entry: tuple[rasterio.DatasetReader, threading.Lock] | None = getattr(
            self._local, "entry", None
        )
        if entry is None or entry[0].closed:
            ds = rasterio.open(self.path)
            if self._identity() != self.token:
                # a file replaced under the same name would mix two rasters in one array
                ds.close()
                raise InputFileError(
                    f"{self.path}: the file changed while it was being read; leave the inputs "
                    "untouched during a run (copy them first if another program updates them)"
                )
            entry = (ds, threading.Lock())
            self._local.entry = entry
            with self._lock:
                self._open.append(entry)
        return entry

    @contextlib.contextmanager
    def _using(self) -> Iterator[rasterio.DatasetReader]:
        """This thread's dataset, held so that :meth:`close` waits for the read to finish.

        A read that failed in one dask task does not stop the reads of other tasks already
        running; closing their datasets under them (what ``.close()`` on the arrays does when
        the error reaches the caller) crashed GDAL. A dataset closed just before its thread
        got hold of it is opened again.
        """
        while True:
            ds, held = self._entry()
            with held:
                if not ds.closed:
                    yield ds
                    return
            self._local.entry = None

    def close(self) -> None:
        """Close the datasets every thread opened, each once its read in progress is done (a
        thread that reads again reopens)."""
        with self._lock:
            opened, self._open = self._open, []
        for ds, held in opened:
            with held:
                ds.close()
        self._local = threading.local()

    def bands(
        self, window: rasterio.windows.Window, indexes: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """The bands ``indexes`` (1-based; default every band), shape (bands, rows, cols), in
        the file's data type."""
        what = "every band" if indexes is None else _band_names(indexes)
        try:
            with self._using() as ds:
                return ds.read(None if indexes is None else list(indexes), window=window)
        except READ_ERRORS as exc:
            raise damaged_raster_error(self.path, exc, what, window) from exc

    def valid(self, window: rasterio.windows.Window) -> np.ndarray:
        """The dataset mask (True = data), shape (rows, cols)."""
        try:
            with self._using() as ds:
                return np.asarray(ds.dataset_mask(window=window) > 0)
        except READ_ERRORS as exc:
            raise damaged_raster_error(self.path, exc, "the mask", window) from exc

    def heights(self, window: rasterio.windows.Window) -> np.ndarray:
        """Band 1 as float32 with NaN where GDAL's mask says nodata (as a masked read)."""
        try:
            with self._using() as ds:
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
        except READ_ERRORS as exc:
            raise damaged_raster_error(self.path, exc, "the heights (band 1)", window) from exc
        out = raw.astype(np.float32, copy=False)
        if invalid is not None:
            out[invalid] = np.nan
        return out

    def whole(self, what: str, *args: Any) -> np.ndarray:
        """``what`` (``bands``, ``valid`` or ``heights``) of the whole raster, read now."""
        ds = self.dataset()
        return np.asarray(
            getattr(self, what)(rasterio.windows.Window(0, 0, ds.width, ds.height), *args)
        )

    def lazy(
        self,
        what: str,
        template: xr.DataArray,
        dtype: Any,
        indexes: tuple[int, ...] | None = None,
    ) -> Any:
        """A dask array of ``what`` (``bands``, ``valid`` or ``heights``) on the chunks of
        ``template`` (dims ``band, y, x`` or ``y, x``); ``bands`` reads the bands ``indexes``
        (1-based, default all). A slice of it reads only the pixels it covers (dask hands the
        composed slice to the reader), not whole chunks."""
        import dask.array as da
        from dask.base import tokenize

        assert template.chunks is not None
        chunks = template.chunks
        args = () if indexes is None else (tuple(indexes),)
        view = _ReadView(self, what, tuple(template.shape), np.dtype(dtype), args)
        return da.from_array(
            view,
            chunks=chunks,
            name=f"read-{what}-{tokenize(self.token, chunks, args)}",
            asarray=False,
            lock=False,
            meta=np.zeros((0,) * len(chunks), dtype),
        )


class _ReadView:
    """What :func:`dask.array.from_array` slices: ``[..., rows, cols]`` reads the window the
    index covers (any numpy index on the last two axes; the others index the result)."""

    def __init__(
        self,
        reader: _BlockReader,
        what: str,
        shape: tuple[int, ...],
        dtype: Any,
        args: tuple[Any, ...] = (),
    ):
        self.reader = reader
        self.what = what
        self.args = args
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
            block = getattr(self.reader, self.what)(window, *self.args)
        return np.asarray(block[(*key[:-2], *local)])


def _band_names(indexes: tuple[int, ...]) -> str:
    return ("band " if len(indexes) == 1 else "bands ") + ", ".join(str(i) for i in indexes)


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
    # rioxarray gives the coordinates and metadata; the pixels are read by our reader (the
    # whole raster now, so a damaged file is reported here, or block by block)
    reader: _BlockReader | None = _BlockReader(path)
    assert reader is not None
    if chunks is not None:
        dsm = dsm.copy(data=reader.lazy("heights", dsm, np.float32))
    else:
        try:
            dsm = dsm.copy(data=reader.whole("heights"))
        finally:
            reader.close()
        reader = None
    dsm = dsm.astype(np.float32)
    dsm.attrs.pop("_FillValue", None)
    dsm = dsm.rio.write_nodata(np.nan, encoded=False).rename("dsm")
    if reader is not None:
        dsm.set_close(reader.close)  # .close() closes the datasets its threads opened
    return dsm
