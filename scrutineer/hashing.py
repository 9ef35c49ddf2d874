"""Content hashes of image bytes, computed in memory (DESIGN.md "Hash and drop").

:func:`hash_content` takes the bytes as served and returns their exact digests (MD5, SHA-1,
SHA-256) and, when they decode as an image, its perceptual hashes: PDQ (Meta's 256-bit hash with
its quality score, via ``pdqhash``) and pHash (64-bit DCT hash, via ``imagehash``). The bytes are
never written anywhere and never appear in an error message. Hash strings follow HMA's signal
types: lowercase hex; PDQ as 64 hex characters read first bit most significant (as HMA's
``pdq_hasher`` writes ``pdqhash.compute``'s vector); pHash as ``imagehash``'s 16-character string.

JPEGs are decoded at full size: Pillow's ``draft()`` (DCT-domain downscaling) would make decoding
several times cheaper, but at 1/2 scale it moved PDQ by 4-34 bits on the UKBench images in
``../shared/data`` (pHash by 0-2), so a bank's PDQ entries, computed at full size, could be missed.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import asdict, dataclass

import numpy as np

#: Pillow's decompression-bomb guard: images above this many pixels are refused (Pillow warns
#: above it and raises above twice it; here both refuse). 89,478,485 is Pillow's own default.
MAX_IMAGE_PIXELS = 89_478_485


@dataclass(frozen=True)
class ContentHashes:
    """Hashes of one body. ``decode_error`` is None when the bytes decoded as an image; then
    ``pdq``, ``pdq_quality`` (0-100), ``phash``, ``width`` and ``height`` (pixels) are set."""

    md5: str
    sha1: str
    sha256: str
    bytes: int
    pdq: str | None = None
    pdq_quality: int | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    decode_error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def pdq_hex(vector: np.ndarray) -> str:
    """A PDQ bit vector (256 values 0/1, first = most significant) as 64 lowercase hex chars."""
    return np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes().hex()


def hash_content(body: bytes) -> ContentHashes:
    """Exact and perceptual hashes of ``body`` (an image as served, in memory).

    Returns:
        :class:`ContentHashes`. A body that is not a decodable image (HTML, truncated or corrupt
        data, more than :data:`MAX_IMAGE_PIXELS` pixels) gets its exact digests and a
        ``decode_error`` naming the problem (never the bytes); it does not raise.
    """
    exact = ContentHashes(
        md5=hashlib.md5(body).hexdigest(),
        sha1=hashlib.sha1(body).hexdigest(),
        sha256=hashlib.sha256(body).hexdigest(),
        bytes=len(body),
    )
    import imagehash
    import pdqhash
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
            with Image.open(io.BytesIO(body)) as image:
                width, height = image.size
                rgb = image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _with(exact, decode_error=f"image larger than {MAX_IMAGE_PIXELS:,} pixels (decompression-bomb limit)")
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad data; none carry the bytes
        return _with(exact, decode_error=f"not a decodable image: {type(e).__name__}")
    vector, quality = pdqhash.compute(np.asarray(rgb))
    return _with(
        exact,
        pdq=pdq_hex(vector),
        pdq_quality=int(quality),
        phash=str(imagehash.phash(rgb)),
        width=width,
        height=height,
    )


def _with(base: ContentHashes, **fields) -> ContentHashes:
    return ContentHashes(**{**base.as_dict(), **fields})


def hamming(a: str, b: str) -> int:
    """Hamming distance in bits between two equal-length hex hash strings."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
