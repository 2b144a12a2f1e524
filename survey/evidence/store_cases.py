"""Cases and retention: a case's risk tier and legal hold, and the purge of expired items.

:meth:`StoreCases.set_case` and :meth:`StoreCases.purge` are those of
:class:`survey.evidence.store.EvidenceStore`; the retention rules (which item expires when)
are :func:`survey.evidence.retention.plan_purge`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from survey.errors import LedgerFormatError
from survey.evidence.atomic import fsync_dir
from survey.evidence.canonical import utc_text
from survey.evidence.cases import validate_case_id, validate_risk
from survey.evidence.objects import object_relpath
from survey.evidence.retention import PurgeReport, plan_purge
from survey.evidence.state import CaseState, replay
from survey.evidence.store_base import StoreBase, station_record

__all__ = ["StoreCases"]


class StoreCases(StoreBase):
    """The part of :class:`~survey.evidence.store.EvidenceStore` that keeps cases and purges."""

    def set_case(
        self,
        case: str,
        *,
        risk: str | None = None,
        hold: bool | None = None,
        operator: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Set a case's risk tier and/or legal hold (a ``case`` entry; nothing if unchanged).

        A case not seen before is created (tier ``risk`` or the store's default).

        Parameters
        ----------
        case : str
        risk : str, optional
            New tier.
        hold : bool, optional
            True puts the case on legal hold (never purged), False releases it.
        operator : str, optional
        reason : str, optional
            Why (e.g. the court order's number); recorded, and kept as the hold's reason.

        Raises
        ------
        StoreReadOnlyError, CaseIdError, EvidenceInputError
        """
        self._require_writable("changing a case")
        case = validate_case_id(case)
        if risk is not None:
            validate_risk(risk, self.config.tiers)
        with self._writing("changing a case") as writer:
            cs = self._case_states().get(case)
            previous: dict[str, Any] = {}
            if cs is None:
                cs = CaseState(case, risk or self.config.default_risk, risk_assumed=risk is None)
                changed = ["created"]
            else:
                changed = []
                if risk is not None and risk != cs.risk:
                    previous["risk"] = cs.risk
                    changed.append("risk")
                    cs.risk, cs.risk_assumed = risk, False
            if hold is not None and bool(hold) != cs.hold:
                previous["hold"] = cs.hold
                changed.append("hold" if hold else "release")
                cs.hold = bool(hold)
                cs.hold_reason = (reason or "") if hold else ""
            if not changed:
                return
            writer.append(
                {
                    "type": "case",
                    "case": case,
                    "risk": cs.risk,
                    "hold": cs.hold,
                    "hold_reason": cs.hold_reason,
                    "risk_assumed": cs.risk_assumed,
                    "changed": changed,
                    "previous": previous,
                    "reason": reason,
                    "operator": operator,
                    "station": station_record(),
                }
            )

    def purge(self, *, dry_run: bool = False, operator: str | None = None) -> PurgeReport:
        """Delete the stored items whose retention has run out (:mod:`retention`).

        Every deletion is recorded first (a ``purge`` entry with the cases, tiers, periods
        and dates that decided it), then the file is removed. A ledger that does not verify
        (chain, signed heads) stops the purge before anything is deleted. Items of a case on
        hold or in a permanent tier are never touched. Also removed, without entries since they were
        never evidence: work folders of killed adds and objects no entry records (an add
        killed between placing a file and recording it); and files of items already purged
        (a purge killed between recording and deleting).

        Parameters
        ----------
        dry_run : bool
            Only report (works on a read-only store).
        operator : str, optional

        Returns
        -------
        PurgeReport
        """
        now = self.clock()
        periods = self.config.periods()
        if dry_run:
            with self._reading():
                state = replay(self._entries())
            plan = plan_purge(state, periods, now)
            return PurgeReport(
                True,
                utc_text(now),
                plan.expired,
                plan.kept_held,
                plan.kept_permanent,
                plan.kept_unexpired,
            )
        with self._writing("purging") as writer:
            self._refuse_damaged_ledger()
            state = replay(self._entries())
            plan = plan_purge(state, periods, now)
            station = station_record()
            for item in plan.expired:
                writer.append(
                    {
                        "type": "purge",
                        "sha256": item.sha256,
                        "size": item.size,
                        "cases": {k: dict(v) for k, v in item.cases.items()},
                        "expired": item.expired,
                        "names": list(item.names),
                        "periods": {t: (str(p) if p else None) for t, p in periods.items()},
                        "operator": operator,
                        "station": station,
                    }
                )
            self._commit(writer)  # recorded (and durable) before anything is deleted
            folders: set[Path] = set()
            for item in plan.expired:
                path = self.root / object_relpath(item.sha256)
                path.unlink(missing_ok=True)
                folders.add(path.parent)
            cleaned = self._clean_tmp()
            for path in self._object_files():
                obj = state.objects.get(path.name)
                if obj is None or not obj.present:  # never recorded, or purged before
                    path.unlink(missing_ok=True)
                    folders.add(path.parent)
                    cleaned.append(path.relative_to(self.root).as_posix())
            for folder in folders:
                if folder.exists():
                    fsync_dir(folder)
        return PurgeReport(
            False,
            utc_text(now),
            plan.expired,
            plan.kept_held,
            plan.kept_permanent,
            plan.kept_unexpired,
            tuple(cleaned),
        )

    def _refuse_damaged_ledger(self) -> None:
        """Nothing is deleted on the word of a ledger that does not verify."""
        from survey.evidence.verify import verify_store

        report = verify_store(self, files=False)
        if not report.ok:
            raise LedgerFormatError(
                f"{self.root}: the ledger does not verify ({len(report.problems)} problem(s), "
                f"first: {report.problems[0].message}); purge refused — run `sitewatch "
                f"evidence verify {self.root}` and restore the store from a copy"
            )
