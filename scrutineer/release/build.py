"""RE- releases: the input dataset minus the rows a variant's policy removes.

``<workspace>/releases/RE-<dataset>-<variant>/`` holds:

- ``data/<shard_id>``: every input shard at the same relative path, in the same format, with the
  same column names, types and order, the removed rows gone and the order kept, as the shard's
  format writes it (:data:`scrutineer.formats.registry.FORMATS`: parquet keeps its schema
  metadata, pandas' included; JSONL and unquoted (QUOTE_NONE) CSV/TSV shards are their kept lines
  byte for byte; ``hf`` shards are written as parquet; a ``webdataset`` release is its img2dataset
  parquet files, the tars not rewritten).
- ``removed.parquet``, only when the variant sets ``list_removed``: ``sample_id, shard_id,
  row_index`` of the removed rows anyone holding the original can recompute (a recomputable
  reason of the policy removes them, :mod:`scrutineer.core.policy`), restricted ones among them; no
  URLs, no reasons. No other removal is ever listed: with the original, original minus release
  minus such a list leaves exactly the restricted rows (issue 23: 5 of 5).
- ``manifest.json``: tool version, time, run id, policy, detectors (versions, params), banks
  (name, source, version, sha256, entry count, never entries), removal counts (in all, listed,
  restricted, recomputable, per policy entry), the anonymity set of the restricted rows
  (:mod:`scrutineer.release.anonymity`), the flood guard's decided entries (``flood_guard``:
  confirmed and dismissed, by hold id, bank, version, signal, matches, who and when; never the
  entry), each input and output shard with its sha256 and row count, the licence the dataset
  declares (``license``: an SPDX id, or null), when the run had the ``optouts`` detector the
  opt-out policy (``opt_out``, :func:`opt_out_policy`), and the sha256 of ``croissant.json``
  (``croissant``).
- ``croissant.json``: Croissant 1.1 metadata with its RAI fields (:mod:`scrutineer.release.croissant`).
- ``README.md``: a Hugging Face dataset card (:mod:`scrutineer.release.card`).

The directory is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from scrutineer import __version__
from scrutineer.core import flood, store
from scrutineer.core.config import Config
from scrutineer.core.contract import RELEASES
from scrutineer.core.errors import ReleaseError
from scrutineer.core.files import (
    file_sha256,
    replace_dir,
    sweep_temporaries,
    temporary_sibling,
)
from scrutineer.core.layout import Layout
from scrutineer.core.policy import matches, reason_filter_sql, recomputable_sql
from scrutineer.core.registry import get_detector_class
from scrutineer.formats.registry import FORMATS
from scrutineer.formats.sources import Shard
from scrutineer.observing.optouts import content_signals, headers, iptc, robots, rsl
from scrutineer.release.anonymity import anonymity_set
from scrutineer.release.card import dataset_card
from scrutineer.release.croissant import write_croissant


def build_release(cfg: Config, variant: str) -> Path:
    """Write the variant's release from the dataset's latest completed scan. The CLI and the
    deployed flow import the confirmed crowd flags into it first (:func:`scrutineer.crowd.sync.sync_latest`).

    Returns:
        The release directory.

    Raises:
        ReleaseError: unknown variant, a release directory outside ``<workspace>/releases`` (a
            dataset or variant name holding a ``/``), restricted rows more than
            ``release.max_restricted_share`` of the anonymity set and not acknowledged (one line:
            the numbers, the limit and the key that acknowledges), or a shard's bytes changed
            since the scan.
        WorkspaceError: no finished scan, or the latest is partial (:func:`scrutineer.core.store.complete_run`).
        HeldError: the flood guard holds a bank entry of the run, undecided
            (:func:`scrutineer.core.flood.refuse_held`: the message names each). A dismissed
            entry's findings remove no row.
        ShardError: a shard cannot be read.
    """
    if variant not in cfg.release.variants:
        raise ReleaseError(f"unknown release variant {variant!r}; configured: {sorted(cfg.release.variants) or 'none'}")
    policy = cfg.release.variants[variant]
    patterns = policy.remove
    name = f"RE-{cfg.dataset.name}-{variant}"
    layout = Layout(cfg.workspace)
    out = layout.release(name)
    if out.parent != layout.releases:
        raise ReleaseError(f"release {name!r} would be written outside {layout.releases}; dataset and variant names must be plain names")
    con = store.connect(cfg.workspace)
    try:
        run_id = store.complete_run(con, cfg.dataset.name, cfg.workspace, "releasing")
        flood.refuse_held(con, run_id)
        decided = [h for h in flood.run_holds(con, run_id) if h["decision"]]
        acting = flood.acting_sql(con, run_id)
        where, params = reason_filter_sql(patterns)
        recomputable, recomputable_params = recomputable_sql(patterns)
        # Each removed row, whether any of its findings in the run is restricted, and whether a
        # reason of the policy that an outsider can recompute removes it. A finding of a dismissed
        # bank entry does not act (scrutineer.core.flood).
        removed = con.sql(
            f"SELECT sample_id, shard_id, row_index, bool_or(restricted) AS restricted, bool_or({recomputable}) AS recomputable "
            f"FROM findings f WHERE run_id = ? AND {acting} GROUP BY sample_id, shard_id, row_index HAVING bool_or({where}) "
            "ORDER BY shard_id, row_index",
            params=[*recomputable_params, run_id, *params],
        ).to_arrow_table()
        anonymity = anonymity_set(removed, cfg, variant)
        listed = removed.filter(removed["recomputable"]).select(["sample_id", "shard_id", "row_index"]) if policy.list_removed else None
        if (looser := policy.stricter_than) is not None:
            _check_stricter(con, run_id, cfg, variant, looser, acting)
        by_pattern = {}
        for p in patterns:
            w, ps = reason_filter_sql([p])
            by_pattern[p] = con.sql(
                f"SELECT count(*) FROM (SELECT DISTINCT shard_id, row_index FROM findings f WHERE run_id = ? AND {w} AND {acting})",
                params=[run_id, *ps],
            ).fetchall()[0][0]
        shards = con.sql(
            "SELECT shard_id, location, format, sha256, rows FROM shards WHERE run_id = ? ORDER BY shard_id", params=[run_id]
        ).fetchall()
        detectors, banks = con.sql("SELECT detectors, banks FROM runs WHERE run_id = ?", params=[run_id]).fetchall()[0]
        detectors = json.loads(detectors)
        opt_out = opt_out_policy(con, run_id, acting, patterns, detectors)

        out.parent.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(out.parent)
        tmp = temporary_sibling(out)
        (tmp / Layout.RELEASE_DATA).mkdir(parents=True)
        try:
            entries = []
            for shard_id, location, fmt, sha256, rows in shards:
                if Shard(shard_id, location, fmt).sha256() != sha256:
                    raise ReleaseError(f"{location} changed since scan {run_id}; rescan before releasing")
                drop = removed.filter(pc.equal(removed["shard_id"], shard_id))["row_index"].to_numpy()
                rel_out = FORMATS[fmt].release_path(shard_id)
                dest = tmp / Layout.RELEASE_DATA / rel_out
                dest.parent.mkdir(parents=True, exist_ok=True)
                rows_in, rows_out = FORMATS[fmt].write(location, cfg.dataset, drop, dest)
                if rows_in != rows:
                    raise ReleaseError(f"{location}: read {rows_in} rows where scan {run_id} read {rows}")
                entries.append(
                    {
                        "shard_id": shard_id,
                        "format": fmt,
                        "input": {"sha256": sha256, "rows": rows_in},
                        "output": {"path": f"{Layout.RELEASE_DATA}/{rel_out}", "sha256": file_sha256(dest), "rows": rows_out},
                        "removed_rows": rows_in - rows_out,
                    }
                )
            if listed is not None:
                pq.write_table(listed, tmp / Layout.REMOVED)
            manifest = {
                "release": name,
                "dataset": cfg.dataset.name,
                "license": cfg.dataset.license,
                "variant": variant,
                "tool": {"name": "scrutineer", "version": __version__},
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "run_ids": [run_id],
                "policy": policy.model_dump(exclude_none=True) | {"max_restricted_share": cfg.release.max_restricted_share},
                "detectors": detectors,
                "banks": json.loads(banks),
                "removed": {
                    "rows": removed.num_rows,
                    "listed": 0 if listed is None else listed.num_rows,
                    "restricted": pc.sum(removed["restricted"]).as_py() or 0,
                    "recomputable": pc.sum(removed["recomputable"]).as_py() or 0,
                    "by_policy_entry": by_pattern,
                    "anonymity_set": anonymity,
                    "file": None if listed is None else {"path": Layout.REMOVED, "sha256": file_sha256(tmp / Layout.REMOVED)},
                },
                "flood_guard": {
                    "max_matches": cfg.flood.max_matches,
                    **{state: [{k: h[k] for k in ("hold_id", "bank", "bank_version", "signal", "matches", "decided_by")}
                               | {"decided_at": h["decided_at"].isoformat(timespec="seconds")} for h in decided if h["decision"] == state]
                       for state in flood.DECISIONS.values()},
                },
                "rows": {"input": sum(e["input"]["rows"] for e in entries), "output": sum(e["output"]["rows"] for e in entries)},
                "shards": entries,
            }
            if opt_out is not None:
                manifest["opt_out"] = opt_out
            croissant = write_croissant(manifest, tmp, cfg.dataset)
            manifest["croissant"] = {"path": croissant.name, "sha256": file_sha256(croissant)}
            (tmp / Layout.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            dataset_card(manifest).save(tmp / Layout.CARD)
            replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        release_id = f"{name}@{manifest['created_at']}-{secrets.token_hex(2)}"
        row = {"release_id": release_id, "run_id": run_id, "variant": variant, "path": str(out), "created_at": datetime.now(UTC),
               "manifest_sha256": file_sha256(out / Layout.MANIFEST)}
        store.insert(con, RELEASES, [row])
    finally:
        con.close()
    return out


#: The optouts detector's reasons that do not reserve a sample: they are kept or removed as the
#: variant's ``remove`` says, and the manifest says which (``detectors/optouts.py``).
NOT_RESERVATIONS = {"constrained": "optout.constrained", "invalid": "optout.invalid"}


def opt_out_policy(con, run_id: str, acting: str, patterns: list[str], detectors: dict) -> dict | None:
    """The release's opt-out policy (rom1504/img2dataset#304: which signals a dataset honoured, for
    whom and how many rows each removed), or None when the run had no ``optouts`` detector.

    Returns:
        ``{"detector_version", "signals": {reason: {"label", "honoured", "rows", "removed"}},
        "honoured": [reason], "rows_removed", "constrained": "removed"|"kept", "invalid": ...,
        "agents": {"source": "params"|"default", "description", "count", "names"?},
        "header_directives", "specs": {signal: spec}}``. Per reason, ``rows`` counts the rows with
        such an acting finding in the run and ``removed`` those of them the release removed (a row
        with several signals counts under each); ``rows_removed`` counts the rows removed with at
        least one honoured signal, each once. A reason is honoured when a ``remove`` pattern
        matches it (:func:`scrutineer.core.policy.matches`). Agents given in the detector's params
        are listed; the default list is described and counted
        (:func:`scrutineer.observing.optouts.robots.default_agents`).
    """
    if "optouts" not in detectors:
        return None
    declared = get_detector_class("optouts").reasons
    where, params = reason_filter_sql(patterns)
    counted = dict.fromkeys(declared, (0, 0))
    for reason, rows, removed in con.sql(
        f"WITH removed AS (SELECT shard_id, row_index FROM findings f WHERE run_id = ? AND {acting} "
        f"GROUP BY shard_id, row_index HAVING bool_or({where})), "
        f"opt AS (SELECT DISTINCT shard_id, row_index, reason FROM findings f WHERE run_id = ? AND {acting} AND starts_with(reason, 'optout.')) "
        "SELECT o.reason, count(*), count(r.row_index) FROM opt o LEFT JOIN removed r ON o.shard_id = r.shard_id AND o.row_index = r.row_index "
        "GROUP BY o.reason ORDER BY o.reason",
        params=[run_id, *params, run_id],
    ).fetchall():
        counted[reason] = (rows, removed)
    honoured = [r for r in counted if any(matches(p, r) for p in patterns)]
    honoured_sql, honoured_params = reason_filter_sql(honoured) if honoured else ("false", [])
    rows_removed = con.sql(
        f"SELECT count(DISTINCT (shard_id, row_index)) FROM findings f WHERE run_id = ? AND {acting} AND {honoured_sql}",
        params=[run_id, *honoured_params],
    ).fetchall()[0][0]
    params = detectors["optouts"]["params"]
    if params.get("agents") is not None:
        names = params["agents"]
        agents = {"source": "params", "description": "optouts.agents: " + ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
                  "count": len(names), "names": names}
    else:
        agents = {"source": "default", "description": "default: ai-robots-txt list + img2dataset + Scrutineer",
                  "count": len(robots.default_agents())}
    return {
        "detector_version": detectors["optouts"]["version"],
        "signals": {r: {"label": declared[r].label if r in declared else r, "honoured": r in honoured, "rows": n, "removed": k}
                    for r, (n, k) in counted.items()},
        "honoured": honoured,
        "rows_removed": rows_removed,
        **{kind: "removed" if reason in honoured else "kept" for kind, reason in NOT_RESERVATIONS.items()},
        "agents": agents,
        "header_directives": params.get("header_directives", sorted(headers.DIRECTIVES)),
        "specs": reader_specs(),
    }


def reader_specs() -> dict[str, str]:
    """The specification and version each opt-out reader that names one implements, by reader:
    aipref's drafts (:data:`~scrutineer.observing.optouts.headers.AIPREF_DRAFTS`, which the
    robots.txt reader follows too), the X-Robots-Tag directives' sources, and each reader's ``SPEC``."""
    return {
        "aipref": headers.AIPREF_DRAFTS,
        "x_robots_tag": "; ".join(dict.fromkeys(headers.DIRECTIVES.values())),
        "content_signals": content_signals.SPEC,
        "rsl": rsl.SPEC,
        "iptc": iptc.SPEC,
    }


def _check_stricter(con, run_id: str, cfg: Config, variant: str, looser: str, acting: str) -> None:
    """Refuse variant ``variant`` if a row variant ``looser`` removes would stay in it: its output
    must be a subset of ``looser``'s (``stricter_than``), on the run's acting findings themselves
    (``acting``: :func:`scrutineer.core.flood.acting_sql`).

    Raises:
        ReleaseError: such rows exist (the message counts them and names the reasons).
    """
    if looser not in cfg.release.variants:
        raise ReleaseError(f"release.variants.{variant}.stricter_than: no variant {looser!r}")
    mine, mine_params = reason_filter_sql(cfg.release.variants[variant].remove)
    theirs, their_params = reason_filter_sql(cfg.release.variants[looser].remove)
    rows, reasons = con.sql(
        f"WITH theirs AS (SELECT shard_id, row_index, reason FROM findings f WHERE run_id = ? AND {theirs} AND {acting}), "
        f"mine AS (SELECT DISTINCT shard_id, row_index FROM findings f WHERE run_id = ? AND {mine} AND {acting}) "
        "SELECT count(DISTINCT (t.shard_id, t.row_index)), list(DISTINCT t.reason ORDER BY t.reason) "
        "FROM theirs t ANTI JOIN mine m USING (shard_id, row_index)",
        params=[run_id, *their_params, run_id, *mine_params],
    ).fetchall()[0]
    if rows:
        raise ReleaseError(f"release {variant} is declared stricter_than {looser}, but would keep {rows} rows that {looser} removes "
                           f"(reasons {reasons}): add them to its `remove`")
