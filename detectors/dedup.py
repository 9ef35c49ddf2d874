"""``dedup``: exact duplicates across the whole dataset (every shard), grouped in DuckDB."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.detectors.base import Detector, empty_findings

_PREFIX = "regexp_extract(trim(url), '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*')"  # 'scheme://host', '' if none

#: The canonical URL, a DuckDB expression over ``url``: surrounding whitespace and the
#: ``#fragment`` dropped, the scheme dropped (http and https copies are one image), the host
#: lowercased and a default port (``:80``, ``:443``) dropped; path and query keep their case
#: (RFC 3986 §6.2.2–6.2.3 normalisations, plus scheme-insensitivity). A URL without a scheme is
#: only trimmed and cut at ``#``. Null when nothing is left. URLs already in that form (99% of
#: web URLs: lowercase host, no port, no fragment, no whitespace) take a path 2x cheaper.
CANONICAL_URL_SQL = (
    "CASE WHEN regexp_full_match(url, '[A-Za-z][A-Za-z0-9+.-]*://[a-z0-9.-]+([/?][^#\\s]*)?') "
    "THEN url[strpos(url, '://') + 3:] "
    f"ELSE nullif(CASE WHEN {_PREFIX} = '' THEN split_part(trim(url), '#', 1) "
    f"ELSE regexp_replace(lower({_PREFIX}[strpos({_PREFIX}, '://') + 3:]), ':(80|443)$', '') "
    f"|| split_part(trim(url)[length({_PREFIX}) + 1:], '#', 1) END, '') END"
)

#: The caption key: lowercased, every run of whitespace (Python's ``str.isspace`` set: ASCII
#: ``\t\n\v\f\r\x1c-\x1f`` and space, NEL, and Unicode separators ``\p{Z}`` such as NBSP) collapsed
#: to one space, trimmed. Null for a blank caption (blank captions are not duplicates of each
#: other). Captions that are printable ASCII with single inner spaces (most web alt-text) skip the
#: regex replace, which makes the key 1.6x cheaper (bench/scan_metadata.py).
CAPTION_KEY_SQL = (
    r"nullif(CASE WHEN regexp_matches(caption, '[\x00-\x1f\x7f-\x{10ffff}]|  |^ | $') "
    r"THEN trim(regexp_replace(lower(caption), '[\t\n\v\f\r\x1c-\x1f\x85\p{Z}]+', ' ', 'g'), ' ') "
    r"ELSE lower(caption) END, '')"
)

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
    version = "2"
    Params = DedupParams

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        return empty_findings()  # grouping is corpus-wide: see finalize()

    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        keys = ", ".join(f"md5_number({KEYS[k]}) AS {k}_key" for k in self.params.on)
        return self.sql(f"SELECT row_index, sample_id, url, {keys} FROM batch", batch=batch)

    def finalize(self, signatures: str) -> str:
        # Count first on the 128-bit keys, then pick the kept sample among duplicated keys only:
        # arg_min over every key costs ~5x more (bench/scan_metadata.py).
        parts = []
        for key in self.params.on:
            k = f"{key}_key"
            parts.append(
                f"""
                (WITH dup AS MATERIALIZED (
                    SELECT * FROM {signatures}
                    WHERE {k} IN (SELECT {k} FROM {signatures} WHERE {k} IS NOT NULL GROUP BY 1 HAVING count(*) > 1)
                 ),
                 kept AS (
                    SELECT {k} AS k, arg_min(struct_pack(shard_id, row_index, sample_id), struct_pack(shard_id, row_index)) AS first
                    FROM dup GROUP BY 1
                 )
                 SELECT d.shard_id, d.row_index, d.sample_id, d.url,
                        '{self.name}' AS detector, '{self.version}' AS detector_version,
                        'duplicate.{key}' AS reason, 'remove' AS action, NULL::DOUBLE AS score,
                        json_object('kept_row_index', g.first.row_index, 'kept_sample_id', g.first.sample_id,
                                    'kept_shard_id', g.first.shard_id)::VARCHAR AS evidence,
                        false AS restricted
                 FROM dup d JOIN kept g ON d.{k} = g.k
                 WHERE (d.shard_id, d.row_index) <> (g.first.shard_id, g.first.row_index))
                """
            )
        return " UNION ALL ".join(parts)

