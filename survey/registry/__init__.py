"""The registry (issue #16): sites, permits, surveys and leads from the first survey to the
closed case, in SQLite or PostgreSQL.

A bureau watches sites on a cadence. The registry holds each site (boundary with holes,
no-fly zones, cadence, risk tier, team), its permits by version and its existing buildings,
every survey (date, files, evidence, QC verdict, approval) and every lead, followed across
surveys under one id through its lifecycle (:mod:`.lifecycle`) with who and when for every
change, each change also an entry of the custody ledger (:mod:`.custody`).

>>> from survey.registry import Registry
>>> reg = Registry.open("city.db")  # doctest: +SKIP
>>> reg.add_site("SiMing 12", "siming12.geojson", cadence_days=14, risk="high")  # doctest: +SKIP
>>> reg.due_sites("2024-06-01")  # doctest: +SKIP

For ``sitewatch run``: :meth:`Registry.last_approved_survey` (the reference, or None for a
first survey), :meth:`Registry.permits_at` and :meth:`Registry.existing_buildings` (what
``build_leads`` takes), :meth:`Registry.register_survey` / :meth:`Registry.update_survey`,
:meth:`Registry.record_leads` (repeat-lead matching, :mod:`.matching`),
:meth:`Registry.record_progress` / :meth:`Registry.progress` (construction progress,
:mod:`.progress`), :meth:`Registry.discard_survey` (a run that failed),
:meth:`Registry.evidence_store`. :meth:`Registry.set_lead_risk` changes a lead's risk tier and
the retention of its evidence (:mod:`.lead_risk`).

Importing the registry is light (SQLAlchemy, Alembic, shapely, pyproj): the detection stack
(``change_detection``: scipy, scikit-image, xarray), rasterio and the flight planner are imported
by the calls that need them (reading a file, :meth:`Registry.permits_at`,
:meth:`Registry.plan_due`...), so that ``sitewatch leads list`` starts in about a second.

Modules: :mod:`.engine` (URLs, SQLite settings), :mod:`.models` (tables), :mod:`.migrate`
(Alembic, shipped in ``migrations/``), :mod:`.core`, :mod:`.sites`, :mod:`.permit_versions`,
:mod:`.surveys`, :mod:`.leads`, :mod:`.lead_risk`, :mod:`.progress`, :mod:`.matching`,
:mod:`.lifecycle`, :mod:`.schedule`, :mod:`.custody`, :mod:`.records`, :mod:`.geometry`,
:mod:`.errors`.
"""

from __future__ import annotations

from survey.registry.engine import DEFAULT_DB, ENV_VAR, resolve_url
from survey.registry.errors import (
    LeadTransitionError,
    NotARegistryError,
    RegistryError,
    RegistryInputError,
    RegistryLookupError,
    RegistryVersionError,
)
from survey.registry.leads import REFERENCES
from survey.registry.lifecycle import (
    HOLD_STATES,
    LEAD_STATES,
    REASON_REQUIRED,
    TRANSITIONS,
    check_transition,
)
from survey.registry.migrate import SchemaState, head_revision, schema_state, upgrade
from survey.registry.permit_versions import PermitVersion, in_force, read_permit_versions
from survey.registry.progress import PROGRESS_STAGES
from survey.registry.records import (
    DueSite,
    LeadEvent,
    LeadObservation,
    LeadRecord,
    LeadSummary,
    LeadUpdate,
    ProgressRecord,
    SiteRecord,
    SurveyRecord,
)
from survey.registry.registry import Registry
from survey.registry.sites import RISKS, PermitImport
from survey.registry.surveys import QC_VERDICTS

__all__ = [
    "DEFAULT_DB",
    "ENV_VAR",
    "HOLD_STATES",
    "LEAD_STATES",
    "PROGRESS_STAGES",
    "QC_VERDICTS",
    "REASON_REQUIRED",
    "REFERENCES",
    "RISKS",
    "TRANSITIONS",
    "DueSite",
    "LeadEvent",
    "LeadObservation",
    "LeadRecord",
    "LeadSummary",
    "LeadTransitionError",
    "LeadUpdate",
    "NotARegistryError",
    "PermitImport",
    "PermitVersion",
    "ProgressRecord",
    "Registry",
    "RegistryError",
    "RegistryInputError",
    "RegistryLookupError",
    "RegistryVersionError",
    "SchemaState",
    "SiteRecord",
    "SurveyRecord",
    "check_transition",
    "head_revision",
    "in_force",
    "read_permit_versions",
    "resolve_url",
    "schema_state",
    "upgrade",
]
