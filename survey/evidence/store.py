"""The evidence store: content-addressed originals, the custody ledger, retention and export.

A store is a folder::

    sitewatch-store.json   marker and settings (config.py), 0444
    ledger.jsonl           the custody ledger (ledger.py), 0444 between writes
    head.json              the latest signed tree head, 0444 (a second copy, so a ledger cut
                           short after it is caught by verify)
    keys/station.key       the station's Ed25519 private key, 0400
    keys/station.pub       its public key, 0444
    objects/ab/ab12...     stored files by SHA-256, 0444
    tmp/<pid>-<id>/        work folders of running adds (never evidence)
    lock                   the store lock (locks.py)

Roles: an operator adds (``add``), an analyst derives and annotates (``record_derivation``,
``set_case``), a supervisor only reads and verifies: a store opened with ``read_only=True``
refuses every write with :class:`~survey.errors.StoreReadOnlyError`, and ``verify``, ``log``,
``trace``, ``ledger_excerpt`` and ``export_case`` need read access only (a read-only export is
not recorded in the ledger). On disk the stored files and the ledger are read-only (0444) and
the private key is readable by its owner only; the multi-user platform with logins (a later
issue) can map its roles onto these methods.

Writes: every public method that writes is one command: it takes the store lock, appends its
entries and a signed checkpoint with one ``write``, and updates ``head.json``.
:meth:`EvidenceStore.batch` makes several calls one command (one lock, one checkpoint).
Files are copied into a private work folder *before* the lock is taken (so two processes copy
at once), fsynced, then renamed into ``objects/`` under the lock just before their entries are
written; a process killed at any point leaves no partial file in ``objects/`` and a ledger
that verifies (at worst an unrecorded object, which ``verify`` notes and ``purge`` removes).

This module is longer than most (about 1,100 lines, half of them docstrings): it is the
facade every command and the pipeline call, and the store's write protocol (lock, work folder,
rename, append, head) for add, record_derivation, set_case and purge stays in one place where
it can be checked as a whole. The ledger format, the Merkle tree, verification, retention
rules and export live in their own modules.
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
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey import __version__
from survey.errors import (
    EvidenceInputError,
    EvidenceLookupError,
    InputFileError,
    LedgerFormatError,
    NotAStoreError,
    OutputError,
    StoreReadOnlyError,
)
from survey.evidence.atomic import atomic_write_bytes, fsync_dir
from survey.evidence.canonical import to_jsonable, utc_text
from survey.evidence.cases import validate_case_id, validate_risk
from survey.evidence.config import MARKER_NAME, StoreConfig
from survey.evidence.devices import describe_file
from survey.evidence.heads import head_message, head_signature_ok
from survey.evidence.keys import StationKey
from survey.evidence.ledger import (
    LEDGER_NAME,
    LedgerEntry,
    LedgerWriter,
    head_of,
    parse_entry,
    read_entries,
    read_tail,
)
from survey.evidence.locks import flocked, is_abandoned
from survey.evidence.merkle import MerkleTree, leaf_hash
from survey.evidence.objects import (
    CopiedFile,
    HashedFile,
    Progress,
    copy_hashing,
    file_size,
    hash_file,
    object_relpath,
)
from survey.evidence.retention import PurgeReport, plan_purge
from survey.evidence.state import CaseState, StoreState, replay

if TYPE_CHECKING:
    from survey.evidence.verify import HeadCheck, VerifyReport

__all__ = ["SOFTWARE", "EvidenceStore", "FileRef", "HashedFile", "StoredItem"]

log = logging.getLogger(__name__)

SOFTWARE = f"sitewatch {__version__}"
"""The software named in ledger entries by default."""

HEAD_NAME = "head.json"
LOCK_NAME = "lock"
OBJECTS_DIR = "objects"
TMP_DIR = "tmp"
KEYS_DIR = "keys"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _station() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"host": socket.gethostname(), "user": user}


def _check_sha256(value: str) -> str:
    text = str(value).strip().lower()
    if not _HEX64.fullmatch(text):
        raise EvidenceInputError(
            f"{value!r} is not a SHA-256 (64 hexadecimal digits); give the hash as "
            "`sha256sum` prints it"
        )
    return text


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredItem:
    """One file added to the store.

    Attributes
    ----------
    sha256, md5 : str
        Hex digests of its bytes.
    size : int
        Bytes.
    path : pathlib.Path
        The stored copy, ``STORE/objects/<sha256[:2]>/<sha256>`` (0444).
    source : pathlib.Path
        The original it was copied from (absolute).
    name : str
        The source as recorded (relative to ``source_root`` when one was given).
    case : str
    new : bool
        Copied now (False: the same bytes were already stored; only the event is recorded).
    seq : int
        The ``add`` entry that records it.
    device : dict
        What the file says about its device (:mod:`survey.evidence.devices`).
    """

    sha256: str
    md5: str
    size: int
    path: Path
    source: Path
    name: str
    case: str
    new: bool
    seq: int
    device: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "sha256": self.sha256,
            "md5": self.md5,
            "size": self.size,
            "path": str(self.path),
            "source": str(self.source),
            "name": self.name,
            "case": self.case,
            "new": self.new,
            "seq": self.seq,
            "device": dict(self.device),
        }


def _expand(files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[Path]:
    """Files as given, folders walked (sorted); absolute paths."""
    if isinstance(files, str | os.PathLike):
        files = [files]
    out: list[Path] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            for folder, dirs, names in os.walk(p):
                dirs.sort()
                for name in sorted(names):
                    child = Path(folder) / name
                    if child.is_file():
                        out.append(child.absolute())
                    else:
                        log.warning("%s: not a regular file; left out", child)
        elif p.exists():
            out.append(p.absolute())
        else:
            raise InputFileError(f"{p}: no such file or folder; check the path (nothing was added)")
    return out


def _source_name(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path.resolve())
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError as exc:
        raise EvidenceInputError(
            f"{path}: not inside the source root {root}; give a --source-root that holds "
            "every file added"
        ) from exc


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
    if isinstance(ref, str) and _HEX64.fullmatch(ref.strip().lower()):
        return {"role": role, "sha256": ref.strip().lower()}
    p = Path(ref)
    sha, size = hash_file(p)
    return {"role": role, "sha256": sha, "size": size, "path": str(p.resolve())}


def _copy_output(command: str, role: str, ref: FileRef, work: Path) -> CopiedFile:
    """Copy an output into the work folder (``store_outputs``), checking a given hash."""
    if isinstance(ref, str) and _HEX64.fullmatch(ref.strip().lower()):
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


class EvidenceStore:
    """An evidence store folder (see the module docstring). Make one with :meth:`open`.

    Not thread-safe: one instance per thread; any number of processes may share the folder.

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

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        read_only: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> EvidenceStore:
        """Open the store at ``path``, creating it when asked.

        Parameters
        ----------
        path : path-like
            The store folder.
        create : bool
            Create the store if ``path`` does not exist or is an empty folder (with a new
            station key). A folder with other files in it is never taken over.
        read_only : bool
            A supervisor's view: every write raises :class:`StoreReadOnlyError`.
        clock : callable, optional
            Returns the current time (timezone-aware); default the system clock in UTC.
        settings : mapping, optional
            For a new store: ``retention`` (tier → ISO 8601 period or None),
            ``default_risk``, ``checkpoint_every`` (:class:`StoreConfig`).

        Raises
        ------
        NotAStoreError
            ``path`` is missing (and ``create`` is False), a file, or a folder that is not
            a store.
        """
        root = Path(path).absolute()
        clock = clock or _utc_now
        if root.is_file():
            raise NotAStoreError(f"{root}: a file, not an evidence store folder; give the folder")
        empty = root.is_dir() and not any(root.iterdir())
        if not root.exists() or empty:
            if not create or read_only:
                what = "an empty folder" if empty else "no such folder"
                raise NotAStoreError(
                    f"{root}: {what}, not an evidence store; create one with `sitewatch "
                    f"evidence init {root}` (or add files with --store {root})"
                )
            cls._create(root, clock, settings or {})
        config = StoreConfig.read(root)
        key = StationKey.load(root / KEYS_DIR)
        if not (root / LEDGER_NAME).is_file():
            raise NotAStoreError(
                f"{root}: the store has no {LEDGER_NAME}; restore the store folder from a copy"
            )
        return cls(root, config, key, read_only=read_only, clock=clock)

    @classmethod
    def _create(
        cls, root: Path, clock: Callable[[], dt.datetime], settings: Mapping[str, Any]
    ) -> None:
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            build = Path(tempfile.mkdtemp(prefix=f".{root.name}.creating-", dir=root.parent))
        except OSError as exc:
            raise OutputError(
                f"{root}: cannot create the store here ({exc.strerror}); choose a writable place"
            ) from exc
        try:
            config = StoreConfig(
                store_id=uuid.uuid4().hex, created=utc_text(clock()), **dict(settings)
            )
            (build / OBJECTS_DIR).mkdir(mode=0o755)
            (build / TMP_DIR).mkdir(mode=0o755)
            atomic_write_bytes(build / LOCK_NAME, b"", mode=0o444)
            key = StationKey.create(build / KEYS_DIR)
            atomic_write_bytes(
                build / MARKER_NAME,
                (json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
            )
            writer = LedgerWriter(
                build / LEDGER_NAME,
                key=key,
                store_id=config.store_id,
                checkpoint_every=config.checkpoint_every,
                clock=clock,
            )
            writer.append(
                {
                    "type": "store",
                    "store_id": config.store_id,
                    "key_id": key.key_id,
                    "public_key": key.public_pem().decode("ascii"),
                    "settings": config.to_dict(),
                    "software": SOFTWARE,
                    "station": _station(),
                }
            )
            checkpoint = writer.flush()
            assert checkpoint is not None
            _write_head(build / HEAD_NAME, checkpoint)
            os.chmod(build, 0o755)
            try:
                os.rename(build, root)  # atomic; replaces an empty folder
            except OSError:
                if not (root / MARKER_NAME).exists():  # not a concurrent creation
                    raise
            else:
                fsync_dir(root.parent)
        except OSError as exc:
            raise OutputError(
                f"{root}: cannot create the store ({exc.strerror or exc}); choose an empty or "
                "new folder in a writable place"
            ) from exc
        finally:
            shutil.rmtree(build, ignore_errors=True)

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
        return self.root / object_relpath(_check_sha256(sha256))

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
            _write_head(self.head_path, checkpoint)

    @contextlib.contextmanager
    def batch(self) -> Iterator[EvidenceStore]:
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
                    "station": _station(),
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
                    "station": _station(),
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

    # ------------------------------------------------------------------ writing

    def add(
        self,
        files: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        case: str,
        risk: str | None = None,
        operator: str | None = None,
        site: str | None = None,
        source_root: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
    ) -> list[StoredItem]:
        """Copy originals into the store bit-exact and record who, when, which device, case,
        site and source path.

        Each file is read once: copied into a work folder while SHA-256 and MD5 are computed,
        fsynced, then (under the store lock) renamed to ``objects/<sha256[:2]>/<sha256>``
        (0444) unless the same bytes are already stored, and recorded by an ``add`` entry —
        the same file twice is stored once and recorded twice. A new case gets a ``case``
        entry (tier ``risk``, or the store's default with a warning); a different ``risk`` for
        an existing case is recorded as a change of tier. All or nothing: if any file cannot
        be read, vanishes or changes while it is copied, nothing is stored or recorded.

        Parameters
        ----------
        files : path-like or iterable of path-like
            Files, and folders (walked, sorted).
        case : str
            Case id (:func:`survey.evidence.cases.validate_case_id`).
        risk : str, optional
            The case's risk tier (``high``, ``medium``, ``low`` by default).
        operator : str, optional
            Who added them (recorded; the station's host and OS user are recorded too).
        site : str, optional
            The site surveyed.
        source_root : path-like, optional
            Record sources relative to this folder (e.g. the SD card's root) instead of as
            absolute paths; every file must be inside it.
        progress : callable, optional
            ``progress(source, bytes_done, bytes_total)`` after every 1 MiB copied.

        Returns
        -------
        list of StoredItem
            One per file, in the order added.

        Raises
        ------
        StoreReadOnlyError, CaseIdError, EvidenceInputError, InputFileError
        """
        self._require_writable("adding files")
        case = validate_case_id(case)
        if risk is not None:
            validate_risk(risk, self.config.tiers)
        root = Path(source_root).resolve() if source_root is not None else None
        sources = _expand(files)
        if not sources:
            raise EvidenceInputError("no files to add; name files or folders that hold some")
        names = [_source_name(p, root) for p in sources]
        with self._work_dir() as work, ThreadPoolExecutor(max_workers=1) as pool:
            copies = [
                copy_hashing(src, work / f"{i:06d}.part", pool=pool, progress=progress)
                for i, src in enumerate(sources)
            ]
            for c in copies:
                _fsync_file(c.copy)
            devices = [describe_file(c.copy) for c in copies]
            items: list[StoredItem] = []
            with self._writing("adding files") as writer:
                self._ensure_case(writer, case, risk, operator)
                placed = [self._place(c.copy, c.sha256) for c in copies]
                for folder in {p.parent for p, new in placed if new}:
                    fsync_dir(folder)
                fsync_dir(self.root / OBJECTS_DIR)
                station = _station()
                for c, name, device, (path, new) in zip(
                    copies, names, devices, placed, strict=True
                ):
                    entry = writer.append(
                        {
                            "type": "add",
                            "sha256": c.sha256,
                            "md5": c.md5,
                            "size": c.size,
                            "case": case,
                            "site": site,
                            "operator": operator,
                            "source": name,
                            "source_root": str(root) if root is not None else None,
                            "source_mtime": utc_text(
                                dt.datetime.fromtimestamp(c.mtime_ns / 1e9, dt.UTC)
                            ),
                            "stored": new,
                            "device": device,
                            "station": station,
                        }
                    )
                    items.append(
                        StoredItem(
                            c.sha256,
                            c.md5,
                            c.size,
                            path,
                            c.source,
                            name,
                            case,
                            new,
                            entry.seq,
                            device,
                        )
                    )
        return items

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
                    _fsync_file(copies[role].copy)
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
                        "station": _station(),
                    }
                )
        return entry

    def set_case(
        self,
        case: str,
        *,
        risk: str | None = None,
        hold: bool | None = None,
        operator: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Set a case's risk tier and/or legal hold (a ``case`` entry; nothing if unchanged).

        A case not seen before is created (tier ``risk`` or the store's default).

        Parameters
        ----------
        case : str
        risk : str, optional
            New tier.
        hold : bool, optional
            True puts the case on legal hold (never purged), False releases it.
        operator : str, optional
        reason : str, optional
            Why (e.g. the court order's number); recorded, and kept as the hold's reason.

        Raises
        ------
        StoreReadOnlyError, CaseIdError, EvidenceInputError
        """
        self._require_writable("changing a case")
        case = validate_case_id(case)
        if risk is not None:
            validate_risk(risk, self.config.tiers)
        with self._writing("changing a case") as writer:
            cs = self._case_states().get(case)
            previous: dict[str, Any] = {}
            if cs is None:
                cs = CaseState(case, risk or self.config.default_risk, risk_assumed=risk is None)
                changed = ["created"]
            else:
                changed = []
                if risk is not None and risk != cs.risk:
                    previous["risk"] = cs.risk
                    changed.append("risk")
                    cs.risk, cs.risk_assumed = risk, False
            if hold is not None and bool(hold) != cs.hold:
                previous["hold"] = cs.hold
                changed.append("hold" if hold else "release")
                cs.hold = bool(hold)
                cs.hold_reason = (reason or "") if hold else ""
            if not changed:
                return
            writer.append(
                {
                    "type": "case",
                    "case": case,
                    "risk": cs.risk,
                    "hold": cs.hold,
                    "hold_reason": cs.hold_reason,
                    "risk_assumed": cs.risk_assumed,
                    "changed": changed,
                    "previous": previous,
                    "reason": reason,
                    "operator": operator,
                    "station": _station(),
                }
            )

    def purge(self, *, dry_run: bool = False, operator: str | None = None) -> PurgeReport:
        """Delete the stored items whose retention has run out (:mod:`retention`).

        Every deletion is recorded first (a ``purge`` entry with the cases, tiers, periods
        and dates that decided it), then the file is removed. A ledger that does not verify
        (chain, signed heads) stops the purge before anything is deleted. Items of a case on
        hold or in a permanent tier are never touched. Also removed, without entries since they were
        never evidence: work folders of killed adds and objects no entry records (an add
        killed between placing a file and recording it); and files of items already purged
        (a purge killed between recording and deleting).

        Parameters
        ----------
        dry_run : bool
            Only report (works on a read-only store).
        operator : str, optional

        Returns
        -------
        PurgeReport
        """
        now = self.clock()
        periods = self.config.periods()
        if dry_run:
            with self._reading():
                state = replay(self._entries())
            plan = plan_purge(state, periods, now)
            return PurgeReport(
                True,
                utc_text(now),
                plan.expired,
                plan.kept_held,
                plan.kept_permanent,
                plan.kept_unexpired,
            )
        with self._writing("purging") as writer:
            self._refuse_damaged_ledger()
            state = replay(self._entries())
            plan = plan_purge(state, periods, now)
            station = _station()
            for item in plan.expired:
                writer.append(
                    {
                        "type": "purge",
                        "sha256": item.sha256,
                        "size": item.size,
                        "cases": {k: dict(v) for k, v in item.cases.items()},
                        "expired": item.expired,
                        "names": list(item.names),
                        "periods": {t: (str(p) if p else None) for t, p in periods.items()},
                        "operator": operator,
                        "station": station,
                    }
                )
            self._commit(writer)  # recorded (and durable) before anything is deleted
            folders: set[Path] = set()
            for item in plan.expired:
                path = self.root / object_relpath(item.sha256)
                path.unlink(missing_ok=True)
                folders.add(path.parent)
            cleaned = self._clean_tmp()
            for path in self._object_files():
                obj = state.objects.get(path.name)
                if obj is None or not obj.present:  # never recorded, or purged before
                    path.unlink(missing_ok=True)
                    folders.add(path.parent)
                    cleaned.append(path.relative_to(self.root).as_posix())
            for folder in folders:
                if folder.exists():
                    fsync_dir(folder)
        return PurgeReport(
            False,
            utc_text(now),
            plan.expired,
            plan.kept_held,
            plan.kept_permanent,
            plan.kept_unexpired,
            tuple(cleaned),
        )

    def _refuse_damaged_ledger(self) -> None:
        """Nothing is deleted on the word of a ledger that does not verify."""
        from survey.evidence.verify import verify_store

        report = verify_store(self, files=False)
        if not report.ok:
            raise LedgerFormatError(
                f"{self.root}: the ledger does not verify ({len(report.problems)} problem(s), "
                f"first: {report.problems[0].message}); purge refused — run `sitewatch "
                f"evidence verify {self.root}` and restore the store from a copy"
            )

    def _object_files(self) -> Iterator[Path]:
        objects = self.root / OBJECTS_DIR
        for sub in sorted(objects.iterdir()) if objects.is_dir() else []:
            if sub.is_dir():
                yield from sorted(p for p in sub.iterdir() if p.is_file())

    def export_case(self, case: str, out: str | os.PathLike[str]) -> Path:
        """Write the archive set of ``case`` for write-once media into the new folder ``out``.

        See :func:`survey.evidence.export.export_case` for the layout.

        Returns
        -------
        pathlib.Path
            ``out``.
        """
        from survey.evidence.export import export_case

        return export_case(self, validate_case_id(case), Path(out))

    # ------------------------------------------------------------------ reading

    def entries(self, *, case: str | None = None) -> Iterator[LedgerEntry]:
        """The ledger's entries in order (those of ``case`` only, if given: its ``case``,
        ``add``, ``derive`` and ``export`` entries and the ``purge`` entries of its items).

        Raises
        ------
        LedgerFormatError
            A line that is not an entry.
        """
        if case is not None:
            validate_case_id(case)
        with self._reading():
            for e in self._entries():
                if case is None or e.get("case") == case or case in (e.get("cases") or {}):
                    yield e

    def state(self) -> StoreState:
        """The store's state replayed from the ledger (cases, items, provenance)."""
        with self._reading():
            return replay(self._entries())

    def trace(self, sha256: str) -> list[LedgerEntry]:
        """The entries that lead from a file back to the originals it was made from.

        Follows ``derive`` entries that list ``sha256`` among their outputs to their inputs,
        recursively, and collects the ``add`` entries of every original reached. Inputs that
        were never added nor derived in this store end the walk (they are named in the
        ``derive`` entry).

        Returns
        -------
        list of LedgerEntry
            In ledger order.

        Raises
        ------
        EvidenceLookupError
            The ledger does not name ``sha256``.
        """
        return self._trace([_check_sha256(sha256)])

    def _trace(self, hashes: Sequence[str]) -> list[LedgerEntry]:
        with self._reading():
            state = replay(self._entries())
            for sha in hashes:
                if not state.knows(sha):
                    raise EvidenceLookupError(
                        f"{sha}: not in the ledger of {self.root}; check the hash "
                        "(`sha256sum FILE`) or add the file first"
                    )
            needed: set[int] = set()
            stack, seen = list(hashes), set()
            while stack:
                sha = stack.pop()
                if sha in seen:
                    continue
                seen.add(sha)
                needed.update(state.added.get(sha, ()))
                for seq in state.produced_by.get(sha, ()):
                    needed.add(seq)
                    stack.extend(state.derive_inputs.get(seq, ()))
            return [e for e in self._entries() if e.seq in needed]

    def ledger_excerpt(self, sha256s: Iterable[str]) -> list[dict[str, Any]]:
        """JSON-ready entries that trace files back to their originals, for a package.

        Each dict: ``seq``, ``hash`` (SHA-256 of ``line``), ``prev``, ``line`` (the exact
        ledger line), ``entry`` (it parsed), and an RFC 9162 inclusion proof against the
        latest signed head: ``tree_size``, ``root_hash``, ``leaf_hash`` (SHA-256 of 0x00 and
        the line), ``inclusion_proof`` (hex, lowest level first). On a writable store, entries
        not yet covered by a signed head get one first; on a read-only store their proof is
        None.

        Parameters
        ----------
        sha256s : iterable of str
            Files (e.g. the lead's inputs) to trace (:meth:`trace`).

        Returns
        -------
        list of dict
            In ledger order.
        """
        hashes = [_check_sha256(h) for h in sha256s]
        self._sign_pending()
        return self.excerpt(self._trace(hashes))

    def _sign_pending(self) -> None:
        """On a writable store, sign and write entries not yet covered by a checkpoint (also
        inside a batch, so that excerpts and exports can prove them)."""
        if not self.read_only:
            with self._writing("signing a head") as writer:
                if writer.tail.since_checkpoint:
                    writer.checkpoint()
                self._commit(writer)

    def excerpt(self, entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
        """``entries`` as :meth:`ledger_excerpt` gives them: JSON-ready, each with its
        inclusion proof against the latest signed head (None for entries it does not cover).
        """
        chosen = sorted(entries, key=lambda e: e.seq)
        head = self.signed_head()
        size = int(head["tree_size"])
        with self._reading():
            leaves = [leaf_hash(e.line) for e in self._entries() if e.seq < size]
        tree = MerkleTree(leaves)
        out: list[dict[str, Any]] = []
        for e in chosen:
            covered = e.seq < size
            out.append(
                {
                    "seq": e.seq,
                    "hash": e.hash,
                    "prev": e.prev,
                    "line": e.line.decode("utf-8"),
                    "entry": e.to_dict(),
                    "leaf_hash": leaf_hash(e.line).hex(),
                    "tree_size": size if covered else None,
                    "root_hash": head["root_hash"] if covered else None,
                    "inclusion_proof": (
                        [h.hex() for h in tree.inclusion_proof(e.seq, size)] if covered else None
                    ),
                }
            )
        return out

    def signed_head(self) -> dict[str, Any]:
        """The latest signed tree head.

        Returns
        -------
        dict
            ``tree_size``, ``root_hash`` (hex), ``timestamp``, ``store_id``, ``key_id``,
            ``version``, ``algorithm`` (``"Ed25519"``), ``signature`` (base64), the
            checkpoint's ``seq``, and for packages ``signed_message`` (the exact text signed,
            :func:`survey.evidence.heads.head_message`: write it to a file for ``openssl
            pkeyutl -verify -rawin``) and ``public_key_pem`` (the station's public key).
        """
        with self._reading():
            tail = read_tail(self.ledger_path)
        if tail.last_checkpoint is None:
            raise NotAStoreError(
                f"{self.ledger_path}: no signed checkpoint; run `sitewatch evidence verify "
                f"{self.root}`"
            )
        head = head_of(tail.last_checkpoint)
        head["signed_message"] = head_message(head).decode("utf-8")
        head["public_key_pem"] = self.public_key_pem().decode("ascii")
        return head

    def public_key_pem(self) -> bytes:
        """The station's public key (SubjectPublicKeyInfo PEM), for packages and exports."""
        return self.key.public_pem()

    def verify(self, *, files: bool = True) -> VerifyReport:
        """Check the whole store: chain, tree heads, signatures, ``head.json`` and (with
        ``files``) every stored file's presence and SHA-256.

        Returns
        -------
        survey.evidence.verify.VerifyReport
            ``.ok``, ``.problems`` (each names the entry seq or file), ``.notes``,
            ``.to_dict()``.
        """
        from survey.evidence.verify import verify_store

        return verify_store(self, files=files)

    def verify_head(self, head: Mapping[str, Any]) -> bool:
        """True when ``head`` (an exported signed head) is signed by this station and today's
        ledger extends it (an RFC 9162 consistency proof from its size to today's)."""
        return self.check_head(head).ok

    def check_head(self, head: Mapping[str, Any]) -> HeadCheck:
        """Like :meth:`verify_head`, with the reason and the proof
        (:class:`survey.evidence.verify.HeadCheck`)."""
        from survey.evidence.verify import check_head

        return check_head(self, head)

    def head_signature_ok(self, head: Mapping[str, Any]) -> bool:
        """True when ``head`` carries this station's valid signature (nothing more)."""
        return head_signature_ok(head, self.key)


def _write_head(path: Path, checkpoint: LedgerEntry) -> None:
    atomic_write_bytes(
        path, (json.dumps(head_of(checkpoint), indent=2, sort_keys=True) + "\n").encode()
    )
