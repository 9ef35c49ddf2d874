"""Mirror-aware PDQ (fetch.pdq_dihedral): the 8 dihedral hashes, and bank matching through them."""

from __future__ import annotations

import io
import json

import numpy as np
import pdqhash
import pyarrow as pa
import pytest
from PIL import Image

from scrutineer.core.banks import Bank, BankRef
from scrutineer.core.contract import CONTENT
from scrutineer.detectors.base import DetectContext
from scrutineer.detectors.content_hashlist import ContentHashlist
from scrutineer.matching.codes import hamming
from scrutineer.observing.hashing import PDQ_DIHEDRAL, hash_content, pdq_hex


@pytest.fixture(scope="module")
def rocket(test_data):
    """rocket.jpg and its copies (tests/data/images/jpeg) by what was done to it: "original",
    "gray", "hflip", "resize" or "rotation" -> the file's bytes."""
    folder = test_data / "images" / "jpeg"
    return {p.stem.removeprefix("rocket").lstrip("_") or "original": p.read_bytes() for p in folder.glob("rocket*.jpg")}


def test_dihedral_order_is_the_transforms_named(test_data):
    """The i-th dihedral hash of an image is the PDQ of the image under PDQ_DIHEDRAL[i] (numpy's
    rotations and flips), within a few bits, and far from every other one."""
    rgb = np.asarray(Image.open(test_data / "images" / "skimage" / "astronaut.png").convert("RGB"))
    transformed = [rgb, np.rot90(rgb, 1), np.rot90(rgb, 2), np.rot90(rgb, 3), rgb[::-1], rgb[:, ::-1], rgb.transpose(1, 0, 2),
                   np.rot90(rgb, 2).transpose(1, 0, 2)]
    hashes = hash_content(_png(rgb), dihedral=True)
    dihedral = (hashes.pdq, *hashes.pdq_dihedral)
    assert len(dihedral) == len(PDQ_DIHEDRAL) == 8
    for i, image in enumerate(transformed):
        direct = pdq_hex(pdqhash.compute(np.ascontiguousarray(image))[0])
        distances = [hamming(direct, h) for h in dihedral]
        assert distances[i] <= 16 and min(d for j, d in enumerate(distances) if j != i) >= 90, (PDQ_DIHEDRAL[i], distances)


def test_without_dihedral_nothing_more_is_computed(rocket):
    plain, both = hash_content(rocket["original"]), hash_content(rocket["original"], dihedral=True)
    assert plain.pdq_dihedral is None and plain.pdq == both.pdq and plain.pdq_quality == both.pdq_quality


def test_a_mirrored_copy_matches_the_bank_entry_of_the_original(rocket):
    """rocket_hflip is the original mirrored: its plain PDQ is 126 bits from the original's (PDQ is
    not flip-invariant), its 'flip left to right' hash 6 bits. The _rotation copy is turned by 20°,
    which no dihedral transform undoes: 116 bits at best, no match."""
    original = hash_content(rocket["original"])
    bank = Bank(BankRef("pdq-list", "test", "1", "pdq", "e" * 64, 1), pa.array([original.pdq]))
    names = ["hflip", "rotation", "gray"]
    for dihedral, expected in ((False, {"gray"}), (True, {"gray", "hflip"})):
        batch = _content_batch([hash_content(rocket[n], dihedral=dihedral) for n in names])
        found = ContentHashlist(ContentHashlist.Params(), DetectContext("s", [bank])).detect(batch)
        matched = {names[i]: json.loads(e) for i, e in zip(found["row_index"].to_pylist(), found["evidence"].to_pylist())}
        assert set(matched) == expected
        if dihedral:
            assert (matched["hflip"]["distance"], matched["hflip"]["transform"]) == (6, "flip left to right")
            assert matched["gray"]["transform"] == "original"
        else:
            assert "transform" not in matched["gray"]


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def _content_batch(hashes: list) -> pa.RecordBatch:
    """CONTENT rows of alive samples with these hashes."""
    n = len(hashes)
    columns = {f.name: pa.nulls(n, f.type) for f in CONTENT}
    columns |= {
        "row_index": pa.array(range(n), pa.int64()),
        "sample_id": pa.array([f"s{i}" for i in range(n)]),
        "url": pa.array([f"http://a.example/{i}.jpg" for i in range(n)]),
        "status": pa.array(["alive"] * n),
        "pdq": pa.array([h.pdq for h in hashes]),
        "pdq_quality": pa.array([h.pdq_quality for h in hashes], pa.int32()),
        "pdq_dihedral": pa.array([list(h.pdq_dihedral) if h.pdq_dihedral else None for h in hashes], pa.list_(pa.string())),
    }
    return pa.RecordBatch.from_pydict(columns, schema=CONTENT)
