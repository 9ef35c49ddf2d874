"""``dedup``'s exact keys, ``duplicate.url`` and ``duplicate.caption``: per shard, each row's
canonical URL and caption key as a 128-bit MD5; across shards, the rows sharing one, grouped in
the store."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.detectors.dedup.query import Query
from scrutineer.matching.minhash import MAX_CHARS
from scrutineer.samples.canonical_url import canonical_urls

#: The exact keys, in the order of their signature columns (``url_key``, ``caption_key``).
KEYS = ("url", "caption")
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
#: The caption key of each row of ``keyed``: the fast path's (``caption_fast``), else the SQL's.
CAPTION_NORM_SQL = f"CASE WHEN caption_fast IS NULL THEN {CAPTION_KEY_SQL} ELSE nullif(caption_fast, '') END AS caption_norm"
#: The keying query's columns for each key (``near_caption``'s: the caption key cut to its first
#: :data:`~scrutineer.matching.minhash.MAX_CHARS` characters, the parameter, twice, and whether it
#: was cut; ``left`` and ``length`` count code points).
KEY_COLUMNS = {
    "url": "md5_number(url_canonical) AS url_key",
    "caption": "md5_number(caption_norm) AS caption_key",
    "near_caption": "left(caption_norm, ?) AS near_caption_key, length(caption_norm) > ? AS near_caption_truncated",
}

# Count on the 128-bit keys first, then read the rows of duplicated keys (any key) in one pass and
# pick each key's kept sample among them: the smallest (keep_rank, shard_id, row_index) struct,
# which is 3x cheaper than arg_min (bench/scan_metadata.py). {signatures}: the view of every
# shard's signatures; {key}: url or caption (identifiers: a parameter cannot name a table or a column).

#: The keys of ``{key}_key`` held by more than one row.
DUPLICATED_SQL = "{key}_dup AS (SELECT {key}_key AS k FROM {signatures} WHERE {key}_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1)"
#: The rows of any duplicated key (``{duplicated}``: one ``{key}_key IN (SELECT k FROM {key}_dup)`` per key, OR-ed).
CANDIDATES_SQL = "candidates AS MATERIALIZED (SELECT * FROM {signatures} WHERE {duplicated})"
#: The findings of one key: every row of a duplicated key but the kept one. Parameters: the
#: detector's name and version, the reason.
FINDINGS_SQL = """
    SELECT d.shard_id, d.row_index, d.sample_id, d.url,
           ? AS detector, ? AS detector_version, ? AS reason,
           json_object('kept_row_index', g.first.row_index, 'kept_sample_id', g.first.sample_id,
                       'kept_shard_id', g.first.shard_id)::VARCHAR AS evidence,
           false AS restricted, d.observation_id
    FROM candidates d
    JOIN (SELECT {key}_key AS k, min(struct_pack(keep_rank, shard_id, row_index, sample_id)) AS first
          FROM candidates WHERE {key}_key IN (SELECT k FROM {key}_dup) GROUP BY 1) g ON d.{key}_key = g.k
    WHERE (d.shard_id, d.row_index) <> (g.first.shard_id, g.first.row_index)
"""


def fast_caption_keys(captions: pa.Array) -> pa.Array:
    """The key of plain captions (see :data:`UNPLAIN_CAPTION_REGEX`), null for the others."""
    unplain = pc.fill_null(pc.match_substring_regex(captions, UNPLAIN_CAPTION_REGEX), True)
    return pc.if_else(unplain, None, pc.ascii_lower(captions))


def keyed(batch: pa.RecordBatch, on: list[str], sql: Callable[..., pa.Table]) -> pa.Table | None:
    """Per row of ``batch``, the columns of :data:`KEY_COLUMNS` of the keys in ``on`` (a caption
    key's MD5 too when only ``near_caption`` is on), by ``sql`` (:meth:`Detector.sql
    <scrutineer.detectors.base.Detector.sql>`); None when no key is on. MD5s are DuckDB's
    ``md5_number`` (UHUGEINT), which reaches Arrow as ``decimal128(38, 0)`` bit for bit, so digests
    of 2^127 and above read as negative numbers; grouping on them is exact."""
    captions = {"caption", "near_caption"} & set(on)
    tables = {"url_canonical": canonical_urls(batch.column("url"))} if "url" in on else {}
    if captions:
        tables |= {"caption": batch.column("caption"), "caption_fast": fast_caption_keys(batch.column("caption"))}
    if not tables:
        return None
    # a projection keeps its input's order (DuckDB's preserve_insertion_order, on by default)
    columns = [KEY_COLUMNS["url"]] if "url" in on else []
    columns += [KEY_COLUMNS["caption"]] if captions else []
    near = "near_caption" in on  # cut here: a whole long key never reaches Arrow
    columns += [KEY_COLUMNS["near_caption"]] if near else []
    inner = "*, " + CAPTION_NORM_SQL if captions else "*"
    return sql(f"SELECT {', '.join(columns)} FROM (SELECT {inner} FROM keyed)", [MAX_CHARS, MAX_CHARS] if near else None, keyed=pa.table(tables))


def findings(query: Query, signatures: str, on: list[str], detector: str, version: str) -> None:
    """Add to ``query`` the findings of the exact keys ``on`` over the view ``signatures``."""
    query.with_(",\n".join(DUPLICATED_SQL.format(key=k, signatures=signatures) for k in on))
    duplicated = " OR ".join(f"{k}_key IN (SELECT k FROM {k}_dup)" for k in on)
    query.with_(CANDIDATES_SQL.format(signatures=signatures, duplicated=duplicated))
    for k in on:
        query.union(FINDINGS_SQL.format(key=k), detector, version, f"duplicate.{k}")
