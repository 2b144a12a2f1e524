"""Retention: how long a risk tier keeps evidence, and which items a purge may delete.

Periods are ISO 8601 durations of years, months and days (``P12M``, ``P6M``, ``P1Y6M``,
``P90D``) or ``None`` for permanent. Months are calendar months: 31 January plus one month is
the last day of February.

An item (one stored file) belongs to every case it was added to. For each of them it expires
one period of the case's *current* tier after its latest addition to that case; the item
expires when all its cases have expired — it lives as long as its longest-lived case. It is
never deleted while any of its cases is on legal hold or in a permanent tier. Purge decisions
are a pure function of the replayed ledger, the periods and the time (:func:`plan_purge`), so
the tests drive them with an injected clock.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from survey.errors import EvidenceInputError
from survey.evidence.canonical import utc_text
from survey.evidence.state import StoreState

__all__ = [
    "Period",
    "PurgePlan",
    "PurgeReport",
    "PurgedItem",
    "add_period",
    "parse_period",
    "plan_purge",
]

_PERIOD = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?")


@dataclass(frozen=True)
class Period:
    """A calendar period: years, months, days."""

    years: int = 0
    months: int = 0
    days: int = 0

    def __str__(self) -> str:
        text = "P" + "".join(
            f"{v}{u}" for v, u in ((self.years, "Y"), (self.months, "M"), (self.days, "D")) if v
        )
        return text if text != "P" else "P0D"


def parse_period(text: str | None, *, tier: str = "?") -> Period | None:
    """``"P12M"`` → ``Period(months=12)``; ``None`` or ``"permanent"`` → None.

    Raises
    ------
    EvidenceInputError
        Not a duration of years, months and days.
    """
    if text is None or (isinstance(text, str) and text.strip().lower() == "permanent"):
        return None
    m = _PERIOD.fullmatch(text.strip().upper()) if isinstance(text, str) else None
    if not m or text.strip().upper() == "P":
        raise EvidenceInputError(
            f"retention period {text!r} of tier {tier!r} is not a duration; write e.g. P12M "
            "(12 months), P6M, P1Y, P90D, or permanent"
        )
    years, months, days = (int(g) if g else 0 for g in m.groups())
    return Period(years, months, days)


def add_period(when: dt.datetime, period: Period) -> dt.datetime:
    """``when`` plus ``period`` in calendar terms (day clamped to the month's length)."""
    month0 = when.month - 1 + period.months + 12 * period.years
    year, month = when.year + month0 // 12, month0 % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day) + dt.timedelta(days=period.days)


@dataclass(frozen=True)
class PurgedItem:
    """One stored file a purge deletes (or would, in a dry run).

    Attributes
    ----------
    sha256 : str
    size : int
        Bytes.
    cases : dict
        Each case it belonged to → ``{"risk", "added", "expires"}`` (UTC text).
    expired : str
        When the last of its cases expired (UTC text).
    names : list of str
        Source names it was added under.
    """

    sha256: str
    size: int
    cases: Mapping[str, Mapping[str, Any]]
    expired: str
    names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "sha256": self.sha256,
            "size": self.size,
            "cases": {k: dict(v) for k, v in self.cases.items()},
            "expired": self.expired,
            "names": list(self.names),
        }


@dataclass(frozen=True)
class PurgePlan:
    """What a purge would do at one time: the expired items and why others are kept."""

    now: dt.datetime
    expired: tuple[PurgedItem, ...]
    kept_held: tuple[str, ...]
    kept_permanent: tuple[str, ...]
    kept_unexpired: tuple[str, ...]


@dataclass(frozen=True)
class PurgeReport:
    """What a purge did.

    Attributes
    ----------
    dry_run : bool
        True: nothing was deleted or recorded.
    now : str
        The purge's time (UTC text).
    removed : tuple of PurgedItem
        Deleted (or, in a dry run, to be deleted), each recorded by a ``purge`` entry.
    kept_held, kept_permanent, kept_unexpired : tuple of str
        SHA-256 of the items kept: a case on legal hold, a permanent tier, not yet expired.
    cleaned : tuple of str
        Leftovers removed that were never evidence: copies of killed ``add`` commands and
        unrecorded objects (see :meth:`EvidenceStore.purge`).
    """

    dry_run: bool
    now: str
    removed: tuple[PurgedItem, ...]
    kept_held: tuple[str, ...] = ()
    kept_permanent: tuple[str, ...] = ()
    kept_unexpired: tuple[str, ...] = ()
    cleaned: tuple[str, ...] = ()

    @property
    def bytes_freed(self) -> int:
        """Bytes of the removed items."""
        return sum(i.size for i in self.removed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "dry_run": self.dry_run,
            "now": self.now,
            "removed": [i.to_dict() for i in self.removed],
            "bytes_freed": self.bytes_freed,
            "kept_held": list(self.kept_held),
            "kept_permanent": list(self.kept_permanent),
            "kept_unexpired": list(self.kept_unexpired),
            "cleaned": list(self.cleaned),
        }


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def plan_purge(
    state: StoreState, periods: Mapping[str, Period | None], now: dt.datetime
) -> PurgePlan:
    """Decide which stored items have expired at ``now``.

    Parameters
    ----------
    state : StoreState
        The replayed ledger.
    periods : mapping
        Tier → period (None: permanent).
    now : datetime
        Timezone-aware.

    Returns
    -------
    PurgePlan
    """
    expired: list[PurgedItem] = []
    held: list[str] = []
    permanent: list[str] = []
    unexpired: list[str] = []
    for sha, obj in sorted(state.objects.items()):
        if not obj.present:
            continue
        detail: dict[str, dict[str, Any]] = {}
        verdict = "expired"
        latest: dt.datetime | None = None
        for case, added in sorted(obj.cases.items()):
            cs = state.cases.get(case)
            risk = cs.risk if cs is not None else "?"
            period = periods.get(risk) if cs is not None else None
            info: dict[str, Any] = {"risk": risk, "added": added, "expires": None}
            if cs is not None and cs.hold:
                verdict = "held"
                info["hold"] = True
            elif period is None:
                verdict = "permanent" if verdict != "held" else verdict
            else:
                expires = add_period(_parse_time(added), period)
                info["expires"] = utc_text(expires)
                latest = expires if latest is None or expires > latest else latest
            detail[case] = info
        if not obj.cases:  # an item with no case cannot be judged: keep it
            verdict = "permanent"
        if verdict == "held":
            held.append(sha)
        elif verdict == "permanent":
            permanent.append(sha)
        elif latest is not None and now >= latest:
            expired.append(PurgedItem(sha, obj.size, detail, utc_text(latest), tuple(obj.names)))
        else:
            unexpired.append(sha)
    return PurgePlan(now, tuple(expired), tuple(held), tuple(permanent), tuple(unexpired))
