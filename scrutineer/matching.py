"""Matching content hashes against hash banks.

Exact signal types (``md5``, ``sha1``, ``sha256``) match by equality. Perceptual ones match within
a Hamming distance, exactly: ``pdq`` (256 bits) by multi-index hashing
(:class:`scrutineer.mih.MultiIndexHash`, exact up to 31 bits; a 1M-entry bank against 1M hashes
in minutes on 2 cores, bench/pdq_match.py), ``phash`` (64 bits) by an exhaustive faiss
``IndexBinaryFlat`` search (cheap at 8 bytes a code), in chunks of queries so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

BITS = {"pdq": 256, "phash": 64}
#: Default thresholds (bits of Hamming distance, inclusive). PDQ: 31 of 256 bits, with quality
#: at least 50, as Meta's PDQ documentation recommends (facebook/ThreatExchange, ``pdq/``).
#: pHash: 8 of 64 bits, a common near-duplicate cut-off for imagehash's pHash.
DEFAULT_THRESHOLDS = {"pdq": 31, "phash": 8}
QUERY_CHUNK = 65_536


def _codes(hashes: Sequence[str], bits: int) -> np.ndarray:
    """``(n, bits // 8)`` uint8 matrix of hex hash strings, first hex digit most significant."""
    return np.frombuffer(bytes.fromhex("".join(hashes)), dtype=np.uint8).reshape(len(hashes), bits // 8)


class BankIndex:
    """A bank's entries ready for matching, built once and searched many times: a dict for exact
    signal types, a :class:`~scrutineer.mih.MultiIndexHash` for PDQ, a faiss ``IndexBinaryFlat``
    for pHash.

    Raises:
        ValueError: an unknown signal type, or hash strings of the wrong length.
    """

    def __init__(self, signal_type: str, entries: Sequence[str]) -> None:
        self.signal_type = signal_type
        if signal_type in ("md5", "sha1", "sha256", "url_md5"):
            self.position = {h: i for i, h in enumerate(entries)}
            return
        if signal_type not in BITS:
            raise ValueError(f"unknown signal type {signal_type!r}")
        self.bits = BITS[signal_type]
        codes = _codes(entries, self.bits)
        if signal_type == "pdq":
            from scrutineer.mih import MultiIndexHash

            self.index = MultiIndexHash(codes)
            return
        import faiss

        self.index = faiss.IndexBinaryFlat(self.bits)
        self.index.add(codes)

    def search(self, queries: Sequence[str | None], threshold: int = 0) -> Iterator[tuple[int, int, int]]:
        """Yield ``(query index, entry index, distance in bits)`` for every query within
        ``threshold`` bits of an entry (exact types: equal strings, distance 0). None queries
        never match.

        Raises:
            ValueError: a PDQ threshold above 31 bits (see :mod:`scrutineer.mih`)."""
        if self.signal_type not in BITS:
            for qi, q in enumerate(queries):
                if q is not None and q in self.position:
                    yield qi, self.position[q], 0
            return
        if self.index.ntotal == 0:
            return
        present = [i for i, q in enumerate(queries) if q is not None]
        for start in range(0, len(present), QUERY_CHUNK):
            chunk = present[start : start + QUERY_CHUNK]
            codes = _codes([queries[i] for i in chunk], self.bits)
            if self.signal_type == "pdq":
                for j, entry, distance in zip(*(a.tolist() for a in self.index.search(codes, threshold))):
                    yield chunk[j], entry, distance
                continue
            lims, distances, labels = self.index.range_search(codes, threshold + 1)  # faiss: distance < radius
            for j, qi in enumerate(chunk):
                for k in range(lims[j], lims[j + 1]):
                    yield qi, int(labels[k]), int(distances[k])
