"""The watchdog report: its data (scrutineer.reports.data), the HTML file and its CSV exports, from real scans
of a dataset whose captions and licences carry script payloads, whose hosts start like
spreadsheet formulas and some of whose URLs are on a hash list; its opt-out section from findings
stored directly in a real store."""

import csv
import hashlib
import json
from datetime import UTC, datetime
from html import escape
from html.parser import HTMLParser

import pytest
from conftest import (
    scan,
    scrutineer_with_file_size_limit,
    url_list_config,
    write_config,
)

from scrutineer import Workspace
from scrutineer.core import store
from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.core.contract import JUDGEMENT, RUNS, SHARDS
from scrutineer.core.errors import WorkspaceError
from scrutineer.core.registry import reason_label
from scrutineer.core.wording import plural
from scrutineer.detectors.optouts import REASONS as OPTOUT_REASONS
from scrutineer.reports.data import report_data
from scrutineer.reports.html import ENV, write_report
from scrutineer.testing.fixture_web import FixtureWeb

SCRIPT, IMG, JS = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)"
LICENCE_SCRIPT = "<script>alert(2)</script>"
ROWS = [  # (url, caption, license); rows 7-10 are on the hash list
    ("http://a.example/0.jpg", SCRIPT, "CC0-1.0"),
    ("http://a.example/1.jpg", SCRIPT, "CC0-1.0"),  # caption duplicate of 0
    ("http://a.example/2.jpg", "<SCRIPT>alert(1)</SCRIPT>", "CC0-1.0"),  # caption duplicate of 0
    ("http://b.example/3.jpg", IMG, "CC0-1.0"),
    ("http://b.example/4.jpg", IMG, None),  # caption duplicate of 3; no licence
    ("HTTP://B.EXAMPLE/3.jpg", JS, "CC0-1.0"),  # URL duplicate of 3
    ("http://c.example/6.jpg", JS, LICENCE_SCRIPT),  # caption duplicate of 5; unknown licence
    ("http://-evil.example/bad-7.jpg", "seven", "CC0-1.0"),
    ("http://=evil.example/bad-8.jpg", "eight", "CC0-1.0"),
    ("http://+evil.example/bad-9.jpg", "nine", "CC0-1.0"),
    ("http://-evil.example/bad-7.jpg", "ten", "CC0-1.0"),  # URL duplicate of 7: its cluster is withheld
]
LISTED = sorted({ROWS[i][0] for i in (7, 8, 9)})
#: The second scan's data: row 1 is no longer a duplicate, row 9 no longer listed, row 4 licensed,
#: row 3's licence disallowed.
CHANGED = {1: ("http://a.example/1.jpg", "plain one", "CC0-1.0"), 9: ("http://c.example/9.jpg", "nine", "CC0-1.0"),
           4: ("http://b.example/4.jpg", IMG, "CC0-1.0"), 3: ("http://b.example/3.jpg", IMG, "CC-BY-NC-4.0")}


def write_rows(path, rows):
    path.write_text("".join(json.dumps({"key": f"s{i}", "url": u, "caption": c, "license": lic}) + "\n" for i, (u, c, lic) in enumerate(rows)))


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    """Two scans of the payload dataset, ROWS then ROWS with CHANGED: (config, first run, second run)."""
    root = tmp_path_factory.mktemp("report-payloads")
    write_rows(root / "d.jsonl", ROWS)
    (root / "urls.txt").write_text("".join(url_md5(u) + "\n" for u in LISTED))
    config = write_config(
        root,
        {
            "dataset": {"name": "payloads", "shards": ["d.jsonl"]},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}, "dedup": {}, "license_gaps": {"allow": ["CC0-1.0"]}},
        },
    )
    first = scan(config)
    write_rows(root / "d.jsonl", [CHANGED.get(i, row) for i, row in enumerate(ROWS)])
    second = scan(config)
    assert first["status"] == second["status"] == "completed"
    return config, first["run_id"], second["run_id"]


def data_of(config, run_id):
    cfg = load_config(config)
    with Workspace(cfg.workspace) as ws:
        return report_data(ws.con, ws.path, cfg.dataset.name, run_id)


class Markup(HTMLParser):
    """Every start tag of a document with its attributes, and the text of each <svg>'s <title>."""

    def __init__(self, html):
        super().__init__()
        self.tags, self.svg_titles, self._last = [], [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._last = tag

    def handle_data(self, data):
        if self._last == "title" and len(self.tags) > 1 and self.tags[-2][0] == "svg":
            self.svg_titles.append(data)
        self._last = None


def test_report_data_counts_reasons_clusters_domains_and_licences(payloads):
    config, first, _ = payloads
    data = data_of(config, first)
    assert json.loads(json.dumps(data)) == data  # plain JSON values
    assert data["run"]["run_id"] == first and data["run"]["kind"] == "scan" and data["total_rows"] == len(ROWS)
    assert data["run"]["banks"][0]["name"] == "w" and "dedup" in data["run"]["detectors"]
    assert [(r["reason"], r["restricted"], r["samples"]) for r in data["reasons"]] == [
        ("duplicate.caption", False, 4),  # rows 1, 2, 4, 6
        ("duplicate.url", False, 2),  # rows 5, 10
        ("hash_match.url", True, 4),  # rows 7-10
        ("license.missing", False, 1),
        ("license.unknown", False, 1),
    ]
    assert data["top_domains_matches"] == [
        {"domain": "-evil.example", "samples": 2},
        {"domain": "+evil.example", "samples": 1},
        {"domain": "=evil.example", "samples": 1},
    ]
    assert data["licences"] == [
        {"licence": "CC0-1.0", "spdx": True, "samples": 9}, {"licence": LICENCE_SCRIPT, "spdx": False, "samples": 1},
        {"licence": "(none)", "spdx": False, "samples": 1},
    ]
    # flagged: rows 1, 2 and 4-10; duplicates: 1, 2, 4, 5, 6 and 10; listed: 7-10; licence gaps: 4 and 6; no link checked, no opt-out detector
    assert data["headline"] == {
        "samples": 11, "flagged": 9, "restricted": 4, "dead_links": 0, "optouts": None, "duplicates": 6, "licence_gaps": 2,
    }
    assert data["clusters"]["histogram"] == [{"size": 2, "clusters": 4}, {"size": 3, "clusters": 1}]
    assert data["clusters"]["largest"] == [
        {"reason": "duplicate.caption", "size": 3, "restricted": False, "kept_sample_id": "s0", "caption": SCRIPT, "host": "a.example",
         "copies": [{"sample_id": "s1", "caption": SCRIPT, "host": "a.example"}, {"sample_id": "s2", "caption": "<SCRIPT>alert(1)</SCRIPT>", "host": "a.example"}]},
        {"reason": "duplicate.caption", "size": 2, "restricted": False, "kept_sample_id": "s3", "caption": IMG, "host": "b.example",
         "copies": [{"sample_id": "s4", "caption": IMG, "host": "b.example"}]},
        {"reason": "duplicate.caption", "size": 2, "restricted": False, "kept_sample_id": "s5", "caption": JS, "host": "b.example",
         "copies": [{"sample_id": "s6", "caption": JS, "host": "c.example"}]},
        {"reason": "duplicate.url", "size": 2, "restricted": False, "kept_sample_id": "s3", "caption": IMG, "host": "b.example",
         "copies": [{"sample_id": "s5", "caption": JS, "host": "b.example"}]},
        {"reason": "duplicate.url", "size": 2, "restricted": True, "kept_sample_id": None, "caption": None, "host": None, "copies": []},
    ]
    assert data["liveness"] == [] and data["crowd"] is None and data["changes"] is None
    assert data["optouts"] is None  # the optouts detector was not configured: no opt-out section
    assert [h["run_id"] for h in data["history"]] == [first, payloads[2]]


def test_changes_since_the_previous_run(payloads):
    config, first, second = payloads
    data = data_of(config, second)
    assert data["changes"]["previous"]["run_id"] == first
    assert {r["reason"]: (r["before"], r["now"], r["added"], r["gone"]) for r in data["changes"]["reasons"]} == {
        "duplicate.caption": (4, 3, 0, 1),  # row 1 is unique now
        "duplicate.url": (2, 2, 0, 0),
        "hash_match.url": (4, 3, 0, 1),  # row 9 is not listed now
        "license.disallowed": (0, 1, 1, 0),  # row 3
        "license.missing": (1, 0, 0, 1),  # row 4
        "license.unknown": (1, 1, 0, 0),
    }
    # row 3 was flagged for no reason, rows 1 and 9 are flagged for none now
    assert (data["changes"]["added"], data["changes"]["gone"]) == (1, 2)
    assert [h["samples"]["hash_match.url"] for h in data["history"]] == [4, 3]
    assert [h["samples"]["license.disallowed"] for h in data["history"]] == [0, 1]


def test_report_is_self_contained_and_shows_payloads_as_text(payloads):
    config, first, _ = payloads
    crowd = {
        "by_status": {"pending": 2, "confirmed": 1, "rejected": 1},
        "by_category": [{"category": SCRIPT, "sensitive": True, "pending": 2, "confirmed": 1, "rejected": 1}],
        "top_domains": [{"domain": IMG, "flags": 3}],
    }
    html = ENV.get_template("report.html.j2").render(report={**data_of(config, first), "crowd": crowd})  # as write_report renders it
    for payload in (SCRIPT, IMG, LICENCE_SCRIPT):
        assert payload not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html and JS in html
    assert "<script" not in html.lower() and "<img" not in html.lower()
    markup = Markup(html)
    assert {tag for tag, _ in markup.tags} <= {
        "html", "head", "meta", "title", "style", "body", "main", "section", "div", "p", "b", "small", "code", "h1", "h2", "h3",
        "table", "caption", "tr", "th", "td", "span", "ul", "li", "svg", "rect", "polyline",
    }
    attributes = {name for _, attrs in markup.tags for name in attrs}
    assert not {a for a in attributes if a.startswith("on") or a in ("src", "href", "xlink:href", "style", "action")}
    assert "url(" not in html and "@import" not in html
    svgs = [attrs for tag, attrs in markup.tags if tag == "svg"]
    bars = [attrs for attrs in svgs if attrs.get("aria-hidden") == "true"]  # a bar: its label and count are the row's text
    assert len(bars) >= 15 and all(attrs.get("role") == "img" for attrs in svgs if attrs not in bars)
    assert len(markup.svg_titles) == len(svgs) - len(bars)  # each sparkline says what it draws
    assert 'URL on a hash list <code class="reason">hash_match.url</code> <span class="restricted">(restricted: counts only)</span>' in html
    assert "(sensitive: counts only)" in html


def test_a_bidi_control_in_a_caption_is_shown_not_obeyed(payloads):
    """A right-to-left override in a caption ("photo of a cat.gpj.exe" shown as "...exe.jpg")
    reaches the report as the text <U+202E>, so it cannot reorder what a watchdog reads."""
    config, first, _ = payloads
    data = data_of(config, first)
    cluster = next(k for k in data["clusters"]["largest"] if not k["restricted"])
    cluster["caption"] = "photo of a cat\u202egpj.exe"
    html = ENV.get_template("report.html.j2").render(report=data)
    assert "\u202e" not in html and 'photo of a cat<code class="control">&lt;U+202E&gt;</code>gpj.exe' in html


def test_report_body_is_a_fragment(payloads):
    config, first, _ = payloads
    body = ENV.get_template("report_body.html.j2").render(report=data_of(config, first))
    assert "<svg" in body and not [t for t in ("<html", "<head", "<body", "<!doctype") if t in body.lower()]


def test_restricted_urls_appear_nowhere(payloads):
    config, first, second = payloads
    cfg = load_config(config)
    texts = []
    for run_id in (first, second):
        path = write_report(cfg, run_id)
        texts += [path.read_text(), (path.parent / f"{run_id}-findings.csv").read_text(), (path.parent / f"{run_id}-domains.csv").read_text()]
        texts.append(json.dumps(data_of(config, run_id)))
    for url in LISTED:
        for text in texts:
            assert url.split("://")[1] not in text


def test_csv_exports_neutralise_formulas(payloads):
    config, first, _ = payloads
    path = write_report(load_config(config), first)
    with open(path.parent / f"{first}-domains.csv", newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["registrable_domain", "samples"], ["'-evil.example", "2"], ["'+evil.example", "1"], ["'=evil.example", "1"]]
    with open(path.parent / f"{first}-findings.csv", newline="", encoding="utf-8") as f:
        header, *rows = csv.reader(f)
    assert header == ["reason", "restricted", "findings", "samples"]
    assert ["hash_match.url", "True", "4", "4"] in rows and len(rows) == 5


def test_unknown_run_is_refused(payloads):
    config, first, _ = payloads
    with pytest.raises(WorkspaceError, match="no run 'nope'"):
        write_report(load_config(config), "nope")
    with pytest.raises(WorkspaceError, match="of dataset 'other'"):
        with Workspace(load_config(config).workspace) as ws:
            report_data(ws.con, ws.path, "other", first)


def test_liveness_counts_each_urls_latest_check(tmp_path, test_data):
    with FixtureWeb(["127.0.0.21"], images=[test_data / "images" / "skimage"]) as web:
        alive = [web.url("/img/coins.png"), web.url("/img/astronaut.png")]
        urls = [*alive, alive[0], web.url("/gone/camera.png")]
        config = url_list_config(tmp_path, "liveness", urls, {"dead_links": {}}, recheck_interval=0.1, backoff=0.05)
        (tmp_path / "md5.txt").write_text(hashlib.md5((test_data / "images" / "skimage" / "coins.png").read_bytes()).hexdigest() + "\n")
        run = scan(config)
    assert run["status"] == "completed"
    data = data_of(config, run["run_id"])
    assert data["liveness"] == [{"status": "alive", "urls": 2}, {"status": "dead", "urls": 1}]
    assert data["top_domains_matches"] == [{"domain": "127.0.0.21", "samples": 2}]  # coins.png, listed twice
    html = write_report(load_config(config)).read_text()
    assert "coins.png" not in html and json.dumps(data).count("coins.png") == 0


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    (root / "d.jsonl").write_text('{"url": "http://x.org/a.jpg", "caption": "a"}\n' * 3)
    config = write_config(root, {"dataset": {"name": "d", "shards": ["d.jsonl"]}, "detectors": {"dedup": {}}})
    assert scan(config)["status"] == "completed"
    return config


def test_report_failing_to_write_leaves_the_previous_report(scanned):
    path = write_report(load_config(scanned))
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    result = scrutineer_with_file_size_limit(path.stat().st_size // 2, "report", str(scanned))
    assert result.returncode != 0 and "File too large" in result.stderr
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before


OPTOUT_ROWS = 10
OPTOUT_FINDINGS = [  # (row_index, url, detector, reason) of run "now", a shard of OPTOUT_ROWS rows
    (0, "http://a.example.com/0.jpg", "optouts", "optout.header"),
    (0, "http://a.example.com/0.jpg", "optouts", "optout.robots"),  # two signals, one reserved sample
    (1, "https://b.example.com/1.jpg", "optouts", "optout.tdmrep"),
    (1, "https://b.example.com/1.jpg", "optouts", "optout.tdmrep"),  # twice, one sample
    (2, "http://c.example.com/2.jpg", "optouts", "optout.constrained"),  # not a reservation
    (2, "http://c.example.com/2.jpg", "dead_links", "dead_link.404"),  # another detector's
    (3, "http://other.org/3.jpg", "optouts", "optout.invalid"),  # not a reservation
    (4, "http://<script>x.com/4.jpg", "optouts", "optout.aipref"),
    (5, "http://cdn.<script>x.com/5.jpg", "optouts", "optout.c2pa"),
    (5, "http://cdn.<script>x.com/5.jpg", "optouts", "optout.invalid"),
    (6, "http://other.org/6.jpg", "optouts", "optout.ai_txt"),
    (6, "http://other.org/6.jpg", "optouts", "optout.content_signal"),
    (7, "http://cdn.example.org/7.jpg", "optouts", "optout.invalid"),  # a domain reserving nothing
]


def row(table, **values):
    """A row of a store table: ``values``, null in every other column."""
    return dict.fromkeys(table.columns) | values


def store_run(con, run_id, day, detectors, findings):
    """Store a completed run of dataset "optouts" (one shard of OPTOUT_ROWS rows) and its findings."""
    at, configured = datetime(2025, 1, day, tzinfo=UTC), json.dumps({d: {"version": "1", "params": {}} for d in detectors})
    store.insert(con, RUNS, [row(RUNS, run_id=run_id, kind="scan", dataset="optouts", started_at=at, finished_at=at, status="completed",
                                 tool_version="test", config="{}", detectors=configured, banks="[]")])
    store.insert(con, SHARDS, [row(SHARDS, run_id=run_id, shard_id="d.jsonl", rows=OPTOUT_ROWS, status="observed", seconds=0.1)])
    store.insert_findings(con, run_id, [
        dict.fromkeys(JUDGEMENT.names) | dict(shard_id="d.jsonl", row_index=i, sample_id=f"s{i}", url=url, detector=detector, detector_version="1",
            reason=reason, evidence="{}", restricted=False)
        for i, url, detector, reason in findings
    ])


@pytest.fixture
def optouts_report(tmp_path):
    """report_data of run "now", which found OPTOUT_FINDINGS; an earlier run found another sample reserved."""
    with store.connect(tmp_path) as con:
        store_run(con, "before", 1, ["optouts"], [(9, "http://d.example.net/9.jpg", "optouts", "optout.robots")])
        store_run(con, "now", 2, ["optouts", "dead_links"], OPTOUT_FINDINGS)
        return report_data(con, tmp_path, "optouts", "now")


def test_optouts_count_samples_per_signal_and_reserved_share(optouts_report):
    optouts = optouts_report["optouts"]
    assert {r["reason"]: r["samples"] for r in optouts["reasons"]} == {
        "optout.header": 1, "optout.tdmrep": 1, "optout.aipref": 1, "optout.content_signal": 1, "optout.ai_txt": 1, "optout.robots": 1,
        "optout.rsl": 0, "optout.c2pa": 1, "optout.iptc": 0, "optout.constrained": 1, "optout.invalid": 3,
    }
    # rows 0 (two signals, once), 1, 4, 5, 6; not rows 2 (constrained), 3 and 7 (invalid) or the earlier run's row 9
    assert optouts["reserved"] == 5 and optouts["share"] == 5 / OPTOUT_ROWS


def test_optouts_by_registrable_domain(optouts_report):
    none = dict.fromkeys(OPTOUT_REASONS, 0)
    assert optouts_report["optouts"]["domains"] == [  # by reserved samples, then domain; not example.org, reserving nothing
        {"domain": "<script>x.com", "reserved": 2, "samples": none | {"optout.aipref": 1, "optout.c2pa": 1, "optout.invalid": 1}},
        {"domain": "example.com", "reserved": 2,  # a., b. and c.example.com
         "samples": none | {"optout.header": 1, "optout.robots": 1, "optout.tdmrep": 1, "optout.constrained": 1}},
        {"domain": "other.org", "reserved": 1, "samples": none | {"optout.ai_txt": 1, "optout.content_signal": 1, "optout.invalid": 1}},
    ]


def test_optouts_section_escapes_domains_and_shows_no_url(optouts_report):
    html = ENV.get_template("report.html.j2").render(report=optouts_report)
    assert "5 of 10 samples (50.00%) are reserved" in html
    assert '<th scope="row">Malformed opt-out signal</th><td class="n">3</td>' in html  # the chart's bars
    assert '<th scope="row">Opted out in an X-Robots-Tag header</th><td class="n">1</td>' in html
    assert "<li><b>5</b> opted out</li>" in html
    assert "&lt;script&gt;x.com" in html and "<script" not in html.lower()
    assert "<tr><td>example.com</td><td class=\"n\">2</td>" in html
    for _, url, *_ in OPTOUT_FINDINGS:
        assert url.split("://")[1] not in html and url.split("://")[1] not in json.dumps(optouts_report)



def test_every_reason_shows_its_declared_label_with_its_code(payloads):
    """One source: the label a detector declares (Reason.label, through the registry) is what the
    report shows, the code beside it; a crowd reason takes its category's description."""
    config, first, second = payloads
    html = write_report(load_config(config), second).read_text()
    for r in data_of(config, second)["reasons"]:
        assert f'{escape(reason_label(r["reason"]))} <code class="reason">{r["reason"]}</code>' in html
    crowd = {"by_status": {"pending": 1, "confirmed": 0, "rejected": 0}, "top_domains": [],
             "by_category": [{"category": "copyright", "sensitive": False, "pending": 1, "confirmed": 0, "rejected": 0},
                             {"category": "personal_data", "sensitive": False, "pending": 0, "confirmed": 0, "rejected": 0}]}
    body = ENV.get_template("report_body.html.j2").render(
        report={**data_of(config, second), "crowd": crowd}, crowd_categories={"copyright": "Used without permission", "personal_data": ""}
    )
    assert 'Used without permission <code class="reason">copyright</code>' in body
    assert "personal_data" not in body  # a category with no flags has no row


def test_headline_figures_and_changes_equal_the_data(payloads):
    config, first, second = payloads
    data = data_of(config, second)
    html = ENV.get_template("report.html.j2").render(report=data)
    headline = html.split('<section class="headline"', 1)[1].split("</section>", 1)[0]
    h = data["headline"]
    assert h["flagged"] == 8 and h["restricted"] == 3  # rows 1 and 9 no longer flagged, row 3 newly
    for figure, words in (("samples", "samples scanned"), ("flagged", "with a finding"), ("restricted", "hash-list matches"),
                          ("dead_links", "dead links"), ("duplicates", "duplicates"), ("licence_gaps", "licence gaps")):
        assert f"<b>{h[figure]}</b> {words}" in headline, figure
    assert "opted out" not in headline  # no optouts detector configured
    c = data["changes"]
    assert f"<b>{c['added']} sample</b> newly flagged, <b>{c['gone']} samples</b> no longer flagged." in headline
    assert "Licence not on the allowed list: +1;" in headline and "No licence given: &minus;1" in headline
    assert "First run" not in headline
    first_headline = ENV.get_template("report.html.j2").render(report=data_of(config, first) | {"changes": None})
    assert "First run of this dataset: nothing to compare with yet." in first_headline


def test_plural_counts_one_sample_and_two_samples():
    assert [plural(n, "sample") for n in (0, 1, 2, 1234)] == ["0 samples", "1 sample", "2 samples", "1,234 samples"]
    assert plural(1, "entry", "entries") == "1 entry" and plural(3, "entry", "entries") == "3 entries"


@pytest.fixture(scope="module")
def licensed(tmp_path_factory):
    """One scan of five samples whose licences are two Creative Commons URLs sharing their first
    34 characters, a spelling of one of them, a text no SPDX id names, and none."""
    root = tmp_path_factory.mktemp("report-licences")
    licences = ["https://creativecommons.org/licenses/by-nc/2.0/", "https://creativecommons.org/licenses/by/2.0/", "CC BY 2.0",
                "all rights reserved", None]
    write_rows(root / "d.jsonl", [(f"http://e.example/{i}.jpg", f"caption {i}", lic) for i, lic in enumerate(licences)])
    config = write_config(root, {"dataset": {"name": "lic", "shards": ["d.jsonl"]}, "detectors": {"license_gaps": {}}})
    run = scan(config)
    assert run["status"] == "completed"
    return config, run["run_id"]


def test_licence_bars_show_distinct_spdx_ids(licensed):
    config, run_id = licensed
    data = data_of(config, run_id)
    assert data["licences"] == [
        {"licence": "CC-BY-2.0", "spdx": True, "samples": 2},  # the URL and "CC BY 2.0" count together
        {"licence": "CC-BY-NC-2.0", "spdx": True, "samples": 1},
        {"licence": "all rights reserved", "spdx": False, "samples": 1},
        {"licence": "(none)", "spdx": False, "samples": 1},
    ]
    html = write_report(load_config(config), run_id).read_text()
    assert '<th scope="row"><code>CC-BY-2.0</code></th>' in html and '<th scope="row"><code>CC-BY-NC-2.0</code></th>' in html
    assert '<th scope="row">unknown: all rights reserved</th>' in html and "creativecommons.org" not in html


def test_one_run_draws_no_trend_and_empty_sections_say_so(licensed):
    """A single run gets a sentence instead of one-point sparklines; no crowd data, no flags at all
    and no findings each read as a sentence, never an empty chart or table."""
    config, run_id = licensed
    data = data_of(config, run_id)
    html = ENV.get_template("report.html.j2").render(report=data)
    assert len(data["history"]) == 1 and "<svg" not in html.split("<h2>History</h2>", 1)[1].split("<h2>", 1)[0]
    assert "One finished run so far: a trend per reason appears from the second." in html
    assert "First run of this dataset" in html
    crowd_section = html.split("<h2>Crowd flags</h2>", 1)[1].split("<h2>", 1)[0]
    assert "No flags yet." in crowd_section and "<table" not in crowd_section
    no_flags = {"by_status": {"pending": 0, "confirmed": 0, "rejected": 0}, "top_domains": [],
                "by_category": [{"category": "copyright", "sensitive": False, "pending": 0, "confirmed": 0, "rejected": 0}]}
    crowd_section = ENV.get_template("report.html.j2").render(report=data | {"crowd": no_flags}).split("<h2>Crowd flags</h2>", 1)[1].split("<h2>", 1)[0]
    assert "No flags yet." in crowd_section and "<table" not in crowd_section and "<svg" not in crowd_section
    nothing = data | {"reasons": [], "headline": dict.fromkeys(data["headline"], 0) | {"optouts": None}}
    findings = ENV.get_template("report.html.j2").render(report=nothing).split("<h2>Findings by reason</h2>", 1)[1].split("<h2>", 1)[0]
    assert "No findings." in findings and "<table" not in findings


def test_numeric_columns_are_right_aligned_in_header_and_body(payloads):
    config, _, second = payloads
    html = ENV.get_template("report.html.j2").render(report=data_of(config, second))
    assert ".scrutineer-report th.n, .scrutineer-report td.n { text-align: right;" in html
    for header in ("findings", "samples", "samples before", "newly flagged", "first", "latest", "size", "rows", "seconds"):
        assert f'<th scope="col" class="n">{header}</th>' in html, header
