"""Survey cameras and the photogrammetric relations between altitude, GSD and footprint.

The relations are the standard ones QGroundControl's ``CameraCalc`` uses (square pixels,
landscape orientation, image width across track)::

    GSD [cm/px]     = H * Sw * 100 / (Iw * f)        H metres, Sw and f millimetres, Iw px
    side footprint  = Iw * GSD / 100 = H * Sw / f    metres, across track
    front footprint = Ih * GSD / 100                 metres, along track (= H * Sh / f
                                                     for square pixels)
    line spacing    = side footprint  * (100 - side overlap %) / 100
    trigger spacing = front footprint * (100 - front overlap %) / 100

Example
-------
>>> cam = get_camera("phantom4pro")
>>> round(cam.gsd_cm(100.0), 3)
2.741
>>> round(cam.altitude_for_gsd(2.741), 1)
100.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flightplans.errors import CameraError

__all__ = ["CAMERAS", "Camera", "get_camera", "list_cameras"]


@dataclass(frozen=True)
class Camera:
    """A frame camera looking straight down.

    Attributes
    ----------
    name
        Preset key or ``"custom"``.
    sensor_w_mm, sensor_h_mm
        Sensor width and height in millimetres (landscape: width is the long side).
    focal_mm
        Focal length in millimetres.
    image_w_px, image_h_px
        Image width and height in pixels.
    label
        Human-readable model name.
    """

    name: str
    sensor_w_mm: float
    sensor_h_mm: float
    focal_mm: float
    image_w_px: int
    image_h_px: int
    label: str = ""

    def __post_init__(self) -> None:
        values = {
            "sensor width": self.sensor_w_mm,
            "sensor height": self.sensor_h_mm,
            "focal length": self.focal_mm,
            "image width": self.image_w_px,
            "image height": self.image_h_px,
        }
        for what, v in values.items():
            if not v > 0:
                raise CameraError(
                    f"camera {self.name!r}: {what} is {v}; pass a positive value "
                    "(--sensor-mm W H --focal-mm F --image-px W H)"
                )

    def gsd_cm(self, altitude_m: float) -> float:
        """Ground sample distance in cm/px at ``altitude_m`` above ground."""
        return altitude_m * self.sensor_w_mm * 100.0 / (self.image_w_px * self.focal_mm)

    def altitude_for_gsd(self, gsd_cm: float) -> float:
        """Height above ground in metres that gives ``gsd_cm`` cm/px."""
        return gsd_cm * self.image_w_px * self.focal_mm / (self.sensor_w_mm * 100.0)

    def footprint_m(self, altitude_m: float) -> tuple[float, float]:
        """(side, front) footprint in metres at ``altitude_m``: across and along track."""
        g = self.gsd_cm(altitude_m) / 100.0
        return self.image_w_px * g, self.image_h_px * g

    def line_spacing_m(self, altitude_m: float, side_overlap_pct: float) -> float:
        """Distance between flight lines in metres."""
        return self.footprint_m(altitude_m)[0] * (100.0 - side_overlap_pct) / 100.0

    def trigger_distance_m(self, altitude_m: float, front_overlap_pct: float) -> float:
        """Distance between photos along a line in metres."""
        return self.footprint_m(altitude_m)[1] * (100.0 - front_overlap_pct) / 100.0


#: Built-in presets (manufacturers' published sensor, lens and image sizes).
CAMERAS: dict[str, Camera] = {
    c.name: c
    for c in (
        Camera("phantom4pro", 13.2, 8.8, 8.8, 5472, 3648, "DJI Phantom 4 Pro / Pro V2.0"),
        Camera("phantom4rtk", 13.2, 8.8, 8.8, 5472, 3648, "DJI Phantom 4 RTK"),
        # 4/3" CMOS 17.3 x 13.0 mm, 5280 x 3956 px, 12.29 mm (24 mm equivalent).
        Camera("mavic3e", 17.3, 12.96, 12.29, 5280, 3956, "DJI Mavic 3 Enterprise (wide)"),
        # Full frame 35.9 x 24 mm, 8192 x 5460 px, DL 35 mm F2.8 LS ASPH.
        Camera("zenmusep1-35", 35.9, 24.0, 35.0, 8192, 5460, "DJI Zenmuse P1, 35 mm lens"),
        # Full frame 35.9 x 24 mm, 7952 x 5304 px, fixed Zeiss Sonnar 35 mm.
        Camera("sonyrx1r2", 35.9, 24.0, 35.0, 7952, 5304, "Sony RX1R II"),
        # 1" 13.2 x 8.8 mm, 5472 x 3648 px, 10.4 mm at the wide end.
        Camera("sonyrx100m2", 13.2, 8.8, 10.4, 5472, 3648, "Sony RX100 II (wide end)"),
        # The wide cameras of DJI's enterprise aircraft (the --drone presets of
        # flightplans.drones). DJI publishes sensor type, pixels and the 35 mm equivalent focal
        # length (24 mm); the true focal length of a 4:3 sensor of width Sw is
        # Sw * 24 / 34.62 (a 4:3 frame with the 43.27 mm diagonal of 36 x 24 mm is 34.62 mm
        # wide). GSD depends only on Sw / f and the image width, so these hold to the
        # rounding of the published equivalent focal length.
        # Matrice 30 / 30T wide: 1/2" CMOS (1.6 um: 6.4 x 4.8 mm), 12 MP 4000 x 3000, 24 mm eq.
        Camera("matrice30-wide", 6.4, 4.8, 4.44, 4000, 3000, "DJI Matrice 30/30T wide camera"),
        # Mavic 3T wide: 1/2" CMOS (0.8 um: 6.4 x 4.8 mm), 48 MP 8000 x 6000, 24 mm eq.
        Camera("mavic3t-wide", 6.4, 4.8, 4.44, 8000, 6000, "DJI Mavic 3 Thermal wide camera"),
        # Matrice 4E wide: 4/3" CMOS 20 MP 5280 x 3956, 24 mm eq (the Mavic 3E's optics).
        Camera("matrice4e-wide", 17.3, 12.96, 12.29, 5280, 3956, "DJI Matrice 4E wide camera"),
        # Matrice 4T wide: 1/1.3" CMOS (1.2 um: 9.68 x 7.26 mm), 48 MP 8064 x 6048, 24 mm eq.
        Camera("matrice4t-wide", 9.68, 7.26, 6.71, 8064, 6048, "DJI Matrice 4T wide camera"),
    )
}

_ALIASES = {
    "p4p": "phantom4pro",
    "p4rtk": "phantom4rtk",
    "m3e": "mavic3e",
    "p1": "zenmusep1-35",
    "zenmusep1": "zenmusep1-35",
    "rx1rii": "sonyrx1r2",
    "rx1r2": "sonyrx1r2",
    "m30": "matrice30-wide",
    "m30t": "matrice30-wide",
    "matrice30": "matrice30-wide",
    "m3t": "mavic3t-wide",
    "mavic3t": "mavic3t-wide",
    "m4e": "matrice4e-wide",
    "matrice4e": "matrice4e-wide",
    "m4t": "matrice4t-wide",
    "matrice4t": "matrice4t-wide",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", name.lower().replace("dji", "").replace("_", ""))


def get_camera(name: str) -> Camera:
    """Look a preset up by name (case, spaces, ``_`` and a ``DJI`` prefix are ignored).

    Raises
    ------
    CameraError
        Unknown name; the message lists the known presets.
    """
    k = _key(name)
    k = _ALIASES.get(k, k)
    if k in CAMERAS:
        return CAMERAS[k]
    known = ", ".join(sorted(CAMERAS))
    raise CameraError(
        f"unknown camera {name!r}; use one of {known} "
        "or give --sensor-mm W H --focal-mm F --image-px W H"
    )


def list_cameras() -> list[Camera]:
    """The presets, sorted by name."""
    return [CAMERAS[k] for k in sorted(CAMERAS)]
