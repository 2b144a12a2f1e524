"""A lead's risk tier, changed after it was opened, and what that does to its evidence.

A lead takes its site's tier when it is opened (revision 0002). An inspector who learns more
(a structure on a river bank, a school next door) raises or lowers it with
:meth:`LeadRiskMixin.set_lead_risk` (``sitewatch leads set-risk ID RISK``): a ``risk`` event
of the lead (who, when, from which tier to which, why) and a ``lead-risk`` entry of the
custody ledger. Retention follows (:mod:`survey.registry.custody`): the case of every survey
that saw the lead takes the highest tier among its site and the leads seen in it, so raising
a lead to ``high`` keeps those cases for good, and lowering it gives them back the tier the
site and the other leads ask for. Legal holds are not touched (they follow the lead's state).
"""

from __future__ import annotations

import sqlalchemy as sa

from survey.registry.custody import highest_risk
from survey.registry.errors import RegistryInputError
from survey.registry.leads import LeadsMixin, surveys_seen_in
from survey.registry.models import LeadObservationRow, LeadRow, SiteRow
from survey.registry.records import LeadRecord
from survey.registry.sites import RISKS

__all__ = ["LeadRiskMixin"]


class LeadRiskMixin(LeadsMixin):
    """A lead's risk tier (part of :class:`Registry`)."""

    def set_lead_risk(
        self,
        lead_id: int,
        risk: str,
        *,
        reason: str | None = None,
        user: str | None = None,
    ) -> LeadRecord:
        """Set lead ``lead_id``'s risk tier to ``risk`` (module docstring).

        Parameters
        ----------
        lead_id : int
        risk : str
            ``high``, ``medium`` or ``low``.
        reason : str, optional
            Why (recorded with the change).
        user : str, optional

        Returns
        -------
        LeadRecord
            The lead afterwards (its last event is the change).

        Raises
        ------
        RegistryLookupError
            No such lead.
        RegistryInputError
            A tier the registry does not know, or the tier the lead already has; nothing is
            changed.
        """
        if risk not in RISKS:
            raise RegistryInputError(
                f"lead {lead_id}: risk tier {risk!r} is not one of {', '.join(RISKS)}"
            )
        who = self._who(user)
        why = reason.strip() if reason is not None and reason.strip() else None
        with self._write() as s:
            row = self._lead_row(s, lead_id, lock=True)
            if row.risk == risk:
                raise RegistryInputError(
                    f"lead {lead_id} is already {risk} risk; nothing to change"
                )
            before, now = row.risk, self.clock()
            row.risk, row.updated_at = risk, now
            note = f"risk tier {before} -> {risk}" + (f": {why}" if why else "")
            event = self._event(row.id, now, who, "risk", row.state, row.state, note, None)
            s.add(event)
            s.flush()
            site = s.get_one(SiteRow, row.site_id)
            surveys = surveys_seen_in(s, row.id)
            tiers: dict[int, list[str]] = {sid: [site.risk] for sid, _, _ in surveys}
            for sid, tier in s.execute(
                sa.select(LeadObservationRow.survey_id, LeadRow.risk)
                .join(LeadRow, LeadRow.id == LeadObservationRow.lead_id)
                .where(LeadObservationRow.survey_id.in_(list(tiers)))
                .distinct()
            ).all():
                tiers[sid].append(tier)
            cases = sorted({c for _, c, _ in surveys if c})
            evidence = sorted({h for _, _, ev in surveys for h in (ev or [])})
            with self.custody.batch():
                for sid, case, _ in surveys:
                    self.custody.retain(
                        case, operator=who, risk=highest_risk(tiers[sid]), reason=note
                    )
                event.ledger_seq = self.custody.record(
                    "lead-risk",
                    case=cases[-1] if cases else None,
                    evidence=evidence,
                    parameters={
                        **self._ledger_parameters(row, event, site.name),
                        "risk": risk,
                        "risk_from": before,
                        "cases": cases,
                    },
                    operator=who,
                )
            s.flush()
        return self.lead(lead_id)
