"""The planted changes of the synthetic site and the distractors beside them.

Each function draws one kind of object into a :class:`~survey.synth.drawing.Drawing` (its
footprint, heights and colours from the seed) and records it in the truth: a change that must
be flagged with the class it must get, or a distractor that must not (a shed and a pile below
the minimum size, a hedge grown back). :func:`survey.synth.layout.plan_layout` calls them in a
fixed order, which the seeds' scenes depend on.
"""

from __future__ import annotations

import math

import numpy as np

from survey.synth.drawing import (
    BLUE_STEEL,
    EXISTING_ROOFS,
    GREEN_ROOF,
    GREEN_STEEL,
    Drawing,
)
from survey.synth.objects import STOREY_HEIGHT_M, Box, Building, Hedge, Permit, Pile

__all__ = [
    "place_hedge",
    "place_pile",
    "place_shed",
    "plant_added_storey",
    "plant_demolition",
    "plant_extension",
    "plant_green_roof_demolition",
    "plant_new_structures",
    "plant_permitted_building",
    "plant_steel_sheds",
]

_NO_ROOF = (0.0, 0.0, 0.0)  # the before colour of a structure that is not there before


def plant_extension(d: Drawing) -> None:
    """A new building reaching past its permit's footprint: the strip outside is the change
    (``outside_footprint``)."""
    s = d.scale
    length, width = d.uniform(10.0, 10.0 + 4 * s), d.uniform(8.0, 8.0 + 3 * s)
    strip = max(2.5, 23.0 / width)
    fp = d.place_box(length, width, "extension")
    h = d.uniform(4.0, 9.0)
    d.buildings.append(
        Building(
            "extension-1", fp, h, "flat", 0.0, _NO_ROOF, before=False, colour_after=next(d.roofs)
        )
    )
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
    permit = Permit(
        "P-2025-031",
        permit_box.polygon(),
        round(h + d.uniform(1.5, 4.0), 1),
        max(1, math.ceil(h / STOREY_HEIGHT_M)),
        "2025-05-01",
        "2027-04-30",
    )
    d.permits.append(permit)
    d.add_truth(
        fp.polygon().difference(permit.footprint),
        "extension-1",
        "extension",
        must_flag=True,
        expected_class="outside_footprint",
        permit_id=permit.permit_id,
        structure_area_m2=round(fp.polygon().area, 3),
    )


def plant_added_storey(d: Drawing) -> None:
    """An existing building raised by a storey above its permit's height (``over_height``)."""
    s = d.scale
    length, width = d.uniform(9.0, 9.0 + 6 * s), d.uniform(7.0, 7.0 + 4 * s)
    fp = d.place_box(length, width, "added storey")
    h0 = d.uniform(4.0, 10.0)
    old_roof = EXISTING_ROOFS[int(d.rng.integers(len(EXISTING_ROOFS)))]
    d.buildings.append(
        Building(
            "storey-1",
            fp,
            h0,
            "flat",
            0.0,
            old_roof,
            height_after=h0 + STOREY_HEIGHT_M,
            colour_after=next(d.roofs),
        )
    )
    permit = Permit(
        "P-2019-112",
        fp.polygon(),
        round(h0 + d.uniform(0.6, 2.0), 1),
        max(1, round(h0 / STOREY_HEIGHT_M)),
        "2019-03-01",
        "2029-02-28",
    )
    d.permits.append(permit)
    d.add_truth(
        fp.polygon(),
        "storey-1",
        "added_storey",
        must_flag=True,
        expected_class="over_height",
        permit_id=permit.permit_id,
    )


def plant_permitted_building(d: Drawing) -> None:
    """A new building inside its valid permit: not a lead."""
    s = d.scale
    length, width = d.uniform(8.0, 8.0 + 6 * s), d.uniform(7.0, 7.0 + 4 * s)
    fp = d.place_box(length + 2.0, width + 2.0, "permitted building")
    fp = Box(fp.cx, fp.cy, length, width, fp.angle_deg)
    h = d.uniform(3.5, 8.0)
    d.buildings.append(
        Building(
            "permitted-1", fp, h, "flat", 0.0, _NO_ROOF, before=False, colour_after=next(d.roofs)
        )
    )
    permit = Permit(
        "P-2025-047",
        Box(fp.cx, fp.cy, length + 2.0, width + 2.0, fp.angle_deg).polygon(),
        round(h + d.uniform(1.5, 4.0), 1),
        max(1, math.ceil(h / STOREY_HEIGHT_M)),
        "2025-03-01",
        "2027-02-28",
    )
    d.permits.append(permit)
    d.add_truth(
        fp.polygon(),
        "permitted-1",
        "permitted_building",
        must_flag=False,
        permit_id=permit.permit_id,
    )


def plant_demolition(d: Drawing) -> None:
    """An existing building gone in the after epoch (``demolished``)."""
    s = d.scale
    length, width = d.uniform(7.0, 7.0 + 6 * s), d.uniform(6.0, 6.0 + 4 * s)
    fp = d.place_box(length, width, "demolition")
    h = d.uniform(3.0, 8.0)
    roof = EXISTING_ROOFS[int(d.rng.integers(len(EXISTING_ROOFS)))]
    d.buildings.append(Building("demolition-1", fp, h, "flat", 0.0, roof, after=False))
    d.add_truth(
        fp.polygon(), "demolition-1", "demolition", must_flag=True, expected_class="demolished"
    )


def plant_new_structures(d: Drawing) -> None:
    """Two (sites under 120 m) or three new structures without a permit (``no_permit``),
    40 to 300 m²."""
    s, size = d.scale, d.size
    for i in range(2 if size < 120 else 3):
        while True:
            length = d.uniform(7.0, 8.0 + 10 * s)
            width = d.uniform(6.0, 6.0 + 6 * s)
            if 40.0 <= length * width <= 300.0:
                break
        fp = d.place_box(length, width, f"new structure {i + 1}")
        h = d.uniform(3.0, 12.0 if size >= 100 else 9.0)
        name = f"new-{i + 1}"
        d.buildings.append(
            Building(name, fp, h, "flat", 0.0, _NO_ROOF, before=False, colour_after=next(d.roofs))
        )
        d.add_truth(fp.polygon(), name, "new_structure", must_flag=True, expected_class="no_permit")


def place_shed(d: Drawing) -> Building:
    """A new shed below the minimum size: a distractor."""
    fp = d.place_box(2.6, 2.0, "shed", clearance=2.0)
    shed = Building(
        "shed-1", fp, 2.2, "flat", 0.0, _NO_ROOF, before=False, colour_after=(0.62, 0.66, 0.70)
    )
    d.add_truth(fp.polygon(), "shed-1", "shed", must_flag=False)
    return shed


def place_pile(d: Drawing) -> Pile:
    """A material pile of irregular outline (about 4.6 m², 1.3 m high): a distractor."""
    rng = d.rng
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
    pos = d.placer.place(
        lambda x, y: Pile("pile-1", x, y, radii, 1.3, (0, 0, 0)).polygon(), 2.0, "pile"
    )
    assert pos is not None
    pile = Pile("pile-1", pos[0], pos[1], radii, 1.3, (0.66, 0.60, 0.50))
    d.add_truth(pile.polygon(), "pile-1", "pile", must_flag=False)
    return pile


def plant_steel_sheds(d: Drawing) -> None:
    """A green and a blue colour-steel shed, new without a permit (``no_permit``).

    Green is the colour of leaves to RGB indices: only the DSM (a planar roof) tells these from
    trees.
    """
    s = d.scale
    for colour, roof, what in ((GREEN_STEEL, "gable", "green"), (BLUE_STEEL, "flat", "blue")):
        length, width = d.uniform(6.0, 6.0 + 2 * s), d.uniform(4.0, 4.0 + s)
        fp = d.place_box(length, width, f"{what} steel shed", clearance=min(d.clear, 2.0))
        eave = d.uniform(3.0, 3.5)
        name = f"steel-shed-{what}"
        d.buildings.append(
            Building(
                name,
                fp,
                eave,
                roof,
                d.uniform(0.25, 0.4) if roof == "gable" else 0.0,
                _NO_ROOF,
                before=False,
                colour_after=colour,
                corrugated=True,
            )
        )
        d.add_truth(
            fp.polygon(),
            name,
            "steel_shed",
            must_flag=True,
            expected_class="no_permit",
            note=f"{what} colour-steel roof",
        )


def plant_green_roof_demolition(d: Drawing) -> None:
    """A demolished building with a weathered green roof (``demolished``)."""
    s = d.scale
    length, width = d.uniform(6.5, 6.5 + 3 * s), d.uniform(5.5, 5.5 + 2 * s)
    fp = d.place_box(length, width, "demolition of a green-roofed building")
    height = d.uniform(3.0, 6.0)
    d.buildings.append(Building("demolition-2", fp, height, "flat", 0.0, GREEN_ROOF, after=False))
    d.add_truth(
        fp.polygon(),
        "demolition-2",
        "demolition",
        must_flag=True,
        expected_class="demolished",
        note="green roof",
    )


def place_hedge(d: Drawing) -> Hedge:
    """A hedge cut low before and grown back by 2-3 m after: a distractor."""
    s = d.scale
    fp = d.place_box(d.uniform(8.0, 8.0 + 6 * s), d.uniform(1.0, 1.5), "hedge", 1.5)
    hedge = Hedge("hedge-1", fp, d.uniform(0.5, 0.7), d.uniform(3.2, 3.6))
    d.add_truth(
        fp.polygon(),
        hedge.name,
        "hedge",
        must_flag=False,
        note="hedge cut low, grown back by 2-3 m: rough and green, not a structure",
    )
    return hedge
