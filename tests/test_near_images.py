"""Near-duplicate images (dedup on: [near_image]): a JPEG photo with its copies saved as JPEG files,
other photos, and the scikit-image pictures with their resized, greyscale, rotated and mirrored
copies (made in memory, never written), the pigeonhole blocks against brute force, and the rules
for the kept sample."""

from __future__ import annotations

import io
import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse
import scipy.sparse.csgraph
from PIL import Image

from scrutineer.detectors.base import DetectContext
from scrutineer.detectors.conformance import register_signatures
from scrutineer.detectors.dedup import Dedup, near_image
from scrutineer.detectors.dedup.near_image import HOT_BUCKET
from scrutineer.detectors.dedup.query import Query
from scrutineer.matching.codes import hex_codes, words
from scrutineer.matching.pigeonhole import block_bounds, block_values
from scrutineer.observing.hashing import hash_content, pdq_hex

SKIMAGE = ("astronaut", "brick", "camera", "cell", "chelsea", "clock_motion", "coins", "grass", "horse", "text")
VARIANTS = {
    "resize": lambda im: im.resize((im.width // 2, im.height // 2)),
    "gray": lambda im: im.convert("L"),
    "rot90": lambda im: im.rotate(90, expand=True),  # a quarter turn counter-clockwise
    "hflip": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def images(test_data) -> dict[str, bytes]:
    """name -> bytes: the 9 JPEG files of tests/data/images/jpeg (rocket and its 4 copies, and 4
    other photos), and each scikit-image picture with its 4 copies (in memory)."""
    found = {p.stem: p.read_bytes() for p in sorted((test_data / "images" / "jpeg").glob("*.jpg"))}
    for name in SKIMAGE:
        with Image.open(test_data / "images" / "skimage" / f"{name}.png") as im:
            im = im.convert("RGB")
            found[name] = _png(im)
            found |= {f"{name}_{v}": _png(make(im)) for v, make in VARIANTS.items()}
    return found


def content_batch(hashed: dict[str, object], licences: dict[str, str] | None = None) -> pa.RecordBatch:
    """A content batch (the columns near_image and keep read) of ``{sample_id: ContentHashes}``."""
    names = list(hashed)
    n = len(names)
    column = {f: [getattr(hashed[s], f) for s in names] for f in ("pdq", "pdq_quality", "phash", "width", "height")}
    dihedral = [list(hashed[s].pdq_dihedral) if hashed[s].pdq_dihedral else None for s in names]
    return pa.RecordBatch.from_pydict(
        {"row_index": pa.array(range(n), pa.int64()), "sample_id": names, "url": [f"http://img.example/{s}" for s in names],
         **column, "pdq_dihedral": pa.array(dihedral, pa.list_(pa.string())),
         "caption": pa.nulls(n, pa.string()), "license": pa.array([(licences or {}).get(s) for s in names], pa.string())}
    )


def judge(batch: pa.RecordBatch, **params) -> dict[str, dict]:
    """sample_id -> evidence of every duplicate.near_image finding over one shard."""
    detector = Dedup(Dedup.Params(on=["near_image"], **params), DetectContext("shard"))
    con = duckdb.connect()
    view = register_signatures(con, detector, detector.signatures(batch))
    return {r[2]: json.loads(r[7]) for r in con.execute(*Dedup.finalize(detector.params, view)).fetchall() if r[6] == "duplicate.near_image"}


def clusters(found: dict[str, dict]) -> list[set[str]]:
    """The clusters found, each as its kept sample and its flagged ones."""
    by_kept: dict[str, set[str]] = {}
    for sample, evidence in found.items():
        by_kept.setdefault(evidence["kept_sample_id"], {evidence["kept_sample_id"]}).add(sample)
    return sorted(by_kept.values(), key=sorted)


#: The clusters expected with the PDQ's dihedral hashes (fetch.pdq_dihedral), PDQ within 31 bits
#: (pdq_blocks 32: every pair within 31 bits is a candidate), and pHash within 10 bits.
#: Distances measured here (PDQ over the 8 dihedral variants / pHash, bits) to the original:
#:
#: - rocket: gray 2/0, resize 4/0, hflip 6/32 (the 'flip left to right' hash; 126 bits without
#:   it). Not its _rotation copy: turned by 20°, which no dihedral transform undoes (PDQ 114,
#:   pHash 30 bits; both hashes read a fixed grid of the image).
#: - astronaut, camera, cell, chelsea, coins, horse, text: gray 0/0; resize 6-22/0-2; rot90
#:   0-16 and hflip 0-16 (dihedral)/24-36.
#: - brick: gray 0/0, resize 58/2 (PDQ of a fine texture moves with scale; pHash holds). Its rot90
#:   and hflip copies are 88 bits from it over every dihedral hash, and pHash 36/32: they form a
#:   cluster of their own (0 bits apart through 'transpose').
#: - grass: gray 0/0, resize 28/0; rot90 and hflip 36 bits (dihedral), pHash 42/30: a cluster of
#:   their own (0 bits through 'transpose').
#: - clock_motion: PDQ quality 34 (below Meta's 50, so its PDQ is not compared), pHash gray 0,
#:   resize 0, rot90 30, hflip 32: only gray and resize group.
#:
#: Distractors: the 4 other photos and the _rotation copy: the nearest to any other image is 100
#: bits from it in PDQ, and 20 in pHash.
EXPECTED = [
    {"rocket", "rocket_gray", "rocket_resize", "rocket_hflip"},
    *({n, *(f"{n}_{v}" for v in VARIANTS)} for n in ("astronaut", "camera", "cell", "chelsea", "coins", "horse", "text")),
    {"brick", "brick_gray", "brick_resize"}, {"brick_rot90", "brick_hflip"},
    {"grass", "grass_gray", "grass_resize"}, {"grass_rot90", "grass_hflip"},
    {"clock_motion", "clock_motion_gray", "clock_motion_resize"},
]


@pytest.fixture(scope="module")
def hashed(images) -> dict[str, object]:
    return {name: hash_content(data, dihedral=True) for name, data in images.items()}


def test_each_original_groups_with_its_copies_as_far_as_pdq_and_phash_can(hashed):
    found = judge(content_batch(hashed), near_image={"pdq_blocks": 32, "phash_threshold": 10, "phash_blocks": 11})
    assert clusters(found) == sorted(EXPECTED, key=sorted)
    for cluster in EXPECTED:  # the kept sample is the first row of its cluster (the original)
        first = min(cluster, key=list(hashed).index)
        assert all(found[s]["kept_sample_id"] == first and found[s]["cluster_size"] == len(cluster) for s in cluster - {first})
    assert (found["rocket_hflip"]["pdq_distance"], found["rocket_hflip"]["transform"]) == (6, "flip left to right")
    assert found["cell_rot90"]["transform"] == "rotate 270° counter-clockwise"  # undoes the quarter turn
    assert found["brick_resize"]["pdq_distance"] > 31 and found["brick_resize"]["phash_distance"] <= 10


def test_with_the_defaults_and_no_dihedral_hashes_fewer_copies_group(hashed):
    """Defaults (PDQ within 31 bits in 8 blocks, no pHash) and no fetch.pdq_dihedral: PDQ is not
    flip- or rotation-invariant, so no rot90 or hflip copy groups (120-140 bits away); pairs
    within 7 bits are always found (the pigeonhole guarantee of 8 blocks: rocket_resize, 4 bits);
    pairs at 8-31 bits only when a 32-bit block is equal in both: camera_resize (10),
    horse_resize (12), astronaut_resize (14), text_resize (16) are found, chelsea_resize (16),
    coins_resize (22) and grass_resize (28) are not; brick_resize (58 bits) and clock_motion
    (quality 34) are out of PDQ's reach."""
    plain = {name: type(h)(**{**h.as_dict(), "pdq_dihedral": None}) for name, h in hashed.items()}
    found = judge(content_batch(plain))
    grey = {f"{n}_gray" for n in ("rocket", *SKIMAGE) if n != "clock_motion"}
    resized = {f"{n}_resize" for n in ("rocket", "camera", "cell", "horse", "astronaut", "text")}
    assert set(found) == grey | resized
    assert all(found[s]["kept_sample_id"] == s.rsplit("_", 1)[0] and found[s]["transform"] == "original" for s in found)
    assert max(e["pdq_distance"] for e in found.values()) == 16


def test_keep_largest_image_keeps_the_original_over_its_half_size_copy(hashed):
    names = ["astronaut_resize", "astronaut", "rocket_resize", "rocket"]
    found = judge(content_batch({n: hashed[n] for n in names}), keep="largest_image")
    assert {s: e["kept_sample_id"] for s, e in found.items()} == {"astronaut_resize": "astronaut", "rocket_resize": "rocket"}
    first = judge(content_batch({n: hashed[n] for n in names}))
    assert {s: e["kept_sample_id"] for s, e in first.items()} == {"astronaut": "astronaut_resize", "rocket": "rocket_resize"}


def test_keep_has_license_keeps_a_sample_whose_licence_is_known(hashed):
    names = ["camera", "camera_gray", "camera_resize"]
    licences = {"camera": "all rights reserved", "camera_resize": "https://creativecommons.org/licenses/by/4.0/"}
    found = judge(content_batch({n: hashed[n] for n in names}, licences), keep="has_license")
    assert {s: e["kept_sample_id"] for s, e in found.items()} == {"camera": "camera_resize", "camera_gray": "camera_resize"}


def test_copies_of_one_image_link_to_its_first_copy(hashed):
    """A thousand rows of one image make one cluster through 999 links to the first, not 499,500."""
    batch = content_batch({f"copy-{i}": hashed["coins"] for i in range(1_000)} | {"other": hashed["horse"]})
    found = judge(batch)
    assert set(found) == {f"copy-{i}" for i in range(1, 1_000)}
    assert {(e["kept_sample_id"], e["near_sample_id"], e["pdq_distance"], e["cluster_size"]) for e in found.values()} == {("copy-0", "copy-0", 0, 1_000)}


def random_codes(n: int, planted: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 256-bit codes, the last ``planted`` of them an earlier code with 0-31 bits
    flipped; and each planted code's number of flipped bits."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    bits = rng.integers(0, 32, planted)
    for k, flips in enumerate(bits):
        i = n - planted + k
        codes[i] = codes[rng.integers(0, i)]
        for b in rng.choice(256, flips, replace=False):
            codes[i, b // 8] ^= np.uint8(1 << (7 - b % 8))
    return codes, bits


def flagged_by_brute_force(codes: np.ndarray, threshold: int) -> set[int]:
    """Rows in a connected component (scipy) of the pairs within ``threshold`` bits, all but the first."""
    bits = np.unpackbits(codes, axis=1).astype(np.int16)
    distance = bits @ (1 - bits).T + (1 - bits) @ bits.T
    rows, cols = np.nonzero(np.triu(distance <= threshold, 1))
    n = len(codes)
    _, component = scipy.sparse.csgraph.connected_components(scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    linked = set(rows.tolist()) | set(cols.tolist())
    first = {}
    for i, c in enumerate(component):
        first.setdefault(c, i)
    return {i for i in linked if first[component[i]] != i}


def code_batch(codes: np.ndarray) -> pa.RecordBatch:
    n = len(codes)
    return pa.RecordBatch.from_pydict(
        {"row_index": pa.array(range(n), pa.int64()), "sample_id": [f"s{i}" for i in range(n)], "url": pa.nulls(n, pa.string()),
         "pdq": [c.tobytes().hex() for c in codes], "pdq_quality": [100] * n, "phash": pa.nulls(n, pa.string()),
         "width": pa.nulls(n, pa.int32()), "height": pa.nulls(n, pa.int32()), "pdq_dihedral": pa.nulls(n, pa.list_(pa.string())),
         "caption": pa.nulls(n, pa.string()), "license": pa.nulls(n, pa.string())}
    )


def test_blocks_find_what_brute_force_finds():
    """With threshold + 1 blocks, the pigeonhole search flags exactly the rows a brute-force
    search of every pair does; with the default 8, every code within 7 bits of another is found,
    and nothing a brute-force search does not flag."""
    codes, bits = random_codes(3_000, 400, seed=7)
    exact = {int(s[1:]) for s in judge(code_batch(codes), near_image={"pdq_blocks": 32})}
    assert exact == flagged_by_brute_force(codes, 31)
    default = {int(s[1:]) for s in judge(code_batch(codes))}
    planted_near = {3_000 - 400 + k for k in np.flatnonzero(bits <= 7)}
    assert planted_near <= default <= exact
    assert len(default) < len(exact)  # some pairs at 8-31 bits share no 32-bit block


def test_blocks_and_words_read_the_bits_in_order():
    codes, _ = random_codes(50, 0, seed=3)
    as_int = [int(c.tobytes().hex(), 16) for c in codes]
    for blocks in (4, 8, 11, 32):
        values = block_values(codes, blocks)
        for (lo, hi), column in zip(block_bounds(256, blocks), values.T):
            assert column.tolist() == [(x >> (256 - hi)) & ((1 << (hi - lo)) - 1) for x in as_int]
    assert [sum(int(w) << (64 * (3 - k)) for k, w in enumerate(row)) for row in words(codes)] == as_int
    assert (hex_codes(pa.array([pdq_hex(np.unpackbits(c)) for c in codes]), 256) == codes).all()
    with pytest.raises(ValueError, match="at most 64 bits"):
        block_bounds(256, 3)


def test_a_block_shared_by_many_codes_links_them_to_its_first_code_only():
    """2,500 distinct codes with the same first 32 bits would make 3.1M candidate pairs in that
    block; past HOT_BUCKET codes they link to its first code instead (2,499 candidates, none
    within 31 bits), and a near pair among them is still found through its other blocks."""
    codes, _ = random_codes(2_500, 0, seed=11)
    codes[:, :4] = codes[0, :4]
    codes[-1] = codes[100]
    codes[-1, 20] ^= np.uint8(0b101)  # 2 bits from row 100, in block 5
    assert len(codes) > HOT_BUCKET
    batch = code_batch(codes)
    assert set(judge(batch)) == {"s2499"}
    detector = Dedup(Dedup.Params(on=["near_image"]), DetectContext("shard"))
    con = duckdb.connect()
    query = Query()
    near_image.links(query, detector.params.near_image, register_signatures(con, detector, detector.signatures(batch)))
    query.union("SELECT count(*) FROM ni_candidate")
    candidates = con.execute(*query.build()).fetchall()[0][0]
    assert len(codes) - 1 <= candidates < 2 * len(codes)
