"""Parameters of the flight simulator and its error."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from survey.errors import SurveyError
from survey.simulate.kinematics import FlightDynamics

__all__ = ["SimParams", "SimulationError"]


class SimulationError(SurveyError, ValueError):
    """Simulator parameters or inputs that cannot be flown (the message says the fix)."""


@dataclass(frozen=True)
class SimParams:
    """Parameters of :func:`survey.simulate.simulate_flight`.

    Attributes
    ----------
    seed : int
        Seed of every random draw (GNSS and barometer errors, wind, turbulence, gimbal
        jitter, latencies, sensor noise, and the clock offset when not given). The same
        inputs and parameters give byte-identical outputs.
    epoch : str
        The site epoch flown over: ``"after"`` (default) or ``"before"``.
    clock_offset_s : float or None
        Camera clock minus UTC (s). None draws one from the seed, uniform in ±8 s, to the
        millisecond.
    gps_noise_m : float
        Standard deviation of the horizontal GNSS error on each axis (m); vertical 1.5 times.
    gps_tau_s : float
        Correlation time of the GNSS error (s).
    wind_ms, gust_ms : float
        Mean wind speed and gust standard deviation (m/s); the wind's direction is drawn.
    photo_width_px : int
        Width of the rendered photos (px); the height keeps the camera's aspect.
    photos : bool
        Render and write the photos (off: the log and truth.json only).
    camera : str or None
        Camera preset; default the plan's (its ``summary.json``).
    start_utc : str or None
        ISO 8601 UTC time of the start of the log; default 02:30 UTC on the epoch's survey
        date (from the site's truth.json), else on 2025-01-01.
    position_hz, attitude_hz : float
        Rates of the position and attitude messages in the log.
    jpeg_quality : int
        JPEG quality of the photos.
    dynamics : FlightDynamics
        How the vehicle flies.
    """

    seed: int = 0
    epoch: str = "after"
    clock_offset_s: float | None = None
    gps_noise_m: float = 1.0
    gps_tau_s: float = 60.0
    wind_ms: float = 4.0
    gust_ms: float = 1.0
    photo_width_px: int = 600
    photos: bool = True
    camera: str | None = None
    start_utc: str | None = None
    position_hz: float = 5.0
    attitude_hz: float = 10.0
    jpeg_quality: int = 90
    dynamics: FlightDynamics = field(default_factory=FlightDynamics)

    def __post_init__(self) -> None:
        def fail(what: str, fix: str) -> None:
            raise SimulationError(f"{what}; {fix}")

        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            fail(f"seed={self.seed!r} is invalid", "pass an integer >= 0")
        if self.epoch not in ("after", "before"):
            fail(f"epoch={self.epoch!r} is not a site epoch", "pass after or before")
        if self.clock_offset_s is not None and not (
            math.isfinite(self.clock_offset_s) and abs(self.clock_offset_s) <= 86_400.0
        ):
            fail(
                f"clock offset {self.clock_offset_s!r} s is not a number within a day",
                "pass seconds, e.g. --clock-offset-s 2.5",
            )
        for name, value, hi in (
            ("GPS noise", self.gps_noise_m, 50.0),
            ("wind", self.wind_ms, 15.0),
            ("gusts", self.gust_ms, 10.0),
        ):
            if not (math.isfinite(value) and 0.0 <= value <= hi):
                fail(f"{name} {value!r} is out of range", f"pass 0 to {hi:g} m or m/s")
        if not (math.isfinite(self.gps_tau_s) and self.gps_tau_s > 0):
            fail(f"GPS error correlation time {self.gps_tau_s!r} s", "pass a positive time")
        if not (isinstance(self.photo_width_px, int) and 32 <= self.photo_width_px <= 8192):
            fail(f"photo width {self.photo_width_px!r} px is out of range", "pass 32 to 8192")
        if not (1 <= self.jpeg_quality <= 95):
            fail(f"JPEG quality {self.jpeg_quality!r} is out of range", "pass 1 to 95")
        for name, rate in (("position", self.position_hz), ("attitude", self.attitude_hz)):
            if not (math.isfinite(rate) and 0 < rate <= self.dynamics.rate_hz):
                fail(
                    f"{name} rate {rate!r} Hz is out of range",
                    f"pass a rate above 0 and at most {self.dynamics.rate_hz:g} Hz",
                )
        if self.start_utc is not None:
            self.start_datetime()

    def start_datetime(self) -> dt.datetime | None:
        """``start_utc`` as an aware UTC datetime (None when not given)."""
        if self.start_utc is None:
            return None
        try:
            t = dt.datetime.fromisoformat(self.start_utc.replace("Z", "+00:00"))
        except ValueError as exc:
            raise SimulationError(
                f"start time {self.start_utc!r} is not ISO 8601; pass e.g. 2025-10-15T02:30:00Z"
            ) from exc
        return (t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
