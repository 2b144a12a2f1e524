"""Errors of the registry (:mod:`survey.registry`).

Each is a :class:`~survey.errors.SurveyError` (the CLI prints it as one line, exit code 1) and
also subclasses the built-in it is a kind of. Messages name the database, the value and the
fix.
"""

from __future__ import annotations

from survey.errors import SurveyError

__all__ = [
    "LeadTransitionError",
    "NotARegistryError",
    "RegistryError",
    "RegistryInputError",
    "RegistryLookupError",
    "RegistryVersionError",
]


class RegistryError(SurveyError):
    """Root of the registry's errors."""


class RegistryLookupError(RegistryError, LookupError):
    """A site, survey or lead the registry does not hold."""


class RegistryInputError(RegistryError, ValueError):
    """A value the registry cannot take: a site name already used, permit versions that
    overlap, a survey outside its site, a date that is not a date, a risk tier it does not
    know."""


class LeadTransitionError(RegistryError, ValueError):
    """A change of a lead's state that its lifecycle does not allow (closed → under_review),
    or one that needs a reason given without one."""


class RegistryVersionError(RegistryError, RuntimeError):
    """A database whose schema this sitewatch cannot use as it is: made by a newer sitewatch
    (upgrade sitewatch), or by an older one (run ``sitewatch db upgrade``)."""


class NotARegistryError(RegistryError, FileNotFoundError):
    """A database that is missing (where one is only read), not a database, or not a
    sitewatch registry."""
