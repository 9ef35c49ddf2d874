"""What a shard format is: :class:`ShardFormat` reads a shard's rows in the source's own schema
and writes a release's copy of the shard without some of them.

One format per ``dataset.format`` value, each in its own module (:mod:`scrutineer.formats.parquet`,
``csv``, ``jsonl``, ``coco``, ``hf``, ``webdataset``), all in one table:
:data:`scrutineer.formats.registry.FORMATS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from scrutineer.core.config import DatasetConfig
from scrutineer.core.errors import ShardError


class ShardFormat(ABC):
    """A shard format: :meth:`read` and :meth:`write`; the other members have defaults.

    Attributes:
        name: the ``dataset.format`` value (:data:`scrutineer.core.config.Format`), also
            ``shards.format`` in the store.
        canonical: the source column of each canonical column (``sample_id``, ``url``,
            ``caption``, ``license``) for a format whose columns are fixed (``coco``); None: the
            dataset's columns are mapped by name (:data:`scrutineer.formats.sources.FALLBACK_COLUMNS`).
    """

    name: str
    canonical: dict[str, str] | None = None

    @abstractmethod
    def read(self, location: str, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        """The shard's rows in its own schema, in file order, in batches of at most
        ``ds.batch_rows`` rows; ``columns`` (None = all) may be honoured where the format allows
        it. Raises what pyarrow or the OS raise (:meth:`rows` names the file and row), or a
        :class:`ShardError` naming the file and the row."""

    @abstractmethod
    def write(self, location: str, ds: DatasetConfig, drop: np.ndarray, dest: Path) -> tuple[int, int]:
        """Copy the shard at ``location`` to ``dest`` without the rows whose ``row_index`` is in
        ``drop`` (sorted int64), in the same format, row order kept.

        Returns:
            (rows in, rows out).

        Raises:
            ShardError: the shard cannot be read.
        """

    def column_names(self, location: str) -> list[str] | None:
        """The shard's column names when the format gives them without reading a row (so
        :meth:`read` may be asked for only the columns needed); None when it does not."""
        return None

    def release_path(self, shard_id: str) -> str:
        """The path of the shard's copy under a release's ``data/``: its ``shard_id``."""
        return shard_id

    def rows(self, location: str, ds: DatasetConfig, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """:meth:`read`, with every error a :class:`ShardError` naming the file and the rows read
        before it.

        Raises:
            ShardError: unreadable or malformed; the message names the file and, where known, the row.
        """
        rows = 0
        try:
            for batch in self.read(location, ds, columns):
                rows += batch.num_rows
                yield batch
        except ShardError:
            raise
        except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as e:
            raise ShardError(f"{location}: unreadable after row {rows}: {type(e).__name__}: {e}") from None


def kept(batches: Iterator[pa.RecordBatch], drop: np.ndarray) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(rows read, the batch without the rows whose ``row_index`` is in ``drop``) for each batch,
    ``row_index`` counting from 0 over all of them."""
    start = 0
    for batch in batches:
        idx = np.arange(start, start + batch.num_rows)
        keep = ~np.isin(idx, drop, assume_unique=True)
        start += batch.num_rows
        yield batch.num_rows, batch.filter(pa.array(keep))
