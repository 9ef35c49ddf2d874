"""The review app served by ``scrutineer serve`` (issue 11, "The app" and "Accounts and security"):
contributors flag samples, reviewers decide flags, maintainers see the takedown view.

It reads the review snapshot (:mod:`scrutineer.crowd.snapshot`) and the crowd store
(:mod:`scrutineer.crowd.store`), never the findings store, so it serves while a scan holds that store's
lock. Routes: :mod:`scrutineer.crowd.api` (JSON), :mod:`scrutineer.crowd.pages` (HTML), the OpenAPI document
``/openapi.json`` and its Swagger page ``/docs`` (swagger files bundled by ``fastapi-offline``,
nothing from a CDN), ``/static/htmx.min.js`` (htmx 2.0.11, vendored), the stylesheet
``/static/app.css`` and the icon ``/static/favicon.svg`` (also at ``/favicon.ico``).

Security, outermost first:

- :class:`SecurityHeaders` sets a strict Content-Security-Policy (scripts only from this origin;
  ``/docs`` also allows its one inline script by hash), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store`` (except static files), and
  marks every cookie ``Secure`` on an HTTPS request (the scheme a proxy on loopback names in
  ``X-Forwarded-Proto`` counts: uvicorn trusts gunicorn's ``forwarded_allow_ips``) or always with
  ``serve --secure-cookies``.
- :class:`SameOrigin` refuses (403) a state-changing request carrying cookies that a browser
  sent from another site.
- :class:`scrutineer.crowd.bodies.RequestBodies` admits only JSON and URL-encoded UTF-8 form bodies of at
  most 256 KiB (415, 400, 413 otherwise), before asgi-csrf reads one.
- asgi-csrf checks every unsafe request carrying cookies (and every ``POST /login``) for the
  token of its signed ``csrftoken`` cookie, in the ``csrftoken`` form field or the ``x-csrftoken``
  header; a request with ``Authorization: Bearer`` skips it (a browser never adds that header by
  itself). Refused with 403. Its key: :meth:`scrutineer.crowd.database.Database.csrf_secret`.
- The session cookie (``SameSite=Strict``, HttpOnly) holds a random value naming a session record
  in the crowd store (:mod:`scrutineer.crowd.access`), so every app process knows every session and a
  log-out ends it everywhere.
- Every route but ``GET``/``POST /login``, ``GET /api/health``, the static files and the icon need an account
  (:func:`scrutineer.crowd.access.signed_in`): anonymous API requests get 401, pages a redirect to ``/login``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import anyio.to_thread
import fastapi_offline
from asgi_csrf import asgi_csrf
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scrutineer import __version__
from scrutineer.core.config import Config, load_config
from scrutineer.core.errors import ConfigError, CrowdError, NotSignedIn, WorkspaceError
from scrutineer.crowd import accounts_page, api, browse, holds_page, mine, pages
from scrutineer.crowd.access import Services, signed_in
from scrutineer.crowd.api import HTTP_STATUS, http_headers, http_status
from scrutineer.crowd.bodies import UNSAFE_METHODS, RequestBodies, refuse

STATIC = Path(__file__).parent / "static"
SWAGGER = Path(fastapi_offline.__file__).parent / "static"
#: Threads running the synchronous routes of one app process. The two busiest routes, the queue
#: page and flag submission, run on the event loop instead (their reads take ~1 ms; their writes go
#: to the flag writer's thread, :class:`scrutineer.crowd.flag_writer.FlagWriter`): a thread hand-off per request cost
#: more than the work. More threads only contend for the GIL and SQLite's write lock
#: (bench/serve_load.py, one process, 50 clients: 108 requests/s with anyio's default 40 threads,
#: 146 with 2 or 4, 134 with 8).
THREADS = 4
#: The environment variable naming the config of ``scrutineer serve``'s worker processes.
CONFIG_ENV = "SCRUTINEER_SERVE_CONFIG"
#: The environment variable that is ``1`` when ``scrutineer serve --secure-cookies`` was given.
SECURE_COOKIES_ENV = "SCRUTINEER_SERVE_SECURE_COOKIES"

#: Swagger UI's page, made to pass the app's accessibility bar (axe-core, serious and critical):
#: ``lang`` on ``<html>``; no deep links, whose anchors Swagger UI nests inside each operation's
#: toggle button (axe ``nested-interactive``); and ``static/swagger.css`` after its stylesheet,
#: darkening the grey text that axe ``color-contrast`` (WCAG 2.1 1.4.3, 4.5:1) finds too light.
DOCS_HTML = (
    get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Scrutineer review API",
        swagger_js_url="/docs/swagger-ui-bundle.js",
        swagger_css_url="/docs/swagger-ui.css",
        swagger_favicon_url="/docs/favicon.png",
        swagger_ui_parameters={"deepLinking": False},
    )
    .body.replace(b"<html>", b'<html lang="en">', 1)
    .replace(b'<link type="text/css" rel="stylesheet" href="/docs/swagger-ui.css">',
             b'<link type="text/css" rel="stylesheet" href="/docs/swagger-ui.css">\n    <link rel="stylesheet" href="/static/swagger.css">', 1)
)
_DOCS_SCRIPTS = " ".join(
    f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in re.findall(rb"<script>(.*?)</script>", DOCS_HTML, re.S)
)

#: The Content-Security-Policy of every response: this origin's scripts only, no plugins, no
#: framing, forms posting back here; images from the web (a flagged sample's original URL).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' http: https:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: ``/docs`` alone: Swagger UI's inline start-up script (by hash) and its data: icons.
DOCS_CSP = CSP.replace("script-src 'self'", f"script-src 'self' {_DOCS_SCRIPTS}").replace("img-src 'self'", "img-src 'self' data:")


class SecurityHeaders:
    """ASGI middleware setting the security headers (module docstring) on every response.

    Args:
        secure_cookies: mark every cookie ``Secure``, whatever the request's scheme (``serve
            --secure-cookies``: behind a TLS proxy that does not say ``X-Forwarded-Proto``).
    """

    def __init__(self, app: ASGIApp, secure_cookies: bool = False) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        secure = self.secure_cookies or scope["scheme"] == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = DOCS_CSP if path == "/docs" else CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if not path.startswith("/static/"):
                    headers["Cache-Control"] = "no-store"
                if secure:
                    message["headers"] = [(k, v + b"; Secure" if k == b"set-cookie" and b"; secure" not in v.lower() else v) for k, v in message["headers"]]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SameOrigin:
    """ASGI middleware refusing (403) a POST, PUT, PATCH or DELETE that carries cookies and that a
    browser sent from another site: its ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site``, or
    its ``Origin`` names another host. OWASP's CSRF Prevention Cheat Sheet ("Fetch Metadata
    headers", "Verifying Origin with standard headers"): a second defence beside the CSRF token.
    A request with neither header (not a browser's, or an old one) passes to the CSRF check; one
    without cookies (an API client with its token) is no browser's session.

    ``Origin: null`` says nothing: browsers send it on this app's own forms, whose pages have
    ``Referrer-Policy: no-referrer`` (Chromium sends ``Sec-Fetch-Site: same-origin`` beside it).
    Another ``Origin``'s host and port are compared with the request's ``Host``; the scheme is
    not, as a TLS proxy may not tell the app (``Sec-Fetch-Site`` tells http from https).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = Headers(scope=scope)
            origin, site = headers.get("origin"), headers.get("sec-fetch-site")
            foreign_origin = origin not in (None, "null") and origin.partition("://")[2].lower() != headers.get("host", "").lower()
            if "cookie" in headers and (foreign_origin or site in ("cross-site", "same-site")):
                await refuse(scope, receive, send, 403, "refused: a request from another site")
                return
        await self.app(scope, receive, send)


docs = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])
icon = APIRouter(include_in_schema=False)


@icon.get("/favicon.ico")
def favicon() -> FileResponse:
    """The app's icon (``static/favicon.svg``), for a browser that asks before reading a page's ``<link rel="icon">``."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@docs.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document of the JSON API (signed-in accounts and tokens only)."""
    return JSONResponse(request.app.openapi())


@docs.get("/docs")
def swagger() -> HTMLResponse:
    """Swagger UI on the OpenAPI document, from the files bundled by ``fastapi-offline``."""
    return HTMLResponse(DOCS_HTML)


@docs.get("/docs/{name}")
def swagger_file(name: Literal["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]) -> FileResponse:
    """One of Swagger UI's files (these three only)."""
    return FileResponse(SWAGGER / name)


def _json(request: Request) -> bool:
    """Whether the request is for JSON (the API, the OpenAPI document) rather than a page."""
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
    """401 for the API (naming the Bearer scheme); a page redirects to the log-in form."""
    if _json(request):
        return JSONResponse({"detail": str(exc)}, HTTP_STATUS[NotSignedIn], {"WWW-Authenticate": "Bearer"})
    if request.headers.get("hx-request"):  # htmx would swap the log-in page into the table; send the whole page there
        return Response(status_code=HTTP_STATUS[NotSignedIn], headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


def _refused(request: Request, exc: CrowdError | WorkspaceError) -> Response:
    """The error's status (:data:`scrutineer.crowd.api.HTTP_STATUS`) and message: ``{"detail":
    message}`` for JSON, the error page otherwise."""
    status, headers = http_status(exc), http_headers(exc)
    if _json(request):
        return JSONResponse({"detail": str(exc)}, status, headers)
    return pages.error_page(request, status, str(exc), headers)


def _invalid(request: Request, exc: RequestValidationError) -> Response:
    """422 naming each invalid part of the request, without echoing its value as FastAPI does (a
    lone surrogate cannot be encoded, so echoing one failed with a traceback: issue 23, fault 9)."""
    errors = [{"type": e["type"], "loc": [_printable(part) for part in e["loc"]], "msg": _printable(e["msg"])} for e in exc.errors()]
    if _json(request):
        return JSONResponse({"detail": errors}, 422)
    return pages.error_page(request, 422, "; ".join(f"{' '.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def _printable(part: object) -> object:
    """A part of a validation error that UTF-8 can encode (a lone surrogate written ``\\ud800``)."""
    return part.encode("utf-8", "backslashreplace").decode() if isinstance(part, str) else part


def app_from_environment() -> FastAPI:
    """:func:`create_app` for the config that :data:`CONFIG_ENV` names (and
    :data:`SECURE_COOKIES_ENV`): the factory each uvicorn worker process of ``scrutineer serve`` calls."""
    return create_app(load_config(os.environ[CONFIG_ENV]), secure_cookies=os.environ.get(SECURE_COOKIES_ENV) == "1")


def create_app(cfg: Config, secure_cookies: bool = False) -> FastAPI:
    """The review app of ``cfg``'s workspace.

    Args:
        secure_cookies: mark every cookie ``Secure`` even on plain HTTP requests (:class:`SecurityHeaders`).

    Raises:
        ConfigError: the config has no crowd categories (there is nothing to flag).
        CrowdStoreError: the crowd store cannot be opened.
    """
    if not cfg.crowd.categories:
        raise ConfigError("crowd.categories is empty: configure the categories people flag samples under (README \"Review and reports\")")
    s = Services.open(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        yield
        s.close()

    app = FastAPI(
        title="Scrutineer review",
        version=__version__,
        description="Flag samples of the latest scan, review flags, read their trail. Authenticate with "
        "`Authorization: Bearer <token>` (`scrutineer users add` prints one).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.services = s
    for router in (api.public, api.router, pages.public, browse.router, pages.router, mine.router, accounts_page.router, holds_page.router, docs, icon):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(NotSignedIn, _not_signed_in)
    app.add_exception_handler(CrowdError, _refused)
    app.add_exception_handler(WorkspaceError, _refused)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(asgi_csrf, signing_secret=s.crowd.csrf_secret(), always_protect={"/login"}, cookie_samesite="Strict")
    app.add_middleware(RequestBodies)  # before asgi-csrf reads a body
    app.add_middleware(SameOrigin)
    app.add_middleware(SecurityHeaders, secure_cookies=secure_cookies)
    return app
