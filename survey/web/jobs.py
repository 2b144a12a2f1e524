"""Upload jobs: the queue (Huey, on SQLite by default or Redis when configured), what a job
does, its progress, and what becomes of a job whose worker died.

The web process only records a job (``queued``) and puts its id on the queue; the worker
(``sitewatch serve --worker``, started beside the server by ``sitewatch serve``) runs it:
``running`` with its progress and stage, then ``done`` with the survey it registered or
``failed`` with one line saying why. The pipeline is ``survey.run_survey.run_survey``
(``sitewatch run``: ingest → QC → check or detect → leads → map → package → evidence), or,
with ``pipeline="register"`` (:class:`~survey.web.config.WebConfig`), only storing the
originals and registering the survey.

A job killed mid-run leaves the registry and the store as they were before each of their
atomic steps: originals enter the store all or nothing (under the case ``web-job-<id>``), the
survey is registered in one transaction naming them, and the job row stays ``running`` until
:func:`recover_interrupted` (run by every worker at start) marks it ``failed``; running it
again stores nothing twice. ``sitewatch run`` registers its survey first and records leads
later: a survey that a failed or killed job registered (its files lie in the job's folder) and
on which nothing rests yet is discarded (:meth:`Registry.discard_survey`, one ledger entry
saying why), so that the site's surveys hold no half-run survey.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy.engine import Engine

from survey.registry import Registry
from survey.web.config import WebConfig
from survey.web.db import reading, utc_now, writing_session
from survey.web.models import JobRow, UserRow

__all__ = [
    "TASK_NAME",
    "create_job",
    "discard_partial_surveys",
    "execute_job",
    "job_row",
    "make_queue",
    "recover_interrupted",
]

log = logging.getLogger(__name__)

TASK_NAME = "sitewatch.run_upload"
Progress = Callable[[str, float], None]


def make_queue(config: WebConfig) -> tuple[Huey, Callable[..., Any]]:
    """The job queue of ``config`` and its task (call it with a job id to enqueue the job)."""
    if config.redis_url:
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            from survey.web.errors import WebError

            raise WebError(
                f"--redis {config.redis_url}: the redis package is not installed; "
                "pip install 'sitewatch[redis]', or leave --redis out to use the embedded queue"
            ) from exc
        huey: Huey = RedisHuey("sitewatch", url=config.redis_url)
    elif config.immediate_jobs:
        huey = Huey("sitewatch", immediate=True)
    else:
        huey = SqliteHuey("sitewatch", filename=str(config.queue_file))
    db, store, data, pipeline = config.db, config.store, os.fspath(config.data_dir), config.pipeline
    packages, scheduler = config.job_packages, config.scheduler

    def run_upload(job_id: int) -> None:
        execute_job(
            job_id,
            db=db,
            store=store,
            data_dir=data,
            pipeline=pipeline,
            packages=packages,
            scheduler=scheduler,
        )

    return huey, huey.task(name=TASK_NAME)(run_upload)


def create_job(
    engine: Engine, *, user_id: int, site: str, date: dt.date, kind: str, folder: Path
) -> int:
    """Record a queued job and return its id."""
    with writing_session(engine) as s:
        row = JobRow(
            user_id=user_id,
            site=site,
            date=date,
            kind=kind,
            status="queued",
            progress=0.0,
            folder=os.fspath(folder),
            result={},
            created_at=utc_now(),
        )
        s.add(row)
        s.flush()
        return row.id


def job_row(engine: Engine, job_id: int) -> tuple[JobRow, str] | None:
    """A job and the name of who uploaded it, or None."""
    with reading(engine) as s:
        found = s.execute(
            sa.select(JobRow, UserRow.username)
            .join(UserRow, UserRow.id == JobRow.user_id)
            .where(JobRow.id == int(job_id))
        ).one_or_none()
    return None if found is None else (found[0], found[1])


def _update(engine: Engine, job_id: int, **values: Any) -> None:
    with writing_session(engine) as s:
        s.execute(sa.update(JobRow).where(JobRow.id == job_id).values(**values))


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str | None) -> bool:
    if not worker or ":" not in worker:
        return False
    host, pid = worker.rsplit(":", 1)
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's worker: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _under(path: str | None, folder: Path) -> bool:
    return bool(path) and Path(str(path)).resolve().is_relative_to(folder)


def discard_partial_surveys(reg: Registry, job: JobRow, reason: str) -> list[int]:
    """Discard the surveys of ``job``'s site registered from its folder (a run that stopped
    before its end), other than the job's own result; their ids.

    A survey that leads were already recorded from stays (the registry refuses: its leads are
    evidence); a warning says so.
    """
    from survey.registry import RegistryError

    folder = Path(job.folder).resolve()
    discarded: list[int] = []
    try:
        surveys = reg.surveys(job.site)
    except RegistryError:
        return discarded
    for survey in surveys:
        paths = (survey.ortho, survey.dsm, survey.dtm, survey.flight_log, survey.images)
        if survey.survey_id == job.survey_id or not any(_under(p, folder) for p in paths):
            continue
        try:
            reg.discard_survey(survey.survey_id, reason=reason)
        except RegistryError as exc:
            log.warning("job %d: survey %d kept: %s", job.id, survey.survey_id, exc)
            continue
        log.warning("job %d: survey %d it left half-run was discarded", job.id, survey.survey_id)
        discarded.append(survey.survey_id)
    return discarded


def recover_interrupted(engine: Engine, registry: Registry | None = None) -> list[int]:
    """Mark ``failed`` the running jobs whose worker (on this machine) is gone; their ids.

    With ``registry`` (on ``engine``), the surveys those jobs left half-run are discarded
    (:func:`discard_partial_surveys`)."""
    with reading(engine) as s:
        rows = s.execute(sa.select(JobRow.id, JobRow.worker).where(JobRow.status == "running"))
        dead = [jid for jid, worker in rows if not _alive(worker)]
    for jid in dead:
        if registry is not None:
            found = job_row(engine, jid)
            if found is not None:
                discard_partial_surveys(
                    registry, found[0], f"web job {jid}: its worker stopped mid-run"
                )
        _update(
            engine,
            jid,
            status="failed",
            finished_at=utc_now(),
            message="the worker stopped while this job ran (nothing half-done was kept); "
            "upload the survey again",
        )
        log.warning("job %d: its worker stopped mid-run; marked failed", jid)
    return dead


def execute_job(
    job_id: int,
    *,
    db: str,
    store: str | None,
    data_dir: str,
    pipeline: str = "run",
    packages: bool = True,
    scheduler: str | None = None,
) -> None:
    """Run a queued job to its end (any process may call it; the queue's task does).

    ``pipeline``: ``run`` (``sitewatch run``) or ``register`` (store and register only);
    ``packages``: with ``run``, build an evidence package for every lead the survey saw;
    ``scheduler``: with ``run``, the dask.distributed scheduler of the detection's chunked
    steps (None: this process). The job's ``progress`` and ``stage`` follow the steps of
    :func:`survey.run_survey.run_survey`."""
    reg = Registry.open(db, create=False, store=store)
    try:
        found = job_row(reg.engine, job_id)
        if found is None or found[0].status not in ("queued", "running"):
            return
        job, username = found
        reg.user = username
        _update(reg.engine, job_id, status="running", worker=_worker_id(), started_at=utc_now())

        def progress(stage: str, fraction: float) -> None:
            _update(reg.engine, job_id, stage=stage[:200], progress=max(0.0, min(fraction, 1.0)))

        try:
            if pipeline == "register":
                result = _register_only(reg, job, username, _inputs(job), progress)
            else:
                result = _run_pipeline(
                    reg, job, username, progress, packages=packages, scheduler=scheduler
                )
        except Exception as exc:
            log.debug("job %d failed", job_id, exc_info=True)
            text = " ".join(str(exc).split()) or exc.__class__.__name__
            discard_partial_surveys(reg, job, f"web job {job_id} failed: {text[:500]}")
            _update(reg.engine, job_id, status="failed", finished_at=utc_now(), message=text[:2000])
            return
        _update(
            reg.engine,
            job_id,
            status="done",
            progress=1.0,
            stage="done",
            finished_at=utc_now(),
            survey_id=result.get("survey_id"),
            result=result,
        )
    finally:
        reg.close()


def _inputs(job: JobRow) -> dict[str, Path]:
    folder = Path(job.folder)
    if job.kind == "odm":
        return {"odm": folder / "odm"}
    logs = sorted((folder / "log").iterdir())
    return {"log": logs[0], "images": folder / "images"}


def _run_pipeline(
    reg: Registry,
    job: JobRow,
    username: str,
    progress: Progress,
    *,
    packages: bool = True,
    scheduler: str | None = None,
) -> dict[str, Any]:
    from survey.run_survey import run_survey

    inputs = _inputs(job)
    if "log" in inputs:
        inputs["flight_log"] = inputs.pop("log")
    out_dir = Path(job.folder) / "out"
    wanted: dict[str, Any] = {
        "registry": reg,
        "site": job.site,
        "date": job.date,
        "out_dir": out_dir,
        "user": username,
        "progress": progress,
        "packages": packages,
        "scheduler": scheduler,
        **inputs,
    }
    accepted = inspect.signature(run_survey).parameters
    args = {k: v for k, v in wanted.items() if k in accepted}
    if "progress" not in accepted:
        progress("running the survey pipeline", 0.05)
    result = run_survey(**args)
    survey = getattr(result, "survey", None)
    return {
        "survey_id": getattr(survey, "survey_id", None),
        "reference": getattr(result, "reference", None),
        "leads": len(getattr(result, "leads", ())),
        "proposed_closure": list(getattr(result, "proposed_closure", ())),
        "out_dir": str(getattr(result, "out_dir", out_dir)),
    }


def _register_only(
    reg: Registry, job: JobRow, username: str, inputs: dict[str, Path], progress: Progress
) -> dict[str, Any]:
    """Store the originals and register the survey (no detection: no pipeline in this build)."""
    case = f"web-job-{job.id}"
    files = [p for p in inputs.values() if p.exists()]
    store = reg.custody.store()
    hashes: list[str] = []
    if store is not None:
        progress("storing the originals in the evidence store", 0.1)
        items = store.add(files, case=case, operator=username, site=job.site)
        hashes = sorted({i.sha256 for i in items})
    progress("registering the survey", 0.8)
    survey = reg.register_survey(
        job.site,
        job.date,
        flight_log=inputs.get("log"),
        images=inputs.get("images") or inputs.get("odm"),
        evidence=hashes,
        case=case,
        user=username,
    )
    return {
        "survey_id": survey.survey_id,
        "case": case,
        "originals": len(hashes),
        "leads": [],
        "note": "registered without detection: this build has no sitewatch run pipeline",
    }
