"""``sync``: confirmed crowd flags into the findings store (DESIGN.md "Global steps").

Each confirmed flag becomes a finding ``crowd.<category>`` of detector ``crowd`` in a run, with
its flag id and the ids of its reports and reviews as evidence, unless the flood guard holds its
category (:mod:`scrutineer.crowd.holds`). The maintainers' decisions on held bank entries are
copied into the store's ``hold_decisions`` alike (:mod:`scrutineer.core.flood`). A flag of a sensitive category
is restricted, like a hash-bank match. Syncing replaces the run's crowd findings with the current
confirmed set, so it is idempotent, and a flag a reviewer later rejects leaves the next sync's
findings.
"""

from __future__ import annotations

import json

import duckdb

from scrutineer.core import flood, store
from scrutineer.core.config import Config
from scrutineer.core.contract import HOLD_DECISIONS
from scrutineer.core.errors import WorkspaceError
from scrutineer.crowd import search, snapshot
from scrutineer.crowd.store import CrowdStore
from scrutineer.reports.data import report_data

DETECTOR = "crowd"
#: The ``detector_version`` of crowd findings; bump when their evidence changes shape.
VERSION = "1"


def crowd_findings(cfg: Config) -> list[dict]:
    """The findings (dicts of the contract's ``JUDGEMENT`` columns) of every confirmed flag.

    Raises:
        CrowdStoreError: the crowd store cannot be opened.
    """
    if not cfg.crowd.categories:
        return []
    with CrowdStore(cfg.crowd) as crowd:
        idle = crowd.idle_flags()  # a held or dismissed category's flags (scrutineer.crowd.holds)
        return [
            {
                "observation_id": None,
                "shard_id": f["shard_id"],
                "row_index": f["row_index"],
                "sample_id": f["sample_id"],
                "url": f["url"],
                "detector": DETECTOR,
                "detector_version": VERSION,
                "reason": f"crowd.{f['category']}",
                "evidence": json.dumps(
                    {"flag_id": f["id"], "report_ids": f["report_ids"], "review_ids": f["review_ids"],
                     "confirmed_at": f["updated_at"].isoformat(timespec="seconds")}
                ),
                "restricted": crowd.sensitive(f["category"]),
            }
            for f in crowd.confirmed() if f["id"] not in idle
        ]


def sync(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str) -> int:
    """Replace run ``run_id``'s crowd findings with the confirmed flags, in one transaction, and
    publish the review snapshot again (:mod:`scrutineer.crowd.snapshot`).

    Args:
        con: the store's writable connection.

    Returns:
        How many crowd findings the run has now.

    Raises:
        CrowdStoreError: the crowd store cannot be opened.
        duckdb.Error, OSError: the store or the snapshot cannot be written; the store is left as it was.
        sqlite3.Error: the search index cannot be built (:func:`scrutineer.crowd.search.build`).
    """
    rows = crowd_findings(cfg)
    with CrowdStore(cfg.crowd) as crowd:
        decisions = hold_decisions(crowd)
    with store.transaction(con):
        store.drop_findings(con, run_id, DETECTOR)
        store.insert_findings(con, run_id, rows)  # an unchanged set of flags is stored once, whatever the runs that have it
        copy_decisions(con, decisions)
    publish(con, cfg, run_id)
    return len(rows)


def hold_decisions(crowd: CrowdStore) -> list[dict]:
    """The crowd store's decisions on held bank entries, as rows of the store's ``hold_decisions``."""
    return [{c: d[c] for c in HOLD_DECISIONS.columns} for d in crowd.entry_decisions().values()]


def copy_decisions(con: duckdb.DuckDBPyConnection, decisions: list[dict]) -> None:
    """Replace the store's ``hold_decisions`` with ``decisions`` (:func:`hold_decisions`), inside the caller's transaction."""
    con.execute("DELETE FROM hold_decisions")
    store.insert(con, HOLD_DECISIONS, decisions)


def sync_decisions(cfg: Config) -> bool:
    """Copy the maintainers' decisions on held entries into the findings store now (``holds
    confirm`` and ``holds dismiss`` do, so ``takedown`` and ``release`` follow at once).

    Returns:
        True; False when another process holds the store (the decision is in the crowd store, and
        the next ``sync``, scan or release copies it).

    Raises:
        CrowdStoreError: the crowd store cannot be opened.
    """
    with CrowdStore(cfg.crowd) as crowd:
        decisions = hold_decisions(crowd)
    try:
        con = store.connect(cfg.workspace, memory_limit=cfg.memory_limit)
    except WorkspaceError:
        return False
    try:
        with store.transaction(con):
            copy_decisions(con, decisions)
        if cfg.crowd.categories:  # the app's takedown page follows
            publish(con, cfg, store.latest_run(con, cfg.dataset.name, cfg.workspace)[0])
    finally:
        con.close()
    return True


def publish(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str) -> None:
    """Publish run ``run_id``'s review snapshot, with its report data (the app adds the crowd's
    counts live), then build the app's search index from it (:func:`scrutineer.crowd.search.build`),
    when the config has crowd categories: without them there is no review app to read them."""
    if not cfg.crowd.categories:
        return
    snapshot.publish(con, cfg.workspace, run_id, report_data(con, cfg.workspace, cfg.dataset.name, run_id))
    search.build(cfg.workspace)


def before_release(cfg: Config) -> None:
    """What the CLI and the deployed flows do before each release: :func:`sync` the latest run, so
    every crowd decision made before the release is in it, when the config has crowd categories
    (else only the decisions on its held entries, when it has some); then refuse while the flood
    guard holds an entry of the run or a crowd category (:func:`scrutineer.core.flood.refuse_held`).

    Raises:
        HeldError: an entry or a category is held, undecided (the message names each and the
            commands that decide it).
        WorkspaceError: the store is held by another process.
        CrowdStoreError: the crowd store cannot be opened.
    """
    con = store.connect(cfg.workspace, memory_limit=cfg.memory_limit)
    try:
        try:
            run_id, _ = store.latest_run(con, cfg.dataset.name, cfg.workspace)
        except WorkspaceError:
            return  # nothing to release: the release says so
        categories: list[str] = []
        if cfg.crowd.categories:
            sync(con, cfg, run_id)
            with CrowdStore(cfg.crowd) as crowd:
                categories = [describe_category(h) for h in crowd.category_holds() if h["decision"] is None]
        elif flood.run_holds(con, run_id):
            with CrowdStore(cfg.crowd) as crowd:
                decisions = hold_decisions(crowd)
            with store.transaction(con):
                copy_decisions(con, decisions)
        flood.refuse_held(con, run_id, categories)
    finally:
        con.close()


def describe_category(hold: dict) -> str:
    """A held category as a refusal names it: its hold id, category, flags and the two commands that decide it."""
    h = hold["hold"]
    return (f"{h}: crowd category {hold['category']} had {hold['flags']} new flags in the window of crowd.flood since "
            f"{hold['held_at']:%Y-%m-%d %H:%M} UTC; decide with `scrutineer holds confirm CONFIG {h}` or `scrutineer holds dismiss CONFIG {h}`")


def after_run(cfg: Config, summary: dict) -> dict:
    """What the CLI and the deployed flows do after each run (:func:`scrutineer.flows.scan.run_scan`):
    :func:`sync` the confirmed flags into it and publish its review snapshot, unless the run is
    inconclusive (releases and reports never use such a run: :func:`scrutineer.core.store.latest_run`)
    or the config has no crowd categories.

    Args:
        summary: the run's summary, ``{"run_id", "status", "findings": {reason: count}, ...}``.

    Returns:
        ``summary``, its ``findings`` counting the crowd findings too.

    Raises:
        CrowdStoreError: the crowd store cannot be opened (the run stands; ``scrutineer sync`` retries).
        WorkspaceError: the store is held by another process.
    """
    if summary["status"] == "inconclusive" or not cfg.crowd.categories:
        return summary
    con = store.connect(cfg.workspace, memory_limit=cfg.memory_limit)
    try:
        sync(con, cfg, summary["run_id"])
        counts = con.execute(
            "SELECT reason, count(*) FROM findings WHERE run_id = ? AND detector = ? GROUP BY reason", [summary["run_id"], DETECTOR]
        ).fetchall()
    finally:
        con.close()
    summary["findings"] = dict(sorted({**summary["findings"], **dict(counts)}.items()))
    return summary


def sync_latest(cfg: Config) -> tuple[str, int]:
    """:func:`sync` on the dataset's latest finished run.

    Returns:
        (run id, crowd findings it has now).

    Raises:
        WorkspaceError: the store is held by another process, or no run has finished.
        CrowdStoreError: the crowd store cannot be opened.
    """
    con = store.connect(cfg.workspace, memory_limit=cfg.memory_limit)
    try:
        run_id, _ = store.latest_run(con, cfg.dataset.name, cfg.workspace)
        return run_id, sync(con, cfg, run_id)
    finally:
        con.close()
