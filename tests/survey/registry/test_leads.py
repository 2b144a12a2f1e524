"""Leads through the registry: repeat-lead matching over several surveys, lists, statements."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry

from change_detection.leads import Lead
from survey.cli import run
from survey.registry import Registry, RegistryInputError, RegistryLookupError
from tests.survey.registry.conftest import site_polygon, structure

USER = "op"


def detection(
    lead_id: str,
    geom: BaseGeometry,
    *,
    lead_class: str = "no_permit",
    kind: str = "new",
    height: float | None = 3.0,
    floors: int | None = 1,
    area: float = 0.0,
) -> Lead:
    return Lead(
        lead_id=lead_id,
        lead_class=lead_class,
        geometry=geom,
        reasons=(f"{lead_class} {lead_id}",),
        area_m2=area,
        height_gain_m=height,
        floors_added=floors,
        score=0.8,
        kind=kind,
    )


def survey_with(
    reg: Registry,
    date: str,
    leads: Sequence[Lead],
    *,
    reference: str = "atlas",
    reference_survey_id: int | None = None,
    site: str = "A",
) -> tuple[int, dict[str, int], tuple[int, ...], tuple[int, ...]]:
    s = reg.register_survey(site, date, footprint=site_polygon(), user=USER)
    u = reg.record_leads(
        s.survey_id,
        leads,
        reference=reference,
        reference_survey_id=reference_survey_id,
        user=USER,
    )
    return s.survey_id, dict(u.by_detection), u.proposed_closure, u.reopened


def one_lead_registry(url: str) -> tuple[Registry, int]:
    """A registry with site A and one new lead (a 10 x 8 m shed) from a first survey."""
    reg = Registry.open(url, user=USER)
    reg.add_site("A", site_polygon(), risk="high", cadence_days=14, team="east")
    _, ids, _, _ = survey_with(reg, "2024-05-01", [detection("d1", structure(20, 20, 10, 8))])
    return reg, ids["d1"]


def test_a_season_of_repeat_leads(db_url: str) -> None:
    """Four surveys of one site: a shed that stays and grows, a container that goes, a pile
    dismissed that grows again, a structure rebuilt after its lead was closed."""
    with Registry.open(db_url, user=USER) as reg:
        reg.add_site("A", site_polygon(), risk="medium")
        shed, container, pile = (
            structure(20, 20, 10, 8),
            structure(120, 30, 6, 3),
            structure(30, 140, 8, 8),
        )
        s1, ids1, gone1, _ = survey_with(
            reg,
            "2024-05-01",
            [detection("a1", shed), detection("b1", container), detection("c1", pile)],
        )
        shed_id, container_id, pile_id = ids1["a1"], ids1["b1"], ids1["c1"]
        assert (shed_id, container_id, pile_id) == (1, 2, 3) and gone1 == ()
        reg.set_lead_status(pile_id, "under_review", user="insp")
        reg.set_lead_status(pile_id, "dismissed", reason="material pile, temporary", user="insp")
        reg.set_lead_status(shed_id, "under_review", user="insp")
        reg.set_lead_status(shed_id, "confirmed", user="insp")

        # survey 2 (first-survey check again): the shed moved 0.6 m (re-registration), the
        # container is gone, the pile is the same size
        s2, ids2, gone2, reopened2 = survey_with(
            reg,
            "2024-05-15",
            [
                detection("a2", structure(20.6, 20, 10, 8)),
                detection("c2", structure(30, 140, 8, 8.5)),
            ],
        )
        assert ids2 == {"a2": shed_id, "c2": pile_id}
        assert gone2 == (container_id,) and reopened2 == ()
        assert reg.lead(pile_id).state == "dismissed"
        assert reg.lead(container_id).closure_proposed
        assert reg.lead(shed_id).state == "confirmed"  # seen again: state untouched

        # survey 3: the pile doubled; a new structure appears
        s3, ids3, gone3, reopened3 = survey_with(
            reg,
            "2024-06-01",
            [
                detection("a3", shed),
                detection("c3", structure(30, 140, 16, 8)),
                detection("e3", structure(150, 150, 12, 12), lead_class="over_height"),
            ],
        )
        assert ids3["a3"] == shed_id and ids3["c3"] == pile_id and ids3["e3"] == 4
        assert reopened3 == (pile_id,) and gone3 == (container_id,)  # still gone
        proposals = [e for e in reg.lead(container_id).events if e.kind == "closure_proposed"]
        assert len(proposals) == 1  # proposed once, not again at every survey
        pile = reg.lead(pile_id)
        assert pile.state == "under_review"
        assert pile.events[-1].reason is not None and "it grew" in pile.events[-1].reason
        # the union of what was seen: 16 x 8 m now, and the 8 x 0.5 m strip of survey 2
        assert pile.area_m2 == pytest.approx(16 * 8 + 8 * 0.5, rel=0.01)

        # the container's closure is taken; the same spot gets built on again in survey 4
        reg.set_lead_status(container_id, "closed", reason="container removed", user="insp")
        s4, ids4, _, _ = survey_with(
            reg,
            "2024-06-15",
            [
                detection("a4", shed),
                detection("c4", structure(30, 140, 16, 8)),
                detection("e4", structure(150, 150, 12, 12)),
                detection("b4", structure(120, 30, 6, 3)),
            ],
        )
        rebuilt = ids4["b4"]
        assert rebuilt == 5 and reg.lead(rebuilt).previous_lead_id == container_id
        assert reg.lead(container_id).state == "closed"

        shed_record = reg.lead(shed_id)
        assert [o.survey_id for o in shed_record.observations] == [s1, s2, s3, s4]
        assert [o.detection_id for o in shed_record.observations] == ["a1", "a2", "a3", "a4"]
        assert shed_record.first_survey_id == s1 and shed_record.last_survey_id == s4
        assert len(reg.leads()) == 5
        assert [ld.lead_id for ld in reg.leads(state="under_review")] == [pile_id]
        assert [ld.lead_id for ld in reg.leads(lead_class="over_height")] == [4]
        assert [s.leads for s in reg.surveys("A")] == [3, 2, 3, 4]  # the container unseen in 2


def test_a_removal_against_the_last_approved_survey_proposes_closure(db_url: str) -> None:
    reg, lead_id = one_lead_registry(db_url)
    with reg:
        first = reg.surveys("A")[0]
        reg.approve_survey(first.survey_id, user="chief")
        assert reg.last_approved_survey("A") is not None
        s2, ids, gone, _ = survey_with(
            reg,
            "2024-05-20",
            [
                detection(
                    "r2",
                    structure(20, 20, 10, 8),
                    lead_class="demolished",
                    kind="removed",
                    height=-3.0,
                )
            ],
            reference="survey",
            reference_survey_id=first.survey_id,
        )
        assert gone == (lead_id,) and ids == {}
        record = reg.lead(lead_id)
        assert record.closure_proposed and record.closure_survey_id == s2
        assert record.events[-1].kind == "closure_proposed"
        assert "removal r2" in (record.events[-1].reason or "")
        assert [ld.closure_proposed for ld in reg.leads()] == [True]


def test_bad_leads_input_changes_nothing(db_url: str) -> None:
    reg, lead_id = one_lead_registry(db_url)
    with reg:
        s = reg.register_survey("A", "2024-06-01", user=USER)
        far = detection("far", structure(5000, 5000, 10, 10))
        with pytest.raises(RegistryInputError, match="lies outside site 'A'"):
            reg.record_leads(
                s.survey_id, [detection("ok", structure(20, 20, 10, 8)), far], reference="atlas"
            )
        assert reg.lead(lead_id).last_survey_id != s.survey_id
        assert reg.survey(s.survey_id).reference is None
        reg.record_leads(s.survey_id, [], reference="atlas")
        with pytest.raises(RegistryInputError, match="already has its leads recorded"):
            reg.record_leads(s.survey_id, [], reference="atlas")
        with pytest.raises(RegistryLookupError, match="no survey 77"):
            reg.record_leads(77, [], reference="atlas")
        mid = reg.register_survey("A", "2024-06-10", user=USER)
        later = reg.register_survey("A", "2024-07-01", user=USER)
        with pytest.raises(RegistryInputError, match="not earlier"):
            reg.record_leads(
                mid.survey_id, [], reference="survey", reference_survey_id=later.survey_id
            )
        with pytest.raises(RegistryLookupError, match="no site named 'B'"):
            reg.leads(site="B")
        with pytest.raises(RegistryInputError, match="not a lead state"):
            reg.leads(state="open")


def _statements(reg: Registry, fn: object) -> list[str]:
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    sa.event.listen(reg.engine, "before_cursor_execute", count)
    try:
        fn()  # type: ignore[operator]
    finally:
        sa.event.remove(reg.engine, "before_cursor_execute", count)
    return [s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]


def test_leads_list_is_one_statement_whatever_the_number_of_leads(db_url: str) -> None:
    with Registry.open(db_url, user=USER) as reg:
        reg.add_site("A", site_polygon())
        few = [detection(f"f{i}", structure(10 + 20 * i, 10, 8, 8)) for i in range(3)]
        survey_with(reg, "2024-05-01", few)
        small = _statements(reg, lambda: reg.leads())
        many = [
            detection(f"m{i}", structure(10 + 18 * (i % 9), 130 + 18 * (i // 9), 8, 8))
            for i in range(36)
        ]
        survey_with(reg, "2024-05-02", many)
        assert len(reg.leads()) == 39
        large = _statements(reg, lambda: reg.leads())
        assert len(small) == len(large) == 1
        by_site = _statements(reg, lambda: reg.leads(site="A", state="new"))
        assert len(by_site) == 2  # the site's id, then the list
        assert len(_statements(reg, lambda: reg.due_sites("2024-06-01"))) == 1


def test_cli_lists_and_shows_leads(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    reg, lead_id = one_lead_registry(db_url)
    reg.close()
    assert run(["leads", "list", "--db", db_url, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["lead_id"] == lead_id and row["state"] == "new" and row["site"] == "A"
    assert row["last_seen"] == "2024-05-01" and row["class"] == "no_permit"
    assert run(["leads", "list", "--db", db_url, "--state", "closed"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[1:] == []
    assert (
        run(
            ["leads", "set-status", str(lead_id), "under_review", "--db", db_url, "--user", "insp9"]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == f"lead {lead_id}: new -> under_review by insp9"
    assert run(["leads", "show", str(lead_id), "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "no_permit (new), under_review" in out and "insp9  new -> under_review" in out
    assert run(["leads", "show", str(lead_id), "--db", db_url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["geometry"]["type"] == "Polygon" and shown["cases"] == ["S1-20240501-1"]
    assert [e["to"] for e in shown["events"]] == ["new", "under_review"]
    assert dt.date.fromisoformat(shown["observations"][0]["date"]) == dt.date(2024, 5, 1)
