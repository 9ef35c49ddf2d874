"""Link liveness across runs: a recheck checks the due links again (transient ones, and dead ones
not yet confirmed), confirms a dead link days apart, records a link that comes back as alive (and
hashes and matches its bytes), and a later scan builds on the latest recheck."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core import store
from scrutineer.core.config import load_config
from scrutineer.flows.plan import ScanPlan
from scrutineer.flows.scan import run_scan
from scrutineer.flows.shard import due_urls
from scrutineer.testing.fixture_web import FixtureWeb
from tests.conftest import url_list_config

HOSTS = ["127.0.0.21", "127.0.0.22"]
PATHS = {"alive": "/img/camera.png", "gone": "/gone/coins.png", "back": "/busy/coins.png", "error": "/error/coins.png"}


def requests(web: FixtureWeb) -> dict[str, int]:
    """Requests so far per sample of :data:`PATHS` (robots.txt not counted). Cumulative: the
    fixture web's reset would also reset ``/busy/``'s count."""
    per_path: dict[str, int] = {}
    for paths in web.stats()["by_host"].values():
        for path, n in paths.items():
            per_path[path] = per_path.get(path, 0) + n
    return {name: per_path.get(path, 0) for name, path in PATHS.items()}


def findings(ws, run_id: str) -> dict[tuple[str, str], dict]:
    con = store.connect(ws, read_only=True)
    try:
        rows = con.sql("SELECT url, reason, evidence FROM findings WHERE run_id = ?", params=[run_id]).fetchall()
    finally:
        con.close()
    return {(url, reason): json.loads(evidence) for url, reason, evidence in rows}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, test_data):
    tmp = tmp_path_factory.mktemp("recheck")
    skimage = test_data / "images" / "skimage"
    with FixtureWeb(HOSTS, images=[skimage]) as web:
        urls = {name: web.url(path + ("?times=1" if name == "back" else "")) for name, path in PATHS.items()}
        # a scan checks a link once; dead_links wants 2 agreeing checks: the second comes from a recheck
        path = url_list_config(tmp, "recheck", list(urls.values()), {"dead_links": {"min_checks": 2}},
                               dead_checks=1, retries=0, recheck_interval=0)
        (tmp / "md5.txt").write_text(hashlib.md5((skimage / "coins.png").read_bytes()).hexdigest() + "\n")
        cfg = load_config(path)
        out = {"config": cfg, "urls": urls, "ws": cfg.workspace}
        for step, run in (("scan", lambda: run_scan(cfg)), ("recheck", lambda: run_scan(cfg, "recheck")),
                          ("recheck_cli", lambda: CliRunner().invoke(app, ["recheck", str(path)])), ("scan_again", lambda: run_scan(cfg))):
            before = requests(web)
            out[step] = run()
            out[f"{step}_requests"] = {name: n - before[name] for name, n in requests(web).items()}
    return out


def test_a_scan_alone_does_not_call_a_link_dead_on_one_check(runs):
    urls, found = runs["urls"], findings(runs["ws"], runs["scan"]["run_id"])
    assert runs["scan"]["status"] == "completed"
    assert (urls["gone"], "link.dead") not in found
    assert {(urls["back"], "link.transient"), (urls["error"], "link.transient")} <= set(found)


def test_a_recheck_checks_only_the_due_links_once(runs):
    assert runs["recheck"]["kind"] == "recheck" and runs["recheck"]["status"] == "completed"
    assert runs["recheck_requests"] == {"alive": 0, "gone": 1, "back": 1, "error": 1}


def test_a_dead_link_is_confirmed_across_runs(runs):
    urls, found = runs["urls"], findings(runs["ws"], runs["recheck"]["run_id"])
    assert found[(urls["gone"], "link.dead")]["checks"] == 2
    con = store.connect(runs["ws"], read_only=True)
    try:
        history = con.sql("SELECT status, observation_id, fetched_at FROM fetches WHERE url = ? ORDER BY fetched_at", params=[urls["gone"]]).fetchall()
        kinds = con.sql("SELECT kind FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()
    assert [h[0] for h in history[:2]] == ["dead", "dead"]
    assert history[0][1] != history[1][1], "each check belongs to the run's own observation"
    assert [k for (k,) in kinds][:2] == ["scan", "recheck"]


def test_a_link_that_comes_back_is_alive_and_its_bytes_are_matched(runs):
    urls, found = runs["urls"], findings(runs["ws"], runs["recheck"]["run_id"])
    assert (urls["back"], "link.transient") not in found
    assert found[(urls["back"], "hash_match.md5")]["bank"] == "b"
    assert (urls["error"], "link.transient") in found


def test_a_confirmed_or_alive_link_is_not_due_again(runs):
    assert runs["recheck_cli"].exit_code == 0, runs["recheck_cli"].output
    assert runs["recheck_cli_requests"] == {"alive": 0, "gone": 0, "back": 0, "error": 1}


def test_a_scan_after_a_recheck_builds_on_it(runs):
    assert runs["scan_again_requests"] == {"alive": 0, "gone": 0, "back": 0, "error": 0}
    ws = runs["ws"]
    con = store.connect(ws, read_only=True)
    try:
        recheck_cli_run = con.execute("SELECT run_id FROM runs WHERE kind = 'recheck' ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    finally:
        con.close()
    assert set(findings(ws, runs["scan_again"]["run_id"])) == set(findings(ws, recheck_cli_run))


def test_a_link_is_due_only_once_the_recheck_interval_has_passed(runs):
    cfg = runs["config"]
    plan = ScanPlan(cfg, cfg.detector_params(), (), observe=False, recheck=datetime.now(UTC))
    con = store.connect(runs["ws"], read_only=True)
    try:
        (latest,) = con.execute("SELECT content_observation FROM shards ORDER BY run_id DESC LIMIT 1").fetchone()
    finally:
        con.close()
    content = plan.layout.observation(latest) / "content.parquet"
    assert due_urls(plan, content) == {runs["urls"]["error"]}
    later = replace(plan, config=cfg.model_copy(update={"fetch": cfg.fetch.model_copy(update={"recheck_interval": 3600})}))
    assert due_urls(later, content) == set()


def test_the_report_counts_every_link_of_a_recheck_run_by_its_latest_check(runs):
    from scrutineer.reports.data import report_data

    con = store.connect(runs["ws"], read_only=True)
    try:
        liveness = report_data(con, runs["ws"], "recheck", runs["recheck"]["run_id"])["liveness"]
    finally:
        con.close()
    assert {r["status"]: r["urls"] for r in liveness} == {"alive": 2, "dead": 1, "transient": 1}


def test_a_recheck_stores_only_the_hashes_it_made_and_the_run_has_them_all(runs):
    from scrutineer import Workspace

    urls = runs["urls"]
    with Workspace(runs["ws"]) as ws:
        recheck_run = runs["recheck"]["run_id"]
        (observation,) = ws.sql("SELECT content_observation FROM shards WHERE run_id = ?", params=[recheck_run]).fetchall()[0]
        stored = ws.sql("SELECT url FROM content_hashes WHERE observation_id = ?", params=[observation]).fetchall()
        of_scan = {u for (u,) in ws.content_hashes(runs["scan"]["run_id"]).select("url").fetchall()}
        of_recheck = ws.content_hashes(recheck_run).select("url").fetchall()
    assert stored == [(urls["back"],)]  # the link that came back; the alive one's hashes are the scan's
    assert of_scan == {urls["alive"]}
    assert sorted(u for (u,) in of_recheck) == sorted([urls["alive"], urls["back"]])
