"""PDQ re-match at scale: a bank of N PDQ hashes against M stored hashes, all pairs within 31 bits.

Times :class:`scrutineer.matching.mih.MultiIndexHash` (what ``scrutineer rematch`` and ``content_hashlist``
use for PDQ) on the whole M, and faiss's exhaustive ``IndexBinaryFlat`` on a slice of the queries,
extrapolated to M; checks both return the same pairs on that slice and that every planted
near-duplicate (1,000 queries 0-31 bits from a bank entry) is found. Then times what a rematch
does with a new PDQ bank on the same codes: the N-line bank file read and validated, and the
``content_hashlist`` detector re-judging M stored content rows (as each shard's stored content
observation gives them, in batches of ``dataset.batch_rows``), evidence and all. Codes are uniform
random, as PDQ hashes of unrelated images roughly are. See bench/README.md.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from scrutineer.matching.mih import MultiIndexHash


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bank", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1_000_000)
    ap.add_argument("--flat-slice", type=int, default=20_000, help="queries faiss IndexBinaryFlat searches (then extrapolated)")
    ap.add_argument("--threshold", type=int, default=31)
    args = ap.parse_args()

    rng = np.random.default_rng(2023)
    bank = rng.integers(0, 256, (args.bank, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, (args.queries, 32), dtype=np.uint8)
    planted = rng.choice(args.queries, 1_000, replace=False)
    targets = rng.choice(args.bank, 1_000, replace=False)
    for q, b in zip(planted, targets):
        bits = rng.choice(256, rng.integers(0, args.threshold + 1), replace=False)
        code = np.unpackbits(bank[b])
        code[bits] ^= 1
        queries[q] = np.packbits(code)

    MultiIndexHash(bank[:1000]).search(queries[:100], args.threshold)  # numba compile (cached after the first run)
    t0 = time.perf_counter()
    index = MultiIndexHash(bank)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    qi, ei, dist = index.search(queries, args.threshold)
    search = time.perf_counter() - t0
    found = set(zip(qi.tolist(), ei.tolist()))
    recall = sum((int(q), int(b)) in found for q, b in zip(planted, targets)) / len(planted)
    print(f"multi-index hashing: build {build:.1f} s, search {args.bank:,} x {args.queries:,} in {search:.1f} s; "
          f"{len(qi):,} pairs, planted recall {recall:.3f}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)

    n = min(args.flat_slice, args.queries)
    flat = faiss.IndexBinaryFlat(256)
    flat.add(bank)
    t0 = time.perf_counter()
    lims, distances, labels = flat.range_search(queries[:n], args.threshold + 1)
    seconds = time.perf_counter() - t0
    exhaustive = {(q, int(labels[k])) for q in range(n) for k in range(lims[q], lims[q + 1])}
    same = exhaustive == {(q, e) for q, e in found if q < n}
    print(f"faiss IndexBinaryFlat: {n:,} queries in {seconds:.1f} s -> {seconds * args.queries / n / 60:.1f} min for {args.queries:,} "
          f"(faiss threads {faiss.omp_get_max_threads()}); same pairs as multi-index hashing on that slice: {same}", flush=True)
    _rematch(bank, queries, len(found))


def _rematch(bank: np.ndarray, queries: np.ndarray, expected: int) -> None:
    """A rematch's work for a new PDQ bank: read the bank file, then judge ``queries`` as stored
    content rows with ``content_hashlist``."""
    import pyarrow as pa

    from scrutineer.core.banks import load_bank
    from scrutineer.core.config import BankConfig, DatasetConfig
    from scrutineer.core.contract import CONTENT
    from scrutineer.detectors.base import DetectContext
    from scrutineer.detectors.content_hashlist import ContentHashlist

    root = Path(tempfile.mkdtemp(prefix="scrutineer-bench-pdq-"))
    (root / "bank.txt").write_text("\n".join(bytes(row).hex() for row in bank) + "\n")
    n = len(queries)
    content = pa.table({
        "row_index": pa.array(np.arange(n)), "sample_id": pa.array([str(i) for i in range(n)]),
        "url": pa.array([f"https://example.com/{i}.jpg" for i in range(n)]),
        "pdq": pa.array([bytes(row).hex() for row in queries]), "pdq_quality": pa.repeat(pa.scalar(100, pa.int32()), n),
    })
    content = pa.table({f.name: content[f.name] if f.name in content.column_names else pa.nulls(n, f.type) for f in CONTENT}, schema=CONTENT)
    t0 = time.perf_counter()
    loaded = load_bank(BankConfig(name="pdq-1m", path=root / "bank.txt", signal_type="pdq", source="bench", version="1"))
    read = time.perf_counter() - t0
    detector = ContentHashlist(ContentHashlist.Params(), DetectContext("bench", [loaded]))
    indexed = time.perf_counter() - t0 - read
    found = sum(detector.detect(batch).num_rows for batch in content.to_batches(max_chunksize=DatasetConfig.model_fields["batch_rows"].default))
    seconds = time.perf_counter() - t0
    print(f"rematch work: {len(bank):,}-entry bank file read in {read:.1f} s, indexed in {indexed:.1f} s, {n:,} stored rows judged; "
          f"{seconds:.1f} s in all; {found:,} findings (expected {expected:,})")


if __name__ == "__main__":
    main()
