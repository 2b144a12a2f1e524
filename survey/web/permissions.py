"""Who may do what: the four roles, their permissions, and the permission of every route.

The bureau's three levels and its administrator:

* **operator** — the team level: uploads surveys, sees its team's sites and its own jobs;
* **analyst** — the detachment level: reviews leads, comments, changes their states, builds
  and downloads packages, verifies evidence;
* **supervisor** — the supervision level: reads and verifies everything, changes nothing;
* **admin** — manages users, and reads the sites.

:data:`ROUTES` names the permission of every route of the application (``None``: open to
anyone, e.g. the login page). The server checks it on every request (:mod:`.security`);
a test walks the application's routes and fails on any route missing from this table.
"""

from __future__ import annotations

__all__ = ["PERMISSIONS", "ROLES", "ROUTES", "WRITE_PERMISSIONS", "allowed", "permissions_of"]

ROLES: tuple[str, ...] = ("operator", "analyst", "supervisor", "admin")

_ALL = frozenset(ROLES)

PERMISSIONS: dict[str, frozenset[str]] = {
    "account": _ALL,  # one's own language, time zone, password and API tokens
    "view_sites": _ALL,  # operators: their team's sites only
    "view_leads": frozenset({"analyst", "supervisor"}),
    "change_leads": frozenset({"analyst"}),
    "comment": frozenset({"analyst"}),
    "build_packages": frozenset({"analyst"}),
    "download_packages": frozenset({"analyst", "supervisor"}),
    "verify_evidence": frozenset({"analyst", "supervisor"}),
    "dashboard": frozenset({"analyst", "supervisor"}),
    "upload": frozenset({"operator"}),
    "view_jobs": frozenset({"operator", "analyst", "supervisor"}),  # operators: their own
    "manage_users": frozenset({"admin"}),
}
"""Permission → the roles that hold it."""

WRITE_PERMISSIONS = frozenset(
    {"account", "change_leads", "comment", "build_packages", "upload", "manage_users"}
)
"""Permissions of routes that change something (a supervisor holds none of them)."""

ROUTES: dict[str, str | None] = {
    # login and logout
    "login_form": None,
    "login": None,
    "logout": "account",
    "health": None,
    # pages
    "home": "view_sites",
    "sites_page": "view_sites",
    "site_page": "view_sites",
    "leads_page": "view_leads",
    "lead_page": "view_leads",
    "lead_chip": "view_leads",
    "lead_set_state": "change_leads",
    "lead_comment": "comment",
    "lead_build_package": "build_packages",
    "lead_package": "download_packages",
    "dashboard_page": "dashboard",
    "evidence_page": "verify_evidence",
    "upload_form": "upload",
    "upload": "upload",
    "jobs_page": "view_jobs",
    "job_page": "view_jobs",
    "job_status": "view_jobs",
    "account_page": "account",
    "account_save": "account",
    "account_password": "account",
    "token_create": "account",
    "token_revoke": "account",
    "users_page": "manage_users",
    "user_create": "manage_users",
    "user_update": "manage_users",
    # JSON API
    "api_me": "account",
    "api_sites": "view_sites",
    "api_site": "view_sites",
    "api_leads": "view_leads",
    "api_lead": "view_leads",
    "api_lead_state": "change_leads",
    "api_lead_comment": "comment",
    "api_dashboard": "dashboard",
    "api_evidence": "verify_evidence",
    "api_jobs": "view_jobs",
    "api_job": "view_jobs",
    "openapi": None,  # the OpenAPI schema, /api/openapi.json
}
"""Route name → the permission it needs (``None``: no login needed)."""


def allowed(role: str, permission: str | None) -> bool:
    """True when ``role`` holds ``permission`` (``None``: everyone, logged in or not)."""
    return permission is None or role in PERMISSIONS[permission]


def permissions_of(role: str) -> list[str]:
    """The permissions ``role`` holds, sorted."""
    return sorted(p for p, roles in PERMISSIONS.items() if role in roles)
