"""The store's folder and write protocol, shared by every part of :class:`EvidenceStore`.

:class:`StoreBase` holds what the other parts build on: the folder's paths, the store lock
(shared for reading, exclusive for writing), the session that buffers a command's entries and
signs them in one checkpoint (:meth:`StoreBase.batch`), the private work folders copies are
made in, and the two steps every write shares — a case created or re-tiered on first use, and
a fsynced copy renamed into ``objects/``. The parts of the store that use it:
:mod:`.store_add` (originals), :mod:`.store_derive` (derivations), :mod:`.store_cases` (cases
and retention), :mod:`.store_views` (read-only views); :mod:`.store` puts them together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import getpass
import json
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

from survey import __version__
from survey.errors import EvidenceInputError, StoreReadOnlyError
from survey.evidence.atomic import atomic_write_bytes
from survey.evidence.config import StoreConfig
from survey.evidence.keys import StationKey
from survey.evidence.ledger import (
    LEDGER_NAME,
    LedgerEntry,
    LedgerWriter,
    head_of,
    parse_entry,
    read_entries,
)
from survey.evidence.locks import flocked, is_abandoned
from survey.evidence.objects import object_relpath
from survey.evidence.state import CaseState, StoreState, replay

__all__ = [
    "HEAD_NAME",
    "HEX64",
    "KEYS_DIR",
    "LOCK_NAME",
    "OBJECTS_DIR",
    "SOFTWARE",
    "TMP_DIR",
    "StoreBase",
    "check_sha256",
    "fsync_file",
    "station_record",
    "utc_now",
    "write_head",
]

log = logging.getLogger(__name__)

SOFTWARE = f"sitewatch {__version__}"
"""The software named in ledger entries by default."""

HEAD_NAME = "head.json"
LOCK_NAME = "lock"
OBJECTS_DIR = "objects"
TMP_DIR = "tmp"
KEYS_DIR = "keys"
HEX64 = re.compile(r"[0-9a-f]{64}")
"""A SHA-256 as the ledger writes it (lower-case hex)."""


def utc_now() -> dt.datetime:
    """The system clock in UTC (the store's default clock)."""
    return dt.datetime.now(dt.UTC)


def station_record() -> dict[str, str]:
    """The host and OS user of this process, as entries record them (``station``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"host": socket.gethostname(), "user": user}


def check_sha256(value: str) -> str:
    """``value`` as a lower-case SHA-256; EvidenceInputError when it is not one."""
    text = str(value).strip().lower()
    if not HEX64.fullmatch(text):
        raise EvidenceInputError(
            f"{value!r} is not a SHA-256 (64 hexadecimal digits); give the hash as "
            "`sha256sum` prints it"
        )
    return text


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk (a copy, before it is renamed into ``objects/``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_head(path: Path, checkpoint: LedgerEntry) -> None:
    """Write ``head.json``: the signed head of ``checkpoint``, atomically."""
    atomic_write_bytes(
        path, (json.dumps(head_of(checkpoint), indent=2, sort_keys=True) + "\n").encode()
    )


class StoreBase:
    """The folder, lock, sessions and shared write steps of an evidence store.

    Not used alone: :class:`survey.evidence.store.EvidenceStore` is made of it and the
    parts that add originals, record derivations, keep cases and show the ledger.

    Attributes
    ----------
    root : pathlib.Path
    config : StoreConfig
    key : StationKey
    read_only : bool
    clock : callable
        Returns the current time (UTC); injectable for tests of retention.
    """

    def __init__(
        self,
        root: Path,
        config: StoreConfig,
        key: StationKey,
        *,
        read_only: bool,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.root = root
        self.config = config
        self.key = key
        self.read_only = read_only
        self.clock = clock
        self._writer: LedgerWriter | None = None
        self._cases_seen: tuple[int, int, dict[str, CaseState]] = (0, 0, {})

    # ------------------------------------------------------------------ paths

    @property
    def ledger_path(self) -> Path:
        """``STORE/ledger.jsonl``."""
        return self.root / LEDGER_NAME

    @property
    def head_path(self) -> Path:
        """``STORE/head.json``."""
        return self.root / HEAD_NAME

    def object_path(self, sha256: str) -> Path:
        """Where the file with this SHA-256 is (or would be) stored."""
        return self.root / object_relpath(check_sha256(sha256))

    # ------------------------------------------------------------------ sessions

    def _require_writable(self, action: str) -> None:
        if self.read_only:
            raise StoreReadOnlyError(
                f"{self.root}: opened read-only (a supervisor's view); {action} needs the "
                "store opened for writing by an operator or analyst"
            )

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._writer is not None:  # this instance already holds it
            yield
            return
        with flocked(self.root / LOCK_NAME, exclusive=True):
            yield

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        if self._writer is not None:
            yield
            return
        with flocked(self.root / LOCK_NAME, exclusive=False):
            yield

    @contextlib.contextmanager
    def _writing(self, action: str) -> Iterator[LedgerWriter]:
        self._require_writable(action)
        if self._writer is not None:
            yield self._writer
            return
        with flocked(self.root / LOCK_NAME, exclusive=True):
            writer = LedgerWriter(
                self.ledger_path,
                key=self.key,
                store_id=self.config.store_id,
                checkpoint_every=self.config.checkpoint_every,
                clock=self.clock,
            )
            self._writer = writer
            try:
                yield writer
            finally:
                self._writer = None
                self._commit(writer)

    def _commit(self, writer: LedgerWriter) -> None:
        checkpoint = writer.flush()
        if checkpoint is not None:
            write_head(self.head_path, checkpoint)

    @contextlib.contextmanager
    def batch(self) -> Iterator[Self]:
        """Make the calls inside one command: one lock held throughout, one checkpoint.

        Examples
        --------
        >>> with store.batch():  # doctest: +SKIP
        ...     store.add(photos, case="2024-017")
        ...     store.record_derivation(command="ingest", inputs=..., outputs=..., parameters={})
        """
        with self._writing("a batch of writes"):
            yield self

    def _entries(self) -> Iterator[LedgerEntry]:
        """Every entry on disk, then those this instance has buffered (caller holds a lock)."""
        yield from read_entries(self.ledger_path)
        if self._writer is not None:
            yield from self._writer.pending

    def _case_states(self) -> dict[str, CaseState]:
        """The cases as the ledger (and this instance's unwritten entries) leave them.

        The ledger is append-only, so what was read before is kept and only new lines are
        parsed: a batch of thousands of derivations does not re-read the ledger each time.
        """
        with self._reading():
            offset, lines, cases = self._cases_seen
            if self.ledger_path.stat().st_size < offset:  # never, unless rewritten
                offset, lines, cases = 0, 0, {}
            state = StoreState(cases={k: dataclasses.replace(v) for k, v in cases.items()})
            with open(self.ledger_path, "rb") as fh:
                fh.seek(offset)
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break  # a torn last line: not an entry
                    lines += 1
                    offset += len(raw)
                    entry = parse_entry(raw[:-1], path=self.ledger_path, lineno=lines)
                    if entry.type == "case":
                        replay([entry], state=state, provenance=False)
            self._cases_seen = (
                offset,
                lines,
                {k: dataclasses.replace(v) for k, v in state.cases.items()},
            )
            if self._writer is not None:
                pending = (e for e in self._writer.pending if e.type == "case")
                replay(pending, state=state, provenance=False)
            return state.cases

    @contextlib.contextmanager
    def _work_dir(self) -> Iterator[Path]:
        """A private folder under ``tmp/`` for copies, locked while this process lives."""
        with self._exclusive():  # made and locked under the store lock: no cleaner sees it
            self._clean_tmp()
            work = self.root / TMP_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
            work.mkdir(mode=0o700, parents=True)
            fd = os.open(work / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)
            os.close(fd)

    def _clean_tmp(self) -> list[str]:
        """Remove work folders of dead processes (caller holds the store lock)."""
        cleaned: list[str] = []
        tmp = self.root / TMP_DIR
        if not tmp.is_dir():
            return cleaned
        for child in sorted(tmp.iterdir()):
            if child.is_dir() and is_abandoned(child / ".lock"):
                shutil.rmtree(child, ignore_errors=True)
                cleaned.append(f"{TMP_DIR}/{child.name}")
        return cleaned

    # ------------------------------------------------------------------ shared write steps

    def _ensure_case(
        self, writer: LedgerWriter, case: str, risk: str | None, operator: str | None
    ) -> None:
        cs = self._case_states().get(case)
        if cs is None:
            tier = risk or self.config.default_risk
            if risk is None:
                log.warning(
                    "case %s has no risk tier; assumed %r (the store's default) — set it with "
                    "`sitewatch evidence case --store %s %s --risk TIER`",
                    case,
                    tier,
                    self.root,
                    case,
                )
            writer.append(
                {
                    "type": "case",
                    "case": case,
                    "risk": tier,
                    "hold": False,
                    "hold_reason": "",
                    "risk_assumed": risk is None,
                    "changed": ["created"],
                    "operator": operator,
                    "station": station_record(),
                }
            )
        elif risk is not None and risk != cs.risk:
            writer.append(
                {
                    "type": "case",
                    "case": case,
                    "risk": risk,
                    "hold": cs.hold,
                    "hold_reason": cs.hold_reason,
                    "risk_assumed": False,
                    "changed": ["risk"],
                    "previous": {"risk": cs.risk},
                    "operator": operator,
                    "station": station_record(),
                }
            )

    def _place(self, copy: Path, sha256: str) -> tuple[Path, bool]:
        """Move a fsynced copy to its object path (under the store lock); (path, new)."""
        final = self.root / object_relpath(sha256)
        if final.exists():
            return final, False
        final.parent.mkdir(mode=0o755, exist_ok=True)
        os.chmod(copy, 0o444)
        os.replace(copy, final)
        return final, True

    def _object_files(self) -> Iterator[Path]:
        """Every file under ``objects/``, sorted (what is stored, recorded or not)."""
        objects = self.root / OBJECTS_DIR
        for sub in sorted(objects.iterdir()) if objects.is_dir() else []:
            if sub.is_dir():
                yield from sorted(p for p in sub.iterdir() if p.is_file())
