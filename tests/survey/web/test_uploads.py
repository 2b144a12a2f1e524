"""Uploads: hostile files refused in one line with nothing kept; a job runs to a registered
survey; a job killed mid-run leaves the registry and the store consistent."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from survey.evidence import EvidenceStore
from survey.registry import Registry
from survey.web.jobs import create_job, job_row, recover_interrupted
from survey.web.uploads import tiny_jpeg
from tests.survey.web.conftest import PlatformEnv, flight_files, form_token, snapshot


def _upload(env: PlatformEnv, files: list[Any], kind: str = "flight") -> Any:
    client = env.client("operator")
    data = {"site": "Demo site", "date": "2025-11-03", "kind": kind}
    data["csrf_token"] = form_token(client, "/upload")
    return client.post("/upload", data=data, files=files, follow_redirects=False)


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "kind", "message"),
    [
        (flight_files(log=b"<html>not a log</html>" * 3), "flight", "not a .tlog flight log"),
        ([("log", ("notes.txt", b"x" * 20, "text/plain"))], "flight", "not a flight log"),
        (flight_files(photo=b"MZ\x90\x00 not an image" * 10), "flight", "not a readable image"),
        ([("odm", ("odm.zip", _zip({"../../evil.sh": b"rm -rf /"}), "application/zip"))],
         "odm", "points outside the archive"),
        ([("odm", ("odm.zip", _zip({"/etc/passwd": b"x"}), "application/zip"))],
         "odm", "points outside the archive"),
        ([("odm", ("odm.zip", b"PK\x03\x04 broken", "application/zip"))], "odm", "not a zip"),
    ],
)  # fmt: skip
def test_hostile_uploads_are_refused_and_keep_nothing(
    platform_env: PlatformEnv, files: list[Any], kind: str, message: str
) -> None:
    env = platform_env
    jobs = env.root / "web" / "jobs"
    kept = sorted(jobs.iterdir())
    before = snapshot(env.engine, env.root / "store")
    r = _upload(env, files, kind)
    assert r.status_code == 400
    assert message in r.text, r.text
    assert sorted(jobs.iterdir()) == kept
    assert snapshot(env.engine, env.root / "store") == before


def test_an_oversized_upload_is_refused_before_it_is_read(
    platform_env: PlatformEnv, demo_template: Any
) -> None:
    from fastapi.testclient import TestClient

    from survey.web import create_app
    from tests.survey.web.conftest import config_for

    app = create_app(config_for(platform_env.root, max_upload_bytes=64 * 1024))
    client = TestClient(app, base_url="https://testserver")
    client.cookies.set("sitewatch_session", demo_template.cookies["operator"])
    big = tiny_jpeg() + bytes(100 * 1024)
    data = {"site": "Demo site", "date": "2025-11-03", "csrf_token": form_token(client, "/upload")}
    r = client.post("/upload", data=data, files=flight_files(photo=big))
    assert r.status_code == 413 and "larger than this server takes" in r.text
    app.state.platform.engine.dispose()


def test_an_upload_runs_as_a_job_and_registers_the_survey(platform_env: PlatformEnv) -> None:
    env = platform_env
    r = _upload(env, flight_files())
    assert r.status_code == 303
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    status = env.client("operator").get(f"/jobs/{job_id}/status").json()
    assert status["status"] == "done" and status["progress"] == 1.0, status["message"]
    with Registry.open(env.root / "sitewatch.db", create=False) as reg:
        survey = reg.survey(status["survey_id"])
    assert (survey.site, survey.date.isoformat(), survey.case) == (
        "Demo site",
        "2025-11-03",
        f"web-job-{job_id}",
    )
    assert len(survey.evidence) == 3  # the log and two photos, in the store
    page = env.client("operator").get(f"/jobs/{job_id}").text
    assert 'id="job-result"' in page


_KILLABLE = """
import sys
from survey.web.jobs import execute_job
execute_job(int(sys.argv[1]), db=sys.argv[2], store=sys.argv[3], data_dir=sys.argv[4],
            pipeline="register")
"""


@pytest.mark.slow  # about 25 s on 2 busy cores: 72 MiB of photos copied into the store twice
def test_a_job_killed_mid_run_leaves_registry_and_store_consistent(
    platform_env: PlatformEnv,
) -> None:
    env = platform_env
    folder = env.root / "web" / "jobs" / "big"
    (folder / "log").mkdir(parents=True)
    (folder / "images").mkdir()
    (folder / "log" / "flight.tlog").write_bytes(bytes(8) + b"\xfd" + bytes(100))
    # photos big enough that the copy into the store is still running when the kill comes
    for i in range(3):
        (folder / "images" / f"P{i}.JPG").write_bytes(tiny_jpeg() + os.urandom(24 * 1024**2))
    job_id = create_job(
        env.engine, user_id=1, site="Demo site", date=__import__("datetime").date(2025, 11, 4),
        kind="flight", folder=folder,
    )  # fmt: skip
    db, store = str(env.root / "sitewatch.db"), str(env.root / "store")
    args = [sys.executable, "-c", _KILLABLE, str(job_id), db, store, str(env.root / "web")]
    proc = subprocess.Popen(args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = job_row(env.engine, job_id)
        assert row is not None
        if row[0].stage and "storing" in row[0].stage:
            break
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert job_row(env.engine, job_id)[0].status == "running"  # type: ignore[index]
    assert recover_interrupted(env.engine) == [job_id]
    row = job_row(env.engine, job_id)
    assert row is not None and row[0].status == "failed" and "worker stopped" in row[0].message
    # the store verifies and holds no case of the job; the registry has no survey of it
    report = EvidenceStore.open(store, read_only=True).verify()
    assert report.ok, [str(p) for p in report.problems]
    with Registry.open(db, create=False) as reg:
        assert all(s.case != f"web-job-{job_id}" for s in reg.surveys("Demo site"))
    # run again: it completes, once
    from survey.web.db import writing_session
    from survey.web.models import JobRow

    with writing_session(env.engine) as s:
        s.get_one(JobRow, job_id).status = "queued"
    subprocess.run(args, check=True)
    assert job_row(env.engine, job_id)[0].status == "done"  # type: ignore[index]
    with Registry.open(db, create=False) as reg:
        mine = [s for s in reg.surveys("Demo site") if s.case == f"web-job-{job_id}"]
    assert len(mine) == 1 and len(mine[0].evidence) == 4
    assert EvidenceStore.open(store, read_only=True).verify().ok
    assert Path(folder).is_dir()
