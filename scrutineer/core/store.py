"""The store: one DuckDB file per workspace (``<workspace>/scrutineer.duckdb``), one writer.

Only a run's driver process opens it read-write; shard tasks write parquet files and the driver
loads them. Its tables and their columns are declared once, in :mod:`scrutineer.core.contract`, and
their DDL is generated from there; this module opens the store, runs transactions, stores findings
and answers the questions every command asks (the latest finished run).

**Findings are stored once per judgement.** A judgement's findings go into ``judged_findings``
the first time a run uses it, and ``run_judgements`` records every run that uses it; the
``findings`` view joins the two, one row per finding of each run, as a table of findings with a
``run_id`` column would hold them. So an unchanged rescan, which reuses every judgement
(:mod:`scrutineer.flows.plan` keys them by their inputs), stores no finding again: its load is a
row per judgement (bench/scan_metadata.py measures it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from scrutineer.core.contract import (
    JUDGEMENT,
    JUDGEMENTS,
    RUN_JUDGEMENTS,
    TABLES,
    VIEWS,
    Table,
    ddl,
)
from scrutineer.core.errors import ConfigError, WorkspaceError
from scrutineer.core.files import keep_private
from scrutineer.core.layout import Layout

#: Run statuses a release, report or rematch may start from.
FINISHED = ("completed", "partial")


def connect(workspace: Path, read_only: bool = False, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    """Open (and create, if needed) the workspace's store, in a workspace only its owner may enter;
    from then on this process creates files for its owner only (:func:`scrutineer.core.files.keep_private`).

    A writable store gets every contract table and view it lacks (a store made before findings
    were stored once per judgement has its ``findings`` table migrated: :func:`_migrate_findings`),
    and runs a process left ``running`` (killed: DuckDB's lock proves no other process holds the
    store) become ``interrupted``. A read-only connection to a store an earlier version made reads
    the tables it lacks as empty, and its ``findings`` as they are. A
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
        kinds = _check_tables(con, workspace)
        for table in TABLES.values():
            if not read_only:
                con.execute(ddl(table))
            elif table.name not in kinds:  # a store an earlier version made, read before any write adds the table: empty
                con.execute(ddl(table).replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
        if not read_only:
            if kinds.get("findings") == "BASE TABLE":
                _migrate_findings(con)
            for view in VIEWS.values():
                con.execute(ddl(view))
            con.execute("UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'", [datetime.now(UTC)])
    except BaseException:
        con.close()
        raise
    return con


def _check_tables(con: duckdb.DuckDBPyConnection, workspace: Path) -> dict[str, str]:
    """The store's tables and views: name -> ``BASE TABLE`` or ``VIEW`` (a contract table it lacks
    was added after an earlier version made it; its ``findings`` is a table if that version made it).

    Raises:
        ConfigError: a table or view has other columns than the contract's.
    """
    have: dict[str, list[str]] = {}
    for table, column in con.sql(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        have.setdefault(table, []).append(column)
    for name, table in {**TABLES, **VIEWS}.items():
        if name in have and have[name] != table.columns:
            raise ConfigError(
                f"workspace {workspace} was made by another version of Scrutineer: table {name} has columns {have[name]}, "
                f"this version expects {table.columns}; use a new workspace"
            )
    return dict(con.sql("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main'").fetchall())


#: The judgement id a migrated store gives a run's findings of one detector (:func:`_migrate_findings`).
MIGRATED_ID = "left(sha256('migrated/' || run_id || '/' || coalesce(detector, '')), 32)"


def _migrate_findings(con: duckdb.DuckDBPyConnection) -> None:
    """Move the ``findings`` table of a store made before findings were stored once per
    judgement into ``judged_findings``, in one transaction: each run's findings of each detector
    become a judgement of their own (id :data:`MIGRATED_ID`) that the run uses; then the table gives
    way to the ``findings`` view, which reads the same rows. Runs after it store the judgements they
    make or reuse once (their ids are the plan's: the migrated ones are not reused)."""
    with transaction(con):
        con.execute(f"INSERT INTO judged_findings BY NAME SELECT {MIGRATED_ID} AS judgement_id, * EXCLUDE (run_id) FROM findings")
        con.execute(
            f"INSERT INTO judgements BY NAME SELECT {MIGRATED_ID} AS judgement_id, detector, count(*) AS findings, run_id AS loaded_by, "
            "? AS loaded_at FROM findings GROUP BY run_id, detector",
            [datetime.now(UTC)],
        )
        con.execute("INSERT INTO run_judgements BY NAME SELECT loaded_by AS run_id, judgement_id FROM judgements")
        con.execute("DROP TABLE findings")


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


def complete_run(con: duckdb.DuckDBPyConnection, dataset: str, workspace: Path, making: str) -> str:
    """The id of ``dataset``'s latest finished run, which must have completed: a partial run's
    failed shards have no findings, so a release, takedown manifest or public summary made from it
    would leave their rows out, and would replace one made from the last complete run.

    Args:
        making: what is being made, for the message (``"releasing"``, ``"a takedown manifest"``).

    Raises:
        WorkspaceError: no run has finished, or the latest is partial.
    """
    run_id, status = latest_run(con, dataset, workspace)
    if status != "completed":
        raise WorkspaceError(f"the latest scan {run_id} is {status}: fix the failed shards and rescan before {making}")
    return run_id


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


def stored_judgements(con: duckdb.DuckDBPyConnection, ids: Iterable[str]) -> set[str]:
    """Those of the judgement ``ids`` whose findings the store holds."""
    ids = list(ids)
    if not ids:
        return set()
    return {j for (j,) in con.execute("SELECT judgement_id FROM judgements WHERE list_contains(?, judgement_id)", [ids]).fetchall()}


def insert_judgement_files(con: duckdb.DuckDBPyConnection, run_id: str, files: dict[str, tuple[str, Path]]) -> None:
    """Store the findings of judgements the store does not hold yet, from their judgement files,
    in one insert (:func:`use_judgements` gives them to a run).

    Args:
        run_id: the run storing them.
        files: judgement id -> (detector, its ``findings.parquet``: the contract's ``JUDGEMENT`` columns).
    """
    if not files:
        return
    paths = [str(p) for _, p in files.values()]
    # each row's judgement by its file's position in the list, as fast as a plain insert (the file
    # name is one value per chunk); a join on the file name instead ran out of a 1 GB memory_limit
    # inserting 7.5M findings (measured 2026-12-06)
    con.execute(f"INSERT INTO judged_findings BY NAME SELECT $ids[list_position($paths, filename)] AS judgement_id, {', '.join(JUDGEMENT.names)} "
                "FROM read_parquet($paths, filename = true)", {"ids": list(files), "paths": paths})
    counts = dict(con.execute("SELECT file_name, num_rows FROM parquet_file_metadata(?)", [paths]).fetchall())
    now = datetime.now(UTC)
    insert(con, JUDGEMENTS, [{"judgement_id": j, "detector": detector, "findings": counts[str(path)], "loaded_by": run_id, "loaded_at": now}
                             for j, (detector, path) in files.items()])


def insert_judgement(con: duckdb.DuckDBPyConnection, run_id: str, judgement_id: str, detector: str, select: str, params: list | None = None) -> None:
    """Store the findings of a judgement the store does not hold yet, from a query (a corpus
    detector's ``finalize``, the crowd's flags); :func:`use_judgements` gives them to a run.

    Args:
        run_id: the run storing it.
        select: a ``SELECT`` with the columns of the contract's ``JUDGEMENT``, matched by name.
        params: the values of its ``?`` parameters.
    """
    (found,) = con.execute(f"INSERT INTO judged_findings BY NAME SELECT ? AS judgement_id, * FROM ({select})",
                           [judgement_id, *(params or [])]).fetchone()
    insert(con, JUDGEMENTS, [{"judgement_id": judgement_id, "detector": detector, "findings": found, "loaded_by": run_id, "loaded_at": datetime.now(UTC)}])


def use_judgements(con: duckdb.DuckDBPyConnection, run_id: str, ids: Iterable[str]) -> None:
    """Give run ``run_id`` the findings of the stored judgements ``ids`` (one already given is skipped)."""
    insert(con, RUN_JUDGEMENTS, [{"run_id": run_id, "judgement_id": j} for j in sorted(set(ids))], on_conflict="ignore")


def insert_findings(con: duckdb.DuckDBPyConnection, run_id: str, rows: list[dict]) -> None:
    """Give run ``run_id`` findings no judgement set holds (the crowd's confirmed flags): per
    detector, one judgement keyed by its rows (the first 32 hex characters of the sha256 of their
    JSON), stored unless the store holds it (an unchanged set of flags is stored once).

    Args:
        rows: dicts keyed by exactly the contract's ``JUDGEMENT`` columns.

    Raises:
        ValueError: a row's keys are not those columns.
    """
    by_detector: dict[str, list[dict]] = {}
    for row in rows:
        if set(row) != set(JUDGEMENT.names):
            raise ValueError(f"a finding needs columns {JUDGEMENT.names}, got {sorted(row)}")
        by_detector.setdefault(row["detector"], []).append(row)
    ids = {}
    for detector, found in by_detector.items():
        key = json.dumps({"detector": detector, "findings": sorted(json.dumps(r, sort_keys=True, default=str) for r in found)})
        ids[hashlib.sha256(key.encode()).hexdigest()[:32]] = (detector, found)
    stored = stored_judgements(con, ids)
    for judgement_id, (detector, found) in ids.items():
        if judgement_id not in stored:
            con.register("new_findings", pa.Table.from_pylist(found, schema=JUDGEMENT))
            insert_judgement(con, run_id, judgement_id, detector, "SELECT * FROM new_findings")
            con.unregister("new_findings")
    use_judgements(con, run_id, ids)


def drop_findings(con: duckdb.DuckDBPyConnection, run_id: str, detector: str) -> None:
    """Take detector ``detector``'s findings from run ``run_id`` (the crowd's, before a sync gives
    the run the current ones). The judgements stay stored until :func:`drop_unused_judgements`."""
    con.execute("DELETE FROM run_judgements WHERE run_id = ? AND judgement_id IN (SELECT judgement_id FROM judgements WHERE detector = ?)",
                [run_id, detector])


#: The judgements no run uses (a sync's flags that a later sync replaced in every run that had them).
UNUSED_JUDGEMENTS = "SELECT judgement_id, findings FROM judgements ANTI JOIN run_judgements USING (judgement_id)"


def drop_unused_judgements(con: duckdb.DuckDBPyConnection, dry_run: bool = False) -> tuple[int, int]:
    """Delete the judgements no run uses, and their findings, in one transaction.

    Returns:
        (judgements, findings) deleted, or with ``dry_run`` that would be (nothing is).
    """
    unused = con.execute(UNUSED_JUDGEMENTS).fetchall()
    if unused and not dry_run:
        with transaction(con):
            ids = [j for j, _ in unused]
            con.execute("DELETE FROM judged_findings WHERE list_contains(?, judgement_id)", [ids])
            con.execute("DELETE FROM judgements WHERE list_contains(?, judgement_id)", [ids])
    return len(unused), sum(n for _, n in unused)


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
