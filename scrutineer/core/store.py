"""The store: one DuckDB file per workspace (``<workspace>/scrutineer.duckdb``), one writer.

Only a run's driver process opens it read-write; shard tasks write parquet files and the driver
loads them. Its tables and their columns are declared once, in :mod:`scrutineer.core.contract`, and
their DDL is generated from there; this module opens the store, runs transactions and answers the
questions every command asks (the latest finished run).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from scrutineer.core.contract import TABLES, Table, ddl
from scrutineer.core.errors import ConfigError, WorkspaceError
from scrutineer.core.files import keep_private
from scrutineer.core.layout import Layout

#: Run statuses a release, report or rematch may start from.
FINISHED = ("completed", "partial")


def connect(workspace: Path, read_only: bool = False, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    """Open (and create, if needed) the workspace's store, in a workspace only its owner may enter;
    from then on this process creates files for its owner only (:func:`scrutineer.core.files.keep_private`).

    A writable store gets every contract table it lacks, and runs a process left ``running``
    (killed: DuckDB's lock proves no other process holds the store) become ``interrupted``. A
    read-only connection has DuckDB's external access disabled: it can read the store and nothing
    else, and write nowhere (``COPY ... TO``, ``read_csv('/etc/passwd')`` fail).

    Args:
        memory_limit: DuckDB's ``memory_limit``; bigger joins and sorts spill to
            the workspace's spill directory (:attr:`~scrutineer.core.layout.Layout.spill`).

    Raises:
        WorkspaceError: ``workspace`` is not a directory and cannot be made one; another process
            holds the store (DuckDB admits one process per file while one writes: even a read-only
            second one fails, https://duckdb.org/docs/stable/connect/concurrency); the store is not
            a DuckDB database; or (read-only) there is no store yet.
        ConfigError: the store was made by a Scrutineer whose tables differ from this one's.
    """
    try:
        keep_private(workspace)
    except FileExistsError:  # exist_ok admits only a directory
        raise WorkspaceError(f"workspace {workspace} is not a directory") from None
    except OSError as e:  # a file on its path, no permission
        raise WorkspaceError(f"workspace {workspace} cannot be created: {e.strerror}") from None
    layout = Layout(workspace)
    if read_only and not layout.store.exists():
        raise WorkspaceError(f"no store in workspace {workspace}: run `scrutineer scan` first")
    try:
        con = duckdb.connect(
            str(layout.store),
            read_only=read_only,
            config={  # DuckDB 2.0 refuses temp_directory unless enable_external_access comes first
                "enable_external_access": not read_only,
                "memory_limit": memory_limit,
                "preserve_insertion_order": False,
                "temp_directory": str(layout.spill),
            },
        )
    except duckdb.IOException as e:
        if "Could not set lock on file" in str(e):  # DuckDB has no exception class of its own for it
            raise WorkspaceError(f"workspace {workspace} is in use by another process (a scan?); try again when it has finished ({e})") from None
        raise WorkspaceError(f"workspace {workspace}: cannot open its store ({e})") from None
    try:
        missing = _check_tables(con, workspace)
        for table in TABLES.values():
            if not read_only:
                con.execute(ddl(table))
            elif table.name in missing:  # a store an earlier version made, read before any write adds the table: empty
                con.execute(ddl(table).replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
        if not read_only:
            con.execute("UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'", [datetime.now(UTC)])
    except BaseException:
        con.close()
        raise
    return con


def _check_tables(con: duckdb.DuckDBPyConnection, workspace: Path) -> set[str]:
    """The names of the contract's tables the store lacks (an earlier version made it).

    Raises:
        ConfigError: a table has other columns than the contract's.
    """
    have: dict[str, list[str]] = {}
    for table, column in con.sql(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        have.setdefault(table, []).append(column)
    for name, table in TABLES.items():
        if name in have and have[name] != table.columns:
            raise ConfigError(
                f"workspace {workspace} was made by another version of Scrutineer: table {name} has columns {have[name]}, "
                f"this version expects {table.columns}; use a new workspace"
            )
    return set(TABLES) - set(have)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN, then COMMIT, or ROLLBACK on any error and raise that error (never the rollback's own
    failure: after a fatal error such as a full disk DuckDB has no transaction left to roll back)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the error being raised says what went wrong
        raise
    con.execute("COMMIT")


def latest_run(con: duckdb.DuckDBPyConnection, dataset: str | None, workspace: Path) -> tuple[str, str]:
    """(run_id, status) of the most recent finished run (completed or partial) of ``dataset``, or
    of any dataset when it is None.

    Raises:
        WorkspaceError: no such run has finished in this workspace.
    """
    rows = con.sql(
        "SELECT run_id, status FROM runs WHERE (? IS NULL OR dataset = ?) AND list_contains(?, status) ORDER BY finished_at DESC LIMIT 1",
        params=[dataset, dataset, list(FINISHED)],
    ).fetchall()
    if not rows:
        of = f" of {dataset!r}" if dataset is not None else ""
        raise WorkspaceError(f"no finished scan{of} in {workspace}: run `scrutineer scan` first")
    return rows[0]


def insert(con: duckdb.DuckDBPyConnection, table: Table, rows: list[dict], on_conflict: Literal["replace", "ignore"] | None = None) -> None:
    """Insert rows into a store table, by the contract's column names.

    Args:
        rows: one dict per row, keyed by exactly the table's columns.
        on_conflict: what a row whose primary key is stored already does: ``replace`` the stored
            row, ``ignore`` itself, or (None) fail the insert.

    Raises:
        ValueError: a row's keys are not the table's columns.
        duckdb.ConstraintException: a primary key stored already, with ``on_conflict`` None.
    """
    for row in rows:
        if set(row) != set(table.columns):
            raise ValueError(f"a {table.name} row needs columns {table.columns}, got {sorted(row)}")
    if rows:
        name = f"new_{table.name}"
        con.register(name, pa.Table.from_pylist(rows, schema=table.schema))
        verb = f"INSERT OR {on_conflict.upper()}" if on_conflict else "INSERT"
        con.execute(f"{verb} INTO {table.name} BY NAME SELECT * FROM {name}")
        con.unregister(name)


def insert_findings(con: duckdb.DuckDBPyConnection, run_id: str, select: str, params: list | None = None) -> None:
    """Insert findings for ``run_id``: the one writer of the ``findings`` table, for detectors'
    judgement files and corpus-level ``finalize`` steps alike.

    Args:
        select: a ``SELECT`` whose columns are those of the contract's ``findings`` table but
            ``run_id``, matched by name.
    """
    con.execute(f"INSERT INTO findings BY NAME SELECT ? AS run_id, * FROM ({select})", [run_id, *(params or [])])


#: SQL selecting the content observations a run's content is made of (``observation_id``,
#: ``observed_at``): each of its shards' content observation and, for one a recheck made, those it
#: was made from (the same first scan, ``key.base``, observed no later). A recheck stores only
#: its new checks (``fetches``) and the hashes they got (``content_hashes``); the rest of a
#: shard's checks and hashes are its lineage's. One parameter: the run id.
CONTENT_LINEAGE = (
    "WITH made AS (SELECT coalesce(o.key->>'base', o.observation_id) AS base, o.observed_at FROM observations o "
    "JOIN shards s ON o.observation_id = s.content_observation WHERE s.run_id = ?) "
    "SELECT o.observation_id, o.observed_at FROM observations o JOIN made m ON coalesce(o.key->>'base', o.observation_id) = m.base "
    "AND o.observed_at <= m.observed_at WHERE o.kind = 'content'"
)


def rows_files(con: duckdb.DuckDBPyConnection, workspace: Path, run_id: str) -> dict[str, Path]:
    """shard_id -> the ``rows.parquet`` observation of each shard of run ``run_id`` whose rows
    were read (a failed shard has none)."""
    found = con.execute(
        "SELECT s.shard_id, s.rows_observation FROM shards s JOIN observations o ON o.observation_id = s.rows_observation "
        "WHERE s.run_id = ? ORDER BY s.shard_id",
        [run_id],
    ).fetchall()
    layout = Layout(workspace)
    return {shard_id: layout.observation(observation_id) / Layout.ROWS for shard_id, observation_id in found}
