"""``content_hashlist``: image bytes whose exact or perceptual hash is on a hash bank."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from scrutineer.detectors.base import Detector, Reason, empty_findings, evidence_json
from scrutineer.matching.signals import CONTENT_SIGNALS, PHASH, PdqParams
from scrutineer.observing.hashing import PDQ_DIHEDRAL

if TYPE_CHECKING:
    from scrutineer.matching.search import NearIndex

#: At most this many bank entries are named in one finding's evidence (nearest first).
EVIDENCE_ENTRIES = 10

#: How the labels of its reasons name each content signal type (:data:`scrutineer.matching.signals.CONTENT_SIGNALS`).
SIGNAL_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "pdq": "PDQ perceptual hash", "phash": "pHash perceptual hash"}


class ContentHashlistParams(PdqParams):
    """A PDQ match (:class:`~scrutineer.matching.signals.PdqParams`), and a pHash match."""

    phash_threshold: int = Field(
        PHASH.default_threshold, ge=0, le=PHASH.max_threshold, description=f"pHash match distance, bits, inclusive. Default: {PHASH.threshold_source}."
    )


class ContentHashlist(Detector):
    """Flags ``hash_match.md5``, ``hash_match.sha1``, ``hash_match.sha256``, ``hash_match.pdq`` and
    ``hash_match.phash``: the bytes a sample's URL served (or its tar held) hash to an entry of a
    bank of that signal type. Exact digests match by a DuckDB join on the banks' entries; PDQ within
    ``pdq_threshold`` bits (quality at least ``pdq_min_quality``) and pHash within
    ``phash_threshold`` bits, by the index their signal type makes
    (:meth:`scrutineer.matching.signals.SignalType.index`).

    One finding per (row, bank); restricted. Evidence ``{"bank", "bank_version", "signal", "entry",
    "distance"}`` names the nearest matching entry and its Hamming distance in bits (0 for exact
    signals); for perceptual signals ``"entries"`` lists every entry within the threshold, nearest
    first, as ``[entry, distance]`` pairs, at most :data:`EVIDENCE_ENTRIES` of them, and
    ``"more"`` counts the rest. With ``fetch.pdq_dihedral``, a PDQ bank entry also matches a
    rotated or mirrored copy: the image's 8 dihedral hashes are searched, the nearest of them
    decides, and ``"transform"`` names it (:data:`scrutineer.observing.hashing.PDQ_DIHEDRAL`: the transform
    that takes the image to the bank's, ``"original"`` for none).
    """

    name = "content_hashlist"
    version = "3"
    reasons = {f"hash_match.{s}": Reason(True, f"Image on a hash list ({SIGNAL_NAMES[s]})") for s in CONTENT_SIGNALS}
    Params = ContentHashlistParams
    needs = "content"
    signals = frozenset(CONTENT_SIGNALS)

    def setup(self) -> None:
        exact = [b for b in self.ctx.banks if b.ref.signal.exact]
        self.exact_signals = sorted({b.ref.signal_type for b in exact})
        if exact:
            entries = pa.concat_tables(
                pa.table(
                    {
                        "signal": pa.repeat(pa.scalar(b.ref.signal_type), len(b.entries)),
                        "hash": b.entries,
                        "bank": pa.repeat(pa.scalar(b.ref.name), len(b.entries)),
                        "bank_version": pa.repeat(pa.scalar(b.ref.version), len(b.entries)),
                    }
                )
                for b in exact
            )
            self.db.register("entries_arrow", entries)
            self.db.execute("CREATE TABLE bank_entries AS SELECT * FROM entries_arrow")
            self.db.unregister("entries_arrow")
        self.near = [(b, b.ref.signal.index(b.entries)) for b in self.ctx.banks if not b.ref.signal.exact]

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        content = pa.Table.from_batches([batch])
        found: list[tuple] = []  # (row, signal, bank, version, entry, distance, entries within the threshold, how many, transform)
        if self.exact_signals:
            union = " UNION ALL ".join(f"SELECT i, '{s}' AS signal, {s} AS hash FROM content" for s in self.exact_signals)
            indexed = content.select(self.exact_signals).append_column("i", pa.array(np.arange(content.num_rows)))
            hits = self.sql(f"SELECT i, signal, bank, bank_version, hash FROM ({union}) JOIN bank_entries USING (signal, hash)", content=indexed)
            found += [(i, s, b, v, h, 0, [], 1, None) for i, s, b, v, h in zip(*(hits.column(c).to_pylist() for c in ("i", "signal", "bank", "bank_version", "hash")))]
        for bank, index in self.near:
            found += self._near_matches(content, bank, index)
        if not found:
            return empty_findings()
        found.sort(key=lambda f: (f[0], f[1], f[2]))
        evidence = []
        for _, signal, bank, version, entry, distance, near, total, transform in found:
            extra = {"entries": near, "more": total - len(near)} if near else {}
            extra |= {"transform": transform} if transform else {}
            evidence.append(evidence_json(bank=bank, bank_version=version, signal=signal, entry=entry, distance=distance, **extra))
        return self.findings(
            content.take(pa.array([f[0] for f in found], pa.int64())),
            reason=pa.array([f"hash_match.{f[1]}" for f in found], pa.string()),
            evidence=pa.array(evidence, pa.string()),
        )

    def _near_matches(self, content: pa.Table, bank, index: NearIndex) -> list[tuple]:
        """Matches of one perceptual bank, one per row: the nearest entries over every query hash
        of the row (its PDQ's dihedral variants too, when stored)."""
        signal = bank.ref.signal_type
        threshold = self.params.phash_threshold
        queries = [content.column(signal).combine_chunks()]
        if signal == "pdq":
            threshold = self.params.pdq_threshold
            good = pc.fill_null(pc.greater_equal(content.column("pdq_quality"), self.params.pdq_min_quality), False)
            dihedral = content.column("pdq_dihedral").combine_chunks()
            if dihedral.null_count < len(dihedral):
                queries += [pc.list_element(dihedral, i) for i in range(len(PDQ_DIHEDRAL) - 1)]
            queries = [pc.if_else(good, q, pa.scalar(None, pa.string())) for q in queries]
        hits = []  # (row, distance, transform, entry)
        for transform, query in enumerate(queries):
            rows, entries, distances = index.search(query, threshold)
            hits += zip(rows.tolist(), distances.tolist(), [transform] * len(rows), entries.tolist())
        by_row: dict[int, dict[int, tuple[int, int]]] = {}  # row -> entry -> (distance, transform), the nearest
        for row, distance, transform, entry in sorted(hits):
            by_row.setdefault(row, {}).setdefault(entry, (distance, transform))
        out = []
        for row, matched in sorted(by_row.items()):
            ranked = sorted(matched.items(), key=lambda m: (m[1], m[0]))
            near = [[bank.entries[e].as_py(), d] for e, (d, _) in ranked[:EVIDENCE_ENTRIES]]
            transform = PDQ_DIHEDRAL[ranked[0][1][1]] if len(queries) > 1 else None
            out.append((row, signal, bank.ref.name, bank.ref.version, near[0][0], near[0][1], near, len(ranked), transform))
        return out
