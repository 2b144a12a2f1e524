"""RGB-only change detection (change_detection.spectral) on planted synthetic pairs.

One scene at 10 cm holds what changes between two flights without being a new building — a
global change of exposure and white balance, relit roof facets, shadows that moved with the
sun, cars that moved, trees that grew and a lawn that turned green inside its old edges — and
five new roofs, one of each common colour (blue, green, red, white, grey). Known answer: the
five roofs are the leads, each found once and with its area, and nothing else is.
"""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from shapely.geometry import box

from change_detection.change import pixel_scale
from change_detection.detect import ChangeResult, Epoch, detect_changes
from change_detection.objects import ChangeObject, _roof_object
from change_detection.params import DetectParams
from change_detection.permits import build_leads
from change_detection.rgb_scene import scene_histograms, scene_stats
from change_detection.spectral import RoofEvidence

GSD = 0.1
T = Affine(GSD, 0.0, 500000.0, 0.0, -GSD, 4000000.0)
N = 720

#: The new roofs: (row, col, height, width) in pixels and colour (RGB, DN).
ROOFS = {
    "blue": ((60, 60, 90, 110), (60, 90, 170)),
    "green": ((60, 300, 80, 120), (70, 130, 60)),
    "red": ((60, 540, 100, 90), (170, 55, 45)),
    "white": ((300, 60, 90, 100), (235, 235, 230)),
    "grey": ((300, 300, 110, 90), (128, 128, 132)),
}


SOIL, PAVING, ASPHALT, GRAVEL = (150, 135, 110), (175, 170, 160), (75, 75, 78), (125, 120, 112)
#: Ground of the 240 x 240 px plots, the same in both epochs.
PLOTS = (
    (SOIL, PAVING, SOIL),
    (PAVING, ASPHALT, SOIL),
    (GRAVEL, SOIL, PAVING),
)


def _da(data: np.ndarray) -> xr.DataArray:
    dims = ("band", "y", "x") if data.ndim == 3 else ("y", "x")
    return xr.DataArray(data, dims=dims).rio.write_crs(32650).rio.write_transform(T)


def _paint(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    for k in range(3):
        img[k][mask] = colour[k]


def _box(r: int, c: int, h: int, w: int) -> np.ndarray:
    m = np.zeros((N, N), bool)
    m[r : r + h, c : c + w] = True
    return m


def _disk(r: int, c: int, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[0:N, 0:N]
    return (yy - r) ** 2 + (xx - c) ** 2 <= radius**2


def _pair(seed: int = 0, roofs: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The planted pair (uint8, shape (3, N, N) each); the after one already has the global
    exposure and white-balance change."""
    rng = np.random.default_rng(seed)
    before = np.empty((3, N, N), np.float64)
    for i, row in enumerate(PLOTS):
        for j, ground in enumerate(row):
            _paint(before, _box(240 * i, 240 * j, 240, 240), ground)
    after = before.copy()
    # an existing hipped roof: two facets, relit in the after epoch (the sun moved)
    left, right = _box(560, 520, 110, 60), _box(560, 580, 110, 60)
    _paint(before, left, (120, 110, 105))
    _paint(before, right, (90, 82, 78))
    _paint(after, left, (95, 86, 82))
    _paint(after, right, (125, 115, 110))
    # its shadow fell east in the before epoch, north in the after one
    _paint(before, _box(560, 640, 110, 50), (60, 55, 45))
    _paint(after, _box(510, 520, 50, 120), (60, 55, 45))
    # cars that moved (1.8 x 4.5 m)
    _paint(before, _box(480, 80, 18, 45), (30, 30, 140))
    _paint(after, _box(520, 200, 45, 18), (200, 30, 30))
    _paint(before, _box(620, 300, 18, 45), (230, 230, 230))
    _paint(after, _box(640, 380, 18, 45), (20, 20, 20))
    # trees that grew on bare soil, and a lawn that turned green inside its old edges
    for r, c, rad in ((470, 470, 30), (660, 100, 35)):
        _paint(after, _disk(r, c, rad), (50, 95, 40))
    lawn = _box(440, 260, 60, 140)
    _paint(before, lawn, (170, 160, 95))
    _paint(after, lawn, (80, 140, 60))
    if roofs:
        for (r, c, h, w), colour in ROOFS.values():
            _paint(after, _box(r, c, h, w), colour)
    # the second flight: 15 % darker, warmer white balance
    after = after * np.array([0.9, 0.85, 0.78])[:, None, None]
    out = []
    for img in (before, after):
        noisy = img + rng.normal(0.0, 4.0, img.shape)
        out.append(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return out[0], out[1]


def _detect(before: np.ndarray, after: np.ndarray, chunk_px: int = 1024) -> ChangeResult:
    valid = _da(np.ones((N, N), bool))
    return detect_changes(
        Epoch(_da(before), valid), Epoch(_da(after), valid), DetectParams(chunk_px=chunk_px)
    )


def _roof_of(obj: ChangeObject) -> str | None:
    assert obj.pixel_geometry is not None
    cx, cy = obj.pixel_geometry.centroid.coords[0]
    for name, ((r, c, h, w), _) in ROOFS.items():
        if r <= cy <= r + h and c <= cx <= c + w:
            return name
    return None


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray]:
    return _pair()


def test_the_radiometric_normalisation_recovers_the_exposure_change(
    planted: tuple[np.ndarray, np.ndarray],
) -> None:
    before, after = planted
    hist = scene_histograms(before, after, np.ones((N, N), bool), 4)
    gain = scene_stats(hist, DetectParams()).gain
    # the after flight was 0.9, 0.85, 0.78 of the before one on the unchanged soil
    assert gain == pytest.approx((1 / 0.9, 1 / 0.85, 1 / 0.78), rel=0.02)


def test_new_roofs_of_every_colour_are_leads_and_nothing_else_is(
    planted: tuple[np.ndarray, np.ndarray],
) -> None:
    res = _detect(*planted)
    assert res.mode == "rgb_only"
    found: dict[str, float] = {}
    for obj in res.objects:
        name = _roof_of(obj)
        assert name is not None, f"false lead at {obj.geometry.bounds}: {obj.rgb_evidence}"
        assert name not in found, f"{name} roof found twice"
        assert obj.kind == "new" and obj.height_gain_m is None
        assert obj.rgb_evidence is not None and obj.rgb_evidence.what == "new roof"
        found[name] = obj.area_m2
    assert sorted(found) == sorted(ROOFS)
    for name, ((_, _, h, w), _) in ROOFS.items():
        assert found[name] == pytest.approx(h * w * GSD * GSD, rel=0.1), name


def test_without_the_roofs_the_same_changes_give_no_lead() -> None:
    res = _detect(*_pair(roofs=False))
    assert res.objects == ()


def test_chunked_equals_whole_with_roofs_across_the_seams(
    planted: tuple[np.ndarray, np.ndarray],
) -> None:
    whole = _detect(*planted, chunk_px=4096)
    # 96 px chunks cut every roof (and the shadows, cars and trees) several times
    parts = _detect(*planted, chunk_px=96)
    assert parts.n_chunks >= 49
    assert whole.codes is not None and parts.codes is not None
    np.testing.assert_array_equal(whole.codes.values, parts.codes.values)
    assert len(whole.objects) == len(parts.objects) == len(ROOFS)
    for a, b in zip(whole.objects, parts.objects, strict=True):
        assert a.geometry.equals(b.geometry)
        assert a.area_m2 == b.area_m2 and a.score == b.score
        assert a.rgb_evidence == b.rgb_evidence


def test_rgb_only_leads_say_what_changed_how_sure_and_why_not_vegetation_shadow_or_car(
    planted: tuple[np.ndarray, np.ndarray],
) -> None:
    res = _detect(*planted)
    leads = build_leads(res.objects, None, crs=32650, rgb_only=True)
    assert len(leads) == len(ROOFS)
    for lead in leads:
        assert lead.rgb_only
        text = "; ".join(lead.reasons)
        assert text.startswith("a new roof of ")
        assert "colour changed by" in text and "its outline is an edge" in text
        assert "not a shadow" in text and "not a car" in text
        assert "RGB-only evidence (no DSM)" in text
        assert ("not vegetation" in text) or ("a painted roof, not a tree" in text)
    green = next(o for o in res.objects if _roof_of(o) == "green")
    evidence = green.rgb_evidence
    assert isinstance(evidence, RoofEvidence) and evidence.painted and evidence.vegetation > 0.5


@pytest.mark.parametrize(("level", "leads"), [(255, 0), (235, 1)])
def test_a_blown_out_patch_is_no_roof_but_a_white_one_is(level: int, leads: int) -> None:
    """A roof-sized patch clipped at 255 in the after epoch (an overexposed field) has an
    unknown colour and is no lead; the same patch at 235 (a white roof) is one new roof."""
    before, after = _pair(roofs=False)
    after = after.copy()
    after[:, 300:390, 60:160] = level
    res = _detect(before, after)
    assert len(res.objects) == leads
    for obj in res.objects:
        assert obj.rgb_evidence is not None and obj.rgb_evidence.what == "new roof"
        assert obj.rgb_evidence.resolution == 1.0 and obj.rgb_evidence.gsd_m == GSD


def test_leads_at_a_coarse_pixel_size_say_their_confidence_is_low() -> None:
    """1.5 m pixels (SZTAKI AirChange): a 4 m wide building is 2.7 px across, a third of the
    8 px segment outlines need, so the score is scaled by 0.33 and the reasons say so."""
    ev = RoofEvidence(
        what="new roof", area_m2=400.0, change_sigma=2.0, outline_in=6.0, outline_other=1.0,
        brightness=1.2, vegetation=0.0, painted=False, width_m=15.0, length_m=27.0,
        solidity=0.95, rectangularity=0.9, colour=(200, 190, 180),
    )  # fmt: skip
    coarse = _roof_object(
        box(0, 0, 10, 18), "new", ev, T, DetectParams(), pixel_scale(DetectParams(), 1.5)
    )
    fine = _roof_object(
        box(0, 0, 150, 270), "new", ev, T, DetectParams(), pixel_scale(DetectParams(), 0.1)
    )
    assert coarse.rgb_evidence is not None and coarse.rgb_evidence.resolution == pytest.approx(
        4.0 / 1.5 / 8.0
    )
    assert coarse.score == pytest.approx(fine.score * 4.0 / 1.5 / 8.0, abs=0.002)
    (lead,) = build_leads((coarse,), None, crs=32650, rgb_only=True)
    assert any(r.startswith("low confidence: at 1.5 m per pixel") for r in lead.reasons)
    (lead,) = build_leads((fine,), None, crs=32650, rgb_only=True)
    assert not any("low confidence" in r for r in lead.reasons)
