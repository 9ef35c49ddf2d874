"""JSONL shards: one JSON object per non-blank line (blank lines are not rows); a release is the
kept lines, byte for byte."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from scrutineer.core.config import DatasetConfig
from scrutineer.core.errors import ShardError
from scrutineer.formats.base import ShardFormat


def iter_jsonl_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line) for each non-blank line of a JSONL file; blank lines are not rows."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line


class Jsonl(ShardFormat):
    """``format: jsonl``."""

    name = "jsonl"

    def read(self, location: str, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        """pyarrow parses each chunk of lines; only a chunk it refuses is scanned line by line, to
        name the bad line."""
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
                        raise ShardError(f"{location}: line {number}: invalid JSON: {bad.args[0]}") from None
                    if not isinstance(obj, dict):
                        raise ShardError(f"{location}: line {number}: expected a JSON object")
                raise ShardError(f"{location}: lines {chunk[0][0]}-{chunk[-1][0]}: {e}") from None
            yield from table.to_batches(max_chunksize=ds.batch_rows)

        for item in iter_jsonl_lines(location):
            chunk.append(item)
            if len(chunk) >= ds.batch_rows:
                yield from parse(chunk)
                chunk = []
        if chunk:
            yield from parse(chunk)

    def write(self, location: str, ds: DatasetConfig, drop: np.ndarray, dest: Path) -> tuple[int, int]:
        dropped = set(drop.tolist())
        rows_in = rows_out = 0
        with open(dest, "wb") as out:
            for row_index, (_, line) in enumerate(iter_jsonl_lines(location)):
                rows_in += 1
                if row_index not in dropped:
                    out.write(line if line.endswith(b"\n") else line + b"\n")
                    rows_out += 1
        return rows_in, rows_out
