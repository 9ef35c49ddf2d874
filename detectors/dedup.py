"""``dedup``: exact duplicates across the whole dataset (every shard), grouped in DuckDB."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.detectors.base import Detector, empty_findings

#: The parts of ``url`` that :data:`CANONICAL_URL_SQL` reads: ``_u`` (trimmed) and ``_m`` (host, rest).
URL_PARTS_SQL = (
    "trim(url) AS _u, "
    "regexp_extract(trim(url), '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)([^#]*)', ['host', 'rest']) AS _m"
)

#: The canonical URL (over :data:`URL_PARTS_SQL`): surrounding whitespace and the ``#fragment``
#: dropped, the scheme dropped (http and https copies are one image), the host lowercased and a
#: default port (``:80``, ``:443``) dropped; path and query keep their case (RFC 3986
#: §6.2.2–6.2.3 normalisations, plus scheme-insensitivity). A URL without a scheme is only trimmed
#: and cut at ``#``. Null for a blank URL.
CANONICAL_URL_SQL = (
    "CASE WHEN _u = '' THEN NULL "
    "WHEN _m.host = '' AND _m.rest = '' THEN split_part(_u, '#', 1) "
    "ELSE regexp_replace(lower(_m.host), ':(80|443)$', '') || _m.rest END"
)

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
    one is flagged with evidence ``{"kept_row_index", "kept_sample_id", "kept_shard_id"}`` naming
    the kept sample. Not restricted. Per shard, each key is stored as a 128-bit MD5
    (``md5_number``); keys are then grouped across shards in the store.
    """

    name = "dedup"
    version = "1"
    Params = DedupParams

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        return empty_findings()  # grouping is corpus-wide: see finalize()

    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        keys = ", ".join(f"md5_number({KEYS[k]}) AS {k}_key" for k in self.params.on)
        return self.sql(f"SELECT row_index, sample_id, url, {keys} FROM (SELECT *, {URL_PARTS_SQL} FROM batch)", batch=batch)

    def finalize(self, signatures: str) -> str:
        parts = []
        for key in self.params.on:
            parts.append(
                f"""
                SELECT s.shard_id, s.row_index, s.sample_id, s.url,
                       '{self.name}' AS detector, '{self.version}' AS detector_version,
                       'duplicate.{key}' AS reason, 'remove' AS action, NULL::DOUBLE AS score,
                       json_object('kept_row_index', g.first.row_index, 'kept_sample_id', g.first.sample_id,
                                   'kept_shard_id', g.first.shard_id)::VARCHAR AS evidence,
                       false AS restricted
                FROM {signatures} s
                JOIN (SELECT {key}_key AS k,
                             arg_min(struct_pack(shard_id, row_index, sample_id), struct_pack(shard_id, row_index)) AS first
                      FROM {signatures} WHERE {key}_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1) g
                  ON s.{key}_key = g.k
                WHERE (s.shard_id, s.row_index) <> (g.first.shard_id, g.first.row_index)
                """
            )
        return " UNION ALL ".join(parts)

