"""The case platform in a real headless Chromium, served by ``sitewatch serve`` (uvicorn and
its job worker, the embedded SQLite queue) on a free loopback port, the network off.

One user's day, end to end: the operator logs in and uploads the demo's after epoch as an
OpenDroneMap project zip; the job page's progress bar follows the worker until the survey is
done; the analyst opens one of its leads (the before/after swipe), moves it to
``under_review`` and ``confirmed``, builds its evidence package, downloads it through the
page's link and ``sha256sum -c manifest.sha256`` accepts it. Screenshots of the main pages go
to ``test-artifacts/web-*.png``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from survey.registry import Registry
from tests.browser import screenshot, wait_for
from tests.survey.web.conftest import PASSWORD, USER_OF, PlatformEnv
from tests.survey.web.test_jobs import odm_of, zip_odm

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

#: The lead the analyst confirms: a structure without a permit that the demo recorded.
LEAD = 4
#: The date of the uploaded survey.
DAY = dt.date(2025, 11, 3)

_NON_LOCAL = """
return performance.getEntriesByType('resource').map(function (e) { return e.name; })
  .filter(function (u) {
    var h = new URL(u, location.href).hostname;
    return !(h === '127.0.0.1' || h === 'localhost' || u.indexOf('data:') === 0);
  });
"""

_FETCH_BASE64 = """
var done = arguments[arguments.length - 1];
fetch(arguments[0], {credentials: 'same-origin'})
  .then(function (r) { return r.arrayBuffer(); })
  .then(function (b) {
    var bytes = new Uint8Array(b), s = '';
    for (var i = 0; i < bytes.length; i += 8192) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    }
    done(btoa(s));
  })
  .catch(function (e) { done('error: ' + e); });
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """``sitewatch serve`` (with its worker child) on the platform in ``root``; the base URL."""
    port = _free_port()
    args = [sys.executable, "-c", "from survey.cli import main; main()", "serve",
            "--db", str(root / "sitewatch.db"), "--store", str(root / "store"),
            "--data", str(root / "web"), "--port", str(port), "--no-job-packages"]  # fmt: skip
    log = (root / "serve.log").open("wb")
    proc = subprocess.Popen(
        args, env={**os.environ, "SITEWATCH_PIPELINE": "run"}, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (root / "serve.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in 60 s"
            time.sleep(0.3)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn stops, then serve stops its worker
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _log_in(driver: Any, url: str, role: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{url}/login")
    driver.find_element(By.ID, "username").send_keys(USER_OF[role])
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-button").click()
    assert wait_for(driver, "return document.getElementById('login-form') === null"), (
        f"{role} could not log in: " + driver.find_element(By.TAG_NAME, "main").text
    )


def _choose(driver: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def test_upload_watch_confirm_and_download_a_package(
    platform_env: PlatformEnv, tmp_path: Path, driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    env = platform_env
    env.engine.dispose()
    after = env.root / "site" / "after"
    project = odm_of(after / "orthophoto.tif", after / "dsm.tif", after / "dtm.tif", tmp_path / "p")
    archive = tmp_path / "demo-after-odm.zip"
    archive.write_bytes(zip_odm(project))
    with serving(env.root) as url:
        # the operator uploads the survey and watches its job
        _log_in(driver, url, "operator")
        assert "/sites" in driver.current_url
        # the site's outline drawn on the map (Leaflet from /vendor, no base layer: offline)
        assert (
            wait_for(
                driver, "return document.querySelectorAll('#map path.leaflet-interactive').length"
            )
            == 1
        )
        screenshot(driver, "web-sites.png")
        driver.get(f"{url}/upload")
        _choose(driver, "upload-site", "Demo site")
        driver.execute_script(
            "document.getElementById('upload-date').value = arguments[0];", DAY.isoformat()
        )
        driver.find_element(By.ID, "kind-odm").click()
        driver.find_element(By.ID, "upload-odm").send_keys(str(archive))
        screenshot(driver, "web-upload.png")
        driver.find_element(By.ID, "upload-button").click()
        assert wait_for(driver, "return document.getElementById('job-progress') !== null")
        assert "/jobs/" in driver.current_url, driver.find_element(By.TAG_NAME, "main").text
        job_id = int(driver.current_url.rsplit("/", 1)[1])
        screenshot(driver, "web-job-running.png")
        status = wait_for(
            driver,
            "var s = document.getElementById('job-status');"
            "var v = s && s.getAttribute('data-status');"
            "return v === 'done' || v === 'failed' ? v : '';",
            timeout=240,
        )
        text = driver.find_element(By.TAG_NAME, "main").text
        assert status == "done", f"job {job_id}: {status!r}\n{text}"
        assert driver.execute_script("return document.getElementById('job-progress').value") == 1
        assert driver.find_elements(By.ID, "job-result")
        screenshot(driver, "web-job-done.png")
        with Registry.open(env.root / "sitewatch.db", create=False) as reg:
            (job_survey,) = [s for s in reg.surveys("Demo site") if s.date == DAY]
            assert reg.lead(LEAD).last_survey_id == job_survey.survey_id

        # the analyst reviews a lead of it and confirms it
        _log_in(driver, url, "analyst")
        driver.get(f"{url}/leads")
        assert driver.find_elements(By.ID, "leads-table")
        screenshot(driver, "web-leads.png")
        driver.get(f"{url}/leads/{LEAD}")
        loaded = wait_for(
            driver,
            "var imgs = document.querySelectorAll('#swipe img.leaflet-image-layer');"
            "return imgs.length === 2 && Array.from(imgs).every(function (i) {"
            " return i.complete && i.naturalWidth > 0; });",
        )
        assert loaded, "the before/after images of the swipe did not load"
        assert driver.find_elements(By.CSS_SELECTOR, "#swipe .leaflet-sbs-range")
        screenshot(driver, "web-lead.png")
        for state, reason in (("under_review", ""), ("confirmed", "no permit; seen on site")):
            _choose(driver, "next-state", state)
            driver.find_element(By.ID, "state-reason").send_keys(reason)
            driver.find_element(By.ID, "state-button").click()
            shown = wait_for(
                driver,
                "var s = document.getElementById('lead-state');"
                f"return s && s.getAttribute('data-state') === '{state}';",
            )
            assert shown, driver.find_element(By.TAG_NAME, "main").text
        history = driver.find_element(By.ID, "history").text
        assert "no permit; seen on site" in history and USER_OF["analyst"] in history
        # the package: built on the page, downloaded through its link, checked
        driver.set_page_load_timeout(180)
        driver.find_element(By.ID, "build-package").click()
        link = wait_for(
            driver,
            "var a = document.getElementById('package-link'); return a ? a.href : '';",
            timeout=180,
        )
        driver.set_page_load_timeout(30)
        assert link.endswith(f"/leads/{LEAD}/package.zip"), link
        screenshot(driver, "web-lead-confirmed.png")
        driver.set_script_timeout(60)
        data = driver.execute_async_script(_FETCH_BASE64, link)
        assert not data.startswith("error"), data
        out = tmp_path / "package"
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(data))) as zf:
            zf.extractall(out)
        (folder,) = list(out.iterdir())
        check = subprocess.run(
            ["sha256sum", "-c", "manifest.sha256"], cwd=folder, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "report.pdf: OK" in check.stdout

        # the supervisor's dashboard and the evidence page
        _log_in(driver, url, "supervisor")
        driver.get(f"{url}/dashboard")
        assert driver.find_elements(By.ID, "dashboard")
        screenshot(driver, "web-dashboard.png")
        driver.get(f"{url}/evidence")
        verdict = driver.find_element(By.ID, "store-verdict")
        assert "ok" in (verdict.get_attribute("class") or ""), verdict.text
        screenshot(driver, "web-evidence.png")
        assert not driver.find_elements(By.ID, "state-form")
        assert driver.execute_script(_NON_LOCAL) == []
