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
    assert not list((tmp_path / "o").glob("sortie-*"))  # nothing written (glob of no folder: [])


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


# ----------------------------------------------------------------------------- DJI WPML (#17)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_plan_writes_qgc_and_wpml_for_a_dji_aircraft(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["plan", str(site), "--out", str(out), "--gsd-cm", "2", "--drone", "M30T"]
    assert run([*args, "--format", "qgc,wpml"]) == 0, capsys.readouterr().err
    assert _names(out) == [
        "mission.geojson",
        "sortie-01.kmz",
        "sortie-01.plan",
        "sortie-01.waypoints",
        "summary.json",
    ]
    s = json.loads((out / "summary.json").read_text())
    assert s["camera"] == "matrice30-wide"  # --drone sets the camera
    assert s["alt_m"] == pytest.approx(2.0 * 4000 * 4.44 / (6.4 * 100), rel=1e-4)
    (rec,) = s["wpml"]["files"]
    assert rec["file"] == "sortie-01.kmz" and rec["drone_enum"] == [67, 1]
    assert rec["template_height_mode"] == rec["execute_height_mode"] == "relativeToStartPoint"
    assert rec["execute_height_datum"] == "height above the take-off point (m)"
    assert s["qgc"]["height_datum"] == "height above home (the take-off point)"
    assert "DJI WPML for DJI Matrice 30T" in capsys.readouterr().out
    # the folder describes one plan: WPML only now, the QGroundControl files go
    assert run([*args, "--format", "wpml"]) == 0
    assert _names(out) == ["mission.geojson", "sortie-01.kmz", "summary.json"]


def test_plan_from_a_kmz_prints_it_and_writes_qgc_files(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flightplans import read_plan

    out = tmp_path / "out"
    assert (
        run(
            [
                "plan",
                str(site),
                "--out",
                str(out),
                "--alt-m",
                "60",
                "--drone",
                "mavic3e",
                "--format",
                "qgc,wpml",
            ]
        )
        == 0
    )
    capsys.readouterr()
    back = tmp_path / "back"
    assert run(["plan", "--from", str(out / "sortie-01.kmz"), "--out", str(back)]) == 0
    text = capsys.readouterr().out
    assert "waypoint template for DJI Mavic 3 Enterprise" in text and "1 route(s)" in text
    assert "heights: height above the take-off point" in text
    assert "overlaps front 75 %, side 65 %" in text
    assert _names(back) == ["sortie-01.plan", "sortie-01.waypoints", "summary.json"]
    ours, theirs = read_plan(out / "sortie-01.plan"), read_plan(back / "sortie-01.plan")
    wp = [it for it in ours.items if it.command == 16]
    wp_back = [it for it in theirs.items if it.command == 16]
    assert len(wp) == len(wp_back)
    assert all(a.same_as(b, tol_m=0.1) for a, b in zip(wp, wp_back, strict=True))
    s = json.loads((back / "summary.json").read_text())
    assert (
        s["drone"] == "mavic3e"
        and s["n_photos"] == json.loads((out / "summary.json").read_text())["n_photos"]
    )
    # a file that is not a route: one line, exit 1
    bad = tmp_path / "bad.kmz"
    bad.write_text("not a zip")
    assert run(["plan", "--from", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a ZIP archive" in err and str(bad) in err


@pytest.fixture
def dem(tmp_path: Path) -> Path:
    """A UTM 50N DEM around the site: 300 m at its west edge, rising 10 % eastwards."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    res, w, h = 5.0, 300, 260
    west, north = X0 - 500.0, Y0 + 160.0 + 500.0
    x = west + (np.arange(w) + 0.5) * res
    z = np.tile(300.0 + 0.1 * (x - X0), (h, 1)).astype(np.float32)
    path = tmp_path / "dem.tif"
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 1,
        "dtype": "float32",
        "crs": f"EPSG:{UTM}",
        "transform": from_origin(west, north, res, res),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)
    return path


def _undulation(lon: object, lat: object) -> object:
    """The planted geoid over the site (about 114.5 E, 37.1 N): -10 m, 1 m per degree east."""
    import numpy as np

    return -10.0 + 1.0 * (np.asarray(lon) - 114.5) + 0.0 * np.asarray(lat)


def test_terrain_following_wpml_heights_above_the_geoid(
    tmp_path: Path,
    site: Path,
    dem: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zipfile
    from xml.etree import ElementTree as ET

    import numpy as np

    from flightplans.geoid import GRID_ENV
    from tests.flightplans.test_geoid import write_gtx

    grid = write_gtx(tmp_path / "g.gtx", _undulation, south=36.0, west=113.0, rows=9, cols=9)
    monkeypatch.setenv(GRID_ENV, str(grid))
    out = tmp_path / "out"
    args = ["plan", str(site), "--out", str(out), "--alt-m", "60", "--dem", str(dem)]
    assert run([*args, "--format", "wpml", "--drone", "m350rtk"]) == 0
    err = capsys.readouterr().err
    assert "taken as EGM96 heights" in err and err.count("taken as EGM96") == 1
    s = json.loads((out / "summary.json").read_text())
    assert s["wpml"]["dem_datum"] == "egm96 (assumed)"
    rec = s["wpml"]["files"][0]
    assert (rec["template_height_mode"], rec["execute_height_mode"]) == ("EGM96", "WGS84")
    assert rec["geoid_grid"] == "g.gtx"
    with zipfile.ZipFile(out / "sortie-01.kmz") as zf:
        way = ET.fromstring(zf.read("wpmz/waylines.wpml"))
    kml, wpml = "{http://www.opengis.net/kml/2.2}", "{http://www.dji.com/wpmz/1.0.2}"
    pms = list(way.iter(kml + "Placemark"))
    lonlat = np.array(
        [
            [float(v) for v in (p.findtext(f"{kml}Point/{kml}coordinates") or "").split(",")]
            for p in pms
        ]
    )
    executed = np.array([float(p.findtext(wpml + "executeHeight") or "nan") for p in pms])
    from pyproj import Transformer

    x, _y = Transformer.from_crs(4326, UTM, always_xy=True).transform(lonlat[:, 0], lonlat[:, 1])
    ground = 300.0 + 0.1 * (np.asarray(x) - X0)
    above = executed - np.asarray(_undulation(lonlat[:, 0], lonlat[:, 1])) - ground
    assert np.all(np.abs(above - 60.0) <= max(1.0, 0.05 * 60.0) + 0.05)  # terrain followed
    # relative heights from the same DEM: neither geoid nor DEM datum matter
    assert (
        run(
            [
                *args,
                "--format",
                "wpml",
                "--drone",
                "m350rtk",
                "--wpml-height",
                "relative",
                "--dem-datum",
                "egm96",
            ]
        )
        == 0
    )
    s = json.loads((out / "summary.json").read_text())
    assert s["wpml"]["files"][0]["execute_height_mode"] == "relativeToStartPoint"
    assert s["wpml"]["dem_datum"] is None  # relative, and the M350 has no take-off point field


WPML_USAGE = {
    "no_drone": (["--format", "wpml"], 2, "--format wpml needs --drone NAME"),
    "bad_format": (["--format", "kml"], 2, "use qgc, wpml or qgc,wpml"),
    "oblique_qgc": (
        ["--format", "qgc,wpml", "--drone", "m30", "--oblique"],
        2,
        "--oblique routes are written as DJI WPML only",
    ),
    "camera_not_the_drones": (
        ["--format", "wpml", "--drone", "m30t", "--camera", "phantom4pro"],
        2,
        "--camera phantom4pro is not the camera of --drone m30t",
    ),
    "unknown_drone": (["--format", "wpml", "--drone", "inspire2"], 1, "unknown drone 'inspire2'"),
    "absolute_without_dem": (
        ["--format", "wpml", "--drone", "m30", "--wpml-height", "egm96"],
        1,
        "take-off point's elevation is unknown",
    ),
    "too_fast": (["--format", "wpml", "--drone", "m30", "--speed-ms", "17"], 1, "1-15 m/s"),
}


@pytest.mark.parametrize("case", list(WPML_USAGE))
def test_wpml_errors_are_one_line(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    extra, code, needle = WPML_USAGE[case]
    out = tmp_path / "o"
    assert run(["plan", str(site), "--out", str(out), "--alt-m", "60", *extra]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not list(out.glob("sortie-*"))  # nothing written (glob of no folder: [])


def test_oblique_from_the_command_line(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        run(
            [
                "plan",
                str(site),
                "--out",
                str(out),
                "--alt-m",
                "60",
                "--format",
                "wpml",
                "--drone",
                "m350",
                "--oblique",
                "--oblique-pitch",
                "-50",
            ]
        )
        == 0
    )
    assert "oblique 4/4 gimbal -50 deg" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert [r["gimbal_pitch_deg"] for r in s["oblique"]["routes"]] == [-90, -50, -50, -50, -50]
    assert len(list(out.glob("sortie-*.kmz"))) == len(s["wpml"]["files"]) >= 5


def test_list_drones(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", "--list-drones"]) == 0
    out = capsys.readouterr().out
    for row in ("m300rtk    60/0             50  zenmusep1-35", "m30t       67/1             53"):
        assert row in out
    assert "matrice4t" in out and "mavic3e" in out


def test_plan_store_records_the_site_and_every_file_written(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """plan --store creates the store and records the site it read and every file it wrote,
    with their SHA-256, the parameters and the operator; the store verifies."""
    import hashlib

    from survey.evidence import EvidenceStore

    store, out = tmp_path / "store", tmp_path / "plan"
    args = ["plan", str(site), "--out", str(out), "--gsd-cm", "2.5", "--format", "qgc,wpml"]
    args += ["--drone", "m3e", "--store", str(store), "--case", "P-7", "--operator", "planner1"]
    assert run(args) == 0, capsys.readouterr().err
    assert f"recorded in the evidence store {store}: ledger entry" in capsys.readouterr().out
    s = EvidenceStore.open(store, read_only=True)
    (entry,) = [e for e in s.entries() if e.type == "derive"]
    assert entry["command"] == "sitewatch plan"
    assert (entry["case"], entry["operator"]) == ("P-7", "planner1")
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert any(p.suffix == ".kmz" for p in written) and any(p.suffix == ".plan" for p in written)
    assert {o["role"]: o["sha256"] for o in entry["outputs"]} == {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in written
    }
    assert {i["role"]: i["sha256"] for i in entry["inputs"]} == {
        "site": hashlib.sha256(site.read_bytes()).hexdigest()
    }
    assert entry["parameters"]["plan"]["gsd_cm"] == 2.5
    assert s.verify().ok


def test_plan_case_without_store_is_a_usage_error(
    tmp_path: Path, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["plan", str(site), "--out", str(tmp_path / "o"), "--gsd-cm", "2.5", "--case", "P-7"]
    assert run(args) == 2
    assert "give --store STORE too" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
