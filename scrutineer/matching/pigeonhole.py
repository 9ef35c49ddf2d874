"""Binary codes (PDQ, pHash) as 64-bit words and as pigeonhole blocks, for near-duplicate images
(``dedup``'s ``near_image``).

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
import pyarrow as pa


def hex_codes(hexes: pa.Array, bits: int) -> np.ndarray:
    """``(n, bits // 8)`` uint8 codes of ``n`` hex strings (first byte most significant).

    Raises:
        ValueError: a null, or a string that is not ``bits // 4`` hex characters.
    """
    if hexes.null_count:
        raise ValueError("hex_codes takes no nulls")
    joined = "".join(hexes.to_pylist())
    if len(joined) != len(hexes) * bits // 4:
        raise ValueError(f"expected {bits // 4} hex characters per code")
    return np.frombuffer(bytes.fromhex(joined), np.uint8).reshape(len(hexes), bits // 8)


def words(codes: np.ndarray) -> np.ndarray:
    """``(n, bits // 64)`` uint64 words of ``(n, bits // 8)`` uint8 codes, the first word the
    most significant: the Hamming distance of two codes is the sum of their words' XOR popcounts."""
    return np.ascontiguousarray(codes).view(">u8").astype(np.uint64)


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
