"""The MAVLink mission protocol, ground-station side: download, clear, upload, boot retries.

:class:`MissionTransfer` runs one transfer at a time over a :class:`~flightplans.vehicle.link.Link`,
resending after ``resend_s`` up to ``retries`` times; every item goes as MISSION_ITEM_INT,
whichever request (MISSION_REQUEST or MISSION_REQUEST_INT) the vehicle sends. A vehicle that
answers busy (booting: MAV_MISSION_NO_SPACE, or another transfer: MAV_MISSION_DENIED) raises
:class:`VehicleBusy`, which :func:`with_boot_retry` retries for a while.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flightplans.errors import VehicleLinkError, VehicleRefusedError
from flightplans.vehicle.link import Link

__all__ = ["MISSION_RESULTS", "MissionTransfer", "VehicleBusy", "with_boot_retry"]

log = logging.getLogger(__name__)

_MAV_MISSION_ACCEPTED = 0
_MAV_MISSION_NO_SPACE = 4
_MAV_MISSION_INVALID_SEQUENCE = 13
_MAV_MISSION_DENIED = 14
MISSION_RESULTS = {
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


class VehicleBusy(Exception):
    """The vehicle cannot take the transfer yet (booting, or another transfer running)."""

    def __init__(self, result: int) -> None:
        super().__init__(MISSION_RESULTS.get(result, str(result)))
        self.result = result


@dataclass
class MissionTransfer:
    """The MAVLink mission protocol, GCS side, on a :class:`Link`."""

    link: Link
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
        name = MISSION_RESULTS.get(result, str(result))
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
                    raise VehicleBusy(msg.type)
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
                    raise VehicleBusy(msg.type)
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
                raise VehicleBusy(msg.type)
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
        decides). Raises :class:`VehicleBusy` when the vehicle refuses the MISSION_COUNT itself.
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
                    raise VehicleBusy(result)
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


def with_boot_retry(
    action: Callable[[], Any],
    *,
    what: str,
    link: Link,
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
        except VehicleBusy as busy:
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


def _capacity(link: Link, seen: int, timeout_s: float = 0.3) -> int | None:
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
