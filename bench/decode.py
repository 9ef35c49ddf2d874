"""Decoding an image for its perceptual hashes: what each step costs, and what a faster decode changes.

Prints three tables (bench/README.md says how to read them):

1. **Milliseconds of CPU per image, per step**, on real photos re-encoded as JPEG (quality 90) at
   256 x 256, at 640 x 480, at sizes drawn from COCO val2017's (the shared annotations), and on
   Meta's 1600 x 1004 PDQ test photo and its edits as published: the exact digests, each decode
   (Pillow in full, as luma alone and scaled with ``draft``, and where installed libjpeg-turbo's scaling through
   PyTurboJPEG, simplejpeg, libvips' shrink-on-load through pyvips), PDQ (``pdqhash.compute``
   against :func:`scrutineer.observing.hashing.pdq_of`), pHash (``imagehash.phash`` and Pillow's
   ``reducing_gap``), ``hash_content`` with ``decode`` full, luma and reduced, and img2dataset's own work
   on an image for comparison (decode, resize to 256, encode).
2. **Hamming distances to the reference** (``pdqhash`` and ``imagehash`` on the full decode) of
   each fast path, on every real image of tests/data and ``$SCRUTINEER_SHARED_DATA/images`` (by
   default ``../shared/data``), each named, then max / p95 / mean per hash.
3. **Bank-match outcomes at the default thresholds** (PDQ 31 bits with quality >= 50, over the 8
   dihedral hashes too; pHash 10 bits) on near-duplicate sets: UKBench (an original and its gray,
   mirrored, resized and rotated copies; every other pair a non-match), the rocket photo and its
   copies with 4 other photos, the scikit-image pictures and img2dataset's fixture each with 4
   copies made in memory, Meta's bridge photo with its edits, and the shared sets again enlarged 2 x
   (so that the reduced decode applies). Every ordered pair is compared three ways: bank and scan
   both decoded in full (the reference), a full-decode bank against a scan decoded the fast way,
   both the fast way; it prints the reference's matches and what each other way loses or adds.

``--pillow-simd PYTHON`` also times pHash in an interpreter where pillow-simd replaces Pillow (it
cannot share an environment with Pillow: both install the package ``PIL``) and compares its hashes.
Timings on a shared machine are a ceiling, not a figure: re-run on a quiet one.

    .venv/bin/python bench/decode.py                 # ~3 minutes on 2 cores
    .venv/bin/python bench/decode.py --repeat 3      # quicker, noisier
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
import pdqhash
from PIL import Image

from scrutineer.matching.signals import PDQ, PDQ_MIN_QUALITY, PHASH
from scrutineer.observing.hashing import (
    decode_image,
    exact_hashes,
    hash_content,
    pdq_hex,
    pdq_of,
    phash_of,
    reduced_scale,
)

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests" / "data" / "images"
SHARED = Path(os.environ.get("SCRUTINEER_SHARED_DATA", REPO.parent / "shared" / "data"))
COPIES = {  # the copies test_near_images.py makes in memory
    "resize": lambda im: im.resize((im.width // 2, im.height // 2)),
    "gray": lambda im: im.convert("L"),
    "rot90": lambda im: im.rotate(90, expand=True),
    "hflip": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


def optional(name: str):
    try:
        return __import__(name)
    except (ImportError, OSError):
        return None


turbojpeg, simplejpeg, pyvips = optional("turbojpeg"), optional("simplejpeg"), optional("pyvips")
if turbojpeg is not None:
    try:
        TJ = turbojpeg.TurboJPEG()
    except (OSError, RuntimeError):  # PyTurboJPEG 2 needs libjpeg-turbo 3; Debian 12 has 2.1 (use PyTurboJPEG < 2)
        turbojpeg = None


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


# --- the real images -------------------------------------------------------------------------------

def real_images() -> dict[str, bytes]:
    """Every real image file of tests/data/images and the shared images, by path as printed."""
    found = {}
    for root, label in ((TESTS, "tests/data/images"), (SHARED / "images", "shared/images")):
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                found[f"{label}/{path.relative_to(root)}"] = path.read_bytes()
    return found


def photos() -> list[Image.Image]:
    """Distinct real photos (no copies) to re-encode at the timing legs' sizes."""
    names = [*(TESTS / "jpeg").glob("[!r]*.jpg"), TESTS / "jpeg" / "rocket.jpg", *(SHARED / "images" / "skimage").glob("*.png"),
             *(p for p in (SHARED / "images" / "ukbench_imagededup").glob("*.jpg") if "_" not in p.stem)]
    return [Image.open(p).convert("RGB") for p in sorted(set(names)) if p.exists()]


def legs(n: int, seed: int = 0) -> dict[str, list[bytes]]:
    """name -> JPEG bodies: the photos re-encoded at 256 x 256, at 640 x 480 and at COCO's sizes,
    and Meta's bridge photos as published."""
    pics = photos()
    rng = random.Random(seed)
    coco = json.loads((SHARED / "metadata" / "coco_captions_val2017_images0-2499.json").read_text())["images"]
    sizes = [(c["width"], c["height"]) for c in rng.sample(coco, n)]
    return {
        "256x256": [encode(pics[i % len(pics)].resize((256, 256), Image.LANCZOS)) for i in range(n)],
        "640x480": [encode(pics[i % len(pics)].resize((640, 480), Image.LANCZOS)) for i in range(n)],
        "COCO sizes": [encode(pics[i % len(pics)].resize(s, Image.LANCZOS)) for i, s in enumerate(sizes)],
        "1600x1004 (Meta)": [p.read_bytes() for p in sorted((TESTS / "pdq_bridge").glob("*.jpg")) if Image.open(p).width == 1600],
    }


# --- the ways to decode and hash -------------------------------------------------------------------

def reference_decode(body: bytes) -> Image.Image:
    with Image.open(io.BytesIO(body)) as im:
        return im.convert("RGB")


def scaled_size(body: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(body)) as im:
        return (*im.size, reduced_scale(im.size) if im.format == "JPEG" else 1)


def turbo_decode(body: bytes, eighths: bool = False) -> Image.Image:
    """libjpeg-turbo through PyTurboJPEG at the reduced decode's scale, or with ``eighths`` at the
    smallest of its n/8 scales keeping the longer side at 512 px or more."""
    w, h, scale = scaled_size(body)
    factor = (1, scale)
    if eighths:
        factor = min((f for f in TJ.scaling_factors if f[0] <= f[1] and max(w, h) * f[0] // f[1] >= 512), key=lambda f: f[0] / f[1], default=(1, 1))
    try:
        return Image.fromarray(TJ.decode(body, scaling_factor=factor, pixel_format=turbojpeg.TJPF_RGB))
    except OSError:  # not a JPEG, or one it cannot give as RGB (CMYK)
        return reference_decode(body)


def simple_decode(body: bytes) -> Image.Image:
    w, h, scale = scaled_size(body)
    if not simplejpeg.is_jpeg(body):
        return reference_decode(body)
    try:
        return Image.fromarray(simplejpeg.decode_jpeg(body, "RGB", min_width=-(-w // scale), min_height=-(-h // scale)))
    except ValueError:  # CMYK
        return reference_decode(body)


def vips_decode(body: bytes) -> Image.Image:
    scale = scaled_size(body)[2]
    image = pyvips.Image.new_from_buffer(body, "", **({"shrink": scale} if scale > 1 else {}))
    if image.bands != 3 or image.interpretation != "srgb":
        return reference_decode(body)
    return Image.fromarray(image.numpy())


def meta_thumbnail(body: bytes) -> Image.Image:
    """What Meta's Python PDQ hasher hashes (pdq/python/.../pdq_hasher.py): ``thumbnail((512, 512))``."""
    image = reference_decode(body)
    image.thumbnail((512, 512))
    return image


def phash_gap(rgb: Image.Image, gap: float) -> str:
    """``imagehash.phash``'s steps with Pillow's ``reducing_gap`` (``reduce()`` by an integer factor first)."""
    import scipy.fftpack

    pixels = np.asarray(rgb.convert("L").resize((32, 32), Image.LANCZOS, reducing_gap=gap))
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
    return str(imagehash.ImageHash(dct > np.median(dct)))


def reference_hashes(rgb: Image.Image, dihedral: bool = False) -> tuple[list[str], int, str]:
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(np.asarray(rgb))
    else:
        vector, quality = pdqhash.compute(np.asarray(rgb))
        vectors = [vector]
    return [pdq_hex(v) for v in vectors], int(quality), str(imagehash.phash(rgb))


#: The fast paths: name -> body -> (PDQ hashes (8 with dihedral), quality, pHash).
def paths(dihedral: bool = False) -> dict[str, Callable[[bytes], tuple[list[str], int, str]]]:
    def ours(decode: str):
        def run(body: bytes):
            h = hash_content(body, dihedral=dihedral, decode=decode)
            return [h.pdq, *(h.pdq_dihedral or ())], h.pdq_quality, h.phash
        return run

    found = {"full (ours)": ours("full"), "luma (ours)": ours("luma"), "reduced (ours)": ours("reduced")}
    found["pHash reducing_gap 3"] = lambda b: (*reference_hashes(reference_decode(b), dihedral)[:2], phash_gap(reference_decode(b), 3.0))
    found["pHash reducing_gap 2"] = lambda b: (*reference_hashes(reference_decode(b), dihedral)[:2], phash_gap(reference_decode(b), 2.0))
    if turbojpeg is not None:
        found["PyTurboJPEG n/8 >= 512"] = lambda b: reference_hashes(turbo_decode(b, eighths=True), dihedral)
    if pyvips is not None:
        found["pyvips shrink-on-load"] = lambda b: reference_hashes(vips_decode(b), dihedral)
    found["Meta's thumbnail 512 (context)"] = lambda b: reference_hashes(meta_thumbnail(b), dihedral)
    return found


def reference(body: bytes, dihedral: bool = False) -> tuple[list[str], int, str]:
    return reference_hashes(reference_decode(body), dihedral)


def bits(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


# --- 1. time per step ------------------------------------------------------------------------------

def cpu_ms(fn: Callable[[bytes], object], bodies: list[bytes], repeat: int) -> float:
    for body in bodies[:2]:
        fn(body)
    start = time.process_time()
    for _ in range(repeat):
        for body in bodies:
            fn(body)
    return (time.process_time() - start) / (repeat * len(bodies)) * 1000


def i2d_like(body: bytes) -> bytes:
    """img2dataset's work on one image with its defaults (resize_mode border, 256 px, JPEG 95), in Pillow."""
    image = reference_decode(body)
    image.thumbnail((256, 256), Image.LANCZOS)
    out = Image.new("RGB", (256, 256))
    out.paste(image, ((256 - image.width) // 2, (256 - image.height) // 2))
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def time_steps(bodies: dict[str, list[bytes]], repeat: int) -> None:
    steps: dict[str, Callable[[bytes], object]] = {
        "digests (MD5, SHA-1, SHA-256)": exact_hashes,
        "decode: Image.open + convert RGB (reference)": reference_decode,
        "decode: decode_image full": lambda b: decode_image(b, decode="full"),
        "decode: decode_image luma (Pillow draft L)": lambda b: decode_image(b, decode="luma"),
        "decode: decode_image reduced (Pillow draft)": lambda b: decode_image(b, decode="reduced"),
    }
    if turbojpeg is not None:
        steps["decode: PyTurboJPEG, reduced's scale"] = turbo_decode
    if simplejpeg is not None:
        steps["decode: simplejpeg, reduced's scale"] = simple_decode
    if pyvips is not None:
        steps["decode: pyvips shrink-on-load"] = vips_decode
    print("\n## 1. CPU ms per image, per step (one process; a shared machine's figures are a ceiling)\n")
    print("| step | " + " | ".join(f"{k} ({len(v)})" for k, v in bodies.items()) + " |")
    print("|---|" + "---:|" * len(bodies))

    def row(name: str, fn: Callable[[bytes], object], prepare: Callable[[bytes], object] | None = None) -> None:
        cells = []
        for leg in bodies.values():
            inputs = [prepare(b) for b in leg] if prepare else leg
            cells.append(f"{cpu_ms(fn, inputs, repeat):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")

    for name, fn in steps.items():
        row(name, fn)

    def full(body: bytes) -> Image.Image:
        return decode_image(body, decode="full")

    def luma(body: bytes) -> Image.Image:
        return decode_image(body, decode="luma")

    def reduced(body: bytes) -> Image.Image:
        return decode_image(body, decode="reduced")

    row("PDQ: pdqhash.compute(np.asarray), full decode (reference)", lambda im: pdqhash.compute(np.asarray(im)), full)
    row("PDQ: pdq_of, full decode (same hash)", pdq_of, full)
    row("PDQ: pdq_of, luma decode", pdq_of, luma)
    row("PDQ: pdq_of, reduced decode", pdq_of, reduced)
    row("PDQ dihedral: pdqhash.compute_dihedral, full (reference)", lambda im: pdqhash.compute_dihedral(np.asarray(im)), full)
    row("PDQ dihedral: pdq_of, full (same hashes)", lambda im: pdq_of(im, True), full)
    row("pHash: imagehash.phash, full decode (reference; phash_of)", phash_of, full)
    row("pHash: phash_of, luma decode", phash_of, luma)
    row("pHash: phash_of, reduced decode", phash_of, reduced)
    row("pHash: reducing_gap 3, full decode", lambda im: phash_gap(im, 3.0), full)
    row("pHash: reducing_gap 2, full decode", lambda im: phash_gap(im, 2.0), full)
    row("hash_content, reference steps (decode, pdqhash, imagehash, digests)",
        lambda b: (exact_hashes(b), reference(b)))
    row("hash_content decode=full", lambda b: hash_content(b, decode="full"))
    row("hash_content decode=luma", lambda b: hash_content(b, decode="luma"))
    row("hash_content decode=reduced", lambda b: hash_content(b, decode="reduced"))
    row("img2dataset's work (decode, resize to 256, JPEG 95), for comparison", i2d_like)


# --- 2. distances -----------------------------------------------------------------------------------

def summary(values: list[int]) -> str:
    return f"{max(values)} / {np.percentile(values, 95):.0f} / {np.mean(values):.2f}" if values else "-"


def distances(images: dict[str, bytes], enlarged: dict[str, bytes], simd: dict[str, str] | None) -> None:
    ways = paths()
    refs = {name: reference(body) for name, body in images.items()}
    table = {way: {name: fn(body) for name, body in images.items()} for way, fn in ways.items()}
    print("\n## 2. Hamming distance to the reference (pdqhash, imagehash on the full decode), bits: PDQ/pHash\n")
    print("| image | size | scale | " + " | ".join(ways) + (" | pillow-simd pHash" if simd else "") + " |")
    print("|---|---|---|" + "---|" * (len(ways) + bool(simd)))
    for name, body in images.items():
        w, h, scale = scaled_size(body)
        cells = [f"{bits(table[way][name][0][0], refs[name][0][0])}/{bits(table[way][name][2], refs[name][2])}" for way in ways]
        if simd:
            cells.append(str(bits(simd[name], refs[name][2])))
        print(f"| {name} | {w}x{h} | 1/{scale} | " + " | ".join(cells) + " |")
    print("\nmax / p95 / mean over all images, and over the JPEGs the reduced decode scales:\n")
    print("| path | PDQ, all | pHash, all | PDQ, scaled | pHash, scaled |")
    print("|---|---|---|---|---|")
    scaled = [n for n, b in images.items() if scaled_size(b)[2] > 1]

    def moved(way: str, names, phash: bool) -> list[int]:
        return [bits(table[way][n][2], refs[n][2]) if phash else bits(table[way][n][0][0], refs[n][0][0]) for n in names]

    for way in ways:
        print(f"| {way} | {summary(moved(way, images, False))} | {summary(moved(way, images, True))} | "
              f"{summary(moved(way, scaled, False))} | {summary(moved(way, scaled, True))} |")
    if simd:
        print(f"| pillow-simd pHash | - | {summary([bits(simd[n], refs[n][2]) for n in images])} | - | - |")
    print(f"\nThe same over the {len(enlarged)} JPEGs of UKBench and tests/data/images/jpeg enlarged 2 x (derived; every one scaled):\n")
    print("| path | PDQ | pHash |")
    print("|---|---|---|")
    big = {name: reference(body) for name, body in enlarged.items()}
    for way, fn in ways.items():
        got = {name: fn(body) for name, body in enlarged.items()}
        print(f"| {way} | {summary([bits(got[n][0][0], big[n][0][0]) for n in enlarged])} | {summary([bits(got[n][2], big[n][2]) for n in enlarged])} |")
    print(f"\n{len(scaled)} of {len(images)} images are JPEGs of 1,024 px or more on the longer side, which the reduced decode scales; "
          "on the others (PNGs have no DCT scaling) it is the full decode.")


# --- 3. bank-match outcomes ----------------------------------------------------------------------------

def near_sets() -> dict[str, dict[str, bytes]]:
    """name -> {image name: bytes}: sets of originals and copies; a pair is a true match when both
    names start with the same original's name."""
    sets: dict[str, dict[str, bytes]] = {}
    uk = SHARED / "images" / "ukbench_imagededup"
    sets["UKBench"] = {p.stem: p.read_bytes() for p in sorted(uk.glob("*.jpg"))}
    sets["rocket + 4 photos"] = {p.stem: p.read_bytes() for p in sorted((TESTS / "jpeg").glob("*.jpg"))}
    made: dict[str, bytes] = {}
    for path in [*sorted((SHARED / "images" / "skimage").glob("*.png")), SHARED / "images" / "img2dataset_hash_fixture" / "original.png"]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            stem = path.parent.name if path.stem == "original" else path.stem
            made[stem] = encode(im, "PNG")
            made |= {f"{stem}_{v}": encode(copy(im), "PNG") for v, copy in COPIES.items()}
    sets["scikit-image + img2dataset, 4 copies each"] = made
    sets["Meta's bridge and its edits"] = {f"bridge_{p.stem}": p.read_bytes() for p in sorted((TESTS / "pdq_bridge").glob("*.jpg"))}
    enlarged = {}
    for name in ("UKBench", "rocket + 4 photos"):
        for stem, body in sets[name].items():
            with Image.open(io.BytesIO(body)) as im:
                enlarged[stem] = encode(im.convert("RGB").resize((im.width * 2, im.height * 2), Image.LANCZOS))
    sets[ENLARGED] = enlarged
    return sets


ENLARGED = "UKBench, rocket + 4 photos: all enlarged 2 x (JPEG 90)"


def same_original(a: str, b: str) -> bool:
    return a.split("_")[0] == b.split("_")[0]


def match(bank: tuple[list[str], int, str], scan: tuple[list[str], int, str]) -> tuple[bool, bool, bool]:
    """(PDQ match, PDQ match over the scan's 8 dihedral hashes, pHash match) at the default thresholds."""
    good = bank[1] >= PDQ_MIN_QUALITY and scan[1] >= PDQ_MIN_QUALITY
    plain = good and bits(bank[0][0], scan[0][0]) <= PDQ.default_threshold
    dihedral = good and min(bits(bank[0][0], h) for h in scan[0]) <= PDQ.default_threshold
    return plain, dihedral, bits(bank[2], scan[2]) <= PHASH.default_threshold


def matches(sets: dict[str, dict[str, bytes]]) -> None:
    ways = {k: v for k, v in paths(dihedral=True).items() if "context" not in k}
    print("\n## 3. Bank-match outcomes, every ordered pair of each set (bank = first, scan = second)\n")
    print("PDQ within 31 bits (quality >= 50 both), plainly and over the scan's 8 dihedral hashes; pHash within 10 bits.")
    print("'ref' = the reference's matches (true copies + other pairs); each way: matches lost / made against it,")
    print("first with the bank decoded in full (a bank made elsewhere), then with both decoded that way.\n")
    print("| set | pairs | signal | ref (copies + others) | " + " | ".join(ways) + " |")
    print("|---|---:|---|---|" + "---|" * len(ways))
    for set_name, images in sets.items():
        ref = {n: reference(b, dihedral=True) for n, b in images.items()}
        fast = {way: {n: fn(b) for n, b in images.items()} for way, fn in ways.items()}
        pairs = list(itertools.permutations(images, 2))
        for k, signal in enumerate(("PDQ", "PDQ dihedral", "pHash")):
            truth = {p: match(ref[p[0]], ref[p[1]])[k] for p in pairs}
            copies = sum(v and same_original(*p) for p, v in truth.items())
            cells = []
            for way in ways:
                mixed = {p: match(ref[p[0]], fast[way][p[1]])[k] for p in pairs}
                both = {p: match(fast[way][p[0]], fast[way][p[1]])[k] for p in pairs}
                cells.append("; ".join(f"-{sum(truth[p] and not got[p] for p in pairs)} +{sum(got[p] and not truth[p] for p in pairs)}"
                                       for got in (mixed, both)))
            print(f"| {set_name} | {len(pairs)} | {signal} | {copies} + {sum(truth.values()) - copies} | " + " | ".join(cells) + " |")


# --- pillow-simd --------------------------------------------------------------------------------------

SIMD_DRIVER = r"""
import io, json, sys, time
import imagehash
from PIL import Image
bodies = json.load(open(sys.argv[1]))
out = {}
for name, hexed in bodies.items():
    image = Image.open(io.BytesIO(bytes.fromhex(hexed))).convert("RGB")
    start = time.process_time()
    for _ in range(10):
        h = str(imagehash.phash(image))
    out[name] = [h, (time.process_time() - start) / 10 * 1000]
print(json.dumps(out))
"""


def pillow_simd(python: str, images: dict[str, bytes]) -> dict[str, str]:
    """pHash of each image by ``python`` (an interpreter with pillow-simd and imagehash), and the
    CPU ms of ``imagehash.phash`` there and here."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({n: b.hex() for n, b in images.items()}, f)
        f.flush()
        theirs = json.loads(subprocess.run([python, "-c", SIMD_DRIVER, f.name], check=True, capture_output=True, text=True).stdout)
        ours = json.loads(subprocess.run([sys.executable, "-c", SIMD_DRIVER, f.name], check=True, capture_output=True, text=True).stdout)
    print(f"\npillow-simd: imagehash.phash {np.mean([t for _, t in theirs.values()]):.2f} ms per image, Pillow "
          f"{np.mean([t for _, t in ours.values()]):.2f} ms (mean over the {len(images)} real images)")
    return {n: h for n, (h, _) in theirs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timing passes over each leg")
    parser.add_argument("--images", type=int, default=20, help="images in each re-encoded timing leg")
    parser.add_argument("--pillow-simd", metavar="PYTHON", help="an interpreter with pillow-simd and imagehash installed")
    parser.add_argument("--skip", nargs="*", default=[], choices=["time", "distances", "matches"])
    args = parser.parse_args()
    print(f"# bench/decode.py  (load average {os.getloadavg()[0]:.1f}; optional: PyTurboJPEG {'yes' if turbojpeg else 'no'}, "
          f"simplejpeg {'yes' if simplejpeg else 'no'}, pyvips {'yes' if pyvips else 'no'})")
    if "time" not in args.skip:
        time_steps(legs(args.images), args.repeat)
    images, sets = real_images(), near_sets()
    if "distances" not in args.skip:
        distances(images, sets[ENLARGED], pillow_simd(args.pillow_simd, images) if args.pillow_simd else None)
    if "matches" not in args.skip:
        matches(sets)


if __name__ == "__main__":
    main()
