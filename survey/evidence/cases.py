"""Case ids and risk tiers: what a case may be called and which tiers a store knows.

A case id is what an enforcement bureau files the evidence under (``2024-017``,
``XM-SiMing.0042``): letters, digits, ``-``, ``_`` and ``.``, starting with a letter or
digit, at most 128 characters, never ``..``. It ends up in file names of archive sets, so
anything that could climb out of a folder (``/``, ``\\``, ``..``) or hide (a leading dot) is
refused in one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from survey.errors import CaseIdError, EvidenceInputError

__all__ = ["CASE_ID_PATTERN", "validate_case_id", "validate_risk"]

CASE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Letters, digits, ``-``, ``_``, ``.``; a letter or digit first; 1 to 128 characters."""


def validate_case_id(case: str) -> str:
    """Return ``case`` if it is a usable case id.

    Raises
    ------
    CaseIdError
        One line naming the id, what is wrong and an example of a good one.

    Examples
    --------
    >>> validate_case_id("2024-017")
    '2024-017'
    """
    if not isinstance(case, str):
        raise CaseIdError(f"case id {case!r} is not text; use e.g. 2024-017")
    if CASE_ID_PATTERN.fullmatch(case) and ".." not in case:
        return case
    if not case:
        reason = "is empty"
    elif "/" in case or "\\" in case:
        reason = "has a path separator"
    elif ".." in case:
        reason = "has '..'"
    elif len(case) > 128:
        reason = f"has {len(case)} characters (at most 128)"
    elif not case[0].isascii() or not case[0].isalnum():
        reason = f"starts with {case[0]!r}"
    else:
        bad = sorted({c for c in case if not (c.isascii() and (c.isalnum() or c in "._-"))})
        reason = "has " + ", ".join(repr(c) for c in bad)
    raise CaseIdError(
        f"case id {case!r} {reason}; use letters, digits, '-', '_' and '.' only, starting "
        "with a letter or digit (e.g. 2024-017)"
    )


def validate_risk(risk: str, tiers: Iterable[str]) -> str:
    """Return ``risk`` if it is one of the store's ``tiers``.

    Raises
    ------
    EvidenceInputError
        An unknown tier, with the known ones.
    """
    known = list(tiers)
    if risk not in known:
        raise EvidenceInputError(
            f"risk tier {risk!r} is not one of this store's tiers ({', '.join(known)}); "
            "give one of them"
        )
    return risk
