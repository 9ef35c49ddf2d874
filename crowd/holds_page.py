"""The maintainers' holds page (the flood guard, :mod:`scrutineer.core.flood`): every bank entry of
the latest run held for matching too many samples, and every crowd category held for being
flagged too often, with forms to confirm or dismiss each (:mod:`scrutineer.crowd.holds`).

The held entries come from the review snapshot (its ``holds`` table), their decisions and the
category holds from the crowd store, so the page is current; the app writes the decision to the
crowd store only (with its audit entry), and ``sync`` (which every scan and release runs) copies
it into the findings store, where the takedown and releases read it. Holds are restricted facts:
contributors and reviewers get 403.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from scrutineer.core.errors import NotFound
from scrutineer.core.flood import ENTRY_PREFIX
from scrutineer.crowd.access import Served, SignedIn, maintainers_only, signed_in
from scrutineer.crowd.holds import CATEGORY_PREFIX, with_decisions
from scrutineer.crowd.pages import page

router = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])


@router.get("/holds")
def holds(request: Request, who: SignedIn, s: Served) -> HTMLResponse:
    """The held entries and categories, and their forms (maintainers only).

    Raises:
        NotAllowed: for contributors and reviewers.
    """
    maintainers_only(who, "the holds page")
    entries = with_decisions(s.snapshot.holds(), s.crowd.entry_decisions())
    return page(request, who, "holds", entries=entries, categories=s.crowd.category_holds(), entry_prefix=ENTRY_PREFIX,
                crowd_limit=s.cfg.crowd.flood)


@router.post("/holds/{hold}")
def decide(request: Request, hold: str, who: SignedIn, s: Served, decision: Annotated[Literal["confirm", "dismiss"], Form()],
           note: Annotated[str, Form()] = "") -> Response:
    """Confirm or dismiss a held entry (by its hold id) or category (``crowd-<id>``), then back to the page.

    Raises:
        NotAllowed: for contributors and reviewers.
        NotFound: no such hold in the latest run or the crowd store.
        CrowdError: decided already.
    """
    maintainers_only(who, "the holds page")
    if hold.startswith(CATEGORY_PREFIX):
        s.crowd.decide_category(who, hold, decision, note)
    else:
        found = next((h for h in s.snapshot.holds() if h["hold_id"] == hold), None)
        if found is None:
            raise NotFound(f"no held entry {hold!r} in the latest run")
        s.crowd.decide_entry(who, found, decision, note)
    return RedirectResponse("/holds", status_code=303)
