"""The dataset browser (issue 25, "A dataset browser"): search, filters, paging, permalinks, the
flag form's answer, and the restricted-data rule on every page of it; acceptance 1 in Chromium."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import httpx
import pytest
from conftest import scan, write_config

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.core.layout import Layout
from scrutineer.crowd.search import PAGE, Search, SearchIndex, filter_token, words
from scrutineer.crowd.store import CrowdStore
from scrutineer.testing.served import serve

PAYLOADS = ["<script>alert(1)</script>", '<img src=x onerror="alert(2)">', "javascript:alert(3)"]
THEMES = ["red dress on a beach", "blue car in the street", "old map of paris"]
LICENCES = ["CC-BY-4.0", "https://creativecommons.org/licenses/by-nc/2.0/", None]
#: Sample ids that must round-trip through a permalink.
ODD_IDS = ["dir/one", "50%", "a?b#c d", "ü/%2F", "..", "x/../y"]
ROWS = (
    [{"key": f"k{i}", "url": f"http://h{i % 3}.example/{i}.jpg", "caption": f"{THEMES[i % 3]} number {i}", "license": LICENCES[i % 3]}
     for i in range(120)]
    + [{"key": k, "url": f"http://odd.example/{n}.jpg", "caption": f"odd id {n}", "license": None} for n, k in enumerate(ODD_IDS)]
    + [{"key": f"p{i}", "url": f"http://payloads.example/{i}.jpg", "caption": f"{p} hostile caption", "license": p} for i, p in enumerate(PAYLOADS)]
    # twins: the same but for the id, the row and the URL; twin-a's URL is on the hash list (restricted)
    + [{"key": k, "url": f"http://twins.example/{k}.jpg", "caption": "the twin sample", "license": "CC-BY-4.0"} for k in ("twin-a", "twin-b")]
    + [{"key": k, "url": "http://dups.example/same.jpg", "caption": f"one url, sample {k}", "license": None} for k in ("dup-1", "dup-2")]
)
LISTED = "twin-a"
RESTRICTED_REASON = "hash_match.url"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "urls.txt").write_text(url_md5(f"http://twins.example/{LISTED}.jpg") + "\n")
    config = write_config(
        root,
        {
            "dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}, "license_gaps": {"conditions": ["NC"]}},
            "crowd": {"categories": {"csam_suspected": {"sensitive": True}, "copyright": {"description": "Used without permission"}},
                      "rate_limit": "1000/minute"},
        },
    )
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    crowd = CrowdStore(cfg.crowd)
    accounts = {name: crowd.add_account(name, role) for name, role in (("contributor", "contributor"), ("reviewer", "reviewer"), ("other", "contributor"))}
    crowd.close()
    with serve(config) as base:
        yield cfg, base, accounts


def client(app, role: str) -> httpx.Client:
    _, base, accounts = app
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {accounts[role][1]}"})


def hits(html: str) -> list[str]:
    """The sample ids a results page lists, in order."""
    return re.findall(r'<small>id <code>(.*?)</code></small>', html)


def total(html: str) -> str:
    return re.search(r'<p class="summary" id="summary">(.*?)</p>', html).group(1)


# the index


def test_the_index_finds_every_word_with_filters_in_shard_and_row_order(app):
    cfg, _, _ = app
    index = SearchIndex(cfg.workspace)
    red = index.search(Search(q="Red DRESS beach"))  # words in any case, any order: an AND
    assert red.total == 40 and red.hits == [f"k{i}" for i in range(0, 120, 3)]
    assert index.search(Search(q="dress car")).total == 0
    assert index.search(Search(q="beach", domain="h0.example")).total == 40
    assert index.search(Search(q="beach", domain="h1.example")).total == 0
    # the licence filter takes the SPDX id; a licence without one by its text as given
    assert index.search(Search(license="CC-BY-NC-2.0")).total == 40
    assert index.search(Search(license=PAYLOADS[0])).total == 1
    assert index.search(Search(q="twin", reason=RESTRICTED_REASON)).total == 1
    assert index.search(Search(q="twin", reason="license.missing")).total == 0
    assert index.search(Search(reason="license.missing")).total == 40 + len(ODD_IDS) + 2
    assert index.search(Search(shard="d.jsonl")).total == len(ROWS)
    # query syntax is never interpreted: quotes, operators and stars are text
    for q in ('"red', "red OR car", "NEAR(red car)", "red*", "col:red", "-red", "'); DROP TABLE samples; --"):
        assert index.search(Search(q=q)).total in (0, 40), q
    assert words("e-mail don't x_y") == ["e", "mail", "don", "t", "x", "y"]
    assert filter_token("domain", "a.example") != filter_token("shard", "a.example")


def test_an_empty_search_browses_the_scan_in_pages(app):
    cfg, _, _ = app
    index = SearchIndex(cfg.workspace)
    first, second = index.search(Search()), index.search(Search(page=2))
    assert first.total == len(ROWS) and first.pages == -(-len(ROWS) // PAGE)
    assert first.hits + second.hits == [r["key"] for r in ROWS[:2 * PAGE]]
    paged = [i for p in (1, 2) for i in index.search(Search(q="number", page=p)).hits]
    assert paged == [f"k{i}" for i in range(2 * PAGE)]


def test_the_index_is_private_like_the_snapshot_and_rebuilt_in_place(app):
    cfg, _, _ = app
    layout = Layout(cfg.workspace)
    assert layout.search_index.stat().st_mode & 0o777 == layout.snapshot.stat().st_mode & 0o777 == 0o600
    assert not [p for p in cfg.workspace.iterdir() if ".tmp-" in p.name]


# pages


def test_search_page_filters_are_links_and_pages_link_on(app):
    with client(app, "reviewer") as web:
        page = web.get("/samples", params={"q": "beach"}).text
        assert total(page).startswith("40 samples") and hits(page)[:2] == ["k0", "k3"]
        assert 'href="/samples?q=beach&amp;domain=h0.example"' in page  # a facet link keeps the words
        assert 'href="/samples?q=beach&amp;license=CC-BY-4.0"' in page
        narrowed = web.get("/samples?q=beach&domain=h0.example").text
        assert "domain: h0.example" in narrowed and 'href="/samples?q=beach"' in narrowed  # the chip removes the filter
        browse = web.get("/samples").text
        assert 'rel="next" href="/samples?page=2"' in browse and len(hits(browse)) == PAGE
        last = web.get("/samples?page=3").text
        assert hits(last) == [r["key"] for r in ROWS[2 * PAGE:]] and 'rel="prev"' in last and 'rel="next"' not in last
        assert web.get("/samples?page=0").status_code == 422
        assert web.get("/samples", params={"q": "x" * 501}).status_code == 422


@pytest.mark.parametrize("sample_id", ODD_IDS)
def test_a_permalink_round_trips_any_id(app, sample_id):
    with client(app, "contributor") as web:
        listed = web.get("/samples", params={"q": "odd id"}).text
        # every reserved character percent-encoded, / as %2F and % as %25; a dot segment, which
        # browsers resolve, by the query
        path = f"/samples/?id={quote(sample_id, safe='')}" if sample_id in (".", "..") else f"/samples/{quote(sample_id, safe='')}"
        assert f'href="{path}"' in listed
        page = web.get(path)
        assert page.status_code == 200 and f"<code>{sample_id.replace('&', '&amp;')}</code>" in page.text
        assert web.get(f"/samples/{quote(sample_id + 'x', safe='')}").status_code == 404


def test_a_sample_page_shows_its_licence_domain_findings_and_the_form(app):
    with client(app, "contributor") as web:
        page = web.get("/samples/k1").text
    assert "https://creativecommons.org/licenses/by-nc/2.0/" in page and "CC-BY-NC-2.0" in page  # as given, and its SPDX id
    assert "h1.example" in page and "blue car in the street number 1" in page
    assert "Licence forbids commercial use" in page and "license.nc" in page  # its label, from the detector's declaration
    assert "http://h1.example/1.jpg" not in page  # no URL for a contributor
    assert 'name="sample_id" value="k1"' in page and 'action="/flags"' in page


def _contributors_view(web: httpx.Client, sample_id: str, row: int) -> tuple[dict, str]:
    """A contributor's page of a sample: its facts table (label -> cell) and the page, with what
    must differ (the id, the row) and the per-request CSRF token written the same for both."""
    html = web.get(f"/samples/{sample_id}").text
    html = re.sub(r'csrftoken": "[^"]*"|value="[^"]{30,}"', "TOKEN", html)
    html = html.replace(sample_id, "ID").replace(f"</code></a>, {row}</td>", "</code></a>, ROW</td>")
    facts = dict(re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td></tr>', html, re.DOTALL))
    return facts, html


def test_a_contributor_sees_a_restricted_sample_as_any_other(app):
    rows = {r["key"]: i for i, r in enumerate(ROWS)}
    with client(app, "reviewer") as reviewer:
        assert "restricted" in reviewer.get(f"/samples/{LISTED}").text  # the reviewer is told
        assert f"http://twins.example/{LISTED}.jpg" in reviewer.get(f"/samples/{LISTED}").text
        assert total(reviewer.get("/samples", params={"reason": RESTRICTED_REASON}).text).startswith("1 sample")
        assert f"reason={RESTRICTED_REASON}" in reviewer.get("/samples").text
    with client(app, "contributor") as web:
        restricted, plain = _contributors_view(web, LISTED, rows[LISTED]), _contributors_view(web, "twin-b", rows["twin-b"])
        assert restricted[0] == plain[0] and set(plain[0]) == {"Caption", "Host", "Registrable domain", "Licence", "Shard, row", "URL"}
        assert restricted[1] == plain[1]  # field by field, and the whole page
        assert "restricted" not in restricted[1] and "hash_match" not in restricted[1] and "twins.example/twin" not in restricted[1]
        # a restricted reason is not offered, and asked for it answers as a reason no sample has
        listing = web.get("/samples").text
        assert "hash_match" not in listing and "license.missing" in listing
        asked, unknown = (web.get("/samples", params={"q": "twin", "reason": r}) for r in (RESTRICTED_REASON, "no.such.reason"))
        assert asked.status_code == unknown.status_code == 200
        assert asked.text.replace(RESTRICTED_REASON, "R") == unknown.text.replace("no.such.reason", "R")
        assert total(asked.text) == "No sample matches."
        # nor typed as a word: a filter token's hash is public, so it is no query word
        token = filter_token("reason", RESTRICTED_REASON)
        assert hits(web.get("/samples", params={"q": f"twin {token.upper()}"}).text) == [LISTED, "twin-b"]  # as "twin" alone
        assert words(f"twin {token}") == ["twin"]
        # both twins are found and counted alike
        twins = web.get("/samples", params={"q": "twin sample"}).text
        assert hits(twins) == [LISTED, "twin-b"] and total(twins).startswith("2 samples")


def test_hostile_captions_and_licences_are_text(app):
    with client(app, "reviewer") as web:
        listed = web.get("/samples", params={"q": "hostile caption"}).text
        pages = [listed] + [web.get(f"/samples/p{i}").text for i in range(len(PAYLOADS))]
    assert hits(listed) == ["p0", "p1", "p2"]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hostile caption" in pages[1]
    assert 'href="javascript:' not in "".join(pages)


def test_the_flag_form_says_what_it_recorded(app):
    with client(app, "other") as web:
        form = web.get("/flags/new").text
        assert 'href="/samples"' in form and "Find the sample" in form
        by_url = web.post("/flags", data={"url": "http://dups.example/same.jpg", "category": "copyright", "note": "two of them"})
        assert by_url.status_code == 303
        shown = web.get(by_url.headers["location"]).text
        assert "2 flags recorded." in shown and shown.count(": recorded</li>") == 2
        assert 'href="/samples/dup-1"' in shown and 'href="/samples/dup-2"' in shown
        again = web.get(web.post("/flags", data={"url": "http://dups.example/same.jpg", "category": "copyright"}).headers["location"]).text
        assert "Already flagged by you" in again and again.count("already flagged by you</li>") == 2
        assert "flags recorded." not in again
        missing = web.post("/flags", data={"sample_id": "nope", "category": "copyright", "note": "kept"})
        assert missing.status_code == 404 and ">kept</textarea>" in missing.text
        # the sample page lists the account's own flags of it
        page = web.get("/samples/dup-1").text
        assert re.search(r'href="/flags/\d+">#\d+</a></td><td>copyright</td>', page)
    with client(app, "contributor") as mine:
        assert "You have not flagged this sample." in mine.get("/samples/dup-1").text  # another's flag is not shown


# acceptance 1, in a browser


def test_a_contributor_finds_a_sample_by_three_words_and_flags_it(app, browser):
    cfg, base, accounts = app
    page = browser.new_context(base_url=base).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/login")
    page.fill("input[name=name]", "contributor")
    page.fill("input[name=password]", accounts["contributor"][0])
    page.click("text=Log in")
    page.wait_for_load_state()
    page.click("nav >> text=Search")
    page.get_by_label("Words of the caption").fill("map paris number")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/samples\?q=map"))
    assert page.locator("#summary").inner_text().startswith("40 samples")
    page.get_by_role("link", name="old map of paris number 5", exact=True).click()
    page.wait_for_url(re.compile(r"/samples/k5$"))
    assert page.locator("h1").inner_text() == "Sample k5"
    page.get_by_label("Category").select_option("copyright")
    page.get_by_label("Note").fill("my photo, used without permission")
    page.get_by_role("button", name="Flag this sample").click()
    page.wait_for_url(re.compile(r"/flags/new\?recorded=\d+$"))
    assert page.get_by_role("status").inner_text().startswith("Flag recorded.")
    flag_id = int(page.url.rsplit("=", 1)[1])
    with CrowdStore(cfg.crowd) as crowd:
        contributor = crowd.by_token(accounts["contributor"][1])
        detail = crowd.flag_detail(contributor, flag_id)
    assert detail["sample_id"] == "k5" and detail["category"] == "copyright"
    assert [r["note"] for r in detail["reports"]] == ["my photo, used without permission"]
    assert errors == []
