"""The case platform's tables, on the registry's metadata (one database, one migration chain).

Users and their roles, login sessions, API tokens, failed logins (rate limiting), comments on
leads and upload jobs. Secrets are never stored: passwords as argon2 hashes, session ids and
API tokens as their SHA-256. Times are UTC (:class:`survey.registry.models.UTCDateTime`).
Created by migration ``0003`` (``survey/registry/migrations/versions/v0003_web.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from survey.registry.models import Base, UTCDateTime

__all__ = [
    "ApiTokenRow",
    "CommentRow",
    "JobRow",
    "LoginFailureRow",
    "SessionRow",
    "UserRow",
]


class UserRow(Base):
    """A person who logs in: a role, a team (operators see its sites), a language, a zone."""

    __tablename__ = "web_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    team: Mapped[str | None] = mapped_column(sa.String(200))
    language: Mapped[str] = mapped_column(sa.String(16))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.CheckConstraint(
            "role IN ('operator', 'analyst', 'supervisor', 'admin')", name="ck_web_users_role"
        ),
    )


class SessionRow(Base):
    """A login session: the SHA-256 of the cookie's random id, and the form token (CSRF)."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("web_users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ApiTokenRow(Base):
    """A token another city system uses to call ``/api/`` as a user (SHA-256 kept only)."""

    __tablename__ = "web_api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("web_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(default=False)


class LoginFailureRow(Base):
    """A failed login: the name tried, the client address, when (login rate limiting)."""

    __tablename__ = "web_login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64))
    client: Mapped[str] = mapped_column(sa.String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.Index("ix_web_login_failures_user", "username", "at"),
        sa.Index("ix_web_login_failures_client", "client", "at"),
    )


class CommentRow(Base):
    """A comment on a lead, with its entry in the custody ledger."""

    __tablename__ = "web_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("web_users.id"))
    body: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ledger_seq: Mapped[int | None]

    __table_args__ = (sa.Index("ix_web_comments_lead", "lead_id", "id"),)


class JobRow(Base):
    """An uploaded survey run through the pipeline by the job worker."""

    __tablename__ = "web_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("web_users.id"))
    site: Mapped[str] = mapped_column(sa.String(200))
    date: Mapped[dt.date] = mapped_column(sa.Date)
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    progress: Mapped[float] = mapped_column(default=0.0)
    stage: Mapped[str | None] = mapped_column(sa.String(200))
    message: Mapped[str | None] = mapped_column(sa.Text)
    folder: Mapped[str] = mapped_column(sa.Text)
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    survey_id: Mapped[int | None] = mapped_column(sa.ForeignKey("surveys.id", ondelete="SET NULL"))
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="ck_web_jobs_status"
        ),
        sa.CheckConstraint("kind IN ('flight', 'odm')", name="ck_web_jobs_kind"),
        sa.Index("ix_web_jobs_status", "status"),
    )
