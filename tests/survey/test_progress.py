"""Progress a person can watch: the named stages of the long commands, as they run.

Through click's ``CliRunner`` stderr is not a terminal: each stage is one line with its time,
in order, and nothing at all under ``-q``. On a terminal (a stream that says it is a tty)
each stage is a tqdm bar; the chunked work of dask is counted task by task.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
from click.testing import CliRunner, Result

from survey.cli import cli
from survey.progress import reporting, stage
from survey.synth import AFTER_DTM_NAME, EXISTING_NAME

DETECT_STAGES = [
    "open and check the inputs",
    "co-register",
    "classify",
    "vectorize and check permits",
    "write products and provenance",
]
CHECK_STAGES = [
    "open and check the inputs",
    "ground model",
    "align the atlas",
    "classify",
    "vectorize and check permits",
    "write products and provenance",
]
COREGISTER_STAGES = [
    "open the inputs",
    "co-register",
    "write the aligned rasters",
    "write the report",
]


def _invoke(args: list[str]) -> Result:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _stage_lines(command: str, stderr: str) -> list[str]:
    """The stages named on stderr by ``command``, in order, each checked to carry a time."""
    names = []
    for line in stderr.splitlines():
        if line.startswith(f"{command}: "):
            m = re.fullmatch(rf"{command}: (.+) (\d+\.\d) s", line)
            assert m is not None, line
            names.append(m[1])
    return names


@pytest.fixture(scope="module")
def detect_args(synth_site: Any) -> list[str]:
    s = synth_site
    return [
        "detect",
        "--before-ortho", str(s.before_ortho), "--before-dsm", str(s.before_dsm),
        "--after-ortho", str(s.after_ortho), "--after-dsm", str(s.after_dsm),
        "--permits", str(s.permits), "--site", str(s.site),
    ]  # fmt: skip


def test_detect_shows_one_line_per_stage_in_order(detect_args: list[str], tmp_path: Path) -> None:
    result = _invoke([*detect_args, "--out", str(tmp_path / "out")])
    assert _stage_lines("detect", result.stderr) == DETECT_STAGES
    assert "lead(s) from DSM heights" in result.stdout  # the summary is still printed


def test_detect_quiet_shows_nothing(detect_args: list[str], tmp_path: Path) -> None:
    """``sitewatch detect -q`` as ``sitewatch -q detect`` (coregister's test): no line."""
    result = _invoke([*detect_args, "--out", str(tmp_path / "out"), "-q"])
    assert (result.stdout, result.stderr) == ("", "")
    assert (tmp_path / "out" / "leads.geojson").is_file()


def test_check_shows_one_line_per_stage_in_order(synth_site: Any, tmp_path: Path) -> None:
    s = synth_site
    args = [
        "check",
        "--ortho", str(s.after_ortho), "--dsm", str(s.after_dsm),
        "--dtm", str(s.after_dsm.with_name(AFTER_DTM_NAME)), "--permits", str(s.permits),
        "--existing", str(s.root / EXISTING_NAME), "--site", str(s.site),
    ]  # fmt: skip
    result = _invoke([*args, "--out", str(tmp_path / "out")])
    assert _stage_lines("check", result.stderr) == CHECK_STAGES
    quiet = _invoke([*args, "--out", str(tmp_path / "quiet"), "-q"])
    assert (quiet.stdout, quiet.stderr) == ("", "")


def test_coregister_shows_one_line_per_stage_in_order(synth_site: Any, tmp_path: Path) -> None:
    s = synth_site
    args = ["coregister", "--reference", str(s.before_ortho), "--target", str(s.after_ortho)]
    args += ["--report", str(tmp_path / "r.json")]
    result = _invoke([*args, "--out", str(tmp_path / "o.tif")])
    assert _stage_lines("coregister", result.stderr) == COREGISTER_STAGES
    quiet = _invoke(["-q", *args, "--out", str(tmp_path / "q.tif")])
    assert _stage_lines("coregister", quiet.stderr) == []


def test_synth_shows_its_two_stages(tmp_path: Path) -> None:
    args = ["synth", "--size-m", "60", "--gsd-cm", "20"]
    result = _invoke([*args, "--out", str(tmp_path / "site")])
    assert _stage_lines("synth", result.stderr) == [
        "render the scene",
        "write the rasters and vectors",
    ]
    quiet = _invoke([*args, "--out", str(tmp_path / "quiet"), "--quiet"])
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert (tmp_path / "quiet" / "truth.json").is_file()


def test_map_and_package_show_their_stages(tmp_path: Path) -> None:
    from change_detection.leads import leads_to_feature_collection
    from tests.maps.scenes import make_scene

    scene = make_scene(tmp_path / "scene")
    leads = tmp_path / "leads.geojson"
    leads.write_text(json.dumps(leads_to_feature_collection(scene.leads)))
    epochs = ["--before-ortho", str(scene.before_ortho), "--after-ortho", str(scene.after_ortho)]
    page = tmp_path / "map" / "review.html"
    result = _invoke(["map", "--leads", str(leads), *epochs, "--out", str(page)])
    assert _stage_lines("map", result.stderr) == ["render the review map"]
    assert page.is_file()
    one = ["--lead", scene.leads[0].lead_id]
    result = _invoke(
        ["package", "--leads", str(leads), *one, *epochs, "--out", str(tmp_path / "p")]
    )
    assert _stage_lines("package", result.stderr) == ["build evidence packages"]
    assert (tmp_path / "p" / "manifest.json").is_file()


def test_a_stage_that_fails_leaves_no_line() -> None:
    out = io.StringIO()
    with reporting(quiet=False, command="x", stream=out), pytest.raises(ValueError):
        with stage("done"):
            pass
        with stage("broken"):
            raise ValueError("bad input")
    assert re.fullmatch(r"x: done \d+\.\d s\n", out.getvalue())


def test_library_calls_and_quiet_report_nothing() -> None:
    with stage("alone") as s:  # no reporting set up: a library call
        s.advance()
    out = io.StringIO()
    with reporting(quiet=True, command="x", stream=out) as reporter, stage("quiet"):
        pass
    assert out.getvalue() == "" and reporter.done == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_stage_is_a_bar_that_counts_dask_tasks() -> None:
    out = _Terminal()
    arr = da.ones((64, 64), chunks=16)  # 16 chunks
    with reporting(quiet=False, command="x", stream=out) as reporter:
        assert reporter.mode == "bar"
        with stage("classify", dask_tasks=True) as running:
            total = int((arr + 1).sum().compute(scheduler="threads"))
            bar = running._bar
        with stage("count", total=3) as counting:
            for _ in range(3):
                counting.advance()
    assert total == 64 * 64 * 2
    assert bar is not None and bar.total > 16 and bar.n == bar.total  # every task counted
    text = out.getvalue()
    assert "classify: 100%" in text and "count: 100%" in text and "3/3" in text
    assert [name for name, _ in reporter.done] == ["classify", "count"]


def test_a_stage_without_a_count_shows_its_running_time() -> None:
    out = _Terminal()
    with reporting(quiet=False, stream=out), stage("co-register"):
        np.ones(10).sum()
    assert re.search(r"co-register: 00:00", out.getvalue())
