"""``sitewatch leads list --json`` is formatted from the stored columns and streamed in chunks:
byte for byte what ``json.dumps`` of ``LeadSummary.to_dict()`` gives, for any values."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.cli import leads as leads_cli
from survey.registry import LeadSummary

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
)
_summaries = st.builds(
    LeadSummary,
    lead_id=st.integers(min_value=1, max_value=2**40),
    site=st.text(),  # quotes, backslashes, control and CJK characters, surrogates excepted
    lead_class=st.sampled_from(leads_cli._CLASSES),
    kind=st.sampled_from(("new", "removed", "changed")),
    state=st.sampled_from(leads_cli._STATES),
    risk=st.sampled_from(("high", "medium", "low")),
    area_m2=_numbers,
    height_gain_m=st.none() | _numbers,
    last_seen=st.dates(),
    closure_proposed=st.booleans(),
)


def _reference(leads: list[LeadSummary]) -> str:
    """What ``leads list --json`` printed before it was streamed."""
    text = json.dumps([ld.to_dict() for ld in leads], ensure_ascii=False, separators=(",", ":"))
    return text + "\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(_summaries, max_size=8))
def test_json_rows_are_byte_identical_to_json_dumps(leads: list[LeadSummary]) -> None:
    assert "".join(f"[{line}]\n" for line in leads_cli._json_lines(leads)) == "".join(
        _reference([ld]) for ld in leads
    )


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 7])
def test_chunked_output_is_the_whole_list(
    n: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(leads_cli, "_JSON_CHUNK", 3)  # chunk borders at 3 and 6
    leads = [
        LeadSummary(
            i,
            "工地 “A”",
            "no_permit",
            "new",
            "new",
            "high",
            -0.0 if i % 2 else 12.345,
            None if i % 3 else 3.005,
            dt.date(2024, 5, i + 1),
            i % 2 == 0,
        )
        for i in range(n)
    ]
    leads_cli._echo_leads_json(leads)
    out = capsys.readouterr().out
    assert out == _reference(leads)
    assert len(json.loads(out)) == n
