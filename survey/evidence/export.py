"""Archive sets for write-once media: one case's files, their hashes and the ledger that vouches
for them, checkable with ``sha256sum`` (and ``openssl`` for the signature) alone.

Layout of ``OUT/`` (written into a temporary folder beside it, then renamed: all or nothing;
every file read-only)::

    files/<sha256[:12]>_<name>   the case's stored files, bit-exact (checked while copied)
    items.tsv                    sha256, bytes, file, source names, cases — one line per file
    ledger-excerpt.jsonl         the exact ledger lines that record the files (add, derive),
                                 the case's tier and hold changes
    ledger-excerpt.json          the same entries with their inclusion proofs (JSON)
    proofs.tsv                   seq, tree size and proof hashes per excerpt line (for verify.sh)
    signed-head.json             the signed tree head, exactly the bytes signed
    signed-head.sig              its Ed25519 signature (64 bytes, raw)
    head.json                    the head with its signature, as JSON
    station.pub                  the station's public key (PEM)
    verify.sh                    every check below in POSIX sh
    README.txt                   what this is and how to check it
    MANIFEST.sha256              ``sha256sum -c`` lines for every file above
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maps.ledger_excerpt import INCLUSION_SH, excerpt_lines, proof_rows
from survey.errors import EvidenceInputError, EvidenceLookupError, OutputError
from survey.evidence.atomic import fsync_dir
from survey.evidence.canonical import utc_text
from survey.evidence.heads import head_message
from survey.evidence.objects import copy_hashing, hash_file, object_relpath

if TYPE_CHECKING:
    from survey.evidence.store import EvidenceStore

__all__ = ["VERIFY_SH", "export_case"]

VERIFY_SH = (
    r"""#!/bin/sh
# Checks this archive set with POSIX sh, coreutils (sha256sum, tr, basenc, wc), sed, grep,
# and openssl for the signature. Run it from anywhere: sh verify.sh   (exit 0: all good)
set -u
cd "$(dirname "$0")" || exit 2
fail=0
"""
    + INCLUSION_SH
    + r"""echo "1. every file against MANIFEST.sha256"
sha256sum -c --quiet MANIFEST.sha256 || fail=1
echo "2. the tree head's signature (Ed25519, station.pub)"
openssl pkeyutl -verify -pubin -inkey station.pub -rawin -in signed-head.json \
    -sigfile signed-head.sig || fail=1
root=$(sed -n 's/.*"root_hash":"\([0-9a-f]*\)".*/\1/p' signed-head.json)
size=$(sed -n 's/.*"tree_size":\([0-9]*\).*/\1/p' signed-head.json)
echo "3. every ledger entry of the excerpt is in the signed tree (RFC 9162 inclusion proofs)"
check_excerpt proofs.tsv ledger-excerpt.jsonl "$root" "$size"
echo "4. every file is recorded by a ledger entry of the excerpt"
while IFS="$tab" read -r sha bytes file rest; do
    [ "$sha" = "sha256" ] && continue
    if grep -q "\"sha256\":\"$sha\"" ledger-excerpt.jsonl; then
        echo "   $file: recorded"
    else
        echo "   $file: NOT recorded in the excerpt"; fail=1
    fi
done < items.tsv
if [ "$fail" -eq 0 ]; then echo "ALL CHECKS PASSED"; else echo "SOME CHECKS FAILED"; fi
exit "$fail"
"""
)
"""``verify.sh`` of an archive set; the inclusion proofs are checked by the same shell as an
evidence package's ``verify_ledger.sh`` (:data:`maps.ledger_excerpt.INCLUSION_SH`)."""

_README = """\
Evidence archive set — case {case}
==================================

Written {when} by {software} from the evidence store {store_id} (station key
{key_id}). It holds the {count} file(s) of case {case} (risk tier {risk}{hold}) as stored,
bit for bit, and the custody-ledger entries that record where each came from, who added it,
when, with which device, and what was derived from it.

The ledger of the station is append-only: each entry carries the SHA-256 of the previous one,
and the station signs the Merkle tree hash (RFC 9162) of all its entries with its Ed25519 key
(signed-head.json: {tree_size} entries, root {root_hash}). The entries here are proven to be
in that signed tree, so they cannot have been changed since.

Check it (from this folder; Linux coreutils and openssl, nothing else):

1. The files are intact:
       sha256sum -c MANIFEST.sha256
   Every line must say OK. items.tsv names each file's source and case.

2. The tree head is the station's:
       openssl pkeyutl -verify -pubin -inkey station.pub -rawin \\
           -in signed-head.json -sigfile signed-head.sig
   must print "Signature Verified Successfully". The key's id is
       openssl pkey -pubin -in station.pub -outform DER | sha256sum
   = {key_id}; compare it with the id the station published.

3. The ledger entries are in the signed tree, and every file is recorded:
       sh verify.sh
   runs 1 and 2 and, for each line of ledger-excerpt.jsonl, recomputes its leaf hash
   SHA-256(0x00 || line) and folds in its proof (proofs.tsv) with SHA-256(0x01 || left ||
   right) as RFC 9162 section 2.1.3.2 says, which must give the root of signed-head.json;
   then checks that each file's SHA-256 appears in an entry. It ends with "ALL CHECKS
   PASSED". By hand, an entry's leaf hash is
       (printf '\\000'; sed -n 1p ledger-excerpt.jsonl | tr -d '\\n') | sha256sum

Later, the station proves that its ledger still extends this head:
    sitewatch evidence verify STORE --head head.json
(an RFC 9162 consistency proof; a rewritten or forked ledger fails it).
"""


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name or "file"
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in base)
    return keep.lstrip(".")[:80] or "file"


def export_case(store: EvidenceStore, case: str, out: Path) -> Path:
    """Write the archive set of ``case`` into the new (or empty) folder ``out``.

    Files of the case still stored are copied (each checked against its SHA-256 while it is
    copied), with the ``add`` and ``derive`` entries that record them and every ``case`` entry
    of the case, their inclusion proofs against the latest signed head (signed first, on a
    writable store, if entries are not yet covered), the head, the public key, ``verify.sh``
    and a README. A writable store records the export in its ledger (an ``export`` entry with
    the manifest's SHA-256); a read-only store exports without recording.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    EvidenceInputError
        ``out`` exists and is not an empty folder (an archive set is never written over).
    EvidenceLookupError
        The ledger knows no such case.
    """
    out = out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvidenceInputError(
            f"{out}: exists and is not an empty folder; export into a new folder (an archive "
            "set is never written over)"
        )
    state = store.state()
    if case not in state.cases:
        known = ", ".join(sorted(state.cases)[:8]) or "none"
        raise EvidenceLookupError(
            f"case {case} is not in the ledger of {store.root} (cases: {known}); check the id"
        )
    items = sorted(
        (o for o in state.objects.values() if o.present and case in o.cases),
        key=lambda o: (o.names[0] if o.names else "", o.sha256),
    )
    store._sign_pending()
    traced = [  # this case's adds (not other cases'), and the derivations
        e
        for e in (store._trace([o.sha256 for o in items]) if items else [])
        if e.type != "add" or e.get("case") == case
    ]
    seqs = {e.seq for e in traced}
    case_entries = [e for e in store.entries(case=case) if e.type == "case"]
    chosen = [*traced, *(e for e in case_entries if e.seq not in seqs)]
    excerpt = store.excerpt(chosen)
    head = store.signed_head()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.exporting-", dir=out.parent))
    except OSError as exc:
        raise OutputError(
            f"{out}: cannot write here ({exc.strerror}); choose a writable --out"
        ) from exc
    try:
        _write_set(store, case, state, items, excerpt, head, work)
        os.chmod(work, 0o755)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(work, out)
        fsync_dir(out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not store.read_only:
        manifest_sha, _ = hash_file(out / "MANIFEST.sha256")
        with store._writing("recording an export") as writer:
            writer.append(
                {
                    "type": "export",
                    "case": case,
                    "out": str(out),
                    "files": len(items),
                    "bytes": sum(o.size for o in items),
                    "manifest_sha256": manifest_sha,
                    "tree_size": int(head["tree_size"]),
                    "root_hash": head["root_hash"],
                }
            )
    return out


def _write_set(
    store: EvidenceStore,
    case: str,
    state: Any,
    items: list[Any],
    excerpt: list[dict[str, Any]],
    head: dict[str, Any],
    work: Path,
) -> None:
    files = work / "files"
    files.mkdir()
    rows = ["sha256\tbytes\tfile\tsources\tcases"]
    for obj in items:
        name = f"files/{obj.sha256[:12]}_{_safe_name(obj.names[0] if obj.names else obj.sha256)}"
        copied = copy_hashing(store.root / object_relpath(obj.sha256), work / name)
        if copied.sha256 != obj.sha256:
            raise EvidenceInputError(
                f"{object_relpath(obj.sha256)}: the stored file no longer has its SHA-256 "
                f"(now {copied.sha256[:16]}…); run `sitewatch evidence verify {store.root}` "
                "— nothing was exported"
            )
        sources = " | ".join(n.replace("\t", " ") for n in obj.names)
        rows.append(f"{obj.sha256}\t{obj.size}\t{name}\t{sources}\t{','.join(sorted(obj.cases))}")
    _text(work / "items.tsv", "\n".join(rows) + "\n")
    (work / "ledger-excerpt.jsonl").write_bytes(excerpt_lines(excerpt))
    _text(work / "ledger-excerpt.json", json.dumps(excerpt, indent=2, ensure_ascii=False) + "\n")
    covered = [e for e in excerpt if e["inclusion_proof"] is not None]
    if len(covered) != len(excerpt):  # a read-only store with unsigned entries
        raise EvidenceInputError(
            f"{store.root}: entries of case {case} are not yet covered by a signed head and "
            "the store is open read-only; export from a writable store (or after its next "
            "command)"
        )
    (work / "proofs.tsv").write_bytes(proof_rows(excerpt))
    (work / "signed-head.json").write_bytes(head_message(head))
    (work / "signed-head.sig").write_bytes(base64.b64decode(head["signature"]))
    _text(work / "head.json", json.dumps(head, indent=2, sort_keys=True) + "\n")
    (work / "station.pub").write_bytes(store.public_key_pem())
    _text(work / "verify.sh", VERIFY_SH)
    cs = state.cases[case]
    from survey.evidence.store import SOFTWARE

    _text(
        work / "README.txt",
        _README.format(
            case=case,
            when=utc_text(store.clock()),
            software=SOFTWARE,
            store_id=store.config.store_id,
            key_id=store.key.key_id,
            count=len(items),
            risk=cs.risk,
            hold=", on legal hold" if cs.hold else "",
            tree_size=head["tree_size"],
            root_hash=head["root_hash"],
        ),
    )
    lines = []
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        sha, _ = hash_file(path)
        lines.append(f"{sha}  {path.relative_to(work).as_posix()}\n")
    _text(work / "MANIFEST.sha256", "".join(lines))
    for path in work.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(path, 0o444)
    fsync_dir(files)
    fsync_dir(work)


def _text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
