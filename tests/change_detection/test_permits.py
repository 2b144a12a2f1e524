"""Permit overlay: classes, geometry of the lead, reasons, dates and stable ids."""

from __future__ import annotations

import datetime as dt

import pytest
from shapely.geometry import box

from change_detection.errors import PermitError
from change_detection.objects import ChangeObject
from change_detection.params import DetectParams
from change_detection.permits import Permit, build_leads, lead_id, parse_date

CRS = 32650  # UTM 50N; the boxes sit near (500000, 4000000)
X0, Y0 = 500000.0, 4000000.0


def _obj(geom, kind="new", gain=6.0, height=6.0) -> ChangeObject:  # type: ignore[no-untyped-def]
    return ChangeObject(
        geometry=geom,
        kind=kind,
        area_m2=float(geom.area),
        height_gain_m=gain,
        height_m=height,
        floors_added=round(gain / 3.0),
        pixel_count=int(geom.area * 100),
        score=0.9,
    )


def _permit(geom, pid="P-1", max_h=9.0, floors=3, start="2025-01-01", end="2026-12-31"):  # type: ignore[no-untyped-def]
    return Permit(
        pid, geom, max_h, floors, dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    )


def _leads(objs, permits, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("before_date", "2025-04-15")
    kw.setdefault("after_date", "2025-10-15")
    return build_leads(objs, permits, crs=CRS, params=DetectParams(), **kw)


BUILDING = box(X0, Y0, X0 + 10, Y0 + 8)


def test_without_permits_every_change_is_a_lead_of_its_kind() -> None:
    objs = [
        _obj(BUILDING),
        _obj(box(X0 + 20, Y0, X0 + 30, Y0 + 8), kind="raised", gain=3.0, height=9.0),
        _obj(box(X0 + 40, Y0, X0 + 50, Y0 + 8), kind="removed", gain=-5.0, height=0.0),
    ]
    leads = _leads(objs, None)
    assert sorted(lead.lead_class for lead in leads) == ["demolished", "new_structure", "raised"]
    for lead in leads:
        assert lead.permit_ids == () and lead.reasons and 0 <= lead.score <= 1
        assert lead.before_date == "2025-04-15" and lead.after_date == "2025-10-15"
        lon, lat = lead.geometry.centroid.coords[0]
        assert 116.9 < lon < 117.1 and 36.0 < lat < 36.2  # WGS84


def test_new_structure_without_a_valid_permit_is_no_permit() -> None:
    expired = _permit(BUILDING.buffer(1), pid="P-OLD", start="2022-01-01", end="2024-12-31")
    (lead,) = _leads([_obj(BUILDING)], [expired])
    assert lead.lead_class == "no_permit"
    assert lead.permit_ids == ()
    assert any("P-OLD" in r and "2024-12-31" in r for r in lead.reasons)
    assert lead.area_m2 == pytest.approx(80.0)


def test_building_inside_a_valid_permit_is_not_a_lead() -> None:
    ok = _permit(BUILDING.buffer(1.0, join_style="mitre"))
    assert _leads([_obj(BUILDING)], [ok]) == []


def test_the_part_outside_the_footprint_is_the_lead_geometry() -> None:
    permit = _permit(box(X0 - 0.5, Y0 - 0.5, X0 + 7, Y0 + 8.5))  # covers 7 of the 10 m
    (lead,) = _leads([_obj(BUILDING)], [permit])
    assert lead.lead_class == "outside_footprint"
    assert lead.permit_ids == ("P-1",)
    assert lead.area_m2 == pytest.approx(3.0 * 8.0, rel=0.02)
    assert "outside the footprint of permit P-1" in lead.reasons[0]


def test_slivers_along_the_footprint_edge_are_not_leads() -> None:
    permit = _permit(box(X0 + 0.3, Y0 + 0.3, X0 + 9.7, Y0 + 7.7))  # 0.3 m short on every side
    assert _leads([_obj(BUILDING)], [permit]) == []


def test_taller_than_permitted_is_over_height() -> None:
    permit = _permit(BUILDING, max_h=6.0, floors=2)
    obj = _obj(BUILDING, kind="raised", gain=3.0, height=9.1)
    (lead,) = _leads([obj], [permit])
    assert lead.lead_class == "over_height"
    assert lead.permit_ids == ("P-1",)
    assert any("exceeds the 6.0 m" in r for r in lead.reasons)
    assert any("3 floors" in r for r in lead.reasons)
    within = _obj(BUILDING, kind="raised", gain=3.0, height=6.4)  # inside the 0.5 m tolerance
    assert _leads([within], [permit]) == []


def test_demolition_is_a_lead_unless_a_valid_permit_covers_it() -> None:
    gone = _obj(BUILDING, kind="removed", gain=-5.0, height=0.0)
    (lead,) = _leads([gone], [])
    assert lead.lead_class == "demolished" and lead.floors_added == -2
    assert _leads([gone], [_permit(BUILDING)]) == []


def test_rgb_only_leads_carry_no_heights_and_say_so() -> None:
    obj = ChangeObject(BUILDING, "new", 80.0, None, None, None, 8000, 0.45)
    (lead,) = _leads([obj], [], rgb_only=True)
    assert lead.rgb_only and lead.height_gain_m is None and lead.floors_added is None
    assert any("RGB-only" in r for r in lead.reasons)
    assert lead.to_feature()["properties"]["rgb_only"] is True


def test_lead_ids_are_stable_and_depend_on_class_and_place() -> None:
    """More in test_lead_ids.py: edges across 0.5 m lines, other CRSs, re-runs."""
    a = lead_id("no_permit", BUILDING, crs=CRS)
    assert a == lead_id("no_permit", box(X0 + 0.1, Y0, X0 + 10.1, Y0 + 8), crs=CRS)
    assert a != lead_id("demolished", BUILDING, crs=CRS)
    assert a != lead_id("no_permit", box(X0 + 6, Y0, X0 + 16, Y0 + 8), crs=CRS)  # 6 m east
    first = _leads([_obj(BUILDING)], None)
    again = _leads([_obj(BUILDING)], None)
    assert [x.lead_id for x in first] == [x.lead_id for x in again]
    (lead,) = first
    dates = {"before_date": lead.before_date, "after_date": lead.after_date}
    assert lead.lead_id == lead_id("new_structure", lead.geometry, **dates)


def test_dates_are_checked() -> None:
    assert parse_date("2025-04-15T10:30:00") == dt.date(2025, 4, 15)
    assert parse_date(None) is None
    with pytest.raises(PermitError, match="not an ISO 8601 date"):
        parse_date("15/04/2025")
    with pytest.raises(PermitError, match="swap"):
        _leads([_obj(BUILDING)], None, before_date="2025-10-15", after_date="2025-04-15")


# --- existing buildings (the first survey against the permit atlas, sitewatch check) -----------


def _existing(geom, bid="B-12", height=6.0, floors=2):  # type: ignore[no-untyped-def]
    from change_detection.permits import ExistingBuilding

    return ExistingBuilding(bid, geom, height, floors)


def _check_leads(objs, permits, existing):  # type: ignore[no-untyped-def]
    return build_leads(
        objs,
        permits,
        crs=CRS,
        params=DetectParams(),
        after_date="2025-10-15",
        existing=existing,
        first_survey=True,
    )


def test_a_structure_matching_an_existing_building_is_not_a_lead() -> None:
    standing = _obj(BUILDING, gain=6.2, height=6.2)
    assert _check_leads([standing], [], [_existing(BUILDING.buffer(0.3, join_style="mitre"))]) == []
    (lead,) = _check_leads([standing], [], [_existing(box(X0 + 40, Y0, X0 + 50, Y0 + 8))])
    assert lead.lead_class == "no_permit" and lead.permit_ids == ()
    assert "neither a valid permit nor an existing building covers it" in lead.reasons[0]
    assert lead.reasons[0].startswith("a structure of 80 m²")  # not "a new structure"


def test_the_part_outside_an_existing_building_names_it() -> None:
    extended = _obj(box(X0, Y0, X0 + 14, Y0 + 8), gain=6.0, height=6.0)
    (lead,) = _check_leads([extended], [], [_existing(BUILDING)])
    assert lead.lead_class == "outside_footprint"
    assert lead.area_m2 == pytest.approx(4.0 * 8.0, rel=0.02)
    assert "outside the footprint of existing building B-12" in lead.reasons[0]
    assert lead.permit_ids == ("B-12",)
    both = [_permit(box(X0 + 10, Y0, X0 + 12, Y0 + 8), pid="P-3")]
    (lead,) = _check_leads([extended], both, [_existing(BUILDING)])
    assert "permit P-3 and existing building B-12" in lead.reasons[0]
    assert lead.area_m2 == pytest.approx(2.0 * 8.0, rel=0.05)
    assert lead.permit_ids == ("P-3", "B-12")


def test_taller_than_recorded_is_over_height_unless_a_permit_allows_it() -> None:
    raised = _obj(BUILDING, gain=9.2, height=9.2)
    (lead,) = _check_leads([raised], [], [_existing(BUILDING, height=6.0, floors=2)])
    assert lead.lead_class == "over_height" and lead.permit_ids == ("B-12",)
    assert any("exceeds the 6.0 m recorded for existing building B-12" in r for r in lead.reasons)
    assert any("existing building B-12 has 2" in r for r in lead.reasons)
    raise_permit = _permit(BUILDING, pid="P-9", max_h=9.5, floors=3)
    assert _check_leads([raised], [raise_permit], [_existing(BUILDING, height=6.0)]) == []
    unknown = _existing(BUILDING, height=None, floors=None)
    assert _check_leads([raised], [], [unknown]) == []  # nothing recorded, nothing to exceed


def test_an_existing_building_gone_is_demolished_unless_a_permit_covers_it() -> None:
    gone = ChangeObject(BUILDING, "removed", 80.0, None, 0.1, None, 8000, 0.9)
    (lead,) = _check_leads([gone], [], [_existing(BUILDING)])
    assert lead.lead_class == "demolished" and lead.height_gain_m is None
    assert any("existing building B-12 (6.0 m) of the atlas stood here" in r for r in lead.reasons)
    assert lead.reasons[0].startswith("a structure of 80 m² removed;")
    assert _check_leads([gone], [_permit(BUILDING)], [_existing(BUILDING)]) == []
