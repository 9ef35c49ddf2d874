"""Read a workspace from Python: the store's tables as DuckDB relations.

Example (a notebook)::

    from scrutineer import Workspace

    with Workspace("work") as ws:
        ws.findings(reason="duplicate").df()           # pandas
        ws.findings(detector="dead_links").arrow()     # Arrow
        ws.fetches(url="https://example.com/a.jpg").fetchall()
        ws.sql("SELECT reason, count(*) FROM findings GROUP BY ALL").show()

A :class:`Workspace` opens the store read-only, with DuckDB's external access disabled (it reads
the store and nothing else). DuckDB admits one process per store file while a scan writes it, so
open a workspace between runs. The command line's read-only commands (``query``, ``report``,
``takedown``, ``banks``) use this class. Columns are documented in :mod:`scrutineer.core.contract`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import duckdb

from scrutineer.core import store
from scrutineer.core.policy import reason_filter_sql


class Workspace:
    """A workspace's store, read-only.

    Args:
        path: the workspace directory (the config's ``workspace``).

    Raises:
        WorkspaceError: no store there, or another process holds it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.con = store.connect(self.path, read_only=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def sql(self, query: str, params: list | None = None) -> duckdb.DuckDBPyRelation:
        """Any read-only query on the store."""
        return self.con.sql(query, params=params)

    def runs(self) -> duckdb.DuckDBPyRelation:
        """Every run, oldest first."""
        return self.con.sql("SELECT * FROM runs ORDER BY started_at")

    def latest_run(self, dataset: str) -> str:
        """The id of the dataset's most recent finished (completed or partial) run.

        Raises:
            WorkspaceError: none has finished.
        """
        return store.latest_run(self.con, dataset, self.path)[0]

    def findings(self, run_id: str | None = None, reason: str | None = None, detector: str | None = None) -> duckdb.DuckDBPyRelation:
        """Findings of one run (default: the most recent finished run of any dataset).

        Args:
            reason: a reason code or dotted prefix (``hash_match`` covers ``hash_match.pdq``).
            detector: a detector name.

        Raises:
            WorkspaceError: no run given, and none has finished.
        """
        if run_id is None:
            run_id = store.latest_run(self.con, None, self.path)[0]
        where, params = ["run_id = ?"], [run_id]
        if reason is not None:
            expression, reason_params = reason_filter_sql([reason])
            where.append(expression)
            params += reason_params
        if detector is not None:
            where.append("detector = ?")
            params.append(detector)
        return self.con.sql(f"SELECT * FROM findings WHERE {' AND '.join(where)}", params=params)

    def fetches(self, url: str | None = None) -> duckdb.DuckDBPyRelation:
        """Every check of every URL (or of one), oldest first: link liveness over time."""
        if url is None:
            return self.con.sql("SELECT * FROM fetches ORDER BY fetched_at")
        return self.con.sql("SELECT * FROM fetches WHERE url = ? ORDER BY fetched_at", params=[url])

    def content_hashes(self, run_id: str) -> duckdb.DuckDBPyRelation:
        """The content hashes a run judged, one row per hashed sample, the latest its lineage has
        (:data:`scrutineer.core.store.CONTENT_LINEAGE`; restricted: never publish them)."""
        return self.con.sql(
            f"SELECT h.* FROM content_hashes h JOIN ({store.CONTENT_LINEAGE}) l USING (observation_id) "
            "QUALIFY row_number() OVER (PARTITION BY h.shard_id, h.row_index ORDER BY l.observed_at DESC) = 1",
            params=[run_id],
        )

    def releases(self) -> duckdb.DuckDBPyRelation:
        """Every release written, oldest first."""
        return self.con.sql("SELECT * FROM releases ORDER BY created_at")
