"""``run_ingest``: a flight's log and photos into a geotagged, checked survey.

What ``sitewatch ingest`` runs: the orchestration of the ingest modules. Read the log
(:func:`survey.ingest.logs.read_log`) and the photos (:func:`survey.ingest.images.read_images`),
place the photos on the flight (:func:`survey.ingest.geotag.geotag`), check them and measure
coverage (:func:`survey.ingest.qc.check_flight`), and write into the output folder, each file
atomically:

``telemetry.csv``   the telemetry, columns :data:`~survey.ingest.telemetry.TELEMETRY_CSV_COLUMNS`
                    (with a log)
``track.geojson``   the flown track (with a log)
``photos.geojson``  a Point per photo with its QC flags (with photos)
``geo.txt``         OpenDroneMap's positions file (with photos)
``report.json``     the figures (log counts, photos matched, camera-clock offset, coverage),
                    ``warnings`` (each ``{"reason", "message", ...}``) and provenance: the
                    inputs and outputs with their SHA-256, the software version, the
                    parameters

A log, photos, or both: photos that carry their own GPS are placed without a log; a log
alone gives the telemetry and the track. Every input is opened read-only; nothing is written
beside the originals. Every check that needs no heavy work (the offset, the camera preset,
the plan, the site, the NodeODM address) runs before the log and the photos are read.

``report.json`` itself (figures, warnings, provenance) is :mod:`survey.ingest.report`. This
module is a little over 500 lines (about 575) because close to half of it is documentation:
the parameters, errors and results of :func:`run_ingest`, the one function users script
against; the code is its named steps (check the request, read, place, check, write, send).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from flightplans.camera import Camera, get_camera
from survey.errors import GeotagError, InputFileError, OutputError
from survey.ingest.geotag import GeotagResult, geotag
from survey.ingest.images import ImageFolder, read_images
from survey.ingest.logs import read_log
from survey.ingest.odm import (
    NodeODMError,
    NodeODMTask,
    check_nodeodm_request,
    submit_to_nodeodm,
)
from survey.ingest.photos import write_geo_txt, write_geotagged_copies, write_photos_geojson
from survey.ingest.qc import FlightQC, PlannedSurvey, QCParams, check_flight, read_plan
from survey.ingest.report import (
    MAX_HOLES_LISTED,
    Warnings,
    camera_record,
    flag_warnings,
    hash_record,
    holes_record,
    image_warnings,
    ingest_report,
    inputs_record,
    log_warnings,
)
from survey.ingest.telemetry import FlightLog, write_telemetry_csv, write_track_geojson
from survey.outputs import Clock, write_json
from survey.rasters import sha256_file
from survey.sites import read_site_area

__all__ = ["MAX_HOLES_LISTED", "IngestResult", "parse_time_offset", "run_ingest"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class IngestResult:
    """What :func:`run_ingest` wrote and found.

    Attributes
    ----------
    out_dir : pathlib.Path
    report_json : pathlib.Path
    report : dict
        The content of ``report.json``.
    flight : FlightLog or None
        The log read (None without ``log``).
    geotag : GeotagResult or None
        The photos placed (None without ``images``).
    qc : FlightQC or None
        Flags, footprints and coverage (None without ``images``).
    telemetry_csv, track_geojson, photos_geojson, geo_txt : pathlib.Path or None
        The outputs written (None for those that do not apply).
    geotagged_copies : tuple of pathlib.Path
        Photos saved again with their geotag (only with ``geotagged_copies``).
    nodeodm_task : NodeODMTask or None
        The OpenDroneMap task created (only with ``nodeodm``).
    """

    out_dir: Path
    report_json: Path
    report: dict[str, Any]
    flight: FlightLog | None
    geotag: GeotagResult | None
    qc: FlightQC | None
    telemetry_csv: Path | None = None
    track_geojson: Path | None = None
    photos_geojson: Path | None = None
    geo_txt: Path | None = None
    geotagged_copies: tuple[Path, ...] = ()
    nodeodm_task: NodeODMTask | None = None

    @property
    def outputs(self) -> dict[str, Path]:
        """File name to path of every file written (geotagged copies excluded)."""
        files = (
            self.telemetry_csv,
            self.track_geojson,
            self.photos_geojson,
            self.geo_txt,
            self.report_json,
        )
        return {p.name: p for p in files if p is not None}


def parse_time_offset(value: str | float) -> str | float:
    """``"auto"`` or the camera-clock offset in seconds (camera time - log time).

    Raises
    ------
    GeotagError
        Neither ``"auto"`` nor a finite number.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        try:
            number = float(text)
        except ValueError:
            number = math.nan
    else:
        number = float(value)
    if not math.isfinite(number):
        raise GeotagError(
            f"time offset {value!r} is neither 'auto' nor a number of seconds; pass "
            "--time-offset auto or the camera clock minus the log clock, e.g. -3.5"
        )
    return number


def _check_out(out: Path, images: Path | None, copies: Path | None) -> Path:
    if images is not None and out.resolve() == images.resolve():
        raise OutputError(
            f"{out}: is the folder of the original photos; choose another --out (nothing is "
            "written beside the originals)"
        )
    if images is not None and copies is not None and copies.resolve() == images.resolve():
        raise OutputError(
            f"{copies}: is the folder of the original photos; choose another folder for the "
            "geotagged copies (originals are never written)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{out}: cannot create the output folder ({exc.strerror}); choose a writable --out"
        ) from exc
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: output folder is not writable; choose a writable --out")
    return out


def run_ingest(
    out: str | os.PathLike[str],
    *,
    log: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    plan: str | os.PathLike[str] | None = None,
    site: str | os.PathLike[str] | None = None,
    dem: str | os.PathLike[str] | None = None,
    time_offset: str | float = "auto",
    camera: str | None = None,
    geotagged_copies: str | os.PathLike[str] | None = None,
    nodeodm: str | None = None,
    nodeodm_options: Mapping[str, Any] | None = None,
    qc_params: QCParams | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest a flight: read, place and check its photos, write the outputs (module doc).

    Parameters
    ----------
    out : path
        Output folder (created). Not the folder of the photos.
    log : path, optional
        Flight log: MAVLink ``.tlog``, ArduPilot DataFlash ``.bin`` or PX4 ``.ulg``.
    images : path, optional
        Folder of the flight's photos (JPEG or TIFF).
    plan : path, optional
        Folder written by ``sitewatch plan --out``: planned area, camera, GSD and overlaps
        to compare with; its site when ``site`` is not given.
    site : path, optional
        Site boundary (any vector format and CRS).
    dem : path, optional
        DEM GeoTIFF (any CRS) for footprints; else flat ground as
        :func:`survey.ingest.qc.check_flight` decides (take-off level, or the plan's home).
    time_offset : "auto" or float
        Camera clock minus log clock, seconds (a numeric string is accepted).
    camera : str, optional
        Camera preset (:func:`flightplans.camera.get_camera`); default the plan's, else one
        from the photos' EXIF.
    geotagged_copies : path, optional
        Folder to save copies of the photos with their geotag in the EXIF.
    nodeodm : str, optional
        URL of a NodeODM server (``http://HOST:PORT``): the photos and ``geo.txt`` are sent
        to it once everything is written (needs pyodm; :mod:`survey.ingest.odm`).
    nodeodm_options : mapping, optional
        ODM options of that task (ODM's names).
    qc_params : QCParams, optional
        Thresholds of the photo checks.
    progress : callable, optional
        Called with a short line as each stage starts (the CLI prints it on a terminal).

    Returns
    -------
    IngestResult

    Raises
    ------
    InputFileError
        Nothing to ingest, a missing file, an images folder without photos or without a
        single readable one, a plan folder without its mission.
    TelemetryError
        A log that cannot be read or holds no position with a GPS fix.
    GeotagError
        A time offset that is neither ``"auto"`` nor a number; photos with no position from
        their GPS or the log.
    CameraError
        An unknown camera preset.
    OutputError
        ``out`` cannot be written or is the photos' folder.
    NodeODMArgumentError, NodeODMError
        A bad NodeODM URL or option; the server cannot take the task (the other outputs
        are written by then, and the report says so).

    Examples
    --------
    >>> result = run_ingest("ingest", log="flight.tlog", images="DCIM")  # doctest: +SKIP
    >>> result.report["images_matched"], result.report["time_offset_s"]  # doctest: +SKIP
    """
    started = dt.datetime.now(dt.UTC)
    clock = Clock()
    req = _check_request(
        out,
        log=log,
        images=images,
        plan=plan,
        site=site,
        dem=dem,
        time_offset=time_offset,
        camera=camera,
        geotagged_copies=geotagged_copies,
        nodeodm=nodeodm,
        nodeodm_options=nodeodm_options,
        qc_params=qc_params,
    )
    clock.lap("checks")
    return _ingest(req, progress or (lambda _msg: None), clock, started)


@dataclass(frozen=True, eq=False)
class _Request:
    """An ingest's inputs, checked before anything heavy runs (see :func:`run_ingest`)."""

    out_dir: Path
    log_path: Path | None
    images_dir: Path | None
    offset: str | float
    camera_name: str | None
    cam: Camera | None
    planned: PlannedSurvey | None
    site_path: Path | None
    site_ll: BaseGeometry | None
    dem_path: Path | None
    copies_dir: Path | None
    nodeodm: str | None
    odm_options: dict[str, Any] | None
    params: QCParams

    def parameters(self) -> dict[str, Any]:
        """The ``parameters`` of ``report.json``."""
        return {
            "time_offset": self.offset,
            "camera": self.camera_name,
            "camera_model": camera_record(self.cam, self.camera_name),
            "qc": dataclasses.asdict(self.params),
            "nodeodm_options": self.odm_options,
        }


def _check_request(
    out: str | os.PathLike[str],
    *,
    log: str | os.PathLike[str] | None,
    images: str | os.PathLike[str] | None,
    plan: str | os.PathLike[str] | None,
    site: str | os.PathLike[str] | None,
    dem: str | os.PathLike[str] | None,
    time_offset: str | float,
    camera: str | None,
    geotagged_copies: str | os.PathLike[str] | None,
    nodeodm: str | None,
    nodeodm_options: Mapping[str, Any] | None,
    qc_params: QCParams | None,
) -> _Request:
    """Every check that needs no heavy work, in this order: something to ingest, the offset,
    the camera preset, the NodeODM request, the plan, the site, the DEM and the output
    folder."""
    log_path = Path(log) if log is not None else None
    images_dir = Path(images) if images is not None else None
    if log_path is None and images_dir is None:
        raise InputFileError(
            "nothing to ingest: give the flight log (--log), the folder of its photos "
            "(--images) or both"
        )
    offset = parse_time_offset(time_offset)
    cam = get_camera(camera) if camera is not None else None
    odm_options = check_nodeodm_request(nodeodm, nodeodm_options) if nodeodm else None
    planned = read_plan(plan) if plan is not None else None
    site_path = Path(site) if site is not None else None
    site_ll: BaseGeometry | None = read_site_area(site_path, 4326) if site_path else None
    dem_path = Path(dem) if dem is not None else None
    if dem_path is not None and not dem_path.is_file():
        raise InputFileError(f"{dem_path}: DEM not found; check the path given to --dem")
    copies_dir = Path(geotagged_copies) if geotagged_copies is not None else None
    out_dir = _check_out(Path(out), images_dir, copies_dir)
    return _Request(
        out_dir=out_dir,
        log_path=log_path,
        images_dir=images_dir,
        offset=offset,
        camera_name=camera,
        cam=cam,
        planned=planned,
        site_path=site_path,
        site_ll=site_ll,
        dem_path=dem_path,
        copies_dir=copies_dir,
        nodeodm=nodeodm,
        odm_options=odm_options,
        params=qc_params or QCParams(),
    )


def _ingest(req: _Request, say: Progress, clock: Clock, started: dt.datetime) -> IngestResult:
    """Read the log, read, place and check the photos, write the outputs, send the photos to
    NodeODM when asked, and write ``report.json``."""
    warnings = Warnings()
    flight: FlightLog | None = None
    if req.log_path is not None:
        say(f"reading the log {req.log_path.name} ...")
        flight = read_log(req.log_path)
        log_warnings(flight, warnings)
        clock.lap("log")

    folder: ImageFolder | None = None
    tagged: GeotagResult | None = None
    qc: FlightQC | None = None
    if req.images_dir is not None:
        folder, tagged, qc = _photos(
            req.images_dir,
            flight,
            req.offset,
            camera=req.cam,
            site=req.site_ll,
            plan=req.planned,
            dem=req.dem_path,
            params=req.params,
            warnings=warnings,
            say=say,
            clock=clock,
        )
    else:
        warnings.add(
            "no_photos",
            "no photos: no photos.geojson, geo.txt or coverage figures; the log alone gives "
            "the telemetry and the track",
        )
    holes = holes_record(qc, warnings) if qc is not None else []

    out_dir = req.out_dir
    say(f"writing the outputs to {out_dir} ...")
    files = _write_outputs(req, flight, tagged, qc, say)
    clock.lap("write")
    task, failure = _send_to_nodeodm(req, folder, files.geo_txt, warnings, say, clock)
    report = ingest_report(
        flight=flight,
        folder=folder,
        tagged=tagged,
        qc=qc,
        holes=holes,
        warnings=warnings,
        inputs=inputs_record(
            req.log_path, folder, req.planned, req.site_path, req.dem_path, flight
        ),
        parameters=req.parameters(),
        outputs=files.record(req),
        task=task,
        clock=clock,
        started=started,
    )
    report_json = write_json(out_dir / "report.json", report)
    if failure is not None:
        raise NodeODMError(
            f"{failure}; the other outputs and report.json are written in {out_dir}"
        ) from failure
    return IngestResult(
        out_dir=out_dir,
        report_json=report_json,
        report=report,
        flight=flight,
        geotag=tagged,
        qc=qc,
        telemetry_csv=files.telemetry_csv,
        track_geojson=files.track_geojson,
        photos_geojson=files.photos_geojson,
        geo_txt=files.geo_txt,
        geotagged_copies=files.copies,
        nodeodm_task=task,
    )


@dataclass(frozen=True)
class _Written:
    """The output files written before ``report.json`` (None for those that do not apply)."""

    telemetry_csv: Path | None = None
    track_geojson: Path | None = None
    photos_geojson: Path | None = None
    geo_txt: Path | None = None
    copies: tuple[Path, ...] = ()

    def record(self, req: _Request) -> dict[str, Any]:
        """The ``outputs`` of ``report.json``: each file's path and SHA-256."""
        files = (self.telemetry_csv, self.track_geojson, self.photos_geojson, self.geo_txt)
        outputs: dict[str, Any] = {p.name: hash_record(p) for p in files if p}
        if self.copies:
            copies_dir = req.copies_dir
            outputs["geotagged_copies"] = {
                "path": str(copies_dir.resolve() if copies_dir else req.out_dir),
                "sha256": {p.name: sha256_file(p) for p in self.copies},
            }
        return outputs


def _write_outputs(
    req: _Request,
    flight: FlightLog | None,
    tagged: GeotagResult | None,
    qc: FlightQC | None,
    say: Progress,
) -> _Written:
    """``telemetry.csv`` and ``track.geojson`` (with a log), ``photos.geojson`` and
    ``geo.txt`` (with photos), and the geotagged copies when asked."""
    out_dir = req.out_dir
    telemetry_csv = track_geojson = photos_geojson = geo_txt = None
    if flight is not None:
        telemetry_csv = write_telemetry_csv(flight, out_dir / "telemetry.csv")
        track_geojson = write_track_geojson(flight, out_dir / "track.geojson")
    copies: tuple[Path, ...] = ()
    if tagged is not None and qc is not None:
        photos_geojson = write_photos_geojson(tagged.photos, out_dir / "photos.geojson", qc.flags)
        geo_txt = write_geo_txt(tagged.photos, out_dir / "geo.txt")
        if req.copies_dir is not None:
            say(f"saving geotagged copies to {req.copies_dir} ...")
            copies = tuple(write_geotagged_copies(tagged.photos, req.copies_dir))
    return _Written(telemetry_csv, track_geojson, photos_geojson, geo_txt, copies)


def _send_to_nodeodm(
    req: _Request,
    folder: ImageFolder | None,
    geo_txt: Path | None,
    warnings: Warnings,
    say: Progress,
    clock: Clock,
) -> tuple[NodeODMTask | None, NodeODMError | None]:
    """The NodeODM task of the photos when asked; a failure is returned (recorded in the
    report, then raised) rather than raised here."""
    nodeodm = req.nodeodm
    if nodeodm is None:
        return None, None
    if folder is None:
        warnings.add("nodeodm_skipped", "no photos: nothing was sent to NodeODM")
        return None, None
    say(f"sending the photos to NodeODM at {nodeodm.split('?')[0]} ...")
    task: NodeODMTask | None = None
    failure: NodeODMError | None = None
    try:
        task = submit_to_nodeodm(
            [rec.path for rec in folder.images], nodeodm, req.odm_options, geo_txt=geo_txt
        )
    except NodeODMError as exc:  # recorded in the report, then raised below
        failure = exc
        warnings.add("nodeodm_failed", str(exc))
    clock.lap("nodeodm")
    return task, failure


def _photos(
    images_dir: Path,
    flight: FlightLog | None,
    offset: str | float,
    *,
    camera: Camera | None,
    site: BaseGeometry | None,
    plan: PlannedSurvey | None,
    dem: Path | None,
    params: QCParams,
    warnings: Warnings,
    say: Progress,
    clock: Clock,
) -> tuple[ImageFolder, GeotagResult, FlightQC]:
    """Read the photos, place them on the flight and check them."""
    say(f"reading the photos in {images_dir} ...")
    folder = read_images(images_dir)
    image_warnings(folder, warnings)
    if not folder.images:
        raise InputFileError(
            f"{images_dir}: none of its {len(folder.skipped)} photo file(s) can be read "
            f"(e.g. {folder.skipped[0][1]}); copy the photos from the camera's card again"
        )
    clock.lap("images")
    say(f"placing {len(folder.images)} photos on the flight ...")
    tagged = geotag(
        folder.images,
        flight.telemetry if flight is not None else None,
        flight.camera_events if flight is not None else None,
        time_offset=offset,
    )
    for text in tagged.warnings:  # already logged by geotag
        warnings.add("geotag", text, logged=True)
    n = len(tagged.photos)
    if not any(p.has_position for p in tagged.photos):
        if flight is None:
            raise GeotagError(
                f"{images_dir}: none of the {n} photos carries a GPS position and no "
                "flight log was given to place them; give the log with --log"
            )
        raise GeotagError(
            f"{images_dir}: none of the {n} photos could be placed: they carry no GPS "
            f"position and none falls within the positions of {flight.report.path.name}; "
            "check that the log is of this flight, or pass --time-offset SECONDS"
        )
    if flight is None:
        warnings.add(
            "no_log",
            "no flight log: photos are placed by their own GPS; no telemetry.csv or track.geojson",
        )
    clock.lap("geotag")
    say("checking the photos (blur, exposure, footprints, coverage) ...")
    qc = check_flight(tagged.photos, camera=camera, site=site, plan=plan, dem=dem, params=params)
    for text in qc.warnings:  # already logged by check_flight
        warnings.add("qc", text, logged=True)
    flag_warnings(tagged, qc, warnings)
    if site is None and plan is None:
        warnings.add(
            "no_site",
            "no site and no plan: the coverage of the site is not measured (pass --site or --plan)",
        )
    clock.lap("qc")
    return folder, tagged, qc
