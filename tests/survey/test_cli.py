"""The CLI shell: version, discovery, and one-line errors for users' mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from survey import __version__
from survey.cli import EXIT_USAGE, run


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("synth", "demo"):
        assert name in out


def test_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["no-such-command"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no-such-command" in err


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from survey.cli import main; main()",
            "demo",
            "--out",
            str(blocker / "sub"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(blocker) in lines[0]
    assert blocker.read_text() == "not a folder"


def test_importing_the_run_command_leaves_the_run_function_alone() -> None:
    """``sitewatch run`` lives in ``survey/cli/run_survey.py``: a module named ``run`` would
    replace ``survey.cli.run`` (the function scripts and tests call) once imported."""
    import importlib

    import survey.cli
    from survey.cli import run

    assert run(["run", "--help"]) == 0
    importlib.import_module("survey.cli.run_survey")
    assert survey.cli.run is run and callable(survey.cli.run)
    assert "run" in survey.cli._command_names()
    assert "run-survey" not in survey.cli._command_names()
