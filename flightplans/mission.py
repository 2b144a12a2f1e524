"""Mission data types shared by the planner, the file writers and the vehicle link.

A :class:`Mission` is what one sortie flies: a home position and an ordered tuple of
:class:`MissionItem` records that map one to one onto MAVLink ``MISSION_ITEM_INT`` messages
(item 0 of an ArduPilot mission is home and is *not* part of ``items``; writers and the
uploader add it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FRAME_AMSL",
    "FRAME_RELATIVE",
    "FRAME_TERRAIN",
    "MAV_CMD_DO_SET_CAM_TRIGG_DIST",
    "MAV_CMD_IMAGE_START_CAPTURE",
    "MAV_CMD_NAV_RETURN_TO_LAUNCH",
    "MAV_CMD_NAV_TAKEOFF",
    "MAV_CMD_NAV_WAYPOINT",
    "Mission",
    "MissionItem",
]

# MAVLink enum values (common.xml); kept here so that no geometry module imports pymavlink.
MAV_CMD_NAV_WAYPOINT = 16
MAV_CMD_NAV_RETURN_TO_LAUNCH = 20
MAV_CMD_NAV_TAKEOFF = 22
MAV_CMD_DO_SET_CAM_TRIGG_DIST = 206
MAV_CMD_IMAGE_START_CAPTURE = 2000

FRAME_AMSL = 0  # MAV_FRAME_GLOBAL
FRAME_RELATIVE = 3  # MAV_FRAME_GLOBAL_RELATIVE_ALT
FRAME_TERRAIN = 10  # MAV_FRAME_GLOBAL_TERRAIN_ALT


@dataclass(frozen=True)
class MissionItem:
    """One MAVLink mission item.

    ``params`` holds param1..param4 (NaN where unused, e.g. yaw of a waypoint); ``lat`` and
    ``lon`` are degrees WGS84 (0 for commands without a position), ``alt`` metres in ``frame``.
    """

    command: int
    frame: int
    params: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    lat: float = 0.0
    lon: float = 0.0
    alt: float = 0.0
    autocontinue: bool = True

    @property
    def has_position(self) -> bool:
        """True for commands whose lat/lon/alt are a place to fly to."""
        return self.command in (MAV_CMD_NAV_WAYPOINT, MAV_CMD_NAV_TAKEOFF) and not (
            self.lat == 0.0 and self.lon == 0.0
        )

    def lat_e7(self) -> int:
        """Latitude as the integer degrees * 1e7 sent in MISSION_ITEM_INT."""
        return round(self.lat * 1e7)

    def lon_e7(self) -> int:
        """Longitude as the integer degrees * 1e7 sent in MISSION_ITEM_INT."""
        return round(self.lon * 1e7)

    def same_as(self, other: MissionItem, tol_deg: float = 1e-7, tol_m: float = 0.01) -> bool:
        """Compare two items as a vehicle round-trip would (NaN equals NaN)."""

        def _eq(a: float, b: float, tol: float) -> bool:
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            return abs(a - b) <= tol

        return (
            self.command == other.command
            and self.frame == other.frame
            and all(_eq(a, b, 1e-4) for a, b in zip(self.params, other.params, strict=True))
            and _eq(self.lat, other.lat, tol_deg)
            and _eq(self.lon, other.lon, tol_deg)
            and _eq(self.alt, other.alt, tol_m)
        )


@dataclass(frozen=True)
class Mission:
    """A complete sortie: home, items and what describes them.

    ``home`` is (lat, lon, alt_amsl_m). ``stats`` carries figures for ``summary.json``
    (length_m, duration_s, n_photos, ...); ``meta`` free-form descriptive values (camera name,
    sortie number).
    """

    home: tuple[float, float, float]
    items: tuple[MissionItem, ...]
    cruise_speed_ms: float = 8.0
    hover_speed_ms: float = 5.0
    vehicle_type: str = "multirotor"
    firmware: str = "ardupilot"
    stats: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
