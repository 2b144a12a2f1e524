"""`sitewatch map` and `sitewatch package` from the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from change_detection.leads import leads_to_feature_collection
from survey.cli import EXIT_ERROR, EXIT_USAGE, run
from survey.vectors import write_features
from tests.maps.scenes import Scene, make_scene


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scene, dict[str, Path]]:
    root = tmp_path_factory.mktemp("cli_scene")
    scene = make_scene(root)
    leads = root / "leads.geojson"
    leads.write_text(json.dumps(leads_to_feature_collection(scene.leads)))
    permits = write_features(
        root / "permits.gpkg", [g for g, _ in scene.permits], [p for _, p in scene.permits]
    )
    track = write_features(
        root / "track.geojson", [g for g, _ in scene.track], [p for _, p in scene.track]
    )
    photos = write_features(
        root / "photos.geojson", [g for g, _ in scene.photos], [p for _, p in scene.photos]
    )
    paths = {"leads": leads, "permits": permits, "track": track, "photos": photos}
    return scene, paths


def _inputs(scene: Scene, f: dict[str, Path]) -> list[str]:
    return [
        "--leads",
        str(f["leads"]),
        "--before-ortho",
        str(scene.before_ortho),
        "--after-ortho",
        str(scene.after_ortho),
    ]


def test_map_command_writes_the_pages(
    files: tuple[Scene, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene, f = files
    out = tmp_path / "out" / "review.html"
    code = run(
        [
            "map",
            *_inputs(scene, f),
            "--permits",
            str(f["permits"]),
            "--track",
            str(f["track"]),
            "--photos",
            str(f["photos"]),
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = captured.out.split()
    assert printed == [
        str(out),
        str(out.with_name("review_dual.html")),
        str(out.with_name("review_overview.html")),
    ]
    page = out.read_text()
    assert "Permit footprints" in page and "Flight track" in page and "Photo positions" in page
    assert "\\u0026lt;script\\u0026gt;alert(1)" in page  # permit name read from GeoPackage


def test_a_folder_that_is_not_a_store_is_refused_in_one_line(
    files: tuple[Scene, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene, f = files
    for cmd, extra in (
        ("map", ["--out", str(tmp_path / "r.html")]),
        ("package", ["--all", "--out", str(tmp_path / "p")]),
    ):
        code = run([cmd, *_inputs(scene, f), "--store", str(tmp_path), *extra])
        err = capsys.readouterr().err.strip()
        assert code == EXIT_ERROR
        assert len(err.splitlines()) == 1
        assert "not an evidence store" in err and str(tmp_path) in err
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "p").exists()


def test_package_one_and_all(
    files: tuple[Scene, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene, f = files
    one = tmp_path / "one"
    code = run(
        [
            "package",
            *_inputs(scene, f),
            "--after-dsm",
            str(scene.after_dsm),
            "--before-dsm",
            str(scene.before_dsm),
            "--lead",
            "L-0001",
            "--out",
            str(one),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (one / "manifest.sha256").is_file() and (one / "profile.png").is_file()
    sha = shutil.which("sha256sum")
    if sha is not None:
        assert subprocess.run([sha, "-c", "--quiet", "manifest.sha256"], cwd=one).returncode == 0
    capsys.readouterr()
    every = tmp_path / "all"
    assert run(["package", *_inputs(scene, f), "--all", "--out", str(every)]) == 0
    assert capsys.readouterr().out.split() == [str(every / "L-0001"), str(every / "L-0002")]
    assert (every / "L-0002" / "manifest.json").is_file()


def test_package_usage_errors(
    files: tuple[Scene, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene, f = files
    assert run(["package", *_inputs(scene, f), "--out", str(tmp_path / "x")]) == EXIT_USAGE
    both = ["--lead", "L-0001", "--all"]
    assert run(["package", *_inputs(scene, f), *both, "--out", str(tmp_path / "x")]) == EXIT_USAGE
    capsys.readouterr()
    code = run(["package", *_inputs(scene, f), "--lead", "L-9", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "no lead 'L-9'" in err and "L-0001" in err
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    code = run(
        [
            "map",
            "--leads",
            str(bad),
            "--before-ortho",
            str(scene.before_ortho),
            "--after-ortho",
            str(scene.after_ortho),
            "--out",
            str(tmp_path / "r.html"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == EXIT_ERROR and "not valid JSON" in err and len(err.splitlines()) == 1
    code = run(["map", *_inputs(scene, f), "--out", str(tmp_path / "r.png")])
    assert code == EXIT_USAGE
