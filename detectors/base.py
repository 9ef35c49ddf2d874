"""The detector kinds: one small base class each.

- :class:`Detector`: per-batch work. Its :meth:`Detector.detect` sees ``pyarrow.RecordBatch``es of
  a shard's observations, :data:`scrutineer.core.contract.DETECT` (the samples read) or, when it
  needs content (:attr:`Detector.needs`), :data:`scrutineer.core.contract.CONTENT` (each
  sample's fetch record and content hashes) followed by the sample's ``caption`` and
  ``license``; then the source columns it asked for (:meth:`Detector.source_columns`). It
  returns the findings for that batch, a ``pa.Table`` in :data:`scrutineer.core.contract.FINDING`
  (sparse: one row per finding; build it with :meth:`Detector.findings`). A detector judges; it
  never drops rows (releases filter, by policy).
- :class:`CorpusDetector`: corpus-level work (grouping duplicates across shards). Per batch, its
  :meth:`CorpusDetector.signatures` (kept per shard, with the shard's judgement); once per run,
  in the store, the class method :meth:`CorpusDetector.finalize` over every shard's signatures.
- :class:`RecheckingDetector`: a detector whose findings a later check of a link can change
  (``dead_links``); its :meth:`RecheckingDetector.due_urls` says which links a recheck checks
  again, and a recheck needs one.

A detector whose needs or judged parameters depend on its parameters overrides the class methods
:meth:`Detector.needs_for` (metadata or content; by default :attr:`Detector.needs`) and
:meth:`Detector.judged_params` (by default all of ``params``); the plan asks for them
(:class:`scrutineer.flows.plan.ScanPlan`). ``dedup`` does.

A detector's findings are cached per shard under a key of its name, version and parameters, the
observations it judged and the banks of the signal types it uses (:attr:`Detector.signals`), so a
change of any of these re-derives them from stored observations, and nothing else.

A shard task calls :meth:`Detector.detect` and :meth:`CorpusDetector.signatures` from several
threads at once, each call with its own batch: keep per-call state local, and use
:meth:`Detector.sql` for DuckDB work (a fresh cursor per call on the detector's private in-memory
database).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from scrutineer.core.contract import FINDING
from scrutineer.core.registry import Reason

if TYPE_CHECKING:
    from scrutineer.core.banks import Bank
    from scrutineer.core.config import Config
    from scrutineer.observing.policy_files import PolicyFile


class NoParams(BaseModel):
    """A detector without parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class DetectContext:
    """What a detector may use: the shard being judged, the loaded banks of its signal types and,
    for a content detector, the policy files of the content observation, ``{origin: {name:
    PolicyFile}}`` (filled as the content stage reads them, before each batch is judged)."""

    shard_id: str
    banks: Sequence[Bank] = field(default_factory=list)
    policy_files: Mapping[str, Mapping[str, PolicyFile]] = field(default_factory=dict)


class Detector(ABC):
    """Base class of every detector.

    Subclasses set ``name`` (registry key = entry-point name = config key = ``findings.detector``),
    ``version`` (bump when results can change: it is part of a judgement's key), ``reasons`` and,
    when they take parameters, ``Params`` (a pydantic model with ``extra="forbid"`` and a
    description on every field).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    #: Every reason code the detector can emit -> its :class:`Reason`: whether findings of that
    #: reason are restricted (hash-bank matches, ``hash_match.*``: DESIGN.md "Restricted and public
    #: outputs") and its plain-language label, e.g. ``{"hash_match.url": Reason(True, "URL on a hash
    #: list")}``. A finding's ``restricted`` column follows from it (:meth:`findings`); reports and
    #: the review app show the label (:func:`scrutineer.core.registry.reason_label`). Config checks
    #: release variants against it (:meth:`scrutineer.core.config.ReleaseConfig.check`): a ``remove``
    #: pattern must match a reason of a registered detector, and a variant must remove every
    #: restricted reason of the configured detectors unless it sets ``keep_restricted``.
    reasons: ClassVar[Mapping[str, Reason]]
    Params: ClassVar[type[BaseModel]] = NoParams
    #: ``metadata``: :meth:`detect` sees ``DETECT`` batches. ``content``: it sees ``CONTENT``
    #: batches (with ``caption`` and ``license``), and the scan fetches and hashes the shard's
    #: URLs (or reads its tar) for it. :meth:`needs_for` may decide it by parameters (see the
    #: module docstring).
    needs: ClassVar[Literal["metadata", "content"]] = "metadata"
    #: Signal types of the banks it matches (:mod:`scrutineer.matching.signals`); the config must give at
    #: least one bank of them, and only those banks are part of its judgements' keys.
    signals: ClassVar[frozenset[str]] = frozenset()
    #: Policy files (:data:`scrutineer.observing.policy_files.POLICY_PATHS` names) of each URL's origin the
    #: content stage reads for it; they reach :meth:`detect` as ``ctx.policy_files``.
    policy_files: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def needs_for(cls, params: BaseModel) -> Literal["metadata", "content"]:
        """What the detector judges with ``params``: metadata or content batches. By default
        :attr:`needs`, whatever the parameters."""
        return cls.needs

    @classmethod
    def judged_params(cls, params: BaseModel) -> dict:
        """The parameters the detector's judgements depend on, as JSON values: by default all of
        ``params``."""
        return params.model_dump(mode="json")

    @classmethod
    def source_columns(cls, params: BaseModel) -> list[str]:
        """Source columns :meth:`detect` reads besides the canonical ones; the scan appends them,
        as the source types them, after the batch's own columns. A shard lacking one fails."""
        return []

    @classmethod
    def check_config(cls, params: BaseModel, config: Config) -> None:
        """Refuse settings elsewhere in the config that contradict ``params`` (called by
        :meth:`scrutineer.core.config.Config.detector_params`, so :func:`~scrutineer.core.config.load_config`
        refuses them). By default none.

        Raises:
            ConfigError: the contradiction, in one line.
        """

    def __init__(self, params: BaseModel, ctx: DetectContext) -> None:
        self.params = params
        self.ctx = ctx
        # One DuckDB thread per query: a shard task already runs batches in parallel (a query
        # over one Arrow record batch runs on one thread anyway).
        self.db = duckdb.connect(config={"threads": 1, "memory_limit": "512MB"})
        self.setup()

    def setup(self) -> None:
        """Load what :meth:`detect` needs (banks, tables into ``self.db``). Runs once per shard task."""

    def close(self) -> None:
        """Free what the detector holds (its DuckDB); it is not used after. The shard task calls it
        when its pass ends."""
        self.db.close()

    def sql(self, query: str, params: list | None = None, **tables: pa.RecordBatch | pa.Table) -> pa.Table:
        """Run ``query`` on this detector's in-memory DuckDB with ``tables`` visible by name and
        ``params`` bound to its ``?``.

        Safe to call from several threads at once. Returns the result as a ``pa.Table``.
        """
        cur = self.db.cursor()
        try:
            for name, table in tables.items():
                cur.register(name, table)
            return cur.sql(query, params=params).to_arrow_table()
        finally:
            cur.close()

    @abstractmethod
    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        """Findings for one batch: a ``pa.Table`` in :data:`~scrutineer.core.contract.FINDING`, possibly empty."""

    def findings(self, rows: pa.Table, reason: str | pa.Array, evidence: pa.Array) -> pa.Table:
        """A :data:`~scrutineer.core.contract.FINDING` table for ``rows`` (columns row_index,
        sample_id, url); ``restricted`` follows from each reason (:attr:`reasons`).

        Args:
            reason: one reason code for every row, or one per row.
            evidence: JSON texts, one per row.

        Raises:
            KeyError: a reason the detector does not declare.
        """
        n = rows.num_rows
        if isinstance(reason, str):
            restricted = pa.repeat(pa.scalar(self.reasons[reason].restricted), n)
            reason = pa.repeat(pa.scalar(reason, pa.string()), n)
        else:
            declared = pc.index_in(reason, value_set=pa.array(list(self.reasons), pa.string()))
            if declared.null_count:
                raise KeyError(f"{self.name} does not declare reason(s) {pc.unique(reason.filter(pc.is_null(declared))).to_pylist()}")
            restricted = pa.array([r.restricted for r in self.reasons.values()], pa.bool_()).take(declared)
        return pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(self.ctx.shard_id, pa.string()), n),
                rows.column("row_index"),
                rows.column("sample_id"),
                rows.column("url"),
                pa.repeat(pa.scalar(self.name, pa.string()), n),
                pa.repeat(pa.scalar(self.version, pa.string()), n),
                reason,
                evidence,
                restricted,
            ],
            schema=FINDING,
        )


class CorpusDetector(Detector):
    """Base class of a detector whose findings need every shard: per batch it keeps
    :meth:`signatures`, and once every shard is judged, :meth:`finalize` groups them in the store.
    Its :meth:`detect` finds nothing by default."""

    #: Schema of :meth:`signatures`: :data:`scrutineer.core.contract.SIGNATURE`'s columns, then its own.
    signature_schema: ClassVar[pa.Schema]

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        return empty_findings()  # its findings are corpus-wide: see finalize()

    @abstractmethod
    def signatures(self, batch: pa.RecordBatch) -> pa.Table:
        """Per-row data kept for :meth:`finalize`: a ``pa.Table`` in :attr:`signature_schema`, one
        row per row of ``batch``."""

    @classmethod
    @abstractmethod
    def finalize(cls, params: BaseModel, signatures: str) -> tuple[str, list]:
        """Corpus-level findings, computed in the store once every shard is judged.

        Args:
            params: the detector's validated parameters.
            signatures: the name of a DuckDB view over every shard's signatures, with
                ``shard_id`` and ``observation_id`` columns added.

        Returns:
            A DuckDB ``SELECT`` with the columns of :data:`~scrutineer.core.contract.FINDING` and
            ``observation_id`` (matched by name), and the values of its ``?`` parameters.
        """


class RecheckingDetector(Detector):
    """Base class of a detector whose findings a later check of a link can change; a recheck
    (``scrutineer recheck``) checks again the links it calls due, and needs one configured."""

    @classmethod
    @abstractmethod
    def due_urls(cls, params: BaseModel, content: Path, checked_before: datetime) -> set[str]:
        """The URLs of a content observation a recheck checks again.

        Args:
            params: the detector's validated parameters.
            content: the observation's ``content.parquet`` (``policy_files.parquet`` beside it).
            checked_before: only URLs whose last check started at or before it are due.
        """


def evidence_json(**fields) -> str:
    """A compact, key-sorted JSON object for ``findings.evidence``."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def empty_findings() -> pa.Table:
    return FINDING.empty_table()
