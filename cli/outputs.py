"""The commands that write or read what a scan found: ``release``, ``takedown``, ``report``, ``summary`` and ``query``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import duckdb
import typer
from rich.table import Table

from scrutineer import Workspace
from scrutineer.cli.console import ConfigArg, out, reported
from scrutineer.core.config import Config, load_config
from scrutineer.core.layout import Layout
from scrutineer.core.wording import plural
from scrutineer.reports.csvsafe import csv_text


def build_release(cfg: Config, variant: str) -> Path:
    """Import the confirmed crowd flags into the latest run (when the config has crowd categories),
    then write release ``variant`` (:func:`scrutineer.release.build.build_release`); return its folder."""
    # start-up: scrutineer.crowd.sync costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.sync import before_release

    # start-up: scrutineer.release.build costs 250 ms at import (huggingface_hub; measured 2026-12-06)
    from scrutineer.release.build import build_release

    before_release(cfg)
    return build_release(cfg, variant)


def release(
    config: ConfigArg,
    variant: Annotated[str, typer.Option("--variant", help="Release variant name from release.variants.")],
) -> None:
    """Write RE-<dataset>-<variant>/ from the latest completed scan."""
    with reported():
        path = build_release(load_config(config), variant)
    manifest = json.loads((path / Layout.MANIFEST).read_text())
    removed, hidden = manifest["removed"], manifest["removed"]["anonymity_set"]
    out.print(f"release: {path} ({manifest['rows']['input']} rows in, {removed['rows']} removed, {manifest['rows']['output']} out; "
              f"restricted: {hidden['restricted']} of the {hidden['rows']} removals no recomputable reason explains)", highlight=False)


def takedown(config: ConfigArg) -> None:
    """Write the takedown manifest (restricted) as CSV and JSON, grouped by registrable domain."""
    # start-up: scrutineer.reports.takedown costs 130 ms at import (tldextract; measured 2026-12-06)
    from scrutineer.reports.takedown import write_takedown

    with reported():
        csv_path, json_path, n = write_takedown(load_config(config))
    out.print(f"takedown manifest: {csv_path} and {json_path} ({plural(n, 'row')}: one per hash-listed URL and reason)", highlight=False)


def report(
    config: ConfigArg,
    run_id: Annotated[str | None, typer.Option(help="Run to report on (default: the latest finished).")] = None,
) -> None:
    """Write the HTML report of a scan (public: restricted findings as counts only)."""
    # start-up: scrutineer.crowd.store costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.store import crowd_counts

    # start-up: scrutineer.reports.html costs 220 ms at import (Jinja2; measured 2026-12-06)
    from scrutineer.reports.html import write_report

    with reported():
        cfg = load_config(config)
        path = write_report(cfg, run_id, crowd_counts(cfg))
    out.print(f"report: {path}", highlight=False)


def summary(
    config: ConfigArg,
    sme: Annotated[bool, typer.Option("--sme", help="The SME variant of the cut-off: the top 5% of domains or 1,000, whichever is lower.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder to write to (default: <workspace>/summary/).", file_okay=False)] = None,
) -> None:
    """Write the crawled-data part of the EU AI Act's public summary of training content (template of
    24 July 2025, section 2.3): the top registrable domains of the latest finished scan, and its
    opt-outs by signal, as CSV and Markdown."""
    # start-up: scrutineer.reports.summary costs 110 ms at import (tldextract, pyarrow.parquet, the optouts detector; measured 2026-12-06)
    from scrutineer.reports.summary import write_summary

    with reported(OSError):
        csv_path, md_path, s = write_summary(load_config(config), sme, out_dir)
    of_bytes = f", {s.listed_share_of_bytes:.2%} of the bytes measured" if s.listed_share_of_bytes is not None else ""
    out.print(f"summary: {csv_path} and {md_path} ({s.listed} of {len(s.domains)} registrable domains listed, ranked by {s.ranked_by}; "
              f"they hold {s.listed_share_of_samples:.2%} of the samples{of_bytes})", highlight=False)


def query(
    config: ConfigArg,
    sql: Annotated[str, typer.Argument(help="SQL to run on the store, read-only.")],
    fmt: Annotated[Literal["table", "csv", "jsonl"], typer.Option(
        "--format", help="table (to read), csv (spreadsheet-safe, as every CSV Scrutineer writes) or jsonl (one object per row, exact)."
    )] = "table",
) -> None:
    """Run a read-only SQL query on the workspace's DuckDB store and print the result. The query
    reads the store and nothing else: DuckDB's access to other files is disabled."""
    with reported(duckdb.Error), Workspace(load_config(config).workspace) as ws:
        rel = ws.sql(sql)
        columns, rows = rel.columns, rel.fetchall()
    if fmt == "csv":
        typer.echo(csv_text(columns, rows), nl=False)
    elif fmt == "jsonl":
        for row in rows:  # a time, a decimal or a UUID as its text
            typer.echo(json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False, default=str))
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
