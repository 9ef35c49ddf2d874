"""The crawled-data part of the EU AI Act's public summary of training content (Article 53(1)(d) of
Regulation (EU) 2024/1689): the most relevant registrable domains of a dataset's latest scan
(which must have completed), to the template's cut-off, and the opt-outs that scan found, by signal.

The template: European Commission, "Explanatory Notice and Template for the Public Summary of
Training Content for general-purpose AI models required by Article 53(1)(d) of Regulation (EU)
2024/1689", C(2025) 5235 final, 24 July 2025 (:data:`TEMPLATE`). Its section 2.3 "Data crawled and
scraped from online sources", item (vii) "Summary of the most relevant domain names crawled", asks,
in the Notice's footnote 16, for "a list of the internet domain names (top and second-level
domain, e.g. ``example.com``) in the top 10 % of all domain names determined by the size of the
content scraped … For small and medium-sized enterprises (SMEs), including start-ups, the
Template requires the internet domain names in the top 5%, or the top 1000 domains" (as a
published fact-check quotes the PDF; the item's wording as transcriptions of the template give it,
which render the SME rule "top 5% or top 1000, whichever lower"). The template does not define the
size measure; here it is:

- the *domain* is the registrable domain (eTLD+1, :func:`scrutineer.samples.domains.registrable_domain`:
  ``cdn.example.co.uk`` is ``example.co.uk``) of each sample's URL as the dataset gives it; a URL
  with no host is in no domain (counted apart, :attr:`Summary.no_host`);
- the *size* of a domain's content is the bytes scraped from it: summed over its samples whose
  bytes a content scan measured (``content_hashes.bytes``, the body as served or read from a tar),
  when a content scan checked every sample of the run. A sample it checked but did not fetch (a
  dead link, an invalid URL, one robots.txt disallows, a body over ``fetch.max_bytes``) had
  nothing scraped and counts 0 bytes. When some shard had no content scan, the size is the
  domain's number of samples (:attr:`Summary.ranked_by` says which). Domains are ranked by size,
  largest first, ties broken by domain name;
- the *cut-off* (:func:`cutoff`) lists the first ⌈10 % of the number of domains⌉, at least one; with
  ``sme``, ⌈5 %⌉ (at least one) or 1,000, whichever is lower.

Opt-outs (the template asks about respecting reservations of rights in its section 3.1) are the
``optouts`` detector's findings of the same run: the samples with each ``optout.*`` reason
(:data:`scrutineer.detectors.optouts.REASONS`), and those with any reservation
(:data:`scrutineer.detectors.optouts.RESERVATIONS`): what a release removing ``optout`` honours.

:func:`summarise` reads the store, :func:`summary_csv` and :func:`summary_markdown` make the files
and :func:`write_summary` writes them, ``scrutineer summary``'s work. Domains come from dataset URLs,
so they are untrusted text: the Markdown escapes them (:func:`markdown_text`), the CSV is
spreadsheet-safe (:mod:`scrutineer.reports.csvsafe`).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyarrow.compute as pc
import pyarrow.parquet as pq

from scrutineer import Workspace
from scrutineer.core import store
from scrutineer.core.config import Config
from scrutineer.core.files import atomic_write_text
from scrutineer.core.layout import Layout
from scrutineer.core.registry import reason_label
from scrutineer.core.wording import plural
from scrutineer.detectors.optouts import RESERVATIONS as OPTOUT_RESERVATIONS
from scrutineer.reports.csvsafe import csv_text, shown_controls
from scrutineer.reports.data import AUTHORITY_RE, NO_HOST, domain_counts, optout_counts

#: The template, as the output names it.
TEMPLATE = {
    "title": "Template for the Public Summary of Training Content for general-purpose AI models",
    "basis": "Article 53(1)(d) of the AI Act, Regulation (EU) 2024/1689",
    "reference": "European Commission, C(2025) 5235 final",
    "date": "24 July 2025",
    "section": "2.3 Data crawled and scraped from online sources",
    "item": "(vii) Summary of the most relevant domain names crawled",
    "rule": "the internet domain names in the top 10 % of all domain names determined by the size of the content scraped",
    "sme_rule": "for SMEs, including start-ups: the top 5 %, or the top 1000 domains, whichever is lower",
    "source": "Explanatory Notice, footnote 16",
}
#: The cut-off's percentages of the number of domains, and the SME variant's cap (:data:`TEMPLATE`).
PERCENT, SME_PERCENT, SME_CAP = 10, 5, 1000
#: The CSV's columns: one row per listed domain.
COLUMNS = ("rank", "domain", "samples", "share_of_samples", "bytes", "share_of_bytes")
#: A URL's authority as a named group, for pyarrow (the same pattern as :data:`AUTHORITY_RE`).
_AUTHORITY = AUTHORITY_RE.replace("(", "(?P<authority>", 1)


@dataclass(frozen=True)
class Domain:
    """One registrable domain of a run: its samples, and its bytes measured (None if a content scan
    checked none of the run's samples); shares are fractions (0 to 1) of all the run's samples and
    of all the bytes measured."""

    domain: str
    samples: int
    share_of_samples: float
    bytes: int | None
    share_of_bytes: float | None


@dataclass(frozen=True)
class Summary:
    """The crawled-data summary of one run (module docstring).

    Attributes:
        dataset, run_id: the run, which completed (:func:`scrutineer.core.store.complete_run`).
        kind: what the run did: ``scan``, ``rematch`` or ``recheck``.
        started_at, finished_at: when it ran (UTC).
        sme: the SME variant of the cut-off.
        samples: the run's samples (rows read).
        no_host: samples whose URL has no host (in no domain).
        checked: samples a content scan checked (those of the shards with a content observation).
        measured: samples whose bytes a content scan measured.
        bytes: the bytes measured, None if a content scan checked no sample.
        ranked_by: ``bytes`` when a content scan checked every sample, else ``samples``.
        domains: every registrable domain, ranked (largest first, then by name).
        listed: how many of ``domains`` the cut-off lists (:func:`cutoff`).
        optouts: samples per ``optout.*`` reason (every :data:`scrutineer.detectors.optouts.REASONS`, as the report's
            opt-out section counts them), None if the run did not configure the ``optouts`` detector.
        reserved: samples with any reservation (:data:`OPTOUT_RESERVATIONS`), None likewise.
    """

    dataset: str
    run_id: str
    kind: str
    started_at: datetime
    finished_at: datetime
    sme: bool
    samples: int
    no_host: int
    checked: int
    measured: int
    bytes: int | None
    ranked_by: Literal["bytes", "samples"]
    domains: list[Domain]
    listed: int
    optouts: dict[str, int] | None
    reserved: int | None

    @property
    def listed_domains(self) -> list[Domain]:
        """The domains the cut-off lists, in rank order."""
        return self.domains[: self.listed]

    @property
    def listed_share_of_samples(self) -> float:
        """The listed domains' share of all samples (the sum of their shares)."""
        return sum(d.samples for d in self.listed_domains) / self.samples if self.samples else 0.0

    @property
    def listed_share_of_bytes(self) -> float | None:
        """The listed domains' share of the bytes measured; None if no sample was measured."""
        if not self.bytes:
            return None
        return sum(d.bytes or 0 for d in self.listed_domains) / self.bytes


def cutoff(domains: int, sme: bool = False) -> int:
    """How many of ``domains`` ranked domains the template lists: ⌈10 %⌉ of them, at least one; with
    ``sme``, ⌈5 %⌉ (at least one) or :data:`SME_CAP`, whichever is lower; 0 if there is none.
    Integer arithmetic, so 10 % of 530 is 53 exactly."""
    if domains <= 0:
        return 0
    percent = SME_PERCENT if sme else PERCENT
    listed = max(1, -(-domains * percent // 100))
    return min(listed, SME_CAP) if sme else listed


def summarise(cfg: Config, sme: bool = False) -> Summary:
    """The summary of the dataset's latest scan, which must have completed (module docstring).

    Raises:
        WorkspaceError: no store in the workspace, no finished scan of the dataset, or the latest is
            partial (:func:`scrutineer.core.store.complete_run`).
        OSError: a rows observation the store records is missing or unreadable.
    """
    with Workspace(cfg.workspace) as ws:
        run_id = store.complete_run(ws.con, cfg.dataset.name, ws.path, "a public summary")
        ((kind, started_at, finished_at, detectors),) = ws.sql(
            "SELECT kind, started_at, finished_at, detectors FROM runs WHERE run_id = ?", [run_id]
        ).fetchall()
        samples, by_domain = _samples_by_domain(store.rows_files(ws.con, ws.path, run_id).values())
        measured, total_bytes, bytes_by_domain = _bytes_by_domain(ws, run_id)
        ((checked,),) = ws.sql(
            "SELECT coalesce(sum(o.rows), 0)::BIGINT FROM shards s JOIN observations o ON o.observation_id = s.rows_observation "
            "WHERE s.run_id = ? AND s.content_observation IS NOT NULL", [run_id]
        ).fetchall()
        optouts = optout_counts(ws.con, run_id, samples) if "optouts" in json.loads(detectors) else None
    no_host = by_domain.pop(NO_HOST, 0)
    ranked_by = "bytes" if samples and checked == samples else "samples"
    total_bytes = total_bytes or (0 if checked else None)
    domains = [
        Domain(
            domain=d,
            samples=n,
            share_of_samples=n / samples,
            bytes=bytes_by_domain.get(d, 0) if checked else None,
            share_of_bytes=bytes_by_domain.get(d, 0) / total_bytes if total_bytes else (0.0 if checked else None),
        )
        for d, n in by_domain.items()
    ]
    domains.sort(key=lambda d: (-(d.bytes if ranked_by == "bytes" else d.samples), d.domain))
    return Summary(
        dataset=cfg.dataset.name, run_id=run_id, kind=kind, started_at=started_at.astimezone(UTC), finished_at=finished_at.astimezone(UTC),
        sme=sme, samples=samples, no_host=no_host, checked=checked, measured=measured, bytes=total_bytes, ranked_by=ranked_by, domains=domains,
        listed=cutoff(len(domains), sme), optouts=None if optouts is None else {r["reason"]: r["samples"] for r in optouts["reasons"]},
        reserved=None if optouts is None else optouts["reserved"],
    )


def _samples_by_domain(rows_files) -> tuple[int, dict[str, int]]:
    """(samples, {registrable domain: samples}) over the rows observations ``rows_files``
    (:data:`NO_HOST` holds the samples whose URL has no host). Each shard's URLs are reduced to their
    authorities' counts (pyarrow), each distinct authority parsed once (:func:`domain_counts`)."""
    total, authorities = 0, []
    for path in rows_files:
        urls = pq.read_table(path, columns=["url"])["url"]
        total += len(urls)
        counted = pc.value_counts(pc.struct_field(pc.extract_regex(urls, _AUTHORITY), [0])).to_pylist()
        authorities += [(vc["values"], vc["counts"]) for vc in counted]
    return total, {d: n for d, (n,) in domain_counts(authorities).items()}


def _bytes_by_domain(ws: Workspace, run_id: str) -> tuple[int, int | None, dict[str, int]]:
    """(samples measured, their bytes or None if none, {registrable domain: bytes}) of the run's
    content hashes (the latest of each sample in the run's lineage,
    :meth:`scrutineer.Workspace.content_hashes`), summed per URL authority in DuckDB, then per
    domain; the bytes of samples whose URL has no host (read from a tar) count in the total only."""
    pattern = "'" + AUTHORITY_RE.replace("'", "''") + "'"
    rows = ws.content_hashes(run_id).query(
        "h", f"SELECT regexp_extract(url, {pattern}, 1) AS authority, count(*), sum(bytes)::BIGINT FROM h WHERE bytes IS NOT NULL GROUP BY authority"
    ).fetchall()
    by_domain = domain_counts(rows)
    measured = sum(n for n, _ in by_domain.values())
    total = sum(size for _, size in by_domain.values()) if measured else None
    by_domain.pop(NO_HOST, None)
    return measured, total, {d: size for d, (_, size) in by_domain.items()}


def _share(value: float | None) -> str | None:
    """A share for the CSV: the fraction to 6 decimals; None stays None."""
    return None if value is None else f"{value:.6f}"


def summary_csv(summary: Summary) -> str:
    """The CSV of the listed domains: a header of :data:`COLUMNS`, one row per listed domain in rank
    order (shares as fractions to 6 decimals; bytes empty where no sample was measured),
    spreadsheet-safe (:func:`scrutineer.reports.csvsafe.csv_text`)."""
    rows = ([rank, d.domain, d.samples, _share(d.share_of_samples), d.bytes, _share(d.share_of_bytes)]
            for rank, d in enumerate(summary.listed_domains, start=1))
    return csv_text(COLUMNS, rows)


#: What Markdown (CommonMark and GitHub's tables) would read as markup inside a line of a table
#: cell, after HTML escaping: a backslash, code spans, emphasis, strikethrough, link brackets (so
#: no parenthesis or ``!`` can make a link or an image) and the cell separator. Each gets a backslash.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown inline text, safe in a table cell: HTML special characters as
    entities (``<`` as ``&lt;``, so no tag or autolink), Markdown's punctuation (pipes, backticks,
    emphasis, links, ...) backslash-escaped, line breaks and other control characters as spaces (a
    cell is one line), and bidi controls shown as ``<U+202E>`` (:func:`~scrutineer.reports.csvsafe.shown_controls`)."""
    text = shown_controls(re.sub(r"[\x00-\x1f\x7f]", " ", text))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _when(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def summary_markdown(summary: Summary) -> str:
    """The Markdown summary: the template and its rule, the run and its totals, section 2.3's domain
    table with the listed domains' combined share, and the opt-outs by signal. Every text from
    the dataset goes through :func:`markdown_text`."""
    s, t = summary, TEMPLATE
    percent = f"top {SME_PERCENT} % or {SME_CAP} domains, whichever is lower (SME variant)" if s.sme else f"top {PERCENT} %"
    if s.ranked_by == "bytes" and s.measured == s.samples:
        size = "bytes (a content scan measured every sample's)"
    elif s.ranked_by == "bytes":
        size = (f"bytes scraped (a content scan checked every sample; the {s.samples - s.measured:,} it did not fetch, "
                "dead, invalid, disallowed or too large, count 0 bytes)")
    elif s.checked:
        size = f"samples (a content scan checked {s.checked:,} of the {s.samples:,} samples, not all)"
    else:
        size = "samples (no content scan checked them)"
    applied = (f"Applied here: the {percent} of the {len(s.domains):,} registrable domains (eTLD+1) of the samples' URLs, "
               f"rounded up, at least one: **{s.listed:,} listed**, ranked by {size}; ties broken by domain name.")
    measured = "none (no content scan)" if s.bytes is None else f"{s.bytes:,} over {s.measured:,} samples"
    lines = [
        f"# Public summary of training content: crawled data of {markdown_text(s.dataset)}",
        "",
        f"Template: *{t['title']}*, {t['reference']}, {t['date']}; required by {t['basis']}.",
        "",
        f"Rule ({t['source']}): {t['rule']}; {t['sme_rule']}.",
        "",
        applied,
        "",
        f"- Dataset: {markdown_text(s.dataset)}",
        f"- Run: `{s.run_id}`, a complete {s.kind} from {_when(s.started_at)} to {_when(s.finished_at)} (UTC)",
        f"- Samples: {s.samples:,}" + (f" ({s.no_host:,} with no host in their URL, in no domain)" if s.no_host else ""),
        f"- Registrable domains: {len(s.domains):,}",
        f"- Bytes measured: {measured}",
        "",
        f"## {t['section']}",
        "",
        f"### {t['item']}",
        "",
        "| rank | domain | samples | share of samples | bytes | share of bytes |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for rank, d in enumerate(s.listed_domains, start=1):
        size_bytes = "—" if d.bytes is None else f"{d.bytes:,}"
        lines.append(f"| {rank} | {markdown_text(d.domain)} | {d.samples:,} | {_percent(d.share_of_samples)} | {size_bytes} | {_percent(d.share_of_bytes)} |")
    combined = f"{_percent(s.listed_share_of_samples)} of the samples"
    if s.listed_share_of_bytes is not None:
        combined += f" and {_percent(s.listed_share_of_bytes)} of the bytes measured"
    lines += ["", f"Together, the {plural(s.listed, 'listed domain')} hold {combined}.", "", "## Opt-outs found, by signal", ""]
    if s.optouts is None:
        lines.append("The optouts detector was not configured for this run: no opt-out signal was read.")
        return "\n".join(lines) + "\n"
    others = ", ".join(f"`{r}`" for r in s.optouts if r not in OPTOUT_RESERVATIONS)
    share = _percent(s.reserved / s.samples if s.samples else 0.0)
    lines += [
        ("Samples of this run with each signal the optouts detector read. The template asks how reservations of rights were "
         "respected in its section 3.1."),
        "",
        "| signal | reason | samples |",
        "|---|---|---:|",
        *(f"| {markdown_text(reason_label(r))} | `{r}` | {n:,} |" for r, n in s.optouts.items()),
        "",
        (f"{s.reserved:,} of the {s.samples:,} samples ({share}) carry at least one reservation (every reason above but {others}, "
         "which reserve nothing by themselves); a release honours them when its variant's policy removes their reasons."),
    ]
    return "\n".join(lines) + "\n"


def summary_paths(out: Path, dataset: str, sme: bool) -> tuple[Path, Path]:
    """(CSV, Markdown) paths of a summary in folder ``out``: ``<dataset>.csv`` and ``<dataset>.md``,
    ``<dataset>-sme.*`` for the SME variant."""
    stem = f"{dataset}-sme" if sme else dataset
    return out / f"{stem}.csv", out / f"{stem}.md"


def write_summary(cfg: Config, sme: bool = False, out: Path | None = None) -> tuple[Path, Path, Summary]:
    """Write the summary of the dataset's latest (completed) scan as CSV and Markdown, each atomically
    (:func:`summary_paths`), in ``out`` (made if missing), by default ``<workspace>/summary/``.

    Returns:
        (CSV path, Markdown path, the summary).

    Raises:
        WorkspaceError: as :func:`summarise`.
        OSError: ``out`` cannot be made or written.
    """
    summary = summarise(cfg, sme)
    out = out if out is not None else Layout(cfg.workspace).summary
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = summary_paths(out, cfg.dataset.name, sme)
    atomic_write_text(csv_path, summary_csv(summary))
    atomic_write_text(md_path, summary_markdown(summary))
    return csv_path, md_path, summary
