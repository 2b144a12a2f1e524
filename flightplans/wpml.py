"""DJI WPML route files (``.kmz``) for DJI Pilot 2 and FlightHub 2: the format's facts.

This module holds what the writer (:mod:`flightplans.wpml_write`, ``write_wpml``) and the
reader (:mod:`flightplans.wpml_read`, ``read_wpml``) share: names, namespaces, enum values
and limits; :mod:`flightplans` exports both.

Format facts (DJI, Cloud API → DJI WPML: "Overview", "template.kml", "waylines.wpml",
"Common Elements", "Product Support"):

* A route is a ZIP named ``*.kmz`` holding exactly ``wpmz/template.kml`` (the template Pilot 2
  and FlightHub 2 edit), ``wpmz/waylines.wpml`` (what the aircraft executes) and optionally
  ``wpmz/res/``; the folder and file names must be exactly these.
* Both files are KML 2.2 (``http://www.opengis.net/kml/2.2``) with DJI's extension namespace
  ``http://www.dji.com/wpmz/1.0.N`` (DJI's examples use 1.0.2, which we write; Pilot 2
  writes up to 1.0.6, all of which we read), prefix ``wpml``.
* ``Document/wpml:missionConfig``: ``flyToWaylineMode`` (safely | pointToPoint),
  ``finishAction`` (goHome | noAction | autoLand | gotoFirstWaypoint), ``exitOnRCLost``
  (goContinue | executeLostAction), ``executeRCLostAction`` (goBack | landing | hover),
  ``takeOffSecurityHeight`` (m above take-off, [1.2, 1500]), ``globalTransitionalSpeed``
  (m/s, [1, 15]), ``globalRTHHeight`` (m, [2, 1500]), ``takeOffRefPoint`` ("lat,lon,
  ellipsoid height"; M30, Mavic 3, Matrice 3D/4 only) with ``takeOffRefPointAGLHeight`` (its
  height above sea level), ``droneInfo`` (``droneEnumValue``, ``droneSubEnumValue``),
  ``payloadInfo`` (``payloadEnumValue``, ``payloadPositionIndex``).
* template ``Folder``: ``templateType`` (waypoint | mapping2d | mapping3d | mappingStrip),
  ``templateId``, ``waylineCoordinateSysParam`` (``coordinateMode`` WGS84, ``heightMode``
  EGM96 | relativeToStartPoint | aboveGroundLevel | realTimeFollowSurface),
  ``autoFlightSpeed``, ``globalHeight``, ``gimbalPitchMode``, ``globalWaypointHeadingParam``,
  ``globalWaypointTurnMode``, ``globalUseStraightLine``, ``payloadParam`` and one
  ``Placemark`` per waypoint: ``Point/coordinates`` "lon,lat", ``index`` (from 0),
  ``useGlobalHeight``, ``height`` (in ``heightMode``) with ``ellipsoidHeight`` (WGS84; equal
  to ``height`` in relativeToStartPoint), ``useGlobalSpeed``, ``useGlobalHeadingParam``,
  ``useGlobalTurnParam`` / ``waypointTurnParam``, ``gimbalPitchAngle``, ``actionGroup``.
* waylines ``Folder`` (one per executable route; DJI's oblique template makes five):
  ``templateId``, ``waylineId``, ``autoFlightSpeed``, ``executeHeightMode`` (WGS84 |
  relativeToStartPoint | realTimeFollowSurface: an EGM96 template executes as WGS84
  ellipsoid heights) and Placemarks with ``executeHeight``, ``waypointSpeed``,
  ``waypointHeadingParam`` (``waypointHeadingMode`` followWayline | manually | fixed |
  smoothTransition | towardPOI, ``waypointHeadingAngle``, ``waypointHeadingPathMode``),
  ``waypointTurnParam`` (``waypointTurnMode`` coordinateTurn |
  toPointAndStopWithDiscontinuityCurvature | toPointAndStopWithContinuityCurvature |
  toPointAndPassWithContinuityCurvature, ``waypointTurnDampingDist``), ``actionGroup``.
* ``actionGroup``: ``actionGroupId`` (unique in the file), ``actionGroupStartIndex`` /
  ``actionGroupEndIndex``, ``actionGroupMode`` sequence, ``actionTrigger``
  (``actionTriggerType`` reachPoint | betweenAdjacentPoints | multipleTiming |
  multipleDistance, ``actionTriggerParam`` s or m) and ``action``s (``actionId``,
  ``actionActuatorFunc`` takePhoto | gimbalRotate | hover | ..., ``actionActuatorFuncParam``).
"""

from __future__ import annotations

import re

__all__ = [
    "EXECUTE_HEIGHT_MODES",
    "EXIT_ON_RC_LOST",
    "FINISH_ACTIONS",
    "HEADING_MODES",
    "KML_NS",
    "KMZ_FOLDER",
    "RC_LOST_ACTIONS",
    "RES_FOLDER",
    "RTH_HEIGHT_RANGE",
    "SPEED_RANGE",
    "TAKEOFF_SECURITY_RANGE",
    "TEMPLATE_HEIGHT_MODES",
    "TEMPLATE_NAME",
    "TEMPLATE_TYPES",
    "TRIGGER_TYPES",
    "TURN_MODES",
    "WAYLINES_NAME",
    "WPML_NS",
    "WPML_NS_PATTERN",
    "kml_tag",
    "wpml_tag",
]

KML_NS = "http://www.opengis.net/kml/2.2"
#: The WPML namespace we write (DJI's published examples).
WPML_NS = "http://www.dji.com/wpmz/1.0.2"
#: Every WPML namespace version we read.
WPML_NS_PATTERN = re.compile(r"^http://www\.dji\.com/wpmz/1\.0\.\d+$")

KMZ_FOLDER = "wpmz"
TEMPLATE_NAME = "wpmz/template.kml"
WAYLINES_NAME = "wpmz/waylines.wpml"
RES_FOLDER = "wpmz/res/"

TEMPLATE_TYPES = ("waypoint", "mapping2d", "mapping3d", "mappingStrip")
TEMPLATE_HEIGHT_MODES = (
    "EGM96",
    "relativeToStartPoint",
    "aboveGroundLevel",
    "realTimeFollowSurface",
)
EXECUTE_HEIGHT_MODES = ("WGS84", "relativeToStartPoint", "realTimeFollowSurface")
FINISH_ACTIONS = ("goHome", "noAction", "autoLand", "gotoFirstWaypoint")
EXIT_ON_RC_LOST = ("goContinue", "executeLostAction")
RC_LOST_ACTIONS = ("goBack", "landing", "hover")
TURN_MODES = (
    "coordinateTurn",
    "toPointAndStopWithDiscontinuityCurvature",
    "toPointAndStopWithContinuityCurvature",
    "toPointAndPassWithContinuityCurvature",
)
HEADING_MODES = ("followWayline", "manually", "fixed", "smoothTransition", "towardPOI")
TRIGGER_TYPES = ("reachPoint", "betweenAdjacentPoints", "multipleTiming", "multipleDistance")

#: Speed limits of autoFlightSpeed, waypointSpeed and globalTransitionalSpeed (m/s).
SPEED_RANGE = (1.0, 15.0)
#: takeOffSecurityHeight range with a remote controller (m above take-off).
TAKEOFF_SECURITY_RANGE = (1.2, 1500.0)
#: globalRTHHeight range (m).
RTH_HEIGHT_RANGE = (2.0, 1500.0)


def wpml_tag(name: str, ns: str = WPML_NS) -> str:
    """``{namespace}name`` for ElementTree."""
    return f"{{{ns}}}{name}"


def kml_tag(name: str) -> str:
    """``{KML namespace}name`` for ElementTree."""
    return f"{{{KML_NS}}}{name}"
