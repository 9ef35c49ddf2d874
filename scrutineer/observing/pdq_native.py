"""PDQ hashes from pdqhash's own C++ functions, with the luminance computed in one numba pass.

``pdqhash.compute(image)`` first turns the RGB array into luminance with numpy, in float64
(``R * 0.299 + G * 0.587 + B * 0.114``, then float32) in six array operations: a third of
the hash's cost at 640 x 480 (bench/decode.py: 6.7 ms of CPU by ``pdqhash.compute``, 4.5 ms by
:func:`pdq`, a busy machine's figures). :func:`pdq` does the same arithmetic, the same
operations in the same order, in one numba pass (no fast-math: no reassociation, no fused
multiply-add), then calls the C++ functions ``pdqhash``'s bindings call, found in its compiled
module by their C++ (Itanium ABI) names. The hashes and quality are ``pdqhash.compute``'s and
``compute_dihedral``'s bit for bit (tests/test_hashing_decode.py checks it on every real image of
tests/data). :data:`AVAILABLE` is False where the compiled module does not export those names (a
compiler with another ABI, a pdqhash that renamed them); then use ``pdqhash`` itself.

Imported on first use by :mod:`scrutineer.observing.hashing` (numba takes ~0.4 s to import).
"""

from __future__ import annotations

import ctypes

import numpy as np
from numba import njit
from pdqhash import bindings

#: pdqhash's C++ entry points (its bindings.pyx declares them): ``pdqHash256FromFloatLuma`` and
#: ``pdqDihedralHash256esFromFloatLuma`` of ``facebook::pdq::hashing``.
SYMBOLS = (
    "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi",
    "_ZN8facebook3pdq7hashing33pdqDihedralHash256esFromFloatLumaEPfS2_iiPA64_fS4_PA16_fS6_PNS1_7Hash256ES8_S8_S8_S8_S8_S8_S8_Ri",
)


def _entry_points() -> tuple | None:
    try:
        lib = ctypes.CDLL(bindings.__file__)
        found = tuple(getattr(lib, name) for name in SYMBOLS)
    except (OSError, AttributeError):
        return None
    pointer, int_ = ctypes.c_void_p, ctypes.c_int
    # (luma, scratch, rows, columns, 64x64, 16x64 and 16x16 buffers[, a second 16x16], Hash256 * 1 or 8, quality)
    for function, hashes in zip(found, (1, 8)):
        function.argtypes = [pointer, pointer, int_, int_, pointer, pointer, pointer, *[pointer] * (hashes > 1), *[pointer] * hashes, pointer]
        function.restype = None
    return found


_ENTRY_POINTS = _entry_points()
#: Whether :func:`pdq` can run here.
AVAILABLE = _ENTRY_POINTS is not None


@njit(nogil=True, cache=True)
def _luma(pixels: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled by numba
    for i in range(pixels.shape[0]):
        for j in range(pixels.shape[1]):
            out[i, j] = np.float32(pixels[i, j, 0] * 0.299 + pixels[i, j, 1] * 0.587 + pixels[i, j, 2] * 0.114)


def luma(pixels: np.ndarray) -> np.ndarray:
    """pdqhash's luminance of ``pixels``, a (height, width, 3 or 4) uint8 array whose first three
    channels are R, G, B: a (height, width) float32 array."""
    out = np.empty(pixels.shape[:2], np.float32)
    _luma(pixels, out)
    return out


def pdq(pixels: np.ndarray, dihedral: bool = False) -> tuple[list[str], int]:
    """The PDQ hash of ``pixels`` (as :func:`luma` takes them) as 64 lowercase hex characters, first
    bit most significant, and its quality (0-100); with ``dihedral``, the 8 dihedral hashes in
    ``pdqhash.compute_dihedral``'s order (else a list of one).

    Raises:
        RuntimeError: :data:`AVAILABLE` is False.
    """
    if _ENTRY_POINTS is None:
        raise RuntimeError("pdqhash's compiled module does not export its C++ hashing functions here; use pdqhash.compute")
    one, eight = _ENTRY_POINTS
    gray = luma(pixels)
    rows, cols = gray.shape
    scratch = np.zeros_like(gray)  # as pdqhash passes it
    b64x64, b16x64, b16x16, b16x16_aux = (np.empty(s, np.float32) for s in ((64, 64), (16, 64), (16, 16), (16, 16)))
    words = np.zeros((8 if dihedral else 1, 16), np.uint16)  # Hash256: 16 words, w[0] the least significant
    quality = ctypes.c_int()
    p = [a.ctypes.data for a in (gray, scratch, b64x64, b16x64, b16x16)]
    if dihedral:
        eight(*p[:2], rows, cols, *p[2:], b16x16_aux.ctypes.data, *(w.ctypes.data for w in words), ctypes.byref(quality))
    else:
        one(*p[:2], rows, cols, *p[2:], words.ctypes.data, ctypes.byref(quality))
    return [w[::-1].astype(">u2").tobytes().hex() for w in words], quality.value
