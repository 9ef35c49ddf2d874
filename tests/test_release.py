"""Releases: the text formats keep their layout (JSONL lines verbatim, CSV values and header), and a
release does not let whoever holds the original single out its restricted rows (issue 23)."""

import json
import re

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import scan, write_config
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core.banks import url_md5
from scrutineer.core.config import Config, ReleaseConfig, load_config
from scrutineer.core.errors import ConfigError, ReleaseError
from scrutineer.core.policy import matches
from scrutineer.flows.scan import run_scan
from scrutineer.release.build import build_release
from scrutineer.samples.canonical_url import canonical_url
from scrutineer.samples.licenses import to_spdx
from scrutineer.testing import demo

runner = CliRunner()

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


ALLOWED = ["CC0-1.0", "CC-BY-4.0"]


@pytest.fixture(scope="module")
def hash_listed(tmp_path_factory):
    """16 rows, 5 of them on a URL hash list (one of those, row 14, also a caption duplicate),
    3 public duplicates and 2 disallowed licences, scanned once; variant ``v`` removes them all."""
    root = tmp_path_factory.mktemp("hash-listed")
    rows = [
        {"key": f"sample-{i:04d}", "url": f"http://img.example/{i}.jpg", "caption": f"caption {i}", "license": ALLOWED[i % 2]}
        for i in range(16)
    ]
    rows[3]["url"] = "HTTP://IMG.EXAMPLE/1.jpg"  # URL duplicate of row 1
    rows[6]["caption"] = "Caption  4"  # caption duplicate of row 4
    rows[9]["license"] = rows[12]["license"] = "CC-BY-NC-4.0"  # not allowed
    listed = [2, 5, 8, 11, 14]  # URLs on the hash list; row 14 is also a caption duplicate of row 0
    rows[14]["caption"] = "CAPTION 0"
    (root / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "part-0.parquet")
    (root / "urls.txt").write_text("".join(url_md5(rows[i]["url"]) + "\n" for i in listed))
    config = write_config(
        root,
        {
            "dataset": {"name": "d", "shards": ["data/part-0.parquet"]},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}, "dedup": {}, "license_gaps": {"allow": ALLOWED}},
            "release": {"variants": {"v": {"remove": ["hash_match", "duplicate", "license.disallowed"]}}},
        },
    )
    assert scan(config)["status"] == "completed"
    df = pd.DataFrame(rows)
    url_dup = df.url.str.lower().duplicated()
    caption_dup = df.caption.str.lower().str.split().str.join(" ").duplicated()
    public = set(df.key[url_dup | caption_dup | ~df.license.isin(ALLOWED)])  # what anyone holding the rows recomputes
    return {"cfg": load_config(config), "rows": rows, "restricted": {rows[i]["key"] for i in listed},
            "restricted_urls": {rows[i]["url"] for i in listed}, "public": public}


def with_variant(cfg: Config, **settings) -> Config:
    """``cfg`` with variant ``v``'s ``settings`` changed, as a config edited in Python."""
    variants = {**cfg.release.variants, "v": cfg.release.variants["v"].model_copy(update=settings)}
    return cfg.model_copy(update={"release": cfg.release.model_copy(update={"variants": variants})})


def test_a_release_lists_no_removals_by_default(hash_listed):
    """Issue 23, fault 6: removed.parquet listed every removal with no restricted finding, so
    original minus release minus that list was exactly the hash-listed rows."""
    release = build_release(with_variant(hash_listed["cfg"], acknowledge_restricted_share=1.0), "v")
    assert not (release / "removed.parquet").exists()
    manifest = json.loads((release / "manifest.json").read_text())
    assert manifest["removed"]["listed"] == 0 and manifest["removed"]["file"] is None
    assert "Removed rows are counted, never listed." in " ".join((release / "README.md").read_text().split())
    # no file of the release names a restricted sample or its URL
    for path in release.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("latin-1")
            if path.suffix == ".parquet":
                text += json.dumps(pq.read_table(path).to_pylist())
            assert not [r for r in hash_listed["restricted"] | hash_listed["restricted_urls"] if r in text], path
    rows = hash_listed["rows"]
    out = pq.read_table(release / "data" / "part-0.parquet")["key"].to_pylist()
    assert out == [r["key"] for r in rows if r["key"] not in hash_listed["public"] | hash_listed["restricted"]]


def test_an_opted_in_list_holds_only_what_anyone_can_recompute(hash_listed):
    """`list_removed` lists the removals a recomputable reason explains, the restricted row among
    them too (row 14, a caption duplicate): leaving it out would single it out as the one
    recomputed duplicate missing from the list."""
    release = build_release(with_variant(hash_listed["cfg"], list_removed=True, acknowledge_restricted_share=1.0), "v")
    listed = set(pq.read_table(release / "removed.parquet")["sample_id"].to_pylist())
    assert listed == hash_listed["public"] == {"sample-0003", "sample-0006", "sample-0009", "sample-0012", "sample-0014"}
    assert json.loads((release / "manifest.json").read_text())["removed"]["listed"] == 5


def test_the_manifest_and_card_give_the_anonymity_set_of_the_restricted_rows(hash_listed):
    release = build_release(with_variant(hash_listed["cfg"], acknowledge_restricted_share=1.0), "v")
    manifest = json.loads((release / "manifest.json").read_text())
    # 4 of the 5 hash-listed rows are removed for no other reason: nothing hides them
    assert manifest["removed"] == {
        "rows": 9, "listed": 0, "restricted": 5, "recomputable": 5,
        "by_policy_entry": {"hash_match": 5, "duplicate": 3, "license.disallowed": 2},
        "anonymity_set": {"rows": 4, "restricted": 4, "restricted_share": 1.0}, "file": None,
    }
    assert manifest["policy"]["max_restricted_share"] == 0.1 and manifest["policy"]["acknowledge_restricted_share"] == 1.0
    card = " ".join((release / "README.md").read_text().split())
    for line in [
        "Of the 9 removed rows, 5 are removed for a reason anyone holding the original can recompute from it",
        "The other 4, removed only for reasons an outsider cannot recompute (dead links, crowd decisions, hash-list matches), "
        "are the anonymity set of the restricted rows: 4 of them are restricted (100%).",
        "this variant acknowledges up to 1.0 (`acknowledge_restricted_share` in its config)",
        "## The original must be withdrawn",
    ]:
        assert line in card


def test_a_release_whose_restricted_rows_are_too_large_a_share_refuses_unless_acknowledged(hash_listed):
    cfg = hash_listed["cfg"]
    manifest = cfg.workspace / "releases" / "RE-d-v" / "manifest.json"
    before = manifest.read_bytes() if manifest.exists() else None  # an earlier test's release, or none
    with pytest.raises(ReleaseError) as refused:
        build_release(cfg, "v")
    assert str(refused.value) == (
        "release v refused: 4 of the 4 removed rows no recomputable reason explains are restricted (100%), more than "
        "release.max_restricted_share (0.1): whoever holds the original narrows them down to 4 rows. "
        "Set release.variants.v.acknowledge_restricted_share: 1.0 to release anyway"
    )
    assert (manifest.read_bytes() if manifest.exists() else None) == before  # nothing written
    with pytest.raises(ReleaseError, match=r"more than release.max_restricted_share \(0.1\) and "
                                           r"release.variants.v.acknowledge_restricted_share \(0.5\):"):
        build_release(with_variant(cfg, acknowledge_restricted_share=0.5), "v")
    assert build_release(with_variant(cfg, acknowledge_restricted_share=1.0), "v") == manifest.parent
    # a looser limit for every variant releases it too
    looser = cfg.model_copy(update={"release": cfg.release.model_copy(update={"max_restricted_share": 1.0})})
    assert build_release(looser, "v") == manifest.parent


def test_the_limit_and_the_acknowledgement_are_shares(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    release = {"max_restricted_share": 1.5, "variants": {"v": {"remove": ["duplicate"], "acknowledge_restricted_share": 0}}}
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"dedup": {}}, "release": release})
    with pytest.raises(ConfigError) as e:
        load_config(config)
    assert "release.variants.v.acknowledge_restricted_share: Input should be greater than 0" in str(e.value)
    assert "release.max_restricted_share: Input should be less than or equal to 1" in str(e.value)


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory):
    """The bundled demo as `scrutineer demo` leaves it: scanned (fetching from the fixture web),
    then re-matched with the pHash list that arrives later."""
    root = tmp_path_factory.mktemp("demo")
    with demo.web() as server:
        config = demo.build_demo(root, server)
        assert scan(config)["status"] == "completed"
    demo.add_later_bank(config)
    assert run_scan(load_config(config), "rematch")["status"] == "completed"
    return config


def test_the_demo_release_gives_its_anonymity_set_and_refuses_without_its_acknowledgement(demo_workspace):
    """Acceptance 5 of issue 23."""
    cfg = load_config(demo_workspace)
    for variant in cfg.release.variants:
        result = runner.invoke(app, ["release", str(demo_workspace), "--variant", variant])
        assert result.exit_code == 0, result.output
        release = cfg.workspace / "releases" / f"RE-demo-laion-{variant}"
        hidden = json.loads((release / "manifest.json").read_text())["removed"]["anonymity_set"]
        assert hidden["restricted"] > cfg.release.max_restricted_share * hidden["rows"] > 0  # over the limit: acknowledged
        card = " ".join((release / "README.md").read_text().split())
        assert f"The other {hidden['rows']}, removed only for reasons an outsider cannot recompute" in card
        assert f"{hidden['restricted']} of them are restricted ({hidden['restricted_share']:.0%})" in card
        assert "## The original must be withdrawn" in card
        assert f"restricted: {hidden['restricted']} of the {hidden['rows']} removals no recomputable reason explains" in result.output

    unacknowledged = yaml.safe_load(demo_workspace.read_text())
    for variant in unacknowledged["release"]["variants"].values():
        del variant["acknowledge_restricted_share"]
    config = demo_workspace.with_name("unacknowledged.yaml")
    config.write_text(yaml.safe_dump(unacknowledged))
    manifest = (cfg.workspace / "releases" / "RE-demo-laion-research" / "manifest.json").read_bytes()
    result = runner.invoke(app, ["release", str(config), "--variant", "research"])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert re.fullmatch(r"error: release research refused: (\d+) of the (\d+) removed rows no recomputable reason explains are "
                        r"restricted \(\d+%\), more than release.max_restricted_share \(0.1\): .* "
                        r"Set release.variants.research.acknowledge_restricted_share: 0.\d+ to release anyway", line), line
    assert (cfg.workspace / "releases" / "RE-demo-laion-research" / "manifest.json").read_bytes() == manifest  # nothing written


def recomputed(original: pd.DataFrame, manifest: dict) -> set[str]:
    """The removals an outsider recomputes from the original's rows alone, for the policy entries
    and detector parameters the manifest publishes: exact URL duplicates (the canonical URL),
    exact caption duplicates (case and whitespace folded), the first of each kept, and licences
    outside the allow-list."""
    remove = manifest["policy"]["remove"]
    ids = original.SAMPLE_ID
    out = set()
    if any(matches(p, "duplicate.url") for p in remove):
        canon = original.URL.map(canonical_url)
        out |= set(ids[canon.duplicated() & canon.notna()])
    if any(matches(p, "duplicate.caption") for p in remove):
        caption = original.TEXT.str.lower().str.split().str.join(" ")
        out |= set(ids[caption.duplicated() & (caption != "")])
    if any(matches(p, "license.disallowed") for p in remove):
        allow = manifest["detectors"]["license_gaps"]["params"]["allow"]
        spdx = original.LICENSE.map(to_spdx, na_action="ignore")
        out |= set(ids[spdx.notna() & ~spdx.isin(allow)])
    return out


@pytest.mark.parametrize("variant", ["research", "research-safe"])
def test_the_subtraction_attack_narrows_the_restricted_rows_no_further_than_the_manifest_says(demo_workspace, variant):
    """The attacker holds the original: original minus release is every removed row; minus what
    the release lists, minus what they recompute themselves, leaves the anonymity set, of which
    the manifest says how many are restricted. (On the parent commit the set was the restricted
    rows alone.)"""
    cfg = load_config(demo_workspace)
    release = build_release(cfg, variant)
    manifest = json.loads((release / "manifest.json").read_text())
    original = pa.concat_tables([pq.read_table(p) for p in sorted((demo_workspace.parent / "data").glob("*.parquet"))]).to_pandas()
    published = pa.concat_tables([pq.read_table(p) for p in sorted((release / "data").glob("*.parquet"))]).to_pandas()
    removed = set(original.SAMPLE_ID) - set(published.SAMPLE_ID)
    listed = set(pq.read_table(release / "removed.parquet")["sample_id"].to_pylist())
    public = recomputed(original, manifest)
    left = removed - listed - public

    con = duckdb.connect(str(cfg.workspace / "scrutineer.duckdb"), read_only=True)
    restricted = {s for (s,) in con.sql("SELECT DISTINCT sample_id FROM findings WHERE run_id = ? AND restricted",
                                        params=[manifest["run_ids"][0]]).fetchall()}
    con.close()
    assert restricted <= removed and len(restricted) == manifest["removed"]["restricted"]
    assert listed == public  # the list tells the attacker nothing they could not compute
    hidden = manifest["removed"]["anonymity_set"]
    assert len(left) == hidden["rows"] and len(left & restricted) == hidden["restricted"]
    assert restricted - left <= public  # the other restricted rows look like any recomputed removal
    assert len(left) > len(left & restricted)  # not singled out: the set holds unrestricted rows too


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
