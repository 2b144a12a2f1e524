"""The second look when seq numbers are out of place: deleted, inserted and reordered entries.

Run by :func:`survey.evidence.verify.verify_store` only when the first pass
(:mod:`.verify_scan`) saw a seq number out of place: missing numbers are deleted entries, a
number seen twice is an inserted copy, and entries out of order are those outside a longest
increasing run of numbers (plus the neighbour they were swapped with).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from pathlib import Path

from survey.evidence.heads import head_signature_ok
from survey.evidence.keys import StationKey
from survey.evidence.ledger import GENESIS_PREV, entry_hash, iter_lines
from survey.evidence.verify_report import Problem, span

__all__ = ["order_problems"]


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


def order_problems(path: Path, unreadable: set[int], key: StationKey) -> list[Problem]:
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
        what = span(run_start, run_end)
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


def _runs(values: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers in sorted ``values``."""
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        yield values[i], values[j]
        i = j + 1
