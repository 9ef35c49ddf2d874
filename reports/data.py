"""What a watchdog report shows about one run and its dataset over time, as plain data.

:func:`report_data` gathers it from the store (any connection, the read-only one of
:class:`scrutineer.Workspace` included: Parquet working files are read with pyarrow, never by
DuckDB) and returns a JSON-serialisable dict that the report templates render, the static file
(:func:`scrutineer.reports.html.write_report`) and the review app alike.

Public: a restricted finding (a hash-list match) appears in counts only. No URL is in the dict;
hosts and registrable domains are, and a duplicate cluster touching a restricted sample shows
neither its kept sample's id nor its caption nor its host.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scrutineer.core import flood, store
from scrutineer.core.errors import WorkspaceError
from scrutineer.core.policy import reason_filter_sql
from scrutineer.detectors.optouts import REASONS as OPTOUT_REASONS
from scrutineer.detectors.optouts import RESERVATIONS as OPTOUT_RESERVATIONS
from scrutineer.samples.domains import host_and_domain
from scrutineer.samples.licenses import to_spdx

#: Run statuses whose findings count in a dataset's history (``failed`` and ``interrupted`` runs
#: and a ``running`` one have no complete findings).
HISTORY_STATUSES = ("completed", "partial", "inconclusive")
#: How many registrable domains, licence values and duplicate clusters are listed.
TOP_DOMAINS, TOP_LICENCES, LARGEST_CLUSTERS = 10, 15, 10
#: How many copies of each of the largest clusters are shown (the first in (shard_id, row_index) order).
CLUSTER_COPIES = 5
#: Labels of the licence buckets that are not a licence value, and of a URL without a host.
OTHER, NONE, NO_HOST = "(other)", "(none)", "(no host)"
#: The headline's families of findings: figure -> the reason patterns it counts samples of
#: (:func:`scrutineer.core.policy.reason_filter_sql`: a code or a prefix). ``optouts`` counts
#: reservations only (OPTOUT_RESERVATIONS), as the opt-out section does.
HEADLINE_FAMILIES = {
    "dead_links": ("link.dead",),
    "optouts": OPTOUT_RESERVATIONS,
    "duplicates": ("duplicate",),
    "licence_gaps": ("license",),
}
#: A URL's authority (``user@host:port``): what follows ``scheme://`` up to the path, query or
#: fragment (RFC 3986 section 3.2); the host is parsed from it once per distinct authority.
AUTHORITY_RE = r"^\s*[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)"


def report_data(con: duckdb.DuckDBPyConnection, workspace: Path, dataset: str, run_id: str, crowd: dict | None = None) -> dict:
    """Everything a report shows about run ``run_id`` of ``dataset``, and the dataset over time.

    A *sample* is a ``(shard_id, row_index)``; "samples" counts distinct ones. Times are ISO 8601
    strings in UTC, to the second; durations are seconds. The dict::

        run: {run_id, dataset, kind, started_at, finished_at, status, tool_version,
              detectors: {name: {version, params}}, banks: [{name, source, version, signal_type,
              entries, sha256}]}          # as stored in table runs; entries is a count, never the hashes
        total_rows: int                   # rows of the run's shards
        shards: [{shard_id, format, status, rows, error, seconds}]   # by shard_id
        headline: {samples, flagged, restricted, dead_links, optouts, duplicates, licence_gaps}
            # samples: total_rows; flagged: samples with any finding; restricted: samples with a
            # restricted finding (a hash-list match); the rest: samples with a finding of that
            # family (HEADLINE_FAMILIES); optouts is None if the run did not configure ``optouts``
        held: {entries, findings, dismissed_entries, dismissed_findings}   # the flood guard's
            # counts (scrutineer.core.flood.Held): bank entries held for review and their findings,
            # entries dismissed and theirs; counts only (entries are restricted)
        reasons: [{reason, restricted: bool, findings, samples}]     # by reason
        history: [{run_id, started_at, kind, status, samples: {reason: int}}]
            # every finished run of the dataset (HISTORY_STATUSES), oldest first; every run's
            # ``samples`` has the same keys (the reasons of any of them, sorted), 0 where absent
        changes: None | {previous: {run_id, started_at}, added, gone,
                         reasons: [{reason, restricted, before, now, added, gone}]}
            # against the dataset's latest finished run started before this one; added/gone:
            # samples flagged now and not before, and the reverse (overall: for any reason)
        liveness: [{status, urls}]        # each URL's latest check in the run's content
            # observations, by status (scrutineer.core.contract.FETCH_STATUSES); [] if nothing fetched
        top_domains_matches: [{domain, samples}]   # registrable domains by samples with a
            # restricted finding, most first, TOP_DOMAINS at most; NO_HOST for URLs without one
        optouts: None | {reasons: [{reason, samples}],   # every OPTOUT_REASONS, in that order, 0 where none
                         reserved: int,   # samples with a reservation (OPTOUT_RESERVATIONS)
                         share: float,    # reserved / total_rows, 0.0 if no rows
                         domains: [{domain, reserved, samples: {reason: int}}]}
            # None if the run did not configure the ``optouts`` detector; domains: registrable
            # domains reserving a sample, by reserved samples (most first, then domain),
            # TOP_DOMAINS at most, with their samples per reason (every OPTOUT_REASONS)
        licences: [{licence, spdx: bool, samples}]   # the ``license`` values of the run's rows,
            # each as its SPDX id (scrutineer.samples.licenses.to_spdx; spdx true) so that spellings
            # of one licence count together, or as the raw text where none maps (spdx false); the
            # TOP_LICENCES most frequent, then OTHER, then NONE (null or blank), both spdx false
        clusters: {histogram: [{size, clusters}],   # by size; size = kept sample + its copies
                   largest: [{reason, size, restricted, kept_sample_id, caption, host,
                              copies: [{sample_id, caption, host}]}]}
            # the LARGEST_CLUSTERS largest duplicate clusters (reasons ``duplicate.*``, grouped by
            # the kept sample), with the first CLUSTER_COPIES of its copies; if any sample of one
            # has a restricted finding, ``restricted`` is true, kept_sample_id, caption and host
            # are None and copies is []
        crowd: the ``crowd`` argument as given: None, or {by_status: {pending, confirmed, rejected},
               by_category: [{category, sensitive, pending, confirmed, rejected}],
               top_domains: [{domain, flags}]}

    Args:
        con: a connection to the workspace's store.
        workspace: the workspace directory (its ``observations/`` are read for licences and
            captions).
        dataset: the dataset's name (``dataset.name`` of the config).
        run_id: the run reported.
        crowd: crowd flag counts, produced by the review app (passed through).

    Raises:
        WorkspaceError: no run ``run_id`` of ``dataset`` in the store.
        OSError: a rows observation the store records is missing or unreadable.
    """
    run = _run(con, dataset, run_id)
    shards = _records(con, "SELECT shard_id, format, status, rows, error, seconds FROM shards WHERE run_id = ? ORDER BY shard_id", [run_id])
    rows_files = store.rows_files(con, workspace, run_id)
    total_rows = sum(s["rows"] or 0 for s in shards)
    return {
        "run": run,
        "total_rows": total_rows,
        "headline": _headline(con, run_id, total_rows, "optouts" in run["detectors"]),
        "held": flood.held_counts(con, run_id).public(),
        "shards": shards,
        "reasons": _records(
            con,
            "SELECT reason, bool_or(restricted) AS restricted, count(*) AS findings, count(DISTINCT (shard_id, row_index)) AS samples "
            "FROM findings WHERE run_id = ? GROUP BY reason ORDER BY reason",
            [run_id],
        ),
        "history": _history(con, dataset),
        "changes": _changes(con, dataset, run_id),
        "liveness": _records(
            con,
            f"SELECT status, count(*) AS urls FROM (SELECT arg_max(status, fetched_at) AS status FROM fetches "
            f"WHERE observation_id IN (SELECT observation_id FROM ({store.CONTENT_LINEAGE})) GROUP BY url) "
            "GROUP BY status ORDER BY urls DESC, status",
            [run_id],
        ),
        "top_domains_matches": _top_domains(con, run_id),
        "optouts": optout_counts(con, run_id, total_rows) if "optouts" in run["detectors"] else None,
        "licences": _licences(rows_files.values()),
        "clusters": _clusters(con, run_id, rows_files),
        "crowd": crowd,
    }


def _headline(con: duckdb.DuckDBPyConnection, run_id: str, total_rows: int, optouts: bool) -> dict:
    sample = "count(DISTINCT (shard_id, row_index))"
    families = [reason_filter_sql(patterns) for patterns in HEADLINE_FAMILIES.values()]
    counts = ", ".join([sample, f"{sample} FILTER (restricted)"] + [f"{sample} FILTER ({where})" for where, _ in families])
    params = [p for _, family in families for p in family]
    ((flagged, restricted, *by_family),) = con.sql(f"SELECT {counts} FROM findings WHERE run_id = ?", params=[*params, run_id]).fetchall()
    headline = {"samples": total_rows, "flagged": flagged, "restricted": restricted, **dict(zip(HEADLINE_FAMILIES, by_family))}
    return headline | ({} if optouts else {"optouts": None})


def _records(con: duckdb.DuckDBPyConnection, query: str, params: list) -> list[dict]:
    """The rows of ``query`` as dicts keyed by column name, timestamps as ISO strings."""
    rel = con.sql(query, params=params)
    return [{c: _iso(v) if isinstance(v, datetime) else v for c, v in zip(rel.columns, row)} for row in rel.fetchall()]


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat(timespec="seconds") if t is not None else None


def _run(con: duckdb.DuckDBPyConnection, dataset: str, run_id: str) -> dict:
    found = _records(
        con,
        "SELECT run_id, dataset, kind, started_at, finished_at, status, tool_version, detectors, banks FROM runs WHERE run_id = ? AND dataset = ?",
        [run_id, dataset],
    )
    if not found:
        raise WorkspaceError(f"no run {run_id!r} of dataset {dataset!r} in the store")
    run = found[0]
    return run | {"detectors": json.loads(run["detectors"]), "banks": json.loads(run["banks"])}


def _history(con: duckdb.DuckDBPyConnection, dataset: str) -> list[dict]:
    counts = con.sql(
        "SELECT r.run_id, r.started_at, r.kind, r.status, f.reason, count(DISTINCT (f.shard_id, f.row_index)) AS samples "
        "FROM runs r LEFT JOIN findings f USING (run_id) WHERE r.dataset = ? AND list_contains(?, r.status) "
        "GROUP BY ALL ORDER BY r.started_at, r.run_id",
        params=[dataset, list(HISTORY_STATUSES)],
    ).fetchall()
    reasons = sorted({reason for *_, reason, _ in counts if reason is not None})
    runs: dict[str, dict] = {}
    for run_id, started_at, kind, status, reason, samples in counts:
        run = runs.setdefault(
            run_id, {"run_id": run_id, "started_at": _iso(started_at), "kind": kind, "status": status, "samples": dict.fromkeys(reasons, 0)}
        )
        if reason is not None:
            run["samples"][reason] = samples
    return list(runs.values())


#: The flagged (reason, sample) pairs of run ``$now`` and run ``$before`` side by side: columns
#: ``in_now`` and ``in_before`` hold the reason's ``restricted`` in that run, null if not flagged there.
_PAIRS = """
WITH flagged_now AS (SELECT DISTINCT reason, shard_id, row_index, restricted FROM findings WHERE run_id = $now),
flagged_before AS (SELECT DISTINCT reason, shard_id, row_index, restricted FROM findings WHERE run_id = $before),
pairs AS (SELECT reason, shard_id, row_index, n.restricted AS in_now, b.restricted AS in_before
          FROM flagged_now n FULL JOIN flagged_before b USING (reason, shard_id, row_index))
"""


def _changes(con: duckdb.DuckDBPyConnection, dataset: str, run_id: str) -> dict | None:
    previous = _records(
        con,
        "SELECT run_id, started_at FROM runs WHERE dataset = ? AND list_contains(?, status) "
        "AND started_at < (SELECT started_at FROM runs WHERE run_id = ?) ORDER BY started_at DESC LIMIT 1",
        [dataset, list(HISTORY_STATUSES), run_id],
    )
    if not previous:
        return None
    runs = {"now": run_id, "before": previous[0]["run_id"]}
    reasons = _records(
        con,
        f"{_PAIRS} SELECT reason, bool_or(coalesce(in_now, in_before)) AS restricted, count(in_before) AS before, count(in_now) AS now, "
        "count(*) FILTER (in_before IS NULL) AS added, count(*) FILTER (in_now IS NULL) AS gone FROM pairs GROUP BY reason ORDER BY reason",
        runs,
    )
    ((added, gone),) = con.sql(
        f"{_PAIRS} SELECT count(*) FILTER (NOT was), count(*) FILTER (NOT still) FROM "
        "(SELECT bool_or(in_before IS NOT NULL) AS was, bool_or(in_now IS NOT NULL) AS still FROM pairs GROUP BY shard_id, row_index)",
        params=runs,
    ).fetchall()
    return {"previous": previous[0], "added": added, "gone": gone, "reasons": reasons}


def domain_counts(rows: Iterable[tuple]) -> dict[str, list[int]]:
    """Counts by a URL's authority (rows: the authority, ``AUTHORITY_RE``'s group, "" or None for
    none, then counts) summed per registrable domain (NO_HOST for URLs without one); a sample has
    one URL, so its counts add up over the authorities of a domain. Each authority is parsed once."""
    domains: dict[str, list[int]] = {}
    for authority, *counts in rows:
        domain = host_and_domain("//" + (authority or ""))[1] or NO_HOST
        domains[domain] = [a + b for a, b in zip(domains.get(domain, [0] * len(counts)), counts)]
    return domains


def _top_domains(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    domains = domain_counts(con.sql(
        "SELECT regexp_extract(url, ?, 1) AS authority, count(DISTINCT (shard_id, row_index)) "
        "FROM findings WHERE run_id = ? AND restricted GROUP BY authority",
        params=[AUTHORITY_RE, run_id],
    ).fetchall())
    return [{"domain": d, "samples": n} for d, (n,) in sorted(domains.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP_DOMAINS]]


def optout_counts(con: duckdb.DuckDBPyConnection, run_id: str, total_rows: int) -> dict:
    """The report's opt-out section (``optouts`` of :func:`report_data`): samples per opt-out
    reason, reserved samples and their share, and the top domains by reserved samples."""
    samples = "count(DISTINCT (shard_id, row_index))"
    counts = ", ".join([f"{samples} FILTER (list_contains(?, reason))"] + [f"{samples} FILTER (reason = ?)"] * len(OPTOUT_REASONS))
    params = [list(OPTOUT_RESERVATIONS), *OPTOUT_REASONS, run_id]
    where = "FROM findings WHERE run_id = ? AND detector = 'optouts'"
    ((reserved, *by_reason),) = con.sql(f"SELECT {counts} {where}", params=params).fetchall()
    domains = domain_counts(con.sql(f"SELECT regexp_extract(url, ?, 1) AS authority, {counts} {where} GROUP BY authority",
                                    params=[AUTHORITY_RE, *params]).fetchall())
    ranked = sorted(((d, n) for d, n in domains.items() if n[0]), key=lambda kv: (-kv[1][0], kv[0]))[:TOP_DOMAINS]
    return {
        "reasons": [{"reason": r, "samples": n} for r, n in zip(OPTOUT_REASONS, by_reason)],
        "reserved": reserved,
        "share": reserved / total_rows if total_rows else 0.0,
        "domains": [{"domain": d, "reserved": n, "samples": dict(zip(OPTOUT_REASONS, rest))} for d, (n, *rest) in ranked],
    }


def _licences(rows_files: Iterable[Path]) -> list[dict]:
    raw: Counter[str | None] = Counter()
    for path in rows_files:
        licences = pq.read_table(path, columns=["license"], read_dictionary=["license"])["license"]  # memory: one copy per value
        for vc in pc.value_counts(licences).to_pylist():
            raw[vc["values"]] += vc["counts"]
    counts: Counter[tuple[str, bool]] = Counter()  # (SPDX id or raw text, is an SPDX id) -> samples
    unlicensed = 0
    for value, n in raw.items():
        if value is None or not value.strip():
            unlicensed += n
        else:
            spdx = to_spdx(value)
            counts[(spdx, True) if spdx else (value, False)] += n
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    buckets = [{"licence": value, "spdx": spdx, "samples": n} for (value, spdx), n in ranked[:TOP_LICENCES]]
    for label, n in ((OTHER, sum(n for _, n in ranked[TOP_LICENCES:])), (NONE, unlicensed)):
        if n:
            buckets.append({"licence": label, "spdx": False, "samples": n})
    return buckets


def _clusters(con: duckdb.DuckDBPyConnection, run_id: str, rows_files: dict[str, Path]) -> dict:
    duplicate, duplicate_params = reason_filter_sql(["duplicate"])
    clusters = f"""
        WITH restricted AS (SELECT DISTINCT shard_id, row_index FROM findings WHERE run_id = ? AND restricted),
        copies AS (
            SELECT f.reason, f.evidence->>'kept_shard_id' AS kept_shard_id, (f.evidence->>'kept_row_index')::BIGINT AS kept_row_index,
                   f.evidence->>'kept_sample_id' AS kept_sample_id, r.shard_id IS NOT NULL AS restricted,
                   f.shard_id, f.row_index, f.sample_id
            FROM findings f LEFT JOIN restricted r USING (shard_id, row_index) WHERE f.run_id = ? AND {duplicate}
        ),
        clusters AS (
            SELECT c.reason, c.kept_shard_id, c.kept_row_index, any_value(c.kept_sample_id) AS kept_sample_id, count(*) + 1 AS size,
                   bool_or(c.restricted) OR bool_or(k.shard_id IS NOT NULL) AS restricted
            FROM copies c LEFT JOIN restricted k ON k.shard_id = c.kept_shard_id AND k.row_index = c.kept_row_index
            GROUP BY c.reason, c.kept_shard_id, c.kept_row_index
        ),
        largest AS (SELECT * FROM clusters ORDER BY size DESC, reason, kept_shard_id, kept_row_index LIMIT {LARGEST_CLUSTERS})
    """
    params = [run_id, run_id, *duplicate_params]
    histogram = _records(con, f"{clusters} SELECT size, count(*) AS clusters FROM clusters GROUP BY size ORDER BY size", params)
    largest = _records(con, f"{clusters} SELECT * FROM largest ORDER BY size DESC, reason, kept_shard_id, kept_row_index", params)
    copies = _records(
        con,
        f"""{clusters} SELECT * FROM (
                SELECT c.reason, c.kept_shard_id, c.kept_row_index, c.shard_id, c.row_index, c.sample_id,
                       row_number() OVER (PARTITION BY c.reason, c.kept_shard_id, c.kept_row_index ORDER BY c.shard_id, c.row_index) AS n
                FROM copies c JOIN largest l USING (reason, kept_shard_id, kept_row_index) WHERE NOT l.restricted)
            WHERE n <= {CLUSTER_COPIES} ORDER BY shard_id, row_index""",
        params,
    )
    shown = {(c["kept_shard_id"], c["kept_row_index"]) for c in largest if not c["restricted"]}
    samples = _samples(rows_files, shown | {(c["shard_id"], c["row_index"]) for c in copies})
    by_cluster: dict[tuple, list[dict]] = {}
    for c in copies:
        by_cluster.setdefault((c["reason"], c["kept_shard_id"], c["kept_row_index"]), []).append(
            {"sample_id": c["sample_id"]} | samples[c["shard_id"], c["row_index"]]
        )
    withheld = {"kept_sample_id": None, "caption": None, "host": None, "copies": []}
    return {
        "histogram": histogram,
        "largest": [
            {"reason": c["reason"], "size": c["size"], "restricted": c["restricted"]}
            | (withheld if c["restricted"] else {"kept_sample_id": c["kept_sample_id"]} | samples[c["kept_shard_id"], c["kept_row_index"]]
               | {"copies": by_cluster.get((c["reason"], c["kept_shard_id"], c["kept_row_index"]), [])})
            for c in largest
        ],
    }


def _samples(rows_files: dict[str, Path], samples: set[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    """{(shard_id, row_index): {caption, host}} of ``samples``, read from their rows observations."""
    found = {}
    for shard_id in {s for s, _ in samples}:
        rows = pq.read_table(
            rows_files[shard_id],
            columns=["row_index", "caption", "url"],
            filters=[("row_index", "in", [i for s, i in samples if s == shard_id])],
        )
        for row in rows.to_pylist():
            found[shard_id, row["row_index"]] = {"caption": row["caption"], "host": host_and_domain(row["url"] or "")[0] or None}
    return found
