"""Objects from labelled blocks: seams joined exactly once, holes kept, robust heights."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import Polygon, box

from change_detection.change import (
    CODE_NEW,
    CODE_RAISED,
    CODE_REMOVED,
    CODE_SPECTRAL,
    ChangeLayers,
    pixel_scale,
)
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


def _edge_scene(spike: bool) -> ChangeLayers:
    """A 12 x 16 block: a ring touching two edges, a removal beside it, diagonal neighbours,
    small regions inside (dropped) and on the edge (kept), NaN heights, and optionally a
    15 000 km height spike, a blunder that one bin per centimetre could not hold (the
    histograms then come from sorted keys)."""
    codes = np.zeros((12, 16), np.uint8)
    dh = np.full((12, 16), 6.0, np.float32)
    interior = np.zeros((12, 16), bool)
    colour = np.zeros((12, 16), bool)
    codes[0:5, 0:5] = CODE_NEW  # A: 5 x 5 ring on the top and left edges
    codes[2, 2] = 0
    codes[1, 1:3] = CODE_RAISED
    dh[1, 1:3] = 9.0
    dh[0, 0] = np.nan
    interior[[1, 3, 3], [2, 1, 3]] = True
    colour[2, 0:2] = True
    codes[0:5, 5:8] = CODE_REMOVED  # B: touches A, another group
    dh[0:5, 5:8] = -4.0
    codes[6:9, 8:11] = CODE_NEW  # D1 and D2 meet only at a corner: two regions
    dh[6:9, 8:11] = 3.0
    codes[9:12, 11:14] = CODE_NEW  # D2 on the bottom edge
    dh[9:12, 11:14] = 3.25
    if spike:
        dh[10, 12] = 1.5e7
    codes[7, 3:5] = CODE_REMOVED  # E: 2 px inside the block, under min_pixels: dropped
    codes[0, 15] = CODE_SPECTRAL  # F: 1 px on the top-right corner, kept
    dh[0, 15] = np.nan
    codes[5, 0:3] = 10  # vegetation: not a change
    return ChangeLayers(
        codes=codes,
        dh=dh,
        height_after=dh + np.float32(1.0),
        interior=interior,
        planar_vegetation_colour=colour,
    )


def _hist(values: list[int], counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(values, np.int32), np.array(counts, np.int64)


def _same_hist(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> bool:
    return all(g.dtype == w.dtype and np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("spike", [False, True])
def test_pieces_of_a_block_with_edges_holes_groups_and_diagonals(spike: bool) -> None:
    bp = extract_pieces(_edge_scene(spike), (3, 4), 100, 200, min_pixels=5)
    # gain regions first in raster order of their first pixel, then losses, then spectral;
    # E (label 5) is dropped but keeps its number
    assert list(bp.pieces) == [1, 2, 3, 4, 6]
    assert [bp.pieces[k].group for k in bp.pieces] == [1, 1, 1, 2, 3]
    assert [bp.pieces[k].count for k in bp.pieces] == [24, 9, 9, 15, 1]
    assert all(p.block == (3, 4) and p.label == k for k, p in bp.pieces.items())
    a, d1, d2, b, f = (bp.pieces[k] for k in (1, 2, 3, 4, 6))
    assert (a.raised, a.planar_vegetation_colour, b.raised) == (2, 2, 0)
    # outlines in global pixel coordinates plus one, the hole kept
    ring = Polygon(box(201, 101, 206, 106).exterior, [box(203, 103, 204, 104).exterior])
    assert a.geometry.equals(ring) and len(a.geometry.interiors) == 1
    assert b.geometry.equals(box(206, 101, 209, 106))
    assert d1.geometry.equals(box(209, 107, 212, 110))
    assert d2.geometry.equals(box(212, 110, 215, 113))
    assert f.geometry.equals(box(216, 101, 217, 102))
    # histograms in cm: NaN left out, interior pixels on their own
    assert _same_hist(a.dh_all, _hist([600, 900], [21, 2]))
    assert _same_hist(a.dh_interior, _hist([600, 900], [2, 1]))
    assert _same_hist(a.height_all, _hist([700, 1000], [21, 2]))
    assert _same_hist(a.height_interior, _hist([700, 1000], [2, 1]))
    assert _same_hist(b.dh_all, _hist([-400], [15]))
    assert _same_hist(d1.dh_all, _hist([300], [9]))
    if spike:
        assert _same_hist(d2.dh_all, _hist([325, 1_500_000_000], [8, 1]))
        assert _same_hist(d2.height_all, _hist([425, 1_500_000_100], [8, 1]))
    else:
        assert _same_hist(d2.dh_all, _hist([325], [9]))
    assert _same_hist(f.dh_all, _hist([], [])) and _same_hist(d1.dh_interior, _hist([], []))
    # labels along the edges, for the seams (the dropped region is not on one)
    assert bp.top.tolist() == [1] * 5 + [4] * 3 + [0] * 7 + [6]
    assert bp.bottom.tolist() == [0] * 11 + [3] * 3 + [0] * 2
    assert bp.left.tolist() == [1] * 5 + [0] * 7
    assert bp.right.tolist() == [6] + [0] * 11


def test_many_pieces_each_get_their_own_outline() -> None:
    codes = np.zeros((30, 40), np.uint8)
    truth = {}
    for i in range(6):
        for j in range(8):
            side = 1 + (i + j) % 4
            code = CODE_NEW if (i + j) % 2 else CODE_REMOVED
            codes[5 * i : 5 * i + side, 5 * j : 5 * j + side] = code
            truth[(5 * i, 5 * j)] = (side, 1 if code == CODE_NEW else 2)
    layers = _layers(codes, np.where(codes == CODE_NEW, 4.0, -4.0).astype(np.float32))
    bp = extract_pieces(layers, (0, 0), 1000, 2000, min_pixels=1)
    assert len(bp.pieces) == 48
    for piece in bp.pieces.values():
        minx, miny = piece.geometry.bounds[:2]
        r, c = int(miny) - 1001, int(minx) - 2001
        side, group = truth[(r, c)]
        assert piece.geometry.equals(box(2001 + c, 1001 + r, 2001 + c + side, 1001 + r + side))
        assert (piece.count, piece.group) == (side * side, group)


def test_a_one_pixel_high_block() -> None:
    codes = np.array([[CODE_NEW, CODE_NEW, 0, CODE_REMOVED, CODE_REMOVED, CODE_REMOVED, 0, 1]])
    bp = extract_pieces(_layers(codes, np.ones(codes.shape, np.float32)), (0, 2), 7, 30, 600)
    assert {k: (p.group, p.count) for k, p in bp.pieces.items()} == {
        1: (1, 2),
        2: (1, 1),
        3: (2, 3),
    }
    assert bp.pieces[1].geometry.equals(box(31, 8, 33, 9))
    assert bp.pieces[2].geometry.equals(box(38, 8, 39, 9))
    assert bp.pieces[3].geometry.equals(box(34, 8, 37, 9))
    assert bp.top.tolist() == bp.bottom.tolist() == [1, 1, 0, 3, 3, 3, 0, 2]
