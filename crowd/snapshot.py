"""The review snapshot: what the review app and ``flags import`` read of the latest run, apart
from the findings store, so that they never wait for (or block) the scan that holds its lock.

The store's writer publishes it after each run (and after ``sync``) as ``<workspace>/review.duckdb``,
a small DuckDB file built under a temporary name and renamed into place (readers that have the
previous one open keep reading it). It holds:

- ``samples`` (sample_id, shard_id, row_index, url, caption, license): the run's samples, copied from its
  stored rows observations (``observations/<id>/rows.parquet``) with an ART index on
  ``sample_id``, so that a flag finds its sample in ~1 ms (a scan of the Parquet files took 8 ms
  at 150,000 samples and 17 ms at 10M; the copy and index cost ~0.75 s and ~70 MB per million
  samples, measured for issue 11);
- ``findings`` (sample_id, shard_id, row_index, url, detector, reason, restricted, evidence JSON):
  the run's findings, with an ART index on ``sample_id`` (the app shows a restricted finding's URL to reviewers and maintainers only);
- ``takedown``: the run's takedown rows (:data:`scrutineer.reports.takedown.TAKEDOWN_SQL`), for the maintainer's takedown
  view and its downloads, the same rows ``scrutineer takedown`` writes;
- ``holds``: the run's bank entries the flood guard held (:data:`scrutineer.core.contract.HOLDS`),
  for the maintainers' holds page, which adds the decisions from the crowd store;
- ``report``: the run's watchdog report data (:func:`scrutineer.reports.data.report_data`) as one JSON value.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Literal, Self

import duckdb
import pyarrow as pa

from scrutineer.core import store
from scrutineer.core.errors import WorkspaceError
from scrutineer.core.files import temporary_sibling
from scrutineer.core.layout import Layout
from scrutineer.crowd.flags import Sample
from scrutineer.reports.takedown import TAKEDOWN_COLUMNS, TAKEDOWN_SQL

#: How a sample is named: ``("sample_id", id)`` or ``("url", url)``.
SampleKey = tuple[Literal["sample_id", "url"], str]
#: :meth:`Snapshot.samples` looks ids up this many at a time, each group by one join that DuckDB
#: answers from the ``sample_id`` index: the snapshot's connections raise ``dynamic_or_filter_threshold``
#: (default 50: a join with more keys scans the table) to this. Measured on 2 million samples: 50 ids
#: in ~2 ms, 1,000 in ~60 ms; a scan takes ~100 ms there and grows with the run.
LOOKUP_IDS = 1000

# What :func:`publish` runs on the store's connection, the new snapshot attached as ``snapshot``.
CREATE_SAMPLES = "CREATE TABLE snapshot.samples (sample_id VARCHAR, shard_id VARCHAR, row_index BIGINT, url VARCHAR, caption VARCHAR, license VARCHAR)"
#: The samples of the rows files ``$files``, each file's shard from the registered table
#: ``snapshot_files`` (filename, shard_id).
COPY_SAMPLES = """
    INSERT INTO snapshot.samples
    SELECT r.sample_id, f.shard_id, r.row_index, r.url, r.caption, r.license
    FROM read_parquet($files, filename = true) r JOIN snapshot_files f USING (filename)
"""
INDEX_SAMPLES = "CREATE INDEX samples_by_id ON snapshot.samples (sample_id)"
#: The findings by sample: a sample's page and a flag's page read a sample's findings by it
#: (bench/serve_load.py, 150,000 samples: 7.6 ms of CPU per lookup by scan, 1.5 ms by the index).
INDEX_FINDINGS = "CREATE INDEX findings_by_sample ON snapshot.findings (sample_id)"
#: Run ``$run_id``'s findings.
COPY_FINDINGS = """
    CREATE TABLE snapshot.findings AS
    SELECT sample_id, shard_id, row_index, url, detector, reason, restricted, evidence
    FROM findings WHERE run_id = $run_id ORDER BY sample_id
"""
#: Run ``$run_id``'s takedown rows.
COPY_TAKEDOWN = f"CREATE TABLE snapshot.takedown AS {TAKEDOWN_SQL}"
#: Run ``$run_id``'s flood-guard holds (restricted: for maintainers only; scrutineer.core.flood).
COPY_HOLDS = "CREATE TABLE snapshot.holds AS SELECT * FROM holds WHERE run_id = $run_id"
#: Run ``$run_id``'s report data, ``$report`` (JSON text).
COPY_REPORT = "CREATE TABLE snapshot.report AS SELECT $report::JSON AS data, $run_id AS run_id"

# What :class:`Snapshot` reads.
_SAMPLES = "SELECT sample_id, shard_id, row_index, url, caption, license FROM samples"
#: The samples of the ids ``$ids`` (by the index).
SAMPLES_BY_ID = f"{_SAMPLES} WHERE sample_id IN (SELECT unnest($ids))"
#: The samples of the URLs ``$urls``, in shard and row order.
SAMPLES_BY_URL = f"{_SAMPLES} WHERE list_contains($urls, url) ORDER BY shard_id, row_index"
#: The findings of sample ``$sample_id``.
FINDINGS_OF_SAMPLE = "SELECT detector, reason, restricted, evidence FROM findings WHERE sample_id = $sample_id ORDER BY reason"
#: The takedown rows, their columns in :data:`~scrutineer.reports.takedown.TAKEDOWN_COLUMNS`'s order.
TAKEDOWN_ROWS = f"SELECT {', '.join(TAKEDOWN_COLUMNS)} FROM takedown"


def publish(con: duckdb.DuckDBPyConnection, workspace: Path, run_id: str, report: dict[str, Any]) -> Path:
    """Write the snapshot of ``run_id`` from the store's writable connection ``con``.

    Returns:
        The snapshot's path.

    Raises:
        duckdb.Error, OSError: it could not be written; the previous snapshot is left as it was.
    """
    files = store.rows_files(con, workspace, run_id)
    out = Layout(workspace).snapshot
    tmp = temporary_sibling(out)
    con.execute("ATTACH ? AS snapshot", [str(tmp)])
    try:
        con.execute(CREATE_SAMPLES)
        if files:
            paths = [str(p) for p in files.values()]
            con.register("snapshot_files", pa.table({"filename": paths, "shard_id": list(files)}))
            con.execute(COPY_SAMPLES, {"files": paths})
            con.unregister("snapshot_files")
        con.execute(INDEX_SAMPLES)
        con.execute(COPY_FINDINGS, {"run_id": run_id})
        con.execute(INDEX_FINDINGS)
        con.execute(COPY_TAKEDOWN, {"run_id": run_id})
        con.execute(COPY_HOLDS, {"run_id": run_id})
        con.execute(COPY_REPORT, {"report": json.dumps(report), "run_id": run_id})
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
        self.path = Layout(Path(workspace)).snapshot
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
                self._con = duckdb.connect(str(self.path), read_only=True, config={"threads": 1, "dynamic_or_filter_threshold": LOOKUP_IDS})
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
        """The run's report data (:func:`scrutineer.reports.data.report_data`)."""
        with self._cursor() as cur:
            return json.loads(cur.execute("SELECT data FROM report").fetchone()[0])

    def samples(self, keys: list[SampleKey]) -> list[list[Sample]]:
        """The samples each key names, in order: ``("sample_id", id)`` names that sample,
        ``("url", url)`` every sample with that URL (in shard and row order); ``[]`` when the run
        has none.

        Ids are looked up by the index, :data:`LOOKUP_IDS` at a time (the cost grows with the ids,
        not with the run); URLs by one scan of the run's samples.

        Raises:
            WorkspaceError: no review snapshot yet.
        """
        ids = list({value for kind, value in keys if kind == "sample_id"})
        urls = list({value for kind, value in keys if kind == "url"})
        with self._cursor() as cur:
            by_id = [row for start in range(0, len(ids), LOOKUP_IDS)
                     for row in cur.execute(SAMPLES_BY_ID, {"ids": ids[start:start + LOOKUP_IDS]}).fetchall()]
            by_url = cur.execute(SAMPLES_BY_URL, {"urls": urls}).fetchall() if urls else []
        found: dict[SampleKey, list[Sample]] = {}
        for row in by_id:
            found[("sample_id", row[0])] = [Sample(*row)]
        for row in by_url:
            found.setdefault(("url", row[3]), []).append(Sample(*row))
        return [found.get(key, []) for key in keys]

    def findings(self, sample_id: str) -> list[dict[str, Any]]:
        """The run's findings of one sample: dicts of detector, reason, restricted, evidence (parsed)."""
        with self._cursor() as cur:
            rows = cur.execute(FINDINGS_OF_SAMPLE, {"sample_id": sample_id}).fetchall()
        return [{"detector": d, "reason": r, "restricted": x, "evidence": json.loads(e) if e else None} for d, r, x, e in rows]

    def restricted(self, sample_ids: list[str]) -> set[str]:
        """Which of ``sample_ids`` have a restricted finding (a hash-bank match, a sensitive crowd flag)."""
        self._latest()
        return self._restricted.intersection(sample_ids)

    def takedown(self) -> list[dict[str, Any]]:
        """The run's takedown rows (:data:`scrutineer.reports.takedown.TAKEDOWN_SQL`; restricted: for maintainers only), as
        dicts keyed by :data:`~scrutineer.reports.takedown.TAKEDOWN_COLUMNS`, unordered.

        Raises:
            WorkspaceError: no review snapshot yet, or one published before it held them.
        """
        with self._cursor() as cur:
            try:
                rows = cur.execute(TAKEDOWN_ROWS).fetchall()
            except duckdb.CatalogException:
                raise WorkspaceError(f"the review snapshot in {self.path.parent} predates the takedown list: "
                                     "`scrutineer sync` (or a scan) publishes it again") from None
        return [dict(zip(TAKEDOWN_COLUMNS, r)) for r in rows]

    def holds(self) -> list[dict[str, Any]]:
        """The run's held bank entries (restricted: for maintainers only), biggest first: dicts of
        the store's ``holds`` columns; ``[]`` from a snapshot published before it held them."""
        with self._cursor() as cur:
            try:
                found = cur.execute("SELECT * FROM holds ORDER BY matches DESC, hold_id")
            except duckdb.CatalogException:
                return []
            names = [d[0] for d in found.description]
            return [dict(zip(names, r)) for r in found.fetchall()]
