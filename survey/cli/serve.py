"""``sitewatch serve``: the case platform in a browser (and its JSON API), with its job worker.

::

    sitewatch serve [--db URL] [--store STORE] [--host 127.0.0.1] [--port 8080] [--data DIR]
                    [--redis URL] [--scheduler ADDRESS]
    sitewatch serve --demo DIR          build the demo site, one user per role; serve it
    sitewatch serve --worker ...        run only the job worker (one per machine or more)

Without ``--no-worker`` the job worker is started beside the server as a second process (the
embedded queue is a SQLite file under ``--data``; ``--redis URL`` uses Redis instead, for
workers on other machines; ``pip install 'sitewatch[redis]'``). ``--scheduler ADDRESS`` runs
the chunked steps of a job's detection on a dask.distributed cluster (its workers must see
``--data`` at the same path); the worker gets it as ``SITEWATCH_SCHEDULER``. Behind a
reverse proxy that terminates TLS, give ``--forwarded-allow-ips`` the proxy's address so that
client addresses (login rate limiting) are the real ones. ``--demo DIR`` builds a demo
platform in DIR the first time (the synthetic site, two surveys, detected leads, an evidence
store, one user per role whose passwords are printed once) and serves it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from survey.cli.db import db_option

if TYPE_CHECKING:
    from survey.web import WebConfig

__all__ = ["command"]


def _config(
    db: str | None,
    store: Path | None,
    data: Path | None,
    redis: str | None,
    max_upload_mb: int,
    insecure_cookies: bool,
    job_packages: bool = True,
    scheduler: str | None = None,
) -> WebConfig:
    from survey.registry import resolve_url
    from survey.registry.engine import describe_url, sqlite_path
    from survey.web import WebConfig

    url = resolve_url(db)
    if data is None:
        path = sqlite_path(url)
        data = (path.parent if path is not None else Path.cwd()) / "sitewatch-web"
    return WebConfig(
        pipeline=os.environ.get("SITEWATCH_PIPELINE", "run"),
        job_packages=job_packages and os.environ.get("SITEWATCH_JOB_PACKAGES", "1") != "0",
        scheduler=scheduler or os.environ.get("SITEWATCH_SCHEDULER") or None,
        db=describe_url(url) if sqlite_path(url) is not None else url.render_as_string(False),
        store=os.fspath(store) if store is not None else None,
        data_dir=data,
        redis_url=redis,
        max_upload_bytes=max_upload_mb * 1024**2,
        secure_cookies=not insecure_cookies,
    )


def _demo(root: Path) -> tuple[str, Path, Path]:
    from survey.web.demo import DEMO_USERS, build_demo

    db = root / "sitewatch.db"
    if db.exists():
        click.echo(f"serving the demo built earlier in {root} (its users' passwords were printed "
                   "then; set new ones with `sitewatch users passwd NAME --db "
                   f"{db}`)")  # fmt: skip
    else:
        click.echo(f"building the demo platform in {root} ...")
        demo = build_demo(root)
        click.echo("demo users (passwords shown once):")
        for role, (name, _display, _lang) in DEMO_USERS.items():
            click.echo(f"  {role:<10} {name:<16} {demo.passwords[name]}")
    return os.fspath(db), root / "store", root / "web"


def _worker(config: WebConfig) -> None:
    from survey.registry import Registry
    from survey.web.jobs import make_queue, recover_interrupted

    with Registry.open(config.db, store=config.store, user="sitewatch serve --worker") as reg:
        recover_interrupted(reg.engine, registry=reg)
    huey, _task = make_queue(config)
    on = f" (detection on the dask scheduler {config.scheduler})" if config.scheduler else ""
    click.echo(f"job worker on {config.redis_url or config.queue_file}{on}", err=True)
    huey.create_consumer(workers=1, worker_type="thread").run()


@click.command(name="serve")
@db_option
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Evidence store (default: the registry's, `db set-store`).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of uploads, jobs, packages (default: sitewatch-web beside the db).",
)
@click.option(
    "--demo",
    "demo_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build (first time) and serve the demo platform in this folder.",
)
@click.option("--worker", is_flag=True, help="Run only the job worker.")
@click.option("--no-worker", is_flag=True, help="Do not start a job worker beside the server.")
@click.option("--redis", metavar="URL", help="Run jobs through Redis (redis://host:6379/0).")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="dask.distributed scheduler address (tcp://host:8786; its workers must see --data at "
    "the same path) for the chunked steps of a job's detection, or 'local' for a LocalCluster "
    "(default: threads in the job worker).",
)
@click.option("--max-upload-mb", default=4096, show_default=True, type=click.IntRange(1))
@click.option(
    "--job-packages/--no-job-packages",
    default=True,
    show_default=True,
    help="Build an evidence package for every lead an uploaded survey finds (about 10 s a "
    "lead); without, analysts build one on the lead's page.",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Reverse proxies whose X-Forwarded-For/-Proto headers are trusted.",
)
@click.option(
    "--insecure-cookies",
    is_flag=True,
    help="Send the session cookie over plain HTTP too (only on a closed network "
    "without TLS; browsers already accept it on 127.0.0.1).",
)
def command(
    db: str | None,
    store: Path | None,
    host: str,
    port: int,
    data: Path | None,
    demo_dir: Path | None,
    worker: bool,
    no_worker: bool,
    redis: str | None,
    scheduler: str | None,
    max_upload_mb: int,
    job_packages: bool,
    forwarded_allow_ips: str,
    insecure_cookies: bool,
) -> None:  # fmt: skip
    """Serve the case platform (pages, JSON API under /api/) and run its job worker."""
    if demo_dir is not None:
        db_path, store, data = _demo(demo_dir)
        db = db_path
    config = _config(
        db, store, data, redis, max_upload_mb, insecure_cookies, job_packages, scheduler
    )
    if worker:
        _worker(config)
        return
    import uvicorn

    from survey.web import create_app

    app = create_app(config)
    child = None if no_worker else _start_worker(config)
    try:
        click.echo(f"serving {config.db} on http://{host}:{port}/", err=True)
        uvicorn.run(
            app,
            host=host,
            port=port,
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
            log_level="info",
        )
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=30)


def _start_worker(config: WebConfig) -> subprocess.Popen[bytes]:
    """The worker as a child process; the database URL (which may hold a password) goes in
    its environment, not on its command line."""
    args = [sys.executable, "-c", "from survey.cli import main; main()", "serve", "--worker",
            "--data", os.fspath(config.data_dir)]  # fmt: skip
    if config.store:
        args += ["--store", config.store]
    if config.redis_url:
        args += ["--redis", config.redis_url]
    return subprocess.Popen(args, env={**os.environ, **config.environment()})
