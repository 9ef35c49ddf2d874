"""``dedup``: exact and near duplicates across the whole dataset (every shard), grouped in DuckDB."""

from __future__ import annotations

import json
from typing import Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field
from scrutineer.detectors.base import CorpusDetector

from scrutineer.core.contract import SIGNATURE
from scrutineer.matching.codes import hex_codes, words
from scrutineer.matching.minhash import (
    MAX_CHARS,
    Shingling,
    band_keys,
    lsh_bands,
    minhashes,
)
from scrutineer.matching.pigeonhole import block_values
from scrutineer.matching.signals import PHASH, PdqParams
from scrutineer.observing.hashing import PDQ_DIHEDRAL
from scrutineer.samples.canonical_url import canonical_urls
from scrutineer.samples.licenses import to_spdx

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
#: Columns of the signatures holding a row's caption key cut to its first
#: :data:`scrutineer.matching.minhash.MAX_CHARS` characters (for exact verification), whether it was cut,
#: and its MinHash LSH band keys.
NEAR_CAPTION = [
    pa.field("near_caption_key", pa.string()),
    pa.field("near_caption_truncated", pa.bool_()),
    pa.field("near_caption_bands", pa.list_(pa.uint64())),
]
#: Columns of the signatures holding a row's PDQ (4 words, most significant first; with its 7
#: dihedral variants, 32: :data:`scrutineer.observing.hashing.PDQ_DIHEDRAL` order) and pHash (1 word), each
#: with its pigeonhole blocks (:mod:`scrutineer.matching.pigeonhole`; those of the dihedral variants
#: follow the original's).
NEAR_IMAGE = [
    pa.field("near_image_pdq", pa.list_(pa.uint64())),
    pa.field("near_image_pdq_blocks", pa.list_(pa.uint64())),
    pa.field("near_image_phash", pa.uint64()),
    pa.field("near_image_phash_blocks", pa.list_(pa.uint64())),
]
#: A near-duplicate cluster's id: the first 16 hex characters of the MD5 of its kept sample's
#: ``shard_id:row_index`` (stable while that sample is kept).
CLUSTER_ID_SQL = "md5({kept}.shard_id || ':' || {kept}.row_index::VARCHAR)[:16]"
#: Codes sharing one pigeonhole block beyond which they are linked to the block's first code only
#: (as caption band buckets are), not pairwise: n codes in one block would make n^2 / 2 candidates.
#: A pair is then found only through another block or a chain through the first code.
HOT_BUCKET = 1_000
#: Per dihedral transform (index into PDQ_DIHEDRAL), the one that undoes it.
_INVERSE = [0, 3, 2, 1, 4, 5, 6, 7]


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


class NearImageParams(PdqParams):
    """A PDQ match (:class:`~scrutineer.matching.signals.PdqParams`), its pigeonhole blocks, and
    optionally a pHash match."""

    pdq_blocks: int = Field(
        8, ge=4, le=256,
        description="Pigeonhole blocks of a PDQ hash: every pair within pdq_blocks - 1 bits is found; pairs further apart, up to "
        "pdq_threshold, only when a block is equal in both. 8 blocks of 32 bits keep chance candidates to ~93,000 among 10M images.",
    )
    phash_threshold: int | None = Field(
        None, ge=0, le=PHASH.max_threshold,
        description="pHash distance, bits, inclusive, within which two images are near duplicates too (imagededup's default: 10); "
        "null: pHash is not used. A 64-bit pHash gives small blocks: enable it for up to about 1M images.",
    )
    phash_blocks: int = Field(4, ge=1, le=64, description="Pigeonhole blocks of a pHash: every pair within phash_blocks - 1 bits is found.")


class DedupParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: list[Literal["url", "caption", "near_caption", "near_image"]] = Field(
        default_factory=lambda: ["url", "caption"], min_length=1,
        description="Which keys to group on: exact URL or caption, near caption, near image (near_image fetches and hashes the images).",
    )
    keep: Literal["first", "largest_image", "has_license"] = Field(
        "first",
        description="Which sample of a group or cluster is kept: the first in (shard_id, row_index) order, or, before that order, the one "
        "with the most pixels (largest_image: fetches and hashes the images) or one whose licence has an SPDX id (has_license).",
    )
    near_caption: NearCaptionParams = Field(default_factory=NearCaptionParams, description="MinHash LSH of near_caption.")
    near_image: NearImageParams = Field(default_factory=NearImageParams, description="Perceptual hash distances of near_image.")


class _Scores(NamedTuple):
    """How a near-duplicate link is scored, for :meth:`Dedup._clusters`: its score ``columns``, the
    SQL select list of them read from b to a (``reversed``), the ``order`` ranking a node's links
    (smallest first, over ``l``), the ``evidence`` fields of the link chosen (over ``e.link``), and
    a JSON object of fields merged into the evidence when they apply (``patch``)."""

    columns: list[str]
    reversed: str
    order: str
    evidence: str
    patch: str = "'{}'"


class Dedup(CorpusDetector):
    """Flags duplicates across all shards:

    - ``duplicate.url``: same canonical URL (:func:`scrutineer.samples.canonical_url.canonical_url`: scheme,
      ``www.``, default port, trailing slash, ``&amp;``, percent-encoding case, parameter order and
      tracking parameters aside);
    - ``duplicate.caption``: same caption key (:data:`CAPTION_KEY_SQL`);
    - ``duplicate.near_caption``: caption keys whose shingle sets (of their first
      :data:`scrutineer.matching.minhash.MAX_CHARS` characters) have a Jaccard similarity of at least
      ``near_caption.threshold``, found by MinHash LSH (:mod:`scrutineer.matching.minhash`) and linked into
      clusters (so an exact duplicate is a near one too);
    - ``duplicate.near_image``: images whose PDQ hashes are within ``near_image.pdq_threshold``
      bits (over the 8 dihedral variants when ``fetch.pdq_dihedral`` stored them, so a rotated or
      mirrored copy groups too), or, with ``near_image.phash_threshold``, whose pHashes are within
      it; linked into clusters.

    One sample of each group (exact keys) or cluster (near) is kept and not flagged: by ``keep``,
    the first in ``(shard_id, row_index)`` order, or the largest image or one with a known licence
    first. Every other one is flagged with evidence ``{"kept_row_index", "kept_sample_id",
    "kept_shard_id"}`` naming the kept sample (a group's findings are those naming one kept
    sample), and for near duplicates ``"cluster_id"`` (:data:`CLUSTER_ID_SQL`) and
    ``"cluster_size"`` (samples, the kept one included). Not restricted.
    Per shard, each exact key is stored as a 128-bit MD5 (``md5_number``), each caption's key and
    MinHash LSH band keys, and each image's PDQ and pHash words and pigeonhole blocks
    (:mod:`scrutineer.matching.pigeonhole`); keys are then grouped across shards in the store.

    Near captions: rows that share a band key in any band are linked to the band's first row, and
    a link stands when the exact Jaccard similarity of the two shingle sets reaches ``threshold``
    (the caption keys are kept in the signatures for it). Near images: rows with the same PDQ (or
    pHash) are linked to its first row, and rows whose distinct codes share a pigeonhole block are
    linked when their exact Hamming distance is within a threshold (to the block's first code
    only, in a block shared by more than :data:`HOT_BUCKET` codes). Clusters are the connected
    components of the links (a recursive DuckDB query). Links chain (CC3M's templated "image may
    contain: person, on stage, ..." captions form one cluster of captions 0.6 apart), so the
    evidence also names the linked sample nearest the flagged one (``near_*``; an earlier one in
    keep order when it has one): with its ``jaccard`` and ``minhash`` (algorithm, shingles,
    n-gram, permutations, bands, rows, seed, threshold: enough to reproduce the finding) for
    captions, and ``"truncated_to": MAX_CHARS`` when either caption was longer and only its first
    ``MAX_CHARS`` characters were compared; with ``pdq_distance`` and ``phash_distance`` in bits (null where a
    hash is missing), ``transform`` (the dihedral transform taking the flagged image to the near
    one, :data:`scrutineer.observing.hashing.PDQ_DIHEDRAL`) and the ``near_image`` parameters for images.
    """

    name = "dedup"
    version = "6"
    reasons = {"duplicate.url": False, "duplicate.caption": False, "duplicate.near_caption": False, "duplicate.near_image": False}
    Params = DedupParams
    #: The keys of every row: 128-bit MD5s (see :meth:`signatures`), the caption key and its LSH
    #: band keys, the image's hash words and blocks (those of a key not in ``on`` are null), and
    #: ``keep_rank``: groups keep the row of the smallest (keep_rank, shard_id, row_index).
    signature_schema = pa.schema(
        [*SIGNATURE, *(pa.field(f"{k}_key", pa.decimal128(38, 0)) for k in KEYS), *NEAR_CAPTION, *NEAR_IMAGE, pa.field("keep_rank", pa.int64())]
    )

    @classmethod
    def needs_for(cls, params: DedupParams) -> Literal["metadata", "content"]:
        """Content for ``near_image`` or ``keep: largest_image`` (they read the content hashes)."""
        return "content" if "near_image" in params.on or params.keep == "largest_image" else "metadata"

    @classmethod
    def judged_params(cls, params: DedupParams) -> dict:
        """All but the settings of a near-duplicate kind that is not in ``on`` (they change nothing)."""
        return params.model_dump(mode="json", exclude={k for k in ("near_caption", "near_image") if k not in params.on})

    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        """``row_index``, ``sample_id`` and ``url`` of every row, and per key in ``on`` the 128-bit
        MD5 of it, ``url_key`` and/or ``caption_key`` (null for no key): DuckDB's ``md5_number``
        (UHUGEINT), which reaches Arrow as ``decimal128(38, 0)`` bit for bit, so digests of 2^127
        and above read as negative numbers; grouping on them is exact. With ``near_caption``, the
        caption key (as ``duplicate.caption`` normalises it) cut to its first
        :data:`~scrutineer.matching.minhash.MAX_CHARS` characters, whether it was cut, and its LSH band keys; with
        ``near_image``, the hash words and blocks (:data:`NEAR_IMAGE`); ``keep_rank`` always."""
        on = self.params.on
        captions = {"caption", "near_caption"} & set(on)
        keyed = {"url_canonical": canonical_urls(batch.column("url"))} if "url" in on else {}
        if captions:
            keyed |= {"caption": batch.column("caption"), "caption_fast": _fast_caption_keys(batch.column("caption"))}
        columns = {"row_index": batch.column("row_index"), "sample_id": batch.column("sample_id"), "url": batch.column("url")}
        hashed = None
        if keyed:
            # The caption's fast path's value, else the SQL; a projection keeps its input's order
            # (DuckDB's preserve_insertion_order, on by default).
            selected = ["md5_number(url_canonical) AS url_key"] if "url" in on else []
            inner = "*"
            if captions:
                selected.append("md5_number(caption_norm) AS caption_key")
                inner += f", CASE WHEN caption_fast IS NULL THEN {CAPTION_KEY_SQL} ELSE nullif(caption_fast, '') END AS caption_norm"
            if "near_caption" in on:  # cut here: a whole long key never reaches Arrow (left and length count code points)
                selected.append(f"left(caption_norm, {MAX_CHARS}) AS near_caption_key, length(caption_norm) > {MAX_CHARS} AS near_caption_truncated")
            hashed = self.sql(f"SELECT {', '.join(selected)} FROM (SELECT {inner} FROM keyed)", keyed=pa.table(keyed))
        for k in KEYS:
            columns[f"{k}_key"] = hashed.column(f"{k}_key") if k in on and hashed else pa.nulls(batch.num_rows, pa.decimal128(38, 0))
        columns |= self._near_caption(hashed if "near_caption" in on else None, batch.num_rows)
        columns |= self._near_image(batch) if "near_image" in on else {f.name: pa.nulls(batch.num_rows, f.type) for f in NEAR_IMAGE}
        columns["keep_rank"] = self._keep_rank(batch)
        return pa.table(columns, schema=self.signature_schema)

    def _keep_rank(self, batch: pa.RecordBatch) -> pa.Array:
        """Per row, the rank ``keep`` gives it (smaller is kept first): null for ``first`` (every
        row alike); minus its pixels for ``largest_image`` (0 when not an image); 0 with a licence
        :func:`to_spdx` recognises, else 1, for ``has_license``."""
        n = batch.num_rows
        if self.params.keep == "largest_image":
            pixels = pc.multiply(pc.cast(batch.column("width"), pa.int64()), pc.cast(batch.column("height"), pa.int64()))
            return pc.fill_null(pc.negate(pixels), 0)
        if self.params.keep == "has_license":
            licences = batch.column("license")
            values = pc.unique(licences)
            known = pa.array([to_spdx(v) is not None for v in values.to_pylist()], pa.bool_())
            index = pc.index_in(licences, value_set=values, skip_nulls=False)
            return pc.if_else(pc.fill_null(known.take(index), False), 0, 1).cast(pa.int64())
        return pa.nulls(n, pa.int64())  # first: (shard_id, row_index) order alone

    def _near_image(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        """Each image's PDQ (quality at least ``pdq_min_quality``; with its dihedral variants when
        stored) and pHash, as words and pigeonhole blocks (the pHash's only when
        ``phash_threshold`` is set); null where a hash is missing."""
        p = self.params.near_image
        good = pc.fill_null(pc.and_(pc.is_valid(batch.column("pdq")), pc.greater_equal(batch.column("pdq_quality"), p.pdq_min_quality)), False)
        pdq = hex_codes(batch.column("pdq").filter(good), 256)[:, None, :]  # (images, variants, 32 bytes)
        dihedral = batch.column("pdq_dihedral").filter(good)
        if len(dihedral) and dihedral.null_count == 0:  # a content observation has them for every image or for none
            pdq = np.concatenate([pdq, hex_codes(pc.list_flatten(dihedral), 256).reshape(len(pdq), -1, 32)], axis=1)
        variants = pdq.shape[1]
        flat = pdq.reshape(-1, 32)
        has_phash = pc.is_valid(batch.column("phash"))
        phash = hex_codes(batch.column("phash").filter(has_phash), 64)
        blocks = _spread(_uint64_lists(block_values(phash, p.phash_blocks)), has_phash) if p.phash_threshold is not None else None
        return {
            "near_image_pdq": _spread(_uint64_lists(words(flat).reshape(-1, 4 * variants)), good),
            "near_image_pdq_blocks": _spread(_uint64_lists(block_values(flat, p.pdq_blocks).reshape(-1, p.pdq_blocks * variants)), good),
            "near_image_phash": _spread(pa.array(words(phash)[:, 0], pa.uint64()), has_phash),
            "near_image_phash_blocks": blocks if blocks is not None else pa.nulls(batch.num_rows, pa.list_(pa.uint64())),
        }

    def _near_caption(self, hashed: pa.Table | None, n: int) -> dict[str, pa.Array]:
        """Each caption key cut to its first :data:`~scrutineer.matching.minhash.MAX_CHARS` characters and
        whether it was cut (``hashed``'s ``near_caption_key`` and ``near_caption_truncated``), and
        the LSH band keys of the cut key (null for no caption, or when ``near_caption`` is not in
        ``on``: ``hashed`` None)."""
        if hashed is None:
            return {f.name: pa.nulls(n, f.type) for f in NEAR_CAPTION}
        p = self.params.near_caption
        bands, rows = p.bands_rows
        keys = hashed.column("near_caption_key").combine_chunks()
        present = pc.is_valid(keys)
        signed = band_keys(minhashes(keys.drop_null().to_pylist(), Shingling(p.shingles, p.ngram), p.num_perm, p.seed), bands, rows)
        return {"near_caption_key": keys, "near_caption_truncated": hashed.column("near_caption_truncated"),
                "near_caption_bands": _spread(_uint64_lists(signed), present)}

    @classmethod
    def finalize(cls, params: DedupParams, signatures: str) -> tuple[str, list]:
        ctes, parts = [], []
        exact = [k for k in params.on if k in KEYS]
        if exact:
            cls._exact(signatures, exact, ctes, parts)
        if "near_caption" in params.on:
            cls._clusters("nc", "near_caption", cls._near_caption_links(params.near_caption, signatures, ctes), signatures, ctes, parts)
        if "near_image" in params.on:
            cls._clusters("ni", "near_image", cls._near_image_links(params.near_image, signatures, ctes), signatures, ctes, parts)
        return "WITH RECURSIVE " + ",\n".join(ctes) + "\n" + " UNION ALL ".join(parts), []

    @classmethod
    def _exact(cls, signatures: str, on: list[str], ctes: list[str], parts: list[str]) -> None:
        # Count on the 128-bit keys first, then read the rows of duplicated keys (any key) in one
        # pass and pick each key's kept sample among them: the smallest (keep_rank, shard_id,
        # row_index) struct, which is 3x cheaper than arg_min (bench/scan_metadata.py).
        ctes += [
            f"{k}_dup AS (SELECT {k}_key AS k FROM {signatures} WHERE {k}_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1)"
            for k in on
        ]
        in_any = " OR ".join(f"{k}_key IN (SELECT k FROM {k}_dup)" for k in on)
        ctes.append(f"candidates AS MATERIALIZED (SELECT * FROM {signatures} WHERE {in_any})")
        parts += [
            f"""
            SELECT d.shard_id, d.row_index, d.sample_id, d.url,
                   '{cls.name}' AS detector, '{cls.version}' AS detector_version,
                   'duplicate.{k}' AS reason,
                   json_object('kept_row_index', g.first.row_index, 'kept_sample_id', g.first.sample_id,
                               'kept_shard_id', g.first.shard_id)::VARCHAR AS evidence,
                   false AS restricted, d.observation_id
            FROM candidates d
            JOIN (SELECT {k}_key AS k, min(struct_pack(keep_rank, shard_id, row_index, sample_id)) AS first
                  FROM candidates WHERE {k}_key IN (SELECT k FROM {k}_dup) GROUP BY 1) g ON d.{k}_key = g.k
            WHERE (d.shard_id, d.row_index) <> (g.first.shard_id, g.first.row_index)
            """
            for k in on
        ]

    @classmethod
    def _near_caption_links(cls, p: NearCaptionParams, signatures: str, ctes: list[str]) -> _Scores:
        """``nc_link``: (shard_id, row_index) pairs of captions at or above the Jaccard threshold,
        with ``jaccard`` and ``truncated`` (either key was cut): each row sharing a band bucket
        linked to the bucket's first row, when the exact Jaccard similarity of their (cut) keys'
        shingle sets reaches the threshold."""
        bands, rows = p.bands_rows
        minhash = json.dumps({"algorithm": "MinHash LSH (rensa RMinHash), exact Jaccard of the candidates", "shingles": p.shingles,
                              "ngram": p.ngram, "num_perm": p.num_perm, "bands": bands, "rows": rows, "seed": p.seed, "threshold": p.threshold})
        shingles = Shingling(p.shingles, p.ngram).sql("s.near_caption_key")
        ctes += [
            f"""nc_band AS MATERIALIZED (
                SELECT shard_id, row_index, unnest(near_caption_bands) AS key, generate_subscripts(near_caption_bands, 1) AS band
                FROM {signatures} WHERE near_caption_bands IS NOT NULL)""",
            """nc_bucket AS (SELECT band, key, min(struct_pack(shard_id, row_index)) AS anchor FROM nc_band GROUP BY band, key HAVING count(*) > 1)""",
            """nc_pair AS MATERIALIZED (
                SELECT DISTINCT b.shard_id, b.row_index, k.anchor.shard_id AS a_shard, k.anchor.row_index AS a_row
                FROM nc_band b JOIN nc_bucket k USING (band, key)
                WHERE (b.shard_id, b.row_index) <> (k.anchor.shard_id, k.anchor.row_index))""",
            f"""nc_shingles AS MATERIALIZED (
                SELECT s.shard_id, s.row_index, s.near_caption_truncated AS truncated, {shingles} AS shingles FROM {signatures} s
                SEMI JOIN (SELECT shard_id, row_index FROM nc_pair UNION SELECT a_shard, a_row FROM nc_pair) p USING (shard_id, row_index))""",
            f"""nc_link AS MATERIALIZED (
                SELECT * EXCLUDE (shared, size), shared / (size - shared) AS jaccard FROM (
                    SELECT p.shard_id AS a_shard, p.row_index AS a_row, p.a_shard AS b_shard, p.a_row AS b_row, m.truncated OR n.truncated AS truncated,
                           len(list_intersect(m.shingles, n.shingles)) AS shared, len(m.shingles) + len(n.shingles) AS size
                    FROM nc_pair p
                    JOIN nc_shingles m ON m.shard_id = p.shard_id AND m.row_index = p.row_index
                    JOIN nc_shingles n ON n.shard_id = p.a_shard AND n.row_index = p.a_row)
                WHERE shared / (size - shared) >= {p.threshold})""",
        ]
        return _Scores(["jaccard", "truncated"], "jaccard, truncated", "-l.jaccard", f"'jaccard', round(e.link.jaccard, 3), 'minhash', json('{minhash}')",
                       f"""CASE WHEN e.link.truncated THEN '{{"truncated_to": {MAX_CHARS}}}' ELSE '{{}}' END""")

    @classmethod
    def _near_image_links(cls, p: NearImageParams, signatures: str, ctes: list[str]) -> _Scores:
        """``ni_link``: (shard_id, row_index) pairs of images within a threshold, with
        ``pdq_distance`` (over the dihedral variants), ``transform`` (taking a to b) and
        ``phash_distance``. Candidates: rows with the same code, linked to its first row (so a
        thousand copies of one image make a thousand links, not half a million), and the first
        rows of distinct codes sharing a pigeonhole block (a dihedral variant's block against an
        original's); each verified on its exact distance."""
        candidates = [cls._same_and_blocks("pdq", signatures, p.pdq_blocks, 4, ctes)]
        if p.phash_threshold is not None:
            candidates.append(cls._same_and_blocks("phash", signatures, p.phash_blocks, 1, ctes))
        # d(a_t, b) for each variant t of a, and d(b_t, a): the nearest decides; a transform found
        # from b's side is undone to read from a to b.
        distance = " + ".join(f"bit_count(xor({{x}}[4 * t + {w}], {{y}}[{w}]))" for w in range(1, 5))
        forward = distance.format(x="x.near_image_pdq", y="y.near_image_pdq")
        backward = distance.format(x="y.near_image_pdq", y="x.near_image_pdq")
        nearest = (f"list_min(list_concat(list_transform(range(len(x.near_image_pdq) // 4), lambda t: struct_pack(d := {forward}, t := t)), "
                   f"list_transform(range(len(y.near_image_pdq) // 4), lambda t: struct_pack(d := {backward}, t := {_INVERSE}[t + 1]))))")
        phash_ok = f" OR phash_distance <= {p.phash_threshold}" if p.phash_threshold is not None else ""
        ctes += [
            f"""ni_candidate AS MATERIALIZED ({" UNION ".join(candidates)})""",
            f"""ni_link AS MATERIALIZED (
                SELECT a_shard, a_row, b_shard, b_row, nearest.d AS pdq_distance, nearest.t AS transform, phash_distance FROM (
                    SELECT c.*, {nearest} AS nearest, bit_count(xor(x.near_image_phash, y.near_image_phash)) AS phash_distance
                    FROM ni_candidate c
                    JOIN {signatures} x ON x.shard_id = c.a_shard AND x.row_index = c.a_row
                    JOIN {signatures} y ON y.shard_id = c.b_shard AND y.row_index = c.b_row)
                WHERE pdq_distance <= {p.pdq_threshold}{phash_ok})""",
        ]
        params = json.dumps(p.model_dump(mode="json") | {"dihedral": list(PDQ_DIHEDRAL)})
        return _Scores(
            ["pdq_distance", "transform", "phash_distance"],
            f"pdq_distance, list_extract({_INVERSE}, transform + 1) AS transform, phash_distance",
            "l.pdq_distance, l.phash_distance",
            f"'pdq_distance', e.link.pdq_distance, 'phash_distance', e.link.phash_distance, "
            f"'transform', list_extract({list(PDQ_DIHEDRAL)}, e.link.transform + 1), 'near_image', json('{params}')",
        )

    @staticmethod
    def _same_and_blocks(signal: str, signatures: str, blocks: int, words: int, ctes: list[str]) -> str:
        """CTEs of one signal's candidate pairs; returns the ``SELECT`` of them (a_shard, a_row,
        b_shard, b_row). Rows of a code after its first link to it; first rows of distinct codes
        sharing a block (a variant's ``(i - 1) % blocks`` block of the probe against an original's
        block ``i``) link in one direction each, except in a block shared by more than
        :data:`HOT_BUCKET` codes, where each links to the block's first code only."""
        code = f"near_image_{signal}"
        key = f"{code}[1:{words}]" if words > 1 else code
        ctes += [
            f"""ni_{signal}_code AS MATERIALIZED (
                SELECT {key} AS code, min(struct_pack(keep_rank, shard_id, row_index)) AS first,
                       arg_min({code}_blocks, struct_pack(keep_rank, shard_id, row_index)) AS blocks
                FROM {signatures} WHERE {code} IS NOT NULL GROUP BY 1)""",
            f"""ni_{signal}_key AS MATERIALIZED (
                SELECT first, key, (i - 1) % {blocks} AS band, i <= {blocks} AS original FROM (
                    SELECT first, unnest(blocks) AS key, generate_subscripts(blocks, 1) AS i FROM ni_{signal}_code))""",
            # Blocks seen 3 times in a 2% sample (a block of 1,000 codes fails that with
            # probability 5e-7), then counted exactly: one aggregate over every block would cost
            # more than the candidates themselves (bench/dedup.py --images).
            f"""ni_{signal}_hot AS MATERIALIZED (
                SELECT band, key, min(first) AS anchor FROM ni_{signal}_key
                SEMI JOIN (SELECT band, key FROM (SELECT * FROM ni_{signal}_key WHERE original USING SAMPLE 2 PERCENT (bernoulli, 42))
                           GROUP BY band, key HAVING count(*) >= 3) USING (band, key)
                WHERE original GROUP BY band, key HAVING count(*) > {HOT_BUCKET})""",
        ]
        pair = "least(p.first, {q}).shard_id, least(p.first, {q}).row_index, greatest(p.first, {q}).shard_id, greatest(p.first, {q}).row_index"
        return f"""
            SELECT s.shard_id AS a_shard, s.row_index AS a_row, c.first.shard_id AS b_shard, c.first.row_index AS b_row
            FROM {signatures} s JOIN ni_{signal}_code c ON s.{key} = c.code
            WHERE (s.shard_id, s.row_index) <> (c.first.shard_id, c.first.row_index)
            UNION
            SELECT {pair.format(q="q.first")}
            FROM ni_{signal}_key p JOIN ni_{signal}_key q ON q.original AND p.band = q.band AND p.key = q.key AND p.first <> q.first
            ANTI JOIN ni_{signal}_hot h ON h.band = p.band AND h.key = p.key
            UNION
            SELECT {pair.format(q="h.anchor")}
            FROM ni_{signal}_key p JOIN ni_{signal}_hot h ON h.band = p.band AND h.key = p.key AND p.first <> h.anchor"""

    @classmethod
    def _clusters(cls, prefix: str, reason: str, scores: _Scores, signatures: str, ctes: list[str], parts: list[str]) -> None:
        """Clusters of ``{prefix}_link`` (pairs a -> b of (shard_id, row_index) with their
        ``scores``): nodes numbered in keep order (keep_rank, shard_id, row_index), connected
        components by label propagation (a recursive CTE keyed by node, each node taking the
        smallest label of its neighbours until none changes), so a component's label is its kept
        node. Every other node is flagged ``duplicate.{reason}``, naming its nearest linked
        sample."""
        columns = ", ".join(scores.columns)
        ctes += [
            f"""{prefix}_node AS MATERIALIZED (
                SELECT s.shard_id, s.row_index, s.sample_id, s.url, s.observation_id,
                       row_number() OVER (ORDER BY s.keep_rank, s.shard_id, s.row_index) AS node
                FROM {signatures} s
                SEMI JOIN (SELECT a_shard AS shard_id, a_row AS row_index FROM {prefix}_link UNION SELECT b_shard, b_row FROM {prefix}_link) p
                USING (shard_id, row_index))""",
            f"""{prefix}_edge AS MATERIALIZED (
                SELECT m.node AS a, n.node AS b, {columns} FROM (
                    SELECT a_shard, a_row, b_shard, b_row, {columns} FROM {prefix}_link
                    UNION ALL SELECT b_shard, b_row, a_shard, a_row, {scores.reversed} FROM {prefix}_link) l
                JOIN {prefix}_node m ON m.shard_id = l.a_shard AND m.row_index = l.a_row
                JOIN {prefix}_node n ON n.shard_id = l.b_shard AND n.row_index = l.b_row)""",
            f"""{prefix}_best AS (SELECT a, arg_min(l, row(l.b > l.a, {scores.order}, l.b)) AS link FROM {prefix}_edge l GROUP BY a)""",
            f"""{prefix}_cc(node, comp) USING KEY (node) AS (
                SELECT a, least(a, min(b)) FROM {prefix}_edge GROUP BY a
                UNION
                SELECT l.a, min(c.comp) FROM {prefix}_edge l
                JOIN recurring.{prefix}_cc c ON c.node = l.b JOIN recurring.{prefix}_cc me ON me.node = l.a
                GROUP BY l.a HAVING min(c.comp) < min(me.comp))""",
            f"""{prefix}_size AS (SELECT comp, count(*) AS size FROM {prefix}_cc GROUP BY comp)""",
        ]
        parts.append(
            f"""
            SELECT d.shard_id, d.row_index, d.sample_id, d.url,
                   '{cls.name}' AS detector, '{cls.version}' AS detector_version, 'duplicate.{reason}' AS reason,
                   json_merge_patch(json_object('kept_row_index', k.row_index, 'kept_sample_id', k.sample_id, 'kept_shard_id', k.shard_id,
                               'cluster_id', {CLUSTER_ID_SQL.format(kept="k")}, 'cluster_size', z.size,
                               'near_row_index', n.row_index, 'near_sample_id', n.sample_id, 'near_shard_id', n.shard_id,
                               {scores.evidence}), {scores.patch})::VARCHAR AS evidence,
                   false AS restricted, d.observation_id
            FROM {prefix}_cc c JOIN {prefix}_best e ON e.a = c.node JOIN {prefix}_node d ON d.node = c.node
            JOIN {prefix}_node n ON n.node = e.link.b JOIN {prefix}_node k ON k.node = c.comp JOIN {prefix}_size z ON z.comp = c.comp
            WHERE c.node <> c.comp
            """
        )


def _spread(values: pa.Array, present: pa.Array) -> pa.Array:
    """``values`` (one per row where ``present`` is true) at those rows, null at the others."""
    at = pc.subtract(pc.cumulative_sum(pc.cast(present, pa.int64())), 1)
    return values.take(pc.if_else(present, at, None))


def _uint64_lists(values: np.ndarray) -> pa.ListArray:
    """A ``(n, width)`` uint64 array as n lists."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), pa.uint64()), values.shape[1]).cast(pa.list_(pa.uint64()))
