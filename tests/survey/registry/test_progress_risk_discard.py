"""Construction progress in the registry, a lead's risk tier changed after opening (with its
retention effect), discarding a survey whose run failed, and the registry's evidence store."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path

import pytest

from survey.cli import run
from survey.evidence import EvidenceStore
from survey.progress_stages import STAGES, ProjectProgress
from survey.registry import (
    PROGRESS_STAGES,
    Registry,
    RegistryInputError,
    RegistryLookupError,
)
from tests.survey.registry.conftest import site_polygon, structure
from tests.survey.registry.test_custody import _registry_entries
from tests.survey.registry.test_leads import detection


def _progress(permit: str, date: str, stage: str, storeys: int, **kw: object) -> ProjectProgress:
    values: dict[str, object] = {
        "permit_id": permit,
        "date": date,
        "stage": stage,
        "height_m": 3.0 * storeys + 0.4,
        "storeys": storeys,
        "permitted_floors": 3,
        "permitted_height_m": 10.0,
        "built_fraction": 0.9 if storeys else 0.0,
        "dug_fraction": 0.0,
        "outside_m2": 0.0,
        **kw,
    }
    return ProjectProgress(**values)  # type: ignore[arg-type]


def test_the_registry_spells_the_stages_of_progress_stages() -> None:
    assert PROGRESS_STAGES == STAGES


def test_progress_is_recorded_per_survey_and_read_back_by_date(db_url: str) -> None:
    with Registry.open(db_url, user="op") as reg:
        reg.add_site("A", site_polygon())
        reg.add_site("B", site_polygon())
        later = reg.register_survey("A", "2025-05-01")
        earlier = reg.register_survey("A", "2025-03-01")
        other = reg.register_survey("B", "2025-04-01")
        reg.record_progress(
            later.survey_id,
            [
                _progress(
                    "P-2",
                    "2025-05-01",
                    "top_floor",
                    4,
                    exceeds=("over_height",),
                    reasons=("construction stage of permit P-2: top floor",),
                    permit_valid_from="2025-01-01",
                    lead_ids=("abc",),
                ),
                _progress("P-1", "2025-05-01", "first_floor", 1),
            ],
        )
        reg.record_progress(earlier.survey_id, [_progress("P-2", "2025-03-01", "foundation", 0)])
        reg.record_progress(other.survey_id, [_progress("P-9", "2025-04-01", "setting_out", 0)])
        rows = reg.progress("A")
        assert [(r.survey_id, r.permit_id, r.stage, r.storeys) for r in rows] == [
            (earlier.survey_id, "P-2", "foundation", 0),
            (later.survey_id, "P-1", "first_floor", 1),
            (later.survey_id, "P-2", "top_floor", 4),
        ]
        top = rows[-1]
        assert (top.exceeds, top.lead_ids, str(top.permit_valid_from)) == (
            ("over_height",),
            ("abc",),
            "2025-01-01",
        )
        d = top.to_dict()
        assert (d["date"], d["height_m"], d["permitted_floors"], d["approved"]) == (
            "2025-05-01",
            12.4,
            3,
            False,
        )
        # what progress.json holds comes back the same (the timeline's rows)
        back = ProjectProgress.from_dict(d)
        assert (back.stage, back.storeys, back.exceeds, back.reasons) == (
            "top_floor",
            4,
            ("over_height",),
            ("construction stage of permit P-2: top floor",),
        )
        assert [r.permit_id for r in reg.progress("A", permit_id="P-2")] == ["P-2", "P-2"]
        # recording a survey again replaces its rows
        reg.record_progress(later.survey_id, [_progress("P-2", "2025-05-01", "facade", 4)])
        assert [(r.permit_id, r.stage) for r in reg.progress("A")] == [
            ("P-2", "foundation"),
            ("P-2", "facade"),
        ]


def test_bad_progress_is_one_line_and_records_nothing(db_url: str) -> None:
    with Registry.open(db_url, user="op") as reg:
        reg.add_site("A", site_polygon())
        s = reg.register_survey("A", "2025-05-01")
        with pytest.raises(RegistryInputError, match="stage 'roof' is not one of"):
            reg.record_progress(s.survey_id, [_progress("P-1", "2025-05-01", "roof", 1)])
        twice = [_progress("P-1", "2025-05-01", "first_floor", 1)] * 2
        with pytest.raises(RegistryInputError, match="permit P-1 measured twice"):
            reg.record_progress(s.survey_id, twice)
        with pytest.raises(RegistryLookupError, match="no survey 99"):
            reg.record_progress(99, twice[:1])
        with pytest.raises(RegistryLookupError, match="no site named 'Z'"):
            reg.progress("Z")
        assert reg.progress("A") == []


# ----------------------------------------------------------------------------- risk


def _site_with_two_leads(
    db_url: str, tmp_path: Path
) -> tuple[EvidenceStore, str, str, int, int, int]:
    """Site A (medium) and two surveys: lead 1 seen in both, lead 2 in the first only."""
    store_dir = tmp_path / "store"
    store = EvidenceStore.open(store_dir, create=True)
    with Registry.open(db_url, user="op") as reg:
        reg.set_evidence_store(store_dir)
        reg.add_site("A", site_polygon(), risk="medium")
        s1 = reg.register_survey("A", "2024-05-01")
        update = reg.record_leads(
            s1.survey_id,
            [detection("d1", structure(20, 20, 10, 8)), detection("d2", structure(150, 20, 8, 8))],
            reference="atlas",
        )
        first, second = update.created
        s2 = reg.register_survey("A", "2024-06-01")
        reg.record_leads(
            s2.survey_id, [detection("d3", structure(20, 20, 10, 8))], reference="atlas"
        )
        assert [ld.lead_id for ld in reg.leads()] == [first, second]
        return store, str(s1.case), str(s2.case), first, second, s2.survey_id


def test_a_leads_risk_tier_sets_the_retention_of_the_surveys_that_saw_it(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, case1, case2, first, second, _ = _site_with_two_leads(db_url, tmp_path)
    cases = store.state().cases
    assert (cases[case1].risk, cases[case2].risk) == ("medium", "medium")  # the site's tier
    with Registry.open(db_url, user="op") as reg:
        lead = reg.set_lead_risk(second, "high", reason="next to a school", user="insp")
        assert lead.risk == "high"
        last = lead.events[-1]
        assert (last.kind, last.user, last.from_state, last.to_state) == (
            "risk",
            "insp",
            "new",
            "new",
        )
        assert last.reason == "risk tier medium -> high: next to a school"
        # the case of the survey that saw lead 2 is kept for good; the other is not touched
        cases = store.state().cases
        assert (cases[case1].risk, cases[case2].risk) == ("high", "medium")
        entry = {e["seq"]: e for e in _registry_entries(store)}[last.ledger_seq]
        assert entry["command"] == "sitewatch registry lead-risk"
        assert (entry["lead"], entry["risk_from"], entry["risk"], entry["case"]) == (
            second,
            "medium",
            "high",
            case1,
        )
        # lowering lead 1 below its site keeps the site's tier on both its surveys
        reg.set_lead_risk(first, "low", user="insp")
        cases = store.state().cases
        assert (cases[case1].risk, cases[case2].risk) == ("high", "medium")
        # and lowering lead 2 again gives survey 1's case back the site's tier
        reg.set_lead_risk(second, "low", user="insp")
        assert store.state().cases[case1].risk == "medium"
        assert [ld.risk for ld in reg.leads()] == ["low", "low"]
    # through the CLI
    assert run(["leads", "set-risk", str(first), "high", "--db", db_url, "--user", "u2"]) == 0
    out = capsys.readouterr().out
    assert f"lead {first}: risk tier low -> high by u2, custody ledger entry" in out
    cases = store.state().cases
    assert (cases[case1].risk, cases[case2].risk) == ("high", "high")
    assert store.verify().ok


def test_a_bad_risk_change_is_one_line_and_changes_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _, _, first, _, _ = _site_with_two_leads(db_url, tmp_path)
    n = len(list(store.entries()))
    with Registry.open(db_url, user="op") as reg:
        with pytest.raises(RegistryInputError, match="lead 1 is already medium risk"):
            reg.set_lead_risk(first, "medium")
        with pytest.raises(RegistryInputError, match="risk tier 'extreme' is not one of"):
            reg.set_lead_risk(first, "extreme")
        with pytest.raises(RegistryLookupError, match="no lead 77"):
            reg.set_lead_risk(77, "high")
        assert [e.kind for e in reg.lead(first).events] == ["created", "observed"]
    assert run(["leads", "set-risk", "77", "high", "--db", db_url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no lead 77" in err[0]
    assert run(["leads", "set-risk", "1", "extreme", "--db", db_url]) == 2
    assert len(list(store.entries())) == n


# ----------------------------------------------------------------------------- discard


def test_a_survey_without_leads_is_discarded_with_one_ledger_entry(
    db_url: str, tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    store = EvidenceStore.open(store_dir, create=True)
    with Registry.open(db_url, user="op", store=store_dir) as reg:
        assert reg.evidence_store() is not None
        assert reg.evidence_store() is reg.evidence_store()  # opened once
        reg.add_site("A", site_polygon())
        kept = reg.register_survey("A", "2024-04-01")
        s = reg.register_survey("A", "2024-05-01")
        reg.record_progress(s.survey_id, [_progress("P-1", "2024-05-01", "foundation", 0)])
        n = len(list(store.entries()))
        gone = reg.discard_survey(s.survey_id, reason="run failed: DSM unreadable", user="insp")
        assert gone.survey_id == s.survey_id
        assert [x.survey_id for x in reg.surveys("A")] == [kept.survey_id]
        assert reg.progress("A") == []  # its progress went with it
        with pytest.raises(RegistryLookupError):
            reg.survey(s.survey_id)
    new = list(store.entries())[n:]
    # one entry (the store signs a checkpoint of the ledger after each command)
    assert [e.type for e in new if e.type != "checkpoint"] == ["derive"]
    last = next(e for e in new if e.type == "derive")
    assert last["command"] == "sitewatch registry survey-discard"
    assert last["case"] == s.case and last["operator"] == "insp"
    assert last["parameters"]["reason"] == "run failed: DSM unreadable"
    assert last["parameters"]["survey"] == s.survey_id
    assert store.verify().ok


def test_a_survey_that_leads_rest_on_is_not_discarded(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store, _, _, _first, _, s2 = _site_with_two_leads(db_url, tmp_path)
    args = ["--db", db_url, "--reason", "run failed"]
    assert run(["surveys", "discard", str(s2), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "leads were recorded from it" in err[0]
    with Registry.open(db_url, user="op") as reg:
        s3 = reg.register_survey("A", "2024-07-01")
        reg.approve_survey(s3.survey_id)
        with pytest.raises(RegistryInputError, match="leads were recorded from it"):
            reg.discard_survey(s2, reason="x")
        with pytest.raises(RegistryInputError, match="it was approved"):
            reg.discard_survey(s3.survey_id, reason="x")
        with pytest.raises(RegistryLookupError, match="no survey 99"):
            reg.discard_survey(99, reason="x")
        assert [s.survey_id for s in reg.surveys("A")] == [1, 2, 3]
        assert [len(reg.lead(i).observations) for i in (1, 2)] == [2, 1]
        s4 = reg.register_survey("A", "2024-08-01")
    assert run(["surveys", "discard", str(s4.survey_id), *args]) == 0
    assert f"survey {s4.survey_id} of A (2024-08-01) discarded" in capsys.readouterr().out
    with Registry.open(db_url) as reg:
        assert [s.survey_id for s in reg.surveys("A")] == [1, 2, 3]


def test_a_registry_without_a_store_has_no_evidence_store(sqlite_url: str) -> None:
    with Registry.open(sqlite_url) as reg:
        assert reg.evidence_store() is None


def test_db_upgrade_from_0003_adds_the_progress_table(sqlite_url: str) -> None:
    from survey.registry.engine import create_registry_engine, resolve_url
    from survey.registry.migrate import upgrade

    engine = create_registry_engine(resolve_url(sqlite_url))
    upgrade(engine, "0003")
    engine.dispose()
    con = sqlite3.connect(sqlite_url)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert "survey_progress" not in tables and "web_jobs" in tables
    assert run(["db", "upgrade", "--db", sqlite_url]) == 0
    with Registry.open(sqlite_url, create=False) as reg:
        reg.add_site("A", site_polygon())
        s = reg.register_survey("A", "2024-05-01")
        reg.record_progress(s.survey_id, [_progress("P-1", "2024-05-01", "foundation", 0)])
        assert [r.stage for r in reg.progress("A")] == ["foundation"]


# ----------------------------------------------------------------------------- start-up


def test_the_shipped_revisions_are_read_as_alembic_reads_them() -> None:
    from alembic.script import ScriptDirectory

    from survey.registry.migrate import alembic_config, head_revision, known_revisions

    script = ScriptDirectory.from_config(alembic_config())
    assert known_revisions() == [s.revision for s in reversed(list(script.walk_revisions()))]
    assert head_revision() == script.get_current_head() == "0004"


def test_reading_the_registry_imports_neither_alembic_nor_the_detection_stack(
    sqlite_url: str,
) -> None:
    """``sitewatch leads list`` and ``sites list`` start in a fraction of the time they took
    (alembic, pyproj and change_detection's scipy / xarray / rasterio stay out)."""
    import subprocess
    import sys

    Registry.open(sqlite_url).close()
    code = (
        "import sys\n"
        "from survey.cli import run\n"
        f"assert run(['leads', 'list', '--db', {sqlite_url!r}]) == 0\n"
        f"assert run(['sites', 'list', '--db', {sqlite_url!r}]) == 0\n"
        f"assert run(['leads', 'show', '99', '--db', {sqlite_url!r}]) == 1\n"  # one line
        "import change_detection\n"
        "from change_detection import Lead, DetectParams\n"
        "heavy = ('alembic', 'pyproj', 'scipy', 'xarray', 'rasterio', 'skimage', 'folium')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_change_detection_exports_every_public_name_on_first_use() -> None:
    import change_detection

    names = set(change_detection.__all__)
    assert names == set(change_detection._SUBMODULE)
    for name in sorted(names):
        value = getattr(change_detection, name)
        module = importlib.import_module(f"change_detection.{change_detection._SUBMODULE[name]}")
        assert value is getattr(module, name), name
    assert change_detection.grids.__name__ == "change_detection.grids"  # submodules too
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        change_detection.nothing  # noqa: B018
    assert names <= set(dir(change_detection))
