"""``scrutineer flags export``: the API's rules per account, both formats, the file's mode, paging,
and a contributor's export imported again (issue 25, "Contributors")."""

from __future__ import annotations

import csv
import json
import stat
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from conftest import scan, write_config
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core.banks import url_md5
from scrutineer.core.config import Config, load_config
from scrutineer.crowd.access import Services
from scrutineer.crowd.app import create_app
from scrutineer.crowd.flag_export import COLUMNS, OPERATOR, exported
from scrutineer.crowd.flags import FlagItem
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore

runner = CliRunner()
FORMULA = "=HYPERLINK(\"http://evil.example\")"
ROWS = [{"key": f"k{i}", "url": f"http://h{i}.example/{i}.jpg", "caption": f"caption {i}"} for i in range(8)]
LISTED = "k3"  # on the hash list: restricted
CROWD = {"categories": {"csam_suspected": {"sensitive": True}, "copyright": {"description": "Used without permission"}}}


@dataclass
class Store:
    config: Path
    cfg: Config
    tokens: dict[str, str]  # account name -> API token
    flags: dict[str, int]  # "<sample>/<category>" -> flag id


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """A scanned workspace: ``owner`` flagged k0 (a note that is a formula), k1, k3 (hash-listed)
    and k4 (csam_suspected); ``other`` flagged k3 and k5; ``rita`` the reviewer confirmed k0 and k4
    and rejected k1, her notes quoting the URLs."""
    root = tmp_path_factory.mktemp("export")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "urls.txt").write_text(url_md5(ROWS[3]["url"]) + "\n")
    config = write_config(root, {
        "dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
        "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
        "detectors": {"url_hashlist": {}},
        "crowd": CROWD,
    })
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    with CrowdStore(cfg.crowd) as crowd, Snapshot(cfg.workspace) as snapshot:
        tokens = {name: crowd.add_account(name, role)[1] for name, role in
                  (("owner", "contributor"), ("other", "contributor"), ("againcsv", "contributor"), ("againjsonl", "contributor"),
                   ("rita", "reviewer"))}
        sample = {k: found for [found] in snapshot.samples([("sample_id", r["key"]) for r in ROWS]) for k in [found.sample_id]}
        made = {}
        for name, wanted in (("owner", [("k0", "copyright", FORMULA), ("k1", "copyright", "mine"), ("k3", "copyright", "listed"),
                                        ("k4", "csam_suspected", "sensitive")]),
                             ("other", [("k3", "copyright", "me too"), ("k5", "copyright", "other's")])):
            ids = crowd.flag(crowd.by_name(name), [FlagItem(sample[k], category, note) for k, category, note in wanted], "import")
            made |= {f"{k}/{category}": flag_id for (k, category, _), (flag_id, _) in zip(wanted, ids)}
        rita = crowd.by_name("rita")
        for key, decision, reason in (("k0/copyright", "confirm", "matches_category"), ("k1/copyright", "reject", "not_in_category"),
                                      ("k4/csam_suspected", "confirm", "matches_category")):
            crowd.review(rita, made[key], decision, reason, f"seen at {ROWS[int(key[1])]['url']}")
    return Store(config, cfg, tokens, made)


def export(store: Store, *options: str) -> tuple[str, str]:
    result = runner.invoke(app, ["flags", "export", str(store.config), *options])
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def api_view(store: Store, name: str, flag_id: int) -> dict:
    """``GET /api/flags/{id}`` as ``name`` sees it, without its audit trail and claim."""
    with TestClient(create_app(store.cfg)) as client:
        response = client.get(f"/api/flags/{flag_id}", headers={"Authorization": f"Bearer {store.tokens[name]}"})
    assert response.status_code == 200, response.text
    return {k: v for k, v in response.json().items() if k not in ("audit", "claim")}


def test_a_contributors_export_is_what_the_api_shows_them(store):
    out, err = export(store, "--as", "owner", "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == sorted((store.flags[k] for k in ("k0/copyright", "k1/copyright", "k3/copyright", "k4/csam_suspected")),
                                                reverse=True)
    for r in records:
        assert instants({k: v for k, v in r.items() if k != "note"}) == instants(api_view(store, "owner", r["id"]))
    by_sample = {r["sample_id"]: r for r in records}
    assert all(r["url"] is None for r in records)  # no URL, for any sample
    assert not any(row["url"] in out for row in ROWS)  # not even in a reviewer's note
    assert by_sample["k4"]["status"] == "pending" and by_sample["k4"]["reviews"] == []  # a sensitive flag's outcome is restricted
    assert by_sample["k0"]["reviews"][0]["reason"] == "matches_category" and by_sample["k0"]["reviews"][0]["note"] is None
    assert [r["by"] for r in by_sample["k3"]["reports"]] == ["owner"]  # their own report alone
    assert by_sample["k0"]["note"] == FORMULA  # JSONL is exact
    assert "restricted facts" not in err


def instants(value: object) -> object:
    """``value`` with every ISO 8601 string read as a time (the API writes UTC as ``Z``, the export ``+00:00``)."""
    if isinstance(value, dict):
        return {k: instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [instants(v) for v in value]
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def test_a_reviewers_and_the_default_export_hold_every_flag_with_urls_in_an_owner_only_file(store, tmp_path):
    for options in ((), ("--as", "rita")):
        path = tmp_path / f"flags{len(options)}.csv"
        _, err = export(store, "--out", str(path), *options)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "restricted facts" in err and "5 flags exported" in err
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        assert tuple(rows[0]) == COLUMNS
        by_key = {f"{r['sample_id']}/{r['category']}": r for r in rows}
        assert set(by_key) == set(store.flags)
        assert by_key["k3/copyright"]["url"] == ROWS[3]["url"] and by_key["k3/copyright"]["restricted"] == "True"
        assert by_key["k3/copyright"]["reported_by"].split("\n") == ["owner", "other"]
        assert by_key["k4/csam_suspected"]["status"] == "confirmed"
        assert by_key["k1/copyright"]["decisions"] == "reject not_in_category" and by_key["k1/copyright"]["review_notes"] == f"seen at {ROWS[1]['url']}"
        assert by_key["k0/copyright"]["note"] == "'" + FORMULA  # spreadsheet-safe
    assert path.read_bytes().count(b"\r\n") == 1 + 5  # rows end in CRLF; a line feed inside a cell is quoted


def test_status_filter_and_paging(store):
    out, _ = export(store, "--status", "pending", "--format", "jsonl")
    assert {json.loads(line)["sample_id"] for line in out.splitlines()} == {"k3", "k5"}
    with closing(Services.open(store.cfg)) as s:
        assert [r["id"] for r in exported(s, OPERATOR, page=2)] == [r["id"] for r in exported(s, OPERATOR)] == sorted(store.flags.values(), reverse=True)


def test_an_unknown_account_is_refused_in_one_line(store):
    result = runner.invoke(app, ["flags", "export", str(store.config), "--as", "nobody"])
    assert result.exit_code == 1 and "no account 'nobody'" in result.output


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_contributors_export_imports_again(store, tmp_path, fmt):
    """Another contributor imports ``owner``'s export: the same samples, categories and notes (a
    note that CSV made spreadsheet-safe keeps its ``'``; JSONL is exact)."""
    path = tmp_path / f"owner.{fmt}"
    export(store, "--as", "owner", "--format", fmt, "--out", str(path))
    imported = runner.invoke(app, ["flags", "import", str(store.config), str(path), "--by", f"again{fmt}"])
    assert imported.exit_code == 0, imported.output
    assert "4 flags recorded (0 already recorded)" in imported.stdout
    out, _ = export(store, "--as", f"again{fmt}", "--format", "jsonl")
    mine = {(r["sample_id"], r["category"]): r["note"] for r in (json.loads(line) for line in out.splitlines())}
    assert mine == {("k0", "copyright"): FORMULA if fmt == "jsonl" else "'" + FORMULA,
                    ("k1", "copyright"): "mine", ("k3", "copyright"): "listed", ("k4", "csam_suspected"): "sensitive"}
