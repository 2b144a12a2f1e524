"""Objects from labelled blocks: seams joined exactly once, holes kept, robust heights."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from change_detection.change import CODE_NEW, CODE_RAISED, CODE_REMOVED, ChangeLayers, pixel_scale
from change_detection.objects import extract_pieces, merge_pieces
from change_detection.params import DetectParams

P = DetectParams()
SCALE = pixel_scale(P, 0.1)
T = Affine(0.1, 0.0, 1000.0, 0.0, -0.1, 2000.0)


def _layers(codes: np.ndarray, dh: np.ndarray) -> ChangeLayers:
    return ChangeLayers(codes=codes, dh=dh, height_after=dh + 1.0, interior=codes > 0)


def _split(codes: np.ndarray, dh: np.ndarray, rows: list[int], cols: list[int]) -> dict:
    blocks = {}
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            r0, r1, c0, c1 = rows[i], rows[i + 1], cols[j], cols[j + 1]
            layers = _layers(codes[r0:r1, c0:c1], dh[r0:r1, c0:c1])
            blocks[(i, j)] = extract_pieces(layers, (i, j), r0, c0, min_pixels=600)
    return blocks


def _ring_scene() -> tuple[np.ndarray, np.ndarray]:
    codes = np.zeros((200, 200), np.uint8)
    dh = np.zeros((200, 200), np.float32)
    codes[40:160, 40:160] = CODE_NEW  # 12 m x 12 m with a 4 m x 4 m courtyard
    codes[80:120, 80:120] = 0
    dh[codes == CODE_NEW] = 6.0
    dh[40:60, 40:160] = 9.0  # a taller wing: the median stays 6 m
    codes[170:180, 10:30] = CODE_REMOVED  # 2 m2: under the minimum area
    dh[170:180, 10:30] = -5.0
    return codes, dh


def test_an_object_over_four_blocks_comes_out_once_with_its_hole() -> None:
    codes, dh = _ring_scene()
    whole = merge_pieces(_split(codes, dh, [0, 200], [0, 200]), T, P, SCALE, rgb_only=False)
    split = merge_pieces(
        _split(codes, dh, [0, 100, 200], [0, 70, 200]), T, P, SCALE, rgb_only=False
    )
    assert len(whole) == len(split) == 1
    a, b = whole[0], split[0]
    assert a.geometry.equals_exact(b.geometry, 1e-9)
    assert a.area_m2 == pytest.approx(144.0 - 16.0)
    assert a.geometry.area == pytest.approx(128.0)
    assert len(a.geometry.interiors) == 1
    assert a.height_gain_m == b.height_gain_m == pytest.approx(6.0)
    assert a.kind == "new" and a.floors_added == 2
    assert a.height_m == pytest.approx(7.0)
    minx, miny, maxx, maxy = a.geometry.bounds
    assert (minx, maxy) == pytest.approx((1004.0, 1996.0))
    assert (maxx, miny) == pytest.approx((1016.0, 1984.0))


def test_pieces_of_different_groups_do_not_join_across_a_seam() -> None:
    codes = np.zeros((100, 100), np.uint8)
    dh = np.zeros((100, 100), np.float32)
    codes[10:90, 10:50] = CODE_RAISED
    dh[10:90, 10:50] = 3.0
    codes[10:90, 50:90] = CODE_REMOVED
    dh[10:90, 50:90] = -4.0
    objs = merge_pieces(_split(codes, dh, [0, 100], [0, 50, 100]), T, P, SCALE, rgb_only=False)
    assert sorted(o.kind for o in objs) == ["raised", "removed"]
    removed = next(o for o in objs if o.kind == "removed")
    assert removed.height_gain_m == pytest.approx(-4.0) and removed.floors_added == -1


def test_objects_below_the_minimum_height_are_dropped() -> None:
    codes = np.zeros((100, 100), np.uint8)
    dh = np.zeros((100, 100), np.float32)
    codes[10:90, 10:90] = CODE_NEW
    dh[10:90, 10:90] = 2.0  # the classification said "gain", but the robust height is low
    objs = merge_pieces(_split(codes, dh, [0, 100], [0, 100]), T, P, SCALE, rgb_only=False)
    assert objs == []
