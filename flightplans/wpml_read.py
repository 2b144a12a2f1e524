"""Read a DJI WPML route file (``.kmz``, ours or one made in DJI Pilot 2 / FlightHub 2).

:func:`read_wpml` returns a :class:`WpmlFile`: the aircraft and payload it declares, its
template, and one :class:`WpmlRoute` per executable route (``Folder`` of
``wpmz/waylines.wpml``) with the route as a :class:`~flightplans.mission.Mission` — the
inverse of :func:`flightplans.wpml_write.write_wpml`: Placemarks become NAV_WAYPOINTs,
``multipleDistance`` / ``multipleTiming`` photo groups DO_SET_CAM_TRIGG_DIST on and off
(a time interval times the speed), ``reachPoint`` photos IMAGE_START_CAPTURE after a hold
(``hover``), ``takeOffSecurityHeight`` NAV_TAKEOFF, ``finishAction`` goHome
NAV_RETURN_TO_LAUNCH. Heights: ``relativeToStartPoint`` stays relative (MAVLink frame 3);
``WGS84`` ellipsoid heights become heights above the EGM96 geoid, i.e. above sea level
(frame 0, through :mod:`flightplans.geoid`); ``realTimeFollowSurface`` heights are above the
ground (frame 10). Other actions (zoom, focus, video, ...) are left out with one warning.

:func:`wpml_survey` turns a file into what a coverage check needs: the planned photo
positions (every trigger distance along each photo interval, as the aircraft shoots them),
their heights above ground and nominal footprints with the payload's camera, and the figures
(GSD, trigger distance, line spacing, overlaps).

Reading the archive and its XML safely (never extracted, sizes bounded, DTDs refused, one
:class:`~flightplans.errors.PlanFileError` line for a bad file) is
:mod:`flightplans.wpml_archive`; the planned photos are :mod:`flightplans.wpml_photos`
(:func:`wpml_survey` is re-exported here).

This module is about 590 lines: the routes, their actions and the mission
configuration they share are read from one private representation of the file, so they stay
together.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import numpy as np
from shapely.geometry import Polygon

from flightplans.camera import Camera
from flightplans.drones import Drone, drone_for_enums
from flightplans.geoid import egm96_geoid
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
    MissionItem,
)
from flightplans.wpml import KML_NS, TEMPLATE_NAME, WAYLINES_NAME
from flightplans.wpml_archive import (
    MAX_MEMBER_BYTES,
    WpmlXml,
    kml_child,
    parse_xml,
    placemark_latlon,
    read_members,
    unusable_route,
    xml_number,
)
from flightplans.wpml_photos import WpmlSurvey, wpml_survey

__all__ = ["MAX_MEMBER_BYTES", "WpmlFile", "WpmlRoute", "WpmlSurvey", "read_wpml", "wpml_survey"]

log = logging.getLogger(__name__)

_FRAME_MISSION = 2  # MAV_FRAME_MISSION, for commands without a place (as the planner writes)
_NADIR_TOL_DEG = 10.0
_NAN = math.nan
# ----------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class PhotoInterval:
    """Photos every ``distance_m`` from waypoint ``start`` to waypoint ``end`` (indices)."""

    start: int
    end: int
    distance_m: float
    timed_s: float | None = None  # the interval in seconds when the file shoots by time


@dataclass(frozen=True, eq=False)
class WpmlRoute:
    """One executable route (a ``Folder`` of ``waylines.wpml``).

    ``mission`` holds the route as MAVLink items; ``intervals`` and ``captures`` (waypoint
    indices with a photo on arrival) the photo actions; ``gimbal_pitch_deg`` the first
    ``gimbalRotate`` pitch (``None`` when the file sets none); ``heading_deg`` the fixed
    heading of a ``fixed`` / ``smoothTransition`` route with one angle (``None`` otherwise).
    """

    wayline_id: int
    template_id: int
    mission: Mission
    execute_height_mode: str
    speed_ms: float
    gimbal_pitch_deg: float | None
    heading_mode: str
    heading_deg: float | None
    intervals: tuple[PhotoInterval, ...]
    captures: tuple[int, ...]

    @property
    def is_nadir(self) -> bool:
        """Whether the camera looks down (gimbal within 10° of -90°, or unset)."""
        p = self.gimbal_pitch_deg
        return p is None or abs(p + 90.0) <= _NADIR_TOL_DEG


@dataclass(frozen=True, eq=False)
class WpmlFile:
    """What a WPML route file says (:func:`read_wpml`)."""

    path: Path
    namespace: str
    template_type: str | None
    template_height_mode: str | None
    drone_enums: tuple[int, int] | None
    payload_enum: int | None
    drone: Drone | None
    finish_action: str | None
    rc_lost: str | None
    takeoff_security_height_m: float | None
    takeoff_ref: tuple[float, float, float] | None  # lat, lon, ellipsoid height
    takeoff_amsl_m: float | None
    global_height_m: float | None
    site: tuple[Polygon, ...]  # template polygons (mapping templates), lon/lat
    routes: tuple[WpmlRoute, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def camera(self) -> Camera | None:
        """The payload's camera model, when the aircraft is one of ours."""
        return self.drone.camera if self.drone is not None else None

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (``sitewatch plan --from``)."""
        modes = sorted({r.execute_height_mode for r in self.routes})
        datum = {
            "relativeToStartPoint": "height above the take-off point",
            "WGS84": "height above the WGS84 ellipsoid (read as EGM96 heights above sea level)",
            "realTimeFollowSurface": "height above the ground (real-time terrain following)",
        }
        return {
            "source": str(self.path),
            "wpml_namespace": self.namespace,
            "template_type": self.template_type,
            "template_height_mode": self.template_height_mode,
            "drone_enum": list(self.drone_enums) if self.drone_enums else None,
            "payload_enum": self.payload_enum,
            "drone": self.drone.name if self.drone else None,
            "drone_label": self.drone.label if self.drone else None,
            "camera": self.camera.name if self.camera else None,
            "finish_action": self.finish_action,
            "rc_lost_action": self.rc_lost,
            "take_off_security_height_m": self.takeoff_security_height_m,
            "take_off_ref_point": list(self.takeoff_ref) if self.takeoff_ref else None,
            "take_off_amsl_m": self.takeoff_amsl_m,
            "execute_height_modes": modes,
            "execute_height_datums": [datum.get(m, m) for m in modes],
            "routes": [
                {
                    "wayline_id": r.wayline_id,
                    "waypoints": sum(
                        1 for it in r.mission.items if it.command == MAV_CMD_NAV_WAYPOINT
                    ),
                    "photo_intervals": len(r.intervals),
                    "photo_points": len(r.captures),
                    "gimbal_pitch_deg": r.gimbal_pitch_deg,
                    "heading_mode": r.heading_mode,
                    "heading_deg": r.heading_deg,
                    "speed_ms": r.speed_ms,
                    "execute_height_mode": r.execute_height_mode,
                }
                for r in self.routes
            ],
            "warnings": list(self.warnings),
        }


@dataclass
class _Events:
    hold: dict[int, float] = field(default_factory=dict)
    captures: Counter[int] = field(default_factory=Counter)
    intervals: list[PhotoInterval] = field(default_factory=list)
    gimbal: float | None = None
    ignored: Counter[str] = field(default_factory=Counter)


def _actions(
    x: WpmlXml,
    placemarks: list[Element],
    speeds: list[float],
    n: int,
    path: Path,
) -> _Events:
    ev = _Events()
    for pm in placemarks:
        for ag in pm.findall(x.w("actionGroup")):
            start = int(xml_number(x, ag, "actionGroupStartIndex", path))
            end = int(xml_number(x, ag, "actionGroupEndIndex", path, default=float(start)))
            if not (0 <= start <= end < n):
                raise unusable_route(
                    path,
                    f"{x.name}: action group indices {start}-{end} outside the route's 0-{n - 1}",
                )
            trig = x.find(ag, "actionTrigger")
            ttype = x.text(trig, "actionTriggerType") or "reachPoint"
            funcs: list[tuple[str, Element | None]] = [
                (x.text(a, "actionActuatorFunc") or "?", x.find(a, "actionActuatorFuncParam"))
                for a in ag.findall(x.w("action"))
            ]
            for func, param in funcs:
                if func == "takePhoto" and ttype in ("multipleDistance", "multipleTiming"):
                    value = xml_number(x, trig, "actionTriggerParam", path)
                    if value <= 0:
                        raise unusable_route(
                            path, f"{x.name}: {ttype} interval {value} is not positive"
                        )
                    if ttype == "multipleDistance":
                        ev.intervals.append(PhotoInterval(start, end, value))
                    else:
                        d = value * speeds[start]
                        ev.intervals.append(PhotoInterval(start, end, d, timed_s=value))
                elif func == "takePhoto" and ttype == "reachPoint":
                    for i in range(start, end + 1):
                        ev.captures[i] += 1
                elif func == "hover" and ttype == "reachPoint":
                    t = xml_number(x, param, "hoverTime", path, default=0.0)
                    for i in range(start, end + 1):
                        ev.hold[i] = ev.hold.get(i, 0.0) + t
                elif func == "gimbalRotate":
                    if ev.gimbal is None and x.text(param, "gimbalPitchRotateEnable") != "0":
                        ev.gimbal = xml_number(
                            x, param, "gimbalPitchRotateAngle", path, default=_NAN
                        )
                        if math.isnan(ev.gimbal):
                            ev.gimbal = None
                else:
                    ev.ignored[func] += 1
    return ev


def _route(
    x: WpmlXml,
    folder: Element,
    cfg: dict[str, Any],
    path: Path,
    geoid_grid: str | os.PathLike[str] | None,
    warnings: list[str],
) -> WpmlRoute:
    wid = int(xml_number(x, folder, "waylineId", path, default=0.0))
    tid = int(xml_number(x, folder, "templateId", path, default=0.0))
    mode = x.text(folder, "executeHeightMode") or "WGS84"
    if mode not in ("WGS84", "relativeToStartPoint", "realTimeFollowSurface"):
        raise unusable_route(
            path, f"{x.name}: executeHeightMode {mode!r} is not a WPML height mode"
        )
    speed = xml_number(x, folder, "autoFlightSpeed", path, default=float(cfg["transit"] or 5.0))
    wps = _waypoints(x, folder, path, wid, speed)
    ev = _actions(x, wps.placemarks, wps.speeds, len(wps.placemarks), path)
    if ev.ignored:
        what = ", ".join(f"{v} {k}" for k, v in sorted(ev.ignored.items()))
        warnings.append(f"wayline {wid}: actions without a mission equivalent left out ({what})")
    if mode == "relativeToStartPoint":
        frame, alt = FRAME_RELATIVE, wps.h
    elif mode == "WGS84":
        frame, alt = FRAME_AMSL, egm96_geoid(geoid_grid).to_egm96(wps.lon, wps.lat, wps.h)
    else:
        frame, alt = FRAME_TERRAIN, wps.h
    home_lat, home_lon, home_amsl = cfg["home"] or (float(wps.lat[0]), float(wps.lon[0]), _NAN)
    items: list[MissionItem] = []
    if cfg["tosh"] is not None:
        items.append(_takeoff(float(cfg["tosh"]), frame, home_lat, home_lon, home_amsl))
    items += _waypoint_items(wps, frame, alt, ev)
    if cfg["finish"] == "goHome":
        items.append(MissionItem(MAV_CMD_NAV_RETURN_TO_LAUNCH, _FRAME_MISSION))
    modes = {m for m, _a in wps.headings}
    angles = {a for m, a in wps.headings if m in ("fixed", "smoothTransition")}
    heading_mode = modes.pop() if len(modes) == 1 else "mixed"
    fixed = heading_mode in ("fixed", "smoothTransition") and len(angles) == 1
    heading = angles.pop() if fixed else None
    mission = Mission(
        home=(home_lat, home_lon, home_amsl if math.isfinite(home_amsl) else 0.0),
        items=tuple(items),
        cruise_speed_ms=speed,
        hover_speed_ms=min(speed, 5.0),
        vehicle_type="multirotor",
        firmware="generic",
        meta={
            "source": str(path),
            "wayline": wid,
            "home_known": cfg["home"] is not None,
            "gimbal_pitch_deg": ev.gimbal,
        },
    )
    return WpmlRoute(
        wayline_id=wid,
        template_id=tid,
        mission=mission,
        execute_height_mode=mode,
        speed_ms=speed,
        gimbal_pitch_deg=ev.gimbal,
        heading_mode=heading_mode,
        heading_deg=heading,
        intervals=tuple(sorted((iv for iv in ev.intervals if iv.end > iv.start), key=_start)),
        captures=tuple(sorted(ev.captures.elements())),
    )


@dataclass(frozen=True)
class _Waypoints:
    """The Placemarks of one wayline in index order, with their latitude and longitude
    (degrees), execution heights (m, in the wayline's height mode), speeds (m/s) and heading
    (mode, angle in degrees or None)."""

    placemarks: list[Element]
    lat: np.ndarray
    lon: np.ndarray
    h: np.ndarray
    speeds: list[float]
    headings: list[tuple[str, float | None]]


def _waypoints(x: WpmlXml, folder: Element, path: Path, wid: int, speed: float) -> _Waypoints:
    """The waypoints of wayline ``wid`` (a ``Folder``), their indices checked to be 0..n-1."""
    pms = folder.findall(f"{{{KML_NS}}}Placemark")
    if not pms:
        raise unusable_route(path, f"{x.name}: wayline {wid} has no waypoints (Placemark)")
    indexed = []
    for k, pm in enumerate(pms):
        indexed.append((int(xml_number(x, pm, "index", path, default=float(k))), k, pm))
    indexed.sort()
    if [i for i, _k, _pm in indexed] != list(range(len(pms))):
        raise unusable_route(
            path, f"{x.name}: wayline {wid}'s waypoint indices are not 0..{len(pms) - 1}"
        )
    pms = [pm for _i, _k, pm in indexed]
    n = len(pms)
    lat = np.empty(n)
    lon = np.empty(n)
    h = np.empty(n)
    speeds: list[float] = []
    headings: list[tuple[str, float | None]] = []
    for i, pm in enumerate(pms):
        lat[i], lon[i] = placemark_latlon(pm, x, path, i)
        h[i] = xml_number(x, pm, "executeHeight", path)
        speeds.append(xml_number(x, pm, "waypointSpeed", path, default=speed))
        hp = x.find(pm, "waypointHeadingParam")
        hmode = x.text(hp, "waypointHeadingMode") or "followWayline"
        angle = x.text(hp, "waypointHeadingAngle")
        headings.append((hmode, float(angle) if angle not in (None, "") else None))
    return _Waypoints(pms, lat, lon, h, speeds, headings)


def _takeoff(
    tosh: float, frame: int, home_lat: float, home_lon: float, home_amsl: float
) -> MissionItem:
    """NAV_TAKEOFF to ``takeOffSecurityHeight``: the climb is relative to the take-off point,
    above sea level only when that point's elevation is known."""
    t_frame, t_alt = FRAME_RELATIVE, float(tosh)
    if frame == FRAME_AMSL and math.isfinite(home_amsl):
        t_frame, t_alt = FRAME_AMSL, round(home_amsl + tosh, 3)
    elif frame == FRAME_TERRAIN:
        t_frame = FRAME_TERRAIN
    return MissionItem(
        MAV_CMD_NAV_TAKEOFF, t_frame, (0.0, 0.0, 0.0, _NAN), home_lat, home_lon, t_alt
    )


def _waypoint_items(wps: _Waypoints, frame: int, alt: np.ndarray, ev: _Events) -> list[MissionItem]:
    """A NAV_WAYPOINT per Placemark (its hover as the hold), followed by the camera commands
    of the photo intervals ending and starting there and its single photos; a one-point
    interval becomes a single photo (``ev.captures`` is updated)."""
    starts: dict[int, PhotoInterval] = {}
    ends: Counter[int] = Counter()
    for iv in ev.intervals:
        if iv.end == iv.start:  # one photo where it starts
            ev.captures[iv.start] += 1
        else:
            starts[iv.start] = iv
            ends[iv.end] += 1
    items: list[MissionItem] = []
    for i in range(len(wps.placemarks)):
        items.append(
            MissionItem(
                MAV_CMD_NAV_WAYPOINT,
                frame,
                (ev.hold.get(i, 0.0), 0.0, 0.0, _NAN),
                float(wps.lat[i]),
                float(wps.lon[i]),
                round(float(alt[i]), 3),
            )
        )
        items.extend(
            MissionItem(MAV_CMD_DO_SET_CAM_TRIGG_DIST, _FRAME_MISSION) for _ in range(ends[i])
        )
        if i in starts:
            d = starts[i].distance_m
            items.append(
                MissionItem(MAV_CMD_DO_SET_CAM_TRIGG_DIST, _FRAME_MISSION, (d, 0.0, 1.0, 0.0))
            )
        items.extend(
            MissionItem(MAV_CMD_IMAGE_START_CAPTURE, _FRAME_MISSION, (0.0, 0.0, 1.0, 0.0))
            for _ in range(ev.captures[i])
        )
    return items


def _start(iv: PhotoInterval) -> int:
    return iv.start


def _config(x: WpmlXml, tmpl: WpmlXml | None, path: Path, geoid_grid: Any) -> dict[str, Any]:
    mc = x.find(_document(x, path), "missionConfig")
    tmc = tmpl.find(_document(tmpl, path), "missionConfig") if tmpl is not None else None
    if mc is None and tmc is None:
        raise unusable_route(path, "no wpml:missionConfig")
    src, sx = (mc, x) if mc is not None else (tmc, tmpl)
    assert sx is not None

    def pick(name: str) -> str | None:
        v = sx.text(src, name)
        if v is None and tmc is not None and tmpl is not None:
            v = tmpl.text(tmc, name)
        return v

    di = sx.find(src, "droneInfo") if src is not None else None
    pi = sx.find(src, "payloadInfo") if src is not None else None
    drone_enums = None
    if di is not None and sx.text(di, "droneEnumValue") is not None:
        drone_enums = (
            int(xml_number(sx, di, "droneEnumValue", path)),
            int(xml_number(sx, di, "droneSubEnumValue", path, default=0.0)),
        )
    payload = None
    if pi is not None and sx.text(pi, "payloadEnumValue") is not None:
        payload = int(xml_number(sx, pi, "payloadEnumValue", path))
    tosh = pick("takeOffSecurityHeight")
    home = None
    ref_text = tmpl.text(tmc, "takeOffRefPoint") if tmpl is not None and tmc is not None else None
    ref = None
    amsl: float | None = None
    if ref_text:
        try:
            r_lat, r_lon, r_h = (float(v) for v in ref_text.split(","))
        except ValueError as exc:
            raise unusable_route(
                path, f"takeOffRefPoint {ref_text!r} is not 'lat,lon,height'"
            ) from exc
        ref = (r_lat, r_lon, r_h)
        agl = tmpl.text(tmc, "takeOffRefPointAGLHeight") if tmpl is not None else None
        if agl is not None:
            amsl = float(agl)
        else:
            amsl = float(egm96_geoid(geoid_grid).to_egm96(r_lon, r_lat, r_h))
        home = (r_lat, r_lon, amsl)
    transit = pick("globalTransitionalSpeed")
    return {
        "drone_enums": drone_enums,
        "payload": payload,
        "tosh": float(tosh) if tosh is not None else None,
        "home": home,
        "ref": ref,
        "amsl": amsl,
        "finish": pick("finishAction"),
        "rc_lost": (
            "goContinue" if pick("exitOnRCLost") == "goContinue" else pick("executeRCLostAction")
        ),
        "transit": float(transit) if transit is not None else None,
    }


def _document(x: WpmlXml, path: Path) -> Element:
    doc = kml_child(x.root, "Document")
    if doc is None:
        raise unusable_route(path, f"{x.name} has no <Document>")
    return doc


def _template_site(x: WpmlXml, folder: Element) -> tuple[Polygon, ...]:
    polys = []
    for ring in folder.iter(f"{{{KML_NS}}}LinearRing"):
        c = kml_child(ring, "coordinates")
        if c is None or not c.text:
            continue
        pts = []
        for tok in c.text.split():
            v = tok.split(",")
            try:
                pts.append((float(v[0]), float(v[1])))
            except (ValueError, IndexError):
                continue
        if len(pts) >= 3:
            polys.append(Polygon(pts))
    return tuple(p for p in polys if p.is_valid and p.area > 0)


def read_wpml(
    path: str | os.PathLike[str], *, geoid_grid: str | os.PathLike[str] | None = None
) -> WpmlFile:
    """Read a DJI WPML ``.kmz`` route file.

    Parameters
    ----------
    path
        The ``.kmz`` (read-only; nothing is extracted to disk).
    geoid_grid
        The EGM96 grid for ``WGS84`` execution heights; ``None`` finds the installed one.

    Returns
    -------
    WpmlFile

    Raises
    ------
    PlanFileError
        Not a ZIP, no ``wpmz/waylines.wpml``, a member path climbing out of the archive, an
        oversized member, a DTD (XML bomb) or malformed XML, missing or impossible values: one
        line naming the file and the fix.
    GeoidGridError
        ``WGS84`` heights without the EGM96 grid installed.
    FileNotFoundError
        No such file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file; check the path of the .kmz route")
    template_bytes, waylines_bytes = read_members(p)
    wx = parse_xml(waylines_bytes, WAYLINES_NAME, p)
    tx = parse_xml(template_bytes, TEMPLATE_NAME, p) if template_bytes is not None else None
    warnings: list[str] = []
    cfg = _config(wx, tx, p, geoid_grid)
    folders = _document(wx, p).findall(f"{{{KML_NS}}}Folder")
    if not folders:
        raise unusable_route(p, f"{WAYLINES_NAME} has no wayline (Folder)")
    routes = tuple(_route(wx, f, cfg, p, geoid_grid, warnings) for f in folders)
    template_type = height_mode = None
    global_height = None
    site: tuple[Polygon, ...] = ()
    if tx is not None:
        tfolder = kml_child(_document(tx, p), "Folder")
        if tfolder is not None:
            template_type = tx.text(tfolder, "templateType")
            height_mode = tx.text(tx.find(tfolder, "waylineCoordinateSysParam"), "heightMode")
            gh = tx.text(tfolder, "globalHeight")
            global_height = float(gh) if gh not in (None, "") else None
            site = _template_site(tx, tfolder)
    drone = (
        drone_for_enums(cfg["drone_enums"][0], cfg["drone_enums"][1], cfg["payload"])
        if cfg["drone_enums"] is not None
        else None
    )
    if drone is None:
        warnings.append(
            f"aircraft {cfg['drone_enums']} with payload {cfg['payload']} is not one sitewatch "
            "knows a camera for; pass the camera for GSD and footprints"
        )
    for w in warnings:
        log.warning("%s: %s", p, w)
    return WpmlFile(
        path=p,
        namespace=wx.ns,
        template_type=template_type,
        template_height_mode=height_mode,
        drone_enums=cfg["drone_enums"],
        payload_enum=cfg["payload"],
        drone=drone,
        finish_action=cfg["finish"],
        rc_lost=cfg["rc_lost"],
        takeoff_security_height_m=cfg["tosh"],
        takeoff_ref=cfg["ref"],
        takeoff_amsl_m=cfg["amsl"],
        global_height_m=global_height,
        site=site,
        routes=routes,
        warnings=tuple(warnings),
    )
