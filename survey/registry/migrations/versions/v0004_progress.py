"""Construction progress of permitted projects, one row per survey and permit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-05-22

Until now a survey's progress was only its ``progress.json`` (named in the survey's
``products``); the registry now holds it, so the per-project timeline is read from the
database. Surveys recorded before this revision keep their ``progress.json``, which
:func:`survey.run_survey.site_timeline` still reads for them. The table is spelled out here
(not imported from :mod:`survey.registry.models`) so that this revision stays what it was.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_progress",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "survey_id",
            sa.Integer(),
            sa.ForeignKey("surveys.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("permit_id", sa.String(200), nullable=False),
        sa.Column("permit_valid_from", sa.Date(), nullable=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("height_m", sa.Float(), nullable=False),
        sa.Column("storeys", sa.Integer(), nullable=False),
        sa.Column("permitted_floors", sa.Integer(), nullable=True),
        sa.Column("permitted_height_m", sa.Float(), nullable=True),
        sa.Column("built_fraction", sa.Float(), nullable=False),
        sa.Column("dug_fraction", sa.Float(), nullable=False),
        sa.Column("outside_m2", sa.Float(), nullable=False),
        sa.Column("exceeds", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("lead_ids", sa.JSON(), nullable=False),
        sa.UniqueConstraint("survey_id", "permit_id", name="uq_survey_progress"),
    )
    op.create_index("ix_survey_progress_permit", "survey_progress", ["permit_id"])


def downgrade() -> None:
    op.drop_index("ix_survey_progress_permit", table_name="survey_progress")
    op.drop_table("survey_progress")
