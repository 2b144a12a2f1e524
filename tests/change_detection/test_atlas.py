"""estimate_atlas_offset: planted buildings, outlines shifted by a known offset, recovered.

Tolerances: the offset is measured to about 0.01 m on these rasters (DSM-like edges blurred
over 0.15 m, 5 cm noise); the tests allow 0.05 m for the combined offset (half a pixel at
10 cm, a third of the 0.15 m the first-survey check can live with) and 0.08 m for a single
outline (an outline with a wall missing on one side, where an extension is attached, is
biased by a few centimetres toward it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio import features
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from change_detection.atlas import AtlasOffset, estimate_atlas_offset
from change_detection.errors import ChangeDetectionError

X0, Y0 = 500000.0, 4000000.0
SIZE = 100.0
CENTRE = (X0 + SIZE / 2, Y0 + SIZE / 2)


def _transform(gsd: float) -> Affine:
    return Affine(gsd, 0.0, X0, 0.0, -gsd, Y0 + SIZE)


def _rect(x: float, y: float, w: float, h: float, angle: float = 0.0) -> Polygon:
    return affinity.rotate(box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h), angle, origin="centroid")


L_SHAPE = Polygon([(0, 0), (14, 0), (14, 6), (6, 6), (6, 14), (0, 14)])

#: (id, outline, height, kind): kind "ext_same"/"ext_low" get an unpermitted 4 m extension
#: attached on their east side (at the same height, at 3 m); "missing" is not built.
BUILDINGS: list[tuple[str, BaseGeometry, float, str]] = [
    ("r1", _rect(10, 10, 12, 8), 6.0, "plain"),
    ("r2", _rect(40, 12, 9, 14, 17), 9.0, "plain"),
    ("L1", affinity.translate(L_SHAPE, X0 + 70, Y0 + 10), 7.5, "plain"),
    ("r3", _rect(12, 45, 16, 10, -8), 4.0, "plain"),
    ("ext1", _rect(45, 45, 12, 9, 5), 8.0, "ext_same"),
    ("ext2", _rect(72, 45, 10, 10), 9.0, "ext_low"),
    ("gone", _rect(15, 75, 10, 8), 0.0, "missing"),
    ("r4", _rect(45, 75, 11, 7, 30), 12.0, "plain"),
]


def _height(gsd: float, seed: int = 0) -> np.ndarray:
    """Height above ground of the planted scene: buildings, extensions, a tree, a shed."""
    n = round(SIZE / gsd)
    t = _transform(gsd)
    rng = np.random.default_rng(seed)
    h = np.zeros((n, n), np.float32)
    for _, poly, height, kind in BUILDINGS:
        if kind == "missing":
            continue
        m = features.geometry_mask([poly], (n, n), t, invert=True)
        h[m] = np.maximum(h[m], height)
        if kind.startswith("ext"):
            _, miny, maxx, maxy = poly.bounds
            ext = box(maxx - 0.3, miny + 1.5, maxx + 4.0, maxy - 1.5).difference(poly)
            me = features.geometry_mask([ext], (n, n), t, invert=True) & ~m
            h[me] = height if kind == "ext_same" else 3.0
    rows, cols = np.mgrid[0:n, 0:n]
    cx, cy = 26.0 / gsd, (SIZE - 14.0) / gsd  # a tree 4 m east of r1
    d = np.hypot(cols - cx, rows - cy) * gsd
    crown = np.where(d < 3.0, 7.0 * np.sqrt(np.clip(1 - (d / 3.0) ** 2, 0, 1)), 0.0)
    h = np.maximum(h, crown + rng.normal(0, 0.3, h.shape) * (d < 3.0)).astype(np.float32)
    shed = features.geometry_mask([_rect(52, 14, 3, 3)], (n, n), t, invert=True)
    h[shed] = 3.0  # an unpermitted shed beside r2
    h = ndimage.gaussian_filter(h, 0.15 / gsd) + rng.normal(0, 0.05, h.shape)
    h[: round(2.0 / gsd)] = np.nan  # nodata along the north edge
    return h.astype(np.float32)


def _on_disk(tmp_path: Path, h: np.ndarray, gsd: float) -> np.ndarray:
    """Write the height raster as a GeoTIFF and read it back as the check command would."""
    path = tmp_path / f"height_{gsd:g}.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=h.shape[1], height=h.shape[0], count=1,
        dtype="float32", crs="EPSG:32650", transform=_transform(gsd), nodata=-9999.0,
    ) as dst:  # fmt: skip
        dst.write(np.where(np.isfinite(h), h, -9999.0).astype(np.float32), 1)
    with rasterio.open(path) as src:
        return src.read(1, masked=True).filled(np.nan).astype(np.float32)


def _atlas(dx: float, dy: float, rotation_deg: float = 0.0) -> list[tuple[str, BaseGeometry]]:
    """The outlines as the atlas has them: rotated about the site centre, then shifted."""
    return [
        (oid, affinity.translate(affinity.rotate(p, rotation_deg, origin=CENTRE), dx, dy))
        for oid, p, _, _ in BUILDINGS
    ]


def _check_recovered(off: AtlasOffset, dx: float, dy: float) -> None:
    assert off.reliable, off.summary
    assert math.hypot(off.dx_m + dx, off.dy_m + dy) < 0.05, off.summary
    by_id = {m.outline_id: m for m in off.matches}
    assert not by_id["gone"].used and "no structure under the outline" in by_id["gone"].reason
    for oid in ("r1", "r2", "L1", "r3", "r4", "ext2"):
        m = by_id[oid]
        assert m.used, (oid, m.reason)
        assert math.hypot(m.dx_m + dx, m.dy_m + dy) < 0.08, (oid, m)
        assert m.score > 0.7
    # the same-height extension: its outline still fits the original part, so it is used
    # (measured 0.042 m off at both pixel sizes)
    ext = by_id["ext1"]
    assert ext.used, ext.reason
    assert math.hypot(ext.dx_m + dx, ext.dy_m + dy) < 0.08, ext
    assert off.n_outlines == len(BUILDINGS) and off.n_used >= 6
    assert off.residual_m < 0.05
    assert f"from {off.n_used} of {len(BUILDINGS)} outlines" in off.summary


@pytest.mark.parametrize(("gsd", "dx", "dy"), [(0.1, 1.07, -0.93), (0.05, -0.88, 1.12)])
def test_planted_offset_is_recovered(tmp_path: Path, gsd: float, dx: float, dy: float) -> None:
    h = _on_disk(tmp_path, _height(gsd), gsd)
    before = h.copy()
    off = estimate_atlas_offset(h, _transform(gsd), _atlas(dx, dy))
    np.testing.assert_array_equal(h, before)
    _check_recovered(off, dx, dy)


def test_rotated_atlas_reports_the_rotation_in_the_residual(tmp_path: Path) -> None:
    gsd, dx, dy, rot = 0.1, 1.07, -0.93, 0.3
    h = _on_disk(tmp_path, _height(gsd), gsd)
    off = estimate_atlas_offset(h, _transform(gsd), _atlas(dx, dy, rot))
    # the true correction of each outline is where its centroid went, undone
    truth: dict[str, tuple[float, float]] = {}
    for oid, p, _, _ in BUILDINGS:
        moved = affinity.translate(affinity.rotate(p, rot, origin=CENTRE), dx, dy).centroid
        truth[oid] = (p.centroid.x - moved.x, p.centroid.y - moved.y)
    used = [m for m in off.matches if m.used]
    assert len(used) >= 6
    for m in used:
        tx, ty = truth[m.outline_id]
        assert math.hypot(m.dx_m - tx, m.dy_m - ty) < 0.1, m
    mean = np.mean([truth[m.outline_id] for m in used], axis=0)
    assert math.hypot(off.dx_m - mean[0], off.dy_m - mean[1]) < 0.05
    spread = np.sqrt(np.mean([np.sum((np.asarray(truth[m.outline_id]) - mean) ** 2) for m in used]))
    # 0.3° over outlines 20-40 m from the centre: a residual of about 0.15 m, reported
    assert 0.1 < spread < 0.25
    assert off.residual_m == pytest.approx(spread, abs=0.05)
    assert off.reliable  # within RELIABLE_RESIDUAL_M: the mean shift is still applied


def test_too_few_outlines_are_not_reliable() -> None:
    gsd = 0.1
    off = estimate_atlas_offset(_height(gsd), _transform(gsd), _atlas(1.0, 1.0)[:2])
    assert not off.reliable
    assert off.n_used == 2 and off.n_outlines == 2
    assert "3 needed" in off.summary and "used as it is" in off.summary


def test_no_buildings_are_not_reliable() -> None:
    gsd = 0.1
    flat = np.zeros((1000, 1000), np.float32)
    off = estimate_atlas_offset(flat, _transform(gsd), _atlas(1.0, 1.0))
    assert not off.reliable and off.n_used == 0
    assert (off.dx_m, off.dy_m) == (0.0, 0.0) and math.isnan(off.residual_m)
    assert all(not m.used and m.reason for m in off.matches)
    assert "0 of 8 outlines matched a structure" in off.summary


def test_offset_beyond_the_search_range_is_not_reliable() -> None:
    gsd = 0.1
    off = estimate_atlas_offset(_height(gsd), _transform(gsd), _atlas(5.0, 0.0))
    assert not off.reliable, off.summary


def test_dask_backed_heights_give_the_same_answer() -> None:
    gsd = 0.1
    h = _height(gsd)
    atlas = _atlas(-0.7, 1.2)
    a = estimate_atlas_offset(h, _transform(gsd), atlas)
    b = estimate_atlas_offset(da.from_array(h, chunks=(128, 200)), _transform(gsd), atlas)
    assert a == b
    assert a.reliable


def test_terrace_unit_is_pinned_by_the_orthophoto() -> None:
    """Row houses share side walls: the DSM pins a middle unit across the row only."""
    gsd, n = 0.1, 500
    t = Affine(gsd, 0, 0, 0, -gsd, 50)
    h = np.zeros((n, n), np.float32)
    rgb = np.full((3, n, n), 110, np.uint8)
    units = [box(5 + 7 * i, 30, 12 + 7 * i, 40) for i in range(3)]
    others = [box(5, 5, 15, 12), box(30, 5, 38, 20), box(35, 30, 45, 42)]
    roofs = [
        (200, 60, 50), (60, 90, 200), (220, 220, 210), (90, 90, 90), (150, 120, 80), (90, 160, 90)
    ]  # fmt: skip
    for poly, roof in zip(units + others, roofs, strict=True):
        m = features.geometry_mask([poly], (n, n), t, invert=True)
        h[m] = 7.0
        rgb[:, m] = np.array(roof, np.uint8)[:, None]
    h = ndimage.gaussian_filter(h, 1.5)
    named = [(f"u{i}", p) for i, p in enumerate(units)]
    named += [(f"o{i}", p) for i, p in enumerate(others)]
    atlas = [(i, affinity.translate(p, 0.74, -1.16)) for i, p in named]
    dsm_only = estimate_atlas_offset(h, t, atlas)
    middle = {m.outline_id: m for m in dsm_only.matches}["u1"]
    assert not middle.used and "one direction" in middle.reason
    with_rgb = estimate_atlas_offset(h, t, atlas, rgb=rgb)
    middle = {m.outline_id: m for m in with_rgb.matches}["u1"]
    assert middle.used
    assert math.hypot(middle.dx_m + 0.74, middle.dy_m - 1.16) < 0.05
    assert math.hypot(with_rgb.dx_m + 0.74, with_rgb.dy_m - 1.16) < 0.05
    # the fits the DSM pinned are the same with and without the orthophoto
    pinned = [(a, b) for a, b in zip(dsm_only.matches, with_rgb.matches, strict=True) if a.used]
    assert len(pinned) == dsm_only.n_used > 0
    assert [(a.dx_m, a.dy_m) for a, _ in pinned] == [(b.dx_m, b.dy_m) for _, b in pinned]


def test_synthetic_site_with_a_gnss_offset() -> None:
    """Existing buildings and permits of the synthetic site, atlas 0.93 m E and 1.08 m S off."""
    from change_detection.terrain import derive_dtm
    from survey.synth import SynthParams, render_scene

    scene = render_scene(SynthParams(seed=0, size_m=80.0, gsd_cm=10.0, misregister=False))
    height = scene.after_dsm - derive_dtm(scene.after_dsm, 0.1)
    layout = scene.layout
    atlas = [(b.name, b.footprint.polygon()) for b in layout.buildings if b.before and b.after]
    atlas += [(p.permit_id, p.footprint) for p in layout.permits]
    moved = [(i, affinity.translate(g, 0.93, -1.08)) for i, g in atlas]
    off = estimate_atlas_offset(height, scene.transform, moved, rgb=scene.after_rgb)
    assert off.reliable, off.summary
    assert math.hypot(off.dx_m + 0.93, off.dy_m - 1.08) < 0.05
    by_id = {m.outline_id: m for m in off.matches}
    # the permit of the expired lot has nothing on it; the permitted building stands 1 m
    # inside its permit, so that outline has no wall on it
    assert not by_id["P-2022-008"].used and "no structure" in by_id["P-2022-008"].reason
    assert not by_id["P-2025-047"].used
    assert all(m.used for m in off.matches if m.outline_id.startswith("existing-"))


def test_report_is_json() -> None:
    gsd = 0.1
    off = estimate_atlas_offset(_height(gsd), _transform(gsd), _atlas(1.0, -1.0))
    record = json.loads(json.dumps(off.to_dict(), allow_nan=False))
    assert record["n_used"] == off.n_used and record["reliable"] is True
    gone = next(m for m in record["matches"] if m["outline_id"] == "gone")
    assert gone["used"] is False and gone["reason"]


@pytest.mark.parametrize(
    ("shape", "transform", "kwargs", "match"),
    [
        ((10, 10), Affine(0.1, 0.02, 0, 0.0, -0.1, 0), {}, "rotation; resample it"),
        ((10, 10), Affine(0.1, 0, 0, 0, -0.2, 0), {}, "0.1 x 0.2 pixels"),
        ((2, 10, 10), Affine(0.1, 0, 0, 0, -0.1, 0), {}, "pass one band"),
        ((10, 10), Affine(0.1, 0, 0, 0, -0.1, 0), {"max_offset_m": 0.0}, "max_offset_m = 0.0"),
    ],
)
def test_bad_grids_are_one_clear_error(
    shape: tuple[int, ...], transform: Affine, kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(ChangeDetectionError, match=match):
        estimate_atlas_offset(np.zeros(shape, np.float32), transform, [], **kwargs)
