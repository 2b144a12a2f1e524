"""The demo runs every stage on a small synthetic site and says where everything is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from survey.cli import run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run(["demo", "--out", str(out), "--size-m", "80", "--gsd-cm", "10"])
    assert code == 0
    return out, buf.getvalue()


def test_demo_writes_site_and_plan(demo_run: tuple[Path, str]) -> None:
    out, text = demo_run
    for rel in (
        "site/before/orthophoto.tif",
        "site/after/dsm.tif",
        "site/truth.json",
        "plan/sortie-01.plan",
        "plan/summary.json",
        "plan/mission.geojson",
    ):
        assert (out / rel).is_file(), rel
    summary = json.loads((out / "plan" / "summary.json").read_text())
    assert summary["n_photos"] > 0
    assert str(out / "plan" / "sortie-01.plan") in text
    assert "synthetic site" in text and "flight plan" in text
