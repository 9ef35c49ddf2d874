"""Range search of perceptual hashes against a bank (exact signal types are matched by a DuckDB
join on the bank's entries instead: see ``detectors/content_hashlist.py``).

Each perceptual :class:`~scrutineer.matching.signals.SignalType` makes the index of its banks
(:meth:`~scrutineer.matching.signals.SignalType.index`): PDQ (256 bits) by multi-index hashing
(:class:`scrutineer.matching.mih.MultiIndexHash`, exact up to 31 bits; a 1M-entry bank against 1M
hashes in about a minute on 2 cores, bench/pdq_match.py), pHash (64 bits) by an exhaustive faiss
``IndexBinaryFlat`` search (:class:`FlatIndex`, cheap at 8 bytes a code). :class:`NearIndex` takes
hash strings and searches in chunks of queries, so memory stays bounded. Both are exact: every
entry within the threshold is found.
"""

from __future__ import annotations

from typing import Protocol

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.matching.codes import hex_codes
from scrutineer.matching.mih import MultiIndexHash

QUERY_CHUNK = 65_536


class CodeIndex(Protocol):
    """An exact range-search index over ``(n, bits // 8)`` uint8 codes."""

    def search(self, queries: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (query row, entry row, distance in bits) within ``threshold`` bits, as int64 arrays."""
        ...


class FlatIndex:
    """An exhaustive exact range search (faiss ``IndexBinaryFlat``): every entry against every
    query, cheap for 64-bit codes.

    Args:
        codes: ``(n, bits // 8)`` uint8 codes.
    """

    def __init__(self, codes: np.ndarray) -> None:
        self.index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
        self.index.add(codes)

    def search(self, queries: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`CodeIndex.search`, ordered by query row."""
        lims, distances, labels = self.index.range_search(queries, threshold + 1)  # faiss: distance < radius
        rows = np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64))
        return rows, labels.astype(np.int64), distances.astype(np.int64)


#: The index of each kind of range search a signal type names (:attr:`SignalType.search
#: <scrutineer.matching.signals.SignalType.search>`).
ENGINES: dict[str, type[CodeIndex]] = {"multi-index hashing": MultiIndexHash, "exhaustive": FlatIndex}


class NearIndex:
    """A perceptual bank's entries, indexed once and searched many times; made by
    :meth:`scrutineer.matching.signals.SignalType.index`.

    Args:
        name: the signal type's name (for messages).
        bits: width of a hash, bits.
        max_threshold: largest threshold the index is exact for, bits.
        engine: the range-search index of the codes (:data:`ENGINES`).
        entries: the bank's normalised hash strings.
    """

    def __init__(self, name: str, bits: int, max_threshold: int, engine: type[CodeIndex], entries: pa.Array) -> None:
        self.name, self.bits, self.max_threshold = name, bits, max_threshold
        self.size = len(entries)
        self.index = engine(hex_codes(entries, bits))

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
        if not 0 <= threshold <= self.max_threshold:
            raise ValueError(f"{self.name} is searched exactly up to {self.max_threshold} bits, not {threshold}")
        present = pc.indices_nonzero(pc.is_valid(queries)).to_numpy()
        parts = [np.empty(0, np.int64)] * 3
        if self.size == 0 or len(present) == 0:
            return tuple(parts)
        out = []
        for start in range(0, len(present), QUERY_CHUNK):
            chunk = present[start : start + QUERY_CHUNK]
            qi, entry, distance = self.index.search(hex_codes(queries.take(pa.array(chunk)), self.bits), threshold)
            out.append((chunk[qi], entry, distance))
        qi, entry, distance = (np.concatenate([o[k] for o in out]) for k in range(3))
        order = np.lexsort((entry, distance, qi))
        return qi[order], entry[order], distance[order]
