"""XYZ tiles: zoom choice, tile grid, exact pixels on an aligned raster, nodata, atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from PIL import Image

from maps.errors import MapError
from maps.tiles import WEB_MERCATOR_HALF_WORLD_M, native_zoom, render_tiles, tile_range
from survey.rasters import write_geotiff
from tests.maps.scenes import Scene

HW = WEB_MERCATOR_HALF_WORLD_M


def _tile_m(z: int) -> float:
    return 2 * HW / 2**z


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def test_native_zoom_matches_the_pixel_size() -> None:
    for z in (12, 18, 20, 23):
        res = _tile_m(z) / 256
        assert native_zoom(res) == z
        assert native_zoom(res * 1.3) == z  # within sqrt(2): same level
        assert native_zoom(res * 1.5) == z - 1
    with pytest.raises(MapError):
        native_zoom(0.0)


def test_tile_range_known_answer() -> None:
    t = _tile_m(18)
    left, top = -HW + 1000 * t, HW - 2000 * t
    # exactly 3 x 2 tiles; edges on tile boundaries do not spill into the next tile
    assert tile_range((left, top - 2 * t, left + 3 * t, top), 18) == (1000, 2000, 1002, 2001)
    assert tile_range((left + 1, top - 1.5 * t, left + 2.5 * t, top - 1), 18) == (
        1000,
        2000,
        1002,
        2001,
    )


@pytest.fixture(scope="module")
def aligned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 512 x 512 RGB raster in EPSG:3857 exactly on tiles (18, 100000..100001, same y)."""
    z, tx, ty = 18, 100_000, 100_000
    res = _tile_m(z) / 256
    transform = Affine(res, 0, -HW + tx * _tile_m(z), 0, -res, HW - ty * _tile_m(z))
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (3, 512, 512), dtype=np.uint8)
    valid = np.ones((512, 512), bool)
    valid[:, :100] = False
    path = write_geotiff(
        tmp_path_factory.mktemp("aligned") / "o.tif",
        rgb,
        transform=transform,
        crs=3857,
        mask=valid,
    )
    return path, rgb, valid


def test_tiles_reproduce_aligned_pixels_exactly(
    aligned: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    path, rgb, valid = aligned
    ts = render_tiles(path, tmp_path / "tiles")
    assert (ts.min_zoom, ts.max_zoom) == (17, 18)
    assert ts.tile_count == 4 + 1
    for j in (0, 1):
        for i in (0, 1):
            tile = _read(tmp_path / "tiles" / "18" / str(100_000 + i) / f"{100_000 + j}.png")
            src = np.moveaxis(rgb[:, j * 256 : (j + 1) * 256, i * 256 : (i + 1) * 256], 0, -1)
            v = valid[j * 256 : (j + 1) * 256, i * 256 : (i + 1) * 256]
            assert np.array_equal(tile[..., :3][v], src[v])
            assert np.all(tile[..., 3][v] == 255)
            assert np.all(tile[..., 3][~v] == 0)  # nodata is transparent
    parent = _read(tmp_path / "tiles" / "17" / "50000" / "50000.png")
    q = np.moveaxis(rgb, 0, -1).astype(np.uint16)
    mean = (q[0::2, 0::2] + q[1::2, 0::2] + q[0::2, 1::2] + q[1::2, 1::2] + 2) >> 2
    assert np.array_equal(parent[:, 50:, :3], mean[:, 50:].astype(np.uint8))
    assert np.all(parent[:, :50, 3] == 0)
    w, s, e, n = ts.bounds
    assert ts.leaflet_bounds == [[s, w], [n, e]]
    assert ts.url_template(tmp_path) == "tiles/{z}/{x}/{y}.png"


def test_every_tile_leaflet_asks_for_exists(scene: Scene, tmp_path: Path) -> None:
    ts = render_tiles(scene.before_ortho, tmp_path / "t")
    # 0.1 m/px at 22.6 N is 0.108 web-mercator m/px: zoom 20 (0.149) is the nearest level
    assert ts.max_zoom == 20
    assert ts.max_zoom - ts.min_zoom >= 1
    from pyproj import Transformer

    tr = Transformer.from_crs(4326, 3857, always_xy=True)
    w, s, e, n = ts.bounds
    (x0, x1), (y0, y1) = tr.transform([w, e], [s, n])
    total = 0
    for z in range(ts.min_zoom, ts.max_zoom + 1):
        tx0, ty0, tx1, ty1 = tile_range((x0, y0, x1, y1), z)
        expected = {(x, y) for x in range(tx0, tx1 + 1) for y in range(ty0, ty1 + 1)}
        found = {
            (int(p.parent.name), int(p.stem)) for p in (tmp_path / "t" / str(z)).glob("*/*.png")
        }
        assert found == expected
        total += len(found)
    assert total == ts.tile_count
    # the scene's 4 m strip without data (west edge) is transparent in the west tiles
    tx0, ty0, _, _ = tile_range((x0, y0, x1, y1), ts.max_zoom)
    west = _read(tmp_path / "t" / str(ts.max_zoom) / str(tx0) / f"{ty0}.png")
    assert (west[..., 3] == 0).any() and (west[..., 3] == 255).any()


def test_area_limits_the_tiles_and_rerender_replaces(scene: Scene, tmp_path: Path) -> None:
    full = render_tiles(scene.after_ortho, tmp_path / "t")
    stale = tmp_path / "t" / "stale.txt"
    stale.write_text("old")
    lead = scene.leads[0].geometry
    part = render_tiles(scene.after_ortho, tmp_path / "t", area=lead.bounds, max_levels=2)
    assert not stale.exists()
    assert part.tile_count < full.tile_count
    assert part.bounds[0] >= full.bounds[0] and part.bounds[2] <= full.bounds[2]
    assert not list(tmp_path.glob(".t.*"))  # no temporary folder left behind


def test_bad_inputs_are_refused(scene: Scene, tmp_path: Path) -> None:
    with pytest.raises(MapError, match="8-bit RGB"):
        render_tiles(scene.after_dsm, tmp_path / "t")
    with pytest.raises(MapError, match="power of two"):
        render_tiles(scene.after_ortho, tmp_path / "t", block=3)
    with pytest.raises(MapError, match="not found"):
        render_tiles(tmp_path / "missing.tif", tmp_path / "t")
    with pytest.raises(MapError, match="does not overlap"):
        render_tiles(scene.after_ortho, tmp_path / "t", area=(0.0, 0.0, 0.001, 0.001))
