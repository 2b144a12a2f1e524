"""The case platform (issue #19): the registry, the evidence store and the review maps served
to a bureau's teams in a browser, and to other city systems as a JSON API.

``sitewatch serve`` runs it (FastAPI behind uvicorn, Jinja2 pages, Huey jobs);
``sitewatch users`` manages its accounts. Modules: :mod:`.app` (the factory), :mod:`.config`,
:mod:`.permissions` (roles and the permission of every route), :mod:`.security` (sessions,
tokens, form tokens, limits), :mod:`.accounts` (users, passwords, sessions, tokens),
:mod:`.models` (tables), :mod:`.auth_routes`, :mod:`.pages`, :mod:`.api`,
:mod:`.upload_routes`, :mod:`.uploads` (checks of uploaded files), :mod:`.jobs` (the queue),
:mod:`.queries`, :mod:`.packages` (evidence), :mod:`.i18n`, :mod:`.rendering`, :mod:`.demo`.
"""

from __future__ import annotations

from survey.web.app import create_app
from survey.web.config import WebConfig
from survey.web.permissions import PERMISSIONS, ROLES, ROUTES

__all__ = ["PERMISSIONS", "ROLES", "ROUTES", "WebConfig", "create_app"]
