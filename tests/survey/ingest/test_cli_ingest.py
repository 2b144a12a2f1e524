"""``sitewatch ingest`` end to end: files written, summary, progress, one-line errors."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from survey.cli import EXIT_ERROR, EXIT_USAGE, run
from tests.survey.ingest._flight import Flight, make_flight, write_flight_photos
from tests.survey.ingest.test_run import OFFSET, SITE_M, _hashes, _site_file, write_survey_tlog


@pytest.fixture(scope="module")
def flight_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    flight: Flight = make_flight()
    root = tmp_path_factory.mktemp("cli-flight")
    tlog, _ = write_survey_tlog(flight, root / "flight.tlog")
    photos = root / "DCIM"
    write_flight_photos(photos, flight, offset_s=OFFSET)
    site = _site_file(root / "site.geojson", SITE_M)
    nofix, _ = write_survey_tlog(make_flight(n_lines=1), root / "nofix.tlog", fix=False)
    return {"log": tlog, "images": photos, "site": site, "nofix": nofix}


def _error_line(err: str) -> str:
    """The one error line; any other line is a logged warning (one line each)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    errors = [ln for ln in lines if not ln.startswith("WARNING ")]
    assert len(errors) == 1, err
    return errors[0]


def test_ingest_writes_the_outputs_and_a_summary(
    tmp_path: Path, flight_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = _hashes(*flight_files.values())
    out = tmp_path / "out"
    code = run(
        [
            "ingest",
            "--log",
            str(flight_files["log"]),
            "--images",
            str(flight_files["images"]),
            "--site",
            str(flight_files["site"]),
            "--camera",
            "phantom4pro",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "geo.txt",
        "photos.geojson",
        "report.json",
        "telemetry.csv",
        "track.geojson",
    ]
    report = json.loads((out / "report.json").read_text())
    assert abs(report["time_offset_s"] - OFFSET) < 0.1
    assert "camera clock +3.22 s off the log (camera events)" in captured.out
    assert "photos: 55 read, 55 placed, 55 paired with camera events" in captured.out
    assert "coverage: site 100.0 % covered, no holes" in captured.out
    assert "reading the log" not in captured.err  # no progress when stderr is not a terminal
    assert _hashes(*flight_files.values()) == before


def test_given_offset_quiet_and_progress_on_a_terminal(
    tmp_path: Path,
    flight_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    args = ["ingest", "--log", str(flight_files["log"]), "--images", str(flight_files["images"])]
    assert run([*args, "--time-offset", "-2.5", "--out", str(tmp_path / "a")]) == 0
    shown = capsys.readouterr()
    assert "reading the log flight.tlog ..." in shown.err
    assert "placing 55 photos on the flight ..." in shown.err
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["time_offset_s"] == -2.5 and report["parameters"]["time_offset"] == -2.5
    assert run(["-q", *args, "--out", str(tmp_path / "b")]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        ([], EXIT_USAGE, "give the flight log (--log), its photos (--images) or both"),
        (["--log", "{tmp}/missing.tlog"], EXIT_USAGE, "missing.tlog"),
        (["--log", "{log}", "--time-offset", "soon"], EXIT_USAGE, "'soon': use auto"),
        (["--log", "{log}", "--odm-option", "dsm=true"], EXIT_USAGE, "needs --nodeodm"),
        (["--log", "{log}", "--camera", "nope"], EXIT_ERROR, "unknown camera 'nope'"),
        (["--images", "{empty}"], EXIT_ERROR, "no photos"),
        (["--log", "{nofix}"], EXIT_ERROR, "no GPS position fix"),
        (["--log", "{notalog}"], EXIT_ERROR, "not a MAVLink .tlog"),
        (["--images", "{images}"], EXIT_ERROR, "carries a GPS position"),
        (["--images", "{images}", "--out", "{images}"], EXIT_ERROR, "folder of the original"),
        (
            ["--log", "{log}", "--nodeodm", "ftp://x", "--out", "{tmp}/o"],
            EXIT_ERROR,
            "not an http(s) address",
        ),
    ],
)
def test_malformed_inputs_are_one_line(
    tmp_path: Path,
    flight_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    words: str,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    notalog = tmp_path / "notes.tlog"
    notalog.write_text("hello\n" * 20)
    values = {
        "tmp": str(tmp_path),
        "log": str(flight_files["log"]),
        "images": str(flight_files["images"]),
        "empty": str(empty),
        "notalog": str(notalog),
        "nofix": str(flight_files["nofix"]),
    }
    argv = ["ingest", *[a.format(**values) for a in args]]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "out")]
    before = _hashes(*flight_files.values())
    assert run(argv) == code
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("sitewatch") and "error:" in line
    assert words in line
    assert _hashes(*flight_files.values()) == before


def test_unreachable_nodeodm_after_the_outputs(
    tmp_path: Path, flight_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyodm")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    argv = [
        "-q",
        "ingest",
        "--log",
        str(flight_files["log"]),
        "--images",
        str(flight_files["images"]),
        "--nodeodm",
        f"http://127.0.0.1:{port}",
        "--odm-option",
        "orthophoto-resolution=2",
        "--out",
        str(out),
    ]
    assert run(argv) == EXIT_ERROR
    line = _error_line(capsys.readouterr().err)
    assert f"NodeODM server http://127.0.0.1:{port} cannot be reached" in line
    assert f"report.json are written in {out}" in line
    report = json.loads((out / "report.json").read_text())
    failed = [w for w in report["warnings"] if w["reason"] == "nodeodm_failed"]
    assert len(failed) == 1 and report["nodeodm_task"] is None
    assert report["parameters"]["nodeodm_options"] == {
        "dsm": True,
        "dtm": True,
        "orthophoto-resolution": 2,
    }
    assert (out / "geo.txt").is_file() and (out / "photos.geojson").is_file()


# --- ingest --store: the originals into the evidence store (#14) ---------------------------------

DRONE_SERIAL = "1581F4XFD22990065"
CAMERA_SERIAL = "5FXCL9K0021T"


def write_flight_with_serials(root: Path, *, n_lines: int = 2) -> dict[str, Path]:
    """A short flight's tlog and photos whose DJI XMP carries the drone's and the camera's
    serial numbers (drone-dji:DroneSerialNumber, drone-dji:CameraSerialNumber)."""
    import datetime as dt

    from tests.survey.ingest._flight import texture, write_photo

    flight = make_flight(n_lines=n_lines)
    root.mkdir(parents=True, exist_ok=True)
    tlog, _ = write_survey_tlog(flight, root / "flight.tlog")
    photos = root / "DCIM"
    photos.mkdir(parents=True)
    for i, t in enumerate(flight.t_events):
        write_photo(
            photos / f"DJI_{i + 1:04d}.JPG",
            texture(i),
            time=dt.datetime.fromtimestamp(t + OFFSET, dt.UTC),
            offset_tag="+00:00",
            xmp={"DroneSerialNumber": DRONE_SERIAL, "CameraSerialNumber": CAMERA_SERIAL},
        )
    return {"log": tlog, "images": photos}


@pytest.fixture(scope="module")
def serial_flight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_flight_with_serials(tmp_path_factory.mktemp("serial-flight"))


def _ingest_args(flight: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "ingest",
        "--log",
        str(flight["log"]),
        "--images",
        str(flight["images"]),
        "--camera",
        "phantom4pro",
        "--out",
        str(out),
        *extra,
    ]


def test_ingest_store_adds_the_log_and_photos_with_their_serials(
    tmp_path: Path, serial_flight: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from survey.evidence import EvidenceStore

    before = _hashes(*serial_flight.values())
    store, out = tmp_path / "store", tmp_path / "out"
    args = ["--store", str(store), "--case", "2024-017", "--risk", "medium", "--operator", "op7"]
    code = run(_ingest_args(serial_flight, out, *args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    photos = sorted(serial_flight["images"].iterdir())
    assert f"originals: {len(photos) + 1} file(s) in the evidence store" in captured.out
    assert f"recorded in the evidence store {store}" in captured.out
    s = EvidenceStore.open(store, read_only=True)
    adds = [e for e in s.entries() if e.type == "add"]
    # the log first, then every photo by name, each stored bit-exact under its SHA-256
    want = _hashes(serial_flight["log"], *photos)
    assert [(e["source"], e["sha256"]) for e in adds] == [
        (str(p.resolve()), want[str(p)]) for p in [serial_flight["log"], *photos]
    ]
    for e in adds:
        assert (e["case"], e["operator"]) == ("2024-017", "op7")
        assert _hashes(s.object_path(e["sha256"]))[str(s.object_path(e["sha256"]))] == e["sha256"]
    assert adds[0]["device"]["kind"] == "flight log" and adds[0]["device"]["format"] == "tlog"
    for e in adds[1:]:
        device = e["device"]
        assert (device["kind"], device["drone_serial"], device["camera_serial"]) == (
            "photo",
            DRONE_SERIAL,
            CAMERA_SERIAL,
        )
        assert device["sources"]["drone_serial"] == "XMP drone-dji:DroneSerialNumber"
    (case,) = [e for e in s.entries() if e.type == "case"]
    assert (case["case"], case["risk"], case["risk_assumed"]) == ("2024-017", "medium", False)
    # one derivation: the originals as ingest read them (report.json) -> every output
    (derive,) = [e for e in s.entries() if e.type == "derive"]
    report = json.loads((out / "report.json").read_text())
    assert derive["command"] == "sitewatch ingest"
    ins = {(i["role"], i["sha256"]) for i in derive["inputs"]}
    assert ins == {("log", report["inputs"]["log"]["sha256"])} | {
        ("photos", sha) for sha in report["inputs"]["images"]["sha256"].values()
    }
    outs = {o["role"]: o["sha256"] for o in derive["outputs"]}
    assert outs == {p.name: h for p, h in ((p, _hashes(p)[str(p)]) for p in out.iterdir())}
    assert s.verify().ok
    assert _hashes(*serial_flight.values()) == before  # originals untouched


def test_ingest_store_twice_stores_once_and_records_both(
    tmp_path: Path, serial_flight: dict[str, Path]
) -> None:
    from survey.evidence import EvidenceStore

    store = tmp_path / "store"
    for n in (1, 2):
        args = ["--store", str(store), "--case", "C-1"]
        assert run(_ingest_args(serial_flight, tmp_path / f"out{n}", *args)) == 0
    s = EvidenceStore.open(store, read_only=True)
    adds = [e for e in s.entries() if e.type == "add"]
    n_files = len(list(serial_flight["images"].iterdir())) + 1
    assert len(adds) == 2 * n_files
    assert [e["stored"] for e in adds] == [True] * n_files + [False] * n_files
    assert len(list((store / "objects").rglob("*/*"))) == n_files
    assert sum(e.type == "derive" for e in s.entries()) == 2


@pytest.mark.parametrize(
    ("extra", "code", "text"),
    [
        (["--store", "{store}"], EXIT_USAGE, "give --case CASE too"),
        (["--case", "C-1"], EXIT_USAGE, "--case is recorded in an evidence store"),
        (["--risk", "low"], EXIT_USAGE, "--risk is the tier of the store's case"),
        (["--store", "{notastore}", "--case", "C-1"], EXIT_ERROR, "not an evidence store"),
        (["--store", "{store}", "--case", "../x"], EXIT_ERROR, "has a path separator"),
        (["--store", "{store}", "--case", "C-1", "--risk", "urgent"], EXIT_ERROR, "'urgent'"),
    ],
)
def test_ingest_store_refusals_are_one_line_and_write_nothing(
    tmp_path: Path,
    serial_flight: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    code: int,
    text: str,
) -> None:
    notastore = tmp_path / "notastore"
    notastore.mkdir()
    (notastore / "notes.txt").write_text("mine")
    out, store = tmp_path / "out", tmp_path / "store"
    args = [a.format(store=store, notastore=notastore) for a in extra]
    assert run(_ingest_args(serial_flight, out, *args)) == code
    assert text in _error_line(capsys.readouterr().err)
    assert not out.exists()
    assert sorted(p.name for p in notastore.iterdir()) == ["notes.txt"]
    assert not store.exists()


def test_a_dji_wpml_route_is_the_planned_mission(
    flight_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ingest --plan FILE.kmz` (issue #17): the route a DJI aircraft flew, ours or one made in
    Pilot 2, is the planned area of the coverage check, and its hash is in report.json."""
    from shapely.geometry import box

    from flightplans import PlanParams, WpmlOptions, get_drone, plan_survey, write_mission_files
    from tests.survey.ingest._flight import HEIGHT, UTM, X0, Y0

    drone = get_drone("mavic3e")
    area = box(X0 + 10.0, Y0 + 10.0, X0 + 110.0, Y0 + 150.0)
    plan = plan_survey(area, PlanParams(alt_m=HEIGHT, camera=drone.camera, angle_deg=0.0), crs=UTM)
    write_mission_files(plan, tmp_path / "plan", formats=("wpml",), wpml=WpmlOptions(drone))
    kmz = tmp_path / "plan" / "sortie-01.kmz"
    out = tmp_path / "out"
    code = run(["ingest", "--log", str(flight_files["log"]), "--images",
                str(flight_files["images"]), "--plan", str(kmz), "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert set(report["inputs"]["plan"]["sha256"]) == {"sortie-01.kmz"}
    assert report["coverage"]["planned_area"]["covered_pct"] == 100.0
