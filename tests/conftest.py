"""Test configuration shared by every package's tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from tests.browser import driver  # noqa: F401 - the headless Chromium fixture, used by name

# Property tests draw the same examples on every run of the default suite (``make test``, CI), so
# a red run is reproducible and never a coin toss; ``make test-all`` runs the "explore" profile,
# which draws fresh examples each time to search for new failures.
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("SITEWATCH_HYPOTHESIS_PROFILE", "default"))

if TYPE_CHECKING:
    from survey.synth import SynthSite

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real files (logs, photos, rasters); tests using it are marked ``realdata``."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present (a user's clone has none)")
    return REALDATA


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the package loggers (handlers, level, no propagation); put them
    back after every test, so that later tests in the same process still see their records
    through caplog."""
    names = ("sitewatch", "survey", "flightplans", "change_detection", "maps")
    saved = {n: (lg.handlers[:], lg.level, lg.propagate) for n, lg in _loggers(names)}
    yield
    for n, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def _loggers(names: tuple[str, ...]) -> Iterator[tuple[str, logging.Logger]]:
    return ((n, logging.getLogger(n)) for n in names)


def pytest_report_header() -> list[str]:
    return [f"sitewatch browser required: {os.environ.get('SITEWATCH_REQUIRE_BROWSER', '0')}"]


# --- synthetic survey site (survey.synth) ------------------------------------------------------
# ``synth_site`` is the smallest scene that still holds every planted kind (new structures, an
# extension, an added storey, a permitted building, a demolition, a shed, a pile, moved cars and
# growing trees): an 80 m site at 10 cm (800 x 800 px), seed 0, generated once per session in
# about a second. ``make_synth_site(seed, size_m, gsd_cm)`` generates (and caches) any other.

_SYNTH_CACHE: dict[tuple[int, float, float], SynthSite] = {}


@pytest.fixture(scope="session")
def make_synth_site(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., SynthSite]:
    """Factory ``fn(seed=0, size_m=80.0, gsd_cm=10.0) -> survey.synth.SynthSite`` (cached)."""
    from survey.synth import SynthParams, generate_site

    def make(seed: int = 0, size_m: float = 80.0, gsd_cm: float = 10.0) -> SynthSite:
        key = (int(seed), float(size_m), float(gsd_cm))
        if key not in _SYNTH_CACHE:
            out = tmp_path_factory.mktemp(f"synth-s{seed}-{size_m:g}m-{gsd_cm:g}cm")
            _SYNTH_CACHE[key] = generate_site(
                out, SynthParams(seed=int(seed), size_m=float(size_m), gsd_cm=float(gsd_cm))
            )
        return _SYNTH_CACHE[key]

    return make


@pytest.fixture(scope="session")
def synth_site(make_synth_site: Callable[..., SynthSite]) -> SynthSite:
    """The default test scene: ``SynthParams(seed=0, size_m=80, gsd_cm=10)`` on disk."""
    return make_synth_site(0, 80.0, 10.0)
