"""``dedup``: exact duplicates across the whole dataset (every shard), grouped in DuckDB."""

from __future__ import annotations

from typing import Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.detectors.base import FINDINGS_SCHEMA, Detector, empty_findings

#: The canonical URL, as a DuckDB expression over ``url``: surrounding whitespace and the
#: ``#fragment`` dropped, the scheme dropped (http and https copies are one image), the host
#: lowercased and a default port (``:80``, ``:443``) dropped; path and query keep their case
#: (RFC 3986 §6.2.2–6.2.3 normalisations plus scheme-insensitivity). Null for a blank URL.
CANONICAL_URL_SQL = r"""
CASE
  WHEN trim(url) = '' THEN NULL
  WHEN regexp_matches(trim(url), '^[A-Za-z][A-Za-z0-9+.-]*://') THEN
    regexp_replace(lower(regexp_extract(trim(url), '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)', 1)), ':(80|443)$', '')
    || regexp_extract(trim(url), '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^#]*)', 1)
  ELSE regexp_replace(trim(url), '#.*$', '')
END
"""

#: The caption key: lowercased, runs of ASCII whitespace collapsed to one space, trimmed.
#: Null for a blank caption (blank captions are not duplicates of each other).
CAPTION_KEY_SQL = r"nullif(trim(lower(regexp_replace(caption, '[ \t\n\r\f\v]+', ' ', 'g'))), '')"

KEYS = {"url": CANONICAL_URL_SQL, "caption": CAPTION_KEY_SQL}


class DedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: list[Literal["url", "caption"]] = Field(
        default_factory=lambda: ["url", "caption"], min_length=1, description="Which exact keys to group on."
    )


class Dedup(Detector):
    """Flags exact duplicates across all shards:

    - ``duplicate.url``: same canonical URL (:data:`CANONICAL_URL_SQL`);
    - ``duplicate.caption``: same caption key (:data:`CAPTION_KEY_SQL`).

    The first occurrence in ``(shard_id, row_index)`` order is kept and not flagged; every later
    one is flagged with evidence ``{"kept_shard_id", "kept_row_index", "kept_sample_id"}`` naming
    the kept sample. Not restricted.
    """

    name = "dedup"
    version = "1"
    Params = DedupParams

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        return empty_findings()  # grouping is corpus-wide: see finalize()

    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        return pa.Table.from_batches([batch]).select(["row_index", "sample_id", "url", *(["caption"] if "caption" in self.params.on else [])])

    def finalize(self, con: duckdb.DuckDBPyConnection, signatures: str) -> pa.Table:
        tables = []
        for key in self.params.on:
            tables.append(
                con.sql(
                    f"""
                    WITH s AS MATERIALIZED (
                        SELECT shard_id, row_index, sample_id, url, {KEYS[key]} AS k FROM {signatures}
                    ),
                    kept AS (
                        SELECT k, arg_min(struct_pack(shard_id, row_index, sample_id), struct_pack(shard_id, row_index)) AS first
                        FROM s WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1
                    )
                    SELECT s.shard_id, s.row_index, s.sample_id, s.url,
                           '{self.name}' AS detector, '{self.version}' AS detector_version,
                           'duplicate.{key}' AS reason, 'remove' AS action, NULL::DOUBLE AS score,
                           json_object('kept_row_index', first.row_index, 'kept_sample_id', first.sample_id,
                                       'kept_shard_id', first.shard_id)::VARCHAR AS evidence,
                           false AS restricted
                    FROM s JOIN kept USING (k)
                    WHERE (s.shard_id, s.row_index) <> (first.shard_id, first.row_index)
                    """
                ).to_arrow_table()
            )
        return pa.concat_tables([t.cast(FINDINGS_SCHEMA) for t in tables])
