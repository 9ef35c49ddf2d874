"""CSV and TSV shards, with or without a header (``dataset.header``, ``dataset.names``); quoted
(``csv``'s default) or not (``quoting: false``, ``tsv``'s default: ``QUOTE_NONE`` semantics).

Every column is read as text, so values round-trip unchanged into a release. A quoted shard's
release is rewritten by pyarrow (quoting where needed); an unquoted one's is its kept lines, byte
for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from scrutineer.core.config import DatasetConfig
from scrutineer.core.errors import ShardError
from scrutineer.formats.base import ShardFormat, kept


class Csv(ShardFormat):
    """``format: csv`` (comma-separated, quoted by default) or ``format: tsv`` (tab-separated,
    unquoted by default)."""

    def __init__(self, name: str, delimiter: str):
        self.name = name
        self.delimiter = delimiter

    def dialect(self, ds: DatasetConfig) -> tuple[str, bool, bool]:
        """(delimiter, header, quoting) of a shard, from config and the format's defaults."""
        header = ds.header if ds.header is not None else ds.names is None
        quoting = ds.quoting if ds.quoting is not None else self.name == "csv"
        return self.delimiter, header, quoting

    def read(self, location: str, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        delimiter, header, quoting = self.dialect(ds)
        bad: list[pacsv.InvalidRow] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            bad.append(row)
            return "error"

        def open_reader(column_types: dict | None) -> pacsv.CSVStreamingReader:
            return pacsv.open_csv(
                location,
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
                    f"{location}: {where}: expected {row.expected_columns} columns, got {row.actual_columns}"
                ) from None
            raise ShardError(f"{location}: malformed CSV: {e}") from None

    def write(self, location: str, ds: DatasetConfig, drop: np.ndarray, dest: Path) -> tuple[int, int]:
        delimiter, header, quoting = self.dialect(ds)
        if not quoting:
            return _write_lines(location, header, drop, dest)
        rows_in = rows_out = 0
        writer = None
        try:
            for n, batch in kept(self.rows(location, ds), drop):
                if writer is None:
                    writer = pacsv.CSVWriter(
                        dest, batch.schema, write_options=pacsv.WriteOptions(include_header=header, delimiter=delimiter, quoting_style="needed")
                    )
                rows_in += n
                rows_out += batch.num_rows
                writer.write_batch(batch)
            if writer is None:
                dest.write_bytes(b"")
        finally:
            if writer is not None:
                writer.close()
        return rows_in, rows_out


def _write_lines(location: str, header: bool, drop: np.ndarray, dest: Path) -> tuple[int, int]:
    """Copy an unquoted (QUOTE_NONE) CSV/TSV shard line by line, leaving out the dropped rows'
    lines, so the release is the input's bytes minus those lines.

    Rows are counted as pyarrow's reader counts them (:meth:`Csv.read`): a line ends at ``\\n``,
    ``\\r\\n`` or ``\\r``; empty lines are not rows (they are kept); with ``header``, the first
    non-empty line is the header (kept).
    """
    dropped = set(drop.tolist())
    rows_in = rows_out = 0
    # newline="": lines end as above and keep their ending; latin-1 decodes each byte to one
    # character, so encoding a line gives back exactly the bytes read.
    with open(location, encoding="latin-1", newline="") as f, open(dest, "wb") as out:
        for line in f:
            if not line.rstrip("\r\n"):
                out.write(line.encode("latin-1"))
            elif header:
                out.write(line.encode("latin-1"))
                header = False
            else:
                if rows_in not in dropped:
                    out.write(line.encode("latin-1"))
                    rows_out += 1
                rows_in += 1
    return rows_in, rows_out
