"""The command line: dry run, config errors, query, a busy or unusable workspace, and the README's
demo command."""

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import readable_by_others, write_config
from typer.testing import CliRunner

from scrutineer.cli.main import app

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
runner = CliRunner()


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_example_configs_read_the_bundled_samples_in_a_fresh_clone(config, test_data, monkeypatch):
    monkeypatch.delenv("SCRUTINEER_SHARED_DATA", raising=False)
    result = runner.invoke(app, ["scan", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    shards = yaml.safe_load(result.output)["shards_resolved"]
    assert shards and all(Path(s["path"]).is_relative_to(test_data.resolve()) for s in shards)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_example_configs_resolve(config, test_data, tmp_path, monkeypatch):
    # outside a checkout beside shared/: SCRUTINEER_SHARED_DATA says where the data is (tests/data
    # holds the samples under the names the examples' globs match)
    monkeypatch.setenv("SCRUTINEER_SHARED_DATA", str(test_data))
    elsewhere = tmp_path / "a" / "b" / config.name
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text(config.read_text())
    result = runner.invoke(app, ["scan", str(elsewhere), "--dry-run"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["shards_resolved"], "the example's globs found no shard"
    assert all(Path(s["path"]).is_relative_to(test_data.resolve()) for s in resolved["shards_resolved"])
    assert Path(resolved["workspace"]).is_absolute()


def test_dry_run_prints_defaults_and_touches_nothing(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"dedup": None}})
    result = runner.invoke(app, ["scan", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["detectors"] == {"dedup": {
        "on": ["url", "caption"], "keep": "first",
        "near_caption": {"threshold": 0.8, "shingles": "char", "ngram": 5, "num_perm": 128, "seed": 42},
        "near_image": {"pdq_threshold": 31, "pdq_min_quality": 50, "pdq_blocks": 8, "phash_threshold": None, "phash_blocks": 4},
    }}
    assert resolved["dataset"]["batch_rows"] == 131072
    assert resolved["shards_resolved"] == [{"shard_id": "d.jsonl", "path": str(tmp_path / "d.jsonl"), "format": "jsonl"}]
    assert not (tmp_path / "work" / "scrutineer.duckdb").exists()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"dataset": {"name": "d", "shards": ["x"]}, "detectors": {"dedup": {}}, "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"dataset": {"name": "d", "shards": ["x"]}, "detectors": {"nsfw": {}}}, "unknown detector 'nsfw'; available: content_hashlist, dead_links, dedup, license_gaps, optouts, url_hashlist"),
        ({"dataset": {"name": "d", "shards": ["x"]}, "detectors": {"dedup": {"on": ["pixels"]}}}, "detectors.dedup"),
        ({"dataset": {"name": "d", "shards": ["x"]}, "detectors": {"license_gaps": {"allow": ["CC BY"]}}}, "not SPDX license ids"),
    ],
)
def test_config_errors_exit_1_with_a_message(tmp_path, config, message):
    path = write_config(tmp_path, config)
    result = runner.invoke(app, ["scan", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert message in result.output


def test_missing_shard_glob_is_reported(tmp_path):
    path = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["nothing/*.parquet"]}, "detectors": {"dedup": {}}})
    result = runner.invoke(app, ["scan", str(path), "--dry-run"])
    assert result.exit_code == 1 and "'nothing/*.parquet' matches no file" in result.output


def test_release_before_scan_is_an_error(tmp_path):
    path = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["x"]}, "detectors": {"dedup": {}}, "release": {"variants": {"v": {"remove": ["duplicate"]}}}})
    result = runner.invoke(app, ["release", str(path), "--variant", "v"])
    assert result.exit_code == 1 and "no finished scan" in result.output
    result = runner.invoke(app, ["release", str(path), "--variant", "nope"])
    assert result.exit_code == 1 and "unknown release variant 'nope'" in result.output


STORE_COMMANDS = [["release", "--variant", "v"], ["report"], ["takedown"], ["rematch"], ["query", "SELECT 1"], ["banks"], ["scan"]]
STORE_CONFIG = {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"dedup": {}}, "release": {"variants": {"v": {"remove": ["duplicate"]}}}}


def write_store_config(tmp_path, **overrides):
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    return write_config(tmp_path, {**STORE_CONFIG, **overrides})


@pytest.fixture
def held_workspace(tmp_path):
    """A workspace whose store another process holds open read-write, as a running scan does."""
    config = write_store_config(tmp_path)
    (tmp_path / "work").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('holding', flush=True); sys.stdin.read()", str(tmp_path / "work" / "scrutineer.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        yield config
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=[c[0] for c in STORE_COMMANDS])
def test_a_workspace_another_process_holds_is_a_one_line_error(held_workspace, command):
    result = runner.invoke(app, [command[0], str(held_workspace), *command[1:]])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: workspace {held_workspace.parent / 'work'} is in use by another process"), result.output or repr(result.exception)


@pytest.mark.parametrize("where", ["work", "work/sub"])
@pytest.mark.parametrize("command", STORE_COMMANDS[:5], ids=[c[0] for c in STORE_COMMANDS[:5]])
def test_a_workspace_that_is_a_file_is_a_one_line_error(tmp_path, command, where):
    config = write_store_config(tmp_path, workspace=str(tmp_path / where))
    (tmp_path / "work").write_text("not a directory\n")
    result = runner.invoke(app, [command[0], str(config), *command[1:]])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: workspace {tmp_path / where} "), result.output or repr(result.exception)


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=[c[0] for c in STORE_COMMANDS])
def test_a_store_that_is_not_a_database_is_a_one_line_error(tmp_path, command):
    config = write_store_config(tmp_path)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "scrutineer.duckdb").write_text("not a database\n" * 1000)
    result = runner.invoke(app, [command[0], str(config), *command[1:]])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: workspace {tmp_path / 'work'}: cannot open its store"), result.output or repr(result.exception)


def test_a_bad_bank_file_is_one_line_before_any_work(tmp_path):
    """Fault 14: a bad bank line came after a Prefect traceback, and --dry-run did not check it."""
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    (tmp_path / "urls.txt").write_text("# list\n" + "0" * 32 + "\nnot-a-hash\n")
    config = write_config(
        tmp_path,
        {
            "dataset": {"name": "d", "shards": ["d.jsonl"]},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}},
        },
    )
    dry = runner.invoke(app, ["scan", str(config), "--dry-run"])
    assert dry.exit_code == 1 and "urls.txt:3: not a url_md5 hash" in dry.output
    exe = Path(sys.executable).parent / "scrutineer"
    result = subprocess.run([str(exe), "scan", str(config)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: bank w: {tmp_path / 'urls.txt'}:3: not a url_md5 hash: expected 32 hex characters, got 'not-a-hash'"]


def test_a_detector_without_a_bank_of_its_signal_stops_the_scan(tmp_path):
    """Fault 14: url_hashlist with no URL bank failed every shard (exit 3), not the config (exit 1)."""
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"url_hashlist": {}}})
    result = runner.invoke(app, ["scan", str(config)])
    assert result.exit_code == 1 and "no bank has one" in result.output, result.output


def test_query_prints_csv_and_jsonl_for_scripts(tmp_path):
    """A table is cut to the console's width (80 columns when piped): csv and jsonl are whole."""
    from scrutineer.core import store

    config = write_store_config(tmp_path)
    store.connect(tmp_path / "work").close()
    sql = "SELECT 'a' || repeat('x', 200) AS long, 1 AS n, '=1+1' AS formula, NULL AS nothing UNION ALL SELECT 'b', 2, 'c,d', 'e' ORDER BY n"
    result = runner.invoke(app, ["query", str(config), sql, "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.output, newline=""))) == [
        ["long", "n", "formula", "nothing"], ["a" + "x" * 200, "1", "'=1+1", ""], ["b", "2", "c,d", "e"]]
    result = runner.invoke(app, ["query", str(config), sql, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.output.splitlines()] == [
        {"long": "a" + "x" * 200, "n": 1, "formula": "=1+1", "nothing": None}, {"long": "b", "n": 2, "formula": "c,d", "nothing": "e"}]


def test_query_reads_the_store_and_no_other_file(tmp_path):
    from scrutineer.core import store

    config = write_store_config(tmp_path)
    store.connect(tmp_path / "work").close()
    (tmp_path / "secret.csv").write_text("token\nsecret-7f3a\n")
    result = runner.invoke(app, ["query", str(config), "SELECT 'runs=' || count(*) AS n FROM runs"])
    assert result.exit_code == 0 and "runs=0" in result.output, result.output or repr(result.exception)
    for sql in [f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')", f"COPY (SELECT * FROM runs) TO '{tmp_path / 'out.csv'}'"]:
        result = runner.invoke(app, ["query", str(config), sql])
        assert result.exit_code == 1, result.output or repr(result.exception)
        lines = result.output.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: Permission Error:"), result.output
    assert not (tmp_path / "out.csv").exists()


def test_demo_runs_offline_without_shared_data(tmp_path):
    """The README's first command: serve, build, scan (fetching and hashing), re-match, release,
    takedown and report the bundled demo."""
    env = {**os.environ, "SCRUTINEER_SHARED_DATA": str(tmp_path / "absent")}
    exe = Path(sys.executable).parent / "scrutineer"
    # started with a umask that lets everyone read new files, as a login shell's default does
    result = subprocess.run([str(exe), "demo", "--dir", str(tmp_path / "demo")], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=600, umask=0o022)
    assert result.returncode == 0, result.stderr
    work = tmp_path / "demo" / "work"
    # the workspace (store, hash lists, takedown, crowd store) is its owner's only
    assert readable_by_others(work) == []
    for line, path in [
        ("findings:", work / "scrutineer.duckdb"),
        ("release:", work / "releases" / "RE-demo-laion-research" / "manifest.json"),
        ("takedown:", work / "takedown" / "demo-laion.csv"),
        ("report:", next((work / "reports").glob("*.html"))),
    ]:
        assert line in result.stdout and path.exists()
    for reason in ("hash_match.url", "hash_match.md5", "hash_match.pdq", "link.dead", "link.moved", "hash_match.phash"):
        assert reason in result.stdout, reason
    assert "hotline-phash re-matched, 0 HTTP requests" in " ".join(result.stdout.split())
    # the takedown manifest lists the upper-cased spelling the bank matched through HMA normalisation
    assert "HTTP://" in (work / "takedown" / "demo-laion.csv").read_text()
    # the public report names no listed URL
    listed = [line.split(",")[2] for line in (work / "takedown" / "demo-laion.csv").read_text().splitlines()[1:]]
    report = next((work / "reports").glob("*.html")).read_text()
    assert listed and not any(u in report for u in listed)
    # research-safe removes a superset of research
    import pyarrow.parquet as pq

    research = set(pq.read_table(work / "releases" / "RE-demo-laion-research" / "removed.parquet")["sample_id"].to_pylist())
    safe = set(pq.read_table(work / "releases" / "RE-demo-laion-research-safe" / "removed.parquet")["sample_id"].to_pylist())
    assert research < safe
    # one account per role, whose printed credentials work, and one flag waiting for review
    from scrutineer.core.config import load_config
    from scrutineer.crowd.store import CrowdStore

    crowd = CrowdStore(load_config(tmp_path / "demo" / "demo.yaml").crowd)
    for role in ("contributor", "reviewer", "maintainer"):
        name, password, token = re.search(rf"{role}\s+(\S+)\s+password (\S+)\s+API token (\S+)", result.stdout).groups()
        assert crowd.by_token(token).role == role and crowd.by_password(name, password).name == name
    assert crowd.counts()["by_status"] == {"pending": 1, "confirmed": 0, "rejected": 0}
    assert "scrutineer serve" in result.stdout
    # query works on the store, and agrees with the counts the demo printed
    printed = re.search(r"link\.dead\s*│\s*(\d+)", result.stdout).group(1)
    q = subprocess.run([str(exe), "query", str(tmp_path / "demo" / "demo.yaml"), "SELECT 'n=' || count(*) FROM findings WHERE reason = 'link.dead' AND run_id = (SELECT run_id FROM runs ORDER BY finished_at DESC LIMIT 1)"], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0 and f"n={printed}" in q.stdout
    crowd.close()

    # run again, it stops before changing anything: the accounts and the flag are kept (SQLite's
    # WAL index and log aside: a reader may update or remove them)
    def files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in sorted((tmp_path / "demo").rglob("*")) if p.is_file() and not p.name.endswith(("-shm", "-wal"))}

    before = files()
    again = subprocess.run([str(exe), "demo", "--dir", str(tmp_path / "demo")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    store = work / "crowd.sqlite"
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip().splitlines() == [f"error: {store} holds an earlier demo's 3 account(s) and 1 flag(s): pass --force to delete them and rebuild the demo"]
    assert files() == before
    with CrowdStore(load_config(tmp_path / "demo" / "demo.yaml").crowd) as crowd:
        assert crowd.by_password(name, password).name == name

    # --force rebuilds it: new accounts, the old passwords gone
    forced = subprocess.run([str(exe), "demo", "--dir", str(tmp_path / "demo"), "--force"], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=600, umask=0o022)
    assert forced.returncode == 0, forced.stderr
    with CrowdStore(load_config(tmp_path / "demo" / "demo.yaml").crowd) as crowd:
        assert crowd.by_password(name, password) is None
        assert crowd.counts()["by_status"] == {"pending": 1, "confirmed": 0, "rejected": 0}
