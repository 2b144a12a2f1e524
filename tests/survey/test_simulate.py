"""The flight simulator: plan -> fly -> ingest against the truth it writes.

One flight over the session's synthetic site (80 m at 10 cm, planned at 1.5 cm/px with a
Phantom 4 Pro: one sortie, 21 photos) is simulated once per module with a planted camera
clock offset and 1.5 m of correlated GNSS noise; the tests read it back with pymavlink, with
``survey.ingest`` and with Pillow and compare with ``truth.json``. Rendering is checked on a
site written here: a textured orthophoto over flat ground, where every pixel's ground point
is known in closed form.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin
from scipy import ndimage
from shapely.geometry import box, mapping

from flightplans import PlanParams, get_camera
from survey.cli import EXIT_ERROR, run
from survey.ingest import geotag, read_images, read_log, run_ingest
from survey.simulate import (
    SimParams,
    SimulatedFlight,
    SimulationError,
    load_world,
    photo_camera,
    render_photo,
    simulate_flight,
)
from survey.simulate.photos import camera_make_model, simulated_serials
from survey.simulate.sensors import gauss_markov
from survey.sites import plan_site
from survey.synth import SynthSite

OFFSET_S = -3.456
GPS_NOISE_M = 1.5


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def plan_dir(synth_site: SynthSite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim_plan")
    plan_site(synth_site.site, out, PlanParams(gsd_cm=1.5, camera=get_camera("phantom4pro")))
    return out


@pytest.fixture(scope="module")
def flight(
    synth_site: SynthSite, plan_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> SimulatedFlight:
    before = _tree_hashes(synth_site.root), _tree_hashes(plan_dir)
    out = tmp_path_factory.mktemp("sim_flight")
    result = simulate_flight(
        plan_dir,
        synth_site.root,
        out,
        SimParams(seed=5, clock_offset_s=OFFSET_S, gps_noise_m=GPS_NOISE_M, photo_width_px=300),
    )
    # the inputs are only read: not a byte changed, not a file added beside them
    assert (_tree_hashes(synth_site.root), _tree_hashes(plan_dir)) == before
    return result


def _seconds(times: Any) -> np.ndarray:
    return np.asarray(times).astype("datetime64[ns]").astype(np.int64) / 1e9


def _utc(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- the log --------------------------------------------------------------------------------------


def test_the_tlog_reads_with_pymavlink_and_read_log(flight: SimulatedFlight) -> None:
    from pymavlink import mavutil

    written = flight.truth["outputs"]["flight.tlog"]["messages"]
    assert set(written) == {
        "ATTITUDE",
        "CAMERA_FEEDBACK",
        "GLOBAL_POSITION_INT",
        "GPS_RAW_INT",
        "HEARTBEAT",
        "SYSTEM_TIME",
    }
    conn = mavutil.mavlink_connection(str(flight.tlog))
    seen: Counter[str] = Counter()
    stamps = []
    try:
        while (msg := conn.recv_match()) is not None:
            seen[msg.get_type()] += 1
            stamps.append(msg._timestamp)
    finally:
        conn.close()
    assert dict(seen) == written
    assert np.all(np.diff(stamps) >= 0), "records are not in the ground station's receive order"

    log = read_log(flight.tlog)
    r = log.report
    assert r.format == "tlog" and r.bad_packets == 0 and r.skipped == {}
    assert r.messages == sum(written.values())
    assert r.gps_points == written["GLOBAL_POSITION_INT"]
    assert r.camera_events == written["CAMERA_FEEDBACK"] == len(flight.photos) == 21
    assert "SYSTEM_TIME" in r.time_source
    # the vehicle's clock is UTC: the log starts where truth.json says, to the millisecond
    start = _utc(flight.truth["clock"]["log_start_utc"])
    assert _seconds(log.telemetry["time"].values[0]) == pytest.approx(start, abs=1e-3)
    assert log.telemetry["alt_rel"].max() == pytest.approx(54.72, abs=1.0)  # the plan's height


def test_camera_events_match_the_photos_and_the_truth(flight: SimulatedFlight) -> None:
    log = read_log(flight.tlog)
    ev = log.camera_events
    exposures = flight.truth["exposures"]
    assert [e["photo"] for e in exposures] == [p.name for p in flight.photos]
    assert ev["image_index"].values.tolist() == list(range(1, len(exposures) + 1))
    t_event = _seconds(ev["time"].values)
    t_true = np.array([_utc(e["time_utc"]) for e in exposures])
    np.testing.assert_allclose(t_event, t_true, atol=1e-3)
    np.testing.assert_allclose(ev["lat"].values, [e["reported"]["lat"] for e in exposures], 2e-7)
    np.testing.assert_allclose(ev["lon"].values, [e["reported"]["lon"] for e in exposures], 2e-7)
    # each photo's EXIF: the camera clock (UTC + the planted offset, shown in the site's zone
    # with OffsetTimeOriginal) and the receiver's position
    photos = read_images(flight.photos_dir).images
    assert [p.name for p in photos] == [e["photo"] for e in exposures]
    for p, e, t in zip(photos, exposures, t_true, strict=True):
        assert p.time_utc is not None and not p.warnings
        assert p.time_utc.timestamp() - t == pytest.approx(OFFSET_S, abs=1.5e-3)
        assert p.lat == pytest.approx(e["reported"]["lat"], abs=1e-7)
        assert p.lon == pytest.approx(e["reported"]["lon"], abs=1e-7)
        assert p.alt_rel_m == pytest.approx(e["reported"]["alt_rel_m"], abs=0.006)
        assert p.pitch_deg == pytest.approx(e["camera"]["pitch_deg"], abs=0.006)
        assert (p.make, p.model, p.width_px, p.height_px) == ("DJI", "FC6310", 300, 200)
        cam = p.camera()
        assert cam is not None and cam.gsd_cm(50.0) == pytest.approx(
            photo_camera(get_camera("phantom4pro"), 300).gsd_cm(50.0), rel=1e-3
        )
    with Image.open(flight.photos[0]) as im:
        assert im.getexif().get_ifd(0x8769)[0x9011] == "+08:00"  # OffsetTimeOriginal


def test_geotag_recovers_the_clock_offset_and_the_positions(flight: SimulatedFlight) -> None:
    log = read_log(flight.tlog)
    images = read_images(flight.photos_dir).images
    exposures = flight.truth["exposures"]
    to_m = Transformer.from_crs(4326, flight.truth["flight"]["crs"], always_xy=True)

    def metres(lon: float, lat: float) -> np.ndarray:
        return np.array(to_m.transform(lon, lat))

    # with camera events: the offset to the millisecond, each photo at its event's position
    tagged = geotag(images, log.telemetry, log.camera_events)
    assert tagged.offset is not None and tagged.offset.method == "camera events"
    assert tagged.offset.offset_s == pytest.approx(OFFSET_S, abs=0.1)
    assert tagged.offset.offset_s == pytest.approx(OFFSET_S, abs=2e-3)
    assert tagged.images_matched == len(images)
    for p, e in zip(tagged.photos, exposures, strict=True):
        assert p.position_source == "log"
        xy = metres(p.lon, p.lat)
        reported = metres(e["reported"]["lon"], e["reported"]["lat"])
        true = metres(e["true"]["lon"], e["true"]["lat"])
        assert np.hypot(*(xy - reported)) < 0.03  # what the receiver said, to the 1e-7 deg
        assert abs(np.hypot(*(xy - true)) - e["gnss_error_m"]["horizontal"]) < 0.03
        assert p.alt_m == pytest.approx(e["reported"]["alt_amsl_m"], abs=0.01)
    errors = [e["gnss_error_m"]["horizontal"] for e in exposures]
    assert 0.1 < max(errors) < 6 * GPS_NOISE_M  # the noise is there, and of the size asked

    # without camera events: the offset from the photos' own GPS against the track, and
    # positions interpolated in the telemetry at the exposure
    alone = geotag(images, log.telemetry, None)
    assert alone.offset is not None and alone.offset.method == "photo positions"
    assert alone.offset.offset_s == pytest.approx(OFFSET_S, abs=0.1)
    for p, e in zip(alone.photos, exposures, strict=True):
        assert p.position_source == "interpolated"
        xy = metres(p.lon, p.lat)
        true = metres(e["true"]["lon"], e["true"]["lat"])
        # the 5 Hz estimate interpolated at the exposure: the GNSS error plus what a straight
        # line between samples 0.2 s apart misses on a corner
        assert np.hypot(*(xy - true)) < e["gnss_error_m"]["horizontal"] + 0.3


def test_ingest_runs_end_to_end_on_the_simulated_flight(
    flight: SimulatedFlight, plan_dir: Path, synth_site: SynthSite, tmp_path: Path
) -> None:
    photos_before = _tree_hashes(flight.out_dir)
    result = run_ingest(
        tmp_path / "ingest",
        log=flight.tlog,
        images=flight.photos_dir,
        plan=plan_dir,
        site=synth_site.site,
    )
    r = result.report
    assert r["images"] == r["images_placed"] == r["images_matched"] == 21
    assert r["time_offset_s"] == pytest.approx(OFFSET_S, abs=0.1)
    cov = r["coverage"]
    assert cov["images_flagged"] == 0, cov["flags"]
    assert cov["site"]["covered_pct"] == 100.0 and cov["site"]["holes"] == 0
    # the overlaps the plan asked for are flown (75 % front, 65 % side)
    assert cov["front_overlap_pct_median"] == pytest.approx(75.0, abs=3.0)
    assert cov["side_overlap_pct_median"] == pytest.approx(65.0, abs=6.0)
    assert _tree_hashes(flight.out_dir) == photos_before


# --- the photos -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flat_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder with a random texture over flat ground at 10 m (no truth.json)."""
    root = tmp_path_factory.mktemp("flat_site")
    (root / "after").mkdir()
    rng = np.random.default_rng(1)
    rgb = ndimage.zoom(rng.integers(0, 256, (3, 60, 60)).astype(np.float64), (1, 5, 5), order=1)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    transform = from_origin(500_000.0, 2_500_100.0, 0.1, 0.1)  # 30 x 30 m
    profile = {"driver": "GTiff", "width": 300, "height": 300, "crs": "EPSG:32650"}
    ortho = root / "after" / "orthophoto.tif"
    with rasterio.open(ortho, "w", count=3, dtype="uint8", transform=transform, **profile) as ds:
        ds.write(rgb)
    with rasterio.open(
        root / "after" / "dsm.tif", "w", count=1, dtype="float32", transform=transform, **profile
    ) as ds:
        ds.write(np.full((1, 300, 300), 10.0, np.float32))
    return root


@pytest.mark.parametrize("yaw", [0.0, 90.0, 217.0])
def test_a_nadir_photo_shows_the_ground_under_each_pixel(flat_site: Path, yaw: float) -> None:
    world = load_world(flat_site, "after", 0.1)
    cam = photo_camera(get_camera("phantom4pro"), 61)  # 61 x 41: a centre pixel
    height = 15.0  # a 22.5 x 15 m footprint: inside the 30 m orthophoto at any yaw
    centre = np.array([500_015.05, 2_500_084.95])  # the centre of an orthophoto pixel
    image = render_photo(world, cam, np.array([*centre, 10.0 + height]), yaw, -90.0, 0.0)
    assert image.shape == (41, 61, 3)
    with rasterio.open(flat_site / "after" / "orthophoto.tif") as ds:
        ortho = ds.read().astype(np.float64)
        inv = ~ds.transform
    gsd = height * cam.sensor_w_mm / cam.image_w_px / cam.focal_mm
    top = np.array([math.sin(math.radians(yaw)), math.cos(math.radians(yaw))])
    right = np.array([top[1], -top[0]])
    for row, col in [(20, 30), (0, 0), (40, 60), (5, 47), (33, 12)]:
        ground = centre + (col - 30) * gsd * right - (row - 20) * gsd * top
        c, r = inv * (ground[0], ground[1])
        want = [
            ndimage.map_coordinates(ortho[b], [[r - 0.5], [c - 0.5]], order=1)[0] for b in range(3)
        ]
        assert np.abs(image[row, col] - np.array(want)).max() <= 1.0, (row, col)
    # the centre pixel is the orthophoto's pixel under the camera
    c, r = inv * (centre[0], centre[1])
    assert np.abs(image[20, 30] - ortho[:, int(r), int(c)]).max() <= 1.0


def test_the_flight_photos_show_the_ground_under_the_true_camera(
    flight: SimulatedFlight, synth_site: SynthSite
) -> None:
    """Each JPEG is the site seen from the true pose in truth.json (misregistration undone)."""
    world = load_world(synth_site.root, "after", 0.05, seed=flight.truth["seed"])
    cam = photo_camera(get_camera("phantom4pro"), 300)
    truth = json.loads(synth_site.truth_json.read_text())
    forward = np.asarray(truth["misregistration"]["forward_matrix_m"])
    with rasterio.open(synth_site.after_ortho) as ds:
        ortho = ds.read().astype(np.float64)
        valid = ds.dataset_mask() > 0
        inv = ~ds.transform
    over_site = 0
    for e, path in zip(flight.truth["exposures"], flight.photos, strict=True):
        pose = np.array([e["true"]["x"], e["true"]["y"], e["true"]["alt_amsl_m"]])
        cam_angles = e["camera"]["yaw_deg"], e["camera"]["pitch_deg"], e["camera"]["roll_deg"]
        again = render_photo(world, cam, pose, *cam_angles).astype(np.float64)
        with Image.open(path) as im:
            photo = np.asarray(im.convert("RGB"), dtype=np.float64)
        assert np.abs(photo - again).mean() < 4.0, path.name  # JPEG and sensor noise only
        # near nadir the image centre sees the point under the camera: after the site's
        # misregistration, that point of the after orthophoto (27 cm photo pixels: 3 x 3 of
        # the orthophoto's 10 cm)
        xa, ya, _ = forward @ [pose[0], pose[1], 1.0]
        c, r = (int(v) for v in inv * (xa, ya))
        if not (0 < r < valid.shape[0] - 1 and 0 < c < valid.shape[1] - 1 and valid[r, c]):
            continue  # beyond the orthophoto: the field around the site
        over_site += 1
        patch = ortho[:, r - 1 : r + 2, c - 1 : c + 2].mean(axis=(1, 2))
        centre = photo[99:101, 149:151].reshape(-1, 3).mean(axis=0)
        assert np.abs(centre - patch).max() < 20.0, path.name
    assert over_site >= 15


# --- flying ---------------------------------------------------------------------------------------


def test_kinematics_follow_the_plan_and_its_trigger_distance(
    flight: SimulatedFlight, plan_dir: Path
) -> None:
    summary = json.loads((plan_dir / "summary.json").read_text())
    traj = flight.trajectory
    speed = np.hypot(traj.vel[:, 0], traj.vel[:, 1])
    assert speed.max() <= summary["speed_ms"] + 1e-6
    assert traj.vel[:, 2].max() <= 2.5 + 1e-6 and traj.vel[:, 2].min() >= -1.5 - 1e-6
    # the speed along the path changes no faster than the acceleration limit (2 m/s2)
    dv = np.abs(np.diff(np.linalg.norm(traj.vel, axis=1))) * traj.rate_hz
    assert dv.max() <= 2.0 + 0.05
    # each photo fires a sample late and the next is measured from it, as the autopilot
    # does: a line whose length is a multiple of the trigger distance may lose its last photo
    assert summary["n_photos"] - summary["n_lines"] <= len(traj.shots) <= summary["n_photos"]
    # along a line the camera fires at the first sample past the trigger distance
    xy = traj.xyz[traj.shots, :2]
    gaps = np.hypot(*np.diff(xy, axis=0).T)
    on_line = gaps < 2 * summary["trigger_m"]
    step = summary["speed_ms"] / traj.rate_hz
    assert (gaps[on_line] >= summary["trigger_m"] - 1e-9).all()
    assert (gaps[on_line] <= summary["trigger_m"] + step + 1e-6).all()
    # the photos are taken at the planned height, the vehicle starts and ends on the ground
    rel = traj.xyz[traj.shots, 2] - traj.home_z
    np.testing.assert_allclose(rel, summary["alt_m"], atol=0.05)
    assert traj.xyz[0, 2] == traj.home_z == pytest.approx(traj.xyz[-1, 2])


def test_gnss_errors_are_correlated_not_white() -> None:
    rng = np.random.default_rng(0)
    x = gauss_markov(rng, 400_000, 0.2, 1.5, 60.0)
    assert x.std() == pytest.approx(1.5, rel=0.1)
    lag = 300  # one correlation time (60 s at 5 Hz)
    rho = np.corrcoef(x[:-lag], x[lag:])[0, 1]
    assert rho == pytest.approx(math.exp(-1.0), abs=0.08)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] > 0.99


def test_the_same_seed_gives_the_same_flight(
    synth_site: SynthSite, plan_dir: Path, tmp_path: Path
) -> None:
    def fly(seed: int, name: str) -> SimulatedFlight:
        return simulate_flight(
            plan_dir, synth_site.root, tmp_path / name, SimParams(seed=seed, photos=False)
        )

    a, b, c = fly(1, "a"), fly(1, "b"), fly(2, "c")
    assert a.tlog.read_bytes() == b.tlog.read_bytes()
    assert a.truth_json.read_text().replace(str(tmp_path / "a"), "") == (
        b.truth_json.read_text().replace(str(tmp_path / "b"), "")
    )
    assert a.tlog.read_bytes() != c.tlog.read_bytes()
    assert a.clock_offset_s != c.clock_offset_s and abs(a.clock_offset_s) <= 8.0
    assert a.photos == () and not (tmp_path / "a" / "photos").exists()


# --- the command and its errors -------------------------------------------------------------------


def test_command_writes_the_log_photos_and_truth(
    synth_site: SynthSite, plan_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "flight"
    code = run(
        [
            "simulate-flight",
            "--plan",
            str(plan_dir),
            "--site",
            str(synth_site.root),
            "--out",
            str(out),
            "--seed",
            "3",
            "--clock-offset-s",
            "-2.5",
            "--gps-noise-m",
            "0.5",
            "--photo-width-px",
            "64",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    truth = json.loads((out / "truth.json").read_text())
    assert truth["clock"]["camera_offset_s"] == -2.5 and truth["noise"]["gnss_sigma_m"] == 0.5
    photos = sorted((out / "photos").glob("DJI_*.JPG"))
    assert len(photos) == len(truth["exposures"]) == 21
    with Image.open(photos[0]) as im:
        assert im.size == (64, 43)
    assert "camera clock -2.500 s" in captured.out and str(out / "flight.tlog") in captured.out


def test_photos_carry_the_aircraft_serials_of_the_seed(flight: SimulatedFlight) -> None:
    serials = simulated_serials(5, ("DJI", "FC6310"))
    assert serials != simulated_serials(6, ("DJI", "FC6310"))
    assert serials.drone.startswith("SIM") and len(serials.drone) == 16
    for photo in (flight.photos[0], flight.photos[-1]):
        with Image.open(photo) as im:
            body = im.getexif().get_ifd(0x8769).get(0xA431)  # EXIF BodySerialNumber
            xmp = im.info["xmp"].decode()
        assert body == serials.camera
        assert f'drone-dji:DroneSerialNumber="{serials.drone}"' in xmp


def test_command_store_records_the_flight_and_ingest_finds_its_serials(
    synth_site: SynthSite, plan_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """simulate-flight --store records what it read and wrote; ingest --store then adds the
    log and photos with the aircraft's serials, and they trace back to the synthetic site."""
    from survey.evidence import EvidenceStore

    store, out = tmp_path / "store", tmp_path / "flight"
    args = ["simulate-flight", "--plan", str(plan_dir), "--site", str(synth_site.root)]
    args += ["--out", str(out), "--seed", "3", "--photo-width-px", "64"]
    with_store = ["--store", str(store), "--case", "SIM-1", "--operator", "pilot1"]
    assert run([*args, *with_store]) == 0, capsys.readouterr().err
    assert f"recorded in the evidence store {store}: ledger entry" in capsys.readouterr().out
    s = EvidenceStore.open(store, read_only=True)
    (flown,) = [e for e in s.entries() if e.type == "derive"]
    assert flown["command"] == "sitewatch simulate-flight"
    assert (flown["case"], flown["operator"]) == ("SIM-1", "pilot1")
    photos = sorted((out / "photos").glob("DJI_*.JPG"))
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in [*photos, out / "flight.tlog"]}
    sha[out / "truth.json"] = hashlib.sha256((out / "truth.json").read_bytes()).hexdigest()
    assert {o["role"]: o["sha256"] for o in flown["outputs"]} == {
        ("photos/" + p.name if p.suffix == ".JPG" else p.name): h for p, h in sha.items()
    }
    site = synth_site.root
    read = [
        *sorted(plan_dir.glob("sortie-*.plan")),
        plan_dir / "summary.json",
        site / "after" / "orthophoto.tif",
        site / "after" / "dsm.tif",
        site / "truth.json",
    ]
    assert sorted((i["sha256"], i["path"]) for i in flown["inputs"]) == sorted(
        (hashlib.sha256(p.read_bytes()).hexdigest(), str(p.resolve())) for p in read
    )
    assert flown["parameters"]["simulation"]["seed"] == 3
    # ingest --store: the originals with the serials of seed 3's aircraft
    assert run(
        ["ingest", "--log", str(out / "flight.tlog"), "--images", str(out / "photos"),
         "--plan", str(plan_dir), "--out", str(tmp_path / "ingest"), *with_store]
    ) == 0, capsys.readouterr().err  # fmt: skip
    serials = simulated_serials(3, camera_make_model(get_camera("phantom4pro")))
    s = EvidenceStore.open(store, read_only=True)
    added = {e["sha256"]: e for e in s.entries() if e.type == "add"}
    assert set(added) == {h for p, h in sha.items() if p.name != "truth.json"}
    for p in photos:
        device = added[sha[p]]["device"]
        assert (device["kind"], device["drone_serial"], device["camera_serial"]) == (
            "photo",
            serials.drone,
            serials.camera,
        )
    assert added[sha[out / "flight.tlog"]]["device"]["kind"] == "flight log"
    # a photo traces back through the simulation to the site's rasters
    traced = {
        i["sha256"] for e in s.trace(sha[photos[0]]) if e.type == "derive" for i in e["inputs"]
    }
    assert hashlib.sha256(read[-3].read_bytes()).hexdigest() in traced
    assert s.verify().ok


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = run(argv)
    err = capsys.readouterr().err.strip()
    assert code == EXIT_ERROR, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_inputs_are_one_line_errors(
    synth_site: SynthSite,
    plan_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = str(synth_site.root)
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _one_line_error(
        ["simulate-flight", "--plan", str(empty), "--site", site, "--out", str(tmp_path / "o")],
        capsys,
    )
    assert "no sortie-NN.plan files" in err and "sitewatch plan" in err
    err = _one_line_error(
        ["simulate-flight", "--plan", str(plan_dir), "--site", str(empty), "--out", str(tmp_path)],
        capsys,
    )
    assert "after orthophoto is missing" in err and "sitewatch synth" in err
    err = _one_line_error(
        ["simulate-flight", "--plan", str(plan_dir), "--site", site, "--out", str(plan_dir)],
        capsys,
    )
    assert "is the plan folder" in err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "sortie-01.plan").write_text('{"fileType": "Plan", "version": 1')
    err = _one_line_error(
        ["simulate-flight", "--plan", str(damaged), "--site", site, "--out", str(tmp_path / "d")],
        capsys,
    )
    assert "sortie-01.plan" in err
    custom = tmp_path / "custom"
    custom.mkdir()
    for f in plan_dir.iterdir():
        (custom / f.name).write_bytes(f.read_bytes())
    summary = json.loads((custom / "summary.json").read_text())
    (custom / "summary.json").write_text(json.dumps({**summary, "camera": "custom"}))
    err = _one_line_error(
        ["simulate-flight", "--plan", str(custom), "--site", site, "--out", str(tmp_path / "c")],
        capsys,
    )
    assert "'custom' is not a preset" in err and "--camera" in err
    with pytest.raises(SimulationError, match="epoch='later'"):
        SimParams(epoch="later")
    with pytest.raises(SimulationError, match="clock offset nan"):
        SimParams(clock_offset_s=math.nan)


def test_a_plan_of_another_place_is_refused(
    synth_site: SynthSite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    far = tmp_path / "far_site.geojson"  # 2 km from the synthetic site
    polygon = mapping(box(114.52, 37.05, 114.521, 37.051))
    far.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {}, "geometry": polygon}],
            }
        )
    )
    plan = tmp_path / "far_plan"
    plan_site(far, plan, PlanParams(gsd_cm=1.5, camera=get_camera("phantom4pro")))
    err = _one_line_error(
        [
            "simulate-flight",
            "--plan",
            str(plan),
            "--site",
            str(synth_site.root),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert "nowhere over the site's rasters" in err
