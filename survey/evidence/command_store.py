"""Opening the store a command records into: writable or nothing.

A command given ``--store`` opens its store and checks it can write to it
(:func:`open_command_store`, :class:`CommandStore`) before it writes anything: a folder that is
not a store, a missing store (``ingest`` creates one, as ``sitewatch evidence add`` does), a
store opened read-only or one this user cannot write is one line and the command writes
nothing. What each command then records is :mod:`survey.evidence.wiring`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from survey.errors import NotAStoreError, StoreReadOnlyError
from survey.evidence.cases import validate_case_id
from survey.evidence.ledger import LedgerEntry
from survey.evidence.store import SOFTWARE, EvidenceStore, FileRef

__all__ = ["CommandStore", "check_writable", "open_command_store"]


def check_writable(store: EvidenceStore) -> None:
    """Raise :class:`StoreReadOnlyError` unless this process can record into ``store``.

    Checked before a command writes anything: the store's ``read_only`` flag (a supervisor's
    view), write access to its folders, and ownership of its ledger (kept 0444 between
    writes; each writer lifts the bit, which needs the owner).
    """
    root = store.root
    if store.read_only:
        raise StoreReadOnlyError(
            f"{root}: opened read-only (a supervisor's view); recording needs the store opened "
            "for writing by an operator or analyst — nothing was written"
        )
    for folder in (root, root / "objects", root / "tmp"):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StoreReadOnlyError(
                f"{root}: {folder.name}/ is not writable by this user; ask the store's owner for "
                "write access, or run without --store — nothing was written"
            )
    euid = os.geteuid()
    if euid != 0 and store.ledger_path.stat().st_uid != euid:
        raise StoreReadOnlyError(
            f"{store.ledger_path}: owned by another user, so this user cannot append to it; run "
            "the command as the store's owner, or without --store — nothing was written"
        )


@dataclass(frozen=True)
class CommandStore:
    """An evidence store a command records into, with the case and operator it records.

    Making one checks that the store can be written (:func:`check_writable`) and that the
    case id is valid, so a command makes it before it writes anything.

    Attributes
    ----------
    store : EvidenceStore
    case : str or None
        The case the entries belong to (required by :func:`record_ingest`).
    operator : str or None
        Who ran the command (recorded in every entry).
    """

    store: EvidenceStore
    case: str | None = None
    operator: str | None = None

    def __post_init__(self) -> None:
        if self.case is not None:
            validate_case_id(self.case)
        check_writable(self.store)

    @property
    def root(self) -> Path:
        """The store folder."""
        return self.store.root

    def record(
        self,
        command: str,
        *,
        inputs: Mapping[str, FileRef | Sequence[FileRef] | None],
        outputs: Mapping[str, FileRef | None],
        parameters: Mapping[str, Any],
        software: str | None = None,
    ) -> LedgerEntry:
        """One ``derive`` entry (:meth:`EvidenceStore.record_derivation`); inputs and outputs
        that are None or empty lists are left out.

        Parameters
        ----------
        command : str
            What made the outputs (``"sitewatch map"``).
        inputs : mapping
            Role → a file (hashed now), a SHA-256, a :class:`HashedFile` (not read again), or
            a list of those.
        outputs : mapping
            Role → the file written (hashed now), or a :class:`HashedFile` with the hash
            the command computed when it wrote it (not read again).
        parameters : mapping
        software : str, optional
            Default ``"sitewatch <version>"``.
        """
        ins = {
            role: (list(v) if isinstance(v, list | tuple) else v)
            for role, v in inputs.items()
            if v is not None and not (isinstance(v, list | tuple) and not v)
        }
        outs = {role: p for role, p in outputs.items() if p is not None}
        return self.store.record_derivation(
            command=command,
            inputs=ins,
            outputs=outs,
            parameters=parameters,
            operator=self.operator,
            case=self.case,
            software=software or SOFTWARE,
        )


def open_command_store(
    path: str | os.PathLike[str],
    *,
    case: str | None = None,
    operator: str | None = None,
    create: bool = False,
) -> CommandStore:
    """Open the store a command was given with ``--store`` and check it can be written.

    Parameters
    ----------
    path : path-like
        The store folder.
    case, operator : str, optional
        Recorded in the command's entries.
    create : bool
        Create the store when ``path`` is missing or an empty folder (``ingest``, as
        ``sitewatch evidence add`` does); the other commands record derivations and need the
        store their inputs were recorded in.

    Raises
    ------
    CaseIdError
        A bad case id (checked before the store is created).
    NotAStoreError
        ``path`` is not a store (or is missing or empty and ``create`` is False: the hint
        then says to give the store the inputs were recorded in, as a command that only
        records derivations cannot start one).
    StoreReadOnlyError
        The store cannot be written by this user.
    """
    if case is not None:
        validate_case_id(case)
    root = Path(path).absolute()
    if not create and (not root.exists() or (root.is_dir() and not any(root.iterdir()))):
        what = "no such folder" if not root.exists() else "an empty folder"
        raise NotAStoreError(
            f"{root}: {what}, not an evidence store; this command records what it made from "
            "files in a store, so give the store they were recorded in (by `sitewatch ingest "
            "--store` or `sitewatch evidence add --store`), or run without --store — nothing "
            "was written"
        )
    return CommandStore(EvidenceStore.open(root, create=create), case, operator)
