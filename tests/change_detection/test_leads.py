"""Lead records and their GeoJSON form."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import box

from change_detection.errors import ChangeDetectionError
from change_detection.leads import (
    Lead,
    leads_from_feature_collection,
    leads_to_feature_collection,
)


def _lead(**kw: object) -> Lead:
    base: dict[str, object] = dict(
        lead_id="L-1a2b3c",
        lead_class="no_permit",
        geometry=box(114.5001, 37.0701, 114.5002, 37.0702),
        reasons=("new structure of 96 m2, 6.1 m high, covered by no valid permit",),
        area_m2=96.04,
        height_gain_m=6.1,
        floors_added=2,
        score=0.93,
        before_date="2026-09-01",
        after_date="2026-10-01",
        input_hashes={"after_dsm": "ab" * 32},
    )
    base.update(kw)
    return Lead(**base)  # type: ignore[arg-type]


def test_feature_round_trip() -> None:
    lead = _lead()
    feat = json.loads(json.dumps(lead.to_feature()))
    props = feat["properties"]
    for key in (
        "lead_id",
        "class",
        "reasons",
        "area_m2",
        "height_gain_m",
        "floors_added",
        "permit_ids",
        "score",
        "before_date",
        "after_date",
    ):
        assert key in props
    assert props["class"] == "no_permit"
    back = Lead.from_feature(feat)
    assert back.geometry.hausdorff_distance(lead.geometry) <= 1e-8
    assert back.lead_id == lead.lead_id and back.reasons == lead.reasons
    assert back.input_hashes == lead.input_hashes


def test_collection_round_trip_rgb_only() -> None:
    leads = [_lead(), _lead(lead_id="L-2", height_gain_m=None, floors_added=None, rgb_only=True)]
    fc = json.loads(json.dumps(leads_to_feature_collection(leads)))
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    back = leads_from_feature_collection(fc)
    assert [b.lead_id for b in back] == ["L-1a2b3c", "L-2"]
    assert back[1].rgb_only and back[1].height_gain_m is None


@pytest.mark.parametrize(
    "kw", [{"lead_class": "suspicious"}, {"kind": "moved"}, {"score": 1.5}, {"score": float("nan")}]
)
def test_invalid_values_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ChangeDetectionError):
        _lead(**kw)


def test_not_a_lead_feature() -> None:
    with pytest.raises(ChangeDetectionError, match="not a sitewatch lead"):
        Lead.from_feature({"type": "Feature", "geometry": None, "properties": {}})
    with pytest.raises(ChangeDetectionError, match="FeatureCollection"):
        leads_from_feature_collection({"type": "Feature"})


@given(
    x=st.floats(-179, 179), y=st.floats(-80, 80), w=st.floats(1e-6, 0.01), h=st.floats(1e-6, 0.01)
)
def test_coordinates_survive_to_1e8_degrees(x: float, y: float, w: float, h: float) -> None:
    geom = box(x, y, x + w, y + h)
    back = Lead.from_feature(json.loads(json.dumps(_lead(geometry=geom).to_feature())))
    assert back.geometry.hausdorff_distance(geom) <= 1e-8


def _feature(**props: object) -> dict[str, object]:
    feat = json.loads(json.dumps(_lead().to_feature()))
    feat["properties"].update(props)
    return feat


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        (["not", "a", "feature"], "a feature is a JSON list, not a sitewatch lead"),
        (_feature(floors_added=float("inf")), "OverflowError"),
        (_feature(area_m2=float("nan")), "area_m2 is nan"),
        (_feature(height_gain_m=float("-inf")), "height_gain_m is -inf"),
        ({**_feature(), "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, "("),
        ({**_feature(), "geometry": {"type": "Polygon", "coordinates": 5}}, "("),
        (_feature(lead_id="x" * 10_000, **{"class": "nope"}), "'xxxxxxxx"),
    ],
)
def test_a_broken_feature_is_one_short_line(feature: object, expected: str) -> None:
    """What the fuzzing of leads files found: every failure is the library's error, short."""
    with pytest.raises(ChangeDetectionError) as info:
        Lead.from_feature(feature)  # type: ignore[arg-type]
    message = str(info.value)
    assert expected in message and "\n" not in message and len(message) < 400
