"""Every page of the review app, as every role, at a desktop and a phone viewport, in Debian's
Chromium (issue 25, "What to build" 7 and acceptance 5).

One workspace holds every kind of state a page shows: findings of three detectors, one of them a
hash-list match (so a restricted sample exists); flags pending, confirmed, rejected and of a
sensitive category; an account per role. :data:`PAGES` says who may open each page and what it
must show. Each page x role x viewport must have:

- no console error, no failed request and no sub-resource answered with a status >= 400;
- no horizontal overflow (``scrollWidth <= innerWidth``);
- no axe-core violation of impact serious or critical (axe-core 4.12.1, bundled by
  ``axe-playwright-python``; its rules cite WCAG 2.2 AA);
- the restricted-data rules (:mod:`scrutineer.crowd.access`): a contributor sees no ``<img>``,
  no sample's URL, no hash-list reason or bank; nobody sees an ``<img>`` of a restricted sample.

Anonymous visitors get ``/login`` and are sent there from every other page; a role a page is not
for gets 403. A screenshot of each is saved under ``$SCRUTINEER_SCREENSHOTS`` (default: a pytest
temporary directory), and a table of page x role x viewport -> result is printed at the end.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import CHROMIUM, scan, write_config

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.crowd.store import CrowdStore, crowd_counts
from scrutineer.reports.html import write_report
from scrutineer.testing.served import serve

pytest.importorskip("playwright.sync_api")
axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright")

BY, BY_NC = "https://creativecommons.org/licenses/by/4.0/", "https://creativecommons.org/licenses/by-nc/4.0/"
#: A caption and URL with no place to break, as scraped datasets have: they must wrap at 390 px.
LONG = "holiday-photos-2019-summer-beach-sunset-panorama-stitched-from-twelve-frames-high-resolution-final-version.jpg"
CAPTIONS = [
    "a lighthouse on a rocky coast at dusk",
    "a red bicycle leaning on a harbour wall",
    "two children flying a kite in a park",
    "a bowl of ramen with a soft boiled egg",
    "an old map of the city drawn by hand",
    "a grey cat asleep on a stack of books",
    "a market stall selling lemons and figs",
    LONG,
    "a tram crossing a bridge in the rain",
    "a lighthouse on a rocky coast at dusk",  # the caption of k0 again: an exact duplicate
    "a banner ad", "a banner ad",
]
FLOODED = "http://h1.example/banner.jpg"  # k10 and k11 share it, and it is on the hash list: more matches than flood.max_matches
ROWS = [
    {"key": f"k{i}", "url": FLOODED if i >= 10 else f"http://h{i % 3}.example/{LONG if i == 7 else i}.jpg", "caption": caption,
     "license": [BY, BY_NC, None][i % 3] if i not in (5, 8) else BY}
    for i, caption in enumerate(CAPTIONS)
]
LISTED, TWIN = 8, 5  # k8's URL is on the hash list (restricted); k5 is like it in all a contributor sees
SENSITIVE = 4  # flagged under a sensitive category: restricted too
RESTRICTED = (LISTED, SENSITIVE, 10, 11)
BANK = "hotline-urls"
SEARCHED = "red bicycle harbour"  # three words of k1's caption
ROLES = ("anonymous", "contributor", "reviewer", "maintainer")
SIGNED_IN = ROLES[1:]
VIEWPORTS = {"1280": {"width": 1280, "height": 800}, "390": {"width": 390, "height": 844}}


@dataclass(frozen=True)
class Page:
    """One page: its path (``{name}`` fields filled from the workspace's flag ids), the roles that
    may open it (others get 403, or a redirect to the page ``redirects`` names for them), the
    status it answers them, the texts it must show, and the helper building it while it is not
    there yet (its rows are strict xfails)."""

    name: str
    path: str
    roles: tuple[str, ...] = SIGNED_IN
    shows: tuple[str, ...] | dict[str, tuple[str, ...]] = ()  # for every role, or by role
    status: int = 200
    redirects: tuple[tuple[str, str], ...] = ()
    built_by: str | None = None
    #: why the rows of the roles that may open it fail, until someone fixes it (strict xfails)
    fails: str | None = None
    #: a selector to wait for before looking: a page its script renders (Swagger UI's operations)
    ready: str | None = None
    #: counts over the whole dataset, as the published report has them: a restricted reason and its
    #: bank may be named (never a sample)
    aggregate: bool = False


PAGES = [
    Page("login", "/login", ("anonymous",), ("Name", "Password")),
    Page("search", "/samples"),
    Page("search-results", f"/samples?q={SEARCHED.replace(' ', '+')}", shows=(CAPTIONS[1],)),
    Page("sample", "/samples/k1", shows=(CAPTIONS[1], "CC-BY-NC-4.0")),
    Page("sample-long", "/samples/k7", shows=(LONG,)),
    Page("sample-listed", f"/samples/k{LISTED}", shows=(CAPTIONS[LISTED],)),
    Page("queue", "/queue", ("reviewer", "maintainer"), ("pending",), redirects=(("contributor", "/mine"),)),
    Page("flag-form", "/flags/new", shows=("Category",)),
    Page("flag-pending", "/flags/{pending}", shows=(CAPTIONS[1], "pending")),
    Page("flag-confirmed", "/flags/{confirmed}", shows=(CAPTIONS[2], "confirmed")),
    Page("flag-rejected", "/flags/{rejected}", shows=(CAPTIONS[3], "rejected")),
    Page("flag-sensitive", "/flags/{sensitive}", shows=(CAPTIONS[SENSITIVE],)),
    Page("flag-listed", "/flags/{listed}", shows=(CAPTIONS[LISTED],)),
    Page("flag-long", "/flags/{long}", shows=(LONG,)),
    Page("mine", "/mine", shows={"contributor": (CAPTIONS[1], CAPTIONS[2])}),  # the others flagged nothing
    Page("reports", "/reports", shows=("pages-test",), aggregate=True),
    Page("holds", "/holds", ("maintainer",), (BANK,)),
    Page("takedown", "/takedown", ("maintainer",), ("1 in all", "h2.example", ROWS[LISTED]["url"])),
    Page("accounts", "/accounts", ("maintainer",), ("contributor", "reviewer", "maintainer")),
    Page("not-found", "/flags/999999", status=404, shows=("Error 404",)),
    Page("api-docs", "/docs", shows=("Scrutineer review", "/api/flags/{flag_id}/review"), ready=".opblock"),
]


def _rows():
    """(page, role, viewport) for every page: /login for anonymous visitors at both viewports;
    every other page for each role (403 for a role it is not for) at both viewports, and for
    anonymous visitors once (a redirect to /login)."""
    for p in PAGES:
        marks = [pytest.mark.xfail(strict=True, reason=f"built by {p.built_by}")] if p.built_by else []
        for role in ("anonymous",) if "anonymous" in p.roles else ROLES:
            if role == "anonymous" and "anonymous" not in p.roles:
                yield pytest.param(p, role, "any", marks=marks, id=f"{p.name}-{role}")
                continue
            failing = [pytest.mark.xfail(strict=True, reason=p.fails)] if p.fails and role in p.roles else []
            for viewport in VIEWPORTS:
                yield pytest.param(p, role, viewport, marks=marks + failing, id=f"{p.name}-{role}-{viewport}")


#: page x role x viewport -> what happened, printed as a table when the module ends.
RESULTS: dict[tuple[str, str, str], str] = {}


@dataclass
class Workspace:
    base: str
    flags: dict[str, int]
    report: Path
    shots: Path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, request) -> Workspace:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    root = tmp_path_factory.mktemp("pages")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "urls.txt").write_text("".join(url_md5(url) + "\n" for url in (ROWS[LISTED]["url"], FLOODED)))
    config = write_config(
        root,
        {
            "dataset": {"name": "pages-test", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
            "banks": [{"name": BANK, "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "flood": {"max_matches": 1},
            "detectors": {"url_hashlist": {}, "license_gaps": {"conditions": ["NC"]}, "dedup": {}},
            "crowd": {"categories": {"csam_suspected": {"sensitive": True}, "copyright": {"description": "Used without permission"}}},
        },
    )
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    with CrowdStore(cfg.crowd) as crowd:
        accounts = {role: crowd.add_account(role, role) for role in SIGNED_IN}
    shots = Path(os.environ.get("SCRUTINEER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with serve(config) as base:
        def token(role: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {accounts[role][1]}"}

        def flag(i: int, category: str = "copyright") -> int:
            made = httpx.post(f"{base}/api/flags", json={"sample_id": f"k{i}", "category": category, "note": f"flag of k{i}"}, headers=token("contributor"))
            assert made.status_code == 201, made.text
            return made.json()["id"]

        flags = {"pending": flag(1), "confirmed": flag(2), "rejected": flag(3), "sensitive": flag(SENSITIVE, "csam_suspected"),
                 "listed": flag(LISTED), "twin": flag(TWIN), "long": flag(7)}
        for name, decision, reason in (("confirmed", "confirm", "matches_category"), ("rejected", "reject", "not_in_category")):
            decided = httpx.post(f"{base}/api/flags/{flags[name]}/review", json={"decision": decision, "reason": reason, "note": "checked"}, headers=token("reviewer"))
            assert decided.status_code == 200, decided.text
        report = write_report(cfg, crowd=crowd_counts(cfg))
        yield Workspace(base, flags, report, shots), accounts
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    table = [f"{page:<16} {role:<12} {viewport:<5} {result}" for (page, role, viewport), result in RESULTS.items()]
    (shots / "pages.txt").write_text("\n".join(table) + "\n")
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        reporter.write_line(f"\npage x role x viewport (screenshots in {shots}):")
        for line in table:
            reporter.write_line(line)


@dataclass
class Tab:
    """One role's browser tab, and what went wrong on it since :meth:`clear`."""

    page: object
    errors: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.errors.clear()


@pytest.fixture(scope="module")
def tabs(workspace, browser):
    ws, accounts = workspace
    tabs = {}
    for role in ROLES:
        page = browser.new_context(base_url=ws.base).new_page()
        tab = tabs[role] = Tab(page)
        page.on("console", lambda m, tab=tab: tab.errors.append(f"console {m.type}: {m.text} ({m.location.get('url')})") if m.type == "error" else None)
        page.on("pageerror", lambda e, tab=tab: tab.errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r, tab=tab: tab.errors.append(f"request failed: {r.url} {r.failure}"))
        page.on("dialog", lambda d, tab=tab: (tab.errors.append(f"dialog: {d.message}"), d.dismiss()))
        page.on("response", lambda r, tab=tab: tab.errors.append(f"{r.status} for {r.url}")
                if r.status >= 400 and r.request.resource_type != "document" else None)
        if role != "anonymous":
            page.goto("/login")
            page.fill("input[name=name]", role)
            page.fill("input[name=password]", accounts[role][0])
            page.click("button:has-text('Log in')")
            page.wait_for_url(lambda url: "/login" not in url)
    yield tabs


@pytest.fixture(scope="module")
def axe():
    return axe_playwright.Axe()


def overflow(page) -> str:
    """"" when nothing is wider than the viewport; else the page's width and the widest elements."""
    return page.evaluate("""() => {
        const width = window.innerWidth, scroll = document.documentElement.scrollWidth;
        if (scroll <= width) return "";
        const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.classList.length ? "." + [...el.classList].join(".") : "");
        const clipped = el => {  // inside a box that scrolls or clips it
            for (let up = el.parentElement; up; up = up.parentElement)
                if (getComputedStyle(up).overflowX !== "visible" && up.getBoundingClientRect().right <= width + 0.5) return true;
            return false;
        };
        const wide = [...document.querySelectorAll("body *")].filter(el => el.getBoundingClientRect().right > width + 0.5 && !clipped(el))
            .filter(el => !el.parentElement || el.parentElement.getBoundingClientRect().right <= width + 0.5 || clipped(el.parentElement))
            .slice(0, 5).map(el => `${name(el)} (right ${Math.round(el.getBoundingClientRect().right)})`);
        return `scrollWidth ${scroll} > ${width}: ${wide.join(", ")}`;
    }""")


def serious(results) -> list[str]:
    """The serious and critical axe violations: rule id, impact and the first targets."""
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes'][:4]]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def restricted_leaks(role: str, html: str, images: list[str], aggregate: bool) -> list[str]:
    """What the page shows that ``role`` must not see (:mod:`scrutineer.crowd.access`)."""
    leaks = [f"<img> of restricted k{i}" for i in RESTRICTED if ROWS[i]["url"] in images]
    if role == "contributor":
        leaks += [f"{len(images)} <img>"] if images else []
        leaks += [f"URL of {r['key']}" for r in ROWS if r["url"] in html or r["url"].split("//")[1] in html]
        leaks += [f"'{word}'" for word in ("hash_match", BANK, "url_hashlist") if word in html and not aggregate]
    return leaks


@pytest.mark.parametrize(("spec", "role", "viewport"), list(_rows()))
def test_page(workspace, tabs, axe, spec: Page, role: str, viewport: str):
    ws, _ = workspace
    key = (spec.name, role, viewport)
    RESULTS[key] = "fail"
    tab = tabs[role]
    page = tab.page
    path = spec.path.format(**ws.flags)
    if viewport == "any":  # anonymous, on a page that is not /login: sent there
        answer = page.request.get(path, max_redirects=0)
        assert answer.status == 303 and answer.headers["location"] == "/login", (answer.status, answer.headers.get("location"))
        RESULTS[key] = "pass (303 to /login)"
        return
    if elsewhere := dict(spec.redirects).get(role):
        answer = page.request.get(path, max_redirects=0)
        assert answer.status == 303 and answer.headers["location"] == elsewhere, (answer.status, answer.headers.get("location"))
        RESULTS[key] = f"pass (303 to {elsewhere})"
        return
    page.set_viewport_size(VIEWPORTS[viewport])
    tab.clear()
    response = page.goto(path)
    expected = spec.status if role in spec.roles else 403
    assert response.status == expected, f"{path} as {role}: {response.status}, not {expected}"
    if spec.ready and expected == spec.status:
        page.wait_for_selector(spec.ready)
    page.screenshot(path=str(ws.shots / f"{spec.name}-{role}-{viewport}.png"), full_page=True)

    problems = [e for e in tab.errors if not (expected >= 400 and e.startswith("console error: Failed to load resource") and path in e)]
    problems += [f"overflow: {o}"] if (o := overflow(page)) else []
    problems += [f"axe {v}" for v in serious(axe.run(page))]
    if page.locator("h1").count() != 1:
        problems.append(f"{page.locator('h1').count()} <h1>")
    if expected == spec.status:
        text = page.inner_text("body")
        shows = spec.shows.get(role, ()) if isinstance(spec.shows, dict) else spec.shows
        problems += [f"does not show {s!r}" for s in shows if s not in text]
    images = [page.evaluate("img => img.src", img) for img in page.locator("img").element_handles()]
    problems += [f"restricted: {leak}" for leak in restricted_leaks(role, page.content(), images, spec.aggregate)]
    RESULTS[key] = "pass" if not problems else "FAIL: " + "; ".join(problems)
    assert not problems, "\n".join(problems)


def test_the_static_report_at_both_viewports(workspace, tabs, axe):
    """The report ``scrutineer report`` writes, opened as a file: no overflow, no serious axe violation."""
    ws, _ = workspace
    page = tabs["anonymous"].page
    problems = []
    for viewport, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        tabs["anonymous"].clear()
        page.goto(ws.report.as_uri())
        page.screenshot(path=str(ws.shots / f"static-report-file-{viewport}.png"), full_page=True)
        found = list(tabs["anonymous"].errors)
        found += [f"overflow: {o}"] if (o := overflow(page)) else []
        found += [f"axe {v}" for v in serious(axe.run(page))]
        RESULTS[("static-report", "file", viewport)] = "pass" if not found else "FAIL: " + "; ".join(found)
        problems += [f"{viewport}: {p}" for p in found]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", ["/flags/{listed}", "/samples/k{listed_sample}", "/samples?q={caption}"])
def test_a_contributor_cannot_tell_a_listed_sample_from_its_twin(workspace, tabs, path):
    """A contributor's view of the hash-listed sample (its flag, its page, a search that finds it)
    reads as that of an unlisted one with the same host and licence, once the ids, captions and
    times are set aside (issue 23, fault 4; issue 25, "What to build" 1)."""
    ws, _ = workspace
    page = tabs["contributor"].page
    texts = []
    for sample, flag in ((LISTED, ws.flags["listed"]), (TWIN, ws.flags["twin"])):
        response = page.goto(path.format(listed=flag, listed_sample=sample, caption=ROWS[sample]["caption"].replace(" ", "+")))
        assert response.status == 200
        text = page.inner_text("main")
        for word in (ROWS[sample]["caption"], ROWS[sample]["key"], f"Flag {flag}", f"#{flag}", f", {sample}"):
            text = text.replace(word, "…")
        texts.append(re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?", "(time)", text))
    assert texts[0] == texts[1]


def test_the_keyboard_focus_is_seen(workspace, tabs):
    """Tab from the top of a page: first the skip link, shown on screen, then each control, each
    with the app's focus outline (WCAG 2.2 2.4.7 and 2.4.11; crowd/static/app.css)."""
    page = tabs["maintainer"].page
    page.set_viewport_size(VIEWPORTS["390"])
    page.goto("/accounts")
    focused = "() => { const el = document.activeElement, box = el.getBoundingClientRect(), style = getComputedStyle(el); " \
              "return [el.tagName, el.textContent.trim(), box.left >= 0 && box.right <= innerWidth && box.top >= 0, style.outlineStyle, style.outlineWidth]; }"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == ["A", "Skip to the content", True, "solid", "3px"]
    for _ in range(3):  # the navigation's links, on the dark header
        page.keyboard.press("Tab")
        tag, _, shown, outline, width = page.evaluate(focused)
        assert (tag, shown, outline, width) == ("A", True, "solid", "3px")
