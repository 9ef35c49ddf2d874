"""The load stores each judgement's findings once: an unchanged rescan stores no finding again and
has the first run's findings; a changed shard's findings change, and only its judgements and the
corpus-wide ones are stored anew; a store made before findings were stored once keeps its findings
(the writer migrates it; a read-only command reads it as it is)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from conftest import scan, write_config

from scrutineer import Workspace
from scrutineer.core import store
from scrutineer.core.banks import url_md5

#: The ``findings`` table as Scrutineer made it before findings were stored once per judgement.
OLD_FINDINGS_DDL = (
    "CREATE TABLE findings (run_id VARCHAR, observation_id VARCHAR, shard_id VARCHAR, row_index BIGINT, sample_id VARCHAR, url VARCHAR, "
    "detector VARCHAR, detector_version VARCHAR, reason VARCHAR, evidence JSON, restricted BOOLEAN)"
)
#: The tables that came with it.
NEW_TABLES = ("judgements", "judged_findings", "run_judgements")


def shard_rows(shard: int, licence: str = "?") -> list[dict]:
    """Ten rows; URLs and captions repeat within and across shards."""
    return [{"url": f"https://img.example/{(shard * 10 + i) % 13}.jpg", "caption": f"caption {(shard * 10 + i) % 7}", "license": licence}
            for i in range(10)]


def dataset(tmp: Path, licences: tuple[str, ...] = ("?", "?", "?")) -> Path:
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    for s, licence in enumerate(licences):
        (data / f"part-{s}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in shard_rows(s, licence)))
    bank = tmp / "bank.txt"
    bank.write_text(url_md5("https://img.example/3.jpg") + "\n")
    return write_config(tmp, {
        "dataset": {"name": "d", "shards": [str(data / "*.jsonl")]},
        "banks": [{"name": "w", "path": str(bank), "signal_type": "url_md5", "source": "test", "version": "1"}],
        "detectors": {"url_hashlist": {}, "license_gaps": {"allow": ["CC0-1.0"]}, "dedup": {"on": ["url", "caption"]}},
        "workers": 1,
    })


def findings(ws: Path, run_id: str) -> list[tuple]:
    """Run ``run_id``'s findings, every column but run_id, sorted (read-only, as `query` reads them)."""
    with Workspace(ws) as w:
        return w.sql("SELECT * EXCLUDE (run_id) FROM findings WHERE run_id = ? ORDER BY ALL", params=[run_id]).fetchall()


def stored(ws: Path) -> list[tuple]:
    """(judgement_id, detector, findings, loaded_by) of every stored judgement, and the findings rows stored."""
    with Workspace(ws) as w:
        judgements = w.sql("SELECT judgement_id, detector, findings, loaded_by FROM judgements ORDER BY ALL").fetchall()
        ((rows,),) = w.sql("SELECT count(*) FROM judged_findings").fetchall()
    return judgements, rows


def test_an_unchanged_rescan_stores_no_finding_again_and_has_the_same_findings(tmp_path):
    config = dataset(tmp_path)
    ws = tmp_path / "work"
    first = scan(config)
    judgements, rows = stored(ws)
    assert {r for _, _, _, r in judgements} == {first["run_id"]}
    assert rows == len(findings(ws, first["run_id"])) == sum(first["findings"].values()) > 0
    assert {"hash_match.url", "license.unknown", "duplicate.url", "duplicate.caption"} <= set(first["findings"])

    again = scan(config)
    assert [s["status"] for s in again["shards"]] == ["reused"] * 3
    assert stored(ws) == (judgements, rows), "the rescan stored nothing"
    assert findings(ws, again["run_id"]) == findings(ws, first["run_id"])
    assert again["findings"] == first["findings"]


def test_a_changed_shard_changes_its_findings_and_stores_only_what_changed(tmp_path):
    config = dataset(tmp_path)
    ws = tmp_path / "work"
    first = scan(config)
    before, rows = stored(ws)
    changed = dataset(tmp_path, ("?", "CC0-1.0", "?"))  # the second shard's licences are allowed now
    assert changed == config

    again = scan(config)
    assert [s["status"] for s in again["shards"]] == ["reused", "observed", "reused"]
    now = findings(ws, again["run_id"])
    assert now != findings(ws, first["run_id"])
    assert {(r[1], r[7]) for r in now if r[5] == "license_gaps"} == {("part-0.jsonl", "license.unknown"), ("part-2.jsonl", "license.unknown")}
    fresh = dataset(tmp_path / "fresh", ("?", "CC0-1.0", "?"))
    assert now == findings(tmp_path / "fresh" / "work", scan(fresh)["run_id"])

    after, rows_after = stored(ws)
    new = [j for j in after if j not in before]
    # the changed shard's judgement of each detector, and dedup's finalize over the signature sets
    assert sorted(d for _, d, _, _ in new) == ["dedup", "dedup", "license_gaps", "url_hashlist"]
    assert {r for _, _, _, r in new} == {again["run_id"]}
    assert rows_after == rows + sum(n for _, _, n, _ in new), "the unchanged shards' findings are not stored again"


def make_old(ws: Path) -> None:
    """Turn a store into one Scrutineer made before findings were stored once per judgement: its
    findings in a ``findings`` table (the old DDL), without the tables that came since."""
    con = duckdb.connect(str(ws / "scrutineer.duckdb"))
    try:
        con.execute("CREATE TEMP TABLE kept AS SELECT * FROM findings")
        con.execute("DROP VIEW findings")
        for table in NEW_TABLES:
            con.execute(f"DROP TABLE {table}")
        con.execute(OLD_FINDINGS_DDL)
        con.execute("INSERT INTO findings SELECT * FROM kept")
    finally:
        con.close()


def test_a_store_made_before_keeps_its_findings(tmp_path):
    config = dataset(tmp_path)
    ws = tmp_path / "work"
    old = scan(config)["run_id"]
    want = findings(ws, old)
    make_old(ws)

    # a read-only command reads the old table as it is, and the new tables as empty
    assert findings(ws, old) == want
    with store.connect(ws, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM judgements").fetchone() == (0,)

    # the next writer migrates it: the old run keeps its findings; the runs after it store theirs once
    first = scan(config)
    with store.connect(ws, read_only=True) as con:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main'").fetchall())
    assert kinds["findings"] == "VIEW" and all(kinds[t] == "BASE TABLE" for t in NEW_TABLES)
    assert findings(ws, old) == findings(ws, first["run_id"]) == want
    judgements, rows = stored(ws)
    assert rows == 2 * len(want), "the migrated findings, and the first run's after it (the migrated ones are not reused)"
    assert {r for _, _, _, r in judgements} == {old, first["run_id"]}
    again = scan(config)
    assert stored(ws) == (judgements, rows)
    assert findings(ws, again["run_id"]) == want
