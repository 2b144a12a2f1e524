"""sitewatch flight planning: survey grids over a site, mission files, vehicle upload.

Pure geometry (shapely, pyproj) and mission-file writers; never imports :mod:`survey`.
Typical use::

    from flightplans import PlanParams, get_camera, plan_survey, write_mission_files
    plan = plan_survey(site_utm, PlanParams(gsd_cm=2.0, camera=get_camera("phantom4pro")),
                       crs=32650)
    write_mission_files(plan, "out/")

DJI aircraft (DJI Pilot 2, FlightHub 2) fly WPML route files::

    from flightplans import WpmlOptions, get_drone
    drone = get_drone("m350rtk")
    plan = plan_survey(site_utm, PlanParams(gsd_cm=1.5, camera=drone.camera), crs=32650)
    write_mission_files(plan, "out/", formats=("qgc", "wpml"), wpml=WpmlOptions(drone))
"""

from __future__ import annotations

from flightplans.camera import CAMERAS, Camera, get_camera, list_cameras
from flightplans.drones import DRONES, Drone, drone_for_enums, get_drone, list_drones
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
from flightplans.geoid import EGM96Geoid, GeoidGridError, egm96_geoid, find_egm96_grid
from flightplans.mission import Mission, MissionItem
from flightplans.oblique import NADIR, ObliqueRoute, RouteLook, plan_oblique
from flightplans.params import PlanParams
from flightplans.planner import Sortie, SurveyPlan, footprint_rectangles, plan_survey
from flightplans.qgc import read_plan, read_waypoints, write_plan, write_waypoints
from flightplans.vehicle import UploadReport, download_mission, upload_mission
from flightplans.wpml_read import WpmlFile, WpmlRoute, WpmlSurvey, read_wpml, wpml_survey
from flightplans.wpml_write import WpmlOptions, write_wpml
from flightplans.writers import FORMATS, write_mission_files

__all__ = [
    "CAMERAS",
    "DRONES",
    "FORMATS",
    "NADIR",
    "Camera",
    "CameraError",
    "Coverage",
    "Drone",
    "EGM96Geoid",
    "ElevationGrid",
    "FlightPlanError",
    "GeoidGridError",
    "Mission",
    "MissionItem",
    "MissionMismatchError",
    "MissionOutputError",
    "ObliqueRoute",
    "Overlaps",
    "PlanFileError",
    "PlanParameterError",
    "PlanParams",
    "RouteLook",
    "SiteGeometryError",
    "Sortie",
    "SurveyPlan",
    "UploadReport",
    "VehicleError",
    "VehicleLinkError",
    "VehicleRefusedError",
    "WpmlFile",
    "WpmlOptions",
    "WpmlRoute",
    "WpmlSurvey",
    "achieved_overlaps",
    "camera_rotation",
    "centre_gsd_cm",
    "compute_coverage",
    "download_mission",
    "drone_for_enums",
    "egm96_geoid",
    "find_egm96_grid",
    "footprint_rectangles",
    "get_camera",
    "get_drone",
    "image_footprint",
    "list_cameras",
    "list_drones",
    "plan_oblique",
    "plan_survey",
    "read_plan",
    "read_waypoints",
    "read_wpml",
    "upload_mission",
    "wpml_survey",
    "write_mission_files",
    "write_plan",
    "write_waypoints",
    "write_wpml",
]
