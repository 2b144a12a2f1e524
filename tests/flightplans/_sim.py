"""Independent simulation of what a written mission photographs.

Reads nothing from the planner: it walks the MAVLink items of a mission read back from a
``.plan`` or ``.waypoints`` file the way a vehicle would (NAV_WAYPOINTs flown as straight legs,
DO_SET_CAM_TRIGG_DIST p3 = 1 shooting at once and then every p1 metres along the legs until
0, IMAGE_START_CAPTURE shooting where the vehicle is) and rasterizes the camera footprints
(side x front rectangles along the leg being flown) on a fine grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

from flightplans.mission import (
    MAV_CMD_DO_SET_CAM_TRIGG_DIST,
    MAV_CMD_IMAGE_START_CAPTURE,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_NAV_TAKEOFF,
    MAV_CMD_NAV_WAYPOINT,
    Mission,
)


@dataclass
class Flight:
    """Waypoints (n, 2) metres with altitudes (n,), photos (m, 2) and their bearings (m,)."""

    waypoints: np.ndarray
    alts: np.ndarray
    photos: np.ndarray
    bearings: np.ndarray
    photo_alts: np.ndarray
    trigger_spans: list[np.ndarray]


def simulate(mission: Mission, crs: CRS | int) -> Flight:
    """Fly ``mission`` in ``crs`` (metres)."""
    tr = Transformer.from_crs(4326, crs, always_xy=True)
    hx, hy = tr.transform(mission.home[1], mission.home[0])
    pos = np.array([hx, hy])
    wps, alts = [pos.copy()], [0.0]
    photos: list[np.ndarray] = []
    bearings: list[float] = []
    photo_alts: list[float] = []
    spans: list[np.ndarray] = []
    span: list[np.ndarray] | None = None
    dist = 0.0
    since = 0.0
    pending_first = False  # a photo at the trigger point whose bearing is the next leg's
    cur_alt = 0.0
    items = list(mission.items)
    for it in items:
        if it.command in (MAV_CMD_NAV_WAYPOINT, MAV_CMD_NAV_TAKEOFF):
            x, y = tr.transform(it.lon, it.lat)
            nxt = np.array([x, y])
            leg = nxt - pos
            length = float(np.hypot(*leg))
            if length > 1e-9:
                u = leg / length
                b = math.degrees(math.atan2(u[0], u[1]))
                if pending_first:
                    bearings.append(b)
                    pending_first = False
                if dist > 0:
                    s = dist - since
                    while s <= length + 1e-9:
                        photos.append(pos + u * s)
                        bearings.append(b)
                        photo_alts.append(cur_alt + (it.alt - cur_alt) * s / length)
                        s += dist
                    since = length - (s - dist)
            pos = nxt
            cur_alt = it.alt
            wps.append(pos.copy())
            alts.append(it.alt)
            if span is not None:
                span.append(pos.copy())
        elif it.command == MAV_CMD_DO_SET_CAM_TRIGG_DIST:
            if pending_first:  # trigger switched off before moving: keep the last bearing
                bearings.append(bearings[-1] if bearings else 0.0)
                pending_first = False
            if it.params[0] > 0:
                dist = it.params[0]
                since = 0.0
                if it.params[2] == 1:
                    photos.append(pos.copy())
                    photo_alts.append(cur_alt)
                    pending_first = True
                span = [pos.copy()]
            else:
                dist = 0.0
                if span is not None:
                    spans.append(np.array(span))
                span = None
        elif it.command == MAV_CMD_IMAGE_START_CAPTURE:
            photos.append(pos.copy())
            photo_alts.append(cur_alt)
            bearings.append(_leg_bearing(wps))
        elif it.command == MAV_CMD_NAV_RETURN_TO_LAUNCH:
            wps.append(np.array([hx, hy]))
            alts.append(alts[-1])
    if pending_first:
        bearings.append(bearings[-1] if bearings else 0.0)
    return Flight(
        np.array(wps),
        np.array(alts),
        np.array(photos).reshape(-1, 2),
        np.array(bearings),
        np.array(photo_alts),
        spans,
    )


def _leg_bearing(wps: list[np.ndarray]) -> float:
    for k in range(len(wps) - 1, 0, -1):
        d = wps[k] - wps[k - 1]
        if np.hypot(*d) > 1e-6:
            return math.degrees(math.atan2(d[0], d[1]))
    return 0.0


def coverage_counts(
    target: BaseGeometry,
    photos: np.ndarray,
    bearings: np.ndarray,
    side: float | np.ndarray,
    front: float | np.ndarray,
    res: float = 1.0,
) -> np.ndarray:
    """Number of footprints over each point of a ``res`` grid inside ``target``."""
    minx, miny, maxx, maxy = target.bounds
    xs = np.arange(minx + res / 2, maxx, res)
    ys = np.arange(miny + res / 2, maxy, res)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    inside = shapely.contains_xy(target, pts[:, 0], pts[:, 1])
    pts = pts[inside]
    counts = np.zeros(len(pts), dtype=np.int32)
    side_a = np.broadcast_to(np.asarray(side, dtype=float), (len(photos),))
    front_a = np.broadcast_to(np.asarray(front, dtype=float), (len(photos),))
    for c, b, w, f in zip(photos, np.radians(bearings), side_a, front_a, strict=True):
        d = pts - c
        along = d[:, 0] * math.sin(b) + d[:, 1] * math.cos(b)
        across = d[:, 0] * math.cos(b) - d[:, 1] * math.sin(b)
        counts += (np.abs(along) <= f / 2) & (np.abs(across) <= w / 2)
    return counts
