"""What an upload did: :class:`UploadReport`, the record ``sitewatch upload`` prints and saves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["UploadReport"]


@dataclass(frozen=True)
class UploadReport:
    """What an upload did and how well the read-back matched.

    Attributes
    ----------
    connection
        The connection string used.
    result
        ``"ok"`` or ``"mismatch"``.
    items_before
        Mission items the vehicle held before (home not counted).
    items_sent
        Mission items in the accepted upload, home (item 0) included.
    items_received
        Mission items read back, home included.
    max_position_diff_deg
        Largest |lat| or |lon| difference between plan and read-back over the items with a
        position, degrees (MISSION_ITEM_INT: 0 up to half the 1e-7 grid).
    max_alt_diff_m
        Largest altitude difference over the items with a position, metres.
    upload_attempts
        MISSION_COUNT transfers started (more than 1 when a booting vehicle refused).
    boot_wait_s
        Seconds spent waiting for a booting (refusing) vehicle.
    retransmissions
        Messages resent after a protocol timeout (upload and downloads).
    request_types
        Requests the vehicle sent during the upload, by message type (ArduPilot asks with
        MISSION_REQUEST, PX4 with MISSION_REQUEST_INT; both are answered with MISSION_ITEM_INT).
    vehicle_home
        Item 0 read back: the vehicle's home (lat, lon, alt AMSL m), or None.
    mismatches
        One line per difference that fails the check.
    dropped_params
        Plan values the vehicle read back as 0 because its firmware does not store them for
        that command (e.g. NAV_WAYPOINT param2-4 on ArduCopter); informative, not a failure.
    statustexts
        STATUSTEXT lines the vehicle sent during the upload.
    duration_s
        Wall time from connect to the end of the read-back.
    sent, received
        The items as they went over the wire and came back, home (seq 0) first: tuples
        ``(seq, command, frame, param1, param2, param3, param4, lat_e7, lon_e7, alt_m)`` with
        latitude/longitude as the int32 degrees * 1e7 of MISSION_ITEM_INT.
    """

    connection: str
    result: str
    items_before: int
    items_sent: int
    items_received: int
    max_position_diff_deg: float
    max_alt_diff_m: float
    upload_attempts: int
    boot_wait_s: float
    retransmissions: int
    request_types: dict[str, int]
    vehicle_home: tuple[float, float, float] | None
    mismatches: tuple[str, ...] = ()
    dropped_params: tuple[str, ...] = ()
    statustexts: tuple[str, ...] = ()
    duration_s: float = 0.0
    sent: tuple[tuple[Any, ...], ...] = ()
    received: tuple[tuple[Any, ...], ...] = ()

    @property
    def ok(self) -> bool:
        """True when the read-back matched the plan."""
        return self.result == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        d = asdict(self)
        d["vehicle_home"] = list(self.vehicle_home) if self.vehicle_home else None
        for key in ("mismatches", "dropped_params", "statustexts"):
            d[key] = list(d[key])
        for key in ("sent", "received"):
            d[key] = [
                dict(zip(_WIRE_FIELDS, _json_values(row), strict=True))
                for row in getattr(self, key)
            ]
        return d


_WIRE_FIELDS = (
    "seq",
    "command",
    "frame",
    "param1",
    "param2",
    "param3",
    "param4",
    "lat_e7",
    "lon_e7",
    "alt_m",
)


def _json_values(row: Sequence[Any]) -> list[Any]:
    """NaN (an unused parameter) becomes None, as QGroundControl writes it."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in row]
