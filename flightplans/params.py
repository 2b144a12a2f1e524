"""Parameters of a survey plan, validated when built.

Example
-------
>>> p = PlanParams(gsd_cm=2.0)
>>> round(p.altitude_m(), 1)
73.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from flightplans.camera import CAMERAS, Camera
from flightplans.errors import PlanParameterError

__all__ = ["AltitudeMode", "PlanParams"]

AltitudeMode = Literal["relative", "amsl", "terrain"]


@dataclass(frozen=True)
class PlanParams:
    """What to fly: resolution, overlaps, grid, vehicle and battery.

    Exactly one of ``gsd_cm`` / ``alt_m`` is given. Defaults follow common survey practice.

    Attributes
    ----------
    gsd_cm, alt_m
        Ground sample distance (cm/px) or height above ground (m).
    camera
        The camera (default: DJI Phantom 4 Pro).
    front_pct, side_pct
        Front and side overlap in percent, each in [0, 95].
    angle_deg
        Bearing of the flight lines in degrees clockwise from grid north of the UTM zone;
        ``None`` chooses the angle of least flight time (see :mod:`flightplans.angle`).
    crosshatch
        Add a second pass perpendicular to the first.
    max_alt_m
        Never fly higher than this above ground (120 m: China, EU, US light-drone limit).
    min_alt_m
        Never plan lower than this above ground (default 20 m): construction sites have
        cranes, scaffolding and buildings that a survey height must clear. Lower it only for
        a site known to be clear.
    speed_ms
        Cruise speed (m/s); hover speed is ``min(speed, 5)``.
    battery_min, reserve_frac
        Battery endurance (minutes) and the fraction kept in reserve (default 20 %); each
        sortie, including takeoff, transit out and back and landing, fits the rest.
    turnaround_m
        Lines extend this far past their last photo at both ends (10 m multirotor).
    hover_capture
        Stop at each photo and take it with IMAGE_START_CAPTURE instead of distance triggering.
    alt_mode
        ``relative`` (to home), ``amsl`` or ``terrain`` (MAV_FRAME_GLOBAL_TERRAIN_ALT);
        ``None``: relative without a DEM, AMSL with one.
    terrain_tol_m
        With a DEM, the height above ground is held within this tolerance (default:
        max(1 m, 5 % of the height)); spacing is computed for the lowest height allowed.
    terrain_step_m
        Spacing of the DEM samples along each leg.
    nofly_margin_m
        Distance kept from no-fly zones and site holes.
    max_home_dist_m
        Home farther than this from the site is refused.
    accel_ms2, climb_ms, descent_ms, hover_hold_s
        Vehicle model for flight time: horizontal acceleration (turns), climb and descent
        rates, hold time per photo with hover-and-capture.
    """

    gsd_cm: float | None = None
    alt_m: float | None = None
    camera: Camera = field(default_factory=lambda: CAMERAS["phantom4pro"])
    front_pct: float = 75.0
    side_pct: float = 65.0
    angle_deg: float | None = None
    crosshatch: bool = False
    max_alt_m: float = 120.0
    min_alt_m: float = 20.0
    speed_ms: float = 8.0
    battery_min: float = 20.0
    reserve_frac: float = 0.2
    turnaround_m: float = 10.0
    hover_capture: bool = False
    alt_mode: AltitudeMode | None = None
    terrain_tol_m: float | None = None
    terrain_step_m: float = 5.0
    nofly_margin_m: float = 5.0
    max_home_dist_m: float = 2000.0
    accel_ms2: float = 2.5
    climb_ms: float = 3.0
    descent_ms: float = 2.0
    hover_hold_s: float = 1.0

    def __post_init__(self) -> None:
        if (self.gsd_cm is None) == (self.alt_m is None):
            raise PlanParameterError(
                "give exactly one of --gsd-cm and --alt-m "
                f"(got gsd_cm={self.gsd_cm}, alt_m={self.alt_m})"
            )
        for name, flag, v in (
            ("front", "--front", self.front_pct),
            ("side", "--side", self.side_pct),
        ):
            if not (0.0 <= v <= 95.0) or math.isnan(v):
                raise PlanParameterError(
                    f"{name} overlap {v} % is outside 0-95 %; pass {flag} between 0 and 95"
                )
        positive = {
            "--gsd-cm": self.gsd_cm,
            "--alt-m": self.alt_m,
            "--max-alt-m": self.max_alt_m,
            "--speed-ms": self.speed_ms,
            "--battery-min": self.battery_min,
            "terrain_step_m": self.terrain_step_m,
            "accel_ms2": self.accel_ms2,
            "climb_ms": self.climb_ms,
            "descent_ms": self.descent_ms,
        }
        for flag, pv in positive.items():
            if pv is not None and not (pv > 0 and math.isfinite(pv)):
                raise PlanParameterError(f"{flag} is {pv}; pass a positive number")
        if not 0.0 <= self.reserve_frac < 0.9:
            raise PlanParameterError(
                f"battery reserve {self.reserve_frac} is outside [0, 0.9); pass e.g. 0.2"
            )
        if self.turnaround_m < 0 or self.nofly_margin_m < 0:
            raise PlanParameterError(
                "--turnaround-m and the no-fly margin must be >= 0 "
                f"(got {self.turnaround_m}, {self.nofly_margin_m})"
            )
        if self.alt_mode not in (None, "relative", "amsl", "terrain"):
            raise PlanParameterError(
                f"altitude mode {self.alt_mode!r} is unknown; use relative, amsl or terrain"
            )
        if self.angle_deg is not None and not math.isfinite(self.angle_deg):
            raise PlanParameterError(f"--angle {self.angle_deg} is not a number; use auto or DEG")
        if not (0.0 <= self.min_alt_m < self.max_alt_m):
            raise PlanParameterError(
                f"--min-alt-m {self.min_alt_m:g} must be >= 0 and below --max-alt-m "
                f"{self.max_alt_m:g}"
            )
        h = self.altitude_m()
        if h < self.min_alt_m:
            finest = self.camera.gsd_cm(self.min_alt_m)
            what = f"GSD {self.gsd_cm} cm/px" if self.gsd_cm is not None else f"--alt-m {h:g}"
            raise PlanParameterError(
                f"{what} needs {h:.1f} m above ground, below --min-alt-m {self.min_alt_m:g}; "
                f"the finest GSD reachable at that height with {self.camera.name} is "
                f"{finest:.2f} cm/px: pass --gsd-cm {math.ceil(finest * 100) / 100:.2f} or more "
                "(or lower --min-alt-m for a site known to be clear of cranes and buildings)"
            )
        if h > self.max_alt_m:
            coarsest = self.camera.gsd_cm(self.max_alt_m)
            what = f"GSD {self.gsd_cm} cm/px" if self.gsd_cm is not None else f"--alt-m {h}"
            raise PlanParameterError(
                f"{what} needs {h:.1f} m above ground, above --max-alt-m {self.max_alt_m:g}; "
                f"the coarsest GSD reachable under the limit with {self.camera.name} is "
                f"{coarsest:.2f} cm/px: pass --gsd-cm {math.floor(coarsest * 100) / 100:.2f} "
                "or less"
            )

    def altitude_m(self) -> float:
        """Height above ground in metres (from ``alt_m`` or ``gsd_cm``)."""
        if self.alt_m is not None:
            return float(self.alt_m)
        assert self.gsd_cm is not None
        return self.camera.altitude_for_gsd(self.gsd_cm)

    def gsd(self) -> float:
        """Nominal ground sample distance in cm/px."""
        return self.camera.gsd_cm(self.altitude_m())

    def tolerance_m(self) -> float:
        """Height-above-ground tolerance used with a DEM, in metres."""
        if self.terrain_tol_m is not None:
            return float(self.terrain_tol_m)
        return max(1.0, 0.05 * self.altitude_m())

    def hover_speed_ms(self) -> float:
        """Hover speed written into the plan (m/s)."""
        return min(self.speed_ms, 5.0)

    def usable_flight_s(self) -> float:
        """Seconds of flight per battery after the reserve."""
        return self.battery_min * 60.0 * (1.0 - self.reserve_frac)
