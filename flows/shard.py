"""The shard task: observe a shard if its observations are not stored yet, and judge what is not
judged yet (flows/plan.py names both).

:func:`run_shard` takes only plain, picklable values (:class:`ShardTask`) and creates what it needs
in the process that runs it: its detectors and, to fetch, the run's content workers (a shard task of
the local runner: :func:`scrutineer.flows.content_workers.pool`) or the same unit in its own process
(on Dask: :class:`scrutineer.flows.content_workers.InProcess`). It writes only files under ``<workspace>/observations/`` and
``<workspace>/judgements/``, each set under a temporary name renamed into place when complete, so a
killed task leaves nothing half-written and a rerun redoes only what is missing. It never opens
the store: the driver loads what the task made (flows/load.py).

Two passes over a shard:

1. **rows**: the shard is read (or, once observed, its ``rows.parquet``) ``threads_per_shard``
   batches at a time; the metadata detectors judge each batch;
2. **content** (when a content detector runs): for each batch of ``rows.parquet``, the URLs are
   fetched and hashed (or a webdataset tar's images hashed), unless the content observation is
   stored already; the content detectors judge each content batch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scrutineer.core.banks import Bank, registered_entries
from scrutineer.core.config import FetchConfig
from scrutineer.core.contract import (
    CONTENT,
    DETECT,
    FETCH,
    JUDGEMENT,
    POLICY_FILE,
    stored_signatures,
)
from scrutineer.core.errors import ShardError
from scrutineer.core.files import FileDigest, keep_private, temporary_sibling
from scrutineer.core.layout import Layout
from scrutineer.detectors.base import CorpusDetector, DetectContext, Detector
from scrutineer.flows import content, content_workers
from scrutineer.flows.plan import ScanPlan, key_id
from scrutineer.formats.sources import Shard, as_string, iter_detect_batches
from scrutineer.formats.webdataset import hash_tar, tar_digest, tar_path
from scrutineer.observing.hashing import hash_pool
from scrutineer.observing.policy_files import PolicyFile

#: Parquet options of the working files, which the store loader and later judgements read back.
#: Uncompressed, with statistics for ``row_index`` only, they are written 2x faster than with
#: pyarrow's defaults (snappy, statistics on every column) and read back faster too: 2-3 s of a
#: 39 s scan of 10M rows against LZ4 (bench/scan_metadata.py).
WORKING_FILE = {"compression": "none", "write_statistics": ["row_index"]}
#: Columns of findings that repeat within a shard: dictionary-encoded (faster writes).
REPEATING = ["observation_id", "shard_id", "detector", "detector_version", "reason", "evidence"]


@dataclass(frozen=True)
class ShardTask:
    """A shard task's arguments: plain values that pickle.

    Attributes:
        shard: the shard.
        plan: the run's plan.
        digests: what the store knows of the shard's file (and its tar): its sha256 by its stat.
        rechecked: the latest recheck of each of the shard's stored content observations that has
            one, ``{observation_id: the recheck's observation_id}``: what the shard's content is now.
        pool: the run's content workers in the scanning process, by their key
            (:func:`scrutineer.flows.content_workers.for_run`); None: the task fetches and hashes in
            its own process (a Dask worker).
    """

    shard: Shard
    plan: ScanPlan
    digests: tuple[FileDigest, ...] = ()
    rechecked: dict[str, str] = field(default_factory=dict)
    pool: str | None = None


@dataclass
class ShardResult:
    """What a shard task reports back: ids, paths and counts, never tables.

    ``status``: ``observed`` (read now, or its URLs fetched now), ``judged`` (observations reused,
    some judgement made now), ``reused`` (nothing to do), ``failed`` or ``inconclusive`` (the
    network went down: nothing of its content is kept)."""

    shard: Shard
    status: str
    sha256: str | None = None
    rows: int | None = None
    rows_observation: str | None = None
    content_observation: str | None = None
    judgements: dict[str, str] = field(default_factory=dict)
    digests: tuple[FileDigest, ...] = ()
    seconds: float = 0.0
    error: str | None = None


def run_shard(task: ShardTask) -> ShardResult:
    """Observe and judge one shard, making only what is not stored yet; for a recheck
    (``plan.recheck``), check its due links again (:func:`due_urls`) into a new content observation.

    Returns:
        A :class:`ShardResult` (status observed, judged or reused).

    Raises:
        ShardError: the shard is unreadable or malformed, or (for a rematch or a recheck) its
            observations are not stored; nothing is left behind for it.
        NetworkDownError: the network went down while fetching; the rows observation and the
            metadata judgements are kept, nothing of the content stage.
    """
    started = time.perf_counter()
    keep_private()  # on a Dask worker too: the working files are the workspace owner's only
    plan, shard = task.plan, task.shard
    known = {d.path: d for d in task.digests}
    digest = shard.digest(known)
    digests = [digest] if digest else []
    sha256 = digest.sha256 if digest else shard.sha256()
    rows_key, content_key, content_id = plan.rows_key(shard, sha256), None, None
    if plan.names("content"):
        tar = tar_digest(shard.location, known) if shard.format == "webdataset" else None
        digests += [tar] if tar else []
        content_key = plan.content_key(shard, sha256, tar.sha256 if tar else None)
        base = key_id(content_key)  # the first scan's observation; a recheck's key names it
        content_id = task.rechecked.get(base, base)
    rows_id = key_id(rows_key)
    layout = plan.layout
    have_rows = layout.observation(rows_id).exists()
    have_content = content_id is None or layout.observation(content_id).exists()
    if not plan.observe and not (have_rows and have_content):
        raise ShardError(
            f"{shard.location}: no stored observations for these shard bytes and read/fetch options; `scrutineer scan` makes them"
        )
    due: set[str] = set()
    if plan.recheck and content_id and (due := due_urls(plan, layout.observation(content_id) / Layout.CONTENT)):
        previous = content_id
        content_key = plan.recheck_key(base, previous)
        content_id, have_content = key_id(content_key), False
    judgements = plan.judgements(rows_id, content_id)
    todo = {name: j for name, j in judgements.items() if not layout.judgement(j).exists()}
    status = "reused"
    if todo or not have_rows or not have_content:
        status = "judged" if have_rows and have_content else "observed"
        work = _Work(shard, plan, rows_key, content_key, content_id, todo, task.pool)
        work.rows_pass(have_rows)
        if content_id is not None:
            work.content_pass(have_content, recheck=(previous, due) if due else None)
    rows = json.loads((layout.observation(rows_id) / Layout.STATS).read_text())["rows"]
    return ShardResult(
        shard, status, sha256, rows, rows_id, content_id, judgements, tuple(digests), time.perf_counter() - started
    )


def due_urls(plan: ScanPlan, content_path: Path) -> set[str]:
    """The URLs of a content observation that a recheck (``plan.recheck``) checks again: those the
    configured rechecking detectors call due
    (:meth:`scrutineer.detectors.base.RecheckingDetector.due_urls`), last checked at least
    ``fetch.recheck_interval`` seconds before the recheck."""
    checked_before = plan.recheck - timedelta(seconds=plan.config.fetch.recheck_interval)
    return set().union(*(plan.detector_class(n).due_urls(plan.params[n], content_path, checked_before) for n in plan.rechecking()))


class _Output:
    """A set of working files made under a temporary directory, renamed into place when complete."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = temporary_sibling(final)
        self.tmp.mkdir(parents=True)
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, name: str, table: pa.Table | pa.RecordBatch, schema: pa.Schema, **options) -> None:
        self.ensure(name, schema, **options).write(table)

    def ensure(self, name: str, schema: pa.Schema, **options) -> pq.ParquetWriter:
        """The writer of file ``name``, made (so the file exists, if empty) on first use."""
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.tmp / name, schema, **WORKING_FILE, **options)
        return self.writers[name]

    def commit(self, **stats) -> None:
        for w in self.writers.values():
            w.close()
        if stats:
            (self.tmp / Layout.STATS).write_text(json.dumps(stats))
        try:
            os.rename(self.tmp, self.final)
        except OSError:
            if not self.final.exists():
                raise
            shutil.rmtree(self.tmp)  # another run made the same set first: same content

    def discard(self) -> None:
        for w in self.writers.values():
            w.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextmanager
def _all_or_nothing(outputs: list[_Output | None]) -> Iterator[None]:
    """Discard every output when the block fails: a shard's sets are complete or absent."""
    try:
        yield
    except BaseException:
        for out in outputs:
            if out:
                out.discard()
        raise


class _Work:
    """The passes of one shard task over a shard that needs observing or judging."""

    def __init__(self, shard: Shard, plan: ScanPlan, rows_key: dict, content_key: dict | None, content_id: str | None,
                 todo: dict[str, str], pool: str | None = None) -> None:
        self.shard, self.plan, self.todo, self.pool = shard, plan, todo, pool
        self.rows_key, self.content_key = rows_key, content_key
        self.rows_id = key_id(rows_key)
        self.content_id = content_id
        self.rows_path = plan.layout.observation(self.rows_id) / Layout.ROWS
        #: The content observation's policy files, by origin and name, as the content pass reads
        #: them (or loads them, once observed); the content detectors look them up here.
        self.policies: dict[str, dict[str, PolicyFile]] = {}

    @contextmanager
    def _detectors(self, needs: str) -> Iterator[list[Detector]]:
        """The detectors still to judge that judge ``needs`` batches, closed when the pass ends
        (each holds an in-memory DuckDB of up to 512 MB)."""
        detectors = [
            self.plan.detector_class(n)(self.plan.params[n], DetectContext(self.shard.shard_id, _banks(self.plan, n), self.policies))
            for n in self.plan.names(needs)
            if n in self.todo
        ]
        try:
            yield detectors
        finally:
            for d in detectors:
                d.close()

    def _stored_rows(self) -> Iterator[pa.RecordBatch]:
        with pq.ParquetFile(self.rows_path, pre_buffer=False) as f:
            yield from f.iter_batches(batch_size=self.plan.config.dataset.batch_rows)

    def rows_pass(self, have_rows: bool) -> None:
        """Observe the rows (unless stored) and run the metadata detectors still to judge, in one
        pass, ``threads_per_shard`` batches at a time; outputs are written in batch order."""
        with self._detectors("metadata") as detectors:
            if have_rows and not detectors:
                return
            observation = None if have_rows else _Output(self.plan.layout.observation(self.rows_id))
            judged = {d.name: _Output(self.plan.layout.judgement(self.todo[d.name])) for d in detectors}
            batches = self._stored_rows() if have_rows else iter_detect_batches(self.shard, self.plan.config.dataset, self.rows_key["columns"])

            def judge(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[tuple[Detector, pa.Table, pa.Table | None]]]:
                return batch, [(d, *_judge(d, batch)) for d in detectors]

            rows = 0
            with _all_or_nothing([observation, *judged.values()]):
                for batch, results in _ordered(judge, batches, self.plan.config.threads_per_shard):
                    rows += batch.num_rows
                    if observation:
                        observation.write(Layout.ROWS, batch, batch.schema, use_dictionary=["license"])
                    for d, found, sigs in results:
                        self._write_judged(judged[d.name], found, sigs, self.rows_id)
                if observation:
                    extra = self.rows_key["columns"]
                    observation.ensure(Layout.ROWS, pa.schema([*DETECT, *(pa.field(c, pa.string()) for c in extra)]))
                    observation.commit(shard_id=self.shard.shard_id, rows=rows, key=self.rows_key)
                for out in judged.values():
                    out.ensure(Layout.FINDINGS, JUDGEMENT)
                    out.commit()

    def _write_judged(self, out: _Output, found: pa.Table, signatures: pa.Table | None, observation_id: str) -> None:
        """Write one batch's findings and signatures (with the shard and the observation judged)."""
        out.write(Layout.FINDINGS, _judged(found, observation_id), JUDGEMENT, use_dictionary=REPEATING)
        if signatures is not None:
            signatures = stored_signatures(signatures, self.shard.shard_id, observation_id)
            out.write(Layout.SIGNATURES, signatures, signatures.schema, use_dictionary=["shard_id", "observation_id"])

    def content_pass(self, have_content: bool, recheck: tuple[str, set[str]] | None = None) -> None:
        """Make the content observation (unless stored) and run the content detectors still to
        judge over it, batch by batch of ``rows.parquet``.

        Args:
            recheck: ``(observation_id, urls)``: make the observation from that stored one, with
                those URLs checked again (:meth:`_rechecked_content`).
        """
        with self._detectors("content") as detectors:
            if have_content and not detectors:
                return
            observation = None if have_content else _Output(self.plan.layout.observation(self.content_id))
            judged = {d.name: _Output(self.plan.layout.judgement(self.todo[d.name])) for d in detectors}
            with _all_or_nothing([observation, *judged.values()]):
                if have_content:
                    self._keep_policies(self.plan.layout.observation(self.content_id), None)
                    source = _aligned(self._stored_rows(), self.plan.layout.observation(self.content_id) / Layout.CONTENT)
                elif recheck:
                    source = self._rechecked_content(observation, *recheck)
                elif self.shard.format == "webdataset":
                    source = self._tar_content()
                else:
                    source = self._fetched_content(observation)
                for rows, found in source:
                    if observation:
                        observation.write(Layout.CONTENT, found, CONTENT)
                    batch = found
                    for name in rows.schema.names:  # caption, license and the detectors' source columns
                        if name not in CONTENT.names:
                            batch = batch.append_column(rows.schema.field(name), rows.column(name))
                    for d in detectors:
                        self._write_judged(judged[d.name], *_judge(d, batch), self.content_id)
                if observation:
                    observation.ensure(Layout.CONTENT, CONTENT)
                    observation.ensure(Layout.POLICY_FILES, POLICY_FILE)
                    observation.commit(shard_id=self.shard.shard_id, key=self.content_key)
                for out in judged.values():
                    out.ensure(Layout.FINDINGS, JUDGEMENT)
                    out.commit()

    @contextmanager
    def _fetching(self, observation: _Output, cfg: FetchConfig) -> Iterator[Callable[[list[str]], dict[str, content.Checked]]]:
        """A function checking a list of URLs with ``cfg`` (:func:`scrutineer.flows.content.check_urls`,
        in the run's content workers or, with no pool, in this process) and writing every check to
        ``fetches.parquet`` and the policy files read for them to ``policy_files.parquet``."""
        observation.ensure(Layout.FETCHES, FETCH)
        if self.pool:
            unit = nullcontext(content_workers.pool(self.pool))
        else:  # one loop and fetcher for the shard: robots.txt, DNS, politeness and the breaker carry over
            unit = content_workers.InProcess(cfg, self.plan.fetchers, self.plan.layout.policy_files)
        with unit as checker:

            def check(urls: list[str]) -> dict[str, content.Checked]:
                checked, reads = checker.check(urls, cfg, self.plan.policy_files)
                observation.write(Layout.FETCHES, content.fetch_rows(checked), FETCH)
                self._keep_policies(reads, observation)
                return checked

            yield check

    def _keep_policies(self, reads: list[PolicyFile] | Path, observation: _Output | None) -> None:
        """Take the policy files ``reads`` (or those stored in an observation directory) into
        :attr:`policies`, and write those not seen before to ``observation``'s
        ``policy_files.parquet``."""
        if isinstance(reads, Path):
            path = reads / Layout.POLICY_FILES
            reads = [PolicyFile.of(r) for r in pq.read_table(path).to_pylist()] if path.exists() else []
        new = [r for r in reads if self.policies.get(r.origin, {}).get(r.name) != r]
        for r in new:
            self.policies.setdefault(r.origin, {})[r.name] = r
        if observation and new:
            observation.write(Layout.POLICY_FILES, pa.Table.from_pylist([r.row() for r in new], schema=POLICY_FILE), POLICY_FILE)

    def _fetched_content(self, observation: _Output) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
        """Content of a shard whose images are fetched from their URLs, each distinct URL once per
        shard; every check goes to ``fetches.parquet``."""
        checked: dict[str, content.Checked] = {}
        with self._fetching(observation, self.plan.config.fetch) as check:
            for rows in self._stored_rows():
                urls = list(dict.fromkeys(u for u in rows.column("url").to_pylist() if u))
                checked.update(check([u for u in urls if u not in checked]))
                yield rows, content.content_batch(rows, content.fetch_outcomes(urls, checked), by="url")

    def _rechecked_content(self, observation: _Output, previous: str, due: set[str]) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
        """Content of a recheck: the stored observation ``previous``, with each URL of ``due``
        checked once more (:func:`scrutineer.flows.content.rechecked_batch`); only the new checks go to
        ``fetches.parquet``, and the earlier ones stay in the store's ``fetches``."""
        checked: dict[str, content.Checked] = {}
        once = self.plan.config.fetch.model_copy(update={"dead_checks": 1})  # one check per recheck, days apart
        self._keep_policies(self.plan.layout.observation(previous), observation)
        with self._fetching(observation, once) as check:
            for rows, stored in _aligned(self._stored_rows(), self.plan.layout.observation(previous) / Layout.CONTENT):
                urls = list(dict.fromkeys(u for u in rows.column("url").to_pylist() if u in due))
                checked.update(check([u for u in urls if u not in checked]))
                yield rows, content.rechecked_batch(rows, stored, content.fetch_outcomes(urls, checked))

    def _tar_content(self) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
        """Content of an img2dataset webdataset shard: every image of the tar beside the parquet
        hashed, then joined to the rows by ``key``, with no HTTP."""
        cfg = self.plan.config.fetch
        hashed = hash_tar(tar_path(self.shard.location), hash_pool(cfg.processes), 4 * cfg.processes, cfg.max_bytes, cfg.max_pixels, cfg.pdq_dihedral)
        for rows in self._stored_rows():
            keys = as_string(rows.column("key"))
            rows = rows.set_column(rows.schema.get_field_index("key"), "key", keys)
            yield rows, content.content_batch(rows, content.tar_outcomes(keys.to_pylist(), hashed), by="key")


def _judge(detector: Detector, batch: pa.RecordBatch) -> tuple[pa.Table, pa.Table | None]:
    """A detector's findings for ``batch``, and a corpus detector's signatures of it (else None)."""
    return detector.detect(batch), detector.signatures(batch) if isinstance(detector, CorpusDetector) else None


def _judged(found: pa.Table, observation_id: str) -> pa.Table:
    """A detector's findings as a judgement file holds them: with the observation judged."""
    return pa.Table.from_arrays([pa.repeat(pa.scalar(observation_id), found.num_rows), *found.columns], schema=JUDGEMENT)


def _banks(plan: ScanPlan, name: str) -> list[Bank]:
    """The loaded banks of the signal types detector ``name`` uses."""
    return [Bank(ref, registered_entries(plan.layout.bank_entries(ref.sha256))) for ref in plan.banks_for(name)]


def _ordered(fn, items: Iterator, threads: int) -> Iterator:
    """``fn(item)`` for every item, ``threads`` at a time, yielded in item order."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shard") as pool:
        pending: deque[Future] = deque()
        while True:
            while len(pending) < threads + 1 and (item := next(items, None)) is not None:
                pending.append(pool.submit(fn, item))
            if not pending:
                return
            yield pending.popleft().result()


def _aligned(rows: Iterator[pa.RecordBatch], path: Path) -> Iterator[tuple[pa.RecordBatch, pa.RecordBatch]]:
    """Each rows batch with the same rows of a stored content observation (written row for row)."""
    with pq.ParquetFile(path, pre_buffer=False) as f:
        stored = f.iter_batches(batch_size=1 << 16)
        buffer = CONTENT.empty_table()
        for batch in rows:
            while buffer.num_rows < batch.num_rows:
                buffer = pa.concat_tables([buffer, pa.Table.from_batches([next(stored)])])
            taken, buffer = buffer.slice(0, batch.num_rows), buffer.slice(batch.num_rows)
            yield batch, pa.RecordBatch.from_arrays([c.combine_chunks() for c in taken.columns], schema=CONTENT)
