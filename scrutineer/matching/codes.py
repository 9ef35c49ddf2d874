"""Binary codes (PDQ, pHash) in Hamming space: hex strings as byte codes and 64-bit words, and the
Hamming distance of two codes.

A ``bits``-bit hash is stored as ``bits // 4`` hex characters, the first the most significant
(HMA's and Meta's PDQ's convention); as a code it is ``bits // 8`` bytes in that order
(:func:`hex_codes`, which the range-search indexes and the pigeonhole blocks read), or ``bits //
64`` unsigned 64-bit words, the first the most significant (:func:`words`, which ``dedup`` keeps
in its signatures and compares in DuckDB with ``bit_count(xor(a, b))``).
"""

from __future__ import annotations

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


def hamming(a: str, b: str) -> int:
    """Hamming distance in bits between two equal-length hex hash strings."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
