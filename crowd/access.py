"""Who is asking and what they may see: the review app's sign-in, its flag rate limit and the
restricted-data rule (issue 11, "The app" and "Accounts and security").

- **Sign-in.** A request carries an API token (``Authorization: Bearer …``) or the session
  cookie the log-in form sets (:data:`SESSION_COOKIE`, a random value naming a session record),
  each looked up by its SHA-256 in the crowd store on every request, never remembered: a log-out,
  a disabled account, a rotated token or a reset password refuses the next request in every app
  process (:mod:`scrutineer.crowd.accounts`). A request with an ``Authorization`` header is
  judged by that header alone. Anonymous requests raise
  :class:`~scrutineer.core.errors.NotSignedIn`, which the app answers with 401 (API) or a redirect
  to ``/login`` (pages). A Bearer token that matches nothing counts against the
  client's address (``crowd.failures_per_address``; 429 past it).
- **Rate limit.** Flags submitted through the API and the form count against
  ``crowd.rate_limit`` per account, in a moving window, counted from the crowd store
  (:meth:`scrutineer.crowd.flags.Flags.flag_many`), so several app processes share one count.
- **Restricted data.** A flag is restricted when its sample has a restricted finding in the
  review snapshot (a hash-bank match, a synced sensitive flag) or any flag of a sensitive category
  (``crowd.categories.<name>.sensitive``). Reviewers and maintainers
  (:attr:`scrutineer.crowd.accounts.Account.reviews`) see that, and its URL; nobody is ever shown its image.
- **What a contributor sees** depends on nothing they do not know already (issue 23, fault 4):
  the public row of the dataset they named, their own flag's category and the flag's progress.
  Whether a sample is restricted is not theirs to learn, so nothing that could tell them differs
  between a listed sample and an unlisted one: no URL and no image of any sample, no detector
  findings, no reviewer's note; ``restricted`` means only that their flag's category is
  sensitive. The outcome and the other reports of a flag of a sensitive category are restricted
  too: such a flag shows its contributor their own report alone, pending (:func:`shown_detail`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import cachetools
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse

from scrutineer.core.config import Config
from scrutineer.core.errors import NotAllowed, NotSignedIn
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.flag_writer import FlagWriter
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore

#: Seconds the queue's counts by status may lag behind the crowd store.
COUNTS_SECONDS = 2.0
#: The cookie holding a session's value (:meth:`scrutineer.crowd.accounts.Accounts.sign_in`).
SESSION_COOKIE = "scrutineer_session"


@dataclass
class Services:
    """What every request of one app process shares: the config, the crowd store, the review
    snapshot, the flag writer. Held in ``app.state.services``."""

    cfg: Config
    crowd: CrowdStore
    snapshot: Snapshot
    #: :meth:`scrutineer.crowd.reading.Reading.status_counts`, at most :data:`COUNTS_SECONDS` old:
    #: counting 100,000 flags takes ~7 ms, too much for every page of the queue.
    status_counts: Callable[[], dict[str, int]]
    #: Records the flags of the API and the form, grouped (group commit).
    flag: FlagWriter

    @classmethod
    def open(cls, cfg: Config) -> Services:
        """Open the stores of ``cfg``'s workspace.

        Raises:
            CrowdStoreError: the crowd store cannot be opened.
        """
        crowd = CrowdStore(cfg.crowd)

        def remembered(seconds: float, size: int, fn: Callable) -> Callable:
            return cachetools.cached(cachetools.TTLCache(size, seconds), lock=threading.Lock())(fn)

        snapshot = Snapshot(cfg.workspace)
        return cls(cfg, crowd, snapshot, remembered(COUNTS_SECONDS, 1, crowd.status_counts), FlagWriter(crowd, snapshot, parse(cfg.crowd.rate_limit)))

    def close(self) -> None:
        """Stop the flag writer, close both stores."""
        self.flag.close()
        self.crowd.close()
        self.snapshot.close()


async def services(request: Request) -> Services:
    """The app's :class:`Services` (a FastAPI dependency)."""
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="An API token from `scrutineer users add` (`Authorization: Bearer scr_…`).")


def client_address(request: Request) -> str:
    """The client's IP address: the connection's, or the one a proxy on loopback names in
    ``X-Forwarded-For`` (uvicorn trusts gunicorn's ``forwarded_allow_ips``, loopback by default)."""
    return request.client.host if request.client else ""


async def signed_in(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Account:
    """The account making the request (a FastAPI dependency).

    Raises:
        NotSignedIn: no ``Authorization: Bearer`` token of an enabled account and, when the request
            has no ``Authorization`` header at all, no live session of an enabled account.
        RateLimited: a Bearer token that matches nothing, from an address that has failed
            ``crowd.failures_per_address`` times.
    """
    s: Services = request.app.state.services
    if "authorization" in request.headers:
        account = s.crowd.by_token(credentials.credentials) if credentials else None
        if account is None and credentials:  # a write that may wait for the store's lock: off the event loop
            await anyio.to_thread.run_sync(s.crowd.failed_token, client_address(request))
    else:
        session = request.cookies.get(SESSION_COOKIE)
        account = s.crowd.by_session(session) if session else None
    if account is None:
        raise NotSignedIn("sign in: an API token (Authorization: Bearer …) or a session")
    return account


def session_account(request: Request) -> Account | None:
    """The enabled account whose live session the request's cookie names, or None: what an error
    page shows in its navigation (it is rendered outside the routes' :func:`signed_in`)."""
    session = request.cookies.get(SESSION_COOKIE)
    return request.app.state.services.crowd.by_session(session) if session else None


SignedIn = Annotated[Account, Depends(signed_in)]
Served = Annotated[Services, Depends(services)]


def maintainers_only(who: Account, what: str) -> None:
    """Refuse ``who`` unless a maintainer: the takedown view and the accounts page (``what``).

    Raises:
        NotAllowed: for contributors and reviewers.
    """
    if who.role != "maintainer":
        raise NotAllowed(f"{what} is for maintainers")


def shown_flags(s: Services, who: Account, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flags (dicts of the ``flags`` columns, ``reports`` and ``sensitive``, as
    :meth:`scrutineer.crowd.reading.Reading.flags` gives them) as ``who`` may see them (module
    docstring), each with ``restricted`` and without ``sensitive``.

    Reviewers and maintainers see them as they are, ``restricted`` from the review snapshot and
    the crowd store. A contributor sees :func:`_as_contributor`'s view, and ``reports`` 1 on a
    flag of a sensitive category (how many others flagged it is restricted).

    Raises:
        WorkspaceError: no review snapshot yet (reviewers and maintainers: a contributor's view reads none).
    """
    if not who.reviews:
        return [shown | {"reports": 1} if shown["restricted"] else shown for shown in (_as_contributor(s, r) for r in rows)]
    hidden = s.snapshot.restricted([r["sample_id"] for r in rows]) | {r["sample_id"] for r in rows if r["sensitive"]}
    return [_without_sensitive(r) | {"restricted": r["sample_id"] in hidden} for r in rows]


def shown_detail(s: Services, who: Account, detail: dict[str, Any]) -> dict[str, Any]:
    """A flag's detail (:meth:`scrutineer.crowd.reading.Reading.flag_detail`: a contributor's has only
    their own report) as ``who`` may see it: :func:`shown_flags`; and to a contributor no
    reviewer's note (a note may quote a restricted URL) and, on a flag of a sensitive category, no
    review and only their own entries of the audit trail (their report; the flag's creation if it
    was theirs).

    Raises:
        WorkspaceError: no review snapshot yet (reviewers and maintainers).
    """
    if who.reviews:
        [shown] = shown_flags(s, who, [detail])
        return shown
    shown = _as_contributor(s, detail)
    if shown["restricted"]:
        return shown | {"reviews": [], "audit": [a for a in detail["audit"] if a["actor"] == who.name]}
    return shown | {"reviews": [r | {"note": None} for r in detail["reviews"]]}


def shown_findings(s: Services, who: Account, sample_id: str) -> list[dict[str, Any]] | None:
    """The review snapshot's findings of a sample (:meth:`scrutineer.crowd.snapshot.Snapshot.findings`)
    for reviewers and maintainers; None for a contributor, without reading the snapshot (which
    detectors flagged a sample, a hash-bank match above all, is not theirs to learn).

    Raises:
        WorkspaceError: no review snapshot yet (reviewers and maintainers).
    """
    return s.snapshot.findings(sample_id) if who.reviews else None


def _without_sensitive(flag: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flag.items() if k != "sensitive"}


def _as_contributor(s: Services, flag: dict[str, Any]) -> dict[str, Any]:
    """A contributor's view of a flag they reported: no ``url`` (for any sample: whether one
    would be withheld is itself restricted), ``restricted`` when the flag's own category is
    sensitive (they chose it), and then ``status`` pending and ``updated_at`` its ``created_at``
    (its outcome is restricted: a confirmed sensitive flag is a restricted finding)."""
    sensitive = s.crowd.sensitive(flag["category"])
    shown = _without_sensitive(flag) | {"url": None, "restricted": sensitive}
    return shown | {"status": "pending", "updated_at": flag["created_at"]} if sensitive else shown
