"""Signed heads in verification: the store's ``head.json`` against its ledger, and an exported
head proved a prefix of today's ledger (:func:`check_head`, an RFC 9162 consistency proof).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from survey.evidence.heads import head_signature_ok
from survey.evidence.ledger import iter_lines
from survey.evidence.merkle import MerkleTree, leaf_hash, verify_consistency
from survey.evidence.store_base import StoreBase
from survey.evidence.verify_report import Problem, span
from survey.evidence.verify_scan import LedgerScan

__all__ = ["HeadCheck", "check_head", "check_head_file", "read_head_file"]


def read_head_file(scan: LedgerScan) -> Mapping[str, Any] | None:
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


def check_head_file(scan: LedgerScan, head: Mapping[str, Any]) -> None:
    """head.json is the checkpoint entry at seq ``tree_size``: the ledger must still hold
    that very entry, after the same ``tree_size`` entries."""
    size = int(head["tree_size"])
    if size >= scan.lines:
        named = tuple(range(scan.lines, size + 1))
        scan.problems.append(
            Problem(
                "deleted",
                f"{span(scan.lines, size)} missing: head.json (signed) is the checkpoint at "
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


def check_head(store: StoreBase, head: Mapping[str, Any]) -> HeadCheck:
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
