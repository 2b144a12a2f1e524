"""Read survey photos: time, position, camera attitude and camera from EXIF and XMP.

:func:`read_image` reads one JPEG or TIFF, :func:`read_images` a folder. Metadata comes from
Pillow's EXIF reader and its XMP reader (``Image.getxmp``, which needs defusedxml); files are
opened read-only and never written. Every value of an :class:`ImageRecord` says where it came
from (``sources``), and every assumption is one warning line, kept in ``warnings``.

Conventions
-----------
* Times are UTC. A camera time with a zone (``OffsetTimeOriginal``, an XMP date with a zone
  for the same wall-clock time, or a GPS time stamp in the same file) is converted; one
  without is taken as UTC, as OpenDroneMap does, with a warning — a camera clock set to local
  time then shows up as a clock offset of whole hours against the log (``geotag``).
* Positions are WGS84 degrees; ``alt_m`` is metres above sea level, ``alt_rel_m`` above the
  take-off point (DJI ``RelativeAltitude``) where known.
* Camera attitude: ``yaw_deg`` is where the top of the image points (degrees clockwise from
  north), ``pitch_deg`` is -90 at nadir and 0 at the horizon (DJI's gimbal pitch),
  ``roll_deg`` as written (see :mod:`flightplans.footprints`). Vendors' tags: DJI
  ``drone-dji:Gimbal*Degree`` (yaw falls back to ``FlightYawDegree``), Parrot
  ``drone-parrot:Camera*Degree``, Skydio ``drone-skydio:CameraOrientationNED``, FLIR/Teal
  ``exif:Camera*`` plus ``exif:Platform*``, Pix4D/senseFly/Parrot ``Camera:Yaw/Pitch/Roll``
  (pitch 0 at nadir there, converted), EXIF ``GPSImgDirection`` for the yaw alone.
* Missing numbers are NaN; a record with no usable time has ``time_utc`` ``None``.

This module is longer than most (about 800 lines): the time, position, attitude and camera
readers each carry the vendor tag tables and the real-world repairs they need, and splitting
them would scatter one subject — what a photo file says about itself — over several modules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import logging
import math
import os
import re
import warnings as _pywarnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError

from flightplans.camera import Camera
from flightplans.errors import CameraError
from survey.errors import InputFileError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFolder",
    "ImageRecord",
    "read_image",
    "read_images",
]

log = logging.getLogger(__name__)

#: File name suffixes read as photos (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".tif", ".tiff")

_NAN = math.nan
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_GPS = ExifTags.IFD.GPSInfo
_EXIF = ExifTags.IFD.Exif

# XMP namespace URIs (as vendors write them) to the prefixes used in ``sources``.
_NAMESPACES: tuple[tuple[str, str], ...] = (
    ("dji.com/drone-dji", "drone-dji"),
    ("parrot.com/drone-parrot", "drone-parrot"),
    ("skydio.com/drone-skydio", "drone-skydio"),
    ("pix4d.com/camera", "Camera"),
    ("sensefly.com/camera", "Camera"),
    ("ns.adobe.com/exif/1.0/aux", "aux"),
    ("ns.adobe.com/exif/1.0", "exif"),
    ("ns.adobe.com/tiff/1.0", "tiff"),
    ("ns.adobe.com/xap/1.0", "xmp"),
    ("ns.adobe.com/photoshop/1.0", "photoshop"),
)

_EXIF_TIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
# Resolution units of FocalPlane*Resolution (EXIF): inch, centimetre, millimetre, micrometre.
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
# Sensor widths outside this range (mm) come from tags that do not describe the sensor.
_SENSOR_MM = (1.0, 70.0)


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """What one photo says about itself.

    Attributes
    ----------
    path, name
        The file and its name.
    sha256
        Hex SHA-256 of the file's bytes.
    time_utc
        Exposure time (timezone-aware UTC) by the camera's clock, or ``None``.
    lat, lon, alt_m, alt_rel_m
        Position: degrees WGS84, metres above sea level, metres above take-off (NaN unknown).
    yaw_deg, pitch_deg, roll_deg
        Camera attitude (module docstring); NaN unknown.
    make, model, serial
        Camera make, model and serial number ("" unknown), NUL padding removed.
    width_px, height_px
        Pixel size of the stored image.
    focal_mm, focal_35mm, sensor_w_mm
        Focal length, its 35 mm equivalent and the sensor width from the focal-plane
        resolution (NaN unknown).
    gps_xy_accuracy_m, gps_z_accuracy_m
        Position accuracy the camera wrote (NaN unknown).
    sources
        For each field set, where it came from (e.g. ``"EXIF GPSLatitude"``,
        ``"XMP drone-dji:GimbalYawDegree"``, ``"assumed UTC"``).
    warnings
        What was assumed or repaired, one line each (already logged).
    """

    path: Path
    name: str
    sha256: str
    time_utc: dt.datetime | None
    lat: float = _NAN
    lon: float = _NAN
    alt_m: float = _NAN
    alt_rel_m: float = _NAN
    yaw_deg: float = _NAN
    pitch_deg: float = _NAN
    roll_deg: float = _NAN
    make: str = ""
    model: str = ""
    serial: str = ""
    width_px: int = 0
    height_px: int = 0
    focal_mm: float = _NAN
    focal_35mm: float = _NAN
    sensor_w_mm: float = _NAN
    gps_xy_accuracy_m: float = _NAN
    gps_z_accuracy_m: float = _NAN
    sources: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def has_position(self) -> bool:
        """True when latitude and longitude are known."""
        return math.isfinite(self.lat) and math.isfinite(self.lon)

    def camera(self) -> Camera | None:
        """A camera model from the EXIF focal length and sensor size, or ``None``.

        The sensor width comes from the focal-plane resolution or, failing that, from the
        35 mm equivalent focal length (36 mm wide frame); square pixels are assumed.
        """
        f = self.focal_mm
        sw = self.sensor_w_mm
        if not math.isfinite(sw) and math.isfinite(self.focal_35mm) and self.focal_35mm > 0:
            sw = 36.0 * f / self.focal_35mm
        if not (math.isfinite(f) and math.isfinite(sw) and self.width_px and self.height_px):
            return None
        long_px, short_px = max(self.width_px, self.height_px), min(self.width_px, self.height_px)
        try:
            return Camera(
                "exif",
                sw,
                sw * short_px / long_px,
                f,
                long_px,
                short_px,
                f"{self.make} {self.model}".strip(),
            )
        except CameraError:
            return None


@dataclass(frozen=True)
class ImageFolder:
    """Photos read from a folder, in time order (photos without a time last, by name).

    ``skipped`` lists ``(file name, reason)`` for files that could not be read as images.
    """

    folder: Path
    images: tuple[ImageRecord, ...]
    skipped: tuple[tuple[str, str], ...] = ()


# ----------------------------------------------------------------------------- values


def _text(value: Any) -> str:
    """A tag value as text: bytes decoded, NUL padding and blanks removed."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        if value.startswith((b"ASCII\x00\x00\x00", b"UNICODE\x00")):
            value = value[8:]
        value = value.decode("utf-8", errors="replace")
    return str(value).replace("\x00", " ").strip()


def _number(value: Any) -> float:
    """A tag value (rational, int, float, "a/b" text, 1-tuple) as a float; NaN if not one."""
    if isinstance(value, tuple | list):
        if len(value) != 1:
            return _NAN
        value = value[0]
    if isinstance(value, bytes):
        return float(value[0]) if len(value) == 1 else _number(_text(value))
    if isinstance(value, str):
        s = value.replace("\x00", "").strip()
        if "/" in s:
            num, _, den = s.partition("/")
            try:
                d = float(den)
                return float(num) / d if d != 0 else _NAN
            except ValueError:
                return _NAN
        try:
            return float(s)
        except ValueError:
            return _NAN
    try:
        out = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return _NAN
    return out if math.isfinite(out) else _NAN


def _dms(value: Any) -> float:
    """EXIF degrees-minutes-seconds (three rationals, or one value) as degrees."""
    if isinstance(value, tuple | list) and len(value) == 3:
        d, m, s = (_number(v) for v in value)
        return d + m / 60.0 + s / 3600.0
    return _number(value)


def _xmp_coordinate(value: str) -> tuple[float, str]:
    """XMP GPS coordinate ``"DDD,MM.mmk"`` / ``"DDD,MM,SSk"`` (Adobe) or decimal; (deg, ref)."""
    s = value.strip()
    ref = s[-1].upper() if s and s[-1].upper() in "NSEW" else ""
    body = s[:-1] if ref else s
    parts = [p for p in body.split(",") if p.strip()]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        return _NAN, ref
    deg = nums[0] + sum(v / 60.0**i for i, v in enumerate(nums[1:], start=1))
    return deg, ref


# ----------------------------------------------------------------------------- XMP


def _prefix(uri: str) -> str:
    low = uri.lower().rstrip("/")
    for key, prefix in _NAMESPACES:
        if key.lower().rstrip("/") in low:
            return prefix
    if low in ("camera", "camera/") or low.endswith("/camera") or low.endswith("/camera/1.0"):
        return "Camera"
    return uri


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def _first_text(value: Any) -> str | None:
    """The text of an XMP value: plain text, the first item of an rdf:Seq/Bag/Alt."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _first_text(value[0]) if value else None
    if isinstance(value, dict):
        for k, v in value.items():
            uri, local = _split(k)
            if uri == _RDF and local in ("Seq", "Bag", "Alt"):
                return _first_text(v.get(f"{{{_RDF}}}li")) if isinstance(v, dict) else None
            if uri == _RDF and local == "li":
                return _first_text(v)
        text = value.get("text")
        return text if isinstance(text, str) else None
    return None


def _flatten_struct(value: dict[str, Any], key: str, out: dict[str, str]) -> None:
    for k, v in value.items():
        uri, local = _split(k)
        if uri == _RDF and local == "Description" and isinstance(v, dict):
            _flatten_struct(v, key, out)
            continue
        if uri == _RDF or k == "text":
            continue
        text = _first_text(v)
        if text is not None:
            out.setdefault(f"{key}/{local}", text.strip())


def _flatten_description(desc: dict[str, Any], out: dict[str, str]) -> None:
    for k, v in desc.items():
        uri, local = _split(k)
        if uri == _RDF or k == "text":
            continue
        key = f"{_prefix(uri)}:{local}"
        if isinstance(v, list):
            v = v[0] if v else None
        text = _first_text(v)
        if text is not None:
            out.setdefault(key, text.strip())
        elif isinstance(v, dict):
            _flatten_struct(v, key, out)


def _walk_descriptions(node: Any, out: dict[str, str]) -> None:
    if isinstance(node, list):
        for n in node:
            _walk_descriptions(n, out)
        return
    if not isinstance(node, dict):
        return
    for k, v in node.items():
        uri, local = _split(k)
        if uri == _RDF and local == "Description":
            for d in v if isinstance(v, list) else [v]:
                if isinstance(d, dict):
                    _flatten_description(d, out)
        elif isinstance(v, dict | list):
            _walk_descriptions(v, out)


def _read_xmp(im: Image.Image, name: str, warnings: list[str]) -> dict[str, str]:
    """XMP properties as ``{"prefix:Name": text}``; structures as ``"prefix:Name/Field"``."""
    if "xmp" not in im.info:
        return {}
    try:
        tree = im.getxmp(strip_namespaces=False)
    except Exception as exc:  # malformed XML, entity bombs refused by defusedxml
        _warn(warnings, f"{name}: its XMP packet cannot be read ({exc}); XMP tags ignored")
        return {}
    if not tree and im.info.get("xmp"):
        _warn(
            warnings,
            f"{name}: XMP present but not read (install defusedxml); DJI/Skydio/Parrot "
            "positions and camera angles are ignored",
        )
    out: dict[str, str] = {}
    _walk_descriptions(tree, out)
    return out


# ----------------------------------------------------------------------------- time


def _exif_wallclock(value: Any) -> dt.datetime | None:
    m = _EXIF_TIME.match(_text(value))
    if not m:
        return None
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        return dt.datetime(y, mo, d, h, mi, s)
    except ValueError:  # "0000:00:00 00:00:00" and other impossible dates
        return None


def _subsec(value: Any) -> float:
    digits = re.sub(r"\D", "", _text(value))
    return float(f"0.{digits}") if digits else 0.0


def _zone(value: Any) -> dt.timezone | None:
    s = _text(value)
    if s.upper() == "Z":
        return dt.UTC
    m = _OFFSET.match(s)
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 14 * 60:
        return None
    return dt.timezone(dt.timedelta(minutes=-minutes if m.group(1) == "-" else minutes))


def _xmp_time(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.strip().replace(" ", "T"))
    except ValueError:
        return None


def _gps_time(gps: Mapping[int, Any]) -> dt.datetime | None:
    date = _text(gps.get(ExifTags.GPS.GPSDateStamp))
    stamp = gps.get(ExifTags.GPS.GPSTimeStamp)
    m = re.match(r"^(\d{4})[:-](\d{2})[:-](\d{2})$", date)
    if not m or not isinstance(stamp, tuple | list) or len(stamp) != 3:
        return None
    h, mi, s = (_number(v) for v in stamp)
    if not all(math.isfinite(v) for v in (h, mi, s)):
        return None
    try:
        day = dt.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=dt.UTC)
    except ValueError:
        return None
    return day + dt.timedelta(hours=h, minutes=mi, seconds=s)


def _read_time(
    name: str,
    exif: Mapping[int, Any],
    sub: Mapping[int, Any],
    gps: Mapping[int, Any],
    xmp: Mapping[str, str],
    sources: dict[str, str],
    warnings: list[str],
) -> dt.datetime | None:
    """Exposure time in UTC and where it came from (module docstring)."""
    b = ExifTags.Base
    local: dt.datetime | None = None
    frac = 0.0
    zone: dt.tzinfo | None = None
    where = ""
    for tag, subsec, offset, label in (
        (b.DateTimeOriginal, b.SubsecTimeOriginal, b.OffsetTimeOriginal, "DateTimeOriginal"),
        (b.DateTimeDigitized, b.SubsecTimeDigitized, b.OffsetTimeDigitized, "DateTimeDigitized"),
    ):
        local = _exif_wallclock(sub.get(tag))
        if local is not None:
            frac = _subsec(sub.get(subsec))
            zone = _zone(sub.get(offset))
            where = f"EXIF {label}" + (f" + {offset.name}" if zone is not None else "")
            break
    xmp_times = [
        (k, t)
        for k in ("exif:DateTimeOriginal", "xmp:CreateDate", "photoshop:DateCreated")
        if k in xmp and (t := _xmp_time(xmp[k])) is not None
    ]
    if local is None and xmp_times:
        key, t = xmp_times[0]
        local, frac, zone = t.replace(tzinfo=None, microsecond=0), t.microsecond / 1e6, t.tzinfo
        where = f"XMP {key}"
    if local is None:
        local = _exif_wallclock(exif.get(b.DateTime))
        if local is None:
            _warn(
                warnings,
                f"{name}: no capture time in EXIF or XMP; it can only be paired "
                "with camera events in order",
            )
            return None
        frac = _subsec(sub.get(b.SubsecTime))
        zone = _zone(sub.get(b.OffsetTime))
        where = "EXIF DateTime"
        _warn(
            warnings,
            f"{name}: no DateTimeOriginal; used DateTime, which editing software "
            "rewrites — check the time offset against the log",
        )
    if zone is None:
        for key, t in xmp_times:
            if t.tzinfo is not None and t.replace(tzinfo=None, microsecond=0) == local:
                zone, where = t.tzinfo, f"{where}, zone from XMP {key}"
                break
    if zone is None and (gps_utc := _gps_time(gps)) is not None:
        quarter = round((local - gps_utc.replace(tzinfo=None)).total_seconds() / 900.0)
        if abs(quarter) <= 14 * 4:
            zone = dt.timezone(dt.timedelta(minutes=15 * quarter))
            where = f"{where}, zone {zone} from the GPS time stamp"
    if zone is None:
        zone = dt.UTC
        where = f"{where}, assumed UTC"
        _warn(
            warnings,
            f"{name}: {where.split(',')[0]} has no time zone (no OffsetTime tag, "
            "no XMP zone, no GPS time stamp); assumed UTC as OpenDroneMap does — a camera "
            "clock on local time shows as a whole-hour clock offset against the log",
        )
    sources["time_utc"] = where
    aware = local.replace(tzinfo=zone) + dt.timedelta(seconds=frac)
    return aware.astimezone(dt.UTC)


# ----------------------------------------------------------------------------- position


def _read_position(
    name: str,
    gps: Mapping[int, Any],
    xmp: Mapping[str, str],
    sources: dict[str, str],
    warnings: list[str],
) -> tuple[float, float, float, float]:
    """(lat, lon, alt_m above sea level, alt_rel_m above take-off); NaN where unknown."""
    g = ExifTags.GPS
    lat = lon = alt = rel = _NAN
    if g.GPSLatitude in gps and g.GPSLongitude in gps:
        lat, lon = _dms(gps[g.GPSLatitude]), _dms(gps[g.GPSLongitude])
        lat_ref = _text(gps.get(g.GPSLatitudeRef)).upper()[:1]
        lon_ref = _text(gps.get(g.GPSLongitudeRef)).upper()[:1]
        if not lat_ref or not lon_ref:
            _warn(warnings, f"{name}: GPSLatitudeRef/GPSLongitudeRef missing; assumed N and E")
        lat = -lat if lat_ref == "S" else lat
        lon = -lon if lon_ref == "W" else lon
        sources["lat"], sources["lon"] = "EXIF GPSLatitude", "EXIF GPSLongitude"
    if g.GPSAltitude in gps:
        alt = _number(gps[g.GPSAltitude])
        if _number(gps.get(g.GPSAltitudeRef, 0)) == 1:
            alt = -alt
        sources["alt_m"] = "EXIF GPSAltitude"
    for lat_key, lon_keys, alt_key in (
        (
            "drone-dji:GpsLatitude",
            ("drone-dji:GpsLongitude", "drone-dji:GpsLongtitude"),
            "drone-dji:AbsoluteAltitude",
        ),
        ("drone-skydio:Latitude", ("drone-skydio:Longitude",), "drone-skydio:AbsoluteAltitude"),
        ("exif:GPSLatitude", ("exif:GPSLongitude",), "exif:GPSAltitude"),
    ):
        lon_key = next((k for k in lon_keys if k in xmp), None)
        if not math.isfinite(lat) and lat_key in xmp and lon_key is not None:
            if lat_key.startswith("exif:"):
                la, lr = _xmp_coordinate(xmp[lat_key])
                lo, lor = _xmp_coordinate(xmp[lon_key])
                lat, lon = (-la if lr == "S" else la), (-lo if lor == "W" else lo)
            else:
                lat, lon = _number(xmp[lat_key]), _number(xmp[lon_key])
            sources["lat"], sources["lon"] = f"XMP {lat_key}", f"XMP {lon_key}"
        if not math.isfinite(alt) and alt_key in xmp:
            alt = _number(xmp[alt_key])
            if alt_key == "exif:GPSAltitude" and _number(xmp.get("exif:GPSAltitudeRef")) == 1:
                alt = -alt
            sources["alt_m"] = f"XMP {alt_key}"
    if "drone-dji:RelativeAltitude" in xmp:
        rel = _number(xmp["drone-dji:RelativeAltitude"])
        sources["alt_rel_m"] = "XMP drone-dji:RelativeAltitude"
        absolute = _number(xmp.get("drone-dji:AbsoluteAltitude"))
        if (
            sources.get("alt_m") == "EXIF GPSAltitude"
            and math.isfinite(absolute)
            and abs(alt - rel) < 0.5
            and abs(alt - absolute) > 5.0
        ):
            _warn(
                warnings,
                f"{name}: GPSAltitude {alt:.1f} m is the height above take-off "
                f"(RelativeAltitude), not above sea level; used AbsoluteAltitude {absolute:.1f} m",
            )
            alt = absolute
            sources["alt_m"] = "XMP drone-dji:AbsoluteAltitude"
    if math.isfinite(lat) or math.isfinite(lon):
        bad = not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0 and lon == 0)
        if bad or not (math.isfinite(lat) and math.isfinite(lon)):
            _warn(
                warnings,
                f"{name}: position ({lat}, {lon}) is not a valid place; ignored "
                "(placed from the log if one is given)",
            )
            lat = lon = alt = _NAN
            for k in ("lat", "lon", "alt_m"):
                sources.pop(k, None)
    return lat, lon, alt, rel


# ----------------------------------------------------------------------------- attitude


def _angle_set(
    xmp: Mapping[str, str], yaw: str | tuple[str, ...], pitch: str, roll: str
) -> tuple[tuple[float, str], tuple[float, str], tuple[float, str]] | None:
    yaw_keys = (yaw,) if isinstance(yaw, str) else yaw
    yk = next((k for k in yaw_keys if k in xmp), None)
    if yk is None and pitch not in xmp:
        return None
    return (
        (_number(xmp[yk]), yk) if yk else (_NAN, ""),
        (_number(xmp.get(pitch, "nan")), pitch if pitch in xmp else ""),
        (_number(xmp.get(roll, "nan")), roll if roll in xmp else ""),
    )


def _read_attitude(
    gps: Mapping[int, Any], xmp: Mapping[str, str], sources: dict[str, str]
) -> tuple[float, float, float]:
    """Camera (yaw, pitch, roll) in degrees (module docstring); NaN where unknown."""
    found = None
    pitch_shift = 0.0
    for yaw, pitch, roll, shift in (
        (
            ("drone-dji:GimbalYawDegree", "drone-dji:FlightYawDegree"),
            "drone-dji:GimbalPitchDegree",
            "drone-dji:GimbalRollDegree",
            0.0,
        ),
        (
            "drone-parrot:CameraYawDegree",
            "drone-parrot:CameraPitchDegree",
            "drone-parrot:CameraRollDegree",
            0.0,
        ),
        (
            "drone-skydio:CameraOrientationNED/Yaw",
            "drone-skydio:CameraOrientationNED/Pitch",
            "drone-skydio:CameraOrientationNED/Roll",
            0.0,
        ),
        ("Camera:Yaw", "Camera:Pitch", "Camera:Roll", -90.0),
    ):
        found = _angle_set(xmp, yaw, pitch, roll)
        if found is not None:
            pitch_shift = shift
            break
    if found is None and "exif:CameraPitch" in xmp:
        # FLIR / Teal: camera angles relative to the platform, platform angles absolute.
        parts = []
        for axis in ("Yaw", "Pitch", "Roll"):
            cam_key, plat_key = f"exif:Camera{axis}", f"exif:Platform{axis}"
            value = _number(xmp.get(cam_key, "nan")) + _number(xmp.get(plat_key, "0"))
            where = f"{cam_key} + {plat_key}" if plat_key in xmp else cam_key
            parts.append((value, where if cam_key in xmp else ""))
        found = (parts[0], parts[1], parts[2])
    yaw_v, pitch_v, roll_v = _NAN, _NAN, _NAN
    if found is not None:
        (yaw_v, yk), (pitch_v, pk), (roll_v, rk) = found
        if yk:
            sources["yaw_deg"] = f"XMP {yk}"
        if pk:
            pitch_v += pitch_shift
            sources["pitch_deg"] = f"XMP {pk}" + (" - 90 (0 at nadir there)" if pitch_shift else "")
        if rk:
            sources["roll_deg"] = f"XMP {rk}"
    if not math.isfinite(yaw_v) and ExifTags.GPS.GPSImgDirection in gps:
        yaw_v = _number(gps[ExifTags.GPS.GPSImgDirection])
        sources["yaw_deg"] = "EXIF GPSImgDirection"
    if math.isfinite(yaw_v):
        yaw_v %= 360.0
    return yaw_v, pitch_v, roll_v


# ----------------------------------------------------------------------------- reading


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    log.warning("%s", message)


def _camera_fields(
    name: str,
    im: Image.Image,
    exif: Mapping[int, Any],
    sub: Mapping[int, Any],
    xmp: Mapping[str, str],
    sources: dict[str, str],
    warnings: list[str],
) -> dict[str, Any]:
    b = ExifTags.Base
    make = _text(exif.get(b.Make)) or xmp.get("tiff:Make", "")
    model = _text(exif.get(b.Model)) or xmp.get("tiff:Model", "")
    serial = ""
    for where, value in (
        ("EXIF BodySerialNumber", sub.get(b.BodySerialNumber)),
        ("EXIF CameraSerialNumber", exif.get(b.CameraSerialNumber)),
        ("XMP aux:SerialNumber", xmp.get("aux:SerialNumber")),
        ("XMP drone-dji:DroneSerialNumber", xmp.get("drone-dji:DroneSerialNumber")),
    ):
        serial = _text(value)
        if serial:
            sources["serial"] = where
            break
    width, height = im.size
    tag_w, tag_h = _number(sub.get(b.ExifImageWidth)), _number(sub.get(b.ExifImageHeight))
    if math.isfinite(tag_w) and math.isfinite(tag_h) and (tag_w, tag_h) != (width, height):
        if (tag_w, tag_h) == (height, width):
            _warn(
                warnings,
                f"{name}: EXIF width and height ({tag_w:.0f} x {tag_h:.0f}) are "
                f"swapped against the pixels ({width} x {height}); used the pixels",
            )
        else:
            _warn(
                warnings,
                f"{name}: EXIF says {tag_w:.0f} x {tag_h:.0f} px but the image has "
                f"{width} x {height} px (resized after capture?); used the pixels",
            )
    focal = _number(sub.get(b.FocalLength))
    focal35 = _number(sub.get(b.FocalLengthIn35mmFilm))
    sensor_w = _NAN
    res = _number(sub.get(b.FocalPlaneXResolution))
    unit_code = _number(sub.get(b.FocalPlaneResolutionUnit, 2))
    unit = _UNIT_MM.get(int(unit_code)) if math.isfinite(unit_code) else None
    ref_w = tag_w if math.isfinite(tag_w) else float(width)
    if unit and math.isfinite(res) and res > 0:
        sensor_w = max(ref_w, tag_h if math.isfinite(tag_h) else 0.0) / res * unit
        if not _SENSOR_MM[0] <= sensor_w <= _SENSOR_MM[1]:
            sensor_w = _NAN  # a DPI value in the focal-plane tags, or a resized image
    return {
        "make": make,
        "model": model,
        "serial": serial,
        "width_px": int(width),
        "height_px": int(height),
        "focal_mm": focal if focal > 0 else _NAN,
        "focal_35mm": focal35 if focal35 > 0 else _NAN,
        "sensor_w_mm": sensor_w,
    }


def _accuracy(gps: Mapping[int, Any], xmp: Mapping[str, str]) -> tuple[float, float]:
    xy = _number(xmp.get("Camera:GPSXYAccuracy", "nan"))
    z = _number(xmp.get("Camera:GPSZAccuracy", "nan"))
    if not math.isfinite(xy):
        xy = _number(gps.get(ExifTags.GPS.GPSHPositioningError))
    if not math.isfinite(xy):
        lat_sd = _number(xmp.get("drone-dji:RtkStdLat", "nan"))
        lon_sd = _number(xmp.get("drone-dji:RtkStdLon", "nan"))
        xy = max(lat_sd, lon_sd) if math.isfinite(lat_sd) and math.isfinite(lon_sd) else _NAN
        z = _number(xmp.get("drone-dji:RtkStdHgt", "nan")) if not math.isfinite(z) else z
    return xy, z


def read_image(path: str | os.PathLike[str]) -> ImageRecord:
    """Read one photo's metadata (the file is opened read-only and never written).

    Parameters
    ----------
    path
        A JPEG or TIFF file.

    Returns
    -------
    ImageRecord

    Raises
    ------
    InputFileError
        The file is missing or is not an image Pillow can open.

    Examples
    --------
    >>> rec = read_image("DJI_0001.JPG")  # doctest: +SKIP
    >>> rec.time_utc, rec.lat, rec.lon, rec.sources["lat"]  # doctest: +SKIP
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InputFileError(f"{p}: no such file; check the path") from exc
    except OSError as exc:
        raise InputFileError(
            f"{p}: cannot be read ({exc.strerror}); check its permissions"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    notes: list[str] = []
    with _pywarnings.catch_warnings(record=True) as caught:
        _pywarnings.simplefilter("always")
        try:
            im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise InputFileError(
                f"{p}: not an image Pillow can read ({len(data)} bytes, starting "
                f"{data[:4]!r}); pass JPEG or TIFF photos"
            ) from exc
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InputFileError(
                f"{p}: cannot be read as an image ({exc}); pass JPEG or TIFF photos"
            ) from exc
        with im:
            for w in caught:  # Pillow's own complaints about damaged tags, one line each
                _warn(
                    notes, f"{p.name}: damaged metadata ({w.message}); what could be read is kept"
                )
            caught.clear()
            record = _record(p, digest, im, notes)
        for w in caught:
            _warn(notes, f"{p.name}: damaged metadata ({w.message}); what could be read is kept")
    if len(notes) > len(record.warnings):
        record = dataclasses.replace(record, warnings=tuple(notes))
    return record


def _record(p: Path, digest: str, im: Image.Image, warnings: list[str]) -> ImageRecord:
    sources: dict[str, str] = {}
    name = p.name
    try:
        exif = im.getexif()
        sub = exif.get_ifd(_EXIF)
        gps = exif.get_ifd(_GPS)
    except Exception as exc:  # Pillow raises many kinds on corrupt EXIF blocks
        _warn(warnings, f"{name}: its EXIF block cannot be read ({exc}); EXIF ignored")
        exif, sub, gps = Image.Exif(), {}, {}
    xmp = _read_xmp(im, name, warnings)
    if not exif and not xmp:
        _warn(
            warnings,
            f"{name}: no EXIF and no XMP (no time, position or camera); it can "
            "only be placed by pairing it with camera events in order",
        )
    time_utc = _read_time(name, exif, sub, gps, xmp, sources, warnings) if exif or xmp else None
    lat, lon, alt, rel = _read_position(name, gps, xmp, sources, warnings)
    yaw, pitch, roll = _read_attitude(gps, xmp, sources)
    cam = _camera_fields(name, im, exif, sub, xmp, sources, warnings)
    xy_acc, z_acc = _accuracy(gps, xmp)
    return ImageRecord(
        path=p,
        name=name,
        sha256=digest,
        time_utc=time_utc,
        lat=lat,
        lon=lon,
        alt_m=alt,
        alt_rel_m=rel,
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        gps_xy_accuracy_m=xy_acc,
        gps_z_accuracy_m=z_acc,
        sources=sources,
        warnings=tuple(warnings),
        **cam,
    )


def _sort_key(rec: ImageRecord) -> tuple[int, float, str]:
    t = rec.time_utc.timestamp() if rec.time_utc is not None else math.inf
    return (rec.time_utc is None, t, rec.name)


def read_images(folder: str | os.PathLike[str], *, recursive: bool = False) -> ImageFolder:
    """Read every photo (:data:`IMAGE_SUFFIXES`) of a folder.

    Files that are not readable images are skipped with a warning and listed in
    ``ImageFolder.skipped``.

    Raises
    ------
    InputFileError
        The folder is missing or holds no photo.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputFileError(f"{root}: no such folder; pass the folder of the flight's photos")
    files: Iterable[Path] = root.rglob("*") if recursive else root.iterdir()
    photos = sorted(f for f in files if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise InputFileError(
            f"{root}: no photos ({', '.join(IMAGE_SUFFIXES)}) in this folder; pass the folder "
            "the camera's card was copied to"
        )
    records: list[ImageRecord] = []
    skipped: list[tuple[str, str]] = []
    for f in photos:
        try:
            records.append(read_image(f))
        except InputFileError as exc:
            log.warning("%s; skipped", exc)
            skipped.append((f.name, str(exc)))
    return ImageFolder(root, tuple(sorted(records, key=_sort_key)), tuple(skipped))
