"""``url_hashlist``: URLs whose HMA ``url_md5`` is on a URL hash bank."""

from __future__ import annotations

import pyarrow as pa

from scrutineer.banks import URL_MD5_SIMPLE_REGEX, url_md5
from scrutineer.detectors.base import Detector, empty_findings, evidence_json
from scrutineer.errors import ConfigError

#: True for URLs DuckDB can hash exactly as HMA does (see ``URL_MD5_SIMPLE_REGEX``); the md5 is
#: then that of ``lower(url)`` from just after its ``://``.
SIMPLE_URL_SQL = f"regexp_full_match(url, '{URL_MD5_SIMPLE_REGEX}')"
URL_MD5_SQL = "md5(lower(url[strpos(url, '://') + 3:]))"


class UrlHashlist(Detector):
    """Flags ``hash_match.url``: the sample's URL, normalised as HMA/ThreatExchange's ``url_md5``
    signal (lowercase, leading ``scheme://`` removed, UTF-8, MD5 hex), is on a ``url_md5`` bank.

    One finding per (row, bank) match; evidence ``{"bank", "bank_version"}``; restricted.
    """

    name = "url_hashlist"
    version = "1"

    def setup(self) -> None:
        banks = [b for b in self.ctx.banks if b.config.signal_type == "url_md5"]
        if not banks:
            raise ConfigError("url_hashlist needs at least one bank with signal_type: url_md5")
        bank = pa.concat_tables(
            pa.table(
                {
                    "hash": b.entries,
                    "bank": pa.array([b.config.name] * len(b.entries), pa.string()),
                    "bank_version": pa.array([b.config.version] * len(b.entries), pa.string()),
                }
            )
            for b in banks
        )
        self.db.register("bank_arrow", bank)
        self.db.execute("CREATE TABLE bank AS SELECT * FROM bank_arrow")
        self.db.unregister("bank_arrow")
        self.by_hash: dict[str, list[tuple[str, str]]] = {}
        for h, name, version in zip(*(bank.column(c).to_pylist() for c in ("hash", "bank", "bank_version"))):
            self.by_hash.setdefault(h, []).append((name, version))

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        # One pass: matches among simple URLs, plus every other URL for the Python path.
        rows = self.sql(
            f"""
            WITH b AS (SELECT row_index, sample_id, url, {SIMPLE_URL_SQL} AS simple FROM batch WHERE url IS NOT NULL),
                 h AS (SELECT *, CASE WHEN simple THEN {URL_MD5_SQL} END AS hash FROM b)
            SELECT h.row_index, h.sample_id, h.url, h.simple, k.bank, k.bank_version
            FROM h LEFT JOIN bank k USING (hash)
            WHERE NOT h.simple OR k.bank IS NOT NULL
            """,
            batch=batch,
        )
        if rows.num_rows == 0:
            return empty_findings()
        matches: dict[str, list] = {k: [] for k in ("row_index", "sample_id", "url", "bank", "bank_version")}
        for r, s, u, simple, bank, version in zip(*(col.to_pylist() for col in rows.columns)):
            hits = [(bank, version)] if simple else self.by_hash.get(url_md5(u), [])
            for name, ver in hits:
                for key, value in zip(matches, (r, s, u, name, ver)):
                    matches[key].append(value)
        found = pa.table(matches, schema=rows.drop_columns(["simple"]).schema).sort_by([("row_index", "ascending"), ("bank", "ascending")])
        if found.num_rows == 0:
            return empty_findings()
        evidence = pa.array(
            [evidence_json(bank=b, bank_version=v) for b, v in zip(found["bank"].to_pylist(), found["bank_version"].to_pylist())],
            pa.string(),
        )
        return self.findings(found, "hash_match.url", "takedown", evidence, restricted=True)
