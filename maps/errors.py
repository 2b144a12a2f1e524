"""Errors raised while rendering review maps and evidence packages."""

from __future__ import annotations

__all__ = ["MapError", "PackageError"]


class MapError(Exception):
    """Root of every error raised by :mod:`maps`."""


class PackageError(MapError, ValueError):
    """An evidence package cannot be built (unknown lead, missing input)."""
