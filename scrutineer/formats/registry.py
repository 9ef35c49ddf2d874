"""The one table of shard formats, by ``dataset.format`` name (:data:`scrutineer.core.config.Format`).

Readers (:func:`scrutineer.formats.sources.iter_raw_batches`) and release writers
(:func:`scrutineer.release.build.build_release`) both find a shard's format here.
"""

from __future__ import annotations

from scrutineer.formats.base import ShardFormat
from scrutineer.formats.coco import Coco
from scrutineer.formats.csv import Csv
from scrutineer.formats.hf import Hf
from scrutineer.formats.jsonl import Jsonl
from scrutineer.formats.parquet import Parquet
from scrutineer.formats.webdataset import WebDataset

FORMATS: dict[str, ShardFormat] = {
    "parquet": Parquet(),
    "csv": Csv("csv", delimiter=","),
    "tsv": Csv("tsv", delimiter="\t"),
    "jsonl": Jsonl(),
    "coco": Coco(),
    "hf": Hf(),
    "webdataset": WebDataset(),
}
