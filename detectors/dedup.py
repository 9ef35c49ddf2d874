"""``dedup``: exact duplicates across the whole dataset (every shard), grouped in DuckDB."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import Detector, empty_findings
from scrutineer.canonical_url import canonical_urls
from scrutineer.contract import SIGNATURE

#: The caption key: lowercased, every run of whitespace (Python's ``str.isspace`` set: ASCII
#: ``\t\n\v\f\r\x1c-\x1f`` and space, NEL, and Unicode separators ``\p{Z}`` such as NBSP) collapsed
#: to one space, trimmed. Null for a blank caption (blank captions are not duplicates of each
#: other).
CAPTION_KEY_SQL = (
    r"nullif(trim(regexp_replace(lower(caption), '[\t\n\v\f\r\x1c-\x1f\x85\p{Z}]+', ' ', 'g'), ' '), '')"
)
#: Captions that are not plain (printable ASCII with single inner spaces, as most web alt-text
#: is): only these need the SQL above; a plain caption's key is its ASCII lowercase (Arrow, 1.6x
#: cheaper).
UNPLAIN_CAPTION_REGEX = r"[\x00-\x1f\x7f-\x{10ffff}]|  |^ | $"

KEYS = ("url", "caption")


def _fast_caption_keys(captions: pa.Array) -> pa.Array:
    """The key of plain captions (see :data:`UNPLAIN_CAPTION_REGEX`), null for the others."""
    unplain = pc.fill_null(pc.match_substring_regex(captions, UNPLAIN_CAPTION_REGEX), True)
    return pc.if_else(unplain, None, pc.ascii_lower(captions))



class DedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: list[Literal["url", "caption"]] = Field(
        default_factory=lambda: ["url", "caption"], min_length=1, description="Which exact keys to group on."
    )


class Dedup(Detector):
    """Flags exact duplicates across all shards:

    - ``duplicate.url``: same canonical URL (:func:`scrutineer.canonical_url.canonical_url`: scheme,
      ``www.``, default port, trailing slash, ``&amp;``, percent-encoding case, parameter order and
      tracking parameters aside);
    - ``duplicate.caption``: same caption key (:data:`CAPTION_KEY_SQL`).

    The first occurrence in ``(shard_id, row_index)`` order is kept and not flagged; every later
    one is flagged with evidence ``{"kept_row_index", "kept_sample_id", "kept_shard_id"}`` naming
    the kept sample. Not restricted. Per shard, each key is stored as a 128-bit MD5
    (``md5_number``); keys are then grouped across shards in the store.
    """

    name = "dedup"
    version = "3"
    reasons = {"duplicate.url": False, "duplicate.caption": False}
    Params = DedupParams
    #: The keys of every row: 128-bit MD5s (see :meth:`signatures`); a key not in ``on`` is null.
    signature_schema = pa.schema([*SIGNATURE, *(pa.field(f"{k}_key", pa.decimal128(38, 0)) for k in KEYS)])

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        return empty_findings()  # grouping is corpus-wide: see finalize()

    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        """``row_index``, ``sample_id`` and ``url`` of every row, and per key in ``on`` the 128-bit
        MD5 of it, ``url_key`` and/or ``caption_key`` (null for no key): DuckDB's ``md5_number``
        (UHUGEINT), which reaches Arrow as ``decimal128(38, 0)`` bit for bit, so digests of 2^127
        and above read as negative numbers; grouping on them is exact."""
        on = self.params.on
        keyed = {}
        if "url" in on:
            keyed["url_canonical"] = canonical_urls(batch.column("url"))
        if "caption" in on:
            keyed |= {"caption": batch.column("caption"), "caption_fast": _fast_caption_keys(batch.column("caption"))}
        # The caption's fast path's value, else the SQL; a projection keeps its input's order
        # (DuckDB's preserve_insertion_order, on by default).
        expressions = {
            "url": "md5_number(url_canonical)",
            "caption": f"md5_number(CASE WHEN caption_fast IS NULL THEN {CAPTION_KEY_SQL} ELSE nullif(caption_fast, '') END)",
        }
        keys = ", ".join(f"{expressions[k]} AS {k}_key" for k in on)
        keyed = pa.table(keyed)
        hashed = self.sql(f"SELECT {keys} FROM keyed", keyed=keyed)
        columns = {"row_index": batch.column("row_index"), "sample_id": batch.column("sample_id"), "url": batch.column("url")}
        for k in KEYS:
            columns[f"{k}_key"] = hashed.column(f"{k}_key") if k in on else pa.nulls(batch.num_rows, pa.decimal128(38, 0))
        return pa.table(columns, schema=self.signature_schema)

    def finalize(self, signatures: str) -> str:
        # Count on the 128-bit keys first, then read the rows of duplicated keys (any key) in one
        # pass and pick each key's kept sample among them: the smallest (shard_id, row_index)
        # struct, which is 3x cheaper than arg_min (bench/scan_metadata.py).
        on = self.params.on
        duplicated = ",\n".join(
            f"{k}_dup AS (SELECT {k}_key AS k FROM {signatures} WHERE {k}_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1)"
            for k in on
        )
        in_any = " OR ".join(f"{k}_key IN (SELECT k FROM {k}_dup)" for k in on)
        parts = [
            f"""
            SELECT d.shard_id, d.row_index, d.sample_id, d.url,
                   '{self.name}' AS detector, '{self.version}' AS detector_version,
                   'duplicate.{k}' AS reason,
                   json_object('kept_row_index', g.first.row_index, 'kept_sample_id', g.first.sample_id,
                               'kept_shard_id', g.first.shard_id)::VARCHAR AS evidence,
                   false AS restricted, d.observation_id
            FROM candidates d
            JOIN (SELECT {k}_key AS k, min(struct_pack(shard_id, row_index, sample_id)) AS first
                  FROM candidates WHERE {k}_key IN (SELECT k FROM {k}_dup) GROUP BY 1) g ON d.{k}_key = g.k
            WHERE (d.shard_id, d.row_index) <> (g.first.shard_id, g.first.row_index)
            """
            for k in on
        ]
        return f"WITH {duplicated},\ncandidates AS MATERIALIZED (SELECT * FROM {signatures} WHERE {in_any})\n" + " UNION ALL ".join(parts)
