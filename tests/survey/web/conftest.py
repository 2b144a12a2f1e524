"""Fixtures of the case platform's tests.

``demo_template`` builds the demo platform once per session (the synthetic site in a
registry, two surveys, the leads ``detect`` found, an evidence store, one user per role), logs
each user in once and keeps their session cookies. ``platform_env`` copies that folder for one
test (a fresh registry, store and data folder in ``tmp_path``, the sessions still valid) and
serves it through FastAPI's TestClient over https://testserver (the session cookie is
``Secure``).

``backend_env`` is the same on each database the registry supports: the SQLite copy, then the
demo's rows copied into a fresh schema of the test PostgreSQL cluster (the registry tests'
``postgres_admin``; that half skips without a server unless ``SITEWATCH_REQUIRE_POSTGRES=1``).
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from survey.web import WebConfig, create_app
from survey.web.demo import DEMO_USERS, build_demo
from tests.survey.registry import conftest as registry_fixtures

with warnings.catch_warnings():  # starlette 1.x suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# The test PostgreSQL cluster of the registry tests (an engine, or None without a server).
postgres_admin = registry_fixtures.postgres_admin

ROLES = tuple(DEMO_USERS)
USER_OF = {role: name for role, (name, _d, _l) in DEMO_USERS.items()}
PASSWORD = "correct horse battery"


@dataclass
class Template:
    """The demo platform built once, and each role's session cookie."""

    root: Path
    cookies: dict[str, str] = field(default_factory=dict)  # role -> session id
    tokens: dict[str, str] = field(default_factory=dict)  # role -> API token


def login(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    """Log in through the form (fetching its token first); the response to the POST."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )


def form_token(client: TestClient, path: str = "/account") -> str:
    """The session's form token, read from a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def config_for(root: Path, **overrides: Any) -> WebConfig:
    values: dict[str, Any] = {
        "db": str(root / "sitewatch.db"),
        "store": str(root / "store"),
        "data_dir": root / "web",
        "immediate_jobs": True,
        # jobs store the originals and register the survey; the fake tlog of these tests is
        # not a flight sitewatch run could ingest
        "pipeline": "register",
    }
    values.update(overrides)
    return WebConfig(**values)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("web-demo") / "demo"
    build_demo(root)
    app = create_app(config_for(root))
    engine = app.state.platform.engine
    from survey.web.accounts import set_password

    template = Template(root)
    with TestClient(app, base_url="https://testserver") as client:
        for role in ROLES:
            set_password(engine, USER_OF[role], PASSWORD)
            client.cookies.clear()
            assert login(client, USER_OF[role]).status_code == 303
            template.cookies[role] = client.cookies["sitewatch_session"]
            # one API token each (ids 1..4 in the order of ROLES)
            page = client.post(
                "/account/tokens", data={"name": f"t-{role}", "csrf_token": form_token(client)}
            )
            found = re.search(r'id="new-token">([^<]+)<', page.text)
            assert found is not None
            template.tokens[role] = found.group(1)
        # the package of lead 2, built by the analyst
        client.cookies.clear()
        client.cookies.set("sitewatch_session", template.cookies["analyst"])
        built = client.post(
            "/leads/2/package", data={"csrf_token": form_token(client)}, follow_redirects=False
        )
        assert built.status_code == 303, built.text
        # job 1: a flight uploaded by the operator
        client.cookies.clear()
        client.cookies.set("sitewatch_session", template.cookies["operator"])
        sent = client.post(
            "/upload",
            data={"site": "Demo site", "date": "2025-11-01", "kind": "flight",
                  "csrf_token": form_token(client, "/upload")},
            files=flight_files(),
            follow_redirects=False,
        )  # fmt: skip
        assert sent.status_code == 303 and sent.headers["location"] == "/jobs/1", sent.text
    engine.dispose()
    return template


def tlog_bytes() -> bytes:
    """The start of a MAVLink 2 telemetry log: a timestamp, then a frame's magic byte."""
    return b"\x00\x05\xf0\x1c\x3b\x2a\x11\x00" + b"\xfd\x09\x00\x00\x00\x01\x01" + bytes(40)


def flight_files(log: bytes | None = None, photo: bytes | None = None) -> list[Any]:
    """Multipart parts of a flight upload: one log and two photos."""
    from survey.web.uploads import tiny_jpeg

    jpeg = tiny_jpeg() if photo is None else photo
    return [
        ("log", ("flight.tlog", tlog_bytes() if log is None else log, "application/octet-stream")),
        ("photos", ("DJI_0001.JPG", jpeg, "image/jpeg")),
        ("photos", ("DJI_0002.JPG", jpeg + b"\x00", "image/jpeg")),  # other bytes
    ]


@dataclass
class PlatformEnv:
    """One test's copy of the demo platform, served."""

    root: Path
    app: Any
    template: Template

    @property
    def engine(self) -> sa.Engine:
        return self.app.state.platform.engine  # type: ignore[no-any-return]

    @property
    def db(self) -> str:
        """The registry: the SQLite file's path or the PostgreSQL URL."""
        return str(self.app.state.platform.config.db)

    def client(self, role: str | None = None) -> TestClient:
        """A client logged in as ``role`` (None: not logged in)."""
        client = TestClient(self.app, base_url="https://testserver")
        if role is not None:
            client.cookies.set("sitewatch_session", self.template.cookies[role])
        return client


@pytest.fixture
def platform_env(demo_template: Template, tmp_path: Path) -> Iterator[PlatformEnv]:
    root = tmp_path / "demo"
    shutil.copytree(demo_template.root, root, symlinks=True)
    app = create_app(config_for(root))
    yield PlatformEnv(root, app, demo_template)
    app.state.platform.engine.dispose()


def snapshot(engine: sa.Engine, store: Path) -> tuple[dict[str, list[tuple[Any, ...]]], bytes]:
    """Every row of every table (login failures aside) and the custody ledger's bytes."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in sorted(sa.inspect(conn).get_table_names()):
            if name == "web_login_failures":
                continue
            rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).all()
            tables[name] = sorted(tuple(r) for r in rows)
    return tables, (store / "ledger.jsonl").read_bytes()


def copy_registry(source: sa.Engine, url: str) -> None:
    """Copy every row of the registry on ``source`` into the (new, empty) registry at ``url``,
    created by its migrations; identity sequences continue after the copied ids."""
    from survey.registry import Registry
    from survey.registry.models import Base

    with Registry.open(url) as reg:
        target = reg.engine
        with source.connect() as src, target.begin() as dst:
            present = set(sa.inspect(src).get_table_names()) & set(
                sa.inspect(dst).get_table_names()
            )
            tables = [t for t in Base.metadata.sorted_tables if t.name in present]
            for table in reversed(tables):
                dst.execute(table.delete())
            for table in tables:
                rows = [dict(r) for r in src.execute(sa.select(table)).mappings()]
                if rows:
                    dst.execute(table.insert(), rows)
            for table in tables:
                keys = list(table.primary_key.columns)
                if [c.name for c in keys] != ["id"] or not isinstance(keys[0].type, sa.Integer):
                    continue
                dst.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f'(SELECT COALESCE(MAX(id), 0) + 1 FROM "{table.name}"), false) '
                    f"WHERE pg_get_serial_sequence('{table.name}', 'id') IS NOT NULL"
                )


@pytest.fixture
def postgres_platform_env(
    demo_template: Template, tmp_path: Path, postgres_admin: sa.Engine | None
) -> Iterator[PlatformEnv]:
    """:func:`platform_env` with the registry in a fresh PostgreSQL schema."""
    root = tmp_path / "demo"
    shutil.copytree(demo_template.root, root, symlinks=True)
    for url in registry_fixtures._postgres_url(postgres_admin):
        source = sa.create_engine(f"sqlite:///{root / 'sitewatch.db'}")
        try:
            copy_registry(source, url)
        finally:
            source.dispose()
        (root / "sitewatch.db").unlink()  # nothing may fall back on the SQLite copy
        app = create_app(config_for(root, db=url))
        try:
            yield PlatformEnv(root, app, demo_template)
        finally:
            app.state.platform.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_env(request: pytest.FixtureRequest) -> PlatformEnv:
    """The demo platform on SQLite, then on PostgreSQL."""
    name = "platform_env" if request.param == "sqlite" else "postgres_platform_env"
    env: PlatformEnv = request.getfixturevalue(name)
    return env
