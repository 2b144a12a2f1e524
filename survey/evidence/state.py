"""The store's state replayed from the ledger: cases, stored items and provenance links.

Nothing but the ledger says what the store holds: which cases exist with which tier and hold,
which files were added to which case and when, which were purged, and which derivation made
which output from which inputs. :func:`replay` folds the entries into a :class:`StoreState`
(memory grows with the number of items and derivations, not with the bytes stored).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from survey.evidence.ledger import LedgerEntry

_HEX64 = re.compile(r"[0-9a-f]{64}")

__all__ = ["CaseState", "ObjectState", "StoreState", "replay"]


@dataclass
class CaseState:
    """A case as the ledger leaves it.

    Attributes
    ----------
    case : str
    risk : str
        Its risk tier.
    hold : bool
        Under legal hold (never purged).
    hold_reason : str
    risk_assumed : bool
        The tier was the store's default, not given.
    seq : int
        The last ``case`` entry.
    """

    case: str
    risk: str
    hold: bool = False
    hold_reason: str = ""
    risk_assumed: bool = False
    seq: int = -1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "case": self.case,
            "risk": self.risk,
            "hold": self.hold,
            "hold_reason": self.hold_reason,
            "risk_assumed": self.risk_assumed,
            "seq": self.seq,
        }


@dataclass
class ObjectState:
    """One stored file (by SHA-256) as the ledger leaves it.

    Attributes
    ----------
    sha256 : str
    size : int
        Bytes.
    md5 : str
    present : bool
        Stored now (False once purged).
    cases : dict of str to str
        Case → UTC time of the latest addition to it (cleared by a purge).
    names : list of str
        Source paths it was added under (first first).
    seqs : list of int
        Entries that stored it (``add`` and ``derive`` with ``store_outputs``).
    """

    sha256: str
    size: int
    md5: str = ""
    present: bool = True
    cases: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


@dataclass
class StoreState:
    """Everything :func:`replay` learns from the ledger.

    Attributes
    ----------
    size : int
        Entries read.
    cases : dict of str to CaseState
    objects : dict of str to ObjectState
        Every file ever stored (``present`` says whether it still is).
    added : dict of str to list of int
        SHA-256 → seqs of the ``add`` entries of that file.
    produced_by : dict of str to list of int
        SHA-256 → seqs of the ``derive`` entries that list it among their outputs.
    derive_inputs : dict of int to list of str
        ``derive`` seq → its inputs' SHA-256.
    inputs_seen : set of str
        Every SHA-256 named as a derivation input.
    malformed : list of int
        Entries without the fields of their type (left out of the state; ``verify`` names
        them).
    """

    size: int = 0
    cases: dict[str, CaseState] = field(default_factory=dict)
    objects: dict[str, ObjectState] = field(default_factory=dict)
    added: dict[str, list[int]] = field(default_factory=dict)
    produced_by: dict[str, list[int]] = field(default_factory=dict)
    derive_inputs: dict[int, list[str]] = field(default_factory=dict)
    inputs_seen: set[str] = field(default_factory=set)
    malformed: list[int] = field(default_factory=list)

    def knows(self, sha256: str) -> bool:
        """True when the ledger names ``sha256`` anywhere (added, derived or an input)."""
        return sha256 in self.added or sha256 in self.produced_by or sha256 in self.inputs_seen


def _sha(value: Any) -> str:
    """A SHA-256 from an entry; anything else makes the entry malformed (a path in a
    tampered entry must never reach the file system)."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"not a SHA-256: {value!r}")
    return value


def _store(
    state: StoreState,
    entry: LedgerEntry,
    sha: str,
    size: int,
    md5: str,
    case: str | None,
    name: str,
) -> None:
    obj = state.objects.get(sha)
    if obj is None:
        obj = state.objects[sha] = ObjectState(sha, size, md5)
    obj.present = True
    obj.seqs.append(entry.seq)
    if md5 and not obj.md5:
        obj.md5 = md5
    if case is not None and not isinstance(case, str):
        raise ValueError(f"case {case!r} is not text")
    if case:
        obj.cases[case] = entry.time
    if name and name not in obj.names:
        obj.names.append(name)


def replay(
    entries: Iterable[LedgerEntry], *, state: StoreState | None = None, provenance: bool = True
) -> StoreState:
    """Fold ledger entries (in order) into a :class:`StoreState`.

    Parameters
    ----------
    entries : iterable of LedgerEntry
    state : StoreState, optional
        Continue from this state (updated in place) instead of an empty one.
    provenance : bool
        Also keep the provenance links (``added``, ``produced_by``, ``derive_inputs``,
        ``inputs_seen``), which grow with every entry; without them the state grows only
        with the cases and stored items (``verify`` runs so, in flat memory).
    """
    state = StoreState() if state is None else state
    for e in entries:
        state.size = e.seq + 1
        try:
            _apply(state, e, provenance)
        except (KeyError, TypeError, ValueError, AttributeError):
            state.malformed.append(e.seq)
    return state


def _apply(state: StoreState, e: LedgerEntry, provenance: bool) -> None:
    r = e.record
    if e.type == "add":
        sha = _sha(r["sha256"])
        if provenance:
            state.added.setdefault(sha, []).append(e.seq)
        _store(
            state,
            e,
            sha,
            int(r.get("size", 0)),
            str(r.get("md5", "")),
            r.get("case"),
            str(r.get("source", "")),
        )
    elif e.type == "derive":
        ins = [_sha(i["sha256"]) for i in r.get("inputs", [])]
        if provenance:
            state.derive_inputs[e.seq] = ins
            state.inputs_seen.update(ins)
        for out in r.get("outputs", []):
            sha = _sha(out["sha256"])
            if provenance:
                state.produced_by.setdefault(sha, []).append(e.seq)
            if out.get("stored"):
                _store(
                    state,
                    e,
                    sha,
                    int(out.get("size", 0)),
                    str(out.get("md5", "")),
                    r.get("case"),
                    str(out.get("path", "")),
                )
    elif e.type == "case":
        name = str(r["case"])
        cs = state.cases.get(name)
        if cs is None:
            cs = state.cases[name] = CaseState(name, str(r["risk"]))
        cs.risk = str(r["risk"])
        cs.hold = bool(r.get("hold", False))
        cs.hold_reason = str(r.get("hold_reason", "") or "")
        cs.risk_assumed = bool(r.get("risk_assumed", False))
        cs.seq = e.seq
    elif e.type == "purge":
        obj = state.objects.get(_sha(r["sha256"]))
        if obj is not None:
            obj.present = False
            obj.cases.clear()
