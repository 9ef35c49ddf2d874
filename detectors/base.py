"""The detector interface: one base class, one abstract method.

A detector *reports*; it never drops rows (releases filter, by policy). It sees
``pyarrow.RecordBatch``es in :data:`scrutineer.sources.DETECT_SCHEMA` and returns the findings for
that batch as a ``pa.Table`` in :data:`FINDINGS_SCHEMA` (sparse: one row per finding).
Corpus-level work (grouping duplicates across shards) goes in :meth:`Detector.signatures`
(per batch, written per shard) and :meth:`Detector.finalize` (once, in DuckDB).

A shard task calls :meth:`Detector.detect` and :meth:`Detector.signatures` from several threads at
once, each call with its own batch: keep per-call state local, and use :meth:`Detector.sql` for
DuckDB work (a fresh cursor per call on the detector's private in-memory database).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from scrutineer.banks import Bank

#: Columns of a finding. ``evidence`` is a JSON object as text; ``restricted`` findings (hash-bank
#: matches) may only appear in the takedown manifest, never in a public output.
FINDINGS_SCHEMA = pa.schema(
    [
        ("shard_id", pa.string()),
        ("row_index", pa.int64()),
        ("sample_id", pa.string()),
        ("url", pa.string()),
        ("detector", pa.string()),
        ("detector_version", pa.string()),
        ("reason", pa.string()),
        ("action", pa.string()),
        ("score", pa.float64()),
        ("evidence", pa.string()),
        ("restricted", pa.bool_()),
    ]
)

Action = Literal["takedown", "remove", "review"]


class NoParams(BaseModel):
    """A detector without parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class DetectContext:
    """What a detector may use: the shard being read and the loaded hash banks."""

    shard_id: str
    banks: Sequence[Bank] = field(default_factory=list)


class Detector(ABC):
    """Base class of every detector.

    Subclasses set ``name`` (registry key = entry-point name = config key = ``findings.detector``),
    ``version`` (bump when results can change: it is part of the resume fingerprint), ``reasons``
    and, when they take parameters, ``Params`` (a pydantic model with ``extra="forbid"``).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    #: Every reason code the detector can emit -> whether findings of that reason are restricted
    #: (hash-bank matches, ``hash_match.*``: DESIGN.md "Restricted and public outputs"), e.g.
    #: ``{"hash_match.url": True}``. A finding's ``restricted`` column must agree. Config checks
    #: release variants against it (:meth:`scrutineer.config.ReleaseConfig.check`): a ``remove``
    #: pattern must match a reason of a registered detector, and a variant must remove every
    #: restricted reason of the configured detectors unless it sets ``keep_restricted``.
    reasons: ClassVar[Mapping[str, bool]]
    Params: ClassVar[type[BaseModel]] = NoParams
    #: ``metadata``: :meth:`detect` sees ``DETECT_SCHEMA`` batches of the shard. ``content``: it
    #: sees ``flows.content.CONTENT_SCHEMA`` batches (each sample's fetch record and hashes),
    #: and the scan fetches and hashes the shard's URLs for it.
    needs: ClassVar[Literal["metadata", "content"]] = "metadata"

    @property
    def columns(self) -> list[str]:
        """Source columns :meth:`detect` reads besides the canonical ones; the scan appends them,
        as the source types them, after the batch's own columns. A shard lacking one fails."""
        return []

    def __init__(self, params: BaseModel, ctx: DetectContext) -> None:
        self.params = params
        self.ctx = ctx
        # One DuckDB thread per query: a shard task already runs batches in parallel (a query
        # over one Arrow record batch runs on one thread anyway).
        self.db = duckdb.connect(config={"threads": 1, "memory_limit": "512MB"})
        self.setup()

    def setup(self) -> None:
        """Load what :meth:`detect` needs (banks, tables into ``self.db``). Runs once per shard task."""

    def sql(self, query: str, **tables: pa.RecordBatch | pa.Table) -> pa.Table:
        """Run ``query`` on this detector's in-memory DuckDB with ``tables`` visible by name.

        Safe to call from several threads at once. Returns the result as a ``pa.Table``.
        """
        cur = self.db.cursor()
        try:
            for name, table in tables.items():
                cur.register(name, table)
            return cur.sql(query).to_arrow_table()
        finally:
            cur.close()

    @abstractmethod
    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        """Findings for one batch: a ``pa.Table`` in :data:`FINDINGS_SCHEMA`, possibly empty."""

    def signatures(self, batch: pa.RecordBatch) -> pa.Table | None:
        """Per-row data kept for :meth:`finalize` (written per shard as parquet). None = nothing."""
        return None

    def finalize(self, signatures: str) -> str | None:
        """Corpus-level findings, computed in the store once every shard is done.

        Args:
            signatures: a DuckDB table expression (``read_parquet([...])``) over every shard's
                signatures, each with a ``shard_id`` column added.

        Returns:
            A DuckDB ``SELECT`` whose columns are those of :data:`FINDINGS_SCHEMA`, in order (the
            driver inserts its rows into ``findings`` without leaving DuckDB), or None.
        """
        return None

    def findings(
        self,
        rows: pa.Table,
        reason: str | pa.Array,
        action: Action | pa.Array,
        evidence: pa.Array,
        restricted: bool,
        score: pa.Array | None = None,
    ) -> pa.Table:
        """Build a :data:`FINDINGS_SCHEMA` table for ``rows`` (columns row_index, sample_id, url).

        Scalars broadcast; ``evidence`` is an array of JSON texts, one per row.
        """
        n = rows.num_rows

        def col(value, typ):
            return value if isinstance(value, (pa.Array, pa.ChunkedArray)) else pa.repeat(pa.scalar(value, typ), n)

        return pa.Table.from_pydict(
            {
                "shard_id": col(self.ctx.shard_id, pa.string()),
                "row_index": rows.column("row_index"),
                "sample_id": rows.column("sample_id"),
                "url": rows.column("url"),
                "detector": col(self.name, pa.string()),
                "detector_version": col(self.version, pa.string()),
                "reason": col(reason, pa.string()),
                "action": col(action, pa.string()),
                "score": score if score is not None else pa.nulls(n, pa.float64()),
                "evidence": evidence,
                "restricted": col(restricted, pa.bool_()),
            },
            schema=FINDINGS_SCHEMA,
        )


def evidence_json(**fields) -> str:
    """A compact, key-sorted JSON object for ``findings.evidence``."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def empty_findings() -> pa.Table:
    return FINDINGS_SCHEMA.empty_table()
