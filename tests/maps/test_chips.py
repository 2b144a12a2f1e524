"""Chips and height profiles: scale bar length, true north, profile heights, PNG output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyproj import CRS, Transformer

from maps.chips import (
    nice_scale_length,
    render_chip,
    render_height_profile,
    sample_profile,
    true_north_angle,
    utm_crs_for,
)
from maps.errors import MapError
from tests.maps.scenes import Scene


def test_nice_scale_length() -> None:
    assert nice_scale_length(100.0) == 20.0
    assert nice_scale_length(41.0) == 10.0
    assert nice_scale_length(7.9) == 1.0
    assert nice_scale_length(3000.0) == 500.0


def test_true_north_follows_meridian_convergence() -> None:
    utm50 = CRS.from_epsg(32650)  # central meridian 117 E
    assert utm_crs_for(114.08, 22.58) == utm50
    assert utm_crs_for(-70.0, -33.0) == CRS.from_epsg(32719)
    tr = Transformer.from_crs(4326, utm50, always_xy=True)
    on_cm = tr.transform(117.0, 22.58)
    west = tr.transform(114.0, 22.58)
    assert abs(true_north_angle(utm50, *on_cm)) < 1e-3
    # convergence gamma = atan(tan(dlon) sin(lat)): true north is clockwise of grid north
    # west of the central meridian
    expected = np.degrees(np.arctan(np.tan(np.radians(3.0)) * np.sin(np.radians(22.58))))
    assert true_north_angle(utm50, *west) == pytest.approx(expected, abs=0.02)


def test_profile_measures_the_painted_building(scene: Scene) -> None:
    lead = scene.leads[0]  # 6 m block over 20 m ground
    prof = sample_profile(lead.geometry, before_dsm=scene.before_dsm, after_dsm=scene.after_dsm)
    assert prof.before_m is not None and prof.after_m is not None
    assert prof.inside.any() and (~prof.inside).any()
    inside = prof.after_m[prof.inside] - prof.before_m[prof.inside]
    assert np.nanmedian(inside) == pytest.approx(6.0, abs=1e-6)
    outside = prof.after_m[~prof.inside] - prof.before_m[~prof.inside]
    assert np.nanmedian(outside) == pytest.approx(0.0, abs=1e-6)
    # transect along the 30 m long axis, extended by 15 m on each side
    assert prof.line.length == pytest.approx(60.0, abs=0.5)
    assert prof.inside.sum() * (prof.distance_m[1] - prof.distance_m[0]) == pytest.approx(
        30.0, abs=0.5
    )


def test_chip_and_profile_pngs(scene: Scene, tmp_path: Path) -> None:
    lead = scene.leads[0]
    chip = render_chip(
        scene.after_ortho,
        lead.geometry,
        tmp_path / "c.png",
        title="After",
        date="2024-06-02",
        size_in=4.0,
        dpi=100,
    )
    with Image.open(chip) as im:
        assert im.format == "PNG" and im.size == (400, 460)
        arr = np.asarray(im.convert("RGB"))
    # the red roof of the new building is in the middle of the chip
    h, w, _ = arr.shape
    centre = arr[int(h * 0.45), w // 2 + 15]
    assert centre[0] > 150 and centre[1] < 100
    prof = render_height_profile(
        lead.geometry, tmp_path / "p.png", before_dsm=scene.before_dsm, after_dsm=None
    )
    with Image.open(prof) as im:
        assert im.format == "PNG"
    with pytest.raises(MapError, match="at least one DSM"):
        sample_profile(lead.geometry, before_dsm=None, after_dsm=None)
