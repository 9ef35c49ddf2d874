"""Scrutineer as a service: a real ``prefect server start`` on loopback, a process work pool,
``scrutineer deploy``, and ``prefect worker start``. A scan triggered through the API and an
interval-scheduled ``recheck_links`` both run on the worker and end Completed, with their findings
and the links' fetch history in DuckDB. Every process the test starts is stopped by PID."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest

from scrutineer.core import store
from scrutineer.core.config import load_config
from scrutineer.testing.fixture_web import FixtureWeb
from scrutineer.testing.served import free_port
from tests.conftest import url_list_config

HOSTS = ["127.0.0.23"]
POOL = "scrutineer-test"
BIN = Path(sys.executable).parent
#: Seconds a request to the Prefect server's API may take: on a busy machine its SQLite database
#: answered a request in more than httpx's default 5 s (CI, two busy processes beside the suite).
API_SECONDS = 60


def prefect_api(method: str, url: str, body: dict | None = None, attempts: int = 5):
    """The Prefect server's JSON answer, asked again after a 5xx: its SQLite database answers
    "database is locked" under load (PrefectHQ/prefect#18934, MEASURED.md), which Prefect's own
    client retries too. Any other status, or a 5xx every time, fails the test with the body."""
    for attempt in range(attempts):
        answer = httpx.request(method, url, json=body, timeout=API_SECONDS)
        if answer.status_code < 500:
            break
        time.sleep(0.5 * 2**attempt)
    assert answer.status_code < 300, (method, url, answer.status_code, answer.text)
    return answer.json()


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process, stopped at the end of the block by its PID, with every process under it (a
    worker's flow runs, the server's services); the test fails if one outlives the stop."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            try:
                # stopped, a worker starts no flow run while its family is listed (CI once saw a run
                # it started during the listing outlive the stop, holding the store's lock)
                head = psutil.Process(proc.pid)
                head.suspend()
                family = [head, *head.children(recursive=True)]
            except psutil.NoSuchProcess:
                family = []
            for p in family:
                try:
                    p.terminate()
                except psutil.NoSuchProcess:
                    pass
            if family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    family[0].resume()  # so it takes its SIGTERM
            _, alive = psutil.wait_procs(family, timeout=30)
            for p in alive:
                p.kill()
            proc.wait(timeout=10)
            assert not psutil.wait_procs(alive, timeout=10)[1], f"still running after the stop: {alive}"


def wait_for(what: str, check, timeout: float, logs: list[Path]):
    """Poll ``check()`` every half second until it returns something truthy; fail with the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in logs))


def when(timestamp: str | None) -> datetime | None:
    return datetime.fromisoformat(timestamp) if timestamp else None


@pytest.fixture(scope="module")
def service(test_data, tmp_path_factory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("deployment")
    skimage = test_data / "images" / "skimage"
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ, "PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    logs = [tmp / "server.log", tmp / "worker.log"]
    with FixtureWeb(HOSTS, images=[skimage]) as web:
        urls = {"alive": web.url("/img/camera.png"), "gone": web.url("/gone/coins.png"), "error": web.url("/error/coins.png")}
        config = url_list_config(tmp / "dataset", "service-test", list(urls.values()), {"dead_links": {"min_checks": 2}},
                                 dead_checks=1, retries=0, recheck_interval=0)
        config.write_text(config.read_text() + "schedule:\n  recheck_links: {interval: 8}\n")
        (tmp / "dataset" / "md5.txt").write_text(hashlib.md5((skimage / "camera.png").read_bytes()).hexdigest() + "\n")
        with started([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, logs[0]):
            wait_for("the Prefect server", lambda: _healthy(api), 120, logs)
            subprocess.run([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env=env, check=True, capture_output=True)
            no_pool = subprocess.run([str(BIN / "scrutineer"), "deploy", str(config), "--pool", "nowhere"], env=env, capture_output=True,
                                     text=True, check=False)
            deployed = subprocess.run([str(BIN / "scrutineer"), "deploy", str(config), "--pool", POOL], env=env, capture_output=True, text=True, check=False)
            assert deployed.returncode == 0, deployed.stderr
            with started([str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--install-policy", "never"], env, logs[1]):
                scan_id = prefect_api("GET", f"{api}/deployments/name/scrutineer-scan/service-test")["id"]
                recheck_id = prefect_api("GET", f"{api}/deployments/name/scrutineer-recheck-links/service-test")["id"]
                run_id = prefect_api("POST", f"{api}/deployments/{scan_id}/create_flow_run", {})["id"]
                scan_run = wait_for("the scan's flow run to end", lambda: _final(api, run_id), 300, logs)
                recheck_run = wait_for(
                    "a scheduled recheck_links run after the scan",
                    lambda: next((r for r in _completed(api, recheck_id) if r["auto_scheduled"]
                                  and when(r["start_time"]) > when(scan_run["end_time"])), None),
                    300, logs,
                )
        yield {"config": config, "urls": urls, "deployed": deployed.stdout, "no_pool": no_pool, "scan_run": scan_run, "recheck_run": recheck_run,
               "logs": logs}


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _final(api: str, run_id: str) -> dict | None:
    run = prefect_api("GET", f"{api}/flow_runs/{run_id}")
    return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None


def _completed(api: str, deployment_id: str) -> list[dict]:
    """The deployment's Completed flow runs, latest first (its scheduled ones are many, and not started)."""
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
            "sort": "START_TIME_DESC", "limit": 50}
    return prefect_api("POST", f"{api}/flow_runs/filter", body)


def test_deploy_registers_every_flow_with_its_schedule(service):
    lines = service["deployed"].splitlines()
    assert "deployment scrutineer-recheck-links/service-test: every 8 s" in lines
    for name in ("scan", "rematch-banks", "sync", "release", "report"):
        assert f"deployment scrutineer-{name}/service-test: on demand" in lines


def test_deploy_to_a_missing_pool_says_how_to_make_it(service):
    assert service["no_pool"].returncode == 1
    assert "no work pool 'nowhere'" in service["no_pool"].stderr and "prefect work-pool create nowhere --type process" in service["no_pool"].stderr


def test_the_scan_triggered_through_the_api_completes_on_the_worker(service):
    assert service["scan_run"]["state_type"] == "COMPLETED", service["scan_run"]["state"]


def test_the_scheduled_recheck_confirms_a_dead_link_with_its_history_in_the_store(service):
    assert service["recheck_run"]["state_type"] == "COMPLETED"
    cfg = load_config(service["config"])
    urls = service["urls"]
    con = store.connect(cfg.workspace, read_only=True)
    try:
        runs = dict(con.execute("SELECT kind, run_id FROM runs WHERE status = 'completed' ORDER BY started_at").fetchall())
        found = {k: set(con.execute("SELECT url, reason FROM findings WHERE run_id = ?", [r]).fetchall()) for k, r in runs.items()}
        history = con.execute("SELECT status FROM fetches WHERE url = ? ORDER BY fetched_at", [urls["gone"]]).fetchall()
    finally:
        con.close()
    assert set(runs) == {"scan", "recheck"}
    assert (urls["alive"], "hash_match.md5") in found["scan"] and (urls["gone"], "link.dead") not in found["scan"]
    assert (urls["gone"], "link.dead") in found["recheck"] and (urls["error"], "link.transient") in found["recheck"]
    assert [s for (s,) in history][:2] == ["dead", "dead"]


def test_deploy_to_a_stopped_server_says_so_in_one_line(tmp_path):
    """Fault 10 (issue 23): with PREFECT_API_URL at a port where no server listens, deploy printed a
    269-line traceback. Now one line names the URL, and the exit status is 1."""
    config = url_list_config(tmp_path, "stopped", ["http://127.0.0.1/x.png"])
    with socket.socket() as closed:  # bound and not listening: a connection is refused, and no other process can take the port
        closed.bind(("127.0.0.1", 0))
        api = f"http://127.0.0.1:{closed.getsockname()[1]}/api"
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect-home")}
        result = subprocess.run([str(BIN / "scrutineer"), "deploy", str(config), "--pool", POOL], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines:\n{result.stderr[-3000:]}"
    assert lines[0].startswith(f"error: no Prefect server answers at {api} (PREFECT_API_URL): ") and "Connection refused" in lines[0]
