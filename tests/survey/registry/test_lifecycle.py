"""The lead lifecycle: every pair of states, known answers; refusals change nothing."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from survey.cli import run
from survey.registry import (
    LEAD_STATES,
    LeadTransitionError,
    Registry,
    RegistryLookupError,
    check_transition,
)
from tests.survey.registry.test_leads import one_lead_registry

# The legal changes, written out once more by hand (the lifecycle's documentation).
LEGAL = {
    ("new", "under_review"),
    ("new", "closed"),
    ("under_review", "confirmed"),
    ("under_review", "dismissed"),
    ("confirmed", "notice_issued"),
    ("confirmed", "dismissed"),
    ("notice_issued", "rectified"),
    ("notice_issued", "demolished"),
    ("notice_issued", "dismissed"),
    ("rectified", "closed"),
    ("demolished", "closed"),
    ("dismissed", "under_review"),
    ("dismissed", "closed"),
}


@pytest.mark.parametrize("pair", list(itertools.product(LEAD_STATES, LEAD_STATES)), ids=str)
def test_every_pair_of_states(pair: tuple[str, str]) -> None:
    current, target = pair
    if pair in LEGAL:
        check_transition(1, current, target, "a reason")
    else:
        with pytest.raises(LeadTransitionError):
            check_transition(1, current, target, "a reason")


def test_closed_is_final_and_says_so() -> None:
    with pytest.raises(LeadTransitionError, match="closed, which is final"):
        check_transition(4, "closed", "under_review", "it is back")


@pytest.mark.parametrize(
    "pair",
    [
        ("under_review", "dismissed"),
        ("confirmed", "dismissed"),
        ("notice_issued", "dismissed"),
        ("dismissed", "under_review"),
        ("new", "closed"),
    ],
)
def test_reasons_are_required_where_documented(pair: tuple[str, str]) -> None:
    with pytest.raises(LeadTransitionError, match="needs a reason"):
        check_transition(1, pair[0], pair[1], "  ")
    check_transition(1, pair[0], pair[1], "permit produced on appeal")


def test_a_whole_case_and_the_illegal_step_after_it(db_url: str) -> None:
    reg, lead_id = one_lead_registry(db_url)
    with reg:
        steps = [
            ("under_review", None, "insp1"),
            ("confirmed", None, "insp1"),
            ("notice_issued", "notice 2024-117", "chief"),
            ("demolished", None, "insp2"),
            ("closed", None, "chief"),
        ]
        for state, reason, user in steps:
            reg.set_lead_status(lead_id, state, reason=reason, user=user)
        record = reg.lead(lead_id)
        assert record.state == "closed"
        changes = [(e.from_state, e.to_state, e.user, e.reason) for e in record.events]
        assert changes == [
            (None, "new", "op", None),
            ("new", "under_review", "insp1", None),
            ("under_review", "confirmed", "insp1", None),
            ("confirmed", "notice_issued", "chief", "notice 2024-117"),
            ("notice_issued", "demolished", "insp2", None),
            ("demolished", "closed", "chief", None),
        ]
        times = [e.at for e in record.events]
        assert times == sorted(times)
        with pytest.raises(LeadTransitionError, match="closed, which is final"):
            reg.set_lead_status(lead_id, "under_review", reason="seen again", user="insp1")
        after = reg.lead(lead_id)
        assert after.state == "closed" and after.events == record.events
        assert after.state_changed_by == "chief"


def test_cli_refuses_an_illegal_change_in_one_line(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, lead_id = one_lead_registry(db_url)
    reg.close()
    args = ["--db", db_url, "--user", "insp1"]
    assert run(["leads", "set-status", str(lead_id), "confirmed", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"sitewatch: error: lead {lead_id} is new, which can become closed or under_review, "
        "not confirmed"
    )
    assert run(["leads", "set-status", str(lead_id), "under_review", *args]) == 0
    assert run(["leads", "set-status", str(lead_id), "dismissed", *args]) == 1
    assert "needs a reason" in capsys.readouterr().err
    assert run(["leads", "set-status", "999", "dismissed", *args]) == 1
    assert "no lead 999" in capsys.readouterr().err
    with Registry.open(db_url) as reg2:
        assert reg2.lead(lead_id).state == "under_review"
        assert len(reg2.lead(lead_id).events) == 2
        with pytest.raises(RegistryLookupError):
            reg2.set_lead_status(999, "closed", reason="x")


def test_cli_choices_are_the_library_states_and_classes() -> None:
    """``leads`` spells its choices out (so ``--help`` imports no database code); they are the
    lifecycle's states and detection's classes, in order."""
    from change_detection.leads import LEAD_CLASSES
    from survey.cli import leads as leads_cli
    from survey.registry import leads as registry_leads

    assert leads_cli._STATES == LEAD_STATES
    assert leads_cli._CLASSES == registry_leads.LEAD_CLASSES == LEAD_CLASSES


def test_reading_the_registry_does_not_import_the_detection_stack() -> None:
    """``sitewatch leads list`` starts in a third of the time when opening the registry does
    not import change_detection (scipy, scikit-image, xarray), rasterio or the planner."""
    code = (
        "import sys, survey.registry, survey.cli.leads, survey.cli.sites, survey.cli.db;"
        "print(sorted(m for m in ('change_detection', 'scipy', 'skimage', 'xarray', 'rasterio',"
        " 'flightplans', 'pyogrio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
