"""Mission items on the wire (MISSION_ITEM_INT fields) and the read-back compared with the plan.

Latitude and longitude travel as int32 degrees * 1e7; item 0 is home (MAV_FRAME_GLOBAL,
altitude AMSL), as QGroundControl sends it. The comparison reads positions to
:data:`POSITION_TOLERANCE_DEG` and altitudes to :data:`ALTITUDE_TOLERANCE_M`; a parameter the
firmware does not store (reads back 0) is reported as dropped, not as a mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flightplans.mission import Mission, MissionItem

__all__ = [
    "ALTITUDE_TOLERANCE_M",
    "POSITION_TOLERANCE_DEG",
    "Comparison",
    "compare_missions",
    "mission_from_messages",
    "mission_items",
    "wire_row",
    "wire_row_from_message",
]

#: The read-back must equal the plan to this many degrees (the MISSION_ITEM_INT resolution).
POSITION_TOLERANCE_DEG = 1e-7
#: ArduPilot stores altitudes as int32 centimetres (truncated): allow one centimetre plus the
#: float32 rounding of the wire value.
ALTITUDE_TOLERANCE_M = 0.011
_PARAM_RTOL = 1e-6  # params travel as float32

_MAV_FRAME_GLOBAL = 0
_MAV_CMD_NAV_WAYPOINT = 16
# *_INT frame variants and their plain equivalents (ArduPilot reads back the plain ones).
_FRAME_ALIASES = {5: 0, 6: 3, 11: 10}
# Commands whose x/y/z are a place (ArduPilot keeps a Location for them).
_LOCATION_COMMANDS = frozenset({16, 17, 18, 19, 21, 22, 31, 82, 201})
_COMMAND_NAMES = {
    16: "NAV_WAYPOINT",
    20: "NAV_RETURN_TO_LAUNCH",
    21: "NAV_LAND",
    22: "NAV_TAKEOFF",
    178: "DO_CHANGE_SPEED",
    206: "DO_SET_CAM_TRIGG_DIST",
    2000: "IMAGE_START_CAPTURE",
    2001: "IMAGE_STOP_CAPTURE",
}


def _e7(value: float) -> int:
    return round(value * 1e7) if math.isfinite(value) else 0


def _item_fields(seq: int, item: MissionItem) -> tuple[Any, ...]:
    """MISSION_ITEM_INT fields after target_system/target_component."""
    return (
        seq,
        int(item.frame),
        int(item.command),
        0,  # current
        1 if item.autocontinue else 0,
        *(float(p) for p in item.params),
        _e7(item.lat),
        _e7(item.lon),
        float(item.alt) if math.isfinite(item.alt) else 0.0,
    )


def _home_fields(home: tuple[float, float, float]) -> tuple[Any, ...]:
    """Item 0: home as NAV_WAYPOINT in MAV_FRAME_GLOBAL (altitude AMSL), as QGC sends it."""
    lat, lon, alt = home
    return (
        0,
        _MAV_FRAME_GLOBAL,
        _MAV_CMD_NAV_WAYPOINT,
        0,
        1,
        0.0,
        0.0,
        0.0,
        0.0,
        _e7(lat),
        _e7(lon),
        float(alt),
    )


def mission_items(mission: Mission) -> list[tuple[Any, ...]]:
    return [_home_fields(mission.home)] + [
        _item_fields(i, item) for i, item in enumerate(mission.items, start=1)
    ]


def wire_row(f: Sequence[Any]) -> tuple[Any, ...]:
    """Report row of MISSION_ITEM_INT fields (seq, frame, command, current, autocontinue, ...)."""
    seq, frame, command, _current, _auto, p1, p2, p3, p4, x, y, z = f
    return (seq, command, frame, p1, p2, p3, p4, x, y, z)


def wire_row_from_message(msg: Any) -> tuple[Any, ...]:
    is_int = msg.get_type() == "MISSION_ITEM_INT"
    x = int(msg.x) if is_int else round(float(msg.x) * 1e7)
    y = int(msg.y) if is_int else round(float(msg.y) * 1e7)
    return (
        int(msg.seq),
        int(msg.command),
        int(msg.frame),
        float(msg.param1),
        float(msg.param2),
        float(msg.param3),
        float(msg.param4),
        x,
        y,
        float(msg.z),
    )


def _from_message(msg: Any) -> MissionItem:
    scale = 1e-7 if msg.get_type() == "MISSION_ITEM_INT" else 1.0
    return MissionItem(
        command=int(msg.command),
        frame=_FRAME_ALIASES.get(int(msg.frame), int(msg.frame)),
        params=(float(msg.param1), float(msg.param2), float(msg.param3), float(msg.param4)),
        lat=float(msg.x) * scale,
        lon=float(msg.y) * scale,
        alt=float(msg.z),
        autocontinue=bool(msg.autocontinue),
    )


def mission_from_messages(msgs: Sequence[Any]) -> Mission:
    items = [_from_message(m) for m in msgs]
    home = (items[0].lat, items[0].lon, items[0].alt) if items else (0.0, 0.0, 0.0)
    return Mission(home=home, items=tuple(items[1:]), meta={"source": "vehicle"})


@dataclass
class Comparison:
    max_position_diff_deg: float = 0.0
    max_alt_diff_m: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _name(command: int) -> str:
    return _COMMAND_NAMES.get(command, f"command {command}")


def compare_missions(plan: Sequence[MissionItem], back: Sequence[MissionItem]) -> Comparison:
    """Compare plan items with read-back items (both without home), item by item."""
    cmp = Comparison()
    if len(back) != len(plan):
        cmp.mismatches.append(f"the vehicle holds {len(back)} items, the plan has {len(plan)}")
    for seq, (p, r) in enumerate(zip(plan, back, strict=False), start=1):
        where = f"item {seq} ({_name(p.command)})"
        if p.command != r.command:
            cmp.mismatches.append(f"{where}: vehicle has {_name(r.command)}")
            continue
        if p.command in _LOCATION_COMMANDS:
            # The frame says how to read the altitude; other commands have no frame on the
            # vehicle (ArduPilot reads them back as frame 0 whatever was sent).
            p_frame = _FRAME_ALIASES.get(p.frame, p.frame)
            if p_frame != r.frame:
                cmp.mismatches.append(f"{where}: frame {r.frame}, plan {p_frame}")
            d_pos = max(abs(r.lat - p.lat), abs(r.lon - p.lon))
            d_alt = abs(r.alt - p.alt)
            cmp.max_position_diff_deg = max(cmp.max_position_diff_deg, d_pos)
            cmp.max_alt_diff_m = max(cmp.max_alt_diff_m, d_alt)
            if d_pos > POSITION_TOLERANCE_DEG + 1e-12:
                cmp.mismatches.append(
                    f"{where}: position ({r.lat:.7f}, {r.lon:.7f}) is {d_pos:.2e} deg from "
                    f"the plan ({p.lat:.7f}, {p.lon:.7f})"
                )
            if d_alt > ALTITUDE_TOLERANCE_M:
                cmp.mismatches.append(f"{where}: altitude {r.alt:.2f} m, plan {p.alt:.2f} m")
            pairs = list(
                zip(("param1", "param2", "param3", "param4"), p.params, r.params, strict=True)
            )
        else:
            pairs = list(
                zip(
                    ("param1", "param2", "param3", "param4", "x", "y", "z"),
                    (*p.params, p.lat, p.lon, p.alt),
                    (*r.params, r.lat, r.lon, r.alt),
                    strict=True,
                )
            )
        for label, pv, rv in pairs:
            _compare_value(cmp, where, label, pv, rv)
    return cmp


def _compare_value(cmp: Comparison, where: str, label: str, pv: float, rv: float) -> None:
    if math.isnan(pv):
        if not (math.isnan(rv) or rv == 0.0):
            cmp.mismatches.append(f"{where}: {label} is {rv:g}, plan leaves it unset")
        return
    if not math.isnan(rv) and abs(rv - pv) <= _PARAM_RTOL * max(1.0, abs(pv)):
        return
    if rv == 0.0 or math.isnan(rv):
        cmp.dropped.append(f"{where}: {label} {pv:g} not stored by the firmware (reads 0)")
        return
    cmp.mismatches.append(f"{where}: {label} is {rv:g}, plan {pv:g}")
