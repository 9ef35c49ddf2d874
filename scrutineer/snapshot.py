"""The review snapshot: what the review app and ``flags import`` read of the latest run, apart
from the findings store, so that they never wait for (or block) the scan that holds its lock.

The store's writer publishes it after each run (and after ``sync``) as ``<workspace>/review.duckdb``,
a small DuckDB file built under a temporary name and renamed into place (readers that have the
previous one open keep reading it). It holds:

- ``samples`` (sample_id, shard_id, row_index, url, caption): the run's samples, copied from its
  stored rows observations (``observations/<id>/rows.parquet``) with an ART index on
  ``sample_id``, so that a flag finds its sample in ~1 ms (a scan of the Parquet files took 8 ms
  at 150,000 samples and 17 ms at 10M; the copy and index cost ~0.75 s and ~70 MB per million
  samples, measured for issue 11);
- ``findings`` (sample_id, shard_id, row_index, url, detector, reason, restricted, evidence JSON):
  the run's findings (the app shows a restricted finding's URL to reviewers and maintainers only);
- ``report``: the run's watchdog report data (:func:`reports.data.report_data`) as one JSON value.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa

from scrutineer.crowd import Sample
from scrutineer.errors import WorkspaceError
from scrutineer import store
from scrutineer.files import temporary_sibling

NAME = "review.duckdb"
_SAMPLE_COLUMNS = "sample_id, shard_id, row_index, url, caption"


def publish(con: duckdb.DuckDBPyConnection, workspace: Path, run_id: str, report: dict[str, Any]) -> Path:
    """Write the snapshot of ``run_id`` from the store's writable connection ``con``.

    Returns:
        The snapshot's path.

    Raises:
        duckdb.Error, OSError: it could not be written; the previous snapshot is left as it was.
    """
    files = store.rows_files(con, workspace, run_id)
    out = workspace / NAME
    tmp = temporary_sibling(out)
    con.execute("ATTACH ? AS snapshot", [str(tmp)])
    try:
        con.execute("CREATE TABLE snapshot.samples (sample_id VARCHAR, shard_id VARCHAR, row_index BIGINT, url VARCHAR, caption VARCHAR)")
        if files:
            paths = [str(p) for p in files.values()]
            con.register("snapshot_files", pa.table({"filename": paths, "shard_id": list(files)}))
            con.execute(
                "INSERT INTO snapshot.samples SELECT r.sample_id, f.shard_id, r.row_index, r.url, r.caption "
                "FROM read_parquet(?, filename = true) r JOIN snapshot_files f USING (filename)",
                [paths],
            )
            con.unregister("snapshot_files")
        con.execute("CREATE INDEX samples_by_id ON snapshot.samples (sample_id)")
        con.execute(
            "CREATE TABLE snapshot.findings AS SELECT sample_id, shard_id, row_index, url, detector, reason, restricted, evidence "
            "FROM findings WHERE run_id = ? ORDER BY sample_id",
            [run_id],
        )
        con.execute("CREATE TABLE snapshot.report AS SELECT ?::JSON AS data, ? AS run_id", [json.dumps(report), run_id])
        con.execute("DETACH snapshot")
        os.replace(tmp, out)
    except BaseException:
        con.execute("DETACH DATABASE IF EXISTS snapshot")
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    return out


class Snapshot:
    """The latest published snapshot of a workspace, read-only; reopened when a newer one is
    published. Safe to share between threads (each call uses its own DuckDB cursor).

    Args:
        workspace: the workspace directory.
    """

    def __init__(self, workspace: Path) -> None:
        self.path = Path(workspace) / NAME
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._inode: int | None = None
        self._restricted: frozenset[str] = frozenset()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._latest().cursor()

    def _latest(self) -> duckdb.DuckDBPyConnection:
        """The connection to the latest snapshot, reopened (and its restricted samples reread)
        when a newer one has been published.

        Raises:
            WorkspaceError: none is published.
        """
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            raise WorkspaceError(f"no review snapshot in {self.path.parent}: run `scrutineer scan` first") from None
        with self._lock:
            if inode != self._inode:
                if self._con is not None:
                    self._con.close()
                # one thread per query: the app's lookups are point queries, and its requests run in parallel already
                self._con = duckdb.connect(str(self.path), read_only=True, config={"threads": 1})
                self._inode = inode
                # few samples are restricted (LAION removed 2,236 of 5.8 billion): every page asks, so keep them in memory
                self._restricted = frozenset(r[0] for r in self._con.execute("SELECT DISTINCT sample_id FROM findings WHERE restricted").fetchall())
            return self._con

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def run_id(self) -> str:
        with self._cursor() as cur:
            return cur.execute("SELECT run_id FROM report").fetchone()[0]

    def report(self) -> dict[str, Any]:
        """The run's report data (:func:`reports.data.report_data`)."""
        with self._cursor() as cur:
            return json.loads(cur.execute("SELECT data FROM report").fetchone()[0])

    def resolve(self, sample_ids: list[str], urls: list[str]) -> tuple[dict[str, Sample], dict[str, list[Sample]]]:
        """Look samples up by id and by URL.

        Returns:
            ({sample_id: sample}, {url: [samples with that URL]}); ids and URLs not in the run are
            absent.
        """
        with self._cursor() as cur:
            # one id: the index answers `=`; many: a join
            by_id = (
                cur.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE sample_id = ?", sample_ids).fetchall() if len(sample_ids) == 1
                else cur.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE sample_id IN (SELECT unnest(?))", [sample_ids]).fetchall() if sample_ids
                else []
            )
            by_url = cur.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE list_contains(?, url) ORDER BY shard_id, row_index", [urls]).fetchall() if urls else []
        out: dict[str, list[Sample]] = {}
        for row in by_url:
            out.setdefault(row[3], []).append(Sample(*row))
        return {row[0]: Sample(*row) for row in by_id}, out

    def findings(self, sample_id: str) -> list[dict[str, Any]]:
        """The run's findings of one sample: dicts of detector, reason, restricted, evidence (parsed)."""
        with self._cursor() as cur:
            rows = cur.execute("SELECT detector, reason, restricted, evidence FROM findings WHERE sample_id = ? ORDER BY reason", [sample_id]).fetchall()
        return [{"detector": d, "reason": r, "restricted": x, "evidence": json.loads(e) if e else None} for d, r, x, e in rows]

    def restricted(self, sample_ids: list[str]) -> set[str]:
        """Which of ``sample_ids`` have a restricted finding (a hash-bank match, a sensitive crowd flag)."""
        self._latest()
        return self._restricted.intersection(sample_ids)

    def takedown(self) -> list[dict[str, Any]]:
        """The run's restricted findings (restricted: for maintainers only), as dicts of url,
        reason, bank, bank_version, sample_id, shard_id, row_index; sorted by URL and reason."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT url, reason, evidence->>'bank', evidence->>'bank_version', sample_id, shard_id, row_index FROM findings "
                "WHERE restricted ORDER BY url, reason, shard_id, row_index"
            ).fetchall()
        return [dict(zip(["url", "reason", "bank", "bank_version", "sample_id", "shard_id", "row_index"], r)) for r in rows]
