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
  PARAM_VALUE; the :func:`_vehicle_class` subclass gives both waits a deadline.

The float MISSION_ITEM that classic dronekit sends rounds latitude and longitude to float32:
at longitudes of 128-256 degrees the float32 step is 1.5e-5 degrees, so waypoints move by up to
~0.8 m. Here every item goes as MISSION_ITEM_INT, whichever request the vehicle sends.

The steps (:func:`upload_mission`): connect; download the current mission (its size goes in
the report); MISSION_CLEAR_ALL; upload home as item 0 and the plan's items from item 1 (a
vehicle still booting refuses with MAV_MISSION_NO_SPACE: retried for ``boot_wait_s``); download
again with MISSION_REQUEST_INT and compare item by item (positions to 1e-7 degrees, altitudes
to the whole centimetre ArduPilot stores). Item 0 read back is the vehicle's own home, reported
but not compared.

dronekit is imported only inside :func:`_connect`; everything else speaks to the small
:class:`_Link` interface, so another MAVLink client can replace dronekit in one place.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import queue
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from flightplans.errors import (
    MissionMismatchError,
    VehicleLinkError,
    VehicleRefusedError,
)
from flightplans.mission import Mission, MissionItem

__all__ = [
    "POSITION_TOLERANCE_DEG",
    "UploadReport",
    "download_mission",
    "upload_mission",
]

log = logging.getLogger(__name__)

#: The read-back must equal the plan to this many degrees (the MISSION_ITEM_INT resolution).
POSITION_TOLERANCE_DEG = 1e-7
#: ArduPilot stores altitudes as int32 centimetres (truncated): allow one centimetre plus the
#: float32 rounding of the wire value.
ALTITUDE_TOLERANCE_M = 0.011
_PARAM_RTOL = 1e-6  # params travel as float32

# MAVLink enum values (common.xml); written out so that only this module's dronekit side
# needs pymavlink.
_MAV_AUTOPILOT_ARDUPILOTMEGA = 3
_MAV_PROTOCOL_CAPABILITY_MISSION_INT = 4
_MAV_FRAME_GLOBAL = 0
_MAV_CMD_NAV_WAYPOINT = 16
_MAV_COMP_ID_MISSIONPLANNER = 190
_MAV_MISSION_ACCEPTED = 0
_MAV_MISSION_NO_SPACE = 4
_MAV_MISSION_INVALID_SEQUENCE = 13
_MAV_MISSION_DENIED = 14
_MISSION_RESULTS = {
    0: "MAV_MISSION_ACCEPTED",
    1: "MAV_MISSION_ERROR",
    2: "MAV_MISSION_UNSUPPORTED_FRAME",
    3: "MAV_MISSION_UNSUPPORTED",
    4: "MAV_MISSION_NO_SPACE",
    5: "MAV_MISSION_INVALID",
    6: "MAV_MISSION_INVALID_PARAM1",
    7: "MAV_MISSION_INVALID_PARAM2",
    8: "MAV_MISSION_INVALID_PARAM3",
    9: "MAV_MISSION_INVALID_PARAM4",
    10: "MAV_MISSION_INVALID_PARAM5_X",
    11: "MAV_MISSION_INVALID_PARAM6_Y",
    12: "MAV_MISSION_INVALID_PARAM7",
    13: "MAV_MISSION_INVALID_SEQUENCE",
    14: "MAV_MISSION_DENIED",
    15: "MAV_MISSION_OPERATION_CANCELLED",
}
# *_INT frame variants and their plain equivalents (ArduPilot reads back the plain ones).
_FRAME_ALIASES = {5: 0, 6: 3, 11: 10}
# Commands whose x/y/z are a place (ArduPilot keeps a Location for them).
_LOCATION_COMMANDS = frozenset({16, 17, 18, 19, 21, 22, 31, 82, 201})
_COMMAND_NAMES = {
    16: "NAV_WAYPOINT",
    20: "NAV_RETURN_TO_LAUNCH",
    21: "NAV_LAND",
    22: "NAV_TAKEOFF",
    178: "DO_CHANGE_SPEED",
    206: "DO_SET_CAM_TRIGG_DIST",
    2000: "IMAGE_START_CAPTURE",
    2001: "IMAGE_STOP_CAPTURE",
}
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


@dataclass(frozen=True)
class UploadReport:
    """What an upload did and how well the read-back matched.

    Attributes
    ----------
    connection
        The connection string used.
    result
        ``"ok"`` or ``"mismatch"``.
    items_before
        Mission items the vehicle held before (home not counted).
    items_sent
        Mission items in the accepted upload, home (item 0) included.
    items_received
        Mission items read back, home included.
    max_position_diff_deg
        Largest |lat| or |lon| difference between plan and read-back over the items with a
        position, degrees (MISSION_ITEM_INT: 0 up to half the 1e-7 grid).
    max_alt_diff_m
        Largest altitude difference over the items with a position, metres.
    upload_attempts
        MISSION_COUNT transfers started (more than 1 when a booting vehicle refused).
    boot_wait_s
        Seconds spent waiting for a booting (refusing) vehicle.
    retransmissions
        Messages resent after a protocol timeout (upload and downloads).
    request_types
        Requests the vehicle sent during the upload, by message type (ArduPilot asks with
        MISSION_REQUEST, PX4 with MISSION_REQUEST_INT; both are answered with MISSION_ITEM_INT).
    vehicle_home
        Item 0 read back: the vehicle's home (lat, lon, alt AMSL m), or None.
    mismatches
        One line per difference that fails the check.
    dropped_params
        Plan values the vehicle read back as 0 because its firmware does not store them for
        that command (e.g. NAV_WAYPOINT param2-4 on ArduCopter); informative, not a failure.
    statustexts
        STATUSTEXT lines the vehicle sent during the upload.
    duration_s
        Wall time from connect to the end of the read-back.
    sent, received
        The items as they went over the wire and came back, home (seq 0) first: tuples
        ``(seq, command, frame, param1, param2, param3, param4, lat_e7, lon_e7, alt_m)`` with
        latitude/longitude as the int32 degrees * 1e7 of MISSION_ITEM_INT.
    """

    connection: str
    result: str
    items_before: int
    items_sent: int
    items_received: int
    max_position_diff_deg: float
    max_alt_diff_m: float
    upload_attempts: int
    boot_wait_s: float
    retransmissions: int
    request_types: dict[str, int]
    vehicle_home: tuple[float, float, float] | None
    mismatches: tuple[str, ...] = ()
    dropped_params: tuple[str, ...] = ()
    statustexts: tuple[str, ...] = ()
    duration_s: float = 0.0
    sent: tuple[tuple[Any, ...], ...] = ()
    received: tuple[tuple[Any, ...], ...] = ()

    @property
    def ok(self) -> bool:
        """True when the read-back matched the plan."""
        return self.result == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        d = asdict(self)
        d["vehicle_home"] = list(self.vehicle_home) if self.vehicle_home else None
        for key in ("mismatches", "dropped_params", "statustexts"):
            d[key] = list(d[key])
        for key in ("sent", "received"):
            d[key] = [
                dict(zip(_WIRE_FIELDS, _json_values(row), strict=True))
                for row in getattr(self, key)
            ]
        return d


_WIRE_FIELDS = (
    "seq",
    "command",
    "frame",
    "param1",
    "param2",
    "param3",
    "param4",
    "lat_e7",
    "lon_e7",
    "alt_m",
)


def _json_values(row: Sequence[Any]) -> list[Any]:
    """NaN (an unused parameter) becomes None, as QGroundControl writes it."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in row]


# --------------------------------------------------------------------------- the link
class _Link(Protocol):
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


class _DronekitLink:
    """:class:`_Link` over a connected dronekit ``Vehicle``."""

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


def _connect(connection: str, *, baud: int, timeout_s: float, wait_ready_s: float) -> _DronekitLink:
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
        return _DronekitLink(vehicle, connection)
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


# --------------------------------------------------------------------------- the protocol
class _Busy(Exception):
    """The vehicle cannot take the transfer yet (booting, or another transfer running)."""

    def __init__(self, result: int) -> None:
        super().__init__(_MISSION_RESULTS.get(result, str(result)))
        self.result = result


@dataclass
class _Transfer:
    """The MAVLink mission protocol, GCS side, on a :class:`_Link`."""

    link: _Link
    resend_s: float
    retries: int
    retransmissions: int = 0
    request_types: dict[str, int] = field(default_factory=dict)

    def _targets(self) -> tuple[int, int]:
        return self.link.target_system, self.link.target_component

    def _await(self, accept: Callable[[Any], bool], timeout_s: float) -> Any | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            msg = self.link.receive(left)
            if msg is None:
                return None
            if accept(msg):
                return msg
            log.debug("ignored %s", msg.get_type())
        return None

    def _refused(self, what: str, result: int) -> VehicleRefusedError:
        name = _MISSION_RESULTS.get(result, str(result))
        return VehicleRefusedError(
            f"{self.link.connection}: the vehicle refused {what} with {name}; "
            "check the vehicle's messages (STATUSTEXT) and fix the plan or the vehicle state"
        )

    # ---------------------------------------------------------------- download
    def download(self) -> list[Any]:
        """All mission items (MISSION_ITEM_INT messages, item 0 = home), in order."""
        self.link.flush()
        count = self._request_count()
        items = [self._request_item(seq) for seq in range(count)]
        if count:
            self.link.send("mission_ack", *self._targets(), _MAV_MISSION_ACCEPTED)
        return items

    def _request_count(self) -> int:
        for attempt in range(self.retries + 1):
            if attempt:
                self.retransmissions += 1
            self.link.send("mission_request_list", *self._targets())
            msg = self._await(
                lambda m: (
                    m.get_type() in ("MISSION_COUNT", "MISSION_ACK")
                    and getattr(m, "mission_type", 0) == 0
                ),
                self.resend_s,
            )
            if msg is None:
                continue
            if msg.get_type() == "MISSION_ACK":
                if msg.type == _MAV_MISSION_DENIED:
                    raise _Busy(msg.type)
                raise self._refused("the mission download", msg.type)
            return int(msg.count)
        raise VehicleLinkError(
            f"{self.link.connection}: no MISSION_COUNT after {self.retries + 1} "
            "MISSION_REQUEST_LIST; the link is too lossy or the vehicle is busy, retry"
        )

    def _request_item(self, seq: int) -> Any:
        for attempt in range(self.retries + 1):
            if attempt:
                self.retransmissions += 1
            self.link.send("mission_request_int", *self._targets(), seq)
            msg = self._await(
                lambda m: (
                    (m.get_type() in ("MISSION_ITEM_INT", "MISSION_ITEM") and int(m.seq) == seq)
                    or m.get_type() == "MISSION_ACK"
                ),
                self.resend_s,
            )
            if msg is None:
                continue
            if msg.get_type() == "MISSION_ACK":
                if msg.type == _MAV_MISSION_DENIED:
                    raise _Busy(msg.type)
                raise self._refused(f"reading mission item {seq}", msg.type)
            return msg
        raise VehicleLinkError(
            f"{self.link.connection}: mission item {seq} not received after "
            f"{self.retries + 1} MISSION_REQUEST_INT; the link is too lossy, retry"
        )

    # ---------------------------------------------------------------- clear
    def clear(self) -> None:
        """MISSION_CLEAR_ALL, acknowledged."""
        self.link.flush()
        for attempt in range(self.retries + 1):
            if attempt:
                self.retransmissions += 1
            self.link.send("mission_clear_all", *self._targets())
            msg = self._await(lambda m: m.get_type() == "MISSION_ACK", self.resend_s)
            if msg is None:
                continue
            if msg.type == _MAV_MISSION_ACCEPTED:
                return
            if msg.type in (_MAV_MISSION_DENIED, _MAV_MISSION_NO_SPACE):
                raise _Busy(msg.type)
            raise self._refused(
                "MISSION_CLEAR_ALL (is it flying the mission in AUTO?)", int(msg.type)
            )
        raise VehicleLinkError(
            f"{self.link.connection}: MISSION_CLEAR_ALL not acknowledged after "
            f"{self.retries + 1} tries; check the link and retry"
        )

    # ---------------------------------------------------------------- upload
    def upload(self, items: Sequence[tuple[Any, ...]]) -> bool:
        """Send ``items`` (MISSION_ITEM_INT fields after the targets, item 0 = home).

        Returns True when the vehicle acknowledged with MAV_MISSION_ACCEPTED, False when every
        item was requested and sent but the final MISSION_ACK never came (the read-back then
        decides). Raises :class:`_Busy` when the vehicle refuses the MISSION_COUNT itself.
        """
        n = len(items)
        self.link.flush()
        targets = self._targets()
        self.link.send("mission_count", *targets, n)
        requested: set[int] = set()
        last_seq: int | None = None
        misses = 0
        while True:
            msg = self._await(
                lambda m: m.get_type() in ("MISSION_REQUEST", "MISSION_REQUEST_INT", "MISSION_ACK"),
                self.resend_s,
            )
            if msg is None:
                misses += 1
                if misses > self.retries:
                    if len(requested) == n:
                        log.warning("no final MISSION_ACK; the read-back will decide")
                        return False
                    raise VehicleLinkError(
                        f"{self.link.connection}: the vehicle stopped requesting mission items "
                        f"({len(requested)} of {n} sent); check the link and retry"
                    )
                self.retransmissions += 1
                if last_seq is None:
                    self.link.send("mission_count", *targets, n)
                else:
                    self.link.send("mission_item_int", *targets, *items[last_seq])
                continue
            misses = 0
            mtype = msg.get_type()
            if mtype == "MISSION_ACK":
                if getattr(msg, "mission_type", 0) != 0:
                    continue
                result = int(msg.type)
                if result == _MAV_MISSION_ACCEPTED:
                    if len(requested) == n or n == 0:
                        return True
                    continue  # a stale acknowledgement of an earlier message
                if result == _MAV_MISSION_INVALID_SEQUENCE:
                    continue  # a duplicate item; the vehicle re-requests the one it wants
                if not requested and result in (_MAV_MISSION_NO_SPACE, _MAV_MISSION_DENIED):
                    raise _Busy(result)
                what = "the mission" if last_seq is None else f"mission item {last_seq}"
                raise self._refused(what, result)
            seq = int(msg.seq)
            if getattr(msg, "mission_type", 0) != 0:
                continue
            if not 0 <= seq < n:
                raise VehicleRefusedError(
                    f"{self.link.connection}: the vehicle requested item {seq} of a {n}-item "
                    "mission; another ground station may be uploading, close it and retry"
                )
            self.request_types[mtype] = self.request_types.get(mtype, 0) + 1
            self.link.send("mission_item_int", *targets, *items[seq])
            requested.add(seq)
            last_seq = seq


# --------------------------------------------------------------------------- conversions
def _e7(value: float) -> int:
    return round(value * 1e7) if math.isfinite(value) else 0


def _item_fields(seq: int, item: MissionItem) -> tuple[Any, ...]:
    """MISSION_ITEM_INT fields after target_system/target_component."""
    return (
        seq,
        int(item.frame),
        int(item.command),
        0,  # current
        1 if item.autocontinue else 0,
        *(float(p) for p in item.params),
        _e7(item.lat),
        _e7(item.lon),
        float(item.alt) if math.isfinite(item.alt) else 0.0,
    )


def _home_fields(home: tuple[float, float, float]) -> tuple[Any, ...]:
    """Item 0: home as NAV_WAYPOINT in MAV_FRAME_GLOBAL (altitude AMSL), as QGC sends it."""
    lat, lon, alt = home
    return (
        0,
        _MAV_FRAME_GLOBAL,
        _MAV_CMD_NAV_WAYPOINT,
        0,
        1,
        0.0,
        0.0,
        0.0,
        0.0,
        _e7(lat),
        _e7(lon),
        float(alt),
    )


def _mission_items(mission: Mission) -> list[tuple[Any, ...]]:
    return [_home_fields(mission.home)] + [
        _item_fields(i, item) for i, item in enumerate(mission.items, start=1)
    ]


def _wire_row(f: Sequence[Any]) -> tuple[Any, ...]:
    """Report row of MISSION_ITEM_INT fields (seq, frame, command, current, autocontinue, ...)."""
    seq, frame, command, _current, _auto, p1, p2, p3, p4, x, y, z = f
    return (seq, command, frame, p1, p2, p3, p4, x, y, z)


def _wire_row_from_message(msg: Any) -> tuple[Any, ...]:
    is_int = msg.get_type() == "MISSION_ITEM_INT"
    x = int(msg.x) if is_int else round(float(msg.x) * 1e7)
    y = int(msg.y) if is_int else round(float(msg.y) * 1e7)
    return (
        int(msg.seq),
        int(msg.command),
        int(msg.frame),
        float(msg.param1),
        float(msg.param2),
        float(msg.param3),
        float(msg.param4),
        x,
        y,
        float(msg.z),
    )


def _from_message(msg: Any) -> MissionItem:
    scale = 1e-7 if msg.get_type() == "MISSION_ITEM_INT" else 1.0
    return MissionItem(
        command=int(msg.command),
        frame=_FRAME_ALIASES.get(int(msg.frame), int(msg.frame)),
        params=(float(msg.param1), float(msg.param2), float(msg.param3), float(msg.param4)),
        lat=float(msg.x) * scale,
        lon=float(msg.y) * scale,
        alt=float(msg.z),
        autocontinue=bool(msg.autocontinue),
    )


def _mission_from_messages(msgs: Sequence[Any]) -> Mission:
    items = [_from_message(m) for m in msgs]
    home = (items[0].lat, items[0].lon, items[0].alt) if items else (0.0, 0.0, 0.0)
    return Mission(home=home, items=tuple(items[1:]), meta={"source": "vehicle"})


# --------------------------------------------------------------------------- comparison
@dataclass
class _Comparison:
    max_position_diff_deg: float = 0.0
    max_alt_diff_m: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _name(command: int) -> str:
    return _COMMAND_NAMES.get(command, f"command {command}")


def _compare(plan: Sequence[MissionItem], back: Sequence[MissionItem]) -> _Comparison:
    """Compare plan items with read-back items (both without home), item by item."""
    cmp = _Comparison()
    if len(back) != len(plan):
        cmp.mismatches.append(f"the vehicle holds {len(back)} items, the plan has {len(plan)}")
    for seq, (p, r) in enumerate(zip(plan, back, strict=False), start=1):
        where = f"item {seq} ({_name(p.command)})"
        if p.command != r.command:
            cmp.mismatches.append(f"{where}: vehicle has {_name(r.command)}")
            continue
        if p.command in _LOCATION_COMMANDS:
            # The frame says how to read the altitude; other commands have no frame on the
            # vehicle (ArduPilot reads them back as frame 0 whatever was sent).
            p_frame = _FRAME_ALIASES.get(p.frame, p.frame)
            if p_frame != r.frame:
                cmp.mismatches.append(f"{where}: frame {r.frame}, plan {p_frame}")
            d_pos = max(abs(r.lat - p.lat), abs(r.lon - p.lon))
            d_alt = abs(r.alt - p.alt)
            cmp.max_position_diff_deg = max(cmp.max_position_diff_deg, d_pos)
            cmp.max_alt_diff_m = max(cmp.max_alt_diff_m, d_alt)
            if d_pos > POSITION_TOLERANCE_DEG + 1e-12:
                cmp.mismatches.append(
                    f"{where}: position ({r.lat:.7f}, {r.lon:.7f}) is {d_pos:.2e} deg from "
                    f"the plan ({p.lat:.7f}, {p.lon:.7f})"
                )
            if d_alt > ALTITUDE_TOLERANCE_M:
                cmp.mismatches.append(f"{where}: altitude {r.alt:.2f} m, plan {p.alt:.2f} m")
            pairs = list(
                zip(("param1", "param2", "param3", "param4"), p.params, r.params, strict=True)
            )
        else:
            pairs = list(
                zip(
                    ("param1", "param2", "param3", "param4", "x", "y", "z"),
                    (*p.params, p.lat, p.lon, p.alt),
                    (*r.params, r.lat, r.lon, r.alt),
                    strict=True,
                )
            )
        for label, pv, rv in pairs:
            _compare_value(cmp, where, label, pv, rv)
    return cmp


def _compare_value(cmp: _Comparison, where: str, label: str, pv: float, rv: float) -> None:
    if math.isnan(pv):
        if not (math.isnan(rv) or rv == 0.0):
            cmp.mismatches.append(f"{where}: {label} is {rv:g}, plan leaves it unset")
        return
    if not math.isnan(rv) and abs(rv - pv) <= _PARAM_RTOL * max(1.0, abs(pv)):
        return
    if rv == 0.0 or math.isnan(rv):
        cmp.dropped.append(f"{where}: {label} {pv:g} not stored by the firmware (reads 0)")
        return
    cmp.mismatches.append(f"{where}: {label} is {rv:g}, plan {pv:g}")


# --------------------------------------------------------------------------- public API
def _with_boot_retry(
    action: Callable[[], Any],
    *,
    what: str,
    link: _Link,
    boot_wait_s: float,
    stats: list[float],
    count: int | None = None,
) -> Any:
    """Run ``action``; while the vehicle answers busy/no-space, retry for ``boot_wait_s``.

    ``count`` is the number of items being uploaded: when the refusal's STATUSTEXT ("Only N
    items are supported") shows a storage smaller than that, waiting cannot help and the error
    is raised at once. ``stats`` gets [attempts, seconds waited] added to it.
    """
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        seen = len(link.statustexts)
        try:
            result = action()
        except _Busy as busy:
            capacity = _capacity(link, seen) if busy.result == _MAV_MISSION_NO_SPACE else None
            if count is not None and capacity is not None and 0 < capacity < count:
                raise VehicleRefusedError(
                    f"{link.connection}: the vehicle stores at most {capacity} mission items "
                    f"and refused {what} ({busy}); split it into shorter sorties (a smaller "
                    "--battery-min when planning) and upload each"
                ) from busy
            waited = time.monotonic() - started
            if waited + 1.0 > boot_wait_s:
                hint = f" (vehicle: Only {capacity} items are supported)" if capacity == 0 else ""
                raise VehicleRefusedError(
                    f"{link.connection}: the vehicle refused {what} with {busy} for "
                    f"{waited:.0f} s ({attempts} tries){hint}; it is still booting (wait for "
                    "'ArduPilot Ready') or busy with another ground station; raise "
                    "--boot-wait-s or retry later"
                ) from busy
            log.info("vehicle busy (%s); retrying %s", busy, what)
            ready_seen = len(link.statustexts)
            pause_until = time.monotonic() + 1.0
            while time.monotonic() < pause_until:
                time.sleep(0.05)
                if any("Ready" in t for t in link.statustexts[ready_seen:]):
                    break
            continue
        stats[0] += attempts
        stats[1] += time.monotonic() - started
        return result


_CAPACITY_RE = re.compile(r"Only (\d+) items are supported")


def _capacity(link: _Link, seen: int, timeout_s: float = 0.3) -> int | None:
    """The storage size ArduPilot states right after a MAV_MISSION_NO_SPACE, if it does.

    The STATUSTEXT follows the MISSION_ACK, so wait up to ``timeout_s`` for it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        for text in link.statustexts[seen:]:
            match = _CAPACITY_RE.search(text)
            if match:
                return int(match.group(1))
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def upload_mission(
    mission: Mission,
    connection: str,
    *,
    baud: int = 115200,
    timeout_s: float = 30.0,
    wait_ready_s: float = 60.0,
    boot_wait_s: float = 30.0,
    clear: bool = True,
    resend_s: float = 1.5,
    retries: int = 5,
) -> UploadReport:
    """Upload ``mission`` to the ArduPilot vehicle at ``connection`` and verify it.

    Parameters
    ----------
    mission
        The sortie. ``mission.home`` (lat, lon, alt AMSL m) is sent as item 0, the items from
        item 1, every one as MISSION_ITEM_INT (latitude/longitude as int32 degrees * 1e7).
    connection
        A dronekit/pymavlink connection string: ``udpin:0.0.0.0:14550``,
        ``tcp:127.0.0.1:5760``, ``/dev/ttyUSB0`` (with ``baud``), ...
    baud
        Serial baud rate.
    timeout_s
        Seconds to wait for the first HEARTBEAT (and after which a silent link counts as lost).
    wait_ready_s
        Seconds to wait for the parameters (all of them), the mode and AUTOPILOT_VERSION.
    boot_wait_s
        Seconds to keep retrying while the vehicle refuses the upload as busy (a booting
        ArduPilot answers MAV_MISSION_NO_SPACE).
    clear
        Send MISSION_CLEAR_ALL before the upload.
    resend_s, retries
        Protocol timeout before a message is resent, and how many resends before giving up.

    Returns
    -------
    UploadReport
        ``result == "ok"``: every plan item read back equal (positions to 1e-7 degrees).

    Raises
    ------
    VehicleLinkError
        No link, no heartbeat, no parameters, or the link was lost.
    VehicleRefusedError
        The vehicle refused (MISSION_ACK error, still booting after ``boot_wait_s``, no
        MISSION_INT support, not ArduPilot).
    MissionMismatchError
        The read-back differs from the plan; ``exc.report`` holds the full report.

    Examples
    --------
    >>> report = upload_mission(mission, "tcp:127.0.0.1:5760")  # doctest: +SKIP
    >>> report.max_position_diff_deg <= 1e-7  # doctest: +SKIP
    True
    """
    started = time.monotonic()
    link = _connect(connection, baud=baud, timeout_s=timeout_s, wait_ready_s=wait_ready_s)
    try:
        transfer = _Transfer(link, resend_s=resend_s, retries=retries)
        stats = [0.0, 0.0]
        ignore = [0.0, 0.0]
        before = _with_boot_retry(
            transfer.download,
            what="the mission download",
            link=link,
            boot_wait_s=boot_wait_s,
            stats=ignore,
        )
        items_before = max(len(before) - 1, 0)
        log.info("%s: the vehicle holds %d mission items", connection, items_before)
        if clear:
            _with_boot_retry(
                transfer.clear,
                what="MISSION_CLEAR_ALL",
                link=link,
                boot_wait_s=boot_wait_s,
                stats=ignore,
            )
        fields = _mission_items(mission)
        acked = _with_boot_retry(
            lambda: transfer.upload(fields),
            what=f"the {len(fields)}-item mission",
            link=link,
            boot_wait_s=boot_wait_s,
            stats=stats,
            count=len(fields),
        )
        back_msgs = _with_boot_retry(
            transfer.download,
            what="the read-back",
            link=link,
            boot_wait_s=boot_wait_s,
            stats=ignore,
        )
        statustexts = tuple(link.statustexts)
    finally:
        link.close()

    back = _mission_from_messages(back_msgs)
    cmp = _compare(mission.items, back.items)
    if not acked:
        cmp.dropped.append("the final MISSION_ACK was lost; the read-back confirmed the upload")
    report = UploadReport(
        connection=connection,
        result="ok" if not cmp.mismatches else "mismatch",
        items_before=items_before,
        items_sent=len(fields),
        items_received=len(back_msgs),
        max_position_diff_deg=cmp.max_position_diff_deg,
        max_alt_diff_m=cmp.max_alt_diff_m,
        upload_attempts=int(stats[0]),
        boot_wait_s=round(stats[1], 3) if stats[0] > 1 else 0.0,
        retransmissions=transfer.retransmissions,
        request_types=dict(transfer.request_types),
        vehicle_home=back.home if back_msgs else None,
        mismatches=tuple(cmp.mismatches),
        dropped_params=tuple(cmp.dropped),
        statustexts=statustexts,
        duration_s=round(time.monotonic() - started, 3),
        sent=tuple(_wire_row(f) for f in fields),
        received=tuple(_wire_row_from_message(m) for m in back_msgs),
    )
    if cmp.mismatches:
        raise MissionMismatchError(
            f"{connection}: the mission read back differs from the plan in "
            f"{len(cmp.mismatches)} place(s), first: {cmp.mismatches[0]}; upload again, and "
            "if it persists check the item in QGroundControl",
            report,
        )
    return report


def download_mission(
    connection: str,
    *,
    baud: int = 115200,
    timeout_s: float = 30.0,
    wait_ready_s: float = 60.0,
    resend_s: float = 1.5,
    retries: int = 5,
) -> Mission:
    """Read the vehicle's mission with MISSION_REQUEST_INT (full 1e-7 degree precision).

    Returns a :class:`Mission` whose ``home`` is the vehicle's item 0 (its home) and whose
    ``items`` are items 1 and on. Raises :class:`VehicleLinkError` /
    :class:`VehicleRefusedError` as :func:`upload_mission` does.
    """
    link = _connect(connection, baud=baud, timeout_s=timeout_s, wait_ready_s=wait_ready_s)
    try:
        msgs = _Transfer(link, resend_s=resend_s, retries=retries).download()
    except _Busy as busy:
        raise VehicleRefusedError(
            f"{connection}: the vehicle refused the mission download with {busy}; another "
            "ground station is uploading, wait for it and retry"
        ) from busy
    finally:
        link.close()
    return _mission_from_messages(msgs)
