"""Content-addressed files: copy bit-exact while hashing, and where a hash lives in the store.

A stored file is ``objects/<sha256[:2]>/<sha256>``, mode 0444. :func:`copy_hashing` reads the
source once, in 1 MiB chunks, writing each chunk to a work file and feeding it to SHA-256 (this
thread) and MD5 (a worker thread: both hash functions release the GIL on large buffers, and
MD5, kept only for interoperability, is the slower of the two), so adding costs about what
``cp`` plus ``sha256sum`` cost. Sources are opened read-only and never written.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from survey.errors import EvidenceInputError, InputFileError

__all__ = [
    "CHUNK_SIZE",
    "CopiedFile",
    "HashedFile",
    "copy_hashing",
    "file_size",
    "hash_file",
    "object_relpath",
]

CHUNK_SIZE = 1 << 20
"""Bytes read at a time."""

Progress = Callable[[Path, int, int], None]
"""``progress(source, bytes_done, bytes_total)``, called after every chunk."""


def object_relpath(sha256: str) -> str:
    """``objects/ab/ab12...``: where a file with this SHA-256 lives in a store."""
    return f"objects/{sha256[:2]}/{sha256}"


@dataclass(frozen=True)
class CopiedFile:
    """A file copied into a work folder, with its hashes.

    Attributes
    ----------
    source : pathlib.Path
        The original (absolute).
    copy : pathlib.Path
        The copy in the work folder (mode 0600 until it is moved into ``objects/``).
    sha256, md5 : str
        Hex digests of the bytes copied.
    size : int
        Bytes.
    mtime_ns : int
        The source's modification time (ns since the epoch) when it was read.
    """

    source: Path
    copy: Path
    sha256: str
    md5: str
    size: int
    mtime_ns: int


def _open_source(source: Path) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise InputFileError(
            f"{source}: vanished before it could be stored; nothing was recorded — check "
            "that nothing moves or deletes the files while they are added, and add again"
        ) from exc
    except OSError as exc:
        raise InputFileError(
            f"{source}: cannot be read ({exc.strerror}); check its permissions"
        ) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise EvidenceInputError(f"{source}: not a regular file; add files (or a folder of them)")
    return fd, st


def _check_unchanged(source: Path, before: os.stat_result, copied: int) -> None:
    try:
        now = os.stat(source)
    except FileNotFoundError as exc:
        raise InputFileError(
            f"{source}: vanished while it was being stored; nothing was recorded — check "
            "that nothing moves or deletes the files while they are added, and add again"
        ) from exc
    if (now.st_ino, now.st_dev) != (before.st_ino, before.st_dev):
        raise InputFileError(
            f"{source}: was replaced by another file while it was being stored; nothing was "
            "recorded — add it again once nothing writes to it"
        )
    if (
        copied != before.st_size
        or now.st_size != before.st_size
        or (now.st_mtime_ns != before.st_mtime_ns)
    ):
        raise EvidenceInputError(
            f"{source}: changed while it was being stored ({before.st_size} bytes at the start, "
            f"{copied} read, {now.st_size} now); nothing was recorded — add it again once "
            "nothing writes to it"
        )


def copy_hashing(
    source: Path,
    copy: Path,
    *,
    pool: ThreadPoolExecutor | None = None,
    progress: Progress | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> CopiedFile:
    """Copy ``source`` to the new file ``copy`` byte for byte, hashing while copying.

    Parameters
    ----------
    source : pathlib.Path
        A regular file, opened read-only.
    copy : pathlib.Path
        Must not exist; created with mode 0600 (not fsynced here: the store does that before
        it records the file).
    pool : ThreadPoolExecutor, optional
        A one-worker pool for MD5 (one is made for the call if not given).
    progress : callable, optional
        ``progress(source, bytes_done, bytes_total)`` after every chunk.
    chunk_size : int
        Bytes per read.

    Returns
    -------
    CopiedFile

    Raises
    ------
    InputFileError
        The source is missing, unreadable, or vanished or was replaced while being copied.
    EvidenceInputError
        The source is not a regular file, or changed while being copied.
    """
    own_pool = pool is None
    workers = ThreadPoolExecutor(max_workers=1) if pool is None else pool
    src_fd, before = _open_source(source)
    sha = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    buffers = (bytearray(chunk_size), bytearray(chunk_size))
    pending: list[Future[None] | None] = [None, None]
    done = 0
    try:
        out_fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with open(src_fd, "rb", buffering=0, closefd=False) as src:
                i = 0
                while True:
                    slot = i & 1
                    waiting = pending[slot]
                    if waiting is not None:  # MD5 is done with this buffer before reuse
                        waiting.result()
                        pending[slot] = None
                    n = src.readinto(buffers[slot])
                    if not n:
                        break
                    view = memoryview(buffers[slot])[:n]
                    pending[slot] = workers.submit(md5.update, view)
                    sha.update(view)
                    while view:
                        view = view[os.write(out_fd, view) :]
                    done += n
                    if progress is not None:
                        progress(source, done, before.st_size)
                    i += 1
            for waiting in pending:
                if waiting is not None:
                    waiting.result()
        finally:
            os.close(out_fd)
        _check_unchanged(source, before, done)
    except BaseException:
        for waiting in pending:
            if waiting is not None:
                waiting.cancel()
        copy.unlink(missing_ok=True)
        raise
    finally:
        os.close(src_fd)
        if own_pool:
            workers.shutdown(wait=True)
    return CopiedFile(source, copy, sha.hexdigest(), md5.hexdigest(), done, before.st_mtime_ns)


def hash_file(path: Path, *, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, streaming.

    Raises
    ------
    InputFileError
        Missing or unreadable (one line naming it).
    """
    sha = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(chunk_size)
            while n := fh.readinto(buf):
                sha.update(memoryview(buf)[:n])
                size += n
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: no such file; check the path") from exc
    except IsADirectoryError as exc:
        raise InputFileError(f"{path}: a folder, not a file; give a file") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    return sha.hexdigest(), size


@dataclass(frozen=True)
class HashedFile:
    """A file with the SHA-256 its reader or writer computed: recorded with its path and size
    without being read again (a derivation's multi-GB rasters, hashed by the command).

    Attributes
    ----------
    path : pathlib.Path
    sha256 : str
        64 hexadecimal digits (stored in lower case).

    Raises
    ------
    EvidenceInputError
        ``sha256`` is not a SHA-256.
    """

    path: Path
    sha256: str

    def __post_init__(self) -> None:
        text = str(self.sha256).strip().lower()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise EvidenceInputError(
                f"{self.path}: {self.sha256!r} is not a SHA-256 (64 hexadecimal digits); give "
                "the hash as `sha256sum` prints it"
            )
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "sha256", text)


def file_size(path: Path) -> int:
    """Size of a file in bytes (a stat, no read).

    Raises
    ------
    InputFileError
        Missing, a folder, or not readable (one line naming it).
    """
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise InputFileError(f"{path}: no such file; check the path") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"{path}: not a regular file; give a file")
    return info.st_size
