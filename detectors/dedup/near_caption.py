"""``dedup``'s near captions, ``duplicate.near_caption``: per shard, each caption key's MinHash
LSH band keys (:mod:`scrutineer.matching.minhash`); across shards, the rows sharing a band key,
verified on the exact Jaccard similarity of their shingle sets (``near_caption.sql``), then
clustered (:mod:`~scrutineer.detectors.dedup.clusters`)."""

from __future__ import annotations

import json
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.detectors.dedup.arrays import spread, uint64_lists
from scrutineer.detectors.dedup.query import Query, sql_file
from scrutineer.matching.minhash import (
    MAX_CHARS,
    Shingling,
    band_keys,
    lsh_bands,
    minhashes,
)

#: Columns of the signatures holding a row's caption key cut to its first
#: :data:`scrutineer.matching.minhash.MAX_CHARS` characters (for exact verification), whether it was cut,
#: and its MinHash LSH band keys.
COLUMNS = [
    pa.field("near_caption_key", pa.string()),
    pa.field("near_caption_truncated", pa.bool_()),
    pa.field("near_caption_bands", pa.list_(pa.uint64())),
]
#: ``nc_link`` and ``nc_arc``: the pairs of captions at or above the Jaccard threshold, with
#: ``jaccard`` and ``truncated`` (either key was cut).
LINKS_SQL = sql_file("near_caption.sql")
#: ``nc_evidence``: the Jaccard similarity of each node's best link, the MinHash parameters (the
#: first parameter, a JSON object) and, when either caption was cut, ``truncated_to`` (the second).
EVIDENCE_SQL = """nc_evidence AS (
    SELECT a, struct_pack(jaccard := round(link.score.jaccard, 3), minhash := json(?)) AS evidence,
           CASE WHEN link.score.truncated THEN json_object('truncated_to', ?) ELSE json_object() END AS patch
    FROM nc_best)"""


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


def columns(p: NearCaptionParams, keyed: pa.Table | None, n: int) -> dict[str, pa.Array]:
    """Each caption key cut to its first :data:`~scrutineer.matching.minhash.MAX_CHARS` characters and
    whether it was cut (``keyed``'s ``near_caption_key`` and ``near_caption_truncated``,
    :func:`scrutineer.detectors.dedup.exact.keyed`), and the LSH band keys of the cut key; null for
    no caption, and in every one of the ``n`` rows when ``near_caption`` is not on (``keyed`` None)."""
    if keyed is None:
        return {f.name: pa.nulls(n, f.type) for f in COLUMNS}
    bands, rows = p.bands_rows
    keys = keyed.column("near_caption_key").combine_chunks()
    present = pc.is_valid(keys)
    signed = band_keys(minhashes(keys.drop_null().to_pylist(), Shingling(p.shingles, p.ngram), p.num_perm, p.seed), bands, rows)
    return {"near_caption_key": keys, "near_caption_truncated": keyed.column("near_caption_truncated"),
            "near_caption_bands": spread(uint64_lists(signed), present)}


def links(query: Query, p: NearCaptionParams, signatures: str) -> None:
    """Add to ``query`` the ``nc`` tables before the clusters': ``nc_link`` and ``nc_arc``."""
    shingles = Shingling(p.shingles, p.ngram).sql("s.near_caption_key", "g.ngram")
    query.with_(LINKS_SQL.format(signatures=signatures, shingles=shingles), p.ngram, p.threshold)


def evidence(query: Query, p: NearCaptionParams) -> None:
    """Add to ``query`` ``nc_evidence`` (after the clusters' tables): the Jaccard similarity of each
    node's best link, and ``minhash``: algorithm, shingles, n-gram, permutations, bands, rows,
    seed and threshold, enough to reproduce the finding."""
    bands, rows = p.bands_rows
    minhash = json.dumps({"algorithm": "MinHash LSH (rensa RMinHash), exact Jaccard of the candidates", "shingles": p.shingles,
                          "ngram": p.ngram, "num_perm": p.num_perm, "bands": bands, "rows": rows, "seed": p.seed, "threshold": p.threshold})
    query.with_(EVIDENCE_SQL, minhash, MAX_CHARS)
