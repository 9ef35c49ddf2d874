"""COCO captions JSON shards (``images``, ``annotations``, ``licenses``): one row per caption.

The JSON is parsed whole, so a shard's memory is not bounded by ``dataset.batch_rows``. A release
leaves out the removed annotations, and an image once every one of its captions is removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from scrutineer.core.config import DatasetConfig
from scrutineer.core.errors import ShardError
from scrutineer.formats.base import ShardFormat


def load_coco(path: str) -> dict:
    """Parse a COCO captions JSON (``images``, ``annotations``, ``licenses``), with orjson: nesting
    past 1,024 levels is refused, where the standard library's parser raised RecursionError.

    Raises:
        ShardError: invalid JSON (or nested deeper than 1,024 levels) or a missing key.
    """
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as e:
        raise ShardError(f"{path}: invalid JSON (or nested deeper than 1,024 levels): {e}") from None
    if not isinstance(doc, dict):
        raise ShardError(f"{path}: not a COCO captions file: not a JSON object")
    for key in ("images", "annotations"):
        if not isinstance(doc.get(key), list):
            raise ShardError(f"{path}: not a COCO captions file: no {key!r} list")
    return doc


class Coco(ShardFormat):
    """``format: coco``: the annotation's ``id``, ``image_id`` and ``caption``, the image's fields,
    and ``license_url`` / ``license_name`` from the image's entry in ``licenses``."""

    name = "coco"
    canonical = {"sample_id": "id", "url": "coco_url", "caption": "caption", "license": "license_url"}

    def read(self, location: str, ds: DatasetConfig, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
        doc = load_coco(location)
        licenses = {lic.get("id"): lic for lic in doc.get("licenses", [])}
        images = {img.get("id"): img for img in doc["images"]}
        rows = []
        for i, ann in enumerate(doc["annotations"]):
            img = images.get(ann.get("image_id"))
            if img is None:
                raise ShardError(f"{location}: annotation {i}: image_id {ann.get('image_id')!r} not in images")
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

    def write(self, location: str, ds: DatasetConfig, drop: np.ndarray, dest: Path) -> tuple[int, int]:
        """Annotations (rows) removed; an image goes too once every one of its captions is removed."""
        doc = load_coco(location)
        dropped = set(drop.tolist())
        anns = doc["annotations"]
        kept = [a for i, a in enumerate(anns) if i not in dropped]
        had = {a.get("image_id") for a in anns}
        still = {a.get("image_id") for a in kept}
        doc["images"] = [img for img in doc["images"] if img.get("id") not in had or img.get("id") in still]
        doc["annotations"] = kept
        dest.write_text(json.dumps(doc, ensure_ascii=False))
        return len(anns), len(kept)
