"""Quality control of a flight (survey.ingest.qc): planted bad photos, holes, GSD, overlaps."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import Transformer
from scipy import ndimage
from shapely.geometry import Point, box

from flightplans import PlanParams, get_camera, plan_survey, write_mission_files
from survey.errors import InputFileError
from survey.ingest.geotag import GeotaggedPhoto, geotag
from survey.ingest.images import ImageRecord, read_images
from survey.ingest.qc import check_flight, read_plan
from survey.rasters import write_geotiff
from tests.survey.ingest._flight import (
    GROUND_AMSL,
    HEIGHT,
    UTM,
    X0,
    Y0,
    make_flight,
    texture,
    write_flight_photos,
    write_photo,
)

CAM = get_camera("phantom4pro")
_TO_LL = Transformer.from_crs(UTM, 4326, always_xy=True)


def _ll(g: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(g, lambda c: np.column_stack(_TO_LL.transform(c[:, 0], c[:, 1])))


SITE_M = box(X0 - 20.0, Y0 - 20.0, X0 + 140.0, Y0 + 180.0)


def test_planted_bad_photos_are_flagged_with_reasons(tmp_path: Path) -> None:
    fl = make_flight()
    folder = tmp_path / "photos"
    write_flight_photos(folder, fl)
    # blurred, dark, far away, duplicate
    blurred = ndimage.gaussian_filter(texture(10).astype(float), sigma=(2.5, 2.5, 0))
    t10 = dt.datetime.fromtimestamp(fl.t_events[10], dt.UTC)
    write_photo(folder / "IMG_0010.JPG", blurred.astype(np.uint8), time=t10, offset_tag="+00:00")
    t20 = dt.datetime.fromtimestamp(fl.t_events[20], dt.UTC)
    dark = (texture(20) * 0.15).astype(np.uint8)
    write_photo(folder / "IMG_0020.JPG", dark, time=t20, offset_tag="+00:00")
    far_lon, far_lat = _TO_LL.transform(X0 + 2000.0, Y0 + 1500.0)
    write_photo(
        folder / "FAR.JPG",
        texture(77),
        time=dt.datetime.fromtimestamp(fl.t_events[0] - 600.0, dt.UTC),
        offset_tag="+00:00",
        lat=float(far_lat),
        lon=float(far_lon),
        alt=GROUND_AMSL + HEIGHT,
    )
    shutil.copyfile(folder / "IMG_0030.JPG", folder / "IMG_0030_copy.JPG")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    tagged = geotag(read_images(folder).images, fl.telemetry, fl.events, time_offset=0.0)
    qc = check_flight(tagged.photos, camera=CAM, site=_ll(SITE_M), ground_m=GROUND_AMSL)
    got = {
        p.name: sorted(f.flag for f in flags)
        for p, flags in zip(tagged.photos, qc.flags, strict=True)
        if flags
    }
    assert got == {
        "IMG_0010.JPG": ["blurred"],
        "IMG_0020.JPG": ["dark"],
        "FAR.JPG": ["far_from_site"],
        "IMG_0030_copy.JPG": ["duplicate"],
    }
    reasons = {
        p.name: [f.reason for f in flags] for p, flags in zip(tagged.photos, qc.flags, strict=True)
    }
    assert "of the flight's median" in reasons["IMG_0010.JPG"][0]
    assert "m from the site" in reasons["FAR.JPG"][0]
    assert "IMG_0030.JPG" in reasons["IMG_0030_copy.JPG"][0]
    figures = qc.figures()
    assert figures["flags"] == {"blurred": 1, "dark": 1, "duplicate": 1, "far_from_site": 1}
    assert figures["gsd_cm_median"] == pytest.approx(CAM.gsd_cm(HEIGHT), abs=1e-3)
    assert figures["side_overlap_pct_median"] == pytest.approx(100 * (1 - 30 / 90), abs=0.01)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert after == before  # originals untouched, nothing written beside them


def test_gimbal_not_nadir_and_same_place_and_time(tmp_path: Path) -> None:
    t = dt.datetime(2024, 5, 1, 2, 0, 0, tzinfo=dt.UTC)
    lon, lat = _TO_LL.transform(X0 + 50.0, Y0 + 50.0)
    for k, pitch in enumerate(("-90.0", "-90.0", "-62.0", "-90.0", "-90.0", "-88.0")):
        write_photo(
            tmp_path / f"DJI_{k:04d}.JPG",
            texture(k),
            time=t + dt.timedelta(seconds=2 * k if k != 4 else 6.2),  # 4 repeats 3's moment
            offset_tag="+00:00",
            lat=float(lat) + (1e-4 * k if k != 4 else 3e-4),
            lon=float(lon),
            alt=GROUND_AMSL + HEIGHT,
            xmp={
                "GimbalPitchDegree": pitch,
                "GimbalYawDegree": "0",
                "GimbalRollDegree": "0",
                "RelativeAltitude": f"{HEIGHT}",
                "AbsoluteAltitude": f"{GROUND_AMSL + HEIGHT}",
            },
        )
    tagged = geotag(read_images(tmp_path).images)
    qc = check_flight(tagged.photos, camera=CAM, site=_ll(SITE_M), pixels=False)
    flags = {p.name: [f.flag for f in fl] for p, fl in zip(tagged.photos, qc.flags, strict=True)}
    assert flags["DJI_0002.JPG"] == ["not_nadir"]
    assert flags["DJI_0005.JPG"] == []  # 2 degrees off: within tolerance
    assert flags["DJI_0004.JPG"] == ["duplicate"]
    assert any("take-off level" in w for w in qc.warnings)


def _plan(tmp_path: Path) -> tuple[Path, object]:
    site = box(X0, Y0, X0 + 200.0, Y0 + 150.0)
    plan = plan_survey(site, PlanParams(alt_m=60.0, camera=CAM, angle_deg=0.0), crs=UTM)
    out = tmp_path / "plan"
    write_mission_files(plan, out)
    return out, plan


def _photos_at(xy: np.ndarray, bearing: np.ndarray) -> list[GeotaggedPhoto]:
    lon, lat = _TO_LL.transform(xy[:, 0], xy[:, 1])
    t0 = dt.datetime(2024, 5, 1, 2, 0, 0, tzinfo=dt.UTC)
    out = []
    for k in range(len(xy)):
        rec = ImageRecord(Path(f"P{k:04d}.JPG"), f"P{k:04d}.JPG", f"{k:064x}", None)
        out.append(
            GeotaggedPhoto(
                rec,
                t0 + dt.timedelta(seconds=2 * k),
                float(lat[k]),
                float(lon[k]),
                GROUND_AMSL + 60.0,
                60.0,
                float(bearing[k]),
                -90.0,
                0.0,
                "log",
                sources={"pitch_deg": "photo"},
            )
        )
    return out


def test_coverage_hole_where_photos_were_removed(tmp_path: Path) -> None:
    folder, plan = _plan(tmp_path)
    planned = read_plan(folder)
    xy, bearing = plan.photos, plan.photo_bearing  # type: ignore[attr-defined]
    full = check_flight(_photos_at(xy, bearing), plan=planned, pixels=False)
    f = full.figures()
    assert f["planned_area"]["covered_pct"] == 100.0 and f["planned_area"]["holes"] == 0
    assert f["site"]["covered_pct"] == 100.0
    assert f["gsd_cm_median"] == pytest.approx(planned.summary["gsd_cm"], abs=1e-3)
    assert f["front_overlap_pct_median"] == pytest.approx(planned.summary["front_pct"], abs=1.0)
    assert f["side_overlap_pct_median"] == pytest.approx(planned.summary["side_pct"], abs=1.5)
    assert any("camera model from the plan" in w for w in full.warnings)

    centre = np.array([X0 + 100.0, Y0 + 75.0])
    gone = np.hypot(*(xy - centre).T) < 45.0
    cut = check_flight(_photos_at(xy[~gone], bearing[~gone]), plan=planned, pixels=False)
    c = cut.figures()
    assert c["planned_area"]["holes"] >= 1 and c["planned_area"]["covered_pct"] < 100.0
    holes_ll, _thin = cut.holes["planned"]
    to_m = Transformer.from_crs(4326, UTM, always_xy=True)
    holes_m = shapely.transform(
        holes_ll, lambda a: np.column_stack(to_m.transform(a[:, 0], a[:, 1]))
    )
    assert holes_m.centroid.distance(Point(*centre)) < 10.0


def test_dem_file_gives_the_flat_ground_footprints(tmp_path: Path) -> None:
    dem_path = tmp_path / "dem.tif"
    write_geotiff(
        dem_path,
        np.full((400, 400), GROUND_AMSL, dtype=np.float32),
        transform=Affine(1.0, 0.0, X0 - 100.0, 0.0, -1.0, Y0 + 300.0),
        crs=UTM,
    )
    xy = np.array([[X0 + 50.0, Y0 + 50.0], [X0 + 50.0, Y0 + 80.0]])
    photos = _photos_at(xy, np.array([0.0, 0.0]))
    with_dem = check_flight(photos, camera=CAM, dem=dem_path, pixels=False)
    flat = check_flight(photos, camera=CAM, ground_m=GROUND_AMSL, pixels=False)
    for a, b in zip(with_dem.footprints, flat.footprints, strict=True):
        assert a is not None and b is not None
        assert a.symmetric_difference(b).area / b.area < 1e-4
    assert with_dem.gsd_cm[0] == pytest.approx(CAM.gsd_cm(60.0), rel=1e-3)


def test_read_plan_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputFileError) as exc:
        read_plan(tmp_path / "nothing")
    assert "mission.geojson" in str(exc.value) and "\n" not in str(exc.value)
    (tmp_path / "mission.geojson").write_text("{not json")
    with pytest.raises(InputFileError, match="not a plan's mission.geojson"):
        read_plan(tmp_path)


def test_truncated_photo_is_flagged_not_a_traceback(tmp_path: Path) -> None:
    fl = make_flight(n_lines=1)
    folder = tmp_path / "photos"
    write_flight_photos(folder, fl)
    victim = folder / "IMG_0003.JPG"
    victim.write_bytes(victim.read_bytes()[:-400])  # the camera lost power mid-write
    tagged = geotag(read_images(folder).images, fl.telemetry, fl.events, time_offset=0.0)
    qc = check_flight(tagged.photos, camera=CAM, site=_ll(SITE_M))
    flags = {p.name: [f.flag for f in fl] for p, fl in zip(tagged.photos, qc.flags, strict=True)}
    assert flags["IMG_0003.JPG"] == ["unreadable"]
    assert sum(bool(v) for v in flags.values()) == 1
