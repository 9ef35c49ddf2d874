"""What the flood guard's test of a finding against held entries costs a release
(scrutineer.core.flood.idle_sql), on synthetic findings in an in-memory store.

Prints the CPU seconds (process time: DuckDB's threads included, so a busy machine's other work
does not count) of the release's removal query over N findings (1 in 1,000 a restricted bank
match): without the test (a run without holds skips it: acting_sql), with it and no hold, and
with it and one held entry.

    .venv/bin/python bench/flood_guard.py                  # 5 million findings
    .venv/bin/python bench/flood_guard.py --findings 1000000
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import duckdb

from scrutineer.core.contract import HOLDS, TABLES, VIEWS, ddl
from scrutineer.core.flood import idle_sql
from scrutineer.core.store import insert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=5_000_000)
    args = parser.parse_args()
    con = duckdb.connect()
    for table in [*TABLES.values(), *VIEWS.values()]:
        con.execute(ddl(table))
    bank = "'{\"bank\":\"b\",\"bank_version\":\"1\",\"signal\":\"pdq\",\"entry\":\"e' || (i % 7) || '\",\"distance\":0}'"
    con.execute("INSERT INTO run_judgements VALUES ('r', 'j')")  # run r's findings: one judgement's (scrutineer.core.store)
    con.execute(
        "INSERT INTO judged_findings SELECT 'j', NULL, 's' || (i // 100000), i % 100000, 'k' || i, 'http://h/' || i, "
        "CASE WHEN i % 1000 = 0 THEN 'content_hashlist' ELSE 'dedup' END, '1', "
        "CASE WHEN i % 1000 = 0 THEN 'hash_match.pdq' ELSE 'duplicate.url' END, "
        f"CASE WHEN i % 1000 = 0 THEN {bank} ELSE '{{\"kept\":1}}' END, i % 1000 = 0 FROM range(?) t(i)",
        [args.findings],
    )

    def removal(acting: str) -> float:
        started = time.process_time()
        con.execute("SELECT count(*) FROM (SELECT sample_id, shard_id, row_index, bool_or(restricted) FROM findings f "
                    f"WHERE run_id = 'r' AND {acting} GROUP BY ALL HAVING bool_or(reason LIKE 'hash_match%' OR reason LIKE 'duplicate%'))").fetchall()
        return time.process_time() - started

    print(f"{args.findings:,} findings; CPU seconds of the release's removal query")
    print(f"  without the test (a run without holds): {removal('TRUE'):.2f}")
    print(f"  with the test, no hold:                 {removal(f'NOT {idle_sql()}'):.2f}")
    insert(con, HOLDS, [{"run_id": "r", "hold_id": "x", "detector": "content_hashlist", "bank": "b", "bank_version": "1", "signal": "pdq",
                         "entry": "e3", "matches": 700, "max_matches": 100, "hosts": 1, "domains": 1, "held_at": datetime.now(UTC)}])
    print(f"  with the test, one held entry:          {removal(f'NOT {idle_sql()}'):.2f}")


if __name__ == "__main__":
    main()
