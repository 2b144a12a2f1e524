"""``truth.json`` of a simulated flight: what really happened, to test ingestion against.

For each photo: its times (log and camera clocks), the true position and attitude at
exposure, what the receiver reported and its error. For the flight: the camera-clock
offset, the noise as asked and as drawn, the wind, the dynamics, the camera, the site frame
(the misregistration undone) and the inputs and outputs with their SHA-256. Nothing in it
depends on the machine or the time of the run, so the same seed gives the same file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer

from flightplans.camera import Camera
from survey import __version__
from survey.rasters import sha256_file
from survey.simulate.kinematics import PHASE_AUTO, Trajectory
from survey.simulate.params import SimParams
from survey.simulate.world import SiteWorld

__all__ = ["truth_record"]


def _iso(seconds: float) -> str:
    t = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _r(v: float, nd: int) -> float:
    return round(float(v), nd)


def _exposures(
    traj: Trajectory,
    est: dict[str, np.ndarray],
    errors_gnss: np.ndarray,
    gimbal: tuple[np.ndarray, np.ndarray, np.ndarray],
    vehicle: tuple[np.ndarray, np.ndarray],
    utc0: float,
    offset_s: float,
    photos: list[Path],
) -> list[dict[str, Any]]:
    """Per photo: its times, the true position and speed, what the receiver reported and
    its error, the camera's and the vehicle's attitude."""
    to_ll = Transformer.from_crs(traj.crs, 4326, always_xy=True)
    shots = traj.shots
    true_lon, true_lat = (np.asarray(v) for v in to_ll.transform(traj.xyz[:, 0], traj.xyz[:, 1]))
    g_yaw, g_pitch, g_roll = gimbal
    roll, pitch = vehicle
    exposures: list[dict[str, Any]] = []
    for k, i in enumerate(shots.tolist()):
        exposures.append(
            {
                "index": k + 1,
                "photo": photos[k].name if photos else None,
                "sortie": int(traj.shot_sortie[k]),
                "time_utc": _iso(utc0 + traj.t[i]),
                "camera_time_utc": _iso(utc0 + traj.t[i] + offset_s),
                "log_t_s": _r(traj.t[i], 3),
                "true": {
                    "lat": _r(true_lat[i], 9),
                    "lon": _r(true_lon[i], 9),
                    "x": _r(traj.xyz[i, 0], 3),
                    "y": _r(traj.xyz[i, 1], 3),
                    "alt_amsl_m": _r(traj.xyz[i, 2], 3),
                    "alt_rel_m": _r(traj.xyz[i, 2] - traj.home_z, 3),
                    "speed_ms": _r(math.hypot(traj.vel[i, 0], traj.vel[i, 1]), 3),
                },
                "reported": {
                    "lat": _r(est["lat"][i], 9),
                    "lon": _r(est["lon"][i], 9),
                    "alt_amsl_m": _r(est["alt_amsl"][i], 3),
                    "alt_rel_m": _r(est["alt_rel"][i], 3),
                },
                "gnss_error_m": {
                    "east": _r(errors_gnss[i, 0], 3),
                    "north": _r(errors_gnss[i, 1], 3),
                    "horizontal": _r(math.hypot(errors_gnss[i, 0], errors_gnss[i, 1]), 3),
                },
                "camera": {
                    "yaw_deg": _r(g_yaw[i], 3),
                    "pitch_deg": _r(g_pitch[i], 3),
                    "roll_deg": _r(g_roll[i], 3),
                },
                "vehicle": {
                    "yaw_deg": _r(traj.yaw_deg[i], 3),
                    "pitch_deg": _r(pitch[i], 3),
                    "roll_deg": _r(roll[i], 3),
                },
            }
        )
    return exposures


def truth_record(
    prm: SimParams,
    *,
    cam_name: str,
    camera: Camera,
    small: Camera,
    plan_files: list[Path],
    site_dir: Path,
    world: SiteWorld,
    traj: Trajectory,
    est: dict[str, np.ndarray],
    errors_gnss: np.ndarray,
    gimbal: tuple[np.ndarray, np.ndarray, np.ndarray],
    vehicle: tuple[np.ndarray, np.ndarray],
    wind: np.ndarray,
    wind_from: float,
    start: dt.datetime,
    offset_s: float,
    zone: dt.timezone,
    photos: list[Path],
    tlog: Path,
    counts: dict[str, int],
    boot_before_log_s: float,
    gcs_offset_s: float,
) -> dict[str, Any]:
    """The content of ``truth.json`` (module docstring)."""
    utc0 = start.timestamp()
    shots = traj.shots
    exposures = _exposures(traj, est, errors_gnss, gimbal, vehicle, utc0, offset_s, photos)
    flying = traj.phase == PHASE_AUTO
    horiz = np.hypot(errors_gnss[flying, 0], errors_gnss[flying, 1])
    at_shots = np.hypot(errors_gnss[shots, 0], errors_gnss[shots, 1])
    airspeed = np.hypot(wind[:, 0], wind[:, 1])
    return {
        "software": {"name": "sitewatch", "version": __version__},
        "command": "simulate-flight",
        "seed": prm.seed,
        "parameters": {
            **{k: v for k, v in dataclasses.asdict(prm).items() if k != "dynamics"},
            "dynamics": dataclasses.asdict(prm.dynamics),
        },
        "clock": {
            "camera_offset_s": offset_s,
            "convention": "camera clock minus UTC (the log's clock); geotag's time offset",
            "camera_zone": str(zone),
            "log_start_utc": _iso(utc0),
            "vehicle_boot_before_log_s": boot_before_log_s,
            "ground_station_offset_s": gcs_offset_s,
        },
        "noise": {
            "gnss_sigma_m": prm.gps_noise_m,
            "gnss_vertical_sigma_m": 1.5 * prm.gps_noise_m,
            "gnss_tau_s": prm.gps_tau_s,
            "model": "first-order Gauss-Markov per axis (correlated), 1 cm white on GPS_RAW_INT",
            "horizontal_rms_m": _r(float(np.sqrt(np.mean(horiz**2))) if horiz.size else 0, 3),
            "horizontal_max_m": _r(float(horiz.max()) if horiz.size else 0.0, 3),
            "at_photos_max_m": _r(float(at_shots.max()) if at_shots.size else 0.0, 3),
        },
        "wind": {
            "mean_ms": prm.wind_ms,
            "from_deg": _r(wind_from, 2),
            "gust_sigma_ms": prm.gust_ms,
            "max_ms": _r(float(airspeed.max()) if airspeed.size else 0.0, 2),
        },
        "camera": {
            "preset": cam_name,
            "label": camera.label,
            "photo_px": [small.image_w_px, small.image_h_px],
            "sensor_mm": [small.sensor_w_mm, small.sensor_h_mm],
            "focal_mm": small.focal_mm,
            "note": "photos are a reduced-size rendering of the camera (same sensor and lens)",
        },
        "flight": {
            "crs": traj.crs.to_string(),
            "duration_s": _r(traj.duration_s, 2),
            "rate_hz": prm.dynamics.rate_hz,
            "home_ground_amsl_m": _r(traj.home_z, 3),
            "sorties": len({int(s) for s in traj.shot_sortie.tolist()}) if shots.size else 0,
            "photos": int(shots.size),
            "assumptions": list(traj.assumptions),
        },
        "site": {
            **world.source,
            "truth_sha256": sha256_file(site_dir / "truth.json")
            if (site_dir / "truth.json").is_file()
            else None,
        },
        "inputs": {
            "plan": {p.name: sha256_file(p) for p in plan_files},
            "orthophoto_sha256": sha256_file(world.source["orthophoto"]),
            "dsm_sha256": sha256_file(world.source["dsm"]),
        },
        "outputs": {
            "flight.tlog": {"sha256": sha256_file(tlog), "messages": counts},
            "photos": {p.name: sha256_file(p) for p in photos},
        },
        "exposures": exposures,
    }
