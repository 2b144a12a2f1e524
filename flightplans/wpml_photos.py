"""The photos a DJI WPML route plans, for a coverage check: :func:`wpml_survey`.

The planned photo positions (every trigger distance along each photo interval, as the
aircraft shoots them, and each ``reachPoint`` photo), their heights above ground and nominal
footprints with the payload's camera, and the figures (GSD, trigger distance, line spacing,
overlaps) of a :class:`~flightplans.wpml_read.WpmlFile`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon

from flightplans.camera import Camera
from flightplans.mission import MAV_CMD_NAV_WAYPOINT
from flightplans.wpml_archive import unusable_route

if TYPE_CHECKING:
    from flightplans.wpml_read import WpmlFile, WpmlRoute

__all__ = ["WpmlSurvey", "wpml_survey"]


@dataclass(frozen=True, eq=False)
class WpmlSurvey:
    """The photos a WPML file plans (:func:`wpml_survey`), WGS84.

    ``lonlat`` (n, 2) photo positions, ``bearing_deg`` (n,) direction of flight there,
    ``height_agl_m`` (n,) height above ground (flat ground at take-off level unless the file's
    heights are above the ground), ``nadir`` (n,) whether the camera looks down,
    ``footprints`` the nominal footprints of the nadir photos with ``camera`` (empty without
    one), ``figures`` the survey's figures for ``summary.json``.
    """

    lonlat: np.ndarray
    bearing_deg: np.ndarray
    height_agl_m: np.ndarray
    nadir: np.ndarray
    footprints: tuple[Polygon, ...]
    figures: dict[str, Any]


def _local(lon0: float, lat0: float) -> tuple[Transformer, Transformer]:
    aeqd = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
    return (
        Transformer.from_crs(4326, aeqd, always_xy=True),
        Transformer.from_crs(aeqd, 4326, always_xy=True),
    )


def _agl(wf: WpmlFile, route: WpmlRoute, alt: np.ndarray) -> tuple[np.ndarray, str]:
    mode = route.execute_height_mode
    if mode == "relativeToStartPoint":
        return alt, "height above take-off (flat ground assumed)"
    if mode == "realTimeFollowSurface":
        return alt, "height above ground (terrain following)"
    if wf.takeoff_amsl_m is not None:
        return alt - wf.takeoff_amsl_m, "height above the take-off point (flat ground assumed)"
    if wf.global_height_m is not None:
        return np.full_like(alt, wf.global_height_m), "the template's global height"
    raise unusable_route(
        wf.path,
        "its heights are above the ellipsoid and it names neither a take-off point nor a global "
        "height, so the photos' height above ground is unknown",
    )


def _rectangles(
    c: np.ndarray, bearing: np.ndarray, side: np.ndarray, front: np.ndarray
) -> np.ndarray:
    b = np.radians(bearing)
    d = np.column_stack([np.sin(b), np.cos(b)]) * (front / 2)[:, None]
    n = np.column_stack([np.cos(b), -np.sin(b)]) * (side / 2)[:, None]
    return np.stack([c + d + n, c + d - n, c - d - n, c - d + n, c + d + n], axis=1)


def wpml_survey(wf: WpmlFile, camera: Camera | None = None) -> WpmlSurvey:
    """The planned photos of ``wf``, their footprints and the survey's figures.

    Photos lie every interval distance along the polyline of waypoints from an interval's
    start to its end (the first at the start, as the planner places them), and at each
    ``reachPoint`` photo. ``camera`` defaults to the payload's (:attr:`WpmlFile.camera`).

    Raises
    ------
    PlanFileError
        Absolute heights with neither take-off point nor global height (height above ground
        unknown).
    """
    cam = camera or wf.camera
    first = next(it for it in wf.routes[0].mission.items if it.command == MAV_CMD_NAV_WAYPOINT)
    fwd, inv = _local(first.lon, first.lat)
    xs: list[np.ndarray] = []
    bearings: list[np.ndarray] = []
    heights: list[np.ndarray] = []
    nadir: list[np.ndarray] = []
    triggers: list[float] = []
    spacings: list[float] = []
    length = 0.0
    how = ""
    for r in wf.routes:
        wps = [it for it in r.mission.items if it.command == MAV_CMD_NAV_WAYPOINT]
        lon = np.array([w.lon for w in wps])
        lat = np.array([w.lat for w in wps])
        alt = np.array([w.alt for w in wps])
        x, y = fwd.transform(lon, lat)
        xy = np.column_stack([x, y])
        agl, how = _agl(wf, r, alt)
        seg = np.diff(xy, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        length += float(seg_len.sum())
        seg_b = np.degrees(np.arctan2(seg[:, 0], seg[:, 1])) % 360.0 if len(seg) else np.zeros(0)
        prev: tuple[np.ndarray, np.ndarray] | None = None
        for iv in r.intervals:
            pts = xy[iv.start : iv.end + 1]
            hs = agl[iv.start : iv.end + 1]
            s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
            n = math.floor(s[-1] / iv.distance_m + 1e-6) + 1
            at = np.arange(n) * iv.distance_m
            k = np.clip(np.searchsorted(s, at, side="right") - 1, 0, max(len(s) - 2, 0))
            if len(s) > 1:
                span = np.where(s[k + 1] > s[k], s[k + 1] - s[k], 1.0)
                f = np.clip((at - s[k]) / span, 0.0, 1.0)[:, None]
                p = pts[k] + f * (pts[k + 1] - pts[k])
                hh = hs[k] + f[:, 0] * (hs[k + 1] - hs[k])
                bb = seg_b[iv.start + k]
            else:
                p, hh, bb = pts[:1].copy(), hs[:1].copy(), np.zeros(1)
            xs.append(p)
            heights.append(hh)
            bearings.append(bb)
            nadir.append(np.full(len(p), r.is_nadir))
            triggers.append(iv.distance_m)
            if len(pts) >= 2:
                a, b = pts[0], pts[-1]
                if prev is not None:
                    u = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
                    pu = (prev[1] - prev[0]) / max(float(np.hypot(*(prev[1] - prev[0]))), 1e-9)
                    if abs(u[0] * pu[1] - u[1] * pu[0]) < 0.05:  # parallel lines
                        mid = (a + b) / 2
                        dv = mid - prev[0]
                        spacings.append(abs(float(dv[0] * pu[1] - dv[1] * pu[0])))
                prev = (a, b)
        for i in r.captures:
            xs.append(xy[i : i + 1])
            heights.append(agl[i : i + 1])
            j = min(i, len(seg_b) - 1)
            bearings.append(seg_b[j : j + 1] if len(seg_b) else np.zeros(1))
            nadir.append(np.array([r.is_nadir]))
    pos = np.vstack(xs) if xs else np.zeros((0, 2))
    bea = np.concatenate(bearings) if bearings else np.zeros(0)
    agl_all = np.concatenate(heights) if heights else np.zeros(0)
    nad = np.concatenate(nadir).astype(bool) if nadir else np.zeros(0, dtype=bool)
    lo, la = inv.transform(pos[:, 0], pos[:, 1])
    lonlat = np.column_stack([lo, la]) if len(pos) else np.zeros((0, 2))
    footprints: tuple[Polygon, ...] = ()
    figures: dict[str, Any] = {
        "n_photos": len(pos),
        "n_nadir_photos": int(nad.sum()),
        "n_routes": len(wf.routes),
        "length_m": round(length, 1),
        "height_agl_source": how,
        "camera": cam.name if cam else None,
        "camera_label": cam.label if cam else None,
        "trigger_m": round(float(np.median(triggers)), 3) if triggers else None,
        "spacing_m": round(float(np.median(spacings)), 3) if spacings else None,
    }
    good = nad & np.isfinite(agl_all) & (agl_all > 0)
    if cam is not None and good.any():
        h = agl_all[good]
        side, front = cam.footprint_m(1.0)
        rings = _rectangles(pos[good], bea[good], side * h, front * h)
        lon_r, lat_r = inv.transform(rings[..., 0].ravel(), rings[..., 1].ravel())
        rings_ll = np.stack([lon_r, lat_r], axis=-1).reshape(rings.shape)
        footprints = tuple(shapely.polygons(rings_ll))
        hm = float(np.median(h))
        figures["alt_m"] = round(hm, 3)
        figures["gsd_cm"] = round(cam.gsd_cm(hm), 4)
        if triggers:
            figures["front_pct"] = round(100.0 * (1.0 - float(np.median(triggers)) / (front * hm)))
        if spacings:
            figures["side_pct"] = round(100.0 * (1.0 - float(np.median(spacings)) / (side * hm)))
    return WpmlSurvey(lonlat, bea, agl_all, nad, footprints, figures)
