"""Content hashes of image bytes, computed in memory (DESIGN.md "Hash and drop").

:func:`hash_content` takes the bytes as served and returns their exact digests (MD5, SHA-1,
SHA-256) and, when they decode as an image of at most ``max_pixels`` pixels, its perceptual hashes:
PDQ (Meta's 256-bit hash with its quality score, via ``pdqhash``) and pHash (64-bit DCT hash, via
``imagehash``). The bytes are never written anywhere and never appear in an error message. Hash
strings follow HMA's signal types: lowercase hex; PDQ as 64 hex characters read first bit most
significant (as HMA's ``pdq_hasher`` writes ``pdqhash.compute``'s vector); pHash as ``imagehash``'s
16-character string.

The image is decoded once, for both hashes (:func:`decode_image`), in one of three ways
(``fetch.decode``, :data:`DECODES`):

- ``full``: every pixel, as RGB. The hashes are ``pdqhash``'s and ``imagehash``'s on the full
  decode, bit for bit (computed faster, with the same result: PDQ by
  :mod:`scrutineer.observing.pdq_native`, pHash by :mod:`scrutineer.observing.phash_native`;
  an RGB image is hashed as decoded, not copied).
- ``luma`` (the scans' default): a colour JPEG is decoded to its luma channel Y alone (Pillow's
  ``draft("L")``: libjpeg's greyscale output skips the chroma channels' inverse DCT, upsampling and
  colour conversion), and a greyscale image of any format is kept as it is. Both hashes want only a
  luminance: PDQ's ``0.299 R + 0.587 G + 0.114 B`` and Pillow's ``L``, whose weights are those
  JFIF's Y is made with (ITU-R BT.601), so Y is what they would compute, but for the rounding of
  the RGB the full decode makes from Y, Cb and Cr. A greyscale image is hashed exactly as its RGB
  copy would be. Other images (PNG, WebP, GIF in colour) as ``full``. Hashing a 640 x 480 JPEG
  costs ~15% less (its decode ~25% less, and neither hash computes a luminance). On the real and
  enlarged photos of bench/decode.py a JPEG's PDQ moved 0-2 bits from ``full`` (mean 0.2), its
  pHash 0-2 (mean 0.04): :data:`LUMA_BOUND`, well within Meta's bar for a PDQ implementation
  (within 10 bits of the reference at quality 80 or more, facebook/ThreatExchange
  ``pdq/README.md``), and no bank match at the default thresholds (PDQ 31 bits, pHash 10) was lost
  or made on the near-duplicate sets, between a full-decode bank and a luma scan or both luma.
- ``reduced``: a JPEG of 1,024 px or more on its longer side is decoded by libjpeg's DCT scaling
  (Pillow's ``draft``) at the smallest of 1/2, 1/4 and 1/8 scale that keeps that side at
  :data:`REDUCED_SIDE` (512) px or more; any other image (smaller, or PNG, WebP, GIF: no DCT
  scaling) as ``full``. Meta's own PDQ hashers downsample to 512 px before hashing, as "the
  two-pass Jarosz filter is prohibitively expensive for larger images" (facebook/ThreatExchange
  ``pdq/cpp/io/pdqio.cpp``, ``DOWNSAMPLE_DIMS = 512``; ``pdq/python/pdqhashing/hasher/
  pdq_hasher.py``, ``thumbnail((512, 512))``), so this keeps at least the pixels theirs hash.
  It makes a large photo's hashing several times cheaper (README); below 1,024 px (COCO's
  640 x 480, a 256 x 256 thumbnail) it is ``full``.

``reduced`` is not the default because its PDQ moved further from ``full`` than Meta's bar: on
Meta's 1600 x 1004 photos 0-4 bits, but on real photos enlarged 2 x up to 16 (a quality-100 coffee
photo; p95 11, mean 4.9); pHash moved at most 2 bits. No bank match at the default thresholds was
lost or made on the near-duplicate sets either. :data:`REDUCED_BOUND` is that measured bound;
README "Decoding for the perceptual hashes" has the tables. Choose ``full`` where the hashes must be
the libraries' own bit for bit (a hash list published for exact comparison).

A scan records its ``fetch`` options in each content observation's key, ``decode`` among them, so
the stored hashes say which decode made them, and a scan with another decode observes again
rather than mixing them. A webdataset tar's images are decoded in full (their observation's key
holds only the read caps), so their hashes are the libraries' own.

A fetched body is hashed inline by the content process that fetched it (:func:`hash_fetched`,
``flows/content_workers.py``); a webdataset tar's images in worker processes (:func:`hash_pool`:
one pool per process, made on first use and never passed around).
"""

from __future__ import annotations

import functools
import hashlib
import io
import multiprocessing
import multiprocessing.util
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import numpy as np
import pdqhash
import pyarrow as pa
from PIL import Image

from scrutineer.core.children import die_with
from scrutineer.core.config import MAX_PIXELS, FetchConfig
from scrutineer.observing.optouts.c2pa import read_training_mining
from scrutineer.observing.optouts.iptc import read_data_mining


@dataclass(frozen=True)
class ContentHashes:
    """Hashes of one body of ``bytes`` bytes. ``problem`` is None when the bytes decoded as an
    image; then ``pdq``, ``pdq_quality`` (0-100), ``phash``, ``width`` and ``height`` (pixels) are
    set. Otherwise ``problem`` is ``not_image`` (they did not decode) or ``too_large`` (more than
    ``max_pixels`` pixels, or too many bytes to be read at all: then no digest is set either), and
    ``error`` says why in words. ``pdq_dihedral``: when asked for, the PDQ hashes of the image's
    7 other dihedral transforms, in :data:`PDQ_DIHEDRAL` order (``pdq`` is the first). ``c2pa``: the C2PA/CAWG training-mining assertion the bytes carry,
    as JSON (:func:`scrutineer.observing.optouts.c2pa.read_training_mining`), else None; ``iptc``: the
    IPTC ``plus:DataMining`` of their XMP, as JSON (:func:`scrutineer.observing.optouts.iptc.read_data_mining`),
    else None."""

    bytes: int
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    problem: str | None = None
    error: str | None = None
    c2pa: str | None = None
    iptc: str | None = None
    pdq_dihedral: tuple[str, ...] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


Decode = Literal["full", "luma", "reduced"]
#: The ways :func:`decode_image` decodes (``fetch.decode``; the module docstring says what each does).
DECODES: tuple[str, ...] = get_args(Decode)
#: ``decode: reduced`` keeps a JPEG's longer side at this many pixels or more: what Meta's PDQ
#: hashers downsample to before hashing (module docstring).
REDUCED_SIDE = 512
#: The most bits ``decode: reduced`` moved each hash from ``full`` on the real and enlarged photos
#: of bench/decode.py (module docstring): what a user choosing it accepts.
REDUCED_BOUND = {"pdq": 16, "phash": 2}
#: The most bits ``decode: luma`` moved each hash from ``full`` on the real and enlarged photos of
#: bench/decode.py (module docstring), under Meta's 10-bit bar for a PDQ implementation.
LUMA_BOUND = {"pdq": 2, "phash": 2}
#: The ``info`` key of a reduced image's full (width, height).
FULL_SIZE = "full_size"


#: The dihedral transforms of an image, in ``pdqhash.compute_dihedral``'s order: the PDQ hash of an
#: image transformed by the i-th is (within a few bits) the i-th hash of the original
#: (tests/test_hashing.py checks it with numpy's rotations and flips).
PDQ_DIHEDRAL = (
    "original", "rotate 90° counter-clockwise", "rotate 180°", "rotate 270° counter-clockwise",
    "flip top to bottom", "flip left to right", "transpose", "anti-transpose",
)


def pdq_hex(vector: np.ndarray) -> str:
    """A PDQ bit vector (256 values 0/1, first = most significant) as 64 lowercase hex chars."""
    return np.packbits(np.asarray(vector, dtype=np.uint8)).tobytes().hex()


def exact_hashes(body: bytes) -> ContentHashes:
    """The exact digests of ``body`` only (no decoding)."""
    return ContentHashes(
        md5=hashlib.md5(body).hexdigest(),
        sha1=hashlib.sha1(body).hexdigest(),
        sha256=hashlib.sha256(body).hexdigest(),
        bytes=len(body),
    )


def hash_content(
    body: bytes, max_pixels: int = MAX_PIXELS, dihedral: bool = False, decode: Decode = "full"
) -> ContentHashes:
    """Exact and perceptual hashes of ``body`` (an image as served, in memory), and the C2PA/CAWG
    training-mining assertion and IPTC Data Mining property it carries, if any: :func:`exact_hashes`,
    :func:`~scrutineer.observing.optouts.c2pa.read_training_mining`,
    :func:`~scrutineer.observing.optouts.iptc.read_data_mining`, :func:`decode_image`, then
    :func:`pdq_of` and :func:`phash_of` of the one decoded image.

    Args:
        body: the bytes.
        max_pixels: images with more pixels are not decoded (read from the header first).
        dihedral: also compute the PDQ hashes of the 7 other rotations and flips
            (``pdqhash.compute_dihedral``, which costs what ``compute`` does: one DCT, its
            coefficients read 8 ways).
        decode: ``full``, ``luma`` or ``reduced`` (:data:`DECODES`; the module docstring says
            what each costs and changes).

    Returns:
        :class:`ContentHashes`; ``width`` and ``height`` are the image's own, whatever the decode. A
        body that is not a decodable image (HTML, truncated or corrupt data) or has too many pixels
        gets its exact digests and a ``problem``; it does not raise.
    """
    exact = _with(exact_hashes(body), c2pa=read_training_mining(body), iptc=read_data_mining(body))
    try:
        rgb = decode_image(body, max_pixels, decode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _with(exact, problem="too_large", error=f"image larger than {max_pixels:,} pixels (fetch.max_pixels)")
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad data; none carry the bytes
        return _with(exact, problem="not_image", error=f"not a decodable image: {type(e).__name__}")
    pdq, quality, others = pdq_of(rgb, dihedral)
    width, height = rgb.info.get(FULL_SIZE, rgb.size)
    return _with(exact, pdq=pdq, pdq_quality=quality, phash=phash_of(rgb), width=width, height=height, pdq_dihedral=others)


def hash_fetched(body: bytes, cfg: FetchConfig) -> ContentHashes:
    """:func:`hash_content` of a fetched body with the fetch options' ``max_pixels``,
    ``pdq_dihedral`` and ``decode``."""
    return hash_content(body, cfg.max_pixels, cfg.pdq_dihedral, cfg.decode)


def decode_image(body: bytes, max_pixels: int = MAX_PIXELS, decode: Decode = "full") -> Image.Image:
    """``body`` decoded once for both perceptual hashes: as RGB at full size; with ``decode``
    ``luma``, a colour JPEG as its luma channel alone and any greyscale image as it is (mode ``L``);
    with ``reduced``, a JPEG of 1,024 px or more on its longer side at the smallest DCT scale (1/2,
    1/4, 1/8) keeping that side at :data:`REDUCED_SIDE` px or more. A reduced image's
    ``info[FULL_SIZE]`` is the (width, height) its header gives.

    Raises:
        PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning: more than
            ``max_pixels`` pixels, read from the header before decoding.
        Exception: Pillow's many errors for data it cannot decode.
    """
    with warnings.catch_warnings():
        # Pillow checks the header's size at open: it warns above MAX_IMAGE_PIXELS, raises above twice it.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = max_pixels
        with Image.open(io.BytesIO(body)) as image:
            size = image.size
            if decode == "reduced":
                scale = reduced_scale(size)
                if scale > 1:  # Image.draft scales JPEGs only; for other formats it does nothing
                    image.draft(None, (max(size[0] // scale, 1), max(size[1] // scale, 1)))
            elif decode == "luma":
                image.draft("L", None)  # a colour JPEG: libjpeg's greyscale output; other images: nothing
            image.load()
            keep = ("RGB", "L") if decode == "luma" else ("RGB",)
            decoded = image if image.mode in keep else image.convert("RGB")  # used as decoded, not copied
    if decoded.size != size:
        decoded.info[FULL_SIZE] = size
    return decoded


def reduced_scale(size: tuple[int, int]) -> int:
    """The DCT scale denominator ``decode: reduced`` asks for an image of ``size`` (width, height):
    the largest of 8, 4 and 2 that keeps its longer side at :data:`REDUCED_SIDE` px or more, else 1."""
    return next((s for s in (8, 4, 2) if max(size) // s >= REDUCED_SIDE), 1)


def pdq_of(rgb: Image.Image, dihedral: bool = False) -> tuple[str, int, tuple[str, ...] | None]:
    """PDQ of a decoded image (RGB, or a greyscale ``L`` image, hashed as its RGB copy would be):
    its 64-hex hash, its quality (0-100), and with ``dihedral`` the 7 other dihedral hashes in
    :data:`PDQ_DIHEDRAL` order (else None). ``pdqhash.compute`` (or ``compute_dihedral``) of
    ``np.asarray(rgb.convert("RGB"))``, bit for bit, computed by
    :func:`scrutineer.observing.pdq_native.pdq` on the image's own memory where it can run."""
    native = _pdq_native()
    if native is not None:
        hashes, quality = native.pdq(_pixels(rgb), dihedral)
        return hashes[0], quality, tuple(hashes[1:]) if dihedral else None
    if rgb.mode == "L":
        rgb = rgb.convert("RGB")
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(np.asarray(rgb))
        return pdq_hex(vectors[0]), int(quality), tuple(pdq_hex(v) for v in vectors[1:])
    vector, quality = pdqhash.compute(np.asarray(rgb))
    return pdq_hex(vector), int(quality), None


def phash_of(rgb: Image.Image) -> str:
    """pHash of a decoded image (RGB or greyscale ``L``): ``imagehash.phash``'s 16 hex characters
    (64 bits), bit for bit, computed by :func:`scrutineer.observing.phash_native.phash`."""
    # start-up: phash_native imports numba (~0.4 s), which only a process that hashes needs
    from scrutineer.observing import phash_native

    return phash_native.phash(rgb, _pixels(rgb))


@functools.cache
def _pdq_native():
    """:mod:`scrutineer.observing.pdq_native` where it can run, else None."""
    # start-up: pdq_native imports numba (~0.4 s), which only a process that hashes needs
    from scrutineer.observing import pdq_native

    return pdq_native if pdq_native.AVAILABLE else None


def _pixels(image: Image.Image) -> np.ndarray:
    """A decoded image's pixels as a uint8 view of Pillow's own memory, through the Arrow C data
    interface (Pillow >= 11.2): an RGB image's (height, width, 4) (Pillow keeps RGB as 4 bytes a
    pixel, the 4th unused), a greyscale ``L`` image's (height, width); a copy (``np.asarray``:
    (height, width, 3) for RGB) where the image is not one block of memory (above Pillow's 16 MB
    blocks, about 4 million pixels) or Pillow cannot export it."""
    shape = (image.height, image.width) + (() if image.mode == "L" else (4,))
    try:
        return np.frombuffer(pa.array(image).buffers()[-1], np.uint8).reshape(shape)
    except (ValueError, TypeError):
        return np.asarray(image)


def _with(base: ContentHashes, **fields) -> ContentHashes:
    return ContentHashes(**{**base.as_dict(), **fields})


class HashPool:
    """Worker processes running :func:`hash_content`, which survive a dead worker.

    A worker that dies (killed, or out of memory on a hostile image) breaks a
    ``ProcessPoolExecutor`` for every call in flight. Then the pool is replaced, and each body that
    was in flight is hashed again alone, in a process of its own: the innocent ones get their hashes,
    and the one that kills its process too gets its exact digests and ``problem`` ``not_image``
    ("the hashing process died").

    Workers are started with ``forkserver`` (forking a process that runs threads is unsafe) and end
    with the process that made the pool (:func:`scrutineer.core.children.die_with`).
    """

    def __init__(self, workers: int, hasher: Callable[[bytes, int, bool], ContentHashes] = hash_content) -> None:
        """
        Args:
            workers: worker processes.
            hasher: what a worker runs on ``(body, max_pixels, dihedral)``: :func:`hash_content`. A
                test-only hook: a test that kills a busy worker passes a picklable function that
                first says which process it runs in, since nothing else shows which worker is busy
                (``tests/flows/test_content_scan.py``).
        """
        self.workers = workers
        self._hasher = hasher
        self._context = multiprocessing.get_context("forkserver")
        self._lock = threading.Lock()
        self._pool = self._new_pool(workers)
        self._alone = ThreadPoolExecutor(1, thread_name_prefix="hash-alone")

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=self._context, initializer=die_with, initargs=(os.getpid(),))

    def submit(self, body: bytes, max_pixels: int = MAX_PIXELS, dihedral: bool = False) -> Future:
        """Hash ``body`` in a worker; a ``Future`` of :class:`ContentHashes` that never fails with
        a broken pool."""
        pool = self._pool
        try:
            inner = pool.submit(self._hasher, body, max_pixels, dihedral)
        except BrokenProcessPool:
            inner = Future()
            inner.set_exception(BrokenProcessPool())
        outer: Future = Future()

        def done(f: Future) -> None:
            if isinstance(f.exception(), BrokenProcessPool):
                self._replace(pool)
                self._alone.submit(lambda: outer.set_result(self._hash_alone(body, max_pixels, dihedral)))
            elif f.exception() is not None:
                outer.set_exception(f.exception())
            else:
                outer.set_result(f.result())

        inner.add_done_callback(done)
        return outer

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = self._new_pool(self.workers)
                broken.shutdown(wait=False, cancel_futures=True)

    def _hash_alone(self, body: bytes, max_pixels: int, dihedral: bool) -> ContentHashes:
        with self._new_pool(1) as alone:
            try:
                return alone.submit(self._hasher, body, max_pixels, dihedral).result()
            except BrokenProcessPool:
                return _with(exact_hashes(body), problem="not_image", error="the hashing process died on this image")

    def shutdown(self) -> None:
        self._alone.shutdown(wait=True)
        self._pool.shutdown(cancel_futures=True)


_pool: HashPool | None = None
_pool_lock = threading.Lock()


def hash_pool(workers: int) -> HashPool:
    """This process's :class:`HashPool`, made on first use with ``workers`` processes and shut down
    when the process exits: by a multiprocessing finalizer, which runs in a multiprocessing (or
    Dask) worker process too, where ``atexit`` hooks do not. Its priority puts it before the
    finalizers of the pool's own queues (priority 10), which would otherwise close the queue before
    the workers are told to stop, and the process would wait for them forever."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = HashPool(workers)
            multiprocessing.util.Finalize(_pool, _pool.shutdown, exitpriority=100)
        return _pool
