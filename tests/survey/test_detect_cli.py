"""`sitewatch detect`: a real run on the synthetic site and one-line errors for bad inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

from survey.cli import EXIT_ERROR, EXIT_USAGE, run
from survey.rasters import write_geotiff

T = Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 4000000.0)
N = 96


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.fixture()
def epoch(tmp_path: Path) -> dict[str, Path]:
    rgb = np.full((3, N, N), 120, np.uint8)
    ortho = write_geotiff(
        tmp_path / "o.tif", rgb, transform=T, crs=32650, mask=np.ones((N, N), bool)
    )
    dsm = write_geotiff(
        tmp_path / "d.tif", np.full((N, N), 5.0, np.float32), transform=T, crs=32650, nodata=-9999.0
    )
    return {"ortho": ortho, "dsm": dsm}


def _args(epoch: dict[str, Path], out: Path, **over: Path) -> list[str]:
    files = {
        "before-ortho": epoch["ortho"],
        "after-ortho": epoch["ortho"],
        "before-dsm": epoch["dsm"],
        "after-dsm": epoch["dsm"],
        **over,
    }
    args = ["detect", "--out", str(out)]
    for flag, path in files.items():
        args += [f"--{flag}", str(path)]
    return args


def test_detect_on_the_synthetic_site(
    synth_site: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run(
        [
            "detect",
            "--before-ortho",
            str(synth_site.before_ortho),
            "--before-dsm",
            str(synth_site.before_dsm),
            "--after-ortho",
            str(synth_site.after_ortho),
            "--after-dsm",
            str(synth_site.after_dsm),
            "--permits",
            str(synth_site.permits),
            "--site",
            str(synth_site.site),
            "--before-date",
            "2025-04-15",
            "--after-date",
            "2025-10-15",
            "--min-area-m2",
            "6",
            "--min-height-m",
            "2.5",
            "--storey-m",
            "3",
            "--chunk-px",
            "384",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    for name in (
        "leads.geojson",
        "leads.gpkg",
        "change.tif",
        "coregistration.json",
        "provenance.json",
    ):
        assert (out / name).is_file(), name
    leads = json.loads((out / "leads.geojson").read_text(encoding="utf-8"))["features"]
    classes = sorted(f["properties"]["class"] for f in leads)
    assert classes == [
        "demolished",
        "demolished",
        "no_permit",
        "no_permit",
        "no_permit",
        "no_permit",
        "outside_footprint",
        "over_height",
    ]
    assert "8 lead(s)" in printed
    for f in leads:
        assert f["properties"]["lead_id"] in printed
    prov = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert prov["parameters"]["chunk_px"] == 384


def test_dsm_in_feet(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feet = tmp_path / "feet.tif"
    write_geotiff(feet, np.full((N, N), 16.4, np.float32), transform=T, crs=32650, nodata=-9999.0)
    with rasterio.open(feet, "r+") as ds:
        ds.units = ("ft",)
    assert run(_args(epoch, tmp_path / "out", **{"after-dsm": feet})) == EXIT_ERROR
    _one_line_error(capsys, "feet.tif", "'ft'", "metres")


def test_dsm_without_nodata(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = write_geotiff(
        tmp_path / "bare.tif", np.full((N, N), 5.0, np.float32), transform=T, crs=32650
    )
    assert run(_args(epoch, tmp_path / "out", **{"before-dsm": bare})) == EXIT_ERROR
    _one_line_error(capsys, "bare.tif", "nodata")


def test_orthophoto_whose_colour_bands_cannot_be_identified(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four bands that declare no colour interpretation or description: the band order is
    not guessed; the error names the file and the gdal_edit.py fix."""
    bare = write_geotiff(
        tmp_path / "bare.tif",
        np.full((4, N, N), 9, np.uint8),
        transform=T,
        crs=32650,
        colorinterp=(ColorInterp.undefined,) * 4,
    )
    assert run(_args(epoch, tmp_path / "out", **{"after-ortho": bare})) == EXIT_ERROR
    _one_line_error(capsys, "bare.tif", "colorinterp")


def test_epochs_that_do_not_overlap(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    far = Affine(0.1, 0.0, 600000.0, 0.0, -0.1, 4000000.0)
    other = write_geotiff(
        tmp_path / "far.tif",
        np.full((3, N, N), 9, np.uint8),
        transform=far,
        crs=32650,
        mask=np.ones((N, N), bool),
    )
    args = _args(epoch, tmp_path / "out", **{"after-ortho": other})
    assert run(args) == EXIT_ERROR
    _one_line_error(capsys, "far.tif", "does not overlap")


def test_empty_permits(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    permits = tmp_path / "permits.geojson"
    permits.write_text('{"type": "FeatureCollection", "features": []}')
    assert run(_args(epoch, tmp_path / "out", permits=permits)) == EXIT_ERROR
    _one_line_error(capsys, "permits.geojson", "no features")


def test_site_outside_the_rasters(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.geojson"
    ring = [[10.0, 10.0], [10.001, 10.0], [10.001, 10.001], [10.0, 10.001], [10.0, 10.0]]
    site.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                    }
                ],
            }
        )
    )
    assert run(_args(epoch, tmp_path / "out", site=site)) == EXIT_ERROR
    _one_line_error(capsys, "site.geojson", "outside the rasters")


def test_chunks_wider_than_a_group_run(epoch: dict[str, Path], tmp_path: Path) -> None:
    """--chunk-px above DetectParams.group_px (16384) is a group of one chunk, not an error."""
    assert run([*_args(epoch, tmp_path / "out"), "--chunk-px", "17000", "--no-coregister"]) == 0
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text(encoding="utf-8"))
    assert prov["parameters"]["chunk_px"] == 17000


def test_chunks_too_small(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([*_args(epoch, tmp_path / "out"), "--chunk-px", "10"]) == EXIT_USAGE
    _one_line_error(capsys, "--chunk-px", "10")
    assert not (tmp_path / "out" / "leads.geojson").exists()


def test_missing_required_option_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["detect", "--out", str(tmp_path)]) == EXIT_USAGE
    _one_line_error(capsys, "--before-ortho")


def test_identical_epochs_without_coregistration_give_no_lead(
    epoch: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run([*_args(epoch, out), "--no-coregister", "--chunk-px", "64"]) == 0
    assert "0 lead(s)" in capsys.readouterr().out
    data = json.loads((out / "leads.geojson").read_text(encoding="utf-8"))
    assert data == {"type": "FeatureCollection", "features": []}
    coreg = json.loads((out / "coregistration.json").read_text(encoding="utf-8"))
    assert coreg["coregistered"] is False
    assert json.loads((out / "provenance.json").read_text(encoding="utf-8"))["n_leads"] == 0


# --- epochs as OpenDroneMap project folders (--before, --after) ---------------------------------


@pytest.fixture()
def projects(tmp_path: Path) -> dict[str, Path]:
    from tests.survey._odm import write_project

    return {
        "before": write_project(tmp_path / "before_odm", building=False),
        "after": write_project(tmp_path / "after_odm", building=True),
    }


def test_epochs_from_odm_projects_find_the_building_and_are_recorded(
    projects: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The projects' orthophotos and DSMs are used: the building planted in the after DSM is
    the one lead, and provenance.json keeps each epoch's record (ODM's version)."""
    from tests.survey._odm import BUILDING_M

    out = tmp_path / "out"
    args = ["detect", "--before", str(projects["before"]), "--after", str(projects["after"])]
    assert run([*args, "--out", str(out)]) == 0
    leads = json.loads((out / "leads.geojson").read_text())["features"]
    assert [f["properties"]["class"] for f in leads] == ["new_structure"]
    props = leads[0]["properties"]
    assert props["area_m2"] == pytest.approx(100.0, rel=0.15)
    assert props["height_gain_m"] == pytest.approx(BUILDING_M, abs=0.3)
    prov = json.loads((out / "provenance.json").read_text())
    for when in ("before", "after"):
        record = prov["epochs"][when]
        assert record["source"] == "opendronemap" and record["odm_version"] == "3.5.4"
        assert record["root"] == str(projects[when])
        dsm = projects[when] / "odm_dem" / "dsm.tif"
        assert record["dsm"] == str(dsm)
        assert prov["inputs"][f"{when}_dsm"]["path"] == str(dsm.resolve())
    assert prov["before_date"] == "2025-04-15" and prov["after_date"] == "2025-10-15"


def test_a_dsm_flag_replaces_the_projects_dsm(projects: dict[str, Path], tmp_path: Path) -> None:
    """--after-dsm with --after: the given DSM (no building) is used, so there is no lead."""
    from tests.survey._odm import heights, write_heights

    flat = write_heights(tmp_path / "flat_dsm.tif", heights(False))
    out = tmp_path / "out"
    args = ["detect", "--before", str(projects["before"]), "--after", str(projects["after"])]
    assert run([*args, "--after-dsm", str(flat), "--out", str(out)]) == 0
    assert json.loads((out / "leads.geojson").read_text())["features"] == []
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["epochs"]["after"]["dsm"] == str(flat)
    assert prov["inputs"]["after_dsm"]["path"] == str(flat.resolve())


def test_an_epoch_and_files_mix(projects: dict[str, Path], tmp_path: Path) -> None:
    """--before as a project, the after epoch as files: only the project is recorded."""
    after = projects["after"]
    out = tmp_path / "out"
    args = ["detect", "--before", str(projects["before"]), "--after-ortho"]
    args += [str(after / "odm_orthophoto" / "odm_orthophoto.tif")]
    args += ["--after-dsm", str(after / "odm_dem" / "dsm.tif"), "--out", str(out)]
    assert run(args) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert list(prov["epochs"]) == ["before"]
    assert len(json.loads((out / "leads.geojson").read_text())["features"]) == 1


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--before-ortho", "ORTHO"], ("--before and --before-ortho", "give one of them")),
        (["--after-ortho", "ORTHO"], ("--after and --after-ortho", "give one of them")),
    ],
)
def test_an_epoch_and_its_orthophoto_flag_exclude_each_other(
    projects: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needles: tuple[str, ...],
) -> None:
    ortho = str(projects["before"] / "odm_orthophoto" / "odm_orthophoto.tif")
    args = ["detect", "--before", str(projects["before"]), "--after", str(projects["after"])]
    extra = [ortho if x == "ORTHO" else x for x in extra]
    assert run([*args, *extra, "--out", str(tmp_path / "out")]) == EXIT_USAGE
    _one_line_error(capsys, *needles)
    assert not (tmp_path / "out" / "leads.geojson").exists()


def test_an_epoch_without_the_dsm_the_other_has_is_one_line(
    tmp_path: Path, projects: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.survey._odm import write_project

    bare = write_project(tmp_path / "no_dsm", building=True, dsm=False)
    args = ["detect", "--before", str(projects["before"]), "--after", str(bare)]
    assert run([*args, "--out", str(tmp_path / "out")]) == EXIT_ERROR
    *warnings, error = capsys.readouterr().err.strip().splitlines()
    assert [w.split(": no DSM")[0] for w in warnings] == [f"WARNING survey.ingest.odm: {bare}"]
    assert error.startswith(f"sitewatch: error: {bare}: the after epoch has no DSM while")
    assert "--after-dsm" in error
