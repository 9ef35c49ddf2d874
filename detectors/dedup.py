"""``dedup``: exact duplicates across the whole dataset (every shard), grouped in DuckDB."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import Detector, empty_findings
from scrutineer.domains import after_scheme

_PREFIX = "regexp_extract(trim(url), '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*')"  # 'scheme://host', '' if none

#: The canonical URL, a DuckDB expression over ``url``: surrounding whitespace and the
#: ``#fragment`` dropped, the scheme dropped (http and https copies are one image), the host
#: lowercased and a default port (``:80``, ``:443``) dropped; path and query keep their case
#: (RFC 3986 §6.2.2–6.2.3 normalisations, plus scheme-insensitivity). A URL without a scheme is
#: only trimmed and cut at ``#``. Null when nothing is left.
CANONICAL_URL_SQL = (
    f"nullif(CASE WHEN {_PREFIX} = '' THEN split_part(trim(url), '#', 1) "
    f"ELSE regexp_replace(lower({_PREFIX}[strpos({_PREFIX}, '://') + 3:]), ':(80|443)$', '') "
    f"|| split_part(trim(url)[length({_PREFIX}) + 1:], '#', 1) END, '')"
)
#: URLs already in canonical form but for their scheme (99% of web URLs: lowercase host, no port,
#: no fragment, no whitespace): their canonical URL is what follows ``://``, which Arrow cuts 1.7x
#: faster than the SQL above computes it (bench/scan_metadata.py).
CANONICAL_FORM_REGEX = r"^[A-Za-z][A-Za-z0-9+.-]*://[a-z0-9.-]+([/?][^#\s]*)?$"

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

KEYS = {"url": CANONICAL_URL_SQL, "caption": CAPTION_KEY_SQL}


def _fast_url_keys(urls: pa.Array) -> pa.Array:
    """The canonical URL of URLs in :data:`CANONICAL_FORM_REGEX`'s form, null for the others."""
    canonical = pc.fill_null(pc.match_substring_regex(urls, CANONICAL_FORM_REGEX), False)
    return pc.replace_with_mask(pa.nulls(len(urls), pa.string()), canonical, after_scheme(urls.filter(canonical)))


def _fast_caption_keys(captions: pa.Array) -> pa.Array:
    """The key of plain captions (see :data:`UNPLAIN_CAPTION_REGEX`), null for the others."""
    unplain = pc.fill_null(pc.match_substring_regex(captions, UNPLAIN_CAPTION_REGEX), True)
    return pc.if_else(unplain, None, pc.ascii_lower(captions))


_FAST_KEYS = {"url": _fast_url_keys, "caption": _fast_caption_keys}


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
    reasons = {f"duplicate.{key}": False for key in KEYS}
    Params = DedupParams

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        return empty_findings()  # grouping is corpus-wide: see finalize()

    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        """``row_index``, ``sample_id`` and ``url`` of every row, and per key in ``on`` the 128-bit
        MD5 of it, ``url_key`` and/or ``caption_key`` (null for no key): DuckDB's ``md5_number``
        (UHUGEINT), which reaches Arrow as ``decimal128(38, 0)`` bit for bit, so digests of 2^127
        and above read as negative numbers; grouping on them is exact."""
        on = self.params.on
        keyed = pa.table({**{k: batch.column(k) for k in on}, **{f"{k}_fast": _FAST_KEYS[k](batch.column(k)) for k in on}})
        # Per key, its fast path's value, else the SQL; a projection keeps its input's order
        # (DuckDB's preserve_insertion_order, on by default).
        keys = ", ".join(f"md5_number(CASE WHEN {k}_fast IS NULL THEN {KEYS[k]} ELSE nullif({k}_fast, '') END) AS {k}_key" for k in on)
        hashed = self.sql(f"SELECT {keys} FROM keyed", keyed=keyed)
        return pa.table(
            {
                "row_index": batch.column("row_index"),
                "sample_id": batch.column("sample_id"),
                "url": batch.column("url"),
                **{f"{k}_key": hashed.column(f"{k}_key") for k in on},
            }
        )

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
                   'duplicate.{k}' AS reason, 'remove' AS action, NULL::DOUBLE AS score,
                   json_object('kept_row_index', g.first.row_index, 'kept_sample_id', g.first.sample_id,
                               'kept_shard_id', g.first.shard_id)::VARCHAR AS evidence,
                   false AS restricted
            FROM candidates d
            JOIN (SELECT {k}_key AS k, min(struct_pack(shard_id, row_index, sample_id)) AS first
                  FROM candidates WHERE {k}_key IN (SELECT k FROM {k}_dup) GROUP BY 1) g ON d.{k}_key = g.k
            WHERE (d.shard_id, d.row_index) <> (g.first.shard_id, g.first.row_index)
            """
            for k in on
        ]
        return f"WITH {duplicated},\ncandidates AS MATERIALIZED (SELECT * FROM {signatures} WHERE {in_any})\n" + " UNION ALL ".join(parts)
