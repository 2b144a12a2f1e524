"""Atomic text output for the mission writers (flightplans never imports :mod:`survey`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flightplans.errors import MissionOutputError

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename.

    A crash or an exception leaves no half-written file and never touches an existing one.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise MissionOutputError(
            f"{target.parent}: cannot write here ({exc.strerror}); choose a writable folder"
        ) from exc
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return target
