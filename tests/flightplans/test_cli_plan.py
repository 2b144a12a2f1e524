"""``sitewatch plan`` end to end: outputs, camera list, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from survey.cli import run
from survey.vectors import write_features

UTM = 32650
X0, Y0 = 278000.0, 4105600.0


def _site(tmp: Path, geom: Polygon, name: str = "site.geojson", crs: int = UTM) -> Path:
    return write_features(tmp / name, [geom], [{}], crs=crs)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return _site(tmp_path, affinity.translate(box(0, 0, 240, 160), X0, Y0))


def test_plan_writes_everything(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc = run(["plan", str(site), "--out", str(out), "--gsd-cm", "2", "--home", "114.5046,37.0703"])
    assert rc == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["mission.geojson", "sortie-01.plan", "sortie-01.waypoints", "summary.json"]
    s = json.loads((out / "summary.json").read_text())
    assert s["camera"] == "phantom4pro" and s["gsd_cm"] == pytest.approx(2.0)
    assert s["alt_m"] == pytest.approx(2.0 * 5472 * 8.8 / (13.2 * 100), rel=1e-4)
    assert s["home_lonlat"] == pytest.approx([114.5046, 37.0703], abs=1e-7)
    assert "sortie(s)" in capsys.readouterr().out


def test_custom_camera_and_fixed_angle(tmp_path: Path, site: Path) -> None:
    out = tmp_path / "out"
    args = ["plan", str(site), "--out", str(out), "--alt-m", "50", "--angle", "30"]
    args += ["--sensor-mm", "17.3", "13", "--focal-mm", "12.3", "--image-px", "5280", "3956"]
    args += ["--front", "80", "--side", "70", "--crosshatch"]
    assert run(args) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["camera"] == "custom" and s["angle_deg"] == 30.0 and s["crosshatch"]
    assert s["spacing_m"] == pytest.approx(50 * 17.3 / 12.3 * 0.30, rel=1e-3)
    gsd_m = 50 * 17.3 / (5280 * 12.3)  # QGC CameraCalc: square pixels, front = Ih * GSD
    assert s["trigger_m"] == pytest.approx(3956 * gsd_m * 0.20, rel=1e-3)


def test_list_cameras(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "--list-cameras"]) == 0
    out = capsys.readouterr().out
    for name in ("phantom4pro", "phantom4rtk", "mavic3e", "zenmusep1-35", "sonyrx1r2"):
        assert name in out
    assert "13.20 x 8.80" in out and "5472 x 3648" in out


def _bowtie() -> Polygon:
    return Polygon([(X0, Y0), (X0 + 200, Y0 + 200), (X0 + 200, Y0), (X0, Y0 + 200)])


CASES = {
    "self_intersecting": (
        lambda t: _site(t, _bowtie()),
        ["--alt-m", "60"],
        "not valid (Self-intersection",
    ),
    "too_small": (
        lambda t: _site(t, affinity.translate(box(0, 0, 20, 15), X0, Y0)),
        ["--alt-m", "60"],
        "smaller than one photo footprint",
    ),
    "unknown_camera": (
        None,
        ["--alt-m", "60", "--camera", "hasselblad"],
        "unknown camera 'hasselblad'; use one of",
    ),
    "overlap": (None, ["--alt-m", "60", "--front", "99"], "front overlap 99.0 % is outside 0-95 %"),
    "home_far": (
        None,
        ["--alt-m", "60", "--home", "114.60,37.07"],
        "km from the site, farther than 2 km",
    ),
    "gsd_unreachable": (None, ["--gsd-cm", "6"], "the coarsest GSD reachable under the limit"),
    "gsd_too_fine": (None, ["--gsd-cm", "0.1"], "the finest GSD reachable at that height"),
    "alt_too_low": (None, ["--alt-m", "5"], "below --min-alt-m 20"),
    "nofly_everything": ("nofly", ["--alt-m", "60"], "no-fly zones cover the whole site"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_errors_are_one_line(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, extra, needle = CASES[case]
    site_path = site
    args: list[str] = []
    if callable(make):
        site_path = make(tmp_path)
    elif make == "nofly":
        nf = write_features(
            tmp_path / "nofly.geojson", [Point(X0 + 120, Y0 + 80).buffer(400)], [{}], crs=UTM
        )
        args += ["--nofly", str(nf)]
    rc = run(["plan", str(site_path), "--out", str(tmp_path / "o"), *extra, *args])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.count("\n") == 1 and err.startswith("sitewatch: error: "), err
    assert needle in err, err
    assert not list((tmp_path / "o").glob("sortie-*")) if (tmp_path / "o").exists() else True


def test_site_without_polygon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write_features(tmp_path / "pt.geojson", [Point(114.5, 37.07)], [{}], crs=4326)
    assert run(["plan", str(p), "--out", str(tmp_path / "o"), "--alt-m", "60"]) == 1
    err = capsys.readouterr().err
    assert "holds no polygon" in err and err.count("\n") == 1


def test_usage_errors(tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", str(site), "--out", str(tmp_path / "o")]) == 2
    assert "exactly one of --gsd-cm and --alt-m" in capsys.readouterr().err
    assert (
        run(["plan", str(site), "--out", str(tmp_path / "o"), "--alt-m", "60", "--home", "x"]) == 2
    )
    assert "LON,LAT" in capsys.readouterr().err


def test_kml_site_with_geopackage_nofly(tmp_path: Path) -> None:
    from survey.vectors import reproject_geometries

    site_utm = affinity.translate(box(0, 0, 260, 180), X0, Y0)
    (site_ll,) = reproject_geometries([site_utm], UTM, 4326)
    kml = write_features(tmp_path / "site.kml", [site_ll], [{"name": "site"}], crs=4326)
    nf = write_features(
        tmp_path / "nofly.gpkg", [Point(X0 + 130, Y0 + 90).buffer(25)], [{}], crs=UTM
    )
    out = tmp_path / "out"
    assert run(["plan", str(kml), "--out", str(out), "--alt-m", "50", "--nofly", str(nf)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["crs"] == "EPSG:32650"
    assert s["area_m2"] == pytest.approx(260 * 180 - math.pi * 25**2, rel=0.01)
    fence = json.loads((out / "sortie-01.plan").read_text())["geoFence"]["polygons"]
    assert [f["inclusion"] for f in fence] == [True, False]
