"""Ingestion of a flight: the autopilot's log (telemetry, camera events) and the photos.

Logs: :func:`read_log` reads a MAVLink telemetry log (``.tlog``), an ArduPilot DataFlash log
(``.bin``) or a PX4 ULog (``.ulg``) into a :class:`FlightLog`: the telemetry Dataset along
``time`` (UTC), the camera events along ``shot`` and a :class:`LogReport` of what was read and
skipped. :func:`write_telemetry_csv` and :func:`write_track_geojson` write ``telemetry.csv``
and ``track.geojson``.

Photos: :func:`read_images` reads their EXIF and XMP (:class:`ImageRecord`); :func:`geotag`
places them on the flight (camera-clock offset, pairing with camera events, interpolation);
:func:`check_flight` flags bad photos and measures footprints, coverage, GSD and overlaps;
:func:`write_photos_geojson` and :func:`write_geo_txt` write ``photos.geojson`` and
OpenDroneMap's ``geo.txt``.

The command: :func:`run_ingest` does all of it and writes the outputs of ``sitewatch ingest``
(:class:`IngestResult`). Photogrammetry: :func:`find_epoch` checks an OpenDroneMap project or
an orthophoto + DSM pair as a survey epoch (:class:`SurveyEpoch`); :func:`submit_to_nodeodm`
sends a flight's photos to a NodeODM server (optional dependency pyodm).
"""

from __future__ import annotations

from survey.ingest.dataflash import read_dataflash
from survey.ingest.geotag import GeotaggedPhoto, GeotagResult, geotag
from survey.ingest.images import ImageRecord, read_image, read_images
from survey.ingest.logs import detect_log_format, read_log
from survey.ingest.mavlink import read_tlog
from survey.ingest.odm import NodeODMTask, SurveyEpoch, find_epoch, submit_to_nodeodm
from survey.ingest.photos import write_geo_txt, write_geotagged_copies, write_photos_geojson
from survey.ingest.qc import FlightQC, QCParams, check_flight, read_plan
from survey.ingest.run import IngestResult, run_ingest
from survey.ingest.telemetry import (
    TELEMETRY_CSV_COLUMNS,
    FlightLog,
    LogReport,
    gps_to_utc,
    write_telemetry_csv,
    write_track_geojson,
)
from survey.ingest.ulog import read_ulog

__all__ = [
    "TELEMETRY_CSV_COLUMNS",
    "FlightLog",
    "FlightQC",
    "GeotagResult",
    "GeotaggedPhoto",
    "ImageRecord",
    "IngestResult",
    "LogReport",
    "NodeODMTask",
    "QCParams",
    "SurveyEpoch",
    "check_flight",
    "detect_log_format",
    "find_epoch",
    "geotag",
    "gps_to_utc",
    "read_dataflash",
    "read_image",
    "read_images",
    "read_log",
    "read_plan",
    "read_tlog",
    "read_ulog",
    "run_ingest",
    "submit_to_nodeodm",
    "write_geo_txt",
    "write_geotagged_copies",
    "write_photos_geojson",
    "write_telemetry_csv",
    "write_track_geojson",
]
