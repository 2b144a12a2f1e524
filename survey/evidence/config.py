"""The store's marker and settings: ``STORE/sitewatch-store.json``.

The marker says that a folder is a sitewatch evidence store (format and version), names it
(``store_id``, a random UUID, also in every signed head) and holds its settings:

* ``retention`` — risk tier → retention period (ISO 8601 duration such as ``P12M``, or
  ``null`` for permanent). Defaults: ``high`` permanent, ``medium`` 12 months, ``low`` 6
  months. The tiers named here are the tiers the store accepts.
* ``default_risk`` — the tier a new case gets when none is given (``high``: nothing is deleted
  by mistake; the assumption is one warning line and a field of the case's ledger entry).
* ``checkpoint_every`` — a signed checkpoint after this many ledger entries (besides the one
  at the end of every command).

It is written once, read-only (0444), when the store is created; the settings in force are
recorded in the ledger's first entry, and every purge entry records the period it applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from survey.errors import EvidenceInputError, NotAStoreError
from survey.evidence.retention import Period, parse_period

__all__ = ["DEFAULT_RETENTION", "MARKER_NAME", "STORE_FORMAT", "StoreConfig"]

MARKER_NAME = "sitewatch-store.json"
STORE_FORMAT = "sitewatch evidence store"
STORE_VERSION = 1
DEFAULT_RETENTION: Mapping[str, str | None] = {"high": None, "medium": "P12M", "low": "P6M"}


@dataclass(frozen=True)
class StoreConfig:
    """A store's identity and settings (see the module docstring)."""

    store_id: str
    created: str
    retention: Mapping[str, str | None] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    default_risk: str = "high"
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        for tier, text in self.retention.items():
            parse_period(text, tier=tier)
        if self.default_risk not in self.retention:
            raise EvidenceInputError(
                f"default risk tier {self.default_risk!r} is not one of the retention tiers "
                f"({', '.join(self.retention)}); name one of them"
            )
        if int(self.checkpoint_every) < 1:
            raise EvidenceInputError(
                f"checkpoint_every is {self.checkpoint_every}; give a count of at least 1"
            )

    @property
    def tiers(self) -> tuple[str, ...]:
        """The risk tiers, as configured."""
        return tuple(self.retention)

    def periods(self) -> dict[str, Period | None]:
        """Tier → parsed period (None: permanent)."""
        return {t: parse_period(p, tier=t) for t, p in self.retention.items()}

    def to_dict(self) -> dict[str, Any]:
        """The marker's JSON content."""
        return {
            "format": STORE_FORMAT,
            "version": STORE_VERSION,
            "store_id": self.store_id,
            "created": self.created,
            "retention": dict(self.retention),
            "default_risk": self.default_risk,
            "checkpoint_every": int(self.checkpoint_every),
        }

    @classmethod
    def read(cls, root: Path) -> StoreConfig:
        """Read ``root``'s marker.

        Raises
        ------
        NotAStoreError
            No marker, or one that is not a sitewatch store's (one line naming the folder).
        """
        path = root / MARKER_NAME
        hint = "give the folder an evidence store was created in (`sitewatch evidence init`)"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotAStoreError(
                f"{root}: not an evidence store (no {MARKER_NAME}); {hint}"
            ) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise NotAStoreError(
                f"{path}: the store marker cannot be read ({exc}); restore the store folder "
                "from a copy"
            ) from exc
        if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
            raise NotAStoreError(f"{root}: {MARKER_NAME} is not a sitewatch store's; {hint}")
        if data.get("version") != STORE_VERSION:
            raise NotAStoreError(
                f"{path}: store version {data.get('version')!r}; this sitewatch reads version "
                f"{STORE_VERSION} — use the sitewatch release that made the store"
            )
        try:
            return cls(
                store_id=str(data["store_id"]),
                created=str(data["created"]),
                retention=dict(data["retention"]),
                default_risk=str(data["default_risk"]),
                checkpoint_every=int(data["checkpoint_every"]),
            )
        except (KeyError, TypeError, ValueError, EvidenceInputError) as exc:
            raise NotAStoreError(
                f"{path}: the store settings are damaged ({exc}); restore the store folder "
                "from a copy"
            ) from exc
