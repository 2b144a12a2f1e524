"""The platform's tables: migration 0003 builds exactly what survey.web.models declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import survey.web.models  # noqa: F401 (the web_* tables join the registry's metadata)
from survey.registry import Registry, head_revision
from survey.registry.models import Base


def test_migration_0003_builds_the_web_models(tmp_path: Path) -> None:
    assert head_revision() >= "0003"
    with Registry.open(tmp_path / "city.db") as reg, reg.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    assert {t for t in Base.metadata.tables if t.startswith("web_")} == {
        "web_users",
        "web_sessions",
        "web_api_tokens",
        "web_login_failures",
        "web_comments",
        "web_jobs",
    }
