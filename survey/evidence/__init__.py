"""The evidence store and custody ledger (issue #14).

Originals are copied bit-exact into a content-addressed store (SHA-256, MD5 alongside for
interoperability) with who, when, which device, case, site and source path; every derived
product gets a provenance record (inputs' and outputs' hashes, parameters, software); all of
it goes into an append-only JSON Lines ledger with a hash chain and signed Merkle tree heads
(RFC 9162, Ed25519). Cases have risk tiers with retention periods and legal holds; archive
sets for write-once media verify with ``sha256sum`` and ``openssl`` alone.

>>> store = EvidenceStore.open("evidence", create=True)  # doctest: +SKIP
>>> items = store.add(["DJI_0001.JPG"], case="2024-017", risk="medium", operator="op7")
>>> store.verify().ok  # doctest: +SKIP
True

Modules: :mod:`.store` (the facade, :class:`EvidenceStore`, made of :mod:`.store_base` —
folder, lock, sessions —, :mod:`.store_add`, :mod:`.store_derive`, :mod:`.store_cases` and
:mod:`.store_views`), :mod:`.ledger`, :mod:`.merkle`, :mod:`.heads`, :mod:`.keys`,
:mod:`.objects`, :mod:`.devices`, :mod:`.state`, :mod:`.retention`, :mod:`.cases`,
:mod:`.config`, :mod:`.verify` (with :mod:`.verify_scan`, :mod:`.verify_order`,
:mod:`.verify_heads`, :mod:`.verify_files`, :mod:`.verify_report`), :mod:`.export`,
:mod:`.locks`, :mod:`.atomic`, :mod:`.canonical`; the commands' recording is
:mod:`.wiring` (with :mod:`.command_store` and :mod:`.derived_from`).
"""

from __future__ import annotations

from survey.evidence.cases import validate_case_id
from survey.evidence.config import DEFAULT_RETENTION, StoreConfig
from survey.evidence.heads import head_message, head_signature_ok
from survey.evidence.ledger import LedgerEntry
from survey.evidence.merkle import (
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from survey.evidence.objects import HashedFile
from survey.evidence.retention import PurgedItem, PurgeReport
from survey.evidence.state import CaseState, ObjectState, StoreState
from survey.evidence.store import SOFTWARE, EvidenceStore, StoredItem
from survey.evidence.verify import HeadCheck, Problem, VerifyReport

__all__ = [
    "DEFAULT_RETENTION",
    "SOFTWARE",
    "CaseState",
    "EvidenceStore",
    "HashedFile",
    "HeadCheck",
    "LedgerEntry",
    "MerkleTree",
    "ObjectState",
    "Problem",
    "PurgeReport",
    "PurgedItem",
    "StoreConfig",
    "StoreState",
    "StoredItem",
    "VerifyReport",
    "head_message",
    "head_signature_ok",
    "leaf_hash",
    "node_hash",
    "validate_case_id",
    "verify_consistency",
    "verify_inclusion",
]
