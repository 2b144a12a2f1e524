"""The simulated camera: photos rendered from the site through the pinhole model, with EXIF.

:func:`render_photo` looks at the :class:`~survey.simulate.world.SiteWorld` from a camera
pose: every pixel's ray (the camera model of :mod:`flightplans.camera`, rotated by
:func:`flightplans.footprints.camera_rotation`: yaw, DJI gimbal pitch, roll) is followed
down onto the DSM from the highest surface below (fixed-point steps on every second
pixel, interpolated between), so roofs and trees stand with their parallax and walls lean
away from the nadir, and takes the orthophoto's colour there (bilinear), plus a little
sensor noise. Photos are a
reduced-size rendering of the camera (``photo_width_px`` wide, same sensor and lens, so the
same footprint), to keep the simulation fast.

:func:`write_photo` saves a JPEG as a drone's camera does: EXIF ``Make``/``Model``,
``DateTimeOriginal`` + ``SubSecTimeOriginal`` + ``OffsetTimeOriginal`` on the camera's clock,
focal length (and its 35 mm equivalent), focal-plane resolution (so the sensor size can be
read back), GPS latitude, longitude and altitude from the receiver, and a DJI-style XMP block
(``drone-dji:`` AbsoluteAltitude, RelativeAltitude, GimbalRoll/Yaw/PitchDegree,
FlightRoll/Yaw/PitchDegree), all written with Pillow. Given the aircraft's serials
(:func:`simulated_serials`: deterministic from the seed, and marked ``SIM`` so they can never
be taken for a real aircraft's), the camera's goes into EXIF ``BodySerialNumber`` and the
drone's into XMP ``drone-dji:DroneSerialNumber``, where DJI's enterprise aircraft write them
and where the evidence store reads them (:mod:`survey.evidence.devices`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from flightplans.camera import Camera
from flightplans.footprints import camera_rotation
from survey.rasters import atomic_path
from survey.simulate.world import SiteWorld, bilinear

__all__ = [
    "DeviceSerials",
    "PhotoMeta",
    "camera_make_model",
    "photo_camera",
    "render_photo",
    "simulated_serials",
    "write_photo",
]

#: EXIF make and model of the camera presets (what the real cameras write).
_MAKE_MODEL = {
    "phantom4pro": ("DJI", "FC6310"),
    "phantom4rtk": ("DJI", "FC6310R"),
    "mavic3e": ("DJI", "M3E"),
    "zenmusep1-35": ("DJI", "ZenmuseP1"),
    "sonyrx1r2": ("SONY", "DSC-RX1RM2"),
    "sonyrx100m2": ("SONY", "DSC-RX100M2"),
}

_RELIEF_GRID = 2  # pixels between the rays followed onto the DSM
_DESCENT_STEPS = 5  # odd (see _descend)


def camera_make_model(camera: Camera) -> tuple[str, str]:
    """EXIF (Make, Model) for a camera preset; ``("sitewatch", label)`` for others."""
    return _MAKE_MODEL.get(camera.name, ("sitewatch", camera.label or camera.name))


@dataclass(frozen=True)
class DeviceSerials:
    """Serial numbers of a simulated aircraft.

    Attributes
    ----------
    drone : str
        The aircraft's (XMP ``drone-dji:DroneSerialNumber``).
    camera : str
        The camera's (EXIF ``BodySerialNumber``).
    """

    drone: str
    camera: str


_SERIAL_DIGITS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O, as on serial plates


def _serial(prefix: str, text: str, n: int) -> str:
    value = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")
    chars = []
    for _ in range(n):
        value, k = divmod(value, len(_SERIAL_DIGITS))
        chars.append(_SERIAL_DIGITS[k])
    return prefix + "".join(chars)


def simulated_serials(seed: int, make_model: tuple[str, str]) -> DeviceSerials:
    """The drone and camera serials of the aircraft a simulation flies: the same for the
    same seed and camera, different for another seed.

    ``SIM`` then 13 (drone) or 11 (camera) characters, 16 and 14 in all like DJI's: derived
    from SHA-256 of the seed, make and model, so no real aircraft's serial is imitated.

    Examples
    --------
    >>> s = simulated_serials(0, ("DJI", "FC6310"))
    >>> s == simulated_serials(0, ("DJI", "FC6310")), s.drone[:3], len(s.drone), len(s.camera)
    (True, 'SIM', 16, 14)
    """
    what = f"sitewatch simulated aircraft {int(seed)} {make_model[0]} {make_model[1]}"
    return DeviceSerials(
        drone=_serial("SIM", f"{what} drone", 13), camera=_serial("SIM", f"{what} camera", 11)
    )


def photo_camera(camera: Camera, width_px: int) -> Camera:
    """The camera at a reduced image width: same sensor width and lens, square pixels.

    Examples
    --------
    >>> from flightplans.camera import get_camera
    >>> c = photo_camera(get_camera("phantom4pro"), 600)
    >>> c.image_w_px, c.image_h_px, round(c.sensor_h_mm, 2)
    (600, 400, 8.8)
    """
    height = max(1, round(width_px * camera.image_h_px / camera.image_w_px))
    return dataclasses.replace(
        camera,
        image_w_px=int(width_px),
        image_h_px=int(height),
        sensor_h_mm=camera.sensor_w_mm * height / width_px,
    )


@functools.lru_cache(maxsize=8)
def _rays(camera: Camera, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame rays (u, v, 1) of every ``step``-th pixel centre: u right, v down the
    image, per unit of focal length; u and v (rows * cols,), row-major."""
    w, h = camera.image_w_px, camera.image_h_px
    pitch = camera.sensor_w_mm / w / camera.focal_mm  # pixel pitch over focal length
    u = (np.arange(0, w, step) + 0.5 * step - w / 2.0) * pitch
    v = (np.arange(0, h, step) + 0.5 * step - h / 2.0) * pitch
    uu, vv = (np.ascontiguousarray(a.ravel()) for a in np.meshgrid(u, v))
    uu.flags.writeable = False  # cached: shared by every photo
    vv.flags.writeable = False
    return uu, vv


def _world_rays(camera: Camera, rot: np.ndarray, step: int = 1) -> list[np.ndarray]:
    """The rays of :func:`_rays` turned into the world (east, north, up), one array each.

    Written per component: ``(n, 3) @ (3, 3)`` in numpy is some 70 times slower.
    """
    u, v = _rays(camera, step)
    return [rot[k, 0] * u + rot[k, 1] * v + rot[k, 2] for k in range(3)]


@functools.lru_cache(maxsize=8)
def _grid_coords(camera: Camera, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of every pixel in the grid of every ``step``-th pixel, float32 (h * w,)."""
    w, h = camera.image_w_px, camera.image_h_px
    rows = np.repeat((np.arange(h, dtype=np.float32) + 0.5) / step - 0.5, w)
    cols = np.tile((np.arange(w, dtype=np.float32) + 0.5) / step - 0.5, h)
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


def _descend(
    world: SiteWorld,
    origin: tuple[float, float, float],
    rays: list[np.ndarray],
) -> np.ndarray:
    """Range along each ray (k,) to the DSM, per unit of the ray's vector.

    Fixed-point steps ``t <- (h(x(t)) - z0) / dz`` from the highest surface under the
    footprint down: a ray over a roof stops on it at once, one past it carries on down to
    the ground. A ray into a wall swings between the roof's height and the ground behind
    it; an odd number of steps leaves it at the ground inside the building, where the
    orthophoto shows the roof: the wall takes the roof's colour, leaning away from the
    nadir as in a real photo.
    """
    ox, oy, oz = origin
    gx, gy, gz = rays
    down = gz < -1e-3
    inv_dz = 1.0 / np.where(down, gz, -1.0)
    _lo, hi = world.height_range(ox, oy, oz, gx[down], gy[down], inv_dz[down])
    t = (hi - oz) * inv_dz
    for _ in range(_DESCENT_STEPS):
        h = world.height(ox + t * gx, oy + t * gy)
        t = np.maximum((h - oz) * inv_dz, 0.0)
    return np.where(down, t, 0.0)


def ground_points(
    world: SiteWorld,
    camera: Camera,
    position: np.ndarray,
    yaw_deg: float,
    pitch_deg: float,
    roll_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel's ray meets the ground: x, y (h * w,) metres, NaN above the horizon.

    The range along each ray is found on every :data:`_RELIEF_GRID`-th pixel
    (:func:`_descend`) and interpolated to the others.
    """
    ox, oy, oz = (float(v) for v in np.asarray(position, dtype=np.float64)[:3])
    rot = camera_rotation(yaw_deg, pitch_deg, roll_deg)
    g = _RELIEF_GRID
    grid = _world_rays(camera, rot, g)
    t = _descend(world, (ox, oy, oz), grid)
    # the height drop along each ray, interpolated (it keeps the rays straight)
    w, hh = camera.image_w_px, camera.image_h_px
    drop = (t * -grid[2]).reshape(math.ceil(hh / g), math.ceil(w / g))
    dx, dy, dz = _world_rays(camera, rot)
    # positions stay float64: a float32 UTM northing is only good to 0.25 m
    t_full = bilinear(drop, *_grid_coords(camera, g)).astype(np.float64)
    t_full /= np.maximum(-dz, 1e-6)
    t_full[dz > -1e-6] = np.nan
    return ox + t_full * dx, oy + t_full * dy


def render_photo(
    world: SiteWorld,
    camera: Camera,
    position: np.ndarray,
    yaw_deg: float,
    pitch_deg: float,
    roll_deg: float,
    rng: np.random.Generator | None = None,
    noise_dn: float = 1.5,
) -> np.ndarray:
    """The photo a camera takes from a pose, (h, w, 3) uint8.

    Parameters
    ----------
    world
        The site (true frame).
    camera
        Camera model; its image size is the photo's (:func:`photo_camera`).
    position
        Camera (x, y, z): metres in the world's CRS, z above sea level.
    yaw_deg, pitch_deg, roll_deg
        Camera attitude (:mod:`flightplans.footprints`: pitch -90 is nadir, yaw where the top
        of the image points).
    rng, noise_dn
        Sensor noise: a normal deviate of ``noise_dn`` digital numbers per pixel and band
        (none without ``rng``).
    """
    x, y = ground_points(world, camera, position, yaw_deg, pitch_deg, roll_deg)
    sky = ~np.isfinite(x)
    if sky.any():
        rgb = np.empty((len(x), 3), dtype=np.float32)
        rgb[sky] = (170.0, 200.0, 235.0)
        rgb[~sky] = world.colour(x[~sky], y[~sky])
    else:
        rgb = world.colour(x, y)
    if rng is not None and noise_dn > 0:
        rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(noise_dn)
    out: np.ndarray = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out.reshape(camera.image_h_px, camera.image_w_px, 3)


@dataclass(frozen=True)
class PhotoMeta:
    """What the camera writes into a photo.

    ``camera_time`` is the camera clock's reading at exposure, aware, in the zone it shows;
    positions are the receiver's (degrees WGS84, metres above sea level and above take-off);
    gimbal and flight angles in degrees as DJI writes them (pitch -90 at nadir, yaw
    clockwise from north in (-180, 180]).
    """

    camera_time: dt.datetime
    lat: float
    lon: float
    alt_amsl: float
    alt_rel: float
    gimbal_yaw: float
    gimbal_pitch: float
    gimbal_roll: float
    flight_yaw: float
    flight_pitch: float
    flight_roll: float


def _rational(v: float, max_den: int = 1_000_000) -> IFDRational:
    f = Fraction(v).limit_denominator(max_den)
    return IFDRational(f.numerator, f.denominator)


def _dms(v: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    v = abs(v)
    d = math.floor(v)
    m = math.floor((v - d) * 60.0)
    s = (v - d - m / 60.0) * 3600.0
    return IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 1_000_000), 1_000_000)


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _yaw180(v: float) -> float:
    return (v + 180.0) % 360.0 - 180.0


def _xmp(meta: PhotoMeta, serials: DeviceSerials | None) -> bytes:
    values = {
        "AbsoluteAltitude": _signed(meta.alt_amsl),
        "RelativeAltitude": _signed(meta.alt_rel),
        "GimbalRollDegree": _signed(meta.gimbal_roll),
        "GimbalYawDegree": _signed(_yaw180(meta.gimbal_yaw)),
        "GimbalPitchDegree": _signed(meta.gimbal_pitch),
        "FlightRollDegree": _signed(meta.flight_roll),
        "FlightYawDegree": _signed(_yaw180(meta.flight_yaw)),
        "FlightPitchDegree": _signed(meta.flight_pitch),
    }
    if serials is not None:
        values["DroneSerialNumber"] = serials.drone
    attrs = "\n   ".join(f'drone-dji:{k}="{v}"' for k, v in values.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about="DJI Meta Data"\n'
        '   xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"\n'
        f"   {attrs}/>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def write_photo(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    camera: Camera,
    meta: PhotoMeta,
    *,
    make_model: tuple[str, str],
    quality: int = 90,
    serials: DeviceSerials | None = None,
) -> Path:
    """Save ``pixels`` (h, w, 3) uint8 as a JPEG with EXIF and DJI XMP (module docstring);
    with ``serials``, the camera's in EXIF BodySerialNumber and the drone's in XMP."""
    im = Image.fromarray(pixels)
    h, w = pixels.shape[:2]
    ex = Image.Exif()
    b = ExifTags.Base
    ex[b.Make] = make_model[0]
    ex[b.Model] = make_model[1]
    ex[b.Software] = "sitewatch simulate-flight"
    wall = meta.camera_time.replace(tzinfo=None)
    offset = meta.camera_time.utcoffset() or dt.timedelta(0)
    minutes = round(offset.total_seconds() / 60)
    zone = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    ex[b.DateTime] = wall.strftime("%Y:%m:%d %H:%M:%S")
    sub = ex.get_ifd(ExifTags.IFD.Exif)
    sub[b.DateTimeOriginal] = wall.strftime("%Y:%m:%d %H:%M:%S")
    sub[b.SubsecTimeOriginal] = f"{wall.microsecond // 1000:03d}"
    sub[b.OffsetTimeOriginal] = zone
    sub[b.FocalLength] = _rational(camera.focal_mm, 100)
    sub[b.FocalLengthIn35mmFilm] = round(camera.focal_mm * 36.0 / camera.sensor_w_mm)
    sub[b.ExifImageWidth] = w
    sub[b.ExifImageHeight] = h
    sub[b.FocalPlaneXResolution] = _rational(w / (camera.sensor_w_mm / 10.0), 1000)
    sub[b.FocalPlaneYResolution] = _rational(h / (camera.sensor_h_mm / 10.0), 1000)
    sub[b.FocalPlaneResolutionUnit] = 3  # centimetres
    sub[b.ExposureTime] = IFDRational(1, 1000)
    if serials is not None:
        sub[b.BodySerialNumber] = serials.camera
    gps = ex.get_ifd(ExifTags.IFD.GPSInfo)
    g = ExifTags.GPS
    gps[g.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[g.GPSLatitudeRef] = "N" if meta.lat >= 0 else "S"
    gps[g.GPSLatitude] = _dms(meta.lat)
    gps[g.GPSLongitudeRef] = "E" if meta.lon >= 0 else "W"
    gps[g.GPSLongitude] = _dms(meta.lon)
    gps[g.GPSAltitudeRef] = b"\x00" if meta.alt_amsl >= 0 else b"\x01"
    gps[g.GPSAltitude] = _rational(abs(meta.alt_amsl), 1000)
    target = Path(path)
    with atomic_path(target) as tmp:
        im.save(tmp, format="JPEG", quality=quality, exif=ex.tobytes(), xmp=_xmp(meta, serials))
    return target
