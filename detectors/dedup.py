"""``dedup``: exact and near duplicates across the whole dataset (every shard), grouped in DuckDB."""

from __future__ import annotations

import json
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import Detector, empty_findings
from scrutineer.canonical_url import canonical_urls
from scrutineer.contract import SIGNATURE
from scrutineer.minhash import Shingling, band_keys, lsh_bands, minhashes

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
#: Columns of the signatures holding a row's caption key (for exact verification) and its MinHash
#: LSH band keys.
NEAR_CAPTION = [pa.field("near_caption_key", pa.string()), pa.field("near_caption_bands", pa.list_(pa.uint64()))]


def _fast_caption_keys(captions: pa.Array) -> pa.Array:
    """The key of plain captions (see :data:`UNPLAIN_CAPTION_REGEX`), null for the others."""
    unplain = pc.fill_null(pc.match_substring_regex(captions, UNPLAIN_CAPTION_REGEX), True)
    return pc.if_else(unplain, None, pc.ascii_lower(captions))


class NearCaptionParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard similarity of two captions' shingle sets from which they are near duplicates.")
    shingles: Literal["char", "word"] = Field("char", description="Shingles of characters or of words.")
    ngram: int = Field(5, ge=1, description="Characters or words per shingle (NeMo Curator: 5).")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations; bands x rows are chosen from them for the threshold.")
    seed: int = Field(42, description="Seed of the MinHash permutations (findings name it, so they can be reproduced).")

    @property
    def bands_rows(self) -> tuple[int, int]:
        return lsh_bands(self.threshold, self.num_perm)


class DedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: list[Literal["url", "caption", "near_caption"]] = Field(
        default_factory=lambda: ["url", "caption"], min_length=1, description="Which keys to group on: exact URL or caption, near caption."
    )
    near_caption: NearCaptionParams = Field(default_factory=NearCaptionParams, description="MinHash LSH of near_caption.")


class Dedup(Detector):
    """Flags duplicates across all shards:

    - ``duplicate.url``: same canonical URL (:func:`scrutineer.canonical_url.canonical_url`: scheme,
      ``www.``, default port, trailing slash, ``&amp;``, percent-encoding case, parameter order and
      tracking parameters aside);
    - ``duplicate.caption``: same caption key (:data:`CAPTION_KEY_SQL`);
    - ``duplicate.near_caption``: caption keys whose shingle sets have a Jaccard similarity of at
      least ``near_caption.threshold``, found by MinHash LSH (:mod:`scrutineer.minhash`) and linked
      into clusters (so an exact duplicate is a near one too).

    The first occurrence in ``(shard_id, row_index)`` order is kept and not flagged; every later
    one is flagged with evidence ``{"kept_row_index", "kept_sample_id", "kept_shard_id"}`` naming
    the kept sample. Not restricted. Per shard, each exact key is stored as a 128-bit MD5
    (``md5_number``), and each caption's key and MinHash LSH band keys; keys are then grouped across
    shards in the store.

    Near captions: rows that share a band key in any band are linked to the band's first row, and
    a link stands when the exact Jaccard similarity of the two shingle sets reaches ``threshold``
    (the caption keys are kept in the signatures for it). A row with a link to an earlier row is flagged; clusters are the
    connected components of the links (a recursive DuckDB query), and the kept sample named is the
    cluster's first row. Links chain (CC3M's templated "image may contain: person, on stage, ..."
    captions form one cluster of captions 0.6 apart), so the evidence also names the earlier
    caption the row is nearest to (``near_*``) with their exact ``jaccard``, besides ``cluster_id``
    (stable while its first row is), ``cluster_size`` and ``minhash`` (algorithm, shingles,
    n-gram, permutations, bands, rows, seed, threshold: enough to reproduce the finding).
    """

    name = "dedup"
    version = "4"
    reasons = {"duplicate.url": False, "duplicate.caption": False, "duplicate.near_caption": False}
    Params = DedupParams
    #: The keys of every row: 128-bit MD5s (see :meth:`signatures`), and the caption key and its
    #: LSH band keys; those of a key not in ``on`` are null.
    signature_schema = pa.schema([*SIGNATURE, *(pa.field(f"{k}_key", pa.decimal128(38, 0)) for k in KEYS), *NEAR_CAPTION])

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        return empty_findings()  # grouping is corpus-wide: see finalize()

    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        """``row_index``, ``sample_id`` and ``url`` of every row, and per key in ``on`` the 128-bit
        MD5 of it, ``url_key`` and/or ``caption_key`` (null for no key): DuckDB's ``md5_number``
        (UHUGEINT), which reaches Arrow as ``decimal128(38, 0)`` bit for bit, so digests of 2^127
        and above read as negative numbers; grouping on them is exact. With ``near_caption``, the
        caption key (as ``duplicate.caption`` normalises it) and its LSH band keys too."""
        on = self.params.on
        captions = {"caption", "near_caption"} & set(on)
        keyed = {"url_canonical": canonical_urls(batch.column("url"))} if "url" in on else {}
        if captions:
            keyed |= {"caption": batch.column("caption"), "caption_fast": _fast_caption_keys(batch.column("caption"))}
        # The caption's fast path's value, else the SQL; a projection keeps its input's order
        # (DuckDB's preserve_insertion_order, on by default).
        selected = ["md5_number(url_canonical) AS url_key"] if "url" in on else []
        inner = "*"
        if captions:
            selected.append("md5_number(caption_norm) AS caption_key, caption_norm")
            inner += f", CASE WHEN caption_fast IS NULL THEN {CAPTION_KEY_SQL} ELSE nullif(caption_fast, '') END AS caption_norm"
        hashed = self.sql(f"SELECT {', '.join(selected)} FROM (SELECT {inner} FROM keyed)", keyed=pa.table(keyed))
        columns = {"row_index": batch.column("row_index"), "sample_id": batch.column("sample_id"), "url": batch.column("url")}
        for k in KEYS:
            columns[f"{k}_key"] = hashed.column(f"{k}_key") if k in on else pa.nulls(batch.num_rows, pa.decimal128(38, 0))
        columns |= self._near_caption(hashed.column("caption_norm") if "near_caption" in on else None, batch.num_rows)
        return pa.table(columns, schema=self.signature_schema)

    def _near_caption(self, keys: pa.ChunkedArray | None, n: int) -> dict[str, pa.Array]:
        """Each caption key and its LSH band keys (null for no caption, or when ``near_caption``
        is not in ``on``)."""
        if keys is None:
            return {f.name: pa.nulls(n, f.type) for f in NEAR_CAPTION}
        p = self.params.near_caption
        bands, rows = p.bands_rows
        keys = keys.combine_chunks()
        present = pc.is_valid(keys)
        signed = band_keys(minhashes(keys.drop_null().to_pylist(), Shingling(p.shingles, p.ngram), p.num_perm, p.seed), bands, rows)
        lists = pa.FixedSizeListArray.from_arrays(pa.array(signed.ravel(), pa.uint64()), bands).cast(pa.list_(pa.uint64()))
        at = pc.subtract(pc.cumulative_sum(pc.cast(present, pa.int64())), 1)
        return {"near_caption_key": keys, "near_caption_bands": lists.take(pc.if_else(present, at, None))}

    def finalize(self, signatures: str) -> str:
        ctes, parts = [], []
        exact = [k for k in self.params.on if k in KEYS]
        if exact:
            self._exact(signatures, exact, ctes, parts)
        if "near_caption" in self.params.on:
            self._near(signatures, ctes, parts)
        return "WITH RECURSIVE " + ",\n".join(ctes) + "\n" + " UNION ALL ".join(parts)

    def _exact(self, signatures: str, on: list[str], ctes: list[str], parts: list[str]) -> None:
        # Count on the 128-bit keys first, then read the rows of duplicated keys (any key) in one
        # pass and pick each key's kept sample among them: the smallest (shard_id, row_index)
        # struct, which is 3x cheaper than arg_min (bench/scan_metadata.py).
        ctes += [
            f"{k}_dup AS (SELECT {k}_key AS k FROM {signatures} WHERE {k}_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1)"
            for k in on
        ]
        in_any = " OR ".join(f"{k}_key IN (SELECT k FROM {k}_dup)" for k in on)
        ctes.append(f"candidates AS MATERIALIZED (SELECT * FROM {signatures} WHERE {in_any})")
        parts += [
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

    def _near(self, signatures: str, ctes: list[str], parts: list[str]) -> None:
        """Near captions (class docstring): band buckets, links to each bucket's first row kept when
        the exact Jaccard similarity of the two shingle sets reaches the threshold, connected
        components by label propagation (a recursive CTE keyed by node, each row taking the
        smallest label of its neighbours until none changes)."""
        p = self.params.near_caption
        bands, rows = p.bands_rows
        shingles = Shingling(p.shingles, p.ngram).sql("s.near_caption_key")
        minhash = json.dumps({"algorithm": "MinHash LSH (rensa RMinHash), exact Jaccard of the candidates", "shingles": p.shingles,
                              "ngram": p.ngram, "num_perm": p.num_perm, "bands": bands, "rows": rows, "seed": p.seed, "threshold": p.threshold})
        ctes += [
            f"""nc_band AS MATERIALIZED (
                SELECT shard_id, row_index, unnest(near_caption_bands) AS key, generate_subscripts(near_caption_bands, 1) AS band
                FROM {signatures} WHERE near_caption_bands IS NOT NULL)""",
            """nc_bucket AS (SELECT band, key, min(struct_pack(shard_id, row_index)) AS anchor FROM nc_band GROUP BY band, key HAVING count(*) > 1)""",
            """nc_pair AS MATERIALIZED (
                SELECT DISTINCT b.shard_id, b.row_index, k.anchor.shard_id AS a_shard, k.anchor.row_index AS a_row
                FROM nc_band b JOIN nc_bucket k USING (band, key)
                WHERE (b.shard_id, b.row_index) <> (k.anchor.shard_id, k.anchor.row_index))""",
            f"""nc_node AS MATERIALIZED (
                SELECT s.shard_id, s.row_index, s.sample_id, s.url, s.observation_id, {shingles} AS shingles,
                       row_number() OVER (ORDER BY s.shard_id, s.row_index) AS node
                FROM {signatures} s
                SEMI JOIN (SELECT shard_id, row_index FROM nc_pair UNION SELECT a_shard, a_row FROM nc_pair) p USING (shard_id, row_index))""",
            f"""nc_edge AS MATERIALIZED (
                SELECT a, b, shared / (size - shared) AS jaccard FROM (
                    SELECT m.node AS a, n.node AS b, len(list_intersect(m.shingles, n.shingles)) AS shared,
                           len(m.shingles) + len(n.shingles) AS size
                    FROM nc_pair p
                    JOIN nc_node m ON m.shard_id = p.shard_id AND m.row_index = p.row_index
                    JOIN nc_node n ON n.shard_id = p.a_shard AND n.row_index = p.a_row)
                WHERE shared / (size - shared) >= {p.threshold})""",
            """nc_best AS (SELECT a, arg_max(b, jaccard) AS b, max(jaccard) AS jaccard FROM nc_edge GROUP BY a)""",
            """nc_link AS MATERIALIZED (SELECT a, b FROM nc_edge UNION SELECT b, a FROM nc_edge)""",
            """nc_cc(node, comp) USING KEY (node) AS (
                SELECT a, least(a, min(b)) FROM nc_link GROUP BY a
                UNION
                SELECT l.a, min(c.comp) FROM nc_link l
                JOIN recurring.nc_cc c ON c.node = l.b JOIN recurring.nc_cc me ON me.node = l.a
                GROUP BY l.a HAVING min(c.comp) < min(me.comp))""",
            """nc_size AS (SELECT comp, count(*) AS size FROM nc_cc GROUP BY comp)""",
        ]
        parts.append(
            f"""
            SELECT d.shard_id, d.row_index, d.sample_id, d.url,
                   '{self.name}' AS detector, '{self.version}' AS detector_version, 'duplicate.near_caption' AS reason,
                   json_object('kept_row_index', k.row_index, 'kept_sample_id', k.sample_id, 'kept_shard_id', k.shard_id,
                               'cluster_id', md5(k.shard_id || ':' || k.row_index::VARCHAR)[:16], 'cluster_size', z.size,
                               'near_row_index', n.row_index, 'near_sample_id', n.sample_id, 'near_shard_id', n.shard_id,
                               'jaccard', round(e.jaccard, 3), 'minhash', json('{minhash}'))::VARCHAR AS evidence,
                   false AS restricted, d.observation_id
            FROM nc_best e JOIN nc_cc c ON c.node = e.a JOIN nc_node d ON d.node = e.a JOIN nc_node n ON n.node = e.b
            JOIN nc_node k ON k.node = c.comp JOIN nc_size z ON z.comp = c.comp
            """
        )
