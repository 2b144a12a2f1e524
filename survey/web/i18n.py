"""Languages and time zones: gettext catalogues read with Babel, dates in the user's zone.

Every text a page shows is an English message id passed through ``_()``; the catalogues are
``locale/<lang>/LC_MESSAGES/messages.po``, read with :func:`babel.messages.pofile.read_po`
when first needed. The ``.po`` files are the only form kept: there is no compiled ``.mo`` to
build, ship or let drift from its source (a test checks that every message the templates and
code use has a Simplified Chinese translation). Times are stored in UTC and shown in the
user's IANA time zone (``Asia/Shanghai`` by default).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.pofile import read_po

__all__ = [
    "CATALOGUES",
    "Translator",
    "catalogue",
    "class_label",
    "local_time",
    "state_label",
    "translator",
]

CATALOGUES = Path(__file__).resolve().parent / "locale"

_STATE_LABELS = {
    "new": "New",
    "under_review": "Under review",
    "confirmed": "Confirmed",
    "dismissed": "Dismissed",
    "notice_issued": "Notice issued",
    "rectified": "Rectified",
    "demolished": "Demolished",
    "closed": "Closed",
}
_CLASS_LABELS = {
    "no_permit": "No permit",
    "outside_footprint": "Outside the permitted footprint",
    "over_height": "Over the permitted height",
    "demolished": "Demolished",
    "new_structure": "New structure",
    "raised": "Raised",
}

Translator = Callable[[str], str]


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """Message id → translation of ``language`` (empty for a language without a file)."""
    path = CATALOGUES / language / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        cat = read_po(f, locale=language)
    return {
        str(m.id): str(m.string) for m in cat if m.id and isinstance(m.string, str) and m.string
    }


def translator(language: str) -> Translator:
    """``_(message) -> text`` in ``language`` (the message itself where none is translated)."""
    messages = catalogue(language)

    def _(message: str) -> str:
        return messages.get(message, message)

    return _


def state_label(state: str, _: Translator) -> str:
    """A lead state as people read it (``under_review`` → "Under review" / "审查中")."""
    return _(_STATE_LABELS.get(state, state))


def class_label(lead_class: str, _: Translator) -> str:
    """A lead class as people read it."""
    return _(_CLASS_LABELS.get(lead_class, lead_class))


def local_time(value: dt.datetime | None, zone: str, language: str) -> str:
    """``value`` (UTC) as ``YYYY-MM-DD HH:MM`` in ``zone``, with the zone's name; "" for None.

    >>> local_time(dt.datetime(2024, 5, 1, 16, 30, tzinfo=dt.UTC), "Asia/Shanghai", "en")
    '2024-05-02 00:30 Asia/Shanghai'
    """
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = format_datetime(value, "yyyy-MM-dd HH:mm", tzinfo=ZoneInfo(zone), locale=language)
    return f"{text} {zone}"
