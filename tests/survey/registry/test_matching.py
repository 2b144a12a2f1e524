"""Repeat-lead matching as a pure function: known footprints, known plans."""

from __future__ import annotations

import datetime as dt

from shapely.geometry import box

from survey.registry.matching import Detection, KnownLead, match_detections

D1 = dt.date(2024, 5, 1)


def lead(
    lead_id: int, geom: object, state: str = "new", kind: str = "new", **kw: object
) -> KnownLead:
    values: dict[str, object] = {"height_gain_m": 3.0, "floors_added": 1, "last_seen": D1}
    values.update(kw)
    return KnownLead(lead_id, kind, state, geom, **values)  # type: ignore[arg-type]


def det(
    geom: object, kind: str = "new", h: float | None = 3.0, floors: int | None = 1
) -> Detection:
    return Detection(kind, geom, h, floors)  # type: ignore[arg-type]


def test_same_structure_shifted_by_a_metre_is_the_same_lead() -> None:
    plan = match_detections([det(box(1, 0, 11, 8))], [lead(7, box(0, 0, 10, 8))], atlas=True)
    assert plan.observed == [(0, 7)] and plan.new == [] and plan.gone == []


def test_a_structure_elsewhere_is_new_and_the_unseen_one_is_gone_in_atlas_mode() -> None:
    plan = match_detections([det(box(50, 50, 60, 60))], [lead(7, box(0, 0, 10, 8))], atlas=True)
    assert plan.new == [(0, None)] and plan.gone == [(7, None)]
    # compared with an earlier survey, an unchanged structure is simply not reported
    plan = match_detections([det(box(50, 50, 60, 60))], [lead(7, box(0, 0, 10, 8))], atlas=False)
    assert plan.new == [(0, None)] and plan.gone == []


def test_outside_the_covered_area_nothing_is_proposed_for_closure() -> None:
    plan = match_detections(
        [], [lead(7, box(0, 0, 10, 8))], atlas=True, covered=box(100, 100, 200, 200)
    )
    assert plan.gone == []


def test_a_removal_over_a_lead_proposes_closure_and_opens_nothing() -> None:
    plan = match_detections(
        [det(box(0, 0, 10, 8), kind="removed", h=-3.0)],
        [lead(7, box(0, 0, 10, 8), state="confirmed")],
        atlas=False,
    )
    assert plan.gone == [(7, 0)] and plan.new == [] and plan.observed == []


def test_a_removal_of_something_bigger_is_also_a_demolition_of_its_own() -> None:
    plan = match_detections(
        [det(box(0, 0, 40, 30), kind="removed", h=-6.0)],
        [lead(7, box(0, 0, 10, 8))],
        atlas=False,
    )
    assert plan.gone == [(7, 0)] and plan.new == [(0, None)]


def test_a_dismissed_lead_that_grows_reopens_and_one_that_does_not_stays() -> None:
    dismissed = lead(3, box(0, 0, 10, 10), state="dismissed")
    same = match_detections([det(box(0.5, 0, 10.5, 10))], [dismissed], atlas=True)
    assert same.observed == [(0, 3)] and same.reopened == []
    wider = match_detections([det(box(0, 0, 14, 10))], [dismissed], atlas=True)
    assert wider.reopened == [(0, 3)] and "40.0 m2 beyond" in wider.grew[3]
    taller = match_detections([det(box(0, 0, 10, 10), h=6.2, floors=2)], [dismissed], atlas=True)
    assert taller.reopened == [(0, 3)] and "6.2 m high" in taller.grew[3]
    # against a reference that already showed it, any addition over it is a change since
    since = match_detections(
        [det(box(0, 0, 10, 10), kind="raised", h=2.9)],
        [dismissed],
        atlas=False,
        reference_date=D1,
    )
    assert since.reopened == [(0, 3)]
    before = match_detections(
        [det(box(0, 0, 10, 10), h=2.9)],
        [dismissed],
        atlas=False,
        reference_date=D1 - dt.timedelta(days=30),
    )
    assert before.observed == [(0, 3)]


def test_a_closed_lead_seen_again_opens_a_new_one_that_names_it() -> None:
    plan = match_detections(
        [det(box(0, 0, 10, 8))], [lead(5, box(0, 0, 10, 8), state="closed")], atlas=True
    )
    assert plan.new == [(0, 5)] and plan.gone == []


def test_an_open_lead_wins_over_a_closed_one_and_the_larger_overlap_wins() -> None:
    leads = [
        lead(5, box(0, 0, 10, 8), state="closed"),
        lead(6, box(0, 0, 10, 8), state="under_review"),
        lead(8, box(8, 0, 18, 8)),
    ]
    plan = match_detections([det(box(0, 0, 10, 8))], leads, atlas=False)
    assert plan.observed == [(0, 6)]
    plan = match_detections([det(box(7, 0, 17, 8))], leads, atlas=False)
    assert plan.observed == [(0, 8)]


def test_a_sliver_beside_a_building_matches_by_the_smaller_footprint() -> None:
    # an extension found as a 2 m strip along a 20 m building: 2/2 of the strip overlaps
    plan = match_detections([det(box(18, 0, 21, 10))], [lead(9, box(0, 0, 20, 10))], atlas=False)
    assert plan.observed == [(0, 9)]
    # a touch of under a square metre is no match
    plan = match_detections([det(box(19.95, 0, 30, 10))], [lead(9, box(0, 0, 20, 10))], atlas=False)
    assert plan.new == [(0, None)]
