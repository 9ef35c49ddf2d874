"""Releases of the text formats keep their layout: JSONL lines verbatim, CSV values and header."""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import scan, write_config

from scrutineer.banks import url_md5
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


def test_an_attacker_cannot_single_out_restricted_samples(tmp_path):
    """The attacker holds the original data and the release: they recompute the public reasons
    (duplicates, licences) and subtract them from the removed list, hoping the rest are the
    hash-listed samples. (A diff of original and release finds them all: the card says to withdraw
    the original.)"""
    allowed = ["CC0-1.0", "CC-BY-4.0"]
    rows = [
        {"key": f"sample-{i:04d}", "url": f"http://img.example/{i}.jpg", "caption": f"caption {i}", "license": allowed[i % 2]}
        for i in range(16)
    ]
    rows[3]["url"] = "HTTP://IMG.EXAMPLE/1.jpg"  # URL duplicate of row 1
    rows[6]["caption"] = "Caption  4"  # caption duplicate of row 4
    rows[9]["license"] = rows[12]["license"] = "CC-BY-NC-4.0"  # not allowed
    listed = [2, 5, 8, 11, 14]  # URLs on the hash list; row 14 is also a caption duplicate of row 0
    rows[14]["caption"] = "CAPTION 0"
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "part-0.parquet")
    (tmp_path / "urls.txt").write_text("".join(url_md5(rows[i]["url"]) + "\n" for i in listed))
    config = write_config(
        tmp_path,
        {
            "dataset": {"name": "d", "shards": ["data/part-0.parquet"]},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}, "dedup": {}, "license_gaps": {"allow": allowed}},
            "release": {"variants": {"v": {"remove": ["hash_match", "duplicate", "license.disallowed"]}}},
        },
    )
    assert scan(config)["status"] == "completed"
    release = build_release(load_config(config), "v")
    restricted = {rows[i]["key"] for i in listed}

    df = pd.DataFrame(rows)
    url_dup = df.url.str.lower().duplicated()
    caption_dup = df.caption.str.lower().str.split().str.join(" ").duplicated()
    public = set(df.key[url_dup | caption_dup | ~df.license.isin(allowed)])
    removed = set(pq.read_table(release / "removed.parquet")["sample_id"].to_pylist())
    assert not (removed - public) & restricted
    assert removed == public - restricted == {"sample-0003", "sample-0006", "sample-0009", "sample-0012"}

    for path in release.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("latin-1")
            if path.suffix == ".parquet":
                text += json.dumps(pq.read_table(path).to_pylist())
            assert not [r for r in restricted | {rows[i]["url"] for i in listed} if r in text], path
    out = pq.read_table(release / "data" / "part-0.parquet")["key"].to_pylist()
    assert out == [r["key"] for r in rows if r["key"] not in public | restricted]
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["removed"] | {"file": None} == {
        "rows": 9, "listed": 4, "restricted": 5, "by_policy_entry": {"hash_match": 5, "duplicate": 3, "license.disallowed": 2}, "file": None
    }
    assert "withdraw" in (release / "README.md").read_text()


#: Read with QUOTE_NONE, a line is a row and `"` a plain character; empty lines (ended by \n,
#: \r\n or \r) are not rows, and the header is the first non-empty line.
HEADERLESS_TSV = [
    b'a "quoted" cat\thttp://a.example/0.jpg\n',
    b"a dog\thttp://a.example/1.jpg\r\n",
    b"\n",
    b'A "quoted"  cat\thttp://a.example/2.jpg\n',  # caption duplicate of row 0
    b'say "hi\thttp://a.example/3.jpg\r',
    b"\r\n",
    b"a bird\thttp://a.example/1.jpg",  # URL duplicate of row 1, no final newline
]
QUOTELESS_CSV = [
    b"\n",
    b"caption,url\n",
    b'he said "no",http://b.example/0.jpg\n',
    b'"open quote,http://b.example/1.jpg\n',
    b"\n",
    b'He said "no",http://b.example/2.jpg\n',  # caption duplicate of row 0
    b"plain,http://b.example/3.jpg\n",
]


@pytest.mark.parametrize(
    ("file", "lines", "dialect", "kept", "rows"),
    [
        ("cc.tsv", HEADERLESS_TSV, {"names": ["caption", "url"]}, [0, 1, 2, 4, 5], {"input": 5, "output": 3}),
        ("q.csv", QUOTELESS_CSV, {"quoting": False}, [0, 1, 2, 3, 4, 6], {"input": 4, "output": 3}),
    ],
    ids=["headerless-tsv", "csv-quoting-false"],
)
def test_unquoted_releases_are_the_kept_lines_verbatim(tmp_path, file, lines, dialect, kept, rows):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / file).write_bytes(b"".join(lines))
    config = write_config(
        tmp_path,
        {
            "dataset": {"name": "d", "shards": [f"data/{file}"], **dialect},
            "detectors": {"dedup": {}},
            "release": {"variants": {"v": {"remove": ["duplicate"]}}},
        },
    )
    assert scan(config)["status"] == "completed"
    release = build_release(load_config(config), "v")
    assert (release / "data" / file).read_bytes() == b"".join(lines[i] for i in kept)
    assert json.loads((release / "manifest.json").read_text())["rows"] == rows
