"""``url_hashlist``: URLs whose HMA ``url_md5`` is on a URL hash bank."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from scrutineer.banks import URL_MD5_SCHEME_REGEX, URL_MD5_SIMPLE_REGEX, url_md5
from scrutineer.detectors.base import Detector, empty_findings, evidence_json
from scrutineer.errors import ConfigError

# A URL is hashed in DuckDB when it is printable ASCII of the simple shape (lower() then agrees
# with Python's); otherwise in Python with the reference normalisation.
SIMPLE_URL_SQL = f"regexp_full_match(url, '[\\x21-\\x7e]*') AND regexp_full_match(lower(url), '{URL_MD5_SIMPLE_REGEX}')"


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
        self.bank = pa.concat_tables(
            pa.table(
                {
                    "hash": b.entries,
                    "bank": pa.array([b.config.name] * len(b.entries), pa.string()),
                    "bank_version": pa.array([b.config.version] * len(b.entries), pa.string()),
                }
            )
            for b in banks
        )
        self.by_hash: dict[str, list[tuple[str, str]]] = {}
        for h, name, version in zip(*(self.bank.column(c).to_pylist() for c in ("hash", "bank", "bank_version"))):
            self.by_hash.setdefault(h, []).append((name, version))
        self.con = duckdb.connect()
        self.con.register("bank", self.bank)

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        self.con.register("batch", batch)
        fast = self.con.sql(
            f"""
            SELECT b.row_index, b.sample_id, b.url, k.bank, k.bank_version
            FROM (SELECT * FROM batch WHERE url IS NOT NULL AND {SIMPLE_URL_SQL}) b
            JOIN bank k ON k.hash = md5(regexp_replace(lower(b.url), '{URL_MD5_SCHEME_REGEX}', ''))
            """
        ).to_arrow_table()
        other = self.con.sql(
            f"SELECT row_index, sample_id, url FROM batch WHERE url IS NOT NULL AND NOT ({SIMPLE_URL_SQL})"
        ).to_arrow_table()
        self.con.unregister("batch")
        slow_rows: dict[str, list] = {k: [] for k in ("row_index", "sample_id", "url", "bank", "bank_version")}
        for r, s, u in zip(*(other.column(c).to_pylist() for c in ("row_index", "sample_id", "url"))):
            for name, version in self.by_hash.get(url_md5(u), ()):
                for key, value in zip(slow_rows, (r, s, u, name, version)):
                    slow_rows[key].append(value)
        matches = pa.concat_tables([fast, pa.table(slow_rows, schema=fast.schema)]).sort_by("row_index")
        if matches.num_rows == 0:
            return empty_findings()
        evidence = pa.array(
            [evidence_json(bank=b, bank_version=v) for b, v in zip(matches["bank"].to_pylist(), matches["bank_version"].to_pylist())],
            pa.string(),
        )
        return self.findings(matches, "hash_match.url", "takedown", evidence, restricted=True)

