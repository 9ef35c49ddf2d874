"""pHash (``imagehash.phash``) with its costly step, Pillow's LANCZOS reduction of the grey image
to 32 x 32, done by numba: the same integers, so the same hash.

``imagehash.phash(image)`` is ``image.convert("L").resize((32, 32), LANCZOS)``, then a DCT of the
32 x 32 pixels, the median of its 8 x 8 low frequencies and the bits above it. At 640 x 480 the
resize is ~80% of it (1.3 ms of CPU of 1.65): Pillow's C computes each of the 480 x 32 outputs
of its horizontal pass as one sum over ~121 source pixels, one pixel at a time.

:func:`reduce32` is that resize as Pillow 13's ``Resample.c`` does it: ``precompute_coeffs`` with
the LANCZOS filter and ``normalize_coeffs_8bpc`` (the same double-precision operations in the
same order, the C library's ``sin``, cached by size), then the passes of ``ImagingResampleInner`` in
its order, each a sum of 8-bit pixels times 32-bit weights in 32-bit integers, rounded and
clipped to 8 bits. Integer sums do not depend on their order, so numba sums the columns side by
side as vectors; the horizontal pass runs on the transposed image to do the same (the transpose
and the pass cost ~0.4 ms). :func:`phash` hands the 32 x 32 image to ``imagehash.phash``, whose
resize of an image already that size is a copy, so the DCT, the median and the bits are still
imagehash's own. The grey image is Pillow's too (``convert("L")``'s formula, read from the RGB
image's own memory by numba: 0.05 ms against 0.27 at 640 x 480). tests/test_hashing_decode.py checks :func:`reduce32` against Pillow and
:func:`phash` against ``imagehash.phash`` at sizes from 1 x 1 up (both orders of the passes) and
on every real image of tests/data.

Imported on first use by :mod:`scrutineer.observing.hashing` (numba takes ~0.4 s to import).
"""

from __future__ import annotations

import functools
import math

import imagehash
import numpy as np
from numba import njit
from PIL import Image

from scrutineer.observing.pdq_native import pixel_words

#: imagehash.phash's resize: 8 bits a side, times its high-frequency factor 4.
SIDE = 32
#: The longest side :func:`phash` reduces itself; a longer one goes to ``imagehash.phash`` whole.
#: A side of n px takes 32 x (2 x ceil(3n / 32) + 1) weights (Pillow's ``ksize``): 393 KB at 16,384
#: px, so the 64 sizes cached stay within ~25 MB.
LONGEST = 16_384
#: Pillow's fixed point for 8-bit resampling (``Resample.c``: 32 bits less 8 for the value and 2
#: for overflow) and its LANCZOS filter's support (3).
PRECISION_BITS, SUPPORT = 32 - 8 - 2, 3.0


@njit(nogil=True, cache=True)
def _lanczos(x: float) -> float:  # pragma: no cover - compiled by numba
    # Resample.c's lanczos_filter and sinc_filter, in double precision; math.sin is the C library's
    if not -3.0 <= x < 3.0:
        return 0.0
    a = 1.0 if x == 0.0 else math.sin(x * math.pi) / (x * math.pi)
    y = x / 3
    b = 1.0 if y == 0.0 else math.sin(y * math.pi) / (y * math.pi)
    return a * b


@njit(nogil=True, cache=True)
def _coefficients(in_size: int, out_size: int, bounds: np.ndarray, weights: np.ndarray) -> None:  # pragma: no cover
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = SUPPORT * filterscale
    ss = 1.0 / filterscale
    k = np.empty(weights.shape[1], np.float64)
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ww = 0.0
        for x in range(xmax):
            k[x] = _lanczos((x + xmin - center + 0.5) * ss)
            ww += k[x]
        for x in range(xmax):
            w = k[x] / ww if ww != 0.0 else k[x]
            weights[xx, x] = int(-0.5 + w * (1 << PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << PRECISION_BITS))
        bounds[xx, 0], bounds[xx, 1] = xmin, xmax


@functools.lru_cache(maxsize=64)
def coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's LANCZOS coefficients from ``in_size`` pixels to ``out_size``, the whole extent:
    (out_size, 2) int64 ``bounds`` (first source pixel, count) and (out_size, ksize) int32
    weights in ``PRECISION_BITS`` fixed point (``precompute_coeffs`` then ``normalize_coeffs_8bpc``,
    the same double-precision operations in the same order, in numba: ~0.1 ms for 640 px)."""
    ksize = math.ceil(SUPPORT * max(float(in_size) / out_size, 1.0)) * 2 + 1
    bounds = np.zeros((out_size, 2), np.int64)
    weights = np.zeros((out_size, ksize), np.int32)
    _coefficients(in_size, out_size, bounds, weights)
    return bounds, weights


@njit(nogil=True, cache=True)
def _resample_rows(src: np.ndarray, bounds: np.ndarray, weights: np.ndarray) -> np.ndarray:  # pragma: no cover
    """One of Pillow's 8-bit passes along the rows of ``src`` (``ImagingResampleVertical_8bpc``):
    each output row the weighted sum of ``bounds``' rows, rounded and clipped; the columns side
    by side, as vectors, in 32-bit integers as Pillow's C sums them."""
    columns = src.shape[1]
    out = np.empty((bounds.shape[0], columns), np.uint8)
    total = np.empty(columns, np.int32)
    for yy in range(bounds.shape[0]):
        start, count = bounds[yy, 0], bounds[yy, 1]
        total[:] = 1 << (PRECISION_BITS - 1)
        for y in range(count):
            w = weights[yy, y]
            for x in range(columns):
                total[x] += np.int32(src[start + y, x]) * w
        for x in range(columns):
            value = total[x] >> PRECISION_BITS
            out[yy, x] = min(max(value, 0), 255)
    return out


@njit(nogil=True, cache=True)
def _grey_words(words: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    # Pillow's rgb2l (Convert.c): L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16, each pixel
    # one little-endian 32-bit word (R, G, B, X)
    for i in range(words.shape[0]):
        for j in range(words.shape[1]):
            w = words[i, j]
            out[i, j] = ((w & 255) * 19595 + ((w >> 8) & 255) * 38470 + ((w >> 16) & 255) * 7471 + 0x8000) >> 16


def grey(rgb: Image.Image, pixels: np.ndarray | None = None) -> np.ndarray:
    """``np.asarray(rgb.convert("L"))``, bit for bit: a (height, width) uint8 array. ``pixels``,
    where given, are ``rgb``'s pixels as :func:`scrutineer.observing.hashing.decode_image`'s image
    holds them: an ``L`` image's (height, width), which are the answer; an RGB image's own 4-byte
    memory as (height, width, 4), from which numba computes Pillow's formula, 5x faster than
    ``convert``."""
    if pixels is not None and pixels.ndim == 2:
        return pixels
    if pixels is not None and (words := pixel_words(pixels)) is not None:
        out = np.empty(pixels.shape[:2], np.uint8)
        _grey_words(words, out)
        return out
    return np.asarray(rgb.convert("L"))


def _horizontal(grey: np.ndarray, width: int) -> np.ndarray:
    """Pillow's horizontal pass (``ImagingResampleHorizontal_8bpc``) as the row pass of the
    transposed image: the same sums, each over contiguous memory."""
    return _resample_rows(np.ascontiguousarray(grey.T), *coefficients(width, SIDE)).T


def reduce32(grey: np.ndarray) -> np.ndarray:
    """``Image.fromarray(grey).resize((32, 32), Image.Resampling.LANCZOS)``'s pixels, bit for bit:
    ``grey`` a (height, width) uint8 array, the result (32, 32) uint8. As Pillow 13's
    ``ImagingResampleInner``: each pass only where its size changes; the vertical pass first when
    the height shrinks by more than twice the pixels the width does, else the horizontal pass
    first, over only the rows the vertical pass reads."""
    height, width = grey.shape
    bounds, weights = coefficients(height, SIDE)
    out = grey
    if not (height - SIDE > 0 and height - SIDE > (width - SIDE) * 2):  # horizontal first
        if width != SIDE:
            first, last = int(bounds[0, 0]), int(bounds[-1, 0] + bounds[-1, 1])
            out = _horizontal(grey[first:last], width)
            bounds = bounds - np.array([first, 0])
        if height != SIDE:
            out = _resample_rows(np.ascontiguousarray(out), bounds, weights)
    else:
        out = _resample_rows(grey, bounds, weights)
        if width != SIDE:
            out = _horizontal(out, width)
    return np.ascontiguousarray(out)


def _matches_pillow() -> bool:
    """Whether :func:`reduce32` gives the installed Pillow's pixels, on noise at two sizes (one per
    order of the passes: an older Resample.c always runs the horizontal pass first), and :func:`grey`
    its ``convert("L")``."""
    noise = np.random.default_rng(0).integers(0, 256, (100, 48, 4), dtype=np.uint8)
    rgb = Image.fromarray(noise[:, :, :3], "RGB")
    plain = np.asarray(rgb.convert("L"))
    return np.array_equal(grey(rgb, noise), plain) and all(
        np.array_equal(reduce32(g), np.asarray(Image.fromarray(g, "L").resize((SIDE, SIDE), Image.Resampling.LANCZOS)))
        for g in (plain, np.ascontiguousarray(plain.T)))


#: Whether :func:`phash` reduces the image itself; else it hands every image to ``imagehash.phash``.
MATCHES_PILLOW = _matches_pillow()


def phash(rgb: Image.Image, pixels: np.ndarray | None = None) -> str:
    """``str(imagehash.phash(rgb))``: 16 hex characters (64 bits), bit for bit; an image with a side
    over :data:`LONGEST` px, or any image where :data:`MATCHES_PILLOW` is False, is handed to
    ``imagehash.phash`` itself. ``pixels``: as :func:`grey` takes them.

    Raises:
        Exception: what ``Image.convert`` and ``imagehash.phash`` raise.
    """
    if max(rgb.size) > LONGEST or not MATCHES_PILLOW:
        return str(imagehash.phash(rgb))
    return str(imagehash.phash(Image.fromarray(reduce32(grey(rgb, pixels)), "L")))
