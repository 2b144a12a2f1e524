"""Test configuration shared by every package's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real files (logs, photos, rasters); tests using it are marked ``realdata``."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present (a user's clone has none)")
    return REALDATA


def pytest_report_header() -> list[str]:
    return [f"sitewatch browser required: {os.environ.get('SITEWATCH_REQUIRE_BROWSER', '0')}"]
