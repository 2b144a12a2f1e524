"""The case platform (issue #19): users, sessions, API tokens, failed logins, comments, jobs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-21

Tables are spelled out here (not imported from :mod:`survey.web.models`) so that this revision
stays what it was when later ones change the schema. Nothing of the registry's own tables is
touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _utc(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "web_users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _utc("created_at"),
        _utc("password_changed_at"),
        sa.CheckConstraint(
            "role IN ('operator', 'analyst', 'supervisor', 'admin')", name="ck_web_users_role"
        ),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("web_users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _utc("created_at"),
        _utc("expires_at"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "web_api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("web_users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        _utc("created_at"),
        _utc("last_used_at", nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_web_api_tokens_user_id", "web_api_tokens", ["user_id"])
    op.create_table(
        "web_login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        _utc("at"),
    )
    op.create_index("ix_web_login_failures_user", "web_login_failures", ["username", "at"])
    op.create_index("ix_web_login_failures_client", "web_login_failures", ["client", "at"])
    op.create_table(
        "web_comments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "lead_id", sa.Integer(), sa.ForeignKey("leads.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("web_users.id"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _utc("at"),
        sa.Column("ledger_seq", sa.Integer(), nullable=True),
    )
    op.create_index("ix_web_comments_lead", "web_comments", ["lead_id", "id"])
    op.create_table(
        "web_jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("web_users.id"), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(200), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column(
            "survey_id",
            sa.Integer(),
            sa.ForeignKey("surveys.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("result", sa.JSON(), nullable=False),
        _utc("created_at"),
        _utc("started_at", nullable=True),
        _utc("finished_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="ck_web_jobs_status"
        ),
        sa.CheckConstraint("kind IN ('flight', 'odm')", name="ck_web_jobs_kind"),
    )
    op.create_index("ix_web_jobs_status", "web_jobs", ["status"])


def downgrade() -> None:
    for table in (
        "web_jobs",
        "web_comments",
        "web_login_failures",
        "web_api_tokens",
        "web_sessions",
        "web_users",
    ):
        op.drop_table(table)
