"""``write_leads``: each lead's feature built once, the files as when built per file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyogrio
import pytest
from shapely.geometry import Polygon, box

from change_detection.leads import Lead, leads_to_feature_collection
from survey.outputs import write_json, write_leads
from survey.vectors import write_features


def _leads() -> list[Lead]:
    """Three leads: a box, an L-shaped building with a courtyard, a demolition without a date
    (``None`` properties must survive into both files the same way)."""
    courtyard = Polygon(
        [(114.5, 37.07), (114.5004, 37.07), (114.5004, 37.0702), (114.5002, 37.0702),
         (114.5002, 37.0704), (114.5, 37.0704)],
        [[(114.50005, 37.07005), (114.5001, 37.07005), (114.5001, 37.0701), (114.50005, 37.0701)]],
    )  # fmt: skip
    common: dict[str, Any] = dict(
        reasons=("new structure of 96 m2, 6.1 m high, covered by no valid permit",),
        area_m2=96.04,
        height_gain_m=6.1,
        floors_added=2,
        score=0.93,
        before_date="2026-09-01",
        after_date="2026-10-01",
        input_hashes={"after_dsm": "ab" * 32},
    )
    return [
        Lead(lead_id="L-1a2b3c", lead_class="no_permit", geometry=box(114.5001, 37.0701,
             114.50023456789, 37.0702), **common),
        Lead(lead_id="L-4d5e6f", lead_class="over_height", geometry=courtyard,
             **{**common, "permit_ids": ("P-2026-0042",)}),
        Lead(lead_id="L-7a8b9c", lead_class="demolished", geometry=box(114.51, 37.08, 114.5101,
             37.0801), **{**common, "floors_added": None, "after_date": None}),
    ]  # fmt: skip


def _write_per_file(out: Path, leads: list[Lead]) -> tuple[Path, Path]:
    """The write before issue #15: the features built once per file (the reference)."""
    out.mkdir()
    geojson = write_json(out / "leads.geojson", leads_to_feature_collection(leads))
    features = [lead.to_feature() for lead in leads]
    gpkg = out / "leads.gpkg"
    write_features(
        gpkg, [lead.geometry for lead in leads], [f["properties"] for f in features],
        crs=4326, layer="leads",
    )  # fmt: skip
    return geojson, gpkg


def _gpkg_content(path: Path) -> tuple[Any, ...]:
    meta, _fids, geometry, fields = pyogrio.raw.read(path, layer="leads")
    return (
        meta["crs"],
        list(meta["fields"]),
        list(geometry),
        [[None if v is None else str(v) for v in column] for column in fields],
    )


def test_write_leads_builds_each_feature_once_with_identical_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leads = _leads()
    ref_geojson, ref_gpkg = _write_per_file(tmp_path / "reference", leads)
    calls: list[str] = []
    to_feature = Lead.to_feature

    def counted(self: Lead) -> dict[str, Any]:
        calls.append(self.lead_id)
        return to_feature(self)

    monkeypatch.setattr(Lead, "to_feature", counted)
    out = tmp_path / "run"
    out.mkdir()
    geojson, gpkg = write_leads(out, leads)
    assert (geojson, gpkg) == (out / "leads.geojson", out / "leads.gpkg")
    assert calls == ["L-1a2b3c", "L-4d5e6f", "L-7a8b9c"]
    assert geojson.read_bytes() == ref_geojson.read_bytes()
    assert _gpkg_content(gpkg) == _gpkg_content(ref_gpkg)
    content = _gpkg_content(gpkg)
    assert len(content[2]) == 3 and "lead_id" in content[1]
    assert json.loads(geojson.read_text())["features"][1]["properties"]["permit_ids"] == [
        "P-2026-0042"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["leads.geojson", "leads.gpkg"]


def test_write_leads_of_no_leads(tmp_path: Path) -> None:
    """No leads: an empty collection and a layer with no rows, as before."""
    ref_geojson, ref_gpkg = _write_per_file(tmp_path / "reference", [])
    geojson, gpkg = write_leads(tmp_path, [])
    assert json.loads(geojson.read_text()) == {"type": "FeatureCollection", "features": []}
    assert geojson.read_bytes() == ref_geojson.read_bytes()
    assert _gpkg_content(gpkg) == _gpkg_content(ref_gpkg)
