"""Releases of the text formats keep their layout: JSONL lines verbatim, CSV values and header."""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import scan, write_config

from scrutineer.config import load_config
from scrutineer.release import build_release

ROWS = [
    {"key": "k0", "url": "http://a.example/0.jpg", "caption": "a cat", "license": "CC0-1.0"},
    {"key": "k1", "url": "http://a.example/1.jpg", "caption": 'quoted "cat", with comma', "license": "CC BY-NC 2.0"},
    {"key": "k2", "url": "HTTP://A.EXAMPLE/0.jpg", "caption": "a dog", "license": None},
    {"key": "k3", "url": "http://a.example/3.jpg", "caption": "A  Cat", "license": "CC-BY-4.0"},
    {"key": "k4", "url": "http://a.example/4.jpg", "caption": "multi\nline", "license": "?"},
]


def test_jsonl_csv_and_hf_releases(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "a.jsonl", "w") as f:
        for r in ROWS:
            f.write(json.dumps(r) + "\n")
    csv_rows = [{**r, "url": r["url"].replace(".example", ".example.org"), "caption": "csv " + r["caption"]} for r in ROWS]
    pd.DataFrame(csv_rows).to_csv(data / "b.csv", index=False)
    pq.write_table(pa.Table.from_pylist(ROWS), data / "s.parquet")
    config = write_config(
        tmp_path,
        {
            "dataset": {"name": "mixed", "shards": ["data/a.jsonl", "data/b.csv"]},
            "detectors": {"dedup": {}, "license_gaps": {"allow": ["CC0-1.0", "CC-BY-4.0"]}},
            "release": {"variants": {"v": {"remove": ["duplicate", "license.disallowed"]}}},
        },
    )
    summary = scan(config)
    assert summary["status"] == "completed"
    release = build_release(load_config(config), "v")
    # in each shard: k2 duplicates k0's URL, k3 k0's caption, k1's licence is not allowed
    jsonl_out = (release / "data" / "a.jsonl").read_text().splitlines()
    assert jsonl_out == [line for line in (data / "a.jsonl").read_text().splitlines() if json.loads(line)["key"] in ("k0", "k4")]
    csv_out = pd.read_csv(release / "data" / "b.csv", keep_default_na=False)
    assert csv_out.to_dict("records") == pd.read_csv(data / "b.csv", keep_default_na=False).iloc[[0, 4]].to_dict("records")
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["rows"] == {"input": 10, "output": 4}

    hf = write_config(
        tmp_path / "hf",
        {
            "dataset": {"name": "hf", "shards": [str(data / "s.parquet")], "format": "hf"},
            "detectors": {"dedup": {}},
            "release": {"variants": {"v": {"remove": ["duplicate"]}}},
        },
    )
    assert scan(hf)["status"] == "completed"
    out = pq.read_table(build_release(load_config(hf), "v") / "data" / "s.parquet")
    assert out["key"].to_pylist() == ["k0", "k1", "k4"]
    assert out.schema.names == list(ROWS[0])
