"""``scrutineer summary``: the crawled-data part of the AI Act's public summary of training content
(scrutineer.reports.summary), checked on the shared LAION sample against pandas, on a content scan
of the fixture web whose bytes are the served files' sizes, with opt-outs by signal, with hostile
domain names, and from the command line."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import replace
from urllib.parse import urlsplit

import pandas as pd
import pyarrow.parquet as pq
import pytest
import tldextract
from conftest import scan, write_config
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core.config import load_config
from scrutineer.detectors.optouts import REASONS as OPTOUT_REASONS
from scrutineer.reports.summary import (
    cutoff,
    markdown_text,
    summarise,
    summary_csv,
    summary_markdown,
    write_summary,
)
from scrutineer.testing.fixture_web import FixtureWeb

LAION = ["laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet"]
runner = CliRunner()


@pytest.fixture(scope="module")
def laion(tmp_path_factory, test_data):
    """The two LAION-400M shards (5,000 rows) scanned with a metadata-only config, and the raw rows."""
    root = tmp_path_factory.mktemp("summary-laion")
    config = write_config(root, {
        "dataset": {"name": "laion400m-sample", "shards": [str(test_data / "metadata" / n) for n in LAION], "format": "parquet",
                    "columns": {"url": "URL", "caption": "TEXT"}},
        "detectors": {"license_gaps": {}},
    })
    assert scan(config)["status"] == "completed"
    df = pd.concat([pq.read_table(test_data / "metadata" / n).to_pandas() for n in LAION], ignore_index=True)
    return {"config": config, "cfg": load_config(config), "df": df}


def pandas_domains(urls: pd.Series) -> list[tuple[str, int]]:
    """(registrable domain, samples), ranked by samples then name, computed from the raw URLs with
    tldextract's bundled Public Suffix List; domain names compared lowercase (RFC 4343); a URL with
    no scheme has no host and is in no domain."""
    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    with_host = urls[urls.str.contains("://", regex=False)]
    domains = with_host.map(lambda u: extract(u).top_domain_under_public_suffix.lower())
    return sorted(domains.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))


def test_laion_domains_and_shares_agree_with_pandas(laion):
    """Acceptance 4: the listed domains, their samples and shares are pandas' top ⌈10 %⌉, and the
    listed shares sum to the combined share the summary states."""
    df, s = laion["df"], summarise(laion["cfg"])
    ranked = pandas_domains(df.URL)
    top = ranked[: math.ceil(len(ranked) / 10)]
    assert s.samples == len(df) == 5000 and s.no_host == len(df) - sum(n for _, n in ranked) == 1  # "UNLIKELY", a URL without a scheme
    assert len(s.domains) == len(ranked) and s.listed == len(top) == 202
    assert s.ranked_by == "samples" and s.bytes is None and s.checked == s.measured == 0
    assert [(d.domain, d.samples) for d in s.listed_domains] == top
    assert [d.share_of_samples for d in s.listed_domains] == pytest.approx([n / len(df) for _, n in top])
    assert sum(d.share_of_samples for d in s.listed_domains) == pytest.approx(s.listed_share_of_samples)
    assert s.listed_share_of_samples == pytest.approx(sum(n for _, n in top) / len(df))
    assert all(d.bytes is None and d.share_of_bytes is None for d in s.domains)


def test_laion_files_state_the_template_rule_and_run(laion):
    csv_path, md_path, s = write_summary(laion["cfg"])
    assert (csv_path.parent, csv_path.name, md_path.name) == (laion["cfg"].workspace / "summary", "laion400m-sample.csv", "laion400m-sample.md")
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [r["domain"] for r in rows] == [d.domain for d in s.listed_domains]
    assert [int(r["rank"]) for r in rows] == list(range(1, s.listed + 1))
    assert [int(r["samples"]) for r in rows] == [d.samples for d in s.listed_domains]
    assert sum(float(r["share_of_samples"]) for r in rows) == pytest.approx(s.listed_share_of_samples, abs=1e-5)
    assert {r["bytes"] for r in rows} == {r["share_of_bytes"] for r in rows} == {""}  # no content scan
    md = md_path.read_text()
    for stated in ("24 July 2025", "C(2025) 5235", "Template for the Public Summary of Training Content for general-purpose AI models",
                   "## 2.3 Data crawled and scraped from online sources", "### (vii) Summary of the most relevant domain names crawled",
                   "top 10 % of all domain names determined by the size of the content scraped", "- Dataset: laion400m-sample",
                   f"`{s.run_id}`, a complete scan from", "- Samples: 5,000 (1 with no host", "**202 listed**", "ranked by samples (no content scan",
                   f"Together, the 202 listed domains hold {s.listed_share_of_samples:.2%} of the samples."):
        assert stated in md
    assert "The optouts detector was not configured for this run" in md and s.optouts is None
    table = [line for line in md.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(table) == 202 and table[0] == f"| 1 | shopify.com | {s.domains[0].samples} | {s.domains[0].share_of_samples:.2%} | — | — |"


def test_sme_variant_lists_the_top_5_percent_or_1000(laion):
    df, s = laion["df"], summarise(laion["cfg"], sme=True)
    ranked = pandas_domains(df.URL)
    assert s.sme and s.listed == math.ceil(len(ranked) / 20) == 101
    assert [(d.domain, d.samples) for d in s.listed_domains] == ranked[:101]
    csv_path, md_path, _ = write_summary(laion["cfg"], sme=True)
    assert csv_path.name == "laion400m-sample-sme.csv" and "top 5 % or 1000 domains, whichever is lower (SME variant)" in md_path.read_text()


@pytest.mark.parametrize(
    ("domains", "sme", "listed"),
    [(0, False, 0), (1, False, 1), (3, False, 1), (10, False, 1), (11, False, 2), (530, False, 53), (30_000, False, 3000),
     (0, True, 0), (3, True, 1), (21, True, 2), (19_999, True, 1000), (20_000, True, 1000), (30_000, True, 1000)],
)
def test_the_cutoff_rounds_up_keeps_one_and_caps_smes_at_1000(domains, sme, listed):
    assert cutoff(domains, sme) == listed


SKIMAGE = "tests/data/images/skimage"
#: host -> paths scanned on it (the content fixture); every image is served whole (status 200) but
#: /private/, which the fixture's robots.txt disallows to Scrutineer: blocked, never fetched.
SITES = {
    "127.0.27.1": ["/img/horse.png", "/img/text.png", "/img/cell.png"],
    "127.0.27.2": ["/img/astronaut.png"],
    "127.0.27.3": ["/with/camera.png?h=X-Robots-Tag:noai&h=Content-Usage:train-ai=n", "/with/coins.png?h=Content-Usage:train-ai=n"],
}
BLOCKED = ("127.0.27.1", "/private/grass.png")


def _content_config(directory, name, urls):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "d.jsonl").write_text("".join(json.dumps({"key": f"s{i}", "url": u}) + "\n" for i, u in enumerate(urls)))
    return write_config(directory, {
        "dataset": {"name": name, "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
        "detectors": {"optouts": {}},
        "fetch": {"allow_private_networks": True, "retries": 0},
    })


@pytest.fixture(scope="module")
def content(tmp_path_factory, test_data):
    """Two content scans with the optouts detector on the fixture web: SITES, every sample fetched
    and measured; then SITES and the BLOCKED sample, which is not."""
    root = tmp_path_factory.mktemp("summary-content")
    images = test_data / "images" / "skimage"
    sizes = {host: sum((images / urlsplit(p).path.rsplit("/", 1)[1]).stat().st_size for p in paths) for host, paths in SITES.items()}
    with FixtureWeb([*SITES], images=[images]) as web:
        urls = [f"http://{host}:{web.port}{p}" for host, paths in SITES.items() for p in paths]
        whole = _content_config(root / "whole", "whole", urls)
        part = _content_config(root / "part", "part", [*urls, f"http://{BLOCKED[0]}:{web.port}{BLOCKED[1]}"])
        assert scan(whole)["status"] == scan(part)["status"] == "completed"
    return {"whole": load_config(whole), "part": load_config(part), "sizes": sizes}


def test_every_sample_measured_ranks_by_bytes(content):
    """127.0.27.1 has the most samples (3), 127.0.27.2 the most bytes (astronaut.png): by bytes."""
    s, sizes = summarise(content["whole"]), content["sizes"]
    assert s.measured == s.samples == 6 and s.bytes == sum(sizes.values()) and s.ranked_by == "bytes"
    assert [(d.domain, d.samples, d.bytes) for d in s.domains] == sorted(
        ((h, len(SITES[h]), sizes[h]) for h in SITES), key=lambda d: -d[2])
    assert [d.share_of_bytes for d in s.domains] == pytest.approx([sizes[d.domain] / s.bytes for d in s.domains])
    assert s.listed == 1 and s.listed_domains[0].domain == "127.0.27.2"
    assert s.listed_share_of_bytes == pytest.approx(sizes["127.0.27.2"] / s.bytes) and s.listed_share_of_samples == pytest.approx(1 / 6)
    rows = list(csv.DictReader(io.StringIO(summary_csv(s))))
    assert rows == [{"rank": "1", "domain": "127.0.27.2", "samples": "1", "share_of_samples": f"{1 / 6:.6f}",
                     "bytes": str(sizes["127.0.27.2"]), "share_of_bytes": f"{sizes['127.0.27.2'] / s.bytes:.6f}"}]
    md = summary_markdown(s)
    assert "ranked by bytes (a content scan measured every sample's)" in md
    assert f"of the samples and {s.listed_share_of_bytes:.2%} of the bytes measured" in md


def test_a_sample_checked_but_not_fetched_counts_0_bytes_scraped(content):
    """The BLOCKED sample was checked (robots.txt disallows it) and nothing was scraped: 127.0.27.1
    has the most samples (4) but the ranking is still by bytes, the blocked one counting 0."""
    s, sizes = summarise(content["part"]), content["sizes"]
    assert (s.samples, s.checked, s.measured, s.ranked_by) == (7, 7, 6, "bytes")
    assert s.bytes == sum(sizes.values())
    assert [(d.domain, d.samples, d.bytes) for d in s.domains] == sorted(
        ((h, len(SITES[h]) + (h == BLOCKED[0]), sizes[h]) for h in SITES), key=lambda d: -d[2])
    assert s.listed_domains[0].domain == "127.0.27.2" and s.listed_domains[0].share_of_samples == pytest.approx(1 / 7)
    assert s.listed_domains[0].share_of_bytes == pytest.approx(sizes["127.0.27.2"] / sum(sizes.values()))
    assert ("ranked by bytes scraped (a content scan checked every sample; the 1 it did not fetch, dead, invalid, disallowed or too large, "
            "count 0 bytes)") in summary_markdown(s)


def test_optouts_are_counted_by_signal(content):
    """camera.png carries two signals (one sample, both counted, reserved once); coins.png one;
    the blocked sample's robots.txt reserves it."""
    assert summarise(content["whole"]).optouts == dict.fromkeys(OPTOUT_REASONS, 0) | {"optout.header": 1, "optout.aipref": 2}
    s = summarise(content["part"])
    assert s.optouts == dict.fromkeys(OPTOUT_REASONS, 0) | {"optout.header": 1, "optout.aipref": 2, "optout.robots": 1}
    assert s.reserved == 3
    md = summary_markdown(s)
    assert "| Opted out by Content-Usage (aipref) | `optout.aipref` | 2 |" in md
    assert "| Opted out in robots.txt | `optout.robots` | 1 |" in md and "| Opted out by TDMRep | `optout.tdmrep` | 0 |" in md
    assert "3 of the 7 samples (42.86%) carry at least one reservation" in md


HOSTILE = {  # URL -> copies; each host is its own registrable domain
    "http://=evil.com/a.jpg": 4,
    "http://cdn.<img src=x onerror=alert(1)>.com/b.jpg": 3,
    "http://a|b`c`*d*_e_.com/c.jpg": 2,
    "http://+plus.com/d.jpg": 1,
    "http://r\u202eev.com/e.jpg": 1,  # a right-to-left override
}


def test_hostile_domains_are_escaped_in_markdown_and_csv(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"url": u}) + "\n" for u, n in HOSTILE.items() for _ in range(n)))
    config = write_config(tmp_path, {"dataset": {"name": "hostile", "shards": ["d.jsonl"]}, "detectors": {"license_gaps": {}}})
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    s = summarise(cfg, sme=False)
    assert [d.domain for d in s.domains] == ["=evil.com", "<img src=x onerror=alert(1)>.com", "a|b`c`*d*_e_.com", "+plus.com", "r\u202eev.com"]
    # every domain listed, so that each is rendered: a Summary with the same domains and a wider cut
    wide = replace(s, listed=5)
    md = summary_markdown(wide)
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;.com" in md
    assert "\u202e" not in md and "r&lt;U+202E&gt;ev.com" in md
    assert "a\\|b\\`c\\`\\*d\\*\\_e\\_.com" in md
    table = [line for line in md.splitlines() if re.match(r"\| \d+ \|", line)]
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in table]
    assert [len(c) for c in cells] == [6, 6, 6, 6, 6]  # no pipe of a domain splits a cell
    assert [c[1].strip() for c in cells] == [markdown_text(d.domain) for d in s.domains]
    assert not any("`" in c[1].replace("\\`", "") for c in cells)  # no backtick opens a code span
    rows = list(csv.reader(io.StringIO(summary_csv(wide))))[1:]
    assert [r[1] for r in rows] == ["'=evil.com", "<img src=x onerror=alert(1)>.com", "a|b`c`*d*_e_.com", "'+plus.com", "r<U+202E>ev.com"]


def test_an_internationalised_domain_is_one_domain_in_both_spellings(tmp_path):
    urls = ["http://café.com/a.jpg", "http://xn--caf-dma.com/b.jpg", "http://CAFÉ.com/c.jpg", "http://other.example/d.jpg"]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"url": u}) + "\n" for u in urls))
    config = write_config(tmp_path, {"dataset": {"name": "idn", "shards": ["d.jsonl"]}, "detectors": {"license_gaps": {}}})
    assert scan(config)["status"] == "completed"
    assert [(d.domain, d.samples) for d in summarise(load_config(config)).domains] == [("xn--caf-dma.com", 3), ("other.example", 1)]


def test_markdown_text_leaves_no_markup_and_one_line():
    assert markdown_text("a\nb|c\r<b>&") == "a b\\|c &lt;b&gt;&amp;"
    assert markdown_text("example.com") == "example.com"


def test_markdown_text_shows_bidi_controls():
    """A right-to-left override in a host reverses what follows it where it is obeyed: shown as
    <U+202E>, as the review app shows it."""
    assert markdown_text("a\u202eb.com") == "a&lt;U+202E&gt;b.com"


def test_summary_command_end_to_end(laion, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["summary", str(laion["config"]), "--sme", "--out", str(out)])
    assert result.exit_code == 0, result.output
    s = summarise(laion["cfg"], sme=True)
    csv_path, md_path = out / "laion400m-sample-sme.csv", out / "laion400m-sample-sme.md"
    assert " ".join(result.output.split()) == (
        f"summary: {csv_path} and {md_path} (101 of {len(s.domains)} registrable domains listed, ranked by samples; "
        f"they hold {s.listed_share_of_samples:.2%} of the samples)")
    assert len(list(csv.DictReader(io.StringIO(csv_path.read_text())))) == 101
    assert csv_path.stat().st_mode & 0o777 == md_path.stat().st_mode & 0o777 == 0o600  # owner-only, like every output
    assert out.stat().st_mode & 0o777 == 0o700


def test_summary_command_without_a_finished_scan_says_so_in_one_line(laion, tmp_path):
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"license_gaps": {}}})
    result = runner.invoke(app, ["summary", str(config)])
    assert result.exit_code == 1
    assert result.output == f"error: no store in workspace {tmp_path / 'work'}: run `scrutineer scan` first\n"
    # a workspace whose store has scans of other datasets only
    other = write_config(tmp_path / "other", {"workspace": str(laion["cfg"].workspace), "dataset": {"name": "other", "shards": [str(tmp_path / "d.jsonl")]},
                                              "detectors": {"license_gaps": {}}})
    result = runner.invoke(app, ["summary", str(other)])
    assert result.exit_code == 1
    assert result.output == f"error: no finished scan of 'other' in {laion['cfg'].workspace}: run `scrutineer scan` first\n"
    assert not (tmp_path / "work" / "summary").exists()
