"""Database sessions of the case platform on the registry's engine, and its ledger entries."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from survey.registry import Registry
from survey.registry.engine import writing

__all__ = ["audit", "reading", "utc_now", "writing_session"]


def utc_now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A read-only transaction."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        yield s


@contextlib.contextmanager
def writing_session(engine: Engine) -> Iterator[Session]:
    """A transaction that writes (``BEGIN IMMEDIATE`` on SQLite), committed at the end and
    rolled back on any error."""
    with Session(writing(engine), expire_on_commit=False) as s, s.begin():
        yield s


def audit(
    registry: Registry,
    action: str,
    *,
    operator: str,
    parameters: Mapping[str, Any],
    case: str | None = None,
    evidence: Sequence[str] = (),
) -> int | None:
    """Record a write made through the platform in the custody ledger.

    The entry is a ``derive`` entry with command ``sitewatch registry web-<action>``, the
    user's name as operator and ``parameters`` as given; its sequence number is returned (None
    when the registry has no evidence store: the registry warns once).
    """
    return registry.custody.record(
        f"web-{action}", case=case, evidence=evidence, parameters=parameters, operator=operator
    )
