"""A shard task runs anywhere: its arguments pickle, and a spawned process (no state inherited from
this one) observes and judges a shard, fetching and hashing with a pool of its own."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import pickle
from pathlib import Path

import pyarrow.parquet as pq

from scrutineer.core import store
from scrutineer.core.banks import load_banks, register, url_md5
from scrutineer.core.config import load_config
from scrutineer.flows.plan import ScanPlan
from scrutineer.flows.shard import ShardTask, run_shard
from scrutineer.formats.sources import list_shards
from scrutineer.testing.fixture_web import FixtureWeb
from tests.conftest import write_config


def run_pickled(task: bytes, out: str) -> None:
    """In the spawned process: unpickle the arguments, run the shard, pickle the result."""
    Path(out).write_bytes(pickle.dumps(run_shard(pickle.loads(task))))


def test_a_shard_task_runs_from_pickled_arguments_in_another_process(tmp_path, test_data):
    coins = (test_data / "images" / "skimage" / "coins.png").read_bytes()
    with FixtureWeb(["127.0.0.14"], images=[test_data / "images" / "skimage"]) as web:
        urls = [web.url("/img/coins.png"), web.url("/img/brick.png"), web.url("/gone/x.png")]
        (tmp_path / "d.jsonl").write_text("".join(json.dumps({"key": f"k{i}", "url": u}) + "\n" for i, u in enumerate(urls)))
        (tmp_path / "md5.txt").write_text(hashlib.md5(coins).hexdigest() + "\n")
        (tmp_path / "urls.txt").write_text(url_md5(urls[1]) + "\n")
        cfg = load_config(
            write_config(
                tmp_path,
                {
                    "dataset": {"name": "anywhere", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
                    "banks": [
                        {"name": "md5", "path": "md5.txt", "signal_type": "md5", "source": "test", "version": "1"},
                        {"name": "urls", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"},
                    ],
                    "detectors": {"url_hashlist": {}, "content_hashlist": {}, "dead_links": {"min_checks": 1}},
                    "fetch": {"allow_private_networks": True, "dead_checks": 1},
                },
            )
        )
        banks = load_banks(cfg.banks)
        con = store.connect(cfg.workspace)
        register(con, cfg.workspace, banks)
        con.close()
        plan = ScanPlan(cfg, cfg.detector_params(), tuple(b.ref for b in banks))
        [shard] = list_shards(cfg)
        args = pickle.dumps(ShardTask(shard, plan))

        spawned = multiprocessing.get_context("spawn").Process(target=run_pickled, args=(args, str(tmp_path / "result.pickle")))
        spawned.start()
        spawned.join(300)
        assert spawned.exitcode == 0
        assert web.stats()["requests"] > 0  # the spawned process fetched
    result = pickle.loads((tmp_path / "result.pickle").read_bytes())
    assert result.status == "observed" and result.rows == 3
    found = {
        (r["sample_id"], r["reason"])
        for j in result.judgements.values()
        for r in pq.read_table(plan.layout.judgement(j) / "findings.parquet").to_pylist()
    }
    assert found == {("k0", "hash_match.md5"), ("k1", "hash_match.url"), ("k2", "link.dead")}
    # the same arguments here find everything made: nothing is observed or judged twice
    assert run_shard(pickle.loads(args)).status == "reused"
