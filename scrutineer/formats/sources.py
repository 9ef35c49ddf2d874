"""Sources: list a dataset's shards and stream each as ``pyarrow.RecordBatch``es.

A shard is one file (or one Hugging Face dataset id). Its ``shard_id`` is its path relative to the
dataset root (the deepest directory holding every shard), so ids are stable across machines.
A row's identity is ``(shard_id, row_index)``, ``row_index`` counting data rows from 0 in file
order (header lines and blank JSONL lines are not rows).

Each format reads its shards (:data:`scrutineer.formats.registry.FORMATS`): ``parquet``; ``csv``
and ``tsv`` with or without a header (``quoting: false`` reads with ``QUOTE_NONE`` semantics);
``jsonl``; ``coco`` captions JSON (one row per caption); ``hf``
(``datasets.load_dataset(..., streaming=True)``); ``webdataset``: img2dataset's per-shard
``.parquet`` (``url``, ``key``, ``caption``, ``status``, ...) read as parquet, its images coming
from the ``.tar`` beside it (:mod:`scrutineer.formats.webdataset`). Memory per shard is bounded by
``dataset.batch_rows`` except for ``coco``, whose JSON is parsed whole. This module maps a
shard's columns to the canonical ones and names the file and row of every error.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.core.config import SUFFIX_FORMATS, Config, DatasetConfig, Format
from scrutineer.core.contract import CANONICAL_COLUMNS, DETECT
from scrutineer.core.errors import ConfigError, ShardError
from scrutineer.core.files import FileDigest, file_digest
from scrutineer.formats.registry import FORMATS

#: Column names tried, in order, for a canonical column the config does not map.
#: LAION-400M/5B (URL, TEXT, LICENSE, SAMPLE_ID), img2dataset (url, caption, key). A format whose
#: columns are fixed names its own (COCO: :attr:`scrutineer.formats.coco.Coco.canonical`).
FALLBACK_COLUMNS: dict[str, tuple[str, ...]] = {
    "sample_id": ("sample_id", "SAMPLE_ID", "key"),
    "url": ("url", "URL"),
    "caption": ("caption", "TEXT", "text", "txt"),
    "license": ("license", "LICENSE"),
}


@dataclass(frozen=True)
class Shard:
    """One unit of work: a file (or Hub dataset id) and how to read it."""

    shard_id: str
    location: str
    format: Format

    @property
    def is_local(self) -> bool:
        return os.path.exists(self.location)

    def digest(self, known: dict[str, FileDigest]) -> FileDigest | None:
        """The shard file's digest (:func:`scrutineer.core.files.file_digest`: its bytes are read only
        when its stat differs from ``known``); None for a Hub id.

        Raises:
            ShardError: the file cannot be read.
        """
        if not self.is_local:
            return None
        try:
            return file_digest(self.location, known)
        except OSError as e:
            raise ShardError(f"{self.location}: cannot read: {e}") from None

    def sha256(self) -> str:
        """sha256 of the shard's bytes (hex), read in full; for a Hub id, of ``id@revision`` as
        given in config.

        Raises:
            ShardError: the file cannot be read.
        """
        digest = self.digest({})
        return digest.sha256 if digest else "hub:" + hashlib.sha256(self.location.encode()).hexdigest()


def list_shards(cfg: Config) -> list[Shard]:
    """The dataset's shards in ``shard_id`` order.

    Raises:
        ConfigError: a pattern matches no file, a format cannot be inferred, or a webdataset
            pattern names ``.tar`` files instead of their ``.parquet`` siblings.
    """
    ds = cfg.dataset
    paths: list[Path] = []
    hub_ids: list[str] = []
    for pattern in ds.shards:
        matches = sorted(Path(p) for p in glob.glob(str(cfg.base_dir / pattern), recursive=True))
        files = [p.resolve() for p in matches if p.is_file()]
        if files:
            paths.extend(files)
        elif ds.format == "hf" and not Path(pattern).suffix:
            hub_ids.append(pattern)
        else:
            raise ConfigError(f"dataset.shards: {pattern!r} matches no file (relative to {cfg.base_dir})")
    paths = sorted(dict.fromkeys(paths))
    if ds.format == "webdataset" and (tars := [p.name for p in paths if p.suffix != ".parquet"]):
        raise ConfigError(f"dataset.shards: a webdataset shard is img2dataset's .parquet file (its .tar sits beside it), not {tars[:3]}")
    root = Path(os.path.commonpath([p.parent for p in paths])) if paths else cfg.base_dir
    shards = [Shard(p.relative_to(root).as_posix(), str(p), _format_of(ds, p)) for p in paths]
    rev = f"@{ds.hf.revision}" if ds.hf.revision else ""
    shards += [Shard(h + rev, h, "hf") for h in hub_ids]
    return sorted(shards, key=lambda s: s.shard_id)


def _format_of(ds: DatasetConfig, path: Path) -> Format:
    if ds.format:
        return ds.format
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot infer the format of {path.name}; set dataset.format")
    return fmt


# --- raw batches: the source's own columns ---------------------------------------------------


def iter_raw_batches(shard: Shard, ds: DatasetConfig, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a shard in its own schema, in file order, as its format reads it
    (:data:`scrutineer.formats.registry.FORMATS`).

    Args:
        shard: the shard to read.
        ds: dataset options (CSV dialect, batch size, HF split).
        columns: read only these source columns where the format allows it (parquet); None = all.

    Yields:
        ``pa.RecordBatch`` of at most ``ds.batch_rows`` rows.

    Raises:
        ShardError: unreadable or malformed; the message names the file and, where known, the row.
    """
    return FORMATS[shard.format].rows(shard.location, ds, columns)


# --- canonical batches: what detectors see ---------------------------------------------------


def column_mapping(shard: Shard, ds: DatasetConfig, names: list[str], extra: Sequence[str] = ()) -> dict[str, str | None]:
    """Source column for each canonical name (None where the source has none).

    Raises:
        ShardError: a column named in ``dataset.columns`` or in ``extra`` is not in the shard, or
            no URL column exists.
    """
    missing = [c for c in extra if c not in names]
    if missing:
        raise ShardError(f"{shard.location}: column(s) {missing} needed (by a detector, or as a webdataset's key) are not in {names}")
    mapping: dict[str, str | None] = {}
    for canon in CANONICAL_COLUMNS:
        if canon in ds.columns:
            if ds.columns[canon] not in names:
                raise ShardError(f"{shard.location}: column {ds.columns[canon]!r} (dataset.columns.{canon}) not in {names}")
            mapping[canon] = ds.columns[canon]
            continue
        fixed = FORMATS[shard.format].canonical
        candidates = (fixed[canon],) if fixed else FALLBACK_COLUMNS[canon]
        mapping[canon] = next((c for c in candidates if c in names), None)
    if mapping["url"] is None:
        raise ShardError(f"{shard.location}: no URL column among {names}; set dataset.columns.url")
    return mapping


def iter_detect_batches(shard: Shard, ds: DatasetConfig, extra: Sequence[str] = ()) -> Iterator[pa.RecordBatch]:
    """Stream a shard as ``DETECT`` batches (row_index, sample_id, url, caption, license),
    followed by the source columns named in ``extra`` (as the source types them) that are not
    already among those names.

    ``sample_id`` is the mapped key column as text, else ``"{shard_id}:{row_index}"``; canonical
    columns the source lacks are null. Parquet shards read only the columns needed.

    Raises:
        ShardError: as :func:`iter_raw_batches`, or a mapped or ``extra`` column is missing.
    """
    extra = [c for c in dict.fromkeys(extra) if c not in DETECT.names]
    mapping: dict[str, str | None] | None = None
    projection = None
    if (names := FORMATS[shard.format].column_names(shard.location)) is not None:
        mapping = column_mapping(shard, ds, names, extra)
        projection = sorted({c for c in mapping.values() if c is not None} | set(extra))
    start = 0
    for batch in iter_raw_batches(shard, ds, projection):
        if mapping is None:
            mapping = column_mapping(shard, ds, batch.schema.names, extra)
        n = batch.num_rows
        row_index = pa.array(np.arange(start, start + n, dtype=np.int64))
        cols = {"row_index": row_index}
        for canon in CANONICAL_COLUMNS:
            src = mapping[canon]
            cols[canon] = pa.nulls(n, pa.string()) if src is None else as_string(batch.column(src))
        if mapping["sample_id"] is None:
            prefix = pa.scalar(f"{shard.shard_id}:")
            cols["sample_id"] = pc.binary_join_element_wise(prefix, pc.cast(row_index, pa.string()), "")
        start += n
        detect = pa.RecordBatch.from_pydict(cols, schema=DETECT)
        for name in extra:
            detect = detect.append_column(name, batch.column(name))
        yield detect


def as_string(col: pa.Array) -> pa.Array:
    """A column as ``pa.string()``: dictionary-decoded, large/view strings narrowed, others cast."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_large_string(col.type) or pa.types.is_string_view(col.type):
        return col.cast(pa.string())
    if pa.types.is_string(col.type):
        return col
    return pc.cast(col, pa.string())
