"""Benchmark: the metadata scan (url_hashlist + license_gaps + dedup) against a hand-written DuckDB query.

What it measures, on one synthetic LAION-shaped parquet file of ``--rows`` rows (default 10M):

1. **Pipeline**: ``run_scan`` (Prefect flow, one shard task, findings loaded into the store), run in
   this process, wall seconds from ``load_config`` to the returned summary. Prefect's fixed start-up
   cost (import + temporary API server + one trivial flow, same ``PREFECT_HOME`` as the scan) is
   timed in a subprocess first and printed on its own line; the headline figures include it. With
   ``--prefect-server`` the flow runs against a ``prefect server start`` launched before timing
   (``PREFECT_API_URL`` set, as scheduled runs on a worker have), so no temporary server starts.
2. **Raw**: one DuckDB connection doing the same work on the same file: URL MD5 semi-joined with the
   bank, licence classification of the distinct values, exact URL and caption duplicates keeping the
   first row, materialised as a ``findings`` table (row_index, sample_id, url, reason, evidence),
   timed up to the connection's close (its checkpoint), as the pipeline's time includes its store's.
   It runs in a fresh subprocess: run in this process after the pipeline, it took 31.4 s where a
   fresh process took 25.0 s (2026-12-07; the pipeline's ~3.6 GB of working files were still being
   written back while raw's DuckDB took ~7.5 GB), which flattered the ratio. Before each timed
   leg, ``os.sync()`` writes back what the leg before left dirty, untimed.

3. **Design floor**: the least a pipeline that follows ``DESIGN.md`` must do, as cheaply as it can
   be done: the raw query as one task of one Prefect flow (Prefect imported inside the timed wall,
   DuckDB before it, as for raw), in a subprocess, and in that task what the design requires
   beyond the query's work: the shard's sha256 ("Read": a shard has a sha256 of its bytes,
   which keys its observations) and its rows observation ("Observe per shard": the rows read,
   cached so that a re-judgement does not reread the shard), written as an uncompressed parquet
   file. While DuckDB runs the query, a second thread hashes the file, then streams it through
   pyarrow into the observation. That reads the shard twice, and is still cheaper than reading it
   once into an Arrow table that both the query and the writer use: +2.1 s against +4.0 s over
   raw's 18.8-20.5 s (medians of three alternated runs without Prefect, 10M rows, 2026-12-07).
   Nothing else is counted: no findings or signatures files, no load, no canonical URL or Unicode
   caption key. Its ratio to raw is the ceiling of a pipeline that follows the design, as far as
   this bench knows how to build one.

4. **Unchanged rescan**: ``run_scan`` again, with nothing changed, after the first: its wall and
   its load's (``scrutineer.flows.load.load``, timed through the name ``scrutineer.flows.scan``
   calls it by) against the first scan's load, and whether it gives the same findings (every row
   but ``run_id``, compared as a multiset by count and the sum of each row's 64-bit hash) and the
   same report counts (:func:`scrutineer.reports.data.report_data` but its run and history).

It prints both wall times (and CPU seconds) and throughputs, the ratio pipeline/raw throughput,
finding counts per reason side by side, the rescan's figures, and the peak RSS of this process
right after the scan (the data is generated in a subprocess so it does not count). The raw query's
own wall moves by 10-30% from run to run, so ``--rounds N`` runs raw and the design floor N times,
alternated, and the ratios use their medians.

Target: pipeline throughput >= 0.5 x raw throughput (>= 0.9 with ``--prefect-server``), peak RSS
< 2 GB at 10M rows; the unchanged rescan's load < 10% of the first's, with identical results
(issue 26, acceptance 5).

The data is seeded and deterministic: about 5% of rows repeat an earlier row's URL exactly, 10% an
earlier row's caption; the ``url_md5`` bank holds the hashes of ~1,000 of the file's URLs plus
100,000 random digests. Each value is a pure function of a row or source id (splitmix64), so the
file is built one row group at a time with numpy and pyarrow compute, never row by row.

Usage::

    .venv/bin/python bench/scan_metadata.py                 # 10M rows, temporary workdir
    .venv/bin/python bench/scan_metadata.py --rows 200000 --workdir /tmp/bench --keep
    .venv/bin/python bench/scan_metadata.py --prefect-server  # against a running Prefect server
    .venv/bin/python bench/scan_metadata.py --prefect-server --rounds 5  # raw and the floor 5 times each
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

# Scrutineer, Prefect, DuckDB and httpx are imported in the functions that use them (start-up: the
# pipeline's timed wall includes importing them, as a command's does; imported up here, they would
# be loaded before its clock starts).

ROW_GROUP_ROWS = 1_000_000
URL_REPEAT_RATE = 0.05
CAPTION_REPEAT_RATE = 0.10
HTTP_RATE = 0.2  # share of URLs with http:// instead of https://
UPPER_HOST_RATE = 0.01  # share of URLs whose host is written in upper case
CAPTION_WORDS = (4, 16)  # words per caption, inclusive range
#: LICENSE values and their shares (LAION's column is mostly missing or "?").
LICENSES = [
    (None, 0.30),
    ("?", 0.30),
    ("https://creativecommons.org/licenses/by/4.0/", 0.15),
    ("CC0-1.0", 0.10),
    ("https://creativecommons.org/licenses/by-nc-sa/2.0/", 0.10),
    ("all rights reserved", 0.05),
]
BANK_URLS = 1_000
BANK_RANDOM = 100_000
BANK = {"name": "bench-watchlist", "source": "Scrutineer bench (synthetic)", "version": "bench-1"}
ALLOW = ["CC0-1.0", "CC-BY-4.0"]
SCHEMA = pa.schema(
    [
        ("SAMPLE_ID", pa.string()),
        ("URL", pa.string()),
        ("TEXT", pa.string()),
        ("LICENSE", pa.string()),
        ("WIDTH", pa.int32()),
        ("HEIGHT", pa.int32()),
        ("similarity", pa.float32()),
    ]
)

# --- data generation (runs in a subprocess: --generate-only) -------------------------------------

def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of ``x + salt`` (uint64 in, uint64 out, wrapping arithmetic)."""
    z = x.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (salt + 1)) & 0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(x: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniform floats in [0, 1), one per element of ``x``."""
    return (_mix(x, salt) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _source_rows(rows: np.ndarray, rate: float, salt: int) -> np.ndarray:
    """For each row, the row whose value it carries: itself, or (for a ``rate`` share of rows) an
    earlier row that is not itself a repeat, so every repeat copies a first occurrence."""

    def is_repeat(r: np.ndarray) -> np.ndarray:
        return (r > 0) & (_uniform(r, salt) < rate)

    src = rows.copy()
    rep = is_repeat(rows)
    src[rep] = (_uniform(rows[rep], salt + 1) * rows[rep]).astype(np.int64)
    while (walk := is_repeat(src)).any():  # land on a first occurrence (5-10% step back each round)
        src[walk] -= 1
    return src


def _fixed_width(chars: np.ndarray) -> pa.Array:
    """A string array from an ``(n, width)`` uint8 matrix of ASCII characters."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)


def _urls(ids: np.ndarray, salt: int) -> pa.Array:
    """``http[s]://cdn<k>.example<d>.com/images/<32 hex>/<n>.jpg`` (~80 bytes), a function of ``ids``."""
    words = np.stack([_mix(ids, salt + i) for i in range(2)], axis=1)  # (n, 2) uint64 = 16 bytes
    nibbles = words.view(np.uint8).reshape(-1, 16)
    hex32 = _fixed_width(_HEX_DIGITS[np.stack([nibbles >> 4, nibbles & 15], axis=2).reshape(-1, 32)])
    k, d, n = (_mix(ids, salt + 2 + i) for i in range(3))
    host = pc.binary_join_element_wise(
        "cdn", pc.cast(pa.array(k % np.uint64(16)), pa.string()),
        ".example", pc.cast(pa.array(d % np.uint64(1000)), pa.string()), ".com", "",
    )
    host = pc.if_else(pa.array(_uniform(ids, salt + 5) < UPPER_HOST_RATE), pc.utf8_upper(host), host)
    scheme = pc.if_else(pa.array(_uniform(ids, salt + 6) < HTTP_RATE), "http://", "https://")
    number = pc.cast(pa.array(n % np.uint64(10_000_000)), pa.string())
    return pc.binary_join_element_wise(scheme, host, "/images/", hex32, "/", number, ".jpg", "")


def _vocabulary() -> pa.Array:
    """About 1,600 made-up two-syllable words, sorted and distinct."""
    syllables = ("ka lo mi re su ta ne ri po va de lu sa mo bi te ga fu no ki "
                 "ra se to mu pa li ho ze ya wi ru da co ne be xo qui dra sti lan").split()
    return pa.array(sorted({a + b for a in syllables for b in syllables}))


def _captions(ids: np.ndarray, salt: int, vocab: pa.Array) -> pa.Array:
    """Captions of 4-16 vocabulary words, capitalised, a function of ``ids``."""
    lo, hi = CAPTION_WORDS
    counts = lo + (_mix(ids, salt) % np.uint64(hi - lo + 1)).astype(np.int32)
    positions = np.arange(hi, dtype=np.uint64)
    keys = ids.astype(np.uint64)[:, None] * np.uint64(hi) + positions[None, :]
    picks = (_mix(keys, salt + 1) % np.uint64(len(vocab)))[positions[None, :] < counts[:, None].astype(np.uint64)]
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int32)]).astype(np.int32)
    words = pa.ListArray.from_arrays(pa.array(offsets), vocab.take(pa.array(picks.astype(np.int64))))
    return pc.utf8_capitalize(pc.binary_join(words, " "))


def _row_group(start: int, stop: int, seed: int, vocab: pa.Array) -> pa.Table:
    rows = np.arange(start, stop, dtype=np.int64)
    salt = seed * 1_000
    values = pa.array([v for v, _ in LICENSES], pa.string())
    shares = np.cumsum([p for _, p in LICENSES])
    licence_idx = np.minimum(np.searchsorted(shares, _uniform(rows, salt + 400)), len(LICENSES) - 1)
    return pa.table(
        {
            "SAMPLE_ID": pc.cast(pa.array(rows + 1_000_000_000), pa.string()),
            "URL": _urls(_source_rows(rows, URL_REPEAT_RATE, salt + 100), salt + 110),
            "TEXT": _captions(_source_rows(rows, CAPTION_REPEAT_RATE, salt + 200), salt + 210, vocab),
            "LICENSE": values.take(pa.array(licence_idx)),
            "WIDTH": pa.array((64 + _mix(rows, salt + 500) % np.uint64(4033)).astype(np.int32)),
            "HEIGHT": pa.array((64 + _mix(rows, salt + 501) % np.uint64(4033)).astype(np.int32)),
            "similarity": pa.array((0.28 + 0.17 * _uniform(rows, salt + 502)).astype(np.float32)),
        },
        schema=SCHEMA,
    )


def generate(parquet_path: Path, bank_path: Path, rows: int, seed: int) -> None:
    """Write the dataset (row groups of :data:`ROW_GROUP_ROWS`) and its ``url_md5`` bank."""
    # start-up: only the generating subprocess imports Scrutineer here
    from scrutineer.core.banks import url_md5

    rng = np.random.default_rng(seed)
    banked_rows = np.sort(rng.choice(rows, size=min(BANK_URLS, rows), replace=False))
    banked_urls: list[str] = []
    vocab = _vocabulary()
    with pq.ParquetWriter(parquet_path, SCHEMA) as writer:
        for start in range(0, rows, ROW_GROUP_ROWS):
            stop = min(start + ROW_GROUP_ROWS, rows)
            table = _row_group(start, stop, seed, vocab)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            here = banked_rows[(banked_rows >= start) & (banked_rows < stop)] - start
            banked_urls += table.column("URL").take(pa.array(here)).to_pylist()
    hashes = [url_md5(u) for u in banked_urls]
    hashes += [bytes(b).hex() for b in rng.integers(0, 256, size=(BANK_RANDOM, 16), dtype=np.uint8)]
    rng.shuffle(hashes)
    bank_path.write_text("\n".join(hashes) + "\n")


# --- Prefect's fixed cost (runs in a subprocess: --prefect-probe) ---------------------------------


def prefect_probe() -> dict:
    """Seconds to import prefect and to run one trivial flow, with the ``PREFECT_HOME`` the scan
    uses (run first, it also creates that home's database if it is new, as a user's first scan would)."""
    # start-up: PREFECT_HOME is set before Prefect is imported
    from scrutineer.flows import configure_prefect

    configure_prefect()
    t0 = time.perf_counter()
    from prefect import flow  # start-up: what this probe times

    imported = time.perf_counter()

    @flow(name="bench-noop", persist_result=False)
    def noop() -> int:
        return 1

    noop()
    return {"import_s": imported - t0, "flow_s": time.perf_counter() - imported}


# --- the two contenders ---------------------------------------------------------------------------


def write_config(path: Path, shards: list[Path], bank_path: Path, workspace: Path, **settings) -> None:
    """The bench's scan of ``shards``; ``settings`` are more top-level keys (bench/scale.py: its
    runner and workers)."""
    config = {
        "dataset": {
            "name": "bench-laion",
            "shards": [str(s) for s in shards],
            "columns": {"sample_id": "SAMPLE_ID", "url": "URL", "caption": "TEXT", "license": "LICENSE"},
        },
        "workspace": str(workspace),
        "banks": [{**BANK, "path": str(bank_path), "signal_type": "url_md5"}],
        "detectors": {"url_hashlist": {}, "license_gaps": {"allow": ALLOW}, "dedup": {"on": ["url", "caption"]}},
        **settings,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Scanned:
    """One scan by the pipeline: seconds in all (start-up included), inside ``run_scan``, of its
    shard task (as the store records it) and of its load; CPU seconds of this process in all; its
    run id and findings per reason."""

    wall_s: float
    run_scan_s: float
    shard_s: float
    load_s: float
    cpu_s: float
    run_id: str
    findings: dict[str, int]


def run_pipeline(config_path: Path) -> Scanned:
    """A scan in this process, timed."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    # start-up: timed, as a command's start-up is
    from scrutineer.core.config import load_config
    from scrutineer.flows import configure_prefect

    cfg = load_config(config_path)
    configure_prefect()
    # start-up: timed, after PREFECT_HOME is set
    from scrutineer.flows import scan

    loads: list[float] = []
    load = scan.load

    def timed_load(*args, **kwargs) -> None:
        started = time.perf_counter()
        try:
            load(*args, **kwargs)
        finally:
            loads.append(time.perf_counter() - started)

    t1 = time.perf_counter()
    scan.load = timed_load
    try:
        summary = scan.run_scan(cfg)
    finally:
        scan.load = load
    done, cpu = time.perf_counter(), time.process_time() - cpu0
    if summary["status"] != "completed":
        raise SystemExit(f"scan ended {summary['status']}: {summary['shards']}")
    # start-up: up top it would load Scrutineer before the timed wall
    from scrutineer import Workspace

    with Workspace(cfg.workspace) as ws:
        shard_s = ws.sql("SELECT sum(seconds) FROM shards WHERE run_id = ?", params=[summary["run_id"]]).fetchall()[0][0]
    return Scanned(done - t0, done - t1, shard_s, sum(loads), cpu, summary["run_id"], summary["findings"])


#: What report_data gives that is not a count of the run's findings and rows (the run itself, the
#: dataset's runs over time, and the change since the run before).
NOT_COUNTS = ("run", "shards", "history", "changes")


def same_results(config_path: Path, first: str, again: str) -> tuple[int, bool, bool]:
    """(findings of run ``first``, whether run ``again`` has the same findings rows but run_id,
    whether its report counts are the same): the rows as a multiset, compared by count and the
    sum of their 64-bit hashes."""
    # start-up: up top it would load Scrutineer before the timed wall
    from scrutineer import Workspace
    from scrutineer.core.config import load_config
    from scrutineer.core.contract import JUDGEMENT
    from scrutineer.reports.data import report_data

    cfg = load_config(config_path)
    fingerprint = f"SELECT count(*), sum(hash({', '.join(JUDGEMENT.names)})::HUGEINT) FROM findings WHERE run_id = ?"
    with Workspace(cfg.workspace) as ws:
        a, b = (ws.sql(fingerprint, params=[r]).fetchall()[0] for r in (first, again))
        reports = [report_data(ws.con, cfg.workspace, cfg.dataset.name, r) for r in (first, again)]
    counts = [{k: v for k, v in r.items() if k not in NOT_COUNTS} for r in reports]
    return a[0], a == b, counts[0] == counts[1]


#: Every key is computed once, in one materialised pass over the file (faster than recomputing
#: keys on both sides of each join: 4.8-6.0 s against 8.9-10.6 s for 2M rows). ``rest`` is the URL
#: without its leading ``scheme://``: lower-cased it is HMA's url_md5 input (for this generator's
#: URLs), and with only its host lower-cased it is the duplicate key.
RAW_SQL = """
CREATE TABLE findings AS
WITH keyed AS MATERIALIZED (
    SELECT row_index, sample_id, url, license,
           md5(lower(rest)) AS url_md5,
           lower(split_part(rest, '/', 1)) || substr(rest, strpos(rest, '/')) AS url_key,
           nullif(lower(trim(caption)), '') AS caption_key
    FROM (
        SELECT file_row_number AS row_index, SAMPLE_ID AS sample_id, URL AS url, TEXT AS caption,
               LICENSE AS license, regexp_replace(URL, '^[A-Za-z][A-Za-z0-9+.-]*://', '') AS rest
        FROM read_parquet($parquet, file_row_number = true)
    )
),
first_url AS (
    SELECT url_key, min(row_index) AS kept, arg_min(sample_id, row_index) AS kept_id
    FROM keyed WHERE url_key IS NOT NULL GROUP BY url_key HAVING count(*) > 1
),
first_caption AS (
    SELECT caption_key, min(row_index) AS kept, arg_min(sample_id, row_index) AS kept_id
    FROM keyed WHERE caption_key IS NOT NULL GROUP BY caption_key HAVING count(*) > 1
)
SELECT row_index, sample_id, url, 'hash_match.url' AS reason,
       json_object('bank', $bank, 'bank_version', $version)::VARCHAR AS evidence
FROM keyed WHERE url_md5 IN (SELECT hash FROM bank)
UNION ALL
SELECT k.row_index, k.sample_id, k.url, m.reason, json_object('license', k.license, 'spdx', m.spdx)::VARCHAR
FROM keyed k JOIN licence_map m ON k.license IS NOT DISTINCT FROM m.license
UNION ALL
SELECT k.row_index, k.sample_id, k.url, 'duplicate.url',
       json_object('kept_row_index', f.kept, 'kept_sample_id', f.kept_id)::VARCHAR
FROM keyed k JOIN first_url f USING (url_key) WHERE k.row_index <> f.kept
UNION ALL
SELECT k.row_index, k.sample_id, k.url, 'duplicate.caption',
       json_object('kept_row_index', f.kept, 'kept_sample_id', f.kept_id)::VARCHAR
FROM keyed k JOIN first_caption f USING (caption_key) WHERE k.row_index <> f.kept
"""

#: Licence classification of each distinct value (the four values this generator writes, by hand).
LICENCE_MAP_SQL = """
CREATE TABLE licence_map AS
SELECT license, reason, spdx FROM (
    SELECT license,
        CASE WHEN license IS NULL OR trim(license) = '' THEN 'license.missing'
             WHEN license IN ('CC0-1.0', 'https://creativecommons.org/licenses/by/4.0/') THEN NULL
             WHEN license = 'https://creativecommons.org/licenses/by-nc-sa/2.0/' THEN 'license.disallowed'
             ELSE 'license.unknown' END AS reason,
        CASE WHEN license = 'CC0-1.0' THEN 'CC0-1.0'
             WHEN license = 'https://creativecommons.org/licenses/by/4.0/' THEN 'CC-BY-4.0'
             WHEN license = 'https://creativecommons.org/licenses/by-nc-sa/2.0/' THEN 'CC-BY-NC-SA-2.0' END AS spdx
    FROM (SELECT DISTINCT LICENSE AS license FROM read_parquet($parquet))
) WHERE reason IS NOT NULL
"""


def raw_query(parquet_path: Path, bank_path: Path, db_path: Path) -> None:
    """The hand-written DuckDB query, into a ``findings`` table of the database file ``db_path``."""
    import duckdb  # start-up: up top it would load DuckDB before the pipeline's timed wall

    con = duckdb.connect(str(db_path))
    try:
        con.execute(
            "CREATE TABLE bank AS SELECT hash FROM read_csv($path, header = false, columns = {'hash': 'VARCHAR'})",
            {"path": str(bank_path)},
        )
        con.execute(LICENCE_MAP_SQL, {"parquet": str(parquet_path)})
        con.execute(RAW_SQL, {"parquet": str(parquet_path), "bank": BANK["name"], "version": BANK["version"]})
    finally:
        con.close()  # the checkpoint that makes the findings durable, as the pipeline's store close does


def design_floor(parquet_path: Path, bank_path: Path, db_path: Path, observation_path: Path) -> dict:
    """Seconds (wall and CPU) of the least work a pipeline that follows ``DESIGN.md`` does, done as
    cheaply as this bench knows how (the module docstring's item 3): one task of one Prefect flow,
    submitted to the thread pool task runner, Prefect imported inside the timed wall and DuckDB
    before it (as :func:`run_raw` has it). In the task, :func:`raw_query` runs while another thread
    takes the file's sha256 and then streams its rows to ``observation_path`` (uncompressed
    parquet, in the pipeline's batches, as its working files are written). Its ratio to
    :func:`run_raw` is the ceiling of such a pipeline here."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    import duckdb  # noqa: F401  start-up: loaded before the clock, as run_raw's is

    from scrutineer.core.config import DatasetConfig
    from scrutineer.flows import configure_prefect  # start-up: PREFECT_HOME is set before Prefect is imported

    configure_prefect()
    batch_rows = DatasetConfig.model_fields["batch_rows"].default  # the pipeline's batches
    observed_columns = SCHEMA.names[:4]  # what the scan maps: sample_id, url, caption, license
    for path in (db_path, observation_path):
        Path(path).unlink(missing_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    from prefect import flow, task  # start-up: timed, as the pipeline's import of Prefect is
    from prefect.cache_policies import NO_CACHE

    def observe() -> None:
        with open(parquet_path, "rb") as f:
            hashlib.file_digest(f, "sha256")
        with pq.ParquetFile(parquet_path, pre_buffer=False) as source:
            batches = source.iter_batches(batch_size=batch_rows, columns=observed_columns)
            schema = pa.schema([SCHEMA.field(c) for c in observed_columns])
            with pq.ParquetWriter(observation_path, schema, compression="none", write_statistics=False) as writer:
                for batch in batches:
                    writer.write_batch(batch)

    @task(name="bench-design-floor", persist_result=False, cache_policy=NO_CACHE)
    def observe_and_query() -> None:
        with ThreadPoolExecutor(1) as pool:
            observed = pool.submit(observe)
            raw_query(parquet_path, bank_path, db_path)
            observed.result()

    @flow(name="bench-design-floor", persist_result=False)
    def floor() -> None:
        observe_and_query.submit().result()

    floor()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}


def run_raw(parquet_path: Path, bank_path: Path, db_path: Path) -> dict:
    """Seconds (wall and CPU) of the hand-written DuckDB query on a fresh database file."""
    import duckdb  # noqa: F401  start-up: loaded before the clock, as the floor's is

    db_path.unlink(missing_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    raw_query(parquet_path, bank_path, db_path)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}


def finding_counts(db_path: Path) -> dict[str, int]:
    """Findings per reason in the raw query's database file."""
    import duckdb  # start-up: up top it would load DuckDB before the pipeline's timed wall

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return dict(con.sql("SELECT reason, count(*) FROM findings GROUP BY reason").fetchall())
    finally:
        con.close()


# --- driver -------------------------------------------------------------------------------------


#: What a run writes in the workdir (removed afterwards unless --keep).
ARTEFACTS = ("laion-bench.parquet", "bank-url-md5.txt", "bench.yaml", "workspace", "raw.duckdb", "raw.duckdb.wal", "rows.parquet",
             "prefect-server-home")


def _median(legs: list[dict]) -> dict:
    """The median of each of ``legs``' ``wall_s`` and ``cpu_s`` (each taken on its own)."""
    return {k: float(np.median([leg[k] for leg in legs])) for k in ("wall_s", "cpu_s")}


def _run_self(*args: str) -> str:
    return subprocess.run([sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows in the generated parquet file (default 10M)")
    ap.add_argument("--workdir", type=Path, help="where data, config and databases go (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files (deleted otherwise)")
    ap.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    ap.add_argument("--generate-only", action="store_true", help="only write the parquet file and the bank, then exit")
    ap.add_argument(
        "--prefect-server", action="store_true",
        help="run the flow against a running `prefect server start` (started here, before timing) instead of Prefect's temporary server",
    )
    ap.add_argument(
        "--rounds", type=int, default=1,
        help="times raw and the design floor run, alternated, after the pipeline; the ratios use their medians (default 1)",
    )
    ap.add_argument("--prefect-probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--raw", nargs=3, type=Path, metavar=("PARQUET", "BANK", "DB"), help=argparse.SUPPRESS)
    ap.add_argument("--design-floor", nargs=4, type=Path, metavar=("PARQUET", "BANK", "DB", "OBSERVATION"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.prefect_probe:
        print(json.dumps(prefect_probe()))
        return
    if args.raw:
        print(json.dumps(run_raw(*args.raw) | {"counts": finding_counts(args.raw[2])}))
        return
    if args.design_floor:
        print(json.dumps(design_floor(*args.design_floor) | {"counts": finding_counts(args.design_floor[2])}))
        return

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="scrutineer-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    parquet_path, bank_path = workdir / "laion-bench.parquet", workdir / "bank-url-md5.txt"
    if args.generate_only:
        generate(parquet_path, bank_path, args.rows, args.seed)
        return
    try:
        _bench(args, workdir, parquet_path, bank_path)
    finally:
        if not args.keep:
            for name in ARTEFACTS:
                path = workdir / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            if args.workdir is None:
                workdir.rmdir()


@contextlib.contextmanager
def _prefect_server(home: Path):
    """A ``prefect server start`` on a free loopback port with its own ``PREFECT_HOME``, running
    until the block exits, as scheduled runs have one. Yields its API URL.

    Raises:
        SystemExit: the server did not answer ``/api/health`` within 120 s.
    """
    import httpx  # start-up: up top it would load httpx before the pipeline's timed wall

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"prefect server did not start: {' '.join(cmd)}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def _bench(args: argparse.Namespace, workdir: Path, parquet_path: Path, bank_path: Path) -> None:
    t0 = time.perf_counter()
    _run_self("--generate-only", "--rows", str(args.rows), "--seed", str(args.seed), "--workdir", str(workdir))
    print(f"generated {args.rows:,} rows ({parquet_path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f} s: {workdir}")
    if not args.prefect_server:
        print("prefect: a temporary API server per run (the default: PREFECT_API_URL unset)")
        _timed(args, workdir, parquet_path, bank_path)
        return
    with _prefect_server(workdir / "prefect-server-home") as url:
        os.environ["PREFECT_API_URL"] = url  # before this process or the probe imports prefect
        print(f"prefect: a running `prefect server start` at {url} (PREFECT_API_URL set, as for scheduled runs)")
        _timed(args, workdir, parquet_path, bank_path)


def _timed(args: argparse.Namespace, workdir: Path, parquet_path: Path, bank_path: Path) -> None:
    t0 = time.perf_counter()
    probe = json.loads(_run_self("--prefect-probe"))
    probe_wall = time.perf_counter() - t0

    workspace, config_path = workdir / "workspace", workdir / "bench.yaml"
    shutil.rmtree(workspace, ignore_errors=True)  # a finished shard would otherwise be skipped
    write_config(config_path, [parquet_path], bank_path, workspace)
    load = os.getloadavg()[0]
    os.sync()
    first = run_pipeline(config_path)
    peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    os.sync()
    again = run_pipeline(config_path)  # nothing changed: every judgement is reused
    findings, same_findings, same_report = same_results(config_path, first.run_id, again.run_id)

    files = (str(parquet_path), str(bank_path), str(workdir / "raw.duckdb"))
    raws, floors = [], []
    for _ in range(args.rounds):  # alternated: the machine's speed drifts
        os.sync()
        raws.append(json.loads(_run_self("--raw", *files).splitlines()[-1]))
        os.sync()
        floors.append(json.loads(_run_self("--design-floor", *files, str(workdir / "rows.parquet")).splitlines()[-1]))
    raw, floor = _median(raws), _median(floors)
    raw_s, raw_cpu_s, raw_counts = raw["wall_s"], raw["cpu_s"], raws[0]["counts"]
    floor_found = "the same findings as raw" if all(leg["counts"] == raw_counts for leg in raws + floors) else "findings DIFFERENT from raw's"

    rows = args.rows
    pipe_tp, raw_tp = rows / first.wall_s, rows / raw_s
    print(f"rows                      {rows:>14,}     (1-min load average before the scan: {load:.2f} on {os.cpu_count()} CPUs)")
    print(f"pipeline wall             {first.wall_s:>14.2f} s   {pipe_tp:>12,.0f} rows/s   (run_scan alone {first.run_scan_s:.2f} s; "
          f"CPU {first.cpu_s:.2f} s)")
    print(f"  shard task              {first.shard_s:>14.2f} s   (read + detect + write shard outputs; the rest is start-up, store load, dedup)")
    print(f"  load                    {first.load_s:>14.2f} s   (shards, observations, {findings:,} findings, dedup's finalize, flood guard)")
    print(
        f"  prefect fixed cost      {probe['import_s'] + probe['flow_s']:>14.2f} s   "
        f"(import {probe['import_s']:.2f} s + trivial flow {probe['flow_s']:.2f} s; "
        f"subprocess wall {probe_wall:.2f} s)"
    )
    of_rounds = f"; median of {args.rounds}" if args.rounds > 1 else ""
    print(f"raw duckdb wall           {raw_s:>14.2f} s   {raw_tp:>12,.0f} rows/s   (CPU {raw_cpu_s:.2f} s{of_rounds})")
    target = "0.9 with a running server" if args.prefect_server else "0.5"
    print(f"throughput ratio          {pipe_tp / raw_tp:>14.3f}     (pipeline / raw; target >= {target})")
    print(f"design floor              {floor['wall_s']:>14.2f} s   ratio {raw_s / floor['wall_s']:.3f} to raw   "
          f"(CPU {floor['cpu_s']:.2f} s{of_rounds}; {floor_found}; raw as a flow + sha256 + rows observation: the ceiling of a pipeline that follows DESIGN.md)")
    if args.rounds > 1:
        for n, (r, f) in enumerate(zip(raws, floors, strict=True), 1):
            print(f"  round {n}: raw {r['wall_s']:.2f} s, floor {f['wall_s']:.2f} s, ratio {r['wall_s'] / f['wall_s']:.3f}")
    print(f"peak RSS after scan       {peak_rss_kb / 1024:>14,.0f} MB  (target < 2048 MB)")
    print(f"unchanged rescan wall     {again.wall_s:>14.2f} s   (run_scan alone {again.run_scan_s:.2f} s)")
    print(f"  load                    {again.load_s:>14.2f} s   {again.load_s / first.load_s:>12.1%} of the first scan's (target < 10%)")
    print(f"  findings                {'identical' if same_findings else 'DIFFERENT':>14}     (every row but run_id, {findings:,} rows)")
    print(f"  report counts           {'identical' if same_report else 'DIFFERENT':>14}")
    print(f"{'reason':<24}{'pipeline':>16}{'raw':>12}{'diff':>10}")
    for reason in sorted(set(first.findings) | set(raw_counts)):
        a, b = first.findings.get(reason, 0), raw_counts.get(reason, 0)
        print(f"{reason:<24}{a:>16,}{b:>12,}{a - b:>+10,}")


if __name__ == "__main__":
    main()
