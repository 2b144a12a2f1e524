"""Who is asking and whether they may: the permission check of every route, form tokens
(CSRF), the request size limit and the security headers of every response.

Every route depends on :func:`require` with the permission :data:`~.permissions.ROUTES`
gives it. A browser is known by its session cookie; another system calling ``/api/`` by its
token (``Authorization: Bearer swt_...``). A request that changes something from a browser
session carries the session's form token (a hidden ``csrf_token`` field, or the
``X-CSRF-Token`` header) or is refused with 403 before anything is read or written; the
cookie is ``HttpOnly``, ``SameSite=Lax`` and ``Secure``. Pages allow scripts from the server
only (``Content-Security-Policy: script-src 'self'``), so markup that slipped through
escaping would still not run.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from survey.web.accounts import User, session_user, token_user
from survey.web.permissions import allowed

__all__ = [
    "SESSION_COOKIE",
    "Anyone",
    "BodyLimit",
    "LoginRequired",
    "MayAccount",
    "MayBuildPackages",
    "MayChangeLeads",
    "MayComment",
    "MayDashboard",
    "MayDownloadPackages",
    "MayManageUsers",
    "MayUpload",
    "MayVerifyEvidence",
    "MayViewJobs",
    "MayViewLeads",
    "MayViewSites",
    "Principal",
    "SecurityHeaders",
    "principal_of",
    "require",
]

SESSION_COOKIE = "sitewatch_session"
LOGIN_COOKIE = "sitewatch_login"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)


class LoginRequired(Exception):
    """No session: a page answers with a redirect to the login page."""


@dataclass(frozen=True)
class Principal:
    """The user a request is made by, how they were known, and their session's form token."""

    user: User
    via: str  # "session" or "token"
    csrf_token: str | None = None


def principal_of(request: Request) -> Principal | None:
    """The user of ``request`` (session cookie, or API token on ``/api/``), or None."""
    engine = request.app.state.platform.engine
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and request.url.path.startswith("/api/"):
        user = token_user(engine, auth[7:].strip())
        return None if user is None else Principal(user, "token")
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    found = session_user(engine, sid)
    if found is None:
        return None
    return Principal(found[0], "session", found[1])


async def _form_token(request: Request) -> str:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


def require(permission: str | None) -> Callable[[Request], Awaitable[Principal | None]]:
    """A FastAPI dependency: the request's :class:`Principal`, after checking it holds
    ``permission`` (``None``: anyone) and, for a write from a browser session, its form token.

    Raises
    ------
    LoginRequired
        A page asked for without a session (answered with a redirect to ``/login``).
    HTTPException
        401 on ``/api/`` without a valid token or session; 403 for a role without the
        permission or a write without the form token.
    """

    async def dependency(request: Request) -> Principal | None:
        if permission is None:
            return None
        who = await run_in_threadpool(principal_of, request)
        if who is None:
            if request.url.path.startswith("/api/"):
                raise HTTPException(
                    401,
                    "log in, or send an API token as 'Authorization: Bearer swt_...'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            raise LoginRequired
        request.state.principal = who
        if not allowed(who.user.role, permission):
            raise HTTPException(
                403, f"the role {who.user.role!r} may not do this (needs {permission!r})"
            )
        if request.method in UNSAFE and who.via == "session":
            sent = await _form_token(request)
            if not who.csrf_token or not hmac.compare_digest(sent, who.csrf_token):
                raise HTTPException(
                    403, "the form token is missing or out of date; reload the page and retry"
                )
        return who

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


# One annotated type per permission: ``who: MayViewLeads`` in a route's signature.
MayAccount = Annotated[Principal, Depends(require("account"))]
MayViewSites = Annotated[Principal, Depends(require("view_sites"))]
MayViewLeads = Annotated[Principal, Depends(require("view_leads"))]
MayChangeLeads = Annotated[Principal, Depends(require("change_leads"))]
MayComment = Annotated[Principal, Depends(require("comment"))]
MayBuildPackages = Annotated[Principal, Depends(require("build_packages"))]
MayDownloadPackages = Annotated[Principal, Depends(require("download_packages"))]
MayVerifyEvidence = Annotated[Principal, Depends(require("verify_evidence"))]
MayDashboard = Annotated[Principal, Depends(require("dashboard"))]
MayUpload = Annotated[Principal, Depends(require("upload"))]
MayViewJobs = Annotated[Principal, Depends(require("view_jobs"))]
MayManageUsers = Annotated[Principal, Depends(require("manage_users"))]
Anyone = Annotated[None, Depends(require(None))]


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 (by the declared
    length before anything is read, and by counting what arrives)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        limit_mb = self.max_bytes / 1024**2
        body = (
            f"the upload is larger than this server takes ({limit_mb:.0f} MiB); split it or "
            "ask the administrator to raise --max-upload-mb\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """ASGI middleware: the content security policy and the usual hardening headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
