"""PDQ hashes from pdqhash's own C++ functions, with the luminance and the Jarosz filter computed
by numba.

``pdqhash.compute(image)`` first turns the RGB array into luminance with numpy, in float64
(``R * 0.299 + G * 0.587 + B * 0.114``, then float32) in six array operations: a third of
the hash's cost at 640 x 480 (bench/decode.py: 6.7 ms of CPU by ``pdqhash.compute``, 4.5 ms by
the C++ alone). :func:`pdq` does the same arithmetic, the same operations in the same order, in
one numba pass (no fast-math: no reassociation, no fused multiply-add), reading each pixel of
Pillow's 4-byte RGB memory as one 32-bit word: 0.1 ms at 640 x 480.

The C++ then spends most of its time in the Jarosz filter (``jaroszFilterFloat``: two passes of
a box filter along the rows, then down the columns; Meta's ``pdq/cpp/downscaling/downscaling.cpp``):
2.5 ms of CPU at 640 x 480, the column pass reading one float per cache line. :func:`jarosz` is
that filter in numba, each row's and each column's float32 sums, subtractions and divisions in
the C++'s order (``box1DFloat``), but the columns summed side by side, row after row: 1.1-1.2 ms.
The rest (``decimateFloat`` to 64 x 64, ``pdqImageDomainQualityMetric``, ``dct64To16``,
``pdqBuffer16x16ToBits`` and the dihedral ``dct16OriginalTo*``) are pdqhash's C++ functions,
called in ``pdqDihedralHash256esFromFloatLuma``'s order. An image of 64 px or less on a side goes
to the C++ entry points whole (``pdqHash256FromFloatLuma``, ``pdqDihedralHash256esFromFloatLuma``),
so their own handling of small images holds.

All of them are found in pdqhash's compiled module by their C++ (Itanium ABI) names. The hashes
and quality are ``pdqhash.compute``'s and ``compute_dihedral``'s bit for bit
(tests/test_hashing_decode.py checks it on every real image of tests/data and on sizes from
1 x 1 up). :data:`AVAILABLE` is False where the compiled module does not export those names (a
compiler with another ABI, a pdqhash that renamed them); then use ``pdqhash`` itself.

Imported on first use by :mod:`scrutineer.observing.hashing` (numba takes ~0.4 s to import).
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np
from numba import njit
from pdqhash import bindings

#: pdqhash's C++ entry points (its bindings.pyx declares them), of ``facebook::pdq::hashing``:
#: ``pdqHash256FromFloatLuma`` and ``pdqDihedralHash256esFromFloatLuma``.
WHOLE = (
    "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi",
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLumaEPfS2_iiPA64_fS4_PA16_fS6_PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri",
)
#: The steps those entry points take after the Jarosz filter: ``downscaling::decimateFloat``,
#: ``hashing::pdqImageDomainQualityMetric``, ``dct64To16`` and ``pdqBuffer16x16ToBits``.
STEPS = (
    "_ZN8facebook3pdq11downscaling13decimateFloatEPKfiiPfii",
    "_ZN8facebook3pdq7hashing27pdqImageDomainQualityMetricEPA64_f",
    "_ZN8facebook3pdq7hashing9dct64To16EPA64_fS3_PA16_f",
    "_ZN8facebook3pdq7hashing20pdqBuffer16x16ToBitsEPA16_fPNS1_7Hash256E",
)
#: ``hashing::dct16OriginalTo*``, in the order of ``pdqhash.compute_dihedral``'s hashes after the original.
DIHEDRAL = tuple(f"_ZN8facebook3pdq7hashing{len(n)}{n}EPA16_fS3_" for n in (
    "dct16OriginalToRotate90", "dct16OriginalToRotate180", "dct16OriginalToRotate270", "dct16OriginalToFlipX",
    "dct16OriginalToFlipY", "dct16OriginalToFlipPlus1", "dct16OriginalToFlipMinus1"))
#: PDQ's downsample: 64 x 64 (``pdqFloat256FromFloatLuma``), reached by 2 Jarosz passes
#: (``PDQ_NUM_JAROSZ_XY_PASSES``) of a box ``(side + 127) // 128`` wide (``computeJaroszFilterWindowSize``).
SIDE, PASSES = 64, 2


class _CXX:
    """pdqhash's C++ functions, typed for ctypes."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, i = ctypes.c_void_p, ctypes.c_int
        self.one, self.eight = (getattr(lib, n) for n in WHOLE)
        self.decimate, self.quality, self.dct, self.bits = (getattr(lib, n) for n in STEPS)
        self.dihedral = [getattr(lib, n) for n in DIHEDRAL]
        # (luma, scratch, rows, columns, 64x64, 16x64 and 16x16 buffers[, a second 16x16], Hash256 * 1 or 8, quality)
        for function, hashes in ((self.one, 1), (self.eight, 8)):
            function.argtypes = [p, p, i, i, p, p, p, *[p] * (hashes > 1), *[p] * hashes, p]
            function.restype = None
        self.decimate.argtypes, self.decimate.restype = [p, i, i, p, i, i], None
        self.quality.argtypes, self.quality.restype = [p], i
        self.dct.argtypes, self.dct.restype = [p, p, p], None
        self.bits.argtypes, self.bits.restype = [p, p], None
        for f in self.dihedral:
            f.argtypes, f.restype = [p, p], None


def _cxx() -> _CXX | None:
    try:
        return _CXX(ctypes.CDLL(bindings.__file__))
    except (OSError, AttributeError):
        return None


_CXX_FUNCTIONS = _cxx()
#: Whether :func:`pdq` can run here.
AVAILABLE = _CXX_FUNCTIONS is not None


def pixel_words(pixels: np.ndarray) -> np.ndarray | None:
    """``pixels``, a decoded RGB image's (height, width, 3 or 4) uint8 array (as
    :func:`scrutineer.observing.hashing.pdq_of` reads it), as a (height, width) uint32 array: each
    pixel one little-endian word (R, G, B, X), read in place, for loops that load whole words.
    None where they are not Pillow's own 4-byte memory (a 3-byte copy) or the machine is big-endian."""
    if pixels.shape[2] == 4 and pixels.flags.c_contiguous and sys.byteorder == "little":
        return pixels.view(np.uint32)[:, :, 0]
    return None


@njit(nogil=True, cache=True)
def _luma(pixels: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    for i in range(pixels.shape[0]):
        for j in range(pixels.shape[1]):
            out[i, j] = np.float32(pixels[i, j, 0] * 0.299 + pixels[i, j, 1] * 0.587 + pixels[i, j, 2] * 0.114)


@njit(nogil=True, cache=True)
def _luma_words(words: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    # each pixel one little-endian 32-bit word (R, G, B, X): whole-word loads, which vectorize
    for i in range(words.shape[0]):
        for j in range(words.shape[1]):
            w = words[i, j]
            out[i, j] = np.float32((w & 255) * 0.299 + ((w >> 8) & 255) * 0.587 + ((w >> 16) & 255) * 0.114)


@njit(nogil=True, cache=True)
def _luma_grey(grey: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    # _luma's expression with R = G = B: a grey image's luminance is its RGB copy's, bit for bit
    for i in range(grey.shape[0]):
        for j in range(grey.shape[1]):
            v = grey[i, j]
            out[i, j] = np.float32(v * 0.299 + v * 0.587 + v * 0.114)


@njit(nogil=True, cache=True)
def _box_rows(src: np.ndarray, dst: np.ndarray, window: int) -> None:  # pragma: no cover - compiled by numba
    """``box1DFloat`` along each row of ``src`` into ``dst``: its four phases, in its order."""
    rows, n = src.shape
    half = (window + 2) // 2
    for r in range(rows):
        total = np.float32(0.0)
        size = left = right = out = 0
        for _ in range(half - 1):  # phase 1: sums, no writes
            total += src[r, right]
            size += 1
            right += 1
        for _ in range(window - half + 1):  # phase 2: writes with a growing window
            total += src[r, right]
            size += 1
            dst[r, out] = total / np.float32(size)
            right += 1
            out += 1
        for _ in range(n - window):  # phase 3: the full window
            total += src[r, right]
            total -= src[r, left]
            dst[r, out] = total / np.float32(size)
            left += 1
            right += 1
            out += 1
        for _ in range(half - 1):  # phase 4: a shrinking window
            total -= src[r, left]
            size -= 1
            dst[r, out] = total / np.float32(size)
            left += 1
            out += 1


@njit(nogil=True, cache=True)
def _box_columns(src: np.ndarray, dst: np.ndarray, window: int) -> None:  # pragma: no cover - compiled by numba
    """``box1DFloat`` down each column of ``src`` into ``dst``, the columns side by side: each
    column's operations are the C++'s, in its order."""
    n, columns = src.shape
    half = (window + 2) // 2
    total = np.zeros(columns, np.float32)
    size = left = right = out = 0
    for _ in range(half - 1):
        for c in range(columns):
            total[c] += src[right, c]
        size += 1
        right += 1
    for _ in range(window - half + 1):
        size += 1
        for c in range(columns):
            total[c] += src[right, c]
            dst[out, c] = total[c] / np.float32(size)
        right += 1
        out += 1
    for _ in range(n - window):
        for c in range(columns):
            total[c] += src[right, c]
            total[c] -= src[left, c]
            dst[out, c] = total[c] / np.float32(size)
        left += 1
        right += 1
        out += 1
    for _ in range(half - 1):
        size -= 1
        for c in range(columns):
            total[c] -= src[left, c]
            dst[out, c] = total[c] / np.float32(size)
        left += 1
        out += 1


@njit(nogil=True, cache=True)
def _jarosz(buffer: np.ndarray, scratch: np.ndarray, along_rows: int, along_columns: int, passes: int) -> None:  # pragma: no cover
    for _ in range(passes):
        _box_rows(buffer, scratch, along_rows)
        _box_columns(scratch, buffer, along_columns)


def luma(pixels: np.ndarray) -> np.ndarray:
    """pdqhash's luminance of ``pixels``, a (height, width, 3 or 4) uint8 array whose first three
    channels are R, G, B, or a (height, width) uint8 greyscale array, whose luminance is that of
    its RGB copy (each value in R, G and B): a (height, width) float32 array."""
    out = np.empty(pixels.shape[:2], np.float32)
    if pixels.ndim == 2:
        _luma_grey(pixels, out)
    elif (words := pixel_words(pixels)) is not None:
        _luma_words(words, out)  # Pillow's own RGB memory: 5x faster
    else:
        _luma(pixels, out)
    return out


def jarosz(gray: np.ndarray) -> None:
    """PDQ's Jarosz filter of ``gray``, a C-contiguous (height, width) float32 array, in place:
    ``jaroszFilterFloat`` with PDQ's window sizes and passes, bit for bit."""
    rows, columns = gray.shape
    _jarosz(gray, np.empty_like(gray), (columns + 2 * SIDE - 1) // (2 * SIDE), (rows + 2 * SIDE - 1) // (2 * SIDE), PASSES)


def pdq(pixels: np.ndarray, dihedral: bool = False) -> tuple[list[str], int]:
    """The PDQ hash of ``pixels`` (as :func:`luma` takes them) as 64 lowercase hex characters, first
    bit most significant, and its quality (0-100); with ``dihedral``, the 8 dihedral hashes in
    ``pdqhash.compute_dihedral``'s order (else a list of one).

    Raises:
        RuntimeError: :data:`AVAILABLE` is False.
    """
    cxx = _CXX_FUNCTIONS
    if cxx is None:
        raise RuntimeError("pdqhash's compiled module does not export its C++ hashing functions here; use pdqhash.compute")
    gray = luma(pixels)
    rows, columns = gray.shape
    b64x64, b16x64, b16x16, aux = (np.empty(s, np.float32) for s in ((64, 64), (16, 64), (16, 16), (16, 16)))
    words = np.zeros((8 if dihedral else 1, 16), np.uint16)  # Hash256: 16 words, w[0] the least significant
    quality = ctypes.c_int()
    g, b64, b16, b1616, a = (x.ctypes.data for x in (gray, b64x64, b16x64, b16x16, aux))
    if rows <= SIDE or columns <= SIDE:
        scratch = np.zeros_like(gray)  # as pdqhash passes it
        if dihedral:
            cxx.eight(g, scratch.ctypes.data, rows, columns, b64, b16, b1616, a, *(w.ctypes.data for w in words), ctypes.byref(quality))
        else:
            cxx.one(g, scratch.ctypes.data, rows, columns, b64, b16, b1616, words.ctypes.data, ctypes.byref(quality))
    else:
        jarosz(gray)
        cxx.decimate(g, rows, columns, b64, SIDE, SIDE)
        quality.value = cxx.quality(b64)
        cxx.dct(b64, b16, b1616)
        cxx.bits(b1616, words[0].ctypes.data)
        for transform, w in zip(cxx.dihedral if dihedral else (), words[1:]):
            transform(b1616, a)
            cxx.bits(a, w.ctypes.data)
    return [w[::-1].astype(">u2").tobytes().hex() for w in words], quality.value
