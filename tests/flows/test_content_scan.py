"""Fetch, hash and match real images served by the fixture web server, end to end through the
scan flow: content hashes, hash-bank matches, link statuses, hash-and-drop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core import store
from scrutineer.core.config import FetchConfig
from scrutineer.flows import content_workers
from scrutineer.flows.content import check_urls
from scrutineer.matching.codes import hamming
from scrutineer.observing.fetch import Fetcher
from scrutineer.observing.hashing import hash_content
from scrutineer.testing.fixture_web import FixtureWeb
from tests.conftest import (
    hash_after_marking,
    scan,
    url_list_config,
    wait_until,
    write_config,
)

HOSTS = ["127.0.0.5", "127.0.0.6", "127.0.0.7"]
JPEG = "jpeg"  # rocket.jpg, its copies and other photos (tests/data/PROVENANCE.md)
#: PDQ is not invariant to mirroring or rotation (Meta's PDQ docs: match those with the dihedral
#: hashes, fetch.pdq_dihedral). Measured distances to rocket.jpg: hflip 126 bits, rotation (20°)
#: 134 bits.
PDQ_MISSES = {"rocket_hflip.jpg", "rocket_rotation.jpg"}


@pytest.fixture(scope="module")
def images(test_data) -> dict[str, Path]:
    dirs = [test_data / "images" / d for d in ("skimage", JPEG)]
    return {p.name: p for d in dirs for p in sorted(d.iterdir()) if p.suffix in (".png", ".jpg")}


@pytest.fixture(scope="module")
def content_scan(tmp_path_factory, test_data, images):
    tmp = tmp_path_factory.mktemp("content")
    started = time.time()
    with FixtureWeb(HOSTS, images=[test_data / "images" / d for d in ("skimage", JPEG)]) as web:
        rows = [{"key": f"img-{i}", "url": web.url(f"/img/{name}", host=i % 3), "caption": name} for i, name in enumerate(images)]
        rows += [
            {"key": "gone", "url": web.url("/gone/coins.png"), "caption": "gone"},
            {"key": "parked", "url": web.url("/redirect?to=" + web.url("/parking/x", host=1)), "caption": "parked"},
            {"key": "page", "url": web.url("/parking/y", host=2), "caption": "page"},
            {"key": "again", "url": web.url("/img/coins.png", host=1), "caption": "same URL as a row above"},
        ]
        shard = tmp / "data" / "part-0.jsonl"
        shard.parent.mkdir()
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
        original = hash_content(images["rocket.jpg"].read_bytes())
        banks = tmp / "banks"
        banks.mkdir()
        (banks / "md5.txt").write_text(hashlib.md5(images["astronaut.png"].read_bytes()).hexdigest() + "\n")
        (banks / "sha256.txt").write_text(hashlib.sha256(images["coins.png"].read_bytes()).hexdigest() + "\n")
        (banks / "pdq.txt").write_text(original.pdq + "\n")
        config = write_config(
            tmp,
            {
                "dataset": {"name": "content-test", "shards": [str(shard)], "columns": {"sample_id": "key"}, "batch_rows": 5},
                "banks": [
                    {"name": "md5-list", "path": str(banks / "md5.txt"), "signal_type": "md5", "source": "test", "version": "1"},
                    {"name": "sha-list", "path": str(banks / "sha256.txt"), "signal_type": "sha256", "source": "test", "version": "1"},
                    {"name": "pdq-list", "path": str(banks / "pdq.txt"), "signal_type": "pdq", "source": "test", "version": "1"},
                ],
                "detectors": {"content_hashlist": {}, "dead_links": {}},
                "fetch": {"allow_private_networks": True, "recheck_interval": 0.2, "backoff": 0.05},
            },
        )
        summary = scan(config)
        requests = web.stats()["requests"]
        yield {
            "config": config, "summary": summary, "workspace": tmp / "work", "rows": rows, "original": original,
            "requests": requests, "started": started, "web": web, "banks": banks,
        }


def query(ws: Path, sql: str, params=()):
    con = store.connect(ws, read_only=True)
    try:
        return con.sql(sql, params=list(params)).fetchall()
    finally:
        con.close()


def test_scan_completes(content_scan):
    assert content_scan["summary"]["status"] == "completed", content_scan["summary"]


def test_hashes_equal_hashing_the_files(content_scan, images):
    got = {name: (md5, sha256) for name, md5, sha256 in query(content_scan["workspace"], "SELECT split_part(url, '/', -1), md5, sha256 FROM content_hashes WHERE url LIKE '%/img/%'")}
    assert set(got) == set(images)
    for name, path in images.items():
        data = path.read_bytes()
        assert got[name] == (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()), name


def test_near_duplicates_match_by_pdq_within_the_default_threshold(content_scan):
    pdq = dict(query(content_scan["workspace"], "SELECT split_part(url, '/', -1), pdq FROM content_hashes"))
    original = content_scan["original"].pdq
    for name in ("rocket_gray.jpg", "rocket_resize.jpg"):
        assert hamming(original, pdq[name]) <= 31, name
    for name in PDQ_MISSES:
        assert hamming(original, pdq[name]) > 31, name
    flagged = {
        sid: json.loads(ev)
        for sid, ev in query(content_scan["workspace"], "SELECT sample_id, evidence FROM findings WHERE reason = 'hash_match.pdq'")
    }
    names = {r["key"]: r["caption"] for r in content_scan["rows"]}
    assert {names[s] for s in flagged} == {"rocket.jpg", "rocket_gray.jpg", "rocket_resize.jpg"}
    assert all(e["bank"] == "pdq-list" and e["distance"] <= 31 for e in flagged.values())


def test_with_dihedral_hashes_the_mirrored_copy_matches_too(content_scan, tmp_path):
    """fetch.pdq_dihedral: the mirrored copy matches the original's bank entry through its 'flip
    left to right' hash (8 bits with the default luma decode, against a bank hashed in full; 6 both
    in full); the copy turned by 20° still does not (116 bits at best)."""
    config = yaml.safe_load(content_scan["config"].read_text())
    config["workspace"] = str(tmp_path / "work")
    config["fetch"]["pdq_dihedral"] = True
    config["banks"] = [{**b, "path": str(content_scan["banks"] / Path(b["path"]).name)} for b in config["banks"] if b["signal_type"] == "pdq"]
    config["detectors"] = {"content_hashlist": {}}
    path = tmp_path / "dihedral.yaml"
    path.write_text(yaml.safe_dump(config))
    assert scan(path)["status"] == "completed"
    names = {r["key"]: r["caption"] for r in content_scan["rows"]}
    flagged = {names[s]: json.loads(ev) for s, ev in query(tmp_path / "work", "SELECT sample_id, evidence FROM findings WHERE reason = 'hash_match.pdq'")}
    assert set(flagged) == {"rocket.jpg", "rocket_gray.jpg", "rocket_resize.jpg", "rocket_hflip.jpg"}
    assert (flagged["rocket_hflip.jpg"]["transform"], flagged["rocket_hflip.jpg"]["distance"]) == ("flip left to right", 8)
    assert flagged["rocket.jpg"]["transform"] == "original"


def test_near_image_clusters_are_judged_from_the_stored_hashes(content_scan, tmp_path):
    """dedup on near_image with fetch.pdq_dihedral, keeping the largest image: rocket.jpg groups
    with its grey, 300x300 and mirrored copies (2, 4 and 6 bits; the copy turned by 20° stays
    apart, 114 bits), and the row fetching coins.png again with its first fetch. The report lists
    the clusters with captions and hosts. Changing the threshold (to 5 bits: the mirrored copy
    drops out) judges the stored hashes again without a request."""
    config = yaml.safe_load(content_scan["config"].read_text())
    config["workspace"] = str(tmp_path / "work")
    config["fetch"]["pdq_dihedral"] = True
    config["banks"] = []
    config["detectors"] = {"dedup": {"on": ["near_image"], "keep": "largest_image"}}
    path = tmp_path / "near.yaml"
    path.write_text(yaml.safe_dump(config))
    web = content_scan["web"]
    assert scan(path)["status"] == "completed"
    names = {r["key"]: r["caption"] for r in content_scan["rows"]}
    found = {names[s]: json.loads(ev) for s, ev in query(tmp_path / "work", "SELECT sample_id, evidence FROM findings WHERE reason = 'duplicate.near_image'")}
    assert {n: (e["kept_sample_id"], e["pdq_distance"], e["transform"]) for n, e in found.items()} == {
        "rocket_gray.jpg": ("img-14", 2, "original"),
        "rocket_hflip.jpg": ("img-14", 6, "flip left to right"),
        "rocket_resize.jpg": ("img-14", 4, "original"),
        "same URL as a row above": ("img-6", 0, "original"),
    }
    assert names["img-14"] == "rocket.jpg" and names["img-6"] == "coins.png"
    assert {e["cluster_size"] for n, e in found.items() if n.startswith("rocket")} == {4}

    from scrutineer.reports.data import report_data

    con = store.connect(tmp_path / "work", read_only=True)
    try:
        run_id = con.sql("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()[0][0]
        largest = report_data(con, tmp_path / "work", "content-test", run_id)["clusters"]["largest"]
    finally:
        con.close()
    assert largest[0]["size"] == 4 and largest[0]["caption"] == "rocket.jpg" and largest[0]["host"] == HOSTS[14 % 3]
    assert [c["caption"] for c in largest[0]["copies"]] == ["rocket_gray.jpg", "rocket_hflip.jpg", "rocket_resize.jpg"]

    before = web.stats()["requests"]
    config["detectors"]["dedup"]["near_image"] = {"pdq_threshold": 5}
    path.write_text(yaml.safe_dump(config))
    assert scan(path)["status"] == "completed"
    assert web.stats()["requests"] == before
    again = {names[s] for (s,) in query(tmp_path / "work", "SELECT sample_id FROM findings WHERE reason = 'duplicate.near_image' AND run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)")}
    assert again == {"rocket_gray.jpg", "rocket_resize.jpg", "same URL as a row above"}


def test_exact_digest_matches_are_restricted(content_scan):
    rows = query(
        content_scan["workspace"],
        "SELECT reason, caption, restricted FROM findings f JOIN (SELECT unnest(?) AS key, unnest(?) AS caption) r ON f.sample_id = r.key WHERE reason IN ('hash_match.md5', 'hash_match.sha256')",
        [[r["key"] for r in content_scan["rows"]], [r["caption"] for r in content_scan["rows"]]],
    )
    assert sorted(rows) == sorted(
        [
            ("hash_match.md5", "astronaut.png", True),
            ("hash_match.sha256", "coins.png", True),
            ("hash_match.sha256", "same URL as a row above", True),
        ]
    )


def test_link_statuses(content_scan):
    found = dict(query(content_scan["workspace"], "SELECT sample_id, reason FROM findings WHERE detector = 'dead_links'"))
    assert found == {"gone": "link.dead", "parked": "link.moved", "page": "link.not_image"}
    checks = query(content_scan["workspace"], "SELECT count(*) FROM fetches WHERE url LIKE '%/gone/coins.png'")[0][0]
    assert checks == 2  # dead only after two agreeing checks


def test_each_distinct_url_is_fetched_once(content_scan):
    urls = [r["url"] for r in content_scan["rows"]]
    distinct = len(set(urls))
    # plus one robots.txt per host for the whole shard (it is read in batches of 5 rows), the
    # dead link's second check and the redirect's second hop
    assert content_scan["requests"] == distinct + len(HOSTS) + 1 + 1


def _slices(data: bytes, size: int = 4096) -> list[bytes]:
    """4 KB slices of ``data`` that could only come from it (constant runs, e.g. a PNG's zero
    padding, would also be found in any database file)."""
    slices = [data[i : i + size] for i in range(0, max(len(data) - size, 0) + 1, size)]
    return [s for s in slices if len(set(s)) >= 64]


def test_hash_and_drop_no_image_bytes_anywhere(content_scan, images):
    needles = [s for p in images.values() for s in _slices(p.read_bytes())]
    assert len(needles) > 100
    # the workspace (store, shard outputs), and every file the scan created or changed in the
    # system temp directory (Prefect's home and logs are there in tests)
    roots = [content_scan["workspace"], Path(tempfile.gettempdir())]
    checked = 0
    # os.walk, not rglob: other processes' temporary directories may vanish during the walk
    paths = [Path(d) / f for root in roots for d, _, files in os.walk(root) for f in files]
    for path in paths:
        try:
            if path.is_symlink() or (content_scan["workspace"] not in path.parents and path.stat().st_mtime < content_scan["started"]):
                continue
            data = path.read_bytes()
        except OSError:
            continue
        checked += 1
        assert not any(n in data for n in needles), f"image bytes found in {path}"
    assert checked > 0


def test_rematch_finds_new_bank_matches_without_any_request(content_scan, images):
    web, config = content_scan["web"], content_scan["config"]
    (content_scan["banks"] / "sha1.txt").write_text(hashlib.sha1(images["brick.png"].read_bytes()).hexdigest() + "\n")
    (content_scan["banks"] / "phash.txt").write_text(hash_content(images["camera.png"].read_bytes()).phash + "\n")
    cfg = yaml.safe_load(config.read_text())
    cfg["banks"] += [
        {"name": "sha1-list", "path": str(content_scan["banks"] / "sha1.txt"), "signal_type": "sha1", "source": "hotline", "version": "2026-12"},
        {"name": "phash-list", "path": str(content_scan["banks"] / "phash.txt"), "signal_type": "phash", "source": "hotline", "version": "2026-12"},
    ]
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    web.reset()

    listed = CliRunner().invoke(app, ["banks", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "sha1-list" in listed.output and "2026-12" in listed.output

    result = CliRunner().invoke(app, ["rematch", str(config)])
    assert result.exit_code == 0, result.output
    assert web.stats()["requests"] == 0  # matched from the store: no HTTP request at all
    names = {r["key"]: r["caption"] for r in content_scan["rows"]}
    found = query(
        content_scan["workspace"],
        "SELECT sample_id, reason, evidence FROM findings WHERE run_id = (SELECT run_id FROM runs WHERE kind = 'rematch') "
        "AND reason IN ('hash_match.sha1', 'hash_match.phash')",
    )
    assert {(names[s], r) for s, r, _ in found} == {("brick.png", "hash_match.sha1"), ("camera.png", "hash_match.phash")}
    assert all(json.loads(e)["bank_version"] == "2026-12" for _, _, e in found)

    again = CliRunner().invoke(app, ["rematch", str(config)])
    assert again.exit_code == 0 and "1 reused" in again.output  # nothing changed: nothing re-judged


def test_network_cut_mid_scan_ends_inconclusive_with_no_dead_links(tmp_path, test_data):
    server = FixtureWeb(HOSTS, images=[test_data / "images" / "skimage"])
    server.start()
    try:
        rows = [{"key": f"k{i}", "url": server.url(f"/slow/coins.png?seconds=0.3&n={i}", host=i % 3)} for i in range(120)]
        shard = tmp_path / "cut.jsonl"
        shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
        banks = tmp_path / "md5.txt"
        banks.write_text("0" * 32 + "\n")
        config = write_config(
            tmp_path,
            {
                "dataset": {"name": "cut", "shards": [str(shard)], "columns": {"sample_id": "key"}},
                "banks": [{"name": "b", "path": str(banks), "signal_type": "md5", "source": "test", "version": "1"}],
                "detectors": {"content_hashlist": {}, "dead_links": {"min_checks": 1}},
                # one content worker, which owns the 3 hosts: a worker's breaker counts the failures of the hosts it owns
                "fetch": {"allow_private_networks": True, "per_domain": 2, "retries": 1, "backoff": 0.05, "breaker": {"failures": 6, "hosts": 3},
                          "processes": 1},
            },
        )
        result: dict = {}
        scanner = threading.Thread(target=lambda: result.update(scan(config)))
        scanner.start()
        wait_until("10 requests served", lambda: server.stats()["requests"] >= 10)
        server.cut()  # the network goes away mid-run
        scanner.join(180)
    finally:
        server.stop()
    assert result["status"] == "inconclusive", result
    assert result["shards"][0]["status"] == "inconclusive" and "network down" in result["shards"][0]["error"]
    ws = tmp_path / "work"
    assert query(ws, "SELECT count(*) FROM findings WHERE reason = 'link.dead'")[0][0] == 0
    assert query(ws, "SELECT status FROM shards")[0][0] == "inconclusive"


class GatedHasher:
    """A hasher that starts hashing only once ``gate`` bodies have waited at once (120 s at most: a
    bound on a hang), and records the most bodies waiting at once."""

    def __init__(self, gate: int) -> None:
        self.gate = gate
        self.waiting = self.most_waiting = 0
        self.open = asyncio.Event()

    async def __call__(self, url: str, body: bytes):
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        if self.most_waiting >= self.gate:
            self.open.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.open.wait(), 120)
        self.waiting -= 1
        return hash_content(body)


def test_bodies_waiting_for_the_hasher_are_bounded(test_data):
    """At most 2 x concurrency bodies wait for the hasher, however many URLs: with hashing held
    until that many wait, fetching stops there (it was a hasher 10 ms slower per body than the
    fetcher, which a busy machine need not be)."""
    cfg = FetchConfig(allow_private_networks=True, concurrency=4, per_domain=4)
    hasher = GatedHasher(2 * cfg.concurrency)
    with FixtureWeb(HOSTS[:1], images=[test_data / "images" / "skimage"]) as web:
        urls = [web.url(f"/img/coins.png?n={i}") for i in range(60)]

        async def run():
            async with Fetcher(cfg) as fetcher:
                return await check_urls(fetcher, urls, cfg, hasher)

        checked = asyncio.run(run())
    assert all(c.hashes is not None for c in checked.values())
    assert hasher.most_waiting == 2 * cfg.concurrency


def _jpeg(size: int, seed: int) -> bytes:
    """A JPEG of ``size`` x ``size`` pixels, smooth enough to stay small on the wire."""
    import io

    import numpy as np
    from PIL import Image

    small = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.BILINEAR).save(out, "JPEG", quality=80)
    return out.getvalue()


def test_an_image_with_too_many_pixels_is_not_decoded(tmp_path):
    """Fault 9: a 9000 x 9000 PNG of 236 KB (under Pillow's bomb limit) took 2.7 GB to hash.
    Decoded pixels are bounded by fetch.max_pixels; such an image gets its exact digests only."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (9000, 9000), "white").save(images / "huge.png")
    (images / "small.jpg").write_bytes(_jpeg(256, 1))
    with FixtureWeb(HOSTS[:1], images=[images]) as web:
        config = url_list_config(tmp_path, "huge", [web.url(f"/img/{n}") for n in ("huge.png", "small.jpg")], {"dead_links": {}})
        assert scan(config)["status"] == "completed"
    ws = tmp_path / "work"
    hashes = {u.rsplit("/", 1)[1]: (md5, pdq) for u, md5, pdq in query(ws, "SELECT url, md5, pdq FROM content_hashes")}
    assert hashes["huge.png"][0] == hashlib.md5((images / "huge.png").read_bytes()).hexdigest() and hashes["huge.png"][1] is None
    assert hashes["small.jpg"][1] is not None
    assert query(ws, "SELECT status, error FROM fetches WHERE url LIKE '%huge.png'") == [("too_large", "image larger than 32,000,000 pixels (fetch.max_pixels)")]
    assert query(ws, "SELECT reason FROM findings WHERE url LIKE '%huge.png'") == [("link.too_large",)]


def hash_fetched_after_marking(marker: str, body: bytes, cfg: FetchConfig):
    """conftest.hash_after_marking as a content worker's hasher (``content_workers.HASHER``)."""
    return hash_after_marking(marker, body, cfg.max_pixels, cfg.pdq_dihedral)


def test_a_worker_dying_while_hashing_fails_no_shard(tmp_path, monkeypatch):
    """Fault 9: when a hash worker died, the shared process pool broke and every shard failed. Now
    the worker is replaced and its bodies are fetched and hashed again. The worker killed is the one
    holding a body (issue 23, fault 14: it was found by its CPU share, which a busy machine hides):
    it says so itself (conftest.hash_after_marking) and holds the body until it is killed."""
    images = tmp_path / "images"
    images.mkdir()
    names = [f"image-{i}.jpg" for i in range(8)]
    for i, name in enumerate(names):
        (images / name).write_bytes(_jpeg(256, i))
    marker = tmp_path / "busy-worker"
    monkeypatch.setattr(content_workers, "HASHER", functools.partial(hash_fetched_after_marking, str(marker)))  # the run's pool runs it
    with FixtureWeb(HOSTS[:1], images=[images]) as web:
        config = url_list_config(tmp_path, "dying", [web.url(f"/img/{n}") for n in names], concurrency=2)
        result: dict = {}
        scanner = threading.Thread(target=lambda: result.update(scan(config)))
        scanner.start()
        busy = int(wait_until("a content worker holding a body", lambda: marker.exists() and marker.read_text()))
        os.kill(busy, signal.SIGKILL)
        scanner.join(300)
    assert result["status"] == "completed", result
    hashed = {u.rsplit("/", 1)[1] for (u,) in query(tmp_path / "work", "SELECT url FROM content_hashes WHERE pdq IS NOT NULL")}
    assert hashed == set(names)
