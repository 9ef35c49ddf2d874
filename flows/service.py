"""The flows ``scrutineer deploy`` registers on a Prefect process work pool, and the deploying.

Each flow takes the config file's path, a plain JSON value as a deployment's parameters must be,
and reads the config again on every run, so an edited config (a new bank file, say) applies to the
next scheduled run without deploying again. The flows of one workspace take turns: each holds a
slot of the workspace's Prefect global concurrency limit (:func:`workspace_limit`, limit 1, made
by :func:`deploy`) while it runs, since the store admits one writer process; a scheduled run
that finds the workspace busy waits for its slot instead of failing. A flow's
:class:`~scrutineer.core.errors.ScrutineerError` ends its run Failed with the one-line message.

=====================  ==============================================================
deployment             does
=====================  ==============================================================
``scrutineer-scan``    a scan (:func:`scrutineer.flows.scan.run_scan`)
``…-recheck-links``    checks due links again (a recheck run; :func:`scrutineer.flows.shard.due_urls`)
``…-rematch-banks``    a rematch, when a bank file's sha256 differs from the latest run's
``scrutineer-sync``    imports the confirmed crowd flags (:func:`scrutineer.crowd.sync.sync_latest`)
``scrutineer-release`` writes a release variant (parameter ``variant``)
``scrutineer-report``  writes the HTML report of the latest finished run
=====================  ==============================================================

Every deployment is named after ``dataset.name``: ``scrutineer-scan/<dataset>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prefect import Flow, flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
)
from prefect.client.schemas.schedules import CronSchedule
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from pydantic import ValidationError

from scrutineer.core import store
from scrutineer.core.config import Config, ScheduleConfig, load_config
from scrutineer.core.errors import ConfigError, WorkspaceError
from scrutineer.core.files import file_sha256
from scrutineer.crowd.store import crowd_counts
from scrutineer.crowd.sync import after_run, before_release, sync_latest
from scrutineer.flows.scan import run_scan
from scrutineer.release.build import build_release
from scrutineer.reports.html import write_report

#: Seconds a flow's workspace slot is leased for; Prefect renews the lease while the flow runs, and
#: frees the slot this long after a worker dies holding it.
LEASE = 300.0


def workspace_limit(cfg: Config) -> str:
    """The name of the global concurrency limit the flows of ``cfg``'s workspace share:
    ``scrutineer-workspace-`` and 16 hex characters of the sha256 of the workspace's path."""
    return "scrutineer-workspace-" + hashlib.sha256(str(cfg.workspace).encode()).hexdigest()[:16]


@contextmanager
def _turn(config: str) -> Iterator[Config]:
    """The config at path ``config``, read now, while this flow holds its workspace's slot
    (:func:`workspace_limit`)."""
    cfg = load_config(config)
    with concurrency(workspace_limit(cfg), lease_duration=LEASE):
        yield cfg


def _run(cfg: Config, kind: str) -> dict:
    """:func:`scrutineer.flows.scan.run_scan`, its summary logged (a warning unless it completed)."""
    summary = after_run(cfg, run_scan(cfg, kind))
    log = get_run_logger()
    (log.info if summary["status"] == "completed" else log.warning)("run %s: %s", summary["run_id"], json.dumps(summary))
    return summary


def _scanned(cfg: Config) -> list[dict] | None:
    """The banks of the dataset's latest finished run (``runs.banks``), or None before its first."""
    con = store.connect(cfg.workspace, memory_limit=cfg.memory_limit)  # a busy workspace raises here
    try:
        try:
            run_id, _ = store.latest_run(con, cfg.dataset.name, cfg.workspace)
        except WorkspaceError:  # no finished run
            return None
        return json.loads(con.execute("SELECT banks FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])
    finally:
        con.close()


@flow(name="scrutineer-scan", persist_result=False)
def scan(config: str) -> dict:
    """Scan the dataset of the config at path ``config``. Returns the run's summary
    (:func:`scrutineer.flows.scan.scan_flow`)."""
    with _turn(config) as cfg:
        return _run(cfg, "scan")


@flow(name="scrutineer-recheck-links", persist_result=False)
def recheck_links(config: str) -> dict:
    """Check again the links that are due (``link.transient``, and dead links not yet confirmed
    ``dead_links.min_checks`` times, last checked ``fetch.recheck_interval`` seconds ago or
    more): a recheck run. Before the dataset's first finished scan there is nothing to recheck:
    returns ``{"status": "skipped", "why": …}``."""
    with _turn(config) as cfg:
        if _scanned(cfg) is None:
            return {"status": "skipped", "why": "no finished scan yet"}
        return _run(cfg, "recheck")


@flow(name="scrutineer-rematch-banks", persist_result=False)
def rematch_banks(config: str) -> dict:
    """Rematch when a bank file's sha256 (or the set of banks) differs from the latest finished
    run's: its stored observations are judged again, nothing is fetched. Otherwise, or before the
    first finished scan, returns ``{"status": "skipped", "why": …}``.

    Raises:
        ConfigError: a bank file cannot be read.
    """
    with _turn(config) as cfg:
        scanned = _scanned(cfg)
        if scanned is None:
            return {"status": "skipped", "why": "no finished scan yet"}
        try:
            now = {(b.name, file_sha256(b.path)) for b in cfg.banks}
        except OSError as e:
            raise ConfigError(f"bank file {e.filename}: {e.strerror}") from None
        if now == {(b["name"], b["sha256"]) for b in scanned}:
            return {"status": "skipped", "why": "the bank files are those of the latest run"}
        return _run(cfg, "rematch")


@flow(name="scrutineer-sync", persist_result=False)
def sync(config: str) -> dict:
    """Import the confirmed crowd flags into the latest finished run
    (:func:`scrutineer.crowd.sync.sync_latest`). Returns ``{"run_id", "crowd_findings"}``."""
    with _turn(config) as cfg:
        run_id, n = sync_latest(cfg)
    return {"run_id": run_id, "crowd_findings": n}


@flow(name="scrutineer-release", persist_result=False)
def release(config: str, variant: str) -> str:
    """Write release ``variant`` (:func:`scrutineer.release.build.build_release`). Returns its directory."""
    with _turn(config) as cfg:
        before_release(cfg)
        return str(build_release(cfg, variant))


@flow(name="scrutineer-report", persist_result=False)
def report(config: str) -> str:
    """Write the HTML report of the latest finished run (:func:`scrutineer.reports.html.write_report`).
    Returns its path."""
    with _turn(config) as cfg:
        return str(write_report(cfg, crowd=crowd_counts(cfg)))


#: Config ``schedule:`` key -> flow. Release and report run on demand only.
FLOWS: dict[str, Flow] = {
    "scan": scan, "recheck_links": recheck_links, "rematch_banks": rematch_banks, "sync": sync, "release": release, "report": report,
}


def _schedule(name: str, schedule: ScheduleConfig | None) -> dict:
    """``to_deployment`` keywords of a config schedule (Prefect validates the cron line)."""
    if schedule is None:
        return {}
    if schedule.interval is not None:
        return {"interval": schedule.interval}
    try:
        return {"schedules": [CronSchedule(cron=schedule.cron, timezone=schedule.timezone)]}
    except ValidationError as e:
        raise ConfigError(f"schedule.{name}: {e.errors()[0]['msg']}") from None


def deploy(cfg: Config, pool: str) -> dict[str, str]:
    """Register one deployment per flow of :data:`FLOWS` on Prefect process work pool ``pool``,
    with the config's schedules, and the workspace's concurrency limit (:func:`workspace_limit`).
    A deployment runs ``flows/service.py`` from the directory Scrutineer is installed in (a
    ``set_working_directory`` pull step), so the worker needs Scrutineer installed there, and
    the config and its paths at the same places. Deploying again updates the deployments.

    Returns:
        ``{flow key of FLOWS: its deployment's name, <flow name>/<dataset>}``.

    Raises:
        ConfigError: no Prefect server is configured (``PREFECT_API_URL``), none answers there
            (refused, unreachable, timed out: one line naming the URL), no work pool ``pool``, a
            pool that is not of type ``process``, or a bad cron line.
    """
    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError("deploy registers deployments on a Prefect server: set PREFECT_API_URL (README \"Run it as a service\")")
    schedules = {key: _schedule(key, cfg.schedule.get(key)) for key in FLOWS}  # a bad cron line fails before any is registered
    try:
        return _deploy(cfg, pool, url, schedules)
    except httpx.TransportError as e:  # the server is down or out of reach, before or while deploying
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"no Prefect server answers at {url} (PREFECT_API_URL): {why}; start one (README \"Run it as a service\")") from None


def _deploy(cfg: Config, pool: str, url: str, schedules: dict[str, dict]) -> dict[str, str]:
    """:func:`deploy`'s work on the server at ``url``, the ``schedules`` checked."""
    with get_client(sync_client=True) as client:
        try:
            kind = client.read_work_pool(pool).type
        except ObjectNotFound:
            raise ConfigError(f"no work pool {pool!r} on {url}: prefect work-pool create {pool} --type process") from None
        if kind != "process":
            raise ConfigError(f"work pool {pool!r} is of type {kind}; Scrutineer's flows run on a process pool")
        client.upsert_global_concurrency_limit_by_name(workspace_limit(cfg), limit=1)
    root = Path(__file__).resolve().parent.parent
    names = {}
    for key, fn in FLOWS.items():
        scheduled = key in cfg.schedule
        deployment = fn.from_source(source=str(root), entrypoint=f"flows/service.py:{fn.__name__}").to_deployment(
            name=cfg.dataset.name,
            parameters={"config": str(cfg.config_path)},
            # a scheduled run while one is still going (or waiting for the workspace) is skipped;
            # on-demand runs queue
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW if scheduled else ConcurrencyLimitStrategy.ENQUEUE
            ),
            **schedules[key],
        )
        deployment.apply(work_pool_name=pool)
        names[key] = f"{fn.name}/{cfg.dataset.name}"
    return names
