"""The deployable flows' own decisions, run in this process: a scheduled flow with nothing to do
yet skips, and rematch_banks rematches only when a bank file changed."""

from __future__ import annotations

import pytest

from scrutineer.core import store
from scrutineer.core.config import load_config
from scrutineer.flows import prefect_api
from scrutineer.flows.service import recheck_links, rematch_banks
from tests.conftest import scan, write_config


@pytest.fixture
def config(tmp_path, test_data):
    (tmp_path / "urls.txt").write_text("0" * 32 + "\n")
    return write_config(tmp_path, {
        "dataset": {"name": "service", "shards": [str(test_data / "metadata" / "laion400m_img2dataset_test_1000.parquet")],
                    "columns": {"url": "URL", "caption": "TEXT"}},
        "banks": [{"name": "urls", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
        "detectors": {"url_hashlist": {}},
    })


def kinds(config) -> list[str]:
    con = store.connect(load_config(config).workspace, read_only=True)
    try:
        return [k for (k,) in con.execute("SELECT kind FROM runs ORDER BY started_at").fetchall()]
    finally:
        con.close()


def test_before_the_first_scan_the_scheduled_flows_skip(config):
    with prefect_api():
        assert rematch_banks(str(config)) == {"status": "skipped", "why": "no finished scan yet"}
        assert recheck_links(str(config)) == {"status": "skipped", "why": "no finished scan yet"}
    assert not (load_config(config).workspace / "scrutineer.duckdb").exists() or kinds(config) == []


def test_rematch_banks_rematches_only_when_a_bank_file_changed(config, tmp_path):
    scan(config)
    with prefect_api():
        unchanged = rematch_banks(str(config))
        (tmp_path / "urls.txt").write_text("0" * 32 + "\n" + "1" * 32 + "\n")
        changed = rematch_banks(str(config))
    assert unchanged == {"status": "skipped", "why": "the bank files are those of the latest run"}
    assert changed["kind"] == "rematch" and changed["status"] == "completed"
    assert kinds(config) == ["scan", "rematch"]


def test_deploy_needs_a_prefect_server_and_a_valid_cron_line(config):
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from scrutineer.cli.main import app

    with temporary_settings(updates={PREFECT_API_URL: None}):
        result = CliRunner().invoke(app, ["deploy", str(config), "--pool", "p"])
    assert result.exit_code == 1 and "set PREFECT_API_URL" in result.output
    config.write_text(config.read_text() + 'schedule:\n  sync: {cron: "0 3 * * 9"}\n')
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # nothing listens: the cron line fails first
        result = CliRunner().invoke(app, ["deploy", str(config), "--pool", "p"])
    assert result.exit_code == 1 and "schedule.sync" in result.output and "Invalid cron" in result.output, result.output
