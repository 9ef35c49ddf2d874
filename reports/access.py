"""Who is asking and what they may see: the review app's sign-in, its flag rate limit and the
restricted-data rule (issue 11, "The app" and "Accounts and security").

- **Sign-in.** A request carries an API token (``Authorization: Bearer …``, looked up by its
  SHA-256 in the crowd store) or the signed session cookie the log-in form sets (Starlette's
  ``SessionMiddleware``). A request with an ``Authorization`` header is judged by that header
  alone. Anonymous requests raise :class:`NotSignedIn`, which the app answers with 401 (API) or a
  redirect to ``/login`` (pages).
- **Rate limit.** Flag submissions (API and form) count against ``crowd.rate_limit`` per account,
  in a moving window (the ``limits`` library, in this process's memory: several app processes
  each count their own).
- **Restricted data.** A flag is restricted when its sample has a restricted finding in the
  review snapshot (a hash-bank match, a synced sensitive flag) or any flag of a sensitive category
  (``crowd.categories.<name>.sensitive``). Its URL goes only to reviewers and maintainers
  (:attr:`scrutineer.crowd.Account.reviews`), and nobody is ever shown its image.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from scrutineer.config import Config
from scrutineer.crowd import Account, CrowdError, CrowdStore
from scrutineer.snapshot import Snapshot

#: The session key holding the signed-in account's id.
SESSION_ACCOUNT = "account"


@dataclass
class Services:
    """What every request of one app shares: the config, the crowd store, the review snapshot and
    the flag rate limiter. Held in ``app.state.services``."""

    cfg: Config
    crowd: CrowdStore
    snapshot: Snapshot
    limiter: MovingWindowRateLimiter
    rate: RateLimitItem

    @classmethod
    def open(cls, cfg: Config) -> Services:
        """Open the stores of ``cfg``'s workspace.

        Raises:
            CrowdError: the crowd store cannot be opened (status 500).
        """
        return cls(cfg, CrowdStore(cfg.crowd), Snapshot(cfg.workspace), MovingWindowRateLimiter(MemoryStorage()), parse(cfg.crowd.rate_limit))

    def close(self) -> None:
        """Close both stores."""
        self.crowd.close()
        self.snapshot.close()


class NotSignedIn(Exception):
    """The request carries no valid token or session."""


class RateLimited(CrowdError):
    """An account submitted more flags than ``crowd.rate_limit`` allows; ``retry_after`` is in
    whole seconds (the ``Retry-After`` header)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many flags: try again in {retry_after} s", 429)
        self.retry_after = retry_after


def services(request: Request) -> Services:
    """The app's :class:`Services` (a FastAPI dependency)."""
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="An API token from `scrutineer users add` (`Authorization: Bearer scr_…`).")


def signed_in(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Account:
    """The account making the request (a FastAPI dependency).

    Raises:
        NotSignedIn: no ``Authorization: Bearer`` token of an account and, when the request has no
            ``Authorization`` header at all, no session of an existing account.
    """
    crowd = services(request).crowd
    if "authorization" in request.headers:
        account = crowd.by_token(credentials.credentials) if credentials else None
    else:
        account_id = request.session.get(SESSION_ACCOUNT)
        account = crowd.by_id(account_id) if isinstance(account_id, int) else None
    if account is None:
        raise NotSignedIn()
    return account


SignedIn = Annotated[Account, Depends(signed_in)]
Served = Annotated[Services, Depends(services)]


def count_flag_submission(s: Services, who: Account) -> None:
    """Count one flag submission of ``who`` against ``crowd.rate_limit``.

    Raises:
        RateLimited: the limit is used up.
    """
    if not s.limiter.hit(s.rate, str(who.id)):
        reset = s.limiter.get_window_stats(s.rate, str(who.id)).reset_time
        raise RateLimited(max(1, math.ceil(reset - time.time())))


def restricted_samples(s: Services, sample_ids: list[str]) -> set[str]:
    """Which of ``sample_ids`` are restricted (see the module docstring).

    Raises:
        WorkspaceError: no review snapshot yet.
    """
    return s.snapshot.restricted(sample_ids) | s.crowd.sensitive_samples(sample_ids)


def shown_flags(s: Services, who: Account, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flags (dicts with ``sample_id`` and ``url``) as ``who`` may see them: each gains
    ``restricted``, and a restricted one's ``url`` is None unless ``who`` reviews.

    Raises:
        WorkspaceError: no review snapshot yet.
    """
    hidden = restricted_samples(s, [r["sample_id"] for r in rows])
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
