"""The sample search index: full-text search over the latest run's captions, with filters by
finding reason, registrable domain, licence and shard (issue 25, "A dataset browser").

It is a SQLite file beside the review snapshot (:attr:`scrutineer.core.layout.Layout.search_index`),
built by :func:`build` from the published snapshot (:mod:`scrutineer.crowd.snapshot`: the run's rows
observations as ``publish`` copied them, and its findings) after each publish
(:func:`scrutineer.crowd.sync.publish`), never in the scan's write path. Like the snapshot it is
written under a temporary name and renamed into place, with the snapshot's file mode: it names
restricted reasons.

Tables:

- ``samples`` (pos, sample_id): ``pos`` numbers the samples in shard and row order (the rowid);
  a page of results reads the rest of its samples from the snapshot, by id;
- ``text``: an FTS5 table, rowid ``pos``, over ``caption`` and ``filters``: one token per filter a
  sample answers (:func:`filter_token`: its shard, registrable domain
  (:mod:`scrutineer.samples.domains`), licence (:func:`scrutineer.samples.licenses.to_spdx`) and
  each reason of its findings);
- ``facets`` (kind, value, samples, restricted): every filter value with its number of samples;
  ``restricted`` marks a reason any restricted finding has (a hash-bank match, a sensitive flag).

Why SQLite FTS5 (bench/search.py, bench/README.md "search.py"; 10M samples with real LAION-400M and
CC3M captions, measured 2026-12-06 on 2 cores shared with other work, so each figure is a
ceiling): FTS5 ``content='', detail=none, columnsize=0``, loaded in one transaction with
``journal_mode=OFF, synchronous=OFF`` and merged once (``optimize``), answers a page of 1-3 word
queries (the page's samples read from the snapshot included) at p50 7.8 ms, p99 57 ms, and with a
filter p50 18 ms, p99 79 ms; its file is 381 MB; it builds in 82 s wall, 99 s CPU, 1.2 times the
metadata scan's 70 s at 10M rows, so the issue's "build under 20 % of the scan" is not met.
tantivy 0.27 (a new dependency) answered faster (p99 41 ms, the snapshot's page not included) but
cost more to build (84 s wall, 164 s CPU on two threads, fed one document per Python call); a
DuckDB scan (its ``fts`` extension cannot be installed offline: ``INSTALL fts`` fails to
download) needs no build but answers in 4.5-5.6 s.

``detail=none`` keeps no positions, so there are no phrase queries or column filters: a query is an
AND of single tokens, and a filter token is told from caption words by its shape (``f`` and 20
hex digits of an MD5: a caption word matches a filter only by being that very token; none of the
12,917 captions measured has a word of that shape). Matches come in rowid
(shard and row) order; the total is counted up to :data:`COUNT_CAP`, so a query for ``the`` costs
what a rare word does.

Query words are split as FTS5's ``unicode61`` tokenizer splits captions (runs of letters and
digits: Unicode categories L* and N*); each becomes one quoted FTS5 string, so no query syntax
(``OR``, ``NEAR``, ``*``, ``"``) is ever interpreted.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from scrutineer.core.errors import WorkspaceError
from scrutineer.core.files import temporary_sibling
from scrutineer.core.layout import Layout
from scrutineer.reports.data import AUTHORITY_RE
from scrutineer.samples.domains import host_and_domain
from scrutineer.samples.licenses import to_spdx

#: The filters of a search, each matched exactly: ``reason`` a finding reason, ``domain`` a
#: registrable domain, ``license`` a licence's SPDX id (or the licence as given when it has none),
#: ``shard`` a shard id.
Kind = Literal["reason", "domain", "license", "shard"]
KINDS: tuple[Kind, ...] = ("reason", "domain", "license", "shard")
#: Results per page.
PAGE = 50
#: A search's total is counted up to this many matches ("10,000+"), and paging stops there.
COUNT_CAP = 10_000
#: At most this many words of a query are used (untrusted input is bounded: STYLE.md 14).
MAX_WORDS = 8
#: Rows per batch read from the snapshot and written to SQLite while building.
BATCH = 100_000
#: A word as FTS5's ``unicode61`` tokenizer sees one: a run of letters and digits (its default
#: token categories, ``L* N* Co``; private-use characters aside).
_WORD = re.compile(r"[^\W_]+")
#: The shape of :func:`filter_token`'s tokens.
_FILTER_TOKEN = re.compile(r"f[0-9a-f]{20}")

CREATE = (
    "CREATE TABLE samples (pos INTEGER PRIMARY KEY, sample_id TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE text USING fts5(caption, filters, content='', detail=none, columnsize=0)",
    "CREATE TABLE facets (kind TEXT NOT NULL, value TEXT NOT NULL, samples INTEGER NOT NULL, restricted INTEGER NOT NULL, PRIMARY KEY (kind, value))",
)
#: The snapshot's samples in shard and row order, numbered from 1, each with its filter tokens,
#: from the registered tables ``hosts`` (authority, host, domain, token: a URL's authority by
#: ``AUTHORITY_RE``), ``licences`` (license, spdx, token), ``shards`` (shard_id, token) and
#: ``reason_tokens`` (reason, token).
_ROWS = f"""
    WITH r AS (
        SELECT f.shard_id, f.row_index, string_agg(DISTINCT t.token, ' ') AS tokens
        FROM findings f JOIN reason_tokens t USING (reason) GROUP BY ALL
    )
    SELECT row_number() OVER (ORDER BY s.shard_id, s.row_index) AS pos, s.sample_id, s.caption,
           concat_ws(' ', sh.token, h.token, l.token, r.tokens) AS filters
    FROM samples s
    JOIN shards sh USING (shard_id)
    LEFT JOIN hosts h ON h.authority = regexp_extract(s.url, '{AUTHORITY_RE}', 1)
    LEFT JOIN licences l ON l.license = s.license
    LEFT JOIN r USING (shard_id, row_index)
    ORDER BY pos
"""
#: Samples per URL authority, per licence as given, per shard.
_AUTHORITIES = f"SELECT regexp_extract(url, '{AUTHORITY_RE}', 1) AS authority, count(*) FROM samples GROUP BY authority"
_LICENCES = "SELECT license, count(*) FROM samples WHERE license IS NOT NULL GROUP BY license"
_SHARDS = "SELECT shard_id, count(*) FROM samples GROUP BY shard_id"
#: Every reason of the run's findings: its samples, and whether any of its findings is restricted.
_REASONS = "SELECT reason, count(DISTINCT (shard_id, row_index)), bool_or(restricted) FROM findings GROUP BY reason"


def filter_token(kind: Kind, value: str) -> str:
    """The token the ``text`` table holds for a filter value: ``f`` and the first 20 hex digits of
    the MD5 of ``kind``, NUL, ``value`` (a token ``unicode61`` keeps whole and lowercase)."""
    return "f" + hashlib.md5(f"{kind}\0{value}".encode()).hexdigest()[:20]


def words(text: str) -> list[str]:
    """The words of a query, as the index splits captions (module docstring), :data:`MAX_WORDS` at
    most, without any word shaped as a filter token (:func:`filter_token`): typed as a word, a
    restricted reason's token would find the restricted samples for anyone (its hash is public)."""
    return [w for w in _WORD.findall(text) if not _FILTER_TOKEN.fullmatch(w.lower())][:MAX_WORDS]


def build(workspace: Path) -> Path:
    """Build the search index of ``workspace``'s published review snapshot and rename it into place.

    Returns:
        The index's path.

    Raises:
        WorkspaceError: no review snapshot is published.
        duckdb.Error, sqlite3.Error, OSError: it could not be built; the previous index is left as it was.
    """
    layout = Layout(workspace)
    if not layout.snapshot.exists():
        raise WorkspaceError(f"no review snapshot in {workspace}: run `scrutineer scan` first")
    out = layout.search_index
    tmp = temporary_sibling(out)
    try:
        # a DuckDB instance of its own, the snapshot attached: a connection by path would share (or
        # refuse, its settings differing) the instance of a Snapshot this process may hold open
        with duckdb.connect() as src:
            src.execute("ATTACH ? AS snapshot (READ_ONLY)", [str(layout.snapshot)])
            src.execute("USE snapshot")
            _write(src, tmp)
        os.chmod(tmp, layout.snapshot.stat().st_mode & 0o777)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _write(src: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Fill a new index at ``path`` from the snapshot connection ``src``: the filter values and
    their counts first (hosts, domains and SPDX ids computed once per distinct authority and
    licence), then the samples in batches."""
    facets: dict[tuple[Kind, str], list[int]] = {}  # (kind, value) -> [samples, restricted]
    hosts: dict[str, list] = {"authority": [], "host": [], "domain": [], "token": []}
    for authority, n in src.execute(_AUTHORITIES).fetchall():
        host, domain = host_and_domain("//" + authority) if authority else ("", "")
        for key, value in zip(hosts, (authority, host or None, domain or None, filter_token("domain", domain) if domain else None)):
            hosts[key].append(value)
        if domain:
            facets.setdefault(("domain", domain), [0, 0])[0] += n
    licences: dict[str, list] = {"license": [], "spdx": [], "token": []}
    for licence, n in src.execute(_LICENCES).fetchall():
        spdx = to_spdx(licence)
        for key, value in zip(licences, (licence, spdx, filter_token("license", spdx or licence))):
            licences[key].append(value)
        facets.setdefault(("license", spdx or licence), [0, 0])[0] += n
    shards = src.execute(_SHARDS).fetchall()
    facets |= {("shard", shard): [n, 0] for shard, n in shards}
    reasons = src.execute(_REASONS).fetchall()
    facets |= {("reason", reason): [n, int(restricted)] for reason, n, restricted in reasons}
    src.register("hosts", pa.table(hosts, schema=pa.schema([(k, pa.string()) for k in hosts])))
    src.register("licences", pa.table(licences, schema=pa.schema([(k, pa.string()) for k in licences])))
    src.register("shards", pa.table({"shard_id": [s for s, _ in shards], "token": [filter_token("shard", s) for s, _ in shards]},
                                     schema=pa.schema([("shard_id", pa.string()), ("token", pa.string())])))
    src.register("reason_tokens", pa.table({"reason": [r for r, *_ in reasons], "token": [filter_token("reason", r) for r, *_ in reasons]},
                                           schema=pa.schema([("reason", pa.string()), ("token", pa.string())])))
    con = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-200000"):
            con.execute(f"PRAGMA {pragma}")
        for statement in CREATE:
            con.execute(statement)
        con.execute("INSERT INTO text(text, rank) VALUES ('automerge', 0)")  # merged once, at the end ('optimize')
        con.execute("BEGIN")
        for batch in src.sql(_ROWS).to_arrow_reader(BATCH):
            cols = [c.to_pylist() for c in batch.columns]
            con.executemany("INSERT INTO samples VALUES (?, ?)", zip(cols[0], cols[1]))
            con.executemany("INSERT INTO text(rowid, caption, filters) VALUES (?, ?, ?)", zip(cols[0], cols[2], cols[3]))
        con.executemany("INSERT INTO facets VALUES (?, ?, ?, ?)", [(kind, value, n, r) for (kind, value), (n, r) in facets.items()])
        con.execute("COMMIT")
        con.execute("INSERT INTO text(text) VALUES ('optimize')")
    finally:
        con.close()


@dataclass(frozen=True)
class Search:
    """One search: ``q`` the caption words (an AND of them), and the filters (empty: none)."""

    q: str = ""
    reason: str = ""
    domain: str = ""
    license: str = ""
    shard: str = ""
    #: 1-based, at most ``COUNT_CAP // PAGE``.
    page: int = 1

    def filters(self) -> dict[Kind, str]:
        """The filters given, by kind."""
        return {kind: getattr(self, kind) for kind in KINDS if getattr(self, kind)}


@dataclass(frozen=True)
class Results:
    """A page of a search's matches, in shard and row order."""

    #: The matching samples' ids.
    hits: list[str]
    #: Matches counted, at most :data:`COUNT_CAP`.
    total: int
    #: Whether there are more than :data:`COUNT_CAP`.
    capped: bool
    page: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", max(1, -(-self.total // PAGE)))


NOTHING = Results([], 0, False, 1)


class SearchIndex:
    """The latest search index of a workspace, read-only; each call opens it afresh (~0.1 ms), so a
    newly built index is read as soon as it is in place and any thread may call.

    Args:
        workspace: the workspace directory.
    """

    def __init__(self, workspace: Path) -> None:
        self.path = Layout(Path(workspace)).search_index

    def _connect(self) -> sqlite3.Connection:
        """A read-only connection.

        Raises:
            WorkspaceError: no index is built yet.
        """
        if not self.path.exists():
            raise WorkspaceError(f"no search index in {self.path.parent}: `scrutineer sync` (or a scan) builds it")
        return sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False)

    def search(self, search: Search, reasons: frozenset[str] | None = None) -> Results:
        """A page of ``search``'s matches.

        Args:
            reasons: the reasons ``search.reason`` may name (None: any). Another reason matches
                nothing, exactly as a reason no sample has (a contributor's view: restricted
                reasons are neither shown nor accepted).

        Raises:
            WorkspaceError: no index yet.
        """
        if search.reason and reasons is not None and search.reason not in reasons:
            return NOTHING
        page = min(max(search.page, 1), COUNT_CAP // PAGE)
        terms = [*words(search.q), *(filter_token(kind, value) for kind, value in search.filters().items())]
        con = self._connect()
        try:
            if not terms:
                total = con.execute("SELECT count(*) FROM samples").fetchone()[0]
                rows = con.execute("SELECT sample_id FROM samples WHERE pos > ? ORDER BY pos LIMIT ?", [(page - 1) * PAGE, PAGE]).fetchall()
                return Results([r for (r,) in rows], min(total, COUNT_CAP), total > COUNT_CAP, page)
            match = " ".join('"' + t.replace('"', '""') + '"' for t in terms)
            counted = con.execute("SELECT count(*) FROM (SELECT 1 FROM text WHERE text MATCH ? LIMIT ?)", [match, COUNT_CAP + 1]).fetchone()[0]
            rows = con.execute(
                "SELECT sample_id FROM samples WHERE pos IN (SELECT rowid FROM text WHERE text MATCH ? ORDER BY rowid LIMIT ? OFFSET ?) ORDER BY pos",
                [match, PAGE, (page - 1) * PAGE],
            ).fetchall()
        finally:
            con.close()
        return Results([r for (r,) in rows], min(counted, COUNT_CAP), counted > COUNT_CAP, page)

    def facets(self, kind: Kind, limit: int, public: bool) -> list[tuple[str, int]]:
        """The ``limit`` values of a filter with the most samples in the run (then by value):
        ``[(value, samples)]``; ``public``: restricted reasons left out.

        Raises:
            WorkspaceError: no index yet.
        """
        con = self._connect()
        try:
            return con.execute(
                "SELECT value, samples FROM facets WHERE kind = ? AND NOT (? AND restricted) ORDER BY samples DESC, value LIMIT ?",
                [kind, public, limit],
            ).fetchall()
        finally:
            con.close()

    def public_reasons(self) -> frozenset[str]:
        """The reasons no restricted finding has: those a contributor may see and filter by.

        Raises:
            WorkspaceError: no index yet.
        """
        con = self._connect()
        try:
            return frozenset(r for (r,) in con.execute("SELECT value FROM facets WHERE kind = 'reason' AND NOT restricted"))
        finally:
            con.close()
