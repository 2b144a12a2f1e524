"""The custody ledger in an evidence package: the excerpt, its proofs and the signed head.

The caller (``sitewatch package --store``) passes the ledger entries that trace the lead back
to the originals, as the evidence store's ``ledger_excerpt`` gives them, and the store's
signed head. :func:`checkable_entries` keeps the entries that carry their ledger line (the
others stay in ``manifest.json`` only, with one warning line); :func:`head_files` turns the
head into its files, refusing a malformed one in one line; :func:`write_ledger_files` writes
``ledger_excerpt.jsonl``, ``ledger_proofs.tsv`` and ``verify_ledger.sh``
(:mod:`maps.ledger_excerpt`) and the ``ledger_head.*`` files.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from maps.casefile import HEAD_MESSAGE_FILE, HEAD_SIGNATURE_FILE, STATION_KEY_FILE
from maps.errors import PackageError
from maps.ledger_excerpt import (
    LEDGER_LINES_FILE,
    LEDGER_PROOFS_FILE,
    VERIFY_LEDGER_FILE,
    VERIFY_LEDGER_SH,
    excerpt_lines,
    proof_rows,
)
from maps.package_manifest import is_hex, json_ready

__all__ = ["HEAD_FILE", "checkable_entries", "head_files", "write_ledger_files"]

log = logging.getLogger(__name__)

#: The signed ledger head as JSON.
HEAD_FILE = "ledger_head.json"


def checkable_entries(
    excerpt: Sequence[Mapping[str, Any]] | None, out_dir: Path
) -> list[Mapping[str, Any]]:
    """The excerpt entries that carry their ledger line (written to ``ledger_excerpt.jsonl``).

    Raises PackageError for an entry that is not a mapping with an integer ``seq``, or whose
    line is not one line.
    """
    if excerpt is None:
        return []
    out: list[Mapping[str, Any]] = []
    missing: list[str] = []
    for n, e in enumerate(excerpt, 1):
        seq = e.get("seq") if isinstance(e, Mapping) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise PackageError(
                f"ledger excerpt entry {n}: {str(e)[:40]!r} has no integer seq; pass the "
                "entries the evidence store's ledger_excerpt() returns"
            )
        line = e.get("line")
        if line is None:
            missing.append(str(seq))
        elif not isinstance(line, str) or "\n" in line:
            raise PackageError(
                f"ledger excerpt entry {seq}: its line is not one line of text; pass the "
                "entries the evidence store's ledger_excerpt() returns"
            )
        else:
            out.append(e)
    if missing:
        log.warning(
            "%s: ledger excerpt entries %s carry no ledger line; they are kept in manifest.json "
            "only, and %s cannot check them",
            out_dir,
            ", ".join(missing),
            VERIFY_LEDGER_FILE,
        )
    return out


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise PackageError(
            f"{path}: cannot write ({exc.strerror}); choose a writable --out"
        ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def head_files(head: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The files of a signed ledger head: JSON, raw signature, public key, signed bytes.

    Raises PackageError (one line naming the field) when the head is malformed.
    """
    if head is None:
        return {}
    if not isinstance(head, Mapping):
        raise PackageError(
            f"signed ledger head is a {type(head).__name__}, not a mapping; pass the dict "
            "the evidence store's signed_head() returns"
        )

    def bad(name: str, want: str) -> PackageError:
        value = str(head.get(name))
        shown = value if len(value) <= 24 else value[:23] + "…"
        return PackageError(
            f"signed ledger head: {name}={shown!r} is not {want}; pass the dict the evidence "
            "store's signed_head() returns"
        )

    size = head.get("tree_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad("tree_size", "a whole number >= 0")
    root = head.get("root_hash")
    if not isinstance(root, str) or not is_hex(root, 64):
        raise bad("root_hash", "64 hex digits (a SHA-256)")
    for name in ("timestamp", "key_id"):
        if not isinstance(head.get(name), str) or not head[name].strip():
            raise bad(name, "a non-empty text")
    try:
        signature = base64.b64decode(str(head.get("signature", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad("signature", "base64") from exc
    if not signature:
        raise bad("signature", "base64")
    files = {
        HEAD_FILE: (json.dumps(json_ready(dict(head)), indent=2, sort_keys=True) + "\n").encode(),
        HEAD_SIGNATURE_FILE: signature,
    }
    pem = head.get("public_key_pem")
    if pem is not None:
        if not isinstance(pem, str | bytes) or b"PUBLIC KEY" not in _as_bytes(pem):
            raise bad("public_key_pem", "a PEM public key")
        files[STATION_KEY_FILE] = _as_bytes(pem)
    message = head.get("signed_message")
    if message is not None:
        if not isinstance(message, str | bytes):
            raise bad("signed_message", "text")
        files[HEAD_MESSAGE_FILE] = _as_bytes(message)
    return files


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def write_ledger_files(
    work: Path, checkable: Sequence[Mapping[str, Any]], head: Mapping[str, bytes]
) -> None:
    """The excerpt's lines, proofs and checking script (when any entry carries its line) and
    the signed head's files (:func:`head_files`), into the package folder ``work``."""
    if checkable:
        _write_bytes_atomic(work / LEDGER_LINES_FILE, excerpt_lines(checkable))
        _write_bytes_atomic(work / LEDGER_PROOFS_FILE, proof_rows(checkable))
        _write_bytes_atomic(work / VERIFY_LEDGER_FILE, VERIFY_LEDGER_SH.encode("ascii"))
        os.chmod(work / VERIFY_LEDGER_FILE, 0o755)
    for name, data in head.items():
        _write_bytes_atomic(work / name, data)
