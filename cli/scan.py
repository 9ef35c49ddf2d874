"""The commands that scan: ``scan`` (and its ``--dry-run``), ``rematch``, ``recheck``, and ``banks``,
which lists what a scan matches against."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
import yaml
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from scrutineer import Workspace
from scrutineer.cli.console import EXIT_PARTIAL, ConfigArg, err, out, reported
from scrutineer.core.banks import load_banks
from scrutineer.core.config import Config, load_config
from scrutineer.core.layout import Layout
from scrutineer.core.wording import plural
from scrutineer.flows import configure_prefect
from scrutineer.formats.sources import list_shards


def findings_table(summary: dict, title: str) -> Table:
    """A table of ``summary['findings']`` (reason -> count), titled with the run id and status."""
    heading = f"{title} {summary['run_id']}: {summary['status']}"
    table = Table(title=heading, min_width=len(heading))  # the title on one line, its run id whole
    table.add_column("reason")
    table.add_column("findings", justify="right")
    for reason, n in summary["findings"].items():
        table.add_row(reason, str(n))
    return table


def run_with_progress(cfg: Config, kind: str = "scan") -> dict:
    """Run a scan, rematch or recheck (:func:`scrutineer.flows.scan.scan_flow`), with a progress bar on stderr
    when it is a terminal; a failed shard is reported as it happens either way. Then bring the crowd
    up to date with the run (:func:`scrutineer.crowd.sync.after_run`) and return its summary."""
    configure_prefect()  # before Prefect is first imported: it reads its settings then
    # start-up: scrutineer.crowd.sync costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.sync import after_run

    # start-up: scrutineer.flows.scan costs 1,400 ms at import (Prefect; measured 2026-12-06)
    from scrutineer.flows.scan import run_scan

    progress = Progress(TextColumn(f"[bold]{kind}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err, disable=not err.is_terminal)
    with progress:
        bar = progress.add_task("shards", total=len(list_shards(cfg)), last="")

        def on_shard(result) -> None:
            progress.update(bar, advance=1, last=f"{result.shard.shard_id}: {result.status}")
            if result.error:
                progress.console.print(f"[red]shard {result.status}[/]: {escape(result.error)}", highlight=False)

        summary = run_scan(cfg, kind, on_shard=on_shard)
    return after_run(cfg, summary)


def print_summary(summary: dict, cfg: Config) -> None:
    """Print a run's findings and shard counts; exit with status 3 unless it completed."""
    out.print(findings_table(summary, summary["kind"]))
    for s in summary["shards"]:
        if s["status"] in ("failed", "inconclusive"):
            err.print(f"[red]{s['status']} shard[/] {escape(s['shard_id'])}: {escape(str(s['error']))}", highlight=False)
    counts = Counter(s["status"] for s in summary["shards"])
    out.print("shards: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), highlight=False)
    out.print(f"findings: {Layout(cfg.workspace).store} (view findings, run_id = '{summary['run_id']}')", highlight=False)
    if (held := summary.get("held", {})).get("entries"):
        out.print(f"held for review (flood guard): {plural(held['entries'], 'bank entry', 'bank entries')}, {plural(held['findings'], 'finding')}; they do not act until a "
                  "maintainer decides: `scrutineer holds list CONFIG`", highlight=False)
    if summary["status"] != "completed":
        raise typer.Exit(EXIT_PARTIAL)


def scan(
    config: ConfigArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and shards; scan nothing.")] = False,
) -> None:
    """Observe every shard not observed yet (read it; fetch and hash its images for content
    detectors), judge it with every configured detector, and load the findings into DuckDB."""
    with reported():
        cfg = load_config(config)
        if dry_run:
            load_banks(cfg.banks)
            shards = list_shards(cfg)
    if dry_run:
        resolved = cfg.model_dump(mode="json")
        resolved["detectors"] = {k: v.model_dump(mode="json") for k, v in cfg.detector_params().items()}
        resolved["shards_resolved"] = [{"shard_id": s.shard_id, "path": s.location, "format": s.format} for s in shards]
        typer.echo(yaml.safe_dump(resolved, sort_keys=False, width=1_000_000), nl=False)
        return
    with reported():
        summary = run_with_progress(cfg)
    print_summary(summary, cfg)


def rematch(config: ConfigArg) -> None:
    """Re-judge every shard's stored observations with the current banks and detector parameters:
    no shard is read and nothing is fetched. Judgements whose inputs did not change are reused."""
    with reported():
        cfg = load_config(config)
        summary = run_with_progress(cfg, "rematch")
    print_summary(summary, cfg)


def recheck(config: ConfigArg) -> None:
    """Check again the links that are due: those dead_links calls transient, or dead and not yet
    confirmed by dead_links.min_checks agreeing checks, last checked fetch.recheck_interval seconds
    ago or more. Each is checked once; the checks add to the link's history in the store."""
    with reported():
        cfg = load_config(config)
        summary = run_with_progress(cfg, "recheck")
    print_summary(summary, cfg)


def banks(config: ConfigArg) -> None:
    """List the configured hash banks: versions, entry counts, and whether the store has them."""
    with reported():
        cfg = load_config(config)
        loaded = load_banks(cfg.banks)
        registered: set[tuple[str, str]] = set()
        if Layout(cfg.workspace).store.exists():
            with Workspace(cfg.workspace) as ws:
                registered = set(ws.sql("SELECT name, sha256 FROM banks").fetchall())
    table = Table("name", "signal type", "source", "version", "entries", "sha256", "in store")
    for b in loaded:
        p = b.ref.public()
        table.add_row(p["name"], p["signal_type"], p["source"], p["version"], f"{p['entries']:,}", p["sha256"][:12], "yes" if (p["name"], p["sha256"]) in registered else "no")
    out.print(table)
