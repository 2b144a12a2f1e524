"""The application factory: FastAPI with the pages, the JSON API, the login, uploads and jobs.

>>> app = create_app(WebConfig(db="city.db", data_dir=Path("web-data")))  # doctest: +SKIP
>>> uvicorn.run(app)  # doctest: +SKIP

Routes are grouped by subject: :mod:`.auth_routes` (login, logout, account, users),
:mod:`.pages` (sites, leads, dashboard, evidence), :mod:`.upload_routes` (uploads and jobs),
:mod:`.api` (``/api/``, its schema at ``/api/openapi.json``). Every route's permission is in
:data:`survey.web.permissions.ROUTES`. Static files: ``/static`` (the platform's) and
``/vendor`` (the vendored Leaflet of the review maps, ``maps/static/vendor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

import survey.web.models  # noqa: F401 (the platform's tables on the registry's metadata)
from survey import __version__
from survey.errors import SurveyError
from survey.registry import LeadTransitionError, Registry, RegistryLookupError
from survey.web.config import WebConfig
from survey.web.jobs import make_queue
from survey.web.rendering import environment, render
from survey.web.security import BodyLimit, LoginRequired, SecurityHeaders

__all__ = ["Platform", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"


def _vendor() -> Path:
    import maps

    return Path(maps.__file__).resolve().parent / "static" / "vendor"


@dataclass
class Platform:
    """What every request shares: the settings, the registry's engine, templates, the queue."""

    config: WebConfig
    engine: Engine
    templates: jinja2.Environment
    enqueue: Any

    def registry(self, user: str | None = None) -> Registry:
        """A registry on the shared engine for one request, recording changes as ``user``."""
        return Registry(self.engine, store=self.config.store, user=user)


def create_app(config: WebConfig) -> FastAPI:
    """The case platform for ``config`` (opens, and if need be creates, the registry).

    Raises
    ------
    RegistryError
        The registry cannot be opened (newer, older, foreign, unreachable).
    """
    from survey.web import api, auth_routes, pages, upload_routes

    reg = Registry.open(config.db, store=config.store)
    _, enqueue = make_queue(config)
    app = FastAPI(
        title="sitewatch case platform",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        description="Sites, surveys, leads and evidence of the sitewatch registry. "
        "Authenticate with 'Authorization: Bearer <token>' (tokens are made on the Account "
        "page).",
    )
    app.state.platform = Platform(config, reg.engine, environment(), enqueue)
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/vendor", StaticFiles(directory=_vendor()), name="vendor")
    for module in (auth_routes, pages, upload_routes, api):
        app.include_router(module.router)
    _handlers(app)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/"
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get(
            "accept", ""
        ):
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return render(request, "error.html", http_status=exc.status_code, message=str(exc.detail))

    @app.exception_handler(SurveyError)
    async def _library(request: Request, exc: SurveyError) -> Response:
        status = 400
        if isinstance(exc, RegistryLookupError):
            status = 404
        elif isinstance(exc, LeadTransitionError):
            status = 409
        text = " ".join(str(exc).split())
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": text}, status_code=status)
        return render(request, "error.html", http_status=status, message=text)
