"""The maintainers' accounts page (issue 23, fault 5): every account with its role, state, last
log-in and how many tokens and sessions it holds, and forms to disable or enable it, rotate its API
token or reset its password, the same changes as ``scrutineer users`` (:meth:`scrutineer.crowd.accounts.Accounts.change_account`).

A change takes effect at once in every app process, and goes to the audit log under the
maintainer's name. A new token or password is shown once, on the page that answers the form (the
app sends ``Cache-Control: no-store``); only its hash is stored. A maintainer cannot disable their
own account here (nobody would be left to enable it in the app).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from scrutineer.core.errors import CrowdError, NotFound
from scrutineer.crowd.access import (
    Served,
    Services,
    SignedIn,
    maintainers_only,
    signed_in,
)
from scrutineer.crowd.accounts import Account, AccountChange
from scrutineer.crowd.pages import page

router = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])


def _page(request: Request, who: Account, s: Services, shown: dict | None = None) -> HTMLResponse:
    return page(request, who, "accounts", accounts=s.crowd.list_accounts(), shown=shown)


@router.get("/accounts")
def accounts(request: Request, who: SignedIn, s: Served) -> HTMLResponse:
    """Every account and its forms (maintainers only).

    Raises:
        NotAllowed: for contributors and reviewers.
    """
    maintainers_only(who, "the accounts page")
    return _page(request, who, s)


@router.post("/accounts/{account_id}/{change}")
def change(request: Request, account_id: int, change: AccountChange, who: SignedIn, s: Served) -> Response:
    """Make ``change`` to the account (maintainers only): back to the page for ``disable`` and
    ``enable``; for ``rotate-token`` and ``reset-password`` the page with the new secret, once.

    Raises:
        NotAllowed: for contributors and reviewers.
        NotFound: no such account.
        CrowdError: a maintainer disabling their own account.
    """
    maintainers_only(who, "the accounts page")
    target = s.crowd.by_id(account_id)
    if target is None:
        raise NotFound(f"no account {account_id}")
    if change == "disable" and target.id == who.id:
        raise CrowdError("you cannot disable your own account here: another maintainer, or `scrutineer users disable`, can")
    secret = s.crowd.change_account(target.name, change, who.name)
    if secret is None:
        return RedirectResponse("/accounts", status_code=303)
    return _page(request, who, s, {"name": target.name, "what": "API token" if change == "rotate-token" else "password", "secret": secret})
