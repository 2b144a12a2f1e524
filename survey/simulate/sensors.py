"""What the vehicle's sensors make of the true flight: GNSS and barometer errors, attitude.

Errors are correlated in time, as a receiver's are, not white: each axis is a first-order
Gauss-Markov process (:func:`gauss_markov`, an AR(1) sequence with standard deviation
``sigma`` and correlation time ``tau``). Single-frequency GNSS without corrections wanders by
a metre or two over minutes; the barometer drifts by decimetres.

* ``gnss_error`` (n, 3) east, north, up: what the position estimate (GLOBAL_POSITION_INT,
  CAMERA_FEEDBACK, the photos' EXIF) is off by horizontally; GPS_RAW_INT adds a centimetre
  of white noise on top. Vertical GNSS error is ``vertical_ratio`` times the horizontal.
* ``baro_error`` (n,): the estimate's altitude above sea level is off by it (ArduPilot flies
  on the barometer); the height above home is off by its change since take-off.
* Attitude (:func:`vehicle_attitude`): a multirotor tilts to accelerate and to hold its
  ground speed against the wind (linear drag: tilt ≈ (a + k (v − w)) / g), plus turbulence;
  the attitude loop follows with a short lag. The gimbal holds the camera at nadir, pointed
  along the nose, within a few tenths of a degree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyproj import Transformer
from scipy.signal import lfilter

from survey.simulate.kinematics import Trajectory

__all__ = [
    "SensorErrors",
    "gauss_markov",
    "gimbal_attitude",
    "position_estimates",
    "satellites_in_view",
    "sensor_errors",
    "vehicle_attitude",
]

G = 9.80665


def gauss_markov(
    rng: np.random.Generator, n: int, dt: float, sigma: float, tau: float
) -> np.ndarray:
    """A stationary first-order Gauss-Markov sequence (n,): std ``sigma``, correlation ``tau`` s.

    ``x[k+1] = φ x[k] + sqrt(1 - φ²) σ w[k]`` with ``φ = exp(-dt / tau)`` and ``w`` standard
    normal; ``x[0]`` is drawn from the stationary distribution.

    Examples
    --------
    >>> x = gauss_markov(np.random.default_rng(0), 200_000, 0.1, 2.0, 5.0)
    >>> round(float(x.std()), 1)
    2.0
    """
    if n == 0 or sigma == 0:
        return np.zeros(n)
    phi = math.exp(-dt / tau)
    w = rng.normal(0.0, sigma * math.sqrt(1.0 - phi * phi), n)
    x0 = rng.normal(0.0, sigma)
    out, _ = lfilter([1.0], [1.0, -phi], w, zi=[phi * x0])
    return np.asarray(out)


@dataclass(frozen=True, eq=False)
class SensorErrors:
    """Errors of the position estimate at each sample (metres).

    Attributes
    ----------
    gnss
        (n, 3) east, north, up error of the GNSS position.
    gnss_white
        (n, 3) the receiver's own white noise (GPS_RAW_INT only).
    baro
        (n,) barometric altitude error.
    """

    gnss: np.ndarray
    gnss_white: np.ndarray
    baro: np.ndarray


def sensor_errors(
    rng: np.random.Generator,
    n: int,
    dt: float,
    *,
    sigma_m: float,
    tau_s: float,
    vertical_ratio: float = 1.5,
    white_m: float = 0.01,
    baro_sigma_m: float = 0.3,
    baro_tau_s: float = 300.0,
) -> SensorErrors:
    """Draw the GNSS and barometer errors of a flight of ``n`` samples ``dt`` s apart."""
    gnss = np.column_stack(
        [
            gauss_markov(rng, n, dt, sigma_m, tau_s),
            gauss_markov(rng, n, dt, sigma_m, tau_s),
            gauss_markov(rng, n, dt, sigma_m * vertical_ratio, tau_s),
        ]
    )
    white = rng.normal(0.0, white_m, (n, 3)) if white_m > 0 else np.zeros((n, 3))
    baro = gauss_markov(rng, n, dt, baro_sigma_m, baro_tau_s)
    return SensorErrors(gnss, white, baro)


def _lag(x: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """First-order lag of ``x`` (n,) with time constant ``tau`` (starts at ``x[0]``)."""
    a = math.exp(-dt / tau)
    out, _ = lfilter([1.0 - a], [1.0, -a], x, zi=[a * x[0]] if len(x) else [0.0])
    return np.asarray(out)


def vehicle_attitude(
    rng: np.random.Generator,
    vel: np.ndarray,
    acc: np.ndarray,
    yaw_deg: np.ndarray,
    flying: np.ndarray,
    dt: float,
    *,
    wind_ms: float,
    wind_from_deg: float,
    gust_ms: float,
    drag_per_s: float = 0.26,
    turbulence_deg: float = 0.4,
    lag_s: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roll and pitch (degrees; roll right and nose up positive) and the wind (n, 2) m/s.

    Parameters
    ----------
    vel, acc
        Ground velocity and acceleration (n, 3) east-north-up.
    yaw_deg
        Heading of the nose (n,).
    flying
        True where the vehicle is in the air (n,); on the ground it sits level.
    dt
        Sample spacing (s).
    wind_ms, wind_from_deg
        Mean wind speed and the direction it blows from (degrees clockwise from north).
    gust_ms
        Standard deviation of the gusts on each horizontal axis (correlation 4 s).
    drag_per_s
        Linear drag over mass: 0.26 /s tilts a copter about 12 degrees at 8 m/s airspeed.
    """
    n = len(vel)
    to = math.radians(wind_from_deg + 180.0)  # the wind blows towards this bearing
    wind = np.column_stack(
        [
            wind_ms * math.sin(to) + gauss_markov(rng, n, dt, gust_ms, 4.0),
            wind_ms * math.cos(to) + gauss_markov(rng, n, dt, gust_ms, 4.0),
        ]
    )
    need = acc[:, :2] + drag_per_s * (vel[:, :2] - wind)  # horizontal thrust per mass
    psi = np.radians(yaw_deg)
    forward = need[:, 0] * np.sin(psi) + need[:, 1] * np.cos(psi)
    right = need[:, 0] * np.cos(psi) - need[:, 1] * np.sin(psi)
    pitch = -np.degrees(np.arctan2(forward, G))
    roll = np.degrees(np.arctan2(right, G))
    pitch = pitch + gauss_markov(rng, n, dt, turbulence_deg, 0.4)
    roll = roll + gauss_markov(rng, n, dt, turbulence_deg, 0.4)
    pitch = np.where(flying, _lag(pitch, dt, lag_s), 0.0)
    roll = np.where(flying, _lag(roll, dt, lag_s), 0.0)
    return roll, pitch, wind


def gimbal_attitude(
    rng: np.random.Generator, yaw_deg: np.ndarray, dt: float, jitter_deg: float = 0.15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera (yaw, pitch, roll) in degrees: nadir along the nose, with a little jitter."""
    n = len(yaw_deg)
    yaw = (yaw_deg + gauss_markov(rng, n, dt, 2 * jitter_deg, 2.0)) % 360.0
    pitch = -90.0 + gauss_markov(rng, n, dt, jitter_deg, 1.0)
    roll = gauss_markov(rng, n, dt, jitter_deg, 1.0)
    return yaw, pitch, roll


def satellites_in_view(rng: np.random.Generator, n: int, every: int) -> np.ndarray:
    """(n,) satellites in view: 16 wandering by one every ``every`` samples, within 12-20."""
    steps = rng.integers(-1, 2, size=max(1, math.ceil(n / every)))
    sats = np.clip(16 + np.cumsum(steps), 12, 20)
    return np.repeat(sats, every)[:n].astype(np.int64)


def position_estimates(
    traj: Trajectory, errors: SensorErrors, flying: np.ndarray
) -> dict[str, np.ndarray]:
    """The autopilot's position estimate and the receiver's raw fix at each sample."""
    to_ll = Transformer.from_crs(traj.crs, 4326, always_xy=True)
    x = traj.xyz[:, 0] + errors.gnss[:, 0]
    y = traj.xyz[:, 1] + errors.gnss[:, 1]
    lon, lat = (np.asarray(v) for v in to_ll.transform(x, y))
    rx = x + errors.gnss_white[:, 0]
    ry = y + errors.gnss_white[:, 1]
    raw_lon, raw_lat = (np.asarray(v) for v in to_ll.transform(rx, ry))
    armed = np.flatnonzero(flying)
    baro_home = errors.baro[armed[0]] if armed.size else errors.baro[0]
    alt_amsl = traj.xyz[:, 2] + errors.baro
    return {
        "x": x,
        "y": y,
        "lat": lat,
        "lon": lon,
        "alt_amsl": alt_amsl,
        "alt_rel": traj.xyz[:, 2] - traj.home_z + (errors.baro - baro_home),
        "raw_lat": raw_lat,
        "raw_lon": raw_lon,
        "raw_alt": traj.xyz[:, 2] + errors.gnss[:, 2] + errors.gnss_white[:, 2],
    }
