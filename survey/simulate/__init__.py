"""The flight simulator: fly a plan over the synthetic site, with ground truth.

:func:`simulate_flight` (what ``sitewatch simulate-flight`` runs) flies the sorties of a plan
folder over one epoch of a synthetic site and writes what a real survey brings back — the
ground station's MAVLink log (``flight.tlog``) and the camera's photos with EXIF and DJI XMP
(``photos/``) — plus ``truth.json``, the true trajectory at every exposure, the planted
camera-clock offset and the noise figures. Plan → fly → ingest then runs end to end against
known answers.

One subject per module: :mod:`~survey.simulate.kinematics` (how the copter flies the
waypoints), :mod:`~survey.simulate.sensors` (correlated GNSS and barometer errors, attitude in
the wind), :mod:`~survey.simulate.world` (the site in the true frame),
:mod:`~survey.simulate.photos` (rendering through the camera model, EXIF/XMP),
:mod:`~survey.simulate.tlog` (the MAVLink log), :mod:`~survey.simulate.truth` (``truth.json``)
and :mod:`~survey.simulate.flight` (the run). Deterministic from the seed.
"""

from __future__ import annotations

from survey.simulate.flight import SimulatedFlight, simulate_flight
from survey.simulate.kinematics import FlightDynamics, Trajectory, fly_missions
from survey.simulate.params import SimParams, SimulationError
from survey.simulate.photos import photo_camera, render_photo
from survey.simulate.world import SiteWorld, load_world

__all__ = [
    "FlightDynamics",
    "SimParams",
    "SimulatedFlight",
    "SimulationError",
    "SiteWorld",
    "Trajectory",
    "fly_missions",
    "load_world",
    "photo_camera",
    "render_photo",
    "simulate_flight",
]
