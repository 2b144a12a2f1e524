"""A MAVLink vehicle on loopback that speaks the protocols as ArduPilot firmware does.

No autopilot simulator can be installed on the build machines, so the upload tests talk to
this endpoint instead: a thread that owns a loopback socket (TCP server, or UDP sending to a
client that listens with ``udpin:``) and encodes/decodes real MAVLink 2 frames with
pymavlink's generated ``ardupilotmega`` dialect (MAVLink 1 frames from the client are
understood too, as ArduPilot does before a GCS switches to MAVLink 2).

What it does, following ArduPilot's ``GCS_MAVLink/MissionItemProtocol.cpp`` and
``AP_Mission``:

- HEARTBEAT at 1 Hz (MAV_TYPE_QUADROTOR, MAV_AUTOPILOT_ARDUPILOTMEGA, custom mode 0 =
  STABILIZE, system status BOOT while booting then STANDBY); SYS_STATUS, GPS_RAW_INT,
  GLOBAL_POSITION_INT, ATTITUDE, HOME_POSITION streamed at the rate REQUEST_DATA_STREAM asks;
- parameters: PARAM_VALUE with ``param_count``/``param_index`` for PARAM_REQUEST_LIST,
  PARAM_REQUEST_READ (by index or by name) and PARAM_SET;
- AUTOPILOT_VERSION (with MAV_PROTOCOL_CAPABILITY_MISSION_INT unless told otherwise) for
  MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES and MAV_CMD_REQUEST_MESSAGE;
- upload: MISSION_COUNT -> MISSION_REQUEST (ArduPilot asks with the float request message and
  accepts either item type in reply; ``request_int=True`` asks with MISSION_REQUEST_INT as PX4
  does) -> MISSION_ITEM(_INT) -> ... -> MISSION_ACK; an item out of sequence gets
  MAV_MISSION_INVALID_SEQUENCE; the request is resent after 1 s without an item and the upload
  is cancelled (MAV_MISSION_OPERATION_CANCELLED) after 8 s; an item with a NaN parameter where
  the command allows none is refused with MAV_MISSION_INVALID_PARAMn and the upload abandoned;
  while booting every non-empty
  upload is refused with MAV_MISSION_NO_SPACE ("Only 0 items are supported") and "ArduPilot
  Ready" is sent when the boot ends;
- download: MISSION_REQUEST_LIST -> MISSION_COUNT, MISSION_REQUEST_INT -> MISSION_ITEM_INT,
  MISSION_REQUEST -> MISSION_ITEM (float, with ArduPilot's warning); item 0 is always the
  vehicle's home, whatever was uploaded as item 0;
- MISSION_CLEAR_ALL -> MISSION_ACK (home stays).

Items are stored as ArduPilot's ``AP_Mission`` stores them (``ardupilot_storage=True``):
latitude/longitude as int32 degrees * 1e7, altitude as int32 centimetres (truncated), and only
the parameters the command uses (NAV_WAYPOINT and NAV_TAKEOFF keep param1 as an integer,
DO_SET_CAM_TRIGG_DIST keeps param1; the others read back as 0); commands without a location
(DO_*, RTL) keep no frame, no x/y/z and read back with frame 0. A float MISSION_ITEM is stored
after rounding its latitude and longitude to float32, as they travel on the wire — the loss the
classic protocol causes. Every item received is also recorded exactly as it arrived
(:attr:`LoopbackVehicle.received`), so tests check what the uploader sent bit for bit.

Everything is bounded: the thread polls with a 20 ms select, ``stop()`` joins it, sockets bind
to 127.0.0.1 only.
"""

from __future__ import annotations

import math
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

__all__ = [
    "DEFAULT_HOME",
    "DEFAULT_PARAMS",
    "LoopbackVehicle",
    "ReceivedItem",
    "StoredItem",
    "free_udp_port",
]

#: Home of the simulated vehicle: (lat, lon, alt AMSL m) — ArduPilot's SITL default site.
DEFAULT_HOME = (-35.3632621, 149.1652374, 584.09)

#: A handful of ArduCopter parameters: name -> (value, MAV_PARAM_TYPE).
DEFAULT_PARAMS: dict[str, tuple[float, int]] = {
    "SYSID_THISMAV": (1.0, mavlink2.MAV_PARAM_TYPE_INT16),
    "FRAME_CLASS": (1.0, mavlink2.MAV_PARAM_TYPE_INT8),
    "WPNAV_SPEED": (500.0, mavlink2.MAV_PARAM_TYPE_REAL32),
    "RTL_ALT": (1500.0, mavlink2.MAV_PARAM_TYPE_INT32),
    "CAM1_TYPE": (1.0, mavlink2.MAV_PARAM_TYPE_INT8),
    "MIS_TOTAL": (0.0, mavlink2.MAV_PARAM_TYPE_INT16),
    "BATT_CAPACITY": (5200.0, mavlink2.MAV_PARAM_TYPE_INT32),
}

_CAPABILITIES_BASE = (
    mavlink2.MAV_PROTOCOL_CAPABILITY_MISSION_FLOAT
    | mavlink2.MAV_PROTOCOL_CAPABILITY_PARAM_FLOAT
    | mavlink2.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
    | mavlink2.MAV_PROTOCOL_CAPABILITY_SET_POSITION_TARGET_GLOBAL_INT
    | mavlink2.MAV_PROTOCOL_CAPABILITY_FLIGHT_TERMINATION
    | mavlink2.MAV_PROTOCOL_CAPABILITY_COMPASS_CALIBRATION
    | mavlink2.MAV_PROTOCOL_CAPABILITY_MAVLINK2
    | mavlink2.MAV_PROTOCOL_CAPABILITY_MISSION_FENCE
    | mavlink2.MAV_PROTOCOL_CAPABILITY_MISSION_RALLY
)
_UPLOAD_RESEND_S = 1.0  # ArduPilot: wp_recv_timeout_ms = 1000 (+ stream slowdown)
_UPLOAD_TIMEOUT_S = 8.0  # ArduPilot: upload_timeout_ms = 8000
_HEARTBEAT_S = 1.0
_POLL_S = 0.02

# Commands whose x/y/z are a location in AP_Mission (the others store no location).
_LOCATION_COMMANDS = frozenset({16, 17, 18, 19, 21, 22, 31, 82, 201})


@dataclass(frozen=True)
class ReceivedItem:
    """One MISSION_ITEM or MISSION_ITEM_INT exactly as it arrived (x/y raw: int or float)."""

    msg_type: str
    seq: int
    frame: int
    command: int
    current: int
    autocontinue: int
    params: tuple[float, float, float, float]
    x: float | int
    y: float | int
    z: float
    src_system: int
    src_component: int


@dataclass(frozen=True)
class StoredItem:
    """One mission item as the vehicle keeps it: x/y int32 degrees*1e7, z metres."""

    seq: int
    frame: int
    command: int
    params: tuple[float, float, float, float]
    x: int
    y: int
    z: float
    autocontinue: int = 1


class _SocketWriter:
    """File-like object given to pymavlink's encoder: it writes to the current peer."""

    def __init__(self, owner: LoopbackVehicle) -> None:
        self._owner = owner

    def write(self, buf: bytes) -> None:
        self._owner._write(buf)


# Parameters that may be NaN, by command (AP_Mission::sanity_check_params): param4 (yaw) of
# NAV_WAYPOINT, NAV_LAND, NAV_TAKEOFF, NAV_VTOL_TAKEOFF; param3 and param4 of NAV_VTOL_LAND.
_NAN_ALLOWED = {16: {3}, 21: {3}, 22: {3}, 84: {3}, 85: {2, 3}}


def _sanity_check(msg: Any) -> int:
    """MAV_MISSION_INVALID_PARAMn for a NaN where the command allows none, or any infinity."""
    allowed = _NAN_ALLOWED.get(int(msg.command), set())
    for k, value in enumerate((msg.param1, msg.param2, msg.param3, msg.param4)):
        if math.isinf(value) or (math.isnan(value) and k not in allowed):
            return int(mavlink2.MAV_MISSION_INVALID_PARAM1) + k
    return int(mavlink2.MAV_MISSION_ACCEPTED)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now (for ``udpin:`` clients)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _f32(value: float) -> float:
    """``value`` rounded to IEEE-754 single precision, as a float field travels on the wire."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


@dataclass
class _UploadState:
    count: int
    src: tuple[int, int]
    request_i: int = 0
    last_request: float = 0.0
    last_receive: float = 0.0
    items: dict[int, StoredItem] = field(default_factory=dict)


class LoopbackVehicle:
    """A simulated ArduCopter on loopback. Use as a context manager.

    Parameters
    ----------
    transport
        ``"tcp"``: listen on 127.0.0.1 (client connects with ``tcp:``); ``"udp"``: send to a
        client listening with ``udpin:`` on :attr:`connection_string`.
    home
        (lat, lon, alt AMSL m) of the vehicle's home (mission item 0 on download).
    boot_s
        Seconds after :meth:`start` during which the vehicle is booting: HEARTBEAT system status
        MAV_STATE_BOOT and every non-empty upload refused with MAV_MISSION_NO_SPACE.
        ``math.inf`` never finishes booting.
    max_items
        Mission storage size (items including home); larger uploads get MAV_MISSION_NO_SPACE.
    request_int
        Ask for upload items with MISSION_REQUEST_INT (PX4) instead of MISSION_REQUEST
        (ArduPilot).
    answer_params
        False: never answer parameter requests (a vehicle dronekit can never get ready).
    mission_int
        Advertise MAV_PROTOCOL_CAPABILITY_MISSION_INT in AUTOPILOT_VERSION.
    ardupilot_storage
        Store items as AP_Mission does (altitude in whole cm, unused params dropped); False
        keeps every field of MISSION_ITEM_INT as received.
    drop_items
        ``{seq: n}``: discard the first ``n`` copies of upload item ``seq`` (a lossy link).
    drop_requests
        ``{seq: n}``: ignore the first ``n`` download requests for item ``seq``.
    initial_items
        Mission already on the vehicle (without home), e.g. yesterday's survey.
    system_id, component_id
        MAVLink ids of the vehicle.
    params
        Parameters served: name -> (value, MAV_PARAM_TYPE); :data:`DEFAULT_PARAMS` if None.
    autopilot, custom_mode
        HEARTBEAT autopilot type and custom mode (to pose as another autopilot).
    telemetry
        False: no SYS_STATUS/GPS/attitude/home streams (a bench vehicle without sensors).
    drop_final_ack
        Lose the MISSION_ACK that completes an upload (the mission is stored all the same).
    ignore_mission
        Never answer a mission-protocol message (the mission link is dead one way).
    """

    def __init__(
        self,
        *,
        transport: str = "tcp",
        home: tuple[float, float, float] = DEFAULT_HOME,
        boot_s: float = 0.0,
        max_items: int = 700,
        request_int: bool = False,
        answer_params: bool = True,
        mission_int: bool = True,
        ardupilot_storage: bool = True,
        drop_items: Mapping[int, int] | None = None,
        drop_requests: Mapping[int, int] | None = None,
        initial_items: Iterable[StoredItem] = (),
        system_id: int = 1,
        component_id: int = 1,
        params: Mapping[str, tuple[float, int]] | None = None,
        autopilot: int = mavlink2.MAV_AUTOPILOT_ARDUPILOTMEGA,
        custom_mode: int = 0,
        telemetry: bool = True,
        drop_final_ack: bool = False,
        ignore_mission: bool = False,
    ) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', not {transport!r}")
        self.transport = transport
        self.home = home
        self.boot_s = boot_s
        self.max_items = max_items
        self.request_int = request_int
        self.answer_params = answer_params
        self.mission_int = mission_int
        self.ardupilot_storage = ardupilot_storage
        self.system_id = system_id
        self.component_id = component_id
        self.autopilot = autopilot
        self.custom_mode = custom_mode
        self.telemetry = telemetry
        self.drop_final_ack = drop_final_ack
        self.ignore_mission = ignore_mission
        self._drop_items = Counter(dict(drop_items or {}))
        self._drop_requests = Counter(dict(drop_requests or {}))
        self._params: dict[str, tuple[float, int]] = dict(params or DEFAULT_PARAMS)

        self._lock = threading.Lock()
        self._mission: list[StoredItem] = [self._home_item()]
        for i, item in enumerate(initial_items, start=1):
            self._mission.append(
                StoredItem(i, item.frame, item.command, item.params, item.x, item.y, item.z)
            )
        self._set_mis_total()
        #: Every MISSION_ITEM / MISSION_ITEM_INT received, in arrival order.
        self.received: list[ReceivedItem] = []
        #: Messages received, by type.
        self.message_counts: Counter[str] = Counter()
        #: Messages sent, by type.
        self.sent_counts: Counter[str] = Counter()
        #: MISSION_ACK results sent (MAV_MISSION_RESULT values), in order.
        self.acks_sent: list[int] = []
        #: STATUSTEXT strings sent.
        self.statustexts: list[str] = []
        #: Completed uploads (each: the stored items, home included).
        self.uploads: list[list[StoredItem]] = []

        self._upload: _UploadState | None = None
        self._stream_period = 0.5
        self._warned_item = False
        self._warned_request = False
        self._ready_sent = False

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: socket.socket | None = None
        self._peer: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._udp_dest: tuple[str, int] | None = None
        self._encoder = mavlink2.MAVLink(_SocketWriter(self), system_id, component_id)
        self._parser = self._new_parser()
        self._started = 0.0
        self.connection_string = ""

    # ------------------------------------------------------------------ life cycle
    def start(self) -> LoopbackVehicle:
        """Bind the socket and start the vehicle thread; returns ``self``."""
        if self.transport == "tcp":
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            srv.setblocking(False)
            self._server = srv
            self.connection_string = f"tcp:127.0.0.1:{srv.getsockname()[1]}"
        else:
            port = free_udp_port()
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            udp.setblocking(False)
            self._udp = udp
            self._udp_dest = ("127.0.0.1", port)
            self.connection_string = f"udpin:127.0.0.1:{port}"
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="loopback-vehicle", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (joined, at most ~1 s) and close the sockets."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():  # pragma: no cover - a hung thread is a test failure
                raise RuntimeError("loopback vehicle thread did not stop")
        for s in (self._peer, self._server, self._udp):
            if s is not None:
                s.close()
        self._peer = self._server = self._udp = None

    def __enter__(self) -> LoopbackVehicle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test helpers
    @property
    def booting(self) -> bool:
        """True while the vehicle is still booting."""
        return time.monotonic() - self._started < self.boot_s

    def mission(self) -> list[StoredItem]:
        """The stored mission, home (item 0) included."""
        with self._lock:
            return list(self._mission)

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """Poll ``predicate`` every 20 ms until it holds or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(_POLL_S)
        return predicate()

    # ------------------------------------------------------------------ I/O
    def _new_parser(self) -> Any:
        parser = mavlink2.MAVLink(None)
        parser.robust_parsing = True
        return parser

    def _write(self, buf: bytes) -> None:
        try:
            if self._peer is not None:
                self._peer.sendall(buf)
            elif self._udp is not None and self._udp_dest is not None:
                self._udp.sendto(buf, self._udp_dest)
        except OSError:
            # Peer gone or nobody listening yet (ECONNREFUSED on UDP): a real radio drops
            # the packet the same way.
            if self._peer is not None:
                self._peer.close()
                self._peer = None

    def _send(self, name: str, *args: Any, **kwargs: Any) -> None:
        getattr(self._encoder, f"{name}_send")(*args, **kwargs)
        self.sent_counts[name.upper()] += 1

    def _run(self) -> None:
        next_heartbeat = 0.0
        next_stream = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                self._send_heartbeat()
                next_heartbeat = now + _HEARTBEAT_S
            if self.telemetry and self._stream_period > 0 and now >= next_stream:
                self._send_telemetry()
                next_stream = now + self._stream_period
            if not self._ready_sent and not self.booting:
                self._ready_sent = True
                self._statustext(mavlink2.MAV_SEVERITY_INFO, "ArduPilot Ready")
            self._update_upload(now)
            for msg in self._poll():
                self._handle(msg)

    def _poll(self) -> list[Any]:
        socks: list[socket.socket] = []
        if self._server is not None:
            socks.append(self._server)
        if self._peer is not None:
            socks.append(self._peer)
        if self._udp is not None:
            socks.append(self._udp)
        readable, _, _ = select.select(socks, [], [], _POLL_S)
        out: list[Any] = []
        for s in readable:
            if s is self._server:
                conn, _ = s.accept()
                conn.setblocking(True)
                conn.settimeout(1.0)
                if self._peer is not None:
                    self._peer.close()
                self._peer = conn
                self._parser = self._new_parser()
                self._send_heartbeat()  # ArduPilot streams to a new link at once
                continue
            try:
                data = s.recv(65535)
            except OSError:
                data = b""
                if s is self._udp:
                    continue
            if not data:
                if s is self._peer:
                    self._peer.close()
                    self._peer = None
                continue
            msgs = self._parser.parse_buffer(data) or []
            out.extend(m for m in msgs if m.get_type() != "BAD_DATA")
        return out

    # ------------------------------------------------------------------ periodic messages
    def _send_heartbeat(self) -> None:
        status = mavlink2.MAV_STATE_BOOT if self.booting else mavlink2.MAV_STATE_STANDBY
        self._send(
            "heartbeat",
            mavlink2.MAV_TYPE_QUADROTOR,
            self.autopilot,
            mavlink2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
            self.custom_mode,  # ArduCopter 0 = STABILIZE
            status,
        )

    def _send_telemetry(self) -> None:
        lat, lon, alt = self.home
        t_ms = int((time.monotonic() - self._started) * 1000) & 0xFFFFFFFF
        self._send("sys_status", 0, 0, 0, 100, 12600, 150, 95, 0, 0, 0, 0, 0, 0)
        self._send(
            "gps_raw_int",
            int(t_ms * 1000),
            3,
            round(lat * 1e7),
            round(lon * 1e7),
            int(alt * 1000),
            80,
            120,
            0,
            0,
            12,
        )
        self._send(
            "global_position_int",
            t_ms,
            round(lat * 1e7),
            round(lon * 1e7),
            int(alt * 1000),
            0,
            0,
            0,
            0,
            0,
        )
        self._send("attitude", t_ms, 0.01, -0.02, 1.5, 0.0, 0.0, 0.0)
        self._send_home()

    def _send_home(self) -> None:
        lat, lon, alt = self.home
        self._send(
            "home_position",
            round(lat * 1e7),
            round(lon * 1e7),
            int(alt * 1000),
            0.0,
            0.0,
            0.0,
            (1.0, 0.0, 0.0, 0.0),
            0.0,
            0.0,
            0.0,
        )

    def _statustext(self, severity: int, text: str) -> None:
        self.statustexts.append(text)
        self._send("statustext", severity, text.encode())

    # ------------------------------------------------------------------ dispatch
    def _for_me(self, msg: Any) -> bool:
        target = getattr(msg, "target_system", None)
        return target is None or target in (0, self.system_id)

    def _handle(self, msg: Any) -> None:
        mtype = msg.get_type()
        self.message_counts[mtype] += 1
        if not self._for_me(msg):
            return
        if self.ignore_mission and mtype.startswith("MISSION_"):
            return
        handler = getattr(self, f"_on_{mtype.lower()}", None)
        if handler is not None:
            handler(msg)

    def _ack(self, msg: Any, result: int) -> None:
        self.acks_sent.append(result)
        self._send(
            "mission_ack",
            msg.get_srcSystem(),
            msg.get_srcComponent(),
            result,
            getattr(msg, "mission_type", 0),
        )

    # ------------------------------------------------------------------ parameters
    def _param_value(self, index: int) -> None:
        name = list(self._params)[index]
        value, ptype = self._params[name]
        self._send("param_value", name.encode(), value, ptype, len(self._params), index)

    def _on_param_request_list(self, msg: Any) -> None:
        if self.answer_params:
            for i in range(len(self._params)):
                self._param_value(i)

    def _on_param_request_read(self, msg: Any) -> None:
        if not self.answer_params:
            return
        names = list(self._params)
        if msg.param_index >= 0:
            if msg.param_index < len(names):
                self._param_value(msg.param_index)
            return
        pid = msg.param_id if isinstance(msg.param_id, str) else msg.param_id.decode()
        pid = pid.rstrip("\x00")
        if pid in self._params:
            self._param_value(names.index(pid))

    def _on_param_set(self, msg: Any) -> None:
        pid = msg.param_id if isinstance(msg.param_id, str) else msg.param_id.decode()
        pid = pid.rstrip("\x00")
        if pid in self._params and self.answer_params:
            self._params[pid] = (float(msg.param_value), self._params[pid][1])
            self._param_value(list(self._params).index(pid))

    def _set_mis_total(self) -> None:
        if "MIS_TOTAL" in self._params:
            self._params["MIS_TOTAL"] = (float(len(self._mission)), self._params["MIS_TOTAL"][1])

    # ------------------------------------------------------------------ commands
    def _send_autopilot_version(self) -> None:
        caps = _CAPABILITIES_BASE
        if self.mission_int:
            caps |= mavlink2.MAV_PROTOCOL_CAPABILITY_MISSION_INT
        version = (4 << 24) | (5 << 16) | (7 << 8) | 255  # 4.5.7 official
        self._send(
            "autopilot_version",
            caps,
            version,
            0,
            0,
            0,
            b"\x00" * 8,
            b"\x00" * 8,
            b"\x00" * 8,
            0x1209,
            0x5740,
            0,
        )

    def _on_command_long(self, msg: Any) -> None:
        cmd = int(msg.command)
        result = mavlink2.MAV_RESULT_ACCEPTED
        if cmd == mavlink2.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES:
            self._send("command_ack", cmd, result)
            self._send_autopilot_version()
            return
        if cmd == mavlink2.MAV_CMD_REQUEST_MESSAGE:
            wanted = int(msg.param1)
            if wanted == mavlink2.MAVLINK_MSG_ID_AUTOPILOT_VERSION:
                self._send("command_ack", cmd, result)
                self._send_autopilot_version()
                return
            if wanted == mavlink2.MAVLINK_MSG_ID_HOME_POSITION:
                self._send("command_ack", cmd, result)
                self._send_home()
                return
        if cmd == mavlink2.MAV_CMD_GET_HOME_POSITION:
            self._send("command_ack", cmd, result)
            self._send_home()
            return
        self._send("command_ack", cmd, mavlink2.MAV_RESULT_UNSUPPORTED)

    def _on_request_data_stream(self, msg: Any) -> None:
        if msg.start_stop and msg.req_message_rate > 0:
            self._stream_period = 1.0 / float(msg.req_message_rate)
        elif not msg.start_stop:
            self._stream_period = 0.0

    # ------------------------------------------------------------------ mission storage
    def _home_item(self) -> StoredItem:
        lat, lon, alt = self.home
        return StoredItem(
            0,
            mavlink2.MAV_FRAME_GLOBAL,
            16,
            (0.0, 0.0, 0.0, 0.0),
            round(lat * 1e7),
            round(lon * 1e7),
            alt,
        )

    def _store(self, seq: int, msg: Any) -> StoredItem:
        """Convert a received item into what AP_Mission keeps."""
        if msg.get_type() == "MISSION_ITEM_INT":
            x, y = int(msg.x), int(msg.y)
        else:
            # float32 on the wire (pymavlink already decoded the float32 bits); ArduPilot
            # converts to degrees * 1e7 integers.
            x, y = round(_f32(msg.x) * 1e7), round(_f32(msg.y) * 1e7)
        params = (float(msg.param1), float(msg.param2), float(msg.param3), float(msg.param4))
        z = float(msg.z)
        frame = int(msg.frame)
        # *_INT frames are stored as their plain equivalents (ArduPilot reads back 0/3/10).
        frame = {5: 0, 6: 3, 11: 10}.get(frame, frame)
        command = int(msg.command)
        if self.ardupilot_storage:
            params, x, y, z = self._ap_storage(command, params, x, y, z)
            if command not in _LOCATION_COMMANDS:
                frame = mavlink2.MAV_FRAME_GLOBAL  # AP_Mission keeps no frame for these
        return StoredItem(seq, frame, command, params, x, y, z, int(msg.autocontinue))

    @staticmethod
    def _ap_storage(
        command: int, params: tuple[float, float, float, float], x: int, y: int, z: float
    ) -> tuple[tuple[float, float, float, float], int, int, float]:
        if command in _LOCATION_COMMANDS:
            # Location.alt is int32 centimetres, computed in single precision and truncated.
            z = int(_f32(_f32(z) * 100.0)) * 0.01
        else:
            x, y, z = 0, 0, 0.0
        p1 = params[0]
        if command in (16, 22):  # NAV_WAYPOINT delay / NAV_TAKEOFF pitch: uint16 p1
            kept = (float(int(p1)) if math.isfinite(p1) else 0.0, 0.0, 0.0, 0.0)
        elif command == 206:  # DO_SET_CAM_TRIGG_DIST: meters (float)
            kept = (_f32(p1), 0.0, 0.0, 0.0)
        elif command == 20:  # RTL: nothing
            kept = (0.0, 0.0, 0.0, 0.0)
        else:
            kept = tuple(_f32(p) if math.isfinite(p) else 0.0 for p in params)  # type: ignore[assignment]
        return kept, x, y, z

    # ------------------------------------------------------------------ mission protocol
    def _on_mission_count(self, msg: Any) -> None:
        if getattr(msg, "mission_type", 0) != mavlink2.MAV_MISSION_TYPE_MISSION:
            self._ack(msg, mavlink2.MAV_MISSION_UNSUPPORTED)
            return
        src = (msg.get_srcSystem(), msg.get_srcComponent())
        if self._upload is not None and self._upload.src != src:
            self._ack(msg, mavlink2.MAV_MISSION_DENIED)
            return
        self._upload = None
        limit = 0 if self.booting else self.max_items
        if msg.count > limit:
            self._ack(msg, mavlink2.MAV_MISSION_NO_SPACE)
            self._statustext(mavlink2.MAV_SEVERITY_WARNING, f"Only {limit} items are supported")
            return
        with self._lock:
            del self._mission[max(msg.count, 1) :]
            self._set_mis_total()
        if msg.count == 0:
            self._statustext(mavlink2.MAV_SEVERITY_INFO, "Flight plan received")
            self._ack(msg, mavlink2.MAV_MISSION_ACCEPTED)
            return
        now = time.monotonic()
        self._upload = _UploadState(count=int(msg.count), src=src, last_receive=now)
        self._warned_item = False
        self._request(now)

    def _request(self, now: float) -> None:
        up = self._upload
        assert up is not None
        name = "mission_request_int" if self.request_int else "mission_request"
        self._send(name, up.src[0], up.src[1], up.request_i, 0)
        up.last_request = now

    def _update_upload(self, now: float) -> None:
        up = self._upload
        if up is None:
            return
        if now - up.last_receive > _UPLOAD_TIMEOUT_S:
            self._upload = None
            self._statustext(mavlink2.MAV_SEVERITY_WARNING, "Mission upload timeout")
            self.acks_sent.append(mavlink2.MAV_MISSION_OPERATION_CANCELLED)
            self._send(
                "mission_ack", up.src[0], up.src[1], mavlink2.MAV_MISSION_OPERATION_CANCELLED, 0
            )
            return
        if now - up.last_request > _UPLOAD_RESEND_S:
            self._request(now)

    def _on_mission_item(self, msg: Any) -> None:
        self._receive_item(msg)

    def _on_mission_item_int(self, msg: Any) -> None:
        self._receive_item(msg)

    def _receive_item(self, msg: Any) -> None:
        seq = int(msg.seq)
        if self._drop_items[seq] > 0:
            self._drop_items[seq] -= 1
            return
        with self._lock:
            self.received.append(
                ReceivedItem(
                    msg.get_type(),
                    seq,
                    int(msg.frame),
                    int(msg.command),
                    int(msg.current),
                    int(msg.autocontinue),
                    (float(msg.param1), float(msg.param2), float(msg.param3), float(msg.param4)),
                    msg.x,
                    msg.y,
                    float(msg.z),
                    msg.get_srcSystem(),
                    msg.get_srcComponent(),
                )
            )
        up = self._upload
        if up is None:
            return  # not receiving: ArduPilot drops it
        if msg.get_type() == "MISSION_ITEM" and not self._warned_item:
            self._warned_item = True
            self._statustext(
                mavlink2.MAV_SEVERITY_WARNING, "got MISSION_ITEM; GCS should send MISSION_ITEM_INT"
            )
        if seq != up.request_i:
            self._ack(msg, mavlink2.MAV_MISSION_INVALID_SEQUENCE)
            return
        if (msg.get_srcSystem(), msg.get_srcComponent()) != up.src:
            self._ack(msg, mavlink2.MAV_MISSION_DENIED)
            return
        result = _sanity_check(msg)
        if result != mavlink2.MAV_MISSION_ACCEPTED:
            # ArduPilot refuses the item and abandons the whole upload.
            self._upload = None
            self._ack(msg, result)
            return
        up.items[seq] = self._store(seq, msg)
        now = time.monotonic()
        up.last_receive = now
        up.request_i += 1
        if up.request_i >= up.count:
            with self._lock:
                stored = [up.items[i] for i in range(up.count)]
                stored[0] = self._home_item()  # item 0 is home: the vehicle keeps its own
                self._mission = stored
                self._set_mis_total()
                self.uploads.append(list(stored))
            self._upload = None
            self._statustext(mavlink2.MAV_SEVERITY_INFO, "Flight plan received")
            if self.drop_final_ack:
                self.acks_sent.append(mavlink2.MAV_MISSION_ACCEPTED)  # sent, lost on the way
            else:
                self._ack(msg, mavlink2.MAV_MISSION_ACCEPTED)
            return
        self._request(now)

    def _on_mission_clear_all(self, msg: Any) -> None:
        src = (msg.get_srcSystem(), msg.get_srcComponent())
        if self._upload is not None and self._upload.src != src:
            self._ack(msg, mavlink2.MAV_MISSION_DENIED)
            return
        self._upload = None
        with self._lock:
            self._mission = [self._home_item()]
            self._set_mis_total()
        self._ack(msg, mavlink2.MAV_MISSION_ACCEPTED)

    def _on_mission_request_list(self, msg: Any) -> None:
        if self._upload is not None:
            self._ack(msg, mavlink2.MAV_MISSION_DENIED)
            return
        with self._lock:
            count = len(self._mission)
        self._send("mission_count", msg.get_srcSystem(), msg.get_srcComponent(), count, 0)

    def _lookup(self, msg: Any) -> StoredItem | None:
        seq = int(msg.seq)
        if self._drop_requests[seq] > 0:
            self._drop_requests[seq] -= 1
            return None
        if self._upload is not None:
            self._ack(msg, mavlink2.MAV_MISSION_DENIED)
            return None
        with self._lock:
            if seq == 0:
                return self._home_item()
            if seq < len(self._mission):
                return self._mission[seq]
            count = len(self._mission)
        self._send("mission_count", msg.get_srcSystem(), msg.get_srcComponent(), count, 0)
        self._ack(msg, mavlink2.MAV_MISSION_INVALID_SEQUENCE)
        return None

    def _on_mission_request_int(self, msg: Any) -> None:
        item = self._lookup(msg)
        if item is None:
            return
        self._send(
            "mission_item_int",
            msg.get_srcSystem(),
            msg.get_srcComponent(),
            item.seq,
            item.frame,
            item.command,
            0,
            item.autocontinue,
            *item.params,
            item.x,
            item.y,
            item.z,
            0,
        )

    def _on_mission_request(self, msg: Any) -> None:
        item = self._lookup(msg)
        if item is None:
            return
        if not self._warned_request:
            self._warned_request = True
            self._statustext(
                mavlink2.MAV_SEVERITY_WARNING, "got MISSION_REQUEST; use MISSION_REQUEST_INT!"
            )
        self._send(
            "mission_item",
            msg.get_srcSystem(),
            msg.get_srcComponent(),
            item.seq,
            item.frame,
            item.command,
            0,
            item.autocontinue,
            *item.params,
            item.x / 1e7,
            item.y / 1e7,
            item.z,
            0,
        )


def survey_mission(
    n_lines: int = 8,
    *,
    seed: int = 0,
    home: tuple[float, float, float] = DEFAULT_HOME,
    alt_m: float = 60.0,
) -> Any:
    """A survey sortie like the planner's: takeoff, per line entry waypoint + camera on, exit
    waypoint + camera off, RTL; positions carry full double precision (not on the 1e-7 grid).
    """
    import numpy as np

    from flightplans.mission import (
        FRAME_RELATIVE,
        MAV_CMD_DO_SET_CAM_TRIGG_DIST,
        MAV_CMD_NAV_RETURN_TO_LAUNCH,
        MAV_CMD_NAV_TAKEOFF,
        MAV_CMD_NAV_WAYPOINT,
        Mission,
        MissionItem,
    )

    rng = np.random.default_rng(seed)
    nan = float("nan")
    lat0, lon0, _ = home
    items = [MissionItem(MAV_CMD_NAV_TAKEOFF, FRAME_RELATIVE, (0.0, 0.0, 0.0, nan), 0, 0, alt_m)]
    for k in range(n_lines):
        for end in (0, 1):
            lat = lat0 + 0.0004 * k + float(rng.uniform(-1e-5, 1e-5))
            lon = lon0 + (0.003 if (k + end) % 2 else -0.003) + float(rng.uniform(-1e-5, 1e-5))
            items.append(
                MissionItem(
                    MAV_CMD_NAV_WAYPOINT, FRAME_RELATIVE, (0.0, 0.0, 0.0, nan), lat, lon, alt_m
                )
            )
            trigger = 0.0 if end else 11.5
            items.append(
                MissionItem(MAV_CMD_DO_SET_CAM_TRIGG_DIST, FRAME_RELATIVE, (trigger, 0.0, 1.0, 0.0))
            )
    items.append(MissionItem(MAV_CMD_NAV_RETURN_TO_LAUNCH, FRAME_RELATIVE))
    return Mission(home=home, items=tuple(items))
