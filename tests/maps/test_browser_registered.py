"""The synthetic site's review map with the co-registered after epoch, in headless Chromium.

Lead outlines are in the before frame; with ``after_registered`` the after tiles are drawn on
the same frame, so the outline of a detected structure sits on it in both epochs (screenshots
``review-synth-registered-*.png`` in ``test-artifacts/``). Uses the Chromium driver of
:mod:`tests.maps.test_browser`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from change_detection.params import DetectParams
from maps.review import ReviewMap, render_review_map
from survey.pipeline import run_detect
from tests.maps.synth_leads import permits_of
from tests.maps.test_browser import (  # noqa: F401 - the driver fixture is used by name
    _NON_LOCAL,
    _TILES_DRAWN,
    _screenshot,
    _wait,
    driver,
    serve_directory,
)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def registered_review(
    synth_site: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ReviewMap, Any]:
    root = tmp_path_factory.mktemp("browser_registered")
    det = run_detect(
        synth_site.before_ortho,
        synth_site.after_ortho,
        root / "detect",
        before_dsm=synth_site.before_dsm,
        after_dsm=synth_site.after_dsm,
        permits=synth_site.permits,
        site=synth_site.site,
        params=DetectParams(chunk_px=512),
    )
    assert det.leads and det.after_registered is not None
    rm = render_review_map(
        det.leads,
        before_ortho=synth_site.before_ortho,
        after_ortho=synth_site.after_ortho,
        out_html=root / "review" / "review.html",
        permits=permits_of(synth_site),
        title="Synthetic site (after co-registered)",
        after_registered=det.after_registered,
    )
    return rm, det


@pytest.fixture(scope="module")
def registered_server(registered_review: tuple[ReviewMap, Any]) -> Iterator[str]:
    rm, _ = registered_review
    with serve_directory(Path(rm.html).parent) as url:
        yield url


def test_registered_after_layer_and_popup(
    registered_review: tuple[ReviewMap, Any],
    registered_server: str,
    driver: Any,  # noqa: F811
) -> None:
    rm, det = registered_review
    lead = max(det.leads, key=lambda x: (x.score, x.area_m2))
    driver.get(f"{registered_server}/{rm.html.name}#lead={lead.lead_id}")
    assert _wait(driver, _TILES_DRAWN) >= 4, "no orthophoto tile drew"
    names = driver.execute_script(
        "var n = []; document.querySelectorAll('.leaflet-control-layers-overlays span')"
        ".forEach(function (s) { n.push(s.textContent.trim()); }); return n;"
    )
    assert any("After (co-registered to before)" in n for n in names), names
    n = driver.execute_script("return document.querySelectorAll('path[data-lead-id]').length")
    assert n == len(det.leads)
    text = _wait(
        driver,
        "var p = document.querySelector('.leaflet-popup-content');return p ? p.textContent : '';",
    )
    assert lead.lead_id in text and "after (co-registered to before)" in text
    chips_ok = _wait(
        driver,
        "var imgs = document.querySelectorAll('.leaflet-popup-content img');"
        "return imgs.length == 2 && Array.from(imgs).every(function (i) {"
        " return i.complete && i.naturalWidth > 0; });",
    )
    assert chips_ok, "before/after chips in the popup did not load"
    _screenshot(driver, "review-synth-registered-lead.png")
    # swipe fully to the after side: the outline must sit on the co-registered structure
    driver.execute_script(
        "window.sitewatch.map.closePopup();"
        "var r = document.querySelector('.leaflet-sbs-range'); r.value = 0;"
        "r.dispatchEvent(new Event('input'));"
    )
    _screenshot(driver, "review-synth-registered-after.png")
    assert driver.execute_script(_NON_LOCAL) == []
