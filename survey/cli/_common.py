"""Helpers shared by the subcommand modules: output folders, progress, printing."""

from __future__ import annotations

import os
from pathlib import Path

import click

from survey.errors import OutputError

__all__ = ["ensure_out_dir", "existing_file", "is_quiet"]

#: click type for an input file that must exist (clear one-line error otherwise).
existing_file = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


def ensure_out_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and check it is writable; raise OutputError otherwise."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot create the output folder ({exc.strerror}); choose a writable --out"
        ) from exc
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: output folder is not writable; choose a writable --out")
    return path


def is_quiet() -> bool:
    """True under ``-q`` (no progress, no chatter)."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and root.obj and root.obj.get("quiet"))
