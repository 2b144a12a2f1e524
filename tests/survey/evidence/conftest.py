"""Fixtures of the evidence tests: a clock the test moves and a fresh store on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from survey.evidence import EvidenceStore
from tests.survey.evidence._helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> EvidenceStore:
    return EvidenceStore.open(tmp_path / "store", create=True, clock=clock)
