"""Sources: list a dataset's shards and stream each as ``pyarrow.RecordBatch``es.

A shard is one file (or one Hugging Face dataset id). Its ``shard_id`` is its path relative to the
dataset root (the deepest directory holding every shard), so ids are stable across machines.
A row's identity is ``(shard_id, row_index)``, ``row_index`` counting data rows from 0 in file
order (header lines and blank JSONL lines are not rows).

Formats: ``parquet``; ``csv`` and ``tsv`` with or without a header (``quoting: false`` reads with
``QUOTE_NONE`` semantics); ``jsonl``; ``coco`` captions JSON (one row per caption); ``hf``
(``datasets.load_dataset(..., streaming=True)``); ``webdataset``: img2dataset's per-shard
``.parquet`` (``url``, ``key``, ``caption``, ``status``, ...) read as parquet, its images coming
from the ``.tar`` beside it (:mod:`scrutineer.formats.webdataset`). Memory per shard is bounded by
``dataset.batch_rows`` except for ``coco``, whose JSON is parsed whole.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from scrutineer.core.config import SUFFIX_FORMATS, Config, DatasetConfig, Format
from scrutineer.core.contract import DETECT
from scrutineer.core.errors import ConfigError, ShardError
from scrutineer.core.files import FileDigest, file_digest

CANONICAL = ("sample_id", "url", "caption", "license")

#: Column names tried, in order, for a canonical column the config does not map.
#: LAION-400M/5B (URL, TEXT, LICENSE, SAMPLE_ID), img2dataset (url, caption, key), COCO (below).
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
    """Stream a shard in its own schema, in file order.

    Args:
        shard: the shard to read.
        ds: dataset options (CSV dialect, batch size, HF split).
        columns: read only these source columns where the format allows it (parquet); None = all.

    Yields:
        ``pa.RecordBatch`` of at most ``ds.batch_rows`` rows.

    Raises:
        ShardError: unreadable or malformed; the message names the file and, where known, the row.
    """
    readers = {
        "parquet": _parquet_batches,
        "webdataset": _parquet_batches,
        "csv": _csv_batches,
        "tsv": _csv_batches,
        "jsonl": _jsonl_batches,
        "coco": _coco_batches,
        "hf": _hf_batches,
    }
    rows = 0
    try:
        for batch in readers[shard.format](shard, ds, columns):
            rows += batch.num_rows
            yield batch
    except ShardError:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as e:
        raise ShardError(f"{shard.location}: unreadable after row {rows}: {type(e).__name__}: {e}") from None


def _parquet_batches(shard: Shard, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    # pre_buffer=False: pre-buffering keeps ~90 bytes per row allocated until the file is closed
    # (880 MB at 10M rows, measured by bench/scan_metadata.py).
    with pq.ParquetFile(shard.location, pre_buffer=False) as f:
        yield from f.iter_batches(batch_size=ds.batch_rows, columns=columns, use_pandas_metadata=False)


def csv_dialect(shard: Shard, ds: DatasetConfig) -> tuple[str, bool, bool]:
    """(delimiter, header, quoting) of a CSV/TSV shard, from config and format defaults."""
    delimiter = "\t" if shard.format == "tsv" else ","
    header = ds.header if ds.header is not None else ds.names is None
    quoting = ds.quoting if ds.quoting is not None else shard.format == "csv"
    return delimiter, header, quoting


def _csv_batches(shard: Shard, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    delimiter, header, quoting = csv_dialect(shard, ds)
    bad: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "error"

    def open_reader(column_types: dict | None) -> pacsv.CSVStreamingReader:
        return pacsv.open_csv(
            shard.location,
            read_options=pacsv.ReadOptions(
                column_names=None if header else ds.names,
                autogenerate_column_names=not header and not ds.names,
                block_size=1 << 22,
                use_threads=False,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char='"' if quoting else False,
                newlines_in_values=quoting,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=False),
        )

    try:
        names = open_reader(None).schema.names
        # Every column as text: values round-trip unchanged into a release.
        reader = open_reader({n: pa.string() for n in names})
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in reader:
            pending.append(batch)
            size += batch.num_rows
            if size >= ds.batch_rows:
                yield from pa.Table.from_batches(pending).to_batches(max_chunksize=ds.batch_rows)
                pending, size = [], 0
        if pending:
            yield from pa.Table.from_batches(pending).to_batches(max_chunksize=ds.batch_rows)
    except pa.ArrowInvalid as e:
        if bad:
            row = bad[0]
            where = f"line {row.number}" if row.number is not None else "a row"
            raise ShardError(
                f"{shard.location}: {where}: expected {row.expected_columns} columns, got {row.actual_columns}"
            ) from None
        raise ShardError(f"{shard.location}: malformed CSV: {e}") from None


def iter_jsonl_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line) for each non-blank line of a JSONL file; blank lines are not rows."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line


def _jsonl_batches(shard: Shard, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """pyarrow parses each chunk of lines; only a chunk it refuses is scanned line by line, to name
    the bad line."""
    chunk: list[tuple[int, bytes]] = []

    def parse(chunk: list[tuple[int, bytes]]) -> Iterator[pa.RecordBatch]:
        data = b"".join(line if line.endswith(b"\n") else line + b"\n" for _, line in chunk)
        try:
            table = pajson.read_json(io.BytesIO(data))
        except pa.ArrowInvalid as e:
            for number, line in chunk:
                try:
                    obj = json.loads(line)
                except ValueError as bad:
                    raise ShardError(f"{shard.location}: line {number}: invalid JSON: {bad.args[0]}") from None
                if not isinstance(obj, dict):
                    raise ShardError(f"{shard.location}: line {number}: expected a JSON object")
            raise ShardError(f"{shard.location}: lines {chunk[0][0]}-{chunk[-1][0]}: {e}") from None
        yield from table.to_batches(max_chunksize=ds.batch_rows)

    for item in iter_jsonl_lines(shard.location):
        chunk.append(item)
        if len(chunk) >= ds.batch_rows:
            yield from parse(chunk)
            chunk = []
    if chunk:
        yield from parse(chunk)


def load_coco(path: str) -> dict:
    """Parse a COCO captions JSON (``images``, ``annotations``, ``licenses``).

    Raises:
        ShardError: invalid JSON or a missing key.
    """
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except ValueError as e:
        raise ShardError(f"{path}: invalid JSON: {e}") from None
    for key in ("images", "annotations"):
        if not isinstance(doc.get(key), list):
            raise ShardError(f"{path}: not a COCO captions file: no {key!r} list")
    return doc


def _coco_batches(shard: Shard, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """One row per caption: the annotation's ``id``, ``image_id`` and ``caption``, the image's fields,
    and ``license_url`` / ``license_name`` from the image's entry in ``licenses``."""
    doc = load_coco(shard.location)
    licenses = {lic.get("id"): lic for lic in doc.get("licenses", [])}
    images = {img.get("id"): img for img in doc["images"]}
    rows = []
    for i, ann in enumerate(doc["annotations"]):
        img = images.get(ann.get("image_id"))
        if img is None:
            raise ShardError(f"{shard.location}: annotation {i}: image_id {ann.get('image_id')!r} not in images")
        lic = licenses.get(img.get("license"), {})
        rows.append(
            {
                "id": ann.get("id"),
                "image_id": ann.get("image_id"),
                "caption": ann.get("caption"),
                "coco_url": img.get("coco_url"),
                "flickr_url": img.get("flickr_url"),
                "file_name": img.get("file_name"),
                "width": img.get("width"),
                "height": img.get("height"),
                "license": img.get("license"),
                "license_url": lic.get("url"),
                "license_name": lic.get("name"),
            }
        )
    table = pa.Table.from_pylist(rows)
    yield from table.to_batches(max_chunksize=ds.batch_rows)


def _hf_batches(shard: Shard, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    if shard.is_local:  # a local file needs no Hub: never let datasets try the network
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    if shard.is_local:
        builder = {".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json"}.get(Path(shard.location).suffix)
        if builder is None:
            raise ShardError(f"{shard.location}: no Hugging Face builder for this suffix")
        stream = datasets.load_dataset(builder, data_files=shard.location, split=ds.hf.split, streaming=True)
    else:
        stream = datasets.load_dataset(
            shard.location, name=ds.hf.name, split=ds.hf.split, revision=ds.hf.revision, streaming=True
        )
    for table in stream.with_format("arrow").iter(batch_size=ds.batch_rows):
        yield from table.to_batches(max_chunksize=ds.batch_rows)


# --- canonical batches: what detectors see ---------------------------------------------------

COCO_COLUMNS = {"sample_id": "id", "url": "coco_url", "caption": "caption", "license": "license_url"}


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
    for canon in CANONICAL:
        if canon in ds.columns:
            if ds.columns[canon] not in names:
                raise ShardError(f"{shard.location}: column {ds.columns[canon]!r} (dataset.columns.{canon}) not in {names}")
            mapping[canon] = ds.columns[canon]
            continue
        candidates = (COCO_COLUMNS[canon],) if shard.format == "coco" else FALLBACK_COLUMNS[canon]
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
    if shard.format in ("parquet", "webdataset"):
        try:
            names = pq.read_schema(shard.location).names
        except (pa.ArrowException, OSError) as e:
            raise ShardError(f"{shard.location}: unreadable parquet: {e}") from None
        mapping = column_mapping(shard, ds, names, extra)
        projection = sorted({c for c in mapping.values() if c is not None} | set(extra))
    start = 0
    for batch in iter_raw_batches(shard, ds, projection):
        if mapping is None:
            mapping = column_mapping(shard, ds, batch.schema.names, extra)
        n = batch.num_rows
        row_index = pa.array(np.arange(start, start + n, dtype=np.int64))
        cols = {"row_index": row_index}
        for canon in CANONICAL:
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
