"""Every route × every role, on SQLite and on PostgreSQL: what a role may do succeeds, the
rest gets 403 (401 on the API without a token, a redirect to the login page without a session)
and changes nothing.

:data:`CASES` holds one example request per route; a route of the application without a
permission in :data:`survey.web.permissions.ROUTES` or without a case here fails
``test_every_route_has_a_permission_and_a_case``.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from survey.web.permissions import PERMISSIONS, ROUTES
from tests.survey.web.conftest import (
    PASSWORD,
    ROLES,
    PlatformEnv,
    flight_files,
    form_token,
    snapshot,
)

# route name -> (method, path, body): body "form" or "json" dicts; "files" for uploads
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "home": ("GET", "/", {}),
    "sites_page": ("GET", "/sites", {}),
    "site_page": ("GET", "/sites/1", {}),
    "leads_page": ("GET", "/leads?state=new&min_score=0.1", {}),
    "lead_page": ("GET", "/leads/2", {}),
    "lead_chip": ("GET", "/leads/2/chip/after.png", {}),
    "lead_set_state": ("POST", "/leads/2/state", {"form": {"state": "under_review"}}),
    "lead_comment": ("POST", "/leads/2/comments", {"form": {"body": "seen from the road"}}),
    "lead_build_package": ("POST", "/leads/3/package", {"form": {}}),
    "lead_package": ("GET", "/leads/2/package.zip", {}),
    "dashboard_page": ("GET", "/dashboard", {}),
    "evidence_page": ("GET", "/evidence", {}),
    "upload_form": ("GET", "/upload", {}),
    "upload": ("POST", "/upload", {"form": {"site": "Demo site", "date": "2025-11-02"},
                                   "files": True}),
    "jobs_page": ("GET", "/jobs", {}),
    "job_page": ("GET", "/jobs/1", {}),
    "job_status": ("GET", "/jobs/1/status", {}),
    "account_page": ("GET", "/account", {}),
    "account_save": ("POST", "/account", {"form": {"language": "en", "timezone": "UTC"}}),
    "account_password": ("POST", "/account/password",
                         {"form": {"current": PASSWORD, "new": "another long password"}}),
    "token_create": ("POST", "/account/tokens", {"form": {"name": "city case system"}}),
    "token_revoke": ("POST", "/account/tokens/{token_id}/revoke", {"form": {}}),
    "users_page": ("GET", "/users", {}),
    "user_create": ("POST", "/users", {"form": {"username": "new-analyst", "role": "analyst",
                                                "password": "a long password"}}),
    "user_update": ("POST", "/users/demo-operator", {"form": {"disabled": "yes"}}),
    "logout": ("POST", "/logout", {"form": {}}),
    "api_me": ("GET", "/api/me", {}),
    "api_sites": ("GET", "/api/sites", {}),
    "api_site": ("GET", "/api/sites/1", {}),
    "api_leads": ("GET", "/api/leads?class=no_permit", {}),
    "api_lead": ("GET", "/api/leads/2", {}),
    "api_lead_state": ("POST", "/api/leads/2/state", {"json": {"state": "under_review"}}),
    "api_lead_comment": ("POST", "/api/leads/2/comments", {"json": {"body": "roof is new"}}),
    "api_dashboard": ("GET", "/api/dashboard", {}),
    "api_evidence": ("GET", "/api/evidence", {}),
    "api_jobs": ("GET", "/api/jobs", {}),
    "api_job": ("GET", "/api/jobs/1", {}),
}  # fmt: skip
PUBLIC = {
    "login_form": "/login",
    "login": None,
    "health": "/health",
    "openapi": "/api/openapi.json",
}

GUARDED = sorted(name for name, perm in ROUTES.items() if perm is not None)


def _send(env: PlatformEnv, role: str | None, name: str) -> Any:
    method, path, body = CASES[name]
    client = env.client(role)
    token_id = 1 + ROLES.index(role) if role is not None else 1
    path = path.format(token_id=token_id)
    if method == "GET":
        return client.get(path, follow_redirects=False)
    kwargs: dict[str, Any] = {"follow_redirects": False}
    token = form_token(client) if role is not None else ""
    if "json" in body:
        kwargs["json"] = body["json"]
        kwargs["headers"] = {"X-CSRF-Token": token}
    else:
        kwargs["data"] = {**body.get("form", {}), "csrf_token": token}
    if body.get("files"):
        kwargs["files"] = flight_files()
    return client.post(path, **kwargs)


def _routes(routes: list[Any]) -> list[Any]:
    """The application's routes, those of included routers flattened."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += _routes(inner.routes) if inner is not None else [route]
    return out


def test_every_route_has_a_permission_and_a_case(platform_env: PlatformEnv) -> None:
    seen = set()
    for route in _routes(platform_env.app.routes):
        if isinstance(route, Mount):  # /static and /vendor: files anyone may load
            continue
        name = route.name
        seen.add(name)
        assert name in ROUTES, f"route {name} ({route.path}) has no permission in ROUTES"
        assert name in CASES or name in PUBLIC, f"route {name} has no case in this test"
        if isinstance(route, APIRoute):
            perms = [
                getattr(d.call, "permission", "none given")
                for d in route.dependant.dependencies
                if hasattr(d.call, "permission")
            ]
            assert perms == [ROUTES[name]], f"{name} checks {perms}, the table says {ROUTES[name]}"
    assert seen == set(ROUTES), f"ROUTES names routes the app does not have: {set(ROUTES) - seen}"
    assert set(CASES) == set(GUARDED)


@pytest.mark.parametrize("name", GUARDED)
def test_roles_without_the_permission_are_refused_and_change_nothing(
    backend_env: PlatformEnv, name: str
) -> None:
    env = backend_env
    allowed = PERMISSIONS[ROUTES[name]]  # type: ignore[index]
    store = env.root / "store"
    for role in [None, *[r for r in ROLES if r not in allowed]]:
        before = snapshot(env.engine, store)
        response = _send(env, role, name)
        if role is None and CASES[name][1].startswith("/api/"):
            assert response.status_code == 401, (name, role)
        elif role is None:
            assert response.status_code == 303, (name, role)
            assert response.headers["location"].startswith("/login?next=")
        else:
            assert response.status_code == 403, (name, role, response.text)
        assert snapshot(env.engine, store) == before, f"{name} as {role} changed something"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "lead_build_package" else n for n in GUARDED
    ],  # building a package draws its report.pdf: about 10 s
)
def test_roles_with_the_permission_succeed(
    backend_env: PlatformEnv, name: str, demo_template: Any, tmp_path: Any
) -> None:
    method, path, _ = CASES[name]
    expected = 200 if method == "GET" or path.startswith("/api/") else 303
    expected = 303 if name == "home" else expected  # the start page is the sites page
    expected = 200 if name == "token_create" else expected  # the page shows the new token
    for role in sorted(PERMISSIONS[ROUTES[name]]):  # type: ignore[index]
        response = _send(backend_env, role, name)
        assert response.status_code == expected, (name, role, response.text[:300])
        if method == "POST":  # a write: the next role gets the platform as it was
            break
