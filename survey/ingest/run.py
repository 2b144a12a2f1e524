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

This module is over 500 lines because it holds the whole of ``report.json`` in one place:
the figures, the warnings gathered from every stage with their reasons, and the provenance;
about half of it is documentation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from flightplans.camera import Camera, get_camera
from survey import __version__
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
from survey.ingest.telemetry import FlightLog, write_telemetry_csv, write_track_geojson
from survey.outputs import Clock, write_json
from survey.rasters import sha256_file
from survey.sites import read_site_area

__all__ = ["IngestResult", "parse_time_offset", "run_ingest"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: Holes listed one by one in ``report.json`` (largest first); the rest are counted.
MAX_HOLES_LISTED = 50


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


def _finite(v: float | None, nd: int = 3) -> float | None:
    return round(float(v), nd) if v is not None and math.isfinite(v) else None


class _Warnings:
    """``report.json``'s ``warnings``: each a reason, a message and details."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, reason: str, message: str, *, logged: bool = False, **details: Any) -> None:
        """Record one warning; log it as one line unless a library module already did."""
        if not logged:
            log.warning("%s", message)
        self.items.append({"reason": reason, "message": message, **details})


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


def _log_warnings(flight: FlightLog, warnings: _Warnings) -> None:
    r = flight.report
    for w in r.warnings:  # already logged by the reader
        warnings.add(
            "log_" + str(w.get("reason", "warning")),
            str(w.get("message", "")),
            logged=True,
            source=r.path.name,
        )
    if r.skipped:
        parts = ", ".join(f"{k} {v}" for k, v in r.skipped.items())
        warnings.add(
            "log_records_skipped",
            f"{r.path.name}: {sum(r.skipped.values())} record(s) left out ({parts}); "
            f"{r.messages} good record(s) kept",
            source=r.path.name,
            skipped=dict(r.skipped),
            bad_packets=r.bad_packets,
        )


def _image_warnings(folder: ImageFolder, warnings: _Warnings) -> None:
    for name, reason in folder.skipped:  # already logged by read_images
        warnings.add("unreadable_image", reason, logged=True, image=name)
    for rec in folder.images:
        for text in rec.warnings:  # already logged by read_image
            warnings.add("image_metadata", text, logged=True, image=rec.name)


def _flag_warnings(result: GeotagResult, qc: FlightQC, warnings: _Warnings) -> None:
    by_flag: dict[str, list[str]] = {}
    for photo, flags in zip(result.photos, qc.flags, strict=True):
        for f in dict.fromkeys(q.flag for q in flags):
            by_flag.setdefault(f, []).append(photo.name)
    for flag, names in sorted(by_flag.items()):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        warnings.add(
            "qc_flag",
            f"{len(names)} photo(s) flagged {flag}: {shown} (reasons in photos.geojson)",
            flag=flag,
            images=names,
        )


def _holes(qc: FlightQC, warnings: _Warnings) -> list[dict[str, Any]]:
    """Each coverage hole (largest first): area, centroid and bounds in WGS84."""
    to_m = Transformer.from_crs(4326, qc.crs, always_xy=True)
    out: list[dict[str, Any]] = []
    for key, label in (("site", "site"), ("planned", "planned area")):
        if key not in qc.holes:
            continue
        holes_ll, _thin = qc.holes[key]
        parts = [g for g in shapely.get_parts(holes_ll) if not g.is_empty]
        if not parts:
            continue
        areas = [
            shapely.transform(g, lambda c: np.column_stack(to_m.transform(c[:, 0], c[:, 1]))).area
            for g in parts
        ]
        ranked = sorted(zip(areas, parts, strict=True), key=lambda t: -t[0])
        for area, g in ranked[:MAX_HOLES_LISTED]:
            c = g.centroid
            out.append(
                {
                    "coverage_of": key,
                    "area_m2": round(area, 1),
                    "centroid_lon": round(c.x, 7),
                    "centroid_lat": round(c.y, 7),
                    "bounds": [round(v, 7) for v in g.bounds],
                }
            )
        c0 = ranked[0][1].centroid
        warnings.add(
            "coverage_hole",
            f"{len(parts)} hole(s) in the coverage of the {label}, {sum(areas):.0f} m2 in all "
            f"(largest {ranked[0][0]:.0f} m2 around {c0.y:.6f}, {c0.x:.6f}); photos missing "
            "or not taken there",
            coverage_of=key,
            holes=len(parts),
            holes_m2=round(sum(areas), 1),
        )
    return out


def _offset_record(result: GeotagResult | None) -> dict[str, Any] | None:
    if result is None or result.offset is None:
        return None
    o = result.offset
    return {
        "offset_s": _finite(o.offset_s, 4),
        "method": o.method,
        "n_used": o.n_used,
        "spread_s": _finite(o.spread_s, 4),
        "drift_ppm": _finite(o.drift_ppm, 2),
    }


def _hash_record(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve()), "sha256": sha256_file(path)}


def _inputs(
    log_path: Path | None,
    folder: ImageFolder | None,
    plan: PlannedSurvey | None,
    site: Path | None,
    dem: Path | None,
    flight: FlightLog | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if log_path is not None:
        out["log"] = {
            **_hash_record(log_path),
            "bytes": log_path.stat().st_size,
            "format": flight.report.format if flight is not None else None,
        }
    if folder is not None:
        out["images"] = {
            "path": str(folder.folder.resolve()),
            "count": len(folder.images),
            "unreadable": [name for name, _ in folder.skipped],
            "sha256": {rec.name: rec.sha256 for rec in folder.images},
        }
    if plan is not None:
        if plan.folder.is_file():  # a DJI WPML route (.kmz)
            files: tuple[Path, ...] = (plan.folder,)
        else:
            files = (plan.folder / "mission.geojson", plan.folder / "summary.json")
        out["plan"] = {
            "path": str(plan.folder.resolve()),
            "sha256": {p.name: sha256_file(p) for p in files if p.is_file()},
        }
    if site is not None:
        out["site"] = _hash_record(site)
    if dem is not None:
        out["dem"] = _hash_record(dem)
    return out


def _camera_record(cam: Camera | None, name: str | None) -> dict[str, Any] | None:
    if cam is None:
        return None
    return {"preset": name, **dataclasses.asdict(cam)}


def _clean(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


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
    say: Progress = progress or (lambda _msg: None)
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
    params = qc_params or QCParams()
    warnings = _Warnings()
    clock.lap("checks")

    flight: FlightLog | None = None
    if log_path is not None:
        say(f"reading the log {log_path.name} ...")
        flight = read_log(log_path)
        _log_warnings(flight, warnings)
        clock.lap("log")

    folder: ImageFolder | None = None
    tagged: GeotagResult | None = None
    qc: FlightQC | None = None
    if images_dir is not None:
        folder, tagged, qc = _photos(
            images_dir,
            flight,
            offset,
            camera=cam,
            site=site_ll,
            plan=planned,
            dem=dem_path,
            params=params,
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
    holes = _holes(qc, warnings) if qc is not None else []

    say(f"writing the outputs to {out_dir} ...")
    telemetry_csv = track_geojson = photos_geojson = geo_txt = None
    if flight is not None:
        telemetry_csv = write_telemetry_csv(flight, out_dir / "telemetry.csv")
        track_geojson = write_track_geojson(flight, out_dir / "track.geojson")
    copies: tuple[Path, ...] = ()
    if tagged is not None and qc is not None:
        photos_geojson = write_photos_geojson(tagged.photos, out_dir / "photos.geojson", qc.flags)
        geo_txt = write_geo_txt(tagged.photos, out_dir / "geo.txt")
        if copies_dir is not None:
            say(f"saving geotagged copies to {copies_dir} ...")
            copies = tuple(write_geotagged_copies(tagged.photos, copies_dir))
    clock.lap("write")

    task: NodeODMTask | None = None
    failure: NodeODMError | None = None
    if nodeodm is not None and folder is not None:
        say(f"sending the photos to NodeODM at {nodeodm.split('?')[0]} ...")
        try:
            task = submit_to_nodeodm(
                [rec.path for rec in folder.images], nodeodm, odm_options, geo_txt=geo_txt
            )
        except NodeODMError as exc:  # recorded in the report, then raised below
            failure = exc
            warnings.add("nodeodm_failed", str(exc))
        clock.lap("nodeodm")
    elif nodeodm is not None:
        warnings.add("nodeodm_skipped", "no photos: nothing was sent to NodeODM")

    written = [p for p in (telemetry_csv, track_geojson, photos_geojson, geo_txt) if p]
    outputs: dict[str, Any] = {p.name: _hash_record(p) for p in written}
    if copies:
        outputs["geotagged_copies"] = {
            "path": str(copies_dir.resolve() if copies_dir else out_dir),
            "sha256": {p.name: sha256_file(p) for p in copies},
        }
    report = _report(
        flight=flight,
        folder=folder,
        tagged=tagged,
        qc=qc,
        holes=holes,
        warnings=warnings,
        inputs=_inputs(log_path, folder, planned, site_path, dem_path, flight),
        parameters={
            "time_offset": offset,
            "camera": camera,
            "camera_model": _camera_record(cam, camera),
            "qc": dataclasses.asdict(params),
            "nodeodm_options": odm_options,
        },
        outputs=outputs,
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
        telemetry_csv=telemetry_csv,
        track_geojson=track_geojson,
        photos_geojson=photos_geojson,
        geo_txt=geo_txt,
        geotagged_copies=copies,
        nodeodm_task=task,
    )


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
    warnings: _Warnings,
    say: Progress,
    clock: Clock,
) -> tuple[ImageFolder, GeotagResult, FlightQC]:
    """Read the photos, place them on the flight and check them."""
    say(f"reading the photos in {images_dir} ...")
    folder = read_images(images_dir)
    _image_warnings(folder, warnings)
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
    _flag_warnings(tagged, qc, warnings)
    if site is None and plan is None:
        warnings.add(
            "no_site",
            "no site and no plan: the coverage of the site is not measured (pass --site or --plan)",
        )
    clock.lap("qc")
    return folder, tagged, qc


def _report(
    *,
    flight: FlightLog | None,
    folder: ImageFolder | None,
    tagged: GeotagResult | None,
    qc: FlightQC | None,
    holes: list[dict[str, Any]],
    warnings: _Warnings,
    inputs: dict[str, Any],
    parameters: dict[str, Any],
    outputs: dict[str, Any],
    task: NodeODMTask | None,
    clock: Clock,
    started: dt.datetime,
) -> dict[str, Any]:
    r = flight.report if flight is not None else None
    sources: Counter[str] = Counter(
        (p.position_source or "none") for p in (tagged.photos if tagged is not None else ())
    )
    offset = _offset_record(tagged)
    report = {
        "software": {"name": "sitewatch", "version": __version__},
        "command": "ingest",
        "messages": r.messages if r is not None else None,
        "bad_packets": r.bad_packets if r is not None else None,
        "gps_points": r.gps_points if r is not None else None,
        "camera_events": r.camera_events if r is not None else None,
        "images": len(folder.images) if folder is not None else 0,
        "images_unreadable": len(folder.skipped) if folder is not None else 0,
        "images_matched": tagged.images_matched if tagged is not None else 0,
        "images_placed": sum(p.has_position for p in tagged.photos) if tagged else 0,
        "position_sources": dict(sorted(sources.items())),
        "time_offset_s": offset["offset_s"] if offset is not None else None,
        "time_offset": offset,
        "unmatched_camera_events": len(tagged.unmatched_events) if tagged is not None else 0,
        "coverage": qc.figures() if qc is not None else None,
        "coverage_holes": holes,
        "log": r.to_dict() if r is not None else None,
        "nodeodm_task": task.to_dict() if task is not None else None,
        "warnings": warnings.items,
        "inputs": inputs,
        "parameters": parameters,
        "outputs": outputs,
        "timings_s": dict(clock.laps),
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
    }
    cleaned: dict[str, Any] = _clean(report)
    return cleaned
