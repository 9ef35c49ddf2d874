"""Workspace garbage collection (``scrutineer gc``): delete the sets no kept run needs.

Observation and judgement sets are never deleted by a run: every changed parameter leaves the
sets of the old one behind (about 1.6 GB per 10M rows). :func:`collect` keeps

- the **kept runs**: the ``keep_runs`` latest finished (completed or partial) runs of the config's
  dataset, every run of another dataset, and every run a release in the workspace names (its
  ``manifest.json``'s ``run_ids``). It holds the store as a scan does (:func:`scrutineer.core.store.connect`
  takes DuckDB's one-writer lock), so no run is running while it works: a run whose process died
  is ``interrupted`` and collected like any other;
- for each shard of a kept run: its rows and content observations, and each of its detectors'
  judgement of them as the plan names it from the run's own config and banks
  (:meth:`scrutineer.flows.plan.ScanPlan.judgements`), which is what a rematch of that run reads;
- the **recheck lineages**: the newest content observation of every lineage the store records (a
  first scan's and the rechecks built on it, :data:`scrutineer.core.store.CONTENT_LINEAGE`), and a
  kept run's judgements of it. A scan, rematch or recheck with those fetch options reads that one
  next, and no scan can make it again: it is what the web served then;
- the bank entries of the kept runs' banks.

and deletes every other set under ``observations/`` and ``judgements/`` (those of collected runs,
and those of runs that failed or were killed before their load, which the store never recorded:
orphaned recheck sets among them), the other bank entries (a run registers its banks again from
their files), and the temporaries a killed process left (:func:`scrutineer.core.files.temporaries`)
in the workspace, its sets' folders, ``banks/``, ``releases/`` and the policy-file cache.

In the store it deletes only the judgements no run uses (:func:`scrutineer.core.store.drop_unused_judgements`:
the sets of crowd flags a later sync replaced in every run that had them): every run's findings,
fetches, content hashes and policy-file reads stay, so ``query``, ``takedown``, ``release`` and a
kept run's ``report`` give what they gave. A collected
run's report cannot be made again (it reads the run's rows observations). Releases, reports, the
takedown manifest, the review snapshot, the crowd store and the policy-file cache's reads are
never touched.

A set is renamed to a temporary name before it is deleted, so a gc killed midway leaves no
half-deleted set that a run would take for a whole one (the next run or gc sweeps the temporary).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from pydantic import ValidationError

from scrutineer.core import store
from scrutineer.core.banks import BankRef
from scrutineer.core.config import Config
from scrutineer.core.errors import ConfigError, WorkspaceError
from scrutineer.core.files import temporaries, temporary_sibling
from scrutineer.core.layout import Layout
from scrutineer.flows.plan import ScanPlan

#: Finished runs of the dataset kept by default: the latest (what ``release``, ``report`` and
#: ``takedown`` read) and the two before it (what a report compares the latest with, and one more).
KEEP_RUNS = 3

#: The newest content observation of each recheck lineage the store records, and each content
#: observation's lineage (its first scan's observation id).
LINEAGES_SQL = (
    "SELECT observation_id, coalesce(key->>'base', observation_id) AS base, "
    "arg_max(observation_id, observed_at) OVER (PARTITION BY coalesce(key->>'base', observation_id)) AS newest "
    "FROM observations WHERE kind = 'content'"
)


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` deleted (or, in a dry run, would delete).

    Attributes:
        kept_runs: ids of the kept runs, newest first.
        deleted: per kind (``observations``, ``judgements``, ``banks``, ``temporaries``), the paths.
        bytes: the size of every deleted file, in bytes (apparent sizes, as ``du -b``).
        dry_run: True when nothing was deleted.
        stored: (judgements, findings) deleted from the store: those no run uses.
    """

    kept_runs: tuple[str, ...]
    deleted: dict[str, list[Path]] = field(default_factory=dict)
    bytes: int = 0
    dry_run: bool = False
    stored: tuple[int, int] = (0, 0)


def collect(config: Config, keep_runs: int = KEEP_RUNS, dry_run: bool = False) -> Collected:
    """Delete what no kept run, release or recheck lineage of the workspace needs (module docstring).

    Args:
        config: the dataset whose runs beyond the ``keep_runs`` latest finished ones are collected.
        keep_runs: finished runs of the dataset to keep, at least 1.
        dry_run: delete nothing; say what would be deleted.

    Raises:
        ConfigError: ``keep_runs`` below 1.
        WorkspaceError: no store in the workspace; another process holds it (a scan); a release's
            manifest is unreadable, or a kept run's recorded config no longer validates, so what
            it needs cannot be told (nothing is deleted).
    """
    if keep_runs < 1:
        raise ConfigError(f"gc keeps at least the latest run: --keep-runs {keep_runs}")
    layout = Layout(config.workspace)
    if not layout.store.exists():
        raise WorkspaceError(f"no store in workspace {config.workspace}: nothing to collect")
    con = store.connect(config.workspace, memory_limit=config.memory_limit)  # holds the workspace, as a scan does
    try:
        kept = _kept_runs(con, layout, config.dataset.name, keep_runs)
        observations, judgements, banks = _needed(con, kept)
        found = {
            "observations": [p for p in _sets(layout.observations) if p.name not in observations],
            "judgements": [p for p in _sets(layout.judgements) if p.name not in judgements],
            "banks": [p for p in _sets(layout.banks, files=True) if p == layout.bank_entries(p.stem) and p.stem not in banks],
            "temporaries": [t for d in _swept(layout) for t in temporaries(d)],
        }
        size = sum(_size(p) for paths in found.values() for p in paths)
        if not dry_run:
            for paths in found.values():
                for path in paths:
                    _delete(path)
        stored = store.drop_unused_judgements(con, dry_run)
    finally:
        con.close()
    return Collected(tuple(kept), {kind: paths for kind, paths in found.items() if paths}, size, dry_run, stored)


def _kept_runs(con: duckdb.DuckDBPyConnection, layout: Layout, dataset: str, keep_runs: int) -> list[str]:
    """Ids of the kept runs (module docstring), newest first."""
    released = set()
    for manifest in sorted(layout.releases.glob(f"*/{Layout.MANIFEST}")):
        try:
            released.update(json.loads(manifest.read_text())["run_ids"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise WorkspaceError(f"cannot tell which run release {manifest.parent.name} was built from ({manifest}: {e!r}); nothing deleted") from None
    rows = con.execute(
        "SELECT run_id, dataset, list_contains(?, status) FROM runs ORDER BY coalesce(finished_at, started_at) DESC, run_id DESC",
        [list(store.FINISHED)],
    ).fetchall()
    latest = [run_id for run_id, of, finished in rows if of == dataset and finished][:keep_runs]
    return [run_id for run_id, of, _ in rows if of != dataset or run_id in released or run_id in latest]


def _needed(con: duckdb.DuckDBPyConnection, kept: list[str]) -> tuple[set[str], set[str], set[str]]:
    """(observation ids, judgement ids, bank sha256s) the kept runs and the recheck lineages need."""
    lineage = {o: (base, newest) for o, base, newest in con.execute(LINEAGES_SQL).fetchall()}
    observations = {newest for _base, newest in lineage.values()}
    judgements: set[str] = set()
    banks: set[str] = set()
    for run_id, config, run_banks in con.execute("SELECT run_id, config, banks FROM runs WHERE list_contains(?, run_id)", [kept]).fetchall():
        plan = _plan(run_id, config, run_banks)
        banks |= {b.sha256 for b in plan.banks}
        shards = con.execute("SELECT rows_observation, content_observation FROM shards WHERE run_id = ? AND rows_observation IS NOT NULL",
                             [run_id]).fetchall()
        for rows, content in shards:
            observations |= {rows, content} - {None}
            # a rematch of the run judges its lineage's newest content observation (flows/scan.py _rechecked)
            for judged in {content, lineage[content][1] if content in lineage else content}:
                judgements |= set(plan.judgements(rows, judged).values())
    return observations, judgements, banks


def _plan(run_id: str, config: str, banks: str) -> ScanPlan:
    """The plan of a recorded run: its own resolved config and registered banks.

    Raises:
        WorkspaceError: the config no longer validates (made by another version of Scrutineer).
    """
    try:
        cfg = Config.model_validate_json(config)
        return ScanPlan(cfg, cfg.detector_params(), tuple(BankRef(**b) for b in json.loads(banks)), observe=False)
    except (ValidationError, ConfigError) as e:
        raise WorkspaceError(f"cannot tell which judgement sets run {run_id} needs, its config no longer validates ({e}); nothing deleted") from None


def _sets(folder: Path, files: bool = False) -> list[Path]:
    """The sets (directories) or, with ``files``, the files in ``folder``, temporaries left out."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_file() if files else p.is_dir()))


def _swept(layout: Layout) -> list[Path]:
    """The folders where a killed writer of the workspace may have left temporaries."""
    folders = [layout.workspace, layout.observations, layout.judgements, layout.banks, layout.releases]
    if layout.policy_files.is_dir():
        folders += sorted(p for p in layout.policy_files.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [f for f in folders if f.is_dir()]


def _size(path: Path) -> int:
    """Bytes of the files at or under ``path`` (symbolic links not followed)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(os.lstat(os.path.join(root, name)).st_size for root, _dirs, names in os.walk(path) for name in names)


def _delete(path: Path) -> None:
    """Delete a file, or a directory renamed to a temporary name first (a set is whole or gone)."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    if not path.name.startswith("."):
        gone = temporary_sibling(path)
        os.rename(path, gone)
        path = gone
    shutil.rmtree(path)
