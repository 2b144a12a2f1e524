"""Rendered test scenes with known misregistration for the co-registration tests.

A scene is a small town seen from above: textured ground, roads, buildings with roofs and
sun-dependent shadows, round tree crowns. :func:`render` draws it at any sun azimuth, and
:func:`sample` resamples it through a known push map (target pixel -> reference pixel), so the
exact mapping between two epochs is known.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

PushMap = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Scene:
    shape: tuple[int, int]
    buildings: np.ndarray  # (n, 5): row0, col0, height_px, width_px, roof grey
    trees: np.ndarray  # (m, 3): row, col, radius
    roads: np.ndarray  # (k, 3): 0 row / 1 col, position, width
    seed: int


def make_scene(shape: tuple[int, int] = (512, 512), seed: int = 0, density: float = 1.0) -> Scene:
    rng = np.random.default_rng(seed)
    h, w = shape
    nb = int(density * h * w / 5000)
    b = np.column_stack(
        [
            rng.uniform(-20, h, nb),
            rng.uniform(-20, w, nb),
            rng.uniform(8, 40, nb),
            rng.uniform(8, 40, nb),
            rng.uniform(120, 230, nb),
        ]
    )
    nt = int(density * h * w / 8000)
    t = np.column_stack([rng.uniform(0, h, nt), rng.uniform(0, w, nt), rng.uniform(3, 9, nt)])
    nr = max(2, int((h + w) / 300))
    r = np.column_stack(
        [rng.integers(0, 2, nr), rng.uniform(0, max(h, w), nr), rng.uniform(6, 14, nr)]
    )
    return Scene(shape, b, t, r, seed)


def render(scene: Scene, sun_deg: float = 135.0, shadow_px: float = 6.0) -> np.ndarray:
    """Grey image (float64, 0..255) of the scene with shadows cast towards ``sun_deg + 180``."""
    h, w = scene.shape
    rng = np.random.default_rng(scene.seed + 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 95 + 18 * ndimage.gaussian_filter(rng.normal(size=(h, w)), 2.5) / 0.12
    img += 6 * ndimage.gaussian_filter(rng.normal(size=(h, w)), 0.8) / 0.3
    for axis, pos, width in scene.roads:
        coord = yy if axis == 0 else xx
        img = np.where(np.abs(coord - pos) < width / 2, 70.0, img)
    sy = -math.cos(math.radians(sun_deg)) * shadow_px
    sx = -math.sin(math.radians(sun_deg)) * shadow_px
    shadow = np.zeros((h, w), bool)
    for r0, c0, bh, bw, _ in scene.buildings:
        shadow |= (yy >= r0 + sy) & (yy < r0 + bh + sy) & (xx >= c0 + sx) & (xx < c0 + bw + sx)
    img = np.where(shadow, img * 0.45, img)
    for r0, c0, bh, bw, grey in scene.buildings:
        inside = (yy >= r0) & (yy < r0 + bh) & (xx >= c0) & (xx < c0 + bw)
        ridge = np.where(bh > bw, np.abs(xx - (c0 + bw / 2)), np.abs(yy - (r0 + bh / 2)))
        img = np.where(inside, grey - 0.6 * ridge, img)
    for r, c, rad in scene.trees:
        d2 = (yy - r) ** 2 + (xx - c) ** 2
        img = np.where(d2 < rad**2, 60 + 25 * np.sqrt(d2) / rad, img)
    return np.clip(ndimage.gaussian_filter(img, 0.7), 0, 255)


def render_lines(scene: Scene, width_px: float = 1.5) -> np.ndarray:
    """A permit-map style raster: building outlines (drawn inside each footprint, binary) and
    road edges, dark on white. See :func:`render_map` for outlines centred on the boundary."""
    h, w = scene.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ink = np.zeros((h, w), bool)
    for r0, c0, bh, bw, _ in scene.buildings:
        outer = (yy >= r0) & (yy < r0 + bh) & (xx >= c0) & (xx < c0 + bw)
        inner = (
            (yy >= r0 + width_px)
            & (yy < r0 + bh - width_px)
            & (xx >= c0 + width_px)
            & (xx < c0 + bw - width_px)
        )
        ink |= outer & ~inner
    for axis, pos, width in scene.roads:
        coord = yy if axis == 0 else xx
        ink |= np.abs(np.abs(coord - pos) - width / 2) < width_px / 2
    return np.where(ink, 20.0, 245.0)


def _distance_to_rectangle(
    yy: np.ndarray, xx: np.ndarray, top: float, bottom: float, left: float, right: float
) -> np.ndarray:
    """Distance (px) of pixel centres to the boundary of the rectangle [top, bottom] x [left,
    right] (continuous pixel coordinates), inside or out."""
    dy = np.maximum(np.maximum(top - yy, yy - bottom), 0)
    dx = np.maximum(np.maximum(left - xx, xx - right), 0)
    inside = np.minimum(np.minimum(yy - top, bottom - yy), np.minimum(xx - left, right - xx))
    return np.where((dx > 0) | (dy > 0), np.hypot(dx, dy), np.abs(inside))


def render_map(
    scene: Scene,
    width_px: float = 1.5,
    *,
    inset_px: float = 0.0,
    antialias: bool = True,
    text: int = 0,
    hatch: float = 0.0,
    ink: float = 20.0,
    paper: float = 245.0,
    seed: int = 0,
) -> np.ndarray:
    """A permit-map raster of the scene: ink strokes on paper (float64 grey).

    Building outlines and road edges are strokes of ``width_px`` centred on the boundary
    :func:`render` gives them (between the last pixel inside and the first outside), or
    ``inset_px`` inside it; ``antialias`` draws the partial cover of edge pixels, otherwise
    a pixel is ink when its centre is. ``text`` labels of 2-4 random 5 x 7 px glyphs and
    diagonal ``hatch`` lines (every 6 px) inside that share of the buildings are clutter that
    the photo does not show. ``ink`` and ``paper`` are the two grey levels (swap them for light
    on dark).
    """
    h, w = scene.shape
    cover = np.zeros((h, w))
    rng = np.random.default_rng(seed)

    def stroke(distance: np.ndarray) -> np.ndarray:
        c = np.clip(width_px / 2 + 0.5 - distance, 0.0, 1.0)
        return c if antialias else (c >= 0.5).astype(np.float64)

    pad = int(width_px) + 3
    for r0, c0, bh, bw, _ in scene.buildings:
        # render() fills the pixels whose centres lie in [r0, r0 + bh) x [c0, c0 + bw)
        top, bottom = math.ceil(r0) - 0.5 + inset_px, math.ceil(r0 + bh) - 0.5 - inset_px
        left, right = math.ceil(c0) - 0.5 + inset_px, math.ceil(c0 + bw) - 0.5 - inset_px
        y0, y1 = max(0, int(top) - pad), min(h, int(bottom) + pad + 1)
        x0, x1 = max(0, int(left) - pad), min(w, int(right) + pad + 1)
        if bottom <= top or right <= left or y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        part = stroke(_distance_to_rectangle(yy, xx, top, bottom, left, right))
        if hatch and rng.random() < hatch:
            inside = (yy > top + 2) & (yy < bottom - 2) & (xx > left + 2) & (xx < right - 2)
            lines = np.clip(1.0 - np.abs(np.mod(xx + yy, 6.0) - 3.0), 0.0, 1.0)
            part = np.maximum(part, np.where(inside, 0.8 * lines, 0.0))
        cover[y0:y1, x0:x1] = np.maximum(cover[y0:y1, x0:x1], part)
    for axis, pos, width in scene.roads:
        # render() paints the pixels whose centres lie within width / 2 of pos
        first, last = math.floor(pos - width / 2) + 1, math.ceil(pos + width / 2) - 1
        coord = np.arange(h if axis == 0 else w, dtype=np.float64)
        for edge in (first - 0.5, last + 0.5):
            line = stroke(np.abs(coord - edge))
            cover = np.maximum(cover, line[:, None] if axis == 0 else line[None, :])
    for _ in range(text):
        r, c = int(rng.integers(4, h - 12)), int(rng.integers(4, w - 30))
        for k in range(int(rng.integers(2, 5))):
            glyph = 0.9 * (rng.random((7, 5)) < 0.45)
            box = cover[r : r + 7, c + 6 * k : c + 6 * k + 5]
            box[...] = np.maximum(box, glyph[: box.shape[0], : box.shape[1]])
    return paper + (ink - paper) * cover


def sample(image: np.ndarray, push: PushMap, order: int = 3) -> np.ndarray:
    """Target image whose pixel q shows the reference content at ``push(q)``.

    ``push(rows, cols) -> (ref_rows, ref_cols)``; outside the image is filled by reflection.
    """
    h, w = image.shape[-2:]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    pr, pc = push(rows, cols)
    coords = np.stack([pr, pc])
    if image.ndim == 2:
        return ndimage.map_coordinates(image, coords, order=order, mode="mirror")
    return np.stack([ndimage.map_coordinates(b, coords, order=order, mode="mirror") for b in image])


def shift_push(sx: float, sy: float) -> PushMap:
    """Push map of a pure shift (shift convention): target (x, y) -> reference (x+sx, y+sy)."""

    def push(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rows + sy, cols + sx

    return push


def affine_push(
    sx: float, sy: float, rot_deg: float, scale: float, center: tuple[float, float]
) -> PushMap:
    """Rotation by ``rot_deg`` and scaling about ``center`` (row, col), then the shift."""
    a = math.radians(rot_deg)
    ca, sa = math.cos(a) * scale, math.sin(a) * scale
    cr, cc = center

    def push(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = cols - cc, rows - cr
        return sa * x + ca * y + cr + sy, ca * x - sa * y + cc + sx

    return push


def warp_push(sx: float, sy: float, amp: float, period: float) -> PushMap:
    """A shift plus a smooth sinusoidal warp of amplitude ``amp`` px."""

    def push(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx = amp * np.sin(2 * np.pi * rows / period)
        dy = amp * np.cos(2 * np.pi * cols / period)
        return rows + sy + dy, cols + sx + dx

    return push


def mapping_error(
    result_pull: PushMap, push: PushMap, shape: tuple[int, int], step: int = 8, margin: int = 16
) -> float:
    """RMS distance (px) of push(pull_est(p)) from p over a grid of reference pixels p."""
    h, w = shape
    rows, cols = np.mgrid[margin : h - margin : step, margin : w - margin : step].astype(float)
    qr, qc = result_pull(rows, cols)
    pr, pc = push(qr, qc)
    return float(np.sqrt(np.mean((pr - rows) ** 2 + (pc - cols) ** 2)))


def test_sample_moves_content_by_the_shift_convention() -> None:
    """A feature at reference (x, y) appears in the target at (x - sx, y - sy)."""
    img = np.zeros((64, 64))
    img[30, 20] = 1.0
    target = sample(ndimage.gaussian_filter(img, 1.5), shift_push(5.0, -3.0), order=1)
    row, col = np.unravel_index(np.argmax(target), target.shape)
    assert (int(row), int(col)) == (33, 15)


def test_mapping_error_is_zero_for_the_truth_and_counts_pixels() -> None:
    push = affine_push(1.0, 2.0, 0.3, 1.001, (32.0, 32.0))
    a = math.radians(0.3)
    m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * 1.001
    inv = np.linalg.inv(m)

    def pull(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = cols - 32.0 - 1.0, rows - 32.0 - 2.0
        qx, qy = inv @ np.stack([x.ravel(), y.ravel()])
        return qy.reshape(rows.shape) + 32.0, qx.reshape(rows.shape) + 32.0

    assert mapping_error(pull, push, (64, 64), step=4, margin=0) < 1e-9
    assert mapping_error(shift_push(0.0, 0.0), shift_push(3.0, 4.0), (64, 64)) == 5.0


def test_render_map_centres_strokes_on_the_boundaries_render_draws() -> None:
    """An outline's ink is centred on the step between roof and ground in :func:`render`."""
    scene = Scene((64, 64), np.array([[20.3, 10.6, 25.0, 30.0, 200.0]]), np.zeros((0, 3)),
                  np.zeros((0, 3)), 0)  # fmt: skip
    ink = 245.0 - render_map(scene, width_px=2.0)
    photo = render(scene, shadow_px=0.0)
    row = 35  # through the building: left edge between columns 10 and 11 (first inside: 11)
    profile = ink[row, :20]
    centre = float((profile * np.arange(20)).sum() / profile.sum())
    assert centre == 10.5
    step = np.abs(np.diff(photo[row, :20]))
    assert int(np.argmax(step)) == 10  # the photo's step lies between columns 10 and 11
