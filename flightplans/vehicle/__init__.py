"""Upload a mission to an ArduPilot vehicle over MAVLink and prove it arrived intact.

The link is opened with dronekit (``dronekit.connect``: heartbeat, parameters,
AUTOPILOT_VERSION); the mission itself is transferred by this module over dronekit's
connection with the *integer* mission protocol (MISSION_ITEM_INT, degrees * 1e7), because
dronekit2 3.0.0's ``CommandSequence`` cannot do it correctly:

- ``commands.upload()`` answers only MISSION_REQUEST (never MISSION_REQUEST_INT), ignores every
  MISSION_ACK (a refusal such as MAV_MISSION_NO_SPACE from a booting vehicle looks like
  success, or hangs), never resends, and reports success before the vehicle has acknowledged;
- ``commands.download()`` asks with the float MISSION_REQUEST, so the read-back it gives is
  float32 and cannot prove a 1e-7 degree match (ArduPilot answers "got MISSION_REQUEST; use
  MISSION_REQUEST_INT!");
- ``Vehicle.initialize()`` waits without limit for the boot to end and for the first
  PARAM_VALUE; the ``link._vehicle_class`` subclass gives both waits a deadline.

The float MISSION_ITEM that classic dronekit sends rounds latitude and longitude to float32:
at longitudes of 128-256 degrees the float32 step is 1.5e-5 degrees, so waypoints move by up to
~0.8 m. Here every item goes as MISSION_ITEM_INT, whichever request the vehicle sends.

The steps (:func:`upload_mission`): connect; download the current mission (its size goes in
the report); MISSION_CLEAR_ALL; upload home as item 0 and the plan's items from item 1 (a
vehicle still booting refuses with MAV_MISSION_NO_SPACE: retried for ``boot_wait_s``); download
again with MISSION_REQUEST_INT and compare item by item (positions to 1e-7 degrees, altitudes
to the whole centimetre ArduPilot stores). Item 0 read back is the vehicle's own home, reported
but not compared.

The package's rooms: :mod:`~flightplans.vehicle.upload` (the two public functions, step by
step), :mod:`~flightplans.vehicle.link` (the dronekit glue behind the small ``Link``
interface: the only dronekit importer, lazily, so another MAVLink client can replace it in one
place), :mod:`~flightplans.vehicle.protocol` (the mission protocol: download, clear, upload,
boot retries), :mod:`~flightplans.vehicle.items` (MISSION_ITEM_INT fields and the read-back
comparison) and :mod:`~flightplans.vehicle.report` (:class:`UploadReport`).
"""

from __future__ import annotations

from flightplans.vehicle.items import ALTITUDE_TOLERANCE_M, POSITION_TOLERANCE_DEG
from flightplans.vehicle.report import UploadReport
from flightplans.vehicle.upload import download_mission, upload_mission

__all__ = [
    "ALTITUDE_TOLERANCE_M",
    "POSITION_TOLERANCE_DEG",
    "UploadReport",
    "download_mission",
    "upload_mission",
]
