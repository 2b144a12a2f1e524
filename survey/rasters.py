"""Reading and writing the rasters of a survey epoch: files, windows and blocks.

This module is the file side: opening a raster read-only and checking its georeferencing
(:func:`open_checked`), its coordinates and metadata as an xarray template
(:func:`open_template`), reading windows of it on dask's threads (:class:`_BlockReader`, where
every decode failure becomes a one-line :class:`~survey.errors.RasterFormatError` naming the
file, the window and the fix), DSMs as float32 metres with NaN for nodata (:func:`open_dsm`),
and writing GeoTIFFs atomically (:func:`write_geotiff`, :func:`atomic_path`). A damaged file
is one line naming it whatever part is damaged (a directory of several images, a layout GDAL
fails to read, a geotransform that is missing or puts the raster nowhere, a tile), and GDAL's
messages about it are kept off stderr (:func:`quiet_gdal_messages`).

What the bands of an orthophoto *mean* (band roles, scaling to 8 bits, the collar of a file
without a mask, palettes, greyscale) is :mod:`survey.imagery`; :func:`open_orthophoto` is kept
here for its callers and returns ``(rgb, valid)`` from :func:`survey.imagery.read_orthophoto`.

The module is over the house's ~500 lines because it is one subject, raster files as GDAL
gives them, read and written; most of the length is the checks of damaged files found by the
fuzz campaign (``tests/test_fuzz_inputs.py``), each with its one-line message.
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
    SurveyError,
)

__all__ = [
    "OPEN_ERRORS",
    "READ_ERRORS",
    "atomic_path",
    "damaged_raster_error",
    "open_checked",
    "open_dsm",
    "open_orthophoto",
    "open_template",
    "quiet_gdal_messages",
    "quiet_nans",
    "sha256_file",
    "write_geotiff",
]

#: What rasterio raises when GDAL cannot decode the pixels of a file (a damaged tile, a file
#: cut short): "Read failed. See previous exception for details." with GDAL's message chained.
READ_ERRORS: tuple[type[BaseException], ...] = (rasterio.errors.RasterioError, CPLE_BaseError)

#: What opening a damaged file can raise besides: a UnicodeDecodeError when GDAL's message
#: quotes bytes of the file that are not UTF-8.
OPEN_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, UnicodeDecodeError)

_HASH_CHUNK = 1 << 22

try:  # rasterio >= 1.0 has it, unexported: GDAL's quiet error handler, pushed for one thread
    from rasterio._env import catch_errors as _gdal_quiet_handler
except ImportError:  # pragma: no cover (a rasterio without it: GDAL's messages stay on)
    _gdal_quiet_handler = contextlib.nullcontext


@contextlib.contextmanager
def quiet_gdal_messages() -> Iterator[None]:
    """Keep GDAL's messages about a file off stderr while it is opened or read (this thread).

    rasterio passes each GDAL message to its logger through a C callback that decodes it as
    UTF-8. GDAL quotes bytes of a damaged file in some messages (the XML of a damaged
    ``GDAL_METADATA`` tag: "Didn't find expected '=' for value of attribute '\\xaa'"), the
    decoding fails inside the callback, and Python prints "Exception ignored in:
    'rasterio._env.log_error'" with a traceback on stderr, however the read ends. Outside
    rasterio's handler (a thread with no rasterio environment) GDAL prints its own "ERROR 1:"
    lines. Inside a ``rasterio.Env`` (so that ``rasterio.open`` keeps it instead of pushing
    its handler), GDAL's quiet handler is pushed for this thread: nothing is printed.
    Failures still raise rasterio's exceptions (they read GDAL's last error, not the
    handler), which the readers turn into one line naming the file.
    """
    with rasterio.Env(), _gdal_quiet_handler():
        yield


def quiet_nans(values: np.ndarray) -> np.ndarray:
    """``values`` with every NaN a quiet NaN (float data; other types as they are).

    A bit flipped in a float raster can make a signalling NaN, which numpy's casts and
    arithmetic report as "invalid value encountered" (a RuntimeWarning printed to the user,
    an error under pytest). Selecting is not arithmetic: the NaNs are replaced by copying.
    """
    if not np.issubdtype(values.dtype, np.floating):
        return values
    nan = np.isnan(values)
    return np.where(nan, np.nan, values) if nan.any() else values


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


def open_checked(path: str | os.PathLike[str], role: str) -> rasterio.DatasetReader:
    """Open a raster read-only, checked to be one georeferenced image.

    Parameters
    ----------
    path : path
    role : str
        What the file is, for messages (``"DSM"``, ``"before orthophoto"``).

    Returns
    -------
    rasterio.DatasetReader
        Open; the caller closes it (``with open_checked(...) as ds``).

    Raises
    ------
    InputFileError
        The file does not exist.
    RasterFormatError
        GDAL cannot open it, or it holds several images (see :func:`_several_images`).
    NotGeoreferencedError
        No CRS, no geotransform (GDAL found none: rasterio's ``NotGeoreferencedWarning``,
        which is not passed on, or the identity), or one that puts the raster nowhere
        (non-finite corners, a pixel of no size).
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: {role} not found; check the path")
    with quiet_gdal_messages():
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ds = rasterio.open(p)
        except OPEN_ERRORS as exc:
            detail = _gdal_reason(exc)
            raise RasterFormatError(
                f"{p}: cannot be read as a raster ({detail}); pass a GeoTIFF (if it is one, it "
                "is damaged: re-export it or copy it again)"
            ) from exc
        # GDAL found no geotransform: rasterio warns and returns what it has (the identity,
        # or a pixel scale without a tie point, which puts the raster at 0, 0). Reported below.
        no_transform = False
        for w in caught:
            if issubclass(w.category, rasterio.errors.NotGeoreferencedWarning):
                no_transform = True
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        problem: SurveyError | None = _several_images(ds, p, role) or _unreadable_layout(
            ds, p, role
        )
        if problem is None:
            problem = _georeferencing_problem(ds, p, role, no_transform)
    if problem is not None:
        ds.close()
        raise problem
    return ds


#: The former private name of :func:`open_checked`, for code written against it.
_open_checked = open_checked


def _unreadable_layout(
    ds: rasterio.DatasetReader, path: Path, role: str
) -> RasterFormatError | None:
    """The error for a file whose band layout GDAL fails to read, or None.

    A damaged directory of a TIFF (a mask's or an overview's) is found when GDAL walks the
    directories, which listing the file's images does: GDAL reports the failure but goes on,
    and rasterio raises it from the next call that checks GDAL's error state (the colour
    interpretation, in the readers). The properties the readers use are read here, so the
    file is refused in one line naming it instead.
    """
    try:
        # each of these reads checks GDAL's error state
        ds.colorinterp  # noqa: B018
        ds.mask_flag_enums  # noqa: B018
        ds.descriptions  # noqa: B018
        ds.units  # noqa: B018
        ds.tags()
        for band in range(1, ds.count + 1):
            ds.tags(band)
    except READ_ERRORS as exc:
        return RasterFormatError(
            f"{path}: the {role}'s layout cannot be read ({_gdal_reason(exc)}); the file is "
            f"damaged: re-export it or copy it again, and check it with gdalinfo {path}"
        )
    return None


def _gdal_reason(exc: BaseException) -> str:
    """GDAL's reason for a failure, on one line (its bytes that are not UTF-8 replaced)."""
    if isinstance(exc, UnicodeDecodeError):
        return "GDAL refused it, quoting bytes of the file that are not UTF-8 text"
    return " ".join(str(exc).split())


def _georeferencing_problem(
    ds: rasterio.DatasetReader, path: Path, role: str, no_transform: bool
) -> NotGeoreferencedError | None:
    """Why the raster cannot be placed (no CRS, no usable geotransform), or None."""
    if ds.crs is None:
        return NotGeoreferencedError(
            f"{path}: {role} has no CRS; write one with gdal_edit.py -a_srs EPSG:xxxx"
        )
    t = ds.transform
    if no_transform or t == Affine.identity():
        return NotGeoreferencedError(
            f"{path}: {role} has no geotransform; export it georeferenced from the "
            "photogrammetry tool"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        corners = np.array([t * (c, r) for c in (0, ds.width) for r in (0, ds.height)])
    if not np.isfinite(corners).all() or t.a * t.e - t.b * t.d == 0:
        return NotGeoreferencedError(
            f"{path}: {role} has a geotransform that puts it nowhere (pixel size "
            f"{t.a:.6g} x {t.e:.6g}, origin {t.c:.6g}, {t.f:.6g}); the file is damaged or "
            "was exported wrongly: export it georeferenced again"
        )
    return None


def _several_images(ds: rasterio.DatasetReader, path: Path, role: str) -> RasterFormatError | None:
    """The error for a file that holds several images (GDAL lists them as subdatasets), or
    None.

    A GeoTIFF orthophoto or DSM is one image; its overviews and mask are part of it and are
    not listed. Several images mean a damaged file (a mask or an overview whose directory no
    longer says what it is: reading the first image alone would drop the mask without a
    word) or a multi-page TIFF, whose pages cannot be told apart: refused, not guessed.
    """
    images = list(ds.subdatasets or ())
    if not images:
        return None
    names = ", ".join(":".join(name.split(":")[:2]) for name in images[:3])  # GTIFF_DIR:1
    more = f" and {len(images) - 3} more" if len(images) > 3 else ""
    return RasterFormatError(
        f"{path}: the {role} holds {len(images)} images ({names}{more}) where a GeoTIFF holds "
        "one (its overviews and mask are part of it): the file is damaged or a multi-page "
        f"TIFF; re-export the {role} as one GeoTIFF (check it with gdalinfo {path})"
    )


def open_template(path: str | os.PathLike[str], role: str, **kwargs: Any) -> xr.DataArray:
    """The raster as :func:`rioxarray.open_rasterio` opens it: coordinates, CRS, transform and
    attributes, its pixels not read (the callers read them through :class:`_BlockReader`).

    Call it after :func:`open_checked`, which has refused what this cannot open: its
    ``NotGeoreferencedWarning`` is not passed on (the georeferencing was checked there), and
    a file that opens differently the second time (a damaged file: GDAL and libtiff report
    some faults only once) is the same one-line error as there.

    Parameters
    ----------
    path : path
    role : str
        What the file is, for messages.
    **kwargs
        Passed to :func:`rioxarray.open_rasterio` (``masked``, ``chunks``, ``lock``).

    Returns
    -------
    DataArray, dims (band, y, x)

    Raises
    ------
    RasterFormatError
        GDAL cannot open the file, or it holds several images.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings(), quiet_gdal_messages():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            opened = rioxarray.open_rasterio(p, **kwargs)
    except OPEN_ERRORS as exc:
        detail = _gdal_reason(exc)
        raise RasterFormatError(
            f"{p}: the {role} cannot be read as a raster ({detail}); the file is damaged: "
            f"re-export it or copy it again, and check it with gdalinfo {p}"
        ) from exc
    if isinstance(opened, xr.DataArray):
        return opened
    for part in opened if isinstance(opened, list) else [opened]:
        part.close()
    raise RasterFormatError(
        f"{p}: the {role} holds several images where a GeoTIFF holds one: the file is damaged "
        f"or a multi-page TIFF; re-export the {role} as one GeoTIFF (check it with gdalinfo {p})"
    )


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
        with quiet_gdal_messages():
            return self._entry()[0]

    def _entry(self) -> tuple[rasterio.DatasetReader, threading.Lock]:
        entry: tuple[rasterio.DatasetReader, threading.Lock] | None = getattr(
            self._local, "entry", None
        )
        if entry is None or entry[0].closed:
            # No warnings.catch_warnings here: it is not thread-safe (two threads restoring
            # each other's filters leave them changed), and the file, checked when it was
            # first opened (open_checked) and unchanged since (the token), warns of nothing.
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
        got hold of it is opened again. GDAL's messages are kept quiet meanwhile
        (:func:`quiet_gdal_messages`); a failure is raised, and reported by the caller.
        """
        with quiet_gdal_messages():
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
        out = quiet_nans(raw).astype(np.float32, copy=False)
        if invalid is not None:
            out[invalid] = np.nan
        return out

    def whole(self, what: str, *args: Any) -> np.ndarray:
        """``what`` (``bands``, ``valid`` or ``heights``) of the whole raster, read now."""
        try:
            ds = self.dataset()
        except READ_ERRORS as exc:
            raise damaged_raster_error(self.path, exc, f"the {what}") from exc
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
    with quiet_gdal_messages(), open_checked(path, "DSM") as ds:
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
    dsm = open_template(path, "DSM", **kwargs).squeeze("band", drop=True)
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
