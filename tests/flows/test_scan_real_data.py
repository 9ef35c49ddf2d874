"""End to end on the real samples: LAION-400M (two parquet shards), CC3M (headerless TSV) and COCO
captions JSON — scan, release and takedown, checked against independent pandas computations."""

import csv
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import scan, write_config
from huggingface_hub import DatasetCard
from test_near_captions import judge

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.core.errors import ConfigError, ReleaseError
from scrutineer.core.files import file_sha256
from scrutineer.release.build import build_release
from scrutineer.reports.takedown import write_takedown
from scrutineer.samples.canonical_url import canonical_url
from scrutineer.samples.licenses import to_spdx

LAION = ["laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet"]


def pandas_duplicates(df: pd.DataFrame, url: str, caption: str) -> tuple[set, set]:
    """(shard, row) of exact URL and caption duplicates, first occurrence kept; ``df`` in
    (shard, row) order. Same definitions as detectors/dedup.py, computed with pandas."""
    canon = df[url].map(canonical_url)  # the definition, row by row (w3lib inside)
    cap = df[caption].str.lower().str.replace(r"\s+", " ", regex=True).str.strip(" ")
    cap = cap.where(cap != "")
    key = list(zip(df["shard"], df["row"]))
    dup_url = {k for k, d, v in zip(key, canon.duplicated(keep="first"), canon.notna()) if d and v}
    dup_cap = {k for k, d, v in zip(key, cap.duplicated(keep="first"), cap.notna()) if d and v}
    return dup_url, dup_cap


def flagged(con, run_id, reason) -> set:
    return set(con.sql("SELECT shard_id, row_index FROM findings WHERE run_id = ? AND reason = ?", params=[run_id, reason]).fetchall())


@pytest.fixture(scope="module")
def laion(tmp_path_factory, test_data):
    root = tmp_path_factory.mktemp("laion")
    frames = [pq.read_table(test_data / "metadata" / n).to_pandas().assign(shard=n, row=lambda d: range(len(d))) for n in LAION]
    df = pd.concat(frames, ignore_index=True)
    # A hash list built from URLs of both shards; two entries are hashed from a spelling that
    # differs only in scheme/host case, which HMA's url_md5 normalises away.
    picked = [df.URL[7], df.URL[420], df.URL[1500], df.URL[4321]]
    spelled = [picked[0], picked[1].replace("http", "HTTP", 1), picked[2], picked[3].upper()[:8] + picked[3][8:]]
    (root / "urls.txt").write_text("# test list\n" + "\n".join(url_md5(u) for u in spelled) + "\n")
    config = write_config(
        root,
        {
            "dataset": {"name": "laion400m-sample", "shards": [str(test_data / "metadata" / n) for n in LAION], "format": "parquet", "columns": {"url": "URL", "caption": "TEXT"}},
            "banks": [{"name": "watchlist", "path": "urls.txt", "signal_type": "url_md5", "source": "Example Hotline", "version": "2026-11"}],
            "detectors": {"url_hashlist": {}, "license_gaps": {"allow": ["CC0-1.0", "CC-BY-4.0"]}, "dedup": {"on": ["url", "caption"]}},
            # the 4 hash-listed rows are the only removals no one can recompute
            "release": {"variants": {"research": {"remove": ["hash_match", "duplicate.url"], "list_removed": True, "acknowledge_restricted_share": 1.0}}},
        },
    )
    summary = scan(config)
    cfg = load_config(config)
    release = build_release(cfg, "research")
    takedown = write_takedown(cfg)
    return {"cfg": cfg, "df": df, "summary": summary, "release": release, "takedown": takedown, "picked": picked}


def test_laion_scan_completes_with_two_shards(laion):
    s = laion["summary"]
    assert s["status"] == "completed"
    assert [(x["shard_id"], x["rows"]) for x in s["shards"]] == [(LAION[0], 1000), (LAION[1], 4000)]
    assert s["findings"]["license.missing"] == 5000  # LAION-400M has no licence column


def test_laion_duplicates_match_pandas(laion):
    dup_url, dup_cap = pandas_duplicates(laion["df"], "URL", "TEXT")
    con = duckdb.connect(str(laion["cfg"].workspace / "scrutineer.duckdb"), read_only=True)
    run_id = laion["summary"]["run_id"]
    assert flagged(con, run_id, "duplicate.url") == dup_url
    assert flagged(con, run_id, "duplicate.caption") == dup_cap
    assert len(dup_cap) > 0
    # the evidence names the kept sample: the first row with the same caption
    shard, row, evidence = con.sql(
        "SELECT shard_id, row_index, evidence FROM findings WHERE run_id = ? AND reason = 'duplicate.caption' ORDER BY shard_id DESC, row_index LIMIT 1",
        params=[run_id],
    ).fetchall()[0]
    kept = json.loads(evidence)
    df = laion["df"].set_index(["shard", "row"])
    norm = lambda t: " ".join(t.lower().split())  # noqa: E731
    assert norm(df.TEXT[(kept["kept_shard_id"], kept["kept_row_index"])]) == norm(df.TEXT[(shard, row)])
    assert (kept["kept_shard_id"], kept["kept_row_index"]) < (shard, row)


def test_url_bank_matches_exactly_the_listed_rows(laion):
    df = laion["df"]
    listed = {url_md5(u) for u in laion["picked"]}
    expected = {(s, r) for s, r, u in zip(df.shard, df.row, df.URL) if url_md5(u) in listed}
    con = duckdb.connect(str(laion["cfg"].workspace / "scrutineer.duckdb"), read_only=True)
    assert flagged(con, laion["summary"]["run_id"], "hash_match.url") == expected
    assert len(expected) >= 4


def test_no_listed_url_appears_in_the_release(laion):
    release: Path = laion["release"]
    for path in release.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for url in laion["picked"]:
                assert url.encode() not in data, path
    urls = set(pq.read_table(release / "data" / LAION[0])["URL"].to_pylist()) | set(pq.read_table(release / "data" / LAION[1])["URL"].to_pylist())
    assert not urls & set(laion["picked"])


def test_release_invariants(laion, test_data):
    release: Path = laion["release"]
    manifest = json.loads((release / "manifest.json").read_text())
    removed = pq.read_table(release / "removed.parquet")
    assert removed.column_names == ["sample_id", "shard_id", "row_index"]
    df = laion["df"]
    listed = {url_md5(u) for u in laion["picked"]}
    restricted = {(s, r) for s, r, u in zip(df.shard, df.row, df.URL) if url_md5(u) in listed}  # removed, listed only if a URL duplicate
    kept_ids, input_ids = set(), set()
    for entry in manifest["shards"]:
        src = test_data / "metadata" / entry["shard_id"]
        out = release / entry["output"]["path"]
        assert file_sha256(src) == entry["input"]["sha256"]
        assert file_sha256(out) == entry["output"]["sha256"]
        a, b = pq.read_table(src), pq.read_table(out)
        assert a.schema.equals(b.schema, check_metadata=True)  # names, types, order, pandas metadata
        gone = set(removed.filter(pc.equal(removed["shard_id"], entry["shard_id"]))["row_index"].to_pylist())
        gone |= {r for s, r in restricted if s == entry["shard_id"]}
        assert b.num_rows == a.num_rows - len(gone) == entry["output"]["rows"]
        keep = sorted(set(range(a.num_rows)) - gone)
        assert b.equals(a.take(keep))  # order kept
        input_ids |= {f"{entry['shard_id']}:{i}" for i in range(a.num_rows)}
        kept_ids |= {f"{entry['shard_id']}:{i}" for i in keep}
    removed_ids = set(removed["sample_id"].to_pylist()) | {f"{s}:{r}" for s, r in restricted}
    assert removed_ids | kept_ids == input_ids and not removed_ids & kept_ids
    assert manifest["removed"]["restricted"] == len(restricted) and manifest["removed"]["listed"] == removed.num_rows
    assert file_sha256(release / "removed.parquet") == manifest["removed"]["file"]["sha256"]
    assert manifest["banks"][0]["entries"] == 4 and "urls.txt" not in json.dumps(manifest)
    assert manifest["policy"] == {"remove": ["hash_match", "duplicate.url"], "keep_restricted": False, "list_removed": True,
                                  "acknowledge_restricted_share": 1.0, "max_restricted_share": 0.1}


def test_release_card_is_a_hub_dataset_card(laion):
    manifest = json.loads((laion["release"] / "manifest.json").read_text())
    card = DatasetCard.load(laion["release"] / "README.md")
    assert card.data.to_dict() == {
        "pretty_name": "RE-laion400m-sample-research",
        "tags": ["scrutineer", "filtered"],
        "configs": [{"config_name": "default", "data_files": "data/**"}],
    }
    removed = manifest["removed"]
    text = " ".join(card.text.split())
    for line in [
        f"from scan `{manifest['run_ids'][0]}`, variant `research`",
        f"- `hash_match`: {removed['by_policy_entry']['hash_match']} rows",
        f"- `duplicate.url`: {removed['by_policy_entry']['duplicate.url']} rows",
        f"Rows in: 5000. Rows removed: {removed['rows']} ({removed['listed']} listed, {removed['restricted']} restricted).",
        f"Rows out: {5000 - removed['rows']}.",
        "- `url_hashlist` version 2",
        f"- `watchlist` from Example Hotline, version 2026-11, 4 entries, file sha256 `{manifest['banks'][0]['sha256']}`",
        "The original must be withdrawn",
        "as LAION withdrew LAION-5B (December 2023) before publishing Re-LAION-5B (August 2024)",
    ]:
        assert line in text
    assert "keep_restricted" not in text


def test_takedown_grouped_by_registrable_domain(laion):
    csv_path, json_path, n = laion["takedown"]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n >= 4
    assert set(r["url"] for r in rows) == set(laion["picked"])
    assert [r["registrable_domain"] for r in rows] == sorted(r["registrable_domain"] for r in rows)
    assert all(r["bank"] == "watchlist" and r["bank_version"] == "2026-11" for r in rows)
    doc = json.loads(json_path.read_text())
    assert sum(len(h["items"]) for d in doc["domains"] for h in d["hosts"]) == n
    for r in rows:
        assert r["host"] and r["host"].endswith(r["registrable_domain"])


def test_cc3m_tsv_scan_and_byte_faithful_release(tmp_path, test_data):
    path = test_data / "metadata" / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv"
    config = write_config(
        tmp_path,
        {
            "dataset": {"name": "cc3m", "shards": [str(path)], "names": ["caption", "url"]},
            "detectors": {"license_gaps": {}, "dedup": {}},
            "release": {"variants": {"dedup": {"remove": ["duplicate"], "list_removed": True}}},
        },
    )
    summary = scan(config)
    assert summary["status"] == "completed"
    df = pd.read_csv(path, sep="\t", header=None, names=["caption", "url"], quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
    df = df.assign(shard=path.name, row=range(len(df)))
    dup_url, dup_cap = pandas_duplicates(df, "url", "caption")
    cfg = load_config(config)
    con = duckdb.connect(str(cfg.workspace / "scrutineer.duckdb"))
    assert flagged(con, summary["run_id"], "duplicate.url") == dup_url
    assert flagged(con, summary["run_id"], "duplicate.caption") == dup_cap
    assert summary["findings"]["license.missing"] == 7917
    con.close()
    release = build_release(cfg, "dedup")
    removed = set(pq.read_table(release / "removed.parquet")["row_index"].to_pylist())
    assert removed == {r for _, r in dup_url | dup_cap}
    lines = path.read_bytes().splitlines(keepends=True)
    assert (release / "data" / path.name).read_bytes() == b"".join(line for i, line in enumerate(lines) if i not in removed)
    csv_path, _, n = write_takedown(cfg)  # no hash list configured: an empty, well-formed manifest
    assert n == 0 and csv_path.read_text().startswith("registrable_domain,host,url,")


def test_coco_licence_findings_match_the_json(tmp_path, test_data):
    path = test_data / "metadata" / "coco_captions_val2017_images0-2499.json"
    doc = json.loads(path.read_text())
    config = write_config(
        tmp_path,
        {
            "dataset": {"name": "coco", "shards": [str(path)]},
            "detectors": {"license_gaps": {"allow": ["CC-BY-2.0"]}, "dedup": {"on": ["url"]}},
            "release": {"variants": {"allowed": {"remove": ["license"]}}},
        },
    )
    summary = scan(config)
    # captions per licence id, from the JSON itself
    image_licence = {img["id"]: img["license"] for img in doc["images"]}
    licences = {lic["id"]: lic for lic in doc["licenses"]}
    per_id = pd.Series([image_licence[a["image_id"]] for a in doc["annotations"]]).value_counts().to_dict()
    cfg = load_config(config)
    con = duckdb.connect(str(cfg.workspace / "scrutineer.duckdb"))
    got = dict(
        con.sql(
            "SELECT evidence->>'license', count(*) FROM findings WHERE run_id = ? AND reason IN ('license.disallowed', 'license.unknown') "
            "GROUP BY 1",
            params=[summary["run_id"]],
        ).fetchall()
    )
    con.close()
    allowed = [i for i, lic in licences.items() if lic["url"] == "http://creativecommons.org/licenses/by/2.0/"]
    expected = {licences[i]["url"]: n for i, n in per_id.items() if i not in allowed}
    assert got == expected
    # ids 7 ("No known copyright restrictions") and 8 (US Government Work) have no SPDX id
    assert summary["findings"]["license.unknown"] == per_id.get(7, 0) + per_id.get(8, 0)
    assert summary["findings"]["license.disallowed"] == sum(n for i, n in per_id.items() if i not in (*allowed, 7, 8))
    # five captions per image share the image URL: four are URL duplicates
    assert summary["findings"]["duplicate.url"] == len(doc["annotations"]) - len({a["image_id"] for a in doc["annotations"]})
    release = build_release(cfg, "allowed")
    out = json.loads((release / "data" / path.name).read_text())
    assert all(image_licence[a["image_id"]] in allowed for a in out["annotations"])
    assert {img["id"] for img in out["images"]} == {a["image_id"] for a in out["annotations"]}
    assert len(out["annotations"]) == per_id[allowed[0]]
    _, json_path, n = write_takedown(cfg)
    assert n == 0 and json.loads(json_path.read_text())["domains"] == []


def test_coco_licence_policies_as_release_variants(tmp_path, test_data):
    """Issue 13, acceptance 3: COCO's licence URLs map to SPDX ids; a commercial release drops
    exactly the NonCommercial, NoDerivatives and unknown-licence rows; research (which allows NC)
    keeps a superset of it; a config that declares the wrong way round is refused."""
    path = test_data / "metadata" / "coco_captions_val2017_images0-2499.json"
    doc = json.loads(path.read_text())
    unusable = ["license.unknown", "license.missing"]
    variants = {
        "research": {"remove": ["license.nd", *unusable]},
        "commercial": {"remove": ["license.nc", "license.nd", *unusable], "stricter_than": "research"},
    }
    detectors = {"license_gaps": {"conditions": ["NC", "ND"]}}
    config = write_config(tmp_path, {"dataset": {"name": "coco", "shards": [str(path)]}, "detectors": detectors,
                                     "release": {"variants": variants}})
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    licence = {lic["id"]: lic["url"] for lic in doc["licenses"]}
    assert {i: to_spdx(url) for i, url in licence.items()} == {
        1: "CC-BY-NC-SA-2.0", 2: "CC-BY-NC-2.0", 3: "CC-BY-NC-ND-2.0", 4: "CC-BY-2.0", 5: "CC-BY-SA-2.0", 6: "CC-BY-ND-2.0",
        7: None, 8: None,  # "No known copyright restrictions" (Flickr Commons), "United States Government Work": no SPDX id
    }
    image_licence = {img["id"]: img["license"] for img in doc["images"]}

    def kept(variant: str) -> list[dict]:
        return json.loads((build_release(cfg, variant) / "data" / path.name).read_text())["annotations"]

    commercial, research = kept("commercial"), kept("research")
    # commercial keeps BY and BY-SA (ids 4, 5) only; research keeps NC too (1, 2), never ND (3, 6) or unknown (7, 8)
    assert len(commercial) == sum(image_licence[a["image_id"]] in (4, 5) for a in doc["annotations"])
    assert len(research) == sum(image_licence[a["image_id"]] in (1, 2, 4, 5) for a in doc["annotations"])
    assert {a["id"] for a in commercial} < {a["id"] for a in research}
    wrong = {**variants, "research": {**variants["research"], "stricter_than": "commercial"}}
    with pytest.raises(ConfigError, match=r"research is declared stricter_than commercial, but keeps rows that commercial removes, for reasons \['license.nc'\]"):
        load_config(write_config(tmp_path / "wrong", {"dataset": {"name": "coco", "shards": [str(path)]},
                                                       "detectors": detectors, "release": {"variants": wrong}}))
    # the same check on the rows, for a config edited in Python past load_config's check
    edited = cfg.release.model_copy(update={"variants": {**cfg.release.variants, "research": cfg.release.variants["research"].model_copy(
        update={"stricter_than": "commercial"})}})
    with pytest.raises(ReleaseError, match=r"would keep \d+ rows that commercial removes \(reasons \['license.nc'\]\)"):
        build_release(cfg.model_copy(update={"release": edited}), "research")


def test_near_captions_across_shards_as_in_one(tmp_path, test_data):
    """CC3M's captions cut into two shards: the scan groups near captions across them in the
    store, and flags exactly what the detector flags on all of them as one shard."""
    lines = (test_data / "metadata" / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv").read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    for name, part in (("a.tsv", lines[:half]), ("b.tsv", lines[half:])):
        (tmp_path / name).write_bytes(b"".join(part))
    config = write_config(tmp_path, {
        "dataset": {"name": "cc3m-near", "shards": ["a.tsv", "b.tsv"], "names": ["caption", "url"]},
        "detectors": {"dedup": {"on": ["caption", "near_caption"]}},
    })
    summary = scan(config)
    assert summary["status"] == "completed"
    con = duckdb.connect(str(load_config(config).workspace / "scrutineer.duckdb"), read_only=True)
    found = con.execute("SELECT shard_id, row_index, evidence FROM findings WHERE reason = 'duplicate.near_caption'").fetchall()
    con.close()
    position = {"a.tsv": 0, "b.tsv": half}
    captions = [line.decode().split("\t")[0] for line in lines]
    expected = judge(captions)["duplicate.near_caption"]
    assert {position[s] + r for s, r, _ in found} == set(expected)
    across = [json.loads(e) for s, _, e in found if s == "b.tsv" and json.loads(e)["near_shard_id"] == "a.tsv"]
    assert across  # some copies in the second shard are linked to captions in the first
