"""``deploy``: the flows as Prefect deployments on a server, with the config's schedules."""

from __future__ import annotations

from typing import Annotated

import typer

from scrutineer.cli.console import ConfigArg, out, reported
from scrutineer.core.config import load_config
from scrutineer.flows import configure_prefect


def deploy(
    config: ConfigArg,
    pool: Annotated[str, typer.Option("--pool", help="A Prefect work pool of type process (prefect work-pool create POOL --type process).")],
) -> None:
    """Register the flows (scan, recheck_links, rematch_banks, sync, release, report) as Prefect
    deployments on the server at PREFECT_API_URL, with the config's schedules; run them with
    `prefect worker start --pool POOL`."""
    configure_prefect()  # before Prefect is first imported: it reads its settings then
    # start-up: scrutineer.flows.service costs 1,800 ms at import (Prefect; measured 2026-12-06)
    from scrutineer.flows.service import deploy as deploy_flows

    with reported():
        cfg = load_config(config)
        names = deploy_flows(cfg, pool)
    for key, name in names.items():
        when = cfg.schedule.get(key)
        schedule = "on demand" if when is None else f"cron {when.cron} ({when.timezone})" if when.cron else f"every {when.interval:g} s"
        out.print(f"deployment {name}: {schedule}", highlight=False)
