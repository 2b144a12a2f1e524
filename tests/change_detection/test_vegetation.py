"""Vegetation is not a colour (issue 12): known answers of the vegetation test.

A height change is suppressed as vegetation only where the deciding epoch (after for a gain,
before for a loss) has the colour of vegetation (RGB indices, or NDVI with a near-infrared
band) *and* a surface that is not planar. Scenes at 10 cm: a 6 m x 8 m building, 4 m tall,
flat or gabled, with a green, blue, red, white or dark roof, new or demolished, on a lawn; trees
and a hedge with a canopy's relief (clumps and gaps, about 0.9 m within a metre), growing,
planted or felled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from scipy import ndimage

from change_detection.change import (
    CODE_NEW,
    CODE_REMOVED,
    CODE_SPECTRAL,
    CODE_VEGETATION,
    ndvi,
    on_planar_surface,
    pixel_scale,
    plane_fit_residual,
    vegetation_mask,
)
from change_detection.detect import ChangeResult, Epoch, detect_changes
from change_detection.errors import ChangeDetectionError
from change_detection.params import DetectParams

GSD = 0.1
T = Affine(GSD, 0.0, 500000.0, 0.0, -GSD, 4000000.0)
P = DetectParams()

ROOFS: dict[str, tuple[int, int, int]] = {
    "green": (62, 140, 82),  # green colour-steel sheet
    "blue": (52, 96, 186),
    "red": (186, 62, 46),
    "white": (236, 236, 228),
    "dark": (30, 38, 26),  # dark roofing felt with a green cast: leaves to RGB indices
}
LAWN = (72, 112, 50)
LEAVES = (46, 82, 30)
AUTUMN = (122, 92, 76)  # reddish-brown leaves: not vegetation to RGB indices
ROOF_ROWS, ROOF_COLS = slice(70, 130), slice(60, 140)  # 6 m x 8 m
HEIGHT = 4.0
RIDGE = 1.5


def _da(data: np.ndarray) -> xr.DataArray:
    dims = ("band", "y", "x") if data.ndim == 3 else ("y", "x")
    return xr.DataArray(data, dims=dims).rio.write_crs(32650).rio.write_transform(T)


def _paint(rgb: np.ndarray, where: Any, colour: tuple[int, int, int], rng: Any) -> None:
    """Paint ``colour`` with +-3 DN of noise into (3, rows, cols) at ``where``."""
    region = rgb[(slice(None), *where)] if isinstance(where, tuple) else rgb[:, where]
    noisy = np.array(colour, np.int16)[:, None] + rng.integers(-3, 4, (3, region[0].size))
    if isinstance(where, tuple):
        rgb[(slice(None), *where)] = np.clip(noisy, 0, 255).reshape(region.shape)
    else:
        rgb[:, where] = np.clip(noisy, 0, 255)


def _lawn(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """A lawn on gently sloping ground: rgb (3, n, n), heights (n, n) without noise (see
    :func:`_noisy`), and the generator of the scene."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((3, n, n), np.uint8)
    _paint(rgb, (slice(None), slice(None)), LAWN, rng)
    ground = 50.0 + 0.01 * np.arange(n)[None, :] + np.zeros((n, 1))
    return rgb, ground, rng


def _noisy(dsm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (dsm + rng.normal(0.0, 0.06, dsm.shape)).astype(np.float32)


def _canopy_relief(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A photogrammetric canopy's relief (m): clumps of ~0.3 and ~0.8 m, gaps up to 1.5 m."""

    def field(sigma_px: float) -> np.ndarray:
        f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px)
        return np.asarray(f / f.std())

    gaps = np.clip((field(5.0) - 0.8) / 0.8, 0.0, 1.0)
    return np.asarray(0.2 * field(1.5) + 0.25 * field(4.0) - 1.0 * gaps)


def _crown(n: int, centre: tuple[int, int], radius_m: float, height: float, rng: Any) -> Any:
    """(mask, height above ground) of a rough crown on an n x n grid."""
    rows, cols = np.mgrid[0:n, 0:n]
    d = np.hypot(rows - centre[0], cols - centre[1]) * GSD
    q = np.clip(1.0 - (d / radius_m) ** 2, 0.0, None)
    inside = d < radius_m
    top = height * np.sqrt(q) + _canopy_relief((n, n), rng)
    return inside & (top > 0.2), np.maximum(top, 0.0)


def _detect(b: dict[str, Any], a: dict[str, Any], params: DetectParams = P) -> ChangeResult:
    def epoch(e: dict[str, Any]) -> Epoch:
        n = e["dsm"].shape[0]
        nir = None if e.get("nir") is None else _da(e["nir"])
        return Epoch(_da(e["rgb"]), _da(np.ones((n, n), bool)), _da(e["dsm"]), nir)

    return detect_changes(epoch(b), epoch(a), params)


def _building_scene(colour: str, roof: str, change: str) -> tuple[dict[str, Any], ...]:
    """A building with a ``colour`` ``roof`` that is ``new`` or ``demolished`` on a lawn."""
    n = 200
    rgb, ground, rng = _lawn(
        n, seed=list(ROOFS).index(colour) * 4 + 2 * (roof == "gable") + (change == "new")
    )
    built = ground.copy()
    rows = np.arange(n)[ROOF_ROWS]
    ridge = RIDGE * (1.0 - np.abs(rows - rows.mean()) / (len(rows) / 2)) if roof == "gable" else 0
    built[ROOF_ROWS, ROOF_COLS] = ground[ROOF_ROWS, ROOF_COLS].mean() + HEIGHT
    built[ROOF_ROWS, ROOF_COLS] += np.asarray(ridge).reshape(-1, 1)
    with_roof = rgb.copy()
    _paint(with_roof, (ROOF_ROWS, ROOF_COLS), ROOFS[colour], rng)
    bare = {"rgb": rgb, "dsm": _noisy(ground, rng)}
    standing = {"rgb": with_roof, "dsm": _noisy(built, rng)}
    return (bare, standing) if change == "new" else (standing, bare)


def test_green_and_dark_roofs_have_the_colour_of_leaves() -> None:
    """The scenes below are not vacuous: to RGB indices, green and dark roofs are leaves."""
    rgb = np.stack([np.full((3, 4, 4), 0, np.uint8)] * len(ROOFS), axis=1)
    for i, c in enumerate(ROOFS.values()):
        rgb[:, i] = np.array(c, np.uint8)[:, None, None]
    veg = [bool(vegetation_mask(rgb[:, i], P).all()) for i in range(len(ROOFS))]
    assert dict(zip(ROOFS, veg, strict=True)) == {
        "green": True,
        "blue": False,
        "red": False,
        "white": False,
        "dark": True,
    }
    leaves = np.array(LEAVES, np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    assert vegetation_mask(leaves, P).all()


@pytest.mark.parametrize("change", ["new", "demolished"])
@pytest.mark.parametrize("roof", ["flat", "gable"])
@pytest.mark.parametrize("colour", list(ROOFS))
def test_buildings_of_every_roof_colour_are_found(colour: str, roof: str, change: str) -> None:
    before, after = _building_scene(colour, roof, change)
    res = _detect(before, after)
    (obj,) = res.objects
    assert obj.kind == ("new" if change == "new" else "removed")
    assert obj.area_m2 == pytest.approx(48.0, rel=0.02)
    sign = 1.0 if change == "new" else -1.0
    if roof == "flat":
        assert obj.height_gain_m == pytest.approx(sign * HEIGHT, abs=0.1)
    else:  # the median over the interior of a gable, between eave and ridge
        assert HEIGHT + 0.3 < sign * obj.height_gain_m < HEIGHT + RIDGE  # type: ignore[operator]
    leaf_coloured = colour in ("green", "dark")
    # a roof in a leaf colour is kept because it is planar, and says so
    assert (obj.vegetation_colour_fraction > 0.9) == leaf_coloured
    assert obj.vegetation_colour_fraction == 0.0 or leaf_coloured
    assert res.codes is not None
    assert not (res.codes.values[ROOF_ROWS, ROOF_COLS] == CODE_VEGETATION).any()


@pytest.mark.parametrize("change", ["new", "demolished"])
@pytest.mark.parametrize("colour", ["green", "dark"])
def test_colour_alone_missed_the_leaf_coloured_roofs(colour: str, change: str) -> None:
    """What issue 12 reported: with the planarity test off, colour suppresses these roofs."""
    before, after = _building_scene(colour, "flat", change)
    assert _detect(before, after, DetectParams(planar_residual_m=0.0)).objects == ()


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0])
def test_a_small_rotated_green_shed_is_found(angle: float) -> None:
    """3 m x 5 m, 3 m tall, green, at any angle to the grid, its walls ramped over 0.2 m
    each side as dense matching leaves them: the planar windows fit inside it."""
    n = 160
    rgb_b, ground, rng = _lawn(n, int(angle))
    rows, cols = np.mgrid[0:n, 0:n] * GSD - 8.0
    a = np.radians(angle)
    u, v = cols * np.cos(a) + rows * np.sin(a), -cols * np.sin(a) + rows * np.cos(a)
    shed = (np.abs(u) <= 2.5) & (np.abs(v) <= 1.5)
    after = ground + 3.0 * shed
    after = np.where(
        ndimage.maximum_filter(shed, 5) & ~ndimage.minimum_filter(shed, 5),
        ndimage.uniform_filter(after, 5),
        after,
    )  # the ramped walls
    rgb_a = rgb_b.copy()
    _paint(rgb_a, shed, ROOFS["green"], rng)
    res = _detect(
        {"rgb": rgb_b, "dsm": _noisy(ground, rng)}, {"rgb": rgb_a, "dsm": _noisy(after, rng)}
    )
    (obj,) = res.objects
    assert obj.kind == "new" and obj.area_m2 == pytest.approx(15.0, rel=0.1)
    assert obj.height_gain_m == pytest.approx(3.0, abs=0.15)
    assert obj.vegetation_colour_fraction > 0.5


def _vegetation_scene(n: int = 300, seed: int = 7) -> tuple[dict[str, Any], dict[str, Any]]:
    """On a lawn: a tree planted, a tree felled, a tree that grew, a hedge planted."""
    rgb_b, ground, rng = _lawn(n, seed)
    rgb_a = rgb_b.copy()
    dsm_b, dsm_a = ground.copy(), ground.copy()
    # planted: 3 m crown, 7 m tall
    inside, top = _crown(n, (60, 60), 3.0, 7.0, rng)
    dsm_a[inside] = ground[inside] + top[inside]
    _paint(rgb_a, inside, LEAVES, rng)
    # felled (the lawn shows in the after epoch)
    inside, top = _crown(n, (60, 210), 3.2, 8.0, rng)
    dsm_b[inside] = ground[inside] + top[inside]
    _paint(rgb_b, inside, LEAVES, rng)
    # grew from 2.5 m / 5 m to 3.2 m / 7 m: its leaves and gaps moved between the flights
    inside_b, top_b = _crown(n, (200, 80), 2.5, 5.0, rng)
    inside_a, top_a = _crown(n, (200, 80), 3.2, 7.0, rng)
    dsm_b[inside_b] = ground[inside_b] + top_b[inside_b]
    dsm_a[inside_a] = ground[inside_a] + top_a[inside_a]
    _paint(rgb_b, inside_b, LEAVES, rng)
    _paint(rgb_a, inside_a, LEAVES, rng)
    # hedge: 12 m x 1.2 m, about 3 m tall with a rough top
    hedge = (slice(240, 252), slice(150, 270))
    across = 1.0 - (np.abs(np.arange(12) - 5.5) / 6.0) ** 4
    top_h = 3.0 * np.sqrt(across)[:, None] + 0.8 * _canopy_relief((12, 120), rng)
    dsm_a[hedge] = ground[hedge] + np.maximum(top_h, 0.0)
    _paint(rgb_a, hedge, LEAVES, rng)
    return (
        {"rgb": rgb_b, "dsm": _noisy(dsm_b, rng)},
        {"rgb": rgb_a, "dsm": _noisy(dsm_a, rng)},
    )


def test_trees_and_hedges_are_still_suppressed() -> None:
    before, after = _vegetation_scene()
    res = _detect(before, after)
    assert res.objects == ()
    assert res.codes is not None
    codes = res.codes.values
    # every kind of vegetation change was seen and suppressed, not missed
    for rows, cols in (
        (slice(30, 90), slice(30, 90)),  # planted
        (slice(28, 92), slice(178, 242)),  # felled
        (slice(165, 235), slice(45, 115)),  # grew
        (slice(240, 252), slice(150, 270)),  # hedge
    ):
        assert (codes[rows, cols] == CODE_VEGETATION).sum() > 200, (rows, cols)
        assert not np.isin(codes[rows, cols], (CODE_NEW, CODE_REMOVED)).any(), (rows, cols)
    # and their canopies are rough: the reason they are suppressed
    scale = pixel_scale(P, GSD)
    res_a = plane_fit_residual(after["dsm"][32:88, 32:88], scale.planar_cell, scale.planar_cells)
    assert np.nanmedian(res_a) > 2 * P.planar_residual_m


def test_the_deciding_epoch() -> None:
    """Gains are judged on the after epoch, losses on the before epoch."""
    n = 300
    rgb_b, ground, rng = _lawn(n, 11)
    rgb_a = rgb_b.copy()
    dsm_b, dsm_a = ground.copy(), ground.copy()
    # a tree felled where the after epoch shows grey paving: the before epoch decides (a tree)
    inside, top = _crown(n, (60, 60), 3.0, 7.0, rng)
    dsm_b[inside] = ground[inside] + top[inside]
    _paint(rgb_b, inside, LEAVES, rng)
    _paint(rgb_a, inside, (128, 126, 122), rng)
    # a tree planted where the before epoch shows grey paving: the after epoch decides
    inside, top = _crown(n, (60, 220), 3.0, 7.0, rng)
    _paint(rgb_b, inside, (128, 126, 122), rng)
    dsm_a[inside] = ground[inside] + top[inside]
    _paint(rgb_a, inside, LEAVES, rng)
    # a grey building demolished and sown with grass: the before epoch decides (a roof)
    grey = (slice(180, 240), slice(40, 120))
    dsm_b[grey] = ground[grey].mean() + 5.0
    _paint(rgb_b, grey, (140, 138, 135), rng)
    # a green shed built on a lawn: the after epoch decides (planar)
    shed = (slice(190, 230), slice(190, 250))
    dsm_a[shed] = ground[shed].mean() + 3.2
    _paint(rgb_a, shed, ROOFS["green"], rng)
    res = _detect(
        {"rgb": rgb_b, "dsm": _noisy(dsm_b, rng)}, {"rgb": rgb_a, "dsm": _noisy(dsm_a, rng)}
    )
    got = sorted((o.kind, round(o.area_m2, 1)) for o in res.objects)
    assert got == [("new", 24.0), ("removed", 48.0)]


# --- near-infrared ------------------------------------------------------------------------------


def _autumn_tree_and_netted_heap(nir: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Planted: a tree with reddish leaves (NDVI high, RGB not green) and a heap of soil under
    a green dust net (RGB green, NDVI low), both rough, 3 m and more."""
    n = 240
    rgb_b, ground, rng = _lawn(n, 21)
    rgb_a = rgb_b.copy()
    dsm_a = ground.copy()
    nir_b = np.full((n, n), 200, np.uint8)  # the lawn: NDVI about 0.47
    nir_a = nir_b.copy()
    inside, top = _crown(n, (70, 70), 3.0, 7.0, rng)
    dsm_a[inside] = ground[inside] + top[inside]
    _paint(rgb_a, inside, AUTUMN, rng)
    nir_a[inside] = 240  # NDVI (240 - 122) / (240 + 122) = 0.33
    heap, top = _crown(n, (170, 160), 3.5, 3.8, rng)
    dsm_a[heap] = ground[heap] + top[heap]
    _paint(rgb_a, heap, (58, 128, 72), rng)  # the net's green
    nir_a[heap] = 70  # NDVI 0.09: a plastic net, not leaves
    before = {"rgb": rgb_b, "dsm": _noisy(ground, rng), "nir": nir_b if nir else None}
    after = {"rgb": rgb_a, "dsm": _noisy(dsm_a, rng), "nir": nir_a if nir else None}
    return before, after


def test_ndvi_decides_vegetation_when_there_is_a_near_infrared_band() -> None:
    rgb_only = _detect(*_autumn_tree_and_netted_heap(nir=False))
    (obj,) = rgb_only.objects  # RGB: the autumn tree is a lead, the green net is leaves
    assert obj.geometry.centroid.distance(_pixel_point(70, 70)) < 0.5
    with_nir = _detect(*_autumn_tree_and_netted_heap(nir=True))
    (obj,) = with_nir.objects  # NDVI: the tree is vegetation, the netted heap is not
    assert obj.geometry.centroid.distance(_pixel_point(170, 160)) < 0.5
    assert obj.kind == "new" and obj.vegetation_colour_fraction == 0.0


def _pixel_point(row: float, col: float) -> Any:
    from shapely.geometry import Point

    x, y = T * (col + 0.5, row + 0.5)
    return Point(x, y)


def test_only_the_deciding_epoch_needs_the_near_infrared_band() -> None:
    """A felled tree with reddish leaves: NIR in the before epoch tells it is vegetation;
    NIR in the after epoch alone does not (the before epoch decides a loss, by RGB here)."""
    n = 200
    rgb_b, ground, rng = _lawn(n, 31)
    rgb_a = rgb_b.copy()
    dsm_b = ground.copy()
    inside, top = _crown(n, (100, 100), 3.0, 7.0, rng)
    dsm_b[inside] = ground[inside] + top[inside]
    _paint(rgb_b, inside, AUTUMN, rng)
    nir = np.full((n, n), 200, np.uint8)
    nir[inside] = 240
    b = {"rgb": rgb_b, "dsm": _noisy(dsm_b, rng)}
    a = {"rgb": rgb_a, "dsm": _noisy(ground, rng)}
    assert _detect({**b, "nir": nir}, a).objects == ()
    (obj,) = _detect(b, {**a, "nir": nir}).objects
    assert obj.kind == "removed"


def test_ndvi_known_values_and_the_mask() -> None:
    nir = np.array([[240, 70, 0]], np.uint8)
    red = np.array([[122, 58, 0]], np.uint8)
    np.testing.assert_allclose(ndvi(nir, red), [[118 / 362, 12 / 128, 0.0]], rtol=1e-6)
    rgb = np.stack([red, red, red])
    assert vegetation_mask(rgb, P, nir).tolist() == [[True, False, False]]
    assert not vegetation_mask(rgb, P).any()  # grey to RGB indices


def test_rgb_only_mode_takes_vegetation_from_ndvi() -> None:
    """Without DSMs: a tree with reddish leaves planted on grey paving is a spectral change
    to RGB indices, vegetation to NDVI."""
    n = 200
    rng = np.random.default_rng(51)
    rgb_b = np.empty((3, n, n), np.uint8)
    _paint(rgb_b, (slice(None), slice(None)), (128, 126, 122), rng)
    rgb_a = rgb_b.copy()
    inside, _ = _crown(n, (100, 100), 3.0, 7.0, rng)
    _paint(rgb_a, inside, AUTUMN, rng)
    nir_b = np.full((n, n), 60, np.uint8)
    nir_a = np.where(inside, 240, 60).astype(np.uint8)
    valid = _da(np.ones((n, n), bool))
    plain = detect_changes(Epoch(_da(rgb_b), valid), Epoch(_da(rgb_a), valid))
    with_nir = detect_changes(
        Epoch(_da(rgb_b), valid, nir=_da(nir_b)), Epoch(_da(rgb_a), valid, nir=_da(nir_a))
    )
    assert plain.codes is not None and with_nir.codes is not None
    assert len(plain.objects) == 1 and with_nir.objects == ()
    assert (plain.codes.values[inside] == CODE_SPECTRAL).mean() > 0.8
    assert (with_nir.codes.values[inside] == CODE_VEGETATION).mean() > 0.8


def test_a_near_infrared_band_must_be_one_layer_on_the_grid() -> None:
    before, _ = _building_scene("red", "flat", "new")
    n = before["dsm"].shape[0]
    good = Epoch(_da(before["rgb"]), _da(np.ones((n, n), bool)), _da(before["dsm"]))
    bad = Epoch(good.rgb, good.valid, good.dsm, _da(np.zeros((1, n, n), np.uint8)))
    with pytest.raises(ChangeDetectionError, match="after nir has dims"):
        detect_changes(good, bad)


# --- exactness: chunks equal the whole array ---------------------------------------------------


def _mixed_scene() -> tuple[Epoch, Epoch]:
    """600 x 600 px: trees, a hedge, green and red roofs and a green demolition, NIR in both
    epochs, objects straddling the 128 px chunk seams."""
    n = 600
    rgb_b, ground, rng = _lawn(n, 41)
    rgb_a = rgb_b.copy()
    dsm_b, dsm_a = ground.copy(), ground.copy()
    nir_b = np.full((n, n), 200, np.uint8)
    for centre in ((128, 128), (300, 420), (470, 250)):
        inside, top = _crown(n, centre, 3.5, 7.0, rng)
        dsm_a[inside] = ground[inside] + top[inside]
        _paint(rgb_a, inside, LEAVES, rng)
    inside, top = _crown(n, (500, 500), 3.0, 8.0, rng)
    dsm_b[inside] = ground[inside] + top[inside]
    _paint(rgb_b, inside, LEAVES, rng)
    for (rows, cols), colour, height in (
        ((slice(100, 160), slice(220, 300)), "green", 3.3),
        ((slice(230, 290), slice(100, 200)), "red", 6.0),
    ):
        dsm_a[rows, cols] = ground[rows, cols].mean() + height
        _paint(rgb_a, (rows, cols), ROOFS[colour], rng)
    gone = (slice(360, 420), slice(90, 170))
    dsm_b[gone] = ground[gone].mean() + 5.0
    _paint(rgb_b, gone, ROOFS["green"], rng)
    dsm_a[250:262, 300:460] = ground[250:262, 300:460] + 3.0 + _canopy_relief((12, 160), rng)
    _paint(rgb_a, (slice(250, 262), slice(300, 460)), LEAVES, rng)
    nir_a = np.where(vegetation_mask(rgb_a, P), 230, 60).astype(np.uint8)
    nir_a[100:160, 220:300] = 150  # the green paint reflects some NIR: NDVI 0.4, still a roof
    valid = _da(np.ones((n, n), bool))
    return (
        Epoch(_da(rgb_b), valid, _da(_noisy(dsm_b, rng)), _da(nir_b)),
        Epoch(_da(rgb_a), valid, _da(_noisy(dsm_a, rng)), _da(nir_a)),
    )


@pytest.mark.parametrize(("chunk", "group"), [(128, 8192), (192, 256)])
def test_chunked_equals_whole_with_vegetation_and_nir(chunk: int, group: int) -> None:
    b, a = _mixed_scene()
    whole = detect_changes(b, a, DetectParams(chunk_px=4096))
    parts = detect_changes(b, a, DetectParams(chunk_px=chunk, group_px=group), scheduler="threads")
    assert whole.n_chunks == 1 and parts.n_chunks > 4
    got = sorted(
        (o.kind, round(o.area_m2), o.vegetation_colour_fraction > 0.9) for o in whole.objects
    )
    assert got == [("new", 48, True), ("new", 60, False), ("removed", 48, True)]
    assert len(parts.objects) == len(whole.objects)
    for x, y in zip(whole.objects, parts.objects, strict=True):
        assert x.geometry.equals_exact(y.geometry, 0.0)
        assert (x.kind, x.area_m2, x.height_gain_m, x.height_m, x.vegetation_colour_fraction) == (
            y.kind,
            y.area_m2,
            y.height_gain_m,
            y.height_m,
            y.vegetation_colour_fraction,
        )
    assert whole.codes is not None and parts.codes is not None
    assert (whole.codes.values == CODE_VEGETATION).sum() > 5000
    np.testing.assert_array_equal(whole.codes.values, parts.codes.values)


# --- the plane fit ------------------------------------------------------------------------------


def test_plane_fit_residual_known_answers() -> None:
    """Windows of 4 x 4 cells of 4 px (1.6 m at 10 cm) on the cell grid."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:60, 0:80]
    plane = (0.05 * cols - 0.08 * rows + 120.0).astype(np.float32)  # a pitched roof
    res = plane_fit_residual(plane, 4, 4)
    assert res.shape == (15 - 3, 20 - 3)
    assert np.nanmax(res) < 0.004  # the 1 cm quantisation only
    noise = (plane + rng.normal(0.0, 0.1, plane.shape)).astype(np.float32)
    got = plane_fit_residual(noise, 4, 4)
    assert np.median(got) == pytest.approx(0.1, abs=0.01)
    # equal to a least-squares fit of the window (on the centimetre-quantised heights)
    q = np.round(noise.astype(np.float64) * 100.0)
    yy, xx = np.mgrid[0:16, 0:16]
    a = np.column_stack([np.ones(256), xx.ravel(), yy.ravel()])
    for i, j in ((0, 0), (5, 7), (11, 16)):
        window = q[4 * i : 4 * i + 16, 4 * j : 4 * j + 16].ravel()
        _, ssr, *_ = np.linalg.lstsq(a, window, rcond=None)
        assert got[i, j] == pytest.approx(np.sqrt(ssr[0] / 253) / 100.0, rel=1e-9)
    # a hole spoils every window that holds it; so does the array's end
    holed = noise.copy()
    holed[30, 41] = np.nan  # cell (7, 10)
    hr = plane_fit_residual(holed, 4, 4)
    assert np.isnan(hr[4:8, 7:11]).all() and np.isfinite(hr[3, 7]) and np.isfinite(hr[4, 11])
    ragged = plane_fit_residual(noise[:, :78], 4, 4)  # the last cell is cut
    assert ragged.shape == got.shape and np.isnan(ragged[:, -1]).all()
    np.testing.assert_array_equal(ragged[:, :-1], got[:, :-1])


def test_plane_fit_residual_is_exact_on_any_window_and_height_offset() -> None:
    """Integer moments: an array cut on the cell grid, lifted by 1000 m, gives the same
    floats for the same windows."""
    rng = np.random.default_rng(5)
    z = np.round(60.0 + rng.normal(0.0, 0.3, (92, 112)), 2)  # float64, whole centimetres
    whole = plane_fit_residual(z, 4, 4)
    part = plane_fit_residual(z[20:72, 36:100] + 1000.0, 4, 4)
    np.testing.assert_array_equal(part, whole[5 : 5 + part.shape[0], 9 : 9 + part.shape[1]])


def test_on_planar_surface_keeps_a_roof_to_its_walls_but_not_a_canopy() -> None:
    n = 160
    rng = np.random.default_rng(9)
    dsm = np.full((n, n), 50.0)
    dsm[40:100, 30:90] = 54.0  # a roof 6 m x 6 m
    inside, top = _crown(n, (80, 130), 2.5, 6.0, rng)
    dsm[inside] = 50.0 + top[inside]
    dsm = _noisy(dsm, rng)
    scale = pixel_scale(P, GSD)
    changed = dsm > 52.5
    args = (scale.planar_cell, scale.planar_cells, scale.roof_reach_px, P.planar_residual_m)
    roof = on_planar_surface(dsm, changed, changed, *args)
    assert roof[40:100, 30:90].all()  # to its walls
    assert not roof[:, 105:].any()  # the crown
    assert not (roof & ~changed).any()
    # a pixel counts only near a planar centre that changed too: a lawn beside is no roof
    assert not on_planar_surface(dsm, changed, np.zeros_like(changed), *args).any()


def test_vegetation_parameters_are_checked() -> None:
    with pytest.raises(ChangeDetectionError, match="vegetation_ndvi = 1.5"):
        DetectParams(vegetation_ndvi=1.5)
    with pytest.raises(ChangeDetectionError, match="planar_residual_m = -0.1"):
        DetectParams(planar_residual_m=-0.1)
    with pytest.raises(ChangeDetectionError, match="planar_window_m = 0"):
        DetectParams(planar_window_m=0)
    off = pixel_scale(DetectParams(planar_residual_m=0.0), GSD)
    on = pixel_scale(P, GSD)
    assert off.planar_cells == 0 and on.planar_cells == 8  # 8 cells of 0.2 m at 10 cm
    assert on.roof_reach_px == 4 and off.roof_reach_px == 0
    assert on.halo_px() > off.halo_px()  # the plane fit's support is in the chunks' halo
