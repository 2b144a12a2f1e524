"""Sessions, form tokens, rate limits, escaping, tokens, and the supervisor who changes nothing."""

from __future__ import annotations

import json

from survey.registry import Registry
from survey.web.accounts import add_user, set_disabled
from tests.survey.web.conftest import USER_OF, PlatformEnv, form_token, login, snapshot


def test_posts_without_the_form_token_are_refused(platform_env: PlatformEnv) -> None:
    env = platform_env
    analyst = env.client("analyst")
    before = snapshot(env.engine, env.root / "store")
    for path, data in (
        ("/leads/2/state", {"state": "under_review"}),
        ("/leads/2/comments", {"body": "x"}),
        ("/account", {"language": "en", "timezone": "UTC"}),
    ):
        for sent in ({}, {"csrf_token": "forged"}):
            r = analyst.post(path, data={**data, **sent}, follow_redirects=False)
            assert r.status_code == 403 and "form token" in r.text
    r = analyst.post("/api/leads/2/state", json={"state": "under_review"})
    assert r.status_code == 403
    assert snapshot(env.engine, env.root / "store") == before
    # the login form has its own token (a cookie and a hidden field that must match)
    anon = env.client()
    r = anon.post("/login", data={"username": USER_OF["analyst"], "password": "x" * 12})
    assert r.status_code == 403


def test_a_supervisor_cannot_change_a_lead_state_by_page_or_api(backend_env: PlatformEnv) -> None:
    env = backend_env
    sup = env.client("supervisor")
    token = form_token(sup)
    before = snapshot(env.engine, env.root / "store")
    page = sup.post("/leads/2/state", data={"state": "under_review", "csrf_token": token})
    api = sup.post(
        "/api/leads/2/state", json={"state": "under_review"}, headers={"X-CSRF-Token": token}
    )
    bearer = env.client().post(
        "/api/leads/2/state",
        json={"state": "under_review"},
        headers={"Authorization": f"Bearer {env.template.tokens['supervisor']}"},
    )
    assert (page.status_code, api.status_code, bearer.status_code) == (403, 403, 403)
    assert snapshot(env.engine, env.root / "store") == before
    # and the page offers no form for it
    assert 'id="state-form"' not in sup.get("/leads/2").text
    assert 'id="state-form"' in env.client("analyst").get("/leads/2").text


def test_an_analyst_changes_a_state_recorded_with_their_name_in_the_ledger(
    backend_env: PlatformEnv,
) -> None:
    env = backend_env
    api = env.client()
    auth = {"Authorization": f"Bearer {env.template.tokens['analyst']}"}
    r = api.post("/api/leads/2/state", json={"state": "under_review"}, headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "under_review"
    r = api.post("/api/leads/2/state", json={"state": "closed"}, headers=auth)
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    with Registry.open(env.db, create=False) as reg:
        (event,) = [e for e in reg.lead(2).events if e.kind == "state"]
    assert (event.user, event.to_state) == (USER_OF["analyst"], "under_review")
    lines = (env.root / "store" / "ledger.jsonl").read_text().splitlines()
    entry = json.loads(lines[event.ledger_seq])  # type: ignore[index]
    assert entry["seq"] == event.ledger_seq and entry["operator"] == USER_OF["analyst"]


def test_login_is_rate_limited_and_cookies_are_secure(platform_env: PlatformEnv) -> None:
    env = platform_env
    client = env.client()
    for _ in range(5):
        assert login(client, USER_OF["analyst"], "wrong password!").status_code == 401
    r = login(client, USER_OF["analyst"])  # the right password, too late
    assert r.status_code == 429 and "too many failed logins" in r.text
    assert int(r.headers["retry-after"]) == 15 * 60
    other = env.client()
    r = login(other, USER_OF["supervisor"])
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert (
        "HttpOnly" in cookie
        and "Secure" in cookie
        and "SameSite=lax" in cookie.replace("Lax", "lax")
    )
    assert r.headers["content-security-policy"].startswith("default-src 'self'")


def test_a_disabled_user_loses_the_session_and_the_token(platform_env: PlatformEnv) -> None:
    env = platform_env
    assert env.client("analyst").get("/leads").status_code == 200
    set_disabled(env.engine, USER_OF["analyst"])
    assert env.client("analyst").get("/leads", follow_redirects=False).status_code == 303
    r = env.client().get(
        "/api/leads", headers={"Authorization": f"Bearer {env.template.tokens['analyst']}"}
    )
    assert r.status_code == 401


def test_markup_in_comments_and_names_is_escaped_everywhere(platform_env: PlatformEnv) -> None:
    env = platform_env
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    add_user(env.engine, "mallory", "analyst", "a long password", display_name=evil)
    client = env.client()
    assert login(client, "mallory", "a long password").status_code == 303
    r = client.post("/leads/2/comments", data={"body": evil, "csrf_token": form_token(client)})
    assert r.status_code == 200
    for path in ("/leads/2", "/account"):
        text = client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(" in text
    admin = env.client("admin").get("/users").text
    assert "<script>alert" not in admin and "&lt;script&gt;" in admin
    api = client.get("/api/leads/2").json()
    assert api["comments"][-1]["body"] == evil  # stored as given, escaped when shown


def test_the_openapi_schema_is_served_without_login(platform_env: PlatformEnv) -> None:
    schema = platform_env.client().get("/api/openapi.json").json()
    assert "/api/leads" in schema["paths"] and "/api/leads/{lead_id}/state" in schema["paths"]
