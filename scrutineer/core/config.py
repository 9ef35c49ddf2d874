"""The YAML configuration of a scan, validated with pydantic.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
Relative paths (shards, banks, workspace) are resolved against the directory of the config file.

Example::

    dataset:
      name: laion400m-sample
      shards: ["data/*.parquet"]
      format: parquet
      columns: {url: URL, caption: TEXT}
    workspace: ./work
    banks:
      - {name: watchlist, path: banks/urls.txt, signal_type: url_md5, source: "Example Hotline", version: "2026-11"}
    detectors:
      url_hashlist: {}
      license_gaps: {allow: [CC0-1.0, CC-BY-4.0]}
      dedup: {on: [url, caption]}
    release:
      variants:
        research: {remove: [hash_match, duplicate.url]}
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import expandvars
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scrutineer.core.contract import CANONICAL_COLUMNS
from scrutineer.core.errors import ConfigError
from scrutineer.core.layout import Layout
from scrutineer.core.policy import matches
from scrutineer.core.registry import get_detector_class, registered_reasons
from scrutineer.matching.signals import SIGNAL_TYPES
from scrutineer.samples.licenses import is_spdx_id

#: Default bound on decoded pixels. Hashing holds about 33 bytes per pixel at its peak (a 9000 x
#: 9000 PNG of 236 KB took 2.7 GB), so 32 million pixels (a 6,500 x 5,000 photo) bound a hash
#: worker near 1 GB. Pillow's own guard, 89,478,485 pixels, is far above what a worker can afford.
MAX_PIXELS = 32_000_000

#: Names that are safe as one path component (datasets, banks, variants): no ``/``, no leading ``.``.
PLAIN_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

Format = Literal["parquet", "csv", "tsv", "jsonl", "coco", "hf", "webdataset"]
CanonicalColumn = Literal[CANONICAL_COLUMNS]  # the contract's canonical columns, one of which a source column maps to
SignalTypeName = Literal[tuple(SIGNAL_TYPES)]

SUFFIX_FORMATS: dict[str, Format] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "coco",
}


def cores() -> int:
    """The CPUs this process may run on: ``os.process_cpu_count()`` (Python 3.13+, which counts the
    process's CPU affinity), else ``os.cpu_count()``; 1 when unknown."""
    return getattr(os, "process_cpu_count", os.cpu_count)() or 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: Keys a model took once, each with what replaced it: such a key is refused, as any unknown key
    #: is (``extra="forbid"``), with a message naming the replacement.
    RENAMED: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and (old := next((k for k in cls.RENAMED if k in data), None)):
            raise ValueError(f"{old} is no longer a setting: use {cls.RENAMED[old]}")
        return data


class HFOptions(Strict):
    """Options passed to ``datasets.load_dataset(..., streaming=True)`` for ``format: hf``."""

    split: str = Field("train", description="Split to stream.")
    name: str | None = Field(None, description="Dataset configuration name on the Hub.")
    revision: str | None = Field(None, description="Git revision of a Hub dataset; part of its fingerprint.")


class DatasetConfig(Strict):
    """Where the shards are and how to read them."""

    name: str = Field(pattern=PLAIN_NAME, description="Dataset name; the release is RE-<name>-<variant>.")
    shards: list[str] = Field(min_length=1, description="Paths or globs relative to the config file (for hf: local files or Hub ids).")
    format: Format | None = Field(
        None,
        description="Shard format; inferred from the file suffix when omitted. `webdataset`: the shards are "
        "img2dataset's per-shard .parquet files, and each one's images are read from the .tar beside it.",
    )
    columns: dict[CanonicalColumn, str] = Field(
        default_factory=dict,
        description="Source column for each canonical name. Unmapped names fall back to common LAION/COCO spellings.",
    )
    header: bool | None = Field(None, description="CSV/TSV: whether the first line is a header (default: true unless `names` is given).")
    names: list[str] | None = Field(None, description="CSV/TSV: column names of a headerless file, in order.")
    quoting: bool | None = Field(
        None,
        description="CSV/TSV: whether double quotes delimit fields. Default true for csv, false for tsv "
        "(QUOTE_NONE, as CC3M's caption<TAB>url file needs).",
    )
    hf: HFOptions = Field(default_factory=HFOptions, description="Options for `format: hf`.")
    batch_rows: int = Field(131_072, gt=0, description="Rows per Arrow record batch; bounds memory per shard task.")
    license: str | None = Field(
        None,
        description="The licence the source dataset declares for itself (not its rows'), as an SPDX id such as CC-BY-4.0: "
        "a release's croissant.json and dataset card give it. None: the dataset declares none.",
    )

    @field_validator("license")
    @classmethod
    def _spdx_license(cls, value: str | None) -> str | None:
        if value is not None and not is_spdx_id(value):
            raise ValueError(f"{value!r} is not an SPDX license id (see https://spdx.org/licenses/; ids are case-sensitive, e.g. CC-BY-4.0)")
        return value


class BankConfig(Strict):
    """A hash bank (hash list) file: one hex digest per line, or a CSV with a `hash` column."""

    name: str = Field(pattern=PLAIN_NAME, description="Name of the bank in findings, manifests and reports.")
    path: Path = Field(description="The bank file, relative to the config file.")
    signal_type: SignalTypeName = Field(description="HMA/ThreatExchange signal type name of the entries (scrutineer/matching/signals.py).")
    source: str = Field(description="Who supplied the list (a hotline, a watchdog).")
    version: str = Field(description="The supplier's version label for this list.")


class BreakerConfig(Strict):
    """When connection-level failures (refused, reset, DNS) spread over many hosts, the network is
    down, not the links: the fetch stops and its checks are inconclusive (DESIGN.md "Fetching")."""

    failures: int = Field(20, gt=0, description="Consecutive connection-level failures, with no success between them ...")
    hosts: int = Field(5, gt=0, description="... spread over at least this many distinct hosts, open the breaker.")


class FetchConfig(Strict):
    """How images are fetched (DESIGN.md "Fetching"). Times are seconds, sizes bytes."""

    user_agent: str = Field("Scrutineer/0.1 (+{contact})", description="User-Agent; `{contact}` is replaced by `contact`.")
    contact: str = Field("https://github.com/scrutineer/scrutineer", description="URL or address where site owners reach the operator.")
    robots_agent: str = Field("Scrutineer", description="Product token matched against robots.txt User-agent lines (RFC 9309).")
    concurrency: int = Field(64, gt=0, description="Requests in flight at once, in all.")
    per_domain: int = Field(4, gt=0, description="Requests in flight at once per registrable domain.")
    min_interval: float = Field(0.0, ge=0, description="Seconds between the starts of two requests to one registrable domain.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(20.0, gt=0, description="Seconds between two reads of a response.")
    total_timeout: float = Field(60.0, gt=0, description="Whole request, body included.")
    max_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="Bodies (and webdataset tar members) larger than this are not read (status too_large)."
    )
    max_pixels: int = Field(
        MAX_PIXELS, gt=0, description="Images with more pixels are not decoded, so get no perceptual hash (status too_large); bounds a hash worker's memory."
    )
    max_redirects: int = Field(5, ge=0, le=5, description="Redirects followed (RFC 9110 suggests no more than 5).")
    retries: int = Field(3, ge=0, description="Retries of transient failures (429, 5xx, timeouts, resets).")
    backoff: float = Field(1.0, gt=0, description="First retry delay; doubles each retry, with full jitter.")
    max_backoff: float = Field(60.0, gt=0, description="Longest wait before a retry, Retry-After included; longer = give up (transient).")
    respect_robots: bool = Field(True, description="Obey robots.txt for `robots_agent` (RFC 9309).")
    allow_private_networks: bool = Field(False, description="Allow loopback/private/link-local/reserved addresses (tests, the demo).")
    allowed_networks: list[str] = Field(
        default_factory=list, description="CIDR networks allowed although private (e.g. a mirror on the LAN); the rest stay refused."
    )
    breaker: BreakerConfig = Field(default_factory=BreakerConfig, description="When the network counts as down.")
    dead_checks: int = Field(2, ge=1, description="Checks of a URL that looks dead (404, 410, NXDOMAIN) before the run stops re-checking.")
    recheck_interval: float = Field(5.0, ge=0, description="Seconds between two checks of a URL that looks dead.")
    processes: int = Field(
        default_factory=cores, gt=0,
        description="Processes that fetch and hash, one event loop each, sharing `concurrency` and splitting the registrable "
        "domains between them (flows/content_workers.py); also the processes hashing a webdataset shard's tar. Default: the "
        "machine's cores.",
    )
    pdq_dihedral: bool = Field(
        False, description="Also keep the PDQ hashes of each image's 7 other rotations and flips, so a PDQ bank entry matches a "
        "mirrored or rotated copy (Meta's PDQ documentation: PDQ is not flip- or rotation-invariant; match the dihedral hashes)."
    )
    decode: Literal["full", "luma", "reduced"] = Field(
        "luma", description="How a fetched image is decoded for its PDQ and pHash. `luma` (the default): a colour JPEG is decoded "
        "to its luma channel alone (libjpeg's greyscale output: no chroma, upsampling or colour conversion), which both hashes "
        "take as their luminance; other images as `full`. A JPEG's PDQ and pHash move at most 2 bits from `full`'s, and no bank "
        "match was lost or made on the near-duplicate sets (README, bench/decode.py); hashing costs ~15% less. `full`: every "
        "pixel as RGB, so the hashes are pdqhash's and imagehash's on the full decode, bit for bit. `reduced`: a JPEG of 1,024 px "
        "or more on its longer side is decoded at the smallest of 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) that keeps that "
        "side at 512 px or more, as Meta's PDQ hashers downsample to 512 px; other images as `full`. Several times cheaper on "
        "large photos, but the hashes of those move: measured up to 16 bits of PDQ and 2 of pHash.",
    )
    policy_ttl: float = Field(
        86400.0, gt=0, description="Seconds a host's policy files (robots.txt, ai.txt, tdmrep.json) stay fresh once read; RFC 9309 §2.4 "
        "asks crawlers not to use a cached robots.txt for more than 24 hours."
    )

    RENAMED: ClassVar[dict[str, str]] = {"hash_workers": "fetch.processes (processes that fetch and hash, one per core by default)"}

    @property
    def user_agent_header(self) -> str:
        return self.user_agent.format(contact=self.contact)


class VariantConfig(Strict):
    """One release variant: the finding reasons (or reason prefixes) whose rows are removed."""

    remove: list[str] = Field(
        min_length=1,
        description="Reason codes or dotted prefixes (scrutineer/core/policy.py), e.g. `hash_match` or `duplicate.url`; "
        "each must match a reason some registered detector can emit.",
    )
    keep_restricted: bool = Field(
        False,
        description="Publish rows whose restricted findings (hash-bank matches) `remove` does not cover. Without it, "
        "`remove` must cover every restricted reason the configured detectors can emit: a release that keeps "
        "hash-listed samples has to be a written decision, never the effect of a typo or a forgotten entry.",
    )
    stricter_than: str | None = Field(
        None,
        description="Another variant whose release this one's must be a subset of: this variant removes every reason "
        "that one removes (checked on the config, and again on the rows at release time).",
    )
    list_removed: bool = Field(
        False,
        description="Write `removed.parquet` (sample_id, shard_id, row_index) listing the removed rows that anyone holding "
        "the original can recompute (a recomputable reason of `remove` removes them: scrutineer/core/policy.py), restricted rows "
        "among them included, so the list tells an outsider nothing they could not compute. The other removals are never "
        "listed: with the original, such a list leaves the restricted rows as the difference.",
    )
    acknowledge_restricted_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Release even though the restricted rows are more than `release.max_restricted_share` of the "
        "release's anonymity set, up to this share (e.g. 0.3): a written decision that whoever holds the original can "
        "narrow the restricted rows down to a set of which this share is restricted. A release past it is refused again.",
    )


#: A variant name: a plain name, as a dataset name is (no ``/``, no leading ``.``), since the
#: release directory is ``<workspace>/releases/RE-<dataset>-<variant>``.
VariantName = Annotated[str, StringConstraints(pattern=PLAIN_NAME)]


class ReleaseConfig(Strict):
    """Release variants; variant ``V`` of dataset ``D`` is written to ``releases/RE-D-V``."""

    variants: dict[VariantName, VariantConfig] = Field(default_factory=dict, description="Variant name -> its policy.")
    max_restricted_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="The largest share of a release's anonymity set (its removed rows no recomputable reason explains: "
        "scrutineer/core/policy.py) that its restricted rows may be; a release over it is refused unless its variant sets "
        "`acknowledge_restricted_share`. Default 1/10 (issue 23): whoever diffs the original against the release then "
        "picks a restricted row from that set at most 1 time in 10.",
    )

    def check(self, detectors: Iterable[str], crowd: dict[str, bool]) -> None:
        """Check every variant's ``remove`` patterns against the detectors' declared reasons
        (``Detector.reasons``) and the crowd's (:meth:`CrowdConfig.finding_reasons`).

        A pattern must match (:func:`scrutineer.core.policy.matches`) a reason of a registered detector,
        and a variant must remove every restricted reason that ``detectors`` can emit unless it
        sets ``keep_restricted`` (issue 10: a typo once published hash-matched rows). A variant
        ``stricter_than`` another must remove every known reason the other removes.

        Args:
            detectors: names of the configured detectors.
            crowd: the crowd categories' reasons -> whether each is restricted.

        Raises:
            ConfigError: a pattern matching no known reason (the message names the variant, the
                pattern and the known reasons), a variant keeping restricted reasons unsaid, or a
                ``stricter_than`` naming no variant or not holding (the message names the reasons).
        """
        declared = registered_reasons()
        known = sorted({reason for reasons in declared.values() for reason in reasons} | set(crowd))
        configured = [{code: reason.restricted for code, reason in declared[name].items()} for name in detectors] + [crowd]
        restricted = sorted({reason for reasons in configured for reason, is_restricted in reasons.items() if is_restricted})
        for name, variant in self.variants.items():
            for pattern in variant.remove:
                if not any(matches(pattern, reason) for reason in known):
                    raise ConfigError(
                        f"release.variants.{name}.remove: {pattern!r} matches no reason of a registered detector; "
                        f"known reasons: {', '.join(known)}"
                    )
            kept = [reason for reason in restricted if not any(matches(pattern, reason) for pattern in variant.remove)]
            if kept and not variant.keep_restricted:
                raise ConfigError(
                    f"release.variants.{name} would publish rows with restricted findings {kept}: add them (or `hash_match`) "
                    "to `remove`, or set `keep_restricted: true` to publish them on purpose"
                )
        for name, variant in self.variants.items():
            if variant.stricter_than is None:
                continue
            other = self.variants.get(variant.stricter_than)
            if other is None:
                raise ConfigError(f"release.variants.{name}.stricter_than: no variant {variant.stricter_than!r}; configured: {sorted(self.variants)}")
            looser = [r for r in known if any(matches(p, r) for p in other.remove) and not any(matches(p, r) for p in variant.remove)]
            if looser:
                raise ConfigError(
                    f"release.variants.{name} is declared stricter_than {variant.stricter_than}, but keeps rows that "
                    f"{variant.stricter_than} removes, for reasons {looser}: add them to its `remove`"
                )


#: A crowd flag category: the finding reason is ``crowd.<category>``.
CategoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
#: A review reason code (NCMEC's hash sharing requires one with every "no").
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class CategoryConfig(Strict):
    """One category people can flag a sample under."""

    description: str = Field("", description="What the category covers, shown on the flag form.")
    sensitive: bool = Field(
        False,
        description="Restricted like a hash-bank match: only reviewers and maintainers see the sample's URL, public "
        "outputs show counts only, and its `crowd.<category>` findings are restricted (e.g. `csam_suspected`).",
    )


class QuorumConfig(Strict):
    """When a flag is confirmed: by ``reviewers`` distinct reviewers' confirmations, or (when set)
    by ``contributors`` distinct contributors flagging the same sample under the same category,
    whichever comes first. One reviewer's rejection rejects it. Only contributor accounts count
    toward ``contributors``: a reviewer's or maintainer's report is recorded, and their flag waits
    for another reviewer's decision (they cannot decide a flag they reported)."""

    reviewers: int = Field(1, ge=1, description="Distinct reviewers whose `confirm` confirms a flag.")
    contributors: int | None = Field(
        None, ge=2, description="Distinct contributor accounts (not reviewers or maintainers) whose flags of one sample and category confirm it without a reviewer (unset: never)."
    )


class ReviewReasons(Strict):
    """The reason codes a reviewer picks from, per decision."""

    confirm: list[ReasonCode] = Field(["matches_category", "hotline_confirmed"], min_length=1, description="Reason codes for `confirm`.")
    reject: list[ReasonCode] = Field(
        ["not_in_category", "insufficient_evidence", "wrong_sample", "duplicate_flag"], min_length=1, description="Reason codes for `reject`."
    )


class CrowdConfig(Strict):
    """Flags from people and their review (``scrutineer serve``, ``flags import``, ``sync``).

    Example::

        crowd:
          categories:
            csam_suspected: {sensitive: true, description: "Suspected child sexual abuse material"}
            personal_data: {description: "Identifiable people's private data"}
          confirm: {reviewers: 1}
    """

    database: str | None = Field(
        None,
        description="SQLAlchemy URL of the crowd store (accounts, flags, reviews, audit log); default "
        "`sqlite:///<workspace>/crowd.sqlite` in WAL mode. A shared deployment points it at Postgres "
        "(`postgresql+psycopg://user@host/db`).",
    )
    categories: dict[CategoryName, CategoryConfig] = Field(
        default_factory=dict, description="Category name -> its settings; no categories, no flags."
    )
    confirm: QuorumConfig = Field(default_factory=QuorumConfig, description="The quorum that confirms a flag.")
    reasons: ReviewReasons = Field(default_factory=ReviewReasons, description="Reason codes reviewers give with each decision.")
    rate_limit: str = Field(
        "30/minute", description="Flags one account may submit, in the `limits` library's notation (`N/second|minute|hour|day`)."
    )
    # Label Studio's task lock: TASK_LOCK_DEFAULT_TTL, 3,600 s (label_studio/core/settings/base.py; its current
    # TASK_LOCK_TTL defaults to a day, too long for a queue a watchdog works through in minutes).
    claim_minutes: float = Field(
        60.0, gt=0, description="Minutes a reviewer who opens a flag holds it: others see who and until when, and cannot decide it meanwhile."
    )
    # The flood guard's crowd rule (scrutineer.crowd.holds). 200 new flags of one category in an hour: the per-account
    # rate_limit (30/minute) lets one account make 200 in under 7 minutes, and 200 an hour is past what the reviewers of a
    # watchdog group decide in one (a flag a minute from each of three), so a campaign, a bot or a mistaken import waits
    # for a maintainer's look.
    flood: str = Field(
        "200/hour",
        description="A category with more new flags than this in any moving window is held from that moment: its flags act "
        "only once a maintainer confirms the hold (`limits` notation, as rate_limit; the flood guard, README).",
    )
    session_hours: float = Field(12.0, gt=0, description="Hours a log-in session lasts (it ends sooner on log-out or when the account is disabled).")
    # OWASP Authentication Cheat Sheet, "Account Lockout": a threshold of failures in an observation window, counted per
    # account (not only per address, which an attacker spreads over many); NIST SP 800-63B §5.2.2 requires such throttling.
    failed_logins_per_account: str = Field(
        "10/15 minutes",
        description="Failed log-ins one account name may have in any moving window before further attempts get 429 "
        "(`limits` notation). Counted per name tried, whether or not the account exists.",
    )
    failures_per_address: str = Field(
        "50/15 minutes",
        description="Failed log-ins and failed API tokens (a Bearer token that matches nothing) one client address may have "
        "in any moving window before further attempts get 429 (`limits` notation).",
    )

    @field_validator("rate_limit", "failed_logins_per_account", "failures_per_address", "flood")
    @classmethod
    def _rate_limit(cls, value: str, info: ValidationInfo) -> str:
        # start-up: limits costs ~120 ms at import (python -X importtime); only a crowd's rate limits need it
        from limits import parse

        try:
            parse(value)
        except ValueError as e:
            raise ValueError(f"{info.field_name} {value!r}: {e}") from None
        return value

    def finding_reasons(self) -> dict[str, bool]:
        """The reasons of the findings ``sync`` makes: ``crowd.<category>`` -> restricted."""
        return {f"crowd.{name}": c.sensitive for name, c in self.categories.items()}


#: ``flood.max_matches`` as a share: a percentage of the run's samples, e.g. ``"0.01%"``.
PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


class FloodConfig(Strict):
    """The flood guard (:mod:`scrutineer.core.flood`): what is held for a maintainer's review
    before it acts (HMA's open request facebook/ThreatExchange#1994: one bad hash must not flood a
    platform).

    ``max_matches`` defaults to 2,500 samples. LAION's figures bound a genuine entry: Re-LAION-5B
    removed 2,236 samples of 5.8 billion for every entry of every hotline's list together
    (LAION, "Releasing Re-LAION 5B", 2024-08-30), so no genuine entry matched more than 2,236 of
    them; 2,500 is that bound rounded up, and a blank or placeholder image's hash, which matches
    every copy of the placeholder (millions in a web-scale crawl), passes it at once. A share
    (``"0.01%"``) scales with the dataset instead; at LAION's size ``"0.00004%"`` is that same
    bound.

    The crowd's rule, a category flagged too often in a window, is ``crowd.flood``
    (:class:`CrowdConfig`), beside the crowd's other limits: the crowd store reads its own section.
    """

    max_matches: int | str = Field(
        2500,
        description="An entry of a bank whose findings in a run match more samples than this is held: a number of samples "
        "(e.g. 2500), or a share of the run's samples as a percentage (e.g. \"0.01%\").",
    )

    @field_validator("max_matches", mode="before")
    @classmethod
    def _max_matches(cls, value: Any) -> int | str:
        if isinstance(value, float):
            raise ValueError(f"flood.max_matches {value!r}: write a share as a percentage (0.001 is \"0.1%\"), a count as a whole number")
        if isinstance(value, bool) or not isinstance(value, int | str) or isinstance(value, int) and value < 1:
            raise ValueError(f"flood.max_matches {value!r}: a number of samples is a whole number of 1 or more")
        if isinstance(value, str) and not ((m := PERCENT.match(value.strip())) and 0 < float(m.group(1)) <= 100):
            raise ValueError(f"flood.max_matches {value!r}: a share is a percentage above 0 and at most 100, like \"0.01%\"")
        return value

    def limit(self, samples: int) -> int:
        """The most samples one entry may match without a hold in a run of ``samples`` samples:
        ``max_matches`` itself, or its share of ``samples`` rounded down (at least 1)."""
        if isinstance(self.max_matches, int):
            return self.max_matches
        share = float(PERCENT.match(self.max_matches.strip()).group(1)) / 100
        return max(1, int(samples * share))


class RunnerConfig(Strict):
    """Where the shard tasks run. ``local``: threads of the scanning process (``workers`` at once).
    ``dask``: worker processes of a Dask cluster, through prefect-dask's ``DaskTaskRunner``, one
    shard task per worker process at a time; either a running cluster (``address``) or a
    ``LocalCluster`` of ``workers`` processes that the scan starts and stops. Every worker must
    see the workspace and the shards at the same paths (README "Scale-out"). The scanning process
    stays the only writer of the store."""

    kind: Literal["local", "dask"] = Field("local", description="local or dask.")
    address: str | None = Field(None, description="dask: a running cluster's scheduler, e.g. tcp://scheduler:8786.")
    workers: int | None = Field(None, gt=0, description="dask: worker processes of a LocalCluster started for the scan.")

    @model_validator(mode="after")
    def _one_cluster(self) -> RunnerConfig:
        if self.kind == "dask" and (self.address is None) == (self.workers is None):
            raise ValueError("runner: kind dask takes either address (a running cluster) or workers (a LocalCluster), not both or neither")
        if self.kind == "local" and (self.address or self.workers):
            raise ValueError("runner: address and workers are for kind dask; the local runner's threads are the top-level workers")
        return self


#: The flows ``scrutineer deploy`` registers that may run on a schedule (release and report run on
#: demand only: a release is a decision, and a report follows a run).
SCHEDULABLE = ("scan", "recheck_links", "rematch_banks", "sync")


class ScheduleConfig(Strict):
    """When one deployed flow runs: a cron line or an interval (Prefect's ``CronSchedule`` and
    ``IntervalSchedule``, evaluated by the Prefect server's scheduler)."""

    cron: str | None = Field(None, description='A cron line, e.g. "0 3 * * 1" (Mondays at 03:00), read by Prefect (cronsim).')
    interval: float | None = Field(None, gt=0, description="Seconds between two runs.")
    timezone: str = Field("UTC", description="IANA time zone of the cron line, e.g. Europe/Berlin.")

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleConfig:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule takes either cron or interval, not both or neither")
        return self


class Config(Strict):
    """A whole scan configuration; see the module docstring for an example."""

    dataset: DatasetConfig = Field(description="Where the shards are and how to read them.")
    workspace: Path = Field(Path("work"), description="Holds the store, the observation and judgement sets, releases, reports and the takedown manifest (scrutineer.core.layout).")
    banks: list[BankConfig] = Field(default_factory=list, description="Hash banks (hash lists) to match.")
    detectors: dict[str, dict[str, Any]] = Field(min_length=1, description="Detector name -> its parameters.")
    release: ReleaseConfig = Field(default_factory=ReleaseConfig, description="Release variants.")
    crowd: CrowdConfig = Field(default_factory=CrowdConfig, description="Flags from people and their review.")
    flood: FloodConfig = Field(default_factory=FloodConfig, description="The flood guard: bank entries and crowd categories held for review.")
    fetch: FetchConfig = Field(default_factory=FetchConfig, description="How images are fetched and hashed.")
    workers: int = Field(2, gt=0, description="Shard tasks run at once by the local runner (threads).")
    runner: RunnerConfig = Field(default_factory=RunnerConfig, description="Where the shard tasks run: local threads or a Dask cluster.")
    schedule: dict[Literal[SCHEDULABLE], ScheduleConfig] = Field(  # type: ignore[valid-type]
        default_factory=dict, description=f"Deployed flow -> when it runs ({', '.join(SCHEDULABLE)}); `scrutineer deploy` registers them."
    )
    threads_per_shard: int = Field(2, gt=0, description="Batches of one shard processed at once (threads).")
    memory_limit: str = Field("1GB", description="DuckDB memory_limit of the store; larger work spills to disk.")
    config_path: Path | None = Field(None, exclude=True, description="The file this config was read from (not part of the config).")

    @field_validator("detectors", mode="before")
    @classmethod
    def _none_params(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v if v is not None else {}) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _unique_banks(self) -> Config:
        names = [b.name for b in self.banks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"bank names must be unique, repeated: {dupes}")
        return self

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def detector_params(self) -> dict[str, Any]:
        """Validated parameters per configured detector, as the detectors' ``Params`` models,
        checked against the rest of the config.

        Raises:
            ConfigError: an unknown detector name (the message lists the known ones), bad params,
                a detector matching a signal type no configured bank has, or params the rest of the
                config contradicts (:meth:`scrutineer.detectors.base.Detector.check_config`).
        """
        out = {}
        types = {b.signal_type for b in self.banks}
        for name, raw in self.detectors.items():
            cls = get_detector_class(name)
            try:
                out[name] = cls.Params.model_validate(raw)
            except ValidationError as e:
                raise ConfigError(f"detectors.{name}: {validation_errors(e)}") from None
            if cls.signals and not cls.signals & types:
                raise ConfigError(f"detectors.{name} matches banks of signal type {', '.join(sorted(cls.signals))}, and no bank has one")
            cls.check_config(out[name], self)
        return out


def validation_errors(e: ValidationError) -> str:
    """pydantic's errors as one line each, ``where: what`` (``dataset.name: String should match
    pattern …``), without pydantic's documentation links or the rejected value (which a user
    wrote, and may be long)."""
    return "; ".join(f"{'.'.join(str(part) for part in err['loc']) or 'config'}: {err['msg']}" for err in e.errors())


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false are booleans, so ``dedup: {on: [url]}`` keeps its
    ``on`` key (YAML 1.1 reads on/off/yes/no as booleans)."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Yaml12Loader.yaml_implicit_resolvers.setdefault(_first, []).append(
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )


def _expand(value: str | Path, where: str) -> str:
    """``$VAR``, ``${VAR}`` and ``${VAR:-default}`` in a path, as a POSIX shell expands them
    (``expandvars``), so a config can say ``${SCRUTINEER_SHARED_DATA:-../shared/data}``.

    Raises:
        ConfigError: a variable that is not set and has no default.
    """
    try:
        return expandvars.expandvars(str(value), nounset=True)
    except expandvars.ExpandvarsException as e:
        raise ConfigError(f"{where}: {e.args[0] if e.args else e}") from None  # args: a KeyError's str() quotes it


def _resolve(cfg: Config, base: Path) -> Config:
    """Expand variables in the config's paths and resolve relative ones against ``base``."""
    banks = [b.model_copy(update={"path": (base / _expand(b.path, f"banks.{b.name}.path")).resolve()}) for b in cfg.banks]
    shards = [_expand(p, "dataset.shards") for p in cfg.dataset.shards]
    workspace = (base / _expand(cfg.workspace, "workspace")).resolve()
    database = _expand(cfg.crowd.database, "crowd.database") if cfg.crowd.database else f"sqlite:///{Layout(workspace).crowd_store}"
    return cfg.model_copy(
        update={
            "workspace": workspace,
            "crowd": cfg.crowd.model_copy(update={"database": database}),
            "banks": banks,
            "dataset": cfg.dataset.model_copy(update={"shards": shards}),
        }
    )


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; resolve its relative paths against the file's directory.

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown keys, bad values, unknown detector, a
            release variant's bad pattern or unacknowledged restricted reasons
            (:meth:`ReleaseConfig.check`).
    """
    path = Path(path).resolve()
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        cfg = Config.model_validate({**raw, "config_path": path})
    except ValidationError as e:
        raise ConfigError(f"{path}: {validation_errors(e)}") from None
    cfg = _resolve(cfg, path.parent)
    cfg.detector_params()  # fail now on unknown detectors or bad params
    cfg.release.check(cfg.detectors, cfg.crowd.finding_reasons())
    return cfg
