"""The review app's flag writes, grouped: the flags submitted through the API and the form while
one batch is being written wait and are written together as the next batch, in one crowd-store
transaction (group commit, as databases batch the commits of concurrent transactions; SQLite has
one writer at a time, so under load this is what keeps flags from queueing one by one).

Each app process has one writer thread. The event loop only hands it batches: looking the
samples up in the review snapshot and waiting for the store's write lock (which a ``flags
import`` holds for its whole file) never stall the loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from limits import RateLimitItem

from scrutineer.crowd import Account, CrowdError, CrowdStore, FlagItem, FlagRequest
from scrutineer.snapshot import SampleKey, Snapshot


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
    """Records :class:`Submission` s in batches on one thread, counted against ``rate``.

    Args:
        rate: ``crowd.rate_limit``: flags per account per moving window.
    """

    def __init__(self, crowd: CrowdStore, snapshot: Snapshot, rate: RateLimitItem) -> None:
        self._crowd, self._snapshot, self._rate = crowd, snapshot, rate
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="crowd-writer")
        self._pending: list[tuple[Submission, asyncio.Future]] = []
        self._draining: asyncio.Task | None = None

    async def __call__(self, submission: Submission) -> list[tuple[int, bool]]:
        """Record one submission (with the others pending).

        Returns:
            Per sample flagged: (flag id, whether a new report was recorded).

        Raises:
            RateLimited: 429.
            CrowdError: 404 no such sample or URL in the latest scan, 422 an unknown category.
            WorkspaceError: no review snapshot yet.
            sqlalchemy.exc.SQLAlchemyError: the crowd store failed (the whole batch).
        """
        done = asyncio.get_running_loop().create_future()
        self._pending.append((submission, done))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    outcomes = await asyncio.get_running_loop().run_in_executor(self._thread, self._write, [s for s, _ in batch])
                except Exception as e:  # the store failed: every submission of the batch fails with it
                    outcomes = [e] * len(batch)
                for (_, done), outcome in zip(batch, outcomes):
                    if done.done():  # its request was cancelled (the client went away)
                        continue
                    if isinstance(outcome, Exception):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
        finally:
            self._draining = None

    def _write(self, batch: list[Submission]) -> list[list[tuple[int, bool]] | Exception]:
        """On the writer thread: look the batch's samples up, then record it in one transaction."""
        found = self._snapshot.samples([s.key for s in batch])
        requests = [FlagRequest(s.who, [FlagItem(sample, s.category, s.note) for sample in samples], s.source, self._rate)
                    for s, samples in zip(batch, found) if samples]
        made = iter(self._crowd.flag_many(requests))
        return [next(made) if samples else CrowdError(f"no sample with this {s.key[0]} in the latest scan", 404) for s, samples in zip(batch, found)]

    def close(self) -> None:
        """Wait for the batch being written, then stop the thread."""
        self._thread.shutdown()
