"""Errors raised by flight planning. Messages name the value and the fix."""

from __future__ import annotations

__all__ = [
    "CameraError",
    "FlightPlanError",
    "GeoidGridError",
    "MissionOutputError",
    "PlanFileError",
    "PlanParameterError",
    "SiteGeometryError",
    "VehicleError",
]


class FlightPlanError(Exception):
    """Root of every error raised by :mod:`flightplans`."""


class SiteGeometryError(FlightPlanError, ValueError):
    """The site polygon, its holes or the no-fly zones cannot be flown."""


class CameraError(FlightPlanError, ValueError):
    """Unknown camera preset or impossible camera values."""


class GeoidGridError(FlightPlanError, FileNotFoundError):
    """The EGM96 geoid grid is not installed, cannot be read, or does not cover a point."""


class PlanParameterError(FlightPlanError, ValueError):
    """A planning parameter (GSD, altitude, overlap, speed, battery, home) is out of range."""


class VehicleError(FlightPlanError, OSError):
    """The vehicle link failed or the vehicle refused the mission."""


class PlanFileError(FlightPlanError, ValueError):
    """A mission file (.plan, .waypoints) is not in the expected format."""


class MissionOutputError(FlightPlanError, OSError):
    """A mission file cannot be written."""


class VehicleLinkError(VehicleError):
    """No MAVLink link: nothing listening, no heartbeat, no parameters, or the link was lost."""


class VehicleRefusedError(VehicleError):
    """The vehicle answered but refused the mission (MISSION_ACK error, no MISSION_INT)."""


class MissionMismatchError(VehicleError):
    """The mission read back from the vehicle differs from the plan that was uploaded.

    ``report`` holds the :class:`flightplans.vehicle.UploadReport` of the failed upload (with
    every difference listed), so a caller can still write it out.
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report


__all__ += ["MissionMismatchError", "VehicleLinkError", "VehicleRefusedError"]
