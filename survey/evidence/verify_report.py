"""What verification found: :class:`Problem` (one thing wrong, naming entries or a file) and
:class:`VerifyReport` (every problem and note of one
:func:`survey.evidence.verify.verify_store`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Problem", "VerifyReport", "span"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a store.

    Attributes
    ----------
    kind : str
        ``not-an-entry``, ``modified``, ``deleted``, ``inserted``, ``reordered``,
        ``checkpoint``, ``signature``, ``head``, ``store``, ``file-missing``,
        ``file-modified``.
    message : str
        One line naming the entry (seq) or file and what is wrong.
    seqs : tuple of int
        The entries it names.
    path : str or None
        The file it names, relative to the store.
    """

    kind: str
    message: str
    seqs: tuple[int, ...] = ()
    path: str | None = None

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "kind": self.kind,
            "message": self.message,
            "seqs": list(self.seqs),
            "path": self.path,
        }


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_store` found.

    Attributes
    ----------
    store : str
    entries : int
        Ledger lines read.
    objects : int
        Stored files checked.
    signed_size : int or None
        Entries covered by the last valid signed checkpoint.
    problems : tuple of Problem
    notes : tuple of str
    """

    store: str
    entries: int
    objects: int
    signed_size: int | None
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    @property
    def named_seqs(self) -> set[int]:
        """Every entry a problem names."""
        return {s for p in self.problems for s in p.seqs}

    @property
    def named_paths(self) -> set[str]:
        """Every file a problem names."""
        return {p.path for p in self.problems if p.path}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "store": self.store,
            "ok": self.ok,
            "entries": self.entries,
            "objects": self.objects,
            "signed_size": self.signed_size,
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
        }


def span(first: int, last: int) -> str:
    """``entry 7`` or ``entries 7..9``."""
    return f"entry {first}" if first == last else f"entries {first}..{last}"
