"""Verification of a store: the chain, the signed tree heads, ``head.json`` and every file.

:func:`verify_store` reads the ledger once, streaming, in constant memory for the ledger
itself (a compact Merkle range, the previous line's hash; memory grows only with the number
of stored items, whose files are checked at the end). It reports every problem it can name:

* a line that is not an entry (not JSON, missing fields) — by line and the entry expected there;
* a modified entry — the hash chain breaks after it (``prev`` of the next entry differs);
  ``prev`` breaks are grouped: one break after entry ``k`` names ``k``; a run of breaks
  names every entry of the run (an entry whose ``prev`` was edited breaks on both sides);
* deleted, inserted and reordered entries — from the ``seq`` numbers in file order: missing
  numbers are deleted entries, a number seen twice is an inserted copy, and entries out of
  order are those outside a longest increasing run of numbers (plus the neighbour they were
  swapped with). This second look runs only when a number is out of place;
* checkpoints whose root does not match the entries before them, or whose signature does not
  verify with the station key, or that name another store or key;
* ``head.json`` (the latest signed head, kept beside the ledger) that the ledger no longer
  contains — a ledger cut short or rewritten;
* a stored file missing, or whose SHA-256 is no longer its name.

Notes (not problems): entries after the last signed head, a torn last line (an interrupted
write, removed by the next writer), files no entry records (an add killed between placing
and recording), purged files still present, stored files that are not read-only.

:func:`check_head` proves that an exported head is a prefix of today's ledger (RFC 9162
consistency proof) — a forked or rewritten ledger fails it.

This module is longer than most (about 750 lines): the one pass and the rules that turn what
it sees into named entries and files are one subject, and they are tested as one.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import LedgerFormatError
from survey.evidence.canonical import canonical_json
from survey.evidence.heads import head_signature_ok
from survey.evidence.keys import StationKey
from survey.evidence.ledger import GENESIS_PREV, LedgerEntry, entry_hash, iter_lines, parse_entry
from survey.evidence.merkle import CompactRange, MerkleTree, leaf_hash, verify_consistency
from survey.evidence.objects import hash_file, object_relpath
from survey.evidence.state import replay

if TYPE_CHECKING:
    from survey.evidence.store import EvidenceStore

__all__ = ["HeadCheck", "Problem", "VerifyReport", "check_head", "verify_store"]


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


@dataclass
class _Scan:
    """Running state of the one pass over the ledger."""

    store: EvidenceStore
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


def _entries(scan: _Scan) -> Iterator[LedgerEntry]:
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


def _check_checkpoint(scan: _Scan, entry: LedgerEntry, index: int) -> None:
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


def _chain_problems(breaks: list[int], last_seq: int | None) -> list[Problem]:
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


def _longest_increasing(values: list[int]) -> set[int]:
    """Positions of one longest strictly increasing subsequence of ``values``."""
    tails: list[int] = []
    tail_pos: list[int] = []
    parent = [-1] * len(values)
    for pos, v in enumerate(values):
        k = bisect.bisect_left(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_pos.append(pos)
        else:
            tails[k] = v
            tail_pos[k] = pos
        parent[pos] = tail_pos[k - 1] if k else -1
    keep: set[int] = set()
    pos = tail_pos[-1] if tail_pos else -1
    while pos != -1:
        keep.add(pos)
        pos = parent[pos]
    return keep


def _order_problems(path: Path, unreadable: set[int], key: StationKey) -> list[Problem]:
    """The second look when seq numbers are out of place: deleted, inserted, reordered.

    ``unreadable`` are the entries already named as lines that are not entries. An entry is
    credible when its ``prev`` is the hash of an entry numbered one less, or when it is a
    checkpoint signed by the station for its own position; the ledger's end is the last
    credible entry, and entries numbered beyond it are inserted.
    """
    rows: list[tuple[int, int, str, str]] = []  # (line index, seq, prev, hash)
    signed: set[int] = set()  # line indexes of checkpoints the station signed for their seq
    for lineno, line, complete in iter_lines(path):
        if not complete:
            break
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        seq = record.get("seq") if isinstance(record, dict) else None
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
            rows.append((lineno - 1, seq, str(record.get("prev")), entry_hash(line)))
            if (
                record.get("type") == "checkpoint"
                and record.get("tree_size") == seq
                and head_signature_ok(record, key)
            ):
                signed.add(lineno - 1)
    by_seq: dict[int, list[tuple[int, int, str, str]]] = {}
    for row in rows:
        by_seq.setdefault(row[1], []).append(row)

    def anchored(row: tuple[int, int, str, str]) -> bool:
        if row[1] == 0:
            return row[2] == GENESIS_PREV
        return any(row[2] == other[3] for other in by_seq.get(row[1] - 1, ()))

    problems: list[Problem] = []
    kept: set[int] = set()  # line indexes
    for seq, copies in by_seq.items():
        keep = copies[0]
        if len(copies) > 1:
            chained = [r for r in copies if anchored(r)]
            in_place = [r for r in copies if r[0] == seq]
            keep = chained[0] if len(chained) == 1 else (in_place or copies)[0]
            for r in copies:
                if r is not keep:
                    problems.append(
                        Problem(
                            "inserted",
                            f"ledger line {r[0] + 1}: a second entry {seq} (inserted; the "
                            f"other is at line {keep[0] + 1})",
                            (seq,),
                        )
                    )
        kept.add(keep[0])
    credible = [r[1] for r in rows if r[0] in kept and (anchored(r) or r[0] in signed)]
    top = max(credible) if credible else max(by_seq, default=-1)
    for r in rows:
        if r[0] in kept and r[1] > top:
            kept.discard(r[0])
            problems.append(
                Problem(
                    "inserted",
                    f"ledger line {r[0] + 1}: entry {r[1]} is beyond the ledger's last "
                    f"entry {top} (inserted)",
                    (r[1],),
                )
            )
    missing = [s for s in range(top + 1) if s not in by_seq and s not in unreadable]
    for run_start, run_end in _runs(missing):
        named = tuple(range(run_start, min(run_end, run_start + 9999) + 1))
        what = _span(run_start, run_end)
        problems.append(Problem("deleted", f"{what} missing from the ledger (deleted)", named))
    ordered = [r for r in rows if r[0] in kept]
    values = [r[1] for r in ordered]
    keep_pos = _longest_increasing(values)
    moved = {p for p in range(len(values)) if p not in keep_pos}
    for p in range(len(values) - 1):  # an adjacent swap: name both
        if values[p] == values[p + 1] + 1 and (p in moved or p + 1 in moved):
            moved.update((p, p + 1))
    for p in sorted(moved):
        index, seq = ordered[p][0], ordered[p][1]
        after = f"after entry {values[p - 1]}" if p else "first"
        problems.append(
            Problem(
                "reordered",
                f"entry {seq} is out of order (at ledger line {index + 1}, {after})",
                (seq,),
            )
        )
    return problems


def _span(first: int, last: int) -> str:
    """``entry 7`` or ``entries 7..9``."""
    return f"entry {first}" if first == last else f"entries {first}..{last}"


def _runs(values: list[int]) -> Iterator[tuple[int, int]]:
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        yield values[i], values[j]
        i = j + 1


def _read_head_file(scan: _Scan) -> Mapping[str, Any] | None:
    store = scan.store
    try:
        head = json.loads(store.head_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        scan.problems.append(
            Problem(
                "head",
                "head.json is missing (the store's copy of its latest signed head)",
                path="head.json",
            )
        )
        return None
    except (OSError, ValueError) as exc:
        scan.problems.append(Problem("head", f"head.json cannot be read ({exc})", path="head.json"))
        return None
    if not isinstance(head, dict) or not head_signature_ok(head, store.key):
        scan.problems.append(
            Problem(
                "head",
                "head.json: its signature does not verify with the station key (altered)",
                path="head.json",
            )
        )
        return None
    if not isinstance(head.get("tree_size"), int):
        return None
    scan.head_size = int(head["tree_size"])
    return head


def _check_head_file(scan: _Scan, head: Mapping[str, Any]) -> None:
    """head.json is the checkpoint entry at seq ``tree_size``: the ledger must still hold
    that very entry, after the same ``tree_size`` entries."""
    size = int(head["tree_size"])
    if size >= scan.lines:
        named = tuple(range(scan.lines, size + 1))
        scan.problems.append(
            Problem(
                "deleted",
                f"{_span(scan.lines, size)} missing: head.json (signed) is the checkpoint at "
                f"entry {size}, the ledger holds {scan.lines} entries (cut short)",
                named,
                "head.json",
            )
        )
    elif scan.head_root_at.get(size, b"").hex() != head.get("root_hash"):
        scan.problems.append(
            Problem(
                "head",
                f"the ledger's first {size} entries are not those head.json signed (rewritten)",
                (),
                "head.json",
            )
        )
    elif scan.head_line is None or scan.head_line.get("signature") != head.get("signature"):
        scan.problems.append(
            Problem(
                "head",
                f"entry {size} is not the checkpoint head.json holds (replaced)",
                (size,),
                "head.json",
            )
        )


def _file_problems(scan: _Scan, state: Any, files: bool) -> int:
    store = scan.store
    checked = 0
    for sha, obj in sorted(state.objects.items()):
        rel = object_relpath(sha)
        path = store.root / rel
        if not obj.present:
            if path.exists():
                scan.notes.append(
                    f"{rel}: purged (entry recorded) but still present; the next purge removes it"
                )
            continue
        seqs = tuple(obj.seqs)
        source = obj.names[0] if obj.names else "?"
        if not path.is_file():
            scan.problems.append(
                Problem(
                    "file-missing",
                    f"{rel}: missing (stored by entry {seqs[0]}, from {source})",
                    seqs[:1],
                    rel,
                )
            )
            continue
        checked += 1
        mode = path.stat().st_mode & 0o777
        if mode != 0o444:
            scan.notes.append(f"{rel}: mode {mode:04o}, not read-only (0444)")
        if not files:
            continue
        actual, size = hash_file(path)
        if actual != sha:
            scan.problems.append(
                Problem(
                    "file-modified",
                    f"{rel}: modified (SHA-256 now {actual[:16]}…, {size} bytes; stored by entry "
                    f"{seqs[0]} from {source})",
                    seqs[:1],
                    rel,
                )
            )
    objects = store.root / "objects"
    for sub in sorted(objects.iterdir()) if objects.is_dir() else []:
        for p in sorted(sub.iterdir()) if sub.is_dir() else []:
            if p.name not in state.objects:
                scan.notes.append(
                    f"objects/{sub.name}/{p.name}: no entry records it (an add killed before "
                    "it was recorded?); not evidence — the next purge removes it"
                )
    return checked


def verify_store(store: EvidenceStore, *, files: bool = True) -> VerifyReport:
    """Check a store (see the module docstring); needs read access only.

    Parameters
    ----------
    store : EvidenceStore
    files : bool
        Also hash every stored file (else only their presence and mode).

    Returns
    -------
    VerifyReport
    """
    scan = _Scan(store)
    with store._reading():
        head = _read_head_file(scan)
        state = replay(_entries(scan), provenance=False)
        if head is not None:
            _check_head_file(scan, head)
        if scan.seq_out_of_place:
            unreadable = {q for p in scan.problems if p.kind == "not-an-entry" for q in p.seqs}
            scan.problems.extend(_order_problems(store.ledger_path, unreadable, store.key))
        checked = _file_problems(scan, state, files)
    for seq in state.malformed:
        scan.problems.append(
            Problem(
                "modified",
                f"entry {seq} lacks the fields its type needs, or holds values of the wrong "
                "kind (modified)",
                (seq,),
            )
        )
    scan.problems[0:0] = _chain_problems(scan.breaks, scan.prev_seq)
    if scan.bad_roots:
        first = scan.bad_roots[0]
        more = len(scan.bad_roots) - 1
        scan.problems.append(
            Problem(
                "checkpoint",
                f"entry {first}: the checkpoint's tree does not match the entries before it "
                f"(entries were altered, inserted or removed before it)"
                + (f"; so do {more} later checkpoints" if more else ""),
                (first,),
            )
        )
    genesis_problems(scan)
    if scan.lines and scan.last_checkpoint_line < scan.lines - 1:
        scan.notes.append(
            f"entries {scan.last_checkpoint_line + 1}..{scan.lines - 1} are after the last "
            "signed checkpoint (a command was interrupted); the next write signs them"
        )
    return VerifyReport(
        str(store.root),
        scan.lines,
        checked,
        scan.signed_size,
        tuple(scan.problems),
        tuple(scan.notes),
    )


def genesis_problems(scan: _Scan) -> None:
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


@dataclass(frozen=True)
class HeadCheck:
    """Whether an exported head is a prefix of today's ledger.

    Attributes
    ----------
    ok : bool
    reason : str
        In words.
    tree_size : int
        The head's.
    current_size : int
        Today's ledger's.
    current_root : str
        Hex root of today's ledger.
    consistency_proof : list of str
        Hex hashes of the RFC 9162 proof from ``tree_size`` to ``current_size``.
    """

    ok: bool
    reason: str
    tree_size: int = 0
    current_size: int = 0
    current_root: str = ""
    consistency_proof: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "tree_size": self.tree_size,
            "current_size": self.current_size,
            "current_root": self.current_root,
            "consistency_proof": list(self.consistency_proof),
        }


def check_head(store: EvidenceStore, head: Mapping[str, Any]) -> HeadCheck:
    """Prove (or refute) that ``head`` is a prefix of ``store``'s ledger today.

    Parameters
    ----------
    store : EvidenceStore
    head : mapping
        A signed head as :meth:`EvidenceStore.signed_head` gives it (e.g. read back from a
        package's or archive set's JSON).

    Returns
    -------
    HeadCheck
    """
    if not head_signature_ok(head, store.key):
        return HeadCheck(False, "the head's signature does not verify with this station's key")
    if head.get("store_id") != store.config.store_id:
        return HeadCheck(False, f"the head is of store {head.get('store_id')}, not this one")
    size = int(head["tree_size"])
    with store._reading():
        leaves = [
            leaf_hash(line) for _, line, complete in iter_lines(store.ledger_path) if complete
        ]
    tree = MerkleTree(leaves)
    n = tree.size
    if size > n:
        return HeadCheck(
            False,
            f"the head covers {size} entries, the ledger holds only {n} "
            "(cut short, or the head is of a fork)",
            size,
            n,
            tree.root().hex(),
        )
    proof = tree.consistency_proof(size, n)
    ok = verify_consistency(size, n, bytes.fromhex(str(head["root_hash"])), tree.root(), proof)
    reason = (
        f"consistent: today's {n} entries extend the head's {size}"
        if ok
        else f"the ledger's first {size} entries are not those the head signed (rewritten, "
        "or the head is of a fork)"
    )
    return HeadCheck(ok, reason, size, n, tree.root().hex(), tuple(h.hex() for h in proof))
