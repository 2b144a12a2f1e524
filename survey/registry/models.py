"""The registry's tables as SQLAlchemy 2 models (the schema at the newest migration).

Geometries are WKB of WGS84 (longitude, latitude) shapes in binary columns, with their
bounding box in four float columns where rows are looked up by place; areas and overlaps are
computed in the site's UTM zone (:mod:`survey.registry.geometry`). Times are UTC
(:class:`UTCDateTime`); dates are calendar dates of the survey or permit.

The schema changes only through a migration in ``migrations/versions`` (which spells its
tables out instead of importing these models, so that it stays what it was); a test checks
that the newest migration and these models agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ExistingBuildingRow",
    "LeadEventRow",
    "LeadObservationRow",
    "LeadRow",
    "PermitVersionRow",
    "ProgressRow",
    "SettingRow",
    "SiteRow",
    "SurveyRow",
    "UTCDateTime",
]


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC time, stored as a naive UTC timestamp on every backend."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"{value!r}: registry times are timezone-aware datetimes")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        out: dt.datetime = value
        return out.replace(tzinfo=dt.UTC) if out.tzinfo is None else out.astimezone(dt.UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """The backend's conversion and the UTC stamp in one call per value (lists of
        100,000 leads are read in a fraction of a second)."""
        impl = self.impl_instance.result_processor(dialect, coltype)
        utc = dt.UTC

        def process(value: Any) -> dt.datetime | None:
            if value is None:
                return None
            if impl is not None:
                value = impl(value)
            return value.replace(tzinfo=utc) if value.tzinfo is None else value.astimezone(utc)

        return process


class Base(DeclarativeBase):
    """Declarative base of the registry's tables (``float`` is SQL ``FLOAT``: double precision
    on PostgreSQL, REAL on SQLite, both 8 bytes)."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {float: sa.Float()}


def _fk(target: str, *, cascade: bool = True) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE" if cascade else "SET NULL")


class SiteRow(Base):
    """A watched site: boundary (holes included), no-fly zones, cadence, risk, team."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    boundary: Mapped[bytes] = mapped_column(sa.LargeBinary)
    nofly: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    min_lon: Mapped[float]
    min_lat: Mapped[float]
    max_lon: Mapped[float]
    max_lat: Mapped[float]
    area_m2: Mapped[float]
    cadence_days: Mapped[int]
    risk: Mapped[str] = mapped_column(sa.String(16))
    team: Mapped[str | None] = mapped_column(sa.String(200))
    gsd_cm: Mapped[float]
    boundary_source: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.CheckConstraint("risk IN ('high', 'medium', 'low')", name="ck_sites_risk"),
        sa.CheckConstraint("cadence_days > 0", name="ck_sites_cadence"),
    )


class PermitVersionRow(Base):
    """One version of a permit: an amendment is a new row with its own ``valid_from``."""

    __tablename__ = "permit_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(_fk("sites.id"))
    permit_id: Mapped[str] = mapped_column(sa.String(200))
    valid_from: Mapped[dt.date | None] = mapped_column(sa.Date)
    valid_to: Mapped[dt.date | None] = mapped_column(sa.Date)
    max_height_m: Mapped[float | None]
    floors: Mapped[int | None]
    footprint: Mapped[bytes] = mapped_column(sa.LargeBinary)
    source: Mapped[str | None] = mapped_column(sa.Text)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    imported_by: Mapped[str] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.UniqueConstraint("site_id", "permit_id", "valid_from", name="uq_permit_versions"),
        sa.Index("ix_permit_versions_site", "site_id", "permit_id"),
    )


class ExistingBuildingRow(Base):
    """A legally existing building of a site's layer (replaced whole by each import)."""

    __tablename__ = "existing_buildings"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(_fk("sites.id"), index=True)
    building_id: Mapped[str] = mapped_column(sa.String(200))
    footprint: Mapped[bytes] = mapped_column(sa.LargeBinary)
    height_m: Mapped[float | None]
    floors: Mapped[int | None]
    source: Mapped[str | None] = mapped_column(sa.Text)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    imported_by: Mapped[str] = mapped_column(sa.String(200))

    __table_args__ = (sa.UniqueConstraint("site_id", "building_id", name="uq_existing_buildings"),)


class SurveyRow(Base):
    """One survey of a site: its date, files, evidence, QC verdict and approval."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(_fk("sites.id"))
    date: Mapped[dt.date] = mapped_column(sa.Date)
    case_id: Mapped[str | None] = mapped_column(sa.String(128))
    flight_log: Mapped[str | None] = mapped_column(sa.Text)
    images: Mapped[str | None] = mapped_column(sa.Text)
    ortho: Mapped[str | None] = mapped_column(sa.Text)
    dsm: Mapped[str | None] = mapped_column(sa.Text)
    dtm: Mapped[str | None] = mapped_column(sa.Text)
    footprint: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    evidence: Mapped[list[str]] = mapped_column(sa.JSON)
    products: Mapped[dict[str, str]] = mapped_column(sa.JSON)
    qc_verdict: Mapped[str | None] = mapped_column(sa.String(16))
    reference: Mapped[str | None] = mapped_column(sa.String(16))
    reference_survey_id: Mapped[int | None] = mapped_column(_fk("surveys.id", cascade=False))
    approved: Mapped[bool] = mapped_column(default=False)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(sa.String(200))

    __table_args__ = (sa.Index("ix_surveys_site_date", "site_id", "date"),)


class LeadRow(Base):
    """An enforcement lead followed across surveys: one structure, one stable id."""

    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(_fk("sites.id"))
    lead_class: Mapped[str] = mapped_column(sa.String(32))
    kind: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(32))
    risk: Mapped[str] = mapped_column(sa.String(16))
    footprint: Mapped[bytes] = mapped_column(sa.LargeBinary)
    min_lon: Mapped[float]
    min_lat: Mapped[float]
    max_lon: Mapped[float]
    max_lat: Mapped[float]
    area_m2: Mapped[float]
    height_gain_m: Mapped[float | None]
    floors_added: Mapped[int | None]
    detection_id: Mapped[str] = mapped_column(sa.String(64))
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    permit_ids: Mapped[list[str]] = mapped_column(sa.JSON)
    first_survey_id: Mapped[int] = mapped_column(_fk("surveys.id"))
    last_survey_id: Mapped[int] = mapped_column(_fk("surveys.id"))
    closure_proposed: Mapped[bool] = mapped_column(default=False)
    closure_survey_id: Mapped[int | None] = mapped_column(_fk("surveys.id", cascade=False))
    previous_lead_id: Mapped[int | None] = mapped_column(_fk("leads.id", cascade=False))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    state_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    state_changed_by: Mapped[str] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.CheckConstraint(
            "state IN ('new', 'under_review', 'confirmed', 'dismissed', 'notice_issued', "
            "'rectified', 'demolished', 'closed')",
            name="ck_leads_state",
        ),
        sa.Index("ix_leads_site_state", "site_id", "state"),
        sa.Index("ix_leads_state", "state"),
        sa.Index("ix_leads_class_state", "lead_class", "state"),
    )


class LeadObservationRow(Base):
    """A lead seen in a survey: what detection found there and what the registry did."""

    __tablename__ = "lead_observations"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(_fk("leads.id"), index=True)
    survey_id: Mapped[int] = mapped_column(_fk("surveys.id"), index=True)
    detection_id: Mapped[str] = mapped_column(sa.String(64))
    lead_class: Mapped[str] = mapped_column(sa.String(32))
    kind: Mapped[str] = mapped_column(sa.String(16))
    footprint: Mapped[bytes] = mapped_column(sa.LargeBinary)
    area_m2: Mapped[float]
    height_gain_m: Mapped[float | None]
    floors_added: Mapped[int | None]
    score: Mapped[float]
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    action: Mapped[str] = mapped_column(sa.String(32))


class LeadEventRow(Base):
    """A change of a lead: who, when, what, why, and its entry in the custody ledger."""

    __tablename__ = "lead_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(_fk("leads.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    by_user: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(32))
    from_state: Mapped[str | None] = mapped_column(sa.String(32))
    to_state: Mapped[str | None] = mapped_column(sa.String(32))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    survey_id: Mapped[int | None] = mapped_column(_fk("surveys.id", cascade=False))
    ledger_seq: Mapped[int | None]

    __table_args__ = (sa.Index("ix_lead_events_lead", "lead_id", "id"),)


class ProgressRow(Base):
    """A permitted project's construction progress as one survey measured it (规划"八录"):
    the stage reached, built height and storeys against the permit version in force, and
    what exceeds the permit (:class:`survey.progress_stages.ProjectProgress`)."""

    __tablename__ = "survey_progress"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(_fk("surveys.id"))
    permit_id: Mapped[str] = mapped_column(sa.String(200))
    permit_valid_from: Mapped[dt.date | None] = mapped_column(sa.Date)
    stage: Mapped[str] = mapped_column(sa.String(32))
    height_m: Mapped[float]
    storeys: Mapped[int]
    permitted_floors: Mapped[int | None]
    permitted_height_m: Mapped[float | None]
    built_fraction: Mapped[float]
    dug_fraction: Mapped[float]
    outside_m2: Mapped[float]
    exceeds: Mapped[list[str]] = mapped_column(sa.JSON)
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    lead_ids: Mapped[list[str]] = mapped_column(sa.JSON)

    __table_args__ = (
        sa.UniqueConstraint("survey_id", "permit_id", name="uq_survey_progress"),
        sa.Index("ix_survey_progress_permit", "permit_id"),
    )


class SettingRow(Base):
    """A setting of the registry (``evidence_store``: the store its changes are recorded in)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
