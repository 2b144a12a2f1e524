"""Every change of a lead in the custody ledger; retention and legal holds follow the leads."""

from __future__ import annotations

from pathlib import Path

import pytest

from survey.cli import run
from survey.evidence import EvidenceStore
from survey.registry import Registry
from tests.survey.registry.conftest import site_polygon, structure
from tests.survey.registry.test_leads import detection


def _registry_entries(store: EvidenceStore) -> list[dict[str, object]]:
    return [
        {"seq": e.seq, "command": e["command"], "case": e.get("case"), **e["parameters"]}
        for e in store.entries()
        if e.type == "derive" and str(e["command"]).startswith("sitewatch registry ")
    ]


def test_lead_changes_are_ledger_entries_and_holds_follow_the_case(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    store = EvidenceStore.open(store_dir, create=True)
    photo = tmp_path / "DJI_0001.JPG"
    photo.write_bytes(b"\xff\xd8 a photo")
    assert run(["db", "set-store", str(store_dir), "--db", db_url]) == 0
    capsys.readouterr()
    with Registry.open(db_url, user="op") as reg:
        reg.add_site("A", site_polygon(), risk="low")
        reg.add_site("B", site_polygon(), risk="high")
        s1 = reg.register_survey("A", "2024-05-01", user="op")
        (item,) = store.add([photo], case=str(s1.case), operator="op")
        reg.update_survey(s1.survey_id, evidence=[item.sha256])
        update = reg.record_leads(
            s1.survey_id,
            [detection("d1", structure(20, 20, 10, 8)), detection("d2", structure(150, 20, 8, 8))],
            reference="atlas",
            user="op",
        )
        first, second = update.created
        assert store.state().cases[str(s1.case)].risk == "low"  # the site's tier
        assert not store.state().cases[str(s1.case)].hold
    # through the CLI, with the store the registry knows
    args = ["--db", db_url, "--user", "insp"]
    for state in ("under_review", "confirmed"):
        assert run(["leads", "set-status", str(first), state, *args]) == 0
    assert "custody ledger entry" in capsys.readouterr().out
    case = store.state().cases[str(s1.case)]
    assert case.hold and case.hold_reason == f"lead {first} confirmed"
    for state in ("under_review", "confirmed"):
        assert run(["leads", "set-status", str(second), state, *args]) == 0
    for state, reason in (("notice_issued", "notice 17"), ("demolished", None), ("closed", None)):
        extra = ["--reason", reason] if reason else []
        assert run(["leads", "set-status", str(first), state, *args, *extra]) == 0
    # the second lead seen in the same survey still holds its evidence
    assert store.state().cases[str(s1.case)].hold
    assert (
        run(["leads", "set-status", str(second), "dismissed", "--reason", "permit found", *args])
        == 0
    )
    assert not store.state().cases[str(s1.case)].hold

    with Registry.open(db_url) as reg:
        record = reg.lead(first)
        entries = {e["seq"]: e for e in _registry_entries(store)}
        for event in record.events:
            assert event.ledger_seq is not None
            entry = entries[event.ledger_seq]
            assert (entry["lead"], entry["from"], entry["to"]) == (
                first,
                event.from_state,
                event.to_state,
            )
            assert entry["case"] == s1.case
        assert [e.to_state for e in record.events] == [
            "new",
            "under_review",
            "confirmed",
            "notice_issued",
            "demolished",
            "closed",
        ]
        ledger = list(store.entries())
        by_seq = {e.seq: e for e in ledger}
        closing = by_seq[record.events[-1].ledger_seq]  # type: ignore[index]
        assert closing["operator"] == "insp" and closing["inputs"][0]["sha256"] == item.sha256
        # a high-risk site's survey gets the high tier
        s2 = reg.register_survey("B", "2024-05-02")
        assert store.state().cases[str(s2.case)].risk == "high"
    report = store.verify()
    assert report.ok, report.problems


def test_without_a_store_changes_stay_in_the_registry_with_one_warning(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Registry.open(db_url) as reg:
        reg.add_site("A", site_polygon())
        s = reg.register_survey("A", "2024-05-01")
        (lead_id,) = reg.record_leads(
            s.survey_id, [detection("d", structure(20, 20, 10, 8))], reference="atlas"
        ).created
        reg.set_lead_status(lead_id, "under_review")
        assert all(e.ledger_seq is None for e in reg.lead(lead_id).events)
    warnings = [r for r in caplog.records if "no evidence store is set" in r.getMessage()]
    assert len(warnings) == 1
