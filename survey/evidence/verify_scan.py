"""The one streaming pass of verification over the ledger: parse, chain, tree and checkpoints.

:func:`scan_entries` reads the ledger line by line, keeping only a compact Merkle range and
the previous entry's hash (constant memory), and notes in a :class:`LedgerScan` what it sees:
lines that are not entries, entries not in canonical form, breaks of the hash chain, seq
numbers out of place (looked at again by :mod:`.verify_order`), checkpoints whose root,
signature, store or fields are wrong. :func:`chain_problems` turns the chain breaks into named
modified entries; :func:`genesis_problems` checks that entry 0 is this store's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from survey.errors import LedgerFormatError
from survey.evidence.canonical import canonical_json
from survey.evidence.heads import head_signature_ok
from survey.evidence.ledger import GENESIS_PREV, LedgerEntry, iter_lines, parse_entry
from survey.evidence.merkle import CompactRange, leaf_hash
from survey.evidence.store_base import StoreBase
from survey.evidence.verify_report import Problem

__all__ = ["LedgerScan", "chain_problems", "genesis_problems", "scan_entries"]


@dataclass
class LedgerScan:
    """Running state of the one pass over the ledger."""

    store: StoreBase
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lines: int = 0
    tree: CompactRange = field(default_factory=CompactRange)
    prev_hash: str | None = None
    prev_seq: int | None = None
    breaks: list[int] = field(default_factory=list)  # entry seqs whose prev does not match
    seq_out_of_place: bool = False
    bad_roots: list[int] = field(default_factory=list)
    signed_size: int | None = None
    last_checkpoint_line: int = -1
    head_root_at: dict[int, bytes] = field(default_factory=dict)
    head_size: int | None = None
    head_line: Mapping[str, Any] | None = None  # the entry where head.json's checkpoint is


def scan_entries(scan: LedgerScan) -> Iterator[LedgerEntry]:
    """Walk the ledger, checking as it goes; yield the entries that parse (for the replay)."""
    store = scan.store
    path = store.ledger_path
    for lineno, line, complete in iter_lines(path):
        index = lineno - 1
        scan.lines = lineno
        guess = (scan.prev_seq + 1) if scan.prev_seq is not None else index
        if index == scan.head_size:
            scan.head_root_at[index] = scan.tree.root()
        if not complete:
            scan.lines = lineno - 1
            scan.notes.append(
                f"ledger line {lineno}: a partial entry of {len(line)} bytes at the end (an "
                "interrupted write); the next write removes it and records a repair"
            )
            break
        try:
            entry = parse_entry(line, path=path, lineno=lineno)
        except LedgerFormatError as exc:
            reason = str(exc).split(": ", 1)[1].split("; run")[0]
            scan.problems.append(
                Problem(
                    "not-an-entry",
                    f"ledger line {lineno} (where entry {guess} belongs) is not a ledger "
                    f"entry: {reason}",
                    (guess,),
                )
            )
            scan.prev_seq = guess
            scan.prev_hash = None  # named already: the next entry's prev is not checked
            scan.tree.append(leaf_hash(line))
            scan.seq_out_of_place = True
            continue
        if entry.seq != index:
            scan.seq_out_of_place = True
        if canonical_json(entry.record) != line:
            scan.problems.append(
                Problem(
                    "modified",
                    f"entry {entry.seq} is not in the canonical form the store writes (edited "
                    "by hand?)",
                    (entry.seq,),
                )
            )
        if scan.prev_seq is None:
            if entry.seq == 0 and entry.prev != GENESIS_PREV:
                scan.breaks.append(0)
        elif (
            entry.seq == scan.prev_seq + 1
            and scan.prev_hash is not None
            and entry.prev != scan.prev_hash
        ):
            scan.breaks.append(entry.seq)
        if index == scan.head_size:
            scan.head_line = entry.record
        if entry.type == "checkpoint":
            _check_checkpoint(scan, entry, index)
        scan.prev_seq, scan.prev_hash = entry.seq, entry.hash
        scan.tree.append(leaf_hash(line))
        yield entry
    if scan.head_size is not None and scan.head_size == scan.lines:
        scan.head_root_at[scan.lines] = scan.tree.root()


_CHECKPOINT_KEYS = {
    "algorithm",
    "frontier",
    "key_id",
    "prev",
    "root_hash",
    "seq",
    "signature",
    "store_id",
    "time",
    "timestamp",
    "tree_size",
    "type",
    "version",
}


def _check_checkpoint(scan: LedgerScan, entry: LedgerEntry, index: int) -> None:
    store = scan.store
    r = entry.record
    if not head_signature_ok(r, store.key):
        scan.problems.append(
            Problem(
                "signature",
                f"entry {entry.seq}: the checkpoint's signature does not verify with the "
                f"station key {store.key.key_id[:16]}… (altered, or signed by another key)",
                (entry.seq,),
            )
        )
    elif r.get("store_id") != store.config.store_id:
        scan.problems.append(
            Problem(
                "store",
                f"entry {entry.seq}: the checkpoint is of store {r.get('store_id')}, not "
                f"{store.config.store_id} (a ledger of another store was copied in)",
                (entry.seq,),
            )
        )
    unsigned = [k for k in sorted(set(r) - _CHECKPOINT_KEYS)] + [
        k for k in ("time", "frontier") if k not in r
    ]
    if unsigned or r.get("time") != r.get("timestamp"):
        scan.problems.append(
            Problem(
                "checkpoint",
                f"entry {entry.seq}: the checkpoint's fields were edited (time differs from the "
                f"signed timestamp, or fields added or removed: {', '.join(unsigned) or 'time'})",
                (entry.seq,),
            )
        )
    root_ok = (
        r.get("tree_size") == entry.seq == index and r.get("root_hash") == scan.tree.root().hex()
    )
    if not root_ok:
        scan.bad_roots.append(entry.seq)
    else:
        scan.signed_size = entry.seq
        if r.get("frontier") != [h.hex() for h in scan.tree.hashes]:
            scan.problems.append(
                Problem(
                    "checkpoint",
                    f"entry {entry.seq}: the checkpoint's frontier is not the tree of the "
                    "entries before it (edited)",
                    (entry.seq,),
                )
            )
    scan.last_checkpoint_line = index


def chain_problems(breaks: list[int], last_seq: int | None) -> list[Problem]:
    """Group prev-hash breaks into named modified entries (see the module docstring).

    ``breaks`` are the seqs whose ``prev`` does not match the entry before them; a break at
    the ledger's last entry names it too (no later entry can tell which of the two changed).
    """
    out: list[Problem] = []
    i = 0
    while i < len(breaks):
        j = i
        while j + 1 < len(breaks) and breaks[j + 1] == breaks[j] + 1:
            j += 1
        a, b = breaks[i], breaks[j]
        i = j + 1
        if a == 0:
            out.append(Problem("modified", "entry 0: its prev is not 64 zeros (modified)", (0,)))
            a += 1
            if a > b:
                continue
        if a == b and b != last_seq:
            out.append(
                Problem(
                    "modified",
                    f"entry {a - 1} modified: its SHA-256 is not the prev recorded by entry {a}",
                    (a - 1,),
                )
            )
        elif a == b:
            out.append(
                Problem(
                    "modified",
                    f"entry {a - 1} modified, or the prev of entry {a} (the last) edited: they "
                    "do not chain",
                    (a - 1, a),
                )
            )
        else:
            named = tuple(range(a - 1, b + (1 if b == last_seq else 0)))
            out.append(
                Problem(
                    "modified",
                    f"entries {a}..{named[-1]} modified (their SHA-256 and prev do not chain), "
                    f"and entry {a - 1} modified or entry {a}'s prev edited",
                    named,
                )
            )
    return out


def genesis_problems(scan: LedgerScan) -> None:
    """The first entry must be this store's, with this key."""
    store = scan.store
    try:
        with open(store.ledger_path, "rb") as fh:
            first = fh.readline().rstrip(b"\n")
        record = json.loads(first)
    except (OSError, ValueError):
        return  # named already as a line that is not an entry
    if not isinstance(record, dict) or record.get("type") != "store":
        return
    if record.get("store_id") != store.config.store_id:
        scan.problems.append(
            Problem(
                "store",
                f"entry 0 is of store {record.get('store_id')}, but "
                f"{os.path.basename(store.root)}'s marker says {store.config.store_id}",
                (0,),
            )
        )
    if record.get("key_id") != store.key.key_id:
        scan.problems.append(
            Problem(
                "store",
                "entry 0 names another station key than keys/station.pub (the key was replaced)",
                (0,),
                "keys/station.pub",
            )
        )
