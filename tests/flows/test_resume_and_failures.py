"""A scan killed with SIGKILL resumes to the same findings; a corrupt shard fails alone."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (
    command_line,
    scan,
    scrutineer_with_file_size_limit,
    url_list_config,
    write_config,
)

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.core.errors import WorkspaceError
from scrutineer.release.build import build_release
from scrutineer.reports.summary import write_summary
from scrutineer.reports.takedown import write_takedown

SCRUTINEER = [str(Path(sys.executable).parent / "scrutineer")]


def make_shards(directory: Path, shards: int, rows: int) -> list[str]:
    """LAION-shaped parquet shards with URL and caption duplicates across shards."""
    directory.mkdir(parents=True, exist_ok=True)
    urls = []
    for s in range(shards):
        n = [s * rows + i for i in range(rows)]
        table = pa.table(
            {
                "URL": [f"https://img{k % 7}.example.com/{k % (rows * shards // 3)}.jpg" for k in n],
                "TEXT": [f"caption {k % 997}" for k in n],
                "LICENSE": [["CC-BY-4.0", "?", None, "CC BY-NC 2.0"][k % 4] for k in n],
            }
        )
        pq.write_table(table, directory / f"part-{s:03d}.parquet")
        urls += table["URL"].to_pylist()
    return urls


def base_config(data: Path, bank: Path, **dataset) -> dict:
    return {
        "dataset": {"name": "synthetic", "shards": [str(data / "*.parquet")], **dataset},
        "banks": [{"name": "w", "path": str(bank), "signal_type": "url_md5", "source": "test", "version": "1"}],
        "detectors": {"url_hashlist": {}, "license_gaps": {"allow": ["CC-BY-4.0"]}, "dedup": {}},
        "release": {"variants": {"clean": {"remove": ["hash_match", "duplicate"]}}},
        "workers": 1,
    }


def all_findings(workspace: Path, run_id: str) -> list[tuple]:
    con = duckdb.connect(str(workspace / "scrutineer.duckdb"), read_only=True)
    try:
        return con.sql(
            "SELECT reason, * EXCLUDE (run_id, reason) FROM findings WHERE run_id = ? ORDER BY ALL", params=[run_id]
        ).fetchall()
    finally:
        con.close()


def test_sigkill_mid_run_then_rerun_gives_the_same_findings(tmp_path):
    data = tmp_path / "data"
    urls = make_shards(data, shards=8, rows=40_000)
    bank = tmp_path / "bank.txt"
    bank.write_text("\n".join(url_md5(u) for u in urls[::5000]) + "\n")
    # small batches make each shard take a while, so the kill lands mid-run
    killed = write_config(tmp_path / "killed", base_config(data, bank, batch_rows=500))
    # its own process group, so the kill also takes Prefect's API server subprocess with it
    proc = subprocess.Popen([*SCRUTINEER, "scan", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    observed = tmp_path / "killed" / "work" / "observations"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        done = [p for p in observed.glob("*") if not p.name.startswith(".")] if observed.exists() else []
        if len(done) >= 2:
            break
        assert proc.poll() is None, "the scan finished before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(done) < 8, "the kill came after every shard was done"

    resumed = scan(killed)
    assert resumed["status"] == "completed"
    statuses = [s["status"] for s in resumed["shards"]]
    assert statuses.count("reused") + statuses.count("judged") >= 2 and "observed" in statuses  # the stored ones are not read again
    work = tmp_path / "killed" / "work"
    assert not [p for d in ("observations", "judgements") for p in (work / d).glob(".*")], "temporary directories left behind"
    con = duckdb.connect(str(work / "scrutineer.duckdb"), read_only=True)
    assert con.sql("SELECT status FROM runs ORDER BY started_at").fetchall() == [("interrupted",), ("completed",)]
    con.close()

    clean = write_config(tmp_path / "clean", base_config(data, bank, batch_rows=500))
    uninterrupted = scan(clean)
    got = all_findings(tmp_path / "killed" / "work", resumed["run_id"])
    want = all_findings(tmp_path / "clean" / "work", uninterrupted["run_id"])
    assert got == want
    assert {r[0] for r in got} >= {"hash_match.url", "duplicate.url", "duplicate.caption", "license.unknown"}


def test_corrupt_shard_fails_alone_and_the_run_is_partial(tmp_path):
    data = tmp_path / "data"
    make_shards(data, shards=3, rows=1000)
    corrupt = data / "part-001.parquet"
    corrupt.write_bytes(corrupt.read_bytes()[:300] + b"\x00garbage" * 50)
    bank = tmp_path / "bank.txt"
    bank.write_text(url_md5("https://img1.example.com/1.jpg") + "\n")
    config = write_config(tmp_path, base_config(data, bank))
    result = subprocess.run([*SCRUTINEER, "scan", str(config)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr
    assert "part-001.parquet" in result.stderr
    cfg = load_config(config)
    con = duckdb.connect(str(cfg.workspace / "scrutineer.duckdb"), read_only=True)
    shards = con.sql("SELECT shard_id, status, error FROM shards ORDER BY shard_id").fetchall()
    per_shard = dict(con.sql("SELECT shard_id, count(*) FROM findings GROUP BY 1").fetchall())
    con.close()
    assert [(s, st) for s, st, _ in shards] == [("part-000.parquet", "observed"), ("part-001.parquet", "failed"), ("part-002.parquet", "observed")]
    assert str(corrupt) in shards[1][2]
    assert set(per_shard) == {"part-000.parquet", "part-002.parquet"}
    with pytest.raises(WorkspaceError, match="partial"):
        build_release(cfg, "clean")

    # repair the shard: the rerun redoes only that one and completes
    make_shards(data, shards=3, rows=1000)
    rerun = scan(config)
    assert rerun["status"] == "completed"
    assert [s["status"] for s in rerun["shards"]] == ["reused", "observed", "reused"]


def test_a_partial_rescan_replaces_no_takedown_manifest_or_public_summary(tmp_path):
    """After a complete scan's takedown manifest and AI Act summary, a rescan whose shard fails
    (partial: that shard's findings are missing) makes neither again, nor a release: each refuses,
    naming the run, and the files stay the complete run's."""
    data = tmp_path / "data"
    make_shards(data, shards=2, rows=300)
    bank = tmp_path / "bank.txt"
    bank.write_text(url_md5("https://img1.example.com/1.jpg") + "\n")
    config = write_config(tmp_path, base_config(data, bank))
    cfg = load_config(config)
    assert scan(config)["status"] == "completed"
    csv_path, json_path, n = write_takedown(cfg)
    summary_csv, summary_md, _ = write_summary(cfg)
    assert n >= 1
    written = {p: p.read_bytes() for p in (csv_path, json_path, summary_csv, summary_md)}

    shard = data / "part-000.parquet"  # the one holding the banked URL
    shard.write_bytes(shard.read_bytes()[:300] + b"\x00garbage" * 50)
    partial = scan(config)
    assert partial["status"] == "partial"
    for make in (write_takedown, write_summary, lambda c: build_release(c, "clean")):
        with pytest.raises(WorkspaceError, match=f"the latest scan {partial['run_id']} is partial: fix the failed shards and rescan"):
            make(cfg)
    assert {p: p.read_bytes() for p in written} == written


def test_malformed_csv_row_fails_its_shard_naming_the_row(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("url,caption\nhttp://a.example/1.jpg,one\n")
    (data / "b.csv").write_text("url,caption\nhttp://a.example/2.jpg,two\nhttp://a.example/3.jpg,three,extra\n")
    config = write_config(tmp_path, {"dataset": {"name": "csvs", "shards": [str(data / "*.csv")]}, "detectors": {"dedup": {}}})
    summary = scan(config)
    assert summary["status"] == "partial"
    failed = [s for s in summary["shards"] if s["status"] == "failed"]
    assert len(failed) == 1 and f"{data / 'b.csv'}: line 3" in failed[0]["error"]


def test_a_killed_scan_leaves_no_process_behind_and_is_marked_interrupted(tmp_path, test_data):
    """Fault 12: a scan killed by SIGKILL left Prefect's temporary API server and its hash workers
    running, and its run stayed `running` forever."""
    import json

    import psutil

    from scrutineer.testing.fixture_web import FixtureWeb

    with FixtureWeb(["127.0.0.13"], images=[test_data / "images" / "skimage"]) as web:
        config = url_list_config(tmp_path, "killed", [web.url(f"/slow/coins.png?seconds=1&n={i}") for i in range(60)], concurrency=4)
        # no PREFECT_API_URL: the scan starts its own temporary API server
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        proc = subprocess.Popen([*SCRUTINEER, "scan", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            scanner = psutil.Process(proc.pid)
            deadline = time.monotonic() + 120
            children: list[psutil.Process] = []
            while time.monotonic() < deadline:
                children = scanner.children(recursive=True)
                lines = [command_line(c) for c in children]
                if any("uvicorn" in line for line in lines) and web.stats()["requests"] > 0 and len(children) >= 3:
                    break
                time.sleep(0.2)
            assert any("uvicorn" in command_line(c) for c in children), "Prefect's server never started"
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # the scan alone, not its process group
            proc.wait()
        _, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, f"left running: {[command_line(p) for p in alive]}"

        (tmp_path / "d.jsonl").write_text(json.dumps({"url": web.url("/img/coins.png")}) + "\n")
        assert scan(config)["status"] == "completed"
    con = duckdb.connect(str(tmp_path / "work" / "scrutineer.duckdb"), read_only=True)
    assert con.sql("SELECT status FROM runs ORDER BY started_at").fetchall() == [("interrupted",), ("completed",)]
    con.close()


def test_a_full_disk_during_the_load_says_why_and_damages_nothing(tmp_path):
    """Fault 13: on a full disk the message ended with "cannot rollback - no transaction is active"
    and hid the cause."""
    data = tmp_path / "data"
    urls = make_shards(data, shards=2, rows=20_000)
    bank = tmp_path / "bank.txt"
    bank.write_text("\n".join(url_md5(u) for u in urls[::5000]) + "\n")
    config = write_config(tmp_path, base_config(data, bank))
    first = scan(config)
    store_file = tmp_path / "work" / "scrutineer.duckdb"
    before = all_findings(tmp_path / "work", first["run_id"])
    # the next run's findings cannot be written: no file may grow past the store's present size
    # (a new bank version, licence allow-list and duplicate rule: every judgement is new, and each
    # is stored once, so the run must store as many findings as the first)
    (tmp_path / "bank.txt").write_text("\n".join(url_md5(u) for u in urls[::4000]) + "\n")
    changed = base_config(data, bank)
    changed["detectors"] |= {"license_gaps": {"allow": ["CC-BY-4.0", "CC-BY-NC-2.0"]}, "dedup": {"keep": "has_license"}}
    config = write_config(tmp_path, changed)
    result = scrutineer_with_file_size_limit(store_file.stat().st_size, "scan", str(config))
    assert result.returncode == 1, result.stderr
    assert "rollback" not in result.stderr and "no transaction" not in result.stderr, result.stderr
    assert "File too large" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert all_findings(tmp_path / "work", first["run_id"]) == before
    again = scan(config)
    assert again["status"] == "completed" and again["findings"]["hash_match.url"] > first["findings"]["hash_match.url"]
