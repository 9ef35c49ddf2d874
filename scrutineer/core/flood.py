"""The flood guard: a bank entry that matches too many samples is held for review before it acts.

The anchor is HMA's open request "Flood prevention & Review" (facebook/ThreatExchange#1994,
https://github.com/facebook/ThreatExchange/issues/1994): match counts per hash id, and a signal
whose matches exceed an expected baseline is quarantined, preventing match events, so one bad
hash cannot flood a platform.

**The rule.** After a run's findings are loaded (:func:`record_holds`, called by the store's one
writer in :mod:`scrutineer.flows.load`, for scans, rematches and rechecks alike), its bank-match
findings are counted per entry: (detector, bank, bank version, signal, entry), the keys of a
``content_hashlist`` or ``url_hashlist`` finding's evidence. An entry matching more samples than
``flood.max_matches`` allows (:meth:`scrutineer.core.config.FloodConfig.limit`) gets a row in the
store's ``holds`` table for that run.

**Decisions.** A maintainer confirms a held entry (its findings act as usual) or dismisses it (its
findings never act), in the review app or with ``scrutineer holds``; the decision lives in the
crowd store (its audit log records it) and ``sync`` copies it into the store's
``hold_decisions`` table (:mod:`scrutineer.crowd.sync`). A decision is keyed by the entry (bank,
version, signal, entry: :func:`hold_id`), not by the run, so it holds for every later run of the
same bank version.

**Which findings act.** A finding is **idle** when its entry has a hold in its run that is not
confirmed: **held** while undecided, **dismissed** after. :func:`idle_sql` is the one home of that
test; the takedown (:data:`scrutineer.reports.takedown.TAKEDOWN_SQL`) and the release
(through :func:`acting_sql`, which skips the test in a run without holds) leave idle findings out, and :data:`HELD_FINDINGS` lists them with their state. ``release`` refuses while
any entry of its run is held (:func:`refuse_held`), naming each.

Entries are restricted facts (a bank's entries are never published): public outputs count held
entries and findings, never name them; a hold's short id (:func:`hold_id`) is a digest of its key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from scrutineer.core import store
from scrutineer.core.contract import HOLDS
from scrutineer.core.errors import HeldError

#: Characters of a hold's short id (hex of the sha256 of its key): 48 bits, so two entries of a
#: workspace collide with odds of about n^2 / 2^49 (1 in 10^9 at 1,000 holds).
ID_CHARS = 12
#: Characters of an entry shown where a hold is named (the CLI's list, the refusal, the app).
ENTRY_PREFIX = 12
#: The evidence keys naming a bank entry (``content_hashlist``'s and ``url_hashlist``'s evidence).
ENTRY_KEYS = ("bank", "bank_version", "signal", "entry")
#: The two states of a decided hold, in the crowd store and ``hold_decisions``.
DECISIONS = {"confirm": "confirmed", "dismiss": "dismissed"}

#: Per bank entry of run ``$run_id``, how many samples its findings match (bank-match findings are
#: restricted, so only restricted findings whose evidence names an entry are read).
ENTRY_MATCHES = """
    SELECT detector, evidence->>'bank' AS bank, evidence->>'bank_version' AS bank_version, evidence->>'signal' AS signal,
           evidence->>'entry' AS entry, count(DISTINCT (shard_id, row_index)) AS matches
    FROM findings WHERE run_id = $run_id AND restricted AND evidence->>'entry' IS NOT NULL
    GROUP BY ALL HAVING count(DISTINCT (shard_id, row_index)) > $limit
"""
#: The distinct URLs of the findings of one entry (``$detector``, ``$bank``, ...) of run ``$run_id``.
ENTRY_URLS = """
    SELECT DISTINCT url FROM findings WHERE run_id = $run_id AND restricted AND detector = $detector
      AND evidence->>'bank' = $bank AND evidence->>'bank_version' = $bank_version AND evidence->>'signal' = $signal
      AND evidence->>'entry' = $entry AND url IS NOT NULL
"""
#: The holds of run ``$run_id`` with their decision (null: held), biggest first.
RUN_HOLDS = """
    SELECT h.*, d.decision, d.decided_by, d.decided_at, d.note
    FROM holds h LEFT JOIN hold_decisions d USING (hold_id) WHERE h.run_id = $run_id ORDER BY h.matches DESC, h.hold_id
"""


def idle_sql(f: str = "f") -> str:
    """A SQL boolean over a finding aliased ``f`` (a row of ``findings``): true when it is **idle**,
    its bank entry held or dismissed in its run (module docstring). No parameters, so it joins
    queries of either parameter style. Only restricted findings can be idle (bank matches are), so
    the test costs a look at ``restricted`` for every other finding."""
    return (
        f"({f}.restricted AND EXISTS (SELECT 1 FROM holds h LEFT JOIN hold_decisions d USING (hold_id) "
        f"WHERE h.run_id = {f}.run_id AND h.detector = {f}.detector AND h.bank = {f}.evidence->>'bank' "
        f"AND h.bank_version = {f}.evidence->>'bank_version' AND h.signal = {f}.evidence->>'signal' "
        f"AND h.entry = {f}.evidence->>'entry' AND d.decision IS DISTINCT FROM 'confirmed'))"
    )


def acting_sql(con: duckdb.DuckDBPyConnection, run_id: str, f: str = "f") -> str:
    """``NOT`` :func:`idle_sql` over a finding aliased ``f``, or ``TRUE`` when run ``run_id`` has no
    hold but confirmed ones: the test, a join over every finding, costs ~0.2 s of CPU per million
    findings (measured on 5 million, 2026-12-06), which a release skips in the usual run without holds."""
    idle = con.execute("SELECT count(*) FROM holds h LEFT JOIN hold_decisions d USING (hold_id) "
                       "WHERE h.run_id = ? AND d.decision IS DISTINCT FROM 'confirmed'", [run_id]).fetchall()[0][0]
    return f"NOT {idle_sql(f)}" if idle else "TRUE"


#: The idle findings of run ``$run_id`` and why: each finding's sample (shard_id, row_index,
#: sample_id), detector, reason, its hold's id and ``state`` (``held`` or ``dismissed``). The
#: documented join of a finding and its hold, for readers of the store (``scrutineer query``).
HELD_FINDINGS = """
    SELECT f.shard_id, f.row_index, f.sample_id, f.detector, f.reason, h.hold_id,
           CASE WHEN d.decision IS NULL THEN 'held' ELSE d.decision END AS state
    FROM findings f JOIN holds h ON h.run_id = f.run_id AND h.detector = f.detector AND f.restricted
      AND h.bank = f.evidence->>'bank' AND h.bank_version = f.evidence->>'bank_version'
      AND h.signal = f.evidence->>'signal' AND h.entry = f.evidence->>'entry'
    LEFT JOIN hold_decisions d USING (hold_id)
    WHERE f.run_id = $run_id AND d.decision IS DISTINCT FROM 'confirmed'
"""


def hold_id(bank: str, bank_version: str, signal: str, entry: str) -> str:
    """The short id of a bank entry's hold: the first :data:`ID_CHARS` hex characters of the
    sha256 of its key (fields joined by U+001F), the same in every run and workspace."""
    return hashlib.sha256("\x1f".join((bank, bank_version, signal, entry)).encode()).hexdigest()[:ID_CHARS]


@dataclass(frozen=True)
class Held:
    """What a run holds, as counts: entries held (undecided) and dismissed, and their findings."""

    entries: int
    findings: int
    dismissed_entries: int
    dismissed_findings: int

    def public(self) -> dict[str, int]:
        """The counts as a summary or report shows them (entries are restricted: counts only)."""
        return {"entries": self.entries, "findings": self.findings, "dismissed_entries": self.dismissed_entries,
                "dismissed_findings": self.dismissed_findings}


def record_holds(con: duckdb.DuckDBPyConnection, run_id: str, limit: int) -> int:
    """Record a hold of run ``run_id`` for each bank entry whose findings match more than ``limit``
    samples. Run by the store's writer once the run's findings are in (inside its transaction).

    Args:
        limit: the most samples an entry may match without a hold
            (:meth:`scrutineer.core.config.FloodConfig.limit` of the run's samples).

    Returns:
        How many entries are held.
    """
    over = con.execute(ENTRY_MATCHES, {"run_id": run_id, "limit": limit}).fetchall()
    if not over:
        return 0
    # start-up: tldextract costs 130-280 ms at import (python -X importtime, 2026-12-06); the CLI's
    # `holds` reads this module, and only a run with a held entry counts hosts
    from scrutineer.samples.domains import host_and_domain

    now = datetime.now(UTC)
    rows = []
    for detector, bank, version, signal, entry, matches in over:
        key = {"detector": detector, "bank": bank, "bank_version": version, "signal": signal, "entry": entry}
        urls = [u for (u,) in con.execute(ENTRY_URLS, {"run_id": run_id, **key}).fetchall()]
        located = {host_and_domain(u) for u in urls}  # only a held entry's URLs: none in a run without holds
        rows.append({"run_id": run_id, "hold_id": hold_id(bank, version, signal, entry), **key, "matches": matches, "max_matches": limit,
                     "hosts": len({h for h, _ in located}), "domains": len({d for _, d in located}), "held_at": now})
    store.insert(con, HOLDS, rows)
    return len(rows)


def run_holds(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    """Run ``run_id``'s holds (restricted: entries), biggest first: dicts of the ``holds`` columns
    and ``decision`` (None: held; ``confirmed`` or ``dismissed``), ``decided_by``, ``decided_at``, ``note``."""
    cur = con.execute(RUN_HOLDS, {"run_id": run_id})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def held_counts(con: duckdb.DuckDBPyConnection, run_id: str) -> Held:
    """How many entries of run ``run_id`` are held and dismissed, and how many findings each leaves idle."""
    if not con.execute("SELECT count(*) FROM holds WHERE run_id = ?", [run_id]).fetchall()[0][0]:
        return Held(0, 0, 0, 0)  # the usual run: no join over its findings
    rows = dict(((s, (e, n)) for s, e, n in con.execute(
        f"SELECT state, count(DISTINCT hold_id), count(*) FROM ({HELD_FINDINGS}) GROUP BY state", {"run_id": run_id}).fetchall()))
    held, dismissed = rows.get("held", (0, 0)), rows.get("dismissed", (0, 0))
    return Held(held[0], held[1], dismissed[0], dismissed[1])


def describe(hold: dict) -> str:
    """One held entry as a refusal names it: bank, version, signal, entry prefix, matches and the
    two commands that decide it."""
    return (f"{hold['hold_id']}: bank {hold['bank']} v{hold['bank_version']} {hold['signal']} entry {hold['entry'][:ENTRY_PREFIX]}… "
            f"matches {hold['matches']} samples (limit {hold['max_matches']}); decide with "
            f"`scrutineer holds confirm CONFIG {hold['hold_id']}` or `scrutineer holds dismiss CONFIG {hold['hold_id']}`")


def refuse_held(con: duckdb.DuckDBPyConnection, run_id: str, categories: list[str] = ()) -> None:
    """Refuse a release while run ``run_id`` has an undecided hold, or the crowd holds a category.

    Args:
        categories: crowd categories held and undecided (:mod:`scrutineer.crowd.sync` passes them),
            each a line like :func:`describe`'s.

    Raises:
        HeldError: naming each held entry (:func:`describe`) and each held category.
    """
    held = [describe(h) for h in run_holds(con, run_id) if h["decision"] is None]
    if held or categories:
        lines = "; ".join([*held, *categories])
        raise HeldError(f"release refused: {len(held) + len(categories)} held for review (flood guard): {lines}")
