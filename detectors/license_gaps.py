"""``license_gaps``: samples without a usable licence, or with one the release does not allow."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from detectors.base import Detector, empty_findings, evidence_json
from scrutineer.licenses import is_spdx_id, to_spdx


class LicenseGapsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(
        default_factory=list,
        description="SPDX ids a release may keep; empty = no allow-list, so no license.disallowed findings.",
    )

    @field_validator("allow")
    @classmethod
    def _spdx_ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not is_spdx_id(v)]
        if bad:
            raise ValueError(f"not SPDX license ids: {bad} (see https://spdx.org/licenses/)")
        return value


class LicenseGaps(Detector):
    """Flags, per sample, from the ``license`` column normalised to an SPDX id
    (:func:`scrutineer.licenses.to_spdx`):

    - ``license.missing``: no licence (no column, null or blank);
    - ``license.unknown``: a value that is not a recognisable SPDX licence;
    - ``license.disallowed``: an SPDX id outside ``allow`` (when ``allow`` is set).

    Evidence ``{"license": raw value, "spdx": id or null}``; not restricted.
    """

    name = "license_gaps"
    version = "1"
    reasons = {"license.missing": False, "license.unknown": False, "license.disallowed": False}
    Params = LicenseGapsParams

    def setup(self) -> None:
        self.allow = set(self.params.allow)

    def _classify(self, raw: str | None) -> tuple[str | None, str | None]:
        """(reason or None, spdx id or None) for one distinct licence value."""
        if raw is None or not raw.strip():
            return "license.missing", None
        spdx = to_spdx(raw)
        if spdx is None:
            return "license.unknown", None
        if self.allow and spdx not in self.allow:
            return "license.disallowed", spdx
        return None, spdx

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        # Classify each distinct value once, then map back: licence columns have few values.
        values = batch.column("license")
        distinct = pc.unique(values)
        classes = [self._classify(v) for v in distinct.to_pylist()]
        reasons = pa.array([c[0] for c in classes], pa.string())
        evidence = pa.array(
            [evidence_json(license=v, spdx=c[1]) if c[0] else None for v, c in zip(distinct.to_pylist(), classes)],
            pa.string(),
        )
        idx = pc.index_in(values, value_set=distinct, skip_nulls=False)
        row_reasons = pc.take(reasons, idx)
        flagged = pc.is_valid(row_reasons)
        if not pc.any(flagged).as_py():
            return empty_findings()
        rows = pa.Table.from_batches([batch.select(["row_index", "sample_id", "url"])]).filter(flagged)
        return self.findings(
            rows,
            reason=pc.filter(row_reasons, flagged),
            action=pc.if_else(pc.equal(pc.filter(row_reasons, flagged), "license.disallowed"), "remove", "review"),
            evidence=pc.filter(pc.take(evidence, idx), flagged),
            restricted=False,
        )
