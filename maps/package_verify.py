"""Checking an evidence package with nothing but Python: :func:`verify_evidence_package`.

The same as ``sha256sum -c --strict manifest.sha256`` plus the cross-checks that tie
``manifest.json`` and ``report.pdf`` to it (the layout is :mod:`maps.package`'s).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from maps.package_manifest import CHECKSUMS_FILE, REPORT_FILE, is_hex

__all__ = ["verify_evidence_package"]


def _hash_now(path: Path) -> str:
    """SHA-256 read from disk now (no cache: a verifier trusts nothing it computed before)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def verify_evidence_package(directory: Path) -> list[str]:
    """Check an evidence package; return its problems, one line each (empty when intact).

    Three links are checked: every line of ``manifest.sha256`` against the file's bytes (and
    no file unlisted), every entry of ``manifest.json`` (size and SHA-256) against the file,
    and the SHA-256 of ``manifest.json`` against the one ``report.pdf`` carries (in its PDF
    Subject, beside the printed page). The same as ``sha256sum -c --strict manifest.sha256``
    plus the cross-checks, with nothing but Python.

    Parameters
    ----------
    directory : Path
        The package folder.

    Returns
    -------
    list of str
        ``"<file>: <what is wrong>"`` for every modified, missing, unlisted or inconsistent
        file, in file order.
    """
    directory = Path(directory)
    problems: list[str] = []
    sums = directory / CHECKSUMS_FILE
    if not sums.is_file():
        return [f"{CHECKSUMS_FILE}: missing; this is not an evidence package"]
    listed: dict[str, str] = {}
    for n, line in enumerate(sums.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or not is_hex(digest, 64) or not rel:
            problems.append(f"{CHECKSUMS_FILE}: line {n} is not '<sha256>  <file>'")
            continue
        listed[rel] = digest.lower()
    on_disk = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}
    now: dict[str, str] = {}
    for rel in sorted(set(listed) | set(on_disk) - {CHECKSUMS_FILE}):
        if rel not in on_disk:
            problems.append(f"{rel}: missing (listed in {CHECKSUMS_FILE})")
        elif rel not in listed:
            problems.append(f"{rel}: not listed in {CHECKSUMS_FILE}")
        else:
            now[rel] = _hash_now(on_disk[rel])
            if now[rel] != listed[rel]:
                problems.append(
                    f"{rel}: modified (SHA-256 {now[rel][:12]}…, listed {listed[rel][:12]}…)"
                )
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        entries = manifest["files"]
        wanted = {str(e["path"]): (int(e["bytes"]), str(e["sha256"])) for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"manifest.json: unreadable ({type(exc).__name__}); the package is damaged")
        return problems
    for rel, (size, digest) in sorted(wanted.items()):
        path = on_disk.get(rel)
        if path is None:
            problems.append(f"{rel}: missing (listed in manifest.json)")
        elif path.stat().st_size != size or now.get(rel, _hash_now(path)) != digest:
            problems.append(f"{rel}: differs from its manifest.json entry")
    report = on_disk.get(REPORT_FILE)
    if report is not None and "manifest.json" in on_disk:
        digest = now.get("manifest.json") or _hash_now(on_disk["manifest.json"])
        if f"manifest.json SHA-256 {digest}".encode("ascii") not in report.read_bytes():
            problems.append(f"{REPORT_FILE}: does not carry the SHA-256 of this manifest.json")
    return problems
