"""Leads made from the truth of a synthetic site (until the detector's leads are used)."""

from __future__ import annotations

import json
from typing import Any

from shapely.geometry import shape

from change_detection.leads import Lead
from survey.rasters import sha256_file
from survey.vectors import read_features


def leads_from_truth(site: Any) -> list[Lead]:
    """One lead per truth change that must be flagged, with the class the truth expects."""
    fc = json.loads(site.truth_geojson.read_text())
    hashes = {
        role: sha256_file(getattr(site, role))
        for role in ("before_ortho", "after_ortho", "before_dsm", "after_dsm")
    }
    leads = []
    for f in fc["features"]:
        p = f["properties"]
        if not p.get("must_flag"):
            continue
        gain = float(p["height_change_m"])
        leads.append(
            Lead(
                lead_id=str(p["change_id"]),
                lead_class=str(p["expected_class"]),
                geometry=shape(f["geometry"]),
                reasons=(f"{p['kind'].replace('_', ' ')} of {p['area_m2']:.0f} m²",),
                area_m2=float(p["area_m2"]),
                height_gain_m=gain,
                floors_added=round(gain / 3.0),
                permit_ids=(str(p["permit_id"]),) if p.get("permit_id") else (),
                score=0.9,
                kind="removed" if gain < 0 else ("raised" if p.get("permit_id") else "new"),
                before_date="2024-03-01",
                after_date="2025-09-01",
                input_hashes=hashes,
            )
        )
    return leads


def permits_of(site: Any) -> list[tuple[Any, dict[str, Any]]]:
    feats = read_features(site.permits, "permits").to_crs(4326)
    return list(zip(feats.geometries, feats.properties, strict=True))
