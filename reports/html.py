"""The run report: one self-contained HTML file per scan (no scripts, no external assets), plus
a CSV of findings counts. Public: restricted findings appear as counts only, never their URLs.

Written to ``<workspace>/reports/<run_id>.html`` and ``<run_id>-findings.csv``, each atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jinja2

from scrutineer import Workspace
from scrutineer.config import Config
from scrutineer.errors import WorkspaceError
from scrutineer.files import atomic_write_text

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("reports", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)


def write_report(cfg: Config, run_id: str | None = None) -> Path:
    """Render the report of ``run_id`` (default: the dataset's latest finished scan).

    Returns:
        The HTML file's path.

    Raises:
        WorkspaceError: no such run, or no finished one.
        OSError: a file could not be written; it is left as it was.
    """
    with Workspace(cfg.workspace) as ws:
        con = ws.con
        if run_id is None:
            run_id = ws.latest_run(cfg.dataset.name)

        def rows(query: str) -> list[tuple]:
            return con.sql(query, params=[run_id]).fetchall()

        runs = rows("SELECT run_id, dataset, started_at, finished_at, status, tool_version, detectors, banks FROM runs WHERE run_id = ?")
        if not runs:
            raise WorkspaceError(f"no run {run_id!r} in {cfg.workspace}")
        run = dict(zip(["run_id", "dataset", "started_at", "finished_at", "status", "tool_version", "detectors", "banks"], runs[0]))
        run["detectors"] = json.loads(run["detectors"])
        run["banks"] = json.loads(run["banks"])
        reasons = rows(
            "SELECT reason, bool_or(restricted) AS restricted, count(*) AS n, count(DISTINCT (shard_id, row_index)) AS samples "
            "FROM findings WHERE run_id = ? GROUP BY reason ORDER BY reason"
        )
        shards = rows("SELECT shard_id, format, status, rows, error, round(seconds, 2) FROM shards WHERE run_id = ? ORDER BY shard_id")
        licences = rows(
            "SELECT coalesce(evidence->>'spdx', evidence->>'license', '(none)') AS licence, reason, count(*) AS n "
            "FROM findings WHERE run_id = ? AND detector = 'license_gaps' GROUP BY ALL ORDER BY n DESC LIMIT 25"
        )
        clusters = rows(
            "SELECT reason, evidence->>'kept_sample_id' AS kept, count(*) AS copies FROM findings "
            "WHERE run_id = ? AND detector = 'dedup' GROUP BY ALL ORDER BY copies DESC, kept LIMIT 20"
        )
    total_rows = sum(s[3] or 0 for s in shards)
    peak = max([r[2] for r in reasons] or [1])
    out = cfg.workspace / "reports"
    out.mkdir(parents=True, exist_ok=True)
    html = _ENV.get_template("report.html.j2").render(
        run=run, reasons=reasons, shards=shards, licences=licences, clusters=clusters, total_rows=total_rows, peak=peak
    )
    counts = io.StringIO()
    w = csv.writer(counts)
    w.writerow(["reason", "restricted", "findings", "samples"])
    w.writerows(reasons)
    path = out / f"{run_id}.html"
    atomic_write_text(path, html)
    atomic_write_text(out / f"{run_id}-findings.csv", counts.getvalue())
    return path
