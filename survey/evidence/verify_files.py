"""Stored files in verification: each recorded file present, read-only and with the SHA-256
that is its name; files no entry records, and purged files still present, noted."""

from __future__ import annotations

from survey.evidence.objects import hash_file, object_relpath
from survey.evidence.state import StoreState
from survey.evidence.verify_report import Problem
from survey.evidence.verify_scan import LedgerScan

__all__ = ["file_problems"]


def file_problems(scan: LedgerScan, state: StoreState, files: bool) -> int:
    """Note in ``scan`` every problem of the stored files ``state`` records; return how many
    were present and checked (hashed too when ``files``)."""
    store = scan.store
    checked = 0
    for sha, obj in sorted(state.objects.items()):
        rel = object_relpath(sha)
        path = store.root / rel
        if not obj.present:
            if path.exists():
                scan.notes.append(
                    f"{rel}: purged (entry recorded) but still present; the next purge removes it"
                )
            continue
        seqs = tuple(obj.seqs)
        source = obj.names[0] if obj.names else "?"
        if not path.is_file():
            scan.problems.append(
                Problem(
                    "file-missing",
                    f"{rel}: missing (stored by entry {seqs[0]}, from {source})",
                    seqs[:1],
                    rel,
                )
            )
            continue
        checked += 1
        mode = path.stat().st_mode & 0o777
        if mode != 0o444:
            scan.notes.append(f"{rel}: mode {mode:04o}, not read-only (0444)")
        if not files:
            continue
        actual, size = hash_file(path)
        if actual != sha:
            scan.problems.append(
                Problem(
                    "file-modified",
                    f"{rel}: modified (SHA-256 now {actual[:16]}…, {size} bytes; stored by entry "
                    f"{seqs[0]} from {source})",
                    seqs[:1],
                    rel,
                )
            )
    objects = store.root / "objects"
    for sub in sorted(objects.iterdir()) if objects.is_dir() else []:
        for p in sorted(sub.iterdir()) if sub.is_dir() else []:
            if p.name not in state.objects:
                scan.notes.append(
                    f"objects/{sub.name}/{p.name}: no entry records it (an add killed before "
                    "it was recorded?); not evidence — the next purge removes it"
                )
    return checked
