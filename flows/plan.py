"""The plan of a scan: everything a shard task needs, as plain values that pickle, and the keys
that name what it makes.

A shard task makes *observations* and *judgements* (DESIGN.md "What flows where"):

- a **rows observation** (``<workspace>/observations/<id>/rows.parquet``): the samples read, keyed
  by the shard's bytes, its read options and the source columns the detectors read;
- a **content observation** (``<workspace>/observations/<id>/content.parquet``,
  ``fetches.parquet`` and ``policy_files.parquet``), when a content detector runs: every check of
  the shard's URLs, the hashes of their bytes (or, for a webdataset shard, of its tar's images) and
  the policy files of their origins, keyed by the shard's bytes, its read options, the fetch
  options that can change what a check finds (or the tar's bytes) and which policy files the
  detectors read; a recheck's, by the observation it checks again (:meth:`ScanPlan.recheck_key`);
- one **judgement** per detector (``<workspace>/judgements/<id>/findings.parquet`` and
  ``signatures.parquet``), keyed by the detector's name, version and parameters, the observations
  it judged and the sha256 of the banks of the signal types it uses.

No observation key holds a bank or a detector parameter, so adding, removing or replacing a bank
or changing a detector's parameters re-derives only the judgements that depend on it, from the
stored observations: no fetching and no reading of an unchanged shard.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from scrutineer.core.banks import BankRef
from scrutineer.core.config import Config
from scrutineer.core.layout import Layout
from scrutineer.core.registry import get_detector_class
from scrutineer.detectors.base import Detector, RecheckingDetector
from scrutineer.formats.sources import Shard

#: Read options that change which rows and values a shard yields.
READ_OPTIONS = {"columns", "header", "names", "quoting", "hf"}
#: Fetch options that only pace or size the fetcher, or say how long a policy file read stays
#: fresh; they never change what a check finds, so they are not part of a content observation's key.
PACING_OPTIONS = {"concurrency", "per_domain", "min_interval", "processes", "breaker", "policy_ttl"}
#: Versions of the code that makes observations: bump when the same inputs would be observed differently.
ROWS_VERSION = "1"
CONTENT_VERSION = "5"  # 5: the IPTC Data Mining property of every image (issue 27)


def key_id(key: dict) -> str:
    """The id of an observation or judgement: the first 32 hex characters of the sha256 of its key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ScanPlan:
    """What every shard task of a run needs; plain values, so a task can run in any process.

    Attributes:
        config: the resolved config.
        params: validated parameters of each configured detector, in config order.
        banks: the registered banks (entries in ``<workspace>/banks/<sha256>.parquet``).
        observe: False for a rematch or a recheck: judge stored observations only, never read a
            shard or fetch what is not stored yet.
        recheck: for a recheck, when it started: the links its shards' content observations
            call transient, or dead and not yet confirmed, and last checked
            ``fetch.recheck_interval`` seconds or more before this, are checked again
            (:func:`scrutineer.flows.shard.due_urls`).
        fetchers: shard tasks that may fetch at once; each one's fetcher takes this share of the
            per-domain politeness limits (:class:`scrutineer.observing.fetch.Fetcher`).
    """

    config: Config
    params: dict[str, BaseModel]
    banks: tuple[BankRef, ...]
    observe: bool = True
    recheck: datetime | None = None
    fetchers: int = 1

    @property
    def workspace(self) -> Path:
        return self.config.workspace

    @property
    def layout(self) -> Layout:
        """Where the sets its keys name are (:meth:`Layout.observation`, :meth:`Layout.judgement`)."""
        return Layout(self.config.workspace)

    @property
    def fetches(self) -> bool:
        """Whether its shard tasks fetch: a scan or recheck with a content detector, of shards
        whose images are on the web (not in webdataset tars)."""
        return bool((self.observe or self.recheck) and self.config.dataset.format != "webdataset" and self.names("content"))

    @property
    def policy_files(self) -> tuple[str, ...]:
        """The policy files (:data:`~scrutineer.observing.policy_files.POLICY_PATHS` names) the configured
        detectors read, which the content stage reads for each origin."""
        return tuple(sorted({f for n in self.names("content") for f in self.detector_class(n).policy_files}))

    def detector_class(self, name: str) -> type[Detector]:
        return get_detector_class(name)

    def names(self, needs: str) -> list[str]:
        """Configured detectors that judge ``needs`` (metadata|content) batches."""
        return [n for n in self.params if self.needs(n) == needs]

    def needs(self, name: str) -> str:
        """What detector ``name`` judges with its configured parameters: metadata or content
        (:meth:`~scrutineer.detectors.base.Detector.needs_for`)."""
        return self.detector_class(name).needs_for(self.params[name])

    def rechecking(self) -> list[str]:
        """Configured detectors whose findings a recheck can change: they say which links are due
        (:class:`~scrutineer.detectors.base.RecheckingDetector`)."""
        return [n for n in self.params if issubclass(self.detector_class(n), RecheckingDetector)]

    def banks_for(self, name: str) -> tuple[BankRef, ...]:
        """The banks of the signal types detector ``name`` uses."""
        signals = self.detector_class(name).signals
        return tuple(b for b in self.banks if b.signal_type in signals)

    def extra_columns(self, shard: Shard) -> list[str]:
        """Source columns a rows observation keeps besides the canonical ones: those the detectors
        read, and a webdataset shard's ``key`` (which joins its rows to its tar's images)."""
        extra = [c for name, p in self.params.items() for c in self.detector_class(name).source_columns(p)]
        if shard.format == "webdataset":
            extra.append("key")
        return sorted(set(extra))

    def detectors_public(self) -> dict[str, dict]:
        """Per detector: version and params (recorded with the run and in release manifests)."""
        return {n: {"version": self.detector_class(n).version, "params": p.model_dump(mode="json")} for n, p in self.params.items()}

    def _read_key(self, shard: Shard, sha256: str) -> dict:
        read = self.config.dataset.model_dump(mode="json", include=READ_OPTIONS)
        return {"shard_id": shard.shard_id, "sha256": sha256, "format": shard.format, "read": read}

    def rows_key(self, shard: Shard, sha256: str) -> dict:
        return {"kind": "rows", "version": ROWS_VERSION, **self._read_key(shard, sha256), "columns": self.extra_columns(shard)}

    def content_key(self, shard: Shard, sha256: str, tar_sha256: str | None) -> dict:
        key = {"kind": "content", "version": CONTENT_VERSION, **self._read_key(shard, sha256)}
        fetch = self.config.fetch.model_dump(mode="json", exclude=PACING_OPTIONS)
        if fetch["decode"] == "full":  # hashes as every version before fetch.decode made them: their observations stay valid
            del fetch["decode"]
        if shard.format == "webdataset":  # bytes from the tar: only the read caps matter
            return {**key, "tar_sha256": tar_sha256, "fetch": {k: fetch[k] for k in ("max_bytes", "max_pixels", "pdq_dihedral")}}
        return {**key, "fetch": fetch} | ({"policy_files": list(self.policy_files)} if self.policy_files else {})

    def recheck_key(self, base: str, previous: str) -> dict:
        """The key of a recheck's content observation: the first scan's observation it builds on
        (``base``), the one it checks again (``previous``: ``base`` or the latest recheck of it), and
        when this recheck started. No two rechecks share one, and
        :data:`scrutineer.core.store.CONTENT_LINEAGE` follows ``base``."""
        return {"kind": "content", "version": CONTENT_VERSION, "base": base, "recheck_of": previous, "checked_at": self.recheck.isoformat()}

    def judged_params(self, name: str) -> dict:
        """The parameters detector ``name``'s judgements depend on
        (:meth:`~scrutineer.detectors.base.Detector.judged_params`)."""
        return self.detector_class(name).judged_params(self.params[name])

    def judgement_key(self, name: str, rows: str, content: str | None) -> dict:
        return {
            "detector": name,
            "version": self.detector_class(name).version,
            "params": self.judged_params(name),
            "observations": [rows, content] if self.needs(name) == "content" else [rows],
            "banks": sorted(b.sha256 for b in self.banks_for(name)),
        }

    def finalize_key(self, name: str, signatures: list[str]) -> dict:
        """The key of corpus detector ``name``'s ``finalize`` over the signatures of the judgements
        ``signatures`` (their ids; each names the detector's version, its judged parameters and the
        observations judged), so an unchanged rescan reuses its findings as it reuses theirs."""
        return {
            "finalize": name,
            "version": self.detector_class(name).version,
            "params": self.judged_params(name),
            "signatures": sorted(signatures),
        }

    def judgements(self, rows: str, content: str | None) -> dict[str, str]:
        """Detector name -> the id of its judgement of a shard's observations ``rows`` and
        ``content`` (None when no content detector runs)."""
        return {name: key_id(self.judgement_key(name, rows, content)) for name in self.params}
