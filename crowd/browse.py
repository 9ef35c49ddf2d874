"""The dataset browser (issue 25, "A dataset browser"): search the latest scan's samples, each
sample's permalink page, and the flag form with its submit.

- ``GET /samples?q=&reason=&domain=&license=&shard=&page=``: the samples whose caption has every
  word of ``q`` (:mod:`scrutineer.crowd.search`), filtered, in shard and row order,
  :data:`~scrutineer.crowd.search.PAGE` a page; no words and no filter browses the whole scan.
  Each filter value is a link, with its number of samples in the scan.
- ``GET /samples/{sample_id}``: a sample's permalink. An id may hold any character: links
  percent-encode every one that is not unreserved (a ``/`` as ``%2F``, a ``%`` as ``%25``), and the
  server decodes the path before routing, so the id comes back as it was (tests/reports/test_browse.py).
- ``GET /flags/new`` and ``POST /flags``: the flag form (by sample id or URL), and its submit,
  which says what it recorded: every flag it made (a URL may name several samples), and "already
  flagged by you" where it made none.

The restricted-data rule (:mod:`scrutineer.crowd.access`) holds on every page here: a contributor
is shown no URL of any sample, and no restricted reason: such a reason is not among the filters
they are offered, and one they name in ``reason=`` matches nothing, exactly as a reason no sample
has. A sample with a restricted finding is listed, counted and shown to them as any other, its
public findings alone (those whose reason no restricted finding has).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from scrutineer.core.errors import CrowdError, NotFound
from scrutineer.crowd.access import Served, Services, SignedIn, shown_flags, signed_in
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.api import FlagIn, http_headers, http_status
from scrutineer.crowd.flag_writer import Submission
from scrutineer.crowd.flags import Sample
from scrutineer.crowd.pages import filter_link, page
from scrutineer.crowd.search import COUNT_CAP, KINDS, PAGE, Search, SearchIndex
from scrutineer.crowd.snapshot import SampleKey
from scrutineer.reports.html import crowd_categories
from scrutineer.samples.domains import host_and_domain
from scrutineer.samples.licenses import to_spdx

router = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])
#: Values listed per filter beside the results (the most common first).
FACETS = 12
#: How long a filter value or query may be (untrusted input is bounded: STYLE.md 14).
MAX_TEXT = 500
Text = Annotated[str, Query(max_length=MAX_TEXT)]
#: At most this many flags of one submit are listed after it (a URL may name many samples).
RECORDED = 100


def sample_url(sample_id: str) -> str:
    """A sample's permalink, every character of its id but the unreserved ones percent-encoded;
    the ids ``.`` and ``..`` by the query (``/samples/?id=..``), as browsers resolve a dot segment
    in a path (even written ``%2E``: the WHATWG URL Standard)."""
    if sample_id in (".", ".."):
        return "/samples/?id=" + quote(sample_id, safe="")
    return "/samples/" + quote(sample_id, safe="")


def search_url(search: Search, **change: str | int) -> str:
    """``/samples`` with ``search``'s parameters, ``change`` applied (an empty value drops one; page 1 is left out)."""
    return filter_link("/samples", {"q": search.q, **search.filters(), "page": search.page} | change, {"page": 1})


def _index(s: Services) -> SearchIndex:
    return SearchIndex(s.cfg.workspace)


def _row(sample: Sample) -> dict[str, Any]:
    """A search result: the sample's id, caption, shard and row, licence as given and its SPDX id,
    and registrable domain (no URL: results look the same to every role)."""
    spdx = to_spdx(sample.license)
    return {"sample_id": sample.sample_id, "caption": sample.caption, "shard_id": sample.shard_id, "row_index": sample.row_index,
            "license": sample.license, "spdx": spdx, "domain": host_and_domain(sample.url or "")[1] or None}


@router.get("/samples")
def samples(
    request: Request,
    who: SignedIn,
    s: Served,
    q: Text = "",
    reason: Text = "",
    domain: Text = "",
    license: Text = "",
    shard: Text = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=COUNT_CAP // PAGE)] = 1,
) -> HTMLResponse:
    """Search and browse the latest scan's samples (module docstring)."""
    index = _index(s)
    search = Search(q.strip(), reason, domain, license, shard, page_number)
    public = None if who.reviews else index.public_reasons()
    results = index.search(search, public)
    facets = {kind: index.facets(kind, FACETS, public=not who.reviews) for kind in KINDS}
    found = {sample.sample_id: sample for [sample] in filter(None, s.snapshot.samples([("sample_id", i) for i in results.hits]))}
    rows = [_row(found[i]) for i in results.hits if i in found]  # an index older than the snapshot may name a sample it lacks
    return page(request, who, "samples", search=search, results=results, rows=rows, facets=facets,
                search_url=search_url, sample_url=sample_url, crowd_categories=crowd_categories(s.cfg))


@router.get("/samples/{sample_id:path}")
def sample(request: Request, sample_id: str, who: SignedIn, s: Served, id: Text = "") -> HTMLResponse:
    """One sample of the latest scan (``/samples/?id=`` names it by the query: :func:`sample_url`):
    caption, host and registrable domain, licence (as given and its SPDX id), shard and row, its
    public findings (reviewers and maintainers: every finding, the restricted ones marked, and its
    URL), its flags (a contributor's own; everyone's for reviewers and maintainers) and the flag form.

    Raises:
        NotFound: no such sample in the latest scan.
        WorkspaceError: no review snapshot or search index yet.
    """
    sample_id = sample_id or id  # /samples/?id=.. (sample_url)
    [found] = s.snapshot.samples([("sample_id", sample_id)])
    if not found:
        raise NotFound("no sample with this id in the latest scan")
    [shown] = found
    host, domain = host_and_domain(shown.url or "")
    findings = s.snapshot.findings(sample_id)
    if not who.reviews:
        public = _index(s).public_reasons()
        findings = [f for f in findings if not f["restricted"] and f["reason"] in public]
    flags = shown_flags(s, who, s.crowd.flags(who, sample_id=sample_id, limit=100))
    return page(request, who, "sample", sample=shown, host=host, domain=domain, spdx=to_spdx(shown.license),
                url=shown.url if who.reviews else None, findings=findings, flags=flags,
                categories=s.cfg.crowd.categories, crowd_categories=crowd_categories(s.cfg), sample_url=sample_url,
                search_url=search_url, search=Search())


# the flag form


def _form(request: Request, who: Account, s: Services, values: dict[str, str], status_code: int = 200, headers: dict | None = None,
          error: str | None = None, recorded: list[dict[str, Any]] | None = None, more: int = 0) -> HTMLResponse:
    return page(request, who, "flag_form", status_code, headers, categories=s.cfg.crowd.categories, values=values, error=error,
                recorded=recorded, more=more, sample_url=sample_url)


@router.get("/flags/new")
def flag_form(
    request: Request,
    who: SignedIn,
    s: Served,
    sample_id: Text = "",
    recorded: Annotated[list[int] | None, Query(max_length=RECORDED)] = None,
    already: Annotated[list[int] | None, Query(max_length=RECORDED)] = None,
    more: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """The flag form, with the configured categories and their descriptions (``sample_id``: filled
    in). After a submit (:func:`flag_submit`) it first says what was recorded: the flags ``recorded``
    (new reports) and ``already`` (flagged by this account before), each with its sample, and
    ``more`` flags beyond those listed; flags of others are left out."""
    listed = []
    recorded, already = recorded or [], already or []
    for flag_id, new in [(i, True) for i in recorded] + [(i, False) for i in already]:
        with contextlib.suppress(NotFound):
            detail = s.crowd.flag_detail(who, flag_id)
            listed.append({"id": flag_id, "new": new, "sample_id": detail["sample_id"], "caption": detail["caption"]})
    return _form(request, who, s, {"sample_id": sample_id, "url": "", "category": "", "note": ""},
                 recorded=listed if recorded or already else None, more=more)


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
    """Record the form's flag (as ``POST /api/flags`` does) and redirect to the form, which says
    what was recorded (:func:`flag_form`: every flag made or found, :data:`RECORDED` at most listed);
    the form again, with the error and the values kept, on 404, 422 or 429."""
    values = {"sample_id": sample_id, "url": url, "category": category, "note": note}
    try:
        body = FlagIn(sample_id=sample_id.strip() or None, url=url.strip() or None, category=category, note=note)
        key: SampleKey = ("sample_id", body.sample_id) if body.sample_id else ("url", body.url or "")
        made = await s.flag(Submission(who, key, body.category, body.note, "form"))
    except ValidationError as e:
        return _form(request, who, s, values, 422, error="; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors()))
    except CrowdError as e:
        return _form(request, who, s, values, http_status(e), http_headers(e), error=str(e))
    shown = made[:RECORDED]
    query = [("recorded" if new else "already", flag_id) for flag_id, new in shown] + ([("more", len(made) - len(shown))] if len(made) > len(shown) else [])
    return RedirectResponse("/flags/new?" + urlencode(query), status_code=303)
