"""Sites, versioned permits and existing buildings: files in, known answers out."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from shapely.geometry import box

from change_detection.errors import PermitError
from survey.cli import run
from survey.registry import Registry, RegistryInputError, RegistryLookupError
from survey.vectors import write_features
from tests.survey.registry.conftest import site_polygon, structure


def _permits(path: Path, versions: list[dict[str, object]]) -> Path:
    geoms = [v.pop("geometry") for v in versions]
    return write_features(path, geoms, versions)


def test_sites_from_files_keep_holes_and_nofly(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boundary = write_features(tmp_path / "site.gpkg", [site_polygon()], [{"name": "x"}])
    nofly = write_features(tmp_path / "nofly.geojson", [structure(0, 0, 30, 30)], [{}])
    args = ["--db", db_url, "--json"]
    assert (
        run(
            [
                "sites",
                "add",
                "SiMing 12",
                "--boundary",
                str(boundary),
                "--nofly",
                str(nofly),
                "--cadence-days",
                "14",
                "--risk",
                "high",
                "--team",
                "east",
                *args,
            ]
        )
        == 0
    )
    added = json.loads(capsys.readouterr().out)
    assert (added["holes"], added["nofly_zones"], added["risk"], added["team"]) == (
        1,
        1,
        "high",
        "east",
    )
    # 200 x 200 m less the 40 x 40 m hole
    assert added["area_m2"] == pytest.approx(200 * 200 - 40 * 40, rel=0.01)
    assert run(["sites", "add", "SiMing 12", "--boundary", str(boundary), *args]) == 1
    assert "already registered" in capsys.readouterr().err
    assert run(["sites", "show", "SiMing 12", *args]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["boundary"]["type"] == "Polygon" and len(shown["boundary"]["coordinates"]) == 2
    assert run(["sites", "show", "nowhere", *args]) == 1
    assert "no site named 'nowhere'" in capsys.readouterr().err


def test_sites_import_is_all_or_nothing(db_url: str, tmp_path: Path) -> None:
    good = [box(114.5 + i * 0.01, 37.0, 114.505 + i * 0.01, 37.005) for i in range(3)]
    props = [
        {"name": "s0", "cadence_days": 7, "risk": "high", "team": "a"},
        {"name": "s1", "cadence_days": 30, "risk": "low", "team": "b"},
        {"name": "s2"},
    ]
    f = write_features(tmp_path / "sites.gpkg", good, props)
    with Registry.open(db_url) as reg:
        sites = reg.import_sites(f)
        assert [(s.name, s.cadence_days, s.risk, s.team) for s in sites] == [
            ("s0", 7, "high", "a"),
            ("s1", 30, "low", "b"),
            ("s2", 30, "medium", None),
        ]
        bad = write_features(
            tmp_path / "bad.geojson",
            good[:2],
            [{"name": "t0"}, {"name": "t1", "risk": "extreme"}],
        )
        with pytest.raises(RegistryInputError, match="risk 'extreme' is not one of"):
            reg.import_sites(bad)
        again = write_features(
            tmp_path / "again.geojson", good[:2], [{"name": "t0"}, {"name": "s1"}]
        )
        with pytest.raises(RegistryInputError, match="'s1' is already registered"):
            reg.import_sites(again)
        assert [s.name for s in reg.sites()] == ["s0", "s1", "s2"]


def test_permit_versions_and_the_one_in_force(db_url: str, tmp_path: Path) -> None:
    first = _permits(
        tmp_path / "permits-2024.geojson",
        [
            {
                "geometry": structure(20, 20, 10, 8),
                "permit_id": "P-1",
                "max_height_m": 4.0,
                "floors": 1,
                "valid_from": "2024-01-01",
            },
            {
                "geometry": structure(60, 20, 10, 10),
                "permit_id": "P-2",
                "max_height_m": 9.0,
                "valid_from": "2024-01-01",
                "valid_to": "2024-12-31",
            },
        ],
    )
    amended = _permits(
        tmp_path / "permits-amended.geojson",
        [
            {
                "geometry": structure(20, 20, 10, 8),
                "permit_id": "P-1",
                "max_height_m": 4.0,
                "floors": 1,
                "valid_from": "2024-01-01",
            },
            {
                "geometry": structure(20, 20, 10, 12),
                "permit_id": "P-1",
                "max_height_m": 7.0,
                "floors": 2,
                "valid_from": "2024-06-01",
            },
        ],
    )
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
        r1 = reg.import_permits(first, "A")
        assert (r1.added, r1.unchanged) == (("P-1 from 2024-01-01", "P-2 from 2024-01-01"), 0)
        r2 = reg.import_permits(amended, "A")
        assert (r2.added, r2.unchanged) == (("P-1 from 2024-06-01",), 1)
        assert reg.import_permits(amended, "A").added == ()  # importing twice changes nothing
        may = {p.permit_id: p for p in reg.permits_at("A", "2024-05-15")}
        assert (may["P-1"].max_height_m, may["P-1"].floors) == (4.0, 1)
        assert may["P-1"].valid_to == dt.date(2024, 5, 31)  # the day before the amendment
        june = {p.permit_id: p for p in reg.permits_at("A", dt.date(2024, 6, 1))}
        assert (june["P-1"].max_height_m, june["P-1"].floors, june["P-1"].valid_to) == (
            7.0,
            2,
            None,
        )
        assert june["P-1"].geometry.area == pytest.approx(10 * 12, rel=0.01)  # in metres (UTM)
        assert set(june) == {"P-1", "P-2"}
        assert {p.permit_id for p in reg.permits_at("A", "2025-01-01")} == {"P-1"}
        assert reg.permits_at("A", "2023-12-31") == []
        assert june["P-1"].is_valid_during(dt.date(2024, 5, 1), dt.date(2024, 6, 15))


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        (
            [("2024-01-01", "2024-07-01"), ("2024-06-01", None)],
            "versions of permit P-9 overlap: P-9 from 2024-01-01 runs to 2024-07-01, but P-9 "
            "from 2024-06-01 starts on or before it",
        ),
        ([("2024-01-01", None), ("2024-01-01", "2024-03-01")], "two versions with 2024-01-01"),
        ([(None, None), (None, "2024-03-01")], "two versions with no valid_from"),
    ],
)
def test_overlapping_versions_are_refused_in_one_line(
    db_url: str,
    tmp_path: Path,
    versions: list[tuple[str | None, str | None]],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    f = _permits(
        tmp_path / "overlap.geojson",
        [
            {
                "geometry": structure(20, 20, 10, 8),
                "permit_id": "P-9",
                "valid_from": a,
                "valid_to": b,
            }
            for a, b in versions
        ],
    )
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
    assert run(["permits", "import", str(f), "--site", "A", "--db", db_url]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and str(f) in err
    with Registry.open(db_url) as reg:
        assert reg.permit_versions("A") == []


def test_a_version_overlapping_those_registered_is_refused(db_url: str, tmp_path: Path) -> None:
    a = _permits(
        tmp_path / "a.geojson",
        [
            {
                "geometry": structure(20, 20, 10, 8),
                "permit_id": "P-1",
                "valid_from": "2024-01-01",
                "valid_to": "2024-12-31",
            }
        ],
    )
    b = _permits(
        tmp_path / "b.geojson",
        [{"geometry": structure(20, 20, 10, 8), "permit_id": "P-1", "valid_from": "2024-06-01"}],
    )
    c = _permits(
        tmp_path / "c.geojson",
        [
            {
                "geometry": structure(20, 20, 12, 8),
                "permit_id": "P-1",
                "valid_from": "2024-01-01",
                "valid_to": "2024-12-31",
            }
        ],
    )
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
        reg.import_permits(a, "A")
        with pytest.raises(RegistryInputError, match="overlap"):
            reg.import_permits(b, "A")
        with pytest.raises(RegistryInputError, match="already registered .* with other content"):
            reg.import_permits(c, "A")
        with pytest.raises(RegistryLookupError):
            reg.import_permits(a, "B")
        with pytest.raises(PermitError, match="no permit_id"):
            reg.import_permits(
                write_features(tmp_path / "d.geojson", [structure(1, 1, 5, 5)], [{"floors": 2}]),
                "A",
            )
        assert len(reg.permit_versions("A")) == 1


def test_existing_buildings_layer_is_replaced_whole(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f1 = write_features(
        tmp_path / "existing.geojson",
        [structure(10, 10, 20, 10), structure(150, 20, 10, 10)],
        [{"building_id": "B-1", "height_m": 6.0, "floors": 2}, {"building_id": "B-2"}],
    )
    f2 = write_features(
        tmp_path / "existing2.geojson", [structure(10, 10, 20, 12)], [{"building_id": "B-1"}]
    )
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
    assert run(["existing", "import", str(f1), "--site", "A", "--db", db_url]) == 0
    assert "2 existing building(s)" in capsys.readouterr().out
    with Registry.open(db_url) as reg:
        b = {x.building_id: x for x in reg.existing_buildings("A")}
        assert (b["B-1"].height_m, b["B-1"].floors, b["B-2"].height_m) == (6.0, 2, None)
        assert b["B-1"].geometry.area == pytest.approx(200, rel=0.01)
        assert reg.import_existing(f2, "A") == 1
        assert [x.building_id for x in reg.existing_buildings("A")] == ["B-1"]
    assert run(["existing", "list", "--site", "A", "--db", db_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["area_m2"] == pytest.approx(240, rel=0.01)
