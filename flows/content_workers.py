"""The content runner: one process per core, each fetching and hashing inline (issue 26), as
img2dataset's downloader runs.

**The unit.** One uvloop event loop, one :class:`~scrutineer.observing.fetch.Fetcher`, the
workspace's :class:`~scrutineer.observing.policy_files.PolicyCache`, and
:func:`scrutineer.observing.hashing.hash_fetched` run inline on each body the moment it is fetched
(:func:`scrutineer.flows.content.check_urls`): no body is pickled to another process. The loop
hashes one body at a time; while it hashes, its other requests wait in the kernel's buffers.
A prototype of this shape measured 1.2-1.35x the throughput of one loop feeding a process pool
(issue 26), whose loop competed with its hash workers for the cores and pickled every body.

**The local runner** (:class:`ContentPool`, one per run): ``fetch.processes`` worker processes
(default: the machine's cores), started with ``forkserver`` (forking a process that runs threads is
unsafe), each ending with the scanning process (:func:`scrutineer.core.children.die_with`), each
running the unit with its share of ``fetch.concurrency`` (rounded up) and all of ``per_domain``.
The scanning process only coordinates and writes: a shard task (a thread of it) splits each batch
of URLs by the registrable domain of their host (crc32 of the domain, modulo the workers: stable
across processes and runs, unlike Python's salted ``hash``), so every domain has one owner for the
run and ``per_domain``, ``min_interval``, ``Retry-After`` pauses, robots.txt, the DNS check and the
policy-file reads hold as in one fetcher. A redirect to another registrable domain is followed by
the URL's owner, as one fetcher follows it, but that owner's limits for the target domain are not
its owner's. The network-down breaker (``fetch.breaker``) counts one worker's failures, over the
hosts it owns. Nothing crosses processes but URLs and plain options in (a job), and outcomes out:
the :class:`~scrutineer.flows.content.Checked` records without bodies, their hashes, and the policy
files read for the job's URLs (those of their origins, and of the origins their last checks ended
on), so each shard keeps its own policy files when shards share a worker. A worker serves several
jobs at once, each a task on its loop. Its fetcher is closed whenever it has no job left, and the
next job opens a new one (``min_interval`` after the old one's close, so a domain's request starts
stay that far apart): a policy file is then taken again from the ``PolicyCache`` on disk (within
``fetch.policy_ttl``), so no worker keeps one in memory past its jobs, nor grows with the run's
domains.

**A worker that dies** (killed, out of memory on a hostile image) is replaced at once, and its
unfinished jobs are sent to the replacement, which owns the same domains. A worker hashes one body
at a time and names it (its job and place) in a shared-memory slot, so the one it was hashing when
it died is known: that URL goes first, alone, to the replacement, the other jobs held back until
it is done, so a body that kills every process it meets harms no other URL. Its second death
makes its check the exact digests only (never decoded), with ``problem`` ``not_image``: "the
hashing process died on this image", as :class:`~scrutineer.observing.hashing.HashPool` answers.

**On Dask** (and for a shard task given no pool), a shard task runs the unit in its own process
(:class:`InProcess`, its fetcher taking ``plan.fetchers``'s share of the per-domain limits): no
pool inside a Dask worker, so no more processes than its cores.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import multiprocessing.forkserver
import os
import re
import secrets
import signal
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as ready
from pathlib import Path
from typing import Self

import uvloop

from scrutineer.core.children import die_with
from scrutineer.core.config import FetchConfig
from scrutineer.flows.content import Checked, Hasher, check_urls, licences_named
from scrutineer.observing.fetch import Fetcher
from scrutineer.observing.hashing import ContentHashes, exact_hashes, hash_fetched
from scrutineer.observing.optouts import rsl
from scrutineer.observing.policy_files import RSL, PolicyCache, PolicyFile, origin
from scrutineer.samples.domains import host_and_domain

#: What a worker runs on each body, ``(body, fetch options)``: :func:`hash_fetched`. A test-only
#: hook: a test sets a picklable function here, before the run's pool is made, to make a body kill
#: its process (tests/flows/test_content_workers.py).
HASHER: Callable[[bytes, FetchConfig], ContentHashes] = hash_fetched
#: A worker's slot when it hashes nothing; else ``job id << 32 | the URL's place in the job``.
IDLE = -1
#: The error of a URL whose body killed two hashing processes.
DIED = "the hashing process died on this image"

#: What the workers' forkserver imports before it forks any. start-up: a worker forked from a
#: forkserver that has imported (and warmed) this module starts at once; one that imports it
#: itself takes 1-2 s (pyarrow, aiohttp, Pillow ...) and its first hash ~0.8 s more (numba, scipy).
PRELOAD = ["__main__", "scrutineer.flows.content_warm"]

_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*")


@lru_cache(maxsize=1 << 16)
def _owner(authority: str, workers: int) -> int:
    return zlib.crc32(host_and_domain(authority)[1].encode()) % workers


def owner(url: str, workers: int) -> int:
    """Which of ``workers`` owns ``url``: the crc32 of its host's registrable domain
    (:func:`scrutineer.samples.domains.host_and_domain`), modulo ``workers``; worked out once per
    distinct ``scheme://authority``. An unparsable URL goes to the owner of the empty domain."""
    found = _AUTHORITY.match(url)
    return _owner(found.group() if found else url, workers)


@dataclass(frozen=True)
class _Job:
    """URLs sent to a worker, with the options it needs: never bytes.

    ``exact``: hash the exact digests only (the body killed two worker processes)."""

    id: int
    urls: list[str]
    cfg: FetchConfig
    policies: tuple[str, ...]
    exact: bool = False


@dataclass(eq=False)
class _Request:
    """A shard task's URLs of one owner, and what has come back for them."""

    left: set[str]
    future: Future = field(default_factory=Future)
    checked: dict[str, Checked] = field(default_factory=dict)
    reads: list[PolicyFile] = field(default_factory=list)


@dataclass(eq=False)
class _Flight:
    """A job in a worker (or held back for it) and the request it answers; an ``alone`` job runs
    with no other in its worker."""

    job: _Job
    request: _Request
    worker: int
    alone: bool = False


@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: Connection
    slot: object  # a shared c_longlong: IDLE, or the body being hashed
    ended: bool = False  # its end of the pipe is closed: only its death is left to see


class ContentPool:
    """``cfg.processes`` worker processes running the unit, shared by a run's shard tasks (the
    module docstring says how it partitions, and what happens when a worker dies). Thread-safe."""

    def __init__(self, cfg: FetchConfig, policy_dir: Path, hasher: Callable[[bytes, FetchConfig], ContentHashes] = hash_fetched) -> None:
        """
        Args:
            cfg: the run's fetch options (``processes`` workers, ``concurrency`` split between them).
            policy_dir: the workspace's policy cache (``Layout.policy_files``).
            hasher: what a worker runs on each body, ``(body, fetch options)``.
        """
        self.workers = cfg.processes
        self.share = -(-cfg.concurrency // cfg.processes)
        self._cfg = cfg.model_copy(update={"concurrency": self.share})
        self._policy_dir = str(policy_dir)
        self._hasher = hasher
        self._context = _forkserver()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._flights: dict[int, _Flight] = {}
        self._held: list[deque[_Flight]] = [deque() for _ in range(self.workers)]
        self._alone: list[int | None] = [None] * self.workers
        self._kills: Counter[str] = Counter()
        self._closing = False
        self._broken: BaseException | None = None  # what stopped the watcher thread
        self._wake, self._waker = self._context.Pipe(duplex=False)
        self._procs = [self._start() for _ in range(self.workers)]
        self._watcher = threading.Thread(target=self._watch, name="content-workers", daemon=True)
        self._watcher.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def pids(self) -> list[int]:
        """The worker processes' ids, by worker (a test kills one: :meth:`owner` says which)."""
        with self._lock:
            return [w.process.pid for w in self._procs]

    def owner(self, url: str) -> int:
        """The worker that checks ``url`` (:func:`owner`)."""
        return owner(url, self.workers)

    def check(self, urls: list[str], cfg: FetchConfig, policies: tuple[str, ...] = ()) -> tuple[dict[str, Checked], list[PolicyFile]]:
        """Check ``urls`` (:func:`scrutineer.flows.content.check_urls`), each in the worker that owns
        it, with ``cfg`` (its ``concurrency`` taken as the workers' share), and read the
        ``policies`` files of their origins.

        Returns:
            ``({url: Checked}, the policy files read for these URLs)``.

        Raises:
            NetworkDownError: a worker's circuit breaker opened; the other workers' part is
                cancelled and nothing of this call is usable.
            RuntimeError: the pool was shut down, or could not replace a worker.
        """
        cfg = cfg.model_copy(update={"concurrency": self.share})
        parts: dict[int, list[str]] = {}
        for url in urls:
            parts.setdefault(self.owner(url), []).append(url)
        requests = []
        with self._lock:
            if self._closing or self._broken:
                raise RuntimeError("the content workers were shut down" if self._closing else "the content workers failed") from self._broken
            for worker, part in parts.items():
                requests.append(_Request(set(part)))
                self._dispatch(_Flight(_Job(next(self._ids), part, cfg, policies), requests[-1], worker))
        try:
            done, _ = wait([r.future for r in requests], return_when=FIRST_EXCEPTION)
            if failed := next((f.exception() for f in done if f.exception() is not None), None):
                raise failed  # what the worker raised
        finally:
            self._cancel(requests)  # a request that failed leaves the others' jobs to cancel
        checked: dict[str, Checked] = {}
        reads: list[PolicyFile] = []
        for r in requests:
            checked.update(r.checked)
            reads += r.reads
        return checked, reads

    def shutdown(self) -> None:
        """Stop the workers (each ends its jobs' tasks and closes its fetcher); a request still
        waiting fails with ``RuntimeError``."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            for f in [*self._flights.values(), *(f for held in self._held for f in held)]:
                if not f.request.future.done():
                    f.request.future.set_exception(RuntimeError("the content workers were shut down"))
            self._flights.clear()
        self._waker.send(None)
        self._watcher.join()
        for w in self._procs:
            w.conn.close()  # the worker reads the end of its jobs, and exits
        for w in self._procs:
            w.process.join(10)
            if w.process.exitcode is None:
                w.process.kill()
                w.process.join()
        self._wake.close()
        self._waker.close()

    # --- the scanning process's side ----------------------------------------------------------

    def _start(self) -> _Worker:
        mine, theirs = self._context.Pipe()
        slot = self._context.RawValue("q", IDLE)
        process = self._context.Process(target=_serve, args=(theirs, slot, os.getpid(), self._cfg, self._policy_dir, self._hasher),
                                        name="scrutineer-content", daemon=True)
        process.start()
        theirs.close()  # the worker's end lives in the worker only, so its death closes the pipe
        return _Worker(process, mine, slot)

    def _dispatch(self, flight: _Flight) -> None:
        """Send a job to its worker, or hold it back while the worker runs a job alone (lock held)."""
        i = flight.worker
        if self._alone[i] is not None and not flight.alone:
            self._held[i].append(flight)
            return
        if flight.alone:
            self._alone[i] = flight.job.id
        self._flights[flight.job.id] = flight
        try:
            self._procs[i].conn.send(("check", flight.job))
        except OSError:
            pass  # the worker has died: _died sends the job again

    def _cancel(self, requests: list[_Request]) -> None:
        """Forget the jobs of ``requests`` still running or held back, and tell their workers."""
        with self._lock:
            for flight in [f for f in self._flights.values() if f.request in requests]:
                del self._flights[flight.job.id]
                try:
                    self._procs[flight.worker].conn.send(("cancel", flight.job.id))
                except OSError:
                    pass
                self._done_alone(flight)
            for i, held in enumerate(self._held):
                self._held[i] = deque(f for f in held if f.request not in requests)

    def _done_alone(self, flight: _Flight) -> None:
        """After a job that ran alone: send the jobs held back behind it (lock held)."""
        i = flight.worker
        if self._alone[i] == flight.job.id:
            self._alone[i] = None
            held, self._held[i] = self._held[i], deque()
            for f in held:
                self._dispatch(f)

    def _watch(self) -> None:
        """The watcher thread: take the workers' answers, and replace the workers that die. Should it
        fail (no process could be started), every request waiting fails with its error."""
        try:
            self._watching()
        except BaseException as e:
            with self._lock:
                self._broken = e
                for f in [*self._flights.values(), *(f for held in self._held for f in held)]:
                    if not f.request.future.done():
                        f.request.future.set_exception(e)  # and the next check() raises it

    def _watching(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                conns = {w.conn: i for i, w in enumerate(self._procs) if not w.ended}
                sentinels = {w.process.sentinel: i for i, w in enumerate(self._procs)}
            got = ready([*conns, *sentinels, self._wake])
            for conn in got:
                if conn in conns and (message := self._receive(conns[conn])):
                    self._answer(message)
            for sentinel in got:
                if sentinel in sentinels:
                    while message := self._receive(sentinels[sentinel]):  # what it sent before it died
                        self._answer(message)
                    self._died(sentinels[sentinel])

    def _receive(self, i: int) -> tuple | None:
        """Worker ``i``'s next message if one is waiting (only the watcher thread reads)."""
        w = self._procs[i]
        try:
            if not w.ended and w.conn.poll():
                return w.conn.recv()
        except (EOFError, OSError):
            w.ended = True
        return None

    def _answer(self, message: tuple) -> None:
        kind, job_id, *rest = message
        with self._lock:
            flight = self._flights.pop(job_id, None)
            if flight is None:  # cancelled, or the pool is closing
                return
            self._done_alone(flight)
            request = flight.request
            if request.future.done():
                return
            if kind == "failed":
                request.future.set_exception(rest[0])
                return
            checked, reads = rest
            request.checked.update(checked)
            request.reads += reads
            request.left.difference_update(flight.job.urls)
            if not request.left:
                request.future.set_result(None)

    def _died(self, i: int) -> None:
        """Worker ``i`` has ended: start its replacement and send it the unfinished jobs, the body it
        was hashing (if any) first and alone."""
        with self._lock:
            if self._closing:
                return
            dead = self._procs[i]
            dead.conn.close()
            dead.process.join()
            self._procs[i] = self._start()
            flights = [f for f in self._flights.values() if f.worker == i]
            for f in flights:
                del self._flights[f.job.id]
            self._alone[i] = None
            hashing = dead.slot.value
            first, again = None, []
            for f in flights:
                if f.request.future.done():
                    continue
                if hashing != IDLE and hashing >> 32 == f.job.id:
                    url = f.job.urls[hashing & 0xFFFFFFFF]
                    self._kills[url] += 1
                    first = _Flight(self._job(f.job, [url], exact=self._kills[url] >= 2), f.request, i, alone=True)
                    if rest := [u for u in f.job.urls if u != url]:
                        again.append(_Flight(self._job(f.job, rest), f.request, i))
                elif f.alone:  # killed from outside while it ran alone: again, alone
                    first = _Flight(self._job(f.job, f.job.urls), f.request, i, alone=True)
                else:
                    again.append(_Flight(self._job(f.job, f.job.urls), f.request, i))
            held, self._held[i] = [*again, *self._held[i]], deque()
            if first:
                self._dispatch(first)
            for f in held:
                self._dispatch(f)

    def _job(self, job: _Job, urls: list[str], exact: bool | None = None) -> _Job:
        return replace(job, id=next(self._ids), urls=urls, exact=job.exact if exact is None else exact)


# --- a worker process ------------------------------------------------------------------------


def _serve(conn: Connection, slot, parent: int, cfg: FetchConfig, policy_dir: str, hasher) -> None:
    """A worker process's life: the unit's loop, serving jobs until the pipe closes."""
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the scanning process's to handle: it shuts the pool down
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_Serving(conn, slot, cfg, PolicyCache(Path(policy_dir), cfg.policy_ttl), hasher).serve())


class _Serving:
    """A worker's jobs, each a task on its loop, and the fetcher they share while any runs."""

    def __init__(self, conn: Connection, slot, cfg: FetchConfig, cache: PolicyCache, hasher) -> None:
        self.conn, self.slot, self.cfg, self.cache, self.hasher = conn, slot, cfg, cache, hasher
        self.fetcher: Fetcher | None = None
        self.closed_at: float | None = None
        self.running = 0
        self.tasks: dict[int, asyncio.Task] = {}
        self.reads: dict[tuple[str, str], list[PolicyFile]] = {}  # the fetcher's policy file reads
        self.making = asyncio.Lock()
        self.sending = threading.Lock()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()

        def read() -> None:  # a thread: a pipe read would hold the loop
            try:
                while True:
                    loop.call_soon_threadsafe(self.take, self.conn.recv())
            except (EOFError, OSError):
                loop.call_soon_threadsafe(closed.set)

        threading.Thread(target=read, name="jobs", daemon=True).start()
        await closed.wait()
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.close_fetcher()

    def take(self, message: tuple) -> None:
        kind, arg = message
        if kind == "check":
            self.tasks[arg.id] = asyncio.ensure_future(self.check(arg))
        elif task := self.tasks.get(arg):
            task.cancel()

    async def check(self, job: _Job) -> None:
        self.running += 1
        try:
            try:
                fetcher = await self.open_fetcher()
                checked = await check_urls(fetcher, job.urls, job.cfg, self.hashing(job), job.policies)
                answer = ("done", job.id, checked, self.policy_reads(fetcher, job, checked))
            except Exception as e:  # noqa: BLE001 - NetworkDownError, or a bug: the shard task raises it
                answer = ("failed", job.id, e)
            await asyncio.to_thread(self.send, answer)
        finally:
            self.tasks.pop(job.id, None)
            self.running -= 1
            if not self.running:
                await self.close_fetcher()

    def send(self, answer: tuple) -> None:
        with self.sending:
            try:
                self.conn.send(answer)
            except OSError:
                pass  # the scanning process is gone, or closing: this process ends with it
            except Exception:
                if answer[0] != "failed":
                    raise
                # an exception that does not pickle: its words do
                self.conn.send(("failed", answer[1], RuntimeError(f"{type(answer[2]).__name__}: {answer[2]}")))

    async def open_fetcher(self) -> Fetcher:
        """The worker's fetcher, opened for the first job after none ran (``min_interval`` after
        the previous one closed)."""
        async with self.making:
            if self.fetcher is None:
                if self.closed_at is not None:
                    await asyncio.sleep(self.closed_at + self.cfg.min_interval - time.monotonic())
                self.fetcher = await Fetcher(self.cfg, policy_cache=self.cache).__aenter__()
            return self.fetcher

    async def close_fetcher(self) -> None:
        fetcher, self.fetcher = self.fetcher, None
        self.reads.clear()
        if fetcher is not None:
            self.closed_at = time.monotonic()
            await fetcher.__aexit__(None, None, None)

    def policy_reads(self, fetcher: Fetcher, job: _Job, checked: dict[str, Checked]) -> list[PolicyFile]:
        """The policy files the fetcher read (or took from the cache) for the job's URLs: those of
        ``job.policies`` and robots.txt, of their origins and of the origins their checks ended on,
        and (``rsl`` among the policies) the RSL licences those robots.txt files and the checks'
        Link headers name."""
        for read in fetcher.new_policy_files():
            self.reads.setdefault((read.origin, read.name), []).append(read)
        names = {*job.policies, *(("robots.txt",) if job.cfg.respect_robots else ())}
        origins = {origin(u) for u in job.urls} | {origin(f.final_url) for c in checked.values() for f in c.checks if f.final_url}
        found = [r for o in origins for n in names for r in self.reads.get((o, n), ())]
        if RSL in names:
            found += [r for u in licences_named(found, checked.values()) for r in self.reads.get((origin(u), rsl.policy_name(u)), ())]
        return found

    def hashing(self, job: _Job) -> Hasher:
        """The job's hasher: inline, naming the body in the slot while it hashes; or, for an
        ``exact`` job, the exact digests only."""
        if job.exact:
            async def exact(url: str, body: bytes) -> ContentHashes:
                return replace(exact_hashes(body), problem="not_image", error=DIED)

            return exact
        place = {u: i for i, u in enumerate(job.urls)}

        async def inline(url: str, body: bytes) -> ContentHashes:
            self.slot.value = job.id << 32 | place[url]
            try:
                return self.hasher(body, job.cfg)
            finally:
                self.slot.value = IDLE

        return inline


# --- the unit in this process ------------------------------------------------------------------


class InProcess:
    """The unit in the calling process, for a shard task on a Dask worker (or given no pool): one
    uvloop event loop, one fetcher taking ``share`` of the per-domain limits, inline hashing. A
    context manager; :meth:`check` as :meth:`ContentPool.check`."""

    def __init__(self, cfg: FetchConfig, share: int, policy_dir: Path) -> None:
        self._runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        self._fetcher = Fetcher(cfg, share=share, policy_cache=PolicyCache(policy_dir, cfg.policy_ttl))
        self._runner.run(self._fetcher.__aenter__())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._runner.run(self._fetcher.__aexit__(None, None, None))
        finally:
            self._runner.close()

    def check(self, urls: list[str], cfg: FetchConfig, policies: tuple[str, ...] = ()) -> tuple[dict[str, Checked], list[PolicyFile]]:
        """As :meth:`ContentPool.check`, in this process: every policy file its fetcher has read since
        the last call."""

        async def inline(url: str, body: bytes) -> ContentHashes:
            return hash_fetched(body, cfg)

        checked = self._runner.run(check_urls(self._fetcher, urls, cfg, inline, policies))
        return checked, self._fetcher.new_policy_files()


def _forkserver() -> multiprocessing.context.ForkServerContext:
    """The ``forkserver`` context, its preload :data:`PRELOAD` (a forkserver already running keeps its own)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_forkserver() -> None:
    """Start the workers' forkserver now, in a thread, so its imports and warm-up (~1.5 s of CPU,
    :mod:`scrutineer.flows.content_warm`) run while the run starts (Prefect's temporary server
    takes one core for ~4 s) rather than in its first shard task. A pool made later forks from it
    (multiprocessing's lock makes the pool wait for it to be up)."""
    _forkserver()
    threading.Thread(target=multiprocessing.forkserver.ensure_running, name="content-forkserver", daemon=True).start()


# --- a run's pool ------------------------------------------------------------------------------


class _RunPool:
    def __init__(self, cfg: FetchConfig, policy_dir: Path) -> None:
        self.cfg, self.policy_dir = cfg, policy_dir
        self.pool: ContentPool | None = None
        self.lock = threading.Lock()


_runs: dict[str, _RunPool] = {}


@contextmanager
def for_run(cfg: FetchConfig, policy_dir: Path) -> Iterator[str]:
    """A run's pool, by the key its shard tasks carry (:func:`pool` makes it on first use); shut
    down when the block ends, so no worker, nor any policy file in one, outlives the run."""
    key = secrets.token_hex(8)
    _runs[key] = run = _RunPool(cfg, policy_dir)
    try:
        yield key
    finally:
        del _runs[key]
        with run.lock:
            if run.pool is not None:
                run.pool.shutdown()


def pool(key: str) -> ContentPool:
    """The :class:`ContentPool` of the run ``key`` (:func:`for_run`), started on first use with
    :data:`HASHER`.

    Raises:
        KeyError: no such run in this process.
    """
    run = _runs[key]
    with run.lock:
        if run.pool is None:
            run.pool = ContentPool(run.cfg, run.policy_dir, HASHER)
        return run.pool


def running() -> list[ContentPool]:
    """The pools of this process's runs that have started (a test finds its scan's workers here)."""
    return [r.pool for r in list(_runs.values()) if r.pool is not None]
