"""JSONL shards: one JSON object per non-blank line (blank lines are not rows); a release is the
kept lines, byte for byte.

A line nested deeper than :data:`MAX_DEPTH` fails its shard, naming the line: pyarrow's JSON
reader recurses once per level and crashed the process (a segmentation fault) between 10,000 and
20,000 levels (pyarrow 26, 2026-12-07); so does the standard library's parser with a
RecursionError. orjson, which reads any line pyarrow refuses, stops at 1,024 levels by itself."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pajson

from scrutineer.core.config import DatasetConfig
from scrutineer.core.errors import ShardError
from scrutineer.formats.base import ShardFormat

#: The deepest nesting of arrays and objects a line may have: orjson's own limit (it refuses
#: deeper rather than recursing), far below where pyarrow's reader crashes (module docstring).
MAX_DEPTH = 1024


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
        """pyarrow parses each chunk of lines, inferring each field's type. A chunk it refuses is
        read line by line: a line that is not a JSON object fails the shard, naming it; a chunk of
        objects whose field changes type from line to line (a number, then a string: pyarrow
        infers one type per field) is read with every value as text (a string as it is, anything
        else as its JSON, as pyarrow writes a number or a boolean as text)."""
        chunk: list[tuple[int, bytes]] = []

        def parse(chunk: list[tuple[int, bytes]]) -> Iterator[pa.RecordBatch]:
            for number, line in chunk:
                if line.count(b"[") + line.count(b"{") > MAX_DEPTH:  # could be nested that deep: orjson tells
                    _object(location, number, line)
            data = b"".join(line if line.endswith(b"\n") else line + b"\n" for _, line in chunk)
            try:
                table = pajson.read_json(io.BytesIO(data))
            except pa.ArrowInvalid:
                table = _as_text([_object(location, number, line) for number, line in chunk])
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


def _object(location: str, number: int, line: bytes) -> dict:
    """Line ``number`` of shard ``location`` as a JSON object (orjson: nesting past 1,024 levels is
    refused, not recursed into).

    Raises:
        ShardError: the line is not valid JSON, is nested deeper than 1,024 levels, or is not an object.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as bad:
        raise ShardError(f"{location}: line {number}: invalid JSON (or nested deeper than {MAX_DEPTH:,} levels): {bad.args[0]}") from None
    if not isinstance(obj, dict):
        raise ShardError(f"{location}: line {number}: expected a JSON object")
    return obj


def _as_text(objects: list[dict]) -> pa.Table:
    """JSON objects as a table of string columns, one per key in the order first seen: a string
    value as it is, null or a missing key as null, any other value as its compact JSON."""
    keys = list(dict.fromkeys(k for obj in objects for k in obj))

    def text(value: object) -> str | None:
        return value if value is None or isinstance(value, str) else orjson.dumps(value).decode()

    return pa.table({k: pa.array([text(obj.get(k)) for obj in objects], pa.string()) for k in keys})
