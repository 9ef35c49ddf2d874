"""Near duplicates at scale: captions (Scrutineer's MinHash LSH against datasketch's MinHashLSH)
and images (PDQ codes clustered by pigeonhole blocks).

Generates ``--rows`` captions (default 1M) of 8-16 made-up words, ~5% of them planted near
duplicates of an earlier caption (one word replaced, inserted or deleted, or the punctuation and
case changed), each a function of its row number, written a batch at a time to a parquet shard
(so no process holds them all), and keeps as ground truth the planted pairs whose true Jaccard
similarity of character 5-gram sets is 0.8-0.95. Then, each in a child process of its own (so
each peak RSS is its own):

1. **scrutineer**: the ``dedup`` detector with ``on: [near_caption]`` (char 5-grams, threshold
   0.8, 128 permutations) as a shard task runs it: the shard read in batches of 65,536 rows,
   ``signatures`` of 2 batches at a time (``threads_per_shard``), written to a parquet file; then
   ``finalize`` in DuckDB (memory_limit 1 GB) over that file (band buckets, verification,
   connected components);
2. **datasketch**: ``MinHash`` (same shingles, 128 permutations) inserted into ``MinHashLSH`` at
   threshold 0.8 with the same weights (so the same bands and rows), then every caption queried,
   and a candidate kept when datasketch's estimated Jaccard reaches 0.8 (one process; datasketch
   keeps its index in memory).

Prints, for each: rows/s (wall), peak RSS, and recall of the planted pairs (a planted copy
flagged). Targets (issue 14): >= 40,000 rows/s on 2 cores and >= 10 x datasketch, recall >= 0.9,
peak RSS < 2 GB, and a 10M-row run's peak RSS within 1.2 x a 1M-row run's. ``--datasketch-rows``
caps datasketch's share (it runs at ~4,000 rows/s; 0 skips it).

``--images N`` (10M in issue 14) instead generates N random 256-bit PDQ codes (quality 100), ~5%
of them planted neighbours of an earlier code (1-31 bits flipped, a function of the row), and
runs ``dedup`` with ``on: [near_image]`` (defaults: PDQ within 31 bits, 8 blocks of 32 bits) as a
shard task would: signatures of 65,536-row batches, 2 at a time, then ``finalize`` in DuckDB
(memory_limit 1 GB). Prints the wall time (target: < 10 minutes for 10M), peak RSS, and recall of
the planted pairs within 7 bits (which the pigeonhole principle guarantees) and at 8-31 bits.

``--long-captions N`` (issue 23, fault 7: 40 captions of 1 MB took a scan to 2.65 GB, 80 to
4.93 GB) instead runs ``dedup`` with ``on: [caption, near_caption]`` over N hostile captions of
``--caption-chars`` characters (default 1,000,000): random letters and spaces, every second one a
copy of the one before with a character changed at 500 and one at half its length. Prints the
peak RSS by the end of the signatures stage and at the end, and the rows flagged per reason.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# The runs import Scrutineer, DuckDB and datasketch inside themselves: each child imports only its
# own run's libraries, so the peak RSS it reports is its own (measured: importing Scrutineer's
# dedup adds 91 MB, DuckDB 25 MB, datasketch 78 MB).
SYLLABLES = ("ka lo mi re su ta ne ri po va de lu sa mo bi te", "ga fu no ki ra se to mu pa li ho ze")
WORDS = [a + b for a in SYLLABLES[0].split() for b in SYLLABLES[1].split()]  # 192 made-up words


COPY_RATE = 0.05


def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of ``x`` (uint64) and ``salt``: a reproducible pseudo-random word per row."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (salt + 1)) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _base(rows: np.ndarray) -> list[list[str]]:
    """The words of row ``i``'s own caption: 8-16 of :data:`WORDS`, a function of ``i``."""
    lengths = 8 + _mix(rows, 1) % np.uint64(9)
    return [[WORDS[int(_mix(np.array([i], np.uint64), 10 + k)[0] % np.uint64(len(WORDS)))] for k in range(int(n))]
            for i, n in zip(rows.tolist(), lengths.tolist())]


def sources(rows: np.ndarray) -> np.ndarray:
    """Per row, the earlier row whose caption it is a near copy of (5% of rows), else -1."""
    copy = (_mix(rows, 2) % np.uint64(10_000) < np.uint64(COPY_RATE * 10_000)) & (rows > 100)
    return np.where(copy, (_mix(rows, 3) % np.maximum(rows, 1).astype(np.uint64)).astype(np.int64), -1)


def captions(rows: np.ndarray) -> list[str]:
    """The captions of ``rows`` (uint64 indices), each a function of its index: its own words, or,
    for a copy, its source's own words with one edit (a word replaced, inserted or deleted, or
    case and punctuation changed)."""
    src = sources(rows)
    words = _base(np.where(src >= 0, src, rows).astype(np.uint64))
    edit, where, word = (_mix(rows, s) for s in (4, 5, 6))
    out = []
    for w, s, e, k, new in zip(words, src.tolist(), (edit % np.uint64(4)).tolist(), where.tolist(), (word % np.uint64(len(WORDS))).tolist()):
        if s >= 0:
            k %= len(w)
            if e == 0:
                w[k] = WORDS[new]
            elif e == 1:
                w.insert(k, WORDS[new])
            elif e == 2 and len(w) > 8:
                del w[k]
        caption = " ".join(w)
        out.append(caption.capitalize() + "." if s >= 0 and e == 3 else caption)
    return out


def write_shard(rows: int, path: Path, batch: int = 100_000) -> None:
    """The captions of rows 0..rows-1 as a parquet file, written a batch at a time."""
    with pq.ParquetWriter(path, pa.schema([("caption", pa.string())])) as writer:
        for start in range(0, rows, batch):
            writer.write_table(pa.table({"caption": captions(np.arange(start, min(rows, start + batch), dtype=np.uint64))}))


def true_jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(s: str) -> set[str]:
        s = " ".join(s.lower().split())
        return {s[i : i + n] for i in range(max(1, len(s) - n + 1))}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def sign_and_finalize(detector, batches, work: Path, name: str) -> dict:
    """Run ``detector`` as a shard task and the store would: ``signatures`` of ``batches``
    (functions making a batch, called in the worker) 2 at a time, written in order to a parquet
    file; the detector closed, as a shard task closes its own; then ``finalize`` over the file in
    DuckDB (memory_limit 1 GB). Returns the rows flagged and the seconds taken."""
    # measured: only this run's libraries, so the child's peak RSS is its own (see the note above SYLLABLES)
    import duckdb

    from scrutineer.flows.load import release_arrow_memory

    path = work / f"{name}-signatures.parquet"
    t0 = time.perf_counter()

    def signed(make) -> pa.Table:
        batch = make()
        m = batch.num_rows
        sigs = detector.signatures(batch)
        return sigs.append_column("shard_id", pa.repeat(pa.scalar("bench"), m)).append_column("observation_id", pa.repeat(pa.scalar("o"), m))

    schema = detector.signature_schema.append(pa.field("shard_id", pa.string())).append(pa.field("observation_id", pa.string()))
    with ThreadPoolExecutor(2) as pool, pq.ParquetWriter(path, schema, compression="none") as writer:
        pending: deque = deque()
        for make in batches:  # at most 3 batches in flight (Executor.map would read them all first)
            pending.append(pool.submit(signed, make))
            if len(pending) > 2:
                writer.write_table(pending.popleft().result())
        while pending:
            writer.write_table(pending.popleft().result())
    signed_at = time.perf_counter()
    signed_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {name}: signatures in {signed_at - t0:.1f} s, peak RSS {signed_rss:,.0f} MB by then; finalizing", file=sys.stderr, flush=True)
    detector.close()  # as a shard task's detectors are when its pass ends; the store runs finalize, a class method
    release_arrow_memory()  # as scrutineer.flows.load.load does before finalize
    (work / f"{name}.duckdb").unlink(missing_ok=True)
    con = duckdb.connect(str(work / f"{name}.duckdb"), config={"memory_limit": "1GB", "threads": 2})
    con.read_parquet(str(path)).create_view("sigs")
    query, params = type(detector).finalize(detector.params, "sigs")
    found = con.execute(f"SELECT row_index, reason FROM ({query})", params).fetchall()
    flagged = [row for row, _ in found]
    done = time.perf_counter()
    return {"flagged": flagged, "reasons": {r: sum(x == r for _, x in found) for r in sorted({x for _, x in found})}, "seconds": done - t0, "signatures_s": signed_at - t0, "finalize_s": done - signed_at, "signatures_rss_mb": signed_rss}


def run_scrutineer(shard: Path, work: Path) -> dict:
    # measured: only this run's libraries, so the child's peak RSS is its own (see the note above SYLLABLES)
    from scrutineer.core.contract import DETECT
    from scrutineer.detectors.base import DetectContext
    from scrutineer.detectors.dedup import Dedup

    def batches():
        start = 0
        with pq.ParquetFile(shard) as f:
            for read in f.iter_batches(batch_size=65_536):
                m = read.num_rows
                yield lambda start=start, read=read, m=m: pa.RecordBatch.from_pydict(
                    {"row_index": pa.array(range(start, start + m), pa.int64()), "sample_id": pa.array([str(i) for i in range(start, start + m)]),
                     "url": pa.nulls(m, pa.string()), "caption": read.column("caption"), "license": pa.nulls(m, pa.string())}, schema=DETECT)
                start += m

    return sign_and_finalize(Dedup(Dedup.Params(on=["near_caption"]), DetectContext("bench")), batches(), work, "captions")


def run_datasketch(shard: Path) -> dict:
    # measured: only this run's libraries, so the child's peak RSS is its own (see the note above SYLLABLES)
    import datasketch

    from scrutineer.matching.minhash import Shingling

    shingle = Shingling("char", 5)
    texts = pq.read_table(shard)["caption"].to_pylist()
    t0 = time.perf_counter()
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128, weights=(0.1, 0.9))
    hashes = []
    for i, caption in enumerate(texts):
        m = datasketch.MinHash(num_perm=128, seed=42)
        m.update_batch([s.encode() for s in shingle(" ".join(caption.lower().split()))])
        hashes.append(m)
        lsh.insert(i, m)
    flagged = [i for i, m in enumerate(hashes) if any(j < i and m.jaccard(hashes[j]) >= 0.8 for j in lsh.query(m))]
    return {"flagged": flagged, "seconds": time.perf_counter() - t0}


PLANT_RATE = 0.05


def planted(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row: the earlier row it is a planted neighbour of (-1 for none, ~PLANT_RATE of
    rows from 1,000 on) and how many bits of that row's code it flips (1-31)."""
    is_copy = (_mix(rows, 20) % np.uint64(10_000) < np.uint64(PLANT_RATE * 10_000)) & (rows >= 1_000)
    source = np.where(is_copy, (_mix(rows, 21) % np.maximum(rows, np.uint64(1))).astype(np.int64), -1)
    return source, (1 + _mix(rows, 22) % np.uint64(31)).astype(np.int64)


def pdq_codes(rows: np.ndarray) -> np.ndarray:
    """``(len(rows), 32)`` uint8 PDQ codes: random per row, or a planted neighbour's: its
    source's code with ``bits`` distinct bits flipped."""
    codes = np.stack([_mix(rows, 30 + k) for k in range(4)], axis=1).view(np.uint8)
    source, bits = planted(rows)
    copies = np.flatnonzero(source >= 0)
    if len(copies):
        codes[copies] = pdq_codes(source[copies].astype(np.uint64))
        for i, r in zip(copies.tolist(), rows[copies].tolist()):
            flip = np.random.default_rng(r).choice(256, int(bits[i]), replace=False)
            codes[i, flip // 8] ^= (np.uint8(1) << (7 - flip % 8).astype(np.uint8))
    return codes


def run_images(rows: int, work: Path, blocks: int) -> dict:
    # measured: only this run's libraries, so the child's peak RSS is its own (see the note above SYLLABLES)
    from scrutineer.detectors.base import DetectContext
    from scrutineer.detectors.dedup import Dedup

    def batch(start: int) -> pa.RecordBatch:
        index = np.arange(start, min(start + 65_536, rows), dtype=np.uint64)
        m = len(index)
        hexes = pdq_codes(index).tobytes().hex()
        return pa.RecordBatch.from_pydict({
            "row_index": pa.array(index.astype(np.int64)), "sample_id": pa.array(index.astype(str)), "url": pa.nulls(m, pa.string()),
            "pdq": pa.array([hexes[i * 64 : i * 64 + 64] for i in range(m)]), "pdq_quality": pa.array(np.full(m, 100, np.int32)),
            "pdq_dihedral": pa.nulls(m, pa.list_(pa.string())), "phash": pa.nulls(m, pa.string()),
            "width": pa.nulls(m, pa.int32()), "height": pa.nulls(m, pa.int32()),
        })

    detector = Dedup(Dedup.Params(on=["near_image"], near_image={"pdq_blocks": blocks}), DetectContext("bench"))
    return sign_and_finalize(detector, (lambda s=s: batch(s) for s in range(0, rows, 65_536)), work, "images")


def long_captions(rows: int, chars: int) -> list[str]:
    """``rows`` captions of ``chars`` random letters and spaces; each odd row a copy of the row
    before with the characters at 500 and at ``chars // 2`` changed."""
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)
    out = []
    for i in range(rows):
        if i % 2:
            text = bytearray(out[-1].encode())
            for at in (500, chars // 2):
                text[at] = ord("z") if text[at] != ord("z") else ord("y")
            out.append(text.decode())
        else:
            out.append(alphabet[np.random.default_rng(i).integers(0, len(alphabet), chars)].tobytes().decode())
    return out


def run_long_captions(rows: int, chars: int, work: Path) -> dict:
    # measured: only this run's libraries, so the child's peak RSS is its own (see the note above SYLLABLES)
    from scrutineer.core.contract import DETECT
    from scrutineer.detectors.base import DetectContext
    from scrutineer.detectors.dedup import Dedup

    def batch() -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict(
            {"row_index": pa.array(range(rows), pa.int64()), "sample_id": pa.array([str(i) for i in range(rows)]), "url": pa.nulls(rows, pa.string()),
             "caption": pa.array(long_captions(rows, chars)), "license": pa.nulls(rows, pa.string())}, schema=DETECT)

    return sign_and_finalize(Dedup(Dedup.Params(on=["caption", "near_caption"]), DetectContext("bench")), [batch], work, "long-captions")


def child(kind: str, rows: int, work: Path, blocks: int, chars: int = 0) -> None:
    if kind == "images":
        result = run_images(rows, work, blocks)
    elif kind == "long-captions":
        result = run_long_captions(rows, chars, work)
    else:
        shard = work / f"captions-{rows}.parquet"
        if not shard.exists():
            write_shard(rows, shard)
        result = run_scrutineer(shard, work) if kind == "scrutineer" else run_datasketch(shard)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (work / f"{kind}.json").write_text(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--datasketch-rows", type=int, default=None, help="rows for datasketch (default: --rows; 0: skip it)")
    ap.add_argument("--work", type=Path, help="working directory; generated caption shards in it are reused (default: a new temporary one)")
    ap.add_argument("--images", type=int, default=0, help="cluster this many generated PDQ codes instead of captions")
    ap.add_argument("--pdq-blocks", type=int, default=8, help="near_image.pdq_blocks for --images")
    ap.add_argument("--long-captions", type=int, default=0, help="dedup this many hostile long captions instead (issue 23, fault 7)")
    ap.add_argument("--caption-chars", type=int, default=1_000_000, help="characters of each --long-captions caption")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.images or args.long_captions or args.rows, Path(args.child[1]), args.pdq_blocks, args.caption_chars)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="scrutineer-bench-dedup-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.long_captions:
        subprocess.run([sys.executable, __file__, "--long-captions", str(args.long_captions), "--caption-chars", str(args.caption_chars),
                        "--child", "long-captions", str(work)], check=True)
        result = json.loads((work / "long-captions.json").read_text())
        print(f"long captions {args.long_captions} x {args.caption_chars:,} characters in {result['seconds']:.1f} s (signatures {result['signatures_s']:.1f} s, "
              f"peak RSS {result['signatures_rss_mb']:,.0f} MB by then; finalize {result['finalize_s']:.1f} s); peak RSS {result['rss_mb']:,.0f} MB; "
              f"flagged {result['reasons']}", flush=True)
        return
    if args.images:
        images(args.images, work, args.pdq_blocks)
        return
    datasketch_rows = args.rows if args.datasketch_rows is None else args.datasketch_rows
    for kind, rows in (("scrutineer", args.rows), ("datasketch", datasketch_rows)):
        if rows == 0:
            continue
        subprocess.run([sys.executable, __file__, "--rows", str(rows), "--child", kind, str(work)], check=True)
        result = json.loads((work / f"{kind}.json").read_text())
        copies = np.flatnonzero(sources(np.arange(rows, dtype=np.uint64)) >= 0)
        originals = sources(copies.astype(np.uint64))
        truth = [(a, b) for a, b, x, y in zip(originals.tolist(), copies.tolist(), captions(originals.astype(np.uint64)), captions(copies.astype(np.uint64)))
                 if 0.8 <= true_jaccard(x, y) <= 0.95]
        flagged = set(result["flagged"])
        recall = sum(b in flagged for _, b in truth) / len(truth)
        extra = (f" (signatures {result['signatures_s']:.1f} s, peak RSS {result['signatures_rss_mb']:,.0f} MB by then; finalize {result['finalize_s']:.1f} s)"
                 if kind == "scrutineer" else "")
        print(f"{kind:11s} {rows:>9,} rows in {result['seconds']:7.1f} s = {rows / result['seconds']:9,.0f} rows/s{extra}; "
              f"peak RSS {result['rss_mb']:,.0f} MB; recall {recall:.3f} of {len(truth):,} planted pairs at Jaccard 0.8-0.95; "
              f"{len(flagged):,} rows flagged", flush=True)


def images(rows: int, work: Path, blocks: int) -> None:
    subprocess.run([sys.executable, __file__, "--images", str(rows), "--pdq-blocks", str(blocks), "--child", "images", str(work)], check=True)
    result = json.loads((work / "images.json").read_text())
    source, bits = planted(np.arange(rows, dtype=np.uint64))
    copies = np.flatnonzero(source >= 0)
    found = np.isin(copies, np.array(result["flagged"], np.int64))
    near = bits[copies] <= 7
    print(f"images ({blocks} blocks) {rows:>11,} PDQ codes clustered in {result['seconds']:6.1f} s (signatures {result['signatures_s']:.1f} s, "
          f"finalize {result['finalize_s']:.1f} s); peak RSS {result['rss_mb']:,.0f} MB; recall {found[near].mean():.3f} of "
          f"{near.sum():,} planted neighbours within 7 bits, {found[~near].mean():.3f} of {(~near).sum():,} at 8-31 bits "
          f"({', '.join(f'{found[bits[copies] == d].mean():.2f}' for d in (8, 12, 16, 24, 31))} at 8, 12, 16, 24, 31 bits); "
          f"{len(result['flagged']):,} rows flagged", flush=True)


if __name__ == "__main__":
    main()
