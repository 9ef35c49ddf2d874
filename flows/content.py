"""The content stage of a shard task: fetch each distinct URL (or, for a webdataset shard, read
each sample's image from its tar), hash the bytes, and make one
:data:`~scrutineer.core.contract.CONTENT` row per sample (DESIGN.md "What flows where").

:func:`check_urls` is the work of one event loop: its URLs fetched politely by one
:class:`~scrutineer.observing.fetch.Fetcher` and each body hashed by the :data:`Hasher` it is given,
which runs in the same process (flows/content_workers.py). Bytes live in memory from the fetcher
to the hasher and are dropped as soon as the hashes come back; only fetch records and hashes
leave this module; at most ``2 * fetch.concurrency`` bodies exist at once per call. A URL that
looks dead (404, 410, NXDOMAIN) is checked ``fetch.dead_checks`` times, ``fetch.recheck_interval``
seconds apart; ``checks`` says how many checks agreed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.core.config import FetchConfig
from scrutineer.core.contract import (
    CHECK,
    CONTENT,
    FETCH,
    HASHES,
    OPT_OUT_SIGNALS,
    OUTCOME_COLUMNS,
    SAMPLE_COLUMNS,
)
from scrutineer.observing.fetch import Fetched, Fetcher
from scrutineer.observing.hashing import ContentHashes
from scrutineer.observing.optouts import rsl
from scrutineer.observing.optouts.robots import licence_urls
from scrutineer.observing.policy_files import POLICY_PATHS, RSL, PolicyFile, origin

#: Hashes a fetched body: ``(url, body)`` to its :class:`~scrutineer.observing.hashing.ContentHashes`
#: (:func:`scrutineer.observing.hashing.hash_fetched`, inline in the fetching process).
Hasher = Callable[[str, bytes], Awaitable[ContentHashes]]


@dataclass
class Checked:
    """A URL's outcome in this run: every check made, and the hashes of its bytes if any."""

    checks: list[Fetched]
    hashes: ContentHashes | None

    @property
    def last(self) -> Fetched:
        return self.checks[-1]

    @property
    def agreeing(self) -> int:
        """How many of the latest checks share the last check's status (0 with no checks)."""
        n = 0
        for f in reversed(self.checks):
            if f.status != self.checks[-1].status:
                break
            n += 1
        return n


async def _check_once(fetcher: Fetcher, url: str, checked: Checked, hasher: Hasher) -> None:
    """Fetch ``url`` once into ``checked``; hash the body, if any, with ``hasher``."""
    fetched = await fetcher.fetch(url)
    checked.checks.append(fetched)
    if fetched.body is not None:
        body, fetched.body = fetched.body, None  # the only reference leaves with the hasher's call
        checked.hashes = await hasher(url, body)
        del body
        if checked.hashes.problem and fetched.status == "alive":
            fetched.status, fetched.error = checked.hashes.problem, checked.hashes.error


async def _each(items: list[str], step, workers: int) -> None:
    """Await ``step(item)`` for every item, ``workers`` at a time (each worker takes the next item
    when it finishes one). The first exception cancels the rest and propagates."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:  # one shared iterator: every item is taken exactly once
            await step(item)

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(workers, len(items)))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def check_urls(fetcher: Fetcher, urls: list[str], cfg: FetchConfig, hasher: Hasher, policies: tuple[str, ...] = ()) -> dict[str, Checked]:
    """Check every URL with ``fetcher`` (politely, concurrently) and hash what it serves with
    ``hasher``; meanwhile
    read the ``policies`` files (:data:`~scrutineer.observing.policy_files.POLICY_PATHS` names) of each
    URL's origin (:meth:`~scrutineer.observing.fetch.Fetcher.policy_file`: once per origin and TTL),
    and with ``rsl`` among them, once those and the checks are done, the RSL licences their
    robots.txt files and the responses' Link headers name (each a policy file too).

    At most ``2 * cfg.concurrency`` URLs are in progress at once, so at most that many bodies
    wait for the hasher however long the list. URLs that look dead are checked again after the
    pass over the list, ``fetch.recheck_interval`` seconds after their previous check, until
    ``fetch.dead_checks`` checks.

    Raises:
        NetworkDownError: the fetcher's circuit breaker opened; nothing from this call is usable.
    """
    checked = {u: Checked([], None) for u in urls}
    pending = urls
    origins = dict.fromkeys(o for u in urls if (o := origin(u)))
    reads = asyncio.gather(*(fetcher.policy_file(o, name) for o in origins for name in policies if name in POLICY_PATHS))
    licences = None
    try:
        while pending:
            await _each(pending, lambda u: _check_once(fetcher, u, checked[u], hasher), 2 * cfg.concurrency)
            pending = [u for u in pending if checked[u].last.status == "dead" and len(checked[u].checks) < cfg.dead_checks]
            if pending:
                since = (datetime.now(UTC) - max(checked[u].last.fetched_at for u in pending)).total_seconds()
                await asyncio.sleep(max(0.0, cfg.recheck_interval - since))
        read = await reads
        if RSL in policies:
            named = licences_named(read, checked.values())
            licences = asyncio.gather(*(fetcher.policy_file(o, rsl.policy_name(u)) for u in named if (o := origin(u))))
            await licences
    finally:
        reads.cancel()  # a no-op once done; a policy read never outlives its batch
        if licences is not None:
            licences.cancel()
    return checked


def licences_named(reads: list[PolicyFile], checked: Iterable[Checked]) -> list[str]:
    """The RSL licence URLs the robots.txt files read and the responses' Link headers name, each once."""
    named = [u for r in reads if r.name == "robots.txt" and (text := r.served) for u in licence_urls(text)]
    named += [u for c in checked if c.checks for u in rsl.link_licences(c.last.link)]
    return list(dict.fromkeys(named))


def _outcome(checked: Checked | None, hashes: ContentHashes | None) -> dict:
    """One :data:`OUTCOME_COLUMNS` row: the last check (if any) and the hashes (if any)."""
    last = checked.last if checked and checked.checks else None
    row = {name: getattr(last, name, None) for name in [*(f.name for f in CHECK), "bytes", *(f.name for f in OPT_OUT_SIGNALS)]}
    row["checks"] = checked.agreeing if checked else 0
    row["checked_at"] = last.fetched_at if last else None
    if hashes is not None:
        row.update({f.name: getattr(hashes, f.name) for f in HASHES} | {"bytes": hashes.bytes, "c2pa": hashes.c2pa, "iptc": hashes.iptc, "pdq_dihedral": hashes.pdq_dihedral})
        if last is None and hashes.problem:  # read from a tar: the problem is the row's status
            row["status"], row["error"] = hashes.problem, hashes.error
    return row


def content_batch(rows: pa.RecordBatch, outcomes: dict[str, dict], by: str) -> pa.RecordBatch:
    """:data:`~scrutineer.core.contract.CONTENT` rows for a rows batch: each row's outcome looked up by
    its ``by`` column (``url`` for fetched content, ``key`` for a webdataset tar) with Arrow's
    ``index_in``/``take``. A row with no outcome has null outcome columns and ``checks`` 0; a row
    with no URL, when fetching, is ``invalid`` ("no URL").

    Args:
        outcomes: ``{lookup value: row of OUTCOME_COLUMNS}`` (see :func:`fetch_outcomes`,
            :func:`tar_outcomes`).
    """
    keys = list(outcomes)
    table = pa.Table.from_pylist(list(outcomes.values()), schema=pa.schema([CONTENT.field(n) for n in OUTCOME_COLUMNS]))
    at = pc.index_in(rows.column(by), value_set=pa.array(keys, pa.string()))
    looked = table.take(at)
    columns = {n: rows.column(n) for n in SAMPLE_COLUMNS} | {n: looked.column(n).combine_chunks() for n in OUTCOME_COLUMNS}
    columns["checks"] = pc.fill_null(columns["checks"], 0)
    if by == "url":
        no_url = pc.is_null(rows.column("url"))
        columns["status"] = pc.if_else(no_url, "invalid", columns["status"])
        columns["error"] = pc.if_else(no_url, "no URL", columns["error"])
        columns["checks"] = pc.if_else(no_url, 1, columns["checks"])
    return pa.RecordBatch.from_arrays([columns[n] for n in CONTENT.names], schema=CONTENT)


def rechecked_batch(rows: pa.RecordBatch, stored: pa.RecordBatch, outcomes: dict[str, dict]) -> pa.RecordBatch:
    """A recheck's :data:`~scrutineer.core.contract.CONTENT` rows: the ``stored`` ones (the same rows as
    ``rows``), except that a row whose URL was checked again (``outcomes``, by URL) takes the new
    check's outcome; its ``checks`` counts on from the stored ones when the new check agrees with
    the stored status, so a link is confirmed dead across runs, and starts again when it does not
    (a link that comes back is alive again)."""
    new = content_batch(rows, outcomes, by="url")
    again = pc.fill_null(pc.is_in(rows.column("url"), value_set=pa.array(list(outcomes), pa.string())), False)
    agrees = pc.fill_null(pc.equal(new.column("status"), stored.column("status")), False)
    columns = {n: stored.column(n) for n in SAMPLE_COLUMNS}
    columns |= {n: pc.if_else(again, new.column(n), stored.column(n)) for n in OUTCOME_COLUMNS}
    counted = pc.if_else(agrees, pc.add(stored.column("checks"), new.column("checks")), new.column("checks"))
    columns["checks"] = pc.if_else(again, counted, stored.column("checks"))
    return pa.RecordBatch.from_arrays([columns[n] for n in CONTENT.names], schema=CONTENT)


def fetch_outcomes(urls: list[str], checked: dict[str, Checked]) -> dict[str, dict]:
    """Outcome rows of fetched URLs, by URL."""
    return {u: _outcome(checked[u], checked[u].hashes) for u in urls}


def tar_outcomes(keys: list[str], hashed: dict[str, ContentHashes]) -> dict[str, dict]:
    """Outcome rows of webdataset samples, by key: their image's hashes, if the tar holds one."""
    return {k: _outcome(None, hashed[k]) for k in keys if k in hashed}


def fetch_rows(checked: dict[str, Checked]) -> pa.Table:
    """Every check as :data:`~scrutineer.core.contract.FETCH` rows."""
    rows = [{n: getattr(f, n) for n in FETCH.names} for c in checked.values() for f in c.checks]
    return pa.Table.from_pylist(rows, schema=FETCH)
