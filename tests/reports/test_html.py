"""The HTML run report and its findings-count CSV."""

import pytest
from conftest import scan, scrutineer_with_file_size_limit, write_config

from reports.html import write_report
from scrutineer.config import load_config


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    (root / "d.jsonl").write_text('{"url": "http://x.org/a.jpg", "caption": "a"}\n' * 3)
    config = write_config(root, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"dedup": {}}})
    assert scan(config)["status"] == "completed"
    return config


def test_report_failing_to_write_leaves_the_previous_report(scanned):
    path = write_report(load_config(scanned))
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    result = scrutineer_with_file_size_limit(path.stat().st_size // 2, "report", str(scanned))
    assert result.returncode != 0 and "File too large" in result.stderr
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before
