"""Alembic environment of the registry.

Run through :func:`survey.registry.migrate.upgrade`, which hands over an open connection in
``config.attributes["connection"]``; ``alembic -x url=...`` with a hand-made config works too
(``sqlalchemy.url`` in the config). Batch mode is on so that SQLite can alter tables.
"""

from __future__ import annotations

from alembic import context

from survey.registry.engine import create_registry_engine, resolve_url
from survey.registry.models import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # pragma: no cover - developers running alembic by hand
    url = resolve_url(config.get_main_option("sqlalchemy.url"))
    engine = create_registry_engine(url)
    with engine.connect() as conn:
        _run(conn)
