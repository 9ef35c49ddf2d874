"""``dead_links``: link liveness from the fetcher's status classes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field
from scrutineer.detectors.base import Detector, empty_findings, evidence_json

#: Fetch status class -> reason. ``dead`` only counts once ``min_checks`` checks agree.
REASONS = {
    "dead": "link.dead",
    "moved": "link.moved",
    "not_image": "link.not_image",
    "too_large": "link.too_large",
    "transient": "link.transient",
}


class DeadLinksParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_checks: int = Field(
        2, ge=1, description="Agreeing checks, fetch.recheck_interval apart, before a link is called dead: a scan makes up to "
        "fetch.dead_checks of them, and each recheck (`scrutineer recheck`, the recheck_links deployment) one more."
    )


class DeadLinks(Detector):
    """Flags ``link.dead`` (404, 410 or NXDOMAIN on ``min_checks`` agreeing checks),
    ``link.moved`` (redirected to another registrable domain, or to HTML), ``link.not_image``
    (the body is not an image), ``link.too_large`` (more than ``fetch.max_bytes`` bytes or
    ``fetch.max_pixels`` pixels: not hashed, so not checked against perceptual banks) and
    ``link.transient`` (timeouts, 429, 5xx, resets after retries). Evidence
    ``{"status", "http_status", "final_url", "error", "checks"}``; not restricted. A dead-looking
    link with fewer agreeing checks gets no finding: one failed check is not link rot.
    """

    name = "dead_links"
    version = "2"
    reasons = {reason: False for reason in REASONS.values()}
    Params = DeadLinksParams
    needs = "content"

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        status = batch.column("status")
        confirmed = pc.or_(pc.not_equal(status, "dead"), pc.greater_equal(batch.column("checks"), self.params.min_checks))
        flagged = pc.and_(pc.is_in(status, pa.array(list(REASONS))), confirmed)
        rows = pa.Table.from_batches([batch]).filter(flagged)
        if rows.num_rows == 0:
            return empty_findings()
        statuses = rows.column("status").to_pylist()
        evidence = [
            evidence_json(status=s, http_status=h, final_url=f, error=e, checks=c)
            for s, h, f, e, c in zip(statuses, *(rows.column(n).to_pylist() for n in ("http_status", "final_url", "error", "checks")))
        ]
        return self.findings(rows, reason=pa.array([REASONS[s] for s in statuses], pa.string()), evidence=pa.array(evidence, pa.string()))
