"""A synthetic survey flight for the image, geotag, QC and writer tests.

A lawnmower over a 240 x 160 m block near Shenzhen at 60 m above take-off, flown at 8 m/s
with telemetry at 5 Hz, and a camera event every ``trigger_m`` metres. Photos are small
JPEGs (or TIFFs) written with Pillow, with EXIF (and, on request, DJI XMP), whose clock runs
``offset_s`` ahead of the log. Textured ground makes sharpness measurable.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational
from pyproj import Transformer

LAT0, LON0 = 22.55, 114.05
UTM = 32650
GROUND_AMSL = 20.0
HEIGHT = 60.0
T0 = dt.datetime(2024, 5, 1, 2, 0, 0, tzinfo=dt.UTC)

_TO_LL = Transformer.from_crs(UTM, 4326, always_xy=True)
_TO_UTM = Transformer.from_crs(4326, UTM, always_xy=True)
X0, Y0 = _TO_UTM.transform(LON0, LAT0)


@dataclass
class Flight:
    """Truth of a synthetic flight."""

    telemetry: xr.Dataset
    events: xr.Dataset
    t_events: np.ndarray  # seconds since 1970, log clock
    xy_events: np.ndarray  # (n, 2) UTM metres
    yaw_events: np.ndarray  # degrees
    lines: int


def _path(spacing: float, n_lines: int, length: float) -> list[tuple[float, float]]:
    pts = []
    for k in range(n_lines):
        x = X0 + k * spacing
        ys = (Y0, Y0 + length) if k % 2 == 0 else (Y0 + length, Y0)
        pts.extend([(x, ys[0]), (x, ys[1])])
    return pts


def make_flight(
    *,
    spacing: float = 30.0,
    n_lines: int = 5,
    length: float = 160.0,
    speed: float = 8.0,
    rate_hz: float = 5.0,
    trigger_m: float = 16.0,
    pitch_deg: float = 0.0,
) -> Flight:
    """Fly the lawnmower; camera events every ``trigger_m`` along each line."""
    pts = np.array(_path(spacing, n_lines, length))
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    total_t = cum[-1] / speed
    t = np.append(np.arange(0.0, total_t, 1.0 / rate_hz), total_t)
    d = t * speed
    x = np.interp(d, cum, pts[:, 0])
    y = np.interp(d, cum, pts[:, 1])
    k = np.clip(np.searchsorted(cum, d, side="right") - 1, 0, len(seg) - 1)
    yaw = np.degrees(np.arctan2(seg[k, 0], seg[k, 1])) % 360.0
    lon, lat = _TO_LL.transform(x, y)
    t_abs = T0.timestamp() + t
    n = len(t)
    telemetry = xr.Dataset(
        {
            "lat": ("time", lat),
            "lon": ("time", lon),
            "alt_amsl": ("time", np.full(n, GROUND_AMSL + HEIGHT)),
            "alt_rel": ("time", np.full(n, HEIGHT)),
            "roll": ("time", np.zeros(n)),
            "pitch": ("time", np.full(n, pitch_deg)),
            "yaw": ("time", yaw),
            "groundspeed": ("time", np.full(n, speed)),
            "fix_type": ("time", np.full(n, 3, dtype=np.int8)),
            "satellites": ("time", np.full(n, 14, dtype=np.int16)),
        },
        coords={"time": (t_abs * 1e9).astype("datetime64[ns]")},
    )
    # events along the lines (even segments are the lines, odd ones the turns)
    ev_d: list[float] = []
    for s in range(0, len(seg), 2):
        start, stop = cum[s], cum[s + 1]
        ev_d.extend(np.arange(start, stop + 1e-9, trigger_m).tolist())
    ev_d_arr = np.asarray(ev_d)
    ev_t = T0.timestamp() + ev_d_arr / speed
    ex = np.interp(ev_d_arr, cum, pts[:, 0])
    ey = np.interp(ev_d_arr, cum, pts[:, 1])
    ek = np.clip(np.searchsorted(cum, ev_d_arr, side="right") - 1, 0, len(seg) - 1)
    ek = np.where(ek % 2 == 1, ek - 1, ek)
    eyaw = np.degrees(np.arctan2(seg[ek, 0], seg[ek, 1])) % 360.0
    elon, elat = _TO_LL.transform(ex, ey)
    m = len(ev_t)
    events = xr.Dataset(
        {
            "lat": ("shot", elat),
            "lon": ("shot", elon),
            "alt_amsl": ("shot", np.full(m, GROUND_AMSL + HEIGHT)),
            "alt_rel": ("shot", np.full(m, HEIGHT)),
            "roll": ("shot", np.zeros(m)),
            "pitch": ("shot", np.zeros(m)),
            "yaw": ("shot", eyaw),
            "image_index": ("shot", np.arange(m, dtype=np.int64)),
            "source": ("shot", np.array(["CAMERA_FEEDBACK"] * m)),
        },
        coords={"time": ("shot", (ev_t * 1e9).astype("datetime64[ns]"))},
    )
    return Flight(telemetry, events, ev_t, np.column_stack([ex, ey]), eyaw, n_lines)


def lonlat(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTM metres (n, 2) to (lon, lat) arrays."""
    lon, lat = _TO_LL.transform(xy[:, 0], xy[:, 1])
    return np.asarray(lon), np.asarray(lat)


def texture(seed: int, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A sharp random RGB texture (uint8)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, size=(shape[0] // 4, shape[1] // 4, 3), dtype=np.uint8)
    return np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))


def _rational(v: float, den: int = 1_000_000) -> IFDRational:
    return IFDRational(round(v * den), den)


def _dms(v: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    v = abs(v)
    d = math.floor(v)
    m = math.floor((v - d) * 60)
    s = (v - d - m / 60) * 3600
    return (IFDRational(d, 1), IFDRational(m, 1), _rational(s, 100000))


def write_photo(
    path: Path,
    pixels: np.ndarray,
    *,
    time: dt.datetime | None = None,
    subsec: bool = True,
    offset_tag: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    alt: float | None = None,
    make: str | bytes = "DJI",
    model: str = "FC6310",
    xmp: dict[str, str] | None = None,
    exif_size: tuple[int, int] | None = None,
    extra_gps: dict[int, object] | None = None,
    with_exif: bool = True,
) -> Path:
    """Write a JPEG/TIFF with the given EXIF (local wall clock of ``time``) and DJI XMP."""
    im = Image.fromarray(pixels)
    kwargs: dict[str, object] = {}
    ex = Image.Exif()
    if with_exif:
        ex[ExifTags.Base.Make] = make
        ex[ExifTags.Base.Model] = model
        sub = ex.get_ifd(ExifTags.IFD.Exif)
        if time is not None:
            sub[ExifTags.Base.DateTimeOriginal] = time.strftime("%Y:%m:%d %H:%M:%S")
            if subsec:
                sub[ExifTags.Base.SubsecTimeOriginal] = f"{time.microsecond // 1000:03d}"
            if offset_tag is not None:
                sub[ExifTags.Base.OffsetTimeOriginal] = offset_tag
        sub[ExifTags.Base.FocalLength] = IFDRational(88, 10)
        if exif_size is not None:
            sub[ExifTags.Base.ExifImageWidth] = exif_size[0]
            sub[ExifTags.Base.ExifImageHeight] = exif_size[1]
        if lat is not None and lon is not None:
            gps = ex.get_ifd(ExifTags.IFD.GPSInfo)
            gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
            gps[ExifTags.GPS.GPSLatitude] = _dms(lat)
            gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
            gps[ExifTags.GPS.GPSLongitude] = _dms(lon)
            if alt is not None:
                gps[ExifTags.GPS.GPSAltitudeRef] = b"\x00" if alt >= 0 else b"\x01"
                gps[ExifTags.GPS.GPSAltitude] = _rational(abs(alt), 1000)
            for k, v in (extra_gps or {}).items():
                gps[k] = v
    packet = None
    if xmp:
        attrs = " ".join(f'drone-dji:{k}="{v}"' for k, v in xmp.items())
        packet = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            f'rdf:about="" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" {attrs}/>'
            "</rdf:RDF></x:xmpmeta>"
        ).encode()
    if path.suffix.lower() in (".tif", ".tiff"):
        if packet is not None:
            ex[700] = packet
        if with_exif or packet is not None:
            kwargs["exif"] = ex.tobytes()
    else:
        if with_exif:
            kwargs["exif"] = ex.tobytes()
        if packet is not None:
            kwargs["xmp"] = packet
        kwargs["quality"] = 92
    im.save(path, **kwargs)  # type: ignore[arg-type]
    return path


def write_flight_photos(
    folder: Path,
    flight: Flight,
    *,
    offset_s: float = 0.0,
    keep: Sequence[int] | None = None,
    gps_noise_m: float | None = None,
    with_time: bool = True,
    seed: int = 0,
    offset_tag: str | None = "+00:00",
) -> list[Path]:
    """One photo per camera event (or per ``keep`` index), camera clock ``offset_s`` ahead.

    With ``gps_noise_m`` the photos carry their own GPS (truth plus that much noise, metres).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    idx = range(len(flight.t_events)) if keep is None else keep
    out = []
    for i in idx:
        t = dt.datetime.fromtimestamp(flight.t_events[i] + offset_s, dt.UTC)
        lat = lon = None
        if gps_noise_m is not None:
            xy = flight.xy_events[i] + rng.normal(0.0, gps_noise_m, 2)
            lo, la = _TO_LL.transform(xy[0], xy[1])
            lat, lon = float(la), float(lo)
        out.append(
            write_photo(
                folder / f"IMG_{i:04d}.JPG",
                texture(seed * 1000 + i),
                time=t if with_time else None,
                offset_tag=offset_tag,
                lat=lat,
                lon=lon,
                alt=GROUND_AMSL + HEIGHT if lat is not None else None,
            )
        )
    return out
