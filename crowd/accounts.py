"""The crowd store's accounts: the accounts themselves, their API tokens, their sessions and the
throttling of failed sign-ins.

- An **account** has a role: ``contributor`` flags samples, ``reviewer`` also decides flags,
  ``maintainer`` also sees the takedown view and manages accounts. Its password is hashed with
  argon2 (pwdlib's recommended hasher); its API tokens are random 256-bit values stored as their
  SHA-256 (a token is a random key, not a password, so a fast hash is enough, as GitHub stores its
  tokens). An account can be disabled (its sessions and tokens end, and it cannot sign in until
  enabled), its tokens rotated, its password reset (:meth:`Accounts.change_account`).
- A **session** is a record here, made at log-in: the browser's cookie holds a random 256-bit
  value, the store its SHA-256, the account and an expiry (``crowd.session_hours``). Every request
  looks its session or token up here, so a log-out, a disabled account, a rotated token or a reset
  password refuses the very next request in every app process. Nothing signs sessions, so there is
  no key to steal that would forge one.
- **Failed sign-ins** (a wrong name or password, a Bearer token that matches nothing) are counted
  here per account name and per client address, in moving windows (``crowd.failed_logins_per_account``,
  ``crowd.failures_per_address``), so every app process counts the same ones.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

import sqlalchemy as sa
from limits import RateLimitItem, parse
from pwdlib import PasswordHash

from scrutineer.core.errors import CrowdError, NotFound, RateLimited
from scrutineer.crowd.database import Database, as_utc, dicts, now_utc
from scrutineer.crowd.tables import (
    NAME_CHARS,
    ROLES,
    Role,
    accounts,
    failures,
    sessions,
    tokens,
)

#: The changes :meth:`Accounts.change_account` makes (the ``scrutineer users`` commands of the same names).
ACCOUNT_CHANGES = ("disable", "enable", "rotate-token", "reset-password")
AccountChange = Literal["disable", "enable", "rotate-token", "reset-password"]

#: What an :class:`Account` is read from.
_ACCOUNT = sa.select(accounts.c.id, accounts.c.name, accounts.c.role)
#: What a signed-in :class:`Account` is read from: an enabled one.
_ENABLED = _ACCOUNT.where(accounts.c.disabled_at.is_(None))
#: Every request's look-ups (:meth:`Accounts.by_token`, :meth:`Accounts.by_session`), built once:
#: building the select on each call doubled their cost (measured, 1.3 against 0.6 ms on a busy machine).
_BY_TOKEN = _ENABLED.join(tokens).where(tokens.c.token_sha256 == sa.bindparam("sha256"))
_BY_SESSION = _ENABLED.join(sessions).where(sessions.c.session_sha256 == sa.bindparam("sha256"), sessions.c.expires_at > sa.bindparam("now"))
#: Every account with its API tokens and live sessions (:meth:`Accounts.list_accounts`).
_LIST = sa.select(
    accounts.c.id, accounts.c.name, accounts.c.role, accounts.c.disabled_at, accounts.c.created_at, accounts.c.signed_in_at,
    sa.select(sa.func.count()).where(tokens.c.account_id == accounts.c.id).scalar_subquery().label("tokens"),
    sa.select(sa.func.count()).where(sessions.c.account_id == accounts.c.id, sessions.c.expires_at > sa.bindparam("now"))
    .scalar_subquery().label("sessions"),
).order_by(accounts.c.name)
#: A key's failures in its window: how many, and when the oldest was (:meth:`Accounts._refuse_failed`).
_FAILURES = sa.select(sa.func.count(), sa.func.min(failures.c.at)).where(failures.c.key == sa.bindparam("key"), failures.c.at > sa.bindparam("since"))


@dataclass(frozen=True)
class Account:
    """A signed-in person."""

    id: int
    name: str
    role: Role

    @property
    def reviews(self) -> bool:
        """Whether the account may decide flags and see restricted URLs (reviewers, maintainers)."""
        return self.role in ("reviewer", "maintainer")


def token_sha256(token: str) -> str:
    """The stored form of an API token (or a session's cookie value): its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_password() -> str:
    """A random password: 96 bits, so no online guessing can find it."""
    return secrets.token_urlsafe(12)


def _new_token() -> str:
    """A random API token: 256 bits after its ``scr_`` prefix."""
    return "scr_" + secrets.token_urlsafe(32)


class Accounts(Database):
    """The accounts, tokens, sessions and failed sign-ins of a crowd store (module docstring)."""

    _passwords = PasswordHash.recommended()

    @cached_property
    def _failed_login(self) -> RateLimitItem:
        return parse(self.config.failed_logins_per_account)

    @cached_property
    def _failed_address(self) -> RateLimitItem:
        return parse(self.config.failures_per_address)

    def add_account(self, name: str, role: Role) -> tuple[str, str]:
        """Create an account with a random password and one API token.

        Returns:
            (password, token), each shown once: only their hashes are stored.

        Raises:
            CrowdError: an unknown role, a bad name, or a name already taken.
        """
        if role not in ROLES:
            raise CrowdError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if not name or len(name) > NAME_CHARS or not name.isprintable() or name != name.strip():
            raise CrowdError(f"account name {name!r}: 1-{NAME_CHARS} printable characters, no surrounding spaces")
        password, token = _new_password(), _new_token()
        password_hash = self._passwords.hash(password)  # ~50 ms, before taking the write lock
        with self._write() as c:
            row = {"name": name, "role": role, "password_hash": password_hash, "created_at": now_utc()}
            account_id = self._insert_ignore(c, accounts, row)
            if account_id is None:
                raise CrowdError(f"account {name!r} exists already")
            c.execute(tokens.insert().values(account_id=account_id, token_sha256=token_sha256(token), created_at=now_utc()))
            self._audit(c, "cli", "account", detail={"name": name, "role": role})
        return password, token

    def change_account(self, name: str, change: AccountChange, actor: str) -> str | None:
        """Change the account ``name`` (:data:`ACCOUNT_CHANGES`), for every app process at once,
        and record it in the audit log (``action`` "account", ``detail`` naming the account, the
        change and how many sessions and tokens it ended; never a secret).

        - ``disable``: ends its sessions and tokens; it cannot sign in until enabled.
        - ``enable``: it signs in with its password again (its ended tokens stay ended:
          ``rotate-token`` makes a new one).
        - ``rotate-token``: ends its API tokens and makes one new.
        - ``reset-password``: a new random password; ends its sessions.

        Args:
            actor: who made the change: a maintainer's name, or ``cli``.

        Returns:
            The new token or password, to be shown once (only its hash is stored); None for
            ``disable`` and ``enable``.

        Raises:
            NotFound: no such account.
            CrowdError: an unknown change.
        """
        if change not in ACCOUNT_CHANGES:
            raise CrowdError(f"unknown change {change!r}; changes: {', '.join(ACCOUNT_CHANGES)}")
        secret = {"rotate-token": _new_token, "reset-password": _new_password}.get(change, lambda: None)()
        password_hash = self._passwords.hash(secret) if change == "reset-password" else None  # before taking the write lock
        with self._write() as c:
            account_id = c.execute(sa.select(accounts.c.id).where(accounts.c.name == name)).scalar()
            if account_id is None:
                raise NotFound(f"no account {name!r}")
            detail: dict[str, Any] = {"name": name, "change": change}
            if change in ("disable", "reset-password"):
                detail["sessions_ended"] = c.execute(sessions.delete().where(sessions.c.account_id == account_id)).rowcount
            if change in ("disable", "rotate-token"):
                detail["tokens_ended"] = c.execute(tokens.delete().where(tokens.c.account_id == account_id)).rowcount
            account = accounts.update().where(accounts.c.id == account_id)
            if change in ("disable", "enable"):
                c.execute(account.values(disabled_at=now_utc() if change == "disable" else None))
            elif change == "rotate-token":
                c.execute(tokens.insert().values(account_id=account_id, token_sha256=token_sha256(secret), created_at=now_utc()))
            else:
                c.execute(account.values(password_hash=password_hash))
            self._audit(c, actor, "account", detail=detail)
        return secret

    def list_accounts(self) -> list[dict[str, Any]]:
        """Every account, by name: dicts with ``id``, ``name``, ``role``, ``state`` (``enabled`` or
        ``disabled``), ``created_at``, ``signed_in_at`` (the last log-in; None: never),
        ``tokens`` (API tokens) and ``sessions`` (live sessions). No secret and no hash."""
        with self._read() as c:
            rows = dicts(c.execute(_LIST, {"now": now_utc()}))
        return [{"state": "enabled" if r.pop("disabled_at") is None else "disabled"} | r for r in rows]

    def _account(self, query: sa.Select, params: dict | None = None) -> Account | None:
        """The account ``query`` (a select of id, name, role) finds, or None."""
        with self._read() as c:
            row = c.execute(query, params).first()
        return Account(*row) if row else None

    def by_token(self, token: str) -> Account | None:
        """The enabled account an API token belongs to, or None. One indexed read, never
        remembered, so a rotated token or a disabled account is refused at once."""
        return self._account(_BY_TOKEN, {"sha256": token_sha256(token)})

    def by_session(self, session: str) -> Account | None:
        """The enabled account of a live session (the cookie value :meth:`sign_in` gave), or None:
        an unknown, ended or expired session. One indexed read, never remembered."""
        return self._account(_BY_SESSION, {"sha256": token_sha256(session), "now": now_utc()})

    def by_password(self, name: str, password: str) -> Account | None:
        """The enabled account if ``password`` is its password, or None. Argon2 runs (~50 ms)
        whether or not the name exists or the account is enabled, so the time tells nothing."""
        with self._read() as c:
            row = c.execute(_ACCOUNT.add_columns(accounts.c.password_hash, accounts.c.disabled_at).where(accounts.c.name == name)).first()
        if row is None:
            self._passwords.hash(password)  # the same time whether or not the name exists
            return None
        right = self._passwords.verify(password, row.password_hash)
        return Account(row.id, row.name, row.role) if right and row.disabled_at is None else None

    def by_id(self, account_id: int) -> Account | None:
        """The account with this id, enabled or not, or None."""
        return self._account(_ACCOUNT.where(accounts.c.id == account_id))

    def by_name(self, name: str, enabled: bool = False) -> Account | None:
        """The account with this name (only if enabled, with ``enabled``), or None."""
        return self._account((_ENABLED if enabled else _ACCOUNT).where(accounts.c.name == name))

    def sign_in(self, name: str, password: str, address: str) -> str | None:
        """Log in with a name and password (:meth:`by_password`) and start a session that lasts
        ``crowd.session_hours``.

        The attempt is counted as a failure of the name tried and of ``address`` before the
        password is checked, and the count is taken back on success, so concurrent attempts in
        several app processes cannot pass the limits together. A name that does not exist is
        counted and answered exactly as a wrong password is.

        Args:
            address: the client's address (the review app's :func:`scrutineer.crowd.access.client_address`).

        Returns:
            The session's value for the cookie (the store keeps its SHA-256), or None: a wrong
            name or password, or a disabled account.

        Raises:
            RateLimited: the name or the address has failed ``crowd.failed_logins_per_account``
                or ``crowd.failures_per_address`` times in the window; the password is not checked.
        """
        attempt = self._failed({f"account:{name[:NAME_CHARS]}": self._failed_login, f"address:{address}": self._failed_address})
        who = self.by_password(name, password)
        if who is None:
            return None
        session, now = secrets.token_urlsafe(32), now_utc()
        with self._write() as c:
            c.execute(failures.delete().where(failures.c.id.in_(attempt)))
            c.execute(sessions.delete().where(sessions.c.expires_at <= now))  # expired ones, anybody's
            c.execute(sessions.insert().values(account_id=who.id, session_sha256=token_sha256(session), created_at=now,
                                               expires_at=now + timedelta(hours=self.config.session_hours)))
            c.execute(accounts.update().where(accounts.c.id == who.id).values(signed_in_at=now))
        return session

    def end_session(self, session: str) -> None:
        """End a session (log-out): its cookie value signs no one in from now on, wherever it was copied."""
        with self._write() as c:
            c.execute(sessions.delete().where(sessions.c.session_sha256 == token_sha256(session)))

    def failed_token(self, address: str) -> None:
        """Count a Bearer token that matched nothing against the client's address (a token names
        no account until it matches one).

        Raises:
            RateLimited: the address has failed ``crowd.failures_per_address`` times in the window.
        """
        self._failed({f"address:{address}": self._failed_address})

    def _failed(self, keys: dict[str, RateLimitItem]) -> list[int]:
        """Record one failure of each key (``account:<name>``, ``address:<address>``) against its
        limit, all or nothing, and forget the failures older than the longest window.

        Returns:
            The failures' row ids.

        Raises:
            RateLimited: a key has used up its limit already (nothing is recorded). Checked first
                without the write lock, so a flood of refused attempts does not queue for it.
        """
        with self._read() as c:
            self._refuse_failed(c, keys, now_utc())
        with self._write() as c:
            now = now_utc()
            self._refuse_failed(c, keys, now)  # again: another process may have recorded one since
            longest = max(limit.get_expiry() for limit in (self._failed_login, self._failed_address))
            c.execute(failures.delete().where(failures.c.at <= now - timedelta(seconds=longest)))
            return list(c.execute(failures.insert().returning(failures.c.id), [{"key": key, "at": now} for key in keys]).scalars())

    def _refuse_failed(self, c: sa.Connection, keys: dict[str, RateLimitItem], now: datetime) -> None:
        """Raise :class:`RateLimited` if a key has ``limit.amount`` failures in its moving window."""
        for key, limit in keys.items():
            window = timedelta(seconds=limit.get_expiry())
            n, oldest = c.execute(_FAILURES, {"key": key, "since": now - window}).one()
            if n >= limit.amount:
                raise RateLimited(max(1, math.ceil((as_utc(oldest) + window - now).total_seconds())), "too many failed sign-ins")
