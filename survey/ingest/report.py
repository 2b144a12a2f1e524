"""``report.json`` of an ingest: the figures, the warnings gathered from every stage with their
reasons, and the provenance (inputs and outputs with their SHA-256, the software version, the
parameters). :func:`survey.ingest.run.run_ingest` gathers them through :class:`Warnings` and
the record functions here and writes :func:`ingest_report`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer

from flightplans.camera import Camera
from survey import __version__
from survey.ingest.geotag import GeotagResult
from survey.ingest.images import ImageFolder
from survey.ingest.odm import NodeODMTask
from survey.ingest.qc import FlightQC, PlannedSurvey
from survey.ingest.telemetry import FlightLog
from survey.outputs import Clock
from survey.rasters import sha256_file

__all__ = [
    "MAX_HOLES_LISTED",
    "Warnings",
    "camera_record",
    "flag_warnings",
    "hash_record",
    "holes_record",
    "image_warnings",
    "ingest_report",
    "inputs_record",
    "log_warnings",
    "offset_record",
]

log = logging.getLogger(__name__)

#: Holes listed one by one in ``report.json`` (largest first); the rest are counted.
MAX_HOLES_LISTED = 50


def _finite(v: float | None, nd: int = 3) -> float | None:
    return round(float(v), nd) if v is not None and math.isfinite(v) else None


class Warnings:
    """``report.json``'s ``warnings``: each a reason, a message and details."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, reason: str, message: str, *, logged: bool = False, **details: Any) -> None:
        """Record one warning; log it as one line unless a library module already did."""
        if not logged:
            log.warning("%s", message)
        self.items.append({"reason": reason, "message": message, **details})


def log_warnings(flight: FlightLog, warnings: Warnings) -> None:
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


def image_warnings(folder: ImageFolder, warnings: Warnings) -> None:
    for name, reason in folder.skipped:  # already logged by read_images
        warnings.add("unreadable_image", reason, logged=True, image=name)
    for rec in folder.images:
        for text in rec.warnings:  # already logged by read_image
            warnings.add("image_metadata", text, logged=True, image=rec.name)


def flag_warnings(result: GeotagResult, qc: FlightQC, warnings: Warnings) -> None:
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


def holes_record(qc: FlightQC, warnings: Warnings) -> list[dict[str, Any]]:
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


def offset_record(result: GeotagResult | None) -> dict[str, Any] | None:
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


def hash_record(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve()), "sha256": sha256_file(path)}


def inputs_record(
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
            **hash_record(log_path),
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
        out["site"] = hash_record(site)
    if dem is not None:
        out["dem"] = hash_record(dem)
    return out


def camera_record(cam: Camera | None, name: str | None) -> dict[str, Any] | None:
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


def ingest_report(
    *,
    flight: FlightLog | None,
    folder: ImageFolder | None,
    tagged: GeotagResult | None,
    qc: FlightQC | None,
    holes: list[dict[str, Any]],
    warnings: Warnings,
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
    offset = offset_record(tagged)
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
