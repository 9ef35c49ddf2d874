"""MinHash LSH band keys of texts, for near-duplicate captions (``dedup``'s ``near_caption``), and
the shingles they are made of.

A caption (its key: lowercased, whitespace collapsed, as ``duplicate.caption`` has it) is cut into
shingles, character or word n-grams; ``rensa``'s ``RMinHash`` (Rust; ``datasketch`` is the
reference implementation, and the tests compare the two) makes a signature of ``num_perm``
32-bit minima. The signature is cut into ``bands`` bands of ``rows`` values, and each band is
hashed to a 64-bit key: two captions share a band key with probability ``1 - (1 - J^rows)^bands``
for Jaccard similarity ``J`` (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, §3.4).
``bands`` and ``rows`` are chosen for a threshold as ``datasketch.MinHashLSH`` chooses them,
minimising the weighted false-positive and false-negative areas (:func:`lsh_bands`), with false
negatives weighted 0.9: candidates are verified on their exact Jaccard similarity, so a false
positive costs one check, and a false negative a duplicate missed (at 128 permutations and 0.8,
14 bands of 9 rows make a pair at 0.8 a candidate with probability 0.87, at 0.85 0.97).

Only the first :data:`MAX_CHARS` characters of a caption key are shingled, signed and verified, so
a caption's cost is bounded whatever its length (issue 23: 40 captions of 1 MB each took the
scan to 2.65 GB of RSS, ~62 MB per MB of caption).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
from rensa import RMinHash

#: Odd 64-bit multiplier of the shingle and band hashes (the golden ratio's, as in splitmix64).
_MIX = np.uint64(0x9E3779B97F4A7C15)
#: Texts whose signatures :func:`minhashes` computes at once: rensa's digest matrix leaves only
#: through ``to_rows`` (a Python list of ints, ~28 bytes per value), so 4,096 texts at 128
#: permutations hold ~15 MB of them, where a 65,536-row batch would hold ~240 MB.
CHUNK = 4_096
#: Code points of all texts of one such chunk, at most (a longer text is a chunk alone): character
#: shingles hold ~80 bytes per code point while they are hashed, so ~85 MB.
CHUNK_CHARS = 1_048_576
#: Characters of a caption key that near-duplicate captions compare: its first 1,000. Models read
#: less: CLIP's text encoder (Radford et al. 2021, and open_clip's tokenizer) truncates to 77 BPE
#: tokens, a few hundred characters of English. Of the captions in ``../shared/data/metadata``,
#: 1 in 5,000 LAION-400M alt-texts is longer (the longest: 1,368 characters; 99.9% are at most
#: 590), and no COCO or CC3M caption (at most 235). The hash and the exact-duplicate caption key
#: still read the whole caption.
MAX_CHARS = 1_000
#: DuckDB expressions of the distinct shingles of a column ``{text}``, ``{n}`` (a column) characters or
#: words each (:meth:`Shingling.sql`).
SHINGLES_SQL = {
    "char": "list_distinct(list_transform(range(1, greatest(length({text}) - {n} + 2, 2)), lambda i: substr({text}, i, {n})))",
    "word": "CASE WHEN len(string_split({text}, ' ')) <= {n} THEN [{text}] ELSE list_distinct(list_transform("
    "range(1, len(string_split({text}, ' ')) - {n} + 2), lambda i: array_to_string(string_split({text}, ' ')[i:i + {n} - 1], ' '))) END",
}
#: Weights of false positives and false negatives in :func:`lsh_bands`.
FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


@cache
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows)``, ``bands * rows <= num_perm``, minimising the probability mass of false
    positives (Jaccard below ``threshold`` sharing a band) and false negatives (above it sharing
    none), weighted :data:`FALSE_POSITIVE_WEIGHT` and :data:`FALSE_NEGATIVE_WEIGHT`: datasketch's
    ``MinHashLSH`` choice with ``weights=(0.1, 0.9)``, integrated here on a 1,001-point grid
    instead of with scipy."""
    grid = np.linspace(0.0, 1.0, 1001)
    below, above = grid <= threshold, grid >= threshold
    best, choice = np.inf, (1, 1)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            shared = 1 - (1 - grid**rows) ** bands
            error = FALSE_POSITIVE_WEIGHT * np.trapezoid(shared[below], grid[below]) + FALSE_NEGATIVE_WEIGHT * np.trapezoid(1 - shared[above], grid[above])
            if error < best:
                best, choice = error, (bands, rows)
    return choice


@dataclass(frozen=True)
class Shingling:
    """How a caption becomes a set of shingles: ``ngram`` characters or words at a time."""

    kind: Literal["char", "word"]
    ngram: int

    def sql(self, text: str, n: str) -> str:
        """A DuckDB expression of the distinct shingles of the column ``text``, as :meth:`__call__`
        cuts them (characters counted as code points, as Python does), ``n`` units each: ``n`` is a
        column holding :attr:`ngram` (bound as a parameter where the expression is used)."""
        return SHINGLES_SQL[self.kind].format(text=text, n=n)

    def __call__(self, text: str) -> list[str]:
        """The shingles of ``text`` (a caption key); the whole text when it is shorter than one."""
        units = text if self.kind == "char" else text.split(" ")
        if len(units) <= self.ngram:
            return [text]
        joiner = "" if self.kind == "char" else " "
        return [joiner.join(units[i : i + self.ngram]) for i in range(len(units) - self.ngram + 1)]


def minhashes(texts: list[str], shingling: Shingling, num_perm: int, seed: int) -> np.ndarray:
    """The MinHash signatures of ``texts``: a ``(len(texts), num_perm)`` ``uint32`` array
    (``rensa.RMinHash`` with ``seed``). Character shingles are hashed here with numpy, from the
    texts' code points at once (:func:`char_shingle_hashes`), and handed to rensa as one buffer:
    no Python object per shingle; word shingles go to rensa as strings."""
    out = np.empty((len(texts), num_perm), np.uint32)
    for start, stop in _chunks(texts):  # to_rows makes a Python int per value, and shingles take memory: a chunk at a time
        chunk = texts[start:stop]
        if shingling.kind == "char":
            hashes, offsets = char_shingle_hashes(chunk, shingling.ngram)
            matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, num_perm, seed)
        else:
            matrix = RMinHash.digest_matrix_from_token_sets([shingling(t) for t in chunk], num_perm, seed)
        out[start : start + len(chunk)] = matrix.to_rows()
    return out


def _chunks(texts: list[str]) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive slices of ``texts`` of at most :data:`CHUNK` texts and
    :data:`CHUNK_CHARS` code points (a longer text alone)."""
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)))
    start = 0
    while start < len(texts):
        budget = (ends[start - 1] if start else 0) + CHUNK_CHARS
        stop = min(max(int(np.searchsorted(ends, budget, side="right")), start + 1), start + CHUNK)
        yield start, stop
        start = stop


def char_shingle_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hashes of the character n-grams of each text (a text shorter than ``n`` is one
    shingle, itself), all texts' in one ``uint64`` array, and the ``uint64`` offsets of each
    text's run in it (``len(texts) + 1`` of them). An n-gram's hash depends on its code points
    only: ``h = (((c0 * M + c1) * M + c2) ...) * M + c(n-1)`` in 64 bits, the code points past a
    short text's end taken as 0."""
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    points = np.frombuffer("".join(texts).encode("utf-32-le"), np.uint32).astype(np.uint64)
    padded = np.concatenate([points, np.zeros(n, np.uint64)])
    every = np.zeros(len(points), np.uint64)  # the hash of the n code points from each position on
    with np.errstate(over="ignore"):
        for k in range(n):
            every = every * _MIX + padded[k : k + len(points)]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    counts = np.maximum(lengths - n + 1, 1)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # each text's first shingle in the output
    at = np.repeat(starts - first, counts) + np.arange(counts.sum())
    window = every[np.minimum(at, max(len(points) - 1, 0))] if len(points) else np.zeros(len(at), np.uint64)
    for i in np.flatnonzero(lengths < n):  # a short text is one shingle: its own code points, then zeros
        value = np.uint64(0)
        with np.errstate(over="ignore"):
            for k in range(n):
                value = value * _MIX + (np.uint64(ord(texts[i][k])) if k < lengths[i] else np.uint64(0))
        window[first[i]] = value
    offsets = np.concatenate([first, [counts.sum()]]).astype(np.uint64)
    return window, offsets


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
