"""Write geotagged photos: ``photos.geojson``, OpenDroneMap's ``geo.txt``, geotagged copies.

* ``photos.geojson`` — an RFC 7946 FeatureCollection, a Point per photo (``null`` geometry
  for a photo without a position) with exactly the properties ``name, sha256, time_utc, lat,
  lon, alt_m, yaw_deg, pitch_deg, roll_deg, position_source, qc`` (``qc``: a list of
  ``{"flag", "reason"}``; unknown numbers are ``null``; ``time_utc`` ISO 8601 with ``Z``).
* ``geo.txt`` — first line ``EPSG:4326``, then ``image lon lat [alt [yaw pitch roll
  [horizontal_acc vertical_acc]]]`` per photo with a position. OpenDroneMap's pitch is 0 at
  nadir: ``pitch_deg + 90`` is written.
* Geotagged copies (:func:`write_geotagged_copies`), on request only: each photo saved again
  by Pillow into another folder with the EXIF GPS position, altitude, image direction and
  (without an offset tag) the corrected UTC time; the JPEG is re-encoded with the original's
  quantisation tables and subsampling (``quality="keep"``). Originals are only read.

Every file is written atomically (:func:`survey.rasters.atomic_path`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from survey.errors import InputFileError, OutputError
from survey.ingest.geotag import GeotaggedPhoto
from survey.ingest.qc import QCFlag
from survey.rasters import atomic_path

__all__ = [
    "PHOTO_PROPERTIES",
    "geo_txt_lines",
    "photo_features",
    "write_geo_txt",
    "write_geotagged_copies",
    "write_photos_geojson",
]

#: The properties of a photo in ``photos.geojson``, in order.
PHOTO_PROPERTIES = (
    "name",
    "sha256",
    "time_utc",
    "lat",
    "lon",
    "alt_m",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "position_source",
    "qc",
)


def _num(v: float, nd: int) -> float | None:
    return round(float(v), nd) if math.isfinite(v) else None


def _iso(photo: GeotaggedPhoto) -> str | None:
    """UTC time as ISO 8601 with milliseconds and ``Z``."""
    t = photo.time_utc
    if t is None:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def photo_features(
    photos: Sequence[GeotaggedPhoto],
    flags: Sequence[Sequence[QCFlag]] | None = None,
) -> list[dict[str, Any]]:
    """GeoJSON Feature dicts of ``photos`` (module docstring); ``flags`` in the same order."""
    if flags is not None and len(flags) != len(photos):
        raise ValueError(f"{len(flags)} QC flag lists for {len(photos)} photos")
    feats = []
    for k, p in enumerate(photos):
        qc = [f.to_dict() for f in flags[k]] if flags is not None else []
        props = {
            "name": p.name,
            "sha256": p.image.sha256,
            "time_utc": _iso(p),
            "lat": _num(p.lat, 8),
            "lon": _num(p.lon, 8),
            "alt_m": _num(p.alt_m, 3),
            "yaw_deg": _num(p.yaw_deg, 2),
            "pitch_deg": _num(p.pitch_deg, 2),
            "roll_deg": _num(p.roll_deg, 2),
            "position_source": p.position_source,
            "qc": qc,
        }
        geom = (
            {"type": "Point", "coordinates": [props["lon"], props["lat"]]}
            if p.has_position
            else None
        )
        feats.append({"type": "Feature", "geometry": geom, "properties": props})
    return feats


def write_photos_geojson(
    photos: Sequence[GeotaggedPhoto],
    path: str | os.PathLike[str],
    flags: Sequence[Sequence[QCFlag]] | None = None,
) -> Path:
    """Write ``photos.geojson`` (module docstring); returns its path."""
    doc = {"type": "FeatureCollection", "features": photo_features(photos, flags)}
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n")
    return target


def geo_txt_lines(photos: Sequence[GeotaggedPhoto]) -> list[str]:
    """The lines of ``geo.txt`` (module docstring), header first."""
    lines = ["EPSG:4326"]
    for p in photos:
        if not p.has_position:
            continue
        cols = [p.name, f"{p.lon:.8f}", f"{p.lat:.8f}"]
        if math.isfinite(p.alt_m):
            cols.append(f"{p.alt_m:.3f}")
            angles = (p.yaw_deg, p.pitch_deg + 90.0, p.roll_deg)
            if all(math.isfinite(a) for a in angles):
                cols += [f"{a:.3f}" for a in angles]
                acc = (p.image.gps_xy_accuracy_m, p.image.gps_z_accuracy_m)
                if p.position_source == "exif" and all(math.isfinite(a) for a in acc):
                    cols += [f"{a:.3f}" for a in acc]
        lines.append(" ".join(cols))
    return lines


def write_geo_txt(photos: Sequence[GeotaggedPhoto], path: str | os.PathLike[str]) -> Path:
    """Write OpenDroneMap's ``geo.txt`` (module docstring); photos without position are left
    out. Returns its path."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(geo_txt_lines(photos)) + "\n", encoding="utf-8")
    return target


def _rational(v: float, max_den: int = 1_000_000) -> IFDRational:
    f = Fraction(abs(v)).limit_denominator(max_den)
    return IFDRational(f.numerator, f.denominator)


def _dms(v: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    v = abs(v)
    d = math.floor(v)
    m = math.floor((v - d) * 60.0)
    s = (v - d - m / 60.0) * 3600.0
    return (IFDRational(d, 1), IFDRational(m, 1), _rational(s, 100_000))


def _geotag_exif(im: Image.Image, p: GeotaggedPhoto) -> Image.Exif:
    exif = im.getexif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    g = ExifTags.GPS
    gps[g.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[g.GPSLatitudeRef] = "N" if p.lat >= 0 else "S"
    gps[g.GPSLatitude] = _dms(p.lat)
    gps[g.GPSLongitudeRef] = "E" if p.lon >= 0 else "W"
    gps[g.GPSLongitude] = _dms(p.lon)
    if math.isfinite(p.alt_m):
        gps[g.GPSAltitudeRef] = b"\x00" if p.alt_m >= 0 else b"\x01"
        gps[g.GPSAltitude] = _rational(p.alt_m, 1000)
    if math.isfinite(p.yaw_deg):
        gps[g.GPSImgDirectionRef] = "T"
        gps[g.GPSImgDirection] = _rational(p.yaw_deg % 360.0, 100)
    if p.time_utc is not None:
        t = p.time_utc
        gps[g.GPSDateStamp] = t.strftime("%Y:%m:%d")
        gps[g.GPSTimeStamp] = (
            IFDRational(t.hour, 1),
            IFDRational(t.minute, 1),
            _rational(t.second + t.microsecond / 1e6, 1000),
        )
    return exif


def write_geotagged_copies(
    photos: Sequence[GeotaggedPhoto], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Save a copy of each placed photo into ``out_dir`` with its position in the EXIF GPS.

    The originals are only read. A copy keeps the original's other EXIF tags, XMP and ICC
    profile; the time stamp written is the exposure time on the log's clock, in
    ``GPSDateStamp`` / ``GPSTimeStamp`` (UTC by definition). Photos without a position are
    not copied.

    Raises
    ------
    OutputError
        ``out_dir`` is the folder of an original (copies never sit beside the originals).
    InputFileError
        An original cannot be decoded.
    """
    out = Path(out_dir)
    written: list[Path] = []
    for p in photos:
        src = p.image.path
        if out.resolve() == src.parent.resolve():
            raise OutputError(
                f"{out}: is the folder of the original photos; choose another folder for "
                "the geotagged copies (originals are never written)"
            )
        if not p.has_position:
            continue
        target = out / src.name
        try:
            with Image.open(src) as im:
                exif = _geotag_exif(im, p)
                fmt = im.format or "JPEG"
                kwargs: dict[str, Any] = {"exif": exif.tobytes()}
                if "icc_profile" in im.info:
                    kwargs["icc_profile"] = im.info["icc_profile"]
                if fmt == "JPEG":
                    kwargs.update(quality="keep", subsampling="keep")
                    if "xmp" in im.info:
                        kwargs["xmp"] = im.info["xmp"]
                elif fmt == "TIFF":
                    if "xmp" in im.info:
                        exif[700] = im.info["xmp"]
                        kwargs["exif"] = exif.tobytes()
                    if "compression" in im.info and im.info["compression"] != "raw":
                        kwargs["compression"] = im.info["compression"]
                with atomic_path(target) as tmp:
                    im.save(tmp, format=fmt, **kwargs)
        except (OSError, ValueError) as exc:
            if isinstance(exc, OutputError):
                raise
            raise InputFileError(f"{src}: cannot be copied with a geotag ({exc})") from exc
        written.append(target)
    return written
