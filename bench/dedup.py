"""Near-duplicate captions at scale: Scrutineer's MinHash LSH against datasketch's MinHashLSH.

Generates ``--rows`` captions (default 1M) of 8-16 made-up words, ~5% of them planted near
duplicates of an earlier caption (one word replaced, inserted or deleted, or the punctuation and
case changed), and keeps as ground truth the planted pairs whose true Jaccard similarity of
character 5-gram sets is 0.8-0.95. Then, each in a child process of its own (so each peak RSS is
its own):

1. **scrutineer**: the ``dedup`` detector with ``on: [near_caption]`` (char 5-grams, threshold
   0.8, 128 permutations) as a shard task runs it: ``signatures`` over batches of 65,536 rows, 2
   batches at a time (``threads_per_shard``), written to a parquet file; then ``finalize`` in
   DuckDB over that file (band buckets, verification, connected components);
2. **datasketch**: ``MinHash`` (same shingles, 128 permutations) inserted into ``MinHashLSH`` at
   threshold 0.8 with the same weights (so the same bands and rows), then every caption queried,
   and a candidate kept when datasketch's estimated Jaccard reaches 0.8 (one process; datasketch
   keeps its index in memory).

Prints, for each: rows/s (wall), peak RSS, and recall of the planted pairs (a planted copy
flagged). Targets (issue 14): >= 40,000 rows/s on 2 cores and >= 10 x datasketch, recall >= 0.9,
peak RSS < 2 GB, and a 10M-row run's peak RSS within 1.2 x a 1M-row run's. ``--datasketch-rows``
caps datasketch's share (it runs at ~4,000 rows/s; 0 skips it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SYLLABLES = ("ka lo mi re su ta ne ri po va de lu sa mo bi te", "ga fu no ki ra se to mu pa li ho ze")
WORDS = [a + b for a in SYLLABLES[0].split() for b in SYLLABLES[1].split()]  # 192 made-up words


def generate(rows: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """``rows`` captions and the planted (original, copy) row pairs (copy after original)."""
    rng = np.random.default_rng(seed)
    captions: list[str] = []
    planted: list[tuple[int, int]] = []
    for i in range(rows):
        if i > 100 and rng.random() < 0.05:
            j = int(rng.integers(0, i))
            words = captions[j].split(" ")
            edit = rng.integers(0, 4)
            k = int(rng.integers(0, len(words)))
            if edit == 0:
                words[k] = WORDS[int(rng.integers(0, len(WORDS)))]
            elif edit == 1:
                words.insert(k, WORDS[int(rng.integers(0, len(WORDS)))])
            elif edit == 2 and len(words) > 8:
                del words[k]
            caption = " ".join(words)
            captions.append(caption.capitalize() + "." if edit == 3 else caption)
            planted.append((j, i))
        else:
            captions.append(" ".join(WORDS[int(w)] for w in rng.integers(0, len(WORDS), int(rng.integers(8, 17)))))
    return captions, planted


def true_jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(s: str) -> set[str]:
        s = " ".join(s.lower().split())
        return {s[i : i + n] for i in range(max(1, len(s) - n + 1))}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def run_scrutineer(captions: list[str], work: Path) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from detectors.base import DetectContext
    from detectors.dedup import Dedup
    from scrutineer.contract import DETECT

    detector = Dedup(Dedup.Params(on=["near_caption"]), DetectContext("bench"))
    n, size = len(captions), 65_536
    path = work / "signatures.parquet"
    t0 = time.perf_counter()

    def signed(start: int):
        chunk = captions[start : start + size]
        m = len(chunk)
        batch = pa.RecordBatch.from_pydict(
            {"row_index": pa.array(range(start, start + m), pa.int64()), "sample_id": pa.array([str(i) for i in range(start, start + m)]),
             "url": pa.nulls(m, pa.string()), "caption": pa.array(chunk), "license": pa.nulls(m, pa.string())}, schema=DETECT)
        sigs = detector.signatures(batch)
        return sigs.append_column("shard_id", pa.repeat(pa.scalar("bench"), m)).append_column("observation_id", pa.repeat(pa.scalar("o"), m))

    with ThreadPoolExecutor(2) as pool:
        writer = None
        for table in pool.map(signed, range(0, n, size)):
            writer = writer or pq.ParquetWriter(path, table.schema, compression="none")
            writer.write_table(table)
        writer.close()
    signed_at = time.perf_counter()
    con = duckdb.connect(str(work / "bench.duckdb"), config={"memory_limit": "1GB", "threads": 2})
    con.read_parquet(str(path)).create_view("sigs")
    flagged = [row for (row,) in con.sql(f"SELECT row_index FROM ({detector.finalize('sigs')})").fetchall()]
    done = time.perf_counter()
    return {"flagged": flagged, "seconds": done - t0, "signatures_s": signed_at - t0, "finalize_s": done - signed_at}


def run_datasketch(captions: list[str]) -> dict:
    import datasketch

    from scrutineer.minhash import Shingling

    shingle = Shingling("char", 5)
    t0 = time.perf_counter()
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128, weights=(0.1, 0.9))
    hashes = []
    for i, caption in enumerate(captions):
        m = datasketch.MinHash(num_perm=128, seed=42)
        m.update_batch([s.encode() for s in shingle(" ".join(caption.lower().split()))])
        hashes.append(m)
        lsh.insert(i, m)
    flagged = [i for i, m in enumerate(hashes) if any(j < i and m.jaccard(hashes[j]) >= 0.8 for j in lsh.query(m))]
    return {"flagged": flagged, "seconds": time.perf_counter() - t0}


def child(kind: str, rows: int, work: Path) -> None:
    captions, _ = generate(rows)
    result = run_scrutineer(captions, work) if kind == "scrutineer" else run_datasketch(captions)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (work / f"{kind}.json").write_text(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--datasketch-rows", type=int, default=None, help="rows for datasketch (default: --rows; 0: skip it)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.rows, Path(args.child[1]))
        return
    work = Path(tempfile.mkdtemp(prefix="scrutineer-bench-dedup-"))
    datasketch_rows = args.rows if args.datasketch_rows is None else args.datasketch_rows
    for kind, rows in (("scrutineer", args.rows), ("datasketch", datasketch_rows)):
        if rows == 0:
            continue
        subprocess.run([sys.executable, __file__, "--rows", str(rows), "--child", kind, str(work)], check=True)
        result = json.loads((work / f"{kind}.json").read_text())
        captions, planted = generate(rows)
        truth = [(a, b) for a, b in planted if 0.8 <= true_jaccard(captions[a], captions[b]) <= 0.95]
        flagged = set(result["flagged"])
        recall = sum(b in flagged for _, b in truth) / len(truth)
        extra = f" (signatures {result['signatures_s']:.1f} s, finalize {result['finalize_s']:.1f} s)" if kind == "scrutineer" else ""
        print(f"{kind:11s} {rows:>9,} rows in {result['seconds']:7.1f} s = {rows / result['seconds']:9,.0f} rows/s{extra}; "
              f"peak RSS {result['rss_mb']:,.0f} MB; recall {recall:.3f} of {len(truth):,} planted pairs at Jaccard 0.8-0.95; "
              f"{len(flagged):,} rows flagged", flush=True)


if __name__ == "__main__":
    main()
