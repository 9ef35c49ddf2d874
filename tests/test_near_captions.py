"""Near-duplicate captions (dedup on: [near_caption]) on the shared COCO, LAION and CC3M captions:
labelled precision, exact duplicates inside near ones, and parity with datasketch's MinHashLSH."""

from __future__ import annotations

import csv
import json
import tracemalloc

import datasketch
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from datasketch.lsh import _optimal_param

from scrutineer.core.contract import DETECT
from scrutineer.detectors.base import DetectContext
from scrutineer.detectors.conformance import register_signatures
from scrutineer.detectors.dedup import Dedup
from scrutineer.matching.minhash import (
    MAX_CHARS,
    Shingling,
    char_shingle_hashes,
    lsh_bands,
    minhashes,
)


@pytest.fixture(scope="module")
def captions(test_data) -> dict[str, list[str]]:
    metadata = test_data / "metadata"
    coco = json.loads((metadata / "coco_captions_val2017_images0-2499.json").read_text())
    with (metadata / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv").open(newline="") as f:
        cc3m = [row[0] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    laion = [c for f in ("laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet")
             for c in pq.read_table(metadata / f, columns=["TEXT"])["TEXT"].to_pylist()]
    return {"coco": [a["caption"] for a in coco["annotations"]][:10_000], "cc3m": cc3m, "laion": laion}


def shard(captions: list[str]) -> pa.RecordBatch:
    """One shard's batch of ``captions``, row ``i`` sample ``s{i}``."""
    n = len(captions)
    return pa.RecordBatch.from_pydict(
        {"row_index": pa.array(range(n), pa.int64()), "sample_id": pa.array([f"s{i}" for i in range(n)]), "url": pa.nulls(n, pa.string()),
         "caption": pa.array(captions, pa.string()), "license": pa.nulls(n, pa.string())},
        schema=DETECT,
    )


def judge(captions: list[str], **params) -> dict[str, dict[int, dict]]:
    """reason -> {row: evidence} of the dedup detector over one shard of ``captions``."""
    detector = Dedup(Dedup.Params(on=["caption", "near_caption"], **params), DetectContext("shard"))
    con = duckdb.connect()
    view = register_signatures(con, detector, detector.signatures(shard(captions)))
    out: dict[str, dict[int, dict]] = {}
    for _, row, _, _, _, _, reason, evidence, _, _ in con.execute(*Dedup.finalize(detector.params, view)).fetchall():
        out.setdefault(reason, {})[row] = json.loads(evidence)
    return out


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 128), (0.8, 260), (0.5, 128), (0.9, 64), (0.7, 256)])
def test_bands_and_rows_are_datasketchs(threshold, num_perm):
    assert lsh_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.1, 0.9)


#: The first 8 near-caption findings of COCO and of CC3M that are not exact duplicates: (set,
#: flagged row, the linked row its evidence names as nearest (an earlier one when it has one),
#: whether the two are near-duplicate text, and whether they describe the same thing).
#: Near-duplicate text, as labelled here: the same words up to case, punctuation, order and one
#: word or tag changed, added or removed. A flagged row is in a cluster whose kept row comes
#: before it; when its only links are to later rows (380, 1475, 1456), the nearest is later.
LABELLED = [
    ("coco", 522, 514, True, True),  # 'a man walking down a street smoking a cigarette' / 'A man walking ... cigarette.'
    ("coco", 1018, 482, True, False),  # 'A man riding on the back of a motorcycle.' / 'A woman riding ...': another person
    ("coco", 1475, 1626, True, False),  # '... in a bathroom next to a shower.' / '... next to a sink.'
    ("coco", 1626, 1475, True, False),  # the same pair from the other side
    ("coco", 3042, 3036, True, True),  # 'A group of people getting off of a bus .' / '... of a bus.'
    ("coco", 5596, 5591, True, True),  # 'A man sprays an elephant with a water hose.' / 'a man sprays ... hose '
    ("coco", 6503, 7650, True, True),  # 'A man riding skis down a snow covered ski slope.' / '... snow covered slope.'
    ("coco", 6583, 6579, True, True),  # 'A dog sitting on a table next to a newspaper and a cup.' / 'a white dog sitting ...'
    ("cc3m", 264, 169, True, True),  # 'actor arrives at the premiere .' / 'actor arrives at the premiere'
    ("cc3m", 380, 1297, True, True),  # 'image may contain : person , playing a musical instrument and on stage' / the same
    ("cc3m", 551, 2969, True, False),  # '... instrument , sitting , on stage and guitar' / '... instrument , on stage and guitar'
    ("cc3m", 563, 3293, True, True),  # '... playing a musical instrument , on stage and indoor' / the same
    ("cc3m", 771, 563, True, True),  # '... person , on stage , playing a musical instrument and indoor' / same tags reordered
    ("cc3m", 1456, 2568, True, True),  # '... on stage , playing a musical instrument and guitar' / the same
    ("cc3m", 1650, 1456, True, False),  # '... instrument and concert' / '... instrument and guitar': one tag differs
    ("cc3m", 1869, 3390, True, True),  # '... person , smiling , on stage and playing a musical instrument' / the same
]


def test_labelled_precision(captions):
    """Precision on the labelled sample: every pair is near-duplicate text (16 of 16); 5 of the 16
    describe a different detail (another person, a shower for a sink, one image tag more or
    less), which caption similarity alone cannot tell apart."""
    sample = []
    for name in ("coco", "cc3m"):
        found = judge(captions[name])
        exact = found.get("duplicate.caption", {})
        near = [(row, e) for row, e in sorted(found["duplicate.near_caption"].items()) if row not in exact]
        sample += [(name, row, e["near_row_index"]) for row, e in near[:8]]
        assert all(e["jaccard"] >= 0.8 for _, e in near)
    assert sample == [(name, row, near) for name, row, near, _, _ in LABELLED]
    assert sum(text for *_, text, _ in LABELLED) / len(LABELLED) == 1.0
    assert sum(same for *_, same in LABELLED) == 11


def test_exact_duplicates_are_near_duplicates(captions):
    for name, texts in captions.items():
        found = judge(texts)
        assert set(found.get("duplicate.caption", {})) <= set(found.get("duplicate.near_caption", {})), name


def test_parity_with_datasketch(captions):
    """The rows flagged agree with datasketch's MinHashLSH at the same threshold, permutations and
    weights (so the same bands and rows), on the same shingles of the same caption keys, its
    candidates verified as ours are, on the exact Jaccard similarity, and clustered by scipy's
    connected components: every row of a cluster but its first is flagged. The MinHash functions
    differ, so a pair may be a candidate for one and not the other; and ours checks a row against
    the first row of each bucket only. Tolerance: the two sets' Jaccard similarity >= 0.9, and
    every row on which they disagree has a caption at or above the threshold (neither flags a row
    that has no near duplicate)."""
    texts = captions["coco"]
    ours = set(judge(texts).get("duplicate.near_caption", {}))
    shingle = Shingling("char", 5)
    sets = [set(shingle(" ".join(t.lower().split()))) for t in texts]
    lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128, weights=(0.1, 0.9))
    for i, shingles in enumerate(sets):
        m = datasketch.MinHash(num_perm=128, seed=42)
        m.update_batch([s.encode() for s in shingles])
        lsh.insert(i, m)
        sets[i] = (shingles, m)

    def jaccard(i: int, j: int) -> float:
        return len(sets[i][0] & sets[j][0]) / len(sets[i][0] | sets[j][0])

    pairs = [(i, j) for i, (_, m) in enumerate(sets) for j in lsh.query(m) if j < i and jaccard(i, j) >= 0.8]
    n = len(texts)
    graph = scipy.sparse.coo_matrix((np.ones(len(pairs)), ([i for i, _ in pairs], [j for _, j in pairs])), shape=(n, n))
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    first = {}
    for i, c in enumerate(component):
        first.setdefault(c, i)
    linked = {i for pair in pairs for i in pair}
    theirs = {i for i in linked if first[component[i]] != i}
    assert len(ours) > 50 and len(theirs) > 50
    assert len(ours & theirs) / len(ours | theirs) >= 0.9, (len(ours), len(theirs), len(ours & theirs))
    for i in ours ^ theirs:
        assert max(jaccard(i, j) for j in range(n) if j != i) >= 0.8, (i, texts[i])


def test_numpy_shingle_hashes_are_those_of_the_shingles():
    """The character shingles hashed from the texts' code points at once are the shingles
    Shingling cuts, one by one (a short text: itself; non-ASCII: code points, not bytes)."""
    texts = ["a cat on a mat", "abc", "naïve café", "abcde", "x" * 7, "ab", "q"]
    hashes, offsets = char_shingle_hashes(texts, 5)

    def one(shingle: str) -> np.uint64:
        value = np.uint64(0)
        with np.errstate(over="ignore"):
            for k in range(5):
                value = value * np.uint64(0x9E3779B97F4A7C15) + np.uint64(ord(shingle[k]) if k < len(shingle) else 0)
        return value

    for i, text in enumerate(texts):
        assert list(hashes[offsets[i] : offsets[i + 1]]) == [one(s) for s in Shingling("char", 5)(text)], text


def hostile_text(chars: int, seed: int) -> str:
    """``chars`` random lowercase letters and spaces (about one in six): a caption as long as an
    attacker likes, unlike any other."""
    alphabet = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)
    return alphabet[np.random.default_rng(seed).integers(0, len(alphabet), chars)].tobytes().decode()


def test_captions_past_the_bound_are_compared_on_their_first_characters_and_the_evidence_says_so():
    """Fault 7 (issue 23): near captions compare the first MAX_CHARS characters of each key, and a
    finding whose captions were cut names the bound (``truncated_to``); one whose were not does not.
    The exact caption key still reads the whole caption."""
    head = hostile_text(MAX_CHARS + 500, 1)
    long, other_tail = head + hostile_text(20_000, 2), head + hostile_text(20_000, 3)  # the same first 1,500 characters
    found = judge([long, other_tail, long, "a man riding a horse on a beach", "A man riding a horse on a beach."])
    near = found["duplicate.near_caption"]
    assert near[1]["jaccard"] == 1.0 and near[1]["truncated_to"] == MAX_CHARS
    assert near[4]["near_row_index"] == 3 and "truncated_to" not in near[4]
    assert set(found["duplicate.caption"]) == {2}  # the whole of row 2 is row 0's; row 1 differs past the bound


def test_signing_long_captions_keeps_memory_bounded():
    """Fault 7 (issue 23): 40 captions of 1 MB took a scan to 2.65 GB, since every character of
    every caption was shingled and hashed (~80 bytes each) and kept for verification. Now 8 captions
    of 1 MB are signed within 16 MB of Python and numpy allocations (tracemalloc; Arrow's and
    DuckDB's own pools are not traced, nor is the batch, made before), and each stored key, which
    verification shingles, has at most MAX_CHARS characters."""
    batch = shard([hostile_text(1_000_000, seed) for seed in range(8)])
    detector = Dedup(Dedup.Params(on=["caption", "near_caption"]), DetectContext("shard"))
    tracemalloc.start()
    try:
        signatures = detector.signatures(batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        detector.close()
    assert peak < 16 * 2**20, f"{peak:,} bytes"
    assert {len(k) for k in signatures.column("near_caption_key").to_pylist()} == {MAX_CHARS}
    assert signatures.column("near_caption_truncated").to_pylist() == [True] * 8


def test_many_long_keys_are_signed_a_bounded_chunk_at_a_time():
    """4,000 keys of MAX_CHARS characters (4M code points, fewer texts than one CHUNK) are signed
    CHUNK_CHARS code points at a time: within 96 MB of Python and numpy allocations (185 MB all at
    once), and each key's signature is the one it gets alone."""
    texts = [hostile_text(MAX_CHARS, seed) for seed in range(4_000)]
    shingling = Shingling("char", 5)
    tracemalloc.start()
    try:
        signed = minhashes(texts, shingling, 128, 42)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 96 * 2**20, f"{peak:,} bytes"
    for i in range(0, len(texts), 97):
        assert (signed[i] == minhashes([texts[i]], shingling, 128, 42)[0]).all(), i
