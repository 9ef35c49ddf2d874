"""Benchmark: the review app's sample search at 10M captions, three engines (issue 25, acceptance 2).

The corpus: the real captions and URLs of the LAION-400M (5,000 rows) and CC3M (7,917 rows)
samples in ``$SCRUTINEER_SHARED_DATA/metadata`` (PROVENANCE.md), repeated to ``--rows`` samples
with distinct sample ids, in 10 shards; licences cycled over the eight Flickr licence URLs of the
COCO sample and null; findings as a scan gives them (``license.missing`` on the null licences,
``license.nc`` on the NC ones, a restricted ``hash_match.url`` on one sample in 10,000). It is
written as a review snapshot (:mod:`scrutineer.crowd.snapshot`'s tables) in a scratch workspace.

Engines, one after another in this process:

1. **fts5**: :func:`scrutineer.crowd.search.build` on that snapshot (SQLite FTS5, what the app
   uses), and :meth:`scrutineer.crowd.search.SearchIndex.search` (a page of 50 and the total,
   counted up to 10,000) then the page's samples from the snapshot by id, as ``GET /samples`` reads them;
2. **tantivy** (if installed: ``pip install tantivy``): an index of the same rows, caption and the
   same filter tokens as text, writer ``--tantivy-heap`` MB and ``--tantivy-threads``; a query is
   the top 50 by ``pos`` (a fast field) and the count;
3. **duckdb**: ``INSTALL fts`` is tried and its failure printed (no network); the candidate is a
   scan of the snapshot's ``samples``: ``lower(caption) LIKE '%word%'`` for each word, top 50 in
   shard and row order, and the count (``--duckdb-queries`` of them: each reads every caption).

Queries: ``--queries`` (default 500) of 1-3 words, each taken from a random caption of the corpus
(consecutive words of 3 or more letters, as someone who saw the image would type them), and the
same queries again each with one filter (a registrable domain, a licence, a reason or a shard, in
turn). Printed per engine: build seconds (wall, and CPU: on a shared machine the CPU seconds are
what the build costs), index bytes, query p50/p99 (ms) without and with filters.

The build is compared with the metadata scan's time on as many rows (``bench/scan_metadata.py``;
its figure is passed as ``--scan-seconds``; at 10M rows the default is 70.2, its pipeline wall
measured on 2026-12-06 on this machine while other work ran; at other sizes no share is printed
without it). Target: p99 < 300 ms, build < 20 % of the scan.

Usage::

    .venv/bin/python bench/search.py                      # 10M rows, ~10 minutes on 2 cores
    .venv/bin/python bench/search.py --rows 1000000 --engines fts5,duckdb
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from scrutineer.core.layout import Layout
from scrutineer.crowd import search
from scrutineer.crowd.search import COUNT_CAP, PAGE, Search, SearchIndex
from scrutineer.crowd.snapshot import Snapshot

SHARDS = 10
RESTRICTED_EVERY = 10_000


def shared_data() -> Path:
    return Path(os.environ.get("SCRUTINEER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def real_rows(data: Path) -> tuple[list[str], list[str], list[str]]:
    """(captions, urls) of the LAION and CC3M samples, and the COCO sample's licence URLs."""
    meta = data / "metadata"
    captions, urls = [], []
    for name in ("laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet"):
        table = pq.read_table(meta / name)
        captions += [c or "" for c in table.column("TEXT").to_pylist()]
        urls += table.column("URL").to_pylist()
    with open(meta / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv", encoding="utf-8") as f:
        for line in f:
            caption, _, url = line.rstrip("\n").partition("\t")
            captions.append(caption)
            urls.append(url)
    coco = json.loads((meta / "coco_captions_val2017_images0-2499.json").read_text(encoding="utf-8"))
    return captions, urls, [lic["url"] for lic in coco["licenses"]]


def write_snapshot(workspace: Path, rows: int, captions: list[str], urls: list[str], licences: list[str]) -> float:
    """The corpus as a review snapshot at ``workspace``; returns the seconds it took."""
    started = time.perf_counter()
    workspace.mkdir(parents=True, exist_ok=True)
    path = Layout(workspace).snapshot
    path.unlink(missing_ok=True)
    cycle = [*licences, None]
    with duckdb.connect(str(path)) as con:
        con.register("base", pa.table({"i": range(len(captions)), "caption": captions, "url": urls}))
        con.register("lic", pa.table({"j": range(len(cycle)), "license": cycle}))
        con.execute(f"""
            CREATE TABLE samples AS
            SELECT 's' || r.range AS sample_id, 'shard-' || lpad((r.range % {SHARDS})::VARCHAR, 2, '0') || '.parquet' AS shard_id,
                   r.range // {SHARDS} AS row_index, b.url, b.caption, l.license
            FROM range({rows}) r JOIN base b ON b.i = r.range % {len(captions)} JOIN lic l ON l.j = r.range % {len(cycle)}
        """)
        con.execute("""
            CREATE TABLE findings AS
            SELECT sample_id, shard_id, row_index, url, 'license_gaps' AS detector, 'license.missing' AS reason, false AS restricted, NULL::JSON AS evidence
            FROM samples WHERE license IS NULL
            UNION ALL
            SELECT sample_id, shard_id, row_index, url, 'license_gaps', 'license.nc', false, NULL FROM samples WHERE license LIKE '%-nc%'
            UNION ALL
            SELECT sample_id, shard_id, row_index, url, 'url_hashlist', 'hash_match.url', true, NULL
            FROM samples WHERE hash(sample_id) % $every = 0
        """, {"every": RESTRICTED_EVERY})
        con.execute(INDEX)
    return time.perf_counter() - started


#: The snapshot's index on ``sample_id``, as :func:`scrutineer.crowd.snapshot.publish` makes it (a page reads its samples by it).
INDEX = "CREATE INDEX IF NOT EXISTS samples_by_id ON samples (sample_id)"


def make_queries(captions: list[str], n: int, seed: int) -> list[str]:
    """``n`` queries of 1-3 consecutive words of 3+ letters from random captions."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        found = [w for w in re.findall(r"[^\W\d_]{3,}", rng.choice(captions))]
        if not found:
            continue
        k = rng.randint(1, min(3, len(found)))
        start = rng.randrange(len(found) - k + 1)
        out.append(" ".join(found[start:start + k]).lower())
    return out


def filtered(queries: list[str], index: SearchIndex, seed: int) -> list[Search]:
    """Each query with one filter, the kinds in turn, each value drawn from the index's facets."""
    rng = random.Random(seed)
    values = {kind: [v for v, _ in index.facets(kind, 50, public=False)] for kind in search.KINDS}
    kinds = [k for k in search.KINDS if values[k]]
    return [Search(q=q, **{kinds[i % len(kinds)]: rng.choice(values[kinds[i % len(kinds)]])}) for i, q in enumerate(queries)]


def percentiles(ms: list[float]) -> str:
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {cuts[49]:7.1f} ms  p99 {cuts[98]:7.1f} ms  max {max(ms):7.1f} ms  (n={len(ms)})"


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return out


def bench_fts5(workspace: Path, queries: list[str], seed: int) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    path = search.build(workspace)
    built, cpu = time.perf_counter() - started, time.process_time() - cpu
    index, snapshot = SearchIndex(workspace), Snapshot(workspace)

    def page(query: Search) -> None:  # what GET /samples reads: the index, then the page's samples from the snapshot
        snapshot.samples([("sample_id", i) for i in index.search(query).hits])

    plain = timed(lambda q: page(Search(q=q)), queries)
    with_filter = timed(page, filtered(queries, index, seed))
    snapshot.close()
    hits = sum(1 for q in queries[:100] if index.search(Search(q=q)).total)
    return {"build": built, "cpu": cpu, "bytes": path.stat().st_size, "plain": plain, "filtered": with_filter, "found": hits}


def bench_tantivy(workspace: Path, queries: list[str], seed: int, heap_mb: int, threads: int) -> dict | None:
    try:
        import tantivy  # optional: not a dependency of Scrutineer, measured as a candidate
    except ImportError:
        print("tantivy: not installed (pip install tantivy), skipped")
        return None
    directory = workspace / "tantivy"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    started, cpu = time.perf_counter(), time.process_time()
    schema = tantivy.SchemaBuilder()
    schema.add_text_field("caption", stored=False, index_option="basic")
    schema.add_text_field("filters", stored=False, index_option="basic", tokenizer_name="raw")
    schema.add_integer_field("pos", stored=True, fast=True, indexed=False)
    index = tantivy.Index(schema.build(), path=str(directory))
    writer = index.writer(heap_size=heap_mb * 1_000_000, num_threads=threads)
    # the same rows and filter tokens the fts5 index holds, from the snapshot
    with duckdb.connect(str(Layout(workspace).snapshot), read_only=True) as con:
        reader = con.sql("SELECT row_number() OVER (ORDER BY shard_id, row_index) AS pos, caption, shard_id, license FROM samples ORDER BY pos").to_arrow_reader(100_000)
        for batch in reader:
            for pos, caption, shard, licence in zip(*(c.to_pylist() for c in batch.columns)):
                doc = tantivy.Document(pos=pos, caption=caption or "")
                doc.add_text("filters", search.filter_token("shard", shard))
                if licence is not None:
                    doc.add_text("filters", search.filter_token("license", licence))
                writer.add_document(doc)
    writer.commit()
    writer.wait_merging_threads()
    built, cpu = time.perf_counter() - started, time.process_time() - cpu
    size = sum(p.stat().st_size for p in directory.iterdir())
    index.reload()
    searcher = index.searcher()
    rng = random.Random(seed)
    shards = [f"shard-{i:02d}.parquet" for i in range(SHARDS)]

    def run(q: str, flt: str | None = None) -> None:
        terms = [(tantivy.Occur.Must, tantivy.Query.term_query(index.schema, "caption", w.lower())) for w in search.words(q)]
        if flt:
            terms.append((tantivy.Occur.Must, tantivy.Query.term_query(index.schema, "filters", flt)))
        query = tantivy.Query.boolean_query(terms)
        result = searcher.search(query, PAGE, count=True, order_by_field="pos", order=tantivy.Order.Asc)
        _ = result.count, [searcher.doc(address)["pos"] for _, address in result.hits]

    plain = timed(run, queries)
    with_filter = timed(lambda q: run(q, search.filter_token("shard", rng.choice(shards))), queries)
    return {"build": built, "cpu": cpu, "bytes": size, "plain": plain, "filtered": with_filter}


def bench_duckdb(workspace: Path, queries: list[str]) -> dict:
    with duckdb.connect() as probe:
        try:
            probe.execute("INSTALL fts")
            print("duckdb: INSTALL fts succeeded (this machine reaches the extension repository)")
        except duckdb.Error as e:
            print(f"duckdb: INSTALL fts failed: {str(e).splitlines()[0][:200]}")
    con = duckdb.connect(str(Layout(workspace).snapshot), read_only=True)

    def run(q: str) -> None:
        where = " AND ".join(["lower(caption) LIKE ?"] * len(search.words(q))) or "true"
        params = [f"%{w.lower()}%" for w in search.words(q)]
        con.execute(f"SELECT sample_id, caption FROM samples WHERE {where} ORDER BY shard_id, row_index LIMIT {PAGE}", params).fetchall()
        con.execute(f"SELECT count(*) FROM (SELECT 1 FROM samples WHERE {where} LIMIT {COUNT_CAP + 1})", params).fetchall()

    plain = timed(run, queries)
    con.close()
    return {"build": 0.0, "cpu": 0.0, "bytes": 0, "plain": plain, "filtered": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--duckdb-queries", type=int, default=50, help="queries for the DuckDB scan (each reads every caption)")
    ap.add_argument("--engines", default="fts5,tantivy,duckdb")
    ap.add_argument("--tantivy-heap", type=int, default=500, help="tantivy writer heap, MB")
    ap.add_argument("--tantivy-threads", type=int, default=2)
    ap.add_argument("--scan-seconds", type=float, help="bench/scan_metadata.py's pipeline wall at as many rows (default: 70.2 at 10M rows)")
    ap.add_argument("--reuse", action="store_true", help="reuse the snapshot a kept --workdir holds (same --rows)")
    ap.add_argument("--workdir", type=Path, help="default: a temporary directory, deleted after")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.scan_seconds is None and args.rows == 10_000_000:
        args.scan_seconds = 70.2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="search-bench-"))
    workspace = workdir / "workspace"
    engines = args.engines.split(",")
    try:
        captions, urls, licences = real_rows(shared_data())
        print(f"corpus: {len(captions):,} real captions repeated to {args.rows:,} samples; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        if args.reuse and Layout(workspace).snapshot.exists():
            print(f"snapshot of an earlier run reused: {Layout(workspace).snapshot}")
            with duckdb.connect(str(Layout(workspace).snapshot)) as con:
                con.execute(INDEX)
        else:
            print(f"snapshot written in {write_snapshot(workspace, args.rows, captions, urls, licences):.1f} s")
        queries = make_queries(captions, args.queries, args.seed)
        print(f"queries, e.g.: {queries[:6]}")
        runs = {
            "fts5": lambda: bench_fts5(workspace, queries, args.seed),
            "tantivy": lambda: bench_tantivy(workspace, queries, args.seed, args.tantivy_heap, args.tantivy_threads),
            "duckdb": lambda: bench_duckdb(workspace, queries[:args.duckdb_queries]),
        }
        if args.scan_seconds:
            print(f"(scan: {args.scan_seconds:.1f} s, bench/scan_metadata.py at as many rows; targets: p99 < 300 ms, build < 20 % of the scan)")
        for name in engines:
            r = runs[name]()
            if not r:
                continue
            share = f" ({r['build'] / args.scan_seconds:.0%} of the scan)" if args.scan_seconds else ""
            print(f"\n{name}: build {r['build']:.1f} s wall{share}, {r['cpu']:.1f} s CPU, index {r['bytes'] / 1e6:,.0f} MB, "
                  f"load average {os.getloadavg()[0]:.2f}" + (f"; {r['found']} of the first 100 queries find something" if "found" in r else ""))
            print(f"{name:8} words only   {percentiles(r['plain'])}")
            if r["filtered"]:
                print(f"{name:8} with filter  {percentiles(r['filtered'])}", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
