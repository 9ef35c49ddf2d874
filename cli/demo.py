"""``demo``: a small synthetic dataset served from loopback, scanned, re-matched, released, reported
and given review-app accounts, end to end and offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scrutineer.cli.console import out, reported
from scrutineer.cli.outputs import build_release
from scrutineer.cli.scan import findings_table, run_with_progress
from scrutineer.core.config import load_config
from scrutineer.core.layout import Layout
from scrutineer.core.wording import plural
from scrutineer.testing import demo as demo_data


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to build the demo dataset and workspace.")] = Path("scrutineer-demo"),
    force: Annotated[bool, typer.Option("--force", help="Rebuild over an earlier demo whose review app has accounts or flags (they are deleted).")] = False,
) -> None:
    """Serve a small synthetic LAION-style dataset from a local web server, scan it (fetching and
    hashing every image), re-match a hash list that arrives later, then release, takedown and report.
    Refuses, changing nothing, a directory whose review app has accounts or flags, unless --force."""
    # start-up: scrutineer.crowd.demo costs 500 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.demo import add_people, refuse_to_overwrite

    # start-up: as crowd.demo, which imports it
    from scrutineer.crowd.store import crowd_counts

    # start-up: scrutineer.reports.html costs 220 ms at import (Jinja2; measured 2026-12-06)
    from scrutineer.reports.html import write_report

    # start-up: scrutineer.reports.takedown costs 130 ms at import (tldextract; measured 2026-12-06)
    from scrutineer.reports.takedown import write_takedown

    if not force:
        with reported():
            refuse_to_overwrite(directory.resolve() / demo_data.WORKSPACE)
    with reported(), demo_data.web() as server:
        config_path = demo_data.build_demo(directory.resolve(), server)
        out.print(f"demo dataset and config: {config_path} (images served by {server.url('/')} on {len(demo_data.HOSTS)} loopback hosts)", highlight=False)
        summary = run_with_progress(load_config(config_path))
        out.print(findings_table(summary, "demo scan"))
        requests = server.stats()["requests"]
        bank = demo_data.add_later_bank(config_path)
        cfg = load_config(config_path)
        result = run_with_progress(cfg, "rematch")
        requests = server.stats()["requests"] - requests
    out.print(findings_table({**result, "status": f"{bank} re-matched, {requests} HTTP requests"}, "rematch"))
    with reported():
        releases = [build_release(cfg, v) for v in cfg.release.variants]
        csv_path, json_path, n = write_takedown(cfg)
        report_path = write_report(cfg, crowd=crowd_counts(cfg))
    latest = f"SELECT reason, count(*) FROM findings WHERE run_id = '{result['run_id']}' GROUP BY reason"
    out.print(f"findings:  {Layout(cfg.workspace).store}  (try: scrutineer query {config_path} \"{latest}\")", highlight=False)
    for path in releases:
        out.print(f"release:   {path}", highlight=False)
    out.print(f"takedown:  {csv_path} ({plural(n, 'row')}, restricted)", highlight=False)
    out.print(f"report:    {report_path}", highlight=False)
    with reported():
        people = add_people(cfg)
    out.print("review app accounts (shown once; only their hashes are stored):", highlight=False)
    for role, name, password, token in people:
        out.print(f"  {role:<11} {name:<7} password {password}  API token {token}", highlight=False)
    out.print(f"review:    scrutineer serve {config_path}  then open http://127.0.0.1:8000/queue (one flag is pending review)", highlight=False)
