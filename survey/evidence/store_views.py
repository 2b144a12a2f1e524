"""Read-only views of the store: the ledger's entries and state, traces, excerpts with their
inclusion proofs, the signed head, verification and case exports.

Every method here needs read access only (a supervisor's view). Two write when the store is
writable: :meth:`StoreViews.ledger_excerpt` signs entries not yet covered by a head so that
it can prove them, and :meth:`StoreViews.export_case` records the export.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from survey.errors import EvidenceLookupError, NotAStoreError
from survey.evidence.cases import validate_case_id
from survey.evidence.heads import head_message, head_signature_ok
from survey.evidence.ledger import LedgerEntry, head_of, read_tail
from survey.evidence.merkle import MerkleTree, leaf_hash
from survey.evidence.state import StoreState, replay
from survey.evidence.store_base import StoreBase, check_sha256

if TYPE_CHECKING:
    from survey.evidence.store import EvidenceStore
    from survey.evidence.verify import HeadCheck, VerifyReport

__all__ = ["StoreViews"]


class StoreViews(StoreBase):
    """The part of :class:`~survey.evidence.store.EvidenceStore` that reads the ledger."""

    def entries(self, *, case: str | None = None) -> Iterator[LedgerEntry]:
        """The ledger's entries in order (those of ``case`` only, if given: its ``case``,
        ``add``, ``derive`` and ``export`` entries and the ``purge`` entries of its items).

        Raises
        ------
        LedgerFormatError
            A line that is not an entry.
        """
        if case is not None:
            validate_case_id(case)
        with self._reading():
            for e in self._entries():
                if case is None or e.get("case") == case or case in (e.get("cases") or {}):
                    yield e

    def state(self) -> StoreState:
        """The store's state replayed from the ledger (cases, items, provenance)."""
        with self._reading():
            return replay(self._entries())

    def trace(self, sha256: str) -> list[LedgerEntry]:
        """The entries that lead from a file back to the originals it was made from.

        Follows ``derive`` entries that list ``sha256`` among their outputs to their inputs,
        recursively, and collects the ``add`` entries of every original reached. Inputs that
        were never added nor derived in this store end the walk (they are named in the
        ``derive`` entry).

        Returns
        -------
        list of LedgerEntry
            In ledger order.

        Raises
        ------
        EvidenceLookupError
            The ledger does not name ``sha256``.
        """
        return self._trace([check_sha256(sha256)])

    def _trace(self, hashes: Sequence[str]) -> list[LedgerEntry]:
        with self._reading():
            state = replay(self._entries())
            for sha in hashes:
                if not state.knows(sha):
                    raise EvidenceLookupError(
                        f"{sha}: not in the ledger of {self.root}; check the hash "
                        "(`sha256sum FILE`) or add the file first"
                    )
            needed: set[int] = set()
            stack, seen = list(hashes), set()
            while stack:
                sha = stack.pop()
                if sha in seen:
                    continue
                seen.add(sha)
                needed.update(state.added.get(sha, ()))
                for seq in state.produced_by.get(sha, ()):
                    needed.add(seq)
                    stack.extend(state.derive_inputs.get(seq, ()))
            return [e for e in self._entries() if e.seq in needed]

    def ledger_excerpt(self, sha256s: Iterable[str]) -> list[dict[str, Any]]:
        """JSON-ready entries that trace files back to their originals, for a package.

        Each dict: ``seq``, ``hash`` (SHA-256 of ``line``), ``prev``, ``line`` (the exact
        ledger line), ``entry`` (it parsed), and an RFC 9162 inclusion proof against the
        latest signed head: ``tree_size``, ``root_hash``, ``leaf_hash`` (SHA-256 of 0x00 and
        the line), ``inclusion_proof`` (hex, lowest level first). On a writable store, entries
        not yet covered by a signed head get one first; on a read-only store their proof is
        None.

        Parameters
        ----------
        sha256s : iterable of str
            Files (e.g. the lead's inputs) to trace (:meth:`trace`).

        Returns
        -------
        list of dict
            In ledger order.
        """
        hashes = [check_sha256(h) for h in sha256s]
        self._sign_pending()
        return self.excerpt(self._trace(hashes))

    def _sign_pending(self) -> None:
        """On a writable store, sign and write entries not yet covered by a checkpoint (also
        inside a batch, so that excerpts and exports can prove them)."""
        if not self.read_only:
            with self._writing("signing a head") as writer:
                if writer.tail.since_checkpoint:
                    writer.checkpoint()
                self._commit(writer)

    def excerpt(self, entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
        """``entries`` as :meth:`ledger_excerpt` gives them: JSON-ready, each with its
        inclusion proof against the latest signed head (None for entries it does not cover).
        """
        chosen = sorted(entries, key=lambda e: e.seq)
        head = self.signed_head()
        size = int(head["tree_size"])
        with self._reading():
            leaves = [leaf_hash(e.line) for e in self._entries() if e.seq < size]
        tree = MerkleTree(leaves)
        out: list[dict[str, Any]] = []
        for e in chosen:
            covered = e.seq < size
            out.append(
                {
                    "seq": e.seq,
                    "hash": e.hash,
                    "prev": e.prev,
                    "line": e.line.decode("utf-8"),
                    "entry": e.to_dict(),
                    "leaf_hash": leaf_hash(e.line).hex(),
                    "tree_size": size if covered else None,
                    "root_hash": head["root_hash"] if covered else None,
                    "inclusion_proof": (
                        [h.hex() for h in tree.inclusion_proof(e.seq, size)] if covered else None
                    ),
                }
            )
        return out

    def signed_head(self) -> dict[str, Any]:
        """The latest signed tree head.

        Returns
        -------
        dict
            ``tree_size``, ``root_hash`` (hex), ``timestamp``, ``store_id``, ``key_id``,
            ``version``, ``algorithm`` (``"Ed25519"``), ``signature`` (base64), the
            checkpoint's ``seq``, and for packages ``signed_message`` (the exact text signed,
            :func:`survey.evidence.heads.head_message`: write it to a file for ``openssl
            pkeyutl -verify -rawin``) and ``public_key_pem`` (the station's public key).
        """
        with self._reading():
            tail = read_tail(self.ledger_path)
        if tail.last_checkpoint is None:
            raise NotAStoreError(
                f"{self.ledger_path}: no signed checkpoint; run `sitewatch evidence verify "
                f"{self.root}`"
            )
        head = head_of(tail.last_checkpoint)
        head["signed_message"] = head_message(head).decode("utf-8")
        head["public_key_pem"] = self.public_key_pem().decode("ascii")
        return head

    def public_key_pem(self) -> bytes:
        """The station's public key (SubjectPublicKeyInfo PEM), for packages and exports."""
        return self.key.public_pem()

    def verify(self, *, files: bool = True) -> VerifyReport:
        """Check the whole store: chain, tree heads, signatures, ``head.json`` and (with
        ``files``) every stored file's presence and SHA-256.

        Returns
        -------
        survey.evidence.verify.VerifyReport
            ``.ok``, ``.problems`` (each names the entry seq or file), ``.notes``,
            ``.to_dict()``.
        """
        from survey.evidence.verify import verify_store

        return verify_store(self, files=files)

    def verify_head(self, head: Mapping[str, Any]) -> bool:
        """True when ``head`` (an exported signed head) is signed by this station and today's
        ledger extends it (an RFC 9162 consistency proof from its size to today's)."""
        return self.check_head(head).ok

    def check_head(self, head: Mapping[str, Any]) -> HeadCheck:
        """Like :meth:`verify_head`, with the reason and the proof
        (:class:`survey.evidence.verify.HeadCheck`)."""
        from survey.evidence.verify import check_head

        return check_head(self, head)

    def head_signature_ok(self, head: Mapping[str, Any]) -> bool:
        """True when ``head`` carries this station's valid signature (nothing more)."""
        return head_signature_ok(head, self.key)

    def export_case(self, case: str, out: str | os.PathLike[str]) -> Path:
        """Write the archive set of ``case`` for write-once media into the new folder ``out``.

        See :func:`survey.evidence.export.export_case` for the layout.

        Returns
        -------
        pathlib.Path
            ``out``.
        """
        from survey.evidence.export import export_case

        store = cast("EvidenceStore", self)  # the only class made of this part
        return export_case(store, validate_case_id(case), Path(out))
