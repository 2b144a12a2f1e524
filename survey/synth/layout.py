"""Layout of the synthetic survey site: where the objects, the planted changes, permits and
truth go (:func:`plan_layout`).

Everything here is vector geometry in the site's UTM CRS (metres). Positions are drawn from
the seed with rejection sampling so that no two objects touch; the rasters are painted from
this layout by :mod:`survey.synth.render`. The objects are :mod:`survey.synth.objects` (their
names are re-exported here), the sampler and the palettes :mod:`survey.synth.drawing`, the
planted changes and distractors :mod:`survey.synth.planted`.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from shapely.geometry import Polygon, box

from survey.errors import SynthParamsError
from survey.synth.drawing import (
    BLUE_STEEL,
    CAR_COLOURS,
    EXISTING_ROOFS,
    GREEN_STEEL,
    Drawing,
    Placer,
    box_maker,
    crown_maker,
    uniform,
)
from survey.synth.objects import (
    CAR_HEIGHT_M,
    CAR_LENGTH_M,
    CAR_WIDTH_M,
    MIN_AREA_M2,
    MIN_HEIGHT_M,
    RGB,
    STOREY_HEIGHT_M,
    Box,
    Building,
    Car,
    Hedge,
    Layout,
    Permit,
    Pile,
    Road,
    Tree,
    TruthFeature,
)
from survey.synth.params import SynthParams
from survey.synth.planted import (
    place_hedge,
    place_pile,
    place_shed,
    plant_added_storey,
    plant_demolition,
    plant_extension,
    plant_green_roof_demolition,
    plant_new_structures,
    plant_permitted_building,
    plant_steel_sheds,
)

__all__ = [
    "BLUE_STEEL",
    "CAR_HEIGHT_M",
    "CAR_LENGTH_M",
    "CAR_WIDTH_M",
    "GREEN_STEEL",
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
    "plan_layout",
    "site_box",
]

log = logging.getLogger(__name__)


def plan_layout(params: SynthParams, origin: tuple[float, float]) -> Layout:
    """Draw the site layout from ``params.seed``.

    Parameters
    ----------
    params : SynthParams
    origin : (x0, y0)
        UTM coordinates of the raster's upper-left corner in metres.

    Returns
    -------
    Layout
        Roads, buildings (with the colour-steel sheds and the demolished green-roofed
        building), trees, the hedge, cars, piles, the shed, permits and the truth features
        (``height_change_m`` not yet filled).
    """
    error: SynthParamsError | None = None
    for attempt in range(_ATTEMPTS):
        key = [params.seed, 1] if attempt == 0 else [params.seed, 1, attempt]
        try:
            return _plan_once(params, origin, np.random.default_rng(key))
        except SynthParamsError as exc:  # crowded draw on a small site: draw again
            error = exc
            log.debug("layout attempt %d failed: %s", attempt, exc)
    assert error is not None
    raise error


_ATTEMPTS = 8


def _plan_once(
    params: SynthParams, origin: tuple[float, float], rng: np.random.Generator
) -> Layout:
    """One draw of the layout; the steps draw from ``rng`` in this order, which the seeds'
    scenes depend on: add a step at the end."""
    size = params.size_m
    x0, y0 = origin
    center = (x0 + size / 2, y0 - size / 2)
    site, inner = _site_outline(params, origin, rng)
    placer = Placer(rng, inner, params)
    road = _road(params, center, rng)
    placer.taken.append(road.polygon(3 * size).intersection(site.buffer(50)))
    d = Drawing.start(rng, params, placer, road.angle_deg)
    plant_extension(d)
    plant_added_storey(d)
    plant_permitted_building(d)
    plant_demolition(d)
    plant_new_structures(d)
    _expired_permit_lot(d)
    _existing_buildings(d)
    shed = place_shed(d)
    pile = place_pile(d)
    cars = _cars(d, road, inner)
    # placed after the cars so every object before them keeps its place
    plant_steel_sheds(d)
    if size >= 80.0:  # a small site has no room left for it (and for two trees)
        plant_green_roof_demolition(d)
    hedge = place_hedge(d)
    trees = _trees(d)
    for feat in d.truth:
        feat.props["area_m2"] = round(float(feat.geometry.area), 3)
    return Layout(
        site=site,
        center=center,
        roads=[road],
        buildings=d.buildings,
        trees=trees,
        cars=cars,
        piles=[pile],
        shed=shed,
        permits=d.permits,
        truth=d.truth,
        occupied=list(placer.taken),
        hedges=[hedge],
    )


def _site_outline(
    params: SynthParams, origin: tuple[float, float], rng: np.random.Generator
) -> tuple[Polygon, Polygon]:
    """The site boundary (the raster inset, one corner chamfered) and the part of it objects
    are placed in."""
    size = params.size_m
    x0, y0 = origin
    inset = max(3.0, 0.06 * size)
    cham = uniform(rng, 0.08, 0.16) * size
    e0, n0, e1, n1 = x0 + inset, y0 - size + inset, x0 + size - inset, y0 - inset
    site = Polygon([(e0, n0), (e1, n0), (e1, n1 - cham), (e1 - cham, n1), (e0, n1)])
    inner = site.buffer(-1.0 if size < 100 else -2.0, join_style="mitre")
    return site, inner


def _road(params: SynthParams, center: tuple[float, float], rng: np.random.Generator) -> Road:
    """The straight road across the site, near its centre, within 25 degrees of east."""
    size = params.size_m
    street = uniform(rng, -25.0, 25.0)
    a = math.radians(street)
    off = uniform(rng, -0.12, 0.12) * size
    road_w = uniform(rng, 6.0, 7.5) if size >= 100 else uniform(rng, 5.0, 6.0)
    return Road(center[0] - off * math.sin(a), center[1] + off * math.cos(a), street, road_w)


def _expired_permit_lot(d: Drawing) -> None:
    """An expired permit over an unchanged lot."""
    s = d.scale
    fp = d.place_box(
        d.uniform(6.0, 6.0 + 6 * s),
        d.uniform(5.0, 5.0 + 5 * s),
        "expired permit lot",
        clearance=1.5,
    )
    d.permits.append(Permit("P-2022-008", fp.polygon(), 9.0, 3, "2022-06-01", "2025-06-30"))


def _existing_buildings(d: Drawing) -> None:
    """Existing, unchanged buildings, flat and pitched, 3 to 20 m (one per 3000 m², at least
    two; the first two required on sites of 80 m and more)."""
    s, size = d.scale, d.size
    n_existing = max(2, round(size * size / 3000.0))
    for i in range(n_existing):
        length = d.uniform(8.0, 8.0 + 12 * s)
        width = d.uniform(7.0, 7.0 + 6 * s)
        angle = d.jitter()
        pos = d.placer.place(
            box_maker(length, width, angle),
            d.clear,
            f"building {i}",
            required=i < 2 and size >= 80.0,
        )
        if pos is None:
            continue
        gable = bool(d.rng.random() < 0.5)
        fpb = Box(pos[0], pos[1], length, width, angle)
        d.buildings.append(
            Building(
                f"existing-{i + 1}",
                fpb,
                d.uniform(3.0, 3.0 + 17.0 * s),
                "gable" if gable else "flat",
                d.uniform(1.5, 3.5) if gable else 0.0,
                EXISTING_ROOFS[int(d.rng.integers(len(EXISTING_ROOFS)))],
            )
        )


def _car_slots(d: Drawing, road: Road, inner: Polygon) -> list[Box]:
    """Parking places along the road inside the site, 1 m apart: five plus one per 60 m."""
    size, rng = d.size, d.rng
    a = math.radians(road.angle_deg)
    slots: list[Box] = []
    n_slots = 5 + max(1, round(size / 60.0))
    for _ in range(n_slots * 40):
        if len(slots) == n_slots:
            break
        along = float(rng.uniform(-size / 2, size / 2))
        side = 1.0 if rng.random() < 0.5 else -1.0
        lat = side * (road.width / 2 - 1.3)
        car = Box(
            road.px + along * math.cos(a) - lat * math.sin(a),
            road.py + along * math.sin(a) + lat * math.cos(a),
            CAR_LENGTH_M,
            CAR_WIDTH_M,
            road.angle_deg,
        )
        poly = car.polygon()
        if poly.within(inner) and not any(poly.buffer(1.0).intersects(o.polygon()) for o in slots):
            slots.append(car)
    if len(slots) < 5:
        raise SynthParamsError(
            f"size_m={size} leaves too little road for the cars with seed {d.params.seed}; "
            "pass a larger --size-m"
        )
    return slots


def _cars(d: Drawing, road: Road, inner: Polygon) -> list[Car]:
    """Cars along the road: two that moved, one that left, one that arrived (each spot in the
    truth, not to be flagged), the rest parked in both epochs."""
    slots = _car_slots(d, road, inner)
    colours = [CAR_COLOURS[int(i)] for i in d.rng.integers(len(CAR_COLOURS), size=len(slots))]
    cars: list[Car] = []
    # slots 0/1 and 2/3: a car that moved (before -> after); 4: departed; 5: arrived; rest static
    moved = [(0, 1), (2, 3)]
    for m, (i, j) in enumerate(moved):
        cars.append(Car(f"car-{m + 1}-before", slots[i], colours[i], True, False))
        cars.append(Car(f"car-{m + 1}-after", slots[j], colours[i], False, True))
    cars.append(Car("car-3-before", slots[4], colours[4], True, False))
    if len(slots) > 5:
        cars.append(Car("car-4-after", slots[5], colours[5], False, True))
    for i in range(6, len(slots)):
        cars.append(Car(f"car-static-{i}", slots[i], colours[i], True, True))
    for car in cars:
        if car.before != car.after:
            d.add_truth(
                car.footprint.polygon(),
                car.name,
                "car_moved",
                must_flag=False,
                note="car left this spot" if car.before else "car parked here",
            )
    return cars


def _trees(d: Drawing) -> list[Tree]:
    """Trees that grow between the epochs (one per 900 m², at least four; the first two
    required), each in the truth as growth not to be flagged."""
    size = d.size
    trees: list[Tree] = []
    for i in range(max(4, round(size * size / 900.0))):
        r0 = d.uniform(1.5, 3.5)
        r1 = r0 * d.uniform(1.08, 1.2)
        ph = d.uniform(0, 2 * math.pi)
        h0 = d.uniform(4.0, 10.0)
        pos = d.placer.place(crown_maker(r1, ph), 1.5, f"tree {i}", required=i < 2)
        if pos is None:
            continue
        tree = Tree(
            f"tree-{len(trees) + 1}", pos[0], pos[1], r0, h0, r1, h0 + d.uniform(0.3, 1.0), ph
        )
        trees.append(tree)
        d.add_truth(tree.crown(r1), tree.name, "tree_growth", must_flag=False)
    return trees


def site_box(params: SynthParams, origin: tuple[float, float]) -> Polygon:
    """The raster extent as a polygon (UTM metres)."""
    x0, y0 = origin
    return box(x0, y0 - params.size_m, x0 + params.size_m, y0)
