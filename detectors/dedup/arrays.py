"""Arrow arrays of ``dedup``'s signature columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def spread(values: pa.Array, present: pa.Array) -> pa.Array:
    """``values`` (one per row where ``present`` is true) at those rows, null at the others."""
    at = pc.subtract(pc.cumulative_sum(pc.cast(present, pa.int64())), 1)
    return values.take(pc.if_else(present, at, None))


def uint64_lists(values: np.ndarray) -> pa.ListArray:
    """A ``(n, width)`` uint64 array as n lists."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), pa.uint64()), values.shape[1]).cast(pa.list_(pa.uint64()))
