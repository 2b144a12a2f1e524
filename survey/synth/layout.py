"""Layout of the synthetic survey site: the objects, the planted changes, permits and truth.

Everything here is vector geometry in the site's UTM CRS (metres). Positions are drawn from
the seed with rejection sampling so that no two objects touch; the rasters are painted from
this layout by :mod:`survey.synth.render`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from survey.errors import SynthParamsError
from survey.synth.params import SynthParams

__all__ = [
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
]

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]

#: Roof colours of planted (new or raised) structures: saturated, unlike ground and old roofs.
_PLANTED_ROOFS: tuple[RGB, ...] = (
    (0.22, 0.42, 0.78),  # blue steel sheet
    (0.78, 0.26, 0.16),  # red tile
    (0.93, 0.93, 0.90),  # white membrane
    (0.16, 0.62, 0.62),  # teal sheet
    (0.90, 0.58, 0.16),  # orange
    (0.55, 0.22, 0.60),  # purple coating
)
#: Roof colours of existing buildings: weathered greys, browns and dull reds.
_EXISTING_ROOFS: tuple[RGB, ...] = (
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
_GREEN_ROOF: RGB = (0.30, 0.52, 0.30)
_CAR_COLOURS: tuple[RGB, ...] = (
    (0.92, 0.92, 0.92),
    (0.10, 0.10, 0.12),
    (0.70, 0.10, 0.10),
    (0.20, 0.30, 0.65),
    (0.60, 0.62, 0.64),
    (0.85, 0.75, 0.20),
)
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


class _Placer:
    """Rejection sampler of non-touching footprints inside the site."""

    def __init__(self, rng: np.random.Generator, inner: Polygon, params: SynthParams) -> None:
        self.rng = rng
        self.inner = inner
        self.params = params
        self.taken: list[BaseGeometry] = []
        self.bounds = inner.bounds

    def free(self, geom: BaseGeometry, clearance: float) -> bool:
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


def _box_maker(length: float, width: float, angle: float) -> Callable[[float, float], Polygon]:
    def make(x: float, y: float) -> Polygon:
        return Box(x, y, length, width, angle).polygon()

    return make


def _crown_maker(radius: float, phase: float) -> Callable[[float, float], Polygon]:
    def make(x: float, y: float) -> Polygon:
        return Tree("", x, y, radius, 0.0, radius, 0.0, phase).crown(radius * 1.02)

    return make


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


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
    size = params.size_m
    x0, y0 = origin
    cx0, cy0 = x0 + size / 2, y0 - size / 2
    s = float(np.clip(size / 160.0, 0.5, 1.0))

    inset = max(3.0, 0.06 * size)
    cham = _uniform(rng, 0.08, 0.16) * size
    e0, n0, e1, n1 = x0 + inset, y0 - size + inset, x0 + size - inset, y0 - inset
    site = Polygon([(e0, n0), (e1, n0), (e1, n1 - cham), (e1 - cham, n1), (e0, n1)])
    inner = site.buffer(-1.0 if size < 100 else -2.0, join_style="mitre")
    placer = _Placer(rng, inner, params)

    street = _uniform(rng, -25.0, 25.0)
    a = math.radians(street)
    off = _uniform(rng, -0.12, 0.12) * size
    road_w = _uniform(rng, 6.0, 7.5) if size >= 100 else _uniform(rng, 5.0, 6.0)
    road = Road(cx0 - off * math.sin(a), cy0 + off * math.cos(a), street, road_w)
    road_poly = road.polygon(3 * size)
    placer.taken.append(road_poly.intersection(site.buffer(50)))

    buildings: list[Building] = []
    permits: list[Permit] = []
    truth: list[TruthFeature] = []
    clear = max(1.5, 4.0 * s) if size < 100 else 4.0 * s
    roofs = list(_PLANTED_ROOFS)
    rng.shuffle(roofs)
    roof_iter = iter(roofs * 3)

    def jitter() -> float:
        return street + _uniform(rng, -6.0, 6.0) + (90.0 if rng.random() < 0.3 else 0.0)

    def place_box(length: float, width: float, what: str, clearance: float = clear) -> Box:
        angle = jitter()
        pos = placer.place(lambda x, y: Box(x, y, length, width, angle).polygon(), clearance, what)
        assert pos is not None
        return Box(pos[0], pos[1], length, width, angle)

    # --- extension outside a permitted footprint -------------------------------------------
    length, width = _uniform(rng, 10.0, 10.0 + 4 * s), _uniform(rng, 8.0, 8.0 + 3 * s)
    strip = max(2.5, 23.0 / width)
    fp = place_box(length, width, "extension")
    h = _uniform(rng, 4.0, 9.0)
    ext = Building(
        "extension-1",
        fp,
        h,
        "flat",
        0.0,
        (0.0, 0.0, 0.0),
        before=False,
        colour_after=next(roof_iter),
    )
    buildings.append(ext)
    permit_len = length - strip + 0.5
    shift = -(length - permit_len) / 2 - 0.25  # permit spans u in [-L/2-0.5, L/2-strip]
    a_fp = math.radians(fp.angle_deg)
    permit_box = Box(
        fp.cx + shift * math.cos(a_fp),
        fp.cy + shift * math.sin(a_fp),
        permit_len,
        width + 1.0,
        fp.angle_deg,
    )
    p_ext = Permit(
        "P-2025-031",
        permit_box.polygon(),
        round(h + _uniform(rng, 1.5, 4.0), 1),
        max(1, math.ceil(h / STOREY_HEIGHT_M)),
        "2025-05-01",
        "2027-04-30",
    )
    permits.append(p_ext)
    outside = fp.polygon().difference(p_ext.footprint)
    truth.append(
        TruthFeature(
            outside,
            {
                "change_id": "extension-1",
                "kind": "extension",
                "must_flag": True,
                "expected_class": "outside_footprint",
                "permit_id": p_ext.permit_id,
                "structure_area_m2": round(fp.polygon().area, 3),
            },
        )
    )

    # --- added storey above the permitted height (existing building raised) ------------------
    length, width = _uniform(rng, 9.0, 9.0 + 6 * s), _uniform(rng, 7.0, 7.0 + 4 * s)
    fp = place_box(length, width, "added storey")
    h0 = _uniform(rng, 4.0, 10.0)
    old_roof = _EXISTING_ROOFS[int(rng.integers(len(_EXISTING_ROOFS)))]
    storey = Building(
        "storey-1",
        fp,
        h0,
        "flat",
        0.0,
        old_roof,
        height_after=h0 + STOREY_HEIGHT_M,
        colour_after=next(roof_iter),
    )
    buildings.append(storey)
    p_st = Permit(
        "P-2019-112",
        fp.polygon(),
        round(h0 + _uniform(rng, 0.6, 2.0), 1),
        max(1, round(h0 / STOREY_HEIGHT_M)),
        "2019-03-01",
        "2029-02-28",
    )
    permits.append(p_st)
    truth.append(
        TruthFeature(
            fp.polygon(),
            {
                "change_id": "storey-1",
                "kind": "added_storey",
                "must_flag": True,
                "expected_class": "over_height",
                "permit_id": p_st.permit_id,
            },
        )
    )

    # --- a new building inside its valid permit (not a lead) ---------------------------------
    length, width = _uniform(rng, 8.0, 8.0 + 6 * s), _uniform(rng, 7.0, 7.0 + 4 * s)
    fp = place_box(length + 2.0, width + 2.0, "permitted building")
    fp = Box(fp.cx, fp.cy, length, width, fp.angle_deg)
    h = _uniform(rng, 3.5, 8.0)
    ok = Building(
        "permitted-1",
        fp,
        h,
        "flat",
        0.0,
        (0.0, 0.0, 0.0),
        before=False,
        colour_after=next(roof_iter),
    )
    buildings.append(ok)
    p_ok = Permit(
        "P-2025-047",
        Box(fp.cx, fp.cy, length + 2.0, width + 2.0, fp.angle_deg).polygon(),
        round(h + _uniform(rng, 1.5, 4.0), 1),
        max(1, math.ceil(h / STOREY_HEIGHT_M)),
        "2025-03-01",
        "2027-02-28",
    )
    permits.append(p_ok)
    truth.append(
        TruthFeature(
            fp.polygon(),
            {
                "change_id": "permitted-1",
                "kind": "permitted_building",
                "must_flag": False,
                "expected_class": None,
                "permit_id": p_ok.permit_id,
            },
        )
    )

    # --- demolition of an existing building ----------------------------------------------------
    length, width = _uniform(rng, 7.0, 7.0 + 6 * s), _uniform(rng, 6.0, 6.0 + 4 * s)
    fp = place_box(length, width, "demolition")
    h = _uniform(rng, 3.0, 8.0)
    demo = Building(
        "demolition-1",
        fp,
        h,
        "flat",
        0.0,
        _EXISTING_ROOFS[int(rng.integers(len(_EXISTING_ROOFS)))],
        after=False,
    )
    buildings.append(demo)
    truth.append(
        TruthFeature(
            fp.polygon(),
            {
                "change_id": "demolition-1",
                "kind": "demolition",
                "must_flag": True,
                "expected_class": "demolished",
                "permit_id": None,
            },
        )
    )

    # --- new structures without a permit -----------------------------------------------------
    n_new = 2 if size < 120 else 3
    for i in range(n_new):
        while True:
            length = _uniform(rng, 7.0, 8.0 + 10 * s)
            width = _uniform(rng, 6.0, 6.0 + 6 * s)
            if 40.0 <= length * width <= 300.0:
                break
        fp = place_box(length, width, f"new structure {i + 1}")
        h = _uniform(rng, 3.0, 12.0 if size >= 100 else 9.0)
        buildings.append(
            Building(
                f"new-{i + 1}",
                fp,
                h,
                "flat",
                0.0,
                (0.0, 0.0, 0.0),
                before=False,
                colour_after=next(roof_iter),
            )
        )
        truth.append(
            TruthFeature(
                fp.polygon(),
                {
                    "change_id": f"new-{i + 1}",
                    "kind": "new_structure",
                    "must_flag": True,
                    "expected_class": "no_permit",
                    "permit_id": None,
                },
            )
        )

    # --- an expired permit over an unchanged lot ---------------------------------------------
    fp = place_box(
        _uniform(rng, 6.0, 6.0 + 6 * s),
        _uniform(rng, 5.0, 5.0 + 5 * s),
        "expired permit lot",
        clearance=1.5,
    )
    permits.append(Permit("P-2022-008", fp.polygon(), 9.0, 3, "2022-06-01", "2025-06-30"))

    # --- existing, unchanged buildings (flat and pitched, 3 to 20 m) ---------------------------
    n_existing = max(2, round(size * size / 3000.0))
    for i in range(n_existing):
        length = _uniform(rng, 8.0, 8.0 + 12 * s)
        width = _uniform(rng, 7.0, 7.0 + 6 * s)
        angle = jitter()
        pos = placer.place(
            _box_maker(length, width, angle),
            clear,
            f"building {i}",
            required=i < 2 and size >= 80.0,
        )
        if pos is None:
            continue
        gable = bool(rng.random() < 0.5)
        fpb = Box(pos[0], pos[1], length, width, angle)
        buildings.append(
            Building(
                f"existing-{i + 1}",
                fpb,
                _uniform(rng, 3.0, 3.0 + 17.0 * s),
                "gable" if gable else "flat",
                _uniform(rng, 1.5, 3.5) if gable else 0.0,
                _EXISTING_ROOFS[int(rng.integers(len(_EXISTING_ROOFS)))],
            )
        )

    # --- the shed and the pile (distractors below the minimum size) ------------------------
    fp = place_box(2.6, 2.0, "shed", clearance=2.0)
    shed = Building(
        "shed-1",
        fp,
        2.2,
        "flat",
        0.0,
        (0.0, 0.0, 0.0),
        before=False,
        colour_after=(0.62, 0.66, 0.70),
    )
    truth.append(
        TruthFeature(
            fp.polygon(),
            {
                "change_id": "shed-1",
                "kind": "shed",
                "must_flag": False,
                "expected_class": None,
                "permit_id": None,
            },
        )
    )
    base_r = math.sqrt(4.6 / math.pi)
    k = 24
    radii = tuple(
        float(r)
        for r in base_r
        * (
            1.0
            + 0.18
            * np.sin(np.linspace(0, 2 * np.pi, k, endpoint=False) * 3 + rng.uniform(0, 2 * np.pi))
            + rng.uniform(-0.08, 0.08, k)
        )
    )
    pos = placer.place(
        lambda x, y: Pile("pile-1", x, y, radii, 1.3, (0, 0, 0)).polygon(), 2.0, "pile"
    )
    assert pos is not None
    pile = Pile("pile-1", pos[0], pos[1], radii, 1.3, (0.66, 0.60, 0.50))
    truth.append(
        TruthFeature(
            pile.polygon(),
            {
                "change_id": "pile-1",
                "kind": "pile",
                "must_flag": False,
                "expected_class": None,
                "permit_id": None,
            },
        )
    )

    # --- cars along the road: static, moved, departed, arrived ---------------------------------
    cars: list[Car] = []
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
            street,
        )
        poly = car.polygon()
        if poly.within(inner) and not any(poly.buffer(1.0).intersects(o.polygon()) for o in slots):
            slots.append(car)
    if len(slots) < 5:
        raise SynthParamsError(
            f"size_m={size} leaves too little road for the cars with seed {params.seed}; "
            "pass a larger --size-m"
        )
    colours = [_CAR_COLOURS[int(i)] for i in rng.integers(len(_CAR_COLOURS), size=len(slots))]
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
    for car_ in cars:
        if car_.before != car_.after:
            gone = car_.before
            truth.append(
                TruthFeature(
                    car_.footprint.polygon(),
                    {
                        "change_id": car_.name,
                        "kind": "car_moved",
                        "must_flag": False,
                        "expected_class": None,
                        "permit_id": None,
                        "note": "car left this spot" if gone else "car parked here",
                    },
                )
            )

    # --- colour-steel sheds (new, no permit), a demolished green roof, a hedge -----------------
    # Green is the colour of leaves to RGB indices: only the DSM (a planar roof) tells these
    # from trees. Placed after the cars so every object before them keeps its place.
    for colour, roof, what in ((GREEN_STEEL, "gable", "green"), (BLUE_STEEL, "flat", "blue")):
        length, width = _uniform(rng, 6.0, 6.0 + 2 * s), _uniform(rng, 4.0, 4.0 + s)
        fp = place_box(length, width, f"{what} steel shed", clearance=min(clear, 2.0))
        eave = _uniform(rng, 3.0, 3.5)
        name = f"steel-shed-{what}"
        buildings.append(
            Building(
                name,
                fp,
                eave,
                roof,
                _uniform(rng, 0.25, 0.4) if roof == "gable" else 0.0,
                (0.0, 0.0, 0.0),
                before=False,
                colour_after=colour,
                corrugated=True,
            )
        )
        truth.append(
            TruthFeature(
                fp.polygon(),
                {
                    "change_id": name,
                    "kind": "steel_shed",
                    "must_flag": True,
                    "expected_class": "no_permit",
                    "permit_id": None,
                    "note": f"{what} colour-steel roof",
                },
            )
        )
    if size >= 80.0:  # a small site has no room left for it (and for two trees)
        length, width = _uniform(rng, 6.5, 6.5 + 3 * s), _uniform(rng, 5.5, 5.5 + 2 * s)
        fp = place_box(length, width, "demolition of a green-roofed building")
        height = _uniform(rng, 3.0, 6.0)
        buildings.append(
            Building("demolition-2", fp, height, "flat", 0.0, _GREEN_ROOF, after=False)
        )
        truth.append(
            TruthFeature(
                fp.polygon(),
                {
                    "change_id": "demolition-2",
                    "kind": "demolition",
                    "must_flag": True,
                    "expected_class": "demolished",
                    "permit_id": None,
                    "note": "green roof",
                },
            )
        )
    fp = place_box(_uniform(rng, 8.0, 8.0 + 6 * s), _uniform(rng, 1.0, 1.5), "hedge", 1.5)
    hedge = Hedge("hedge-1", fp, _uniform(rng, 0.5, 0.7), _uniform(rng, 3.2, 3.6))
    truth.append(
        TruthFeature(
            fp.polygon(),
            {
                "change_id": hedge.name,
                "kind": "hedge",
                "must_flag": False,
                "expected_class": None,
                "permit_id": None,
                "note": "hedge cut low, grown back by 2-3 m: rough and green, not a structure",
            },
        )
    )

    # --- trees (they grow between the epochs) ---------------------------------------------------
    trees: list[Tree] = []
    n_trees = max(4, round(size * size / 900.0))
    for i in range(n_trees):
        r0 = _uniform(rng, 1.5, 3.5)
        r1 = r0 * _uniform(rng, 1.08, 1.2)
        ph = _uniform(rng, 0, 2 * math.pi)
        h0 = _uniform(rng, 4.0, 10.0)
        pos = placer.place(
            _crown_maker(r1, ph),
            1.5,
            f"tree {i}",
            required=i < 2,
        )
        if pos is None:
            continue
        tree = Tree(
            f"tree-{len(trees) + 1}", pos[0], pos[1], r0, h0, r1, h0 + _uniform(rng, 0.3, 1.0), ph
        )
        trees.append(tree)
        truth.append(
            TruthFeature(
                tree.crown(r1),
                {
                    "change_id": tree.name,
                    "kind": "tree_growth",
                    "must_flag": False,
                    "expected_class": None,
                    "permit_id": None,
                },
            )
        )

    for feat in truth:
        feat.props["area_m2"] = round(float(feat.geometry.area), 3)
    return Layout(
        site=site,
        center=(cx0, cy0),
        roads=[road],
        buildings=buildings,
        trees=trees,
        cars=cars,
        piles=[pile],
        shed=shed,
        permits=permits,
        truth=truth,
        occupied=list(placer.taken),
        hedges=[hedge],
    )


def site_box(params: SynthParams, origin: tuple[float, float]) -> Polygon:
    """The raster extent as a polygon (UTM metres)."""
    x0, y0 = origin
    return box(x0, y0 - params.size_m, x0 + params.size_m, y0)
