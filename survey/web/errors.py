"""Errors of the case platform (:mod:`survey.web`).

Each is a :class:`~survey.errors.SurveyError` (the CLI prints it as one line, exit code 1) and
also subclasses the built-in it is a kind of. Messages name the file or value and the fix.
"""

from __future__ import annotations

from survey.errors import SurveyError

__all__ = ["AccountError", "UploadRejected", "WebError"]


class WebError(SurveyError):
    """Root of the case platform's errors."""


class AccountError(WebError, ValueError):
    """A user name, role, password, language or time zone that cannot be used, or an unknown
    user."""


class UploadRejected(WebError, ValueError):
    """An uploaded file that is not what the upload form takes (nothing is kept of it)."""
