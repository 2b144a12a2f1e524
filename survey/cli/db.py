"""``sitewatch db``: the registry database itself (:mod:`survey.registry`).

Subcommands::

    upgrade [--db DB]            bring the registry to this sitewatch's schema (data kept)
    current [--db DB] [--json]   the schema revision it has and the one this sitewatch needs
    set-store DIR [--db DB]      the evidence store its changes are recorded in

Every registry command takes ``--db`` (a SQLite file or a ``postgresql://`` URL), else
``$SITEWATCH_DB``, else ``./sitewatch.db``. This module also holds the options and printing
the registry commands (``sites``, ``permits``, ``existing``, ``schedule``, ``surveys``,
``leads``) share.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from survey.cli._common import is_quiet

if TYPE_CHECKING:
    from survey.registry import Registry

__all__ = [
    "change_options",
    "command",
    "db_option",
    "echo_json",
    "echo_table",
    "json_option",
    "open_registry",
    "store_option",
    "user_option",
]

F = TypeVar("F", bound=Callable[..., Any])

db_option: Callable[[F], F] = click.option(
    "--db",
    "db",
    metavar="PATH_OR_URL",
    help="Registry: a SQLite file or postgresql://user@host/db (default $SITEWATCH_DB, then "
    "./sitewatch.db).",
)
json_option: Callable[[F], F] = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)
store_option: Callable[[F], F] = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Evidence store to record the change in (default: the registry's, `db set-store`).",
)
user_option: Callable[[F], F] = click.option(
    "--user", help="Who makes the change (default: the operating-system user)."
)


def change_options(func: F) -> F:
    """``--db``, ``--store``, ``--user`` and ``--json``: the options of every command that
    changes the registry (each change is recorded in the evidence store, by someone)."""
    return db_option(store_option(user_option(json_option(func))))


def open_registry(db: str | None, *, create: bool = False, store: Path | None = None) -> Registry:
    """Open the registry of ``--db`` (created when ``create``, else it must exist)."""
    from survey.registry import Registry

    return Registry.open(db, create=create, store=store)


def echo_json(value: Any, *, compact: bool = False) -> None:
    """Print ``value`` as JSON (UTF-8 text as it is)."""
    if compact:
        click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    else:
        click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _cells(column: Sequence[Any]) -> list[str]:
    """A column's values as table text (numbers with one decimal, None as ``-``); a column of
    one type is converted in one pass."""
    kinds = set(map(type, column))
    if kinds == {str}:
        return list(column)
    if kinds <= {int, dt.date}:
        return list(map(str, column))
    return [
        "-"
        if v is None
        else f"{v:.1f}"
        if type(v) is float
        else ("yes" if v else "no")
        if type(v) is bool
        else str(v)
        for v in column
    ]


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal (CJK characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def echo_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Print rows as aligned columns under ``headers`` (one write; converted column by column
    and laid out with one format string, so that 100,000 leads print in a fraction of a
    second)."""
    columns = [_cells(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in headers]
    specs: list[str] = []
    for i, (header, cells) in enumerate(zip(headers, columns, strict=True)):
        if i == len(headers) - 1:
            specs.append("{}")
            continue
        if "".join(cells).isascii():
            specs.append(f"{{:<{max([len(header), *map(len, cells)])}}}")
            continue
        # wide (CJK) characters take two columns: pad by display width
        width = max([_width(header), *map(_width, cells)])
        columns[i] = [c + " " * (width - _width(c)) for c in cells]
        specs.append("{}")
        headers = [*headers[:i], header + " " * (width - _width(header)), *headers[i + 1 :]]
    fmt = "  ".join(specs)
    lines = [fmt.format(*headers).rstrip()]
    lines.extend(fmt.format(*row).rstrip() for row in zip(*columns, strict=True))
    click.echo("\n".join(lines))


@click.group(name="db")
def command() -> None:
    """The registry database: schema upgrades, revision, evidence store."""


@command.command(name="upgrade")
@db_option
@click.option(
    "--revision", default="head", show_default=True, help="Schema revision to upgrade to."
)
@json_option
def upgrade_cmd(db: str | None, revision: str, as_json: bool) -> None:
    """Bring the registry to this sitewatch's schema, keeping its data (creates a new one)."""
    from survey.registry.engine import create_registry_engine, describe_url, resolve_url
    from survey.registry.migrate import schema_state, upgrade

    url = resolve_url(db)
    engine = create_registry_engine(url)
    try:
        before = schema_state(engine)
        after = upgrade(engine, revision)
    finally:
        engine.dispose()
    if as_json:
        echo_json({"db": describe_url(url), "from": before.revision, "to": after.revision})
    elif not is_quiet():
        if before.revision == after.revision:
            click.echo(f"{describe_url(url)}: already at schema {after.revision}")
        else:
            click.echo(
                f"{describe_url(url)}: schema {before.revision or '(new)'} -> {after.revision}"
            )


@command.command(name="current")
@db_option
@json_option
def current_cmd(db: str | None, as_json: bool) -> None:
    """The schema revision of the registry and the one this sitewatch needs."""
    from survey.registry.engine import create_registry_engine, describe_url, resolve_url
    from survey.registry.errors import NotARegistryError
    from survey.registry.migrate import schema_state

    url = resolve_url(db)
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path is not None and not Path(path).exists():
        raise NotARegistryError(f"{path}: no registry here; `sitewatch db upgrade` creates one")
    engine = create_registry_engine(url)
    try:
        state = schema_state(engine)
    finally:
        engine.dispose()
    if as_json:
        echo_json(
            {
                "db": describe_url(url),
                "revision": state.revision,
                "head": state.head,
                "status": state.status,
            }
        )
        return
    advice = {
        "current": "up to date",
        "old": "run `sitewatch db upgrade`",
        "newer": "made by a newer sitewatch: upgrade sitewatch",
        "empty": "empty: `sitewatch db upgrade` makes it a registry",
        "foreign": "not a sitewatch registry",
    }[state.status]
    click.echo(
        f"{describe_url(url)}: schema {state.revision or '-'} (this sitewatch: {state.head}); "
        f"{advice}"
    )


@command.command(name="set-store")
@click.argument("store", type=click.Path(file_okay=False, path_type=Path))
@db_option
def set_store_cmd(store: Path, db: str | None) -> None:
    """Record STORE as the evidence store the registry's changes go to."""
    reg = open_registry(db, create=True)
    try:
        value = reg.set_evidence_store(store)
    finally:
        reg.close()
    if not is_quiet():
        click.echo(f"{reg.where}: changes are recorded in the evidence store {value}")
