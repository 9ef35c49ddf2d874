"""``content_hashlist``: image bytes whose exact or perceptual hash is on a hash bank."""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from detectors.base import Detector, empty_findings, evidence_json

from scrutineer.banks import Bank
from scrutineer.errors import ConfigError
from scrutineer.matching import DEFAULT_THRESHOLDS, BankIndex

CONTENT_SIGNALS = ("md5", "sha1", "sha256", "pdq", "phash")


class ContentHashlistParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pdq_threshold: int = Field(
        DEFAULT_THRESHOLDS["pdq"], ge=0, le=31, description="Bits of Hamming distance (inclusive); at most 31, Meta's recommended cut-off."
    )
    pdq_min_quality: int = Field(50, ge=0, le=100, description="PDQ hashes of lower quality never match (Meta's PDQ docs).")
    phash_threshold: int = Field(DEFAULT_THRESHOLDS["phash"], ge=0, le=64, description="Bits of Hamming distance (inclusive).")


def bank_index(bank: Bank) -> BankIndex:
    """The bank's entries indexed for :func:`bank_matches` (build once per bank, search per batch)."""
    return BankIndex(bank.config.signal_type, bank.entries.to_pylist())


def bank_matches(index: BankIndex, content: pa.Table, params: ContentHashlistParams) -> list[tuple[int, int]]:
    """(row position in ``content``, distance in bits) of every row whose hash matches the bank
    behind ``index``.

    ``content`` has the hash columns of ``flows.content.CONTENT_SCHEMA`` (at least the bank's
    signal type, and ``pdq_quality`` for PDQ banks).
    """
    signal = index.signal_type
    queries = content.column(signal).to_pylist()
    if signal == "pdq":
        quality = content.column("pdq_quality").to_pylist()
        queries = [q if q is not None and (qq or 0) >= params.pdq_min_quality else None for q, qq in zip(queries, quality)]
    threshold = {"pdq": params.pdq_threshold, "phash": params.phash_threshold}.get(signal, 0)
    return [(qi, d) for qi, _, d in index.search(queries, threshold)]


class ContentHashlist(Detector):
    """Flags ``hash_match.<signal>`` (md5, sha1, sha256, pdq, phash): the bytes a sample's URL
    served hash to an entry of a bank of that signal type. Exact digests match by equality; PDQ
    within ``pdq_threshold`` bits (and quality ≥ ``pdq_min_quality``); pHash within
    ``phash_threshold`` bits. One finding per (row, bank); evidence ``{"bank", "bank_version",
    "signal", "distance"}``; restricted, action ``takedown``.
    """

    name = "content_hashlist"
    version = "1"
    reasons = {f"hash_match.{signal}": True for signal in CONTENT_SIGNALS}
    Params = ContentHashlistParams
    needs = "content"

    def setup(self) -> None:
        banks = [b for b in self.ctx.banks if b.config.signal_type in CONTENT_SIGNALS]
        if not banks:
            raise ConfigError(f"content_hashlist needs at least one bank with signal_type in {list(CONTENT_SIGNALS)}")
        self.indexes = [(b, bank_index(b)) for b in banks]

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        content = pa.Table.from_batches([batch])
        rows, evidence, reasons = [], [], []
        for bank, index in self.indexes:
            for position, distance in bank_matches(index, content, self.params):
                rows.append(position)
                reasons.append(f"hash_match.{bank.config.signal_type}")
                evidence.append(
                    evidence_json(bank=bank.config.name, bank_version=bank.config.version, signal=bank.config.signal_type, distance=distance)
                )
        if not rows:
            return empty_findings()
        return self.findings(
            content.take(pa.array(rows, pa.int64())),
            reason=pa.array(reasons, pa.string()),
            action="takedown",
            evidence=pa.array(evidence, pa.string()),
            restricted=True,
        )
