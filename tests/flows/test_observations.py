"""Observations apart from judgements: after a content scan, a bank change or ``rematch`` fetches
nothing and reads no shard again, and gives the findings a fresh scan with the final banks gives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest
import yaml
from inotify_simple import INotify, flags
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.observing.hashing import hash_content
from scrutineer.testing.fixture_web import FixtureWeb
from tests.conftest import scan, write_config

HOSTS = ["127.0.0.11", "127.0.0.12"]
IMAGES = ["astronaut.png", "brick.png", "camera.png", "coins.png", "horse.png", "text.png"]


class ShardReads:
    """Every open or read of the watched files by any process (the kernel's inotify)."""

    def __init__(self, paths: list[Path]) -> None:
        self.inotify = INotify()
        for p in paths:
            self.inotify.add_watch(p, flags.OPEN | flags.ACCESS)

    def count(self) -> int:
        return len(self.inotify.read(timeout=0))

    def close(self) -> None:
        self.inotify.close()


def findings(workspace: Path, run_id: str) -> list[tuple]:
    """A run's findings as a fresh scan would compare them: no run ids, no timestamps."""
    con = duckdb.connect(str(workspace / "scrutineer.duckdb"), read_only=True)
    try:
        rows = con.sql(
            "SELECT shard_id, row_index, sample_id, url, detector, reason, evidence FROM findings WHERE run_id = ?",
            params=[run_id],
        ).fetchall()
    finally:
        con.close()
    return sorted((*r[:6], json.dumps({k: v for k, v in json.loads(r[6]).items() if k not in ("rematch", "rematched_at")}, sort_keys=True)) for r in rows)


def latest_finished(workspace: Path) -> str:
    con = duckdb.connect(str(workspace / "scrutineer.duckdb"), read_only=True)
    try:
        return con.sql(
            "SELECT run_id FROM runs WHERE status IN ('completed', 'partial') ORDER BY finished_at DESC LIMIT 1"
        ).fetchall()[0][0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def images(test_data) -> dict[str, bytes]:
    return {name: (test_data / "images" / "skimage" / name).read_bytes() for name in IMAGES}


@pytest.fixture()
def web(test_data):
    with FixtureWeb(HOSTS, images=[test_data / "images" / "skimage"]) as server:
        yield server


def bank(directory: Path, name: str, signal_type: str, hashes: list[str], version: str = "1") -> dict:
    path = directory / f"{name}.txt"
    path.write_text("".join(h + "\n" for h in hashes))
    return {"name": name, "path": str(path), "signal_type": signal_type, "source": "test hotline", "version": version}


def content_config(tmp: Path, web: FixtureWeb, banks: list[dict]) -> Path:
    rows = [{"key": f"k{i}", "url": web.url(f"/img/{name}", host=i % 2)} for i, name in enumerate(IMAGES)]
    rows.append({"key": "gone", "url": web.url("/gone/x.png")})
    shard = tmp / "data" / "part-0.jsonl"
    shard.parent.mkdir(parents=True, exist_ok=True)
    if not shard.exists():
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return write_config(
        tmp,
        {
            "dataset": {"name": "obs", "shards": [str(shard)], "columns": {"sample_id": "key"}},
            "banks": banks,
            "detectors": {"content_hashlist": {}, "dead_links": {}},
            "fetch": {"allow_private_networks": True, "recheck_interval": 0.1, "backoff": 0.05, "breaker": {"failures": 4, "hosts": 2}},
        },
    )


def test_bank_changes_and_rematch_fetch_nothing_and_read_no_shard(tmp_path, web, images):
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir()
    md5_v1 = bank(banks_dir, "md5-list", "md5", [hashlib.md5(images["astronaut.png"]).hexdigest()])
    config = content_config(tmp_path / "scan", web, [md5_v1])
    first = scan(config)
    assert first["status"] == "completed" and first["findings"]["hash_match.md5"] == 1
    assert web.stats()["requests"] > 0
    shard = tmp_path / "scan" / "data" / "part-0.jsonl"
    reads = ShardReads([shard])

    def rescan_with(banks: list[dict]) -> dict:
        cfg = yaml.safe_load(config.read_text())
        cfg["banks"] = banks
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        web.reset()
        summary = scan(config)
        assert summary["status"] == "completed", summary
        assert web.stats()["requests"] == 0, "fetched again"
        assert reads.count() == 0, "read the shard again"
        return summary

    try:
        # an unused bank: no configured detector matches URLs
        unused = bank(banks_dir, "url-list", "url_md5", ["0" * 32])
        rescan_with([md5_v1, unused])
        # a new version of the used bank: the old entry goes, a new one comes
        md5_v2 = bank(banks_dir, "md5-list-v2", "md5", [hashlib.md5(images["coins.png"]).hexdigest()], version="2")
        md5_v2["name"] = "md5-list"
        second = rescan_with([md5_v2, unused])
        matched = [r for r in findings(tmp_path / "scan" / "work", second["run_id"]) if r[5] == "hash_match.md5"]
        assert [(r[2], json.loads(r[6])["bank_version"]) for r in matched] == [("k3", "2")]
        # a bank arriving later, matched by rematch
        phash = bank(banks_dir, "phash-list", "phash", [hash_content(images["camera.png"]).phash])
        cfg = yaml.safe_load(config.read_text())
        cfg["banks"].append(phash)
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        web.reset()
        result = CliRunner().invoke(app, ["rematch", str(config)])
        assert result.exit_code == 0, result.output
        assert web.stats()["requests"] == 0 and reads.count() == 0
    finally:
        reads.close()

    fresh = content_config(tmp_path / "fresh", web, cfg["banks"])
    fresh_findings = findings(tmp_path / "fresh" / "work", scan(fresh)["run_id"])
    assert findings(tmp_path / "scan" / "work", latest_finished(tmp_path / "scan" / "work")) == fresh_findings
    assert {r[5] for r in fresh_findings} >= {"hash_match.md5", "hash_match.phash", "link.dead"}


def test_a_bank_seen_by_an_inconclusive_scan_is_still_matched(tmp_path, web, images):
    """Fault 4: a bank registered by a scan that then ended inconclusive was never matched."""
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir()
    md5 = bank(banks_dir, "md5-list", "md5", [hashlib.md5(images["astronaut.png"]).hexdigest()])
    config = content_config(tmp_path, web, [md5])
    assert scan(config)["status"] == "completed"
    sha1 = bank(banks_dir, "sha1-list", "sha1", [hashlib.sha1(images["brick.png"]).hexdigest()])
    cfg = yaml.safe_load(config.read_text())
    cfg["banks"].append(sha1)
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    web.cut()  # the network goes down before the next scan
    scan(config)
    result = CliRunner().invoke(app, ["rematch", str(config)])
    assert result.exit_code == 0, result.output
    latest = findings(tmp_path / "work", latest_finished(tmp_path / "work"))
    assert ("k1", "hash_match.sha1") in {(r[2], r[5]) for r in latest}


def test_settings_of_a_dedup_kind_not_in_on_judge_nothing_again(tmp_path):
    shard = tmp_path / "part-0.jsonl"
    shard.write_text("".join(json.dumps({"url": f"https://a.example/{i % 3}.jpg", "caption": f"a photo of a cat number {i}"}) + "\n" for i in range(9)))
    dedup = {"on": ["url"], "near_image": {"pdq_threshold": 31}, "near_caption": {"threshold": 0.8}}
    config = {"dataset": {"name": "dedup", "shards": [str(shard)]}, "detectors": {"dedup": dedup}}
    assert [s["status"] for s in scan(write_config(tmp_path, config))["shards"]] == ["observed"]

    dedup |= {"near_image": {"pdq_threshold": 12}, "near_caption": {"threshold": 0.9}}  # neither kind is in on
    assert [s["status"] for s in scan(write_config(tmp_path, config))["shards"]] == ["reused"]

    dedup["on"] = ["url", "near_caption"]  # now the caption threshold counts
    result = scan(write_config(tmp_path, config))
    assert [s["status"] for s in result["shards"]] == ["judged"]
    reasons = [r for (_, _, _, _, _, r, _) in findings(tmp_path / "work", result["run_id"])]
    assert reasons.count("duplicate.url") == 6 and "duplicate.near_caption" in reasons


def test_pacing_options_and_the_default_decode_keep_the_content_observation_and_another_decode_makes_a_new_one(tmp_path, web, images):
    banks_dir = tmp_path / "banks"
    banks_dir.mkdir()
    config = content_config(tmp_path, web, [bank(banks_dir, "md5-list", "md5", [hashlib.md5(images["astronaut.png"]).hexdigest()])])
    assert scan(config)["status"] == "completed"

    def rescan_with(fetch: dict) -> int:
        cfg = yaml.safe_load(config.read_text())
        cfg["fetch"] |= fetch
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        web.reset()
        assert scan(config)["status"] == "completed"
        return web.stats()["requests"]

    # how many processes fetch, and a decode spelled out as the default (luma), observe nothing again
    assert rescan_with({"processes": 1, "concurrency": 8, "decode": "luma"}) == 0
    # another decode may hash otherwise: the URLs are fetched again, and once more for a third
    assert rescan_with({"decode": "full"}) > 0
    assert rescan_with({"decode": "reduced"}) > 0
