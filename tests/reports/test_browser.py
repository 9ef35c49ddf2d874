"""The review workflow in a real browser: Debian's Chromium driven by Playwright against
`scrutineer serve` on loopback (the browser is never downloaded: MEASURED.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, scan, write_config

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.crowd.store import CrowdStore
from scrutineer.crowd.sync import sync_latest
from scrutineer.release.build import build_release
from scrutineer.testing.served import serve

pytest.importorskip("playwright.sync_api")
PAYLOADS = ["<script>alert(1)</script>", '<img src=x onerror="alert(2)">', "javascript:alert(3)"]
ROWS = [
    {"key": f"k{i}", "url": f"http://h{i % 3}.example/{i}.jpg", "caption": f"{PAYLOADS[i % 3]} sample {i}"} for i in range(9)
]
LISTED = 8  # its URL is on the hash list: restricted


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    root = tmp_path_factory.mktemp("browser")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "urls.txt").write_text(url_md5(ROWS[LISTED]["url"]) + "\n")
    config = write_config(
        root,
        {
            "dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}},
            "crowd": {"categories": {"csam_suspected": {"sensitive": True}, "copyright": {"description": "Used without permission"}}},
            "release": {"variants": {"clean": {"remove": ["hash_match", "crowd"], "acknowledge_restricted_share": 0.5}}},
        },
    )
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    crowd = CrowdStore(cfg.crowd)
    accounts = {role: crowd.add_account(role, role) for role in ("contributor", "reviewer")}
    crowd.close()
    with serve(config) as base:
        yield cfg, base, accounts, root


def signed_in(browser, base: str, name: str, password: str, alerts: list[str]):
    page = browser.new_context(base_url=base).new_page()
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto("/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("text=Log in")
    page.wait_for_url(re.compile(r"/(queue|samples)$"))  # home: the queue for reviewers, the search for contributors
    return page


def flag_in_form(page, sample_id: str, category: str, note: str) -> int:
    page.goto("/flags/new")
    page.fill("input[name=sample_id]", sample_id)
    page.select_option("select[name=category]", category)
    page.fill("textarea[name=note]", note)
    page.click("button:has-text('Flag')")
    page.wait_for_url(re.compile(r"/flags/new\?recorded=\d+$"))  # the form says what it recorded
    return int(page.url.rsplit("=", 1)[1])


def decide(page, flag_id: int, decision: str, reason: str) -> None:
    page.goto(f"/flags/{flag_id}")
    assert page.locator(f"input[name=reason][value={reason}]").is_hidden()  # the reasons follow the decision
    page.check(f"input[name=decision][value={decision}]")
    page.check(f"input[name=reason][value={reason}]")
    page.fill("textarea[name=note]", f"{decision}: {PAYLOADS[0]}")
    page.click("button[value=stay]")
    page.wait_for_url(re.compile(rf"/flags/{flag_id}$"))


def test_flag_review_release_in_a_browser(app, browser, tmp_path):
    cfg, base, accounts, root = app
    alerts: list[str] = []
    contributor = signed_in(browser, base, "contributor", accounts["contributor"][0], alerts)
    first = flag_in_form(contributor, "k1", "copyright", PAYLOADS[1])
    second = flag_in_form(contributor, "k2", "copyright", "not mine either")
    api = httpx.post(f"{base}/api/flags", json={"sample_id": "k4", "category": "csam_suspected", "note": PAYLOADS[0]},
                     headers={"Authorization": f"Bearer {accounts['contributor'][1]}"})
    assert api.status_code == 201, api.text
    third = api.json()["id"]

    reviewer = signed_in(browser, base, "reviewer", accounts["reviewer"][0], alerts)
    reviewer.goto("/queue?status=pending")
    assert reviewer.locator("text=sample 1").count() and reviewer.locator("text=sample 2").count()
    reviewer.screenshot(path=str(tmp_path / "queue.png"), full_page=True)
    decide(reviewer, first, "confirm", "matches_category")
    decide(reviewer, second, "reject", "not_in_category")
    reviewer.goto(f"/flags/{first}")
    assert "confirmed" in reviewer.locator("h1").inner_text()
    reviewer.screenshot(path=str(tmp_path / "item.png"), full_page=True)
    assert (tmp_path / "queue.png").stat().st_size > 0 and (tmp_path / "item.png").stat().st_size > 0

    # captions and notes carrying script payloads are shown as text, and none ran
    for page, path in ((reviewer, "/queue"), (reviewer, f"/flags/{first}"), (contributor, f"/flags/{first}"), (reviewer, "/reports")):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    reviewer.goto(f"/flags/{first}")
    assert reviewer.get_by_text(f"{PAYLOADS[1]} sample 1").count() == 1
    assert reviewer.locator("img").count() == 0  # no image before the click
    reviewer.click("text=Show the image (blurred)")
    image = reviewer.locator("img")
    image.wait_for(state="attached")
    assert "blur" in image.evaluate("img => getComputedStyle(img).filter")
    assert image.get_attribute("src") == ROWS[1]["url"]  # from the original URL, never proxied
    reviewer.wait_for_function("document.activeElement && document.activeElement.id.startsWith('unblur-')")  # focus moves to the new control
    assert image.evaluate("img => getComputedStyle(img.parentElement).overflow") == "hidden"  # the blur stays inside its box

    # a sensitive flag: no <img>, no URL, not even for the reviewer's page an image button
    reviewer.goto(f"/flags/{third}")
    assert reviewer.locator("img").count() == 0 and reviewer.locator("text=Show the image").count() == 0
    contributor.goto(f"/flags/{third}")
    assert ROWS[4]["url"] not in contributor.content()
    assert alerts == []

    sync_latest(cfg)  # as `scrutineer release` does first
    release = build_release(cfg, "clean")
    kept = {json.loads(line)["key"] for line in (release / "data" / "d.jsonl").read_text().splitlines()}
    assert kept == {r["key"] for r in ROWS} - {"k1", f"k{LISTED}"}  # exactly the confirmed flag and the hash-list match


def test_a_maintainer_rotates_a_token_and_disables_an_account_on_the_accounts_page(app, browser, tmp_path):
    """Issue 23, fault 5: the accounts page as a maintainer sees it; its forms take effect at once
    and a new token is shown once."""
    cfg, base, _, _ = app
    spare = f"{PAYLOADS[0]} spare"  # a name is shown as text
    with CrowdStore(cfg.crowd) as crowd:
        boss_password, _ = crowd.add_account("boss", "maintainer")
        _, spare_token = crowd.add_account(spare, "contributor")
    alerts: list[str] = []
    page = signed_in(browser, base, "boss", boss_password, alerts)
    page.click("text=Accounts")
    page.wait_for_url(re.compile(r"/accounts$"))
    row = page.locator("tbody tr", has_text="spare")
    assert row.locator("td").first.inner_text() == spare and row.locator("td").nth(2).inner_text() == "enabled"
    assert page.locator("tbody tr").count() == 4 and "boss" in page.locator("tbody").inner_text()
    page.screenshot(path=str(tmp_path / "accounts.png"), full_page=True)
    assert (tmp_path / "accounts.png").stat().st_size > 0

    row.get_by_role("button", name="Rotate token").click()
    shown = page.locator("#shown code")
    shown.wait_for()
    token = shown.inner_text()
    api = f"{base}/api/flags"
    assert httpx.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(api, headers={"Authorization": f"Bearer {spare_token}"}).status_code == 401
    page.locator("tbody tr", has_text="spare").get_by_role("button", name="Disable").click()
    page.wait_for_url(re.compile(r"/accounts$"))
    assert page.locator("tbody tr", has_text="spare").locator("td").nth(2).inner_text() == "disabled"
    assert page.locator("#shown").count() == 0 and token not in page.content()  # shown once
    assert httpx.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert alerts == []


def test_the_takedown_page_lists_its_domains_and_downloads_the_files_scrutineer_takedown_writes(app, browser, tmp_path):
    """Issue 23, fault 13: each domain heading read ``<built-in method items of dict object>``,
    and the page offered no download. Reviewers and contributors get neither page nor files."""
    cfg, base, accounts, root = app
    with CrowdStore(cfg.crowd) as crowd:
        password, _ = crowd.add_account("takedown-maintainer", "maintainer")
    alerts: list[str] = []
    maintainer = signed_in(browser, base, "takedown-maintainer", password, alerts)
    written = subprocess.run([str(Path(sys.executable).parent / "scrutineer"), "takedown", str(cfg.config_path)],
                             capture_output=True, text=True, timeout=120, check=False)
    assert written.returncode == 0, written.stderr
    csv_file, json_file = (cfg.workspace / "takedown" / f"{cfg.dataset.name}.{kind}" for kind in ("csv", "json"))
    manifest = json.loads(json_file.read_text())
    assert manifest["items"] >= 1  # the hash-listed row, at least

    maintainer.goto("/takedown")
    headings = maintainer.locator("h2").all_inner_texts()
    assert [h.split()[0] for h in headings] == [d["registrable_domain"] for d in manifest["domains"]]
    assert not any("built-in" in h for h in headings)
    assert ROWS[LISTED]["url"] in maintainer.locator("table").first.inner_text()
    downloads = {}
    for kind in ("CSV", "JSON"):
        with maintainer.expect_download() as download:
            maintainer.click(f"a:has-text('{kind}')")
        downloads[kind] = tmp_path / download.value.suggested_filename
        download.value.save_as(downloads[kind])
    assert downloads["CSV"].name == csv_file.name and downloads["CSV"].read_bytes() == csv_file.read_bytes()
    got = json.loads(downloads["JSON"].read_text())
    assert {k: v for k, v in got.items() if k != "generated_at"} == {k: v for k, v in manifest.items() if k != "generated_at"}

    for role in ("reviewer", "contributor"):
        other = signed_in(browser, base, role, accounts[role][0], alerts)
        assert [other.request.get(path).status for path in ("/takedown", "/takedown.csv", "/takedown.json")] == [403, 403, 403]
        assert other.locator("a[href='/takedown']").count() == 0
    assert alerts == []


def test_a_note_with_a_bidi_override_is_shown_in_the_order_it_was_written(app, browser):
    """Issue 23, fault 9: an RLO (U+202E) in a note was obeyed, so "gpj.exe" after it read "exe.jpg"."""
    cfg, base, accounts, root = app
    contributor = signed_in(browser, base, "contributor", accounts["contributor"][0], [])
    flag_id = flag_in_form(contributor, "k5", "copyright", "ok\u202egpj.exe")
    contributor.goto(f"/flags/{flag_id}")
    lefts = contributor.evaluate("""() => {
        const td = [...document.querySelectorAll("td")].find(cell => cell.textContent.includes("gpj.exe"));
        const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
        let node = walker.nextNode();
        while (!node.data.includes("gpj.exe")) node = walker.nextNode();
        const start = node.data.indexOf("gpj.exe");
        return [...Array(7).keys()].map(i => {
            const range = document.createRange();
            range.setStart(node, start + i);
            range.setEnd(node, start + i + 1);
            return range.getBoundingClientRect().left;
        });
    }""")
    assert lefts == sorted(lefts) and len(set(lefts)) == 7  # each character right of the one before it
    note = contributor.locator("td", has_text="gpj.exe")
    assert note.inner_text() == "ok<U+202E>gpj.exe" and "\u202e" not in contributor.content()
