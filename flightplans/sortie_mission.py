"""The MAVLink mission of one sortie: waypoints along its lines and transits, camera commands,
altitudes (following the terrain when there is a DEM), flight time (:class:`SortieBuilder`).

The layout of the items is the one :mod:`flightplans.planner`'s docstring gives (Conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyproj import Transformer

from flightplans.grid import Transect
from flightplans.mission import (
    FRAME_AMSL,
    MAV_CMD_DO_SET_CAM_TRIGG_DIST,
    MAV_CMD_IMAGE_START_CAPTURE,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_NAV_TAKEOFF,
    MAV_CMD_NAV_WAYPOINT,
    Mission,
    MissionItem,
)
from flightplans.ordering import polyline_length, polyline_time
from flightplans.params import PlanParams
from flightplans.sorties import sortie_path
from flightplans.survey_plan import Sortie
from flightplans.terrain import Terrain, terrain_profile

__all__ = ["FRAME_MISSION", "SortieBuilder"]

FRAME_MISSION = 2  # MAV_FRAME_MISSION, what QGroundControl writes for commands without a place
_NAN = math.nan


@dataclass
class _Node:
    xy: tuple[float, float]
    actions: list[MissionItem] = field(default_factory=list)
    hold: float = 0.0
    emit: bool = True


@dataclass
class SortieBuilder:
    """Builds each sortie's :class:`Sortie` (its mission, path, photos and flight time)."""

    params: PlanParams
    home: tuple[float, float]
    home_amsl: float
    height: float
    tol: float
    trigger: float
    frame: int
    terrain: Terrain | None
    to_ll: Transformer
    path: Any

    def _nodes(self, transects: tuple[Transect, ...]) -> tuple[list[_Node], np.ndarray, list]:
        p = self.params
        nodes: list[_Node] = []
        photos: list[np.ndarray] = []
        bearings: list[np.ndarray] = []
        pos = self.home
        on = MissionItem(
            MAV_CMD_DO_SET_CAM_TRIGG_DIST, FRAME_MISSION, (self.trigger, 0.0, 1.0, 0.0)
        )
        off = MissionItem(MAV_CMD_DO_SET_CAM_TRIGG_DIST, FRAME_MISSION, (0.0, 0.0, 0.0, 0.0))
        for t in transects:
            for q in self.path(pos, t.entry())[1:-1]:
                nodes.append(_Node((float(q[0]), float(q[1]))))
            if t.lead_in > 0:
                nodes.append(_Node(t.entry()))
            ph = t.photo_positions(self.trigger)
            dx, dy = t.direction()
            bearing = math.degrees(math.atan2(dx, dy)) % 360.0
            photos.append(ph)
            bearings.append(np.full(len(ph), bearing))
            if p.hover_capture:
                for q in ph:
                    cap = MissionItem(
                        MAV_CMD_IMAGE_START_CAPTURE, FRAME_MISSION, (0.0, 0.0, 1.0, 0.0)
                    )
                    nodes.append(_Node((float(q[0]), float(q[1])), [cap], p.hover_hold_s))
                if np.hypot(*(ph[-1] - np.asarray(t.end))) > 1e-3:
                    nodes.append(_Node(t.end))
            else:
                nodes.append(_Node(t.start, [on]))
                nodes.append(_Node(t.end, [off]))
            if t.lead_out > 0:
                nodes.append(_Node(t.exit()))
            pos = t.exit()
        for q in self.path(pos, self.home)[1:-1]:
            nodes.append(_Node((float(q[0]), float(q[1]))))
        nodes.append(_Node(self.home))
        ph_all = np.vstack(photos) if photos else np.zeros((0, 2))
        return nodes, ph_all, bearings

    def _alt_of(self, amsl: float) -> float:
        if self.frame == FRAME_AMSL:
            return amsl
        return amsl - self.home_amsl

    def _with_altitudes(self, nodes: list[_Node]) -> list[tuple[_Node, float]]:
        p = self.params
        if self.terrain is None:
            return [(n, self.height) for n in nodes]
        out: list[tuple[_Node, float]] = []
        prev = self.home
        for n in nodes:
            xy, alt = terrain_profile(
                prev, n.xy, self.terrain, self.height, self.tol, p.max_alt_m, p.terrain_step_m
            )
            for q, z in zip(xy[1:-1], alt[1:-1], strict=True):
                out.append((_Node((float(q[0]), float(q[1]))), self._alt_of(float(z))))
            out.append((n, self._alt_of(float(alt[-1]))))
            prev = n.xy
        return out

    def build(
        self, number: int, transects: tuple[Transect, ...], overhead: float, stop_s: float
    ) -> Sortie:
        p = self.params
        nodes, photos, bearings = self._nodes(transects)
        placed = self._with_altitudes(nodes)
        lon0, lat0 = self.to_ll.transform(*self.home)
        takeoff_alt = self._alt_of(self.home_amsl + self.height) if self.terrain else self.height
        takeoff_alt = round(float(takeoff_alt), 3)
        items = [
            MissionItem(
                MAV_CMD_NAV_TAKEOFF, self.frame, (0.0, 0.0, 0.0, _NAN), lat0, lon0, takeoff_alt
            )
        ]
        xy = np.array([n.xy for n, _ in placed])
        lon, lat = self.to_ll.transform(xy[:, 0], xy[:, 1])
        for k, (n, alt) in enumerate(placed):
            items.append(
                MissionItem(
                    MAV_CMD_NAV_WAYPOINT,
                    self.frame,
                    (n.hold, 0.0, 0.0, _NAN),
                    float(lat[k]),
                    float(lon[k]),
                    round(float(alt), 3),
                )
            )
            items.extend(n.actions)
        items.append(MissionItem(MAV_CMD_NAV_RETURN_TO_LAUNCH, FRAME_MISSION))
        path = sortie_path(transects, self.home, self.path)
        n_ph = len(photos)
        duration = (
            polyline_time(path, p.speed_ms, p.accel_ms2)
            + overhead
            + (n_ph * stop_s if p.hover_capture else 0.0)
        )
        mission = Mission(
            home=(float(lat0), float(lon0), float(self.home_amsl)),
            items=tuple(items),
            cruise_speed_ms=p.speed_ms,
            hover_speed_ms=p.hover_speed_ms(),
            stats={
                "length_m": polyline_length(path),
                "duration_s": duration,
                "n_photos": n_ph,
            },
            meta={"sortie": number, "camera": p.camera.name},
        )
        return Sortie(
            number=number,
            mission=mission,
            transects=transects,
            path=path,
            photos=photos,
            photo_bearing=np.concatenate(bearings) if bearings else np.zeros(0),
            length_m=polyline_length(path),
            duration_s=duration,
        )
