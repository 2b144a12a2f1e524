"""Custody-ledger lines that ``sh`` and coreutils can check against a signed tree head.

An evidence package (:mod:`maps.package`) and an archive set for write-once media
(:mod:`survey.evidence.export`) both carry an excerpt of the station's custody ledger: the
entries, one per line, byte for byte as the ledger hashed them; their RFC 9162 inclusion
proofs as tab-separated rows (``seq``, tree size, the proof's hashes in hex, lowest level
first, separated by spaces; ``-`` for an entry no signed head covers yet); and the station's
signed tree head. This module holds the POSIX sh that folds a line's leaf hash
``SHA-256(0x00 || line)`` with its proof (``SHA-256(0x01 || left || right)``, RFC 9162
section 2.1.3.2) up to the head's root, and the package's ``verify_ledger.sh``.

Why here: ``survey`` may import ``maps`` but not the other way round, so the one copy of the
shell that both the package and the archive set run lives where both can import it. It needs
nothing from either: the text of the scripts and two formatting functions.

Tools the scripts use: ``sh``, ``sha256sum``, ``basenc``, ``tr``, ``sed``, ``wc``
(GNU coreutils and sed), and ``openssl`` for the head's Ed25519 signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "INCLUSION_SH",
    "LEDGER_LINES_FILE",
    "LEDGER_PROOFS_FILE",
    "VERIFY_LEDGER_FILE",
    "VERIFY_LEDGER_SH",
    "excerpt_lines",
    "proof_rows",
]

LEDGER_LINES_FILE = "ledger_excerpt.jsonl"
LEDGER_PROOFS_FILE = "ledger_proofs.tsv"
VERIFY_LEDGER_FILE = "verify_ledger.sh"

INCLUSION_SH = r"""tab=$(printf '\t')
# node LEFT RIGHT: r = SHA-256(0x01 || LEFT || RIGHT), the hashes in hex (one pipeline)
node() {
    r=$(printf '01%s%s' "$1" "$2" | tr a-f A-F | basenc --base16 -d | sha256sum); r=${r%% *}
}
# included SEQ SIZE "PROOF" LINE ROOT: true when LINE's leaf hash SHA-256(0x00 || LINE),
# folded with PROOF (RFC 9162 2.1.3.2), gives ROOT, the root of the tree of SIZE entries
included() {
    fn=$1; sn=$(($2 - 1))
    r=$(printf '\000%s' "$4" | sha256sum); r=${r%% *}
    for p in $3; do
        if [ "$sn" -eq 0 ]; then return 1; fi
        if [ $((fn & 1)) -eq 1 ] || [ "$fn" -eq "$sn" ]; then
            node "$p" "$r"
            if [ $((fn & 1)) -eq 0 ]; then
                while [ "$fn" -ne 0 ] && [ $((fn & 1)) -eq 0 ]; do
                    fn=$((fn >> 1)); sn=$((sn >> 1))
                done
            fi
        else
            node "$r" "$p"
        fi
        fn=$((fn >> 1)); sn=$((sn >> 1))
    done
    [ "$sn" -eq 0 ] && [ "$r" = "$5" ]
}
# check_excerpt PROOFS LINES ROOT SIZE: line N of LINES (an exact ledger line) is in the
# signed tree by row N of PROOFS (seq, tree size, proof hashes); sets fail=1 otherwise.
# Both files are read once, side by side (descriptors 3 and 4).
check_excerpt() {
    nl=$(wc -l < "$2"); np=$(wc -l < "$1")
    if [ "$nl" -ne "$np" ]; then
        echo "   $2 has $nl lines but $1 has $np proofs"; fail=1
    fi
    while IFS="$tab" read -r seq tsize proof <&3 && IFS= read -r line <&4; do
        sha=$(printf '%s' "$line" | sha256sum); sha=${sha%% *}
        if [ "$tsize" != "$4" ]; then
            echo "   entry $seq: NOT proven (a proof for $tsize entries; the head signs $4)"
            fail=1
        elif included "$seq" "$4" "$proof" "$line" "$3"; then
            echo "   entry $seq: included (SHA-256 $sha)"
        else
            echo "   entry $seq: NOT in the signed tree (SHA-256 $sha)"; fail=1
        fi
    done 3< "$1" 4< "$2"
}
"""
"""Shell functions ``included`` and ``check_excerpt`` (and ``node``, ``tab``)."""

VERIFY_LEDGER_SH = (
    r"""#!/bin/sh
# Checks the custody-ledger excerpt of this evidence package against the station's signed
# tree head with POSIX sh and coreutils (sha256sum, basenc, tr, sed, wc), and the
# head's Ed25519 signature with openssl when it is installed.
# Run it from anywhere:   sh verify_ledger.sh      (exit 0: every check made passed)
set -u
cd "$(dirname "$0")" || exit 2
fail=0
signature=checked
"""
    + INCLUSION_SH
    + r"""for f in ledger_excerpt.jsonl ledger_proofs.tsv ledger_head.json; do
    if [ ! -f "$f" ]; then echo "$f is missing: nothing to check against"; exit 1; fi
done
echo "1. the station's signature on the tree head (Ed25519, station_public_key.pem)"
if [ -f ledger_head.msg ]; then
    signed=ledger_head.msg
    if command -v openssl > /dev/null 2>&1; then
        printf '   '
        openssl pkeyutl -verify -pubin -inkey station_public_key.pem -rawin \
            -in ledger_head.msg -sigfile ledger_head.sig || fail=1
    else
        signature="NOT checked (no openssl here)"
        echo "   openssl is not installed: the signature is NOT checked; run, where it is:"
        echo "   openssl pkeyutl -verify -pubin -inkey station_public_key.pem -rawin" \
            "-in ledger_head.msg -sigfile ledger_head.sig"
    fi
else
    signed=ledger_head.json
    signature="NOT checked (no ledger_head.msg)"
    echo "   no ledger_head.msg (the exact bytes signed): the signature is checked at the" \
        "station with sitewatch evidence verify"
fi
root=$(sed -n 's/.*"root_hash": *"\([0-9a-f]*\)".*/\1/p' "$signed")
size=$(sed -n 's/.*"tree_size": *\([0-9]*\).*/\1/p' "$signed")
echo "2. ledger_head.json names the tree that was signed"
json_root=$(sed -n 's/.*"root_hash": *"\([0-9a-f]*\)".*/\1/p' ledger_head.json)
json_size=$(sed -n 's/.*"tree_size": *\([0-9]*\).*/\1/p' ledger_head.json)
if [ -n "$root" ] && [ -n "$size" ] && [ "$root" = "$json_root" ] && [ "$size" = "$json_size" ]
then
    echo "   $size entries, root $root"
else
    echo "   NO: $signed names $size entries, root $root; ledger_head.json $json_size, $json_root"
    fail=1
fi
echo "3. every line of ledger_excerpt.jsonl is in the signed tree (RFC 9162 inclusion proofs)"
check_excerpt ledger_proofs.tsv ledger_excerpt.jsonl "$root" "$size"
if [ "$fail" -ne 0 ]; then
    echo "SOME CHECKS FAILED"
elif [ "$signature" = checked ]; then
    echo "ALL CHECKS PASSED"
else
    echo "ALL CHECKS MADE PASSED; the signature was $signature"
fi
exit "$fail"
"""
)
"""The package's ``verify_ledger.sh`` (run from anywhere: ``sh DIR/verify_ledger.sh``)."""


def excerpt_lines(excerpt: Sequence[Mapping[str, Any]]) -> bytes:
    """The ledger lines of an excerpt, one per line, exactly as the ledger hashed them.

    Parameters
    ----------
    excerpt : sequence of mapping
        Entries as the evidence store's ``ledger_excerpt`` gives them; each with ``line``
        (the ledger line without its newline, text).

    Returns
    -------
    bytes
        UTF-8, every line ended by ``\\n``.
    """
    return b"".join(str(e["line"]).encode("utf-8") + b"\n" for e in excerpt)


def proof_rows(excerpt: Sequence[Mapping[str, Any]]) -> bytes:
    """``seq``, tree size and proof hashes of each entry, tab-separated, one row per entry.

    An entry no signed head covers yet (``inclusion_proof`` None) gets ``-`` as its tree
    size, so the scripts say it is not proven.

    Returns
    -------
    bytes
        ASCII, in the order of ``excerpt`` (row N proves line N of :func:`excerpt_lines`).
    """
    rows = []
    for e in excerpt:
        proof = e.get("inclusion_proof")
        size = "-" if proof is None or e.get("tree_size") is None else str(int(e["tree_size"]))
        rows.append(f"{int(e['seq'])}\t{size}\t{' '.join(proof or [])}\n")
    return "".join(rows).encode("ascii")
