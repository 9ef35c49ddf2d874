"""The crowd store: accounts, API tokens, flags, reviews and the append-only audit log, through
SQLAlchemy (DESIGN.md "Store (DuckDB) and crowd store").

People's data lives apart from the findings store: SQLite in WAL mode at
``<workspace>/crowd.sqlite`` by default (readers never wait for the writer, and the writer waits up
to :data:`BUSY_TIMEOUT` seconds for another), or Postgres for a shared deployment
(``crowd: {database: postgresql+psycopg://…}``). The review app, ``flags import`` and ``sync``
use it; none of them holds the DuckDB store's write lock.

The model:

- An **account** has a role: ``contributor`` flags samples, ``reviewer`` also decides flags,
  ``maintainer`` also sees the takedown view and manages accounts. Its password is hashed with
  argon2 (pwdlib's recommended hasher); its API tokens are random 256-bit values stored as their
  SHA-256 (a token is a random key, not a password, so a fast hash is enough, as GitHub stores its
  tokens). An account can be disabled (its sessions and tokens end, and it cannot sign in until
  enabled), its tokens rotated, its password reset (:meth:`CrowdStore.change_account`).
- A **session** is a record here, made at log-in: the browser's cookie holds a random 256-bit
  value, the store its SHA-256, the account and an expiry (``crowd.session_hours``). Every request
  looks its session or token up here, so a log-out, a disabled account, a rotated token or a reset
  password refuses the very next request in every app process. Nothing signs sessions, so there is
  no key to steal that would forge one.
- **Failed sign-ins** (a wrong name or password, a Bearer token that matches nothing) are counted
  here per account name and per client address, in moving windows (``crowd.failed_logins_per_account``,
  ``crowd.failures_per_address``), so every app process counts the same ones.
- A **flag** is one sample under one category (unique together). Each contributor who flags it
  adds one **report** to it (with a note); flagging it again adds nothing.
- A flag's status is ``pending``, ``confirmed`` or ``rejected`` (StopNCII's PendingReview /
  Blocked / NotBlocked). It is confirmed by the config's quorum
  (:class:`~scrutineer.core.config.QuorumConfig`): ``reviewers`` distinct reviewers confirming, or
  ``contributors`` distinct contributor accounts (enabled ones; a reviewer's or maintainer's report
  never counts, so a staff flag waits for another reviewer) reporting it. A reviewer's ``reject``
  rejects it. Every
  decision carries a reason code from the config (NCMEC's hash sharing requires one with every
  "no") and a note. A reviewer cannot decide a flag they reported (four eyes).
- The **audit log** records every change: who, when, which flag, from which status to which. It is
  append-only: the database refuses to update or delete its rows (triggers, on SQLite and Postgres).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self

import sqlalchemy as sa
from limits import RateLimitItem, parse
from pwdlib import PasswordHash
from sqlalchemy.dialects import postgresql, sqlite

from scrutineer.core.config import Config, CrowdConfig
from scrutineer.core.errors import (
    CrowdError,
    CrowdStoreError,
    NotAllowed,
    NotFound,
    RateLimited,
)
from scrutineer.samples.domains import host_and_domain

Role = Literal["contributor", "reviewer", "maintainer"]
ROLES: tuple[Role, ...] = ("contributor", "reviewer", "maintainer")
STATUSES = ("pending", "confirmed", "rejected")
DECISIONS = {"confirm": "confirmed", "reject": "rejected"}
#: Where a flag came from.
SOURCES = ("api", "form", "import")
#: Seconds a writer waits for SQLite's write lock before giving up.
BUSY_TIMEOUT = 30.0
#: The longest account name.
NAME_CHARS = 64

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), sa.CheckConstraint(f"role IN {ROLES}"), nullable=False),
    sa.Column("password_hash", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),  # null: enabled
    sa.Column("signed_in_at", sa.DateTime(timezone=True)),  # the last log-in through the form
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("session_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

failures = sa.Table(
    "sign_in_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(128), nullable=False),  # account:<name tried> | address:<client address>
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Index("failures_by_key", "key", "at"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sample_id", sa.String, nullable=False),
    sa.Column("shard_id", sa.String, nullable=False),
    sa.Column("row_index", sa.BigInteger, nullable=False),
    sa.Column("url", sa.String),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("registrable_domain", sa.String, nullable=False),
    sa.Column("caption", sa.String),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), sa.CheckConstraint(f"status IN {STATUSES}"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("sample_id", "category"),
    sa.Index("flags_by_status", "status", "category", "id"),
    sa.Index("flags_by_status_only", "status", "id"),  # the queue filtered by status alone, newest first
    sa.Index("flags_by_domain", "registrable_domain", "id"),
)

reports = sa.Table(
    "flag_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag_id", sa.ForeignKey("flags.id"), nullable=False),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("note", sa.String, nullable=False),
    sa.Column("source", sa.String(8), sa.CheckConstraint(f"source IN {SOURCES}"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("flag_id", "account_id"),
    sa.Index("reports_by_account", "account_id", "flag_id"),
    sa.Index("reports_by_account_time", "account_id", "created_at"),  # the rate limit's window
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("flag_id", sa.ForeignKey("flags.id"), nullable=False, index=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("decision", sa.String(8), sa.CheckConstraint(f"decision IN {tuple(DECISIONS)}"), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("note", sa.String, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),  # an account name, or "quorum"
    sa.Column("action", sa.String(16), nullable=False),  # account | flag | report | review
    sa.Column("flag_id", sa.Integer, index=True),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16)),
    sa.Column("detail", sa.String, nullable=False),  # JSON
)

#: A column of a query of ``flags``: how many contributors reported the flag.
_REPORTED = sa.select(sa.func.count()).where(reports.c.flag_id == flags.c.id).scalar_subquery().label("reports")

#: What an :class:`Account` is read from.
_ACCOUNT = sa.select(accounts.c.id, accounts.c.name, accounts.c.role)
#: What a signed-in :class:`Account` is read from: an enabled one.
_ENABLED = _ACCOUNT.where(accounts.c.disabled_at.is_(None))
#: Every request's look-ups (:meth:`CrowdStore.by_token`, :meth:`CrowdStore.by_session`), built once:
#: building the select on each call doubled their cost (measured, 1.3 against 0.6 ms on a busy machine).
_BY_TOKEN = _ENABLED.join(tokens).where(tokens.c.token_sha256 == sa.bindparam("sha256"))
_BY_SESSION = _ENABLED.join(sessions).where(sessions.c.session_sha256 == sa.bindparam("sha256"), sessions.c.expires_at > sa.bindparam("now"))
#: The changes :meth:`CrowdStore.change_account` makes (the ``scrutineer users`` commands of the same names).
ACCOUNT_CHANGES = ("disable", "enable", "rotate-token", "reset-password")
AccountChange = Literal["disable", "enable", "rotate-token", "reset-password"]

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

#: Triggers that make the database refuse to change or delete audit rows, per dialect.
_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        "CREATE OR REPLACE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    ],
}


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


@dataclass(frozen=True)
class Sample:
    """A sample as the latest scan read it (:class:`scrutineer.crowd.snapshot.Snapshot`)."""

    sample_id: str
    shard_id: str
    row_index: int
    url: str | None
    caption: str | None


@dataclass(frozen=True)
class FlagItem:
    """One flag to record: a sample, its category and the contributor's note."""

    sample: Sample
    category: str
    note: str


@dataclass(frozen=True)
class FlagRequest:
    """One account's submission of flags (:meth:`CrowdStore.flag_many`), recorded all or nothing.

    Args:
        source: where it came from (:data:`SOURCES`).
        limit: at most ``limit.amount`` reports by ``who`` in any moving window of
            ``limit.get_expiry()`` seconds (``crowd.rate_limit``, parsed by the ``limits``
            library). None: no limit (``flags import``).
    """

    who: Account
    items: list[FlagItem]
    source: str
    limit: RateLimitItem | None = None


def _chunks(rows: list, n: int) -> Iterator[list]:
    """``rows`` in lists of at most ``n``: a statement's bound parameters stay under SQLite's limit."""
    for start in range(0, len(rows), n):
        yield rows[start:start + n]


#: How the audit trail names another contributor's report to a contributor.
OTHER_CONTRIBUTOR = "another contributor"


def _reported(entry: dict) -> bool:
    """Whether an audit entry records a contributor's report (or the first one, which created the flag)."""
    return entry["action"] == "report" or (entry["action"] == "flag" and entry["from_status"] is None)


def _audit_row(actor: str, action: str, flag_id: int | None = None, old: str | None = None, new: str | None = None,
               detail: dict | None = None) -> dict[str, Any]:
    """One row of the audit log."""
    return {"at": _now(), "actor": actor, "action": action, "flag_id": flag_id, "from_status": old, "to_status": new,
            "detail": json.dumps(detail or {}, sort_keys=True)}


def _stored_note(note: str) -> str:
    """A report's or review's note as the store keeps it, from every channel (API, form, ``flags
    import``): without NUL (U+0000), which Postgres's text refuses and many readers of a SQLite
    file take for the end of the string, and with each lone surrogate (which UTF-8 cannot encode:
    JSON may escape one) as U+FFFD (issue 23, fault 9). Bidi controls are kept: pages show them
    visibly (:func:`scrutineer.reports.html.visible`)."""
    return note.replace("\x00", "").encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(at: datetime) -> datetime:
    """A time read from the store, in UTC (SQLite keeps no zone)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _new_password() -> str:
    """A random password: 96 bits, so no online guessing can find it."""
    return secrets.token_urlsafe(12)


def _new_token() -> str:
    """A random API token: 256 bits after its ``scr_`` prefix."""
    return "scr_" + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """The stored form of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class CrowdStore:
    """The crowd store of one workspace.

    Args:
        crowd: the config's ``crowd`` section (its ``database`` resolved by ``load_config``).

    Raises:
        CrowdStoreError: the database cannot be opened or created.
    """

    _passwords = PasswordHash.recommended()

    def __init__(self, crowd: CrowdConfig) -> None:
        self.config = crowd
        other = flags.alias("other")
        plain = [name for name in crowd.categories if not self.sensitive(name)]
        #: A column of a query of ``flags``: whether the flag's sample has a flag of a sensitive category (:meth:`flags`).
        self._sensitive_sample = sa.exists().where(other.c.sample_id == flags.c.sample_id, other.c.category.not_in(plain)).label("sensitive")
        url = sa.make_url(crowd.database)
        self.sqlite = url.get_backend_name() == "sqlite"
        if self.sqlite and url.database not in (None, "", ":memory:"):  # `users add` before the first scan made the workspace
            Path(url.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._writer = _Writers(url.database) if self.sqlite else nullcontext()
        self.engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT} if self.sqlite else {}, pool_size=8, max_overflow=16)
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self._failed_login = parse(crowd.failed_logins_per_account)
        self._failed_address = parse(crowd.failures_per_address)
        try:
            with self._write() as c:
                metadata.create_all(c)
                inspector = sa.inspect(c)
                for table in metadata.sorted_tables:
                    columns = {column["name"] for column in inspector.get_columns(table.name)}
                    for column in table.columns:  # a (nullable) column added since the store was made
                        if column.name not in columns:
                            c.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {sa.schema.CreateColumn(column).compile(dialect=c.dialect)}")
                    for index in table.indexes:  # an index added since
                        index.create(c, checkfirst=True)
                for trigger in _APPEND_ONLY.get(url.get_backend_name(), []):
                    c.exec_driver_sql(trigger)
                self._insert_ignore(c, settings, {"key": "csrf_secret", "value": secrets.token_urlsafe(32)})
                # the key that signed session cookies before sessions were records here: it would forge one for an older app
                c.execute(settings.delete().where(settings.c.key == "session_secret"))
        except sa.exc.SQLAlchemyError as e:
            raise CrowdStoreError(f"crowd store {url.render_as_string(hide_password=True)}: {e.args[0] if e.args else e}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections (and the writers' lock file)."""
        self.engine.dispose()
        if self.sqlite:
            self._writer.close()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE), so
        two writers queue instead of failing to upgrade a read lock, and the writers of this
        process take turns before asking SQLite."""
        with self._writer, self.engine.connect().execution_options(immediate=True) as c, c.begin():
            yield c

    def _read(self) -> sa.Connection:
        return self.engine.connect()

    def _insert(self, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
        """The dialect's INSERT of ``table`` (it has ``on_conflict_do_nothing``)."""
        return (sqlite if self.sqlite else postgresql).insert(table)

    def _insert_ignore(self, c: sa.Connection, table: sa.Table, row: dict) -> Any:
        """Insert ``row`` unless it breaks a unique constraint; the new row's primary key (its
        first column's value), or None when nothing was inserted."""
        inserted = self._insert(table).values(row).on_conflict_do_nothing().returning(*table.primary_key.columns)
        return c.execute(inserted).scalar()  # RETURNING: rowcount is -1 with psycopg

    def csrf_secret(self) -> str:
        """The key that signs the app's CSRF cookies (asgi-csrf), shared by every app process on
        every machine serving this store, so a form one process served posts to any other.

        It is kept here, not in a process's memory, for that sharing. Knowing it signs no one in:
        a CSRF token only proves that a form came from the app, and a forged one still needs the
        victim's session cookie, which no other site can send (``SameSite=Strict``) and the
        app's ``Origin`` check refuses from another site anyway. The store is its owner's only
        (the workspace's files are 0600), as the secret's only readers are the app processes.
        """
        with self._read() as c:
            return c.execute(sa.select(settings.c.value).where(settings.c.key == "csrf_secret")).scalar_one()

    # accounts

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
            row = {"name": name, "role": role, "password_hash": password_hash, "created_at": _now()}
            account_id = self._insert_ignore(c, accounts, row)
            if account_id is None:
                raise CrowdError(f"account {name!r} exists already")
            c.execute(tokens.insert().values(account_id=account_id, token_sha256=token_sha256(token), created_at=_now()))
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
                c.execute(account.values(disabled_at=_now() if change == "disable" else None))
            elif change == "rotate-token":
                c.execute(tokens.insert().values(account_id=account_id, token_sha256=token_sha256(secret), created_at=_now()))
            else:
                c.execute(account.values(password_hash=password_hash))
            self._audit(c, actor, "account", detail=detail)
        return secret

    def list_accounts(self) -> list[dict[str, Any]]:
        """Every account, by name: dicts with ``id``, ``name``, ``role``, ``state`` (``enabled`` or
        ``disabled``), ``created_at``, ``signed_in_at`` (the last log-in; None: never),
        ``tokens`` (API tokens) and ``sessions`` (live sessions). No secret and no hash."""
        now = _now()
        n_tokens = sa.select(sa.func.count()).where(tokens.c.account_id == accounts.c.id).scalar_subquery()
        n_sessions = sa.select(sa.func.count()).where(sessions.c.account_id == accounts.c.id, sessions.c.expires_at > now).scalar_subquery()
        query = sa.select(accounts.c.id, accounts.c.name, accounts.c.role, accounts.c.disabled_at, accounts.c.created_at, accounts.c.signed_in_at,
                          n_tokens.label("tokens"), n_sessions.label("sessions")).order_by(accounts.c.name)
        with self._read() as c:
            rows = _dicts(c.execute(query))
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
        return self._account(_BY_SESSION, {"sha256": token_sha256(session), "now": _now()})

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

    # sessions and failed sign-ins

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
        session, now = secrets.token_urlsafe(32), _now()
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
            self._refuse_failed(c, keys, _now())
        with self._write() as c:
            now = _now()
            self._refuse_failed(c, keys, now)  # again: another process may have recorded one since
            longest = max(limit.get_expiry() for limit in (self._failed_login, self._failed_address))
            c.execute(failures.delete().where(failures.c.at <= now - timedelta(seconds=longest)))
            return list(c.execute(failures.insert().returning(failures.c.id), [{"key": key, "at": now} for key in keys]).scalars())

    def _refuse_failed(self, c: sa.Connection, keys: dict[str, RateLimitItem], now: datetime) -> None:
        """Raise :class:`RateLimited` if a key has ``limit.amount`` failures in its moving window."""
        for key, limit in keys.items():
            window = timedelta(seconds=limit.get_expiry())
            n, oldest = c.execute(sa.select(sa.func.count(), sa.func.min(failures.c.at)).where(failures.c.key == key, failures.c.at > now - window)).one()
            if n >= limit.amount:
                raise RateLimited(max(1, math.ceil((_utc(oldest) + window - now).total_seconds())), "too many failed sign-ins")

    # flags

    def flag(self, who: Account, items: list[FlagItem], source: str, limit: RateLimitItem | None = None) -> list[tuple[int, bool]]:
        """Record ``who``'s flags, all or nothing: :meth:`flag_many` of one :class:`FlagRequest`.

        Returns:
            Per item: (flag id, whether a new report was recorded: False when ``who`` had flagged
            that sample under that category already).

        Raises:
            CrowdError: an unknown category (nothing is recorded).
            RateLimited: the items would pass ``limit`` (nothing is recorded).
        """
        [made] = self.flag_many([FlagRequest(who, items, source, limit)])
        if isinstance(made, CrowdError):
            raise made
        return made

    def flag_many(self, requests: list[FlagRequest]) -> list[list[tuple[int, bool]] | CrowdError]:
        """Record several accounts' flags in one transaction, a few set-based statements for all of
        them (the review app's group commit: the flags submitted while one batch is written form
        the next). Each request is all or nothing.

        Rate limits are counted from the reports stored, so every app process and machine sharing
        the store counts the same ones; within the batch, an account's earlier accepted requests
        count too. A repeated flag (the account's report of that sample and category exists, or
        comes earlier in the batch) adds no report and is not counted.

        Returns:
            Per request, in order: per item, (flag id, whether a new report was recorded: False when
            the account had flagged that sample under that category already, in the store or earlier
            in the batch); or the error that refused the whole request: :class:`CrowdError` for an
            unknown category, or :class:`RateLimited`.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed; nothing is recorded.
        """
        outcome: list[list[tuple[int, bool]] | CrowdError | None] = [None] * len(requests)
        for i, r in enumerate(requests):
            unknown = next((item.category for item in r.items if item.category not in self.config.categories), None)
            if unknown is not None:
                outcome[i] = CrowdError(f"unknown category {unknown!r}; categories: {', '.join(self.config.categories) or 'none configured'}")
        hosts = {item.sample.url: host_and_domain(item.sample.url or "") for r in requests for item in r.items}  # before taking the write lock
        with self._write() as c:
            self._check_rates(c, requests, outcome)
            accepted = [(i, r.who, item) for i, r in enumerate(requests) if outcome[i] is None for item in r.items]
            made = self._record(c, accepted, {i: r.source for i, r in enumerate(requests)}, hosts) if accepted else []
        for (i, _, _), one in zip(accepted, made):
            outcome[i] = outcome[i] or []
            outcome[i].append(one)
        return [[] if o is None else o for o in outcome]

    def _check_rates(self, c: sa.Connection, requests: list[FlagRequest], outcome: list) -> None:
        """Set ``outcome[i]`` to :class:`RateLimited` for each request that would pass its limit."""
        now = _now()
        limited = [(i, r) for i, r in enumerate(requests) if r.limit is not None and outcome[i] is None]
        windows: dict[int, set[int]] = {}  # window seconds -> accounts
        for _, r in limited:
            windows.setdefault(r.limit.get_expiry(), set()).add(r.who.id)
        stored: dict[tuple[int, int], tuple[int, datetime | None]] = {}  # (account, window seconds) -> (reports, oldest)
        for seconds, who in windows.items():
            counted = c.execute(
                sa.select(reports.c.account_id, sa.func.count(), sa.func.min(reports.c.created_at))
                .where(reports.c.account_id.in_(who), reports.c.created_at > now - timedelta(seconds=seconds)).group_by(reports.c.account_id)
            ).all()
            stored |= {(a, seconds): (0, None) for a in who} | {(a, seconds): (n, oldest) for a, n, oldest in counted}
        # which items repeat a report matters only if a limit could be passed with every item counted
        upper = {key: n for key, (n, _) in stored.items()}
        for _, r in limited:
            upper[r.who.id, r.limit.get_expiry()] += len(r.items)
        near = any(upper[r.who.id, r.limit.get_expiry()] > r.limit.amount for _, r in limited)
        reported = self._reported(c, {(r.who.id, item.sample.sample_id, item.category) for _, r in limited for item in r.items}) if near else set()
        for i, r in limited:
            key = (r.who.id, r.limit.get_expiry())
            count, oldest = stored[key]
            new = {(r.who.id, item.sample.sample_id, item.category) for item in r.items} - reported
            if count + len(new) > r.limit.amount:
                wait = (_utc(oldest) + timedelta(seconds=key[1]) - now).total_seconds() if oldest else key[1]
                outcome[i] = RateLimited(max(1, math.ceil(wait)))
            else:
                stored[key] = (count + len(new), oldest or now)
                reported |= new

    def _reported(self, c: sa.Connection, wanted: set[tuple[int, str, str]]) -> set[tuple[int, str, str]]:
        """Which of ``wanted`` (account id, sample id, category) the store has a report of."""
        accounts_ = list({a for a, _, _ in wanted})
        found: set[tuple[int, str, str]] = set()
        for samples in _chunks(sorted({s for _, s, _ in wanted}), 500):
            found |= {tuple(row) for row in c.execute(
                sa.select(reports.c.account_id, flags.c.sample_id, flags.c.category).join(flags, flags.c.id == reports.c.flag_id)
                .where(reports.c.account_id.in_(accounts_), flags.c.sample_id.in_(samples)))}
        return found & wanted

    def _record(self, c: sa.Connection, items: list[tuple[int, Account, FlagItem]], sources: dict[int, str],
                hosts: dict[str | None, tuple[str, str]]) -> list[tuple[int, bool]]:
        """Insert the flags and reports of ``items`` ((request index, account, item)); per item,
        (flag id, whether its report is new)."""
        now = _now()
        firsts: dict[tuple[str, str], FlagItem] = {}
        for _, _, item in items:
            firsts.setdefault((item.sample.sample_id, item.category), item)
        rows = []
        for key in sorted(firsts):  # in key order: concurrent Postgres writers lock alike
            s, category = firsts[key].sample, firsts[key].category
            host, domain = hosts[s.url]
            rows.append({"sample_id": s.sample_id, "shard_id": s.shard_id, "row_index": s.row_index, "url": s.url, "host": host,
                         "registrable_domain": domain, "caption": s.caption, "category": category, "status": "pending",
                         "created_at": now, "updated_at": now})
        created = {(s, k): flag_id for flag_id, s, k in c.execute(
            self._insert(flags).on_conflict_do_nothing().returning(flags.c.id, flags.c.sample_id, flags.c.category), rows)}
        flag_ids, status = dict(created), dict.fromkeys(created.values(), "pending")
        existing = sorted(set(firsts) - set(created))
        for chunk in _chunks(existing, 500):
            # by sample id (the index's prefix; SQLite scans the table for a tuple IN), the other categories dropped here;
            # FOR UPDATE: concurrent reports of one flag count each other (Postgres)
            for flag_id, s, k, st in c.execute(
                sa.select(flags.c.id, flags.c.sample_id, flags.c.category, flags.c.status)
                .where(flags.c.sample_id.in_(sorted({s for s, _ in chunk})), flags.c.category.in_(sorted({k for _, k in chunk}))).order_by(flags.c.id).with_for_update()
            ):
                if (s, k) in firsts:
                    flag_ids[s, k], status[flag_id] = flag_id, st
        report_rows: dict[tuple[int, int], dict] = {}
        for i, who, item in items:  # the first of an account's repeats is the one recorded
            flag_id = flag_ids[item.sample.sample_id, item.category]
            report_rows.setdefault((flag_id, who.id), {"flag_id": flag_id, "account_id": who.id, "note": _stored_note(item.note), "source": sources[i], "created_at": now})
        new_reports = {(flag_id, account_id) for flag_id, account_id in c.execute(
            self._insert(reports).on_conflict_do_nothing().returning(reports.c.flag_id, reports.c.account_id), list(report_rows.values()))}
        made, trail, audited = [], [], set()
        for i, who, item in items:
            key = (item.sample.sample_id, item.category)
            flag_id = flag_ids[key]
            if key in created and flag_id not in audited:
                audited.add(flag_id)
                trail.append(_audit_row(who.name, "flag", flag_id, None, "pending", {"category": item.category}))
            new = (flag_id, who.id) in new_reports
            if new:
                new_reports.discard((flag_id, who.id))
                trail.append(_audit_row(who.name, "report", flag_id, detail={"category": item.category, "source": sources[i]}))
            made.append((flag_id, new))
        if trail:
            c.execute(audit.insert(), trail)
        quorum = self.config.confirm.contributors
        reported = sorted({flag_id for flag_id, new in made if new and status[flag_id] == "pending"})
        for chunk in _chunks(reported if quorum else [], 1000):
            # only enabled contributor accounts count: a staff report waits for another reviewer (README "Review and reports")
            counted = c.execute(
                sa.select(reports.c.flag_id, sa.func.count()).join(accounts, accounts.c.id == reports.c.account_id)
                .where(reports.c.flag_id.in_(chunk), accounts.c.role == "contributor", accounts.c.disabled_at.is_(None)).group_by(reports.c.flag_id))
            for flag_id, reporters in counted.all():
                if reporters >= quorum:
                    self._set_status(c, "quorum", flag_id, "pending", "confirmed", {"contributors": reporters})
        return made

    def review(self, who: Account, flag_id: int, decision: str, reason: str, note: str) -> str:
        """Record a reviewer's decision on a flag.

        Returns:
            The flag's status afterwards.

        Raises:
            NotAllowed: ``who`` is not a reviewer or reported the flag.
            NotFound: no such flag.
            CrowdError: an unknown decision or a reason code the config does not list for it.
        """
        if not who.reviews:
            raise NotAllowed("only reviewers and maintainers decide flags")
        if decision not in DECISIONS:
            raise CrowdError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        allowed = getattr(self.config.reasons, decision)
        if reason not in allowed:
            raise CrowdError(f"reason for {decision!r} must be one of {', '.join(allowed)}, not {reason!r}")
        with self._write() as c:
            status = c.execute(sa.select(flags.c.status).where(flags.c.id == flag_id).with_for_update()).scalar()
            if status is None:
                raise NotFound(f"no flag {flag_id}")
            if c.execute(sa.select(reports.c.id).where(reports.c.flag_id == flag_id, reports.c.account_id == who.id)).first():
                raise NotAllowed("a reviewer cannot decide a flag they reported")
            c.execute(reviews.insert().values(flag_id=flag_id, account_id=who.id, decision=decision, reason=reason, note=_stored_note(note), created_at=_now()))
            self._audit(c, who.name, "review", flag_id, detail={"decision": decision, "reason": reason})
            new = DECISIONS[decision]
            if decision == "confirm":
                latest = (
                    sa.select(reviews.c.account_id, sa.func.max(reviews.c.id).label("last"))
                    .where(reviews.c.flag_id == flag_id).group_by(reviews.c.account_id).subquery()
                )
                confirming = c.execute(
                    sa.select(sa.func.count()).select_from(latest.join(reviews, reviews.c.id == latest.c.last)).where(reviews.c.decision == "confirm")
                ).scalar_one()
                if confirming < self.config.confirm.reviewers:
                    new = status
            if new != status:
                self._set_status(c, who.name, flag_id, status, new, {"decision": decision, "reason": reason})
        return new

    def _set_status(self, c: sa.Connection, actor: str, flag_id: int, old: str, new: str, detail: dict) -> None:
        c.execute(flags.update().where(flags.c.id == flag_id).values(status=new, updated_at=_now()))
        self._audit(c, actor, "flag", flag_id, old, new, detail)

    def _audit(self, c: sa.Connection, actor: str, action: str, flag_id: int | None = None, old: str | None = None,
               new: str | None = None, detail: dict | None = None) -> None:
        c.execute(audit.insert(), [_audit_row(actor, action, flag_id, old, new, detail)])

    # reading

    def flags(self, who: Account, status: str | None = None, category: str | None = None, domain: str | None = None,
              before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Flags, newest first: all of them for reviewers, the ones ``who`` reported for contributors.

        Args:
            before: only flags with a smaller id (keyset paging: pass the last id of a page).
            limit: at most this many.

        Returns:
            Dicts with the ``flags`` columns plus ``reports`` (how many contributors flagged it) and
            ``sensitive``: whether the flag's sample has a flag of a sensitive category
            (:meth:`sensitive`), whatever its status; such a sample's URL is restricted wherever it
            appears, under any category.
        """
        query = sa.select(flags, _REPORTED, self._sensitive_sample).limit(limit)
        newest = flags.c.id
        if not who.reviews:  # read from the account's own reports by their index, not by testing every flag
            mine = reports.alias("mine")
            query = query.join(mine, mine.c.flag_id == flags.c.id).where(mine.c.account_id == who.id)
            newest = mine.c.flag_id
        for column, value in ((flags.c.status, status), (flags.c.category, category), (flags.c.registrable_domain, domain)):
            if value:
                query = query.where(column == value)
        if before is not None:
            query = query.where(newest < before)
        query = query.order_by(newest.desc())
        with self._read() as c:
            return _dicts(c.execute(query))

    def flag_detail(self, who: Account, flag_id: int) -> dict[str, Any]:
        """One flag (the ``flags`` columns and ``sensitive``, as :meth:`flags` gives them) with its
        reports, reviews and audit trail (oldest first).

        Raises:
            NotFound: no such flag, or a contributor asking for a flag they did not report.
        """
        with self._read() as c:
            row = c.execute(sa.select(flags, self._sensitive_sample).where(flags.c.id == flag_id)).first()
            mine = c.execute(sa.select(reports.c.id).where(reports.c.flag_id == flag_id, reports.c.account_id == who.id)).first()
            if row is None or not (who.reviews or mine):
                raise NotFound(f"no flag {flag_id}")
            by = accounts.c.name.label("by")
            detail = dict(row._mapping)
            detail["reports"] = _dicts(c.execute(
                sa.select(by, reports.c.note, reports.c.source, reports.c.created_at).join(accounts).where(reports.c.flag_id == flag_id).order_by(reports.c.id)))
            detail["reviews"] = _dicts(c.execute(
                sa.select(by, reviews.c.decision, reviews.c.reason, reviews.c.note, reviews.c.created_at).join(accounts)
                .where(reviews.c.flag_id == flag_id).order_by(reviews.c.id)))
            detail["audit"] = _dicts(c.execute(
                sa.select(audit.c.at, audit.c.actor, audit.c.action, audit.c.from_status, audit.c.to_status, audit.c.detail)
                .where(audit.c.flag_id == flag_id).order_by(audit.c.id)))
        if not who.reviews:  # a contributor sees their own report, not who else flagged it or why
            detail["reports"] = [r for r in detail["reports"] if r["by"] == who.name]
            detail["audit"] = [a | {"actor": OTHER_CONTRIBUTOR} if _reported(a) and a["actor"] != who.name else a for a in detail["audit"]]
        return detail

    def status_counts(self) -> dict[str, int]:
        """Flags by status, ``{status: n}`` (every status, zeros included): the queue's header,
        cheaper than :meth:`counts`."""
        with self._read() as c:
            rows = c.execute(sa.select(flags.c.status, sa.func.count()).group_by(flags.c.status)).all()
        return dict.fromkeys(STATUSES, 0) | dict(rows)

    def counts(self) -> dict[str, Any]:
        """Flags by status, by category and status, and the top registrable domains by flags:
        ``{"by_status": {status: n}, "by_category": [{"category", "sensitive", "pending",
        "confirmed", "rejected"}], "top_domains": [{"domain", "flags"}]}`` (top 10)."""
        with self._read() as c:
            rows = c.execute(sa.select(flags.c.category, flags.c.status, sa.func.count()).group_by(flags.c.category, flags.c.status)).all()
            domains = c.execute(
                sa.select(flags.c.registrable_domain, sa.func.count().label("n")).group_by(flags.c.registrable_domain)
                .order_by(sa.desc("n"), flags.c.registrable_domain).limit(10)).all()
        by_status = dict.fromkeys(STATUSES, 0)
        by_category: dict[str, dict] = {}
        for category, status, n in rows:
            by_status[status] += n
            entry = by_category.setdefault(category, {"category": category, "sensitive": self.sensitive(category)} | dict.fromkeys(STATUSES, 0))
            entry[status] += n
        return {"by_status": by_status, "by_category": sorted(by_category.values(), key=lambda e: e["category"]),
                "top_domains": [{"domain": d, "flags": n} for d, n in domains]}

    def confirmed(self) -> list[dict[str, Any]]:
        """Every confirmed flag with the ids of its reports and reviews, for ``sync``: dicts with
        id, sample_id, shard_id, row_index, url, category, updated_at, report_ids, review_ids."""
        with self._read() as c:
            rows = _dicts(c.execute(
                sa.select(flags.c.id, flags.c.sample_id, flags.c.shard_id, flags.c.row_index, flags.c.url, flags.c.category, flags.c.updated_at)
                .where(flags.c.status == "confirmed").order_by(flags.c.id)))
            ids = [r["id"] for r in rows]
            report_ids: dict[int, list[int]] = {}
            review_ids: dict[int, list[int]] = {}
            for table, into in ((reports, report_ids), (reviews, review_ids)):
                for flag_id, row_id in c.execute(sa.select(table.c.flag_id, table.c.id).where(table.c.flag_id.in_(ids)).order_by(table.c.id)):
                    into.setdefault(flag_id, []).append(row_id)
        for r in rows:
            r["report_ids"], r["review_ids"] = report_ids.get(r["id"], []), review_ids.get(r["id"], [])
        return rows

    def sensitive(self, category: str) -> bool:
        """Whether a category is sensitive (an unknown one, say from an older config, counts as sensitive)."""
        c = self.config.categories.get(category)
        return c is None or c.sensitive


def crowd_counts(cfg: Config) -> dict[str, Any] | None:
    """:meth:`CrowdStore.counts` of the config's crowd store; None when it has no categories.

    Raises:
        CrowdStoreError: the crowd store cannot be opened.
    """
    if not cfg.crowd.categories:
        return None
    with CrowdStore(cfg.crowd) as crowd:
        return crowd.counts()


class _Writers:
    """The writers of one SQLite file take turns: this process's threads on a lock, processes on
    ``flock(2)`` of ``<file>-writers.lock``, a queue in the kernel. SQLite alone makes a writer that
    finds the file locked sleep in steps of up to 100 ms and try again, so under load one process's
    writers starved the other's (bench/serve_load.py, two app processes: flag p99 ~0.6 s)."""

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        in_memory = database in (None, "", ":memory:")  # one process's only
        self._fd = None if in_memory else os.open(f"{database}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (_sqlite_begin)
    cur = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={int(BUSY_TIMEOUT * 1000)}"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _dicts(result: sa.CursorResult) -> list[dict[str, Any]]:
    """The result's rows as dicts: for a queue page of 50 flags (the app's busiest page) 0.08 ms,
    against 0.28 ms by ``dict(row._mapping)`` (measured)."""
    keys = list(result.keys())
    return [dict(zip(keys, row)) for row in result]


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")
