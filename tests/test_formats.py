"""Shard formats: one table of them, one per ``dataset.format`` value, and each one's release
writer leaves out exactly the dropped rows, which its own reader then reads back."""

import json
import typing

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from scrutineer.core.config import DatasetConfig, Format
from scrutineer.formats.registry import FORMATS

ROWS = [
    {"key": f"k{i}", "url": f"http://a.example/{i}.jpg", "caption": caption}
    for i, caption in enumerate(["a cat", 'say "hi", twice', "a dog", "tabs\tand, commas"])
]


def write_shard(path, name: str) -> str:
    """The four :data:`ROWS` as a shard of format ``name``."""
    if name in ("parquet", "hf", "webdataset"):
        path = path / "s.parquet"
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    elif name == "csv":
        path = path / "s.csv"
        pacsv.write_csv(pa.Table.from_pylist(ROWS), path)
    elif name == "tsv":  # unquoted: no value holds a tab
        path = path / "s.tsv"
        path.write_text("key\turl\tcaption\n" + "".join(f"{r['key']}\t{r['url']}\t{r['caption'].replace(chr(9), ' ')}\n" for r in ROWS))
    elif name == "jsonl":
        path = path / "s.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif name == "coco":  # images 1 and 2 have two captions each
        path = path / "s.json"
        images = [{"id": n, "coco_url": f"http://a.example/{n}.jpg", "license": 1} for n in (1, 2)]
        annotations = [{"id": i, "image_id": 1 + i // 2, "caption": r["caption"]} for i, r in enumerate(ROWS)]
        path.write_text(json.dumps({"images": images, "annotations": annotations, "licenses": [{"id": 1, "url": "http://l"}]}))
    return str(path)


def read(name: str, location: str, ds: DatasetConfig) -> list[dict]:
    return pa.Table.from_batches(list(FORMATS[name].rows(location, ds))).to_pylist()


def test_one_format_for_each_dataset_format_value_named_by_its_key():
    assert set(FORMATS) == set(typing.get_args(Format))
    assert {key: f.name for key, f in FORMATS.items()} == {key: key for key in FORMATS}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_release_copy_reads_back_as_the_input_without_the_dropped_rows(tmp_path, name):
    ds = DatasetConfig(name="t", shards=["s"], format=name, batch_rows=2)
    location = write_shard(tmp_path, name)
    rows = read(name, location, ds)
    assert len(rows) == 4
    dest = tmp_path / "out" / FORMATS[name].release_path("s")
    dest.parent.mkdir()
    assert FORMATS[name].write(location, ds, np.array([1, 2], dtype=np.int64), dest) == (4, 2)
    assert read(name, str(dest), ds) == [rows[0], rows[3]]


def test_a_coco_release_keeps_an_image_while_one_of_its_captions_stays(tmp_path):
    ds = DatasetConfig(name="t", shards=["s"], format="coco")
    location = write_shard(tmp_path, "coco")
    FORMATS["coco"].write(location, ds, np.array([0, 1, 2], dtype=np.int64), tmp_path / "a.json")
    assert [i["id"] for i in json.loads((tmp_path / "a.json").read_text())["images"]] == [2]
    FORMATS["coco"].write(location, ds, np.array([0], dtype=np.int64), tmp_path / "b.json")
    assert [i["id"] for i in json.loads((tmp_path / "b.json").read_text())["images"]] == [1, 2]


def test_a_hub_id_is_released_as_one_parquet_file():
    assert FORMATS["hf"].release_path("org/name@main") == "org__name@main.parquet"
    assert FORMATS["hf"].release_path("local/s.parquet") == "local/s.parquet"
    assert FORMATS["parquet"].release_path("a/b.parquet") == "a/b.parquet"
