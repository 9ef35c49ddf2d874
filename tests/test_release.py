"""Releases of the text formats keep their layout: JSONL lines verbatim, CSV values and header."""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import scan, write_config

from scrutineer.config import ReleaseConfig, load_config
from scrutineer.errors import ConfigError
from scrutineer.release import ReleaseError, build_release

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


def test_a_release_never_leaves_the_releases_directory(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("not yours")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    escape = "../../../../victim"  # RE-d-<escape> under <workspace>/releases is tmp_path/victim
    dataset = {"name": "d", "shards": ["data/a.jsonl"]}
    bad = write_config(tmp_path / "bad", {"dataset": {**dataset, "shards": [str(tmp_path / "data" / "a.jsonl")]}, "detectors": {"dedup": {}},
                                          "release": {"variants": {escape: {"remove": ["duplicate"]}}}})
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "release.variants" in str(e.value) and escape in str(e.value)

    # A config built without validation cannot reach outside <workspace>/releases either.
    config = write_config(tmp_path, {"dataset": dataset, "detectors": {"dedup": {}}, "release": {"variants": {"v": {"remove": ["duplicate"]}}}})
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    forged = cfg.model_copy(update={"release": ReleaseConfig.model_construct(variants={escape: cfg.release.variants["v"]})})
    with pytest.raises(ReleaseError, match="outside"):
        build_release(forged, escape)
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]
    assert build_release(cfg, "v") == cfg.workspace / "releases" / "RE-d-v"
