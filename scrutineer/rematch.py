"""Re-match stored content hashes against new hash banks, without fetching anything again.

What let LAION act on the watchdogs' lists: every image's hashes were already stored. A bank added
to the config, or a bank file replaced by a new version (a new sha256), is registered and matched
against every ``content_hashes`` row of the dataset's latest finished scan; the matches are added
to that scan's findings (detector ``content_hashlist``, evidence with ``"rematch": true``), so
releases and takedown manifests built afterwards include them. No HTTP request is made.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from scrutineer import store
from scrutineer.banks import Bank, load_banks
from scrutineer.config import Config
from detectors.base import evidence_json
from detectors.content_hashlist import (
    CONTENT_SIGNALS,
    ContentHashlist,
    bank_index,
    bank_matches,
)
from scrutineer.errors import ConfigError


def rematch(cfg: Config) -> dict:
    """Register new or changed content banks and match them against the stored hashes.

    Returns:
        ``{"run_id", "banks": [names matched], "findings": {reason: count}}``.

    Raises:
        ConfigError: a bad bank file, or no finished scan of the dataset to match against.
    """
    banks = [b for b in load_banks(cfg.banks) if b.config.signal_type in CONTENT_SIGNALS]
    params = ContentHashlist.Params.model_validate(cfg.detectors.get(ContentHashlist.name) or {})
    con = store.connect(cfg.workspace, memory_limit=cfg.memory_limit)
    try:
        latest = store.latest_run(con, cfg.dataset.name)
        if latest is None:
            raise ConfigError(f"no finished scan of {cfg.dataset.name!r} in {cfg.workspace}: run `scrutineer scan` first")
        run_id = latest[0]
        con.execute("BEGIN TRANSACTION")
        try:
            new, counts = _match_new_banks(con, run_id, banks, params)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    return {"run_id": run_id, "banks": [b.config.name for b in new], "findings": counts}


def _match_new_banks(con, run_id: str, banks: list[Bank], params) -> tuple[list[Bank], dict[str, int]]:
    """Register ``banks`` and add the findings of those that are new; (new banks, count per reason)."""
    new = store.register_banks(con, banks)
    content = con.sql(
        "SELECT shard_id, row_index, sample_id, url, md5, sha1, sha256, pdq, pdq_quality, phash "
        "FROM content_hashes WHERE run_id = ?",
        params=[run_id],
    ).to_arrow_table()
    counts: dict[str, int] = {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for bank in new:
        hits = bank_matches(bank_index(bank), content, params)
        if not hits:
            continue
        rows = content.take(pa.array([position for position, _ in hits], pa.int64()))
        reason = f"hash_match.{bank.config.signal_type}"
        found = pa.table(
            {
                "shard_id": rows["shard_id"],
                "row_index": rows["row_index"],
                "sample_id": rows["sample_id"],
                "url": rows["url"],
                "evidence": [
                    evidence_json(bank=bank.config.name, bank_version=bank.config.version, signal=bank.config.signal_type,
                                  distance=d, rematch=True, rematched_at=now)
                    for _, d in hits
                ],
            }
        )
        con.register("rematched", found)
        con.execute(
            "INSERT INTO findings SELECT ?, shard_id, row_index, sample_id, url, ?, ?, ?, 'takedown', NULL, evidence, true FROM rematched",
            [run_id, ContentHashlist.name, ContentHashlist.version, reason],
        )
        con.unregister("rematched")
        counts[reason] = counts.get(reason, 0) + len(hits)
    return new, counts
