""""My flags" (``/mine``, ``/mine.csv``) in Debian's Chromium driven by Playwright against
``scrutineer serve``: statuses and reason codes as the API shows them to the account, no URL for
a contributor, a sensitive flag pending whatever happened (issue 25, "Contributors")."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from conftest import CHROMIUM, scan, write_config

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.crowd.flag_export import COLUMNS
from scrutineer.crowd.flags import FlagItem
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore
from scrutineer.testing.served import serve

pytest.importorskip("playwright.sync_api")
ROWS = [{"key": f"k{i}", "url": f"http://h{i}.example/{i}.jpg", "caption": f"caption of sample {i}"} for i in range(8)]
LISTED = 3  # on the hash list: restricted
CATEGORIES = {"csam_suspected": {"sensitive": True}, "copyright": {"description": "Used without permission"}}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """Served: ``casey`` (contributor) flagged k1 (confirmed), k2 (rejected as a duplicate of k1's),
    k3 (hash-listed, pending) and k4 (csam_suspected, confirmed); ``riley`` (reviewer) decided
    them, her notes quoting the URLs, and flagged k5 herself; ``newbie`` flagged nothing."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    root = tmp_path_factory.mktemp("mine")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "urls.txt").write_text(url_md5(ROWS[LISTED]["url"]) + "\n")
    config = write_config(root, {
        "dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
        "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
        "detectors": {"url_hashlist": {}},
        "crowd": {"categories": CATEGORIES},
    })
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    with CrowdStore(cfg.crowd) as crowd, Snapshot(cfg.workspace) as snapshot:
        passwords = {name: crowd.add_account(name, role)[0] for name, role in (("casey", "contributor"), ("riley", "reviewer"), ("newbie", "contributor"))}
        sample = {found.sample_id: found for [found] in snapshot.samples([("sample_id", r["key"]) for r in ROWS])}
        casey, riley = crowd.by_name("casey"), crowd.by_name("riley")
        wanted = [("k1", "copyright"), ("k2", "copyright"), ("k3", "copyright"), ("k4", "csam_suspected")]
        ids = dict(zip((k for k, _ in wanted), (i for i, _ in crowd.flag(casey, [FlagItem(sample[k], c, f"note {k}") for k, c in wanted], "form"))))
        crowd.review(riley, ids["k1"], "confirm", "matches_category", f"seen at {ROWS[1]['url']}")
        crowd.review(riley, ids["k2"], "reject", "not_in_category", f"seen at {ROWS[2]['url']}")
        crowd.review(riley, ids["k4"], "confirm", "hotline_confirmed", f"seen at {ROWS[4]['url']}")
        [(own, _)] = crowd.flag(riley, [FlagItem(sample["k5"], "copyright", "a reviewer flags too")], "form")
    with serve(config) as base:
        yield base, passwords, ids, own


def signed_in(browser, base: str, name: str, password: str, errors: list[str], width: int = 1280):
    page = browser.new_context(base_url=base, viewport={"width": width, "height": 900}).new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("text=Log in")
    page.wait_for_load_state("networkidle")
    return page


def rows(page) -> dict[str, dict[str, str]]:
    """The table's rows by flag id ("#3"): each column's text."""
    heads = page.locator("table.mine thead th").all_inner_texts()
    return {cells[0]: dict(zip(heads, cells)) for cells in (r.locator("td").all_inner_texts() for r in page.locator("table.mine tbody tr").all())}


def test_a_contributor_sees_statuses_and_reason_codes_and_no_url(app, browser):
    base, passwords, ids, own = app
    errors: list[str] = []
    page = signed_in(browser, base, "casey", passwords["casey"], errors)
    page.click("nav[aria-label=Main] >> text=My flags")
    page.wait_for_url(re.compile(r"/mine$"))
    assert page.locator("h1").inner_text() == "My flags"
    shown = rows(page)
    assert list(shown) == [f"#{ids[k]}" for k in ("k4", "k3", "k2", "k1")]  # newest first, their own only
    k1, k2, k3, k4 = (shown[f"#{ids[k]}"] for k in ("k1", "k2", "k3", "k4"))
    assert k1["Status"] == "confirmed" and "confirm: matches_category by riley" in k1["Decisions"]
    assert k2["Status"] == "rejected" and "reject: not_in_category" in k2["Decisions"]
    assert k3["Status"] == "pending" and k3["Decisions"] == "none yet"
    assert "caption of sample 1" in k1["Sample"] and "h1.example" in k1["Sample"]  # the host, never the URL
    # the sensitive flag: pending, no review, though riley confirmed it
    assert k4["Status"] == "pending" and k4["Decisions"] == "none yet"
    html = page.content()
    assert not any(r["url"] in html for r in ROWS) and "seen at" not in html and "hotline_confirmed" not in html
    # filters are links; the status filter is on the status shown
    page.click("nav[aria-label=Status] >> text=confirmed")
    page.wait_for_url(re.compile(r"/mine\?status=confirmed$"))
    assert list(rows(page)) == [f"#{ids['k1']}"]
    page.click("nav[aria-label=Category] >> text=csam_suspected")
    page.wait_for_url(re.compile(r"status=confirmed&category=csam_suspected$"))
    assert page.locator("text=None of your flags match these filters").count() == 1
    page.goto("/mine?status=pending&category=csam_suspected")
    assert list(rows(page)) == [f"#{ids['k4']}"]
    # at 390 px the page does not scroll sideways
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto("/mine")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert errors == []


def test_the_csv_is_the_same_list_spreadsheet_safe(app, browser):
    base, passwords, ids, _ = app
    page = signed_in(browser, base, "casey", passwords["casey"], [])
    page.goto("/mine")
    with page.expect_download() as download:
        page.click("text=Download this list (CSV)")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    table = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(table[0]) == COLUMNS
    assert [r["id"] for r in table] == [str(ids[k]) for k in ("k4", "k3", "k2", "k1")]
    by_sample = {r["sample_id"]: r for r in table}
    assert by_sample["k4"]["status"] == "pending" and by_sample["k4"]["decisions"] == ""
    assert by_sample["k1"]["decisions"] == "confirm matches_category" and by_sample["k1"]["review_notes"] == ""
    assert not any(r["url"] for r in table) and not any(row["url"] in text for row in ROWS)
    filtered = page.request.get("/mine.csv?status=confirmed")
    assert [r["sample_id"] for r in csv.DictReader(io.StringIO(filtered.text(), newline=""))] == ["k1"]


def test_a_reviewer_sees_their_own_flags_and_an_account_with_none_is_told_how_to_start(app, browser):
    base, passwords, ids, own = app
    reviewer = signed_in(browser, base, "riley", passwords["riley"], [])
    reviewer.goto("/mine")
    assert list(rows(reviewer)) == [f"#{own}"]
    newbie = signed_in(browser, base, "newbie", passwords["newbie"], [])
    newbie.goto("/mine")
    assert newbie.locator("text=You have not flagged anything yet").count() == 1
    newbie.click("text=Search the dataset")
    newbie.wait_for_url(re.compile(r"/samples"))
