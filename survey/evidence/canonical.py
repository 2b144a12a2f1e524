"""Canonical JSON: the one byte form of a ledger entry or a signed tree head.

A ledger line is hashed and signed as bytes, so the same record must always give the same
bytes: keys sorted, no spaces, UTF-8 (``ensure_ascii=False``), no NaN or infinity. Values the
store is handed (parameters of a pipeline stage) are first made JSON-ready by
:func:`to_jsonable`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import os
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from survey.errors import EvidenceInputError

__all__ = ["canonical_json", "to_jsonable", "utc_text"]


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The canonical bytes of ``record`` (sorted keys, compact separators, UTF-8).

    Parameters
    ----------
    record : mapping
        JSON-ready values only (see :func:`to_jsonable`).

    Returns
    -------
    bytes
        No trailing newline.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": "é"})
    b'{"a":"\\xc3\\xa9","b":1}'
    """
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def utc_text(when: dt.datetime) -> str:
    """``when`` as ISO 8601 UTC with microseconds and a ``Z`` (naive times are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_jsonable(value: Any, *, where: str = "value") -> Any:
    """``value`` as plain JSON types: dataclasses, enums, paths, datetimes, numpy scalars and
    arrays, tuples and sets are converted; anything else raises.

    Parameters
    ----------
    value : Any
    where : str
        What ``value`` is, for the error message (e.g. ``"parameters['gsd']"``).

    Raises
    ------
    EvidenceInputError
        A value with no JSON form (an object, a NaN or infinite float).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EvidenceInputError(
                f"{where} is {value}, which JSON cannot hold; give a finite number or None"
            )
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, where=where)
    if isinstance(value, PurePath | os.PathLike):
        return os.fspath(value)
    if isinstance(value, dt.datetime):
        return utc_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value), where=where)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise EvidenceInputError(
                    f"{where} has the key {k!r}, which is not text; use text keys"
                )
            out[k] = to_jsonable(v, where=f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(items)]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return to_jsonable(tolist(), where=where)
    raise EvidenceInputError(
        f"{where} is a {type(value).__name__}, which has no JSON form; record plain numbers, "
        "text, lists or dicts"
    )
