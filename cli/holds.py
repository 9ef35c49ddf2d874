"""``holds``: the flood guard's holds (:mod:`scrutineer.core.flood`): bank entries that matched too
many samples in the latest run, and crowd categories flagged too often; a maintainer confirms or
dismisses each, audited as ``cli``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from scrutineer import Workspace
from scrutineer.cli.console import ConfigArg, out, reported
from scrutineer.core import flood
from scrutineer.core.config import Config, load_config
from scrutineer.core.errors import NotFound

holds = typer.Typer(no_args_is_help=True, help="The flood guard: bank entries and crowd categories held for review.")
HoldArg = Annotated[str, typer.Argument(help="The hold's id, as `holds list` prints it (an entry's hex id, or crowd-N).")]
NoteOption = Annotated[str, typer.Option("--note", help="Why: kept in the audit log with the decision.")]


def _entries(cfg: Config) -> list[dict]:
    """The latest finished run's held entries (restricted), from the store read-only."""
    with Workspace(cfg.workspace) as ws:
        return flood.run_holds(ws.con, ws.latest_run(cfg.dataset.name))


def _current(cfg: Config) -> tuple[list[dict], list[dict]]:
    """(held entries with the crowd store's decisions, category holds)."""
    # start-up: scrutineer.crowd.holds costs 430 ms at import (SQLAlchemy; as scrutineer.crowd.store, measured 2026-12-06)
    from scrutineer.crowd.holds import with_decisions

    # start-up: scrutineer.crowd.store costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.store import CrowdStore

    entries = _entries(cfg)
    if not entries and not cfg.crowd.categories:
        return [], []
    with CrowdStore(cfg.crowd) as crowd:
        return with_decisions(entries, crowd.entry_decisions()), crowd.category_holds() if cfg.crowd.categories else []


@holds.command("list")
def holds_list(config: ConfigArg) -> None:
    """List the latest run's held bank entries and the held crowd categories, with their state
    (held, confirmed, dismissed). Restricted: it shows entry prefixes."""
    with reported():
        cfg = load_config(config)
        entries, categories = _current(cfg)
    if not entries and not categories:
        out.print("nothing held", highlight=False)
        return
    table = Table(box=None)
    for column in ("hold", "what", "matches", "limit", "hosts", "state", "decided by"):
        table.add_column(column, justify="right" if column in ("matches", "limit", "hosts") else "left", overflow="fold")
    for h in entries:
        what = f"{h['bank']} v{h['bank_version']} {h['signal']} {h['entry'][:flood.ENTRY_PREFIX]}…"
        table.add_row(h["hold_id"], what, str(h["matches"]), str(h["max_matches"]), str(h["hosts"]), h["decision"] or "held", h["decided_by"] or "")
    for h in categories:
        table.add_row(h["hold"], f"crowd category {h['category']} since {h['held_at']:%Y-%m-%d %H:%M} UTC", str(h["flags"]), cfg.crowd.flood, "",
                      h["decision"] or "held", h["decided_by"] or "")
    out.print(table)


def _decide(config, hold: str, decision: str, note: str) -> None:
    # start-up: scrutineer.crowd.store costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.store import CrowdStore

    # start-up: scrutineer.crowd.sync costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.sync import sync_decisions

    with reported():
        cfg = load_config(config)
        if hold.startswith("crowd-"):
            with CrowdStore(cfg.crowd) as crowd:
                category = crowd.decide_category("cli", hold, decision, note)
            out.print(f"{hold} (crowd category {category}): {flood.DECISIONS[decision]}", highlight=False)
            return
        found = next((h for h in _entries(cfg) if h["hold_id"] == hold), None)
        if found is None:
            raise NotFound(f"no held entry {hold!r} in the latest run: `scrutineer holds list CONFIG` lists them")
        with CrowdStore(cfg.crowd) as crowd:
            crowd.decide_entry("cli", found, decision, note)
        copied = sync_decisions(cfg)
    then = "" if copied else " (the store is in use: the next sync, scan or release copies the decision into it)"
    out.print(f"{hold} (bank {found['bank']} v{found['bank_version']}, {found['matches']} samples): {flood.DECISIONS[decision]}{then}", highlight=False)


@holds.command("confirm")
def holds_confirm(config: ConfigArg, hold: HoldArg, note: NoteOption = "") -> None:
    """Confirm a held entry (its findings act as usual: the takedown lists them, a release removes
    their rows) or a held category (its flags act)."""
    _decide(config, hold, "confirm", note)


@holds.command("dismiss")
def holds_dismiss(config: ConfigArg, hold: HoldArg, note: NoteOption = "") -> None:
    """Dismiss a held entry (its findings never act: not in the takedown, no release removes their
    rows) or a held category (its flags made while held never act)."""
    _decide(config, hold, "dismiss", note)
