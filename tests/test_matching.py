"""Perceptual matching is exact: multi-index hashing for PDQ returns exactly the pairs an
exhaustive search (faiss ``IndexBinaryFlat``) returns, including at the threshold's edge; each
signal type validates and normalises its hash strings."""

from __future__ import annotations

import faiss
import numpy as np
import pyarrow as pa
import pytest

from scrutineer.matching.mih import MAX_THRESHOLD, MultiIndexHash
from scrutineer.matching.signals import PDQ, PHASH, SIGNAL_TYPES


def flip(code: np.ndarray, bits: list[int]) -> np.ndarray:
    out = code.copy()
    for b in bits:
        out[b // 8] ^= np.uint8(1 << (b % 8))
    return out


def spread(distance: int, rng: np.random.Generator) -> list[int]:
    """Bit positions for ``distance`` flips spread as evenly as possible over the 16 chunks of 16
    bits: the worst case for a pigeonhole search (at 31 bits, 15 chunks differ by 2 and one by 1)."""
    per_chunk = [distance // 16 + (1 if h < distance % 16 else 0) for h in rng.permutation(16)]
    return [16 * h + int(b) for h, k in enumerate(per_chunk) for b in rng.choice(16, k, replace=False)]


def exhaustive(bank: np.ndarray, queries: np.ndarray, threshold: int) -> set[tuple[int, int, int]]:
    index = faiss.IndexBinaryFlat(256)
    index.add(bank)
    lims, distances, labels = index.range_search(queries, threshold + 1)
    return {(q, int(labels[k]), int(distances[k])) for q in range(len(queries)) for k in range(lims[q], lims[q + 1])}


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(7)
    bank = rng.integers(0, 256, (20_000, 32), dtype=np.uint8)
    bank[100:112] = bank[99]  # 13 identical entries: one query matches all of them (> 8 per query)
    queries = rng.integers(0, 256, (3_000, 32), dtype=np.uint8)
    for q, distance in enumerate([0, 1, 2, 15, 16, 17, 29, 30, 31, 32, 33, 40] * 20):
        queries[q] = flip(bank[q * 7 if q * 7 < 99 or q * 7 >= 112 else 5], spread(distance, rng))
    queries[2_999] = flip(bank[99], spread(31, rng))
    return bank, queries


@pytest.mark.parametrize("threshold", [0, 8, 31])
def test_multi_index_hashing_equals_an_exhaustive_search(planted, threshold):
    bank, queries = planted
    got = MultiIndexHash(bank).search(queries, threshold)
    pairs = list(zip(*(a.tolist() for a in got)))
    assert len(pairs) == len(set(pairs)), "a pair came out twice"
    assert set(pairs) == exhaustive(bank, queries, threshold)


def test_planted_edge_cases_found(planted):
    bank, queries = planted
    got = {(q, e): d for q, e, d in zip(*(a.tolist() for a in MultiIndexHash(bank).search(queries, 31)))}
    assert {d for d in got.values()} >= {0, 1, 2, 15, 16, 17, 29, 30, 31}
    assert max(got.values()) == 31  # 32 bits (two in every chunk) and more are never returned
    assert sum(1 for q, _ in got if q == 2_999) == 13  # one query, 13 identical entries


def test_threshold_beyond_the_pigeonhole_is_refused(planted):
    bank, queries = planted
    with pytest.raises(ValueError, match="exact up to 31 bits"):
        MultiIndexHash(bank).search(queries, MAX_THRESHOLD + 1)


def test_near_index_pdq_and_phash_by_hex_strings():
    rng = np.random.default_rng(3)
    entries = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(50)]
    near = bytes(flip(np.frombuffer(bytes.fromhex(entries[10]), np.uint8), [0, 77, 255])).hex()
    found = PDQ.index(pa.array(entries)).search(pa.array([None, near, "0" * 64]), 31)
    assert [a.tolist() for a in found] == [[1], [10], [3]]
    assert [a.tolist() for a in PDQ.index(pa.array([], pa.string())).search(pa.array([near]), 31)] == [[], [], []]
    phash = ["8" * 16, "f0f0f0f0f0f0f0f0", "f0f0f0f0f0f0f0f3"]
    found = PHASH.index(pa.array(phash)).search(pa.array(["9" * 16, "f0f0f0f0f0f0f0f1"]), 8)
    assert [a.tolist() for a in found] == [[1, 1], [1, 2], [1, 1]]  # nearest first


def test_near_index_refuses_thresholds_it_is_not_exact_for():
    with pytest.raises(ValueError, match="exactly up to 31 bits"):
        PDQ.index(pa.array(["0" * 64])).search(pa.array(["0" * 64]), 32)


@pytest.mark.parametrize("signal", list(SIGNAL_TYPES.values()), ids=list(SIGNAL_TYPES))
def test_signal_types_normalise_hash_strings_as_hma_does(signal):
    for example in signal.examples:
        assert signal.normalize(example) == example
        # HMA's validators strip and lowercase: upper case is the same hash
        assert signal.normalize(f"  {example.upper()}\n") == example
    with pytest.raises(ValueError, match=f"not a {signal.name} hash: expected {signal.bits // 4} hex characters"):
        signal.normalize(signal.examples[0][:-1])
    with pytest.raises(ValueError, match=f"not a {signal.name} hash"):
        signal.normalize("g" * (signal.bits // 4))
