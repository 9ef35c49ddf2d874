"""Shard tasks on a Dask cluster (issue 12, acceptances 2 and 3): a metadata scan of the real
LAION, CC3M and COCO samples on a running cluster (``runner.address``) and a content scan of the
fixture web on a LocalCluster the scan starts (``runner.workers``) give the local runner's
findings; so do a scan that loses a Dask worker, and a scan killed on Dask and finished locally."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import psutil
import pyarrow.parquet as pq
import pytest
from conftest import command_line, scan, wait_until, write_config
from distributed import Client, LocalCluster
from prefect.context import FlowRunContext

from scrutineer.core import store
from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.core.errors import ConfigError
from scrutineer.flows.scan import run_scan
from scrutineer.testing.fixture_web import FixtureWeb

LAION = ["laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet"]
HOSTS = ["127.0.0.5", "127.0.0.6"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A running 2-process Dask cluster's scheduler address."""
    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c.scheduler_address


def shard_tasks_done(client: Client) -> int:
    """How many ``shard_task`` tasks the client's Dask scheduler has finished."""
    return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.task_prefixes["shard_task"].state_counts["memory"]
                                   if "shard_task" in dask_scheduler.task_prefixes else 0)


def findings(workspace: Path) -> list[tuple]:
    """The latest run's findings, without the run id: (shard_id, row_index, sample_id, url,
    detector, reason, evidence, restricted), sorted."""
    con = store.connect(workspace, read_only=True)
    try:
        return con.execute(
            "SELECT shard_id, row_index, sample_id, url, detector, reason, evidence::VARCHAR, restricted FROM findings "
            "WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) ORDER BY ALL").fetchall()
    finally:
        con.close()


def scan_both(root: Path, config: dict, runner: dict) -> tuple[dict, dict, int]:
    """Scan ``config`` with the local runner and with ``runner``, each in a workspace of its own:
    both summaries, and how many shard tasks the Dask scheduler had finished when the last shard's
    result came back (asked through the running flow's DaskTaskRunner)."""
    local = scan(write_config(root / "local", config))
    on_dask = []
    dask_ = run_scan(load_config(write_config(root / "dask", {**config, "runner": runner})),
                     on_shard=lambda result: on_dask.append(shard_tasks_done(FlowRunContext.get().task_runner.client)))
    return local, dask_, on_dask[-1]


@pytest.mark.parametrize("dataset", ["laion", "cc3m", "coco"])
def test_a_metadata_scan_on_a_dask_cluster_finds_what_the_local_runner_finds(tmp_path, test_data, cluster, dataset):
    metadata = test_data / "metadata"
    config = {
        "laion": {"name": "laion", "shards": [str(metadata / n) for n in LAION], "columns": {"url": "URL", "caption": "TEXT"}},
        "cc3m": {"name": "cc3m", "shards": [str(metadata / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv")], "names": ["caption", "url"]},
        "coco": {"name": "coco", "shards": [str(metadata / "coco_captions_val2017_images0-2499.json")]},
    }[dataset]
    bank = tmp_path / "urls.txt"  # every 50th LAION URL: the LAION scans have hash-list matches
    urls = pq.read_table(metadata / LAION[0], columns=["URL"]).column("URL").to_pylist()
    bank.write_text("".join(url_md5(u) + "\n" for u in urls[::50]))
    with Client(cluster) as client:
        before = shard_tasks_done(client)
        local, dask_, _ = scan_both(tmp_path, {
            "dataset": config,
            "banks": [{"name": "list", "path": str(bank), "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}, "license_gaps": {"allow": ["CC0-1.0", "CC-BY-4.0"]}, "dedup": {"on": ["url", "caption"]}},
        }, {"kind": "dask", "address": cluster})
        assert shard_tasks_done(client) - before == len(config["shards"])
    assert local["status"] == dask_["status"] == "completed"
    assert local["findings"] == dask_["findings"] and (dataset != "laion" or local["findings"]["hash_match.url"] > 0)
    assert findings(tmp_path / "local" / "work") == findings(tmp_path / "dask" / "work")


def test_a_content_scan_on_a_local_dask_cluster_fetches_and_hashes_as_the_local_runner(tmp_path, test_data):
    images = sorted(p for d in ("skimage", "jpeg") for p in (test_data / "images" / d).iterdir() if p.suffix in (".png", ".jpg"))
    with FixtureWeb(HOSTS, images=[test_data / "images" / d for d in ("skimage", "jpeg")]) as web:
        for n in range(2):  # two shards: one per worker
            rows = [{"key": f"{n}-{i}", "url": web.url(f"/img/{p.name}", host=i % 2)} for i, p in enumerate(images) if i % 2 == n]
            rows.append({"key": f"{n}-gone", "url": web.url(f"/gone/{n}.png")})
            (tmp_path / f"part-{n}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp_path / "md5.txt").write_text(hashlib.md5(images[0].read_bytes()).hexdigest() + "\n")
        local, dask_, done = scan_both(tmp_path, {
            "dataset": {"name": "web", "shards": [str(tmp_path / f"part-{n}.jsonl") for n in range(2)], "columns": {"sample_id": "key"}},
            "banks": [{"name": "md5", "path": str(tmp_path / "md5.txt"), "signal_type": "md5", "source": "test", "version": "1"}],
            "detectors": {"content_hashlist": {}, "dead_links": {}},
            "fetch": {"allow_private_networks": True, "recheck_interval": 0.2, "backoff": 0.05},
        }, {"kind": "dask", "workers": 2})
    assert done == 2  # both shards ran on the scan's own LocalCluster
    assert local["status"] == dask_["status"] == "completed"
    assert local["findings"]["hash_match.md5"] == 1 and local["findings"] == dask_["findings"]
    assert findings(tmp_path / "local" / "work") == findings(tmp_path / "dask" / "work")
    hashes = "SELECT sample_id, md5, sha256, pdq, phash, bytes FROM content_hashes ORDER BY ALL"
    con_local, con_dask = (store.connect(tmp_path / w / "work", read_only=True) for w in ("local", "dask"))
    try:
        assert len(con_local.execute(hashes).fetchall()) == len(images)
        assert con_local.execute(hashes).fetchall() == con_dask.execute(hashes).fetchall()
    finally:
        con_local.close()
        con_dask.close()


@pytest.fixture(scope="module")
def slow_web(tmp_path_factory, test_data) -> Iterator[dict]:
    """Four shards of 10 images that the fixture web serves after 1 s each (a shard takes seconds,
    so a process can be killed in the middle of one), and the findings and content hashes of a scan
    of them with the local runner."""
    root = tmp_path_factory.mktemp("slow")
    images = sorted(p for p in (test_data / "images" / "skimage").iterdir() if p.suffix in (".png", ".jpg"))
    with FixtureWeb(HOSTS, images=[test_data / "images" / "skimage"]) as web:
        for n in range(4):
            rows = [{"key": f"{n}-{i}", "url": web.url(f"/slow/{p.name}?seconds=1", host=i % 2)} for i, p in enumerate(images)]
            (root / f"part-{n}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (root / "md5.txt").write_text(hashlib.md5(images[0].read_bytes()).hexdigest() + "\n")
        config = {
            "dataset": {"name": "slow", "shards": [str(root / f"part-{n}.jsonl") for n in range(4)], "columns": {"sample_id": "key"}, "batch_rows": 4},
            "banks": [{"name": "md5", "path": str(root / "md5.txt"), "signal_type": "md5", "source": "test", "version": "1"}],
            "detectors": {"content_hashlist": {}},
            "fetch": {"allow_private_networks": True, "per_domain": 2},
        }
        web.reset()
        assert scan(write_config(root / "local", config))["status"] == "completed"
        yield {"root": root, "config": config, "web": web, "findings": findings(root / "local" / "work"), "hashes": content_hashes(root / "local" / "work"),
               "local_in_flight": web.stats()["max_in_flight"]}


def running(process: psutil.Process) -> bool:
    """Whether it still runs (a zombie has ended, and waits to be reaped by init)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def content_hashes(workspace: Path) -> list[tuple]:
    con = store.connect(workspace, read_only=True)
    try:
        return con.execute("SELECT DISTINCT sample_id, md5, sha256, pdq, phash, bytes FROM content_hashes ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_a_shard_lost_with_its_dask_worker_is_run_again_and_nothing_differs(slow_web, tmp_path):
    """Issue 12, acceptance 3: a worker killed mid-scan; Dask runs its shard again on a worker."""
    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        config = load_config(write_config(tmp_path, {**slow_web["config"], "runner": {"kind": "dask", "address": cluster.scheduler_address}}))
        summary: dict = {}
        web = slow_web["web"]
        before = web.stats()["requests"]
        scanning = threading.Thread(target=lambda: summary.update(run_scan(config)))
        scanning.start()
        worker = wait_until(  # a worker with a shard task, once the scan's fetching has begun
            "a Dask worker fetching a shard",
            lambda: web.stats()["requests"] > before and next((w for w, tasks in client.processing().items() if tasks), None),
        )
        os.kill(client.run(os.getpid)[worker], signal.SIGKILL)
        scanning.join(timeout=300)
    assert summary["status"] == "completed" and {s["status"] for s in summary["shards"]} == {"observed"}
    assert findings(tmp_path / "work") == slow_web["findings"] and content_hashes(tmp_path / "work") == slow_web["hashes"]


def test_a_scan_killed_on_dask_is_finished_by_the_local_runner_with_the_same_findings(slow_web, tmp_path):
    """Issue 12, acceptance 3: the scanning process (and with it its LocalCluster) killed mid-scan;
    a rerun with the local runner redoes what is missing and gives a clean scan's findings."""
    path = write_config(tmp_path, {**slow_web["config"], "runner": {"kind": "dask", "workers": 2}})
    web = slow_web["web"]
    before = web.stats()["requests"]
    scanning = subprocess.Popen([str(Path(sys.executable).parent / "scrutineer"), "scan", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while web.stats()["requests"] - before < 20 and scanning.poll() is None:  # half of the 40 images asked for
            time.sleep(0.1)
        started = {p: command_line(p) for p in psutil.Process(scanning.pid).children(recursive=True)}
    finally:
        scanning.kill()
        scanning.wait()
    assert sum("spawn_main" in line for line in started.values()) >= 2  # the LocalCluster's worker processes
    _, alive = psutil.wait_procs(list(started), timeout=30)
    alive = [p for p in alive if running(p)]
    for p in alive:
        p.kill()
    assert not alive, f"left running after the scan was killed: {[started[p] for p in alive]}"
    assert scan(write_config(tmp_path, slow_web["config"]))["status"] == "completed"  # the same workspace, the local runner
    assert findings(tmp_path / "work") == slow_web["findings"] and content_hashes(tmp_path / "work") == slow_web["hashes"]


def test_shard_tasks_fetching_at_once_keep_to_per_domain_together(slow_web, tmp_path):
    """Issue 12, acceptance 4: two shard tasks fetch the same two hosts at once, as threads of the
    local runner and as two Dask workers; per_domain (2) holds for them together."""
    assert set(slow_web["local_in_flight"].values()) <= {1, 2} and len(slow_web["local_in_flight"]) == 2
    web = slow_web["web"]
    web.reset()
    summary = scan(write_config(tmp_path, {**slow_web["config"], "runner": {"kind": "dask", "workers": 2}}))
    assert summary["status"] == "completed"
    in_flight = web.stats()["max_in_flight"]
    assert len(in_flight) == 2 and max(in_flight.values()) <= 2


def test_a_per_domain_limit_the_shard_tasks_cannot_share_is_a_config_error(slow_web, tmp_path):
    """On Dask, each shard task fetches with its own fetcher, and they split per_domain (the local
    runner's content workers own a domain each, so they split nothing)."""
    config = {**slow_web["config"], "fetch": {**slow_web["config"]["fetch"], "per_domain": 1}, "runner": {"kind": "dask", "workers": 2}}
    with pytest.raises(ConfigError, match="fetch.per_domain is 1, but 2 shard tasks may fetch at once"):
        scan(write_config(tmp_path, config))
    # a rematch fetches nothing: the limit has nothing to split (the local scan's workspace)
    assert run_scan(load_config(write_config(slow_web["root"] / "local", config)), kind="rematch")["status"] == "completed"
