"""``sitewatch evidence``: the commands, their exit codes and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from survey.cli import run
from survey.evidence import EvidenceStore
from tests.survey.evidence._helpers import ledger_lines, sha256_of, write_bytes, write_ledger


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def flight(tmp_path: Path) -> Path:
    card = tmp_path / "card"
    for i in range(3):
        write_bytes(card / f"DJI_{i:04d}.JPG", 1000 + i, seed=i)
    write_bytes(card / "logs" / "flight.tlog", 500, seed=9)
    return card


def test_add_log_verify_round_trip(
    tmp_path: Path, flight: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    args = [
        "evidence",
        "add",
        "--store",
        str(store),
        "--case",
        "2024-017",
        "--risk",
        "medium",
        "--operator",
        "op7",
        "--site",
        "XM-04",
        "--source-root",
        str(flight),
        str(flight),
    ]
    assert run(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("4 file(s), 4 new, 3503 bytes, case 2024-017; ledger entries 3..6")
    assert out[0] == f"stored   {sha256_of(flight / 'DJI_0000.JPG')}  DJI_0000.JPG"

    assert run(["evidence", "log", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and "case 2024-017: tier medium; created" in lines[2]
    assert "logs/flight.tlog by op7" in lines[6]

    assert run(["evidence", "log", str(store), "--case", "2024-017", "--json"]) == 0
    entries = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in entries] == ["case", "add", "add", "add", "add"]

    assert run(["evidence", "verify", str(store)]) == 0
    assert capsys.readouterr().out.strip() == (
        "ok: 8 ledger entries, 4 stored file(s), signed head at 7 entries"
    )
    assert run(["evidence", "verify", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_verify_exits_1_with_one_line_per_problem(
    tmp_path: Path, flight: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert run(["evidence", "add", "--store", str(store), "--case", "C-1", str(flight)]) == 0
    capsys.readouterr()
    s = EvidenceStore.open(store)
    victim = s.object_path(sha256_of(flight / "DJI_0001.JPG"))
    os.chmod(victim, 0o644)
    victim.write_bytes(b"edited")
    gone = s.object_path(sha256_of(flight / "DJI_0002.JPG"))
    gone.unlink()
    lines = ledger_lines(store)
    del lines[2]  # the case entry
    write_ledger(store, lines)
    assert run(["evidence", "verify", str(store)]) == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert all(line.startswith("PROBLEM: ") for line in out)
    assert "PROBLEM: entry 2 missing from the ledger (deleted)" in out
    assert captured.err.strip().endswith(f"{store}: {len(out)} problem(s), listed above")
    assert any(victim.name in x and "modified" in x for x in out)
    assert any(gone.name in x and "missing (stored by entry" in x for x in out)


def test_purge_hold_release_case_export_trace_head_key(
    tmp_path: Path, flight: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert (
        run(
            [
                "evidence",
                "init",
                str(store),
                "--retention",
                "high=permanent",
                "--retention",
                "low=P0D",
                "--default-risk",
                "low",
            ]
        )
        == 0
    )
    assert "tiers high permanent, low P0D" in capsys.readouterr().out
    assert run(["evidence", "add", "--store", str(store), "--case", "C-1", str(flight)]) == 0
    assert run(["evidence", "hold", "--store", str(store), "C-1", "--reason", "order 9"]) == 0
    assert "on legal hold (order 9)" in capsys.readouterr().out.splitlines()[-1]
    assert run(["evidence", "purge", "--store", str(store), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == (
        "0 item(s) would delete (0 bytes); kept 4 on hold, 0 permanent, 0 not yet expired"
    )
    assert run(["evidence", "release", "--store", str(store), "C-1"]) == 0
    capsys.readouterr()
    assert run(["evidence", "purge", "--store", str(store), "--dry-run"]) == 0
    assert "4 item(s) would delete" in capsys.readouterr().out
    assert run(["evidence", "case", "--store", str(store), "C-1", "--risk", "high"]) == 0
    assert "tier high, kept permanent" in capsys.readouterr().out
    assert run(["evidence", "purge", "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == []
    out = tmp_path / "disc"
    assert (
        run(["evidence", "export", "--store", str(store), "--case", "C-1", "--out", str(out)]) == 0
    )
    assert "exported case C-1: 4 file(s)" in capsys.readouterr().out
    sha = sha256_of(flight / "DJI_0000.JPG")
    assert run(["evidence", "trace", str(store), sha]) == 0
    assert "DJI_0000.JPG" in capsys.readouterr().out
    assert run(["evidence", "head", str(store)]) == 0
    head = json.loads(capsys.readouterr().out)
    assert head == EvidenceStore.open(store).signed_head()
    assert run(["evidence", "key", str(store)]) == 0
    assert capsys.readouterr().out.startswith("-----BEGIN PUBLIC KEY-----")
    assert run(["evidence", "verify", str(store), "--head", str(out / "head.json")]) == 0
    assert "consistent" in capsys.readouterr().out


def test_hostile_input_gets_one_line(
    tmp_path: Path, flight: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert run(["evidence", "add", "--store", str(flight), "--case", "C-1", str(flight)]) == 1
    assert "not an evidence store (no sitewatch-store.json)" in _one_error_line(capsys)
    assert run(["evidence", "verify", str(tmp_path / "nothing")]) == 1
    assert "no such folder, not an evidence store" in _one_error_line(capsys)
    for case in ("../up", "a/b", "x..y"):
        assert run(["evidence", "add", "--store", str(store), "--case", case, str(flight)]) == 1
        assert f"case id {case!r}" in _one_error_line(capsys)
    assert run(["evidence", "add", "--store", str(store), "--case", "C-1", str(flight)]) == 0
    capsys.readouterr()
    lines = ledger_lines(store)
    lines[2] = b"\x00\xffnot json at all\n"
    write_ledger(store, lines)
    assert run(["evidence", "log", str(store)]) == 1
    assert "ledger.jsonl line 3: not JSON" in _one_error_line(capsys)
    assert run(["evidence", "add", "--store", str(store), "--case", "C-1", str(flight)]) == 1
    assert "line 3: not JSON" in _one_error_line(capsys)
    assert (
        run(
            [
                "evidence",
                "add",
                "--store",
                str(store),
                "--case",
                "C-1",
                "--risk",
                "urgent",
                str(flight),
            ]
        )
        == 1
    )
    assert "risk tier 'urgent' is not one of this store's tiers" in _one_error_line(capsys)
    assert run(["evidence", "trace", str(store), "xyz"]) == 1
    assert "not a SHA-256" in _one_error_line(capsys)
    assert run(["evidence", "init", str(flight)]) == 1
    assert "exists and is not an empty folder" in _one_error_line(capsys)
    head = tmp_path / "head.json"
    head.write_text("[1, 2]")
    assert run(["evidence", "verify", str(store), "--head", str(head)]) == 1
    assert "not a signed head" in _one_error_line(capsys)
