"""Pages from Jinja2 templates, in the user's language and time zone, escaped everywhere.

Autoescaping is on for every template; data handed to scripts goes through ``tojson`` into
``<script type="application/json">`` blocks read by the static scripts (no inline script
runs: the content security policy forbids it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from survey.web.accounts import DEFAULT_LANGUAGE, DEFAULT_TIMEZONE, LANGUAGES
from survey.web.i18n import class_label, local_time, state_label, translator
from survey.web.permissions import allowed
from survey.web.security import Principal

__all__ = ["TEMPLATES", "environment", "render"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> jinja2.Environment:
    """The template environment (autoescape on, undefined names an error)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _language(request: Request, who: Principal | None) -> str:
    if who is not None:
        return who.user.language
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return str(asked)
    accept = request.headers.get("accept-language", "").lower()
    return "en" if accept.startswith("en") else DEFAULT_LANGUAGE


def render(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` for the request's user (language, time zone, form token)."""
    who: Principal | None = getattr(request.state, "principal", None)
    language = _language(request, who)
    zone = who.user.timezone if who is not None else DEFAULT_TIMEZONE
    _ = translator(language)
    env: jinja2.Environment = request.app.state.platform.templates
    page = env.get_template(template).render(
        _=_,
        request=request,
        user=None if who is None else who.user,
        csrf_token=None if who is None else who.csrf_token,
        language=language,
        can=lambda permission: who is not None and allowed(who.user.role, permission),
        when=lambda value: local_time(value, zone, language),
        state_label=lambda s: state_label(s, _),
        class_label=lambda c: class_label(c, _),
        **context,
    )
    return HTMLResponse(page, status_code=http_status)
