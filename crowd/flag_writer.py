"""The review app's flag writes, grouped: the flags submitted through the API and the form while
one batch is being written wait and are written together as the next batch, in one crowd-store
transaction (group commit, as databases batch the commits of concurrent transactions; SQLite has
one writer at a time, so under load this is what keeps flags from queueing one by one).

Each app process has one writer thread: looking the samples up in the review snapshot and
waiting for the store's write lock (which a ``flags import`` holds for its whole file) never
stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from dataclasses import dataclass

from limits import RateLimitItem

from scrutineer.core.errors import AppStopping, CrowdError, NotFound
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.flags import FlagItem, FlagRequest
from scrutineer.crowd.snapshot import SampleKey, Snapshot
from scrutineer.crowd.store import CrowdStore


@dataclass(frozen=True)
class Submission:
    """One flag submitted through the API or the form: a sample by its id or URL (a URL flags
    every sample of the latest scan that has it)."""

    who: Account
    key: SampleKey
    category: str
    note: str
    #: ``api`` or ``form``.
    source: str


class FlagWriter:
    """Records :class:`Submission` s in batches on its own thread, counted against ``rate``.

    The event loop puts each submission on a queue and awaits its future; the thread takes
    everything queued, writes it, hands the outcomes back to the loop (one
    ``call_soon_threadsafe`` per batch) and takes the next batch at once. The loop never has to
    run anything to start a batch, which matters because under load each turn of the loop is long:
    it runs every request that is ready.

    Args:
        rate: ``crowd.rate_limit``: flags per account per moving window.
    """

    def __init__(self, crowd: CrowdStore, snapshot: Snapshot, rate: RateLimitItem) -> None:
        self._crowd, self._snapshot, self._rate = crowd, snapshot, rate
        self._queue: queue.SimpleQueue[tuple[Submission, asyncio.Future] | None] = queue.SimpleQueue()
        self._closing = threading.Lock()  # orders every submission before the stop (close)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="crowd-writer", daemon=True)
        self._thread.start()

    async def __call__(self, submission: Submission) -> list[tuple[int, bool]]:
        """Record one submission (with the others queued).

        Returns:
            Per sample flagged: (flag id, whether a new report was recorded).

        Raises:
            RateLimited: past ``rate``.
            NotFound: no such sample or URL in the latest scan.
            CrowdError: an unknown category.
            AppStopping: the writer is closed (the app is stopping).
            WorkspaceError: no review snapshot yet.
            sqlalchemy.exc.SQLAlchemyError: the crowd store failed (the whole batch).
        """
        done = asyncio.get_running_loop().create_future()
        with self._closing:
            if self._closed:  # nothing would ever write it
                raise AppStopping("the app is stopping: submit the flag again in a moment")
            self._queue.put((submission, done))
        return await done

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get())
            stopping = None in batch
            batch = [b for b in batch if b is not None]
            if not batch:
                continue
            try:
                outcomes = self._write([s for s, _ in batch])
            except Exception as e:  # the store failed: every submission of the batch fails with it
                outcomes = [e] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}
            for (_, done), outcome in zip(batch, outcomes):
                by_loop.setdefault(done.get_loop(), []).append((done, outcome))
            for loop, settled in by_loop.items():
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits these any more
                    loop.call_soon_threadsafe(_settle, settled)

    def _write(self, batch: list[Submission]) -> list[list[tuple[int, bool]] | CrowdError]:
        """On the writer thread: look the batch's samples up, then record it in one transaction."""
        found = self._snapshot.samples([s.key for s in batch])
        requests = [FlagRequest(s.who, [FlagItem(sample, s.category, s.note) for sample in samples], s.source, self._rate)
                    for s, samples in zip(batch, found) if samples]
        made = iter(self._crowd.flag_many(requests))
        return [next(made) if samples else NotFound(f"no sample with this {s.key[0]} in the latest scan") for s, samples in zip(batch, found)]

    def close(self) -> None:
        """Write what is queued, then stop the thread; later submissions are refused (503)."""
        with self._closing:
            self._closed = True
            self._queue.put(None)
        self._thread.join()


def _settle(settled: list[tuple[asyncio.Future, list[tuple[int, bool]] | Exception]]) -> None:
    """On the event loop: give each submission's future its outcome."""
    for done, outcome in settled:
        if done.done():  # its request was cancelled (the client went away)
            continue
        if isinstance(outcome, Exception):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
