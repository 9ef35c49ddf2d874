"""Near-duplicate captions (dedup on: [near_caption]) on the shared COCO, LAION and CC3M captions:
labelled precision, exact duplicates inside near ones, and parity with datasketch's MinHashLSH."""

from __future__ import annotations

import csv
import json

import datasketch
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch.lsh import _optimal_param

from detectors.base import DetectContext
from detectors.dedup import Dedup
from scrutineer.contract import DETECT
from scrutineer.minhash import Shingling, char_shingle_hashes, lsh_bands


@pytest.fixture(scope="module")
def captions(shared_data) -> dict[str, list[str]]:
    metadata = shared_data / "metadata"
    coco = json.loads((metadata / "coco_captions_val2017_images0-2499.json").read_text())
    with (metadata / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv").open(newline="") as f:
        cc3m = [row[0] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    laion = [c for f in ("laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet")
             for c in pq.read_table(metadata / f, columns=["TEXT"])["TEXT"].to_pylist()]
    return {"coco": [a["caption"] for a in coco["annotations"]][:10_000], "cc3m": cc3m, "laion": laion}


def judge(captions: list[str], **params) -> dict[str, dict[int, dict]]:
    """reason -> {row: evidence} of the dedup detector over one shard of ``captions``."""
    n = len(captions)
    batch = pa.RecordBatch.from_pydict(
        {"row_index": pa.array(range(n), pa.int64()), "sample_id": pa.array([f"s{i}" for i in range(n)]), "url": pa.nulls(n, pa.string()),
         "caption": pa.array(captions, pa.string()), "license": pa.nulls(n, pa.string())},
        schema=DETECT,
    )
    detector = Dedup(Dedup.Params(on=["caption", "near_caption"], **params), DetectContext("shard"))
    signatures = detector.signatures(batch)
    signatures = signatures.append_column("shard_id", pa.repeat(pa.scalar("shard"), n)).append_column("observation_id", pa.repeat(pa.scalar("o"), n))
    con = duckdb.connect()
    con.register("sigs", signatures)
    out: dict[str, dict[int, dict]] = {}
    for _, row, _, _, _, _, reason, evidence, _, _ in con.sql(detector.finalize("sigs")).fetchall():
        out.setdefault(reason, {})[row] = json.loads(evidence)
    return out


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 128), (0.8, 260), (0.5, 128), (0.9, 64), (0.7, 256)])
def test_bands_and_rows_are_datasketchs(threshold, num_perm):
    assert lsh_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.1, 0.9)


#: The first 8 near-caption findings of COCO and of CC3M that are not exact duplicates: (set,
#: flagged row, the earlier row it is nearest to, whether the two are near-duplicate text, and
#: whether they describe the same thing). Near-duplicate text, as labelled here: the same words
#: up to case, punctuation, order and one word or tag changed, added or removed.
LABELLED = [
    ("coco", 522, 514, True, True),  # 'A man walking down a street smoking a cigarette.' / 'a man walking ... cigarette'
    ("coco", 1018, 482, True, False),  # 'A woman riding on the back of a motorcycle.' / 'A man riding ...': another person
    ("coco", 1626, 1475, True, False),  # '... in a bathroom next to a shower.' / '... next to a sink.'
    ("coco", 3042, 3036, True, True),  # 'A group of people getting off of a bus.' / '... of a bus .'
    ("coco", 5596, 5591, True, True),  # 'a man sprays an elephant with a water hose ' / 'A man sprays ... hose.'
    ("coco", 6583, 6579, True, True),  # 'a white dog sitting on a table next to a newspaper and a cup.' / 'A dog sitting ...'
    ("coco", 7073, 6999, True, True),  # 'Two zebras standing side by side in a field' / '... in a field. '
    ("coco", 7124, 7099, True, True),  # 'Cute girl sitting on a skateboard in the driveway ' / 'a girl sitting on ...'
    ("cc3m", 264, 169, True, True),  # 'actor arrives at the premiere' / 'actor arrives at the premiere .'
    ("cc3m", 771, 563, True, True),  # 'image may contain : person , playing a musical instrument , on stage and indoor' / same tags reordered
    ("cc3m", 1650, 1456, True, False),  # '... instrument and guitar' / '... instrument and concert': one tag differs
    ("cc3m", 1975, 771, True, False),  # '... instrument and indoor' / '... instrument , concert and indoor': a tag added
    ("cc3m", 2317, 563, True, False),  # '... on stage and indoor' / '... on stage and outdoor'
    ("cc3m", 2330, 1650, True, False),  # '... instrument and concert' / '... instrument , night and concert'
    ("cc3m", 2403, 269, True, False),  # '... instrument , guitar , night and indoor' / '... instrument , night and indoor'
    ("cc3m", 2969, 551, True, False),  # '... instrument , sitting , on stage and guitar' / '... instrument , on stage and guitar'
]


def test_labelled_precision(captions):
    """Precision on the labelled sample: every pair is near-duplicate text (16 of 16); 8 of the 16
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
    assert sum(same for *_, same in LABELLED) == 8


def test_exact_duplicates_are_near_duplicates(captions):
    for name, texts in captions.items():
        found = judge(texts)
        assert set(found.get("duplicate.caption", {})) <= set(found.get("duplicate.near_caption", {})), name


def test_parity_with_datasketch(captions):
    """The rows flagged agree with datasketch's MinHashLSH at the same threshold, permutations and
    weights (so the same bands and rows), on the same shingles of the same caption keys, its
    candidates verified as ours are, on the exact Jaccard similarity: a row is flagged when an
    earlier candidate reaches the threshold. The MinHash functions differ, so a pair may be a
    candidate for one and not the other; and ours checks a row against the first row of each
    bucket only. Tolerance: the two sets' Jaccard similarity >= 0.9, and every row on which they
    disagree has an earlier caption at or above the threshold (neither flags a row wrongly)."""
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

    theirs = {i for i, (_, m) in enumerate(sets) if any(j < i and jaccard(i, j) >= 0.8 for j in lsh.query(m))}
    assert len(ours) > 50 and len(theirs) > 50
    assert len(ours & theirs) / len(ours | theirs) >= 0.9, (len(ours), len(theirs), len(ours & theirs))
    for i in ours ^ theirs:
        assert max(jaccard(i, j) for j in range(i)) >= 0.8, (i, texts[i])


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
