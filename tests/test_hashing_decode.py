"""Decoding for the perceptual hashes (fetch.decode): ``full`` gives the reference hashes (hashlib,
pdqhash and imagehash on the full decode, computed here with the libraries), ``luma`` (the default)
and ``reduced`` stay within their stated bounds and keep every near-duplicate match the reference
makes, a greyscale image hashes as its RGB copy, and the faster
PDQ and pHash paths (scrutineer.observing.pdq_native, phash_native) give pdqhash's and imagehash's
hashes bit for bit."""

from __future__ import annotations

import hashlib
import io
import itertools

import imagehash
import numpy as np
import pdqhash
import pytest
from PIL import Image

from scrutineer.core.config import FetchConfig
from scrutineer.matching.signals import PDQ, PDQ_MIN_QUALITY, PHASH
from scrutineer.observing import hashing, pdq_native, phash_native
from scrutineer.observing.hashing import (
    FULL_SIZE,
    LUMA_BOUND,
    REDUCED_BOUND,
    decode_image,
    hash_content,
    hash_fetched,
    pdq_hex,
    pdq_of,
)


@pytest.fixture(scope="module")
def real_images(test_data) -> dict[str, bytes]:
    """Every real image of tests/data/images, by path under it: JPEG photos and copies, the
    scikit-image pictures (PNG), img2dataset's fixture (PNG) and Meta's PDQ test photo with its
    edits (JPEG, 1600 x 1004: the ones ``reduced`` decodes at half scale)."""
    root = test_data / "images"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.suffix in (".jpg", ".png")}


def reference(body: bytes) -> dict:
    """The hashes of ``body`` by the libraries themselves, on the full decode."""
    rgb = Image.open(io.BytesIO(body)).convert("RGB")
    vectors, quality = pdqhash.compute_dihedral(np.asarray(rgb))
    vector, plain_quality = pdqhash.compute(np.asarray(rgb))
    assert plain_quality == quality and pdq_hex(vector) == pdq_hex(vectors[0])
    return {
        "md5": hashlib.md5(body).hexdigest(), "sha1": hashlib.sha1(body).hexdigest(), "sha256": hashlib.sha256(body).hexdigest(),
        "pdq": pdq_hex(vectors[0]), "pdq_quality": int(quality), "pdq_dihedral": tuple(pdq_hex(v) for v in vectors[1:]),
        "phash": str(imagehash.phash(rgb)), "width": rgb.width, "height": rgb.height, "bytes": len(body),
    }


@pytest.fixture(scope="module")
def references(real_images) -> dict[str, dict]:
    return {name: reference(body) for name, body in real_images.items()}


def bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def test_full_decode_gives_the_libraries_hashes_on_every_real_image(real_images, references):
    assert len(real_images) == 27  # 9 JPEG photos and copies, 10 scikit-image pictures, 1 fixture, 7 of Meta's
    for name, body in real_images.items():
        got = hash_content(body, dihedral=True, decode="full").as_dict()
        assert {k: got[k] for k in references[name]} == references[name], name
        assert hash_content(body, decode="full").pdq == references[name]["pdq"]


def test_reduced_decode_stays_within_its_bound_and_keeps_each_image_size(real_images, references):
    """Only the JPEGs of 1,024 px or more on the longer side (Meta's 1600 x 1004 photos) decode
    smaller; their hashes stay within REDUCED_BOUND (measured: PDQ 0-4 bits, pHash 0); every other
    image hashes as in full."""
    moved = {}
    for name, body in real_images.items():
        got = hash_content(body, dihedral=True, decode="reduced")
        ref = references[name]
        assert (got.width, got.height, got.bytes, got.md5) == (ref["width"], ref["height"], ref["bytes"], ref["md5"])
        pdq, phash = bits(got.pdq, ref["pdq"]), bits(got.phash, ref["phash"])
        assert pdq <= REDUCED_BOUND["pdq"] and phash <= REDUCED_BOUND["phash"], name
        if max(ref["width"], ref["height"]) < 1024:
            assert (got.pdq, got.pdq_dihedral, got.pdq_quality, got.phash) == (ref["pdq"], ref["pdq_dihedral"], ref["pdq_quality"], ref["phash"]), name
        else:
            moved[name] = pdq
    assert set(moved) == {f"pdq_bridge/{n}.jpg" for n in ("aaa-orig", "blur-a-lot", "high-contrast", "rotate-90", "shrink-a-little")}
    assert any(moved.values())  # the decode is reduced indeed


def test_luma_decode_stays_within_its_bound_and_changes_only_colour_jpegs(real_images, references):
    """A colour JPEG decodes to its luma channel (mode L) and its hashes stay within LUMA_BOUND
    (measured: PDQ 0-2 bits, pHash 0-2); its digests and size are the image's; every PNG hashes
    exactly as in full (a greyscale one is hashed as its RGB copy: the same hashes)."""
    moved = []
    for name, body in real_images.items():
        got = hash_content(body, dihedral=True, decode="luma")
        ref = references[name]
        assert (got.width, got.height, got.bytes, got.md5, got.sha256) == (ref["width"], ref["height"], ref["bytes"], ref["md5"], ref["sha256"])
        assert bits(got.pdq, ref["pdq"]) <= LUMA_BOUND["pdq"] and bits(got.phash, ref["phash"]) <= LUMA_BOUND["phash"], name
        if name.endswith(".png"):
            assert (got.pdq, got.pdq_dihedral, got.pdq_quality, got.phash) == (ref["pdq"], ref["pdq_dihedral"], ref["pdq_quality"], ref["phash"]), name
        else:
            assert decode_image(body, decode="luma").mode == "L", name
            moved.append(got.pdq != ref["pdq"] or got.phash != ref["phash"])
    assert len(moved) == 16 and any(moved)  # the decode is the luma channel indeed


def test_a_greyscale_image_hashes_as_its_rgb_copy_bit_for_bit(real_images, monkeypatch):
    """PDQ and pHash of an L image (a luma decode) are pdqhash's and imagehash's on its RGB copy,
    natively and through the libraries' own path."""
    for name in ("jpeg/rocket.jpg", "pdq_bridge/aaa-orig.jpg", "skimage/camera.png"):
        grey = decode_image(real_images[name], decode="luma")
        assert grey.mode == "L"
        rgb = grey.convert("RGB")
        vectors, quality = pdqhash.compute_dihedral(np.asarray(rgb))
        assert pdq_of(grey, dihedral=True) == (pdq_hex(vectors[0]), int(quality), tuple(pdq_hex(v) for v in vectors[1:])), name
        assert hashing.phash_of(grey) == str(imagehash.phash(rgb)), name
        with monkeypatch.context() as m:
            m.setattr(hashing, "_pdq_native", lambda: None)
            assert pdq_of(grey, dihedral=True)[0] == pdq_hex(vectors[0]), name


def test_luma_keeps_every_near_duplicate_match_of_the_reference(test_data, real_images):
    """Every real image with the rocket photo's copies and Meta's bridge edits: for every ordered
    pair, a full-decode bank and a luma scan match (PDQ, PDQ dihedral, pHash) exactly when both in
    full do, and so do a bank and a scan both luma."""
    full = {n: hash_content(b, dihedral=True, decode="full").as_dict() for n, b in real_images.items()}
    luma = {n: hash_content(b, dihedral=True, decode="luma").as_dict() for n, b in real_images.items()}
    matched = 0
    for a, b in itertools.permutations(real_images, 2):
        truth = matches(full[a], full[b])
        assert matches(full[a], luma[b]) == truth == matches(luma[a], luma[b]), (a, b)
        matched += any(truth)
    assert matched > 40


def test_reduced_decodes_a_large_jpeg_at_the_smallest_scale_keeping_512_px(test_data):
    body = (test_data / "images" / "pdq_bridge" / "aaa-orig.jpg").read_bytes()
    reduced = decode_image(body, decode="reduced")
    assert reduced.size == (800, 502) and reduced.info[FULL_SIZE] == (1600, 1004)
    assert decode_image(body, decode="full").size == (1600, 1004)
    enlarged = Image.open(io.BytesIO(body)).resize((4100, 2573))  # 1/8 would leave 512 px: 4100 // 8 = 512
    out = io.BytesIO()
    enlarged.save(out, "JPEG")
    assert decode_image(out.getvalue(), decode="reduced").size == (513, 322)
    png = io.BytesIO()
    Image.open(io.BytesIO(body)).save(png, "PNG")  # no DCT scaling: reduced is full
    assert decode_image(png.getvalue(), decode="reduced").size == (1600, 1004)
    assert hash_content(png.getvalue(), decode="reduced") == hash_content(png.getvalue(), decode="full")


def matches(bank: dict, scan: dict) -> tuple[bool, bool, bool]:
    """(PDQ, PDQ over the scan's 8 dihedral hashes, pHash) matches at the default thresholds."""
    good = bank["pdq_quality"] >= PDQ_MIN_QUALITY and scan["pdq_quality"] >= PDQ_MIN_QUALITY
    dihedral = min(bits(bank["pdq"], h) for h in (scan["pdq"], *scan["pdq_dihedral"]))
    return (good and bits(bank["pdq"], scan["pdq"]) <= PDQ.default_threshold, good and dihedral <= PDQ.default_threshold,
            bits(bank["phash"], scan["phash"]) <= PHASH.default_threshold)


def test_reduced_keeps_every_near_duplicate_match_of_the_reference(test_data):
    """Meta's bridge photo and its edits, and the rocket photo, its 4 copies and 4 other photos
    enlarged 2 x (so that reduced decodes them at half scale): for every ordered pair, a bank made
    with the full decode and a scan with the reduced one match (PDQ, PDQ dihedral, pHash) exactly
    when both in full do, and so do a bank and a scan both reduced."""
    images = {f"bridge {p.stem}": p.read_bytes() for p in (test_data / "images" / "pdq_bridge").glob("*.jpg")}
    for path in (test_data / "images" / "jpeg").glob("*.jpg"):
        with Image.open(path) as im:
            out = io.BytesIO()
            im.convert("RGB").resize((im.width * 2, im.height * 2), Image.LANCZOS).save(out, "JPEG", quality=90)
            images[path.stem.replace("_", " ")] = out.getvalue()
    full = {n: hash_content(b, dihedral=True, decode="full").as_dict() for n, b in images.items()}
    reduced = {n: hash_content(b, dihedral=True, decode="reduced").as_dict() for n, b in images.items()}
    assert sum(max(r["width"], r["height"]) >= 1024 for r in full.values()) == 13
    matched = 0
    for a, b in itertools.permutations(images, 2):
        truth = matches(full[a], full[b])
        assert matches(full[a], reduced[b]) == truth == matches(reduced[a], reduced[b]), (a, b)
        matched += any(truth)
    # the bridge's 42 ordered pairs (12 through the dihedral hashes alone: its quarter turn), and 12 of rocket's
    # with its gray, resized and mirrored copies (the mirrored through the dihedral hashes alone)
    assert matched == 54


def test_pdq_of_is_pdqhash_bit_for_bit_on_every_memory_layout(real_images, test_data):
    """pdq_native reads Pillow's own memory (4 bytes a pixel) when the image is one block, a copy
    (3 bytes a pixel) when it is not (over Pillow's 16 MB blocks): pdqhash's hashes either way."""
    assert pdq_native.AVAILABLE
    rgb = Image.open(io.BytesIO(real_images["jpeg/rocket.jpg"])).convert("RGB")
    vectors, quality = pdqhash.compute_dihedral(np.asarray(rgb))
    expected = (pdq_hex(vectors[0]), int(quality), tuple(pdq_hex(v) for v in vectors[1:]))
    assert hashing._pixels(rgb).shape == (427, 640, 4)
    assert pdq_of(rgb, dihedral=True) == expected
    assert pdq_native.pdq(np.asarray(rgb), dihedral=True) == ([expected[0], *expected[2]], expected[1])
    large = Image.open(test_data / "images" / "pdq_bridge" / "aaa-orig.jpg").convert("RGB").resize((2200, 2000))
    assert hashing._pixels(large).shape == (2000, 2200, 3)
    vector, quality = pdqhash.compute(np.asarray(large))
    assert pdq_of(large) == (pdq_hex(vector), int(quality), None)


@pytest.mark.parametrize("rows, columns", [(1, 1), (1, 9), (4, 4), (5, 5), (64, 64), (64, 65), (65, 64), (65, 65),
                                           (100, 3), (129, 257), (333, 1000), (480, 640), (1004, 1600), (2000, 90)])
def test_pdq_native_is_pdqhash_bit_for_bit_at_every_size(rows, columns):
    """The numba Jarosz filter (its box widths and phases change with the size) and the C++ whole
    path of images 64 px or less on a side: pdqhash's hashes and quality, on noise and on a
    smooth pattern, with and without the dihedral hashes."""
    y, x = np.mgrid[0:rows, 0:columns]
    smooth = np.stack([(x * 7 + y * 3) % 256, (x * y) % 256, (x + y * 11) % 256], -1).astype(np.uint8)
    noise = np.random.default_rng(rows * columns).integers(0, 256, (rows, columns, 3), dtype=np.uint8)
    for pixels in (smooth, noise):
        rgbx = np.concatenate([pixels, np.full((rows, columns, 1), 255, np.uint8)], -1)  # Pillow's own layout
        vector, quality = pdqhash.compute(pixels)
        assert pdq_native.pdq(pixels) == pdq_native.pdq(rgbx) == ([pdq_hex(vector)], int(quality))
        vectors, quality = pdqhash.compute_dihedral(pixels)
        assert pdq_native.pdq(pixels, dihedral=True) == ([pdq_hex(v) for v in vectors], int(quality))


@pytest.mark.parametrize("rows, columns", [(1, 1), (1, 9), (9, 1), (4, 4), (31, 33), (32, 32), (32, 500), (500, 32),
                                           (96, 32), (97, 34), (100, 3), (3, 100), (427, 640), (640, 480),
                                           (1000, 33), (2000, 90), (90, 2000), (1004, 1600), (3, 16_385)])
def test_phash_native_is_pillow_and_imagehash_bit_for_bit_at_every_size(rows, columns):
    """The numba LANCZOS reduction to 32 x 32 is Pillow's, pixel for pixel, at sizes that take
    either pass first (the vertical one when the height shrinks by more than twice the pixels the
    width does), one pass or none; and pHash is imagehash's, on noise and on a smooth pattern."""
    y, x = np.mgrid[0:rows, 0:columns]
    smooth = ((x * 7 + y * 3) % 256).astype(np.uint8)
    noise = np.random.default_rng(rows * columns).integers(0, 256, (rows, columns), dtype=np.uint8)
    for grey in (smooth, noise):
        expected = np.asarray(Image.fromarray(grey, "L").resize((32, 32), Image.Resampling.LANCZOS))
        assert np.array_equal(phash_native.reduce32(grey), expected)
        rgb = Image.fromarray(np.stack([grey, grey[::-1], 255 - grey], -1), "RGB")
        assert np.array_equal(phash_native.grey(rgb, hashing._pixels(rgb)), np.asarray(rgb.convert("L")))
        assert phash_native.phash(rgb) == phash_native.phash(rgb, hashing._pixels(rgb)) == str(imagehash.phash(rgb))


def test_without_pdq_native_pdqhash_runs_and_gives_the_same_hashes(real_images, monkeypatch):
    body = real_images["jpeg/rocket.jpg"]
    fast = hash_content(body, dihedral=True, decode="full")
    monkeypatch.setattr(hashing, "_pdq_native", lambda: None)
    assert hash_content(body, dihedral=True, decode="full") == fast


def test_hash_fetched_decodes_as_the_fetch_options_say(real_images):
    body = real_images["pdq_bridge/aaa-orig.jpg"]
    full, reduced = hash_content(body, decode="full"), hash_content(body, decode="reduced")
    assert full.pdq != reduced.pdq
    assert FetchConfig().decode == "luma"
    coffee = real_images["jpeg/coffee.jpg"]  # its luma decode moves its PDQ by 2 bits
    assert hash_fetched(coffee, FetchConfig()) == hash_content(coffee, decode="luma") != hash_content(coffee, decode="full")
    assert hash_fetched(body, FetchConfig(decode="full")) == full
    assert hash_fetched(body, FetchConfig(decode="reduced")) == reduced


def test_phash_native_checks_itself_against_the_installed_pillow(real_images, monkeypatch):
    """Where the numba reduction would not match the installed Pillow (an older Pillow orders its
    passes otherwise), pHash is imagehash's own: the same hashes either way."""
    assert phash_native.MATCHES_PILLOW
    rgb = Image.open(io.BytesIO(real_images["jpeg/rocket.jpg"])).convert("RGB")
    fast = phash_native.phash(rgb)
    monkeypatch.setattr(phash_native, "MATCHES_PILLOW", False)
    monkeypatch.setattr(phash_native, "reduce32", None)  # not called
    assert phash_native.phash(rgb) == fast == str(imagehash.phash(rgb))
