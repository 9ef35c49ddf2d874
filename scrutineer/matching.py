"""Matching content hashes against hash banks.

Exact signal types (``md5``, ``sha1``, ``sha256``) match by equality. Perceptual ones (``pdq``,
256 bits; ``phash``, 64 bits) match within a Hamming distance, with an exact search over a faiss
``IndexBinaryFlat`` (the index HMA's PDQ matcher uses; exact, multithreaded, no training), in
chunks of queries so memory stays bounded.
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


def match(signal_type: str, queries: Sequence[str | None], entries: Sequence[str], threshold: int = 0) -> Iterator[tuple[int, int, int]]:
    """Yield ``(query index, entry index, distance in bits)`` for every query within ``threshold``
    bits of an entry (exact types: equal strings, distance 0). None queries never match.

    Raises:
        ValueError: an unknown signal type, or hash strings of the wrong length.
    """
    if signal_type in ("md5", "sha1", "sha256", "url_md5"):
        position = {h: i for i, h in enumerate(entries)}
        for qi, q in enumerate(queries):
            if q is not None and q in position:
                yield qi, position[q], 0
        return
    if signal_type not in BITS:
        raise ValueError(f"unknown signal type {signal_type!r}")
    if not entries:
        return
    import faiss

    bits = BITS[signal_type]
    index = faiss.IndexBinaryFlat(bits)
    index.add(_codes(entries, bits))
    present = [i for i, q in enumerate(queries) if q is not None]
    for start in range(0, len(present), QUERY_CHUNK):
        chunk = present[start : start + QUERY_CHUNK]
        lims, distances, labels = index.range_search(_codes([queries[i] for i in chunk], bits), threshold + 1)
        for j, qi in enumerate(chunk):
            for k in range(lims[j], lims[j + 1]):
                yield qi, int(labels[k]), int(distances[k])
