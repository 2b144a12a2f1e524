"""Where the registry lives and how it is connected to: URLs, engines, SQLite settings.

A registry is named by ``--db`` (a path or a URL), else the environment variable
``SITEWATCH_DB``, else ``./sitewatch.db``:

* a path (``survey.db``, ``/var/lib/sitewatch/city.db``) or ``sqlite:///…`` URL is an embedded
  SQLite file, opened with write-ahead logging (``journal_mode=WAL``: readers never wait for the
  writer), foreign keys on, ``synchronous=NORMAL`` (durable at every checkpoint, safe with WAL)
  and a 30 s busy timeout. Transactions that write start with ``BEGIN IMMEDIATE`` so that a
  read-then-write (a state change checked against the current state) never races another
  writer; reads use plain ``BEGIN``.
* ``postgresql://…`` (``postgres://`` too) is a PostgreSQL server through psycopg 3
  (``postgresql+psycopg://``): the same models, queries and migrations; rows changed by a
  state change are locked with ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from survey.registry.errors import NotARegistryError

__all__ = [
    "DEFAULT_DB",
    "ENV_VAR",
    "create_registry_engine",
    "describe_url",
    "is_sqlite",
    "resolve_url",
    "sqlite_path",
    "writing",
]

ENV_VAR = "SITEWATCH_DB"
DEFAULT_DB = "sitewatch.db"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WRITE_OPTION = "sitewatch_write"


def resolve_url(db: str | os.PathLike[str] | None = None) -> URL:
    """The SQLAlchemy URL of a registry named by ``db``, ``$SITEWATCH_DB`` or the default.

    Parameters
    ----------
    db : str or path, optional
        A path of a SQLite file, or a URL (``sqlite:///city.db``, ``postgresql://host/db``).

    Returns
    -------
    sqlalchemy.engine.URL
        ``sqlite+pysqlite:///<absolute path>`` or ``postgresql+psycopg://…``.

    Raises
    ------
    NotARegistryError
        A URL of another kind of database, or one that cannot be parsed.

    Examples
    --------
    >>> resolve_url("postgresql://bureau@db.local/sitewatch").drivername
    'postgresql+psycopg'
    >>> resolve_url("/data/city.db").database
    '/data/city.db'
    """
    given = db if db is not None else os.environ.get(ENV_VAR) or DEFAULT_DB
    text = os.fspath(given)
    if not _SCHEME.match(text):
        return URL.create("sqlite+pysqlite", database=str(Path(text).expanduser().absolute()))
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise NotARegistryError(
            f"{_hide_password(text)}: not a database URL ({exc}); give a file path or "
            "postgresql://user@host/dbname"
        ) from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise NotARegistryError(
                f"{text}: an in-memory SQLite database forgets everything when the command "
                "ends; give a file path"
            )
        path = str(Path(url.database).expanduser().absolute())
        return url.set(drivername="sqlite+pysqlite", database=path)
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    raise NotARegistryError(
        f"{url.render_as_string(hide_password=True)}: sitewatch keeps its registry in SQLite "
        f"or PostgreSQL, not {backend}; give a file path or postgresql://user@host/dbname"
    )


def _hide_password(text: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def describe_url(url: URL) -> str:
    """The registry as messages name it: the SQLite file's path, or the URL without password."""
    if is_sqlite(url):
        return str(url.database)
    return url.render_as_string(hide_password=True)


def is_sqlite(url: URL) -> bool:
    """True for an embedded SQLite file."""
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite registry, None for a server."""
    return Path(str(url.database)) if is_sqlite(url) else None


def writing(engine: Engine) -> Engine:
    """The same engine for transactions that write: ``BEGIN IMMEDIATE`` on SQLite."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def create_registry_engine(url: URL, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the registry's connection settings (module docstring).

    Parameters
    ----------
    url : sqlalchemy.engine.URL
        From :func:`resolve_url`.
    echo : bool
        Log every SQL statement (SQLAlchemy's ``echo``).
    """
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if is_sqlite(url):
        # the driver's own transaction handling off: BEGIN is emitted in _begin below
        kwargs["connect_args"] = {"timeout": 30.0, "isolation_level": None}
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs["pool_pre_ping"] = True
    return sa.create_engine(url, **kwargs)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
