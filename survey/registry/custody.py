"""The registry's entries in the custody ledger, and the retention of its cases.

A registry knows its evidence store through its ``evidence_store`` setting (``sitewatch db
set-store DIR``), or is handed one (``--store DIR``, ``Registry.open(store=...)``). With a
store, every change of a lead (opened, seen again, reopened, proposed for closure, each change
of state, a change of its risk tier), each survey registered, approved or discarded (a run
that failed) is also a ``derive`` entry of the ledger
(``command`` ``sitewatch registry <action>``, the lead's evidence as inputs, the change as
parameters, the user as operator, the survey's case as case), and its ``seq`` is kept beside
the change in the registry. Without one, changes are recorded in the registry only (one
warning line per registry opened).

**Retention.** A survey's originals are filed under its case (``Registry.register_survey``).
A lead's evidence is that of the surveys that saw it; so the case of a survey takes the
highest risk tier among its site and the leads seen in it, is put on legal hold while any lead
seen in it is in a hold state (``confirmed`` to ``demolished``) and released when the last of
them is closed or dismissed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from survey.evidence import EvidenceStore

__all__ = ["RISK_ORDER", "Custody", "highest_risk"]

log = logging.getLogger(__name__)

RISK_ORDER = {"low": 0, "medium": 1, "high": 2}
"""Risk tiers from the shortest retention to the longest."""


def highest_risk(tiers: Sequence[str]) -> str:
    """The tier that keeps evidence longest among ``tiers`` (non-empty)."""
    return max(tiers, key=lambda t: RISK_ORDER.get(t, -1))


class Custody:
    """Writes the registry's entries into an evidence store, if it has one.

    Parameters
    ----------
    store : EvidenceStore, path or None
        The store (opened for writing on first use when given as a path).
    registry : str
        How entries name the registry (its file or URL without password).
    """

    def __init__(self, store: EvidenceStore | str | os.PathLike[str] | None, registry: str) -> None:
        self._given = store
        self._store: EvidenceStore | None = None
        self.registry = registry
        self._warned = False

    @property
    def configured(self) -> bool:
        """True when there is a store to write to."""
        return self._given is not None

    def store(self) -> EvidenceStore | None:
        """The store, opened on first use; None (with one warning line) without one."""
        if self._given is None:
            if not self._warned:
                log.warning(
                    "%s: no evidence store is set for this registry; its changes are recorded "
                    "in the registry only — set one with `sitewatch db set-store DIR` or give "
                    "--store DIR",
                    self.registry,
                )
                self._warned = True
            return None
        if self._store is None:
            from survey.evidence import EvidenceStore

            if isinstance(self._given, EvidenceStore):
                self._store = self._given
            else:
                self._store = EvidenceStore.open(self._given)
        return self._store

    @contextlib.contextmanager
    def batch(self) -> Iterator[EvidenceStore | None]:
        """One store command (one lock, one checkpoint) for the entries written inside."""
        store = self.store()
        if store is None:
            yield None
            return
        with store.batch():
            yield store

    def record(
        self,
        action: str,
        *,
        case: str | None,
        evidence: Sequence[str],
        parameters: Mapping[str, Any],
        operator: str,
    ) -> int | None:
        """A ``derive`` entry for a registry change; its ``seq`` (None without a store)."""
        store = self.store()
        if store is None:
            return None
        entry = store.record_derivation(
            command=f"sitewatch registry {action}",
            inputs={"evidence": sorted(set(evidence))} if evidence else {},
            outputs={},
            parameters={"registry": self.registry, **parameters},
            operator=operator,
            case=case,
        )
        return int(entry.seq)

    def retain(
        self,
        case: str | None,
        *,
        operator: str,
        risk: str | None = None,
        hold: bool | None = None,
        reason: str | None = None,
    ) -> None:
        """Set a case's tier and/or legal hold (nothing without a store or a case)."""
        store = self.store()
        if store is None or case is None:
            return
        store.set_case(case, risk=risk, hold=hold, operator=operator, reason=reason)
