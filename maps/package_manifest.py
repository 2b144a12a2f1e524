"""The evidence package's own files about its files: ``manifest.json`` and ``manifest.sha256``.

``manifest.json`` lists every file written before it (all but ``report.pdf``, which prints the
manifest's SHA-256, and ``manifest.sha256``) with its size and SHA-256, and the lead, its
inputs, the software, the people and the ledger; ``manifest.sha256`` is written last, in
``sha256sum`` format, over every file, the page and the manifest included
(:mod:`maps.package` gives the order; :mod:`maps.package_verify` checks it).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from change_detection.leads import Lead
from maps.assets import LIBRARIES, write_text_atomic
from maps.derived import file_sha256
from maps.errors import PackageError

__all__ = [
    "CHECKSUMS_FILE",
    "MANIFEST_FORMAT",
    "REPORT_FILE",
    "is_hex",
    "json_ready",
    "listed_files",
    "sha256_of",
    "software_version",
    "write_checksums",
    "write_manifest_json",
]

#: Value of ``manifest.json["format"]``.
MANIFEST_FORMAT = "sitewatch-evidence-package/1"
#: The case-file page and the checksums over every file.
REPORT_FILE = "report.pdf"
CHECKSUMS_FILE = "manifest.sha256"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file (cached by path, size and modification time within a process)."""
    return file_sha256(path)


def software_version() -> str:
    """The installed sitewatch version ("unknown" when it is not installed)."""
    try:
        return importlib.metadata.version("sitewatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def json_ready(value: Any) -> Any:
    """``value`` with dict keys as text and anything that is not JSON as its ``str``."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def is_hex(text: str, length: int) -> bool:
    """``text`` is ``length`` hexadecimal digits."""
    return len(text) == length and all(c in "0123456789abcdefABCDEF" for c in text)


def listed_files(work: Path, skip: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Path, size and SHA-256 of every file under ``work`` but ``skip``, sorted by path."""
    entries = []
    for p in sorted(work.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(work).as_posix()
        if rel in skip:
            continue
        if "\n" in rel or "\\" in rel:
            raise PackageError(f"{rel!r}: file names with newlines or backslashes cannot be listed")
        entries.append({"path": rel, "bytes": p.stat().st_size, "sha256": sha256_of(p)})
    return entries


def write_manifest_json(
    work: Path,
    lead: Lead,
    inputs: Mapping[str, Any],
    ledger_excerpt: Sequence[Mapping[str, Any]] | None,
    derived: Mapping[str, Any] | None = None,
    *,
    created_utc: str,
    people: Mapping[str, str | None],
    signed_head: Mapping[str, Any] | None,
    report: Mapping[str, Any],
) -> None:
    """``manifest.json`` over every file written so far (all but the page and the checksums)."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "lead_id": lead.lead_id,
        "lead": lead.to_feature(),
        "inputs": inputs,
        "derived": dict(derived or {}),
        "software": {
            "name": "sitewatch",
            "version": software_version(),
            "web_libraries": [
                {"name": lib.name, "version": lib.version, "licence": lib.licence}
                for lib in LIBRARIES
            ],
        },
        "created_utc": created_utc,
        **dict(people),
        "files": listed_files(work),
        "ledger_excerpt": None if ledger_excerpt is None else json_ready(list(ledger_excerpt)),
        "ledger_head": None if signed_head is None else json_ready(dict(signed_head)),
        "report": dict(report),
        "verify": "sha256sum -c manifest.sha256",
    }
    write_text_atomic(work / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def write_checksums(work: Path) -> None:
    """``manifest.sha256``: ``sha256sum`` lines for every file, the page and manifest included."""
    entries = listed_files(work, frozenset({CHECKSUMS_FILE}))
    lines = [f"{e['sha256']}  {e['path']}\n" for e in entries]
    write_text_atomic(work / CHECKSUMS_FILE, "".join(sorted(lines, key=lambda s: s[66:])))
