"""The load: what the shard tasks made, into the store, in one transaction (the driver is the
store's only writer).

For each shard: its row in ``shards``; its observations, once (``observations``, and for a
content observation its ``fetches``, ``content_hashes`` and ``policy_files``); its file digests. Then the run's
findings: every shard's judgements, each detector's corpus-level ``finalize`` over every
shard's signatures; then the flood guard's holds of the bank entries that match too many samples
(:func:`scrutineer.core.flood.record_holds`). A failed or inconclusive shard contributes its ``shards`` row only. (The
confirmed crowd flags join a finished run afterwards, through :func:`scrutineer.crowd.sync.after_run`.)

Findings are stored once per judgement (:mod:`scrutineer.core.store`): a judgement the store
holds already, a shard's or a ``finalize`` over the same signature sets (its key:
:meth:`~scrutineer.flows.plan.ScanPlan.finalize_key`), is only referenced, and a ``finalize`` it
holds is not run again. So an unchanged rescan loads a row per shard and per judgement.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from scrutineer.core import flood, store
from scrutineer.core.contract import (
    FILE_DIGESTS,
    HASHED_COLUMNS,
    OBSERVATIONS,
    SHARD_OUTCOME_COLUMNS,
    SHARDS,
    STORED_POLICY_FILE_COLUMNS,
)
from scrutineer.core.layout import Layout
from scrutineer.detectors.base import CorpusDetector
from scrutineer.flows.plan import ScanPlan, key_id
from scrutineer.flows.shard import ShardResult


def load(con: duckdb.DuckDBPyConnection, run_id: str, plan: ScanPlan, results: list[ShardResult], status: str) -> None:
    """Load a run's shard results and set its final ``status``, all or nothing.

    Raises:
        duckdb.Error: the store cannot take it (a full disk, say); nothing of the run is loaded.
    """
    ok = [r for r in results if r.status in ("observed", "judged", "reused")]
    # the shard tasks are done: Arrow's pool keeps their freed buffers (0.5 GB at 10M rows); hand
    # them back before the load adds DuckDB's memory_limit on top (peak RSS 1.9 -> 1.4 GB,
    # bench/scan_metadata.py)
    release_arrow_memory()
    with store.transaction(con):
        store.insert(con, SHARDS, [_shard_row(run_id, r) for r in results])
        store.insert(con, FILE_DIGESTS, list({d.path: vars(d) for r in results for d in r.digests}.values()), on_conflict="replace")
        _load_observations(con, run_id, plan, ok)
        judged = {j: name for r in ok for name, j in r.judgements.items()}
        stored = store.stored_judgements(con, judged)
        store.insert_judgement_files(con, run_id, {j: (name, plan.layout.judgement(j) / Layout.FINDINGS) for j, name in judged.items()
                                                   if j not in stored})
        used = list(judged)
        for name, params in plan.params.items():
            cls = plan.detector_class(name)
            if not issubclass(cls, CorpusDetector):
                continue
            signed = [j for r in ok if (plan.layout.judgement(j := r.judgements[name]) / Layout.SIGNATURES).exists()]
            if not signed:
                continue
            finalized = key_id(plan.finalize_key(name, signed))
            used.append(finalized)
            if store.stored_judgements(con, [finalized]):
                continue
            view = f"signatures_{name}"
            con.read_parquet([str(plan.layout.judgement(j) / Layout.SIGNATURES) for j in signed]).create_view(view, replace=True)
            store.insert_judgement(con, run_id, finalized, name, *cls.finalize(params, view))
            con.execute(f"DROP VIEW {view}")
        store.use_judgements(con, run_id, used)
        samples = sum(r.rows or 0 for r in ok)
        flood.record_holds(con, run_id, plan.config.flood.limit(samples))
        con.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", [status, datetime.now(UTC), run_id])


def release_arrow_memory() -> None:
    """Return the memory that Arrow's pool holds freed to the system. Measured, bench/dedup.py: at
    10M captions the pool still held ~400 MB freed by the signatures when finalize began."""
    pa.default_memory_pool().release_unused()


def _shard_row(run_id: str, r: ShardResult) -> dict:
    s = r.shard
    return {"run_id": run_id, "shard_id": s.shard_id, "location": s.location, "format": s.format} | {
        c: getattr(r, c) for c in SHARD_OUTCOME_COLUMNS  # ShardResult names them as the contract does
    }


def _load_observations(con: duckdb.DuckDBPyConnection, run_id: str, plan: ScanPlan, ok: list[ShardResult]) -> None:
    """Record the observations not in the store yet, with a content observation's fetches and
    content hashes."""
    made = {i for r in ok for i in (r.rows_observation, r.content_observation) if i}
    known = {i for (i,) in con.execute("SELECT observation_id FROM observations WHERE list_contains(?, observation_id)", [list(made)]).fetchall()}
    now = datetime.now(UTC)
    rows = []
    for r in ok:
        for kind, observation_id in (("rows", r.rows_observation), ("content", r.content_observation)):
            if observation_id is None or observation_id in known:
                continue
            known.add(observation_id)
            folder = plan.layout.observation(observation_id)
            stats = json.loads((folder / Layout.STATS).read_text())
            rows.append(
                {"observation_id": observation_id, "kind": kind, "shard_id": r.shard.shard_id, "shard_sha256": r.sha256,
                 "key": json.dumps(stats["key"], sort_keys=True), "rows": r.rows, "observed_at": now, "run_id": run_id}
            )
            if kind == "content":
                ids = [observation_id, r.shard.shard_id]
                fetches = folder / Layout.FETCHES
                if fetches.exists():
                    con.execute("INSERT INTO fetches BY NAME SELECT ? AS observation_id, ? AS shard_id, * FROM read_parquet(?)", [*ids, str(fetches)])
                policies = folder / Layout.POLICY_FILES
                if policies.exists():
                    columns = ", ".join(STORED_POLICY_FILE_COLUMNS)
                    con.execute(f"INSERT INTO policy_files BY NAME SELECT ? AS observation_id, ? AS shard_id, {columns} FROM read_parquet(?)",
                                [*ids, str(policies)])
                # a recheck's hashes are those of the URLs it checked; the rest are its lineage's (store.CONTENT_LINEAGE)
                rechecked = "recheck_of" in stats["key"]
                con.execute(
                    f"INSERT INTO content_hashes BY NAME SELECT ? AS observation_id, ? AS shard_id, {', '.join(HASHED_COLUMNS)} "
                    "FROM read_parquet(?) WHERE sha256 IS NOT NULL" + (" AND url IN (SELECT url FROM read_parquet(?))" if rechecked else ""),
                    [*ids, str(folder / Layout.CONTENT), *([str(fetches)] if rechecked else [])],
                )
    store.insert(con, OBSERVATIONS, rows)
