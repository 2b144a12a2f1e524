"""Errors raised by co-registration and change detection."""

from __future__ import annotations

__all__ = [
    "ChangeDetectionError",
    "CoregistrationError",
    "GridMismatchError",
    "InsufficientOverlapError",
    "PermitError",
]


class ChangeDetectionError(Exception):
    """Root of every error raised by :mod:`change_detection`."""


class CoregistrationError(ChangeDetectionError, ValueError):
    """Two epochs cannot be registered reliably."""


class InsufficientOverlapError(CoregistrationError):
    """The epochs do not overlap enough to be compared."""


class GridMismatchError(ChangeDetectionError, ValueError):
    """Rasters that must share a grid (CRS, resolution, extent) do not."""


class PermitError(ChangeDetectionError, ValueError):
    """Permit records cannot be used (missing fields, empty, bad dates)."""
