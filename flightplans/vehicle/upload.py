"""Upload a mission to an ArduPilot vehicle and prove it arrived intact; read a mission back.

The steps of :func:`upload_mission`: connect (:mod:`~flightplans.vehicle.link`); download the
current mission (its size goes in the report); MISSION_CLEAR_ALL; upload home as item 0 and
the plan's items from item 1 (:mod:`~flightplans.vehicle.protocol`; a vehicle still booting
refuses with MAV_MISSION_NO_SPACE: retried for ``boot_wait_s``); download again with
MISSION_REQUEST_INT and compare item by item (:mod:`~flightplans.vehicle.items`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flightplans.errors import MissionMismatchError, VehicleRefusedError
from flightplans.mission import Mission
from flightplans.vehicle.items import (
    compare_missions,
    mission_from_messages,
    mission_items,
    wire_row,
    wire_row_from_message,
)
from flightplans.vehicle.link import connect
from flightplans.vehicle.protocol import MissionTransfer, VehicleBusy, with_boot_retry
from flightplans.vehicle.report import UploadReport

__all__ = ["download_mission", "upload_mission"]

log = logging.getLogger(__name__)


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
    link = connect(connection, baud=baud, timeout_s=timeout_s, wait_ready_s=wait_ready_s)
    try:
        transfer = MissionTransfer(link, resend_s=resend_s, retries=retries)
        done = _upload_and_read_back(transfer, mission, clear=clear, boot_wait_s=boot_wait_s)
    finally:
        link.close()
    report = _report(mission, connection, done, duration_s=time.monotonic() - started)
    if report.mismatches:
        raise MissionMismatchError(
            f"{connection}: the mission read back differs from the plan in "
            f"{len(report.mismatches)} place(s), first: {report.mismatches[0]}; upload again, "
            "and if it persists check the item in QGroundControl",
            report,
        )
    return report


@dataclass
class _Transferred:
    """What the transfer steps of an upload gave (see :func:`_upload_and_read_back`)."""

    transfer: MissionTransfer
    items_before: int
    fields: list[tuple[Any, ...]]
    acked: bool
    back_msgs: list[Any]
    statustexts: tuple[str, ...]
    attempts: float
    waited_s: float


def _upload_and_read_back(
    transfer: MissionTransfer, mission: Mission, *, clear: bool, boot_wait_s: float
) -> _Transferred:
    """Download the current mission, clear it, upload ``mission`` and download it again,
    each step retried while the vehicle is booting; the upload's attempts and wait counted."""
    link = transfer.link
    stats = [0.0, 0.0]
    ignore = [0.0, 0.0]
    before = with_boot_retry(
        transfer.download,
        what="the mission download",
        link=link,
        boot_wait_s=boot_wait_s,
        stats=ignore,
    )
    items_before = max(len(before) - 1, 0)
    log.info("%s: the vehicle holds %d mission items", link.connection, items_before)
    if clear:
        with_boot_retry(
            transfer.clear,
            what="MISSION_CLEAR_ALL",
            link=link,
            boot_wait_s=boot_wait_s,
            stats=ignore,
        )
    fields = mission_items(mission)
    acked = with_boot_retry(
        lambda: transfer.upload(fields),
        what=f"the {len(fields)}-item mission",
        link=link,
        boot_wait_s=boot_wait_s,
        stats=stats,
        count=len(fields),
    )
    back_msgs = with_boot_retry(
        transfer.download,
        what="the read-back",
        link=link,
        boot_wait_s=boot_wait_s,
        stats=ignore,
    )
    return _Transferred(
        transfer, items_before, fields, acked, back_msgs, tuple(link.statustexts), *stats
    )


def _report(
    mission: Mission, connection: str, done: _Transferred, *, duration_s: float
) -> UploadReport:
    """The read-back compared with ``mission``, item by item, as an :class:`UploadReport`."""
    back = mission_from_messages(done.back_msgs)
    cmp = compare_missions(mission.items, back.items)
    if not done.acked:
        cmp.dropped.append("the final MISSION_ACK was lost; the read-back confirmed the upload")
    return UploadReport(
        connection=connection,
        result="ok" if not cmp.mismatches else "mismatch",
        items_before=done.items_before,
        items_sent=len(done.fields),
        items_received=len(done.back_msgs),
        max_position_diff_deg=cmp.max_position_diff_deg,
        max_alt_diff_m=cmp.max_alt_diff_m,
        upload_attempts=int(done.attempts),
        boot_wait_s=round(done.waited_s, 3) if done.attempts > 1 else 0.0,
        retransmissions=done.transfer.retransmissions,
        request_types=dict(done.transfer.request_types),
        vehicle_home=back.home if done.back_msgs else None,
        mismatches=tuple(cmp.mismatches),
        dropped_params=tuple(cmp.dropped),
        statustexts=done.statustexts,
        duration_s=round(duration_s, 3),
        sent=tuple(wire_row(f) for f in done.fields),
        received=tuple(wire_row_from_message(m) for m in done.back_msgs),
    )


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
    link = connect(connection, baud=baud, timeout_s=timeout_s, wait_ready_s=wait_ready_s)
    try:
        msgs = MissionTransfer(link, resend_s=resend_s, retries=retries).download()
    except VehicleBusy as busy:
        raise VehicleRefusedError(
            f"{connection}: the vehicle refused the mission download with {busy}; another "
            "ground station is uploading, wait for it and retry"
        ) from busy
    finally:
        link.close()
    return mission_from_messages(msgs)
