"""The custody ledger: append-only JSON Lines with a hash chain and signed checkpoints.

One entry per line, canonical JSON (:mod:`survey.evidence.canonical`), every entry with

* ``seq``  — its position, 0, 1, 2, ...;
* ``prev`` — the SHA-256 (hex) of the previous line's bytes (64 zeros for entry 0);
* ``time`` — UTC, ISO 8601 with ``Z``;
* ``type`` — ``store`` (entry 0: the store's id, key and settings), ``add`` (an original
  copied into the store), ``derive`` (a derived product's provenance), ``case`` (a case's
  risk tier or legal hold set), ``purge`` (an expired item deleted), ``export`` (an archive
  set written), ``repair`` (a torn last line removed) or ``checkpoint``;

and the fields of its type. An entry's hash is the SHA-256 of its line without the newline;
its Merkle leaf (RFC 9162) is the same bytes. A ``checkpoint`` entry at ``seq`` = ``c`` is a
signed tree head over entries ``0 .. c-1`` (:mod:`survey.evidence.heads`: ``tree_size`` = c,
``root_hash``, ``key_id``, ``signature``, ...) plus ``frontier``, the compact range of that
tree (the hashes of its perfect subtrees), from which a writer continues the tree without
reading the whole ledger. Checkpoints are written every ``checkpoint_every`` entries and at
the end of every command.

Writers (:class:`LedgerWriter`) hold the store's exclusive lock: they read the tail
(:func:`read_tail`, backwards to the last checkpoint), buffer the command's entries and write
them with one ``write`` on a descriptor opened with ``O_APPEND``, then ``fsync``. A process
killed mid-command writes nothing; a torn last line (power lost mid-write) is cut off by the
next writer, which records a ``repair`` entry with the bytes' length and hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survey.errors import LedgerFormatError
from survey.evidence.atomic import writable
from survey.evidence.canonical import canonical_json, utc_text
from survey.evidence.heads import HEAD_FIELDS, make_head
from survey.evidence.keys import StationKey
from survey.evidence.merkle import CompactRange, leaf_hash

__all__ = [
    "ENTRY_TYPES",
    "GENESIS_PREV",
    "LEDGER_NAME",
    "LedgerEntry",
    "LedgerWriter",
    "Tail",
    "entry_hash",
    "head_of",
    "iter_lines",
    "parse_entry",
    "read_entries",
    "read_tail",
]

log = logging.getLogger(__name__)

LEDGER_NAME = "ledger.jsonl"
GENESIS_PREV = "0" * 64
ENTRY_TYPES = ("store", "add", "derive", "case", "purge", "export", "repair", "checkpoint")
_BLOCK = 64 * 1024


def entry_hash(line: bytes) -> str:
    """Hex SHA-256 of a ledger line (without its newline): the next entry's ``prev``."""
    return hashlib.sha256(line).hexdigest()


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger entry as read or written.

    Attributes
    ----------
    seq : int
    type : str
    time : str
        UTC, ISO 8601.
    prev : str
        Hex SHA-256 of the previous entry's line.
    hash : str
        Hex SHA-256 of this entry's line.
    record : dict
        The whole entry (``seq``, ``prev``, ``time``, ``type`` included), JSON-ready.
    line : bytes
        The exact line (no newline): what is hashed, chained and put in the Merkle tree.
    """

    seq: int
    type: str
    time: str
    prev: str
    hash: str
    record: Mapping[str, Any] = field(repr=False)
    line: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict (a copy)."""
        record: dict[str, Any] = json.loads(self.line)
        return record

    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the entry, or ``default``."""
        return self.record.get(key, default)


def head_of(entry: LedgerEntry) -> dict[str, Any]:
    """The signed tree head a ``checkpoint`` entry carries (the fields
    :func:`survey.evidence.heads.head_message` signs, plus ``algorithm``, ``signature`` and
    the checkpoint's ``seq``)."""
    head = {k: entry.record[k] for k in (*HEAD_FIELDS, "algorithm", "signature")}
    head["seq"] = entry.seq
    return head


def parse_entry(line: bytes, *, path: Path, lineno: int) -> LedgerEntry:
    """Parse one ledger line (``lineno`` counts from 1, for the message).

    Raises
    ------
    LedgerFormatError
        Not JSON, not an object, or without an integer ``seq``, a ``prev``, a ``time`` or a
        known ``type``.
    """
    where = f"{path} line {lineno}"
    fix = f"run `sitewatch evidence verify {path.parent}` to see every problem"
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LedgerFormatError(f"{where}: not JSON ({exc}); {fix}") from exc
    if not isinstance(record, dict):
        raise LedgerFormatError(f"{where}: a JSON {type(record).__name__}, not an entry; {fix}")
    seq, prev, when, kind = (record.get(k) for k in ("seq", "prev", "time", "type"))
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise LedgerFormatError(f"{where}: seq is {seq!r}, not a count; {fix}")
    if not isinstance(prev, str) or not isinstance(when, str) or kind not in ENTRY_TYPES:
        raise LedgerFormatError(
            f"{where}: entry {seq} lacks prev, time or a known type (type {kind!r}); {fix}"
        )
    return LedgerEntry(seq, kind, when, prev, entry_hash(line), record, line)


def iter_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(lineno, line without newline, complete)`` for every line of ``path``, streaming.

    ``complete`` is False only for a last line with no newline (a torn write).
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            complete = raw.endswith(b"\n")
            yield lineno, raw[:-1] if complete else raw, complete


def read_entries(path: Path, *, skip_torn: bool = True) -> Iterator[LedgerEntry]:
    """Every entry of the ledger at ``path``, in file order, strictly parsed.

    Parameters
    ----------
    path : pathlib.Path
    skip_torn : bool
        Leave out a torn last line (with a warning) instead of raising.

    Raises
    ------
    LedgerFormatError
        A line that is not an entry (see :func:`parse_entry`).
    """
    for lineno, line, complete in iter_lines(path):
        if not complete:
            if skip_torn:
                log.warning(
                    "%s: the last line is a partial entry of %d bytes (an interrupted write); "
                    "left out, and the next write removes it",
                    path,
                    len(line),
                )
                return
            raise LedgerFormatError(
                f"{path} line {lineno}: a partial entry of {len(line)} bytes (an interrupted "
                "write); the next write to the store removes it"
            )
        yield parse_entry(line, path=path, lineno=lineno)


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """Complete lines of ``path`` (without newlines) from the last to the first; bytes after
    the last newline (a torn write) are left out."""
    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        buf = b""
        found_end = False
        while pos > 0:
            start = max(0, pos - _BLOCK)
            fh.seek(start)
            buf = fh.read(pos - start) + buf
            pos = start
            if not found_end:
                cut = buf.rfind(b"\n")
                if cut == -1:
                    continue
                buf = buf[:cut]
                found_end = True
            cut = buf.rfind(b"\n")
            while cut != -1:
                yield buf[cut + 1 :]
                buf = buf[:cut]
                cut = buf.rfind(b"\n")
        if found_end:
            yield buf


def _torn_bytes(path: Path) -> int:
    """Bytes after the last newline of ``path`` (0 when it ends with one or is empty)."""
    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        end = pos
        while pos > 0:
            start = max(0, pos - _BLOCK)
            fh.seek(start)
            cut = fh.read(pos - start).rfind(b"\n")
            if cut != -1:
                return end - (start + cut + 1)
            pos = start
        return end


@dataclass
class Tail:
    """What a writer needs of the ledger: its size, last hash, tree and torn bytes.

    Attributes
    ----------
    size : int
        Number of complete entries.
    last_hash : str
        Hex SHA-256 of the last entry (``GENESIS_PREV`` for an empty ledger).
    tree : CompactRange
        Compact range of the Merkle tree over all entries.
    since_checkpoint : int
        Entries after the last checkpoint.
    torn : int
        Bytes after the last newline (0 normally).
    last_checkpoint : LedgerEntry or None
    """

    size: int = 0
    last_hash: str = GENESIS_PREV
    tree: CompactRange = field(default_factory=CompactRange)
    since_checkpoint: int = 0
    torn: int = 0
    last_checkpoint: LedgerEntry | None = None


def read_tail(path: Path) -> Tail:
    """Read the ledger backwards to its last checkpoint and rebuild the writer's state.

    The checkpoint's ``frontier`` must give its ``root_hash`` (else the ledger was altered
    and nothing is appended to it).

    Raises
    ------
    LedgerFormatError
        A line after the last checkpoint is not an entry, seqs are not consecutive there, or
        the checkpoint's frontier does not give its root.
    """
    lines: list[bytes] = []
    checkpoint: LedgerEntry | None = None
    for line in _lines_backwards(path):
        lines.append(line)
        if b'"type":"checkpoint"' in line:
            entry = parse_entry(line, path=path, lineno=0)
            if entry.type == "checkpoint":
                checkpoint = entry
                break
    lines.reverse()
    torn = _torn_bytes(path)
    if checkpoint is None:  # no checkpoint at all: replay everything
        tail = Tail(torn=torn)
        for entry in read_entries(path):
            _advance(tail, entry, path)
        return tail
    try:
        frontier = [bytes.fromhex(h) for h in checkpoint.record["frontier"]]
        tree = CompactRange(int(checkpoint.record["tree_size"]), frontier)
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerFormatError(
            f"{path}: the checkpoint at entry {checkpoint.seq} has no usable frontier ({exc}); "
            f"run `sitewatch evidence verify {path.parent}`"
        ) from exc
    if tree.size != checkpoint.seq or tree.root().hex() != checkpoint.record.get("root_hash"):
        raise LedgerFormatError(
            f"{path}: the checkpoint at entry {checkpoint.seq} does not match its own tree "
            f"(altered ledger); run `sitewatch evidence verify {path.parent}` and restore the "
            "store from a copy before writing to it"
        )
    tail = Tail(size=checkpoint.seq, last_hash=checkpoint.prev, tree=tree, torn=torn)
    for i, line in enumerate(lines):
        entry = parse_entry(line, path=path, lineno=checkpoint.seq + 1 + i)
        _advance(tail, entry, path)
    return tail


def _advance(tail: Tail, entry: LedgerEntry, path: Path) -> None:
    if entry.seq != tail.size or entry.prev != tail.last_hash:
        raise LedgerFormatError(
            f"{path}: entry {entry.seq} does not follow entry {tail.size - 1} (seq or prev "
            f"hash); run `sitewatch evidence verify {path.parent}` and restore the store from "
            "a copy before writing to it"
        )
    tail.tree.append(leaf_hash(entry.line))
    tail.size += 1
    tail.last_hash = entry.hash
    if entry.type == "checkpoint":
        tail.since_checkpoint = 0
        tail.last_checkpoint = entry
    else:
        tail.since_checkpoint += 1


class LedgerWriter:
    """Appends entries to the ledger; use only while holding the store's exclusive lock.

    Entries are buffered and written by :meth:`flush` with one ``write`` and an ``fsync``,
    a checkpoint first when entries are not yet covered by one.

    Parameters
    ----------
    path : pathlib.Path
        ``STORE/ledger.jsonl`` (created if missing).
    key : StationKey
        Signs the checkpoints.
    store_id : str
    checkpoint_every : int
        A checkpoint after this many entries, besides the one at every flush.
    clock : callable
        Returns the current time (timezone-aware; naive is taken as UTC).
    """

    def __init__(
        self,
        path: Path,
        *,
        key: StationKey,
        store_id: str,
        checkpoint_every: int,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.path = path
        self.key = key
        self.store_id = store_id
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.clock = clock
        self.tail = read_tail(path) if path.exists() else Tail()
        self._pending: list[bytes] = []
        self._pending_entries: list[LedgerEntry] = []
        self.last_checkpoint: LedgerEntry | None = self.tail.last_checkpoint
        if self.tail.torn:
            self._repair()

    def _repair(self) -> None:
        size = self.path.stat().st_size
        with open(self.path, "rb") as fh:
            fh.seek(size - self.tail.torn)
            dropped = fh.read()
        with writable(self.path), open(self.path, "r+b") as fh:
            fh.truncate(size - self.tail.torn)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning(
            "%s: removed a partial last entry of %d bytes (an interrupted write); recorded as "
            "a repair entry",
            self.path,
            len(dropped),
        )
        self.append(
            {
                "type": "repair",
                "dropped_bytes": len(dropped),
                "dropped_sha256": hashlib.sha256(dropped).hexdigest(),
                "reason": "partial last line (an interrupted write) removed",
            }
        )
        self.tail.torn = 0

    @property
    def size(self) -> int:
        """Entries in the ledger once the buffer is written."""
        return self.tail.size

    def now(self) -> str:
        """The clock's time as ledger text."""
        return utc_text(self.clock())

    def append(self, fields: Mapping[str, Any]) -> LedgerEntry:
        """Buffer one entry (``seq``, ``prev`` and ``time`` are filled in; ``type`` must be
        given) and, every ``checkpoint_every`` entries, a checkpoint."""
        record = dict(fields)
        record["seq"] = self.tail.size
        record["prev"] = self.tail.last_hash
        record.setdefault("time", self.now())
        entry = self._add(record)
        if self.tail.since_checkpoint >= self.checkpoint_every:
            self.checkpoint()
        return entry

    def _add(self, record: dict[str, Any]) -> LedgerEntry:
        line = canonical_json(record)
        entry = parse_entry(line, path=self.path, lineno=record["seq"] + 1)
        self._pending.append(line + b"\n")
        self._pending_entries.append(entry)
        _advance(self.tail, entry, self.path)
        return entry

    @property
    def pending(self) -> list[LedgerEntry]:
        """Entries appended but not yet written (a copy)."""
        return list(self._pending_entries)

    def checkpoint(self) -> LedgerEntry:
        """Buffer a checkpoint: a signed head over every entry so far."""
        when = self.now()
        head = make_head(
            self.key,
            store_id=self.store_id,
            tree_size=self.tail.size,
            root_hash=self.tail.tree.root(),
            timestamp=when,
        )
        record: dict[str, Any] = {
            "type": "checkpoint",
            "seq": self.tail.size,
            "prev": self.tail.last_hash,
            "time": when,
            "frontier": [h.hex() for h in self.tail.tree.hashes],
            **head,
        }
        entry = self._add(record)
        self.last_checkpoint = entry
        return entry

    def flush(self) -> LedgerEntry | None:
        """Checkpoint what is not yet covered, write the buffer (one ``write``), ``fsync``.

        Returns
        -------
        LedgerEntry or None
            The last checkpoint written, None when there was nothing to write.
        """
        if not self._pending:
            return None
        if self.tail.since_checkpoint:
            self.checkpoint()
        data = b"".join(self._pending)
        created = not self.path.exists()
        if created:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.chmod(self.path, 0o444)
        else:
            with writable(self.path):
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
                try:
                    _write_all(fd, data)
                finally:
                    os.close(fd)
        self._pending.clear()
        self._pending_entries.clear()
        return self.last_checkpoint


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fsync(fd)
