"""Signed tree heads: the checkpoints of the ledger, in the manner of Certificate Transparency.

A head says "the ledger of store ``store_id`` had ``tree_size`` entries whose Merkle tree hash
(RFC 9162) is ``root_hash`` at ``timestamp``", signed with the station's Ed25519 key. The
signed message is the canonical JSON (sorted keys, no spaces) of exactly these fields::

    {"key_id":...,"root_hash":...,"store_id":...,"timestamp":...,"tree_size":...,
     "version":"sitewatch-tree-head/1"}

so anyone can rebuild it, and an archive set carries it byte for byte (``signed-head.json``)
for ``openssl pkeyutl -verify -rawin``. A head that left the station (in a package, on a disc)
pins the ledger: a later ledger must extend it (a consistency proof), or it was rewritten.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from survey.evidence.canonical import canonical_json
from survey.evidence.keys import StationKey

__all__ = ["HEAD_FIELDS", "HEAD_VERSION", "head_message", "head_signature_ok", "make_head"]

HEAD_VERSION = "sitewatch-tree-head/1"
HEAD_FIELDS = ("key_id", "root_hash", "store_id", "timestamp", "tree_size", "version")
"""The fields a head's signature covers."""


def head_message(head: Mapping[str, Any]) -> bytes:
    """The exact bytes a head's signature covers (canonical JSON of :data:`HEAD_FIELDS`).

    Raises
    ------
    KeyError
        A field is missing.
    """
    return canonical_json({k: head[k] for k in HEAD_FIELDS})


def make_head(
    key: StationKey, *, store_id: str, tree_size: int, root_hash: bytes, timestamp: str
) -> dict[str, Any]:
    """Sign a tree head with the station key.

    Returns
    -------
    dict
        ``tree_size``, ``root_hash`` (hex), ``timestamp``, ``store_id``, ``key_id``,
        ``version``, ``algorithm`` (``"Ed25519"``) and ``signature`` (base64 of 64 bytes).
    """
    head: dict[str, Any] = {
        "key_id": key.key_id,
        "root_hash": root_hash.hex(),
        "store_id": store_id,
        "timestamp": timestamp,
        "tree_size": int(tree_size),
        "version": HEAD_VERSION,
    }
    signature = key.sign(head_message(head))
    head["algorithm"] = "Ed25519"
    head["signature"] = base64.b64encode(signature).decode("ascii")
    return head


def head_signature_ok(head: Mapping[str, Any], key: StationKey) -> bool:
    """True when ``head`` is well formed, names ``key`` and carries its valid signature."""
    try:
        message = head_message(head)
        signature = base64.b64decode(str(head["signature"]), validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return False
    if head.get("key_id") != key.key_id or head.get("version") != HEAD_VERSION:
        return False
    return key.verify(message, signature)
