"""``read_log``: any flight log, recognised by its content (the extension only breaks ties).

- PX4 ULog starts with the magic ``ULog`` 0x01 0x12 0x35;
- ArduPilot DataFlash starts with records ``0xA3 0x95 <type>`` (the first an FMT, type 128);
- a MAVLink telemetry log is 8-byte timestamps each followed by a MAVLink frame (0xFD or 0xFE),
  recognised by two records in a row with valid checksums within its first 64 KiB.

A file named for one format that holds another is read as what it holds, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from survey.errors import InputFileError, TelemetryError
from survey.ingest.dataflash import looks_like_dataflash, read_dataflash
from survey.ingest.mavlink import looks_like_tlog, read_tlog
from survey.ingest.telemetry import FlightLog
from survey.ingest.ulog import ULOG_MAGIC, read_ulog

__all__ = ["LOG_EXTENSIONS", "detect_log_format", "read_log"]

LOG_EXTENSIONS = {".tlog": "tlog", ".bin": "dataflash", ".ulg": "ulog"}
"""Usual extension → format."""

log = logging.getLogger(__name__)

_SNIFF_BYTES = 64 * 1024
_READERS: dict[str, Callable[[Path], FlightLog]] = {
    "tlog": read_tlog,
    "dataflash": read_dataflash,
    "ulog": read_ulog,
}


def detect_log_format(path: str | os.PathLike[str]) -> str | None:
    """``"tlog"``, ``"dataflash"``, ``"ulog"`` from the first bytes of ``path``, or None.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str or None
    """
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if head.startswith(ULOG_MAGIC):
        return "ulog"
    if looks_like_dataflash(head):
        return "dataflash"
    if looks_like_tlog(head):
        return "tlog"
    return None


def read_log(path: str | os.PathLike[str]) -> FlightLog:
    """Read a flight log of any supported format (``.tlog``, DataFlash ``.bin``, ``.ulg``).

    Parameters
    ----------
    path : str or os.PathLike
        The log, opened read-only; never written.

    Returns
    -------
    FlightLog
        Telemetry along ``time`` (UTC), camera events along ``shot`` and the read report.

    Raises
    ------
    InputFileError
        The file does not exist or cannot be opened.
    TelemetryError
        The file is empty, is none of the formats, or holds no position with a GPS fix.

    Examples
    --------
    >>> flight = read_log("flight.tlog")  # doctest: +SKIP
    >>> flight.report.gps_points, flight.report.time_source  # doctest: +SKIP
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        fmt = detect_log_format(path) if path.is_file() else None
    except OSError as exc:
        raise InputFileError(
            f"{path}: cannot open the log ({exc.strerror}); check the path given to --log"
        ) from exc
    if not path.is_file():
        raise InputFileError(f"{path}: not a file; give the flight log itself to --log")
    if size == 0:
        raise TelemetryError(f"{path}: the log is empty (0 bytes); copy it from the vehicle again")
    named = LOG_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        with open(path, "rb") as fh:
            first = fh.read(8).hex(" ")
        hint = f" (named {path.suffix} but unreadable as {named})" if named else ""
        raise TelemetryError(
            f"{path}: not a MAVLink .tlog, DataFlash .bin or PX4 .ulg log{hint}; first bytes "
            f"{first}; give the autopilot's log as downloaded by the ground station"
        )
    flight = _READERS[fmt](path)
    if named is not None and named != fmt:
        message = f"named {path.suffix} but holds a {fmt} log; read as {fmt}"
        log.warning("%s: %s", path.name, message)
        warning = {"reason": "extension", "message": message, "extension": path.suffix}
        report = replace(flight.report, warnings=(*flight.report.warnings, warning))
        flight = replace(flight, report=report)
    return flight
