"""The workspace layout: the one module that names the paths in a workspace.

Every other module asks :class:`Layout` where a file is; none spells a workspace path itself::

    <workspace>/
      scrutineer.duckdb             the store (scrutineer.core.store): one writer process at a time
      .duckdb_tmp/                  where the store's bigger joins and sorts spill
      review.duckdb                 the review snapshot the store's writer publishes (scrutineer.crowd.snapshot)
      review-search.sqlite          the review app's search index, built from the snapshot (scrutineer.crowd.search)
      crowd.sqlite                  the crowd store, unless crowd.database names another
      observations/<id>/            an observation set: rows.parquet, or a content set's content.parquet,
                                    fetches.parquet and policy_files.parquet; its stats.json (key, counts)
      judgements/<id>/              a judgement set: findings.parquet, and a corpus-level detector's
                                    signatures.parquet
      banks/<sha256>.parquet        a registered bank's entries (scrutineer.core.banks)
      policy_files/                 the latest read of each origin's policy files (scrutineer.observing.policy_files)
      releases/<name>/              a release: data/, manifest.json, croissant.json, README.md, removed.parquet
      reports/<run_id>.html         a run's report, and its <run_id>-findings.csv and <run_id>-domains.csv
      takedown/<dataset>.csv|.json  the takedown manifest
      summary/<dataset>.csv|.md     the AI Act summary of crawled domains (<dataset>-sme.* for SMEs)

Sets are named by the sha256 of their key, which the plan builds (:mod:`scrutineer.flows.plan`).
Sets, bank entries and releases are made under a temporary name and renamed into place
(:func:`scrutineer.core.files.temporary_sibling`); ``scrutineer gc`` deletes what no kept run needs
(:mod:`scrutineer.flows.gc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Layout:
    """Where everything in the workspace ``workspace`` is (module docstring).

    The working files of a set are named by class attributes (``Layout.ROWS``), so a shard task
    writing a set under its temporary name uses the same names as those reading it once in place.
    """

    workspace: Path

    #: An observation set's rows read, in batch order (:data:`scrutineer.core.contract.DETECT`).
    ROWS: ClassVar[str] = "rows.parquet"
    #: A content observation set's fetch record and content hashes, row for row with ``ROWS``.
    CONTENT: ClassVar[str] = "content.parquet"
    #: A content observation set's checks of URLs (:data:`scrutineer.core.contract.FETCH`).
    FETCHES: ClassVar[str] = "fetches.parquet"
    #: A content observation set's policy files, texts included (:data:`scrutineer.core.contract.POLICY_FILE`).
    POLICY_FILES: ClassVar[str] = "policy_files.parquet"
    #: An observation set's key and counts (JSON).
    STATS: ClassVar[str] = "stats.json"
    #: A judgement set's findings (:data:`scrutineer.core.contract.JUDGEMENT`).
    FINDINGS: ClassVar[str] = "findings.parquet"
    #: A judgement set's signatures, for a detector with corpus-level work.
    SIGNATURES: ClassVar[str] = "signatures.parquet"
    #: A release's shards, each at its input path inside it.
    RELEASE_DATA: ClassVar[str] = "data"
    #: A release's manifest (JSON; ``run_ids`` names the run it was built from).
    MANIFEST: ClassVar[str] = "manifest.json"
    #: A release's Hugging Face dataset card.
    CARD: ClassVar[str] = "README.md"
    #: A release's Croissant 1.1 metadata (:mod:`scrutineer.release.croissant`).
    CROISSANT: ClassVar[str] = "croissant.json"
    #: A release's list of removed rows anyone holding the original can recompute.
    REMOVED: ClassVar[str] = "removed.parquet"

    @property
    def store(self) -> Path:
        """The store, ``scrutineer.duckdb``."""
        return self.workspace / "scrutineer.duckdb"

    @property
    def spill(self) -> Path:
        """The store's spill directory (DuckDB's ``temp_directory``)."""
        return self.workspace / ".duckdb_tmp"

    @property
    def snapshot(self) -> Path:
        """The review snapshot, ``review.duckdb``."""
        return self.workspace / "review.duckdb"

    @property
    def search_index(self) -> Path:
        """The review app's search index (SQLite FTS5), ``review-search.sqlite``, beside the snapshot."""
        return self.workspace / "review-search.sqlite"

    @property
    def crowd_store(self) -> Path:
        """The default crowd store (SQLite), ``crowd.sqlite``."""
        return self.workspace / "crowd.sqlite"

    def crowd_store_files(self) -> list[Path]:
        """The default crowd store's files: the database and the files SQLite and its writers'
        lock keep beside it (``-wal``, ``-shm``, ``-writers.lock``)."""
        return sorted(self.workspace.glob(self.crowd_store.name + "*"))

    @property
    def observations(self) -> Path:
        return self.workspace / "observations"

    def observation(self, observation_id: str) -> Path:
        """An observation set's directory."""
        return self.observations / observation_id

    @property
    def judgements(self) -> Path:
        return self.workspace / "judgements"

    def judgement(self, judgement_id: str) -> Path:
        """A judgement set's directory."""
        return self.judgements / judgement_id

    @property
    def banks(self) -> Path:
        return self.workspace / "banks"

    def bank_entries(self, sha256: str) -> Path:
        """A registered bank's entries, named by the sha256 of the bank file they came from."""
        return self.banks / f"{sha256}.parquet"

    @property
    def policy_files(self) -> Path:
        """The policy-file cache's directory."""
        return self.workspace / "policy_files"

    @property
    def releases(self) -> Path:
        return self.workspace / "releases"

    def release(self, name: str) -> Path:
        """A release's directory (``RE-<dataset>-<variant>``)."""
        return self.releases / name

    @property
    def reports(self) -> Path:
        return self.workspace / "reports"

    def report(self, run_id: str) -> Path:
        """A run's report (HTML)."""
        return self.reports / f"{run_id}.html"

    def report_findings(self, run_id: str) -> Path:
        """A run's counts by reason (CSV)."""
        return self.reports / f"{run_id}-findings.csv"

    def report_domains(self, run_id: str) -> Path:
        """A run's counts by registrable domain (CSV)."""
        return self.reports / f"{run_id}-domains.csv"

    @property
    def takedown(self) -> Path:
        return self.workspace / "takedown"

    @property
    def summary(self) -> Path:
        """The AI Act summaries of crawled domains (:mod:`scrutineer.reports.summary`)."""
        return self.workspace / "summary"

    def takedown_csv(self, dataset: str) -> Path:
        """A dataset's takedown manifest, spreadsheet-safe CSV."""
        return self.takedown / f"{dataset}.csv"

    def takedown_json(self, dataset: str) -> Path:
        """A dataset's takedown manifest, exact JSON."""
        return self.takedown / f"{dataset}.json"
