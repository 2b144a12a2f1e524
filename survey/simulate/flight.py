"""``simulate_flight``: fly a plan over the synthetic site and write the log, photos and truth.

What ``sitewatch simulate-flight`` runs. The sorties of a plan folder (``sitewatch plan
--out``: ``sortie-NN.plan`` and ``summary.json``) are flown over one epoch of a synthetic site
(``sitewatch synth --out``) by :func:`~survey.simulate.kinematics.fly_missions`; the sensors
add their errors (:mod:`survey.simulate.sensors`); and the outputs are written into ``out``,
each atomically:

``flight.tlog``   the ground station's MAVLink log (:mod:`survey.simulate.tlog`)
``photos/``       ``DJI_0001.JPG`` ... one per camera trigger, rendered from the site
                  (:mod:`survey.simulate.photos`), EXIF time on the camera's clock
``truth.json``    the truth: for each photo the true position and attitude at exposure, what
                  the receiver reported and its error, the times on every clock; the clock
                  offset, the noise figures (as asked and as drawn), the wind, the dynamics,
                  the inputs and outputs with their SHA-256

Clocks: the log starts at ``start_utc``; the vehicle's UTC (SYSTEM_TIME, GPS_RAW_INT,
CAMERA_FEEDBACK) is exact; the ground station's clock is 0.35 s fast; the camera's clock is
``clock_offset_s`` off UTC and shows the site's nominal zone (UTC + round(lon / 15) h, with
``OffsetTimeOriginal``). ``survey.ingest.geotag`` should find ``clock_offset_s`` as the
camera-clock offset (camera time minus log time).

Nothing is written into the plan or the site folders; they are only read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flightplans.camera import Camera, get_camera
from flightplans.errors import CameraError, PlanFileError
from flightplans.mission import Mission
from flightplans.qgc import read_plan
from survey.errors import InputFileError, OutputError
from survey.outputs import Clock, write_json
from survey.simulate.kinematics import PHASE_AUTO, Trajectory, fly_missions
from survey.simulate.params import SimParams, SimulationError
from survey.simulate.photos import (
    PhotoMeta,
    camera_make_model,
    photo_camera,
    render_photo,
    simulated_serials,
    write_photo,
)
from survey.simulate.sensors import (
    SensorErrors,
    gimbal_attitude,
    position_estimates,
    satellites_in_view,
    sensor_errors,
    vehicle_attitude,
)
from survey.simulate.tlog import FlightRecord, TlogClocks, write_tlog
from survey.simulate.truth import truth_record
from survey.simulate.world import SiteWorld, load_world

__all__ = ["SimulatedFlight", "simulate_flight"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

BOOT_BEFORE_LOG_S = 95.0  # the autopilot was powered up this long before the log starts
GCS_OFFSET_S = 0.35


@dataclass(frozen=True, eq=False)
class SimulatedFlight:
    """What :func:`simulate_flight` wrote and flew.

    Attributes
    ----------
    out_dir, tlog, photos_dir, truth_json
        The outputs (``photos_dir`` None when photos were not asked for).
    photos
        The photo files in trigger order.
    truth
        The content of ``truth.json``.
    trajectory
        The true flight.
    timings_s
        Wall time of each stage (s): site, flight, photos, tlog.
    """

    out_dir: Path
    tlog: Path
    photos_dir: Path | None
    truth_json: Path
    photos: tuple[Path, ...]
    truth: dict[str, Any]
    trajectory: Trajectory
    timings_s: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def clock_offset_s(self) -> float:
        """The camera clock minus UTC that was planted (s)."""
        return float(self.truth["clock"]["camera_offset_s"])


def _missions(plan_dir: Path) -> tuple[list[Path], list[Mission], dict[str, Any]]:
    if not plan_dir.is_dir():
        raise InputFileError(
            f"{plan_dir}: no such folder; pass the folder written by `sitewatch plan --out DIR`"
        )
    files = sorted(plan_dir.glob("sortie-*.plan"))
    if not files:
        raise InputFileError(
            f"{plan_dir}: no sortie-NN.plan files; pass the folder written by "
            "`sitewatch plan --out DIR`"
        )
    try:
        missions = [read_plan(f) for f in files]
    except PlanFileError as exc:
        raise InputFileError(f"{exc}") from exc
    summary: dict[str, Any] = {}
    path = plan_dir / "summary.json"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        summary = loaded if isinstance(loaded, dict) else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        log.warning("%s: no readable summary.json; the camera must be given", plan_dir)
    return files, missions, summary


def _camera(params: SimParams, summary: dict[str, Any], plan_dir: Path) -> tuple[str, Camera]:
    name = params.camera or str(summary.get("camera") or "")
    if not name:
        raise SimulationError(
            f"{plan_dir}: the plan names no camera (no summary.json); pass --camera PRESET "
            "(see sitewatch plan --list-cameras)"
        )
    try:
        return name, get_camera(name)
    except CameraError as exc:
        raise SimulationError(
            f"{plan_dir}: the plan's camera {name!r} is not a preset ({exc}); pass --camera "
            "PRESET for the camera it describes"
        ) from exc


def _site_truth(site_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((site_dir / "truth.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _start(params: SimParams, truth: dict[str, Any]) -> dt.datetime:
    given = params.start_datetime()
    if given is not None:
        return given
    date = truth.get(f"{params.epoch}_date")
    try:
        day = dt.date.fromisoformat(str(date)) if date else dt.date(2025, 1, 1)
    except ValueError:
        day = dt.date(2025, 1, 1)
    return dt.datetime(day.year, day.month, day.day, 2, 30, tzinfo=dt.UTC)


def _check_out(out: Path, plan_dir: Path, site_dir: Path) -> Path:
    for src, what in ((plan_dir, "plan"), (site_dir, "site")):
        if out.resolve() == src.resolve():
            raise OutputError(
                f"{out}: is the {what} folder; choose another --out (inputs are never written)"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{out}: cannot create the output folder ({exc.strerror}); choose a writable --out"
        ) from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: output folder is not writable; choose a writable --out")
    return out


def simulate_flight(
    plan: str | os.PathLike[str],
    site: str | os.PathLike[str],
    out: str | os.PathLike[str],
    params: SimParams | None = None,
    *,
    progress: Progress | None = None,
) -> SimulatedFlight:
    """Fly a plan over a synthetic site and write ``flight.tlog``, ``photos/``, ``truth.json``.

    Parameters
    ----------
    plan
        Folder written by ``sitewatch plan --out`` (its ``sortie-NN.plan`` files are flown in
        order; ``summary.json`` names the camera).
    site
        Folder written by ``sitewatch synth --out``.
    out
        Output folder (created); not the plan's or the site's.
    params
        Seed, epoch, clock offset, noise, wind, photo size (:class:`SimParams`).
    progress
        Called with a short line as each stage starts.

    Returns
    -------
    SimulatedFlight

    Raises
    ------
    InputFileError
        No plan files, a damaged plan, a site folder without the epoch's rasters.
    SimulationError
        No camera preset for the plan; a plan that does not fly over the site.
    RasterFormatError
        Site rasters that are not an 8-bit RGB orthophoto and a DSM in metres.
    OutputError
        ``out`` cannot be written or is an input folder.

    Examples
    --------
    >>> flight = simulate_flight("plan", "site", "flight")  # doctest: +SKIP
    >>> flight.tlog.name, len(flight.photos), flight.clock_offset_s  # doctest: +SKIP
    """
    prm = params or SimParams()
    say: Progress = progress or (lambda _msg: None)
    clock = Clock()
    plan_dir, site_dir, out_dir = Path(plan), Path(site), Path(out)
    plan_files, missions, summary = _missions(plan_dir)
    cam_name, camera = _camera(prm, summary, plan_dir)
    site_truth = _site_truth(site_dir)
    start = _start(prm, site_truth)
    out_dir = _check_out(out_dir, plan_dir, site_dir)
    small = photo_camera(camera, prm.photo_width_px)
    alt = float(summary.get("alt_m") or 50.0)
    photo_gsd_m = small.gsd_cm(alt) / 100.0
    say(f"reading the {prm.epoch} epoch of {site_dir} ...")
    world = load_world(site_dir, prm.epoch, photo_gsd_m / 2.0, prm.seed)
    clock.lap("site")

    say(f"flying {len(missions)} sortie(s) ...")
    fl = _fly(prm, missions, world, plan_dir)
    clock.lap("flight")

    traj, est = fl.traj, fl.est
    zone = dt.timezone(dt.timedelta(hours=round(float(np.mean(est["lon"])) / 15.0)))
    photos: list[Path] = []
    photos_dir = out_dir / "photos" if prm.photos else None
    if photos_dir is not None:
        photos_dir.mkdir(parents=True, exist_ok=True)
        n_shots, w, h = len(traj.shots), small.image_w_px, small.image_h_px
        say(f"rendering {n_shots} photos ({w} x {h} px) ...")
        photos = _write_photos(prm, fl, world, camera, small, start, zone, photos_dir)
        clock.lap("photos")

    say("writing the telemetry log ...")
    tlog = out_dir / "flight.tlog"
    counts = _write_log(prm, fl, start, tlog)
    clock.lap("tlog")

    truth = truth_record(
        prm,
        cam_name=cam_name,
        camera=camera,
        small=small,
        plan_files=plan_files,
        site_dir=site_dir,
        world=world,
        traj=traj,
        est=est,
        errors_gnss=fl.errors.gnss,
        gimbal=fl.gimbal,
        vehicle=(fl.roll, fl.pitch),
        wind=fl.wind,
        wind_from=fl.wind_from,
        start=start,
        offset_s=fl.offset_s,
        zone=zone,
        photos=photos,
        tlog=tlog,
        counts=counts,
        boot_before_log_s=BOOT_BEFORE_LOG_S,
        gcs_offset_s=GCS_OFFSET_S,
    )
    truth_json = write_json(out_dir / "truth.json", truth)
    log.info("simulated flight: %s (%d photos)", out_dir, len(traj.shots))
    return SimulatedFlight(
        out_dir=out_dir,
        tlog=tlog,
        photos_dir=photos_dir,
        truth_json=truth_json,
        photos=tuple(photos),
        truth=truth,
        trajectory=traj,
        timings_s=dict(clock.laps),
    )


@dataclass(frozen=True, eq=False)
class _Flown:
    """The flight as flown and as sensed: the true trajectory, the sensors' errors, the
    vehicle's roll and pitch and the gimbal's yaw, pitch and roll (degrees, one per sample),
    the wind (m/s, east and north per sample) and where it blows from (degrees), the camera
    clock's offset (s), the autopilot's estimates
    (:func:`~survey.simulate.sensors.position_estimates`), and the generator the telemetry log
    goes on drawing from."""

    traj: Trajectory
    errors: SensorErrors
    roll: np.ndarray
    pitch: np.ndarray
    gimbal: tuple[np.ndarray, np.ndarray, np.ndarray]
    wind: Any
    wind_from: float
    offset_s: float
    est: dict[str, np.ndarray]
    rng: np.random.Generator


def _fly(prm: SimParams, missions: list[Mission], world: SiteWorld, plan_dir: Path) -> _Flown:
    """Fly the missions over the site and draw the clock offset, the wind and the sensors'
    errors from the seed, in that order."""
    traj = fly_missions(missions, world.crs, world.height, prm.dynamics)
    for note in traj.assumptions:
        log.warning("%s", note)
    _check_over_site(traj, world, plan_dir)
    rng = np.random.default_rng(prm.seed)
    offset_s = (
        float(prm.clock_offset_s)
        if prm.clock_offset_s is not None
        else round(float(rng.uniform(-8.0, 8.0)), 3)
    )
    wind_from = float(rng.uniform(0.0, 360.0))
    n, dt_s = len(traj.t), 1.0 / prm.dynamics.rate_hz
    errors = sensor_errors(rng, n, dt_s, sigma_m=prm.gps_noise_m, tau_s=prm.gps_tau_s)
    flying = traj.phase == PHASE_AUTO
    roll, pitch, wind = vehicle_attitude(
        rng,
        traj.vel,
        traj.acc,
        traj.yaw_deg,
        flying,
        dt_s,
        wind_ms=prm.wind_ms,
        wind_from_deg=wind_from,
        gust_ms=prm.gust_ms,
    )
    gimbal = gimbal_attitude(rng, traj.yaw_deg, dt_s)
    est = position_estimates(traj, errors, flying)
    return _Flown(traj, errors, roll, pitch, gimbal, wind, wind_from, offset_s, est, rng)


def _write_photos(
    prm: SimParams,
    fl: _Flown,
    world: SiteWorld,
    camera: Camera,
    small: Camera,
    start: dt.datetime,
    zone: dt.timezone,
    photos_dir: Path,
) -> list[Path]:
    """``DJI_0001.JPG`` ... one per camera trigger, rendered from the site at the true pose
    (each from its own generator), stamped with the camera's clock and the estimated
    position."""
    traj, est = fl.traj, fl.est
    g_yaw, g_pitch, g_roll = fl.gimbal
    utc0 = start.timestamp()
    make_model = camera_make_model(camera)
    serials = simulated_serials(prm.seed, make_model)
    photos: list[Path] = []
    for k, i in enumerate(traj.shots.tolist()):
        pixels = render_photo(
            world,
            small,
            traj.xyz[i],
            float(g_yaw[i]),
            float(g_pitch[i]),
            float(g_roll[i]),
            rng=np.random.default_rng([prm.seed, 1000 + k]),
        )
        camera_time = dt.datetime.fromtimestamp(utc0 + traj.t[i] + fl.offset_s, dt.UTC)
        meta = PhotoMeta(
            camera_time=camera_time.astimezone(zone),
            lat=float(est["lat"][i]),
            lon=float(est["lon"][i]),
            alt_amsl=float(est["alt_amsl"][i]),
            alt_rel=float(est["alt_rel"][i]),
            gimbal_yaw=float(g_yaw[i]),
            gimbal_pitch=float(g_pitch[i]),
            gimbal_roll=float(g_roll[i]),
            flight_yaw=float(traj.yaw_deg[i]),
            flight_pitch=float(fl.pitch[i]),
            flight_roll=float(fl.roll[i]),
        )
        photos.append(
            write_photo(
                photos_dir / f"DJI_{k + 1:04d}.JPG",
                pixels,
                small,
                meta,
                make_model=make_model,
                quality=prm.jpeg_quality,
                serials=serials,
            )
        )
    return photos


def _write_log(prm: SimParams, fl: _Flown, start: dt.datetime, tlog: Path) -> dict[str, int]:
    """``flight.tlog``: the estimates, the raw fixes, the attitude, the satellites in view and
    the camera events; returns the message counts."""
    traj, est, shots = fl.traj, fl.est, fl.traj.shots
    roll, pitch = fl.roll, fl.pitch
    record = FlightRecord(
        t=traj.t,
        lat=est["lat"],
        lon=est["lon"],
        alt_amsl=est["alt_amsl"],
        alt_rel=est["alt_rel"],
        raw_lat=est["raw_lat"],
        raw_lon=est["raw_lon"],
        raw_alt=est["raw_alt"],
        vel=traj.vel,
        roll=roll,
        pitch=pitch,
        yaw=traj.yaw_deg,
        phase=traj.phase,
        satellites=satellites_in_view(fl.rng, len(traj.t), round(30 * prm.dynamics.rate_hz)),
        shot_index=shots,
        shot_lat=est["lat"][shots],
        shot_lon=est["lon"][shots],
        shot_alt_amsl=est["alt_amsl"][shots],
        shot_alt_rel=est["alt_rel"][shots],
        shot_roll=roll[shots],
        shot_pitch=pitch[shots],
        shot_yaw=traj.yaw_deg[shots],
    )
    clocks = TlogClocks(
        utc0_s=start.timestamp(),
        boot0_s=BOOT_BEFORE_LOG_S,
        gcs_offset_s=GCS_OFFSET_S,
        position_hz=prm.position_hz,
        attitude_hz=prm.attitude_hz,
    )
    return write_tlog(tlog, record, clocks, prm.seed)


def _check_over_site(traj: Trajectory, world: SiteWorld, plan_dir: Path) -> None:
    """A plan of another place would photograph only the background field: refuse it."""
    rows, cols = world.valid.shape
    x0, y0 = world.transform * (0, 0)
    x1, y1 = world.transform * (cols, rows)
    flying = traj.xyz[traj.phase == PHASE_AUTO]
    inside = (
        (flying[:, 0] >= min(x0, x1))
        & (flying[:, 0] <= max(x0, x1))
        & (flying[:, 1] >= min(y0, y1))
        & (flying[:, 1] <= max(y0, y1))
    )
    if not inside.any():
        cx, cy = flying[:, :2].mean(axis=0) if len(flying) else (math.nan, math.nan)
        raise SimulationError(
            f"{plan_dir}: the plan flies around ({cx:.0f}, {cy:.0f}) in {world.crs.to_string()}, "
            f"nowhere over the site's rasters ({min(x0, x1):.0f}..{max(x0, x1):.0f}, "
            f"{min(y0, y1):.0f}..{max(y0, y1):.0f}); plan this site with "
            "`sitewatch plan SITE/site.geojson --out DIR`"
        )
