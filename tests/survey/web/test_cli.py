"""``sitewatch users`` and ``sitewatch serve`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from survey.cli import run
from survey.evidence import EvidenceStore
from survey.registry import Registry
from survey.web.accounts import authenticate


def test_users_add_passwd_disable_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, store = tmp_path / "city.db", tmp_path / "store"
    EvidenceStore.open(store, create=True)
    args = ["--db", str(db), "--store", str(store)]
    assert run(["users", "add", "li.wei", "--role", "analyst", "--generate", *args, "--json"]) == 0
    password = json.loads(capsys.readouterr().out)["password"]
    with Registry.open(db, create=False) as reg:
        assert authenticate(reg.engine, "li.wei", password, client="t") is not None
    assert run(["users", "add", "li.wei", "--role", "admin", "--generate", *args]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "exists already" in err
    assert run(["users", "add", "x", "--role", "boss", "--generate", *args]) == 2
    capsys.readouterr()
    assert run(["users", "passwd", "li.wei", "--generate", *args]) == 0
    new = capsys.readouterr().out.strip().rsplit(" ", 1)[1]
    assert run(["users", "disable", "li.wei", *args]) == 0
    assert capsys.readouterr().out == "li.wei disabled\n"
    with Registry.open(db, create=False) as reg:
        assert authenticate(reg.engine, "li.wei", new, client="t") is None
    assert run(["users", "list", "--db", str(db), "--json"]) == 0
    (user,) = json.loads(capsys.readouterr().out)
    assert (user["username"], user["role"], user["disabled"]) == ("li.wei", "analyst", True)
    # every change is in the custody ledger, with who made it
    ledger = [json.loads(x) for x in (store / "ledger.jsonl").read_text().splitlines()]
    commands = [e.get("command") for e in ledger if e.get("command", "").startswith("sitewatch")]
    assert commands == [
        "sitewatch registry web-user-add",
        "sitewatch registry web-password",
        "sitewatch registry web-user-update",
    ]


def test_serve_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--db", "--store", "--host", "--port", "--demo", "--worker", "--redis"):
        assert flag in out


def test_serve_with_redis_names_the_missing_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The redis package is optional: ``--redis`` without it is one line naming it, and
    neither the server nor a worker starts."""
    pytest.importorskip("huey")
    try:
        import redis  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the redis package is installed here")
    db = tmp_path / "city.db"
    for extra in (["--no-worker"], ["--worker"]):
        args = ["serve", "--db", str(db), "--data", str(tmp_path / "web"), *extra]
        assert run([*args, "--redis", "redis://127.0.0.1:6379/0"]) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err, err
        assert (
            "--redis redis://127.0.0.1:6379/0" in err and "pip install 'sitewatch[redis]'" in err
        ), err


def test_serve_hands_its_dask_scheduler_to_the_job_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve --scheduler ADDRESS`` puts the address in the worker's environment (as the
    other settings), and the worker started with that environment reads it back."""
    from survey.cli.serve import _config

    assert run(["serve", "--help"]) == 0
    assert "--scheduler ADDRESS" in capsys.readouterr().out
    monkeypatch.delenv("SITEWATCH_SCHEDULER", raising=False)
    db, data = str(tmp_path / "city.db"), tmp_path / "web"
    server = _config(db, None, data, None, 4096, False, True, "tcp://10.0.0.5:8786")
    assert server.scheduler == "tcp://10.0.0.5:8786"
    env = server.environment()
    assert env["SITEWATCH_SCHEDULER"] == "tcp://10.0.0.5:8786"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    worker = _config(db, None, data, None, 4096, False)
    assert worker.scheduler == "tcp://10.0.0.5:8786"
    monkeypatch.delenv("SITEWATCH_SCHEDULER")
    assert _config(db, None, data, None, 4096, False).scheduler is None
    assert "SITEWATCH_SCHEDULER" not in _config(db, None, data, None, 4096, False).environment()
