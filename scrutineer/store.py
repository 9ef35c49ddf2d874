"""The store: one DuckDB file per workspace (``<workspace>/scrutineer.duckdb``), one writer.

Only the flow's driver process opens it read-write; shard tasks write parquet files and the driver
loads them. Tables:

- ``runs``: run_id, dataset, started_at, finished_at, status (running|completed|partial|failed),
  tool_version, config (JSON, resolved), detectors (JSON: name, version, params), banks (JSON).
- ``shards``: run_id, shard_id, location, format, sha256, fingerprint, rows, status
  (done|skipped|failed), error, seconds.
- ``findings``: run_id, shard_id, row_index, sample_id, url, detector, detector_version, reason,
  action, score, evidence (a JSON object as text: query it with ``evidence->>'key'``), restricted.
- ``fetches``: run_id, shard_id, url, fetched_at, status (alive|dead|moved|not_image|transient|
  blocked|invalid), http_status, final_url, content_type, bytes, elapsed (seconds), attempts,
  error, x_robots_tag. One row per check of a URL.
- ``content_hashes``: run_id, shard_id, row_index, sample_id, url, md5, sha1, sha256, pdq,
  pdq_quality, phash, width, height, bytes. One row per sample whose bytes were hashed. Restricted
  like ``findings``; the bytes themselves are never stored.
- ``banks``: name, source, version, signal_type, sha256 (of the list file), entries, registered_at.
- ``bank_entries``: bank_sha256, signal_type, hash. Restricted: never exported.
- ``releases``: release_id, run_id, variant, path, created_at, manifest_sha256.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from scrutineer.errors import WorkspaceError

if TYPE_CHECKING:
    from scrutineer.banks import Bank

DB_NAME = "scrutineer.duckdb"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    status VARCHAR, tool_version VARCHAR, config JSON, detectors JSON, banks JSON
);
CREATE TABLE IF NOT EXISTS shards (
    run_id VARCHAR, shard_id VARCHAR, location VARCHAR, format VARCHAR, sha256 VARCHAR,
    fingerprint VARCHAR, rows BIGINT, status VARCHAR, error VARCHAR, seconds DOUBLE,
    PRIMARY KEY (run_id, shard_id)
);
CREATE TABLE IF NOT EXISTS findings (
    run_id VARCHAR, shard_id VARCHAR, row_index BIGINT, sample_id VARCHAR, url VARCHAR,
    detector VARCHAR, detector_version VARCHAR, reason VARCHAR, action VARCHAR, score DOUBLE,
    evidence VARCHAR, restricted BOOLEAN
);
CREATE TABLE IF NOT EXISTS fetches (
    run_id VARCHAR, shard_id VARCHAR, url VARCHAR, fetched_at TIMESTAMPTZ, status VARCHAR,
    http_status INTEGER, final_url VARCHAR, content_type VARCHAR, bytes BIGINT, elapsed DOUBLE,
    attempts INTEGER, error VARCHAR, x_robots_tag VARCHAR
);
CREATE TABLE IF NOT EXISTS content_hashes (
    run_id VARCHAR, shard_id VARCHAR, row_index BIGINT, sample_id VARCHAR, url VARCHAR,
    md5 VARCHAR, sha1 VARCHAR, sha256 VARCHAR, pdq VARCHAR, pdq_quality INTEGER, phash VARCHAR,
    width INTEGER, height INTEGER, bytes BIGINT
);
CREATE TABLE IF NOT EXISTS banks (
    name VARCHAR, source VARCHAR, version VARCHAR, signal_type VARCHAR, sha256 VARCHAR,
    entries BIGINT, registered_at TIMESTAMPTZ, PRIMARY KEY (name, sha256)
);
CREATE TABLE IF NOT EXISTS bank_entries (bank_sha256 VARCHAR, signal_type VARCHAR, hash VARCHAR);
CREATE TABLE IF NOT EXISTS releases (
    release_id VARCHAR PRIMARY KEY, run_id VARCHAR, variant VARCHAR, path VARCHAR,
    created_at TIMESTAMPTZ, manifest_sha256 VARCHAR
);
"""


def connect(workspace: Path, read_only: bool = False, memory_limit: str = "1GB", external_access: bool = True) -> duckdb.DuckDBPyConnection:
    """Open (and create, if needed) the workspace's store.

    Args:
        memory_limit: DuckDB's ``memory_limit``; bigger joins and sorts spill to
            ``<workspace>/.duckdb_tmp``.
        external_access: DuckDB's ``enable_external_access``. False confines SQL to the store: no
            other file can be read, written or attached (``read_csv``, ``COPY ... TO``, ``ATTACH``),
            nothing installed, and the setting cannot be turned back on
            (https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview).

    Raises:
        WorkspaceError: ``workspace`` is not a directory and cannot be made one; another process
            holds the database (DuckDB admits one process per file while one writes, even a
            read-only second one fails: https://duckdb.org/docs/stable/connect/concurrency); or
            the database cannot be opened (not a DuckDB file, read-only and missing).
    """
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exist_ok admits only a directory
        raise WorkspaceError(f"workspace {workspace} is not a directory") from None
    except OSError as e:  # a file on its path, no permission
        raise WorkspaceError(f"workspace {workspace} cannot be created: {e.strerror}") from None
    try:
        con = duckdb.connect(
            str(workspace / DB_NAME),
            read_only=read_only,
            config={
                # before temp_directory: DuckDB 2.0 refuses temp_directory given after it is off
                "enable_external_access": external_access,
                "memory_limit": memory_limit,
                "temp_directory": str(workspace / ".duckdb_tmp"),
                "preserve_insertion_order": False,
            },
        )
    except duckdb.IOException as e:
        if "Could not set lock on file" in str(e):  # DuckDB has no exception class of its own for it
            raise WorkspaceError(f"workspace {workspace} is in use by another process; try again when it has finished ({e})") from None
        raise WorkspaceError(f"workspace {workspace}: cannot open its store ({e})") from None
    if not read_only:
        con.execute(SCHEMA)
    return con


def latest_run(con: duckdb.DuckDBPyConnection, dataset: str) -> tuple[str, str] | None:
    """(run_id, status) of the dataset's most recent finished run (completed or partial), or None."""
    rows = con.sql(
        "SELECT run_id, status FROM runs WHERE dataset = ? AND status IN ('completed', 'partial') "
        "ORDER BY finished_at DESC LIMIT 1",
        params=[dataset],
    ).fetchall()
    return rows[0] if rows else None


def register_banks(con: duckdb.DuckDBPyConnection, banks: list[Bank]) -> list[Bank]:
    """Record each bank (and its entries, once per file sha256) in the store.

    Returns:
        The banks that were not registered before (new, or a new version of the file).
    """
    new = []
    now = datetime.now(UTC)
    for b in banks:
        c = b.config
        known = con.sql("SELECT count(*) FROM banks WHERE name = ? AND sha256 = ?", params=[c.name, b.sha256]).fetchall()[0][0]
        if not known:
            new.append(b)
            con.execute(
                "INSERT INTO banks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [c.name, c.source, c.version, c.signal_type, b.sha256, len(b.entries), now],
            )
        has_entries = con.sql("SELECT count(*) FROM bank_entries WHERE bank_sha256 = ?", params=[b.sha256]).fetchall()[0][0]
        if not has_entries:
            entries = pa.table({"hash": b.entries})
            con.register("new_entries", entries)
            con.execute("INSERT INTO bank_entries SELECT ?, ?, hash FROM new_entries", [b.sha256, c.signal_type])
            con.unregister("new_entries")
    return new
