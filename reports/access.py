"""Who is asking and what they may see: the review app's sign-in, its flag rate limit and the
restricted-data rule (issue 11, "The app" and "Accounts and security").

- **Sign-in.** A request carries an API token (``Authorization: Bearer …``, looked up by its
  SHA-256 in the crowd store) or the signed session cookie the log-in form sets (Starlette's
  ``SessionMiddleware``). A request with an ``Authorization`` header is judged by that header
  alone. Anonymous requests raise :class:`NotSignedIn`, which the app answers with 401 (API) or a
  redirect to ``/login`` (pages).
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
#: Seconds an account looked up by token or session is remembered (accounts are only ever added).
ACCOUNT_SECONDS = 30.0
#: The session key holding the signed-in account's id.
SESSION_ACCOUNT = "account"


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
    #: :meth:`~scrutineer.crowd.CrowdStore.by_token` and :meth:`~scrutineer.crowd.CrowdStore.by_id`,
    #: remembered for :data:`ACCOUNT_SECONDS` (7% of the app's CPU under bench/serve_load.py).
    account_by_token: Callable[[str], Account | None]
    account_by_id: Callable[[int], Account | None]
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
        return cls(cfg, crowd, snapshot, remembered(COUNTS_SECONDS, 1, crowd.status_counts), remembered(ACCOUNT_SECONDS, 10_000, crowd.by_token),
                   remembered(ACCOUNT_SECONDS, 10_000, crowd.by_id), FlagWriter(crowd, snapshot, parse(cfg.crowd.rate_limit)))

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


async def signed_in(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Account:
    """The account making the request (a FastAPI dependency).

    Raises:
        NotSignedIn: no ``Authorization: Bearer`` token of an account and, when the request has no
            ``Authorization`` header at all, no session of an existing account.
    """
    s: Services = request.app.state.services
    if "authorization" in request.headers:
        account = s.account_by_token(credentials.credentials) if credentials else None
    else:
        account_id = request.session.get(SESSION_ACCOUNT)
        account = s.account_by_id(account_id) if isinstance(account_id, int) else None
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
