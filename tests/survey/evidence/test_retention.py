"""Retention: purge deletes only expired, unheld items, records each deletion, never touches
high-tier or held items; an item shared by cases lives as long as its longest-lived case."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from survey.errors import EvidenceInputError
from survey.evidence import EvidenceStore
from survey.evidence.retention import Period, add_period, parse_period
from tests.survey.evidence._helpers import T0, Clock, write_bytes


def _at(days: float = 0, months: int = 0) -> dt.datetime:
    return add_period(T0, Period(months=months)) + dt.timedelta(days=days)


def test_periods_are_calendar_durations() -> None:
    assert parse_period("P12M") == Period(months=12)
    assert parse_period("p1y6m10d") == Period(1, 6, 10)
    assert parse_period(None) is None and parse_period("permanent") is None
    jan31 = dt.datetime(2024, 1, 31, 12, tzinfo=dt.UTC)
    assert add_period(jan31, Period(months=1)) == dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC)
    assert add_period(jan31, Period(months=13)) == dt.datetime(2025, 2, 28, 12, tzinfo=dt.UTC)
    assert add_period(jan31, Period(days=1)) == dt.datetime(2024, 2, 1, 12, tzinfo=dt.UTC)
    for bad in ("12M", "P", "P1W", "P-1M", "soon"):
        with pytest.raises(EvidenceInputError, match="is not a duration"):
            parse_period(bad, tier="low")


@pytest.fixture
def filled(tmp_path: Path, clock: Clock) -> tuple[EvidenceStore, dict[str, str]]:
    """One item per situation, all added at T0."""
    store = EvidenceStore.open(tmp_path / "s", create=True, clock=clock)
    f = {
        n: write_bytes(tmp_path / f"{n}.bin", 100 + i, seed=i)
        for i, n in enumerate(["low", "medium", "high", "held", "shared", "released"])
    }
    items = {}
    items["low"] = store.add([f["low"]], case="L-1", risk="low")[0].sha256
    items["medium"] = store.add([f["medium"]], case="M-1", risk="medium")[0].sha256
    items["high"] = store.add([f["high"]], case="H-1", risk="high")[0].sha256
    items["held"] = store.add([f["held"]], case="LH-1", risk="low")[0].sha256
    store.set_case("LH-1", hold=True, reason="court order 2025-77")
    items["shared"] = store.add([f["shared"]], case="L-1")[0].sha256
    store.add([f["shared"]], case="M-1")  # also in a medium case
    items["released"] = store.add([f["released"]], case="LR-1", risk="low")[0].sha256
    store.set_case("LR-1", hold=True)
    return store, items


def _present(store: EvidenceStore, sha: str) -> bool:
    return store.object_path(sha).exists()


def test_purge_respects_tiers_holds_and_dates(
    filled: tuple[EvidenceStore, dict[str, str]], clock: Clock
) -> None:
    store, items = filled
    clock.set(_at(months=6, days=-1))  # a day before low expires: nothing
    assert store.purge().removed == ()
    clock.set(_at(months=6))  # low (6 months) expires to the second
    report = store.purge(operator="clerk")
    assert [i.sha256 for i in report.removed] == [items["low"]]
    assert not _present(store, items["low"])
    assert items["shared"] in report.kept_unexpired  # in M-1 too: 12 months
    assert items["held"] in report.kept_held and items["released"] in report.kept_held
    assert items["high"] in report.kept_permanent
    purge = [e for e in store.entries() if e.type == "purge"]
    assert len(purge) == 1
    r = purge[0].record
    assert r["sha256"] == items["low"] and r["operator"] == "clerk"
    assert r["cases"] == {
        "L-1": {
            "risk": "low",
            "added": "2025-01-15T09:30:00.000000Z",
            "expires": "2025-07-15T09:30:00.000000Z",
        }
    }
    assert r["periods"] == {"high": None, "medium": "P12M", "low": "P6M"}
    assert store.verify().ok  # a purged item is not a missing file

    store.set_case("LR-1", hold=False, reason="case closed")
    clock.set(_at(months=12))
    removed = {i.sha256 for i in store.purge().removed}
    assert removed == {items["medium"], items["shared"], items["released"]}
    clock.set(_at(months=120))
    assert store.purge().removed == ()
    for key in ("high", "held"):
        assert _present(store, items[key])
    assert store.verify().ok


def test_dry_run_deletes_and_records_nothing(
    filled: tuple[EvidenceStore, dict[str, str]], clock: Clock
) -> None:
    store, items = filled
    clock.set(_at(months=13))
    size = store.ledger_path.stat().st_size
    dry = store.purge(dry_run=True)
    assert dry.dry_run and {i.sha256 for i in dry.removed} == {
        items["low"],
        items["medium"],
        items["shared"],
    }
    assert store.ledger_path.stat().st_size == size
    assert all(_present(store, s) for s in items.values())
    real = store.purge()
    assert [i.sha256 for i in real.removed] == [i.sha256 for i in dry.removed]


def test_re_adding_restarts_the_clock_and_a_new_tier_applies(tmp_path: Path, clock: Clock) -> None:
    store = EvidenceStore.open(tmp_path / "s", create=True, clock=clock)
    f = write_bytes(tmp_path / "f.bin", 10, seed=1)
    sha = store.add([f], case="C-1", risk="low")[0].sha256
    clock.set(_at(months=5))
    store.add([f], case="C-1")  # added again: counts from now
    clock.set(_at(months=7))
    assert store.purge().removed == ()
    store.set_case("C-1", risk="high")  # raised to permanent
    clock.set(_at(months=60))
    assert store.purge().removed == ()
    store.set_case("C-1", risk="medium")
    assert [i.sha256 for i in store.purge().removed] == [sha]  # 12 months from month 5
    store.add([f], case="C-1")  # stored again after the purge
    assert _present(store, sha) and store.verify().ok


def test_configured_periods(tmp_path: Path, clock: Clock) -> None:
    store = EvidenceStore.open(
        tmp_path / "s",
        create=True,
        clock=clock,
        settings={"retention": {"keep": None, "short": "P30D"}, "default_risk": "short"},
    )
    f = write_bytes(tmp_path / "f.bin", 10, seed=1)
    g = write_bytes(tmp_path / "g.bin", 10, seed=2)
    store.add([f], case="S-1")  # default tier: short
    store.add([g], case="K-1", risk="keep")
    with pytest.raises(EvidenceInputError, match="not one of this store's tiers"):
        store.add([g], case="K-1", risk="medium")
    clock.set(T0 + dt.timedelta(days=30))
    assert [i.names for i in store.purge().removed] == [(str(f.resolve()),)]
    reopened = EvidenceStore.open(tmp_path / "s")
    assert reopened.config.retention == {"keep": None, "short": "P30D"}


def test_purge_removes_leftovers_of_killed_commands(tmp_path: Path, store: EvidenceStore) -> None:
    f = write_bytes(tmp_path / "f.bin", 10, seed=1)
    store.add([f], case="C-1", risk="high")
    orphan = store.root / "objects" / "ab" / ("ab" * 32)
    orphan.parent.mkdir()
    orphan.write_bytes(b"never recorded")
    dead = store.root / "tmp" / "12345-deadbeef"
    dead.mkdir()
    (dead / ".lock").write_bytes(b"")
    (dead / "000000.part").write_bytes(b"half a copy")
    report = store.verify()
    assert report.ok and any("no entry records it" in n for n in report.notes)
    cleaned = store.purge().cleaned
    assert set(cleaned) == {"tmp/12345-deadbeef", f"objects/ab/{'ab' * 32}"}
    assert not orphan.exists() and not dead.exists()
    assert store.verify().ok and not store.verify().notes


def test_purge_refuses_a_ledger_that_does_not_verify(
    filled: tuple[EvidenceStore, dict[str, str]], clock: Clock
) -> None:
    """An add entry deleted from the ledger would make its file look unrecorded (and the
    expiry of others could be forged): nothing is deleted on the word of a damaged ledger."""
    from survey.errors import LedgerFormatError
    from tests.survey.evidence._helpers import ledger_lines, write_ledger

    store, items = filled
    lines = ledger_lines(store.root)
    del lines[3]  # the add of the low item
    write_ledger(store.root, lines)
    clock.set(_at(months=24))
    with pytest.raises(LedgerFormatError, match="purge refused") as err:
        store.purge()
    assert "\n" not in str(err.value)
    assert all(_present(store, s) for s in items.values())
