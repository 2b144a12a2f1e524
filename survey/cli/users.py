"""``sitewatch users``: accounts of the case platform (``sitewatch serve``).

Subcommands::

    add NAME --role ROLE [--team T] [--name TEXT] [--language zh_CN|en] [--timezone ZONE]
    passwd NAME                       a new password (its sessions end)
    disable NAME [--enable]           refuse (or allow again) its logins; its sessions end
    list                              every user

Roles: operator (uploads surveys, sees its team's sites), analyst (reviews and changes lead
states, comments, builds packages), supervisor (reads and verifies everything, changes
nothing), admin (manages users). A password is asked for twice on a terminal, read from the
first line of standard input with ``--password-stdin``, or made up and printed once with
``--generate``. Each change is recorded in the custody ledger of the registry's evidence store
(``--store`` or ``db set-store``). Each takes ``--db`` and ``--json``.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click

from survey.cli.db import (
    change_options,
    db_option,
    echo_json,
    echo_table,
    json_option,
    open_registry,
    store_option,
    user_option,
)

__all__ = ["command"]

_ROLES = ("operator", "analyst", "supervisor", "admin")


def _password(generate: bool, from_stdin: bool) -> tuple[str, bool]:
    """The new password and whether it was made up here (to be printed once)."""
    if generate:
        return secrets.token_urlsafe(12), True
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return click.prompt("Password", hide_input=True, confirmation_prompt=True), False


def _audit(
    db: str | None, store: Path | None, who: str | None, action: str, **params: object
) -> None:
    from survey.registry.core import system_user
    from survey.web.db import audit

    with open_registry(db, store=store) as reg:
        operator = who or system_user()
        audit(reg, action, operator=operator, parameters=params)


@click.group(name="users")
def command() -> None:
    """Accounts of the case platform: add, passwd, disable, list."""


@command.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(_ROLES), required=True, help="What the user may do.")
@click.option("--team", help="The team (operators see its sites only).")
@click.option("--name", "display_name", help="The name shown on pages (default NAME).")
@click.option("--language", type=click.Choice(["zh_CN", "en"]), default="zh_CN", show_default=True)
@click.option("--timezone", default="Asia/Shanghai", show_default=True, help="IANA time zone.")
@click.option("--generate", is_flag=True, help="Make up a password and print it once.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@change_options
def add_cmd(
    name: str,
    role: str,
    team: str | None,
    display_name: str | None,
    language: str,
    timezone: str,
    generate: bool,
    password_stdin: bool,
    db: str | None,
    store: Path | None,
    user: str | None,
    as_json: bool,
) -> None:
    """Add the user NAME with a role."""
    from survey.web.accounts import add_user

    password, made_up = _password(generate, password_stdin)
    with open_registry(db, create=True, store=store) as reg:
        added = add_user(
            reg.engine,
            name,
            role,
            password,
            team=team,
            display_name=display_name,
            language=language,
            timezone=timezone,
        )
    _audit(db, store, user, "user-add", user=added.username, role=added.role, team=added.team)
    out = added.to_dict()
    if made_up:
        out["password"] = password
    if as_json:
        echo_json(out)
        return
    click.echo(
        f"added {added.username} ({added.role}{', team ' + added.team if added.team else ''})"
    )
    if made_up:
        click.echo(f"password (shown once): {password}")


@command.command(name="passwd")
@click.argument("name")
@click.option("--generate", is_flag=True, help="Make up a password and print it once.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@db_option
@store_option
@user_option
def passwd_cmd(
    name: str,
    generate: bool,
    password_stdin: bool,
    db: str | None,
    store: Path | None,
    user: str | None,
) -> None:
    """Give NAME a new password (its sessions end)."""
    from survey.web.accounts import find_user, set_password

    with open_registry(db, store=store) as reg:
        find_user(reg.engine, name)
        password, made_up = _password(generate, password_stdin)
        set_password(reg.engine, name, password)
    _audit(db, store, user, "password", user=name)
    click.echo(f"new password for {name}" + (f" (shown once): {password}" if made_up else ""))


@command.command(name="disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Allow the user's logins again.")
@db_option
@store_option
@user_option
def disable_cmd(
    name: str, enable: bool, db: str | None, store: Path | None, user: str | None
) -> None:
    """Refuse NAME's logins and end its sessions (``--enable``: allow them again)."""
    from survey.web.accounts import set_disabled

    with open_registry(db, store=store) as reg:
        set_disabled(reg.engine, name, not enable)
    _audit(db, store, user, "user-update", user=name, disabled=not enable)
    click.echo(f"{name} {'enabled' if enable else 'disabled'}")


@command.command(name="list")
@db_option
@json_option
def list_cmd(db: str | None, as_json: bool) -> None:
    """Every user, by name."""
    from survey.web.accounts import list_users

    with open_registry(db) as reg:
        users = list_users(reg.engine)
    if as_json:
        echo_json([u.to_dict() for u in users])
        return
    echo_table(
        [
            (u.username, u.display_name, u.role, u.team, "disabled" if u.disabled else "active")
            for u in users
        ],
        ["user", "name", "role", "team", "status"],
    )
