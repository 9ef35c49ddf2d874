"""Takedown manifest (restricted): the URLs a hash bank matched, grouped by registrable domain
and host, ready to send to a host's abuse contact or a hotline. A bank entry the flood guard holds
(or a maintainer dismissed) is not in it (:mod:`scrutineer.core.flood`).

Written as ``<workspace>/takedown/<dataset>.csv`` and ``.json`` by ``scrutineer takedown``, and
downloaded from the review app's takedown page (maintainers only; from the review snapshot, whose
rows the same query gives: :data:`TAKEDOWN_SQL`). One row per restricted
finding of the dataset's latest scan (which must have completed), sorted by registrable domain, host, URL and reason.
The registrable domain comes from tldextract with its bundled Public Suffix List snapshot (no
network). :func:`located` makes the rows, :func:`manifest_csv` and :func:`manifest_json` the files.

The CSV is made safe to open in a spreadsheet (:mod:`scrutineer.reports.csvsafe`: a text cell starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return gets a ``'`` before it). The JSON carries every
value exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

import duckdb

from scrutineer import Workspace
from scrutineer.core import store
from scrutineer.core.config import Config
from scrutineer.core.files import atomic_write_text
from scrutineer.core.flood import idle_sql
from scrutineer.core.layout import Layout
from scrutineer.reports.csvsafe import csv_text
from scrutineer.samples.domains import host_and_domain

#: What :data:`TAKEDOWN_SQL` gives, in order.
TAKEDOWN_COLUMNS = ("url", "reason", "bank", "bank_version", "sample_id", "shard_id", "row_index", "first_seen")
#: The takedown rows of run ``$run_id`` (restricted: for maintainers only): its restricted
#: findings, with the bank and bank version that matched and ``first_seen``, the start of the
#: dataset's first run that found the same URL restricted for the same reason. The one query for
#: ``scrutineer takedown`` (run on the store) and the review snapshot's
#: ``takedown`` table (:func:`scrutineer.crowd.snapshot.publish`, run on the store when publishing), so the app and the command list the same rows.
#: A finding the flood guard holds or a maintainer dismissed is left out (:func:`scrutineer.core.flood.idle_sql`).
TAKEDOWN_SQL = f"""
    SELECT f.url, f.reason, f.evidence->>'bank' AS bank, f.evidence->>'bank_version' AS bank_version,
           f.sample_id, f.shard_id, f.row_index,
           (SELECT min(r.started_at) FROM findings g JOIN runs r USING (run_id)
             WHERE r.dataset = this.dataset AND g.url = f.url AND g.reason = f.reason AND g.restricted) AS first_seen
    FROM findings f JOIN runs this USING (run_id) WHERE f.run_id = $run_id AND f.restricted AND NOT {idle_sql("f")}
"""

#: The manifest's columns: each row's registrable domain and host, then the query's.
COLUMNS = ["registrable_domain", "host", *TAKEDOWN_COLUMNS]


def query_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """:data:`TAKEDOWN_SQL` of ``run_id`` on the store's connection ``con``: dicts keyed by
    :data:`TAKEDOWN_COLUMNS`, unordered."""
    return [dict(zip(TAKEDOWN_COLUMNS, r)) for r in con.execute(TAKEDOWN_SQL, {"run_id": run_id}).fetchall()]


def takedown_rows(cfg: Config) -> tuple[str, list[dict]]:
    """(run_id, rows) for the dataset's latest scan, which must have completed; rows are
    :func:`located`'s.

    Raises:
        WorkspaceError: no finished scan in the workspace, or the latest is partial
            (:func:`scrutineer.core.store.complete_run`: a manifest from it would leave out the
            failed shards' URLs, and replace the last complete one).
    """
    with Workspace(cfg.workspace) as ws:
        run_id = store.complete_run(ws.con, cfg.dataset.name, ws.path, "a takedown manifest")
        found = query_rows(ws.con, run_id)
    return run_id, located(found)


def located(rows: list[dict]) -> list[dict]:
    """Takedown rows as :data:`TAKEDOWN_SQL` gives them (dicts with ``url``,
    ``reason``, ``shard_id``, ``row_index``, ``first_seen`` a datetime or None, ...) as the manifest
    lists them: dicts keyed by :data:`COLUMNS` (``registrable_domain`` and ``host`` added,
    ``first_seen`` ISO 8601 text to the second), sorted by those, then URL, reason, shard and row."""
    rows = [dict(zip(("host", "registrable_domain"), host_and_domain(r["url"] or "")))
            | r | {"first_seen": r["first_seen"].isoformat(timespec="seconds") if r["first_seen"] else None} for r in rows]
    return sorted(rows, key=lambda r: (r["registrable_domain"], r["host"], r["url"] or "", r["reason"], r["shard_id"], r["row_index"]))


def by_domain(rows: list[dict]) -> list[dict]:
    """:func:`located` rows grouped: ``[{"registrable_domain", "items" (a count), "hosts": [{"host",
    "rows"}]}]``, in their order."""
    out = []
    for domain, in_domain in groupby(rows, key=lambda r: r["registrable_domain"]):
        in_domain = list(in_domain)
        hosts = [{"host": host, "rows": list(in_host)} for host, in_host in groupby(in_domain, key=lambda r: r["host"])]
        out.append({"registrable_domain": domain, "items": len(in_domain), "hosts": hosts})
    return out


def manifest_csv(rows: list[dict]) -> str:
    """The CSV manifest of :func:`located` rows: a header of :data:`COLUMNS`, spreadsheet-safe
    (:func:`scrutineer.reports.csvsafe.csv_text`)."""
    return csv_text(COLUMNS, ([r[c] for c in COLUMNS] for r in rows))


def manifest_json(dataset: str, run_id: str, rows: list[dict]) -> str:
    """The JSON manifest of :func:`located` rows, every value exact: ``{"dataset", "run_id",
    "generated_at" (now, ISO 8601 UTC to the second), "restricted": true, "items" (a count),
    "domains": [{"registrable_domain", "items", "hosts": [{"host", "items": [rows without
    domain and host]}]}]}``."""
    doc = {
        "dataset": dataset,
        "run_id": run_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "restricted": True,
        "items": len(rows),
        "domains": [
            d | {"hosts": [{"host": h["host"], "items": [{k: r[k] for k in TAKEDOWN_COLUMNS} for r in h["rows"]]} for h in d["hosts"]]}
            for d in by_domain(rows)
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def write_takedown(cfg: Config) -> tuple[Path, Path, int]:
    """Write the takedown manifest as CSV (spreadsheet-safe, see the module docstring) and JSON
    (exact), each atomically.

    Returns:
        (csv path, json path, number of rows).

    Raises:
        WorkspaceError: as :func:`takedown_rows`.
    """
    run_id, rows = takedown_rows(cfg)
    layout = Layout(cfg.workspace)
    layout.takedown.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = layout.takedown_csv(cfg.dataset.name), layout.takedown_json(cfg.dataset.name)
    atomic_write_text(csv_path, manifest_csv(rows))
    atomic_write_text(json_path, manifest_json(cfg.dataset.name, run_id, rows))
    return csv_path, json_path, len(rows)

