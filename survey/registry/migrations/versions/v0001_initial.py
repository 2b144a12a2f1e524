"""The first registry: sites, permit versions, existing buildings, surveys, leads, their
observations and events, settings.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

Tables are spelled out here (not imported from the models) so that this revision stays what
it was when later ones change the schema.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _bbox() -> list[sa.Column[float]]:
    return [
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
    ]


def _fk(column: str, target: str, *, cascade: bool = True) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [target],
        name=f"fk_{column}_{target.replace('.', '_')}",
        ondelete="CASCADE" if cascade else "SET NULL",
    )


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("boundary", sa.LargeBinary(), nullable=False),
        sa.Column("nofly", sa.LargeBinary(), nullable=True),
        *_bbox(),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("cadence_days", sa.Integer(), nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("gsd_cm", sa.Float(), nullable=False),
        sa.Column("boundary_source", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.CheckConstraint("risk IN ('high', 'medium', 'low')", name="ck_sites_risk"),
        sa.CheckConstraint("cadence_days > 0", name="ck_sites_cadence"),
    )
    op.create_table(
        "permit_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("permit_id", sa.String(200), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("max_height_m", sa.Float(), nullable=True),
        sa.Column("floors", sa.Integer(), nullable=True),
        sa.Column("footprint", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.Column("imported_by", sa.String(200), nullable=False),
        _fk("site_id", "sites.id"),
        sa.UniqueConstraint("site_id", "permit_id", "valid_from", name="uq_permit_versions"),
    )
    op.create_index("ix_permit_versions_site", "permit_versions", ["site_id", "permit_id"])
    op.create_table(
        "existing_buildings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.String(200), nullable=False),
        sa.Column("footprint", sa.LargeBinary(), nullable=False),
        sa.Column("height_m", sa.Float(), nullable=True),
        sa.Column("floors", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.Column("imported_by", sa.String(200), nullable=False),
        _fk("site_id", "sites.id"),
        sa.UniqueConstraint("site_id", "building_id", name="uq_existing_buildings"),
    )
    op.create_index("ix_existing_buildings_site_id", "existing_buildings", ["site_id"])
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=True),
        sa.Column("flight_log", sa.Text(), nullable=True),
        sa.Column("images", sa.Text(), nullable=True),
        sa.Column("ortho", sa.Text(), nullable=True),
        sa.Column("dsm", sa.Text(), nullable=True),
        sa.Column("dtm", sa.Text(), nullable=True),
        sa.Column("footprint", sa.LargeBinary(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("qc_verdict", sa.String(16), nullable=True),
        sa.Column("reference", sa.String(16), nullable=True),
        sa.Column("reference_survey_id", sa.Integer(), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("approved_by", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _fk("site_id", "sites.id"),
        _fk("reference_survey_id", "surveys.id", cascade=False),
    )
    op.create_index("ix_surveys_site_date", "surveys", ["site_id", "date"])
    op.create_table(
        "leads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("lead_class", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("footprint", sa.LargeBinary(), nullable=False),
        *_bbox(),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("height_gain_m", sa.Float(), nullable=True),
        sa.Column("floors_added", sa.Integer(), nullable=True),
        sa.Column("detection_id", sa.String(64), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("permit_ids", sa.JSON(), nullable=False),
        sa.Column("first_survey_id", sa.Integer(), nullable=False),
        sa.Column("last_survey_id", sa.Integer(), nullable=False),
        sa.Column("closure_proposed", sa.Boolean(), nullable=False),
        sa.Column("closure_survey_id", sa.Integer(), nullable=True),
        sa.Column("previous_lead_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(), nullable=False),
        sa.Column("state_changed_by", sa.String(200), nullable=False),
        _fk("site_id", "sites.id"),
        _fk("first_survey_id", "surveys.id"),
        _fk("last_survey_id", "surveys.id"),
        _fk("closure_survey_id", "surveys.id", cascade=False),
        _fk("previous_lead_id", "leads.id", cascade=False),
        sa.CheckConstraint(
            "state IN ('new', 'under_review', 'confirmed', 'dismissed', 'notice_issued', "
            "'rectified', 'demolished', 'closed')",
            name="ck_leads_state",
        ),
    )
    op.create_index("ix_leads_site_state", "leads", ["site_id", "state"])
    op.create_index("ix_leads_state", "leads", ["state"])
    op.create_table(
        "lead_observations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("detection_id", sa.String(64), nullable=False),
        sa.Column("lead_class", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("footprint", sa.LargeBinary(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("height_gain_m", sa.Float(), nullable=True),
        sa.Column("floors_added", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        _fk("lead_id", "leads.id"),
        _fk("survey_id", "surveys.id"),
    )
    op.create_index("ix_lead_observations_lead_id", "lead_observations", ["lead_id"])
    op.create_index("ix_lead_observations_survey_id", "lead_observations", ["survey_id"])
    op.create_table(
        "lead_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("by_user", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("survey_id", sa.Integer(), nullable=True),
        sa.Column("ledger_seq", sa.Integer(), nullable=True),
        _fk("lead_id", "leads.id"),
        _fk("survey_id", "surveys.id", cascade=False),
    )
    op.create_index("ix_lead_events_lead", "lead_events", ["lead_id", "id"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "settings",
        "lead_events",
        "lead_observations",
        "leads",
        "surveys",
        "existing_buildings",
        "permit_versions",
        "sites",
    ):
        op.drop_table(table)
