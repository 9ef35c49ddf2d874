"""Signal types: what is known about each kind of hash a bank can hold, in one place, in the style
of HMA's signal types (facebook/ThreatExchange, ``python-threatexchange/threatexchange/
signal_type/``): the name, how a hash string is validated and normalised, its width, its default
match threshold and the source of that threshold, the index a bank of it is searched with (as
HMA's ``SignalType.get_index_cls``: :meth:`SignalType.index`), and a few example hashes for tests.
The parameters of a PDQ match (:class:`PdqParams`) are declared once here, for every detector that
compares PDQ hashes.

Banks, matching, config validation and the detectors ask the signal type rather than spelling
these facts again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from scrutineer.matching.search import NearIndex

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class SignalType:
    """One signal type.

    Attributes:
        name: HMA's name (``url_md5``, ``md5``, ``sha1``, ``sha256``, ``pdq``, ``phash``).
        bits: width of a hash, bits; its string is ``bits // 4`` hex characters.
        of: what is hashed: ``url`` (the sample's URL) or ``content`` (the image bytes).
        search: how a bank is searched: ``join`` (equality, a DuckDB join on the entries),
            ``multi-index hashing`` (exact Hamming range search, :mod:`scrutineer.matching.mih`) or
            ``exhaustive`` (faiss ``IndexBinaryFlat``: every entry, cheap for 64-bit codes); the
            last two through :meth:`index`.
        default_threshold: default match distance, bits of Hamming distance, inclusive (0 for
            exact signals).
        max_threshold: largest threshold the index is exact for, bits.
        threshold_source: where the default comes from.
        examples: valid hashes, for tests.
    """

    name: str
    bits: int
    of: Literal["url", "content"]
    search: Literal["join", "multi-index hashing", "exhaustive"]
    examples: tuple[str, ...]
    default_threshold: int = 0
    max_threshold: int = 0
    threshold_source: str = "exact match"

    @property
    def exact(self) -> bool:
        """Matched by equality only."""
        return self.search == "join"

    def index(self, entries: pa.Array) -> NearIndex:
        """The range-search index of a bank of this signal type (:attr:`search`).

        Args:
            entries: the bank's normalised hash strings.

        Raises:
            ValueError: an exact signal type (those are joined, not searched).
        """
        if self.exact:
            raise ValueError(f"{self.name} is matched by equality, not by range search")
        # start-up: search imports numba and faiss (~0.45 s, as much as the rest of a command's
        # start); only a scan matching a perceptual bank searches
        from scrutineer.matching.search import ENGINES, NearIndex

        return NearIndex(self.name, self.bits, self.max_threshold, ENGINES[self.search], entries)

    def normalize(self, value: str) -> str:
        """A hash string in its stored form: surrounding whitespace stripped, hex lowercased (HMA's
        validators accept upper case and lowercase it).

        Raises:
            ValueError: not hex of this signal type's length; the message says which.
        """
        hexed = value.strip().lower()
        want = self.bits // 4
        if len(hexed) != want or not _HEX.fullmatch(hexed):
            raise ValueError(f"not a {self.name} hash: expected {want} hex characters, got {value[:80]!r}")
        return hexed


URL_MD5 = SignalType(
    "url_md5",
    128,
    "url",
    "join",
    examples=("5d41402abc4b2a76b9719d911017c592",),
)
MD5 = SignalType("md5", 128, "content", "join", examples=("d41d8cd98f00b204e9800998ecf8427e",))
SHA1 = SignalType("sha1", 160, "content", "join", examples=("da39a3ee5e6b4b0d3255bfef95601890afd80709",))
SHA256 = SignalType(
    "sha256", 256, "content", "join", examples=("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",)
)
PDQ = SignalType(
    "pdq",
    256,
    "content",
    "multi-index hashing",
    examples=("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",),
    default_threshold=31,
    max_threshold=31,
    threshold_source="Meta's PDQ documentation (facebook/ThreatExchange pdq/): a match is within 31 bits, with quality >= 50",
)
PHASH = SignalType(
    "phash",
    64,
    "content",
    "exhaustive",
    examples=("d1d1b9b1a3a18785",),
    default_threshold=10,
    max_threshold=64,
    threshold_source="imagededup's default max_distance_threshold for 64-bit hashes (idealo/imagededup, Hashing.find_duplicates)",
)

#: Every signal type by name.
SIGNAL_TYPES: dict[str, SignalType] = {s.name: s for s in (URL_MD5, MD5, SHA1, SHA256, PDQ, PHASH)}
#: Signal types of image bytes, in the order their columns appear in a content batch.
CONTENT_SIGNALS = tuple(s.name for s in SIGNAL_TYPES.values() if s.of == "content")
#: PDQ hashes of lower quality never match (Meta's PDQ documentation).
PDQ_MIN_QUALITY = 50


class PdqParams(BaseModel):
    """How two PDQ hashes match: the parameters of every detector comparing them (a bank's entries,
    ``content_hashlist``; each other, ``dedup``'s ``near_image``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pdq_threshold: int = Field(
        PDQ.default_threshold, ge=0, le=PDQ.max_threshold,
        description=f"PDQ distance, bits, inclusive, within which two hashes match (an image and a bank entry, or two near-duplicate images). "
        f"Default: {PDQ.threshold_source}.",
    )
    pdq_min_quality: int = Field(PDQ_MIN_QUALITY, ge=0, le=100, description="PDQ hashes of lower quality never match (Meta's PDQ documentation).")


def signal_type(name: str) -> SignalType:
    """The signal type called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return SIGNAL_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown signal type {name!r}; known: {', '.join(SIGNAL_TYPES)}") from None
