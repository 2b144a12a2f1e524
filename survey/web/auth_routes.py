"""Login, logout, one's own account (language, time zone, password, API tokens) and the
administrator's user management."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from survey.web import accounts
from survey.web.accounts import LANGUAGES, LoginThrottled
from survey.web.app import Platform
from survey.web.db import audit
from survey.web.permissions import ROLES
from survey.web.rendering import render
from survey.web.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Anyone,
    MayAccount,
    MayManageUsers,
    Principal,
)

__all__ = ["router", "safe_next"]

router = APIRouter()


def platform(request: Request) -> Platform:
    out: Platform = request.app.state.platform
    return out


def safe_next(target: str | None) -> str:
    """A local path to go to after login ("/" for anything that could leave the site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _login_page(request: Request, next_: str, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(32)
    resp = render(
        request,
        "login.html",
        http_status=status,
        next=safe_next(next_),
        login_token=token,
        error=error,
    )
    resp.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=platform(request).config.secure_cookies,
    )
    return resp


@router.get("/login", name="login_form", response_class=HTMLResponse)
def login_form(request: Request, _who: Anyone, next: str = "/") -> Response:
    return _login_page(request, next, None, 200)


@router.post("/login", name="login", response_class=HTMLResponse)
def login(
    request: Request,
    _who: Anyone,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    p = platform(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        raise HTTPException(403, "the login form is out of date; reload the page and retry")
    try:
        user = accounts.authenticate(
            p.engine,
            username.strip(),
            password,
            client=_client(request),
            failures=p.config.login_failures,
            window=_window(p),
        )
    except LoginThrottled as exc:
        resp = _login_page(request, next, str(exc), 429)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    if user is None:
        return _login_page(request, next, "wrong user name or password", 401)
    sid, _csrf = accounts.open_session(p.engine, user, hours=p.config.session_hours)
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(p.config.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=p.config.secure_cookies,
    )
    resp.delete_cookie(LOGIN_COOKIE)
    return resp


def _window(p: Platform) -> dt.timedelta:
    return dt.timedelta(minutes=p.config.login_window_minutes)


@router.post("/logout", name="logout")
def logout(request: Request, who: MayAccount) -> Response:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        accounts.close_session(platform(request).engine, sid)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


# ------------------------------------------------------------------ one's own account


def _account_page(request: Request, who: Principal, **extra: object) -> Response:
    tokens = accounts.list_tokens(platform(request).engine, who.user)
    context: dict[str, Any] = {
        "tokens": tokens,
        "languages": LANGUAGES,
        "new_token": None,
        "message": None,
    }
    context.update(extra)
    return render(request, "account.html", **context)


@router.get("/account", name="account_page", response_class=HTMLResponse)
def account_page(request: Request, who: MayAccount) -> Response:
    return _account_page(request, who)


@router.post("/account", name="account_save")
def account_save(
    request: Request,
    language: Annotated[str, Form(max_length=16)],
    timezone: Annotated[str, Form(max_length=64)],
    who: MayAccount,
) -> Response:
    p = platform(request)
    accounts.update_user(p.engine, who.user.username, language=language, timezone=timezone)
    _audit(p, who, "account", {"language": language, "timezone": timezone})
    return RedirectResponse("/account", status_code=303)


@router.post("/account/password", name="account_password")
def account_password(
    request: Request,
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
    who: MayAccount,
) -> Response:
    p = platform(request)
    ok = accounts.authenticate(
        p.engine,
        who.user.username,
        current,
        client=_client(request),
        failures=p.config.login_failures,
        window=_window(p),
    )
    if ok is None:
        raise HTTPException(403, "the current password is wrong")
    accounts.set_password(p.engine, who.user.username, new)
    _audit(p, who, "password", {"user": who.user.username})
    return RedirectResponse("/login", status_code=303)


@router.post("/account/tokens", name="token_create", response_class=HTMLResponse)
def token_create(
    request: Request,
    name: Annotated[str, Form(max_length=200)],
    who: MayAccount,
) -> Response:
    p = platform(request)
    token = accounts.create_token(p.engine, who.user, name)
    _audit(p, who, "token-create", {"user": who.user.username, "name": name})
    return _account_page(request, who, new_token=token)


@router.post("/account/tokens/{token_id}/revoke", name="token_revoke")
def token_revoke(request: Request, token_id: int, who: MayAccount) -> Response:
    p = platform(request)
    if not accounts.revoke_token(p.engine, who.user, token_id):
        raise HTTPException(404, f"you have no API token {token_id}")
    _audit(p, who, "token-revoke", {"user": who.user.username, "token": token_id})
    return RedirectResponse("/account", status_code=303)


# ------------------------------------------------------------------ users (admin)


@router.get("/users", name="users_page", response_class=HTMLResponse)
def users_page(request: Request, who: MayManageUsers) -> Response:
    users = accounts.list_users(platform(request).engine)
    return render(request, "users.html", users=users, roles=ROLES, languages=LANGUAGES)


@router.post("/users", name="user_create")
def user_create(
    request: Request,
    who: MayManageUsers,
    username: Annotated[str, Form(max_length=64)],
    role: Annotated[str, Form(max_length=16)],
    password: Annotated[str, Form(max_length=1024)],
    team: Annotated[str, Form(max_length=200)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    language: Annotated[str, Form(max_length=16)] = accounts.DEFAULT_LANGUAGE,
) -> Response:
    p = platform(request)
    user = accounts.add_user(
        p.engine,
        username,
        role,
        password,
        team=team or None,
        display_name=display_name or None,
        language=language,
    )
    _audit(p, who, "user-add", {"user": user.username, "role": user.role, "team": user.team})
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{username}", name="user_update")
def user_update(
    request: Request,
    who: MayManageUsers,
    username: str,
    role: Annotated[str, Form(max_length=16)] = "",
    team: Annotated[str, Form(max_length=200)] = "",
    disabled: Annotated[str, Form(max_length=8)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    p = platform(request)
    accounts.find_user(p.engine, username)
    if password:
        accounts.check_password(password)
    if role:
        accounts.check_role(role)
    accounts.update_user(p.engine, username, role=role or None, team=team or None)
    if disabled in ("yes", "no"):
        accounts.set_disabled(p.engine, username, disabled == "yes")
    if password:
        accounts.set_password(p.engine, username, password)
    changes = {"user": username, "role": role or None, "team": team or None}
    _audit(
        p, who, "user-update", {**changes, "disabled": disabled or None, "password": bool(password)}
    )
    return RedirectResponse("/users", status_code=303)


def _audit(p: Platform, who: Principal, action: str, parameters: dict[str, object]) -> None:
    audit(p.registry(who.user.username), action, operator=who.user.username, parameters=parameters)
