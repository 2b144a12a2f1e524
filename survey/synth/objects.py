"""The objects of the synthetic survey site: buildings, trees, hedges, cars, piles, the road,
permits, the truth of every planted change, and the :class:`Layout` that holds them.

Everything is vector geometry in the site's UTM CRS (metres); :mod:`survey.synth.layout` draws
them from the seed and :mod:`survey.synth.render` paints the rasters from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

__all__ = [
    "CAR_HEIGHT_M",
    "CAR_LENGTH_M",
    "CAR_WIDTH_M",
    "MIN_AREA_M2",
    "MIN_HEIGHT_M",
    "RGB",
    "STOREY_HEIGHT_M",
    "Box",
    "Building",
    "Car",
    "Hedge",
    "Layout",
    "Permit",
    "Pile",
    "Road",
    "Tree",
    "TruthFeature",
]

RGB = tuple[float, float, float]

CAR_LENGTH_M = 4.5
CAR_WIDTH_M = 1.8
CAR_HEIGHT_M = 1.5
STOREY_HEIGHT_M = 3.0
MIN_AREA_M2 = 6.0
MIN_HEIGHT_M = 2.5


@dataclass(frozen=True)
class Box:
    """A rectangle: centre (E, N) in metres, length along ``angle_deg`` (counter-clockwise
    from east), width across it."""

    cx: float
    cy: float
    length: float
    width: float
    angle_deg: float

    def polygon(self) -> Polygon:
        """The rectangle as a shapely polygon (UTM metres)."""
        u = np.array([-1.0, 1.0, 1.0, -1.0]) * self.length / 2
        v = np.array([-1.0, -1.0, 1.0, 1.0]) * self.width / 2
        a = math.radians(self.angle_deg)
        e = self.cx + u * math.cos(a) - v * math.sin(a)
        n = self.cy + u * math.sin(a) + v * math.cos(a)
        return Polygon(np.column_stack([e, n]))

    def local(self, e: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local coordinates (u along the length, v across) of points (e, n), in metres."""
        a = math.radians(self.angle_deg)
        de, dn = e - self.cx, n - self.cy
        return de * math.cos(a) + dn * math.sin(a), -de * math.sin(a) + dn * math.cos(a)

    def inside(self, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Boolean mask of the points inside the rectangle."""
        u, v = self.local(e, n)
        return (np.abs(u) <= self.length / 2) & (np.abs(v) <= self.width / 2)


@dataclass(frozen=True)
class Building:
    """A building: footprint, eave height above its base, roof shape and colour per epoch.

    ``height_after`` is None when the building is unchanged; ``before``/``after`` say in which
    epochs it stands. ``corrugated`` roofs (steel sheets) are painted with ribs running down
    the slope (in colour only: the DSM resolves no 2 cm corrugation).
    """

    name: str
    footprint: Box
    height: float
    roof: str  # "flat" or "gable"
    ridge: float
    colour: RGB
    before: bool = True
    after: bool = True
    height_after: float | None = None
    colour_after: RGB | None = None
    corrugated: bool = False


@dataclass(frozen=True)
class Tree:
    """A tree crown: centre, radius and height above ground in each epoch (it grows)."""

    name: str
    cx: float
    cy: float
    radius_before: float
    height_before: float
    radius_after: float
    height_after: float
    lobes_phase: float

    def crown(self, radius: float) -> Polygon:
        """Crown outline (the lobed radius the raster is painted with), UTM metres."""
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        return _radial_polygon(
            self.cx, self.cy, radius * (1.0 + 0.08 * np.sin(5 * t + self.lobes_phase))
        )


def _radial_polygon(cx: float, cy: float, radii: np.ndarray) -> Polygon:
    """Star-shaped outline: ``radii[k]`` at angle 2·pi·k/n around (cx, cy), UTM metres."""
    t = np.linspace(0, 2 * np.pi, len(radii), endpoint=False)
    return Polygon(np.column_stack([cx + radii * np.cos(t), cy + radii * np.sin(t)]))


@dataclass(frozen=True)
class Hedge:
    """A hedge: a long narrow strip of shrubs with a rough top, ``height_before`` and
    ``height_after`` above the ground in each epoch (0: not there)."""

    name: str
    footprint: Box
    height_before: float
    height_after: float


@dataclass(frozen=True)
class Car:
    """A parked car in one or both epochs."""

    name: str
    footprint: Box
    colour: RGB
    before: bool
    after: bool


@dataclass(frozen=True)
class Pile:
    """A new small object of irregular outline (material pile) or a shed (box)."""

    name: str
    cx: float
    cy: float
    radii: tuple[float, ...]
    height: float
    colour: RGB

    def polygon(self) -> Polygon:
        """Outline through the sampled radii (UTM metres)."""
        return _radial_polygon(self.cx, self.cy, np.asarray(self.radii))


@dataclass(frozen=True)
class Road:
    """A straight asphalt road through the point (px, py) at ``angle_deg``, ``width`` wide."""

    px: float
    py: float
    angle_deg: float
    width: float

    def polygon(self, length: float) -> Polygon:
        """The road as a rectangle of the given length centred on (px, py)."""
        return Box(self.px, self.py, length, self.width, self.angle_deg).polygon()


@dataclass(frozen=True)
class Permit:
    """A building permit: footprint, maximum height above ground, floors and validity."""

    permit_id: str
    footprint: Polygon
    max_height_m: float
    floors: int
    valid_from: str
    valid_to: str


@dataclass
class TruthFeature:
    """One planted change or distractor (``props`` get height_change_m when rendered)."""

    geometry: BaseGeometry
    props: dict[str, Any]


@dataclass
class Layout:
    """Everything placed on the site, in UTM metres."""

    site: Polygon
    center: tuple[float, float]
    roads: list[Road]
    buildings: list[Building]
    trees: list[Tree]
    cars: list[Car]
    piles: list[Pile]
    shed: Building
    permits: list[Permit]
    truth: list[TruthFeature]
    occupied: list[BaseGeometry] = field(default_factory=list)
    hedges: list[Hedge] = field(default_factory=list)
