"""Takedown manifest (restricted): the URLs a hash bank matched, grouped by registrable domain
and host, ready to send to a host's abuse contact or a hotline.

Written as ``<workspace>/takedown/<dataset>.csv`` and ``.json``. One row per restricted finding of
the dataset's latest finished scan, sorted by registrable domain, host, URL and reason. The
registrable domain comes from tldextract with its bundled Public Suffix List snapshot (no network).

The CSV is made safe to open in a spreadsheet (:mod:`reports.csvsafe`: a text cell starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return gets a ``'`` before it). The JSON carries every
value exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

from reports.csvsafe import csv_text
from scrutineer import Workspace
from scrutineer.config import Config
from scrutineer.domains import host_and_domain
from scrutineer.files import atomic_write_text

COLUMNS = [
    "registrable_domain",
    "host",
    "url",
    "reason",
    "bank",
    "bank_version",
    "sample_id",
    "shard_id",
    "row_index",
    "first_seen",
]

def takedown_rows(cfg: Config) -> tuple[str, list[dict]]:
    """(run_id, rows) for the dataset's latest finished scan; rows are dicts keyed by :data:`COLUMNS`.

    Raises:
        WorkspaceError: no finished scan in the workspace.
    """
    with Workspace(cfg.workspace) as ws:
        run_id = ws.latest_run(cfg.dataset.name)
        found = ws.sql(
            """
            SELECT f.url, f.reason, f.evidence->>'bank' AS bank, f.evidence->>'bank_version' AS bank_version,
                   f.sample_id, f.shard_id, f.row_index,
                   (SELECT min(r.started_at) FROM findings g JOIN runs r USING (run_id)
                     WHERE r.dataset = ? AND g.url = f.url AND g.reason = f.reason AND g.restricted) AS first_seen
            FROM findings f WHERE f.run_id = ? AND f.restricted
            """,
            params=[cfg.dataset.name, run_id],
        ).fetchall()
    names = COLUMNS[2:-1]  # url ... row_index
    return run_id, located(
        [dict(zip(names, row[:-1])) | {"first_seen": row[-1].isoformat(timespec="seconds") if row[-1] else None} for row in found]
    )


def located(rows: list[dict]) -> list[dict]:
    """Restricted findings (dicts with ``url``, ``reason``, ``shard_id``, ``row_index``) with their
    ``registrable_domain`` and ``host`` added, sorted by those, then URL, reason, shard and row."""
    rows = [dict(zip(("host", "registrable_domain"), host_and_domain(r["url"] or ""))) | r for r in rows]
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


def write_takedown(cfg: Config) -> tuple[Path, Path, int]:
    """Write the takedown manifest as CSV (spreadsheet-safe, see the module docstring) and JSON
    (exact), each atomically.

    Returns:
        (csv path, json path, number of rows).

    Raises:
        WorkspaceError: no finished scan in the workspace.
    """
    run_id, rows = takedown_rows(cfg)
    out = cfg.workspace / "takedown"
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "dataset": cfg.dataset.name,
        "run_id": run_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "restricted": True,
        "items": len(rows),
        "domains": [
            d | {"hosts": [{"host": h["host"], "items": [{k: r[k] for k in COLUMNS[2:]} for r in h["rows"]]} for h in d["hosts"]]}
            for d in by_domain(rows)
        ],
    }
    csv_path = out / f"{cfg.dataset.name}.csv"
    json_path = out / f"{cfg.dataset.name}.json"
    atomic_write_text(csv_path, csv_text(COLUMNS, ([r[c] for c in COLUMNS] for r in rows)))
    atomic_write_text(json_path, json.dumps(doc, indent=2) + "\n")
    return csv_path, json_path, len(rows)

