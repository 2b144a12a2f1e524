"""Atomic, durable file writes: a temporary file in the same folder, fsync, ``os.replace``,
then fsync of the folder, so that a crash leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_bytes", "fsync_dir", "writable"]


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename or a new file in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o444) -> None:
    """Write ``data`` to ``path`` atomically and durably, leaving the file with ``mode``.

    Parameters
    ----------
    path : pathlib.Path
        The target; its folder must exist. An existing file is replaced (even a read-only one:
        replacing needs write access to the folder only).
    data : bytes
    mode : int
        Permission bits of the new file (default read-only for everyone).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def writable(path: Path) -> Iterator[None]:
    """Give a read-only file (0444) its owner's write bit for the duration, then take it back.

    The ledger stays read-only on disk between writes; a crash inside leaves it 0644, which
    the next writer puts back.
    """
    os.chmod(path, 0o644)
    try:
        yield
    finally:
        os.chmod(path, 0o444)
