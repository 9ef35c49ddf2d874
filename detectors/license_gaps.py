"""``license_gaps``: samples without a usable licence, or with one the release does not allow."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from scrutineer.detectors.base import Detector, Reason, empty_findings, evidence_json
from scrutineer.samples.licenses import conditions, is_spdx_id, to_spdx


class LicenseGapsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(
        default_factory=list,
        description="SPDX ids a release may keep; empty = no allow-list, so no license.disallowed findings.",
    )
    conditions: list[Literal["NC", "ND", "SA"]] = Field(
        default_factory=list,
        description="Creative Commons elements to flag, as license.nc, license.nd, license.sa (read from the SPDX id); "
        "none by default, so that a variant removing `license` keeps the licences `allow` lists.",
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
    (:func:`scrutineer.samples.licenses.to_spdx`):

    - ``license.missing``: no licence (no column, null or blank);
    - ``license.unknown``: a value that is not a recognisable SPDX licence;
    - ``license.disallowed``: an SPDX id outside ``allow`` (when ``allow`` is set);
    - ``license.nc``, ``license.nd``, ``license.sa``: a Creative Commons licence with the
      NonCommercial, NoDerivatives or ShareAlike element, as its SPDX id names it
      (:func:`scrutineer.samples.licenses.conditions`), for those in ``conditions``; a sample may have
      several (``CC-BY-NC-SA-2.0``: ``license.nc`` and ``license.sa``), beside ``disallowed``.

    A release variant is a licence policy over these reasons: ``commercial`` removes ``license.nc``,
    ``license.nd``, ``license.missing`` and ``license.unknown``, ``research`` less
    (README "Release variants"). Evidence ``{"license": raw value, "spdx": id or null}``, plus
    ``"condition"`` for the three conditions; not restricted.
    """

    name = "license_gaps"
    version = "2"
    reasons = {
        "license.missing": Reason(False, "No licence given"),
        "license.unknown": Reason(False, "Licence not recognised"),
        "license.disallowed": Reason(False, "Licence not on the allowed list"),
        "license.nc": Reason(False, "Licence forbids commercial use"),
        "license.nd": Reason(False, "Licence forbids derivative works"),
        "license.sa": Reason(False, "Licence requires sharing alike"),
    }
    Params = LicenseGapsParams

    def setup(self) -> None:
        self.allow = set(self.params.allow)

    def _classify(self, raw: str | None) -> list[tuple[str, str]]:
        """The findings of one distinct licence value: ``[(reason, evidence JSON)]``."""
        if raw is None or not raw.strip():
            return [("license.missing", evidence_json(license=raw, spdx=None))]
        spdx = to_spdx(raw)
        if spdx is None:
            return [("license.unknown", evidence_json(license=raw, spdx=None))]
        found = [("license.disallowed", evidence_json(license=raw, spdx=spdx))] if self.allow and spdx not in self.allow else []
        held = conditions(spdx)
        found += [(f"license.{c.lower()}", evidence_json(license=raw, spdx=spdx, condition=c)) for c in self.params.conditions if c in held]
        return found

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        # Classify each distinct value once, then map back: licence columns have few values. The
        # k-th finding of every row comes from one take and one filter, in row order; a row with
        # several findings (conditions) needs a sort to interleave them.
        values = batch.column("license")
        distinct = pc.unique(values)
        idx = pc.index_in(values, value_set=distinct, skip_nulls=False)
        classes = [self._classify(v) for v in distinct.to_pylist()]
        rows = pa.Table.from_batches([batch.select(["row_index", "sample_id", "url"])])
        found = []
        for k in range(max(map(len, classes), default=0)):
            hit = pa.array([len(c) > k for c in classes]).take(idx)
            at = idx.filter(hit)
            reason, evidence = (pa.array([c[k][j] if len(c) > k else None for c in classes], pa.string()).take(at) for j in (0, 1))
            found.append(self.findings(rows.filter(hit), reason, evidence))
        if not found:
            return empty_findings()
        return found[0] if len(found) == 1 else pa.concat_tables(found).sort_by("row_index")
