"""Upload jobs for real: ``sitewatch run`` on an uploaded OpenDroneMap project, and the Huey
consumer (``sitewatch serve --worker``) taking jobs from its SQLite queue.

Known answers: the small ODM project of :mod:`tests.survey._odm` holds one 10 x 10 m building,
6 m tall, that no permit covers: its first survey must give exactly one ``no_permit`` lead of
100 m² and 6 m. The demo's after epoch uploaded as an ODM project must find again the eight
leads the demo recorded from the same rasters (slow: it builds their eight packages).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping

from survey.evidence import EvidenceStore
from survey.rasters import sha256_file
from survey.registry import Registry
from survey.web import create_app
from survey.web.accounts import add_user
from survey.web.jobs import create_job, job_row
from tests.survey import _odm
from tests.survey.web.conftest import (
    PASSWORD,
    PlatformEnv,
    config_for,
    flight_files,
    form_token,
    login,
)

ODM_FILES = ("odm_orthophoto/odm_orthophoto.tif", "odm_dem/dsm.tif", "odm_dem/dtm.tif")


def zip_odm(project: Path) -> bytes:
    """An OpenDroneMap project folder as the zip an operator uploads."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(project.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(project).as_posix())
    return buf.getvalue()


def odm_of(ortho: Path, dsm: Path, dtm: Path, folder: Path) -> Path:
    """Rasters laid out as an ODM project (``survey.ingest.odm.find_epoch``)."""
    for source, name in zip((ortho, dsm, dtm), ODM_FILES, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / name)
    return folder


def upload_odm(client: Any, site: str, date: str, archive: bytes) -> Any:
    data = {"site": site, "date": date, "kind": "odm", "csrf_token": form_token(client, "/upload")}
    files = [("odm", ("project.zip", archive, "application/zip"))]
    return client.post("/upload", data=data, files=files, follow_redirects=False)


def _small_platform(root: Path) -> None:
    """A registry with one site around the small ODM project, a permit elsewhere on it, an
    evidence store, and an operator and an analyst of the site's team."""
    to_wgs = Transformer.from_crs(_odm.CRS, 4326, always_xy=True).transform
    x0, y0 = _odm.T.c, _odm.T.f  # the project's north-west corner, UTM 50N metres
    site = shapely.transform(box(x0 - 10, y0 - 70, x0 + 90, y0 + 10), to_wgs, interleaved=False)
    permit = shapely.transform(box(x0 + 5, y0 - 20, x0 + 15, y0 - 10), to_wgs, interleaved=False)
    props = {"permit_id": "P-1", "max_height_m": 10.0, "floors": 3, "valid_from": "2025-01-01",
             "valid_to": "2027-01-01"}  # fmt: skip
    feature = {"type": "Feature", "geometry": mapping(permit), "properties": props}
    permits = root / "permits.geojson"
    permits.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    EvidenceStore.open(root / "store", create=True)
    with Registry.open(root / "sitewatch.db", store=str(root / "store"), user="setup") as reg:
        reg.set_evidence_store(root / "store")
        reg.add_site("Small site", site, team="team-1")
        reg.import_permits(permits, "Small site")
        add_user(reg.engine, "op", "operator", PASSWORD, team="team-1")
        add_user(reg.engine, "an", "analyst", PASSWORD)


def test_an_odm_upload_runs_sitewatch_run_and_records_its_lead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    root = tmp_path / "platform"
    root.mkdir()
    _small_platform(root)
    project = _odm.write_project(tmp_path / "odm", building=True)
    # a dask scheduler configured for the platform reaches the job's run (a first survey is
    # checked in the worker's process, which one warning line says)
    scheduler = "tcp://127.0.0.1:1"
    app = create_app(config_for(root, pipeline="run", job_packages=False, scheduler=scheduler))
    try:
        client = TestClient(app, base_url="https://testserver")
        assert login(client, "op").status_code == 303
        sent = upload_odm(client, "Small site", "2025-10-15", zip_odm(project))
        assert sent.status_code == 303, sent.text
        job_id = int(sent.headers["location"].rsplit("/", 1)[1])
        status = client.get(f"/jobs/{job_id}/status").json()
        assert status["status"] == "done", status["message"]
        assert status["result"]["reference"] == "atlas" and status["result"]["leads"] == 1
        assert (status["progress"], status["stage"]) == (1.0, "done")
        (said,) = [r.getMessage() for r in caplog.records if "scheduler" in r.getMessage()]
        assert said.endswith(f"the scheduler {scheduler} runs detections against an earlier survey")
        with Registry.open(root / "sitewatch.db", create=False) as reg:
            survey = reg.survey(status["survey_id"])
            (summary,) = reg.leads(site="Small site")
            lead = reg.lead(summary.lead_id)
        # the survey: a first survey checked against the atlas, its rasters the uploaded ones
        assert (survey.site, survey.date, survey.reference) == (
            "Small site",
            dt.date(2025, 10, 15),
            "atlas",
        )
        job_folder = Path(job_row(app.state.platform.engine, job_id)[0].folder)  # type: ignore[index]
        assert Path(str(survey.ortho)) == job_folder / "odm" / ODM_FILES[0]
        # the lead: the planted building, and nothing else
        assert (lead.lead_class, lead.state, lead.first_survey_id) == (
            "no_permit",
            "new",
            survey.survey_id,
        )
        assert lead.area_m2 == pytest.approx(100.0, rel=0.05)
        assert lead.height_gain_m == pytest.approx(_odm.BUILDING_M, abs=0.3)
        # the evidence: the three rasters as originals of the survey's case, bit for bit
        assert set(survey.evidence) == {sha256_file(project / name) for name in ODM_FILES}
        store = EvidenceStore.open(root / "store", read_only=True)
        assert store.verify().ok
        # the products of sitewatch run: leads, review map, run.json
        assert Path(survey.products["leads"]).is_file()
        assert Path(survey.products["review_map"]).is_file()
        # an analyst sees it on the lead page, with its measurements
        client.cookies.clear()
        assert login(client, "an").status_code == 303
        page = client.get(f"/leads/{lead.lead_id}").text
        assert 'id="lead-state" data-state="new"' in page and "100.0" in page
        # the after chip of an RGBA orthophoto (OpenDroneMap's): its alpha band is the mask
        chip = client.get(f"/leads/{lead.lead_id}/chip/after.png")
        assert chip.status_code == 200 and chip.content.startswith(b"\x89PNG")
        # the job page shows the result
        assert 'id="job-result"' in client.get(f"/jobs/{job_id}").text
    finally:
        app.state.platform.engine.dispose()


@pytest.mark.slow  # about 90 s on 2 busy cores: detection, then eight report.pdf
def test_the_demo_after_epoch_uploaded_as_odm_finds_the_demo_leads_again(
    platform_env: PlatformEnv, tmp_path: Path
) -> None:
    """The job path end to end on the synthetic site: detect against the approved survey,
    the same registry leads (a structure seen before keeps its lead), a package per lead that
    ``sha256sum -c`` accepts."""
    env = platform_env
    app = create_app(config_for(env.root, pipeline="run"))
    env.app.state.platform.engine.dispose()
    env.app = app
    site = env.root / "site" / "after"
    project = odm_of(site / "orthophoto.tif", site / "dsm.tif", site / "dtm.tif", tmp_path / "p")
    with Registry.open(env.root / "sitewatch.db", create=False) as reg:
        demo_leads = {ld.lead_id: ld.lead_class for ld in reg.leads(site="Demo site")}
    sent = upload_odm(env.client("operator"), "Demo site", "2025-11-03", zip_odm(project))
    assert sent.status_code == 303, sent.text
    job_id = int(sent.headers["location"].rsplit("/", 1)[1])
    status = env.client("operator").get(f"/jobs/{job_id}/status").json()
    assert status["status"] == "done", status["message"]
    assert status["result"]["reference"] == "survey"
    with Registry.open(env.root / "sitewatch.db", create=False) as reg:
        survey = reg.survey(status["survey_id"])
        after = {
            ld.lead_id: (ld.lead_class, reg.lead(ld.lead_id).last_survey_id)
            for ld in reg.leads(site="Demo site")
        }
    assert survey.reference_survey_id == 1  # the approved before survey of the demo
    assert after == {k: (c, survey.survey_id) for k, c in demo_leads.items()}
    assert EvidenceStore.open(env.root / "store", read_only=True).verify().ok
    analyst = env.client("analyst")
    for lead_id in sorted(demo_leads):
        page = analyst.get(f"/leads/{lead_id}").text
        assert 'id="package-link"' in page, lead_id
        got = analyst.get(f"/leads/{lead_id}/package.zip")
        assert got.status_code == 200
        out = tmp_path / f"pkg-{lead_id}"
        with zipfile.ZipFile(io.BytesIO(got.content)) as zf:
            zf.extractall(out)
        (folder,) = list(out.iterdir())
        check = subprocess.run(
            ["sha256sum", "-c", "manifest.sha256"], cwd=folder, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr


def _worker(root: Path, pipeline: str = "register") -> subprocess.Popen[bytes]:
    """``sitewatch serve --worker`` on the platform in ``root`` (its SQLite queue)."""
    args = [sys.executable, "-c", "from survey.cli import main; main()", "serve", "--worker",
            "--db", str(root / "sitewatch.db"), "--store", str(root / "store"),
            "--data", str(root / "web")]  # fmt: skip
    env = {**os.environ, "SITEWATCH_PIPELINE": pipeline}
    return subprocess.Popen(args, env=env, stderr=subprocess.PIPE)


def _wait_job(engine: Any, job_id: int, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        found = job_row(engine, job_id)
        assert found is not None
        status = found[0].status
        if status in ("done", "failed"):
            return status
        time.sleep(0.2)
    return status


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """Stop a worker as ``serve`` does (SIGTERM) and return what it wrote on stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err.decode(errors="replace")


def test_the_consumer_takes_queued_jobs_and_fails_those_of_a_dead_worker(
    platform_env: PlatformEnv,
) -> None:
    env = platform_env
    app = create_app(config_for(env.root, immediate_jobs=False))  # the SQLite queue
    env.app.state.platform.engine.dispose()
    env.app = app
    engine = app.state.platform.engine
    # a job whose worker was killed mid-run: "running", its worker a process that is gone
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    orphan = create_job(engine, user_id=1, site="Demo site", date=dt.date(2025, 11, 5),
                        kind="flight", folder=env.root / "web" / "jobs" / "gone")  # fmt: skip
    from survey.web.db import writing_session
    from survey.web.jobs import _worker_id
    from survey.web.models import JobRow

    with writing_session(engine) as s:
        row = s.get_one(JobRow, orphan)
        row.status, row.worker = "running", f"{_worker_id().rsplit(':', 1)[0]}:{gone}"
    # an upload while no worker runs: it waits on the queue
    client = env.client("operator")
    data = {"site": "Demo site", "date": "2025-11-06", "kind": "flight",
            "csrf_token": form_token(client, "/upload")}  # fmt: skip
    sent = client.post("/upload", data=data, files=flight_files(), follow_redirects=False)
    assert sent.status_code == 303, sent.text
    job_id = int(sent.headers["location"].rsplit("/", 1)[1])
    time.sleep(0.5)
    assert job_row(engine, job_id)[0].status == "queued"  # type: ignore[index]
    assert (env.root / "web" / "queue" / "jobs.sqlite").is_file()
    worker = _worker(env.root)
    try:
        assert _wait_job(engine, job_id) == "done"
    finally:
        err = _stop(worker)
    assert worker.returncode is not None
    assert "job worker on" in err, err
    done = job_row(engine, job_id)
    assert done is not None and done[0].worker is not None and done[0].survey_id is not None
    with Registry.open(env.root / "sitewatch.db", create=False) as reg:
        survey = reg.survey(done[0].survey_id)
    assert (survey.case, len(survey.evidence)) == (f"web-job-{job_id}", 3)
    # the worker marked the dead worker's job failed when it started
    failed = job_row(engine, orphan)
    assert failed is not None and failed[0].status == "failed"
    assert "worker stopped" in str(failed[0].message)
    assert EvidenceStore.open(env.root / "store", read_only=True).verify().ok


_RUN_JOB = """
import sys
from survey.web.jobs import execute_job
execute_job(int(sys.argv[1]), db=sys.argv[2], store=sys.argv[3], data_dir=sys.argv[4],
            pipeline="run", packages=False)
"""


def test_a_run_job_killed_after_registering_its_survey_leaves_no_half_run_survey(
    tmp_path: Path,
) -> None:
    """``sitewatch run`` registers the survey before it detects; killed in between (the job's
    stored progress says the check has started), the worker that recovers the job discards
    that survey (one ledger entry says why)."""
    import sqlalchemy as sa

    from survey.web.jobs import recover_interrupted

    root = tmp_path / "platform"
    root.mkdir()
    _small_platform(root)
    folder = root / "web" / "jobs" / "killed"
    _odm.write_project(folder / "odm", building=True)
    db, store = root / "sitewatch.db", root / "store"
    with Registry.open(db, create=False, store=str(store)) as reg:
        job_id = create_job(reg.engine, user_id=1, site="Small site",
                            date=dt.date(2025, 10, 15), kind="odm", folder=folder)  # fmt: skip
    args = [sys.executable, "-c", _RUN_JOB, str(job_id), str(db), str(store), str(root / "web")]
    watcher = sa.create_engine(f"sqlite:///{db}")
    proc = subprocess.Popen(args)
    stored: Any = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with watcher.connect() as conn:
                stored = conn.exec_driver_sql(
                    "SELECT progress, stage FROM web_jobs WHERE id = ?", (job_id,)
                ).one()
            if stored[0] > 0.05:  # run_survey's progress, past what the job itself reports
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watcher.dispose()
    assert proc.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    assert tuple(stored) == (0.15, "checking the survey against the permit atlas")
    with Registry.open(db, create=False, store=str(store), user="worker") as reg:
        (half,) = reg.surveys("Small site")
        assert not reg.leads(site="Small site")  # killed before its leads were recorded
        assert job_row(reg.engine, job_id)[0].status == "running"  # type: ignore[index]
        assert recover_interrupted(reg.engine, registry=reg) == [job_id]
        assert reg.surveys("Small site") == []
        row = job_row(reg.engine, job_id)
        assert row is not None and row[0].status == "failed"
    ledger = [json.loads(x) for x in (store / "ledger.jsonl").read_text().splitlines()]
    discards = [e for e in ledger if "discard" in str(e.get("command", ""))]
    assert len(discards) == 1, discards
    assert "its worker stopped mid-run" in json.dumps(discards[0])
    assert discards[0]["parameters"].get("survey") == half.survey_id, discards
    assert EvidenceStore.open(store, read_only=True).verify().ok


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throw-away redis-server on a free localhost port (Debian's redis-server and the redis
    package, both installed by ``make test``); skipped without them unless
    SITEWATCH_REQUIRE_REDIS=1, then it fails."""
    import socket

    server = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        redis = None  # type: ignore[assignment]
    if server is None or redis is None:
        msg = "redis-server or the redis package is not installed (make test installs both)"
        if os.environ.get("SITEWATCH_REQUIRE_REDIS") == "1":
            pytest.fail(f"SITEWATCH_REQUIRE_REDIS=1 but {msg}")
        pytest.skip(msg)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10.0
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_jobs_go_through_a_redis_broker_when_configured(
    platform_env: PlatformEnv, redis_url: str
) -> None:
    """With --redis the web process puts the job on Redis and a worker started with the same
    URL takes it from there: nothing goes through the SQLite queue."""
    env = platform_env
    app = create_app(config_for(env.root, immediate_jobs=False, redis_url=redis_url))
    env.app.state.platform.engine.dispose()
    env.app = app
    engine = app.state.platform.engine
    client = env.client("operator")
    data = {"site": "Demo site", "date": "2025-11-06", "kind": "flight",
            "csrf_token": form_token(client, "/upload")}  # fmt: skip
    sent = client.post("/upload", data=data, files=flight_files(), follow_redirects=False)
    assert sent.status_code == 303, sent.text
    job_id = int(sent.headers["location"].rsplit("/", 1)[1])
    import redis

    assert redis.Redis.from_url(redis_url).dbsize() > 0  # the job waits on Redis
    assert not (env.root / "web" / "queue" / "jobs.sqlite").exists()
    args = [sys.executable, "-c", "from survey.cli import main; main()", "serve", "--worker",
            "--db", str(env.root / "sitewatch.db"), "--store", str(env.root / "store"),
            "--data", str(env.root / "web"), "--redis", redis_url]  # fmt: skip
    worker = subprocess.Popen(
        args, env={**os.environ, "SITEWATCH_PIPELINE": "register"}, stderr=subprocess.PIPE
    )
    try:
        assert _wait_job(engine, job_id) == "done"
    finally:
        err = _stop(worker)
    assert f"job worker on {redis_url}" in err, err
    done = job_row(engine, job_id)
    assert done is not None and done[0].survey_id is not None
    assert EvidenceStore.open(env.root / "store", read_only=True).verify().ok
