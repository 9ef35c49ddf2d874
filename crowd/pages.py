"""The review app's HTML pages (issue 11, "The app"): log in, the review queue, one item with its
decision form, the image fragment, the watchdog report and the maintainer's takedown view (the
search, the sample pages and the flag form: :mod:`scrutineer.crowd.browse`).

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

import contextlib
import json
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from scrutineer.core.errors import (
    ClaimHeld,
    CrowdError,
    NotAllowed,
    NotFound,
    NotPending,
    RateLimited,
)
from scrutineer.crowd.access import (
    SESSION_COOKIE,
    Served,
    SignedIn,
    client_address,
    maintainers_only,
    session_account,
    shown_detail,
    shown_findings,
    shown_flags,
    signed_in,
)
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.api import (
    MAX_ID,
    NOTE_CHARS,
    After,
    Before,
    FlagId,
    http_headers,
    http_status,
)
from scrutineer.crowd.tables import DUPLICATE_REASON, STATUSES
from scrutineer.reports.evidence import audit_sentence, evidence_sentence
from scrutineer.reports.html import ENV as REPORT_ENV
from scrutineer.reports.html import crowd_categories
from scrutineer.reports.takedown import by_domain, located, manifest_csv, manifest_json

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
    """An error page (the message is shown as text), with the navigation of the account whose
    session the request carries, so a 403 or 404 is no dead end (none on a 5xx: the crowd store
    it reads may be what failed)."""
    who = session_account(request) if status_code < 500 else None
    return page(request, who, "error", status_code, headers, status=status_code, message=message)


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
    signed_in = _see("/")
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
def home(who: SignedIn) -> RedirectResponse:
    """Reviewers and maintainers start at the queue, contributors at the dataset's search."""
    return _see("/queue" if who.reviews else "/samples")


#: The queue's filters and their defaults (a default is left out of the queue's links).
QUEUE_DEFAULTS = {"status": "pending", "order": "oldest", "category": "", "domain": ""}


def filter_link(path: str, params: dict[str, str | int], defaults: dict[str, str | int] | None = None) -> str:
    """``path`` with ``params`` as its query, leaving out empty values and those equal to their
    ``defaults``: the links of the queue, the search and "My flags", whose filters are links
    (saved filters are URLs)."""
    query = {k: v for k, v in params.items() if v not in ("", None) and (defaults or {}).get(k) != v}
    return f"{path}?{urlencode(query)}" if query else path


def _queue_url(filters: dict[str, str], **change: str | int) -> str:
    """The queue's URL with ``filters`` changed by ``change`` (defaults left out)."""
    return filter_link("/queue", filters | change, QUEUE_DEFAULTS)


@router.get("/queue")
async def queue(
    request: Request,
    who: SignedIn,
    s: Served,
    status: Literal["", "any", "pending", "confirmed", "rejected"] = "pending",
    order: Literal["oldest", "newest"] = "oldest",
    category: str = "",
    domain: str = "",
    before: Before = None,
    after: After = None,
    done: bool = False,
) -> Response:
    """The review queue: pending flags, oldest first, by default; every other status, the newest
    first, a category and a registrable domain are filters in the URL (bookmarkable), paged by id
    (``after`` oldest first, ``before`` newest first). An htmx request from the paging link
    (``HX-Target: flags``) gets the table alone. Reviewers and maintainers only: a contributor
    goes to their own flags (``/mine``). The counts by status and the decisions today count
    everyone's flags; ``done`` says nothing is left to take (:func:`next_flag`)."""
    if not who.reviews:
        return _see("/mine")
    filters = {"status": status or "any", "order": order, "category": category, "domain": domain}
    oldest = order == "oldest"
    rows = shown_flags(s, who, s.crowd.flags(who, status=None if filters["status"] == "any" else status, category=category or None,
                                             domain=domain or None, before=before, after=after, limit=PAGE, oldest=oldest))
    more = _queue_url(filters, **{"after" if oldest else "before": rows[-1]["id"]}) if len(rows) == PAGE else None
    if request.headers.get("hx-target") == "flags":
        return page(request, who, "flags_table", flags=rows, more=more)
    return _queue_page(request, who, s, filters, rows, more, done=done)


def _queue_page(request: Request, who: Account, s: Served, filters: dict[str, str], rows: list[dict], more: str | None,
                done: bool = False, bulk: list[tuple[int, str]] | None = None) -> HTMLResponse:
    counts = s.status_counts()
    mine, everyone = s.crowd.decided_today(who)
    removable = [(f"{k}: {v}", _queue_url(filters, **{k: QUEUE_DEFAULTS[k] if k in ("status", "order") else ""}))
                 for k, v in filters.items() if v != QUEUE_DEFAULTS[k]]
    return page(request, who, "queue", flags=rows, more=more, filters=filters, statuses=STATUSES, counts=counts, url=_queue_url,
                categories=s.cfg.crowd.categories, removable=removable, decided={"mine": mine, "everyone": everyone}, done=done,
                bulk=bulk, reasons=[r for r in s.cfg.crowd.reasons.reject if r != DUPLICATE_REASON], note_chars=NOTE_CHARS)


@router.get("/queue/next")
def next_flag(who: SignedIn, s: Served, skip: Before = None) -> RedirectResponse:
    """To the flag ``who`` should take next (:meth:`scrutineer.crowd.reading.Reading.next_pending`:
    the oldest pending one nobody else holds, that they neither reported nor decided; after
    ``skip``, when skipping it), or to the queue saying nothing is left.

    Raises:
        NotAllowed: for contributors.
    """
    if not who.reviews:
        raise NotAllowed("the queue is for reviewers and maintainers")
    flag_id = s.crowd.next_pending(who, skip)
    return _see(f"/flags/{flag_id}" if flag_id else "/queue?done=true")


@router.post("/queue/reject")
def bulk_reject(
    request: Request,
    who: SignedIn,
    s: Served,
    ids: Annotated[list[int] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Reject each selected pending flag with one reason and note, as ``who``'s decision, and show
    the queue with what happened to each: rejected, or skipped (reported by them, held by another
    reviewer's claim, no longer pending, no such flag).

    Raises:
        NotAllowed: for contributors.
        CrowdError: no flag selected, a reason the config does not list for reject (or
            ``duplicate_flag``, which names one flag), a note too long.
    """
    if not who.reviews:
        raise NotAllowed("only reviewers and maintainers decide flags")
    if not ids:
        raise CrowdError("select the flags to reject")
    if reason == DUPLICATE_REASON or reason not in s.cfg.crowd.reasons.reject:
        raise CrowdError(f"a bulk reject's reason is one of {', '.join(r for r in s.cfg.crowd.reasons.reject if r != DUPLICATE_REASON)}")
    if len(note) > NOTE_CHARS:
        raise CrowdError(f"the note has {len(note):,} characters: at most {NOTE_CHARS:,}")
    outcome = []
    for flag_id in dict.fromkeys(ids):
        try:
            s.crowd.review(who, flag_id, "reject", reason, note, pending_only=True)
            outcome.append((flag_id, "rejected"))
        except NotAllowed:
            outcome.append((flag_id, "skipped: you reported it"))
        except ClaimHeld as e:
            outcome.append((flag_id, f"skipped: held by {e.by} until {e.until:%H:%M} UTC"))
        except NotPending:
            outcome.append((flag_id, "skipped: no longer pending"))
        except NotFound:
            outcome.append((flag_id, "skipped: no such flag"))
    filters = dict(QUEUE_DEFAULTS)
    rows = shown_flags(s, who, s.crowd.flags(who, status="pending", limit=PAGE, oldest=True))
    more = _queue_url(filters, after=rows[-1]["id"]) if len(rows) == PAGE else None
    return _queue_page(request, who, s, filters, rows, more, bulk=outcome)


# one item


def _image_url(flag: dict[str, Any]) -> bool:
    """Whether an image may be offered for the flag: not restricted, and an http(s) URL."""
    return not flag["restricted"] and urlsplit(flag["url"] or "").scheme in ("http", "https")


@router.get("/flags/{flag_id}")
def item(request: Request, flag_id: FlagId, who: SignedIn, s: Served) -> HTMLResponse:
    """One flag as ``who`` may see it (:mod:`scrutineer.crowd.access`): its sample, detector evidence
    as sentences (reviewers and maintainers), reports, reviews, audit trail, and the decision form for
    reviewers who did not report it. Opening a pending flag one may decide claims it
    (:meth:`scrutineer.crowd.flags.Flags.claim`); a claim another reviewer holds is shown instead."""
    return _item_page(request, who, s, flag_id)


def _item_page(request: Request, who: Account, s: Served, flag_id: int, status_code: int = 200, error: str | None = None,
               form: dict[str, str] | None = None) -> HTMLResponse:
    """The item page, with the decision form's ``error`` beside it and its values ``form`` kept."""
    detail = s.crowd.flag_detail(who, flag_id)
    decides = who.reviews and all(r["by"] != who.name for r in detail["reports"])
    if decides and detail["status"] == "pending":
        with contextlib.suppress(ClaimHeld):  # the detail names the holder already
            detail["claim"] = {"by": who.name, "until": s.crowd.claim(who, flag_id)}
    flag = shown_detail(s, who, detail)
    findings = shown_findings(s, who, flag["sample_id"])
    # the licence, the key fact for a copyright flag; a contributor's pages read no snapshot (it is on the sample's page)
    licence = [found.license for [found] in s.snapshot.samples([("sample_id", flag["sample_id"])]) if found] if who.reviews else None
    for f in findings or []:
        f["sentence"] = evidence_sentence(f["reason"], f["evidence"])
        f["evidence_text"] = json.dumps(f["evidence"], indent=1, sort_keys=True, ensure_ascii=False) if f["evidence"] is not None else None
    for a in flag["audit"]:
        a["sentence"] = audit_sentence(a["detail"])
    form = {"decision": "", "reason": "", "note": "", "duplicate_of": ""} | (form or {})
    return page(request, who, "item", status_code, flag=flag, findings=findings, category=s.cfg.crowd.categories.get(flag["category"]),
                image=_image_url(flag), decides=decides, reasons=s.cfg.crowd.reasons, duplicate_reason=DUPLICATE_REASON, error=error,
                form=form, note_chars=NOTE_CHARS, licence=licence)


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
    request: Request,
    flag_id: FlagId,
    who: SignedIn,
    s: Served,
    decision: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    duplicate_of: Annotated[str, Form()] = "",
    then: Annotated[Literal["next", "stay"], Form()] = "next",
) -> Response:
    """Record the decision form's decision (as ``POST /api/flags/{id}/review`` does), then go to the
    next flag (``then=next``, "Decide and next", :func:`next_flag`) or back to the item. Invalid
    input (no decision, no reason or one of the other decision, a note too long, a bad "duplicate
    of") is 422, and a claim another reviewer holds 409: the item page again, the message beside
    the form, the choices and the note kept.

    Raises:
        NotAllowed: not a reviewer, or reported it.
        NotFound: no such flag.
    """
    form = {"decision": decision, "reason": reason, "note": note, "duplicate_of": duplicate_of}
    try:
        s.crowd.review(who, flag_id, *_decision(decision, reason, note, duplicate_of))
    except (NotAllowed, NotFound):
        raise
    except CrowdError as e:
        if http_status(e) not in (409, 422):
            raise
        return _item_page(request, who, s, flag_id, http_status(e), f"{str(e)[:1].upper()}{str(e)[1:]}.", form)
    return _see("/queue/next" if then == "next" else f"/flags/{flag_id}")


def _decision(decision: str, reason: str, note: str, duplicate_of: str) -> tuple[str, str, str, int | None]:
    """The decision form's fields as :meth:`scrutineer.crowd.flags.Flags.review` takes them.

    Raises:
        CrowdError: no decision or reason, a note over :data:`~scrutineer.crowd.api.NOTE_CHARS`, a
            "duplicate of" that is no flag number.
    """
    if not decision:
        raise CrowdError("choose a decision: confirm or reject")
    if not reason:
        raise CrowdError(f"choose a reason to {decision}")
    if len(note) > NOTE_CHARS:
        raise CrowdError(f"the note has {len(note):,} characters: at most {NOTE_CHARS:,}")
    number = duplicate_of.strip().removeprefix("#")
    if number and not (number.isascii() and number.isdigit() and 0 < int(number) <= MAX_ID):
        raise CrowdError("duplicate of: give the other flag's number, such as 12")
    return decision, reason, note, int(number) if number else None


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
