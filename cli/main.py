"""The ``scrutineer`` command line (typer + rich).

Exit status: 0 success; 1 error (bad config, bad bank file, no scan to release, a workspace that
another process holds or that is not a directory); 3 the scan finished but some shards failed
(``partial``) or could not check their links because the network went down (``inconclusive``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from scrutineer.core.config import Config, load_config
from scrutineer.core.errors import ScrutineerError
from scrutineer.core.files import keep_private

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Audit image-text datasets and publish clean RE- releases.")
out = Console()
err = Console(stderr=True)
EXIT_PARTIAL = 3

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", exists=True, dir_okay=False)]


@app.callback()
def main() -> None:
    """Audit image-text datasets and publish clean RE- releases. Every file a command writes is
    its owner's only (umask 077: scrutineer.core.files.keep_private)."""
    keep_private()


@contextmanager
def _reported(*errors: type[Exception]) -> Iterator[None]:
    """Turn Scrutineer's errors (and ``errors``) into a one-line message and exit status 1."""
    try:
        yield
    except (ScrutineerError, *errors) as e:
        err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _findings_table(summary: dict, title: str) -> Table:
    table = Table(title=f"{title} {summary['run_id']}: {summary['status']}")
    table.add_column("reason")
    table.add_column("findings", justify="right")
    for reason, n in summary["findings"].items():
        table.add_row(reason, str(n))
    return table


def _scan(cfg: Config, kind: str = "scan") -> dict:
    """Run a scan, rematch or recheck (:func:`scrutineer.flows.scan.scan_flow`), with a progress bar on stderr
    when it is a terminal; a failed shard is reported as it happens either way."""
    from scrutineer.flows import configure_prefect

    configure_prefect()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from scrutineer.crowd.sync import after_run
    from scrutineer.flows.scan import run_scan

    from scrutineer.formats.sources import list_shards

    progress = Progress(TextColumn(f"[bold]{kind}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err, disable=not err.is_terminal)
    with progress:
        bar = progress.add_task("shards", total=len(list_shards(cfg)), last="")

        def on_shard(result) -> None:
            progress.update(bar, advance=1, last=f"{result.shard.shard_id}: {result.status}")
            if result.error:
                progress.console.print(f"[red]shard {result.status}[/]: {result.error}", highlight=False)

        summary = run_scan(cfg, kind, on_shard=on_shard)
    return after_run(cfg, summary)


def _summary(summary: dict, cfg: Config) -> None:
    out.print(_findings_table(summary, summary["kind"]))
    for s in summary["shards"]:
        if s["status"] in ("failed", "inconclusive"):
            err.print(f"[red]{s['status']} shard[/] {s['shard_id']}: {s['error']}", highlight=False, soft_wrap=True)
    counts = Counter(s["status"] for s in summary["shards"])
    out.print("shards: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), highlight=False)
    out.print(f"findings: {cfg.workspace / 'scrutineer.duckdb'} (table findings, run_id = '{summary['run_id']}')", highlight=False)
    if summary["status"] != "completed":
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def scan(
    config: ConfigArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and shards; scan nothing.")] = False,
) -> None:
    """Observe every shard not observed yet (read it; fetch and hash its images for content
    detectors), judge it with every configured detector, and load the findings into DuckDB."""
    from scrutineer.core.banks import load_banks
    from scrutineer.formats.sources import list_shards

    with _reported():
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
    with _reported():
        summary = _scan(cfg)
    _summary(summary, cfg)


@app.command()
def release(
    config: ConfigArg,
    variant: Annotated[str, typer.Option("--variant", help="Release variant name from release.variants.")],
) -> None:
    """Write RE-<dataset>-<variant>/ from the latest completed scan."""
    with _reported():
        path = _release(load_config(config), variant)
    manifest = json.loads((path / "manifest.json").read_text())
    removed, hidden = manifest["removed"], manifest["removed"]["anonymity_set"]
    out.print(f"release: {path} ({manifest['rows']['input']} rows in, {removed['rows']} removed, {manifest['rows']['output']} out; "
              f"restricted: {hidden['restricted']} of the {hidden['rows']} removals no recomputable reason explains)", highlight=False, soft_wrap=True)


def _release(cfg: Config, variant: str) -> Path:
    """Import the confirmed crowd flags into the latest run (when the config has crowd categories),
    then write release ``variant`` (:func:`scrutineer.release.build.build_release`)."""
    from scrutineer.crowd.sync import sync_latest

    from scrutineer.release.build import build_release

    if cfg.crowd.categories:
        sync_latest(cfg)  # every crowd decision made before the release is in it
    return build_release(cfg, variant)


@app.command()
def takedown(config: ConfigArg) -> None:
    """Write the takedown manifest (restricted) as CSV and JSON, grouped by registrable domain."""
    from scrutineer.reports.takedown import write_takedown

    with _reported():
        csv_path, json_path, n = write_takedown(load_config(config))
    out.print(f"takedown manifest: {csv_path} and {json_path} ({n} URLs)", highlight=False)


@app.command()
def report(
    config: ConfigArg,
    run_id: Annotated[str | None, typer.Option(help="Run to report on (default: the latest finished).")] = None,
) -> None:
    """Write the HTML report of a scan (public: restricted findings as counts only)."""
    from scrutineer.crowd.store import crowd_counts
    from scrutineer.reports.html import write_report

    with _reported():
        cfg = load_config(config)
        path = write_report(cfg, run_id, crowd_counts(cfg))
    out.print(f"report: {path}", highlight=False)


@app.command()
def rematch(config: ConfigArg) -> None:
    """Re-judge every shard's stored observations with the current banks and detector parameters:
    no shard is read and nothing is fetched. Judgements whose inputs did not change are reused."""
    with _reported():
        cfg = load_config(config)
        summary = _scan(cfg, "rematch")
    _summary(summary, cfg)


@app.command()
def recheck(config: ConfigArg) -> None:
    """Check again the links that are due: those dead_links calls transient, or dead and not yet
    confirmed by dead_links.min_checks agreeing checks, last checked fetch.recheck_interval seconds
    ago or more. Each is checked once; the checks add to the link's history in the store."""
    with _reported():
        cfg = load_config(config)
        summary = _scan(cfg, "recheck")
    _summary(summary, cfg)


@app.command()
def deploy(
    config: ConfigArg,
    pool: Annotated[str, typer.Option("--pool", help="A Prefect work pool of type process (prefect work-pool create POOL --type process).")],
) -> None:
    """Register the flows (scan, recheck_links, rematch_banks, sync, release, report) as Prefect
    deployments on the server at PREFECT_API_URL, with the config's schedules; run them with
    `prefect worker start --pool POOL`."""
    from scrutineer.flows import configure_prefect

    configure_prefect()
    from scrutineer.flows.service import deploy as deploy_flows

    with _reported():
        cfg = load_config(config)
        names = deploy_flows(cfg, pool)
    for key, name in names.items():
        when = cfg.schedule.get(key)
        schedule = "on demand" if when is None else f"cron {when.cron} ({when.timezone})" if when.cron else f"every {when.interval:g} s"
        out.print(f"deployment {name}: {schedule}", highlight=False)


@app.command()
def banks(config: ConfigArg) -> None:
    """List the configured hash banks: versions, entry counts, and whether the store has them."""
    from scrutineer import Workspace
    from scrutineer.core import store
    from scrutineer.core.banks import load_banks

    with _reported():
        cfg = load_config(config)
        loaded = load_banks(cfg.banks)
        registered: set[tuple[str, str]] = set()
        if (cfg.workspace / store.DB_NAME).exists():
            with Workspace(cfg.workspace) as ws:
                registered = set(ws.sql("SELECT name, sha256 FROM banks").fetchall())
    table = Table("name", "signal type", "source", "version", "entries", "sha256", "in store")
    for b in loaded:
        p = b.ref.public()
        table.add_row(p["name"], p["signal_type"], p["source"], p["version"], f"{p['entries']:,}", p["sha256"][:12], "yes" if (p["name"], p["sha256"]) in registered else "no")
    out.print(table)


@app.command()
def query(config: ConfigArg, sql: Annotated[str, typer.Argument(help="SQL to run on the store, read-only.")]) -> None:
    """Run a read-only SQL query on the workspace's DuckDB store and print the result. The query
    reads the store and nothing else: DuckDB's access to other files is disabled."""
    import duckdb

    from scrutineer import Workspace

    with _reported(duckdb.Error), Workspace(load_config(config).workspace) as ws:
        rel = ws.sql(sql)
        table = Table(*rel.columns)
        for row in rel.fetchall():
            table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


users = typer.Typer(no_args_is_help=True, help="Accounts of the review app.")
flags = typer.Typer(no_args_is_help=True, help="Flags from people.")
app.add_typer(users, name="users")
app.add_typer(flags, name="flags")


@users.command("add")
def users_add(
    config: ConfigArg,
    name: Annotated[str, typer.Argument(help="Account name (how the person logs in).")],
    role: Annotated[str, typer.Option(help="contributor (flags samples), reviewer (also decides flags) or maintainer (also sees takedowns).")],
) -> None:
    """Create an account; print its password and API token, once (only their hashes are stored)."""
    from scrutineer.crowd.store import CrowdStore

    with _reported(), CrowdStore(load_config(config).crowd) as crowd:
        password, token = crowd.add_account(name, role)
    out.print(f"{role} {name!r} created.\npassword: {password}\nAPI token: {token}\nKeep them now: they are not shown again.", highlight=False)


@users.command("list")
def users_list(config: ConfigArg) -> None:
    """List the accounts: name, role, state, when created, last log-in, API tokens and live
    sessions (no secrets: only their hashes are stored)."""
    from scrutineer.crowd.store import CrowdStore

    with _reported(), CrowdStore(load_config(config).crowd) as crowd:
        rows = crowd.list_accounts()
    table = Table(box=None)
    table.add_column("name", overflow="fold")  # never cut short: it is what the other commands take
    for column in ("role", "state", "created", "last log-in", "tokens", "sessions"):
        table.add_column(column, no_wrap=True)
    for a in rows:
        signed_in = a["signed_in_at"].strftime("%Y-%m-%d %H:%M") if a["signed_in_at"] else "never"
        table.add_row(a["name"], a["role"], a["state"], f"{a['created_at']:%Y-%m-%d}", signed_in, str(a["tokens"]), str(a["sessions"]))
    out.print(table)


AccountName = Annotated[str, typer.Argument(help="Account name.")]


def _change_account(config: Path, name: str, change: str) -> str | None:
    """:meth:`scrutineer.crowd.store.CrowdStore.change_account`, audited as made by ``cli``."""
    from scrutineer.crowd.store import CrowdStore

    with _reported(), CrowdStore(load_config(config).crowd) as crowd:
        return crowd.change_account(name, change, "cli")


@users.command("disable")
def users_disable(config: ConfigArg, name: AccountName) -> None:
    """Disable an account: its sessions and API tokens stop working at once, in every app
    process, and it cannot log in until enabled."""
    _change_account(config, name, "disable")
    out.print(f"{name!r} disabled: its sessions and tokens have ended.", highlight=False)


@users.command("enable")
def users_enable(config: ConfigArg, name: AccountName) -> None:
    """Enable a disabled account: it logs in with its password again (its old tokens stay ended:
    `users rotate-token` gives it a new one)."""
    _change_account(config, name, "enable")
    out.print(f"{name!r} enabled.", highlight=False)


@users.command("rotate-token")
def users_rotate_token(config: ConfigArg, name: AccountName) -> None:
    """End an account's API tokens and print a new one, once."""
    token = _change_account(config, name, "rotate-token")
    out.print(f"API token of {name!r}: {token}\nIts earlier tokens have stopped working. Keep this one now: it is not shown again.", highlight=False)


@users.command("reset-password")
def users_reset_password(config: ConfigArg, name: AccountName) -> None:
    """Give an account a new random password, printed once, and end its sessions."""
    password = _change_account(config, name, "reset-password")
    out.print(f"password of {name!r}: {password}\nIts sessions have ended. Keep it now: it is not shown again.", highlight=False)


@flags.command("import")
def flags_import(
    config: ConfigArg,
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSONL: rows with sample_id or url, category, note.", exists=True, dir_okay=False)],
    by: Annotated[str, typer.Option("--by", help="The account the flags are recorded for.")],
) -> None:
    """Import flags from a file, all or nothing: a file naming any unknown sample, URL or category
    imports nothing, and every bad line is listed."""
    from scrutineer.crowd.flag_import import import_flags

    with _reported():
        made, new = import_flags(load_config(config), file, by)
    out.print(f"{new} flags recorded ({made - new} already recorded) from {file}", highlight=False)


@app.command()
def sync(config: ConfigArg) -> None:
    """Import the confirmed crowd flags into the latest finished run as `crowd.<category>`
    findings (idempotent), and publish the review snapshot again."""
    from scrutineer.crowd.sync import sync_latest

    with _reported():
        run_id, n = sync_latest(load_config(config))
    out.print(f"run {run_id}: {n} crowd findings", highlight=False)


@app.command()
def serve(
    config: ConfigArg,
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback and put a TLS reverse proxy in front (README).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port; it must be free.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="App processes (gunicorn workers running uvicorn); they share the crowd store, sessions and rate limits.")] = 2,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Mark cookies Secure on every request, for a TLS proxy that does not send X-Forwarded-Proto (README \"Behind TLS\").")] = False,
) -> None:
    """Serve the review app: flag samples, review flags, read reports (FastAPI, on uvicorn, in
    gunicorn's worker processes). A host other than loopback serves plain HTTP to the network:
    it is allowed, with a warning."""
    import os

    from scrutineer.crowd.app import CONFIG_ENV, SECURE_COOKIES_ENV, create_app
    from scrutineer.crowd.server import Server, plain_http_warning

    if warning := plain_http_warning(host):
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    with _reported():
        cfg = load_config(config)
        create_app(cfg).state.services.close()  # a bad config or crowd store fails here, in one line
        server = Server(host, port, workers)
    os.environ[CONFIG_ENV] = str(cfg.config_path)
    os.environ[SECURE_COOKIES_ENV] = "1" if secure_cookies else "0"
    server.run()


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to build the demo dataset and workspace.")] = Path("scrutineer-demo"),
) -> None:
    """Serve a small synthetic LAION-style dataset from a local web server, scan it (fetching and
    hashing every image), re-match a hash list that arrives later, then release, takedown and report."""
    from scrutineer.crowd.demo import add_people
    from scrutineer.crowd.store import crowd_counts
    from scrutineer.reports.html import write_report
    from scrutineer.reports.takedown import write_takedown

    from scrutineer.testing import demo as demo_data

    with _reported(), demo_data.web() as server:
        config_path = demo_data.build_demo(directory.resolve(), server)
        out.print(f"demo dataset and config: {config_path} (images served by {server.url('/')} on {len(demo_data.HOSTS)} loopback hosts)", highlight=False)
        summary = _scan(load_config(config_path))
        out.print(_findings_table(summary, "demo scan"))
        requests = server.stats()["requests"]
        bank = demo_data.add_later_bank(config_path)
        cfg = load_config(config_path)
        result = _scan(cfg, "rematch")
        requests = server.stats()["requests"] - requests
    out.print(_findings_table({**result, "status": f"{bank} re-matched, {requests} HTTP requests"}, "rematch"))
    with _reported():
        releases = [_release(cfg, v) for v in cfg.release.variants]
        csv_path, json_path, n = write_takedown(cfg)
        report_path = write_report(cfg, crowd=crowd_counts(cfg))
    latest = f"SELECT reason, count(*) FROM findings WHERE run_id = '{result['run_id']}' GROUP BY reason"
    out.print(f"findings:  {cfg.workspace / 'scrutineer.duckdb'}  (try: scrutineer query {config_path} \"{latest}\")", highlight=False, soft_wrap=True)
    for path in releases:
        out.print(f"release:   {path}", highlight=False, soft_wrap=True)
    out.print(f"takedown:  {csv_path} ({n} URLs, restricted)", highlight=False, soft_wrap=True)
    out.print(f"report:    {report_path}", highlight=False, soft_wrap=True)
    with _reported():
        people = add_people(cfg)
    out.print("review app accounts (shown once; only their hashes are stored):", highlight=False)
    for role, name, password, token in people:
        out.print(f"  {role:<11} {name:<7} password {password}  API token {token}", highlight=False, soft_wrap=True)
    out.print(f"review:    scrutineer serve {config_path}  then open http://127.0.0.1:8000/queue (one flag is pending review)", highlight=False, soft_wrap=True)
