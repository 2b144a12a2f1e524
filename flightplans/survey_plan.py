"""What a survey plan is: :class:`SurveyPlan` of battery-sized :class:`Sortie` s, and the nominal
photo footprints along the flight (:func:`footprint_rectangles`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from flightplans.grid import Transect
from flightplans.mission import Mission
from flightplans.params import PlanParams

__all__ = ["Sortie", "SurveyPlan", "footprint_rectangles"]


@dataclass(frozen=True, eq=False)
class Sortie:
    """One battery's flight.

    ``path`` is the (n, 2) horizontal route home → home in the plan CRS (m); ``photos`` the
    (m, 2) photo centres and ``photo_bearing`` (m,) the direction of flight at each (degrees).
    """

    number: int
    mission: Mission
    transects: tuple[Transect, ...]
    path: np.ndarray
    photos: np.ndarray
    photo_bearing: np.ndarray
    length_m: float
    duration_s: float


@dataclass(frozen=True, eq=False)
class SurveyPlan:
    """The result of :func:`plan_survey`: geometry in ``crs`` (metres), missions in WGS84."""

    crs: CRS
    site: BaseGeometry
    nofly: BaseGeometry | None
    keepout: BaseGeometry | None
    params: PlanParams
    home: tuple[float, float]
    home_amsl: float
    alt_m: float
    gsd_cm: float
    footprint_m: tuple[float, float]
    spacing_m: float
    trigger_m: float
    angle_deg: float
    alt_frame: int
    sorties: tuple[Sortie, ...]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def missions(self) -> tuple[Mission, ...]:
        """One mission per sortie, in flying order."""
        return tuple(s.mission for s in self.sorties)

    @property
    def photos(self) -> np.ndarray:
        """(n, 2) all photo centres (plan CRS, m)."""
        arrs = [s.photos for s in self.sorties]
        return np.vstack(arrs) if arrs else np.zeros((0, 2))

    @property
    def photo_bearing(self) -> np.ndarray:
        """(n,) direction of flight at each photo, degrees clockwise from grid north."""
        arrs = [s.photo_bearing for s in self.sorties]
        return np.concatenate(arrs) if arrs else np.zeros(0)

    def footprints(self) -> list[Polygon]:
        """Nominal photo footprints (plan CRS): side x front rectangles along the flight."""
        return footprint_rectangles(self.photos, self.photo_bearing, *self.footprint_m)

    def to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """(n, 2) plan-CRS metres to (n, 2) longitude, latitude degrees."""
        tr = Transformer.from_crs(self.crs, 4326, always_xy=True)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        lon, lat = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    def summary(self) -> dict[str, Any]:
        """The figures written to ``summary.json``."""
        return dict(self.stats)


def footprint_rectangles(
    centres: np.ndarray, bearing_deg: np.ndarray, side_m: float, front_m: float
) -> list[Polygon]:
    """Rectangles ``side_m`` across by ``front_m`` along the flight direction at each centre."""
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    b = np.radians(np.asarray(bearing_deg, dtype=np.float64))
    d = np.column_stack([np.sin(b), np.cos(b)]) * (front_m / 2)
    n = np.column_stack([np.cos(b), -np.sin(b)]) * (side_m / 2)
    corners = np.stack([c + d + n, c + d - n, c - d - n, c - d + n, c + d + n], axis=1)
    return list(shapely.polygons(corners))
