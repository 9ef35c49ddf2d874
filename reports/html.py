"""The watchdog report: one self-contained HTML file per run (inline-SVG charts; no scripts, no
external assets), plus CSV exports. Public: restricted findings appear as counts only, never
their URLs (:mod:`reports.data`).

Written to ``<workspace>/reports/``, each file atomically:

- ``<run_id>.html``: every section of :func:`reports.data.report_data`;
- ``<run_id>-findings.csv``: reason, restricted, findings, samples;
- ``<run_id>-domains.csv``: registrable domains by samples with a hash-list match.

The CSVs are spreadsheet-safe (:mod:`reports.csvsafe`). :data:`ENV` is the Jinja environment of
the templates: the review app renders ``report_body.html.j2`` (which expects ``report``, the dict)
from it inside its own page layout; ``charts.j2`` holds the SVG chart macros.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from reports.csvsafe import csv_text
from reports.data import report_data
from scrutineer import Workspace
from scrutineer.config import Config
from scrutineer.crowd import crowd_counts
from scrutineer.files import atomic_write_text

#: The report and app templates (``reports/templates``), HTML-escaping every value, failing on a missing one.
ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("reports", "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
    auto_reload=False,  # templates do not change while the app runs: no stat() of each file per page
)


def write_report(cfg: Config, run_id: str | None = None) -> Path:
    """Write the report of ``run_id`` (default: the dataset's latest finished scan) and its CSVs,
    with the crowd flags' counts when the config has crowd categories.

    Returns:
        The HTML file's path.

    Raises:
        WorkspaceError: no such run of the dataset, or no finished one.
        OSError: a file could not be written; it is left as it was.
    """
    with Workspace(cfg.workspace) as ws:
        if run_id is None:
            run_id = ws.latest_run(cfg.dataset.name)
        report = report_data(ws.con, ws.path, cfg.dataset.name, run_id, crowd_counts(cfg))
    out = cfg.workspace / "reports"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{run_id}.html"
    atomic_write_text(path, ENV.get_template("report.html.j2").render(report=report))
    columns = ["reason", "restricted", "findings", "samples"]
    atomic_write_text(out / f"{run_id}-findings.csv", csv_text(columns, ([r[c] for c in columns] for r in report["reasons"])))
    atomic_write_text(
        out / f"{run_id}-domains.csv",
        csv_text(["registrable_domain", "samples"], ([d["domain"], d["samples"]] for d in report["top_domains_matches"])),
    )
    return path
