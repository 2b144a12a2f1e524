"""Recording derivations: a derived product's inputs, parameters, software and outputs.

:meth:`StoreDerivations.record_derivation` is
:meth:`survey.evidence.store.EvidenceStore.record_derivation`. Files are named by path (hashed
when recorded), by SHA-256, or as a :class:`~survey.evidence.objects.HashedFile` whose hash the
command computed (not read again); outputs are copied into the store only when asked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from survey.errors import EvidenceInputError
from survey.evidence.atomic import fsync_dir
from survey.evidence.canonical import to_jsonable
from survey.evidence.cases import validate_case_id
from survey.evidence.ledger import LedgerEntry
from survey.evidence.objects import CopiedFile, HashedFile, copy_hashing, file_size, hash_file
from survey.evidence.store_base import HEX64, SOFTWARE, StoreBase, fsync_file, station_record

__all__ = ["FileRef", "StoreDerivations"]


FileRef = str | os.PathLike[str] | HashedFile
"""A file a derivation names: a path (hashed when recorded), a SHA-256, or a
:class:`~survey.evidence.objects.HashedFile` (a path with the hash its command computed)."""


def _ref_path(ref: FileRef) -> Path:
    return ref.path if isinstance(ref, HashedFile) else Path(ref)


def _file_record(role: str, ref: FileRef) -> dict[str, Any]:
    """A derivation's record of one input or output: role, SHA-256, and size and path when
    the file is named (read now only when its hash is not given)."""
    if isinstance(ref, HashedFile):
        size = file_size(ref.path)
        return {"role": role, "sha256": ref.sha256, "size": size, "path": str(ref.path.resolve())}
    if isinstance(ref, str) and HEX64.fullmatch(ref.strip().lower()):
        return {"role": role, "sha256": ref.strip().lower()}
    p = Path(ref)
    sha, size = hash_file(p)
    return {"role": role, "sha256": sha, "size": size, "path": str(p.resolve())}


def _copy_output(command: str, role: str, ref: FileRef, work: Path) -> CopiedFile:
    """Copy an output into the work folder (``store_outputs``), checking a given hash."""
    if isinstance(ref, str) and HEX64.fullmatch(ref.strip().lower()):
        raise EvidenceInputError(
            f"{command}: output {role} is given only by its SHA-256, so it cannot be stored; "
            "give its file"
        )
    copy = copy_hashing(_ref_path(ref), work)
    if isinstance(ref, HashedFile) and copy.sha256 != ref.sha256:
        copy.copy.unlink(missing_ok=True)
        raise EvidenceInputError(
            f"{ref.path}: SHA-256 {copy.sha256[:16]}… now, but {ref.sha256[:16]}… when "
            f"{command} wrote it; run the command again — nothing was recorded"
        )
    return copy


class StoreDerivations(StoreBase):
    """The part of :class:`~survey.evidence.store.EvidenceStore` that records derivations."""

    def record_derivation(
        self,
        *,
        command: str,
        inputs: Mapping[str, FileRef | Sequence[FileRef]],
        outputs: Mapping[str, FileRef],
        parameters: Mapping[str, Any],
        operator: str | None = None,
        case: str | None = None,
        software: str = SOFTWARE,
        store_outputs: bool = False,
    ) -> LedgerEntry:
        """Record a derived product's provenance: inputs, parameters, software, outputs.

        Parameters
        ----------
        command : str
            What made it (``"sitewatch detect"``, ``"ingest"``).
        inputs : mapping
            Role → a file (hashed now), a SHA-256 (64 hex digits, e.g. of an original already
            in the store or of a file no longer at hand), a :class:`HashedFile` (a file and the
            SHA-256 the command computed when it read it: recorded with its path and size,
            not read again), or a list of those.
        outputs : mapping
            Role → the file written (hashed now), its SHA-256, or a :class:`HashedFile` (the
            hash the command computed when it wrote the file: not read again). Not copied
            unless ``store_outputs`` (which needs the file: a bare SHA-256 is refused, and a
            :class:`HashedFile` whose copy hashes otherwise is an error).
        parameters : mapping
            The stage's parameters (dataclasses, paths, numpy values are converted).
        operator : str, optional
            Who ran it.
        case : str, optional
            The case it belongs to (required with ``store_outputs``).
        software : str
            Name and version of what ran (default ``"sitewatch <version>"``).
        store_outputs : bool
            Also copy the outputs into the store (items of ``case``, kept by its tier).

        Returns
        -------
        LedgerEntry
            The ``derive`` entry.

        Raises
        ------
        StoreReadOnlyError, CaseIdError, EvidenceInputError, InputFileError
        """
        self._require_writable("recording a derivation")
        if case is not None:
            case = validate_case_id(case)
        if store_outputs and case is None:
            raise EvidenceInputError(
                f"{command}: store_outputs needs a case (the outputs are kept by its risk tier)"
            )
        in_records: list[dict[str, Any]] = []
        for role, value in inputs.items():
            values: Sequence[FileRef] = (
                value if isinstance(value, list | tuple) else [value]  # type: ignore[list-item]
            )
            in_records += [_file_record(role, v) for v in values]
        params = to_jsonable(parameters, where=f"{command} parameters")
        with contextlib.ExitStack() as stack:
            out_records: list[dict[str, Any]] = []
            copies: dict[str, Any] = {}
            if store_outputs:
                work = stack.enter_context(self._work_dir())
                for i, (role, ref) in enumerate(outputs.items()):
                    copies[role] = _copy_output(command, role, ref, work / f"{i:06d}.part")
                    fsync_file(copies[role].copy)
            for role, ref in outputs.items():
                if role in copies:
                    c = copies[role]
                    out_records.append(
                        {
                            "role": role,
                            "sha256": c.sha256,
                            "md5": c.md5,
                            "size": c.size,
                            "path": str(_ref_path(ref).resolve()),
                            "stored": True,
                        }
                    )
                else:
                    out_records.append(_file_record(role, ref) | {"stored": False})
            with self._writing("recording a derivation") as writer:
                if case is not None:
                    self._ensure_case(writer, case, None, operator)
                if copies:
                    placed = [self._place(c.copy, c.sha256) for c in copies.values()]
                    for folder in {p.parent for p, new in placed if new}:
                        fsync_dir(folder)
                entry = writer.append(
                    {
                        "type": "derive",
                        "command": command,
                        "software": software,
                        "parameters": params,
                        "inputs": in_records,
                        "outputs": out_records,
                        "operator": operator,
                        "case": case,
                        "station": station_record(),
                    }
                )
        return entry
