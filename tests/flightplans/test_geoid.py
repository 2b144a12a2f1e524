"""Heights between the WGS84 ellipsoid and the EGM96 geoid (flightplans.geoid).

Two kinds of known answers:

* a planted geoid: a GTX grid written here with an undulation field that bilinear
  interpolation reproduces exactly (a plane), around central Mongolia where EGM96 lies
  43.6 m below the ellipsoid; always runs;
* the real EGM96 grid (PROJ's ``us_nga_egm96_15.tif`` or Debian proj-data's
  ``egm96_15.gtx``): NGA's published test values and pyproj's own EPSG path
  (``EPSG:4979`` → ``EPSG:9707``, which finds the grid by its PROJ name). Skipped where the grid
  is not installed, unless ``SITEWATCH_REQUIRE_GEOID=1`` (then a missing grid fails).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyproj
import pytest
from pyproj import Transformer

from flightplans import EGM96Geoid, GeoidGridError, egm96_geoid, find_egm96_grid
from flightplans.geoid import GRID_ENV

#: NGA's EGM96 test points (lat, lon, N in m) from the EGM96 interpolation program's notes.
NGA_POINTS = (
    (38.6281550, 269.7791550, -31.628),
    (-14.6212170, 305.0210490, -2.969),
    (46.8743190, 102.4487290, -43.575),
    (-23.6174460, 133.8747120, 15.871),
    (38.6254730, 359.9995000, 50.066),
    (-0.4667440, 0.0023000, 17.329),
)

MONGOLIA = (102.448729, 46.874319)


def planted_undulation(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """The planted geoid (m): -43.6 m at the Mongolian test point, tilting 0.5 m per degree
    east and -0.3 m per degree north (bilinear interpolation reproduces a plane exactly)."""
    return -43.6 + 0.5 * (np.asarray(lon) - MONGOLIA[0]) - 0.3 * (np.asarray(lat) - MONGOLIA[1])


def write_gtx(
    path: Path,
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray] = planted_undulation,
    south: float = 40.0,
    west: float = 95.0,
    step: float = 0.25,
    rows: int = 41,
    cols: int = 61,
) -> Path:
    """A GTX geoid grid (big-endian header: south, west, dlat, dlon, rows, cols; float32 rows
    from south to north) with undulations ``fn(lon, lat)`` at its nodes."""
    lat = south + step * np.arange(rows)
    lon = west + step * np.arange(cols)
    glon, glat = np.meshgrid(lon, lat)
    with open(path, "wb") as f:
        f.write(struct.pack(">4d2i", south, west, step, step, rows, cols))
        f.write(np.asarray(fn(glon, glat), dtype=">f4").tobytes())
    return path


@pytest.fixture
def planted_grid(tmp_path: Path) -> Path:
    return write_gtx(tmp_path / "planted_egm96.gtx")


def real_grid() -> Path:
    """The installed EGM96 grid; skip (or fail under SITEWATCH_REQUIRE_GEOID=1) without it."""
    try:
        return find_egm96_grid()
    except GeoidGridError as exc:
        if os.environ.get("SITEWATCH_REQUIRE_GEOID") == "1":
            raise
        pytest.skip(f"EGM96 grid not installed ({exc})")


@pytest.fixture
def egm96_path() -> Path:
    return real_grid()


@pytest.fixture
def pyproj_finds(egm96_path: Path, tmp_path: Path) -> Iterator[None]:
    """pyproj's data path holding a folder with only the grid, restored afterwards."""
    folder = tmp_path / "proj-grid"
    folder.mkdir()
    (folder / egm96_path.name).symlink_to(egm96_path)
    saved = pyproj.datadir.get_data_dir()
    pyproj.datadir.append_data_dir(folder)
    try:
        yield
    finally:
        pyproj.datadir.set_data_dir(saved)


def test_planted_geoid_is_read_exactly(planted_grid: Path) -> None:
    g = EGM96Geoid(planted_grid)
    lon = np.array([MONGOLIA[0], 96.1, 109.87, 103.3])
    lat = np.array([MONGOLIA[1], 40.2, 49.9, 45.05])
    np.testing.assert_allclose(g.undulation(lon, lat), planted_undulation(lon, lat), atol=1e-5)
    h = np.array([1500.0, 20.0, -5.0, 8000.0])
    ell = g.to_ellipsoid(lon, lat, h)
    np.testing.assert_allclose(ell, h + planted_undulation(lon, lat), atol=1e-5)
    np.testing.assert_allclose(g.to_egm96(lon, lat, ell), h, atol=1e-6)
    assert g.undulation(*MONGOLIA).shape == ()


def test_points_outside_the_grid_are_one_clear_line(planted_grid: Path) -> None:
    g = EGM96Geoid(planted_grid)
    with pytest.raises(GeoidGridError) as e:
        g.undulation([100.0, 121.5], [45.0, 30.25])
    msg = str(e.value)
    assert "\n" not in msg and str(planted_grid) in msg
    assert "does not cover lon 121.500000, lat 30.250000" in msg


def test_missing_or_damaged_grid_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(GeoidGridError) as e:
        EGM96Geoid(tmp_path / "none.gtx")
    assert "apt-get install proj-data" in str(e.value) and "never downloads" in str(e.value)
    bad = tmp_path / "bad.gtx"
    bad.write_bytes(b"not a grid")
    with pytest.raises(GeoidGridError, match="PROJ cannot read this geoid grid"):
        EGM96Geoid(bad)
    monkeypatch.setenv(GRID_ENV, str(tmp_path / "missing.tif"))
    with pytest.raises(GeoidGridError, match=f"\\${GRID_ENV} names .*missing.tif"):
        find_egm96_grid()
    assert isinstance(e.value, FileNotFoundError)


def test_the_environment_names_the_grid(
    planted_grid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GRID_ENV, str(planted_grid))
    assert find_egm96_grid() == planted_grid
    g = egm96_geoid()
    assert g.path == planted_grid and egm96_geoid() is g  # created once
    assert float(g.undulation(*MONGOLIA)) == pytest.approx(-43.6, abs=1e-5)


def test_real_egm96_matches_nga_reference_values(egm96_path: Path) -> None:
    g = EGM96Geoid(egm96_path)
    lat, lon, n = (np.array(c) for c in zip(*NGA_POINTS, strict=True))
    lon = (lon + 180.0) % 360.0 - 180.0
    # NGA's values come from its own interpolation; PROJ's bilinear one is within 6 cm
    np.testing.assert_allclose(g.undulation(lon, lat), n, atol=0.07)


def test_real_egm96_matches_pyprojs_epsg_path(egm96_path: Path, pyproj_finds: None) -> None:
    tr = Transformer.from_crs("EPSG:4979", "EPSG:9707", always_xy=True)  # ellipsoid → EGM96
    lon = np.array([MONGOLIA[0], 116.39, 121.47, 87.6, 91.1])  # Mongolia, Beijing, Shanghai,
    lat = np.array([MONGOLIA[1], 39.91, 31.23, 43.8, 29.65])  # Urumqi, Lhasa
    h = np.array([1500.0, 50.0, 10.0, 800.0, 3650.0])
    _x, _y, orthometric = tr.transform(lon, lat, h)
    g = EGM96Geoid(egm96_path)
    np.testing.assert_allclose(g.to_egm96(lon, lat, h), orthometric, atol=1e-3)
    assert float(g.undulation(*MONGOLIA)) == pytest.approx(-43.6, abs=0.1)
