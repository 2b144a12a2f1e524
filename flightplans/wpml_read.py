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

The file is never extracted: the two XML members are read into memory, each at most
:data:`MAX_MEMBER_BYTES`, through defusedxml with DTDs refused (no entity expansion, no
external references: an XML bomb is one clear error). A file that is not a ZIP, has no
``wpmz/`` folder, holds a member whose name climbs out of the archive (``..``, an absolute
path) or is malformed is one :class:`~flightplans.errors.PlanFileError` line naming it.

This module is longer than most (about 880 lines): reading one format safely (the archive,
the XML, the routes and their actions, the planned photos they imply) is one subject, and its
parts share the file's private representation.
"""

from __future__ import annotations

import logging
import math
import os
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import numpy as np
import shapely
from defusedxml import DefusedXmlException
from pyproj import Transformer
from shapely.geometry import Polygon

from flightplans.camera import Camera
from flightplans.drones import Drone, drone_for_enums
from flightplans.errors import PlanFileError
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
from flightplans.wpml import KML_NS, KMZ_FOLDER, TEMPLATE_NAME, WAYLINES_NAME, WPML_NS_PATTERN

__all__ = ["MAX_MEMBER_BYTES", "WpmlFile", "WpmlRoute", "WpmlSurvey", "read_wpml", "wpml_survey"]

log = logging.getLogger(__name__)

#: Largest XML member read from a KMZ (bytes, uncompressed); real routes are a few MB.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: Most members a KMZ may list.
MAX_MEMBERS = 10_000

_FRAME_MISSION = 2  # MAV_FRAME_MISSION, for commands without a place (as the planner writes)
_NADIR_TOL_DEG = 10.0
_NAN = math.nan
_FIX = (
    "export the route from DJI Pilot 2 or FlightHub 2 again, or write it with "
    "`sitewatch plan --format wpml`"
)


def _fail(path: Path, what: str) -> PlanFileError:
    return PlanFileError(f"{path}: not a usable DJI WPML route ({what}); {_FIX}")


# ----------------------------------------------------------------------------- the archive


def _unsafe(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return (
        name.startswith(("/", "\\"))
        or ".." in parts
        or bool(re.match(r"^[A-Za-z]:", name))
        or "\x00" in name
    )


def _members(path: Path) -> tuple[bytes | None, bytes]:
    """The template (if any) and the waylines XML of a KMZ, read in memory."""
    if not zipfile.is_zipfile(path):
        raise _fail(
            path,
            "not a ZIP archive; a .kmz route is a ZIP holding wpmz/template.kml "
            "and wpmz/waylines.wpml",
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _fail(path, f"{len(infos)} members inside, more than {MAX_MEMBERS}")
            for info in infos:
                if _unsafe(info.filename):
                    raise _fail(
                        path,
                        f"member {info.filename!r} names a path outside the archive; refused "
                        "(nothing was extracted)",
                    )
            names = {i.filename: i for i in infos}
            if not any(n == KMZ_FOLDER + "/" or n.startswith(KMZ_FOLDER + "/") for n in names):
                listed = ", ".join(sorted(names)[:5]) or "nothing"
                raise _fail(path, f"no {KMZ_FOLDER}/ folder inside (it holds {listed})")
            if WAYLINES_NAME not in names:
                what = (
                    f"only {TEMPLATE_NAME}, no {WAYLINES_NAME}: open it in DJI Pilot 2 and save "
                    "it so the execution file is generated"
                    if TEMPLATE_NAME in names
                    else f"no {WAYLINES_NAME}"
                )
                raise _fail(path, what)
            template = _read_member(zf, names.get(TEMPLATE_NAME), path)
            waylines = _read_member(zf, names[WAYLINES_NAME], path)
    except zipfile.BadZipFile as exc:
        raise _fail(path, f"damaged ZIP archive: {exc}") from exc
    assert waylines is not None
    return template, waylines


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None, path: Path) -> bytes | None:
    if info is None:
        return None
    if info.file_size > MAX_MEMBER_BYTES:
        raise _fail(
            path,
            f"{info.filename} would unpack to {info.file_size} bytes, more than {MAX_MEMBER_BYTES}",
        )
    try:
        with zf.open(info) as f:
            data = f.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise _fail(path, f"{info.filename} cannot be unpacked ({exc})") from exc
    if len(data) > MAX_MEMBER_BYTES:
        raise _fail(path, f"{info.filename} unpacks to more than {MAX_MEMBER_BYTES} bytes")
    return data


# ----------------------------------------------------------------------------- XML


@dataclass(frozen=True)
class _Xml:
    root: Element
    ns: str
    name: str

    def w(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def find(self, el: Element, name: str) -> Element | None:
        return el.find(self.w(name))

    def text(self, el: Element | None, name: str) -> str | None:
        if el is None:
            return None
        e = el.find(self.w(name))
        if e is None or e.text is None:
            return None
        return e.text.strip()


def _parse_xml(data: bytes, member: str, path: Path) -> _Xml:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise _fail(
            path,
            f"{member} declares a DTD or entities ({type(exc).__name__}); refused as a possible "
            "XML bomb or external reference",
        ) from exc
    except ParseError as exc:
        raise _fail(path, f"{member} is not well-formed XML ({exc})") from exc
    if root.tag != f"{{{KML_NS}}}kml":
        raise _fail(path, f"{member}'s root element is {root.tag!r}, not KML 2.2 <kml>")
    uris = {
        el.tag[1:].split("}", 1)[0]
        for el in root.iter()
        if isinstance(el.tag, str) and el.tag.startswith("{http://www.dji.com/wpmz/")
    }
    good = sorted(u for u in uris if WPML_NS_PATTERN.match(u))
    if not good:
        raise _fail(path, f"{member} has no http://www.dji.com/wpmz/1.0.x elements")
    if len(uris) > 1:
        raise _fail(path, f"{member} mixes WPML namespaces {sorted(uris)}")
    return _Xml(root, good[0], member)


def _num(x: _Xml, el: Element | None, name: str, path: Path, default: float | None = None) -> float:
    t = x.text(el, name)
    if t is None:
        if default is not None:
            return default
        raise _fail(path, f"{x.name} has no wpml:{name}")
    try:
        v = float(t)
    except ValueError as exc:
        raise _fail(path, f"{x.name}: wpml:{name} is {t!r}, not a number") from exc
    if not math.isfinite(v):
        raise _fail(path, f"{x.name}: wpml:{name} is {t!r}, not a finite number")
    return v


def _kml(el: Element, name: str) -> Element | None:
    return el.find(f"{{{KML_NS}}}{name}")


def _coords(pm: Element, x: _Xml, path: Path, k: int) -> tuple[float, float]:
    pt = _kml(pm, "Point")
    c = _kml(pt, "coordinates") if pt is not None else None
    if c is None or not c.text:
        raise _fail(path, f"{x.name}: Placemark {k} has no Point/coordinates")
    parts = [p for p in re.split(r"[,\s]+", c.text.strip()) if p]
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except (ValueError, IndexError) as exc:
        raise _fail(path, f"{x.name}: Placemark {k} coordinates {c.text.strip()!r}") from exc
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise _fail(
            path,
            f"{x.name}: Placemark {k} at lon {lon}, lat {lat} is no place on Earth "
            "(coordinates are longitude,latitude)",
        )
    return lat, lon


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
    x: _Xml,
    placemarks: list[Element],
    speeds: list[float],
    n: int,
    path: Path,
) -> _Events:
    ev = _Events()
    for pm in placemarks:
        for ag in pm.findall(x.w("actionGroup")):
            start = int(_num(x, ag, "actionGroupStartIndex", path))
            end = int(_num(x, ag, "actionGroupEndIndex", path, default=float(start)))
            if not (0 <= start <= end < n):
                raise _fail(
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
                    value = _num(x, trig, "actionTriggerParam", path)
                    if value <= 0:
                        raise _fail(path, f"{x.name}: {ttype} interval {value} is not positive")
                    if ttype == "multipleDistance":
                        ev.intervals.append(PhotoInterval(start, end, value))
                    else:
                        d = value * speeds[start]
                        ev.intervals.append(PhotoInterval(start, end, d, timed_s=value))
                elif func == "takePhoto" and ttype == "reachPoint":
                    for i in range(start, end + 1):
                        ev.captures[i] += 1
                elif func == "hover" and ttype == "reachPoint":
                    t = _num(x, param, "hoverTime", path, default=0.0)
                    for i in range(start, end + 1):
                        ev.hold[i] = ev.hold.get(i, 0.0) + t
                elif func == "gimbalRotate":
                    if ev.gimbal is None and x.text(param, "gimbalPitchRotateEnable") != "0":
                        ev.gimbal = _num(x, param, "gimbalPitchRotateAngle", path, default=_NAN)
                        if math.isnan(ev.gimbal):
                            ev.gimbal = None
                else:
                    ev.ignored[func] += 1
    return ev


def _route(
    x: _Xml,
    folder: Element,
    cfg: dict[str, Any],
    path: Path,
    geoid_grid: str | os.PathLike[str] | None,
    warnings: list[str],
) -> WpmlRoute:
    wid = int(_num(x, folder, "waylineId", path, default=0.0))
    tid = int(_num(x, folder, "templateId", path, default=0.0))
    mode = x.text(folder, "executeHeightMode") or "WGS84"
    if mode not in ("WGS84", "relativeToStartPoint", "realTimeFollowSurface"):
        raise _fail(path, f"{x.name}: executeHeightMode {mode!r} is not a WPML height mode")
    speed = _num(x, folder, "autoFlightSpeed", path, default=float(cfg["transit"] or 5.0))
    pms = folder.findall(f"{{{KML_NS}}}Placemark")
    if not pms:
        raise _fail(path, f"{x.name}: wayline {wid} has no waypoints (Placemark)")
    indexed = []
    for k, pm in enumerate(pms):
        indexed.append((int(_num(x, pm, "index", path, default=float(k))), k, pm))
    indexed.sort()
    if [i for i, _k, _pm in indexed] != list(range(len(pms))):
        raise _fail(path, f"{x.name}: wayline {wid}'s waypoint indices are not 0..{len(pms) - 1}")
    pms = [pm for _i, _k, pm in indexed]
    n = len(pms)
    lat = np.empty(n)
    lon = np.empty(n)
    h = np.empty(n)
    speeds: list[float] = []
    headings: list[tuple[str, float | None]] = []
    for i, pm in enumerate(pms):
        lat[i], lon[i] = _coords(pm, x, path, i)
        h[i] = _num(x, pm, "executeHeight", path)
        speeds.append(_num(x, pm, "waypointSpeed", path, default=speed))
        hp = x.find(pm, "waypointHeadingParam")
        hmode = x.text(hp, "waypointHeadingMode") or "followWayline"
        angle = x.text(hp, "waypointHeadingAngle")
        headings.append((hmode, float(angle) if angle not in (None, "") else None))
    ev = _actions(x, pms, speeds, n, path)
    if ev.ignored:
        what = ", ".join(f"{v} {k}" for k, v in sorted(ev.ignored.items()))
        warnings.append(f"wayline {wid}: actions without a mission equivalent left out ({what})")
    if mode == "relativeToStartPoint":
        frame, alt = FRAME_RELATIVE, h
    elif mode == "WGS84":
        frame, alt = FRAME_AMSL, egm96_geoid(geoid_grid).to_egm96(lon, lat, h)
    else:
        frame, alt = FRAME_TERRAIN, h
    home_lat, home_lon, home_amsl = cfg["home"] or (float(lat[0]), float(lon[0]), _NAN)
    items: list[MissionItem] = []
    tosh = cfg["tosh"]
    if tosh is not None:
        # the climb is relative to the take-off point; above sea level only when it is known
        t_frame, t_alt = FRAME_RELATIVE, float(tosh)
        if frame == FRAME_AMSL and math.isfinite(home_amsl):
            t_frame, t_alt = FRAME_AMSL, round(home_amsl + tosh, 3)
        elif frame == FRAME_TERRAIN:
            t_frame = FRAME_TERRAIN
        items.append(
            MissionItem(
                MAV_CMD_NAV_TAKEOFF, t_frame, (0.0, 0.0, 0.0, _NAN), home_lat, home_lon, t_alt
            )
        )
    starts: dict[int, PhotoInterval] = {}
    ends: Counter[int] = Counter()
    for iv in ev.intervals:
        if iv.end == iv.start:  # one photo where it starts
            ev.captures[iv.start] += 1
        else:
            starts[iv.start] = iv
            ends[iv.end] += 1
    for i in range(n):
        items.append(
            MissionItem(
                MAV_CMD_NAV_WAYPOINT,
                frame,
                (ev.hold.get(i, 0.0), 0.0, 0.0, _NAN),
                float(lat[i]),
                float(lon[i]),
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
    if cfg["finish"] == "goHome":
        items.append(MissionItem(MAV_CMD_NAV_RETURN_TO_LAUNCH, _FRAME_MISSION))
    modes = {m for m, _a in headings}
    angles = {a for m, a in headings if m in ("fixed", "smoothTransition")}
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


def _start(iv: PhotoInterval) -> int:
    return iv.start


def _config(x: _Xml, tmpl: _Xml | None, path: Path, geoid_grid: Any) -> dict[str, Any]:
    mc = x.find(_document(x, path), "missionConfig")
    tmc = tmpl.find(_document(tmpl, path), "missionConfig") if tmpl is not None else None
    if mc is None and tmc is None:
        raise _fail(path, "no wpml:missionConfig")
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
            int(_num(sx, di, "droneEnumValue", path)),
            int(_num(sx, di, "droneSubEnumValue", path, default=0.0)),
        )
    payload = None
    if pi is not None and sx.text(pi, "payloadEnumValue") is not None:
        payload = int(_num(sx, pi, "payloadEnumValue", path))
    tosh = pick("takeOffSecurityHeight")
    home = None
    ref_text = tmpl.text(tmc, "takeOffRefPoint") if tmpl is not None and tmc is not None else None
    ref = None
    amsl: float | None = None
    if ref_text:
        try:
            r_lat, r_lon, r_h = (float(v) for v in ref_text.split(","))
        except ValueError as exc:
            raise _fail(path, f"takeOffRefPoint {ref_text!r} is not 'lat,lon,height'") from exc
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


def _document(x: _Xml, path: Path) -> Element:
    doc = _kml(x.root, "Document")
    if doc is None:
        raise _fail(path, f"{x.name} has no <Document>")
    return doc


def _template_site(x: _Xml, folder: Element) -> tuple[Polygon, ...]:
    polys = []
    for ring in folder.iter(f"{{{KML_NS}}}LinearRing"):
        c = _kml(ring, "coordinates")
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
    template_bytes, waylines_bytes = _members(p)
    wx = _parse_xml(waylines_bytes, WAYLINES_NAME, p)
    tx = _parse_xml(template_bytes, TEMPLATE_NAME, p) if template_bytes is not None else None
    warnings: list[str] = []
    cfg = _config(wx, tx, p, geoid_grid)
    folders = _document(wx, p).findall(f"{{{KML_NS}}}Folder")
    if not folders:
        raise _fail(p, f"{WAYLINES_NAME} has no wayline (Folder)")
    routes = tuple(_route(wx, f, cfg, p, geoid_grid, warnings) for f in folders)
    template_type = height_mode = None
    global_height = None
    site: tuple[Polygon, ...] = ()
    if tx is not None:
        tfolder = _kml(_document(tx, p), "Folder")
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


# ----------------------------------------------------------------------------- planned photos


@dataclass(frozen=True, eq=False)
class WpmlSurvey:
    """The photos a WPML file plans (:func:`wpml_survey`), WGS84.

    ``lonlat`` (n, 2) photo positions, ``bearing_deg`` (n,) direction of flight there,
    ``height_agl_m`` (n,) height above ground (flat ground at take-off level unless the file's
    heights are above the ground), ``nadir`` (n,) whether the camera looks down,
    ``footprints`` the nominal footprints of the nadir photos with ``camera`` (empty without
    one), ``figures`` the survey's figures for ``summary.json``.
    """

    lonlat: np.ndarray
    bearing_deg: np.ndarray
    height_agl_m: np.ndarray
    nadir: np.ndarray
    footprints: tuple[Polygon, ...]
    figures: dict[str, Any]


def _local(lon0: float, lat0: float) -> tuple[Transformer, Transformer]:
    aeqd = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    return (
        Transformer.from_crs(4326, aeqd, always_xy=True),
        Transformer.from_crs(aeqd, 4326, always_xy=True),
    )


def _agl(wf: WpmlFile, route: WpmlRoute, alt: np.ndarray) -> tuple[np.ndarray, str]:
    mode = route.execute_height_mode
    if mode == "relativeToStartPoint":
        return alt, "height above take-off (flat ground assumed)"
    if mode == "realTimeFollowSurface":
        return alt, "height above ground (terrain following)"
    if wf.takeoff_amsl_m is not None:
        return alt - wf.takeoff_amsl_m, "height above the take-off point (flat ground assumed)"
    if wf.global_height_m is not None:
        return np.full_like(alt, wf.global_height_m), "the template's global height"
    raise _fail(
        wf.path,
        "its heights are above the ellipsoid and it names neither a take-off point nor a global "
        "height, so the photos' height above ground is unknown",
    )


def _rectangles(
    c: np.ndarray, bearing: np.ndarray, side: np.ndarray, front: np.ndarray
) -> np.ndarray:
    b = np.radians(bearing)
    d = np.column_stack([np.sin(b), np.cos(b)]) * (front / 2)[:, None]
    n = np.column_stack([np.cos(b), -np.sin(b)]) * (side / 2)[:, None]
    return np.stack([c + d + n, c + d - n, c - d - n, c - d + n, c + d + n], axis=1)


def wpml_survey(wf: WpmlFile, camera: Camera | None = None) -> WpmlSurvey:
    """The planned photos of ``wf``, their footprints and the survey's figures.

    Photos lie every interval distance along the polyline of waypoints from an interval's
    start to its end (the first at the start, as the planner places them), and at each
    ``reachPoint`` photo. ``camera`` defaults to the payload's (:attr:`WpmlFile.camera`).

    Raises
    ------
    PlanFileError
        Absolute heights with neither take-off point nor global height (height above ground
        unknown).
    """
    cam = camera or wf.camera
    first = next(it for it in wf.routes[0].mission.items if it.command == MAV_CMD_NAV_WAYPOINT)
    fwd, inv = _local(first.lon, first.lat)
    xs: list[np.ndarray] = []
    bearings: list[np.ndarray] = []
    heights: list[np.ndarray] = []
    nadir: list[np.ndarray] = []
    triggers: list[float] = []
    spacings: list[float] = []
    length = 0.0
    how = ""
    for r in wf.routes:
        wps = [it for it in r.mission.items if it.command == MAV_CMD_NAV_WAYPOINT]
        lon = np.array([w.lon for w in wps])
        lat = np.array([w.lat for w in wps])
        alt = np.array([w.alt for w in wps])
        x, y = fwd.transform(lon, lat)
        xy = np.column_stack([x, y])
        agl, how = _agl(wf, r, alt)
        seg = np.diff(xy, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        length += float(seg_len.sum())
        seg_b = np.degrees(np.arctan2(seg[:, 0], seg[:, 1])) % 360.0 if len(seg) else np.zeros(0)
        prev: tuple[np.ndarray, np.ndarray] | None = None
        for iv in r.intervals:
            pts = xy[iv.start : iv.end + 1]
            hs = agl[iv.start : iv.end + 1]
            s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
            n = math.floor(s[-1] / iv.distance_m + 1e-6) + 1
            at = np.arange(n) * iv.distance_m
            k = np.clip(np.searchsorted(s, at, side="right") - 1, 0, max(len(s) - 2, 0))
            if len(s) > 1:
                span = np.where(s[k + 1] > s[k], s[k + 1] - s[k], 1.0)
                f = np.clip((at - s[k]) / span, 0.0, 1.0)[:, None]
                p = pts[k] + f * (pts[k + 1] - pts[k])
                hh = hs[k] + f[:, 0] * (hs[k + 1] - hs[k])
                bb = seg_b[iv.start + k]
            else:
                p, hh, bb = pts[:1].copy(), hs[:1].copy(), np.zeros(1)
            xs.append(p)
            heights.append(hh)
            bearings.append(bb)
            nadir.append(np.full(len(p), r.is_nadir))
            triggers.append(iv.distance_m)
            if len(pts) >= 2:
                a, b = pts[0], pts[-1]
                if prev is not None:
                    u = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
                    pu = (prev[1] - prev[0]) / max(float(np.hypot(*(prev[1] - prev[0]))), 1e-9)
                    if abs(u[0] * pu[1] - u[1] * pu[0]) < 0.05:  # parallel lines
                        mid = (a + b) / 2
                        dv = mid - prev[0]
                        spacings.append(abs(float(dv[0] * pu[1] - dv[1] * pu[0])))
                prev = (a, b)
        for i in r.captures:
            xs.append(xy[i : i + 1])
            heights.append(agl[i : i + 1])
            j = min(i, len(seg_b) - 1)
            bearings.append(seg_b[j : j + 1] if len(seg_b) else np.zeros(1))
            nadir.append(np.array([r.is_nadir]))
    pos = np.vstack(xs) if xs else np.zeros((0, 2))
    bea = np.concatenate(bearings) if bearings else np.zeros(0)
    agl_all = np.concatenate(heights) if heights else np.zeros(0)
    nad = np.concatenate(nadir).astype(bool) if nadir else np.zeros(0, dtype=bool)
    lo, la = inv.transform(pos[:, 0], pos[:, 1])
    lonlat = np.column_stack([lo, la]) if len(pos) else np.zeros((0, 2))
    footprints: tuple[Polygon, ...] = ()
    figures: dict[str, Any] = {
        "n_photos": len(pos),
        "n_nadir_photos": int(nad.sum()),
        "n_routes": len(wf.routes),
        "length_m": round(length, 1),
        "height_agl_source": how,
        "camera": cam.name if cam else None,
        "camera_label": cam.label if cam else None,
        "trigger_m": round(float(np.median(triggers)), 3) if triggers else None,
        "spacing_m": round(float(np.median(spacings)), 3) if spacings else None,
    }
    good = nad & np.isfinite(agl_all) & (agl_all > 0)
    if cam is not None and good.any():
        h = agl_all[good]
        side, front = cam.footprint_m(1.0)
        rings = _rectangles(pos[good], bea[good], side * h, front * h)
        lon_r, lat_r = inv.transform(rings[..., 0].ravel(), rings[..., 1].ravel())
        rings_ll = np.stack([lon_r, lat_r], axis=-1).reshape(rings.shape)
        footprints = tuple(shapely.polygons(rings_ll))
        hm = float(np.median(h))
        figures["alt_m"] = round(hm, 3)
        figures["gsd_cm"] = round(cam.gsd_cm(hm), 4)
        if triggers:
            figures["front_pct"] = round(100.0 * (1.0 - float(np.median(triggers)) / (front * hm)))
        if spacings:
            figures["side_pct"] = round(100.0 * (1.0 - float(np.median(spacings)) / (side * hm)))
    return WpmlSurvey(lonlat, bea, agl_all, nad, footprints, figures)
