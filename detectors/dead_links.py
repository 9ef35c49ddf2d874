"""``dead_links``: link liveness from the fetcher's status classes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from scrutineer.core.contract import UTC_TIME
from scrutineer.core.errors import ConfigError
from scrutineer.core.layout import Layout
from scrutineer.detectors.base import (
    Reason,
    RecheckingDetector,
    empty_findings,
    evidence_json,
)
from scrutineer.observing.policy_files import origin

if TYPE_CHECKING:
    from scrutineer.core.config import Config

#: Fetch status class -> reason. ``dead`` only counts once ``min_checks`` checks agree.
REASONS = {
    "dead": "link.dead",
    "invalid": "link.invalid",
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


class DeadLinks(RecheckingDetector):
    """Flags ``link.dead`` (404, 410 or NXDOMAIN on ``min_checks`` agreeing checks),
    ``link.moved`` (redirected to another registrable domain, or to HTML), ``link.not_image``
    (the body is not an image), ``link.too_large`` (more than ``fetch.max_bytes`` bytes or
    ``fetch.max_pixels`` pixels: not hashed, so not checked against perceptual banks) and
    ``link.transient`` (timeouts, 429, 5xx, resets after retries) and ``link.invalid`` (no URL,
    or one no crawler can fetch: not http(s), no host, credentials in it, characters the HTTP
    client refuses; never requested). Evidence ``{"status", "http_status", "final_url", "error",
    "checks"}`` (for a row with no URL: status ``invalid``, error ``no URL``); not restricted. A
    dead-looking link with fewer agreeing checks gets no finding: one failed check is not link rot.

    A recheck (``scrutineer recheck``) checks again the links it calls due (:meth:`due_urls`).
    """

    name = "dead_links"
    version = "3"
    reasons = {
        "link.dead": Reason(False, "Dead link"),
        "link.invalid": Reason(False, "No fetchable URL (missing, not http(s), or malformed)"),
        "link.moved": Reason(False, "Link moved to another site or to a web page"),
        "link.not_image": Reason(False, "Link serves no image"),
        "link.too_large": Reason(False, "Image too large to check"),
        "link.transient": Reason(False, "Link failing for now (timeouts, server errors)"),
    }
    Params = DeadLinksParams
    needs = "content"

    def detect(self, batch: pa.RecordBatch) -> pa.Table:
        no_url = pc.equal(pc.utf8_trim_whitespace(pc.fill_null(batch.column("url"), "")), "")  # never checked: no status
        status = pc.if_else(no_url, "invalid", batch.column("status"))
        batch = batch.set_column(batch.schema.get_field_index("status"), "status", status)
        batch = batch.set_column(batch.schema.get_field_index("error"), "error", pc.if_else(no_url, "no URL", batch.column("error")))
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

    @classmethod
    def check_config(cls, params: DeadLinksParams, config: Config) -> None:
        """Refuse a webdataset scan: its bytes come from its tars, and no URL is checked.

        Raises:
            ConfigError: ``dataset.format`` is ``webdataset``.
        """
        if config.dataset.format == "webdataset":
            raise ConfigError("dead_links checks URLs on the web; a webdataset scan reads the bytes from its tars, with no HTTP")

    @classmethod
    def due_urls(cls, params: DeadLinksParams, content: Path, checked_before: datetime) -> set[str]:
        """The URLs of a content observation a recheck checks again: those whose last check was
        ``link.transient``, or dead (404, 410, NXDOMAIN) with fewer agreeing checks than
        ``min_checks``, or whose origin has a policy file whose latest read the observation could
        not make (``transient`` in ``policy_files.parquet``: checking them reads it again); and
        started at or before ``checked_before``. Reads only those rows of ``content.parquet``."""
        due = (pc.field("status") == "transient") | ((pc.field("status") == "dead") & (pc.field("checks") < params.min_checks))
        old = pc.field("checked_at") <= pa.scalar(checked_before, UTC_TIME)
        found = set(pq.read_table(content, columns=["url"], filters=due & old).column("url").unique().drop_null().to_pylist())
        policies = content.with_name(Layout.POLICY_FILES)
        reads = pq.read_table(policies, columns=["origin", "name", "fetched_at", "status"]).to_pylist() if policies.exists() else []
        latest = {(r["origin"], r["name"]): r["status"] for r in sorted(reads, key=lambda r: r["fetched_at"])}  # a recheck keeps the earlier reads
        if unread := {o for (o, _name), status in latest.items() if status == "transient"}:
            urls = pq.read_table(content, columns=["url"], filters=old).column("url").unique().drop_null().to_pylist()
            found |= {u for u in urls if origin(u) in unread}
        return found
