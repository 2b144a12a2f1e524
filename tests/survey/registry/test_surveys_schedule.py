"""Surveys (registration, footprint, approval) and the schedule with its flight plans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from survey.cli import run
from survey.registry import Registry, RegistryInputError
from tests.survey.registry.conftest import DLAT, DLON, LAT0, LON0, site_polygon

SHA = "ab" * 32


def _dsm(path: Path, lon: float, lat: float) -> Path:
    """A 100 x 100 m DSM (1 m pixels, UTM 50N) whose north-west corner is at lon, lat."""
    x, y = Transformer.from_crs(4326, 32650, always_xy=True).transform(lon, lat)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=100,
        height=100,
        count=1,
        dtype="float32",
        crs="EPSG:32650",
        transform=from_origin(x, y, 1.0, 1.0),
    ) as ds:
        ds.write(np.full((1, 100, 100), 50.0, dtype="float32"))
    return path


def test_register_place_and_approve_surveys(db_url: str, tmp_path: Path) -> None:
    inside = _dsm(tmp_path / "dsm.tif", LON0 + DLON / 4, LAT0 + DLAT * 0.9)
    before = inside.read_bytes()
    with Registry.open(db_url, user="op") as reg:
        reg.add_site("A", site_polygon(), cadence_days=14)
        s1 = reg.register_survey("A", "2024-05-01", dsm=inside, evidence=[SHA], qc_verdict="pass")
        assert (s1.case, s1.dsm, s1.evidence) == (
            f"S1-20240501-{s1.survey_id}",
            str(inside),
            (SHA,),
        )
        assert reg.last_approved_survey("A") is None  # a first survey is checked, not compared
        approved = reg.approve_survey(s1.survey_id, user="chief")
        assert approved.approved and approved.approved_by == "chief"
        with pytest.raises(RegistryInputError, match="already approved by chief"):
            reg.approve_survey(s1.survey_id)
        s2 = reg.register_survey("A", "2024-05-15", qc_verdict="fail")
        with pytest.raises(RegistryInputError, match="failed its flight QC"):
            reg.approve_survey(s2.survey_id)
        last = reg.last_approved_survey("A")
        assert last is not None and last.survey_id == s1.survey_id
        assert reg.last_approved_survey("A", before="2024-05-01") is None
        s3 = reg.update_survey(
            s2.survey_id, products={"leads": "out/leads.geojson"}, evidence=[SHA]
        )
        assert s3.products == {"leads": "out/leads.geojson"} and s3.evidence == (SHA,)
        with pytest.raises(RegistryInputError, match="not a SHA-256"):
            reg.register_survey("A", "2024-06-01", evidence=["DJI_0001.JPG"])
        with pytest.raises(RegistryInputError, match="'2024-13-01' is not a date"):
            reg.register_survey("A", "2024-13-01")
    assert inside.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("dsm.tif.")]  # no .aux.xml


def test_a_survey_outside_its_site_is_refused_in_one_line(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    far = _dsm(tmp_path / "far.tif", LON0 + 0.05, LAT0 + 0.05)
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
        with pytest.raises(RegistryInputError) as info:
            reg.register_survey("A", "2024-05-01", dsm=far)
        text = str(info.value)
        assert text.startswith(f"{far}: the survey of 2024-05-01 lies outside site 'A'")
        assert "\n" not in text
        assert reg.surveys("A") == []


def test_schedule_knows_who_is_due_and_writes_plans(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Registry.open(db_url) as reg:
        reg.add_site("never", site_polygon(), risk="low")
        reg.add_site("fresh", site_polygon(), cadence_days=30)
        reg.add_site("late", site_polygon(), cadence_days=7, risk="high")
        reg.add_site("failed", site_polygon(), cadence_days=30)
        reg.register_survey("fresh", "2024-05-20")
        reg.register_survey("late", "2024-05-01")
        reg.register_survey("failed", "2024-04-01")
        reg.register_survey("failed", "2024-05-25", qc_verdict="fail")  # does not count
        due = reg.due_sites("2024-06-01")
        # never surveyed first, then the most overdue: failed was due 04-01 + 30 days
        assert [(d.name, d.overdue_days) for d in due] == [
            ("never", 0),
            ("failed", 31),
            ("late", 24),
        ]
        assert due[2].due is not None and due[2].due.isoformat() == "2024-05-08"
    out = tmp_path / "plans"
    assert (
        run(["schedule", "--date", "2024-06-01", "--out", str(out), "--db", db_url, "--json"]) == 0
    )
    planned = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in planned] == ["never", "failed", "late"]
    for p in planned:
        folder = Path(p["plan_dir"])
        assert folder.parent == out and folder.name.endswith(p["name"])
        assert (folder / "sortie-01.plan").is_file() and (folder / "mission.geojson").is_file()
        assert p["plan"]["gsd_cm"] == pytest.approx(2.0)
        plan = json.loads((folder / "sortie-01.plan").read_text())
        assert plan["fileType"] == "Plan"
    assert run(["schedule", "--date", "2024-05-21", "--db", db_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in table[1:]] == ["never", "failed", "late"]


def test_surveys_cli(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
        s = reg.register_survey("A", "2024-05-01", qc_verdict="warn")
    args = ["--db", db_url]
    assert run(["surveys", "approve", str(s.survey_id), "--user", "chief", *args]) == 0
    assert "approved by chief" in capsys.readouterr().out
    assert run(["surveys", "list", "A", "--json", *args]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["approved"], row["qc_verdict"], row["date"]) == (True, "warn", "2024-05-01")
    assert run(["surveys", "show", str(s.survey_id), *args]) == 0
    assert "approved by  chief" in capsys.readouterr().out
    assert run(["surveys", "approve", "42", *args]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("no survey 42; list a site's surveys with `sitewatch surveys list SITE`")
    )
