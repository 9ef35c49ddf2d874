"""Hugging Face shards: ``datasets.load_dataset(..., streaming=True)`` of a Hub dataset id (or of
a local parquet, CSV or JSON file, never touching the network); a release writes each as parquet."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from scrutineer.core.config import DatasetConfig
from scrutineer.core.errors import ShardError
from scrutineer.formats.base import ShardFormat
from scrutineer.formats.parquet import write_parquet

#: The ``datasets`` builder of a local file, by suffix.
BUILDERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}


class Hf(ShardFormat):
    """``format: hf``: ``dataset.hf`` names the split, configuration and revision of a Hub id."""

    name = "hf"

    def read(self, location: str, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        local = os.path.exists(location)
        if local:  # a local file needs no Hub: never let datasets try the network
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        # start-up: datasets costs 500-800 ms at import (measured 2026-12-06); it reads the variables above then
        import datasets

        if local:
            builder = BUILDERS.get(Path(location).suffix)
            if builder is None:
                raise ShardError(f"{location}: no Hugging Face builder for this suffix")
            stream = datasets.load_dataset(builder, data_files=location, split=ds.hf.split, streaming=True)
        else:
            stream = datasets.load_dataset(location, name=ds.hf.name, split=ds.hf.split, revision=ds.hf.revision, streaming=True)
        for table in stream.with_format("arrow").iter(batch_size=ds.batch_rows):
            yield from table.to_batches(max_chunksize=ds.batch_rows)

    def write(self, location: str, ds: DatasetConfig, drop: np.ndarray, dest: Path) -> tuple[int, int]:
        return write_parquet(self.rows(location, ds), drop, dest, None)

    def release_path(self, shard_id: str) -> str:
        """A parquet file keeps its id; a Hub id becomes one file name, ``/`` as ``__``, ``.parquet`` added."""
        return shard_id if shard_id.endswith(".parquet") else shard_id.replace("/", "__") + ".parquet"
