"""Every page in Simplified Chinese and English, per user; dates in the user's time zone."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from survey.web.i18n import catalogue, local_time
from tests.survey.web.conftest import PlatformEnv, form_token

TEMPLATES = Path(__file__).resolve().parents[3] / "survey" / "web" / "templates"


def test_every_message_of_the_templates_has_a_chinese_translation() -> None:
    used: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r'_\("((?:[^"\\]|\\.)*)"\)', template.read_text()))
    zh = catalogue("zh_CN")
    assert len(used) > 100
    assert sorted(used - set(zh)) == []
    assert sorted(set(catalogue("en"))) == []  # English is the message ids themselves


def test_pages_follow_the_users_language(platform_env: PlatformEnv) -> None:
    analyst = platform_env.client("analyst")  # the demo's analyst reads Chinese
    page = analyst.get("/leads").text
    assert "线索" in page and '<html lang="zh-CN">' in page
    r = analyst.post(
        "/account",
        data={"language": "en", "timezone": "UTC", "csrf_token": form_token(analyst)},
    )
    assert r.status_code == 200
    page = analyst.get("/leads").text
    assert "线索" not in page and "Leads" in page and '<html lang="en">' in page


def test_times_are_shown_in_the_users_zone() -> None:
    noon_utc = dt.datetime(2024, 12, 31, 20, 15, tzinfo=dt.UTC)
    assert local_time(noon_utc, "Asia/Shanghai", "zh_CN") == "2025-01-01 04:15 Asia/Shanghai"
    assert local_time(noon_utc, "Europe/Berlin", "en") == "2024-12-31 21:15 Europe/Berlin"
