"""Write what a ground station records of a flight: a MAVLink telemetry log (``.tlog``).

A tlog is every MAVLink frame the ground station received, each behind its own receive time
(8 bytes, big-endian microseconds since the Unix epoch). Frames are encoded by pymavlink
(MAVLink 2, ``ardupilotmega`` dialect), the vehicle as system 1 component 1 and the ground
station's own heartbeat as system 255 component 190, as Mission Planner logs them:

=====================  ==========================================================
HEARTBEAT              1 Hz from the vehicle (quadrotor, ArduPilot; STABILIZE
                       disarmed on the ground, AUTO armed in the air) and the GCS
SYSTEM_TIME            1 Hz: the vehicle's UTC (from GNSS) and its boot clock
GLOBAL_POSITION_INT    ``position_hz``: the position estimate (lat, lon, altitude
                       above sea level and above home, velocity, heading)
GPS_RAW_INT            ``position_hz``: the receiver's fix (UTC time stamp)
ATTITUDE               ``attitude_hz``: roll, pitch, yaw and their rates
CAMERA_FEEDBACK        one per photo: its UTC time, image number, position, attitude
=====================  ==========================================================

Each frame reaches the ground station ``latency_s`` (drawn per frame) after the vehicle
stamped it, on a ground-station clock ``gcs_offset_s`` off UTC; the file is in receive order.
It is written as it is produced, a minute of flight at a time, so memory stays flat however
long the flight.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from survey.rasters import atomic_path
from survey.simulate.kinematics import PHASE_AUTO

__all__ = ["FlightRecord", "TlogClocks", "write_tlog"]

_TIME = struct.Struct(">Q")
_CHUNK_S = 60.0

# ArduCopter flight modes and MAVLink mode flags (common.xml, ardupilotmega.xml).
_COPTER_STABILIZE = 0
_COPTER_AUTO = 3
_FLAG_CUSTOM = mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
_FLAG_ARMED = mavlink.MAV_MODE_FLAG_SAFETY_ARMED
_FLAG_AUTO = (
    mavlink.MAV_MODE_FLAG_AUTO_ENABLED
    | mavlink.MAV_MODE_FLAG_GUIDED_ENABLED
    | mavlink.MAV_MODE_FLAG_STABILIZE_ENABLED
)


@dataclass(frozen=True, eq=False)
class FlightRecord:
    """What the autopilot knows at each sample (n,) and at each photo (m,).

    Attributes
    ----------
    t
        Seconds from the start of the log (n,), evenly spaced.
    lat, lon, alt_amsl, alt_rel
        The position estimate: degrees WGS84, metres above sea level and above home (n,).
    raw_lat, raw_lon, raw_alt
        The GNSS receiver's fix (n,).
    vel
        Ground velocity (n, 3) east-north-up, m/s.
    roll, pitch, yaw
        Vehicle attitude in degrees (n,): roll right, nose up positive; yaw clockwise from
        north in [0, 360).
    phase
        Flight phase per sample (:data:`survey.simulate.kinematics.PHASE_AUTO` is flying).
    satellites
        Satellites used (n,).
    shot_index
        Sample index of each photo (m,).
    shot_lat, shot_lon, shot_alt_amsl, shot_alt_rel, shot_roll, shot_pitch, shot_yaw
        Position and attitude the camera feedback reports for each photo (m,).
    """

    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    alt_amsl: np.ndarray
    alt_rel: np.ndarray
    raw_lat: np.ndarray
    raw_lon: np.ndarray
    raw_alt: np.ndarray
    vel: np.ndarray
    roll: np.ndarray
    pitch: np.ndarray
    yaw: np.ndarray
    phase: np.ndarray
    satellites: np.ndarray
    shot_index: np.ndarray
    shot_lat: np.ndarray
    shot_lon: np.ndarray
    shot_alt_amsl: np.ndarray
    shot_alt_rel: np.ndarray
    shot_roll: np.ndarray
    shot_pitch: np.ndarray
    shot_yaw: np.ndarray


@dataclass(frozen=True)
class TlogClocks:
    """The clocks of a tlog.

    Attributes
    ----------
    utc0_s
        UTC (seconds since 1970) at ``t = 0``.
    boot0_s
        The vehicle's boot clock at ``t = 0`` (s since it powered up).
    gcs_offset_s
        Ground-station clock minus UTC (s).
    latency_s
        (min, max) delay of a frame from the vehicle to the ground station (s), uniform.
    position_hz, attitude_hz
        Rates of the position (GLOBAL_POSITION_INT, GPS_RAW_INT) and attitude messages.
    """

    utc0_s: float
    boot0_s: float
    gcs_offset_s: float = 0.35
    latency_s: tuple[float, float] = (0.02, 0.06)
    position_hz: float = 5.0
    attitude_hz: float = 10.0


def _every(rate_hz: float, sample_hz: float) -> int:
    return max(1, round(sample_hz / rate_hz))


def _wrap_pi(deg: float) -> float:
    return math.radians((deg + 180.0) % 360.0 - 180.0)


class _Encoder:
    """pymavlink encoders per (system, component), with their sequence numbers."""

    def __init__(self) -> None:
        self.links: dict[tuple[int, int], mavlink.MAVLink] = {}
        self.counts: dict[str, int] = {}

    def frame(self, msg: mavlink.MAVLink_message, sysid: int = 1, compid: int = 1) -> bytes:
        link = self.links.get((sysid, compid))
        if link is None:
            link = self.links[(sysid, compid)] = mavlink.MAVLink(
                None, srcSystem=sysid, srcComponent=compid
            )
        data: bytes = msg.pack(link)
        link.seq = (link.seq + 1) % 256
        name = msg.get_type()
        self.counts[name] = self.counts.get(name, 0) + 1
        return data


def _records(
    rec: FlightRecord, clocks: TlogClocks, rng: np.random.Generator, enc: _Encoder
) -> Iterator[tuple[int, float, list[tuple[float, bytes]]]]:
    """Per minute of flight: (last sample index, its time, [(vehicle time, frame), ...])."""
    n = len(rec.t)
    dt = float(rec.t[1] - rec.t[0]) if n > 1 else 1.0
    hz = 1.0 / dt
    pos_every = _every(clocks.position_hz, hz)
    att_every = _every(clocks.attitude_hz, hz)
    sec_every = _every(1.0, hz)
    gps_lag = max(1, pos_every // 5)  # the receiver's fix arrives a little after the estimate
    rates = np.gradient(np.radians(np.unwrap(rec.yaw, period=360.0)), dt)
    roll_rate = np.gradient(np.radians(rec.roll), dt)
    pitch_rate = np.gradient(np.radians(rec.pitch), dt)
    speed = np.hypot(rec.vel[:, 0], rec.vel[:, 1])
    cog = np.degrees(np.arctan2(rec.vel[:, 0], rec.vel[:, 1])) % 360.0
    shots_at: dict[int, list[int]] = {}
    for k, i in enumerate(rec.shot_index.tolist()):
        shots_at.setdefault(int(i), []).append(k)
    chunk = max(1, round(_CHUNK_S * hz))
    for start in range(0, n, chunk):
        out: list[tuple[float, bytes]] = []
        for i in range(start, min(start + chunk, n)):
            t = float(rec.t[i])
            utc = clocks.utc0_s + t
            boot_ms = round((clocks.boot0_s + t) * 1000.0)
            flying = int(rec.phase[i]) == PHASE_AUTO
            if i % sec_every == 0:
                base = _FLAG_CUSTOM | (_FLAG_AUTO | _FLAG_ARMED if flying else 0)
                hb = mavlink.MAVLink_heartbeat_message(
                    mavlink.MAV_TYPE_QUADROTOR,
                    mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA,
                    base,
                    _COPTER_AUTO if flying else _COPTER_STABILIZE,
                    mavlink.MAV_STATE_ACTIVE if flying else mavlink.MAV_STATE_STANDBY,
                    3,
                )
                out.append((t, enc.frame(hb)))
                st = mavlink.MAVLink_system_time_message(round(utc * 1e6), boot_ms)
                out.append((t, enc.frame(st)))
            if i % sec_every == sec_every // 2:  # the ground station's own heartbeat
                gcs = mavlink.MAVLink_heartbeat_message(
                    mavlink.MAV_TYPE_GCS, mavlink.MAV_AUTOPILOT_INVALID, 0, 0, 0, 3
                )
                out.append((t - clocks.latency_s[0], enc.frame(gcs, 255, 190)))
            if i % att_every == 0:
                att = mavlink.MAVLink_attitude_message(
                    boot_ms,
                    math.radians(float(rec.roll[i])),
                    math.radians(float(rec.pitch[i])),
                    _wrap_pi(float(rec.yaw[i])),
                    float(roll_rate[i]),
                    float(pitch_rate[i]),
                    float(rates[i]),
                )
                out.append((t, enc.frame(att)))
            if i % pos_every == 0:
                v = rec.vel[i]
                gpi = mavlink.MAVLink_global_position_int_message(
                    boot_ms,
                    round(float(rec.lat[i]) * 1e7),
                    round(float(rec.lon[i]) * 1e7),
                    round(float(rec.alt_amsl[i]) * 1000.0),
                    round(float(rec.alt_rel[i]) * 1000.0),
                    round(float(v[1]) * 100.0),
                    round(float(v[0]) * 100.0),
                    round(-float(v[2]) * 100.0),
                    round(float(rec.yaw[i]) * 100.0) % 36000,
                )
                out.append((t, enc.frame(gpi)))
            if i % pos_every == gps_lag % pos_every:
                gps = mavlink.MAVLink_gps_raw_int_message(
                    round(utc * 1e6),
                    mavlink.GPS_FIX_TYPE_3D_FIX,
                    round(float(rec.raw_lat[i]) * 1e7),
                    round(float(rec.raw_lon[i]) * 1e7),
                    round(float(rec.raw_alt[i]) * 1000.0),
                    90,
                    140,
                    round(float(speed[i]) * 100.0),
                    round(float(cog[i]) * 100.0) % 36000,
                    int(rec.satellites[i]),
                )
                out.append((t, enc.frame(gps)))
            for k in shots_at.get(i, ()):
                fb = mavlink.MAVLink_camera_feedback_message(
                    round(utc * 1e6),
                    1,
                    0,
                    k + 1,
                    round(float(rec.shot_lat[k]) * 1e7),
                    round(float(rec.shot_lon[k]) * 1e7),
                    float(rec.shot_alt_amsl[k]),
                    float(rec.shot_alt_rel[k]),
                    float(rec.shot_roll[k]),
                    float(rec.shot_pitch[k]),
                    float(rec.shot_yaw[k]),
                    0.0,
                    mavlink.CAMERA_FEEDBACK_PHOTO,
                    k + 1,
                )
                out.append((t, enc.frame(fb)))
        last = min(start + chunk, n) - 1
        yield last, float(rec.t[last]), out


def write_tlog(
    path: str | os.PathLike[str], rec: FlightRecord, clocks: TlogClocks, seed: int
) -> dict[str, int]:
    """Write the tlog of a flight (module docstring), atomically.

    Parameters
    ----------
    path
        The ``.tlog`` to write.
    rec
        What the autopilot knows (:class:`FlightRecord`).
    clocks
        Time base, ground-station clock and message rates.
    seed
        Seed of the frame latencies.

    Returns
    -------
    dict of str to int
        Frames written per message type (``HEARTBEAT`` counts the vehicle's and the GCS's).
    """
    rng = np.random.default_rng([seed, 7])
    enc = _Encoder()
    lo, hi = clocks.latency_s
    base = clocks.utc0_s + clocks.gcs_offset_s
    pending: list[tuple[int, bytes]] = []
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        for _last, t_last, frames in _records(rec, clocks, rng, enc):
            delays = rng.uniform(lo, hi, len(frames))
            pending.extend(
                (round((base + t + d) * 1e6), f) for (t, f), d in zip(frames, delays, strict=True)
            )
            pending.sort(key=lambda r: r[0])
            safe = round((base + t_last + lo) * 1e6)  # nothing later can arrive before this
            cut = next((k for k, r in enumerate(pending) if r[0] >= safe), len(pending))
            fh.write(b"".join(_TIME.pack(us) + f for us, f in pending[:cut]))
            pending = pending[cut:]
        fh.write(b"".join(_TIME.pack(us) + f for us, f in pending))
    return dict(sorted(enc.counts.items()))
