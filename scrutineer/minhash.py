"""MinHash signatures and LSH band keys of texts, for near-duplicate captions (``dedup``'s
``near_caption``).

A caption (its key: lowercased, whitespace collapsed, as ``duplicate.caption`` has it) is cut into
shingles, character or word n-grams; ``rensa``'s ``RMinHash`` (Rust; ``datasketch`` is the
reference implementation, and the tests compare the two) makes a signature of ``num_perm``
32-bit minima. The signature is cut into ``bands`` bands of ``rows`` values, and each band is
hashed to a 64-bit key: two captions share a band key with probability ``1 - (1 - J^rows)^bands``
for Jaccard similarity ``J`` (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, §3.4).
``bands`` and ``rows`` are chosen for a threshold as ``datasketch.MinHashLSH`` chooses them:
minimising the sum of the false-positive and false-negative areas (:func:`lsh_bands`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

#: Odd 64-bit multiplier of the band hash (the golden ratio's, as in splitmix64).
_MIX = np.uint64(0x9E3779B97F4A7C15)


@cache
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows)``, ``bands * rows <= num_perm``, minimising the probability mass of false
    positives (Jaccard below ``threshold`` sharing a band) plus false negatives (above it sharing
    none), each weighted 0.5: datasketch's ``MinHashLSH`` choice, integrated here on a 1,001-point
    grid instead of with scipy."""
    grid = np.linspace(0.0, 1.0, 1001)
    below, above = grid <= threshold, grid >= threshold
    best, choice = np.inf, (1, 1)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            shared = 1 - (1 - grid**rows) ** bands
            error = np.trapezoid(shared[below], grid[below]) + np.trapezoid(1 - shared[above], grid[above])
            if error < best:
                best, choice = error, (bands, rows)
    return choice


@dataclass(frozen=True)
class Shingling:
    """How a caption becomes a set of shingles: ``ngram`` characters or words at a time."""

    kind: Literal["char", "word"]
    ngram: int

    def __call__(self, text: str) -> list[str]:
        """The shingles of ``text`` (a caption key); the whole text when it is shorter than one."""
        units = text if self.kind == "char" else text.split(" ")
        if len(units) <= self.ngram:
            return [text]
        joiner = "" if self.kind == "char" else " "
        return [joiner.join(units[i : i + self.ngram]) for i in range(len(units) - self.ngram + 1)]


def signatures(texts: list[str], shingling: Shingling, num_perm: int, seed: int) -> np.ndarray:
    """The MinHash signatures of ``texts``: a ``(len(texts), num_perm)`` ``uint32`` array
    (``rensa.RMinHash`` with ``seed``)."""
    from rensa import RMinHash

    if not texts:
        return np.empty((0, num_perm), np.uint32)
    matrix = RMinHash.digest_matrix_from_token_sets([shingling(t) for t in texts], num_perm, seed)
    return np.array(matrix.to_rows(), dtype=np.uint32)


def band_keys(minhashes: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """A ``(n, bands)`` ``uint64`` array: each band's ``rows`` values hashed, with the band's
    number, by multiply-and-add in 64 bits (two signatures share a key when they agree on the band,
    and, rarely, by collision; candidates are verified against the signatures)."""
    values = minhashes[:, : bands * rows].reshape(len(minhashes), bands, rows).astype(np.uint64)
    keys = np.broadcast_to(np.arange(bands, dtype=np.uint64) + np.uint64(1), values.shape[:2]).copy()
    with np.errstate(over="ignore"):
        for j in range(rows):
            keys = keys * _MIX + values[:, :, j]
    return keys
