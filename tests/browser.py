"""Headless Chromium for the browser tests (the review maps, the case platform).

Debian's ``chromium`` and ``chromium-driver`` are driven through Selenium (installed by
``tools/install-browser.sh``; ``make test`` runs it). Without them a browser test skips, unless
``SITEWATCH_REQUIRE_BROWSER=1`` is set, in which case it fails. Every host but loopback is
unresolvable and the proxy is a dead port, so any attempt to reach the network shows up as a
non-local resource or a failed load. Screenshots go to ``test-artifacts/`` at the top of the
repository.

``driver`` is a pytest fixture (one browser per test module); ``tests/conftest.py`` imports
it, so every test module may use it by name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ARTIFACTS",
    "CHROMEDRIVER",
    "CHROMIUM",
    "driver",
    "require_browser",
    "screenshot",
    "wait_for",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def require_browser() -> None:
    """Skip (or fail, with ``SITEWATCH_REQUIRE_BROWSER=1``) when Chromium is not installed."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        msg = f"{', '.join(missing)} missing; run `bash tools/install-browser.sh`"
        if os.environ.get("SITEWATCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SITEWATCH_REQUIRE_BROWSER=1 but {msg}")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """A headless Chromium (Selenium ``WebDriver``), 1280 x 900, network off but loopback."""
    require_browser()
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sitewatch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
        # Everything but loopback goes to a dead proxy port (Chrome bypasses loopback by
        # default; `<-loopback>` would send the local test server there too).
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1;localhost",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def wait_for(drv: Any, script: str, timeout: float = 15.0) -> Any:
    """Run ``script`` in the page every 0.1 s until it returns something true (or the
    timeout, in seconds, passes); its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = drv.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    return value


def screenshot(drv: Any, name: str) -> Path:
    """Save a screenshot of the page as ``test-artifacts/<name>``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    time.sleep(0.8)  # let zoom animations and the popup fade-in finish
    drv.save_screenshot(str(path))
    return path
