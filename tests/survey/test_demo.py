"""The demo runs every stage on a small synthetic site and says where everything is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from survey.cli import run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run(["demo", "--out", str(out), "--size-m", "80", "--gsd-cm", "10"])
    assert code == 0
    return out, buf.getvalue()


def _planted_violations(out: Path) -> list[tuple[str, str]]:
    """(change id, expected class) of every planted change that must be flagged."""
    features = json.loads((out / "site" / "truth.geojson").read_text())["features"]
    return sorted(
        (f["properties"]["change_id"], f["properties"]["expected_class"])
        for f in features
        if f["properties"]["must_flag"]
    )


def _matched_to_truth(out: Path, run_dir: str, *, after_frame: bool) -> list[tuple[str, str]]:
    """(planted change id, lead class) of each lead of ``out/run_dir``: the planted change
    (any, flagged or not) that covers at least half of the lead's outline, ``-`` for none.
    ``after_frame``: the leads are in the after epoch's frame (``check``), where the truth
    lies moved by the planted misregistration; ``detect``'s are in the before (true) frame."""
    import numpy as np
    import shapely
    from shapely.geometry import shape

    from survey.vectors import reproject_geometries

    truth = json.loads((out / "site" / "truth.json").read_text())
    m = np.asarray(truth["misregistration"]["forward_matrix_m"])
    planted = []
    for f in json.loads((out / "site" / "truth.geojson").read_text())["features"]:
        (geom,) = reproject_geometries([shape(f["geometry"])], 4326, truth["crs"])
        if after_frame:
            geom = shapely.transform(geom, lambda xy: xy @ m[:2, :2].T + m[:2, 2])
        planted.append((geom, f["properties"]["change_id"]))
    found = []
    for lead in json.loads((out / run_dir / "leads.geojson").read_text())["features"]:
        (outline,) = reproject_geometries([shape(lead["geometry"])], 4326, truth["crs"])
        geom, change_id = max(planted, key=lambda p: p[0].intersection(outline).area)
        covered = geom.intersection(outline).area >= 0.5 * outline.area
        found.append((change_id if covered else "-", lead["properties"]["class"]))
    return sorted(found)


def test_demo_writes_site_and_plan(demo_run: tuple[Path, str]) -> None:
    out, text = demo_run
    for rel in (
        "site/before/orthophoto.tif",
        "site/after/dsm.tif",
        "site/truth.json",
        "plan/sortie-01.plan",
        "plan/summary.json",
        "plan/mission.geojson",
    ):
        assert (out / rel).is_file(), rel
    summary = json.loads((out / "plan" / "summary.json").read_text())
    assert summary["n_photos"] > 0
    assert str(out / "plan" / "sortie-01.plan") in text
    assert "synthetic site" in text and "flight plan" in text


def test_demo_detects_every_planted_change(demo_run: tuple[Path, str]) -> None:
    out, text = demo_run
    leads = json.loads((out / "detect" / "leads.geojson").read_text())["features"]
    # one lead on each planted violation, with its class; none on anything else
    assert _matched_to_truth(out, "detect", after_frame=False) == _planted_violations(out)
    for lead in leads:
        assert lead["properties"]["lead_id"] in text
    assert (out / "detect" / "provenance.json").is_file()


def test_demo_map_and_package_verify(demo_run: tuple[Path, str]) -> None:
    import shutil
    import subprocess

    out, text = demo_run
    assert (out / "review" / "review.html").is_file()
    assert str(out / "review" / "review.html") in text
    (pkg,) = list((out / "packages").iterdir())
    assert str(pkg) in text
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum not installed")
    proc = subprocess.run(
        ["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=pkg, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_demo_checks_the_first_survey_against_the_atlas(demo_run: tuple[Path, str]) -> None:
    out, text = demo_run
    leads = json.loads((out / "check" / "leads.geojson").read_text())["features"]
    # one lead on each planted violation (in the after frame), with its class; no other
    assert _matched_to_truth(out, "check", after_frame=True) == _planted_violations(out)
    report = json.loads((out / "check" / "check.json").read_text())
    assert report["alignment"]["applied"] is True
    assert "first-survey check" in text and "atlas moved by" in text
    for lead in leads:
        assert lead["properties"]["lead_id"] in text
    assert (out / "check_review" / "review.html").is_file()
    assert str(out / "check_review" / "review.html") in text


def test_demo_flies_the_plan_and_ingests_the_flight(demo_run: tuple[Path, str]) -> None:
    out, text = demo_run
    for rel in ("flight/flight.tlog", "flight/truth.json", "ingest/report.json"):
        assert (out / rel).is_file(), rel
    truth = json.loads((out / "flight" / "truth.json").read_text())
    report = json.loads((out / "ingest" / "report.json").read_text())
    summary = json.loads((out / "plan" / "summary.json").read_text())
    n = summary["n_photos"]
    assert len(truth["exposures"]) == len(list((out / "flight" / "photos").iterdir())) == n
    assert report["images"] == report["images_placed"] == report["images_matched"] == n
    planted = truth["clock"]["camera_offset_s"]
    assert abs(report["time_offset_s"] - planted) < 0.1
    assert report["coverage"]["site"]["covered_pct"] == 100.0
    assert "simulated flight" in text and f"planted {planted:+.3f} s" in text
    assert "% covered" in text and "against the true trajectory" in text


def test_demo_review_map_shows_the_flown_track_and_the_photos(demo_run: tuple[Path, str]) -> None:
    out, _text = demo_run
    page = (out / "review" / "review.html").read_text()
    # the flown track under its own name, the plan beside it, never the plan as "flight track"
    assert "Flight track (flown)" in page and "Planned route" in page
    assert "Flight track (planned route)" not in page
    assert "Photo positions (taken)" in page
    n = len(json.loads((out / "ingest" / "photos.geojson").read_text())["features"])
    thumbs = sorted((out / "review" / "review_files" / "photos").glob("*.jpg"))
    assert len(thumbs) == n
    assert thumbs[0].name.split("_", 1)[1] == "DJI_0001.jpg"
    assert "review_files/photos/" + thumbs[0].name in page


def test_demo_records_its_inputs_and_products_in_a_store_that_verifies(
    demo_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from survey.evidence import EvidenceStore, leaf_hash, verify_inclusion
    from survey.evidence.wiring import STATEMENT_COMMAND

    out, text = demo_run
    store = out / "store"
    assert run(["evidence", "verify", str(store)]) == 0
    assert "ok: " in capsys.readouterr().out
    assert "evidence store" in text and "verified; recording took" in text
    assert f"verify with: sitewatch evidence verify {store}" in text
    s = EvidenceStore.open(store, read_only=True)
    derived = [e["command"] for e in s.entries() if e.type == "derive"]
    assert derived == [
        "sitewatch plan",
        "sitewatch simulate-flight",
        "sitewatch ingest",
        STATEMENT_COMMAND,
        "sitewatch detect",
        "sitewatch map",
        "sitewatch package",
        STATEMENT_COMMAND,
        "sitewatch check",
        "sitewatch map",
    ]

    def sha(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    # the flight's log and every photo are originals, and every lead traces back to them
    flight = {sha(p) for p in (out / "flight" / "photos").iterdir()}
    flight.add(sha(out / "flight" / "flight.tlog"))
    for leads in (out / "detect" / "leads.geojson", out / "check" / "leads.geojson"):
        added = {e["sha256"] for e in s.trace(sha(leads)) if e.type == "add"}
        assert flight <= added
        assert sha(out / "site" / "permits.geojson") in added
    # the package carries the ledger excerpt and the signed head, and proves them
    (pkg,) = list((out / "packages").iterdir())
    head = json.loads((pkg / "ledger_head.json").read_text())
    lines = (pkg / "ledger_excerpt.jsonl").read_bytes().splitlines()  # exact ledger lines
    excerpt = json.loads((pkg / "manifest.json").read_text())["ledger_excerpt"]
    assert flight <= {e["entry"]["sha256"] for e in excerpt if e["entry"]["type"] == "add"}
    for e, line in zip(excerpt, lines, strict=True):
        proof = [bytes.fromhex(h) for h in e["inclusion_proof"]]
        leaf = leaf_hash(line)
        root = bytes.fromhex(head["root_hash"])
        assert verify_inclusion(e["seq"], head["tree_size"], leaf, proof, root)
    assert s.verify_head(head)
    # the photos carry the simulated aircraft's serials, and trace back to the synthetic site
    from survey.simulate.photos import simulated_serials

    serials = simulated_serials(0, ("DJI", "FC6310"))
    adds = [e for e in s.trace(sha(out / "detect" / "leads.geojson")) if e.type == "add"]
    photos = [e["device"] for e in adds if e["device"]["kind"] == "photo"]
    assert len(photos) == len(flight) - 1
    assert {(d["drone_serial"], d["camera_serial"]) for d in photos} == {
        (serials.drone, serials.camera)
    }


def test_demo_writes_the_sites_plan_as_dji_wpml(demo_run: tuple[Path, str]) -> None:
    from flightplans import read_wpml, wpml_survey

    out, text = demo_run
    kmz = sorted((out / "plan_wpml").glob("sortie-*.kmz"))
    summary = json.loads((out / "plan_wpml" / "summary.json").read_text())
    assert [p.name for p in kmz] == [f["file"] for f in summary["wpml"]["files"]]
    assert len(kmz) == summary["n_sorties"] >= 1
    wf = read_wpml(kmz[0])
    assert wf.drone is not None and wf.drone.name == "mavic3e"
    assert wf.template_type == "waypoint" and wf.finish_action == "goHome"
    n = sum(wpml_survey(read_wpml(p)).figures["n_photos"] for p in kmz)
    assert n == summary["n_photos"] > 0
    assert summary["gsd_cm"] == pytest.approx(1.5)  # the demo's GSD, for the Mavic 3E's camera
    assert str(kmz[0]) in text and "DJI WPML" in text
