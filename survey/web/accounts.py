"""Users, passwords, sessions, API tokens and the login rate limit (the database side).

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended
setting); session ids and API tokens are 32 random bytes handed to the client once and kept
only as their SHA-256. A session ends when it expires, at logout, when its user's password
changes or when the user is disabled. After ``failures`` failed logins of one user name within
``window`` (or four times that many from one client address) logins are refused until the
window has passed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from survey.web.db import reading, utc_now, writing_session
from survey.web.errors import AccountError
from survey.web.models import ApiTokenRow, LoginFailureRow, SessionRow, UserRow
from survey.web.permissions import ROLES

__all__ = [
    "DEFAULT_LANGUAGE",
    "DEFAULT_TIMEZONE",
    "LANGUAGES",
    "MIN_PASSWORD",
    "LoginThrottled",
    "User",
    "add_user",
    "authenticate",
    "close_session",
    "create_token",
    "find_user",
    "list_tokens",
    "list_users",
    "open_session",
    "revoke_token",
    "session_user",
    "set_disabled",
    "set_password",
    "token_user",
    "update_user",
]

LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "zh_CN"
DEFAULT_TIMEZONE = "Asia/Shanghai"
MIN_PASSWORD = 10

_HASHER = PasswordHasher()
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# a hash to verify against when the user does not exist, so both cases take the same time
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


class LoginThrottled(AccountError):
    """Too many failed logins; ``retry_after`` seconds until the next try is taken."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class User:
    """A user as the application sees it (never the password hash)."""

    user_id: int
    username: str
    display_name: str
    role: str
    team: str | None
    language: str
    timezone: str
    disabled: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "team": self.team,
            "language": self.language,
            "timezone": self.timezone,
            "disabled": self.disabled,
        }


def _user(row: UserRow) -> User:
    return User(
        row.id,
        row.username,
        row.display_name,
        row.role,
        row.team,
        row.language,
        row.timezone,
        bool(row.disabled),
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------ checks


def check_username(name: str) -> str:
    if not isinstance(name, str) or not _USERNAME.fullmatch(name):
        raise AccountError(
            f"user name {name!r} is not usable; give 1 to 64 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not a role; give one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountError(
            f"the password is shorter than {MIN_PASSWORD} characters; give a longer one"
        )
    if len(password) > 1024:
        raise AccountError("the password is longer than 1024 characters; give a shorter one")
    return password


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise AccountError(
            f"language {language!r} is not offered; give one of {', '.join(LANGUAGES)}"
        )
    return language


def check_timezone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise AccountError(
            f"time zone {zone!r} is not an IANA time zone; give one such as Asia/Shanghai"
        ) from exc
    return zone


def check_text(value: str | None, what: str, limit: int = 200) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > limit or not text.isprintable():
        raise AccountError(
            f"{what} {text[:40]!r} is longer than {limit} characters or has control "
            "characters; give a shorter, printable one"
        )
    return text


# ------------------------------------------------------------------ users


def add_user(
    engine: Engine,
    username: str,
    role: str,
    password: str,
    *,
    team: str | None = None,
    display_name: str | None = None,
    language: str = DEFAULT_LANGUAGE,
    timezone: str = DEFAULT_TIMEZONE,
) -> User:
    """Create a user.

    Raises
    ------
    AccountError
        A bad name, role, password, language or zone, or a name already taken.
    """
    check_username(username)
    check_role(role)
    check_password(password)
    check_language(language)
    check_timezone(timezone)
    now = utc_now()
    with writing_session(engine) as s:
        if s.scalar(sa.select(UserRow.id).where(UserRow.username == username)) is not None:
            raise AccountError(
                f"user {username!r} exists already; choose another name, or change its "
                "password with `sitewatch users passwd`"
            )
        row = UserRow(
            username=username,
            display_name=check_text(display_name, "display name") or username,
            role=role,
            team=check_text(team, "team"),
            language=language,
            timezone=timezone,
            password_hash=_HASHER.hash(password),
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        s.add(row)
        s.flush()
        return _user(row)


def _row(s: sa.orm.Session, username: str) -> UserRow:
    row = s.scalars(sa.select(UserRow).where(UserRow.username == username)).one_or_none()
    if row is None:
        raise AccountError(
            f"no user named {username!r}; list users on the Users page or add one with "
            "`sitewatch users add`"
        )
    return row


def find_user(engine: Engine, username: str) -> User:
    """The user named ``username`` (AccountError when there is none)."""
    with reading(engine) as s:
        return _user(_row(s, username))


def list_users(engine: Engine) -> list[User]:
    """Every user, by name."""
    with reading(engine) as s:
        return [_user(r) for r in s.scalars(sa.select(UserRow).order_by(UserRow.username))]


def set_password(engine: Engine, username: str, password: str) -> User:
    """Give ``username`` a new password and end its sessions."""
    check_password(password)
    with writing_session(engine) as s:
        row = _row(s, username)
        row.password_hash = _HASHER.hash(password)
        row.password_changed_at = utc_now()
        s.execute(sa.delete(SessionRow).where(SessionRow.user_id == row.id))
        return _user(row)


def set_disabled(engine: Engine, username: str, disabled: bool = True) -> User:
    """Disable (or enable again) ``username``; disabling ends its sessions at once."""
    with writing_session(engine) as s:
        row = _row(s, username)
        row.disabled = bool(disabled)
        if disabled:
            s.execute(sa.delete(SessionRow).where(SessionRow.user_id == row.id))
        return _user(row)


def update_user(
    engine: Engine,
    username: str,
    *,
    role: str | None = None,
    team: str | None = None,
    display_name: str | None = None,
    language: str | None = None,
    timezone: str | None = None,
) -> User:
    """Change a user's role, team, name, language or time zone (what is given)."""
    with writing_session(engine) as s:
        row = _row(s, username)
        if role is not None and check_role(role) != row.role:
            row.role = role
            s.execute(sa.delete(SessionRow).where(SessionRow.user_id == row.id))
        if team is not None:
            row.team = check_text(team, "team")
        if display_name is not None:
            row.display_name = check_text(display_name, "display name") or row.username
        if language is not None:
            row.language = check_language(language)
        if timezone is not None:
            row.timezone = check_timezone(timezone)
        return _user(row)


# ------------------------------------------------------------------ logins


def authenticate(
    engine: Engine,
    username: str,
    password: str,
    *,
    client: str,
    failures: int = 5,
    window: dt.timedelta = dt.timedelta(minutes=15),
) -> User | None:
    """The user if ``password`` is theirs and they are enabled, else None (recorded as a
    failure).

    Raises
    ------
    LoginThrottled
        Too many recent failures for this name or from this client; nothing is checked.
    """
    now = utc_now()
    name = username[:64]
    client = client[:64]
    since = now - window
    with reading(engine) as s:
        by_name = s.scalar(
            sa.select(sa.func.count())
            .select_from(LoginFailureRow)
            .where(LoginFailureRow.username == name, LoginFailureRow.at > since)
        )
        by_client = s.scalar(
            sa.select(sa.func.count())
            .select_from(LoginFailureRow)
            .where(LoginFailureRow.client == client, LoginFailureRow.at > since)
        )
        row = s.scalars(sa.select(UserRow).where(UserRow.username == name)).one_or_none()
    if (by_name or 0) >= failures or (by_client or 0) >= 4 * failures:
        minutes = int(window.total_seconds() // 60)
        raise LoginThrottled(
            f"too many failed logins for {name!r} or from this address; wait {minutes} "
            "minutes or ask an administrator to reset the password",
            retry_after=int(window.total_seconds()),
        )
    ok: bool
    try:
        ok = _HASHER.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if row is None or not ok or row.disabled:
        with writing_session(engine) as s:
            s.add(LoginFailureRow(username=name, client=client, at=now))
        return None
    if _HASHER.check_needs_rehash(row.password_hash):
        with writing_session(engine) as s:
            _row(s, name).password_hash = _HASHER.hash(password)
    return _user(row)


def open_session(engine: Engine, user: User, *, hours: float) -> tuple[str, str]:
    """Start a session for ``user``: the cookie value and the session's form token."""
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utc_now()
    with writing_session(engine) as s:
        s.execute(sa.delete(SessionRow).where(SessionRow.expires_at < now))
        s.add(
            SessionRow(
                id=_sha256(sid),
                user_id=user.user_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + dt.timedelta(hours=hours),
            )
        )
    return sid, csrf


def session_user(engine: Engine, sid: str) -> tuple[User, str] | None:
    """The user and form token of a live session, or None."""
    with reading(engine) as s:
        found = s.execute(
            sa.select(UserRow, SessionRow.csrf_token)
            .join(SessionRow, SessionRow.user_id == UserRow.id)
            .where(SessionRow.id == _sha256(sid), SessionRow.expires_at > utc_now())
        ).one_or_none()
    if found is None or found[0].disabled:
        return None
    return _user(found[0]), found[1]


def close_session(engine: Engine, sid: str) -> None:
    """End a session (logout)."""
    with writing_session(engine) as s:
        s.execute(sa.delete(SessionRow).where(SessionRow.id == _sha256(sid)))


# ------------------------------------------------------------------ API tokens


def create_token(engine: Engine, user: User, name: str) -> str:
    """A new API token for ``user`` (shown once; only its SHA-256 is kept)."""
    label = check_text(name, "token name") or "token"
    token = "swt_" + secrets.token_urlsafe(32)
    with writing_session(engine) as s:
        s.add(
            ApiTokenRow(
                user_id=user.user_id,
                name=label,
                token_sha256=_sha256(token),
                created_at=utc_now(),
                revoked=False,
            )
        )
    return token


def list_tokens(engine: Engine, user: User) -> list[ApiTokenRow]:
    """The user's tokens (live and revoked), newest first."""
    with reading(engine) as s:
        return list(
            s.scalars(
                sa.select(ApiTokenRow)
                .where(ApiTokenRow.user_id == user.user_id)
                .order_by(ApiTokenRow.id.desc())
            )
        )


def revoke_token(engine: Engine, user: User, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens; False when it has none with that id."""
    with writing_session(engine) as s:
        row = s.get(ApiTokenRow, int(token_id))
        if row is None or row.user_id != user.user_id:
            return False
        row.revoked = True
        return True


def token_user(engine: Engine, token: str) -> User | None:
    """The enabled user a live token belongs to, or None."""
    with reading(engine) as s:
        found = s.execute(
            sa.select(UserRow, ApiTokenRow.id)
            .join(ApiTokenRow, ApiTokenRow.user_id == UserRow.id)
            .where(ApiTokenRow.token_sha256 == _sha256(token), ApiTokenRow.revoked.is_(False))
        ).one_or_none()
    if found is None or found[0].disabled:
        return None
    return _user(found[0])
