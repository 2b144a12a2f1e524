"""sitewatch flight planning: survey grids over a site, mission files, vehicle upload.

Pure geometry (shapely, pyproj) and mission-file writers; never imports :mod:`survey`.
Typical use::

    from flightplans import PlanParams, get_camera, plan_survey, write_mission_files
    plan = plan_survey(site_utm, PlanParams(gsd_cm=2.0, camera=get_camera("phantom4pro")),
                       crs=32650)
    write_mission_files(plan, "out/")
"""

from __future__ import annotations

from flightplans.camera import CAMERAS, Camera, get_camera, list_cameras
from flightplans.errors import (
    CameraError,
    FlightPlanError,
    MissionMismatchError,
    MissionOutputError,
    PlanFileError,
    PlanParameterError,
    SiteGeometryError,
    VehicleError,
    VehicleLinkError,
    VehicleRefusedError,
)
from flightplans.footprints import (
    Coverage,
    ElevationGrid,
    Overlaps,
    achieved_overlaps,
    camera_rotation,
    centre_gsd_cm,
    compute_coverage,
    image_footprint,
)
from flightplans.mission import Mission, MissionItem
from flightplans.params import PlanParams
from flightplans.planner import Sortie, SurveyPlan, footprint_rectangles, plan_survey
from flightplans.qgc import read_plan, read_waypoints, write_plan, write_waypoints
from flightplans.vehicle import UploadReport, download_mission, upload_mission
from flightplans.writers import write_mission_files

__all__ = [
    "CAMERAS",
    "Camera",
    "CameraError",
    "Coverage",
    "ElevationGrid",
    "FlightPlanError",
    "Mission",
    "MissionItem",
    "MissionMismatchError",
    "MissionOutputError",
    "Overlaps",
    "PlanFileError",
    "PlanParameterError",
    "PlanParams",
    "SiteGeometryError",
    "Sortie",
    "SurveyPlan",
    "UploadReport",
    "VehicleError",
    "VehicleLinkError",
    "VehicleRefusedError",
    "achieved_overlaps",
    "camera_rotation",
    "centre_gsd_cm",
    "compute_coverage",
    "download_mission",
    "footprint_rectangles",
    "get_camera",
    "image_footprint",
    "list_cameras",
    "plan_survey",
    "read_plan",
    "read_waypoints",
    "upload_mission",
    "write_mission_files",
    "write_plan",
    "write_waypoints",
]
