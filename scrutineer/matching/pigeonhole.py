"""Pigeonhole blocks of binary codes (PDQ, pHash; :mod:`scrutineer.matching.codes`), for
near-duplicate images (``dedup``'s ``near_image``).

A ``bits``-bit code is cut into ``blocks`` contiguous blocks of as equal widths as can be (at most
64 bits each). Two codes within ``blocks - 1`` bits of each other differ in at most ``blocks - 1``
blocks, so at least one block is equal in both (the pigeonhole principle; Manku, Jain & Das Sarma,
"Detecting Near-Duplicates for Web Crawling", WWW 2007, use it for 64-bit simhashes): grouping
codes on ``(block index, block value)`` finds every such pair, and each candidate is then checked
on its exact Hamming distance. Pairs further apart are found only when some block happens to be
equal in both. Random codes share a given ``w``-bit block with probability ``2^-w``, so about
``blocks * n^2 / 2^(w+1)`` candidate pairs come from chance among ``n`` codes: 93,000 for 10M PDQ
codes in 8 blocks of 32 bits, 3 billion for 10M pHashes in 4 blocks of 16 bits.
"""

from __future__ import annotations

import itertools

import numpy as np


def block_bounds(bits: int, blocks: int) -> list[tuple[int, int]]:
    """``[(first bit, end bit)]`` of each block, widths differing by at most 1 bit.

    Raises:
        ValueError: fewer than 1 block, or blocks wider than 64 bits.
    """
    if blocks < 1 or -(-bits // blocks) > 64:
        raise ValueError(f"{blocks} blocks of a {bits}-bit code: need 1 or more, each at most 64 bits")
    edges = [round(i * bits / blocks) for i in range(blocks + 1)]
    return list(itertools.pairwise(edges))


def block_values(codes: np.ndarray, blocks: int) -> np.ndarray:
    """``(n, blocks)`` uint64: each code's blocks (:func:`block_bounds`), as unsigned integers."""
    n, width = codes.shape
    bits = np.unpackbits(codes, axis=1)
    out = np.empty((n, blocks), np.uint64)
    for i, (lo, hi) in enumerate(block_bounds(width * 8, blocks)):
        padded = np.zeros((n, 64), np.uint8)
        padded[:, 64 - (hi - lo) :] = bits[:, lo:hi]
        out[:, i] = np.packbits(padded, axis=1).view(">u8")[:, 0]
    return out
