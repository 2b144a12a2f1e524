"""File locks (``fcntl.flock``) that let several processes use one store safely.

* The store lock (``STORE/lock``): writers hold it exclusively while they move copied files
  into ``objects/`` and append to the ledger; readers (``verify``, ``log``, the state a command
  replays) hold it shared, so they never see half an append. ``flock`` works on a descriptor
  opened read-only, so a supervisor without write access still takes the shared lock.
* A work-folder lock (``STORE/tmp/<id>/.lock``): held by a process for as long as it copies
  files into its work folder; a folder whose lock can be taken belongs to a process that died
  (killed in the middle of an add) and is removed by the next writer.

Locks are released by the kernel when a process dies, so a killed writer never blocks others.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["flocked", "is_abandoned"]


@contextlib.contextmanager
def flocked(path: Path, *, exclusive: bool) -> Iterator[bool]:
    """Hold ``flock`` on ``path`` (shared or exclusive) for the duration of the block.

    Parameters
    ----------
    path : pathlib.Path
        An existing file (opened read-only, so no write access is needed).
    exclusive : bool
        Exclusive (writers) or shared (readers).

    Yields
    ------
    bool
        True when the lock is held; False when the file could not be opened (a reader
        without access to the lock file goes on unlocked).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if exclusive:
            raise
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_abandoned(lock_file: Path) -> bool:
    """True when nobody holds ``lock_file`` (its owner died), False while someone does.

    A missing lock file counts as abandoned.
    """
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
