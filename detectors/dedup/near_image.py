"""``dedup``'s near images, ``duplicate.near_image``: per shard, each image's PDQ (with its
dihedral variants when stored) and pHash as 64-bit words and pigeonhole blocks
(:mod:`scrutineer.matching.pigeonhole`); across shards, the rows sharing a code or a block
(``near_image_candidates.sql``), verified on their exact Hamming distance (``near_image.sql``),
then clustered (:mod:`~scrutineer.detectors.dedup.clusters`)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from scrutineer.detectors.dedup.arrays import spread, uint64_lists
from scrutineer.detectors.dedup.query import Query, sql_file
from scrutineer.matching.codes import hex_codes, words
from scrutineer.matching.pigeonhole import block_values
from scrutineer.matching.signals import PHASH, PdqParams
from scrutineer.observing.hashing import PDQ_DIHEDRAL

#: Columns of the signatures holding a row's PDQ (4 words, most significant first; with its 7
#: dihedral variants, 32: :data:`scrutineer.observing.hashing.PDQ_DIHEDRAL` order) and pHash (1
#: word), each with its pigeonhole blocks (:mod:`scrutineer.matching.pigeonhole`; those of the
#: dihedral variants follow the original's).
COLUMNS = [
    pa.field("near_image_pdq", pa.list_(pa.uint64())),
    pa.field("near_image_pdq_blocks", pa.list_(pa.uint64())),
    pa.field("near_image_phash", pa.uint64()),
    pa.field("near_image_phash_blocks", pa.list_(pa.uint64())),
]
#: Codes sharing one pigeonhole block beyond which they are linked to the block's first code only
#: (as caption band buckets are), not pairwise: n codes in one block would make n^2 / 2 candidates.
#: A pair is then found only through another block or a chain through the first code.
HOT_BUCKET = 1_000
#: Per dihedral transform (index into PDQ_DIHEDRAL), the one that undoes it.
INVERSE = [0, 3, 2, 1, 4, 5, 6, 7]
#: ``ni_{signal}_candidate``: one signal's candidate pairs.
CANDIDATES_SQL = sql_file("near_image_candidates.sql")
#: ``ni_link`` and ``ni_arc``: the pairs of images within a threshold, with ``pdq_distance``,
#: ``transform`` and ``phash_distance``.
LINKS_SQL = sql_file("near_image.sql")
#: ``ni_evidence``: the distances of each node's best link in bits (null where a hash is
#: missing), its dihedral transform (named by the first parameter, :data:`PDQ_DIHEDRAL`) and the
#: ``near_image`` parameters (the second, a JSON object).
EVIDENCE_SQL = """ni_evidence AS (
    SELECT a, struct_pack(pdq_distance := link.score.pdq_distance, phash_distance := link.score.phash_distance,
                          transform := list_extract(CAST(? AS VARCHAR[]), link.score.transform + 1), near_image := json(?)) AS evidence,
           json_object() AS patch
    FROM ni_best)"""


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


def columns(p: NearImageParams, batch: pa.RecordBatch | None, n: int) -> dict[str, pa.Array]:
    """Each image's PDQ (quality at least ``pdq_min_quality``; with its dihedral variants when
    stored) and pHash, as words and pigeonhole blocks (the pHash's only when ``phash_threshold`` is
    set); null where a hash is missing, and in every one of the ``n`` rows when ``near_image`` is
    not on (``batch`` None)."""
    if batch is None:
        return {f.name: pa.nulls(n, f.type) for f in COLUMNS}
    good = pc.fill_null(pc.and_(pc.is_valid(batch.column("pdq")), pc.greater_equal(batch.column("pdq_quality"), p.pdq_min_quality)), False)
    pdq = hex_codes(batch.column("pdq").filter(good), 256)[:, None, :]  # (images, variants, 32 bytes)
    dihedral = batch.column("pdq_dihedral").filter(good)
    if len(dihedral) and dihedral.null_count == 0:  # a content observation has them for every image or for none
        pdq = np.concatenate([pdq, hex_codes(pc.list_flatten(dihedral), 256).reshape(len(pdq), -1, 32)], axis=1)
    variants = pdq.shape[1]
    flat = pdq.reshape(-1, 32)
    has_phash = pc.is_valid(batch.column("phash"))
    phash = hex_codes(batch.column("phash").filter(has_phash), 64)
    blocks = spread(uint64_lists(block_values(phash, p.phash_blocks)), has_phash) if p.phash_threshold is not None else None
    return {
        "near_image_pdq": spread(uint64_lists(words(flat).reshape(-1, 4 * variants)), good),
        "near_image_pdq_blocks": spread(uint64_lists(block_values(flat, p.pdq_blocks).reshape(-1, p.pdq_blocks * variants)), good),
        "near_image_phash": spread(pa.array(words(phash)[:, 0], pa.uint64()), has_phash),
        "near_image_phash_blocks": blocks if blocks is not None else pa.nulls(n, pa.list_(pa.uint64())),
    }


def links(query: Query, p: NearImageParams, signatures: str) -> None:
    """Add to ``query`` the ``ni`` tables before the clusters': each signal's candidates (PDQ's,
    and pHash's with ``phash_threshold``), ``ni_link`` and ``ni_arc``."""
    signals = {"pdq": (p.pdq_blocks, "near_image_pdq[1:4]")} | ({"phash": (p.phash_blocks, "near_image_phash")} if p.phash_threshold is not None else {})
    for signal, (blocks, key) in signals.items():
        query.with_(CANDIDATES_SQL.format(signatures=signatures, signal=signal, code=f"near_image_{signal}", key=key), blocks, blocks, HOT_BUCKET)
    candidates = " UNION ".join(f"SELECT * FROM ni_{signal}_candidate" for signal in signals)
    query.with_(LINKS_SQL.format(signatures=signatures, candidates=candidates), INVERSE, p.pdq_threshold, p.phash_threshold)


def evidence(query: Query, p: NearImageParams) -> None:
    """Add to ``query`` ``ni_evidence`` (after the clusters' tables): ``pdq_distance`` and
    ``phash_distance`` of each node's best link, ``transform`` (the dihedral transform taking the
    flagged image to the near one) and the ``near_image`` parameters."""
    params = json.dumps(p.model_dump(mode="json") | {"dihedral": list(PDQ_DIHEDRAL)})
    query.with_(EVIDENCE_SQL, list(PDQ_DIHEDRAL), params)
