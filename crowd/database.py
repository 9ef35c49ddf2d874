"""The crowd store's database: its engine, its transactions and the schema's creation, shared by
the store's parts (:mod:`scrutineer.crowd.accounts`, :mod:`scrutineer.crowd.flags`,
:mod:`scrutineer.crowd.reading`).

SQLite in WAL mode (readers never wait for the writer, and the writer waits up to
:data:`BUSY_TIMEOUT` seconds for another), or Postgres for a shared deployment. The writers of one
SQLite file take turns in this process and across processes (:class:`_Writers`).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from scrutineer.core.config import CrowdConfig
from scrutineer.core.errors import CrowdStoreError
from scrutineer.core.extras import require
from scrutineer.crowd.tables import APPEND_ONLY, audit, metadata, settings

#: Seconds a writer waits for SQLite's write lock before giving up.
BUSY_TIMEOUT = 30.0
#: The key that signed session cookies before sessions were records in the store: it would forge
#: one for an older app, so opening the store deletes it.
RETIRED_SETTINGS = ("session_secret",)


class Database:
    """The crowd store's database, its tables made or brought up to date.

    Args:
        crowd: the config's ``crowd`` section (its ``database`` resolved by ``load_config``).

    Raises:
        CrowdStoreError: the database cannot be opened or created.
        MissingExtraError: a PostgreSQL database without the ``postgres`` extra (psycopg).
    """

    def __init__(self, crowd: CrowdConfig) -> None:
        self.config = crowd
        url = sa.make_url(crowd.database)
        self.sqlite = url.get_backend_name() == "sqlite"
        if not self.sqlite:
            require("postgres")
        if self.sqlite and url.database not in (None, "", ":memory:"):  # `users add` before the first scan made the workspace
            Path(url.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._writer = _Writers(url.database) if self.sqlite else nullcontext()
        self.engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT} if self.sqlite else {}, pool_size=8, max_overflow=16)
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        try:
            with self._write() as c:
                self._create(c)
        except sa.exc.SQLAlchemyError as e:
            raise CrowdStoreError(f"crowd store {url.render_as_string(hide_password=True)}: {e.args[0] if e.args else e}") from None

    def _create(self, c: sa.Connection) -> None:
        """Make the tables, the columns and indexes added since the store was made, the audit log's
        triggers and the CSRF secret; delete :data:`RETIRED_SETTINGS`."""
        metadata.create_all(c)
        inspector = sa.inspect(c)
        for table in metadata.sorted_tables:
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:  # a (nullable) column added since the store was made
                if column.name not in columns:
                    c.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {sa.schema.CreateColumn(column).compile(dialect=c.dialect)}")
            for index in table.indexes:  # an index added since
                index.create(c, checkfirst=True)
        for trigger in APPEND_ONLY.get(c.dialect.name, []):
            c.exec_driver_sql(trigger)
        self._insert_ignore(c, settings, {"key": "csrf_secret", "value": secrets.token_urlsafe(32)})
        c.execute(settings.delete().where(settings.c.key.in_(RETIRED_SETTINGS)))

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

    def _audit(self, c: sa.Connection, actor: str, action: str, flag_id: int | None = None, old: str | None = None,
               new: str | None = None, detail: dict | None = None) -> None:
        """Append one change to the audit log (:func:`audit_row`)."""
        c.execute(audit.insert(), [audit_row(actor, action, flag_id, old, new, detail)])

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


def audit_row(actor: str, action: str, flag_id: int | None = None, old: str | None = None, new: str | None = None,
              detail: dict | None = None) -> dict[str, Any]:
    """One row of the audit log: ``actor`` (an account name, ``cli`` or ``quorum``) did ``action``
    (``account``, ``flag``, ``report`` or ``review``), moving flag ``flag_id`` from status ``old``
    to ``new`` (or not), with ``detail`` stored as JSON."""
    return {"at": now_utc(), "actor": actor, "action": action, "flag_id": flag_id, "from_status": old, "to_status": new,
            "detail": json.dumps(detail or {}, sort_keys=True)}


def now_utc() -> datetime:
    return datetime.now(UTC)


def as_utc(at: datetime) -> datetime:
    """A time read from the store, in UTC (SQLite keeps no zone)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def chunks(rows: list, n: int) -> Iterator[list]:
    """``rows`` in lists of at most ``n``: a statement's bound parameters stay under SQLite's limit."""
    for start in range(0, len(rows), n):
        yield rows[start:start + n]


def dicts(result: sa.CursorResult) -> list[dict[str, Any]]:
    """The result's rows as dicts: for a queue page of 50 flags (the app's busiest page) 0.08 ms,
    against 0.28 ms by ``dict(row._mapping)`` (measured)."""
    keys = list(result.keys())
    return [dict(zip(keys, row)) for row in result]


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


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")
