"""Range search of perceptual hashes against a bank (exact signal types are matched by a DuckDB
join on the bank's entries instead: see ``detectors/content_hashlist.py``).

Each perceptual :class:`~scrutineer.matching.signals.SignalType` says how its banks are indexed: PDQ
(256 bits) by multi-index hashing (:class:`scrutineer.matching.mih.MultiIndexHash`, exact up to 31 bits; a
1M-entry bank against 1M hashes in about a minute on 2 cores, bench/pdq_match.py), pHash (64 bits)
by an exhaustive faiss ``IndexBinaryFlat`` search (cheap at 8 bytes a code), in chunks of queries so
memory stays bounded. Both are exact: every entry within the threshold is found.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.matching.signals import SignalType

QUERY_CHUNK = 65_536


def codes(hashes: list[str], bits: int) -> np.ndarray:
    """``(n, bits // 8)`` uint8 matrix of hex hash strings, first hex digit most significant."""
    return np.frombuffer(bytes.fromhex("".join(hashes)), dtype=np.uint8).reshape(len(hashes), bits // 8)


class NearIndex:
    """A perceptual bank's entries, indexed once and searched many times.

    Args:
        signal: a signal type whose ``index`` is ``multi-index hashing`` or ``exhaustive``.
        entries: the bank's normalised hash strings.

    Raises:
        ValueError: an exact signal type (those are joined, not searched).
    """

    def __init__(self, signal: SignalType, entries: pa.Array) -> None:
        if signal.exact:
            raise ValueError(f"{signal.name} is matched by equality, not by range search")
        self.signal = signal
        self.size = len(entries)
        bank = codes(entries.to_pylist(), signal.bits)
        if signal.index == "multi-index hashing":
            from scrutineer.matching.mih import MultiIndexHash

            self.index = MultiIndexHash(bank)
        else:
            import faiss

            self.index = faiss.IndexBinaryFlat(signal.bits)
            self.index.add(bank)

    def search(self, queries: pa.Array, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query, entry) pair within ``threshold`` bits.

        Args:
            queries: hash strings of this signal type; nulls never match.
            threshold: bits of Hamming distance, inclusive, at most the signal's ``max_threshold``.

        Returns:
            int64 arrays ``(query position, entry position, distance in bits)``, ordered by query
            position, then distance, then entry.

        Raises:
            ValueError: ``threshold`` above the signal type's ``max_threshold``.
        """
        if not 0 <= threshold <= self.signal.max_threshold:
            raise ValueError(f"{self.signal.name} is searched exactly up to {self.signal.max_threshold} bits, not {threshold}")
        present = pc.indices_nonzero(pc.is_valid(queries)).to_numpy()
        parts = [np.empty(0, np.int64)] * 3
        if self.size == 0 or len(present) == 0:
            return tuple(parts)
        out = []
        for start in range(0, len(present), QUERY_CHUNK):
            chunk = present[start : start + QUERY_CHUNK]
            q = codes(queries.take(pa.array(chunk)).to_pylist(), self.signal.bits)
            if self.signal.index == "multi-index hashing":
                qi, entry, distance = self.index.search(q, threshold)
            else:
                lims, distances, labels = self.index.range_search(q, threshold + 1)  # faiss: distance < radius
                qi = np.repeat(np.arange(len(chunk)), np.diff(lims).astype(np.int64))
                entry, distance = labels.astype(np.int64), distances.astype(np.int64)
            out.append((chunk[qi], entry, distance))
        qi, entry, distance = (np.concatenate([o[k] for o in out]) for k in range(3))
        order = np.lexsort((entry, distance, qi))
        return qi[order], entry[order], distance[order]
