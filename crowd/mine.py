""""My flags" (issue 25, "Contributors"): the flags the signed-in account reported, whatever its
role, newest first, with each flag's status and the reviewers' decisions and reason codes; filters
by status and category as links; the same list as a CSV download (``/mine.csv``).

Each flag is shown as ``GET /api/flags/{id}`` shows it to the account
(:func:`scrutineer.crowd.flag_export.shown_details`, :mod:`scrutineer.crowd.access`'s rules): to a
contributor no URL, no reviewer's note, and a flag of a sensitive category pending with no review,
whatever happened. The status filter applies to the status shown, so it cannot tell a
contributor what became of such a flag either.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from scrutineer.crowd.access import Served, SignedIn, signed_in
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.api import Before
from scrutineer.crowd.flag_export import PAGE as READ
from scrutineer.crowd.flag_export import as_record, shown_details, write_export
from scrutineer.crowd.pages import filter_link, page
from scrutineer.crowd.tables import STATUSES

router = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])
#: Flags per page of "My flags".
PAGE = 50
Status = Annotated[Literal["", "pending", "confirmed", "rejected"], Query(description="Only flags shown with this status.")]
Category = Annotated[str, Query(max_length=64, description="Only flags of this category.")]


def mine_shown(s: Served, who: Account, status: str, category: str, before: int | None = None) -> Iterator[dict[str, Any]]:
    """The flags ``who`` reported, newest first, each as ``who`` may see it, those shown with
    ``status`` (all when empty) and of ``category`` (all when empty), read :data:`READ` at a time.

    Raises:
        WorkspaceError: no review snapshot yet (reviewers and maintainers).
    """
    while ids := s.crowd.reported_by(who, category=category or None, before=before, limit=READ):
        yield from (f for f in shown_details(s, who, ids) if not status or f["status"] == status)
        before = ids[-1]


def _link(filters: dict[str, str], **change: str) -> str:
    """``/mine`` with ``filters`` changed by ``change`` (empty values left out)."""
    return filter_link("/mine", filters | change)


@router.get("/mine")
def mine(request: Request, who: SignedIn, s: Served, status: Status = "", category: Category = "", before: Before = None) -> HTMLResponse:
    """A page of the account's own flags (module docstring); "Older flags" pages on."""
    filters = {"status": status, "category": category}
    rows = []
    for flag in mine_shown(s, who, status, category, before):
        rows.append(flag)
        if len(rows) > PAGE:
            break
    older = _link(filters, before=str(rows[PAGE - 1]["id"])) if len(rows) > PAGE else None
    anything = bool(rows) or bool(s.crowd.reported_by(who, limit=1))
    csv_link = "/mine.csv" + _link(filters).removeprefix("/mine")
    return page(request, who, "mine", flags=rows[:PAGE], older=older, filters=filters, statuses=STATUSES,
                categories=s.cfg.crowd.categories, link=_link, anything=anything, csv_link=csv_link)


@router.get("/mine.csv")
def mine_csv(who: SignedIn, s: Served, status: Status = "", category: Category = "") -> Response:
    """Every flag of ``/mine``'s list (its filters, no paging) as a CSV download: the columns of
    ``scrutineer flags export`` (:data:`scrutineer.crowd.flag_export.COLUMNS`), spreadsheet-safe."""
    body = io.StringIO()
    write_export((as_record(f) for f in mine_shown(s, who, status, category)), body, "csv")
    return Response(body.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="my-flags.csv"'})
