"""``dedup``: exact and near duplicates across the whole dataset (every shard), grouped in DuckDB.

One module per kind of key: :mod:`~scrutineer.detectors.dedup.exact` (URL and caption),
:mod:`~scrutineer.detectors.dedup.near_caption`, :mod:`~scrutineer.detectors.dedup.near_image`;
the near kinds' links are clustered by :mod:`~scrutineer.detectors.dedup.clusters`. Their SQL
lives beside them (``*.sql``, and module constants), every value bound as a parameter
(:mod:`~scrutineer.detectors.dedup.query`).
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.core.contract import SIGNATURE
from scrutineer.detectors.base import CorpusDetector, Reason
from scrutineer.detectors.dedup import clusters, exact, near_caption, near_image
from scrutineer.detectors.dedup.near_caption import NearCaptionParams
from scrutineer.detectors.dedup.near_image import NearImageParams
from scrutineer.detectors.dedup.query import Query
from scrutineer.samples.licenses import to_spdx


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


class Dedup(CorpusDetector):
    """Flags duplicates across all shards:

    - ``duplicate.url``: same canonical URL (:func:`scrutineer.samples.canonical_url.canonical_url`: scheme,
      ``www.``, default port, trailing slash, ``&amp;``, percent-encoding case, parameter order and
      tracking parameters aside);
    - ``duplicate.caption``: same caption key (:data:`~scrutineer.detectors.dedup.exact.CAPTION_KEY_SQL`);
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
    sample), and for near duplicates ``"cluster_id"`` (:data:`~scrutineer.detectors.dedup.clusters.CLUSTER_ID_SQL`) and
    ``"cluster_size"`` (samples, the kept one included). Not restricted.
    Per shard, each exact key is stored as a 128-bit MD5 (``md5_number``), each caption's key and
    MinHash LSH band keys, and each image's PDQ and pHash words and pigeonhole blocks
    (:mod:`scrutineer.matching.pigeonhole`); keys are then grouped across shards in the store.

    Near captions: rows that share a band key in any band are linked to the band's first row, and
    a link stands when the exact Jaccard similarity of the two shingle sets reaches ``threshold``
    (the caption keys are kept in the signatures for it). Near images: rows with the same PDQ (or
    pHash) are linked to its first row, and rows whose distinct codes share a pigeonhole block are
    linked when their exact Hamming distance is within a threshold (to the block's first code
    only, in a block shared by more than
    :data:`~scrutineer.detectors.dedup.near_image.HOT_BUCKET` codes). Clusters are the connected
    components of the links (a recursive DuckDB query, :mod:`~scrutineer.detectors.dedup.clusters`). Links chain (CC3M's templated "image may
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
    reasons = {
        "duplicate.url": Reason(False, "Same URL as another sample"),
        "duplicate.caption": Reason(False, "Same caption as another sample"),
        "duplicate.near_caption": Reason(False, "Caption nearly the same as another's"),
        "duplicate.near_image": Reason(False, "Image nearly the same as another's"),
    }
    Params = DedupParams
    #: The keys of every row: 128-bit MD5s (see :meth:`signatures`), the caption key and its LSH
    #: band keys, the image's hash words and blocks (those of a key not in ``on`` are null), and
    #: ``keep_rank``: groups keep the row of the smallest (keep_rank, shard_id, row_index).
    signature_schema = pa.schema(
        [*SIGNATURE, *(pa.field(f"{k}_key", pa.decimal128(38, 0)) for k in exact.KEYS), *near_caption.COLUMNS, *near_image.COLUMNS,
         pa.field("keep_rank", pa.int64())]
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
        MD5 of it, ``url_key`` and/or ``caption_key`` (null for no key;
        :func:`~scrutineer.detectors.dedup.exact.keyed`). With ``near_caption``, the caption key (as
        ``duplicate.caption`` normalises it) cut to its first
        :data:`~scrutineer.matching.minhash.MAX_CHARS` characters, whether it was cut, and its LSH
        band keys (:func:`~scrutineer.detectors.dedup.near_caption.columns`); with ``near_image``,
        the hash words and blocks (:func:`~scrutineer.detectors.dedup.near_image.columns`);
        ``keep_rank`` always."""
        on, n = self.params.on, batch.num_rows
        keyed = exact.keyed(batch, on, self.sql)
        columns = {"row_index": batch.column("row_index"), "sample_id": batch.column("sample_id"), "url": batch.column("url")}
        for k in exact.KEYS:
            columns[f"{k}_key"] = keyed.column(f"{k}_key") if k in on else pa.nulls(n, pa.decimal128(38, 0))
        columns |= near_caption.columns(self.params.near_caption, keyed if "near_caption" in on else None, n)
        columns |= near_image.columns(self.params.near_image, batch if "near_image" in on else None, n)
        columns["keep_rank"] = self._keep_rank(batch)
        return pa.table(columns, schema=self.signature_schema)

    def _keep_rank(self, batch: pa.RecordBatch) -> pa.Array:
        """Per row, the rank ``keep`` gives it (smaller is kept first): null for ``first`` (every
        row alike); minus its pixels for ``largest_image`` (0 when not an image); 0 with a licence
        :func:`to_spdx` recognises, else 1, for ``has_license``."""
        if self.params.keep == "largest_image":
            pixels = pc.multiply(pc.cast(batch.column("width"), pa.int64()), pc.cast(batch.column("height"), pa.int64()))
            return pc.fill_null(pc.negate(pixels), 0)
        if self.params.keep == "has_license":
            licences = batch.column("license")
            values = pc.unique(licences)
            known = pa.array([to_spdx(v) is not None for v in values.to_pylist()], pa.bool_())
            index = pc.index_in(licences, value_set=values, skip_nulls=False)
            return pc.if_else(pc.fill_null(known.take(index), False), 0, 1).cast(pa.int64())
        return pa.nulls(batch.num_rows, pa.int64())  # first: (shard_id, row_index) order alone

    @classmethod
    def finalize(cls, params: DedupParams, signatures: str) -> tuple[str, list]:
        """The findings of every key in ``on`` over the view ``signatures``: one query, each
        kind's findings a part of its ``UNION ALL``."""
        query = Query()
        if keys := [k for k in params.on if k in exact.KEYS]:
            exact.findings(query, signatures, keys, cls.name, cls.version)
        for key, kind, prefix, p in (("near_caption", near_caption, "nc", params.near_caption), ("near_image", near_image, "ni", params.near_image)):
            if key in params.on:
                kind.links(query, p, signatures)
                clusters.findings(query, signatures, prefix, cls.name, cls.version, f"duplicate.{key}")
                kind.evidence(query, p)
        return query.build()
