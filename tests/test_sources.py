import csv
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scrutineer.core.config import Config
from scrutineer.core.errors import ShardError
from scrutineer.formats.sources import iter_detect_batches, list_shards


def config(tmp_path, dataset):
    return Config.model_validate({"dataset": {"name": "t", **dataset}, "detectors": {"dedup": {}}, "config_path": tmp_path / "c.yaml"})


def read_all(cfg):
    [shard] = list_shards(cfg)
    return pa.Table.from_batches(list(iter_detect_batches(shard, cfg.dataset)))


def test_cc3m_headerless_tsv_reads_with_quote_none(tmp_path, test_data):
    path = test_data / "metadata" / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv"
    cfg = config(tmp_path, {"shards": [str(path)], "names": ["caption", "url"], "batch_rows": 1000})
    table = read_all(cfg)
    with open(path, newline="", encoding="utf-8") as f:
        expected = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert table.num_rows == len(expected) == 7917
    assert table["url"].to_pylist() == [r[1] for r in expected]
    assert table["caption"].to_pylist() == [r[0] for r in expected]
    assert table["row_index"].to_pylist() == list(range(7917))
    assert table["sample_id"][5].as_py() == "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv:5"


def test_coco_one_row_per_caption_with_licence_url(tmp_path, test_data):
    path = test_data / "metadata" / "coco_captions_val2017_images0-2499.json"
    doc = json.loads(path.read_text())
    table = read_all(config(tmp_path, {"shards": [str(path)]}))
    assert table.num_rows == len(doc["annotations"]) == 12510
    images = {i["id"]: i for i in doc["images"]}
    licenses = {lic["id"]: lic["url"] for lic in doc["licenses"]}
    first = doc["annotations"][0]
    assert table["caption"][0].as_py() == first["caption"]
    assert table["url"][0].as_py() == images[first["image_id"]]["coco_url"]
    assert table["license"][0].as_py() == licenses[images[first["image_id"]]["license"]]
    assert table["sample_id"][0].as_py() == str(first["id"])


def test_laion_parquet_and_hf_streaming_agree(tmp_path, test_data):
    path = test_data / "metadata" / "laion400m_img2dataset_test_1000.parquet"
    direct = read_all(config(tmp_path, {"shards": [str(path)], "columns": {"url": "URL", "caption": "TEXT"}, "batch_rows": 300}))
    hf = read_all(config(tmp_path, {"shards": [str(path)], "format": "hf", "columns": {"url": "URL", "caption": "TEXT"}, "batch_rows": 300}))
    expected = pq.read_table(path)
    assert direct["url"].to_pylist() == hf["url"].to_pylist() == expected["URL"].to_pylist()
    assert direct["caption"].to_pylist() == expected["TEXT"].to_pylist()
    assert direct["license"].null_count == direct.num_rows  # LAION-400M has no licence column


def test_jsonl_and_csv_with_header(tmp_path):
    rows = [{"key": "a1", "url": "http://x.org/1.jpg", "caption": 'say "hi", twice', "license": "CC0-1.0"},
            {"key": "a2", "url": "http://x.org/2.jpg", "caption": "line\nbreak", "license": None}]
    (tmp_path / "d.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    for name in ("d.jsonl", "d.csv"):
        table = read_all(config(tmp_path, {"shards": [name]}))
        assert table["sample_id"].to_pylist() == ["a1", "a2"], name
        assert table["caption"].to_pylist() == [r["caption"] for r in rows], name


def test_malformed_csv_row_names_file_and_line(tmp_path):
    (tmp_path / "bad.csv").write_text("url,caption\nhttp://a/1,ok\nhttp://a/2,too,many\n")
    cfg = config(tmp_path, {"shards": ["bad.csv"]})
    with pytest.raises(ShardError, match=r"bad\.csv: line 3: expected 2 columns, got 3"):
        read_all(cfg)


def test_malformed_jsonl_names_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"url": "http://a/1"}\n{"url": \n')
    with pytest.raises(ShardError, match=r"bad\.jsonl: line 2: invalid JSON"):
        read_all(config(tmp_path, {"shards": ["bad.jsonl"]}))


def test_jsonl_fields_that_change_type_are_read_as_text(tmp_path):
    """pyarrow infers one type per field and refused a key that is a number on one line and a
    string on the next (and any field doing so, mapped or not): the chunk is read with its values
    as text, as pyarrow writes a number as text."""
    rows = [{"key": 5, "url": "http://a/1", "extra": 1}, {"key": "x", "url": "http://a/2", "extra": "s"},
            {"key": 7.5, "url": None, "extra": {"n": [1, True]}}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = read_all(config(tmp_path, {"shards": ["d.jsonl"], "columns": {"sample_id": "key"}}))
    assert table["sample_id"].to_pylist() == ["5", "x", "7.5"]
    assert table["url"].to_pylist() == ["http://a/1", "http://a/2", None]
    (tmp_path / "same.jsonl").write_text(json.dumps({"key": 5, "url": "http://a/1"}) + "\n")  # pyarrow's own reading
    assert read_all(config(tmp_path, {"shards": ["same.jsonl"], "columns": {"sample_id": "key"}}))["sample_id"].to_pylist() == ["5"]


def test_a_jsonl_line_nested_too_deep_fails_its_shard_not_the_process(tmp_path):
    """A line nested 100,000 levels deep crashed the scan's process (pyarrow's JSON reader, a
    segmentation fault). Run as a command, so that a crash fails this test and not pytest."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "good.jsonl").write_text(json.dumps({"url": "http://a.example/1.jpg"}) + "\n")
    deep = '{"url": "http://a.example/2.jpg", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "deep.jsonl").write_text(json.dumps({"url": "http://a.example/3.jpg"}) + "\n" + deep + "\n")
    (tmp_path / "c.yaml").write_text('dataset: {name: deep, shards: ["*.jsonl"]}\nworkspace: work\ndetectors: {license_gaps: {}}\n')
    exe = Path(sys.executable).parent / "scrutineer"
    result = subprocess.run([str(exe), "scan", str(tmp_path / "c.yaml")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr  # partial: one shard failed, the process did not
    assert "deep.jsonl: line 2: invalid JSON (or nested deeper than 1,024 levels)" in " ".join(result.stderr.split())


def test_a_coco_file_nested_too_deep_is_a_shard_error(tmp_path):
    """The standard library's parser raised RecursionError (not a ShardError) at 100,000 levels."""
    (tmp_path / "captions.json").write_text('{"images": [], "annotations": [], "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ShardError, match=r"captions\.json: invalid JSON \(or nested deeper than 1,024 levels\)"):
        read_all(config(tmp_path, {"shards": ["captions.json"], "format": "coco"}))


def test_missing_mapped_column_is_a_shard_error(tmp_path, test_data):
    path = test_data / "metadata" / "laion400m_img2dataset_test_1000.parquet"
    with pytest.raises(ShardError, match="column 'LINK'"):
        read_all(config(tmp_path, {"shards": [str(path)], "columns": {"url": "LINK"}}))


def test_shard_ids_are_relative_to_the_dataset_root(tmp_path):
    for sub in ("a", "b/c"):
        (tmp_path / sub).mkdir(parents=True)
        pq.write_table(pa.table({"url": ["http://x/1"]}), tmp_path / sub / "p.parquet")
    cfg = config(tmp_path, {"shards": ["**/*.parquet"]})
    assert [s.shard_id for s in list_shards(cfg)] == ["a/p.parquet", "b/c/p.parquet"]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_extra_columns_follow_the_canonical_ones(tmp_path, suffix):
    """A detector's extra source columns arrive after DETECT_SCHEMA's, typed as the source types them."""
    rows = [{"url": "https://a.example/1.jpg", "punsafe": 0.25, "sha256hash": "ab"}, {"url": "https://a.example/2.jpg", "punsafe": 0.5, "sha256hash": None}]
    path = tmp_path / f"part{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = config(tmp_path, {"shards": [str(path)]})
    [shard] = list_shards(cfg)
    table = pa.Table.from_batches(list(iter_detect_batches(shard, cfg.dataset, ["punsafe", "url", "sha256hash"])))
    assert table.column_names == ["row_index", "sample_id", "url", "caption", "license", "punsafe", "sha256hash"]
    assert table["punsafe"].to_pylist() == [0.25, 0.5] and table.schema.field("punsafe").type == pa.float64()
    with pytest.raises(ShardError, match=r"column\(s\) \['nsfw'\] needed"):
        list(iter_detect_batches(shard, cfg.dataset, ["nsfw"]))
