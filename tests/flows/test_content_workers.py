"""The local runner's content workers (flows/content_workers.py, issue 26) through the scan flow,
on the fixture web: per-domain politeness over 4 processes (acceptance 3), a worker killed
mid-scan (acceptance 4), a body that kills every process hashing it, two shard tasks sharing the
workers; and fetch.hash_workers, which fetch.processes replaced."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import threading
from pathlib import Path

import pytest

from scrutineer.core import store
from scrutineer.core.config import FetchConfig, load_config
from scrutineer.core.errors import ConfigError
from scrutineer.flows import content_workers
from scrutineer.observing.hashing import hash_fetched
from scrutineer.testing.fixture_web import FixtureWeb, synthetic_jpeg
from tests.conftest import scan, url_list_config, wait_until, write_config

SIXTEEN = [f"127.0.11.{i}" for i in range(1, 17)]


def query(workspace: Path, sql: str, params=()) -> list[tuple]:
    con = store.connect(workspace, read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def kill_on(md5: str, body: bytes, cfg: FetchConfig):
    """A content worker's hasher (``content_workers.HASHER``) that kills its own process on the
    body whose MD5 is ``md5``, as an image that runs a decoder out of memory would, and hashes
    every other body."""
    if hashlib.md5(body).hexdigest() == md5:
        os.kill(os.getpid(), signal.SIGKILL)
    return hash_fetched(body, cfg)


def test_four_processes_keep_to_per_domain_on_every_host(tmp_path, test_data):
    """Acceptance 3: 4 content workers, 16 hosts, 6 slow images each (3 x per_domain waiting):
    no host ever serves more than per_domain requests at once, robots.txt included."""
    with FixtureWeb(SIXTEEN, images=[test_data / "images" / "skimage"]) as web:
        urls = [web.url(f"/slow/coins.png?seconds=0.2&n={i}", host=h) for h in range(len(SIXTEEN)) for i in range(6)]
        config = url_list_config(tmp_path, "polite", urls, processes=4, per_domain=2)
        web.reset()
        assert scan(config)["status"] == "completed"
        stats = web.stats()
    assert {h: stats["by_host"][h].get("/slow/coins.png") for h in SIXTEEN} == dict.fromkeys(SIXTEEN, 6)  # every host fetched
    assert len({content_workers.owner(web.url("/", host=h), 4) for h in range(len(SIXTEEN))}) == 4  # on all 4 workers
    assert max(stats["max_in_flight"][h] for h in SIXTEEN) <= 2


def _comparable(workspace: Path) -> tuple[list, list, list]:
    """The latest run's findings (without its id), content hashes and fetch outcomes."""
    latest = "(SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)"
    return (
        query(workspace, f"SELECT shard_id, row_index, sample_id, url, detector, reason, evidence::VARCHAR FROM findings WHERE run_id = {latest} ORDER BY ALL"),
        query(workspace, "SELECT sample_id, url, md5, sha1, sha256, pdq, phash, width, height, bytes FROM content_hashes ORDER BY ALL"),
        query(workspace, "SELECT url, status, http_status, error, bytes FROM fetches ORDER BY ALL"),
    )


def test_a_killed_worker_is_replaced_and_nothing_differs(tmp_path, test_data):
    """Acceptance 4: the worker fetching a URL held in flight is killed (SIGKILL); another process
    checks its URLs, no shard fails, and the findings, hashes and fetches equal an undisturbed
    scan's."""
    images = sorted(p.name for p in (test_data / "images" / "skimage").iterdir() if p.suffix == ".png")
    hosts = ["127.0.12.1", "127.0.12.2", "127.0.12.3", "127.0.12.4"]
    with FixtureWeb(hosts, images=[test_data / "images" / "skimage"]) as web:
        held = web.url(f"/hold/{images[0]}", host=0)
        urls = [web.url(f"/img/{name}", host=i % len(hosts)) for i, name in enumerate(images)] + [held, web.url("/gone/x.png", host=1)]
        detectors = {"dead_links": {}}
        fetch = {"processes": 2, "recheck_interval": 0.2, "backoff": 0.05}
        disturbed = url_list_config(tmp_path / "killed", "killed", urls, detectors, **fetch)
        result: dict = {}
        scanner = threading.Thread(target=lambda: result.update(scan(disturbed)))
        scanner.start()
        wait_until("the held request in flight", lambda: web.stats()["holding"] >= 1)
        (pool,) = content_workers.running()
        os.kill(pool.pids()[pool.owner(held)], signal.SIGKILL)
        web.release()
        scanner.join(300)
        assert web.stats()["by_host"][hosts[0]][f"/hold/{images[0]}"] == 2  # checked again, by the killed worker's replacement
        undisturbed = url_list_config(tmp_path / "undisturbed", "killed", urls, detectors, **fetch)
        assert scan(undisturbed)["status"] == "completed"
    assert result["status"] == "completed" and [s["status"] for s in result["shards"]] == ["observed"], result
    expected = _comparable(tmp_path / "undisturbed" / "work")
    assert _comparable(tmp_path / "killed" / "work") == expected
    assert len(expected[1]) == len(images) + 1 and any(reason == "link.dead" for *_, reason, _e in expected[0])  # not vacuous


def test_a_body_that_kills_its_process_gets_its_exact_digests_only(tmp_path, monkeypatch):
    """An image that kills every process hashing it (out of memory, a decoder crash) kills two
    workers, then is fetched once more for its exact digests only, status ``not_image``; the rest
    of the shard gets its hashes, and the shard completes."""
    poison = hashlib.md5(synthetic_jpeg(3)).hexdigest()
    monkeypatch.setattr(content_workers, "HASHER", functools.partial(kill_on, poison))  # the run's pool runs it
    with FixtureWeb(["127.0.12.5", "127.0.12.6"], synthetic=6) as web:
        urls = [web.url(f"/img/synthetic-{i:05d}.jpg", host=i % 2) for i in range(6)]
        config = url_list_config(tmp_path, "poison", urls, processes=2)
        assert scan(config)["status"] == "completed"
        assert web.stats()["by_host"]["127.0.12.6"]["/img/synthetic-00003.jpg"] == 3  # two deaths, then the exact digests
    ws = tmp_path / "work"
    hashes = {u: (md5, pdq) for u, md5, pdq in query(ws, "SELECT url, md5, pdq FROM content_hashes")}
    assert hashes.pop(urls[3]) == (poison, None)
    assert len(hashes) == 5 and all(pdq is not None for _, pdq in hashes.values())
    assert query(ws, "SELECT status, error FROM fetches WHERE url = ?", [urls[3]]) == [("not_image", content_workers.DIED)]


def test_two_shard_tasks_sharing_a_worker_keep_their_own_policy_files_and_outcomes(tmp_path, test_data):
    """Two shards on one worker at once (the first one's job held in flight while the second's is
    checked): each content observation keeps the policy files of its own URLs' origins, the host
    both use included, read once from the network, and its own URLs' hashes."""
    hosts = ["127.0.12.7", "127.0.12.8", "127.0.12.9"]
    skimage = test_data / "images" / "skimage"
    with FixtureWeb(hosts, images=[skimage]) as web:
        shards = {
            "a": [("a-held", web.url("/hold/coins.png", host=0)), ("a-brick", web.url("/img/brick.png", host=0)), ("a-coins", web.url("/img/coins.png", host=1))],
            "b": [("b-camera", web.url("/img/camera.png", host=1)), ("b-coins", web.url("/img/coins.png", host=2))],
        }
        for name, rows in shards.items():
            (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"key": k, "url": u}) + "\n" for k, u in rows))
        (tmp_path / "md5.txt").write_text("0" * 32 + "\n")
        config = write_config(tmp_path, {
            "dataset": {"name": "shared", "shards": ["a.jsonl", "b.jsonl"], "columns": {"sample_id": "key"}},
            "banks": [{"name": "b", "path": "md5.txt", "signal_type": "md5", "source": "test", "version": "1"}],
            "detectors": {"content_hashlist": {}, "optouts": {}},
            "fetch": {"allow_private_networks": True, "processes": 1},
            "workers": 2,
        })
        result: dict = {}
        scanner = threading.Thread(target=lambda: result.update(scan(config)))
        scanner.start()
        wait_until("shard b checked while shard a's job is held", lambda: (s := web.stats())["holding"] >= 1
                   and s["by_host"].get(hosts[1], {}).get("/img/camera.png") and s["by_host"].get(hosts[2], {}).get("/img/coins.png"))
        web.release()
        scanner.join(300)
        by_host = web.stats()["by_host"]
    assert result["status"] == "completed", result
    assert all(by_host[h][p] == 1 for h in hosts for p in ("/robots.txt", "/ai.txt", "/.well-known/tdmrep.json"))
    ws = tmp_path / "work"
    shard_of = dict(query(ws, "SELECT shard_id, split_part(location, '/', -1) FROM shards"))
    files: dict[str, set] = {}
    for shard_id, origin, name in query(ws, "SELECT shard_id, origin, name FROM policy_files"):
        files.setdefault(shard_of[shard_id], set()).add((origin.split("//")[1].split(":")[0], name))
    names = ("robots.txt", "ai.txt", "tdmrep.json")
    assert files == {"a.jsonl": {(h, n) for h in hosts[:2] for n in names}, "b.jsonl": {(h, n) for h in hosts[1:] for n in names}}
    hashed = {(shard_of[s], k): md5 for s, k, md5 in query(ws, "SELECT shard_id, sample_id, md5 FROM content_hashes")}
    assert hashed == {(f"{k[0]}.jsonl", k): hashlib.md5((skimage / u.rsplit("/", 1)[1]).read_bytes()).hexdigest()
                      for rows in shards.values() for k, u in rows}


def test_a_config_setting_hash_workers_says_to_use_processes(tmp_path):
    """fetch.processes replaced fetch.hash_workers: an old config fails, naming the new key."""
    path = url_list_config(tmp_path, "old", ["http://127.0.0.1/a.jpg"], hash_workers=2)
    with pytest.raises(ConfigError, match=r"hash_workers is no longer a setting: use fetch\.processes"):
        load_config(path)
