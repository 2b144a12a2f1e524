"""The review pages in a real headless Chromium with the network blocked.

The browser (Debian's ``chromium`` through Selenium, network off but loopback; skipped without
it unless ``SITEWATCH_REQUIRE_BROWSER=1``) is the ``driver`` fixture of :mod:`tests.browser`.
Pages are served from a local ``http.server`` on 127.0.0.1. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maps.review import ReviewMap, render_review_map
from tests import browser
from tests.browser import ARTIFACTS, CHROMEDRIVER, CHROMIUM  # noqa: F401 - kept importable here
from tests.maps.scenes import Scene

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

# The browser fixture and helpers now live in tests/browser.py; these names stay for the
# modules that import them from here (test_browser_registered).
driver = browser.driver
_require_browser = browser.require_browser
_wait = browser.wait_for
_screenshot = browser.screenshot


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def review(scene: Scene, review_map: ReviewMap) -> tuple[Scene, ReviewMap]:
    return scene, review_map


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on a free loopback port; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(review: tuple[Scene, ReviewMap]) -> Iterator[str]:
    _, rm = review
    with serve_directory(rm.html.parent) as url:
        yield url


_TILES_DRAWN = """
return Array.from(document.querySelectorAll('img.leaflet-tile'))
  .filter(function (i) {
    return i.complete && i.naturalWidth > 0 && i.src.indexOf('/tiles/') >= 0;
  }).length;
"""

_NON_LOCAL = """
return performance.getEntriesByType('resource').map(function (e) { return e.name; })
  .filter(function (u) {
    var h = new URL(u, location.href).hostname;
    return !(h === '127.0.0.1' || h === 'localhost' || u.indexOf('data:') === 0);
  });
"""


def test_review_map_loads_offline_and_popups_open(
    review: tuple[Scene, ReviewMap], server: str, driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    scene, rm = review
    driver.get(f"{server}/{rm.html.name}")
    assert driver.execute_script("return typeof window.L") == "object", "Leaflet did not load"
    assert driver.execute_script("return window.L.version") == "1.9.4"
    assert _wait(driver, _TILES_DRAWN) >= 4, "no orthophoto tile drew"
    # Every plugin initialised: swipe control, measure, fullscreen, mouse position, layers.
    for css in (
        ".leaflet-sbs-range",
        ".leaflet-control-measure",
        ".leaflet-control-zoom-fullscreen",
        ".leaflet-control-mouseposition",
        ".leaflet-control-layers",
        ".leaflet-control-scale",
        ".sw-legend",
    ):
        assert driver.find_elements(By.CSS_SELECTOR, css), f"{css} missing from the page"
    ids = {lead.lead_id for lead in scene.leads}
    on_map = set(
        driver.execute_script(
            "return Array.from(document.querySelectorAll('path[data-lead-id]'))"
            ".map(function (p) { return p.getAttribute('data-lead-id'); });"
        )
    )
    assert on_map == ids, f"leads drawn {sorted(on_map)} != leads of the run {sorted(ids)}"
    assert driver.execute_script("return Object.keys(window.sitewatch.leads).length") == len(ids)
    _screenshot(driver, "review-map.png")

    # A real click on a lead outline opens its popup.
    lead = scene.leads[0]
    path = driver.find_element(By.CSS_SELECTOR, f'path[data-lead-id="{lead.lead_id}"]')
    driver.execute_script("window.sitewatch.map.closePopup();")
    from selenium.webdriver import ActionChains

    ActionChains(driver).move_to_element(path).click().perform()
    text = _wait(
        driver,
        "var p = document.querySelector('.leaflet-popup-content');return p ? p.textContent : '';",
    )
    assert lead.lead_id in text, f"popup after a click shows {text!r}"
    chips_ok = _wait(
        driver,
        "var imgs = document.querySelectorAll('.leaflet-popup-content img');"
        "return imgs.length == 2 && Array.from(imgs).every(function (i) {"
        " return i.complete && i.naturalWidth > 0; });",
    )
    assert chips_ok, "before/after chips in the popup did not load"
    _screenshot(driver, "review-map-popup.png")

    # The permit named <script>alert(1)</script> is shown as text, never run as markup.
    opened = driver.execute_script(
        "var n = 0; window.sitewatch.map.closePopup();"
        "window.sitewatch.map.eachLayer(function (l) {"
        " if (l.feature && l.feature.properties._id === 'permit-0') { l.openPopup(); n++; } });"
        "return n;"
    )
    assert opened == 1
    text = _wait(
        driver,
        "var p = document.querySelector('.leaflet-popup-content');"
        "return p && p.textContent.indexOf('Permit') === 0 ? p.textContent : '';",
    )
    assert "<script>alert(1)</script>" in text
    assert not driver.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content script")
    assert not driver.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content img[src='x']")
    assert driver.execute_script("return window.__xss === undefined")
    assert driver.execute_script(_NON_LOCAL) == []


def test_lead_links_zoom_and_other_pages_load(
    review: tuple[Scene, ReviewMap], server: str, driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    scene, rm = review
    driver.get(f"{server}/{rm.overview_html.name}")
    links = driver.find_elements(By.CSS_SELECTOR, "a.lead-link")
    assert {a.text for a in links} == {lead.lead_id for lead in scene.leads}
    target = scene.leads[-1]
    link = next(a for a in links if a.text == target.lead_id)
    href = link.get_attribute("href")
    assert href is not None
    assert urllib.parse.unquote(href.split("#lead=")[1]) == target.lead_id
    link.click()
    text = _wait(
        driver,
        "var p = document.querySelector('.leaflet-popup-content');return p ? p.textContent : '';",
    )
    assert target.lead_id in text
    zoom = driver.execute_script("return window.sitewatch.map.getZoom()")
    assert zoom >= rm.tiles["after"].max_zoom - 2
    c = target.geometry.centroid
    visible = driver.execute_script(
        "return window.sitewatch.map.getBounds().contains(L.latLng(arguments[0], arguments[1]));",
        c.y,
        c.x,
    )
    assert visible, "the linked lead is not in view"
    _screenshot(driver, "review-map-lead-link.png")
    assert driver.execute_script(_NON_LOCAL) == []

    driver.get(f"{server}/{rm.dual_html.name}")
    assert _wait(driver, _TILES_DRAWN) >= 4
    maps = driver.find_elements(By.CSS_SELECTOR, ".folium-map")
    assert len(maps) == 2
    assert len(driver.find_elements(By.CSS_SELECTOR, "path[data-lead-id]")) == 2 * len(scene.leads)
    _screenshot(driver, "review-dual.png")
    assert driver.execute_script(_NON_LOCAL) == []


def test_synthetic_site_page(
    review: tuple[Scene, ReviewMap], synth_site: Any, server: str, driver: Any
) -> None:
    from tests.maps.synth_leads import leads_from_truth, permits_of

    _, rm = review
    leads = leads_from_truth(synth_site)
    synth = render_review_map(
        leads,
        before_ortho=synth_site.before_ortho,
        after_ortho=synth_site.after_ortho,
        out_html=rm.html.parent / "synth" / "review.html",
        permits=permits_of(synth_site),
        title="Synthetic site",
    )
    driver.get(f"{server}/synth/{synth.html.name}#lead={leads[0].lead_id}")
    assert _wait(driver, _TILES_DRAWN) >= 4
    n = driver.execute_script("return document.querySelectorAll('path[data-lead-id]').length")
    assert n == len(leads)
    text = _wait(
        driver,
        "var p = document.querySelector('.leaflet-popup-content');return p ? p.textContent : '';",
    )
    assert leads[0].lead_id in text
    _screenshot(driver, "review-synth-lead.png")
    driver.execute_script("window.sitewatch.map.closePopup(); window.sitewatch.map.setZoom(19);")
    _screenshot(driver, "review-synth.png")
    assert driver.execute_script(_NON_LOCAL) == []


def test_a_photo_popup_shows_its_thumbnail_time_source_and_flags(
    scene: Scene, tmp_path_factory: pytest.TempPathFactory, driver: Any
) -> None:
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    from tests.maps.test_review import _flight_features

    root = tmp_path_factory.mktemp("photo_popups")
    flight = _flight_features(scene, root / "DCIM")
    rm = render_review_map(
        [],
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        out_html=root / "map" / "review.html",
        photo_dir=root / "DCIM",
        **flight,
    )
    with serve_directory(rm.html.parent) as url:
        driver.get(f"{url}/{rm.html.name}")
        assert _wait(driver, _TILES_DRAWN) >= 4, "no orthophoto tile drew"
        names = driver.execute_script(
            "return Array.from(document.querySelectorAll('.leaflet-control-layers-overlays "
            "span')).map(function (s) { return s.textContent.trim(); });"
        )
        assert {"Flight track (flown)", "Planned route", "Photo positions (taken)"} <= set(names)
        # a real click on a photo's marker (centred in view, clear of the controls) opens its
        # popup with the thumbnail
        driver.execute_script(
            "window.sitewatch.map.eachLayer(function (l) {"
            " if (l.feature && l.feature.properties._id === 'photo-1') {"
            "  window.sitewatch.map.setView(l.getLatLng(), window.sitewatch.map.getZoom(),"
            "   {animate: false}); } });"
        )
        time.sleep(0.3)
        marker = driver.find_element(By.CSS_SELECTOR, 'path[data-photo-id="photo-1"]')
        ActionChains(driver).move_to_element(marker).click().perform()
        text = _wait(
            driver,
            "var p = document.querySelector('.leaflet-popup-content');"
            "return p ? p.textContent : '';",
        )
        assert "DJI_0002.JPG" in text and "2025-10-15T02:31:01.500Z" in text, text
        assert "position fromlog" in text and "QC flagsnone" in text
        loaded = _wait(
            driver,
            "var i = document.querySelector('.leaflet-popup-content img.sw-thumb');"
            "return i && i.complete ? i.naturalWidth : 0;",
        )
        assert loaded == 320, "the thumbnail did not load"
        _screenshot(driver, "review-photo-popup.png")
        # the flagged photo: its flag and reason, the reason's markup shown as text
        opened = driver.execute_script(
            "var n = 0; window.sitewatch.map.closePopup();"
            "window.sitewatch.map.eachLayer(function (l) {"
            " if (l.feature && l.feature.properties._id === 'photo-0') { l.openPopup(); n++; }"
            "}); return n;"
        )
        assert opened == 1
        text = _wait(
            driver,
            "var p = document.querySelector('.leaflet-popup-content');"
            "return p && p.textContent.indexOf('DJI_0001') >= 0 ? p.textContent : '';",
        )
        assert "blurred: sharpness <b>0.1</b> of the median" in text, text
        assert "interpolated" in text
        # the photo missing from the folder: a popup without a thumbnail
        driver.execute_script(
            "window.sitewatch.map.closePopup();"
            "window.sitewatch.map.eachLayer(function (l) {"
            " if (l.feature && l.feature.properties._id === 'photo-2') { l.openPopup(); } });"
        )
        text = _wait(
            driver,
            "var p = document.querySelector('.leaflet-popup-content');"
            "return p && p.textContent.indexOf('DJI_0003') >= 0 ? p.textContent : '';",
        )
        assert text and not driver.find_elements(By.CSS_SELECTOR, ".leaflet-popup-content img")
        assert driver.execute_script(_NON_LOCAL) == []
