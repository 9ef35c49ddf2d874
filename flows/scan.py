"""The scan flow: one Prefect task per shard (flows/shard.py), then one writer loading the store
(flows/load.py).

A run is one of three kinds (:data:`RunKind`). A **scan** observes what is not stored yet and
judges what is not judged yet. A **rematch** only re-judges stored observations, so it never reads
a shard's rows or fetches a URL. A **recheck** checks the due links of the stored content
observations again (:func:`scrutineer.flows.shard.due_urls`), into new content observations, so link
liveness becomes a history across runs. Whatever its kind, the run records every shard and loads
every finding it has, so the latest finished run is complete.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

import duckdb
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.states import Failed, State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from scrutineer import __version__
from scrutineer.core import flood, store
from scrutineer.core.banks import BankRef, load_banks, register
from scrutineer.core.config import Config
from scrutineer.core.contract import RUNS
from scrutineer.core.errors import (
    ConfigError,
    NetworkDownError,
    ScrutineerError,
    ShardError,
    WorkspaceError,
)
from scrutineer.core.extras import require
from scrutineer.core.files import FileDigest, sweep_temporaries
from scrutineer.core.registry import available, get_detector_class
from scrutineer.detectors.base import RecheckingDetector
from scrutineer.flows import content_workers, prefect_api
from scrutineer.flows.load import load
from scrutineer.flows.plan import ScanPlan
from scrutineer.flows.shard import ShardResult, ShardTask, run_shard
from scrutineer.formats.sources import list_shards
from scrutineer.formats.webdataset import tar_path

#: What a run does: observe and judge (scan), re-judge stored observations (rematch), or check due
#: links again (recheck).
RunKind = Literal["scan", "rematch", "recheck"]
#: Called with each shard's result as it finishes (the CLI draws its progress bar with it).
OnShard = Callable[[ShardResult], None]
#: The running scan's :data:`OnShard`. Not a flow parameter: Prefect sends the flow's parameters
#: with every task it submits to a Dask worker, and a callback (the CLI's progress bar) does not
#: pickle; a deployment's parameters must be plain values too.
_on_shard: ContextVar[OnShard] = ContextVar("on_shard", default=lambda result: None)


@task(name="shard", cache_policy=NO_CACHE)
def shard_task(args: ShardTask) -> ShardResult:
    """:func:`scrutineer.flows.shard.run_shard` as a Prefect task. A shard that fails as shards may (a
    :class:`~scrutineer.core.errors.ShardError`) is a result, ``failed`` or ``inconclusive``, with its
    one-line message: the run records it and goes on."""
    shard = args.shard
    try:
        return run_shard(args)
    except NetworkDownError as e:
        return ShardResult(shard, "inconclusive", error=f"{shard.location}: {e}")
    except ShardError as e:
        return ShardResult(shard, "failed", error=str(e))


def run_scan(config: Config, kind: RunKind = "scan", on_shard: OnShard | None = None) -> dict:
    """Run :func:`scan_flow` on ``config.runner``'s task runner (:func:`task_runner`).

    Raises:
        ConfigError, WorkspaceError: as :func:`scan_flow`, before any shard is read.
    """
    flow_ = scan_flow.with_options(task_runner=task_runner(config))
    if config.runner.kind == "local" and _fetches(config, kind):
        content_workers.start_forkserver()  # warms up while Prefect starts
    reset = _on_shard.set(on_shard or (lambda result: None))
    try:
        with prefect_api():
            return flow_(config, kind)
    finally:
        _on_shard.reset(reset)


def _plan(config: Config, kind: RunKind, banks: tuple[BankRef, ...], started: datetime) -> ScanPlan:
    """The plan of a ``kind`` run of ``config`` with ``banks``, started at ``started``.

    Raises:
        ConfigError: as :meth:`~scrutineer.core.config.Config.detector_params`.
    """
    return ScanPlan(config, config.detector_params(), banks, observe=kind == "scan", recheck=started if kind == "recheck" else None)


def _fetches(config: Config, kind: RunKind) -> bool:
    """Whether the run's shard tasks fetch (:attr:`ScanPlan.fetches`), seen before its flow starts
    (which bank versions it matches changes nothing of that); False for a config the flow will
    reject (the flow says why)."""
    try:
        return _plan(config, kind, (), datetime.now(UTC)).fetches
    except ScrutineerError:
        return False


def task_runner(config: Config) -> TaskRunner:
    """The shard tasks' runner. ``local``: ``config.workers`` threads (MEASURED.md puts a task at
    10-15 ms on threads against 200-360 ms in a process pool or on Dask), which fetch and hash in
    the run's content workers (flows/content_workers.py). ``dask``: prefect-dask's
    ``DaskTaskRunner`` on the cluster at ``runner.address``, or on a ``LocalCluster`` of
    ``runner.workers`` processes of one thread each (a shard task runs its own threads, and
    fetches and hashes in its own process).

    Raises:
        MissingExtraError: ``dask`` without the dask extra installed.
    """
    runner = config.runner
    if runner.kind == "local":
        return ThreadPoolTaskRunner(max_workers=config.workers)
    require("dask")
    import dask  # optional: the dask extra
    from prefect_dask import DaskTaskRunner  # optional: the dask extra

    # a Dask worker process starts the hash pool of a webdataset shard's tar, which a daemonic process may not do
    dask.config.set({"distributed.worker.daemon": False})

    if runner.address:
        return DaskTaskRunner(address=runner.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": runner.workers, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"})


@flow(name="scrutineer-run", log_prints=False, persist_result=False)
def scan_flow(config: Config, kind: RunKind = "scan") -> dict | State:
    """Scan a dataset, re-judge its stored observations (``rematch``) or check its due links again
    (``recheck``): shard tasks in parallel, then the load, duplicate grouping included.

    Args:
        config: a loaded :class:`~scrutineer.core.config.Config`.
        kind: scan, rematch or recheck. In a rematch or a recheck, a shard whose observations are
            not stored fails.

    Returns:
        Summary dict: ``run_id``, ``kind``, ``status`` (completed|partial|inconclusive),
        ``shards`` (per shard: shard_id, status, rows, error), ``findings`` (count per reason),
        ``held`` (the flood guard's counts: :meth:`scrutineer.core.flood.Held.public`);
        or, for a :class:`~scrutineer.core.errors.ScrutineerError` below, a ``Failed`` state
        carrying it (the run's one-line error; :func:`run_scan` raises it again).

    Raises:
        ConfigError: a bad config or bank file (before any shard is read); a recheck without the
            detector that says which links are due (``dead_links``: a
            :class:`~scrutineer.detectors.base.RecheckingDetector`).
        WorkspaceError: another process holds the workspace, or its store cannot take the run (a
            full disk: nothing of the run is loaded).
    """
    try:
        return _scan(config, kind)
    except ScrutineerError as e:  # a one-line error for the caller, not a traceback in Prefect's log
        return Failed(message=str(e), data=e)


def _scan(config: Config, kind: RunKind) -> dict:
    # the flow's own body refers to nothing but importable names: Prefect sends the flow with each
    # task it submits to Dask, and cloudpickle copies the body's globals (a ContextVar does not pickle)
    on_shard = _on_shard.get()
    banks = load_banks(config.banks)
    started = datetime.now(UTC)
    plan = _plan(config, kind, tuple(b.ref for b in banks), started)
    if kind == "recheck" and not plan.rechecking():
        rechecking = sorted(n for n in available() if issubclass(get_detector_class(n), RecheckingDetector))
        raise ConfigError(f"a recheck checks again the links {' or '.join(rechecking)} calls transient or not yet dead: "
                          f"configure detectors.{' or detectors.'.join(rechecking)}")
    shards = list_shards(config)
    plan = replace(plan, fetchers=_fetchers(plan, len(shards)))
    ws = config.workspace
    con = store.connect(ws, memory_limit=config.memory_limit)  # holds the workspace: DuckDB admits one writer process
    try:
        for folder in (plan.layout.observations, plan.layout.judgements, plan.layout.banks):
            folder.mkdir(exist_ok=True)
            sweep_temporaries(folder)
        register(con, ws, banks)
        run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
        run = {"run_id": run_id, "kind": kind, "dataset": config.dataset.name, "started_at": started,
               "finished_at": None, "status": "running", "tool_version": __version__, "config": config.model_dump_json(),
               "detectors": json.dumps(plan.detectors_public()), "banks": json.dumps([b.ref.public() for b in banks])}
        store.insert(con, RUNS, [run])
        try:
            # the local runner's shard tasks fetch in the run's content workers, made on first use and stopped here
            with content_workers.for_run(config.fetch, plan.layout.policy_files) as pool:
                results = _run_shards(shards, plan, _known_digests(con, shards), _rechecked(con, shards), on_shard,
                                      pool if config.runner.kind == "local" else None)
            statuses = {r.status for r in results}
            status = "inconclusive" if "inconclusive" in statuses else "partial" if "failed" in statuses else "completed"
            load(con, run_id, plan, results, status)
        except BaseException as e:
            try:
                con.execute("UPDATE runs SET status = 'failed', finished_at = ? WHERE run_id = ?", [datetime.now(UTC), run_id])
            except duckdb.Error:
                pass  # the store is unusable (a full disk, say): the error being raised says why
            if isinstance(e, duckdb.Error | OSError):
                raise WorkspaceError(f"workspace {ws}: the store could not take run {run_id}, nothing of it was loaded: {e}") from e
            raise
        counts = dict(con.execute("SELECT reason, count(*) FROM findings WHERE run_id = ? GROUP BY reason ORDER BY reason", [run_id]).fetchall())
        held = flood.held_counts(con, run_id).public()
    finally:
        con.close()
    return {
        "run_id": run_id,
        "kind": kind,
        "status": status,
        "shards": [{"shard_id": r.shard.shard_id, "status": r.status, "rows": r.rows, "error": r.error} for r in results],
        "findings": counts,
        "held": held,
    }


def _fetchers(plan: ScanPlan, shards: int) -> int:
    """How many fetchers split the per-domain politeness limits, so they add up to the configured
    ones: 1 on the local runner (its content workers own a registrable domain each:
    flows/content_workers.py); on Dask, as many shard tasks as run at once (the cluster's worker
    threads), at most one per shard, each fetching in its own process.

    Raises:
        ConfigError: the plan fetches (:attr:`~scrutineer.flows.plan.ScanPlan.fetches`), and
            ``fetch.per_domain`` is below that number.
    """
    config = plan.config
    runner = config.runner
    if runner.kind == "local":
        return 1
    if runner.workers:
        slots = runner.workers
    else:  # a running cluster: its worker threads now
        slots = sum(FlowRunContext.get().task_runner.client.nthreads().values())
    fetchers = max(1, min(slots, shards))
    if plan.fetches and config.fetch.per_domain < fetchers:
        raise ConfigError(f"fetch.per_domain is {config.fetch.per_domain}, but {fetchers} shard tasks may fetch at once and they "
                          "share it: raise per_domain, or run fewer shard tasks at once (runner.workers)")
    return fetchers


def _known_digests(con: duckdb.DuckDBPyConnection, shards) -> dict[str, tuple[FileDigest, ...]]:
    """What the store knows of each shard's files (the shard, and a webdataset shard's tar)."""
    paths = {s.shard_id: [s.location] + ([str(tar_path(s.location))] if s.format == "webdataset" else []) for s in shards}
    rows = con.execute("SELECT * FROM file_digests WHERE list_contains(?, path)", [[p for ps in paths.values() for p in ps]]).fetchall()
    known = {r[0]: FileDigest(*r) for r in rows}
    return {sid: tuple(known[p] for p in ps if p in known) for sid, ps in paths.items()}


def _rechecked(con: duckdb.DuckDBPyConnection, shards) -> dict[str, dict[str, str]]:
    """Per shard, the latest recheck of each of its content observations that has one:
    ``{shard_id: {observation_id: the recheck's observation_id}}``."""
    rows = con.execute(
        "SELECT shard_id, key->>'base', arg_max(observation_id, observed_at) FROM observations "
        "WHERE kind = 'content' AND key->>'base' IS NOT NULL AND list_contains(?, shard_id) GROUP BY ALL",
        [[s.shard_id for s in shards]],
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for shard_id, base, latest in rows:
        out.setdefault(shard_id, {})[base] = latest
    return out


def _run_shards(shards, plan: ScanPlan, known: dict, rechecked: dict, on_shard: OnShard, pool: str | None) -> list[ShardResult]:
    futures = {shard_task.submit(ShardTask(s, plan, known[s.shard_id], rechecked.get(s.shard_id, {}), pool)): s for s in shards}
    results: dict[str, ShardResult] = {}
    for fut in as_completed(list(futures)):
        shard = futures[fut]
        try:
            res = fut.result()
        except Exception as e:  # an unexpected bug still fails only this shard
            res = ShardResult(shard, "failed", error=f"{shard.location}: {type(e).__name__}: {e}")
        results[shard.shard_id] = res
        on_shard(res)
    return [results[s.shard_id] for s in shards]
