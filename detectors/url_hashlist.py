"""``url_hashlist``: URLs whose HMA ``url_md5`` is on a URL hash bank."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.core.banks import URL_MD5_SIMPLE_REGEX, url_md5
from scrutineer.detectors.base import Detector, Reason, empty_findings, evidence_json
from scrutineer.samples.domains import after_scheme


class UrlHashlist(Detector):
    """Flags ``hash_match.url``: the sample's URL, normalised as HMA/ThreatExchange's ``url_md5``
    signal (lowercase, leading ``scheme://`` removed, UTF-8, MD5 hex), is an entry of a ``url_md5``
    bank. Matched by a DuckDB join on the banks' entries.

    One finding per (row, bank) match; evidence ``{"bank", "bank_version", "signal", "entry",
    "distance"}`` (``entry``: the matched ``url_md5``; ``distance`` 0); restricted.
    """

    name = "url_hashlist"
    version = "2"
    reasons = {"hash_match.url": Reason(True, "URL on a hash list")}
    signals = frozenset({"url_md5"})

    def setup(self) -> None:
        bank = pa.concat_tables(
            pa.table(
                {
                    "hash": b.entries,
                    "bank": pa.repeat(pa.scalar(b.ref.name), len(b.entries)),
                    "bank_version": pa.repeat(pa.scalar(b.ref.version), len(b.entries)),
                }
            )
            for b in self.ctx.banks
        )
        self.db.register("bank_arrow", bank)
        self.db.execute("CREATE TABLE bank_entries AS SELECT * FROM bank_arrow")
        self.db.unregister("bank_arrow")

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        # Simple URLs (URL_MD5_SIMPLE_REGEX: printable ASCII, so ASCII lowercasing is HMA's
        # lowercasing) are normalised with Arrow and hashed and matched in DuckDB: 1.6x faster
        # than doing it all in SQL (bench/scan_metadata.py). Any other URL is hashed by url_md5.
        urls = batch.column("url")
        simple = pc.fill_null(pc.match_substring_regex(urls, URL_MD5_SIMPLE_REGEX), False)
        at = pc.indices_nonzero(simple)
        hashed = pa.table({"i": at, "rest": after_scheme(pc.ascii_lower(urls.take(at)))})
        other = pc.indices_nonzero(pc.and_(pc.is_valid(urls), pc.invert(simple)))
        digests = pa.table({"i": other, "hash": pa.array([url_md5(u) for u in urls.take(other).to_pylist()], pa.string())})
        hits = self.sql(
            "SELECT i, bank, bank_version, hash FROM (SELECT i, md5(rest) AS hash FROM hashed UNION ALL SELECT i, hash FROM digests) "
            "JOIN bank_entries USING (hash) ORDER BY i, bank",
            hashed=hashed,
            digests=digests,
        )
        if hits.num_rows == 0:
            return empty_findings()
        evidence = [
            evidence_json(bank=b, bank_version=v, signal="url_md5", entry=h, distance=0)
            for b, v, h in zip(*(hits.column(c).to_pylist() for c in ("bank", "bank_version", "hash")))
        ]
        rows = pa.Table.from_batches([batch]).take(hits.column("i"))
        return self.findings(rows, "hash_match.url", pa.array(evidence, pa.string()))
