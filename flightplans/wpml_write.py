"""Write one sortie as a DJI WPML route file (``.kmz``): :func:`write_wpml`.

The KMZ carries both files (format facts in :mod:`flightplans.wpml`):

* ``wpmz/template.kml`` — a *waypoint* template (``templateType`` waypoint) holding every
  waypoint of the mission, so DJI Pilot 2 and FlightHub 2 show and edit our route instead of
  computing one of their own;
* ``wpmz/waylines.wpml`` — what the aircraft executes: the same waypoints with their
  execution heights, speeds, headings, turn modes and actions.

How a :class:`~flightplans.mission.Mission` maps onto WPML:

* NAV_TAKEOFF → ``takeOffSecurityHeight`` (its height above the take-off point) and, on the
  aircraft that read it, ``takeOffRefPoint`` (home, ellipsoid height) with
  ``takeOffRefPointAGLHeight`` (home above sea level); NAV_RETURN_TO_LAUNCH →
  ``finishAction`` goHome; RC lost → ``exitOnRCLost`` executeLostAction with
  ``executeRCLostAction`` goBack (by default); ``flyToWaylineMode`` safely;
  ``globalRTHHeight`` the highest waypoint above the take-off point.
* every NAV_WAYPOINT → a Placemark (same order, index from 0), heading along the route
  (``followWayline``) or a fixed one for an oblique look; a waypoint in the middle of a
  straight leg with nothing to do there (the photo start and stop points, terrain-following
  points) is passed without stopping (``coordinateTurn`` with a short damping distance, which
  on a straight leg is the straight line), every other one is a stop
  (``toPointAndStopWithDiscontinuityCurvature``: the aircraft turns on the point exactly).
* the gimbal: a ``gimbalRotate`` (absolute pitch, -90° nadir) at the first waypoint, and the
  same pitch as every template Placemark's ``gimbalPitchAngle``.
* DO_SET_CAM_TRIGG_DIST d … 0 → an action group from the waypoint where it starts to the
  waypoint where it stops, triggered every ``d`` metres (``multipleDistance``) or, with
  ``shoot="time"``, every ``d / speed`` seconds (``multipleTiming``), action ``takePhoto``;
  a hold with IMAGE_START_CAPTURE (hover-and-capture) → at that waypoint ``hover`` for the
  hold, then ``takePhoto``.

Heights (:mod:`flightplans.geoid`): ``relative`` writes heights above the take-off point
(template ``relativeToStartPoint``, execution ``relativeToStartPoint``); ``egm96`` writes
template heights above the EGM96 geoid with their WGS84 ellipsoid heights beside them and
executes ellipsoid heights (``executeHeightMode`` WGS84, the only absolute execution mode).
The default is ``egm96`` for a mission above sea level (terrain following with a DEM: every
waypoint's height is absolute, whatever the take-off point) and ``relative`` otherwise. A
conversion that needs the take-off point's elevation when it is unknown is an error, never a
guess. A DEM's heights are taken as EGM96 (the datum of SRTM and most national DEMs) unless
``dem_datum`` says WGS84; the assumption is one warning line and a field of the record.

This module is longer than most (about 750 lines): both files of the KMZ are written from one
parse of the mission, with the same waypoints, heights and action groups, so they stay here.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import numpy as np
from pyproj import Geod

from flightplans.drones import Drone
from flightplans.errors import MissionOutputError, PlanParameterError
from flightplans.geoid import EGM96Geoid, GeoidGridError, egm96_geoid
from flightplans.mission import (
    FRAME_AMSL,
    FRAME_RELATIVE,
    FRAME_TERRAIN,
    MAV_CMD_DO_SET_CAM_TRIGG_DIST,
    MAV_CMD_IMAGE_START_CAPTURE,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_NAV_TAKEOFF,
    MAV_CMD_NAV_WAYPOINT,
    Mission,
)
from flightplans.oblique import NADIR, RouteLook
from flightplans.wpml import (
    KML_NS,
    RTH_HEIGHT_RANGE,
    SPEED_RANGE,
    TAKEOFF_SECURITY_RANGE,
    TEMPLATE_NAME,
    WAYLINES_NAME,
    WPML_NS,
    kml_tag,
    wpml_tag,
)

__all__ = ["HeightMode", "WpmlOptions", "write_wpml"]

log = logging.getLogger(__name__)

HeightMode = Literal["relative", "egm96"]
DemDatum = Literal["egm96", "wgs84"]

_STOP = "toPointAndStopWithDiscontinuityCurvature"
_PASS = "coordinateTurn"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same plan gives the same bytes
ET.register_namespace("wpml", WPML_NS)  # DJI's prefix instead of ElementTree's ns1

#: Heading change (deg) below which a waypoint lies on a straight leg.
_STRAIGHT_DEG = 1.0

_DATUM = {
    "relativeToStartPoint": "height above the take-off point (m)",
    "EGM96": "height above the EGM96 geoid (orthometric, m)",
    "WGS84": "height above the WGS84 ellipsoid (m)",
}


@dataclass(frozen=True)
class WpmlOptions:
    """How to write WPML files.

    Attributes
    ----------
    drone
        The aircraft and payload (:func:`flightplans.drones.get_drone`).
    height_mode
        ``relative`` or ``egm96`` (module docstring); ``None`` picks by the mission's frame.
    dem_datum
        Vertical datum of heights above sea level in the mission (the DEM's): ``egm96`` or
        ``wgs84``; ``None`` assumes ``egm96`` (one warning line when it matters).
    shoot
        ``distance`` (photos every trigger distance) or ``time`` (every trigger distance /
        speed seconds: DJI's recommendation for mapping).
    rc_lost
        What the aircraft does when the remote-controller link is lost: ``goBack`` (return
        home, the default), ``hover``, ``landing`` or ``goContinue`` (finish the route).
    geoid_grid
        The EGM96 grid file; ``None`` finds the installed one.
    """

    drone: Drone
    height_mode: HeightMode | None = None
    dem_datum: DemDatum | None = None
    shoot: Literal["distance", "time"] = "distance"
    rc_lost: Literal["goBack", "hover", "landing", "goContinue"] = "goBack"
    geoid_grid: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        checks: tuple[tuple[str, object, tuple[object, ...]], ...] = (
            ("height mode", self.height_mode, (None, "relative", "egm96")),
            ("DEM datum", self.dem_datum, (None, "egm96", "wgs84")),
            ("shooting", self.shoot, ("distance", "time")),
            ("RC-lost action", self.rc_lost, ("goBack", "hover", "landing", "goContinue")),
        )
        for what, value, allowed in checks:
            if value not in allowed:
                names = ", ".join(str(a) for a in allowed if a is not None)
                raise PlanParameterError(f"WPML {what} {value!r} is unknown; use one of {names}")


@dataclass
class _Waypoint:
    lat: float
    lon: float
    alt: float
    hold_s: float = 0.0
    captures: int = 0
    trigger_m: float | None = None  # photos every trigger_m start here
    trigger_off: bool = False  # photos stop here


@dataclass
class _Route:
    points: list[_Waypoint] = field(default_factory=list)
    frame: int = FRAME_RELATIVE
    takeoff: tuple[int, float] | None = None  # frame, altitude of NAV_TAKEOFF
    return_home: bool = False


def _parse(mission: Mission) -> _Route:
    route = _Route()
    frames: set[int] = set()
    pending_on: float | None = None
    for n, it in enumerate(mission.items, start=1):
        if it.command == MAV_CMD_NAV_TAKEOFF:
            route.takeoff = (int(it.frame), float(it.alt))
        elif it.command == MAV_CMD_NAV_WAYPOINT:
            hold = 0.0 if math.isnan(it.params[0]) else float(it.params[0])
            route.points.append(_Waypoint(float(it.lat), float(it.lon), float(it.alt), hold))
            frames.add(it.frame)
            if pending_on is not None:
                route.points[-1].trigger_m, pending_on = pending_on, None
        elif it.command == MAV_CMD_DO_SET_CAM_TRIGG_DIST:
            d = float(it.params[0])
            if not route.points:
                pending_on = d if d > 0 else None
            elif d > 0:
                route.points[-1].trigger_m = d
            else:
                route.points[-1].trigger_off = True
        elif it.command == MAV_CMD_IMAGE_START_CAPTURE:
            if not route.points:
                raise PlanParameterError(
                    f"mission item {n}: a photo before the first waypoint has no place in a "
                    "WPML route; start the mission with a waypoint"
                )
            route.points[-1].captures += 1
        elif it.command == MAV_CMD_NAV_RETURN_TO_LAUNCH:
            route.return_home = True
        else:
            raise PlanParameterError(
                f"mission item {n}: MAVLink command {it.command} has no WPML equivalent; "
                "write this mission as QGroundControl files (--format qgc)"
            )
    if len(route.points) < 2:
        raise PlanParameterError(
            f"a WPML route needs at least 2 waypoints, the mission has {len(route.points)}"
        )
    if len(frames) != 1:
        raise PlanParameterError(
            f"the mission mixes altitude frames {sorted(frames)}; a WPML route has one "
            "height mode: plan it again with one --alt-mode"
        )
    route.frame = frames.pop()
    return route


@dataclass(frozen=True)
class _Heights:
    mode: HeightMode
    rel: np.ndarray  # (n,) above the take-off point
    egm96: np.ndarray | None  # (n,) above the geoid
    ellipsoid: np.ndarray | None  # (n,) above the ellipsoid
    takeoff_rel: float
    takeoff_ref: tuple[float, float, float, float] | None  # lat, lon, ellipsoid h, EGM96 H
    geoid: EGM96Geoid | None
    dem_datum: str | None


def _heights(
    route: _Route, home: tuple[float, float], takeoff_amsl: float | None, opts: WpmlOptions
) -> _Heights:
    if route.frame == FRAME_TERRAIN:
        raise PlanParameterError(
            "the mission's heights are above the terrain (--alt-mode terrain), which a WPML "
            "route cannot execute per waypoint; plan with --dem and --alt-mode amsl so that "
            "the planner places the terrain-following waypoints"
        )
    if route.frame not in (FRAME_RELATIVE, FRAME_AMSL):
        raise PlanParameterError(
            f"the mission's altitude frame {route.frame} is neither relative (3) nor above sea "
            "level (0); plan it again"
        )
    mode: HeightMode = opts.height_mode or ("egm96" if route.frame == FRAME_AMSL else "relative")
    alt = np.array([p.alt for p in route.points])
    lon = np.array([p.lon for p in route.points])
    lat = np.array([p.lat for p in route.points])
    needs_takeoff = route.frame == FRAME_AMSL or mode == "egm96"
    if needs_takeoff and takeoff_amsl is None:
        what = (
            "heights above sea level"
            if route.frame == FRAME_AMSL
            else "heights above the take-off point"
        )
        raise PlanParameterError(
            f"the mission has {what} but its take-off point's elevation is unknown, so they "
            f"cannot be written {'above the geoid' if mode == 'egm96' else 'relative to it'}; "
            "plan with --dem (the take-off elevation comes from it) or write relative heights "
            "(--wpml-height relative) for a mission planned relative to take-off"
        )
    if route.frame == FRAME_RELATIVE:
        rel = alt
        amsl = alt + takeoff_amsl if takeoff_amsl is not None else None
    else:
        assert takeoff_amsl is not None
        rel, amsl = alt - takeoff_amsl, alt
    takeoff_rel = float(rel[0])
    if route.takeoff is not None:
        t_frame, t_alt = route.takeoff
        if t_frame == FRAME_AMSL:
            if takeoff_amsl is None:
                raise PlanParameterError(
                    "the take-off climbs to a height above sea level but the take-off point's "
                    "elevation is unknown; plan with --dem"
                )
            takeoff_rel = t_alt - takeoff_amsl
        elif t_frame == FRAME_RELATIVE:
            takeoff_rel = t_alt
    wants_ref = opts.drone.takeoff_ref_point and takeoff_amsl is not None
    geoid: EGM96Geoid | None = None
    if mode == "egm96":
        geoid = egm96_geoid(opts.geoid_grid)
    elif wants_ref:
        try:
            geoid = egm96_geoid(opts.geoid_grid)
        except GeoidGridError as exc:
            log.warning("no takeOffRefPoint written (it is optional): %s", exc)
    dem_datum: str | None = None
    egm = ell = None
    ref = None
    if geoid is not None and takeoff_amsl is not None:
        dem_datum = opts.dem_datum or "egm96"
        if opts.dem_datum is None:
            log.warning(
                "heights above sea level (the DEM's) taken as EGM96 heights; pass --dem-datum "
                "wgs84 if the DEM holds heights above the WGS84 ellipsoid"
            )
            dem_datum = "egm96 (assumed)"
        pts_lon = np.append(lon, home[1])
        pts_lat = np.append(lat, home[0])
        assert amsl is not None
        z = np.append(amsl, takeoff_amsl)
        if dem_datum.startswith("egm96"):
            egm_all, ell_all = z, geoid.to_ellipsoid(pts_lon, pts_lat, z)
        else:
            egm_all, ell_all = geoid.to_egm96(pts_lon, pts_lat, z), z
        egm, ell = egm_all[:-1], ell_all[:-1]
        if wants_ref:
            ref = (home[0], home[1], float(ell_all[-1]), float(egm_all[-1]))
    return _Heights(mode, rel, egm, ell, float(takeoff_rel), ref, geoid, dem_datum)


def _straight(points: list[_Waypoint]) -> list[bool]:
    """Whether each waypoint lies inside a straight leg with nothing to do there."""
    geod = Geod(ellps="WGS84")
    lon = np.array([p.lon for p in points])
    lat = np.array([p.lat for p in points])
    az, _baz, dist = geod.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    az, dist = np.atleast_1d(az), np.atleast_1d(dist)
    out = [False] * len(points)
    for i in range(1, len(points) - 1):
        p = points[i]
        if p.hold_s > 0 or p.captures or dist[i - 1] < 1.0 or dist[i] < 1.0:
            continue
        turn = abs((az[i] - az[i - 1] + 180.0) % 360.0 - 180.0)
        out[i] = turn < _STRAIGHT_DEG
    return out


def _fmt(v: float, nd: int = 3) -> str:
    """A number as WPML writes it: fixed decimals, trailing zeros dropped."""
    s = f"{float(v):.{nd}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _el(parent: ET.Element, name: str, text: object = None) -> ET.Element:
    e = ET.SubElement(parent, wpml_tag(name))
    if text is not None:
        e.text = text if isinstance(text, str) else _fmt(float(text))  # type: ignore[arg-type]
    return e


def _int(parent: ET.Element, name: str, value: int) -> ET.Element:
    e = ET.SubElement(parent, wpml_tag(name))
    e.text = str(int(value))
    return e


@dataclass(frozen=True)
class _Group:
    start: int
    end: int
    trigger: str
    param: float | None
    actions: tuple[tuple[str, dict[str, str]], ...]


def _groups(
    route: _Route,
    look: RouteLook,
    drone: Drone,
    shoot: str,
    speed: float,
    suffix: str,
    scale: float,
) -> list[_Group]:
    lens = {"payloadLensIndex": drone.lens, "useGlobalPayloadLensIndex": "0"}
    photo = (
        "takePhoto",
        {"payloadPositionIndex": str(drone.payload_position), "fileSuffix": suffix, **lens},
    )
    gimbal = (
        "gimbalRotate",
        {
            "gimbalHeadingYawBase": "north",
            "gimbalRotateMode": "absoluteAngle",
            "gimbalPitchRotateEnable": "1",
            "gimbalPitchRotateAngle": _fmt(look.gimbal_pitch_deg),
            "gimbalRollRotateEnable": "0",
            "gimbalRollRotateAngle": "0",
            "gimbalYawRotateEnable": "0",
            "gimbalYawRotateAngle": "0",
            "gimbalRotateTimeEnable": "0",
            "gimbalRotateTime": "0",
            "payloadPositionIndex": str(drone.payload_position),
        },
    )
    groups: list[_Group] = []
    n = len(route.points)
    open_at: int | None = None
    open_d = 0.0
    for i, p in enumerate(route.points):
        here: list[tuple[str, dict[str, str]]] = [gimbal] if i == 0 else []
        if p.captures:
            if p.hold_s > 0:
                here.append(("hover", {"hoverTime": _fmt(p.hold_s)}))
            here.extend([photo] * p.captures)
        if here:
            groups.append(_Group(i, i, "reachPoint", None, tuple(here)))
        if p.trigger_off and open_at is not None:
            groups.append(_interval(open_at, i, open_d, shoot, speed, photo))
            open_at = None
        if p.trigger_m is not None:
            if open_at is not None:  # a new distance replaces the running one
                groups.append(_interval(open_at, i, open_d, shoot, speed, photo))
            open_at, open_d = i, p.trigger_m * scale
    if open_at is not None:
        groups.append(_interval(open_at, n - 1, open_d, shoot, speed, photo))
    groups.sort(key=lambda g: (g.start, g.trigger != "reachPoint"))
    return groups


def _interval(
    start: int,
    end: int,
    distance: float,
    shoot: str,
    speed: float,
    photo: tuple[str, dict[str, str]],
) -> _Group:
    if shoot == "time":
        return _Group(start, end, "multipleTiming", distance / speed, (photo,))
    return _Group(start, end, "multipleDistance", distance, (photo,))


def _write_group(parent: ET.Element, gid: int, g: _Group) -> None:
    ag = _el(parent, "actionGroup")
    _int(ag, "actionGroupId", gid)
    _int(ag, "actionGroupStartIndex", g.start)
    _int(ag, "actionGroupEndIndex", g.end)
    _el(ag, "actionGroupMode", "sequence")
    trig = _el(ag, "actionTrigger")
    _el(trig, "actionTriggerType", g.trigger)
    if g.param is not None:
        _el(trig, "actionTriggerParam", _fmt(g.param, 6))
    for k, (func, params) in enumerate(g.actions):
        act = _el(ag, "action")
        _int(act, "actionId", k)
        _el(act, "actionActuatorFunc", func)
        fp = _el(act, "actionActuatorFuncParam")
        for name, value in params.items():
            _el(fp, name, value)


def _mission_config(
    parent: ET.Element,
    opts: WpmlOptions,
    h: _Heights,
    speed: float,
    rth: float,
    *,
    template: bool,
    finish: str,
) -> None:
    d = opts.drone
    mc = _el(parent, "missionConfig")
    _el(mc, "flyToWaylineMode", "safely")
    _el(mc, "finishAction", finish)
    if opts.rc_lost == "goContinue":
        _el(mc, "exitOnRCLost", "goContinue")
    else:
        _el(mc, "exitOnRCLost", "executeLostAction")
        _el(mc, "executeRCLostAction", opts.rc_lost)
    _el(mc, "takeOffSecurityHeight", h.takeoff_rel)
    if template and h.takeoff_ref is not None:
        lat, lon, ell, egm = h.takeoff_ref
        _el(mc, "takeOffRefPoint", f"{lat:.9f},{lon:.9f},{_fmt(ell)}")
        _el(mc, "takeOffRefPointAGLHeight", egm)
    _el(mc, "globalTransitionalSpeed", speed)
    _el(mc, "globalRTHHeight", rth)
    di = _el(mc, "droneInfo")
    _int(di, "droneEnumValue", d.drone_enum)
    _int(di, "droneSubEnumValue", d.drone_sub_enum)
    pi = _el(mc, "payloadInfo")
    _int(pi, "payloadEnumValue", d.payload_enum)
    _int(pi, "payloadSubEnumValue", d.payload_sub_enum)
    _int(pi, "payloadPositionIndex", d.payload_position)


def _heading_param(parent: ET.Element, name: str, look: RouteLook) -> None:
    hp = _el(parent, name)
    if look.heading_deg is None:
        _el(hp, "waypointHeadingMode", "followWayline")
        _el(hp, "waypointHeadingAngle", "0")
    else:
        _el(hp, "waypointHeadingMode", "smoothTransition")
        _el(hp, "waypointHeadingAngle", _fmt(look.heading_deg, 2))
    _el(hp, "waypointHeadingPathMode", "followBadArc")


def _turn_param(parent: ET.Element, passing: bool) -> None:
    tp = _el(parent, "waypointTurnParam")
    _el(tp, "waypointTurnMode", _PASS if passing else _STOP)
    _el(tp, "waypointTurnDampingDist", "0.2" if passing else "0")


def _point(parent: ET.Element, p: _Waypoint) -> None:
    pt = ET.SubElement(parent, kml_tag("Point"))
    c = ET.SubElement(pt, kml_tag("coordinates"))
    c.text = f"{p.lon:.9f},{p.lat:.9f}"


def _document(builder: Any) -> bytes:
    root = ET.Element(kml_tag("kml"))
    doc = ET.SubElement(root, kml_tag("Document"))
    builder(doc)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", default_namespace=KML_NS)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def _write_kmz(path: Path, members: dict[str, bytes]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise MissionOutputError(
            f"{path.parent}: cannot write here ({exc.strerror}); choose a writable folder"
        ) from exc
    tmp_path = Path(tmp)
    try:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_wpml(
    mission: Mission,
    path: str | os.PathLike[str],
    options: WpmlOptions,
    *,
    takeoff_amsl_m: float | None,
    look: RouteLook = NADIR,
    distance_scale: float = 1.0,
) -> dict[str, Any]:
    """Write ``mission`` as a DJI WPML route file (atomically); return what it holds.

    Parameters
    ----------
    mission
        One sortie (:attr:`flightplans.Sortie.mission`): NAV_TAKEOFF, NAV_WAYPOINTs with
        their photo commands, NAV_RETURN_TO_LAUNCH; heights relative to home or above sea
        level (``--alt-mode terrain`` cannot be executed by WPML).
    path
        Output file, conventionally ``sortie-NN.kmz``.
    options
        Aircraft, height mode, datum of the DEM, shooting mode (:class:`WpmlOptions`).
    takeoff_amsl_m
        Elevation of the take-off point (home) above sea level in the DEM's datum, or
        ``None`` when unknown (a plan without a DEM): then only relative heights can be
        written.
    look
        Where the camera looks (:class:`flightplans.oblique.RouteLook`): nadir by default.
    distance_scale
        True metres per metre of the mission's trigger distances. The planner measures them in
        its projected CRS, whose scale factor ``k`` makes a grid metre ``1 / k`` true metres
        (UTM: 0.9996 on the central meridian, 1.0010 at the zone's edge), while the aircraft
        measures true distance: :func:`flightplans.writers.write_mission_files` passes
        ``1 / k`` so that the photos fall where the planner put them, the last one on each
        line included.

    Returns
    -------
    dict
        The file's record for ``summary.json``: route, aircraft, waypoints, photo groups and
        the height mode and datum of the template and of the execution file.

    Raises
    ------
    PlanParameterError
        Heights that need an unknown take-off elevation, heights above the terrain, a speed
        outside 1-15 m/s, a command WPML cannot express.
    GeoidGridError
        Absolute heights without the EGM96 grid installed.
    MissionOutputError
        The file cannot be written.
    """
    out = Path(path)
    route = _parse(mission)
    speed = _checked_speed(mission)
    home = (float(mission.home[0]), float(mission.home[1]))
    h = _heights(route, home, takeoff_amsl_m, options)
    tlo, thi = TAKEOFF_SECURITY_RANGE
    if not tlo <= h.takeoff_rel <= thi:
        raise PlanParameterError(
            f"the take-off climbs to {h.takeoff_rel:.1f} m, outside WPML's "
            f"takeOffSecurityHeight range {tlo:g}-{thi:g} m; fly higher (--alt-m)"
        )
    rlo, rhi = RTH_HEIGHT_RANGE
    rth = float(min(max(math.ceil(float(np.max(h.rel)) - 1e-9), rlo, h.takeoff_rel), rhi))
    groups = _groups(route, look, options.drone, options.shoot, speed, out.stem, distance_scale)
    by_start: dict[int, list[tuple[int, _Group]]] = {}
    for gid, g in enumerate(groups):
        by_start.setdefault(g.start, []).append((gid, g))
    doc = _Documents(route, options, look, h, speed, rth, _straight(route.points), by_start)
    _write_kmz(
        out,
        {
            TEMPLATE_NAME: _document(doc.template),
            WAYLINES_NAME: _document(doc.waylines),
        },
    )
    n_photo_groups = sum(1 for g in groups if any(a[0] == "takePhoto" for a in g.actions))
    record: dict[str, Any] = {
        "file": out.name,
        "route": look.name,
        "drone": options.drone.name,
        "drone_enum": [options.drone.drone_enum, options.drone.drone_sub_enum],
        "payload_enum": options.drone.payload_enum,
        "camera": options.drone.camera_name,
        "gimbal_pitch_deg": look.gimbal_pitch_deg,
        "heading": "followWayline" if look.heading_deg is None else look.heading_deg,
        "waypoints": len(route.points),
        "photo_groups": n_photo_groups,
        "shoot": options.shoot,
        "trigger_distance_scale": distance_scale,
        "speed_ms": speed,
        "take_off_security_height_m": round(h.takeoff_rel, 3),
        "rth_height_m": rth,
        "template_height_mode": doc.template_mode,
        "template_height_datum": _DATUM[doc.template_mode]
        + ("; wpml:ellipsoidHeight above the WGS84 ellipsoid" if h.mode == "egm96" else ""),
        "execute_height_mode": doc.execute_mode,
        "execute_height_datum": _DATUM[doc.execute_mode],
        "take_off_ref_point": h.takeoff_ref is not None,
        "dem_datum": h.dem_datum,
        "geoid_grid": h.geoid.name if h.geoid is not None else None,
    }
    if h.egm96 is not None and h.ellipsoid is not None:
        n = h.ellipsoid - h.egm96
        record["geoid_undulation_m"] = [round(float(n.min()), 3), round(float(n.max()), 3)]
    return record


def _checked_speed(mission: Mission) -> float:
    """The mission's cruise speed (m/s), within what a WPML route allows."""
    speed = float(mission.cruise_speed_ms)
    lo, hi = SPEED_RANGE
    if not lo <= speed <= hi:
        raise PlanParameterError(
            f"speed {speed:g} m/s is outside the {lo:g}-{hi:g} m/s a WPML route allows; "
            "pass --speed-ms within it"
        )
    return speed


@dataclass(frozen=True)
class _Documents:
    """What both files of the KMZ are written from: the parsed route, the options, where the
    camera looks, the heights, the speed (m/s), the return-to-home height (m), which waypoints
    are passed without stopping, and the action groups by the waypoint they start at."""

    route: _Route
    options: WpmlOptions
    look: RouteLook
    h: _Heights
    speed: float
    rth: float
    passing: list[bool]
    by_start: dict[int, list[tuple[int, _Group]]]

    @property
    def finish(self) -> str:
        return "goHome" if self.route.return_home else "noAction"

    @property
    def template_mode(self) -> str:
        return "relativeToStartPoint" if self.h.mode == "relative" else "EGM96"

    @property
    def execute_mode(self) -> str:
        return "relativeToStartPoint" if self.h.mode == "relative" else "WGS84"

    def template(self, doc: ET.Element) -> None:
        """``wpmz/template.kml``: every waypoint, heights in the template's mode."""
        h, options, look = self.h, self.options, self.look
        relative = h.mode == "relative"
        tmpl_h = h.rel if relative else h.egm96
        tmpl_ell = h.rel if relative else h.ellipsoid
        assert tmpl_h is not None and tmpl_ell is not None
        _el(doc, "author", "sitewatch")
        _mission_config(doc, options, h, self.speed, self.rth, template=True, finish=self.finish)
        folder = ET.SubElement(doc, kml_tag("Folder"))
        _el(folder, "templateType", "waypoint")
        _int(folder, "templateId", 0)
        cs = _el(folder, "waylineCoordinateSysParam")
        _el(cs, "coordinateMode", "WGS84")
        _el(cs, "heightMode", self.template_mode)
        _el(cs, "positioningType", "GPS")
        _el(folder, "autoFlightSpeed", self.speed)
        _el(folder, "globalHeight", h.takeoff_rel)
        _el(folder, "gimbalPitchMode", "usePointSetting")
        _heading_param(folder, "globalWaypointHeadingParam", look)
        _el(folder, "globalWaypointTurnMode", _STOP)
        _el(folder, "globalUseStraightLine", "0")
        for i, p in enumerate(self.route.points):
            pm = ET.SubElement(folder, kml_tag("Placemark"))
            _point(pm, p)
            _int(pm, "index", i)
            _el(pm, "ellipsoidHeight", float(tmpl_ell[i]))
            _el(pm, "height", float(tmpl_h[i]))
            _int(pm, "useGlobalHeight", 0)
            _int(pm, "useGlobalSpeed", 1)
            _int(pm, "useGlobalHeadingParam", 1)
            _int(pm, "useGlobalTurnParam", 0 if self.passing[i] else 1)
            if self.passing[i]:
                _turn_param(pm, True)
            _el(pm, "gimbalPitchAngle", look.gimbal_pitch_deg)
            for gid, g in self.by_start.get(i, []):
                _write_group(pm, gid, g)
        pp = _el(folder, "payloadParam")
        _int(pp, "payloadPositionIndex", options.drone.payload_position)
        _el(pp, "imageFormat", options.drone.lens)

    def waylines(self, doc: ET.Element) -> None:
        """``wpmz/waylines.wpml``: what the aircraft executes, heights in the execution mode."""
        h = self.h
        exec_h = h.rel if h.mode == "relative" else h.ellipsoid
        assert exec_h is not None
        _mission_config(
            doc, self.options, h, self.speed, self.rth, template=False, finish=self.finish
        )
        folder = ET.SubElement(doc, kml_tag("Folder"))
        _int(folder, "templateId", 0)
        _el(folder, "executeHeightMode", self.execute_mode)
        _int(folder, "waylineId", 0)
        _el(folder, "autoFlightSpeed", self.speed)
        for i, p in enumerate(self.route.points):
            pm = ET.SubElement(folder, kml_tag("Placemark"))
            _point(pm, p)
            _int(pm, "index", i)
            _el(pm, "executeHeight", float(exec_h[i]))
            _el(pm, "waypointSpeed", self.speed)
            _heading_param(pm, "waypointHeadingParam", self.look)
            _turn_param(pm, self.passing[i])
            for gid, g in self.by_start.get(i, []):
                _write_group(pm, gid, g)
