"""Schema versions of the registry: Alembic run from the package, no ``alembic.ini``.

The migrations ship inside the package (``survey/registry/migrations``); :func:`upgrade`
points Alembic at them and runs them on an open connection, in one transaction on
PostgreSQL and on SQLite. SQLite rebuilds a table to change a column, so foreign keys are
switched off while the migrations run (a rebuilt table would otherwise cascade deletes into
the rows that refer to it) and checked afterwards; rows made by an older revision are kept
(tested on a file made by the first revision).

:func:`schema_state` tells where a database stands: ``empty`` (no tables: a new registry),
``current``, ``old`` (run ``sitewatch db upgrade``), ``newer`` (made by a newer sitewatch) or
``foreign`` (tables, but not a registry's).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from survey.registry.engine import describe_url, is_sqlite, writing
from survey.registry.errors import NotARegistryError, RegistryError, RegistryVersionError

if TYPE_CHECKING:  # Alembic is imported by upgrade() only (start-up: survey.registry)
    from alembic.config import Config

__all__ = [
    "MIGRATIONS",
    "SchemaState",
    "alembic_config",
    "head_revision",
    "known_revisions",
    "schema_state",
    "upgrade",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The folder of the registry's Alembic environment and revisions."""


def alembic_config() -> Config:
    """An Alembic configuration for the shipped migrations (no file on disk)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@lru_cache(maxsize=1)
def _revision_chain() -> tuple[str, ...]:
    """The shipped revisions, oldest first, read from the ``revision`` and ``down_revision``
    assignments of ``migrations/versions/*.py`` without importing them or Alembic (which
    costs a fifth of a second at every start; a test checks this agrees with Alembic's own
    reading)."""
    down: dict[str | None, str] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in ("revision", "down_revision")
            ):
                values[node.targets[0].id] = ast.literal_eval(node.value)
        if "revision" not in values:
            continue
        parent = values.get("down_revision")
        if not isinstance(values["revision"], str) or not isinstance(parent, str | None):
            raise RegistryError(f"{path}: revision ids must be text; this is a broken install")
        if parent in down:
            raise RegistryError(
                f"{path}: a second revision after {parent}; this is a broken install"
            )
        down[parent] = values["revision"]
    chain: list[str] = []
    at: str | None = None
    while at in down:
        at = down[at]
        chain.append(at)
    if not chain or len(chain) != len(down):
        raise RegistryError(f"{MIGRATIONS}: the revisions do not form one chain; broken install")
    return tuple(chain)


def head_revision() -> str:
    """The newest revision this sitewatch knows."""
    return _revision_chain()[-1]


def known_revisions() -> list[str]:
    """Every revision this sitewatch knows, oldest first."""
    return list(_revision_chain())


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands.

    Attributes
    ----------
    status : str
        ``empty``, ``current``, ``old``, ``newer`` or ``foreign``.
    revision : str or None
        The revision recorded in the database (``alembic_version``).
    head : str
        The newest revision this sitewatch knows.
    """

    status: str
    revision: str | None
    head: str


def schema_state(engine: Engine) -> SchemaState:
    """Read the revision recorded in the database and compare it with the known ones.

    Raises
    ------
    NotARegistryError
        The database cannot be read (a file that is not a database, a server refusing).
    """
    head = head_revision()
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            revision = None
            if "alembic_version" in tables:  # what Alembic's MigrationContext reads
                versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
                if len(versions) > 1:
                    raise NotARegistryError(
                        f"{describe_url(engine.url)}: records {len(versions)} schema revisions "
                        "at once, which no sitewatch writes; give a sitewatch registry"
                    )
                revision = str(versions[0][0]) if versions else None
    except sa.exc.DBAPIError as exc:
        raise NotARegistryError(
            f"{describe_url(engine.url)}: cannot be read as a database "
            f"({_first_line(exc.orig)}); give a sitewatch registry (a .db file or a "
            "postgresql:// URL)"
        ) from exc
    if revision is None:
        return SchemaState("empty" if not tables else "foreign", None, head)
    if revision == head:
        return SchemaState("current", revision, head)
    if revision in known_revisions():
        return SchemaState("old", revision, head)
    return SchemaState("newer", revision, head)


def _first_line(exc: BaseException | None) -> str:
    text = " ".join(str(exc).split()) if exc is not None else "unknown error"
    return text[:200]


def refuse_unusable(engine: Engine, state: SchemaState) -> None:
    """One line for a database this sitewatch cannot use as it is (newer, older, foreign)."""
    where = describe_url(engine.url)
    if state.status == "newer":
        raise RegistryVersionError(
            f"{where}: made by a newer sitewatch (schema revision {state.revision}; this "
            f"sitewatch knows up to {state.head}); upgrade sitewatch (pip install -U sitewatch) "
            "before opening it — nothing was changed"
        )
    if state.status == "old":
        raise RegistryVersionError(
            f"{where}: the registry has schema revision {state.revision}, this sitewatch needs "
            f"{state.head}; run `sitewatch db upgrade --db {where}` (its data is kept)"
        )
    if state.status == "foreign":
        raise NotARegistryError(
            f"{where}: a database with tables but no sitewatch schema revision, not a sitewatch "
            "registry; give another --db (a new file is created on first use)"
        )


def upgrade(engine: Engine, revision: str = "head") -> SchemaState:
    """Bring the database to ``revision`` (default the newest), keeping its data.

    Parameters
    ----------
    engine : Engine
        From :func:`survey.registry.engine.create_registry_engine`.
    revision : str
        A revision id (``"0001"``) or ``"head"``.

    Returns
    -------
    SchemaState
        Where the schema stands afterwards.

    Raises
    ------
    RegistryVersionError
        The database was made by a newer sitewatch (nothing is changed).
    NotARegistryError
        The database holds tables that are not a registry's, or cannot be read.
    RegistryError
        A migration failed (nothing is changed: the transaction is rolled back).
    """
    before = schema_state(engine)
    if before.status in ("newer", "foreign"):
        refuse_unusable(engine, before)
    if revision != "head" and revision not in known_revisions():
        raise RegistryError(
            f"schema revision {revision!r} is not one this sitewatch knows "
            f"({', '.join(known_revisions())}); give one of them or head"
        )
    from alembic import command

    config = alembic_config()
    sqlite = is_sqlite(engine.url)
    with writing(engine).connect() as conn:
        if sqlite:  # before the transaction begins: the pragma is a no-op inside one
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                config.attributes["connection"] = conn
                try:
                    command.upgrade(config, revision)
                except sa.exc.DBAPIError as exc:
                    raise RegistryError(
                        f"{describe_url(engine.url)}: migrating to {revision} failed "
                        f"({_first_line(exc.orig)}); nothing was changed"
                    ) from exc
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RegistryError(
                            f"{describe_url(engine.url)}: migrating to {revision} left "
                            f"{len(broken)} row(s) pointing at missing rows (first: "
                            f"{tuple(broken[0])}); nothing was changed — report this"
                        )
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    return schema_state(engine)
