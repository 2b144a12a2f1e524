"""Quality control of a flight's photos: per-photo flags and per-flight coverage figures.

:func:`check_flight` takes the geotagged photos (:func:`survey.ingest.geotag.geotag`) and
gives every photo a list of :class:`QCFlag` (a flag and its reason) and the flight its
figures: footprints from the camera model and pose (flat ground or a DEM,
:mod:`flightplans.footprints`), coverage of the site and of the planned area with their
holes, achieved GSD and front/side overlaps against the plan (:func:`read_plan` reads the
folder ``sitewatch plan --out DIR`` wrote).

Flags: ``no_position``, ``no_time``, ``blurred`` (variance of the Laplacian, on grey levels
normalised to unit contrast, below a fraction of the flight's median), ``dark`` / ``bright``
(mean brightness or clipping far from the flight's median), ``far_from_site``,
``not_nadir``, ``duplicate`` (same SHA-256, or the same position and time as another photo),
``no_footprint``, ``unreadable``.

Geometry is computed in a projected metric CRS, the UTM zone of the photos (a DEM file in
any CRS is sampled in it).

This module is longer than most (about 810 lines): it holds the per-photo and per-flight
checks together because the flight's figures (medians, footprints) feed the photos' flags.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image
from pyproj import CRS, Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from flightplans.camera import Camera, get_camera
from flightplans.errors import CameraError
from flightplans.footprints import (
    Coverage,
    Overlaps,
    achieved_overlaps,
    centre_gsd_cm,
    compute_coverage,
    image_footprint,
)
from survey.errors import InputFileError
from survey.ingest.geotag import GeotaggedPhoto
from survey.sites import read_dem_sampler, utm_crs_for

__all__ = [
    "FlightQC",
    "ImageStats",
    "PlannedSurvey",
    "QCFlag",
    "QCParams",
    "check_flight",
    "image_stats",
    "read_plan",
]

log = logging.getLogger(__name__)

_NAN = math.nan


@dataclass(frozen=True)
class QCFlag:
    """One finding about a photo: a short ``flag`` and the ``reason`` with its figures."""

    flag: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """``{"flag": ..., "reason": ...}`` as written to ``photos.geojson``."""
        return {"flag": self.flag, "reason": self.reason}


@dataclass(frozen=True)
class QCParams:
    """Thresholds of the checks (defaults follow common survey practice).

    Attributes
    ----------
    blur_ratio
        A photo is blurred when its sharpness (variance of the Laplacian) is below this
        fraction of the flight's median.
    dark_ratio, bright_ratio
        A photo is dark when its mean brightness is below ``dark_ratio`` times the flight's
        median; bright when its headroom (1 - brightness) is below ``bright_ratio`` times the
        median headroom.
    clip_frac
        ... or when more than this fraction of its pixels is black (<= 5) or white (>= 250).
    min_photos_for_stats
        Fewer photos than this: no flight median, no blur or exposure flags.
    far_m
        A photo farther than this from the site (m) is far from it (default: the larger of
        100 m and one footprint diagonal).
    nadir_tol_deg
        A camera pitch more than this from -90 is not nadir.
    duplicate_m, duplicate_s
        Two photos this close in position (m) and time (s) are duplicates.
    min_views
        A point seen by this many photos is well overlapped (holes and thin parts below).
    cell_m
        Coverage grid cell (m); ``None`` picks one
        (:func:`flightplans.footprints.compute_coverage`).
    sharpness_max_px
        Photos are decoded at the JPEG scale that keeps the long side at least this many
        pixels (1/2, 1/4 or 1/8 of full size) to measure sharpness and exposure.
    """

    blur_ratio: float = 0.35
    dark_ratio: float = 0.5
    bright_ratio: float = 0.35
    clip_frac: float = 0.3
    min_photos_for_stats: int = 5
    far_m: float | None = None
    nadir_tol_deg: float = 10.0
    duplicate_m: float = 0.5
    duplicate_s: float = 0.5
    min_views: int = 5
    cell_m: float | None = None
    sharpness_max_px: int = 2048


@dataclass(frozen=True)
class ImageStats:
    """Sharpness and exposure of one photo (on its grey levels, 0-255).

    ``sharpness`` is the variance of the Laplacian of the grey levels divided by their
    standard deviation (contrast-normalised: a dark photo is not also blurred);
    ``brightness`` the mean over 255;
    ``dark_frac`` / ``bright_frac`` the fractions of pixels at or below 5 / at or above 250.
    """

    sharpness: float
    brightness: float
    dark_frac: float
    bright_frac: float


@dataclass(frozen=True, eq=False)
class PlannedSurvey:
    """What a plan folder says (``mission.geojson`` and ``summary.json``), in WGS84.

    ``area`` is the part of the site the plan photographs: the union of its nominal
    footprints within the site and outside the no-fly zones.
    """

    folder: Path
    site: BaseGeometry
    nofly: BaseGeometry | None
    footprints: tuple[BaseGeometry, ...]
    area: BaseGeometry
    summary: Mapping[str, Any]

    @property
    def camera(self) -> Camera | None:
        """The plan's camera preset, ``None`` for a custom camera."""
        try:
            return get_camera(str(self.summary.get("camera", "")))
        except CameraError:
            return None


@dataclass(frozen=True, eq=False)
class FlightQC:
    """The findings of :func:`check_flight`.

    ``flags``, ``footprints`` (WGS84), ``stats`` and ``gsd_cm`` follow the photos' order.
    ``site`` and ``planned`` are the coverage of the site and of the planned area (in
    ``crs``); ``holes`` maps ``"site"`` / ``"planned"`` to their WGS84 holes and thin parts.
    """

    flags: tuple[tuple[QCFlag, ...], ...]
    footprints: tuple[BaseGeometry | None, ...]
    stats: tuple[ImageStats | None, ...]
    gsd_cm: tuple[float, ...]
    site: Coverage | None
    planned: Coverage | None
    overlaps: Overlaps | None
    crs: CRS
    holes: Mapping[str, tuple[BaseGeometry, BaseGeometry]] = field(default_factory=dict)
    plan_summary: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def figures(self) -> dict[str, Any]:
        """JSON-ready figures for ``report.json``."""
        counts: dict[str, int] = {}
        for fl in self.flags:
            for f in {q.flag for q in fl}:
                counts[f] = counts.get(f, 0) + 1
        gsd = np.array([g for g in self.gsd_cm if math.isfinite(g)])
        out: dict[str, Any] = {
            "images": len(self.flags),
            "images_flagged": sum(1 for fl in self.flags if fl),
            "flags": dict(sorted(counts.items())),
            "footprints": sum(1 for f in self.footprints if f is not None),
            "gsd_cm_median": _round(float(np.median(gsd))) if len(gsd) else None,
            "gsd_cm_max": _round(float(gsd.max())) if len(gsd) else None,
            "planned_gsd_cm": self.plan_summary.get("gsd_cm"),
            "crs": self.crs.to_string(),
        }
        if self.overlaps is not None:
            o = self.overlaps
            out.update(
                front_overlap_pct_median=_round(o.front_median_pct),
                front_overlap_pct_min=_round(o.front_min_pct),
                side_overlap_pct_median=_round(o.side_median_pct),
                side_overlap_pct_min=_round(o.side_min_pct),
                flight_lines=o.n_lines,
                planned_front_pct=self.plan_summary.get("front_pct"),
                planned_side_pct=self.plan_summary.get("side_pct"),
            )
        for key, cov in (("site", self.site), ("planned_area", self.planned)):
            out[key] = _coverage_figures(cov) if cov is not None else None
        return out


def _round(v: float, nd: int = 3) -> float | None:
    return round(v, nd) if math.isfinite(v) else None


def _coverage_figures(c: Coverage) -> dict[str, Any]:
    return {
        "area_m2": round(c.area_m2, 1),
        "covered_pct": round(100.0 * c.covered_frac, 2),
        "overlapped_pct": round(100.0 * c.overlapped_frac, 2),
        "min_views": c.min_views,
        "views_median": c.views_median,
        "holes": len(shapely.get_parts(c.holes)) if not c.holes.is_empty else 0,
        "holes_m2": round(c.holes.area, 1),
        "thin_m2": round(c.thin.area, 1),
        "cell_m": round(c.cell_m, 3),
    }


# ----------------------------------------------------------------------------- plan folder


def _read_wpml_plan(path: Path) -> PlannedSurvey:
    """A DJI WPML route (``.kmz``) as the planned survey: its nadir photos' footprints."""
    from flightplans.wpml_read import read_wpml, wpml_survey

    wf = read_wpml(path)
    survey = wpml_survey(wf)
    fps = tuple(survey.footprints)
    if not fps:
        raise InputFileError(
            f"{path}: the route's aircraft {wf.drone_enums} with payload {wf.payload_enum} is "
            "not one sitewatch knows a camera for, so its planned footprints are unknown; pass "
            "the folder `sitewatch plan --out DIR` wrote, or --site without --plan"
        )
    covered = shapely.union_all(list(fps))
    if wf.site:
        site = shapely.union_all(list(wf.site))
        site_source = "the route template's polygon"
    else:
        site = covered
        site_source = "assumed: the planned photos' footprints (the route has no site polygon)"
        log.warning(
            "%s: a waypoint route carries no site polygon; the area its photos cover stands "
            "for the site (pass --site for the site's own boundary)",
            path,
        )
    summary: dict[str, Any] = {
        **survey.figures,
        "source": "wpml",
        "drone": wf.drone.name if wf.drone else None,
        "home_amsl_m": wf.takeoff_amsl_m,
        "execute_height_modes": sorted({r.execute_height_mode for r in wf.routes}),
        "site_source": site_source,
    }
    return PlannedSurvey(path, site, None, fps, covered.intersection(site), summary)


def read_plan(folder: str | os.PathLike[str]) -> PlannedSurvey:
    """Read the site, no-fly zones, footprints and figures of a ``sitewatch plan`` folder, or of
    a DJI WPML route file (``.kmz``, ours or one made in DJI Pilot 2 / FlightHub 2).

    A WPML route's planned area is the union of the nominal footprints of its nadir photos
    (:func:`flightplans.wpml_read.wpml_survey`, the payload's camera at the route's height
    above the take-off point); its site is the template's polygon (mapping templates) or, for
    a waypoint route, that area (one warning line).

    Raises
    ------
    InputFileError
        No ``mission.geojson`` in the folder, or it is not a plan's GeoJSON; a route whose
        aircraft has no known camera.
    flightplans.errors.PlanFileError
        A ``.kmz`` that is not a usable WPML route (one line naming it).
    """
    root = Path(folder)
    if root.is_file():
        if root.suffix.lower() != ".kmz":
            raise InputFileError(
                f"{root}: --plan takes the folder `sitewatch plan --out DIR` wrote or a DJI "
                "WPML route (.kmz); pass one of them"
            )
        return _read_wpml_plan(root)
    path = root / "mission.geojson"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        feats = doc["features"]
    except FileNotFoundError as exc:
        raise InputFileError(
            f"{path}: no such file; pass the folder `sitewatch plan --out DIR` wrote"
        ) from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputFileError(
            f"{path}: not a plan's mission.geojson ({exc}); write it again with sitewatch plan"
        ) from exc
    by_kind: dict[str, list[BaseGeometry]] = {}
    for f in feats:
        kind = (f.get("properties") or {}).get("kind")
        if kind in ("site", "nofly", "footprint") and f.get("geometry"):
            by_kind.setdefault(kind, []).append(shape(f["geometry"]))
    if not by_kind.get("site"):
        raise InputFileError(
            f"{path}: has no 'site' feature; pass the folder `sitewatch plan --out DIR` wrote"
        )
    site = shapely.union_all(by_kind["site"])
    nofly = shapely.union_all(by_kind["nofly"]) if by_kind.get("nofly") else None
    fps = tuple(by_kind.get("footprint", ()))
    target = site.difference(nofly) if nofly is not None else site
    area = shapely.union_all(list(fps)).intersection(target) if fps else target
    summary: dict[str, Any] = {}
    try:
        summary = json.loads((root / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        log.warning("%s: no readable summary.json; planned GSD and overlaps unknown", root)
    return PlannedSurvey(root, site, nofly, fps, area, summary)


# ----------------------------------------------------------------------------- pixels


def image_stats(path: str | os.PathLike[str], max_px: int = 2048) -> ImageStats:
    """Sharpness and exposure of a photo, decoded read-only at a reduced JPEG scale.

    Raises
    ------
    InputFileError
        The file cannot be decoded.
    """
    try:
        # damaged metadata was reported when the photo was read: only the pixels matter here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
                scale = max(1.0, max(w, h) / max_px)
                im.draft("L", (math.ceil(w / scale), math.ceil(h / scale)))
                grey8 = np.asarray(im.convert("L"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputFileError(
            f"{path}: cannot be decoded ({exc}); the file may be truncated"
        ) from exc
    g = grey8.astype(np.float32)
    # 4-neighbour Laplacian on the interior, by slicing (no per-pixel Python)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    contrast = max(float(g.var(dtype=np.float64)), 1e-12)
    return ImageStats(
        # normalised to unit contrast, so that a dark or hazy photo is not also called blurred
        sharpness=float(lap.var(dtype=np.float64)) / contrast,
        brightness=float(g.mean(dtype=np.float64) / 255.0),
        dark_frac=float((grey8 <= 5).mean()),
        bright_frac=float((grey8 >= 250).mean()),
    )


def _pixel_flags(stats: Sequence[ImageStats | None], params: QCParams) -> list[list[QCFlag]]:
    out: list[list[QCFlag]] = [[] for _ in stats]
    ok = [s for s in stats if s is not None]
    if len(ok) < params.min_photos_for_stats:
        return out
    sharp_med = float(np.median([s.sharpness for s in ok]))
    bright_med = float(np.median([s.brightness for s in ok]))
    for flags, s in zip(out, stats, strict=True):
        if s is None:
            continue
        if sharp_med > 0 and s.sharpness < params.blur_ratio * sharp_med:
            flags.append(
                QCFlag(
                    "blurred",
                    (
                        f"sharpness (variance of the Laplacian) {s.sharpness:.1f} is "
                        f"{s.sharpness / sharp_med:.2f} of the flight's median {sharp_med:.1f} "
                        f"(threshold {params.blur_ratio:g})"
                    ),
                )
            )
        if s.brightness < params.dark_ratio * bright_med or s.dark_frac > params.clip_frac:
            flags.append(
                QCFlag(
                    "dark",
                    (
                        f"mean brightness {s.brightness:.2f} against the flight's median "
                        f"{bright_med:.2f} (threshold {params.dark_ratio:g} of it); "
                        f"{100 * s.dark_frac:.0f} % of pixels black"
                    ),
                )
            )
        headroom, med_headroom = 1.0 - s.brightness, 1.0 - bright_med
        if headroom < params.bright_ratio * med_headroom or s.bright_frac > params.clip_frac:
            flags.append(
                QCFlag(
                    "bright",
                    (
                        f"mean brightness {s.brightness:.2f} against the flight's median "
                        f"{bright_med:.2f}; {100 * s.bright_frac:.0f} % of pixels white"
                    ),
                )
            )
    return out


# ----------------------------------------------------------------------------- geometry


def _working_crs(photos: Sequence[GeotaggedPhoto], site: BaseGeometry | None) -> CRS:
    lons = [p.lon for p in photos if p.has_position]
    lats = [p.lat for p in photos if p.has_position]
    if lons:
        return utm_crs_for(float(np.median(lons)), float(np.median(lats)))
    if site is not None and not site.is_empty:
        c = site.centroid
        return utm_crs_for(c.x, c.y)
    return CRS.from_epsg(3857)


def _oriented(camera: Camera, photo: GeotaggedPhoto) -> Camera:
    """The camera turned to the photo's stored orientation (portrait photos swap sides)."""
    w, h = photo.image.width_px, photo.image.height_px
    if w and h and (h > w) != (camera.image_h_px > camera.image_w_px):
        return dataclasses.replace(
            camera,
            sensor_w_mm=camera.sensor_h_mm,
            sensor_h_mm=camera.sensor_w_mm,
            image_w_px=camera.image_h_px,
            image_h_px=camera.image_w_px,
        )
    return camera


def _pick_camera(
    camera: Camera | None,
    photos: Sequence[GeotaggedPhoto],
    plan: PlannedSurvey | None,
    warnings: list[str],
) -> Camera | None:
    if camera is not None:
        return camera
    if plan is not None and plan.camera is not None:
        _warn(warnings, f"camera model from the plan: {plan.camera.label or plan.camera.name}")
        return plan.camera
    for p in photos:
        cam = p.image.camera()
        if cam is not None:
            _warn(
                warnings,
                f"camera model from the EXIF of {p.name}: sensor "
                f"{cam.sensor_w_mm:.2f} mm wide, focal {cam.focal_mm:.2f} mm; pass a "
                "camera preset if that is wrong",
            )
            return cam
    _warn(
        warnings,
        "no camera model (no preset given, none in the plan or the EXIF): no "
        "footprints, coverage or GSD",
    )
    return None


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    log.warning("%s", message)


Sampler = Callable[[np.ndarray, np.ndarray], np.ndarray]


def check_flight(
    photos: Sequence[GeotaggedPhoto],
    *,
    camera: Camera | None = None,
    site: BaseGeometry | None = None,
    plan: PlannedSurvey | None = None,
    ground_m: float | None = None,
    dem: str | os.PathLike[str] | Sampler | None = None,
    crs: CRS | str | int | None = None,
    params: QCParams | None = None,
    pixels: bool = True,
) -> FlightQC:
    """Check a flight's photos and measure what the flight achieved.

    Parameters
    ----------
    photos
        Geotagged photos, any order (overlaps are measured in time order).
    camera
        Camera model; default the plan's preset, else one from the photos' EXIF.
    site
        Site polygon(s) in WGS84 (lon, lat); default the plan's site.
    plan
        The plan (:func:`read_plan`): planned area, GSD and overlaps to compare with.
    ground_m
        Flat ground height above sea level (m). Without it and without ``dem`` the ground
        is taken at the take-off level (heights above take-off), with a warning.
    dem
        A DEM GeoTIFF (any CRS, read through :func:`survey.sites.read_dem_sampler`), or a
        sampler ``f(x, y) -> z`` in ``crs``; camera heights are then taken above sea level.
    crs
        The projected CRS to compute in (default: the photos' UTM zone).
    params
        Thresholds (:class:`QCParams`).
    pixels
        Decode the photos for blur and exposure (off: geometry only).

    Returns
    -------
    FlightQC
    """
    prm = params or QCParams()
    warnings: list[str] = []
    n = len(photos)
    site_ll = site if site is not None else (plan.site if plan is not None else None)
    work = CRS.from_user_input(crs) if crs is not None else _working_crs(photos, site_ll)
    to_m = Transformer.from_crs(4326, work, always_xy=True)
    to_ll = Transformer.from_crs(work, 4326, always_xy=True)

    def proj(g: BaseGeometry) -> BaseGeometry:
        return shapely.transform(g, lambda c: np.column_stack(to_m.transform(c[:, 0], c[:, 1])))

    def unproj(g: BaseGeometry) -> BaseGeometry:
        return shapely.transform(g, lambda c: np.column_stack(to_ll.transform(c[:, 0], c[:, 1])))

    flags: list[list[QCFlag]] = [[] for _ in range(n)]
    lon = np.array([p.lon for p in photos], dtype=np.float64)
    lat = np.array([p.lat for p in photos], dtype=np.float64)
    x, y = (np.asarray(v) for v in to_m.transform(lon, lat)) if n else (np.zeros(0), np.zeros(0))
    _record_flags(photos, flags)
    stats = _pixel_checks(photos, prm, flags, warnings) if pixels else [None] * n
    # footprints
    cam = _pick_camera(camera, photos, plan, warnings)
    ground, z_of = _ground(photos, ground_m, dem, work, x, y, plan, warnings)
    fps, gsd = _footprints(photos, cam, ground, z_of, x, y, flags)
    # attitude, distance, duplicates
    _attitude_flags(photos, prm, flags)
    site_m = proj(site_ll) if site_ll is not None else None
    if site_m is not None:
        _far_flags(photos, site_m, fps, x, y, prm, flags)
    _duplicate_flags(photos, x, y, prm, flags)
    # coverage and overlaps
    site_cov = planned_cov = None
    holes: dict[str, tuple[BaseGeometry, BaseGeometry]] = {}
    if cam is not None and site_m is not None:
        site_cov = compute_coverage(fps, site_m, min_views=prm.min_views, cell_m=prm.cell_m)
        holes["site"] = (unproj(site_cov.holes), unproj(site_cov.thin))
    if cam is not None and plan is not None and not plan.area.is_empty:
        planned_cov = compute_coverage(
            fps, proj(plan.area), min_views=prm.min_views, cell_m=prm.cell_m
        )
        holes["planned"] = (unproj(planned_cov.holes), unproj(planned_cov.thin))
    overlaps = None
    if cam is not None:
        order = sorted(
            range(n),
            key=lambda k: (photos[k].time_utc is None, photos[k].time_utc or 0, photos[k].name),
        )
        xy = np.column_stack([x, y])[order] if n else np.zeros((0, 2))
        overlaps = achieved_overlaps(xy, [fps[k] for k in order])
    return FlightQC(
        flags=tuple(tuple(f) for f in flags),
        footprints=tuple(unproj(f) if f is not None else None for f in fps),
        stats=tuple(stats),
        gsd_cm=tuple(gsd),
        site=site_cov,
        planned=planned_cov,
        overlaps=overlaps,
        crs=work,
        holes=holes,
        plan_summary=dict(plan.summary) if plan is not None else {},
        warnings=tuple(warnings),
    )


def _record_flags(photos: Sequence[GeotaggedPhoto], flags: list[list[QCFlag]]) -> None:
    """Flag the photos without a position or a capture time."""
    for k, p in enumerate(photos):
        if not p.has_position:
            flags[k].append(
                QCFlag(
                    "no_position",
                    "no position from the photo or the log; "
                    "it cannot be placed or used for coverage",
                )
            )
        if p.time_utc is None:
            flags[k].append(
                QCFlag("no_time", "no capture time in the photo and no camera event paired with it")
            )


def _pixel_checks(
    photos: Sequence[GeotaggedPhoto],
    prm: QCParams,
    flags: list[list[QCFlag]],
    warnings: list[str],
) -> list[ImageStats | None]:
    """Decode each photo for blur and exposure and flag those off the flight's median (or
    unreadable); a warning when too few decode for a median."""
    stats: list[ImageStats | None] = [None] * len(photos)
    for k, p in enumerate(photos):
        try:
            stats[k] = image_stats(p.image.path, prm.sharpness_max_px)
        except InputFileError as exc:
            flags[k].append(QCFlag("unreadable", str(exc)))
    for k, extra in enumerate(_pixel_flags(stats, prm)):
        flags[k].extend(extra)
    if sum(s is not None for s in stats) < prm.min_photos_for_stats:
        _warn(
            warnings,
            f"fewer than {prm.min_photos_for_stats} photos decoded: no flight "
            "median, blur and exposure not checked",
        )
    return stats


def _footprints(
    photos: Sequence[GeotaggedPhoto],
    cam: Camera | None,
    ground: float | Sampler | None,
    z_of: Callable[[int], float],
    x: np.ndarray,
    y: np.ndarray,
    flags: list[list[QCFlag]],
) -> tuple[list[BaseGeometry | None], list[float]]:
    """Each photo's ground footprint (working CRS) and centre GSD (cm); a photo without a
    camera height or whose view misses the ground is flagged ``no_footprint``."""
    n = len(photos)
    fps: list[BaseGeometry | None] = [None] * n
    gsd = [_NAN] * n
    for k, p in enumerate(photos):
        if cam is None or not p.has_position:
            continue
        z = z_of(k)
        pitch = p.pitch_deg if math.isfinite(p.pitch_deg) else -90.0
        yaw = p.yaw_deg if math.isfinite(p.yaw_deg) else 0.0
        roll = p.roll_deg if math.isfinite(p.roll_deg) else 0.0
        if ground is None or not math.isfinite(z):
            flags[k].append(QCFlag("no_footprint", "no camera height for this photo"))
            continue
        c = _oriented(cam, p)
        fp = image_footprint(c, (x[k], y[k], z), yaw, pitch, roll, ground)
        if fp is None:
            flags[k].append(
                QCFlag(
                    "no_footprint",
                    (
                        f"the image does not meet the ground within range (pitch {pitch:.1f} deg, "
                        f"height {z:.1f} m): it looks at or above the horizon or off the DEM"
                    ),
                )
            )
            continue
        fps[k] = fp
        gsd[k] = centre_gsd_cm(c, (x[k], y[k], z), yaw, pitch, roll, ground)
    return fps, gsd


def _far_flags(
    photos: Sequence[GeotaggedPhoto],
    site_m: BaseGeometry,
    fps: list[BaseGeometry | None],
    x: np.ndarray,
    y: np.ndarray,
    prm: QCParams,
    flags: list[list[QCFlag]],
) -> None:
    """Flag the photos farther from the site than ``prm.far_m`` (default: a footprint's
    diagonal, at least 100 m)."""
    diag = [math.dist(f.bounds[:2], f.bounds[2:]) for f in fps if f is not None]
    far = (
        prm.far_m if prm.far_m is not None else max(100.0, float(np.median(diag)) if diag else 0.0)
    )
    for k, p in enumerate(photos):
        if p.has_position:
            d = float(shapely.distance(site_m, shapely.points(x[k], y[k])))
            if d > far:
                flags[k].append(
                    QCFlag("far_from_site", (f"{d:.0f} m from the site (threshold {far:.0f} m)"))
                )


def _ground(
    photos: Sequence[GeotaggedPhoto],
    ground_m: float | None,
    dem: str | os.PathLike[str] | Sampler | None,
    work: CRS,
    x: np.ndarray,
    y: np.ndarray,
    plan: PlannedSurvey | None,
    warnings: list[str],
) -> tuple[float | Sampler | None, Callable[[int], float]]:
    """The ground for footprints and each photo's camera height in the same datum."""

    def amsl(k: int) -> float:
        return photos[k].alt_m

    if dem is not None:
        if callable(dem):
            return dem, amsl
        finite = np.isfinite(x) & np.isfinite(y)
        bounds = (
            (
                float(x[finite].min()),
                float(y[finite].min()),
                float(x[finite].max()),
                float(y[finite].max()),
            )
            if finite.any()
            else None
        )
        return read_dem_sampler(dem, work, bounds=bounds, margin_m=1000.0), amsl
    if ground_m is not None:
        return float(ground_m), amsl
    if any(math.isfinite(p.alt_rel_m) for p in photos):
        _warn(
            warnings,
            "no DEM and no ground height: footprints assume flat ground at the "
            "take-off level (heights above take-off); pass a DEM or the ground height "
            "for a site on a slope",
        )
        return 0.0, lambda k: photos[k].alt_rel_m
    home = plan.summary.get("home_amsl_m") if plan is not None else None
    if isinstance(home, int | float) and math.isfinite(home):
        _warn(
            warnings,
            f"no DEM, ground height or height above take-off: footprints assume "
            f"flat ground at the plan's home elevation {home:.1f} m above sea level",
        )
        return float(home), amsl
    _warn(warnings, "no DEM, no ground height and no height above take-off: no footprints")
    return None, amsl


def _attitude_flags(
    photos: Sequence[GeotaggedPhoto], prm: QCParams, flags: list[list[QCFlag]]
) -> None:
    for k, p in enumerate(photos):
        src = p.sources.get("pitch_deg", "")
        if not math.isfinite(p.pitch_deg) or src.startswith("assumed"):
            continue
        off = abs(p.pitch_deg + 90.0)
        if off > prm.nadir_tol_deg:
            flags[k].append(
                QCFlag(
                    "not_nadir",
                    (
                        f"camera pitch {p.pitch_deg:.1f} deg is {off:.1f} deg from nadir (-90; "
                        f"tolerance {prm.nadir_tol_deg:g} deg)"
                    ),
                )
            )


def _duplicate_flags(
    photos: Sequence[GeotaggedPhoto],
    x: np.ndarray,
    y: np.ndarray,
    prm: QCParams,
    flags: list[list[QCFlag]],
) -> None:
    first_of: dict[str, int] = {}
    for k, p in enumerate(photos):
        h = p.image.sha256
        if h in first_of:
            flags[k].append(
                QCFlag(
                    "duplicate",
                    (f"same content (SHA-256 {h[:12]}...) as {photos[first_of[h]].name}"),
                )
            )
        else:
            first_of[h] = k
    t = np.array([p.time_utc.timestamp() if p.time_utc is not None else _NAN for p in photos])
    order = np.argsort(t, kind="stable")
    for a_pos, a in enumerate(order):
        if not math.isfinite(t[a]):
            break
        for b in order[a_pos + 1 :]:
            if not math.isfinite(t[b]) or t[b] - t[a] > prm.duplicate_s:
                break
            same_hash = photos[a].image.sha256 == photos[b].image.sha256
            d = math.hypot(x[a] - x[b], y[a] - y[b])
            if not same_hash and d <= prm.duplicate_m:
                flags[b].append(
                    QCFlag(
                        "duplicate",
                        (
                            f"same position ({d:.2f} m) and time ({t[b] - t[a]:.2f} s) as "
                            f"{photos[a].name}"
                        ),
                    )
                )
