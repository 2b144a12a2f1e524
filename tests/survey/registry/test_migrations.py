"""The registry's database: URLs, SQLite settings, schema revisions, upgrades that keep data."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from survey.cli import run
from survey.registry import (
    NotARegistryError,
    Registry,
    RegistryVersionError,
    head_revision,
    resolve_url,
    schema_state,
)
from survey.registry.engine import create_registry_engine
from survey.registry.geometry import to_wkb
from survey.registry.migrate import known_revisions, upgrade
from survey.registry.models import (
    Base,
    ExistingBuildingRow,
    LeadEventRow,
    LeadObservationRow,
    LeadRow,
    PermitVersionRow,
    ProgressRow,
    SettingRow,
    SiteRow,
    SurveyRow,
)
from tests.survey.registry.conftest import site_polygon, structure


def test_urls_name_sqlite_files_and_postgresql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SITEWATCH_DB", raising=False)
    assert resolve_url(None).database == str(tmp_path / "sitewatch.db")
    monkeypatch.setenv("SITEWATCH_DB", "city.db")
    assert resolve_url(None).database == str(tmp_path / "city.db")
    assert resolve_url("other.db").database == str(tmp_path / "other.db")
    assert resolve_url("sqlite:///x.db").database == str(tmp_path / "x.db")
    pg = resolve_url("postgresql://bureau:secret@db.local/sitewatch")
    assert pg.drivername == "postgresql+psycopg"
    assert pg.database == "sitewatch"
    with pytest.raises(NotARegistryError, match="not mysql"):
        resolve_url("mysql://db.local/x")
    with pytest.raises(NotARegistryError, match="in-memory"):
        resolve_url("sqlite://")


def test_sqlite_is_wal_with_foreign_keys(sqlite_url: str) -> None:
    Registry.open(sqlite_url).close()
    engine = create_registry_engine(resolve_url(sqlite_url))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
    # WAL is a property of the file: a plain sqlite3 connection sees it too
    con = sqlite3.connect(sqlite_url)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


# The registry's own tables: later revisions add other packages' tables (the web platform's
# ``web_*``, on the same declarative base once survey.web is imported), which their own tests
# compare with their models.
REGISTRY_TABLES = frozenset(
    m.__tablename__
    for m in (
        SiteRow,
        PermitVersionRow,
        ExistingBuildingRow,
        SurveyRow,
        LeadRow,
        LeadObservationRow,
        LeadEventRow,
        SettingRow,
        ProgressRow,
    )
)


def _registry_object(obj: Any, name: str | None, type_: str, *_: object) -> bool:
    """Compare only the registry's tables and what belongs to them (both sides)."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in REGISTRY_TABLES


def test_new_registry_is_at_head_and_models_match_migrations(db_url: str) -> None:
    reg = Registry.open(db_url)
    try:
        state = schema_state(reg.engine)
        assert (state.status, state.revision) == ("current", head_revision())
        with reg.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _registry_object})
            diffs = compare_metadata(context, Base.metadata)
        # the models are the schema the migrations build: nothing to add, drop or alter
        assert diffs == []
        assert {t for t in Base.metadata.tables if not t.startswith("web_")} == REGISTRY_TABLES
    finally:
        reg.close()


def test_reading_a_missing_registry_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    with pytest.raises(NotARegistryError, match="no registry here"):
        Registry.open(path, create=False)
    assert not path.exists()
    assert run(["leads", "list", "--db", str(path)]) == 1
    assert not path.exists()


def test_not_a_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.db"
    path.write_text("shopping list\n" * 100)
    before = path.read_bytes()
    assert run(["sites", "list", "--db", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot be read as a database" in err and str(path) in err
    assert path.read_bytes() == before


def _rows_of_first_revision(url: str) -> None:
    """A registry as sitewatch with only revision 0001 left it: a site, a survey, a lead."""
    engine = create_registry_engine(resolve_url(url))
    upgrade(engine, "0001")
    now = dt.datetime(2024, 5, 2, 8, 0)
    shed = structure(50, 50, 10, 8)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sites (id, name, boundary, nofly, min_lon, min_lat, max_lon, max_lat,"
                " area_m2, cadence_days, risk, team, gsd_cm, boundary_source, created_at,"
                " created_by) VALUES (1, 'old site', :b, NULL, 114.5, 37.07, 114.503, 37.072,"
                " 38400, 14, 'high', 'east', 2.0, NULL, :t, 'op1')"
            ),
            {"b": to_wkb(site_polygon()), "t": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO surveys (id, site_id, date, case_id, evidence, products, approved,"
                " reference, created_at, created_by) VALUES (1, 1, :d, 'S1-20240501-1', '[]',"
                " '{}', :f, 'atlas', :t, 'op1')"
            ),
            {"d": dt.date(2024, 5, 1), "t": now, "f": False},
        )
        conn.execute(
            sa.text(
                "INSERT INTO leads (id, site_id, lead_class, kind, state, footprint, min_lon,"
                " min_lat, max_lon, max_lat, area_m2, height_gain_m, floors_added, detection_id,"
                " reasons, permit_ids, first_survey_id, last_survey_id, closure_proposed,"
                " created_at, updated_at, state_changed_at, state_changed_by) VALUES (1, 1,"
                " 'no_permit', 'new', 'under_review', :g, 0, 0, 0, 0, 80.0, 3.1, 1, 'abc',"
                " '[\"no permit\"]', '[]', 1, 1, :f, :t, :t, :t, 'insp2')"
            ),
            {"g": to_wkb(shed), "t": now, "f": False},
        )
        conn.execute(
            sa.text(
                "INSERT INTO lead_events (lead_id, at, by_user, kind, from_state, to_state)"
                " VALUES (1, :t, 'insp2', 'state', 'new', 'under_review')"
            ),
            {"t": now},
        )
    engine.dispose()


def test_db_upgrade_keeps_the_data_of_the_first_revision(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert known_revisions()[0] == "0001" and len(known_revisions()) >= 2
    _rows_of_first_revision(db_url)
    with pytest.raises(RegistryVersionError, match="sitewatch db upgrade"):
        Registry.open(db_url)
    assert run(["db", "current", "--db", db_url]) == 0
    assert "run `sitewatch db upgrade`" in capsys.readouterr().out
    assert run(["db", "upgrade", "--db", db_url]) == 0
    assert f"0001 -> {head_revision()}" in capsys.readouterr().out
    with Registry.open(db_url, create=False) as reg:
        site = reg.site("old site")
        assert (site.cadence_days, site.risk, site.team, site.holes) == (14, "high", "east", 1)
        (lead,) = reg.leads()
        # the column revision 0002 added is filled from the site, the rest is as it was
        assert (lead.lead_id, lead.state, lead.risk, lead.area_m2) == (
            1,
            "under_review",
            "high",
            80.0,
        )
        record = reg.lead(1)
        assert [(e.user, e.from_state, e.to_state) for e in record.events] == [
            ("insp2", "new", "under_review")
        ]
        assert reg.survey(1).case == "S1-20240501-1"
        # and the registry works on: the old lead moves on, with its events kept
        reg.set_lead_status(1, "confirmed", user="insp2")
        assert [e.to_state for e in reg.lead(1).events] == ["under_review", "confirmed"]
    assert run(["db", "upgrade", "--db", db_url]) == 0
    assert "already at schema" in capsys.readouterr().out


def test_upgrade_on_sqlite_does_not_cascade_into_events(sqlite_url: str) -> None:
    """Revision 0002 rebuilds the leads table on SQLite; with foreign keys on, dropping the
    old table would delete every event and observation of every lead."""
    _rows_of_first_revision(sqlite_url)
    assert run(["db", "upgrade", "--db", sqlite_url]) == 0
    con = sqlite3.connect(sqlite_url)
    assert con.execute("SELECT count(*) FROM lead_events").fetchone()[0] == 1
    con.close()


def test_a_registry_from_a_newer_sitewatch_is_refused_unchanged(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
        engine = reg.engine
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    for args in (
        ["sites", "list"],
        ["db", "upgrade"],
        ["sites", "add", "B", "--boundary", __file__],
    ):
        assert run([*args, "--db", db_url]) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert "made by a newer sitewatch (schema revision 0099" in err
    with pytest.raises(RegistryVersionError):
        Registry.open(db_url)
    engine = create_registry_engine(resolve_url(db_url))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0099"
        assert conn.execute(sa.text("SELECT name FROM sites")).scalars().all() == ["A"]
    engine.dispose()


def test_a_database_of_something_else_is_refused(sqlite_url: str) -> None:
    con = sqlite3.connect(sqlite_url)
    con.execute("CREATE TABLE recipes (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(NotARegistryError, match="not a sitewatch registry"):
        Registry.open(sqlite_url)
    assert run(["db", "upgrade", "--db", sqlite_url]) == 1
