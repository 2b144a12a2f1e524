"""How the synthetic layout is drawn from the seed: the rejection sampler of free positions
(:class:`Placer`), what one draw's steps share (:class:`Drawing`: the generator, the sampler,
the street's bearing, the planted roofs' colours and the objects drawn so far) and the palettes.

Every step draws from the one generator in a fixed order, so a seed always gives the same
site: a step added later goes after the others (see :func:`survey.synth.layout.plan_layout`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from survey.errors import SynthParamsError
from survey.synth.objects import RGB, Box, Building, Permit, Tree, TruthFeature
from survey.synth.params import SynthParams

__all__ = [
    "BLUE_STEEL",
    "CAR_COLOURS",
    "EXISTING_ROOFS",
    "GREEN_ROOF",
    "GREEN_STEEL",
    "PLANTED_ROOFS",
    "Drawing",
    "Placer",
    "box_maker",
    "crown_maker",
    "uniform",
]

log = logging.getLogger(__name__)

#: Roof colours of planted (new or raised) structures: saturated, unlike ground and old roofs.
PLANTED_ROOFS: tuple[RGB, ...] = (
    (0.22, 0.42, 0.78),  # blue steel sheet
    (0.78, 0.26, 0.16),  # red tile
    (0.93, 0.93, 0.90),  # white membrane
    (0.16, 0.62, 0.62),  # teal sheet
    (0.90, 0.58, 0.16),  # orange
    (0.55, 0.22, 0.60),  # purple coating
)
#: Roof colours of existing buildings: weathered greys, browns and dull reds.
EXISTING_ROOFS: tuple[RGB, ...] = (
    (0.52, 0.52, 0.50),
    (0.62, 0.58, 0.50),
    (0.45, 0.30, 0.26),
    (0.38, 0.40, 0.44),
    (0.70, 0.68, 0.62),
    (0.55, 0.40, 0.32),
)
#: Colour-steel (彩钢) sheets of the planted sheds, the commonest illegal structure in Chinese
#: cities: green (the colour of leaves to RGB indices) and blue.
GREEN_STEEL: RGB = (0.24, 0.56, 0.34)
BLUE_STEEL: RGB = (0.20, 0.40, 0.76)
#: Weathered green roof of the demolished green-roofed building.
GREEN_ROOF: RGB = (0.30, 0.52, 0.30)
CAR_COLOURS: tuple[RGB, ...] = (
    (0.92, 0.92, 0.92),
    (0.10, 0.10, 0.12),
    (0.70, 0.10, 0.10),
    (0.20, 0.30, 0.65),
    (0.60, 0.62, 0.64),
    (0.85, 0.75, 0.20),
)


class Placer:
    """Rejection sampler of non-touching footprints inside the site."""

    def __init__(self, rng: np.random.Generator, inner: Polygon, params: SynthParams) -> None:
        self.rng = rng
        self.inner = inner
        self.params = params
        self.taken: list[BaseGeometry] = []
        self.bounds = inner.bounds

    def free(self, geom: BaseGeometry, clearance: float) -> bool:
        """Whether ``geom`` lies inside the site, ``clearance`` away from everything taken."""
        if not geom.within(self.inner):
            return False
        grown = geom.buffer(clearance, join_style="mitre")
        return not any(grown.intersects(t) for t in self.taken)

    def place(
        self,
        make: Callable[[float, float], BaseGeometry | None],
        clearance: float,
        what: str,
        required: bool = True,
        tries: int = 600,
    ) -> tuple[float, float] | None:
        """Draw centres until ``make(cx, cy)`` returns a free geometry; reserve and return it."""
        e0, n0, e1, n1 = self.bounds
        for _ in range(tries):
            cx = float(self.rng.uniform(e0, e1))
            cy = float(self.rng.uniform(n0, n1))
            geom = make(cx, cy)
            if geom is not None and self.free(geom, clearance):
                self.taken.append(geom)
                return cx, cy
        if required:
            raise SynthParamsError(
                f"size_m={self.params.size_m} is too small to place the {what} with seed "
                f"{self.params.seed}; pass a larger --size-m or another --seed"
            )
        log.debug("skipped %s: no free position", what)
        return None


def box_maker(length: float, width: float, angle: float) -> Callable[[float, float], Polygon]:
    """The rectangle of this size and angle at a centre drawn by :meth:`Placer.place`."""

    def make(x: float, y: float) -> Polygon:
        return Box(x, y, length, width, angle).polygon()

    return make


def crown_maker(radius: float, phase: float) -> Callable[[float, float], Polygon]:
    """The tree crown of this radius and lobe phase at a centre drawn by :meth:`Placer.place`."""

    def make(x: float, y: float) -> Polygon:
        return Tree("", x, y, radius, 0.0, radius, 0.0, phase).crown(radius * 1.02)

    return make


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw of ``rng.uniform(lo, hi)`` as a float."""
    return float(rng.uniform(lo, hi))


@dataclass
class Drawing:
    """What the steps of one layout draw share; they append to ``buildings``, ``permits`` and
    ``truth``.

    ``scale`` (0.5 to 1) shrinks the objects' size ranges on sites under 160 m, ``street`` is
    the road's bearing (degrees counter-clockwise from east) that buildings align with,
    ``clear`` the default clearance between buildings (m), ``roofs`` the planted structures'
    roof colours in the order they are used.
    """

    rng: np.random.Generator
    params: SynthParams
    placer: Placer
    street: float
    scale: float
    clear: float
    roofs: Iterator[RGB]
    buildings: list[Building] = field(default_factory=list)
    permits: list[Permit] = field(default_factory=list)
    truth: list[TruthFeature] = field(default_factory=list)

    @classmethod
    def start(
        cls, rng: np.random.Generator, params: SynthParams, placer: Placer, street: float
    ) -> Drawing:
        """The drawing after the site and the road: scale, clearance, shuffled roof colours."""
        size = params.size_m
        s = float(np.clip(size / 160.0, 0.5, 1.0))
        clear = max(1.5, 4.0 * s) if size < 100 else 4.0 * s
        roofs = list(PLANTED_ROOFS)
        rng.shuffle(roofs)
        return cls(rng, params, placer, street, s, clear, iter(roofs * 3))

    @property
    def size(self) -> float:
        """Side of the site raster (m)."""
        return self.params.size_m

    def uniform(self, lo: float, hi: float) -> float:
        """One uniform draw in [lo, hi)."""
        return uniform(self.rng, lo, hi)

    def jitter(self) -> float:
        """A building's bearing: the street's within 6 degrees, turned 90 degrees 3 times in 10."""
        return self.street + self.uniform(-6.0, 6.0) + (90.0 if self.rng.random() < 0.3 else 0.0)

    def place_box(
        self, length: float, width: float, what: str, clearance: float | None = None
    ) -> Box:
        """A free rectangle of this size at a drawn bearing (:meth:`jitter`), reserved."""
        angle = self.jitter()
        pos = self.placer.place(
            lambda x, y: Box(x, y, length, width, angle).polygon(),
            self.clear if clearance is None else clearance,
            what,
        )
        assert pos is not None
        return Box(pos[0], pos[1], length, width, angle)

    def add_truth(
        self,
        geometry: BaseGeometry,
        change_id: str,
        kind: str,
        *,
        must_flag: bool,
        expected_class: str | None = None,
        permit_id: str | None = None,
        **more: Any,
    ) -> None:
        """Record a planted change or distractor (``more``: further properties, in order)."""
        props: dict[str, Any] = {
            "change_id": change_id,
            "kind": kind,
            "must_flag": must_flag,
            "expected_class": expected_class,
            "permit_id": permit_id,
            **more,
        }
        self.truth.append(TruthFeature(geometry, props))
