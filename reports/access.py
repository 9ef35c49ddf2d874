"""Who is asking and what they may see: the review app's sign-in, its flag rate limit and the
restricted-data rule (issue 11, "The app" and "Accounts and security").

- **Sign-in.** A request carries an API token (``Authorization: Bearer …``) or the session
  cookie the log-in form sets (:data:`SESSION_COOKIE`, a random value naming a session record),
  each looked up by its SHA-256 in the crowd store on every request, never remembered: a log-out,
  a disabled account, a rotated token or a reset password refuses the next request in every app
  process (:mod:`scrutineer.crowd`). A request with an ``Authorization`` header is judged by that
  header alone. Anonymous requests raise :class:`NotSignedIn`, which the app answers with 401 (API)
  or a redirect to ``/login`` (pages). A Bearer token that matches nothing counts against the
  client's address (``crowd.failures_per_address``; 429 past it).
- **Rate limit.** Flags submitted through the API and the form count against
  ``crowd.rate_limit`` per account, in a moving window, counted from the crowd store
  (:meth:`scrutineer.crowd.CrowdStore.flag_many`), so several app processes share one count.
- **Restricted data.** A flag is restricted when its sample has a restricted finding in the
  review snapshot (a hash-bank match, a synced sensitive flag) or any flag of a sensitive category
  (``crowd.categories.<name>.sensitive``). Its URL goes only to reviewers and maintainers
  (:attr:`scrutineer.crowd.Account.reviews`), and nobody is ever shown its image.
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

from reports.flag_writer import FlagWriter
from scrutineer.config import Config
from scrutineer.crowd import Account, CrowdStore
from scrutineer.snapshot import Snapshot

#: Seconds the queue's counts by status may lag behind the crowd store.
COUNTS_SECONDS = 2.0
#: The cookie holding a session's value (:meth:`scrutineer.crowd.CrowdStore.sign_in`).
SESSION_COOKIE = "scrutineer_session"


@dataclass
class Services:
    """What every request of one app process shares: the config, the crowd store, the review
    snapshot, the flag writer. Held in ``app.state.services``."""

    cfg: Config
    crowd: CrowdStore
    snapshot: Snapshot
    #: :meth:`scrutineer.crowd.CrowdStore.status_counts`, at most :data:`COUNTS_SECONDS` old:
    #: counting 100,000 flags takes ~7 ms, too much for every page of the queue.
    status_counts: Callable[[], dict[str, int]]
    #: Records the flags of the API and the form, grouped (group commit).
    flag: FlagWriter

    @classmethod
    def open(cls, cfg: Config) -> Services:
        """Open the stores of ``cfg``'s workspace.

        Raises:
            CrowdError: the crowd store cannot be opened (status 500).
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


class NotSignedIn(Exception):
    """The request carries no valid token or session."""


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
        raise NotSignedIn()
    return account


SignedIn = Annotated[Account, Depends(signed_in)]
Served = Annotated[Services, Depends(services)]


def shown_flags(s: Services, who: Account, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flags (dicts with ``sample_id``, ``url`` and ``sensitive``, as
    :meth:`scrutineer.crowd.CrowdStore.flags` gives them) as ``who`` may see them: each gains
    ``restricted`` (see the module docstring), and a restricted one's ``url`` is None unless
    ``who`` reviews.

    Raises:
        WorkspaceError: no review snapshot yet.
    """
    hidden = s.snapshot.restricted([r["sample_id"] for r in rows]) | {r["sample_id"] for r in rows if r["sensitive"]}
    return [r | {"restricted": r["sample_id"] in hidden, "url": None if r["sample_id"] in hidden and not who.reviews else r["url"]} for r in rows]


def shown_detail(s: Services, who: Account, detail: dict[str, Any]) -> dict[str, Any]:
    """A flag's detail (:meth:`scrutineer.crowd.CrowdStore.flag_detail`) as ``who`` may see it:
    :func:`shown_flags`, and on a restricted flag a contributor sees no reviewer's note (a note
    may quote the URL).

    Raises:
        WorkspaceError: no review snapshot yet.
    """
    [shown] = shown_flags(s, who, [detail])
    if shown["restricted"] and not who.reviews:
        shown["reviews"] = [r | {"note": None} for r in shown["reviews"]]
    return shown


def shown_findings(who: Account, restricted: bool, findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A sample's findings (:meth:`scrutineer.snapshot.Snapshot.findings`) as ``who`` may see
    them: on a restricted sample a contributor sees detector and reason, no evidence (evidence
    such as a redirect's ``final_url`` may carry the URL)."""
    return findings if who.reviews or not restricted else [f | {"evidence": None} for f in findings]
