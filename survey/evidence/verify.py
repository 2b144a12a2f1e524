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

The checks live in one module per subject: :mod:`.verify_scan` (the one pass: entries, the
chain, checkpoints, entry 0), :mod:`.verify_order` (deleted, inserted, reordered entries),
:mod:`.verify_heads` (``head.json`` and exported heads), :mod:`.verify_files` (stored files);
:mod:`.verify_report` holds what they find. This module runs them in order.
"""

from __future__ import annotations

from survey.evidence.state import replay
from survey.evidence.store_base import StoreBase
from survey.evidence.verify_files import file_problems
from survey.evidence.verify_heads import HeadCheck, check_head, check_head_file, read_head_file
from survey.evidence.verify_order import order_problems
from survey.evidence.verify_report import Problem, VerifyReport
from survey.evidence.verify_scan import LedgerScan, chain_problems, genesis_problems, scan_entries

__all__ = ["HeadCheck", "Problem", "VerifyReport", "check_head", "verify_store"]


def verify_store(store: StoreBase, *, files: bool = True) -> VerifyReport:
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
    scan = LedgerScan(store)
    with store._reading():
        head = read_head_file(scan)
        state = replay(scan_entries(scan), provenance=False)
        if head is not None:
            check_head_file(scan, head)
        if scan.seq_out_of_place:
            unreadable = {q for p in scan.problems if p.kind == "not-an-entry" for q in p.seqs}
            scan.problems.extend(order_problems(store.ledger_path, unreadable, store.key))
        checked = file_problems(scan, state, files)
    for seq in state.malformed:
        scan.problems.append(
            Problem(
                "modified",
                f"entry {seq} lacks the fields its type needs, or holds values of the wrong "
                "kind (modified)",
                (seq,),
            )
        )
    scan.problems[0:0] = chain_problems(scan.breaks, scan.prev_seq)
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
