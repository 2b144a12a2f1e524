"""DJI enterprise aircraft for WPML route files: their enums, payloads and survey cameras.

A WPML file declares the aircraft in ``wpml:droneInfo`` (``droneEnumValue``,
``droneSubEnumValue``) and the camera in ``wpml:payloadInfo`` (``payloadEnumValue``,
``payloadPositionIndex``); DJI Pilot 2 and FlightHub 2 refuse a route made for another
aircraft. The values are DJI's published ones (Cloud API, "Product Support": aircraft
type/sub_type and camera type-subtype-gimbalindex; Zenmuse P1 = 50 as Pilot 2 writes it for
the M300/M350 RTK). Each aircraft carries the camera the planner computes GSD and spacing for
(a preset of :mod:`flightplans.camera`, so ``--camera`` knows it too).

=========================  ============  ================  ====================
``--drone``                drone enum    payload enum      camera preset
=========================  ============  ================  ====================
m300rtk (+ Zenmuse P1)     60 / 0        50 (P1)           zenmusep1-35
m350rtk (+ Zenmuse P1)     89 / 0        50 (P1)           zenmusep1-35
m30                        67 / 0        52 (M30 Camera)   matrice30-wide
m30t                       67 / 1        53 (M30T Camera)  matrice30-wide
mavic3e                    77 / 0        66 (M3E Camera)   mavic3e
mavic3t                    77 / 1        67 (M3T Camera)   mavic3t-wide
matrice4e                  99 / 0        88 (M4E Camera)   matrice4e-wide
matrice4t                  99 / 1        89 (M4T Camera)   matrice4t-wide
=========================  ============  ================  ====================

Example
-------
>>> d = get_drone("M30T")
>>> (d.drone_enum, d.drone_sub_enum, d.payload_enum, d.camera.name)
(67, 1, 53, 'matrice30-wide')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flightplans.camera import CAMERAS, Camera
from flightplans.errors import PlanParameterError

__all__ = ["DRONES", "Drone", "drone_for_enums", "get_drone", "list_drones"]


@dataclass(frozen=True)
class Drone:
    """A DJI aircraft with the payload a survey flies it with.

    Attributes
    ----------
    name
        The ``--drone`` key.
    label
        Human-readable aircraft and payload.
    drone_enum, drone_sub_enum
        ``wpml:droneEnumValue`` / ``wpml:droneSubEnumValue``.
    payload_enum, payload_sub_enum, payload_position
        ``wpml:payloadEnumValue`` / ``payloadSubEnumValue`` / ``payloadPositionIndex`` (0: the
        main gimbal).
    camera_name
        The survey camera preset (:data:`flightplans.camera.CAMERAS`).
    lens
        The lens photos are stored from (``wpml:imageFormat`` / ``payloadLensIndex``):
        ``wide`` on the multi-lens payloads, ``visable`` (DJI's spelling) on the P1.
    takeoff_ref_point
        Whether the aircraft reads ``wpml:takeOffRefPoint`` (DJI lists M30, Mavic 3 and
        Matrice 3D/4; not the M300/M350 RTK).
    """

    name: str
    label: str
    drone_enum: int
    drone_sub_enum: int
    payload_enum: int
    camera_name: str
    lens: str = "wide"
    payload_sub_enum: int = 0
    payload_position: int = 0
    takeoff_ref_point: bool = True

    @property
    def camera(self) -> Camera:
        """The survey camera of this aircraft."""
        return CAMERAS[self.camera_name]


#: The aircraft ``--drone`` knows.
DRONES: dict[str, Drone] = {
    d.name: d
    for d in (
        Drone(
            "m300rtk",
            "DJI Matrice 300 RTK + Zenmuse P1 (35 mm)",
            60,
            0,
            50,
            "zenmusep1-35",
            lens="visable",
            takeoff_ref_point=False,
        ),
        Drone(
            "m350rtk",
            "DJI Matrice 350 RTK + Zenmuse P1 (35 mm)",
            89,
            0,
            50,
            "zenmusep1-35",
            lens="visable",
            takeoff_ref_point=False,
        ),
        Drone("m30", "DJI Matrice 30 (wide camera)", 67, 0, 52, "matrice30-wide"),
        Drone("m30t", "DJI Matrice 30T (wide camera)", 67, 1, 53, "matrice30-wide"),
        Drone("mavic3e", "DJI Mavic 3 Enterprise (wide camera)", 77, 0, 66, "mavic3e"),
        Drone("mavic3t", "DJI Mavic 3 Thermal (wide camera)", 77, 1, 67, "mavic3t-wide"),
        Drone("matrice4e", "DJI Matrice 4E (wide camera)", 99, 0, 88, "matrice4e-wide"),
        Drone("matrice4t", "DJI Matrice 4T (wide camera)", 99, 1, 89, "matrice4t-wide"),
    )
}

_ALIASES = {
    "m300": "m300rtk",
    "matrice300rtk": "m300rtk",
    "matrice300": "m300rtk",
    "m350": "m350rtk",
    "matrice350rtk": "m350rtk",
    "matrice350": "m350rtk",
    "matrice30": "m30",
    "matrice30t": "m30t",
    "m3e": "mavic3e",
    "mavic3enterprise": "mavic3e",
    "m3t": "mavic3t",
    "mavic3thermal": "mavic3t",
    "m4e": "matrice4e",
    "m4t": "matrice4t",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("dji", ""))


def get_drone(name: str) -> Drone:
    """Look an aircraft up by name (case, spaces, ``-``, ``_`` and a ``DJI`` prefix ignored).

    Raises
    ------
    PlanParameterError
        Unknown name; the message lists the known ones.
    """
    k = _key(name)
    k = _ALIASES.get(k, k)
    if k in DRONES:
        return DRONES[k]
    known = ", ".join(sorted(DRONES))
    raise PlanParameterError(
        f"unknown drone {name!r}; use one of {known} (DJI Pilot 2 / FlightHub 2 aircraft)"
    )


def list_drones() -> list[Drone]:
    """The aircraft, sorted by name."""
    return [DRONES[k] for k in sorted(DRONES)]


def drone_for_enums(drone_enum: int, drone_sub_enum: int, payload_enum: int | None) -> Drone | None:
    """The aircraft a WPML file declares, or ``None`` when none of :data:`DRONES` matches.

    The payload decides between aircraft with the same enums (an M300 RTK with a P1 is ours;
    with an H20 it is not, since we know no H20 camera model).
    """
    for d in DRONES.values():
        if (d.drone_enum, d.drone_sub_enum) == (drone_enum, drone_sub_enum) and (
            payload_enum is None or d.payload_enum == payload_enum
        ):
            return d
    return None
