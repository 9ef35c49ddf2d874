"""The review app's HTML pages (issue 11, "The app"): log in, the review queue, the flag form,
one item with its decision form, the image fragment, the watchdog report and the maintainer's
takedown view.

Pages are Jinja templates under ``crowd/templates/``, rendered by the report's environment
(:data:`scrutineer.reports.html.ENV`: autoescaped, so captions, URLs, notes and names are always text).
Every form carries the CSRF token (:mod:`scrutineer.crowd.app`); htmx requests send it as
``x-csrftoken`` from the ``hx-headers`` of the page body.

Flagged imagery is never rendered (issue 11, "Never render flagged imagery"): a restricted item
(:mod:`scrutineer.crowd.access`) shows evidence and a hotline referral, and no ``<img>`` is emitted for it,
to anyone. Another item's image appears only when a reviewer or maintainer asks for the fragment
``/flags/{id}/image``: an ``<img>`` of the original URL, blurred until the user ticks a box (CSS
only), loaded by the browser without a referrer; the server never fetches or stores it. A
contributor is shown no image and no URL of any sample (:mod:`scrutineer.crowd.access`: which samples are
restricted is not theirs to learn).

Text from a dataset or a person (captions, URLs, hosts, ids, notes) is shown through the
:func:`scrutineer.reports.html.visible` filter: escaped, with each bidi control shown as ``<U+202E>`` rather than obeyed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from scrutineer.core.errors import CrowdError, NotAllowed, NotFound, RateLimited
from scrutineer.crowd.access import (
    SESSION_COOKIE,
    Served,
    SignedIn,
    client_address,
    maintainers_only,
    shown_detail,
    shown_findings,
    shown_flags,
    signed_in,
)
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.api import (
    Before,
    FlagId,
    FlagIn,
    http_headers,
    http_status,
    record_flag,
)
from scrutineer.crowd.tables import STATUSES
from scrutineer.reports.html import ENV as REPORT_ENV
from scrutineer.reports.takedown import by_domain, located, manifest_csv, manifest_json

from scrutineer.reports.html import crowd_categories
#: The app's templates (``crowd/templates``), beside the report's (the ``/reports`` page includes
#: ``report_body.html.j2``), with the report environment's settings: autoescaped, strict.
ENV = REPORT_ENV.overlay(loader=jinja2.ChoiceLoader([jinja2.PackageLoader("scrutineer.crowd", "templates"), REPORT_ENV.loader]))
templates = Jinja2Templates(env=ENV)
#: Flags per queue page.
PAGE = 50

public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])


def page(request: Request, who: Account | None, template: str, /, status_code: int = 200, headers: dict | None = None, **context: Any) -> HTMLResponse:
    """Render ``crowd/templates/<template>.html.j2`` with ``context``, the signed-in account and the CSRF token."""
    return templates.TemplateResponse(
        request, f"{template}.html.j2", {"who": who, "csrftoken": request.scope["csrftoken"](), **context}, status_code=status_code, headers=headers
    )


def error_page(request: Request, status_code: int, message: str, headers: dict | None = None) -> HTMLResponse:
    """An error page (the message is shown as text)."""
    return page(request, None, "error", status_code, headers, status=status_code, message=message)


def _see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# log in and out


@public.get("/login")
def login_form(request: Request) -> HTMLResponse:
    """The log-in form (it sets the CSRF cookie its post needs)."""
    return page(request, None, "login", error=None, name="")


@public.post("/login")
def login(request: Request, s: Served, name: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
    """Check a name and password (argon2) and start a session (:meth:`scrutineer.crowd.accounts.Accounts.sign_in`):
    its cookie is HttpOnly, ``SameSite=Strict``, lasts ``crowd.session_hours`` and is ``Secure``
    over HTTPS (:mod:`scrutineer.crowd.app`). 401 for a wrong name or password alike; 429 (with
    ``Retry-After``) once the name or the address has failed too often."""
    try:
        session = s.crowd.sign_in(name, password, client_address(request))
    except RateLimited as e:
        return page(request, None, "login", http_status(e), http_headers(e), error=f"{str(e).capitalize()}.", name=name)
    if session is None:
        return page(request, None, "login", 401, error="Wrong name or password.", name=name)
    signed_in = _see("/queue")
    signed_in.set_cookie(SESSION_COOKIE, session, max_age=round(s.cfg.crowd.session_hours * 3600), httponly=True, samesite="strict")
    return signed_in


@router.post("/logout")
def logout(request: Request, s: Served) -> RedirectResponse:
    """End the session (its record: a copy of the cookie signs no one in either) and drop the cookie."""
    if session := request.cookies.get(SESSION_COOKIE):  # none when signed in by a token
        s.crowd.end_session(session)
    signed_out = _see("/login")
    signed_out.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return signed_out


# the queue


@router.get("/")
def home() -> RedirectResponse:
    """The queue is the home page."""
    return _see("/queue")


@router.get("/queue")
async def queue(
    request: Request,
    who: SignedIn,
    s: Served,
    status: Literal["", "pending", "confirmed", "rejected"] = "",
    category: str = "",
    domain: str = "",
    before: Before = None,
) -> HTMLResponse:
    """The flags ``who`` may see, newest first, filtered; an htmx request from the filter form or
    the paging link (``HX-Target: flags``) gets the table alone. The counts by status are for
    reviewers and maintainers: they count everyone's flags, so a contributor's flag that adds no
    new one would tell them someone flagged that sample under that category already."""
    filters = {"status": status, "category": category, "domain": domain}
    rows = shown_flags(s, who, s.crowd.flags(who, status=status or None, category=category or None, domain=domain or None, before=before, limit=PAGE))
    older = urlencode({k: v for k, v in filters.items() if v} | {"before": rows[-1]["id"]}) if len(rows) == PAGE else None
    if request.headers.get("hx-target") == "flags":
        return page(request, who, "flags_table", flags=rows, older=older)
    return page(request, who, "queue", flags=rows, older=older, filters=filters, statuses=STATUSES,
                categories=s.cfg.crowd.categories, counts=s.status_counts() if who.reviews else None)


# flagging


@router.get("/flags/new")
def flag_form(request: Request, who: SignedIn, s: Served) -> HTMLResponse:
    """The empty flag form, with the configured categories and their descriptions."""
    return page(request, who, "flag_form", categories=s.cfg.crowd.categories, values={"sample_id": "", "url": "", "category": "", "note": ""}, error=None)


@router.post("/flags")
async def flag_submit(
    request: Request,
    who: SignedIn,
    s: Served,
    sample_id: Annotated[str, Form()] = "",
    url: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    """Record the form's flag (as ``POST /api/flags`` does) and show it; the form again, with the
    error, on 404, 422 or 429."""
    values = {"sample_id": sample_id, "url": url, "category": category, "note": note}
    try:
        body = FlagIn(sample_id=sample_id.strip() or None, url=url.strip() or None, category=category, note=note)
        ids, _ = await record_flag(s, who, body, "form")
    except ValidationError as e:
        return page(request, who, "flag_form", 422, categories=s.cfg.crowd.categories, values=values,
                    error="; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors()))
    except CrowdError as e:
        return page(request, who, "flag_form", http_status(e), http_headers(e), categories=s.cfg.crowd.categories, values=values, error=str(e))
    return _see(f"/flags/{ids[0]}")


# one item


def _image_url(flag: dict[str, Any]) -> bool:
    """Whether an image may be offered for the flag: not restricted, and an http(s) URL."""
    return not flag["restricted"] and urlsplit(flag["url"] or "").scheme in ("http", "https")


@router.get("/flags/{flag_id}")
def item(request: Request, flag_id: FlagId, who: SignedIn, s: Served) -> HTMLResponse:
    """One flag as ``who`` may see it (:mod:`scrutineer.crowd.access`): its sample, detector evidence
    (reviewers and maintainers), reports, reviews, audit trail, and the decision form for
    reviewers who did not report it."""
    flag = shown_detail(s, who, s.crowd.flag_detail(who, flag_id))
    findings = shown_findings(s, who, flag["sample_id"])
    for f in findings or []:
        f["evidence_text"] = json.dumps(f["evidence"], indent=1, sort_keys=True, ensure_ascii=False) if f["evidence"] is not None else None
    decides = who.reviews and all(r["by"] != who.name for r in flag["reports"])
    return page(request, who, "item", flag=flag, findings=findings, category=s.cfg.crowd.categories.get(flag["category"]),
                image=_image_url(flag), decides=decides, reasons=s.cfg.crowd.reasons)


@router.get("/flags/{flag_id}/image")
def image(request: Request, flag_id: FlagId, who: SignedIn, s: Served) -> HTMLResponse:
    """The blurred ``<img>`` fragment of an unrestricted flag's original URL, for reviewers and maintainers.

    Raises:
        NotAllowed: for a contributor (whatever the flag: nothing is looked up) and on a
            restricted flag (never shown).
        NotFound: no such flag, or no http(s) URL.
    """
    if not who.reviews:
        raise NotAllowed("images are shown to reviewers and maintainers only")
    flag = shown_detail(s, who, s.crowd.flag_detail(who, flag_id))
    if flag["restricted"]:
        raise NotAllowed("this flag is restricted: its image is never shown")
    if not _image_url(flag):
        raise NotFound("this sample has no http(s) image URL")
    return page(request, who, "image", flag=flag)


@router.post("/flags/{flag_id}/review")
def review(
    flag_id: FlagId,
    who: SignedIn,
    s: Served,
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Record the decision form's decision (as ``POST /api/flags/{id}/review`` does) and show the item.

    Raises:
        NotAllowed: not a reviewer, or reported it.
        NotFound: no such flag.
        CrowdError: a reason the config does not list.
    """
    s.crowd.review(who, flag_id, decision, reason, note)
    return _see(f"/flags/{flag_id}")


# the maintainer's takedown view


def _takedown_rows(who: Account, s: Served) -> list[dict[str, Any]]:
    """The review snapshot's takedown rows (:func:`scrutineer.reports.takedown.located`), for a maintainer.

    Raises:
        NotAllowed: for contributors and reviewers.
        WorkspaceError: no review snapshot yet.
    """
    maintainers_only(who, "the takedown view")
    return located(s.snapshot.takedown())


@router.get("/takedown")
def takedown(request: Request, who: SignedIn, s: Served) -> HTMLResponse:
    """The latest run's restricted findings grouped by registrable domain and host, with links to
    the CSV and JSON (maintainers only; 403 for others)."""
    rows = _takedown_rows(who, s)
    return page(request, who, "takedown", domains=by_domain(rows), count=len(rows), dataset=s.cfg.dataset.name)


@router.get("/takedown.{kind}")
def takedown_file(kind: Literal["csv", "json"], who: SignedIn, s: Served) -> Response:
    """The takedown page's list as the file ``scrutineer takedown`` writes (:mod:`scrutineer.reports.takedown`),
    as a download named ``<dataset>.csv`` or ``.json`` (maintainers only; 403 for others)."""
    rows = _takedown_rows(who, s)
    name = s.cfg.dataset.name
    body, media = (manifest_csv(rows), "text/csv") if kind == "csv" else (manifest_json(name, s.snapshot.run_id(), rows), "application/json")
    return Response(body, media_type=f"{media}; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'})


# the watchdog report


@router.get("/reports")
def report(request: Request, who: SignedIn, s: Served) -> HTMLResponse:
    """The latest run's watchdog report (:func:`scrutineer.reports.data.report_data`, published with the
    review snapshot); restricted reasons as counts only. Reviewers and maintainers also see the
    crowd store's current flag counts: to a contributor, a count that their flag left unchanged
    would tell that someone flagged that sample under that category already."""
    data = s.snapshot.report()
    data["crowd"] = s.crowd.counts() if who.reviews else None
    hidden = None if who.reviews else "The crowd's flag counts are shown to reviewers and maintainers."
    return page(request, who, "reports", report=data, crowd_hidden=hidden, crowd_categories=crowd_categories(s.cfg))
