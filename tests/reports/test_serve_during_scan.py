"""The review app and a scan at once: the app never holds the findings store, so a scan runs to
completion while people flag and review, and nothing is lost on either side."""

from __future__ import annotations

import threading

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import scan, write_config

from scrutineer.core.config import load_config
from scrutineer.crowd.store import CrowdStore
from scrutineer.crowd.sync import sync_latest
from scrutineer.testing.served import serve

ROWS = 200_000


def shard(path, start: int) -> None:
    keys = [f"k{i}" for i in range(start, start + ROWS)]
    pq.write_table(pa.table({"key": keys, "url": [f"http://h{i % 50}.example/{i}.jpg" for i in range(start, start + ROWS)],
                             "caption": [f"caption {i % 5000}" for i in range(start, start + ROWS)]}), path)


def test_a_scan_completes_while_the_app_takes_flags_and_reviews(tmp_path):
    (tmp_path / "data").mkdir()
    shard(tmp_path / "data" / "a.parquet", 0)
    config = write_config(tmp_path, {
        "dataset": {"name": "d", "shards": ["data/*.parquet"], "columns": {"sample_id": "key"}},
        "detectors": {"dedup": {"on": ["url", "caption"]}},
        "crowd": {"categories": {"copyright": {}}, "rate_limit": "100000/minute", "flood": "100000/minute"},  # load, not a flood
    })
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    crowd = CrowdStore(cfg.crowd)
    _, contributor = crowd.add_account("con", "contributor")
    _, reviewer = crowd.add_account("rev", "reviewer")
    shard(tmp_path / "data" / "b.parquet", ROWS)  # new work for the second scan

    answers: list[int] = []
    created: list[int] = []
    confirmed: list[int] = []
    done = threading.Event()

    def people(base: str) -> None:
        n = 0
        with httpx.Client(base_url=base, timeout=30) as http:
            while not done.is_set() or n < 20:
                r = http.post("/api/flags", json={"sample_id": f"k{n}", "category": "copyright", "note": "during the scan"},
                              headers={"Authorization": f"Bearer {contributor}"})
                answers.append(r.status_code)
                if r.status_code == 201:
                    created.append(r.json()["id"])
                    if n % 3 == 0:
                        d = http.post(f"/api/flags/{r.json()['id']}/review", json={"decision": "confirm", "reason": "matches_category", "note": ""},
                                      headers={"Authorization": f"Bearer {reviewer}"})
                        answers.append(d.status_code)
                        confirmed.append(r.json()["id"])
                answers.append(http.get("/queue", headers={"Authorization": f"Bearer {reviewer}"}).status_code)
                n += 1

    with serve(config) as base:
        before = httpx.get(f"{base}/api/health").json()["run_id"]
        worker = threading.Thread(target=people, args=(base,))
        worker.start()
        try:
            summary = scan(config)
        finally:
            done.set()
            worker.join()
        after = httpx.get(f"{base}/api/health").json()["run_id"]
    assert summary["status"] == "completed" and after == summary["run_id"] != before  # the app reads the new snapshot
    assert answers and set(answers) <= {200, 201}, sorted(set(answers))
    assert len(created) >= 20 and {f["id"] for f in crowd.flags(crowd.by_name("rev"), limit=10_000)} == set(created)
    assert sync_latest(cfg) == (summary["run_id"], len(confirmed))
    con = duckdb.connect(str(cfg.workspace / "scrutineer.duckdb"), read_only=True)
    assert con.execute("SELECT sum(rows) FROM shards WHERE run_id = ?", [summary["run_id"]]).fetchone()[0] == 2 * ROWS
    con.close()
