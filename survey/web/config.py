"""How one case platform is set up: its registry, evidence store, data folder and limits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WebConfig"]

GIB = 1024**3


@dataclass(frozen=True)
class WebConfig:
    """Settings of :func:`survey.web.create_app` (``sitewatch serve`` fills them from flags).

    Attributes
    ----------
    db : str
        The registry: a SQLite file or a ``postgresql://`` URL.
    data_dir : Path
        Where uploads, job folders, rendered chips, built packages and the embedded job
        queue (``jobs.sqlite``) live; created on first use.
    store : str or None
        The evidence store (default: the registry's ``evidence_store`` setting).
    secure_cookies : bool
        Mark the session cookie ``Secure`` (sent over HTTPS only; browsers also send it to
        ``http://127.0.0.1``/``localhost``). Off only for plain-HTTP tests.
    session_hours : float
        A session ends this long after it started (and at logout, password change or
        disabling of the user).
    max_upload_bytes : int
        The largest request body taken (an upload of photos or a zip), bytes.
    max_unpacked_bytes : int
        The largest total size a zip may unpack to, bytes.
    login_failures : int
        Failed logins of one user name (or from one client, times four) within
        ``login_window_minutes`` after which logins are refused until the window passes.
    login_window_minutes : int
    redis_url : str or None
        Run jobs through Redis (``redis://host:6379/0``) instead of the embedded SQLite queue.
    immediate_jobs : bool
        Run jobs inside the web process at once (tests only: the page waits for the job).
    pipeline : str
        What a job runs: ``run`` (``sitewatch run``: ingest, QC, check or detect, leads, map,
        packages, evidence) or ``register`` (store the originals and register the survey
        only, for a station that runs detection elsewhere).
    job_packages : bool
        With ``pipeline="run"``, build an evidence package for every lead a job's survey saw
        (about 10 s a lead, for its ``report.pdf``); off, analysts build a lead's package on
        its page when they need it.
    scheduler : str or None
        With ``pipeline="run"``, the dask.distributed scheduler (``tcp://host:8786``, or
        ``local``) that runs the chunked steps of a job's detection
        (:func:`survey.run_survey.run_survey`); its workers must see the data folder at the
        same path. None: in the job worker's process.
    """

    db: str
    data_dir: Path
    store: str | None = None
    secure_cookies: bool = True
    session_hours: float = 12.0
    max_upload_bytes: int = 4 * GIB
    max_unpacked_bytes: int = 16 * GIB
    login_failures: int = 5
    login_window_minutes: int = 15
    redis_url: str | None = None
    immediate_jobs: bool = False
    pipeline: str = "run"
    job_packages: bool = True
    scheduler: str | None = None

    def folder(self, name: str) -> Path:
        """``data_dir/name``, created (0700) if missing."""
        path = Path(self.data_dir) / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    @property
    def queue_file(self) -> Path:
        """The embedded job queue (Huey's SQLite storage)."""
        return self.folder("queue") / "jobs.sqlite"

    def environment(self) -> dict[str, str]:
        """The settings a job worker process needs, as environment variables."""
        env = {"SITEWATCH_DB": self.db, "SITEWATCH_WEB_DATA": os.fspath(self.data_dir)}
        if self.store:
            env["SITEWATCH_STORE"] = self.store
        if self.redis_url:
            env["SITEWATCH_REDIS"] = self.redis_url
        env["SITEWATCH_PIPELINE"] = self.pipeline
        env["SITEWATCH_JOB_PACKAGES"] = "1" if self.job_packages else "0"
        if self.scheduler:
            env["SITEWATCH_SCHEDULER"] = self.scheduler
        return env
