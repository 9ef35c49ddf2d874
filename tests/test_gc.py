"""``scrutineer gc``: a workspace scanned three times with changed detector parameters loses the
judgement sets no kept run needs, and the release, rematch and recheck of the kept run give what
they gave before it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core import store
from scrutineer.core.banks import BankRef
from scrutineer.core.config import Config, load_config
from scrutineer.core.contract import JUDGEMENT
from scrutineer.core.errors import ConfigError, WorkspaceError
from scrutineer.core.layout import Layout
from scrutineer.flows.gc import collect
from scrutineer.flows.plan import ScanPlan
from scrutineer.flows.scan import run_scan
from scrutineer.release.build import build_release
from scrutineer.testing.fixture_web import FixtureWeb
from tests.conftest import url_list_config, write_config

HOSTS = ["127.0.0.23"]
PATHS = ["/img/camera.png", "/gone/coins.png", "/busy/coins.png?times=1", "/error/coins.png"]
#: license_gaps' allow-list of each of the three scans: each makes new license_gaps judgement sets.
ALLOWED = (["CC0-1.0"], ["CC-BY-4.0"], ["MIT"])
VARIANTS = {"links": {"remove": ["hash_match", "link"]}, "licences": {"remove": ["hash_match", "license"]}}


def configure(path: Path, workspace: Path | None = None, allow: list[str] | None = None) -> None:
    """Set the config's release variants, and its workspace or license_gaps' allow-list."""
    raw = yaml.safe_load(path.read_text())
    raw["release"] = {"variants": VARIANTS}
    if workspace is not None:
        raw["workspace"] = str(workspace)
    if allow is not None:
        raw["detectors"]["license_gaps"] = {"allow": allow}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def run_sets(ws: Path, run_id: str) -> tuple[set[str], set[str]]:
    """(observation ids, judgement ids) run ``run_id`` used, as its plan names them."""
    con = store.connect(ws, read_only=True)
    try:
        config, banks = con.execute("SELECT config, banks FROM runs WHERE run_id = ?", [run_id]).fetchone()
        shards = con.execute("SELECT rows_observation, content_observation FROM shards WHERE run_id = ?", [run_id]).fetchall()
    finally:
        con.close()
    cfg = Config.model_validate_json(config)
    plan = ScanPlan(cfg, cfg.detector_params(), tuple(BankRef(**b) for b in json.loads(banks)))
    return {o for s in shards for o in s if o}, {j for rows, content in shards for j in plan.judgements(rows, content).values()}


def findings(ws: Path, run_id: str, without: tuple[str, ...] = ("run_id",)) -> list[tuple]:
    con = store.connect(ws, read_only=True)
    try:
        rel = con.sql("SELECT * EXCLUDE (" + ", ".join(without) + ") FROM findings WHERE run_id = ? ORDER BY ALL", params=[run_id])
        return rel.fetchall()
    finally:
        con.close()


def release_files(out: Path) -> dict[str, bytes]:
    """Every file of a release, its manifest without the time it was written."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    manifest = json.loads(files.pop(Layout.MANIFEST))
    manifest.pop("created_at")
    manifest.pop("croissant")  # the sha256 of croissant.json, which names the time too
    files.pop(Layout.CARD)  # the card names the time too
    files.pop(Layout.CROISSANT)  # so does croissant.json
    return files | {Layout.MANIFEST: json.dumps(manifest, sort_keys=True).encode()}


def after(config: Path) -> dict:
    """Release, rematch and recheck of the workspace's latest run, as the kept run's config has them."""
    cfg = load_config(config)
    out = {"release": release_files(build_release(cfg, "links"))}
    rematch = run_scan(cfg, "rematch")
    recheck = run_scan(cfg, "recheck")
    out["rematch"], out["recheck"] = rematch, recheck
    out["rematch_findings"] = findings(cfg.workspace, rematch["run_id"])
    out["recheck_findings"] = findings(cfg.workspace, recheck["run_id"], ("run_id", "observation_id"))
    return out


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, test_data):
    """Three scans, a release of the first (which keeps it), and two copies of the workspace: one
    collected by gc --keep-runs 1, one not; then release, rematch and recheck on both."""
    tmp = tmp_path_factory.mktemp("gc")
    with FixtureWeb(HOSTS, images=[test_data / "images" / "skimage"]) as web:
        path = url_list_config(tmp / "scanned", "gc", [web.url(p) for p in PATHS],
                               {"dead_links": {"min_checks": 2}, "dedup": {"on": ["url"]}}, dead_checks=1, retries=0, recheck_interval=0)
        runs = []
        for allow in ALLOWED:
            configure(path, allow=allow)
            cfg = load_config(path)
            runs.append(run_scan(cfg)["run_id"])
            if len(runs) == 1:
                build_release(cfg, "licences")  # its manifest names the first run: gc keeps it
        ws = cfg.workspace
        layout = Layout(ws)
        # what a killed run leaves: a temporary, and a recheck set the store never recorded
        orphan = layout.observation("0" * 32)
        orphan.mkdir()
        (orphan / Layout.CONTENT).write_bytes(b"x" * 100)
        (layout.judgements / ".0123.tmp-abcd").mkdir()
        sets = {run: run_sets(ws, run) for run in runs}
        copies = {}
        for name in ("before", "collected"):
            shutil.copytree(tmp / "scanned", tmp / name)
            configure(tmp / name / "config.yaml", workspace=tmp / name / "work")
            copies[name] = tmp / name / "config.yaml"
        dry = collect(load_config(copies["collected"]), keep_runs=1, dry_run=True)
        gc = [CliRunner().invoke(app, ["gc", str(copies["collected"]), "--keep-runs", "1", *dry_run]) for dry_run in (["--dry-run"], [])]
        return {"runs": runs, "sets": sets, "dry": dry, "gc": gc, "copies": copies,
                "before": after(copies["before"]), "after": after(copies["collected"])}


def test_gc_deletes_the_sets_no_kept_run_needs(scanned):
    runs, sets, dry = scanned["runs"], scanned["sets"], scanned["dry"]
    layout = Layout(load_config(scanned["copies"]["collected"]).workspace)
    assert dry.kept_runs == (runs[2], runs[0]), "the latest, and the one a release names"
    kept = sets[runs[0]][1] | sets[runs[2]][1]
    unneeded = sets[runs[1]][1] - kept
    assert unneeded, "the second scan's license_gaps judgements are its own"
    assert {p.name for p in dry.deleted["judgements"]} == unneeded
    assert [p.name for p in dry.deleted["observations"]] == ["0" * 32]
    assert [p.name for p in dry.deleted["temporaries"]] == [".0123.tmp-abcd"]
    assert set(dry.deleted) == {"judgements", "observations", "temporaries"}, "the banks are the kept runs'"
    gc = scanned["gc"][1]
    assert gc.exit_code == 0, gc.output
    assert f"freed {dry.bytes} bytes" in gc.output and dry.bytes > 0
    assert not any(layout.judgement(j).exists() for j in unneeded)
    assert all(layout.judgement(j).exists() for j in kept)
    assert all(layout.observation(o).exists() for run in runs for o in sets[run][0]), "the three scans share their observations"
    assert not layout.observation("0" * 32).exists(), "an orphaned recheck set goes"
    assert not (layout.judgements / ".0123.tmp-abcd").exists()


def test_a_dry_run_prints_what_gc_frees_and_deletes_nothing(scanned):
    """Two dry runs came before the gc, which freed all they said: they had deleted nothing."""
    dry, (printed, gc) = scanned["dry"], scanned["gc"]
    assert printed.exit_code == 0, printed.output
    assert f"would free {dry.bytes} bytes" in printed.output and "nothing deleted" in printed.output
    assert f"would delete {len(dry.deleted['judgements'])} judgement sets" in printed.output
    assert f"deleted {len(dry.deleted['judgements'])} judgement sets" in gc.output and f"freed {dry.bytes} bytes" in gc.output


def test_release_rematch_and_recheck_of_the_kept_run_give_what_they_gave(scanned):
    before, after = scanned["before"], scanned["after"]
    assert after["release"] == before["release"]
    assert after["rematch"]["status"] == "completed"
    assert {s["status"] for s in after["rematch"]["shards"]} == {"reused"}, "every set the rematch reads is still there"
    assert after["rematch_findings"] == before["rematch_findings"]
    assert after["recheck"]["status"] == before["recheck"]["status"] == "completed"
    assert after["recheck_findings"] == before["recheck_findings"]
    assert any(f[6] == "link.dead" for f in after["recheck_findings"]), "the recheck confirmed the dead link"


def test_a_second_gc_frees_nothing_the_runs_since_need(scanned):
    """The rematch and the recheck since are kept with the scan they build on: the recheck's new
    content observation is its lineage's newest, the scan's own is the kept scan's."""
    again = collect(load_config(scanned["copies"]["collected"]), keep_runs=3)
    assert (again.deleted, again.bytes) == ({}, 0)


def test_gc_refuses_a_workspace_without_a_store_and_keeping_no_run(tmp_path):
    path = url_list_config(tmp_path, "empty", ["http://127.0.0.1/x"])
    with pytest.raises(WorkspaceError, match="no store"):
        collect(load_config(path))
    with pytest.raises(ConfigError, match="at least"):
        collect(load_config(path), keep_runs=0)


def test_gc_drops_from_the_store_the_judgements_no_run_uses(tmp_path):
    """A sync replaces a run's crowd findings (scrutineer.crowd.sync): the set it replaced, which no
    run uses any more, is dropped by gc; every run's findings stay."""
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"url": f"https://a.example/{i}.jpg", "license": "?"}) + "\n" for i in range(3)))
    path = write_config(tmp_path, {"dataset": {"name": "d", "shards": [str(tmp_path / "d.jsonl")]}, "detectors": {"license_gaps": {}}})
    cfg = load_config(path)
    run = run_scan(cfg)["run_id"]

    def flag(i: int) -> dict:
        return dict.fromkeys(JUDGEMENT.names) | {"shard_id": "d.jsonl", "row_index": i, "sample_id": f"d.jsonl:{i}", "url": f"https://a.example/{i}.jpg",
                                                 "detector": "crowd", "detector_version": "1", "reason": "crowd.copyright", "evidence": "{}",
                                                 "restricted": False}

    con = store.connect(cfg.workspace)
    try:
        store.insert_findings(con, run, [flag(0)])  # a first sync
        store.drop_findings(con, run, "crowd")  # a later one, after another flag was confirmed
        store.insert_findings(con, run, [flag(0), flag(1)])
    finally:
        con.close()
    want = findings(cfg.workspace, run)
    assert [r[7] for r in want].count("crowd.copyright") == 2
    dry = collect(cfg, dry_run=True)
    assert dry.stored == (1, 1)
    assert collect(cfg).stored == (1, 1)
    assert findings(cfg.workspace, run) == want
    with store.connect(cfg.workspace, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM judged_findings WHERE detector = 'crowd'").fetchall() == [(2,)]
    assert collect(cfg).stored == (0, 0)
