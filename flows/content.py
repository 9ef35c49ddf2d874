"""The content stage of a shard task: fetch each distinct URL (or, for a webdataset shard, read
each sample's image from its tar), hash the bytes in a process pool, and hand content detectors
one row per sample (DESIGN.md "What flows where").

Bytes live in memory from the fetcher to :func:`scrutineer.hashing.hash_content` in a worker
process, and are dropped as soon as the hashes come back; only fetch records and hashes leave
this module; at most ``2 * fetch.concurrency`` bodies exist at once. A URL that looks dead (404,
410, NXDOMAIN) is checked ``fetch.dead_checks`` times, ``fetch.recheck_interval`` seconds apart;
:data:`CONTENT_SCHEMA`'s ``checks`` says how many checks agreed.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.config import FetchConfig
from scrutineer.errors import NetworkDownError
from scrutineer.fetch import Fetched, Fetcher, NetworkDown
from scrutineer.hashing import ContentHashes, hash_content
from scrutineer.sources import DETECT_SCHEMA

FETCHES_SCHEMA = pa.schema(
    [
        ("shard_id", pa.string()),
        ("url", pa.string()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),
        ("http_status", pa.int32()),
        ("final_url", pa.string()),
        ("content_type", pa.string()),
        ("bytes", pa.int64()),
        ("elapsed", pa.float64()),
        ("attempts", pa.int32()),
        ("error", pa.string()),
        ("x_robots_tag", pa.string()),
    ]
)
HASH_COLUMNS = [
    ("md5", pa.string()),
    ("sha1", pa.string()),
    ("sha256", pa.string()),
    ("pdq", pa.string()),
    ("pdq_quality", pa.int32()),
    ("phash", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
]
#: What a content detector's ``detect`` receives: one row per sample, its URL's latest check and
#: the hashes of the bytes (null when nothing was hashed).
CONTENT_SCHEMA = pa.schema(
    [
        ("row_index", pa.int64()),
        ("sample_id", pa.string()),
        ("url", pa.string()),
        ("status", pa.string()),
        ("http_status", pa.int32()),
        ("final_url", pa.string()),
        ("content_type", pa.string()),
        ("error", pa.string()),
        ("x_robots_tag", pa.string()),
        ("checks", pa.int32()),
        ("bytes", pa.int64()),
        *HASH_COLUMNS,
    ]
)
#: ``content_hashes`` rows as a shard writes them.
CONTENT_HASHES_SCHEMA = pa.schema(
    [("shard_id", pa.string()), ("row_index", pa.int64()), ("sample_id", pa.string()), ("url", pa.string()), *HASH_COLUMNS, ("bytes", pa.int64())]
)


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


async def _check_once(fetcher: Fetcher, url: str, checked: Checked, pool: Executor) -> None:
    """Fetch ``url`` once into ``checked``; hash the body, if any, in ``pool``."""
    fetched = await fetcher.fetch(url)
    checked.checks.append(fetched)
    if fetched.body is not None:
        body, fetched.body = fetched.body, None  # the only reference leaves with the worker call
        checked.hashes = await asyncio.get_running_loop().run_in_executor(pool, hash_content, body)
        del body
        if checked.hashes.decode_error and fetched.status == "alive":
            fetched.status, fetched.error = "not_image", checked.hashes.decode_error


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


async def check_urls(fetcher: Fetcher, urls: list[str], cfg: FetchConfig, pool: Executor) -> dict[str, Checked]:
    """Check every URL with ``fetcher`` (politely, concurrently) and hash what it serves.

    At most ``2 * fetch.concurrency`` URLs are in progress at once, so at most that many bodies
    wait for the hashers however long the list. URLs that look dead are checked again after the
    pass over the list, ``fetch.recheck_interval`` seconds after their previous check, until
    ``fetch.dead_checks`` checks.

    Raises:
        NetworkDownError: the fetcher's circuit breaker opened; nothing from this call is usable.
    """
    checked = {u: Checked([], None) for u in urls}
    pending = urls
    try:
        while pending:
            await _each(pending, lambda u: _check_once(fetcher, u, checked[u], pool), 2 * cfg.concurrency)
            pending = [u for u in pending if checked[u].last.status == "dead" and len(checked[u].checks) < cfg.dead_checks]
            if pending:
                since = (datetime.now(UTC) - max(checked[u].last.fetched_at for u in pending)).total_seconds()
                await asyncio.sleep(max(0.0, cfg.recheck_interval - since))
    except NetworkDown as e:
        raise NetworkDownError(str(e)) from None
    return checked


def content_batch(batch: pa.RecordBatch, checked: dict[str, Checked], by: str = "url") -> pa.RecordBatch:
    """:data:`CONTENT_SCHEMA` rows for a :data:`~scrutineer.sources.DETECT_SCHEMA` batch, each row's
    outcome looked up in ``checked`` by its ``by`` column (``url`` for fetched content, ``key`` for
    a webdataset tar). Columns of ``batch`` beyond ``DETECT_SCHEMA`` (a detector's extra source
    columns) follow, unchanged. A row with no checks (read from a tar) has null fetch fields and
    ``checks`` 0."""
    cols: dict[str, list] = {f.name: [] for f in CONTENT_SCHEMA}
    for row_index, sample_id, url, lookup in zip(*(batch.column(c).to_pylist() for c in ("row_index", "sample_id", "url", by))):
        c = checked.get(lookup) if lookup else None
        fetched = c.last if c and c.checks else None
        values = {"row_index": row_index, "sample_id": sample_id, "url": url, "checks": c.agreeing if c else 0}
        for name in ("status", "http_status", "final_url", "content_type", "error", "x_robots_tag", "bytes"):
            values[name] = getattr(fetched, name) if fetched else None
        for name, _ in HASH_COLUMNS:  # a body that did not decode has only its exact digests set
            values[name] = getattr(c.hashes, name) if c and c.hashes else None
        if c and c.hashes:
            values["bytes"] = c.hashes.bytes
        if c is None and by == "url":
            values["status"], values["error"], values["checks"] = "invalid", "no URL", 1
        for name, value in values.items():
            cols[name].append(value)
    content = pa.RecordBatch.from_pydict(cols, schema=CONTENT_SCHEMA)
    for name in batch.schema.names[len(DETECT_SCHEMA) :]:
        content = content.append_column(name, batch.column(name))
    return content


def fetch_rows(shard_id: str, checked: dict[str, Checked]) -> pa.Table:
    """Every check as :data:`FETCHES_SCHEMA` rows."""
    rows = [
        {
            "shard_id": shard_id,
            "url": url,
            **{k: getattr(f, k) for k in ("fetched_at", "status", "http_status", "final_url", "content_type", "bytes", "elapsed", "attempts", "error", "x_robots_tag")},
        }
        for url, c in checked.items()
        for f in c.checks
    ]
    return pa.Table.from_pylist(rows, schema=FETCHES_SCHEMA)


def hash_rows(shard_id: str, content: pa.RecordBatch) -> pa.Table:
    """``content_hashes`` rows: the samples of a content batch whose bytes were hashed."""
    table = pa.Table.from_batches([content]).filter(pc.is_valid(content.column("sha256")))
    return pa.table(
        {"shard_id": pa.repeat(pa.scalar(shard_id), table.num_rows), **{n: table.column(n) for n in CONTENT_HASHES_SCHEMA.names[1:]}},
        schema=CONTENT_HASHES_SCHEMA,
    )
