"""``verify_hash``: the bytes a sample's URL (or tar) holds now are not the bytes the dataset recorded."""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.detectors.base import Detector, Reason, empty_findings, evidence_json


class VerifyHashParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description="Source column holding each sample's expected digest (hex, any case), e.g. `sha256hash`.")
    algorithm: Literal["md5", "sha1", "sha256"] = Field("sha256", description="Digest the column holds.")


class VerifyHash(Detector):
    """Flags ``content.hash_mismatch``: the digest of the bytes served (or read from the tar)
    differs from the sample's expected digest in ``column``, the check img2dataset runs with
    ``verify_hash=(column, algorithm)``. The image changed since the dataset was built, so its
    caption and labels may no longer describe it. Rows with no expected digest or no bytes get no
    finding (``dead_links`` reports those). Evidence ``{"column", "algorithm", "expected",
    "actual"}``; not restricted.

    img2dataset's own ``sha256`` output column is the digest of the bytes it downloaded; its tar
    holds those bytes only with ``disable_all_reencoding=True`` (by default it re-encodes), so
    point ``column`` at it for a webdataset scan only when the tars were written that way.
    """

    name = "verify_hash"
    version = "1"
    reasons = {"content.hash_mismatch": Reason(False, "Image changed since the dataset was made")}
    Params = VerifyHashParams
    needs = "content"

    @classmethod
    def source_columns(cls, params: VerifyHashParams) -> list[str]:
        return [params.column]

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        expected = pc.utf8_lower(pc.utf8_trim_whitespace(batch.column(self.params.column).cast(pa.string())))
        actual = batch.column(self.params.algorithm)
        mismatch = pc.fill_null(pc.not_equal(expected, actual), False)
        rows = pa.Table.from_batches([batch]).append_column("_expected", expected).filter(mismatch)
        if rows.num_rows == 0:
            return empty_findings()
        evidence = [
            evidence_json(column=self.params.column, algorithm=self.params.algorithm, expected=e, actual=a)
            for e, a in zip(rows.column("_expected").to_pylist(), rows.column(self.params.algorithm).to_pylist())
        ]
        return self.findings(rows, reason="content.hash_mismatch", evidence=pa.array(evidence, pa.string()))
