"""The MAVLink link to the vehicle: dronekit's connection behind the small :class:`Link` interface.

This is the only module that imports dronekit (and pymavlink), lazily inside :func:`connect`;
everything else speaks to :class:`Link`, so another MAVLink client can replace dronekit here.
:func:`connect` opens the link (``dronekit.connect``: heartbeat, parameters,
AUTOPILOT_VERSION) with the deadlines dronekit2 3.0.0 lacks (:func:`_vehicle_class`), checks
that the vehicle is an ArduPilot with MISSION_INT, and turns every failure into one line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import re
import time
from typing import Any, Protocol

from flightplans.errors import VehicleLinkError, VehicleRefusedError

__all__ = ["DronekitLink", "Link", "connect"]

log = logging.getLogger(__name__)

# MAVLink enum values (common.xml); written out so that only dronekit's side needs pymavlink.
_MAV_AUTOPILOT_ARDUPILOTMEGA = 3
_MAV_PROTOCOL_CAPABILITY_MISSION_INT = 4
_MAV_COMP_ID_MISSIONPLANNER = 190
# What an upload needs: parameters (dronekit's connect), heartbeat state and the
# capabilities. GPS and attitude are not waited for: a bench vehicle without GPS can be loaded.
_READY_ATTRIBUTES = ("parameters", "armed", "mode", "autopilot_version")
_MISSION_MESSAGES = (
    "MISSION_COUNT",
    "MISSION_REQUEST",
    "MISSION_REQUEST_INT",
    "MISSION_ITEM",
    "MISSION_ITEM_INT",
    "MISSION_ACK",
)


class Link(Protocol):
    """The little a mission transfer needs from a MAVLink client."""

    connection: str
    target_system: int
    target_component: int
    statustexts: list[str]

    def send(self, name: str, *fields: Any) -> None:
        """Encode message ``name`` (pymavlink's ``<name>_encode`` argument order) and send it."""

    def receive(self, timeout_s: float) -> Any | None:
        """The next mission message from the vehicle, or None after ``timeout_s``."""

    def flush(self) -> None:
        """Forget mission messages received so far."""

    def close(self) -> None:
        """Close the link."""


class DronekitLink:
    """:class:`Link` over a connected dronekit ``Vehicle``."""

    def __init__(self, vehicle: Any, connection: str) -> None:
        self._vehicle = vehicle
        self.connection = connection
        self.target_system = int(vehicle._handler.target_system)
        self.target_component = int(vehicle.sitewatch_component)
        self.statustexts: list[str] = []
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._own_system = int(vehicle._master.source_system)
        for name in _MISSION_MESSAGES:
            vehicle.add_message_listener(name, self._on_mission_message)
        vehicle.add_message_listener("STATUSTEXT", self._on_statustext)

    def _from_vehicle(self, msg: Any) -> bool:
        if msg.get_srcSystem() != self.target_system:
            return False
        target = getattr(msg, "target_system", None)
        return target is None or target in (0, self._own_system)

    def _on_mission_message(self, _vehicle: Any, _name: str, msg: Any) -> None:
        if self._from_vehicle(msg):
            self._inbox.put(msg)

    def _on_statustext(self, _vehicle: Any, _name: str, msg: Any) -> None:
        if msg.get_srcSystem() == self.target_system:
            text = str(msg.text).rstrip("\x00").strip()
            self.statustexts.append(text)
            log.info("vehicle: %s", text)

    def send(self, name: str, *fields: Any) -> None:
        self._check_alive()
        msg = getattr(self._vehicle.message_factory, f"{name}_encode")(*fields)
        self._vehicle.send_mavlink(msg)

    def receive(self, timeout_s: float) -> Any | None:
        self._check_alive()
        try:
            return self._inbox.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None

    def flush(self) -> None:
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                return

    def _check_alive(self) -> None:
        if not self._vehicle._handler._alive:
            raise VehicleLinkError(
                f"{self.connection}: the MAVLink link was lost (no heartbeat); check the "
                "radio or cable and run the upload again"
            )

    def close(self) -> None:
        for name in _MISSION_MESSAGES:
            self._vehicle.remove_message_listener(name, self._on_mission_message)
        self._vehicle.remove_message_listener("STATUSTEXT", self._on_statustext)
        self._vehicle.close()


def _vehicle_class(params_timeout_s: float) -> type:
    """dronekit's ``Vehicle`` with an ``initialize()`` that gives up instead of hanging.

    dronekit2 3.0.0 waits in two unbounded loops after the first heartbeat: until the flight
    mode is no longer INITIALISING, and until the first PARAM_VALUE arrives. A vehicle that
    never answers parameters would block ``connect`` forever. This subclass keeps dronekit's
    start-up sequence (heartbeat, REQUEST_DATA_STREAM, AUTOPILOT_VERSION request on every
    heartbeat until answered, PARAM_REQUEST_LIST) with a deadline, and records the component
    id of the vehicle's heartbeat (mission messages are addressed to it).
    """
    import dronekit
    from pymavlink import mavutil

    class _BoundedVehicle(dronekit.Vehicle):
        sitewatch_component: int = 1

        def __init__(self, handler: Any) -> None:
            super().__init__(handler)
            self.sitewatch_component = 1

            @self.on_message("HEARTBEAT")
            def _remember_component(vehicle: Any, name: str, m: Any) -> None:
                if m.get_srcSystem() == self._heartbeat_system and m.type != 6:  # 6: GCS
                    self.sitewatch_component = m.get_srcComponent()

        def initialize(self, rate: int = 4, heartbeat_timeout: float = 30) -> None:
            handler: Any = self._handler
            handler.start()
            started = time.monotonic()
            self._heartbeat_error = heartbeat_timeout or 0
            self._heartbeat_started = True
            self._heartbeat_lastreceived = started
            # dronekit's own loop listener closes the link after heartbeat_timeout.
            while self._heartbeat_lastreceived == started:
                if not handler._alive:
                    raise dronekit.APIException("no heartbeat")
                time.sleep(0.02)
            handler.target_system = self._heartbeat_system
            self._master.mav.request_data_stream_send(
                0, 0, mavutil.mavlink.MAV_DATA_STREAM_ALL, rate, 1
            )
            self.add_message_listener("HEARTBEAT", self.send_capabilities_request)
            self.send_capabilities_request(self, "HEARTBEAT", None)  # now, not in up to 1 s
            deadline = time.monotonic() + params_timeout_s
            while self._params_count < 0:
                if time.monotonic() > deadline or not handler._alive:
                    raise dronekit.TimeoutError("no PARAM_VALUE")
                self._master.param_fetch_all()
                time.sleep(0.05)

    return _BoundedVehicle


class _ToDebug(logging.Handler):
    """Re-log a dronekit record as one DEBUG line of this module (no traceback)."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("%s: %s", record.name, record.getMessage())


def _route_dronekit_logging() -> None:
    """Keep dronekit's log records off stderr.

    dronekit calls ``logging.basicConfig()`` whenever a Vehicle is built and logs a full
    traceback at ERROR when a link dies; STATUSTEXT goes to its ``autopilot`` logger. The
    caller gets one-line errors from here instead, so both loggers are routed to this
    module's DEBUG output (``sitewatch -vv`` shows them).
    """
    for name in ("dronekit", "autopilot"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _ToDebug) for h in logger.handlers):
            logger.addHandler(_ToDebug())
        logger.propagate = False


_CONNECTION_RE = re.compile(r"^(udpin|udpout|udp|udpbcast|tcp|tcpin):([^:]+):(\d{1,5})$")


def _check_connection(connection: str) -> None:
    scheme = connection.split(":", 1)[0]
    if scheme in ("udpin", "udpout", "udp", "udpbcast", "tcp", "tcpin") and not (
        _CONNECTION_RE.match(connection)
    ):
        raise VehicleLinkError(
            f"connection string {connection!r} is malformed; write it as "
            f"{scheme}:HOST:PORT, e.g. {scheme}:127.0.0.1:14550"
        )


def connect(connection: str, *, baud: int, timeout_s: float, wait_ready_s: float) -> DronekitLink:
    """Open ``connection`` with ``dronekit.connect`` and wait until the vehicle is ready."""
    _check_connection(connection)
    import dronekit

    _route_dronekit_logging()
    # pymavlink prints "... sleeping" while it retries a refused TCP connection.
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            vehicle: Any = dronekit.connect(
                connection,
                wait_ready=False,
                baud=baud,
                heartbeat_timeout=timeout_s,
                vehicle_class=_vehicle_class(wait_ready_s),
                source_system=255,
                source_component=_MAV_COMP_ID_MISSIONPLANNER,
            )
    except dronekit.TimeoutError as exc:
        raise VehicleLinkError(
            f"{connection}: the vehicle sends heartbeats but answered no parameter request "
            f"within {wait_ready_s:g} s; check that it is an autopilot (not a radio or a "
            "companion computer) and raise --wait-ready-s on slow links"
        ) from exc
    except dronekit.APIException as exc:
        raise VehicleLinkError(
            f"{connection}: no HEARTBEAT within {timeout_s:g} s; check that the vehicle is "
            "powered, the port and baud rate, and udpin (listen) versus udpout (send)"
        ) from exc
    except ModuleNotFoundError as exc:
        raise VehicleLinkError(
            f"{connection}: this link needs the Python module {exc.name!r} "
            f"(install it with: pip install {'pyserial' if exc.name == 'serial' else exc.name})"
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise VehicleLinkError(
            f"{connection}: cannot open the link ({reason}); check that the vehicle or SITL "
            "is running and the address (or device and --baud) is right"
        ) from exc
    finally:
        if chatter.getvalue():
            log.debug("pymavlink: %s", " ".join(chatter.getvalue().split()))

    try:
        _wait_ready(vehicle, connection, wait_ready_s)
        return DronekitLink(vehicle, connection)
    except BaseException:
        vehicle.close()
        raise


def _wait_ready(vehicle: Any, connection: str, wait_ready_s: float) -> None:
    import dronekit

    try:
        vehicle.wait_ready(*_READY_ATTRIBUTES, timeout=wait_ready_s)
    except dronekit.TimeoutError as exc:
        missing = sorted(set(_READY_ATTRIBUTES) - set(vehicle._ready_attrs))
        raise VehicleLinkError(
            f"{connection}: the vehicle did not become ready within {wait_ready_s:g} s "
            f"(still missing: {', '.join(missing)}); wait until it has booted and raise "
            "--wait-ready-s on slow links"
        ) from exc
    if vehicle._autopilot_type != _MAV_AUTOPILOT_ARDUPILOTMEGA:
        raise VehicleRefusedError(
            f"{connection}: the autopilot is type {vehicle._autopilot_type}, not ArduPilot; "
            "this uploader writes ArduPilot's mission layout (item 0 = home); load the .plan "
            "in QGroundControl for other autopilots"
        )
    capabilities = vehicle._capabilities or 0
    if not capabilities & _MAV_PROTOCOL_CAPABILITY_MISSION_INT:
        raise VehicleRefusedError(
            f"{connection}: the vehicle does not support MISSION_ITEM_INT (capabilities "
            f"{capabilities:#x}); the float protocol would move waypoints by up to 0.8 m, so "
            "update the firmware (ArduPilot 3.4 or later) and retry"
        )
