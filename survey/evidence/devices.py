"""Which device made a file: camera and drone serials from a photo, the format of a log,
the grid of a georeferenced raster.

Read from the copy in the store, never from the original again, and cheaply: Pillow opens a
photo lazily (the header, EXIF and XMP blocks, not the pixels), GDAL a raster's header (with
its ``.aux.xml`` side files off, so nothing is written beside the stored copy), and a log is
recognised by its first bytes. Fields, each present only when found:

* photos — ``make``, ``model`` (EXIF), ``camera_serial`` (EXIF BodySerialNumber, then
  CameraSerialNumber, then XMP ``aux:SerialNumber`` or ``drone-dji:CameraSerialNumber``),
  ``drone_serial`` (XMP ``drone-dji:DroneSerialNumber``), ``drone_model`` (XMP
  ``drone-dji:DroneModel``), ``camera_time`` (EXIF DateTimeOriginal as written, the camera's
  clock), and ``sources`` naming the tag of each serial;
* rasters — a TIFF (classic or BigTIFF) that is georeferenced (GeoKeys, a CRS, a geotransform
  or ground control points: an orthophoto, a DSM), kind ``raster``: ``format`` (``GeoTIFF``),
  ``width``, ``height``, ``bands`` and ``dtype``, ``crs`` (``EPSG:n`` or the CRS's WKT),
  ``pixel_size`` (x, y in the CRS's units), and the TIFF ``software`` and ``datetime`` tags
  (what wrote it, when); a TIFF without georeferencing is a photo (a camera's TIFF or DNG);
* flight logs (tlog, DataFlash, ULog, :func:`survey.ingest.detect_log_format`) — ``format``;
  and, from :func:`survey.ingest.read_log`, the flight's first and last UTC fix times and how
  UTC was obtained (the log readers expose no vehicle serial today).
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

__all__ = ["describe_file"]

log = logging.getLogger(__name__)

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_IMAGE_MAGIC = (b"\xff\xd8\xff", *_TIFF_MAGIC)
_EXIF_IFD = 0x8769
_MAKE, _MODEL, _CAMERA_SERIAL = 0x010F, 0x0110, 0xC62F
_BODY_SERIAL, _DATETIME_ORIGINAL = 0xA431, 0x9003
_XMP_FIELDS = {
    "drone_serial": ("drone-dji:DroneSerialNumber",),
    "drone_model": ("drone-dji:DroneModel",),
    "camera_serial": ("aux:SerialNumber", "drone-dji:CameraSerialNumber"),
}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).replace("\x00", " ").strip() if value is not None else ""


def _xmp_value(packet: str, name: str) -> str:
    """``name="value"`` or ``<name>value</name>`` in an XMP packet (first match)."""
    m = re.search(rf'{re.escape(name)}\s*=\s*"([^"]*)"', packet) or re.search(
        rf"<{re.escape(name)}>([^<]*)</{re.escape(name)}>", packet
    )
    return m.group(1).strip() if m else ""


def _describe_photo(path: Path) -> dict[str, Any]:
    from PIL import Image

    out: dict[str, Any] = {"kind": "photo"}
    sources: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged tags: what can be read is kept
        try:
            with Image.open(path) as im:
                exif = im.getexif()
                sub = exif.get_ifd(_EXIF_IFD)
                packet = im.info.get("xmp") or exif.get(700) or b""
                out["format"] = im.format or ""
        except Exception as exc:  # Pillow raises many kinds on damaged files
            return {"kind": "file", "note": f"not readable as a photo ({exc})"}
    xmp = _text(packet) if isinstance(packet, bytes | str) else ""
    for key, value in (("make", exif.get(_MAKE)), ("model", exif.get(_MODEL))):
        if _text(value):
            out[key] = _text(value)
    for where, value in (
        ("EXIF BodySerialNumber", sub.get(_BODY_SERIAL)),
        ("EXIF CameraSerialNumber", exif.get(_CAMERA_SERIAL)),
    ):
        if _text(value):
            out["camera_serial"] = _text(value)
            sources["camera_serial"] = where
            break
    for key, names in _XMP_FIELDS.items():
        if key in out:
            continue
        for name in names:
            value = _xmp_value(xmp, name) if xmp else ""
            if value:
                out[key] = value
                sources[key] = f"XMP {name}"
                break
    if _text(sub.get(_DATETIME_ORIGINAL)):
        out["camera_time"] = _text(sub.get(_DATETIME_ORIGINAL))
    if sources:
        out["sources"] = sources
    return out


def _describe_raster(path: Path) -> dict[str, Any] | None:
    """A georeferenced raster's grid, or None when GDAL cannot open it or it has no
    georeferencing (then it is described as a photo)."""
    import rasterio
    from rasterio.errors import RasterioError

    from survey.rasters import quiet_gdal_messages

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: answered below
        try:
            with (
                quiet_gdal_messages(),
                rasterio.Env(GDAL_PAM_ENABLED="NO"),
                rasterio.open(path) as ds,
            ):
                gcps, _ = ds.gcps
                if ds.crs is None and ds.transform.is_identity and not gcps:
                    return None
                out: dict[str, Any] = {
                    "kind": "raster",
                    "format": "GeoTIFF",
                    "width": int(ds.width),
                    "height": int(ds.height),
                    "bands": int(ds.count),
                    "dtype": str(ds.dtypes[0]),
                }
                if ds.crs is not None:
                    epsg = ds.crs.to_epsg()
                    out["crs"] = f"EPSG:{epsg}" if epsg else ds.crs.to_wkt()
                if not ds.transform.is_identity:
                    out["pixel_size"] = [float(ds.res[0]), float(ds.res[1])]
                tags = ds.tags()
        except (RasterioError, OSError, ValueError):
            return None
    for key, tag in (("software", "TIFFTAG_SOFTWARE"), ("datetime", "TIFFTAG_DATETIME")):
        if _text(tags.get(tag)):
            out[key] = _text(tags[tag])
    return out


def _describe_log(path: Path, fmt: str) -> dict[str, Any]:
    from survey.errors import SurveyError
    from survey.ingest.logs import read_log

    out: dict[str, Any] = {"kind": "flight log", "format": fmt}
    try:
        flight = read_log(path)
    except (SurveyError, OSError, ValueError) as exc:
        out["note"] = f"not readable as a flight log ({exc})"
        return out
    times = flight.telemetry["time"].values
    if len(times):
        out["first_fix_utc"] = str(times[0])[:26] + "Z"
        out["last_fix_utc"] = str(times[-1])[:26] + "Z"
    out["time_source"] = flight.report.time_source
    return out


def _may_be_log(head: bytes) -> bool:
    """A cheap first look (so other files never import the log readers): ULog's magic,
    DataFlash's record header, or a MAVLink frame start after a tlog's 8-byte timestamp."""
    return (
        head.startswith(b"ULog")
        or head.startswith(b"\xa3\x95")
        or (len(head) > 8 and head[8] in (0xFD, 0xFE))
    )


def describe_file(path: Path) -> dict[str, Any]:
    """What ``path`` (a stored copy) says about the device that made it.

    Parameters
    ----------
    path : pathlib.Path
        The copy in the store (read, never written).

    Returns
    -------
    dict
        ``{"kind": "photo" | "raster" | "flight log" | "file", ...}`` (see the module
        docstring).
    """
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    if head.startswith(_TIFF_MAGIC):
        raster = _describe_raster(path)
        if raster is not None:
            return raster
    if head.startswith(_IMAGE_MAGIC):
        return _describe_photo(path)
    if not _may_be_log(head):
        return {"kind": "file"}
    from survey.ingest.logs import detect_log_format

    try:
        fmt = detect_log_format(path)
    except (OSError, ValueError):
        fmt = None
    if fmt is not None:
        return _describe_log(path, fmt)
    return {"kind": "file"}
