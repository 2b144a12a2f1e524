"""QGroundControl mission files: the ``.plan`` JSON and the ``QGC WPL 110`` text format.

Format facts (from QGroundControl's ``MissionItem``/``SimpleMissionItem``/``QGCFencePolygon``
and ``JsonHelper`` loaders):

* ``.plan``: ``{"fileType": "Plan", "version": 1, "groundStation": str, "mission": {...},
  "geoFence": {...}, "rallyPoints": {...}}``. ``mission`` holds ``version`` 2,
  ``firmwareType`` (MAV_AUTOPILOT: 3 ArduPilot, 12 PX4), ``vehicleType`` (MAV_TYPE: 2
  quadrotor, 1 fixed wing), ``cruiseSpeed``, ``hoverSpeed``, ``plannedHomePosition``
  ``[lat, lon, alt_amsl]`` and ``items``. A simple item is ``{"type": "SimpleItem",
  "command", "frame", "params": [p1..p7], "autoContinue", "doJumpId"}`` where p5..p7 are
  latitude, longitude and altitude and NaN is written as ``null``; items with a position also
  carry ``Altitude``, ``AltitudeMode`` (QGC's AltMode: 1 relative, 2 absolute, 4 terrain
  frame) and ``AMSLAltAboveTerrain``. Fence polygons are ``{"version": 1, "inclusion": bool,
  "polygon": [[lat, lon], ...]}`` (ring not closed).
* ``QGC WPL 110``: a header line, then one line per item with 12 tab-separated columns
  ``INDEX CURRENT FRAME COMMAND P1 P2 P3 P4 LAT LON ALT AUTOCONTINUE``; row 0 is home
  (frame 0, AMSL).

:func:`read_plan` also flattens the simple items inside QGroundControl's own survey complex
items (``TransectStyleComplexItem.Items``), so a plan drawn in QGroundControl can be uploaded.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flightplans._files import write_text_atomic
from flightplans.errors import PlanFileError
from flightplans.mission import (
    FRAME_AMSL,
    FRAME_RELATIVE,
    FRAME_TERRAIN,
    MAV_CMD_NAV_WAYPOINT,
    Mission,
    MissionItem,
)

__all__ = ["read_plan", "read_waypoints", "write_plan", "write_waypoints"]

LatLonRing = Sequence[tuple[float, float]]

_FIRMWARE = {"ardupilot": 3, "px4": 12, "generic": 0}
_VEHICLE = {"multirotor": 2, "fixedwing": 1}
# QGroundControl AltMode per MAVLink frame.
_ALT_MODE = {FRAME_RELATIVE: 1, FRAME_AMSL: 2, FRAME_TERRAIN: 4}
_WPL_HEADER = "QGC WPL 110"
_PLAN_MAX_VERSION = 1


def _json_number(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _item_json(item: MissionItem, seq: int) -> dict[str, Any]:
    params = [*item.params, item.lat, item.lon, item.alt]
    d: dict[str, Any] = {
        "autoContinue": bool(item.autocontinue),
        "command": int(item.command),
        "doJumpId": seq,
        "frame": int(item.frame),
        "params": [_json_number(float(p)) for p in params],
        "type": "SimpleItem",
    }
    if item.has_position:
        d["AMSLAltAboveTerrain"] = float(item.alt) if item.frame == FRAME_AMSL else None
        d["Altitude"] = float(item.alt)
        d["AltitudeMode"] = _ALT_MODE.get(item.frame, 1)
    return d


def _ring_json(ring: LatLonRing) -> list[list[float]]:
    pts = [[float(lat), float(lon)] for lat, lon in ring]
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]
    return pts


def write_plan(
    mission: Mission,
    path: str | os.PathLike[str],
    *,
    inclusion: Iterable[LatLonRing] = (),
    exclusions: Iterable[LatLonRing] = (),
) -> Path:
    """Write ``mission`` as a QGroundControl ``.plan`` file (atomically).

    Parameters
    ----------
    mission
        The sortie; its ``home`` becomes ``plannedHomePosition``.
    path
        Output file, conventionally ``*.plan``.
    inclusion, exclusions
        GeoFence polygons as rings of (lat, lon) degrees: the site (inclusion) and the no-fly
        zones (exclusion). A closing vertex equal to the first is dropped, as QGC stores it.

    Returns
    -------
    Path
        ``path``.
    """
    items = [_item_json(it, i + 1) for i, it in enumerate(mission.items)]
    modes = {d["AltitudeMode"] for d in items if "AltitudeMode" in d}
    polygons = [{"inclusion": True, "polygon": _ring_json(r), "version": 1} for r in inclusion]
    polygons += [{"inclusion": False, "polygon": _ring_json(r), "version": 1} for r in exclusions]
    doc = {
        "fileType": "Plan",
        "geoFence": {"circles": [], "polygons": polygons, "version": 2},
        "groundStation": "sitewatch",
        "mission": {
            "cruiseSpeed": float(mission.cruise_speed_ms),
            "firmwareType": _FIRMWARE.get(mission.firmware, 0),
            "globalPlanAltitudeMode": modes.pop() if len(modes) == 1 else 0,
            "hoverSpeed": float(mission.hover_speed_ms),
            "items": items,
            "plannedHomePosition": [float(v) for v in mission.home],
            "vehicleType": _VEHICLE.get(mission.vehicle_type, 2),
            "version": 2,
        },
        "rallyPoints": {"points": [], "version": 2},
        "version": 1,
    }
    return write_text_atomic(path, json.dumps(doc, indent=4, allow_nan=False) + "\n")


def _fail(path: Path, what: str) -> PlanFileError:
    return PlanFileError(
        f"{path}: not a usable QGroundControl plan ({what}); "
        "save the mission from QGroundControl as a .plan file or make one with `sitewatch plan`"
    )


def _num(value: Any, path: Path, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"{where} is {value!r}, not a number")
    return float(value)


def _flatten_items(raw: list[Any], path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, it in enumerate(raw):
        if not isinstance(it, dict):
            raise _fail(path, f"mission item {i + 1} is not an object")
        kind = it.get("type")
        if kind == "SimpleItem":
            out.append(it)
        elif kind == "ComplexItem":
            inner = it.get("TransectStyleComplexItem", {})
            sub = inner.get("Items") if isinstance(inner, dict) else None
            if not isinstance(sub, list):
                name = it.get("complexItemType", "?")
                raise _fail(path, f"complex item {i + 1} ({name}) carries no generated items")
            out.extend(_flatten_items(sub, path))
        else:
            raise _fail(path, f"mission item {i + 1} has type {kind!r}")
    return out


def _item_from_json(d: dict[str, Any], n: int, path: Path) -> MissionItem:
    where = f"mission item {n}"
    for key in ("command", "frame", "params"):
        if key not in d:
            raise _fail(path, f"{where} has no {key!r}")
    params = d["params"]
    if not isinstance(params, list) or len(params) != 7:
        raise _fail(path, f"{where} 'params' must hold 7 values")
    p = [_num(v, path, f"{where} param {k + 1}") for k, v in enumerate(params)]
    command = int(_num(d["command"], path, f"{where} command"))
    frame = int(_num(d["frame"], path, f"{where} frame"))
    lat, lon, alt = (0.0 if math.isnan(v) else v for v in p[4:7])
    return MissionItem(
        command=command,
        frame=frame,
        params=(p[0], p[1], p[2], p[3]),
        lat=lat,
        lon=lon,
        alt=alt,
        autocontinue=bool(d.get("autoContinue", True)),
    )


def read_plan(path: str | os.PathLike[str]) -> Mission:
    """Read a QGroundControl ``.plan`` file back into a :class:`Mission`.

    Raises
    ------
    PlanFileError
        The file is not JSON, not a Plan, or its mission items are malformed (one line naming
        the file, what is wrong and the fix).
    FileNotFoundError
        The file does not exist.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as exc:
        raise _fail(p, "not UTF-8 text") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(p, f"invalid JSON at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(doc, dict):
        raise _fail(p, "the top level is not a JSON object")
    if doc.get("fileType") != "Plan":
        raise _fail(p, f"fileType is {doc.get('fileType')!r}, expected 'Plan'")
    version = doc.get("version")
    if not isinstance(version, int) or version > _PLAN_MAX_VERSION:
        raise _fail(p, f"plan version {version!r} is not supported (expected 1)")
    mission = doc.get("mission")
    if not isinstance(mission, dict) or not isinstance(mission.get("items"), list):
        raise _fail(p, "no mission.items list")
    home_raw = mission.get("plannedHomePosition")
    if not isinstance(home_raw, list) or len(home_raw) != 3:
        raise _fail(p, "mission.plannedHomePosition must be [lat, lon, alt]")
    h = [_num(v, p, "plannedHomePosition") for v in home_raw]
    home = (h[0], h[1], 0.0 if math.isnan(h[2]) else h[2])
    raw_items = _flatten_items(mission["items"], p)
    items = tuple(_item_from_json(d, i + 1, p) for i, d in enumerate(raw_items))
    fw_code: Any = mission.get("firmwareType")
    vt_code: Any = mission.get("vehicleType")
    firmware = {v: k for k, v in _FIRMWARE.items()}.get(fw_code, "generic")
    vehicle = {v: k for k, v in _VEHICLE.items()}.get(vt_code, "multirotor")
    return Mission(
        home=home,
        items=items,
        cruise_speed_ms=float(mission.get("cruiseSpeed") or 8.0),
        hover_speed_ms=float(mission.get("hoverSpeed") or 5.0),
        vehicle_type=vehicle,
        firmware=firmware,
        meta={"source": str(p)},
    )


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return repr(float(v)) if v != int(v) else f"{v:.1f}"


def write_waypoints(mission: Mission, path: str | os.PathLike[str]) -> Path:
    """Write ``mission`` as a ``QGC WPL 110`` file (atomically); row 0 is home (AMSL)."""
    lat0, lon0, alt0 = mission.home
    rows = [
        [0, 1, FRAME_AMSL, MAV_CMD_NAV_WAYPOINT, 0.0, 0.0, 0.0, 0.0, lat0, lon0, alt0, 1],
    ]
    for i, it in enumerate(mission.items, start=1):
        rows.append(
            [i, 0, it.frame, it.command, *it.params, it.lat, it.lon, it.alt, int(it.autocontinue)]
        )
    lines = [_WPL_HEADER]
    for r in rows:
        cells = [str(int(r[0])), str(int(r[1])), str(int(r[2])), str(int(r[3]))]
        cells += [_fmt(float(v)) for v in r[4:8]]
        cells += [f"{float(r[8]):.8f}", f"{float(r[9]):.8f}", f"{float(r[10]):.3f}", str(r[11])]
        lines.append("\t".join(cells))
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_waypoints(path: str | os.PathLike[str]) -> Mission:
    """Read a ``QGC WPL 110`` file; row 0 becomes ``home``, the rest the items.

    Raises
    ------
    PlanFileError
        Wrong header, a row without 12 tab-separated columns or a non-numeric value.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise PlanFileError(f"{p}: not a QGC WPL 110 text file; pass a .waypoints file") from exc
    if not lines or not lines[0].startswith("QGC WPL 110"):
        raise PlanFileError(
            f"{p}: first line is not 'QGC WPL 110'; pass a QGroundControl/Mission Planner "
            ".waypoints file"
        )
    rows: list[list[float]] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.strip().split("\t")
        if len(cols) != 12:
            raise PlanFileError(
                f"{p}: line {n} has {len(cols)} columns, expected 12 tab-separated; "
                "re-export the mission"
            )
        try:
            rows.append([float(c) for c in cols])
        except ValueError as exc:
            raise PlanFileError(f"{p}: line {n} has a non-numeric value; re-export it") from exc
    if not rows:
        raise PlanFileError(f"{p}: no home row; a .waypoints file starts with home at row 0")
    home_row, rest = rows[0], rows[1:]
    items = tuple(
        MissionItem(
            command=int(r[3]),
            frame=int(r[2]),
            params=(r[4], r[5], r[6], r[7]),
            lat=r[8],
            lon=r[9],
            alt=r[10],
            autocontinue=bool(int(r[11])),
        )
        for r in rest
    )
    return Mission(
        home=(home_row[8], home_row[9], home_row[10]), items=items, meta={"source": str(p)}
    )
