"""The registry: one object for sites, permits, surveys, leads and the schedule.

:class:`Registry` is assembled from one part per subject (:mod:`.sites`, :mod:`.surveys`,
:mod:`.leads`, :mod:`.lead_risk`, :mod:`.progress`, :mod:`.schedule`) over
:class:`~survey.registry.core.RegistryCore` (the
database, its evidence store, the clock and the user).
"""

from __future__ import annotations

from survey.registry.lead_risk import LeadRiskMixin
from survey.registry.leads import LeadsMixin
from survey.registry.progress import ProgressMixin
from survey.registry.schedule import ScheduleMixin
from survey.registry.sites import SitesMixin
from survey.registry.surveys import SurveysMixin

__all__ = ["Registry"]


class Registry(SitesMixin, SurveysMixin, LeadRiskMixin, LeadsMixin, ProgressMixin, ScheduleMixin):
    """An open registry (see :mod:`survey.registry`). Make one with :meth:`Registry.open`.

    Not thread-safe: one instance per thread; any number of processes may share a database.

    Examples
    --------
    >>> reg = Registry.open("city.db")  # doctest: +SKIP
    >>> reg.add_site("SiMing 12", "siming12.geojson", cadence_days=14, risk="high")
    >>> s = reg.register_survey("SiMing 12", "2024-05-01", ortho="ortho.tif", dsm="dsm.tif")
    >>> reg.record_leads(s.survey_id, leads, reference="atlas")
    >>> reg.set_lead_status(1, "under_review", user="inspector7")
    """
