"""Fly a planned mission: the true trajectory of a multirotor through its waypoints.

:func:`fly_missions` turns the sorties of a plan (:class:`flightplans.mission.Mission`, read
from the ``.plan`` files) into a :class:`Trajectory` sampled at a fixed rate, the way an
ArduPilot copter in AUTO mode flies them:

* on the ground at home, disarmed, for ``ground_wait_s``; take-off straight up
  (``NAV_TAKEOFF``); waypoints (``NAV_WAYPOINT``, hold times kept) joined by straight legs;
  ``NAV_RETURN_TO_LAUNCH`` climbs to the return height if below it, flies home and lands;
  ``NAV_LAND`` lands where it is; a mission that ends elsewhere gets a return added (an
  assumption, reported);
* corners are rounded (a quadratic Bézier curve starting ``corner_m`` before the waypoint):
  speed along the path is limited by the leg's speed (``cruise_speed_ms``, or the speed a
  ``DO_CHANGE_SPEED`` set; ``climb_ms``/``descent_ms`` on vertical motion, ``land_ms`` for
  the last metres of a landing), by the lateral acceleration in curves (v² κ ≤
  ``lateral_accel_ms2``) and by the acceleration along the path (``accel_ms2``), found by a
  forward and a backward pass over the densely sampled path;
* the nose follows the direction of travel, turning at most ``yaw_rate_dps``;
* the camera fires as ``DO_SET_CAM_TRIGG_DIST`` asks: once at once when param 3 is 1, then
  each time the horizontal distance from the last photo reaches param 1, checked at every
  sample (50 Hz by default, as the autopilot's loop does), until a distance of 0; as on
  the vehicle the lag of each photo accumulates along a line, so the planner's last photo
  of a line whose length is a multiple of the distance may not be taken;
  ``IMAGE_START_CAPTURE`` takes one photo at its waypoint.

Sorties are flown one after another with ``between_sorties_s`` on the ground between them
(the same home, the same log: the autopilot is not rebooted).

Positions are metres in the site's projected CRS (x east, y north) and heights above sea
level; times are seconds from the start of the log.

The module is about 540 lines: the route, the rounded path, the speed profile, the
sampling and the trigger are one algorithm (flying a mission), each step feeding the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS, Transformer

from flightplans.mission import (
    FRAME_AMSL,
    FRAME_TERRAIN,
    MAV_CMD_DO_SET_CAM_TRIGG_DIST,
    MAV_CMD_IMAGE_START_CAPTURE,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_NAV_TAKEOFF,
    MAV_CMD_NAV_WAYPOINT,
    Mission,
)

__all__ = ["FlightDynamics", "Trajectory", "fly_missions"]

MAV_CMD_NAV_LAND = 21
MAV_CMD_DO_CHANGE_SPEED = 178

#: A ground height sampler ``f(x, y) -> z`` (metres above sea level) in the flight's CRS.
Ground = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Phase of each sample (the flight modes the HEARTBEAT reports).
PHASE_GROUND = 0  # disarmed on the ground
PHASE_AUTO = 1  # armed, flying the mission
PHASE_LANDED = 2  # disarmed after a landing

_DS_M = 0.1  # spacing of the points of the rounded path (m)


@dataclass(frozen=True)
class FlightDynamics:
    """How the vehicle flies (ArduPilot copter defaults where it has one).

    Attributes
    ----------
    rate_hz
        Samples per second of the trajectory (the autopilot's loop that checks the camera
        trigger distance).
    accel_ms2
        Acceleration and braking along the path (m/s²; WPNAV_ACCEL 2.5).
    lateral_accel_ms2
        Largest centripetal acceleration in a corner (m/s²).
    corner_m
        Corners are rounded from this far before to this far after a waypoint (m).
    climb_ms, descent_ms, land_ms
        Vertical speeds: climbing, descending, and the last ``land_final_m`` of a landing.
    land_final_m
        Height above the ground where the landing slows to ``land_ms``.
    rtl_alt_m
        Lowest return height above home (m; RTL_ALT 15).
    yaw_rate_dps
        Fastest turn of the nose (deg/s).
    ground_wait_s, between_sorties_s, after_landing_s
        Time on the ground before the first take-off, between sorties and after the last
        landing (s).
    """

    rate_hz: float = 50.0
    accel_ms2: float = 2.0
    lateral_accel_ms2: float = 2.0
    corner_m: float = 5.0
    climb_ms: float = 2.5
    descent_ms: float = 1.5
    land_ms: float = 0.5
    land_final_m: float = 8.0
    rtl_alt_m: float = 15.0
    yaw_rate_dps: float = 90.0
    ground_wait_s: float = 20.0
    between_sorties_s: float = 90.0
    after_landing_s: float = 10.0


@dataclass(frozen=True, eq=False)
class Trajectory:
    """The true flight, sampled every ``1 / rate_hz`` seconds.

    Attributes
    ----------
    t
        Seconds from the start of the log, shape (n,).
    xyz
        Position (n, 3): x east and y north in ``crs`` (m), z above sea level (m).
    vel, acc
        Velocity (m/s) and acceleration (m/s²), (n, 3), east-north-up.
    yaw_deg
        Heading of the nose, degrees clockwise from grid north in [0, 360), (n,).
    phase
        :data:`PHASE_GROUND`, :data:`PHASE_AUTO` or :data:`PHASE_LANDED` per sample (n,).
    home_z
        Ground height at home (m above sea level): the zero of relative altitudes.
    shots
        Sample index of each camera trigger, in time order.
    shot_sortie
        Sortie number (1-based) of each trigger.
    crs
        The projected CRS of x and y.
    assumptions
        What the flight assumed about the missions, one line each.
    """

    t: np.ndarray
    xyz: np.ndarray
    vel: np.ndarray
    acc: np.ndarray
    yaw_deg: np.ndarray
    phase: np.ndarray
    home_z: float
    shots: np.ndarray
    shot_sortie: np.ndarray
    crs: CRS
    assumptions: tuple[str, ...] = ()

    @property
    def rate_hz(self) -> float:
        """Samples per second."""
        return float(round(1.0 / float(self.t[1] - self.t[0]), 6)) if len(self.t) > 1 else 0.0

    @property
    def duration_s(self) -> float:
        """Length of the log (s)."""
        return float(self.t[-1] - self.t[0]) if len(self.t) else 0.0


# ----------------------------------------------------------------------------- the route


@dataclass
class _Route:
    """A sortie as vertices with what happens at each (built from its mission items)."""

    points: list[np.ndarray] = field(default_factory=list)
    stop: list[bool] = field(default_factory=list)  # the vehicle stops at the vertex
    hold_s: list[float] = field(default_factory=list)
    speed: list[float] = field(default_factory=list)  # horizontal speed of the leg to it
    landing: list[bool] = field(default_factory=list)  # the leg to it is a final descent
    # (vertex index, trigger distance m or -1 for a single photo, shoot now)
    camera: list[tuple[int, float, bool]] = field(default_factory=list)

    def add(
        self,
        p: np.ndarray,
        *,
        stop: bool,
        speed: float,
        hold_s: float = 0.0,
        landing: bool = False,
    ) -> None:
        if self.points and np.allclose(p, self.points[-1], atol=1e-6):
            self.stop[-1] = self.stop[-1] or stop
            self.hold_s[-1] += hold_s
            return
        self.points.append(np.asarray(p, dtype=np.float64))
        self.stop.append(stop)
        self.hold_s.append(hold_s)
        self.speed.append(speed)
        self.landing.append(landing)


def _route(
    mission: Mission,
    to_xy: Transformer,
    home_xyz: np.ndarray,
    ground: Ground,
    dyn: FlightDynamics,
    notes: list[str],
) -> _Route:
    r = _Route()
    r.add(home_xyz, stop=True, speed=0.0)
    speed = float(mission.cruise_speed_ms)
    ended = False
    for item in mission.items:
        cmd = item.command
        cur = r.points[-1]
        if cmd in (MAV_CMD_NAV_TAKEOFF, MAV_CMD_NAV_WAYPOINT):
            if cmd == MAV_CMD_NAV_TAKEOFF or (item.lat == 0.0 and item.lon == 0.0):
                x, y = float(cur[0]), float(cur[1])
            else:
                xx, yy = to_xy.transform(item.lon, item.lat)
                x, y = float(xx), float(yy)
            if item.frame == FRAME_AMSL:
                z = float(item.alt)
            elif item.frame == FRAME_TERRAIN:
                z = float(ground(np.array([x]), np.array([y]))[0]) + float(item.alt)
            else:
                z = float(home_xyz[2]) + float(item.alt)
            hold = float(item.params[0]) if cmd == MAV_CMD_NAV_WAYPOINT else 0.0
            hold = hold if math.isfinite(hold) and hold > 0 else 0.0
            r.add(
                np.array([x, y, z]),
                stop=cmd == MAV_CMD_NAV_TAKEOFF or hold > 0,
                speed=speed,
                hold_s=hold,
            )
        elif cmd == MAV_CMD_DO_SET_CAM_TRIGG_DIST:
            dist = float(item.params[0])
            r.camera.append((len(r.points) - 1, dist, float(item.params[2]) == 1.0))
        elif cmd == MAV_CMD_IMAGE_START_CAPTURE:
            r.stop[-1] = True
            r.camera.append((len(r.points) - 1, -1.0, True))
        elif cmd == MAV_CMD_DO_CHANGE_SPEED:
            if math.isfinite(item.params[1]) and item.params[1] > 0:
                speed = float(item.params[1])
        elif cmd in (MAV_CMD_NAV_RETURN_TO_LAUNCH, MAV_CMD_NAV_LAND):
            _land(r, home_xyz, ground, dyn, speed, to_home=cmd == MAV_CMD_NAV_RETURN_TO_LAUNCH)
            ended = True
            break
        else:
            notes.append(f"mission command {cmd} is not simulated; it was skipped")
    if not ended:
        notes.append("the mission does not end with a return or a landing; a return was added")
        _land(r, home_xyz, ground, dyn, speed, to_home=True)
    return r


def _land(
    r: _Route, home: np.ndarray, ground: Ground, dyn: FlightDynamics, speed: float, to_home: bool
) -> None:
    cur = r.points[-1]
    if to_home:
        z_rtl = max(float(cur[2]), float(home[2]) + dyn.rtl_alt_m)
        r.add(np.array([cur[0], cur[1], z_rtl]), stop=True, speed=speed)
        r.add(np.array([home[0], home[1], z_rtl]), stop=True, speed=speed)
        x, y, zg = float(home[0]), float(home[1]), float(home[2])
    else:
        x, y = float(cur[0]), float(cur[1])
        zg = float(ground(np.array([x]), np.array([y]))[0])
    z_now = float(r.points[-1][2])
    if z_now - zg > dyn.land_final_m:
        r.add(np.array([x, y, zg + dyn.land_final_m]), stop=False, speed=speed)
    r.add(np.array([x, y, zg]), stop=True, speed=speed, landing=True)


# ----------------------------------------------------------------------------- the path


def _bezier(a: np.ndarray, b: np.ndarray, c: np.ndarray, ds: float) -> np.ndarray:
    """Points of the quadratic Bézier a-b-c (a and c excluded), about ``ds`` apart."""
    length = float(np.linalg.norm(b - a) + np.linalg.norm(c - b))
    n = max(math.ceil(length / ds), 2)
    s = np.linspace(0.0, 1.0, n + 1)[1:-1, None]
    out: np.ndarray = (1 - s) ** 2 * a + 2 * s * (1 - s) * b + s**2 * c
    return out


def _leg_cap(u: np.ndarray, speed: float, dyn: FlightDynamics, landing: bool) -> float:
    """Fastest speed along a leg of direction ``u`` (unit vector)."""
    h = math.hypot(u[0], u[1])
    caps = [speed / h if h > 1e-9 else math.inf]
    if u[2] > 1e-9:
        caps.append(dyn.climb_ms / u[2])
    elif u[2] < -1e-9:
        caps.append((dyn.land_ms if landing else dyn.descent_ms) / -u[2])
    return min(caps)


def _densify(
    r: _Route, dyn: FlightDynamics, ds: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rounded path: points (k, 3), speed cap (k,), stop flag (k,), vertex -> point index."""
    pts = np.array(r.points)
    n = len(pts)
    seg = np.diff(pts, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    u = seg / seg_len[:, None]
    caps = [_leg_cap(u[i], r.speed[i + 1], dyn, r.landing[i + 1]) for i in range(n - 1)]
    cut = np.zeros(n)  # how far before and after each vertex the corner starts
    for i in range(1, n - 1):
        if r.stop[i]:
            continue
        turn = math.degrees(math.acos(float(np.clip(u[i - 1] @ u[i], -1.0, 1.0))))
        if turn > 1.0:
            cut[i] = min(dyn.corner_m, 0.45 * seg_len[i - 1], 0.45 * seg_len[i])
    out_p: list[np.ndarray] = [pts[:1]]
    out_cap: list[np.ndarray] = [np.array([0.0])]
    out_stop: list[np.ndarray] = [np.array([True])]
    vertex_at = np.zeros(n, dtype=np.int64)
    count = 1
    for i in range(n - 1):
        a = pts[i] + u[i] * cut[i]
        b = pts[i + 1] - u[i] * cut[i + 1]
        length = float(np.linalg.norm(b - a))
        k = max(math.ceil(length / ds), 1)
        s = np.linspace(0.0, 1.0, k + 1)[1:, None]
        straight = a + s * (b - a)
        out_p.append(straight)
        out_cap.append(np.full(k, caps[i]))
        stops = np.zeros(k, dtype=bool)
        stops[-1] = r.stop[i + 1] or i + 1 == n - 1
        out_stop.append(stops)
        count += k
        if cut[i + 1] > 0:
            curve = _bezier(b, pts[i + 1], pts[i + 1] + u[i + 1] * cut[i + 1], ds)
            vertex_at[i + 1] = count + len(curve) // 2
            out_p.append(curve)
            out_cap.append(np.full(len(curve), min(caps[i], caps[i + 1])))
            out_stop.append(np.zeros(len(curve), dtype=bool))
            count += len(curve)
        else:
            vertex_at[i + 1] = count - 1
    return np.concatenate(out_p), np.concatenate(out_cap), np.concatenate(out_stop), vertex_at


def _speed_profile(
    p: np.ndarray, cap: np.ndarray, stop: np.ndarray, dyn: FlightDynamics
) -> tuple[np.ndarray, np.ndarray]:
    """Speed at each path point (k,) and the time to reach it from the first (k,)."""
    step = np.linalg.norm(np.diff(p, axis=0), axis=1)
    tangent = np.diff(p, axis=0) / step[:, None]
    bend = np.zeros(len(p))
    cosang = np.clip(np.einsum("ij,ij->i", tangent[:-1], tangent[1:]), -1.0, 1.0)
    bend[1:-1] = np.arccos(cosang) / (0.5 * (step[:-1] + step[1:]))  # curvature 1/m
    with np.errstate(divide="ignore"):
        v_max = np.minimum(cap, np.sqrt(dyn.lateral_accel_ms2 / bend))
    v_max[stop] = 0.0
    v = v_max.copy()
    two_a = 2.0 * dyn.accel_ms2
    for i in range(1, len(v)):
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + two_a * step[i - 1]))
    for i in range(len(v) - 2, -1, -1):
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + two_a * step[i]))
    both = v[:-1] + v[1:]
    # two stops closer than a step apart: accelerate half-way, brake the other half
    dt = np.where(
        both > 1e-6, 2.0 * step / np.maximum(both, 1e-6), 2.0 * np.sqrt(step / dyn.accel_ms2)
    )
    return v, np.concatenate([[0.0], np.cumsum(dt)])


# ----------------------------------------------------------------------------- the flight


def _rate_limited_yaw(vel: np.ndarray, dt: float, rate_dps: float, start: float) -> np.ndarray:
    speed = np.hypot(vel[:, 0], vel[:, 1])
    target = np.degrees(np.arctan2(vel[:, 0], vel[:, 1]))
    out = np.empty(len(vel))
    yaw = start
    step = rate_dps * dt
    for i in range(len(vel)):
        if speed[i] > 0.5:
            d = (target[i] - yaw + 180.0) % 360.0 - 180.0
            yaw += min(max(d, -step), step)
        out[i] = yaw
    result: np.ndarray = out % 360.0
    return result


def fly_missions(
    missions: Sequence[Mission],
    crs: CRS,
    ground: Ground,
    dyn: FlightDynamics | None = None,
) -> Trajectory:
    """Fly the sorties one after another (module docstring) and sample the flight.

    Parameters
    ----------
    missions
        The sorties, in the order flown; they share the first one's home.
    crs
        Projected CRS in metres to fly in (the site's UTM zone).
    ground
        Ground height sampler in ``crs`` (m above sea level): home's ground, terrain-frame
        waypoints and landings away from home.
    dyn
        How the vehicle flies.

    Returns
    -------
    Trajectory
    """
    dyn = dyn or FlightDynamics()
    to_xy = Transformer.from_crs(4326, crs, always_xy=True)
    lat0, lon0, _alt = missions[0].home
    hx, hy = (float(v) for v in to_xy.transform(lon0, lat0))
    hz = float(ground(np.array([hx]), np.array([hy]))[0])
    home = np.array([hx, hy, hz])
    notes: list[str] = []
    # knots of the flight: time, distance flown, speed and position; between two knots the
    # acceleration along the path is constant (or the vehicle stands still)
    kt: list[np.ndarray] = [np.array([0.0])]
    ks: list[np.ndarray] = [np.array([0.0])]
    kv: list[np.ndarray] = [np.array([0.0])]
    kp: list[np.ndarray] = [home[None, :]]
    flights: list[tuple[float, float]] = []  # (take-off, touch-down) times
    trig_events: list[tuple[float, float, bool, int]] = []  # (time, distance, now, sortie)
    t_now = dyn.ground_wait_s
    flown = 0.0
    for number, mission in enumerate(missions, start=1):
        route = _route(mission, to_xy, home, ground, dyn, notes)
        pts, cap, stop, vertex_at = _densify(route, dyn, _DS_M)
        v, t_path = _speed_profile(pts, cap, stop, dyn)
        s_path = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        # a hold is a second knot at the vertex: the clock runs, the vehicle stands
        holds = np.zeros(len(pts))
        for i, h in enumerate(route.hold_s):
            holds[vertex_at[i]] += h
        t_path = t_path + np.concatenate([[0.0], np.cumsum(holds)[:-1]])
        held = np.flatnonzero(holds > 0)
        t_knots = np.insert(t_path, held + 1, t_path[held] + holds[held])
        t_start = t_now
        kt.append(t_start + t_knots)
        ks.append(flown + np.insert(s_path, held + 1, s_path[held]))
        kv.append(np.insert(v, held + 1, 0.0))
        kp.append(np.insert(pts, held + 1, pts[held], axis=0))
        for vertex, dist, now in route.camera:
            i = vertex_at[vertex]
            trig_events.append((t_start + t_path[i] + holds[i] * 0.5, dist, now, number))
        t_end = t_start + float(t_knots[-1])
        flown += float(s_path[-1])
        flights.append((t_start, t_end))
        t_now = t_end + (dyn.between_sorties_s if number < len(missions) else dyn.after_landing_s)
    kt.append(np.array([t_now]))
    ks.append(np.array([flown]))
    kv.append(np.array([0.0]))
    kp.append(kp[-1][-1:])
    dt = 1.0 / dyn.rate_hz
    t = np.arange(0.0, t_now + 0.5 * dt, dt)
    xyz = _sample(t, np.concatenate(kt), np.concatenate(ks), np.concatenate(kv), np.concatenate(kp))
    vel = np.gradient(xyz, dt, axis=0)
    acc = np.gradient(vel, dt, axis=0)
    kernel = np.ones(9) / 9.0  # the steps of the speed profile, as a controller smooths them
    acc = np.column_stack([np.convolve(acc[:, k], kernel, mode="same") for k in range(3)])
    phase = np.full(len(t), PHASE_GROUND, dtype=np.int8)
    for k, (a, b) in enumerate(flights):
        phase[(t >= a) & (t <= b)] = PHASE_AUTO
        phase[t > b] = PHASE_LANDED if k == len(flights) - 1 else PHASE_GROUND
    first = np.flatnonzero(np.hypot(vel[:, 0], vel[:, 1]) > 0.5)
    start_yaw = (
        float(np.degrees(np.arctan2(vel[first[0], 0], vel[first[0], 1]))) if first.size else 0.0
    )
    yaw = _rate_limited_yaw(vel, dt, dyn.yaw_rate_dps, start_yaw)
    shots, sorties = _fire_camera(t, xyz, trig_events)
    return Trajectory(
        t=t,
        xyz=xyz,
        vel=vel,
        acc=acc,
        yaw_deg=yaw,
        phase=phase,
        home_z=hz,
        shots=shots,
        shot_sortie=sorties,
        crs=crs,
        assumptions=tuple(dict.fromkeys(notes)),
    )


def _sample(
    t: np.ndarray, kt: np.ndarray, ks: np.ndarray, kv: np.ndarray, kp: np.ndarray
) -> np.ndarray:
    """Positions (n, 3) at times ``t`` from knots of time, distance, speed and position.

    Between two knots the acceleration along the path is constant:
    ``s = s0 + v0 tau + a tau^2 / 2`` with ``a = (v1^2 - v0^2) / (2 (s1 - s0))``; the
    position at a distance is interpolated along the knots' points (0.1 m apart).
    """
    i = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2)
    tau = t - kt[i]
    ds = ks[i + 1] - ks[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(ds > 0, (kv[i + 1] ** 2 - kv[i] ** 2) / (2.0 * ds), 0.0)
    s = np.clip(ks[i] + kv[i] * tau + 0.5 * a * tau**2, ks[i], ks[i + 1])
    # distances repeat where the vehicle stands: interpolate on the knot index instead
    pos = np.interp(s, ks, np.arange(len(ks), dtype=np.float64))
    pos = np.where(ds > 0, pos, i.astype(np.float64))
    lo = np.clip(np.floor(pos).astype(np.intp), 0, len(kp) - 2)
    frac = (pos - lo)[:, None]
    out: np.ndarray = kp[lo] * (1.0 - frac) + kp[lo + 1] * frac
    return out


def _fire_camera(
    t: np.ndarray, xyz: np.ndarray, events: Sequence[tuple[float, float, bool, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices of the photos the trigger commands take (module docstring)."""
    shots: list[int] = []
    sorties: list[int] = []
    events = sorted(events)
    starts = [int(np.searchsorted(t, e[0])) for e in events]
    for k, ((_te, dist, now, sortie), i0) in enumerate(zip(events, starts, strict=True)):
        i0 = min(i0, len(t) - 1)
        if dist < 0 or now:  # a single photo, or the first of a distance run
            shots.append(i0)
            sorties.append(sortie)
        if dist <= 0:
            continue
        i1 = starts[k + 1] if k + 1 < len(events) else len(t)
        last = xyz[i0, :2]
        for i in range(i0 + 1, i1):
            if math.hypot(xyz[i, 0] - last[0], xyz[i, 1] - last[1]) >= dist:
                shots.append(i)
                sorties.append(sortie)
                last = xyz[i, :2]
    order = np.argsort(np.array(shots, dtype=np.int64), kind="stable")
    return np.array(shots, dtype=np.int64)[order], np.array(sorties, dtype=np.int64)[order]
