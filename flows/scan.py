"""The scan flow: one Prefect task per shard, then one writer loading DuckDB.

Each shard task streams its shard through every configured detector and writes its outputs into
``<workspace>/shards/<fingerprint>/`` atomically (a temporary directory renamed into place):
``findings.parquet``, ``signatures-<detector>.parquet`` and ``stats.json``. The fingerprint is the
sha256 of the shard's sha256, its read options, the detectors' names/versions/params and the banks'
sha256s, so a rerun (or a rerun after ``kill -9``) skips finished shards and gives the same result.
A shard that fails (:class:`~scrutineer.errors.ShardError`) is recorded and the run ends
``partial``. The driver then loads every shard's outputs, runs the detectors' corpus-level
``finalize`` steps (duplicate grouping) and records the run, in one DuckDB transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import secrets
import shutil
import time
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scrutineer import __version__, store
from scrutineer.banks import Bank, load_banks
from scrutineer.config import Config
from detectors.base import FINDINGS_SCHEMA, DetectContext
from detectors.registry import get_detector_class
from scrutineer.errors import NetworkDownError, RetryableError, ShardError
from scrutineer.fetch import Fetcher
from scrutineer.files import sweep_temporaries, temporary_sibling
from flows import content
from scrutineer.sources import Shard, as_string, iter_detect_batches, list_shards
from scrutineer.webdataset import hash_tar, tar_path, tar_sha256


@dataclass(frozen=True)
class ScanPlan:
    """Everything a shard task needs; built once by the driver."""

    config: Config
    banks: list[Bank]
    params: dict[str, BaseModel]
    shard_root: Path
    hash_pool: Executor | None = None  # processes hashing image bytes, when a content detector runs

    def names(self, needs: str) -> list[str]:
        """Configured detectors that see ``needs`` (metadata|content) batches."""
        return [n for n in self.params if get_detector_class(n).needs == needs]

    def detectors_public(self) -> dict[str, dict]:
        return {
            name: {"version": get_detector_class(name).version, "params": p.model_dump(mode="json")}
            for name, p in self.params.items()
        }

    def fingerprint(self, shard: Shard, sha256: str) -> str:
        ds = self.config.dataset
        key = {
            "shard_id": shard.shard_id,
            "sha256": sha256,
            "format": shard.format,
            "read": ds.model_dump(mode="json", include={"columns", "header", "names", "quoting", "hf"}),
            "detectors": self.detectors_public(),
            "banks": sorted(b.sha256 for b in self.banks),
            "fetch": self.config.fetch.model_dump(mode="json") if self.names("content") and shard.format != "webdataset" else None,
            "tar": tar_sha256(shard.location) if self.names("content") and shard.format == "webdataset" else None,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class ShardResult:
    """What a shard task reports back: paths and counts, never tables."""

    shard: Shard
    status: str  # done | skipped | failed | inconclusive (network down)
    sha256: str | None = None
    fingerprint: str | None = None
    rows: int | None = None
    seconds: float = 0.0
    error: str | None = None


def _retryable(task, task_run, state) -> bool:
    try:
        state.result()
    except RetryableError:
        return True
    except Exception:
        return False
    return False


@task(name="scan-shard", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=_retryable)
def scan_shard(shard: Shard, plan: ScanPlan) -> ShardResult:
    """Run every detector over one shard and write its outputs atomically.

    Returns:
        A :class:`ShardResult` with status ``done`` or ``skipped`` (outputs already present).

    Raises:
        ShardError: the shard is unreadable or malformed; nothing is left behind for it.
    """
    started = time.perf_counter()
    sha256 = shard.sha256()
    fp = plan.fingerprint(shard, sha256)
    out = plan.shard_root / fp
    if (out / "stats.json").exists():
        stats = json.loads((out / "stats.json").read_text())
        return ShardResult(shard, "skipped", sha256, fp, stats["rows"], time.perf_counter() - started)
    tmp = temporary_sibling(out)
    tmp.mkdir(parents=True)
    try:
        rows, reasons = _run_detectors(shard, plan, tmp)
        (tmp / "stats.json").write_text(json.dumps({"shard_id": shard.shard_id, "sha256": sha256, "rows": rows, "reasons": reasons}))
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / "stats.json").exists():
                raise
            shutil.rmtree(tmp)  # another run finished the same shard first: same content
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShardResult(shard, "done", sha256, fp, rows, time.perf_counter() - started)


REPEATING_COLUMNS = ["shard_id", "detector", "detector_version", "reason", "action", "evidence"]
#: Parquet options of a shard's findings and signatures: working files that the store loader reads
#: back. Uncompressed, with statistics for ``row_index`` only, they are written 2x faster than with
#: pyarrow's defaults (snappy, statistics on every column) and read back faster too: 2-3 s of a
#: 39 s scan of 10M rows against LZ4 (bench/scan_metadata.py), for 1.5x LZ4's bytes (1.4 GB of
#: signatures and 0.8 GB of findings per 10M rows of the bench's random URLs).
SHARD_OUTPUT = {"compression": "none", "write_statistics": ["row_index"]}


def _run_detectors(shard: Shard, plan: ScanPlan, out: Path) -> tuple[int, dict[str, int]]:
    """Stream the shard through every detector, ``threads_per_shard`` batches at a time; outputs
    are written in batch order, so they do not depend on thread timing."""
    ctx = DetectContext(shard_id=shard.shard_id, banks=plan.banks)
    detectors = [get_detector_class(name)(plan.params[name], ctx) for name in plan.names("metadata")]
    extra = [c for d in detectors for c in d.columns]
    shard_id = pa.scalar(shard.shard_id)

    def process(batch: pa.RecordBatch) -> tuple[int, list[pa.Table], dict[str, pa.Table]]:
        found = [t for t in (d.detect(batch) for d in detectors) if t.num_rows]
        sigs = {}
        for d in detectors:
            sig = d.signatures(batch)
            if sig is not None:
                sigs[d.name] = sig.append_column("shard_id", pa.repeat(shard_id, sig.num_rows))
        return batch.num_rows, found, sigs

    # Dictionary-encode only the columns that repeat (faster writes, MEASURED in bench/).
    findings = pq.ParquetWriter(out / "findings.parquet", FINDINGS_SCHEMA, use_dictionary=REPEATING_COLUMNS, **SHARD_OUTPUT)
    sig_writers: dict[str, pq.ParquetWriter] = {}
    rows = 0
    reasons: dict[str, int] = {}
    threads = plan.config.threads_per_shard

    def write_findings(table: pa.Table) -> None:
        findings.write_table(table)
        for reason, count in zip(*table.group_by("reason").aggregate([("reason", "count")]).columns):
            reasons[reason.as_py()] = reasons.get(reason.as_py(), 0) + count.as_py()

    try:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"shard-{shard.shard_id}") as pool:
            pending: deque[Future] = deque()
            batches = iter_detect_batches(shard, plan.config.dataset, extra)
            while True:
                while len(pending) < threads + 1 and (batch := next(batches, None)) is not None:
                    pending.append(pool.submit(process, batch))
                if not pending:
                    break
                n, found, sigs = pending.popleft().result()
                rows += n
                for table in found:
                    write_findings(table)
                for name, sig in sigs.items():
                    if name not in sig_writers:
                        sig_writers[name] = pq.ParquetWriter(out / f"signatures-{name}.parquet", sig.schema, use_dictionary=["shard_id"], **SHARD_OUTPUT)
                    sig_writers[name].write_table(sig)
        if plan.names("content"):
            for table in _run_content(shard, plan, out):
                write_findings(table)
    finally:
        findings.close()
        for w in sig_writers.values():
            w.close()
    return rows, reasons


def _run_content(shard: Shard, plan: ScanPlan, out: Path):
    """Fetch and hash the shard's URLs batch by batch (each distinct URL once per shard) or, for a
    webdataset shard, hash each row's image from its tar; write ``content_hashes.parquet`` (and,
    when fetching, ``fetches.parquet``), and yield the content detectors' findings.

    Raises:
        NetworkDownError: the network went down; the shard's outputs are discarded by the caller.
        ShardError: the shard or its tar is unreadable.
    """
    ctx = DetectContext(shard_id=shard.shard_id, banks=plan.banks)
    detectors = [get_detector_class(name)(plan.params[name], ctx) for name in plan.names("content")]
    extra = [c for d in detectors for c in d.columns]
    if shard.format == "webdataset":
        batches = _tar_content(shard, plan, extra)
    else:
        batches = _fetched_content(shard, plan, extra, out)
    with pq.ParquetWriter(out / "content_hashes.parquet", content.CONTENT_HASHES_SCHEMA) as hashes:
        for rows in batches:
            hashes.write_table(content.hash_rows(shard.shard_id, rows))
            for d in detectors:
                found = d.detect(rows)
                if found.num_rows:
                    yield found


def _fetched_content(shard: Shard, plan: ScanPlan, extra: list[str], out: Path):
    """Content batches of a shard whose images are fetched from their URLs; writes ``fetches.parquet``."""
    checked: dict[str, content.Checked] = {}
    fetch_cfg = plan.config.fetch
    # One event loop and one fetcher for the whole shard: robots.txt, DNS answers, politeness
    # clocks and the network-down breaker carry over from batch to batch.
    with asyncio.Runner() as loop, pq.ParquetWriter(out / "fetches.parquet", content.FETCHES_SCHEMA) as fetches:
        fetcher = Fetcher(fetch_cfg)
        loop.run(fetcher.__aenter__())
        try:
            for batch in iter_detect_batches(shard, plan.config.dataset, extra):
                new = list(dict.fromkeys(u for u in batch.column("url").to_pylist() if u and u not in checked))
                now = loop.run(content.check_urls(fetcher, new, fetch_cfg, plan.hash_pool))
                fetches.write_table(content.fetch_rows(shard.shard_id, now))
                checked.update(now)
                yield content.content_batch(batch, checked)
        finally:
            loop.run(fetcher.__aexit__(None, None, None))


def _tar_content(shard: Shard, plan: ScanPlan, extra: list[str]):
    """Content batches of an img2dataset webdataset shard: every image of the tar beside the
    parquet hashed, then joined to the rows by ``key``, with no HTTP."""
    hashes = hash_tar(tar_path(shard.location), plan.hash_pool, window=4 * plan.config.fetch.hash_workers)
    hashed = {key: content.Checked([], h) for key, h in hashes.items()}
    for batch in iter_detect_batches(shard, plan.config.dataset, [*extra, "key"]):
        keys = as_string(batch.column("key"))
        yield content.content_batch(batch.set_column(batch.schema.get_field_index("key"), "key", keys), hashed, by="key")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]scan[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_scan(config: Config) -> dict:
    """Run :func:`scan_flow` with ``config.workers`` shard tasks at once (threads: MEASURED.md
    puts a task at 10-15 ms on threads against 200-360 ms in a process pool)."""
    runner = ThreadPoolTaskRunner(max_workers=config.workers)
    flow_ = scan_flow.with_options(task_runner=runner)
    if PREFECT_API_URL.value():
        return flow_(config)
    # A temporary API server has nobody watching for crashed runs: skip the heartbeat thread,
    # whose join costs ~1 s per run (MEASURED.md).
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return flow_(config)


@flow(name="scrutineer-scan", log_prints=False, persist_result=False)
def scan_flow(config: Config) -> dict:
    """Scan a dataset: per-shard detection in parallel, then load the store and group duplicates.
    A rich progress display goes to stderr.

    Args:
        config: a loaded :class:`~scrutineer.config.Config`.

    Returns:
        Summary dict: ``run_id``, ``status`` (completed|partial), ``shards`` (list of per-shard
        dicts with shard_id, status, rows, error), ``findings`` (count per reason).

    Raises:
        ConfigError: bad config or bank file (before any shard is read).
    """
    console = Console(stderr=True)
    ws = config.workspace
    banks = load_banks(config.banks)
    plan = ScanPlan(config, banks, config.detector_params(), ws / "shards")
    shards = list_shards(config)
    run_id = new_run_id()
    started = datetime.now(UTC)
    con = store.connect(ws, memory_limit=config.memory_limit)  # holds the workspace: DuckDB admits one writer process
    try:
        sweep_temporaries(plan.shard_root)
        store.register_banks(con, banks)
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, NULL, 'running', ?, ?, ?, ?)",
            [
                run_id,
                config.dataset.name,
                started,
                __version__,
                config.model_dump_json(),
                json.dumps(plan.detectors_public()),
                json.dumps([b.public() for b in banks]),
            ],
        )
        try:
            with _hash_pool(plan) as pool:
                results = _run_shards(shards, dataclasses.replace(plan, hash_pool=pool), console)
            # Arrow's allocator keeps the shard tasks' freed buffers (0.5 GB at 10M rows); hand
            # them back before the load adds DuckDB's memory_limit on top (peak RSS 1.9 -> 1.4 GB,
            # bench/scan_metadata.py).
            pa.default_memory_pool().release_unused()
            if any(r.status == "inconclusive" for r in results):
                status = "inconclusive"
            elif any(r.status == "failed" for r in results):
                status = "partial"
            else:
                status = "completed"
            _load(con, run_id, plan, results, status)
        except BaseException:
            con.execute("UPDATE runs SET status = 'failed', finished_at = ? WHERE run_id = ?", [datetime.now(UTC), run_id])
            raise
        counts = dict(
            con.sql(
                "SELECT reason, count(*) FROM findings WHERE run_id = ? GROUP BY reason ORDER BY reason", params=[run_id]
            ).fetchall()
        )
    finally:
        con.close()
    return {
        "run_id": run_id,
        "status": status,
        "shards": [
            {"shard_id": r.shard.shard_id, "status": r.status, "rows": r.rows, "error": r.error} for r in results
        ],
        "findings": counts,
    }


@contextlib.contextmanager
def _hash_pool(plan: ScanPlan):
    """Processes for :func:`scrutineer.hashing.hash_content` when a content detector runs (started
    with ``forkserver``: forking a process that runs threads is unsafe), else None."""
    if not plan.names("content"):
        yield None
        return
    pool = ProcessPoolExecutor(plan.config.fetch.hash_workers, mp_context=multiprocessing.get_context("forkserver"))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def _run_shards(shards: list[Shard], plan: ScanPlan, console: Console) -> list[ShardResult]:
    results: dict[str, ShardResult] = {}
    futures = {scan_shard.submit(s, plan): s for s in shards}
    with _progress(console) as progress:
        bar = progress.add_task("scan", total=len(shards), last="")
        for fut in as_completed(list(futures)):
            shard = futures[fut]
            try:
                res = fut.result()
            except NetworkDownError as e:
                res = ShardResult(shard, "inconclusive", error=f"{shard.location}: {e}")
            except ShardError as e:
                res = ShardResult(shard, "failed", error=str(e))
            except Exception as e:  # an unexpected bug still fails only this shard
                res = ShardResult(shard, "failed", error=f"{shard.location}: {type(e).__name__}: {e}")
            results[shard.shard_id] = res
            progress.update(bar, advance=1, last=f"{shard.shard_id}: {res.status}")
            if res.status in ("failed", "inconclusive"):
                console.print(f"[red]shard {res.status}[/]: {res.error}")
    return [results[s.shard_id] for s in shards]


def _load(con, run_id: str, plan: ScanPlan, results: list[ShardResult], status: str) -> None:
    ok = [r for r in results if r.status in ("done", "skipped")]
    con.execute("BEGIN TRANSACTION")
    try:
        for r in results:
            con.execute(
                "INSERT INTO shards VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, r.shard.shard_id, r.shard.location, r.shard.format, r.sha256, r.fingerprint, r.rows, r.status, r.error, r.seconds],
            )
        files = [str(plan.shard_root / r.fingerprint / "findings.parquet") for r in ok]
        if files:
            con.execute(f"INSERT INTO findings SELECT ?, * FROM read_parquet({_sql_list(files)})", [run_id])
        for table in ("fetches", "content_hashes"):
            files = [str(p) for r in ok if (p := plan.shard_root / r.fingerprint / f"{table}.parquet").exists()]
            if files:
                con.execute(f"INSERT INTO {table} SELECT ?, * FROM read_parquet({_sql_list(files)})", [run_id])
        for name, params in plan.params.items():
            sig_files = [plan.shard_root / r.fingerprint / f"signatures-{name}.parquet" for r in ok]
            sig_files = [str(p) for p in sig_files if p.exists()]
            if not sig_files:
                continue  # only detectors that kept signatures have a corpus-level step
            det = get_detector_class(name)(params, DetectContext(shard_id="", banks=plan.banks))
            query = det.finalize(f"read_parquet({_sql_list(sig_files)})")
            if query is not None:
                con.execute(f"INSERT INTO findings SELECT ?, * FROM ({query})", [run_id])
        con.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", [status, datetime.now(UTC), run_id])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"

