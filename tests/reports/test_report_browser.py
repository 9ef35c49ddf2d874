"""The watchdog report of a real-data run in a real browser: Debian's Chromium driven by
Playwright (the browser is never downloaded: MEASURED.md) opens the static report of two scans of
the LAION-400M sample (tests/data/metadata, PROVENANCE.md), some of its URLs on a hash list, and
the review app's /reports page of the same run, at a desktop's and a phone's width, and printed."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import CHROMIUM, scan, write_config

from scrutineer.core.banks import url_md5
from scrutineer.core.config import load_config
from scrutineer.crowd.store import CrowdStore
from scrutineer.reports.html import write_report
from scrutineer.testing.served import serve

pytest.importorskip("playwright.sync_api")
LAION = "laion400m_img2dataset_test_1000.parquet"
#: Viewport widths, CSS px: a laptop's and a phone's (issue 25: 1539 px wide at 1280, labels of ~5 px at 390).
WIDTHS = (1280, 390)
#: The smallest rendered chart label, CSS px (issue 25, "What to build" 5: legible at 390 px).
MIN_LABEL_PX = 11


@pytest.fixture(scope="module")
def report(tmp_path_factory, test_data):
    """The report of the second of two scans of the LAION sample (so it has a trend per reason)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    root = tmp_path_factory.mktemp("laion-report")
    shard = test_data / "metadata" / LAION
    urls = pq.read_table(shard, columns=["URL"])["URL"].to_pylist()
    (root / "urls.txt").write_text("".join(url_md5(u) + "\n" for u in urls[::97]))
    config = write_config(
        root,
        {
            "dataset": {"name": "laion400m-sample", "shards": [str(shard)], "format": "parquet", "columns": {"url": "URL", "caption": "TEXT"}},
            "banks": [{"name": "hotline", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}, "dedup": {}, "license_gaps": {}},
            "crowd": {"categories": {"copyright": {"description": "Used without the rightsholder's permission"}}},
        },
    )
    assert scan(config)["status"] == "completed"
    assert scan(config)["status"] == "completed"
    return write_report(load_config(config)), urls[::97], config


def opened(browser, url: Path | str, width: int, errors: list[str], base: str | None = None):
    page = browser.new_context(base_url=base, viewport={"width": width, "height": 900}).new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url.as_uri() if isinstance(url, Path) else url)
    return page


def label_sizes(page) -> list[float]:
    """The font size of every chart label and count, CSS px: HTML text, not an SVG scaled to fit,
    so the computed size is the rendered one."""
    return page.evaluate("Array.from(document.querySelectorAll('table.bars th, table.bars td.n')).map(e => parseFloat(getComputedStyle(e).fontSize))")


@pytest.mark.parametrize("width", WIDTHS)
def test_report_fits_the_viewport_with_legible_chart_labels(browser, report, width):
    path, *_ = report
    errors: list[str] = []
    page = opened(browser, path, width, errors)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("innerWidth")
    sizes = label_sizes(page)
    assert len(sizes) >= 10 and min(sizes) >= MIN_LABEL_PX
    assert page.locator(".headline .figures li").count() >= 6
    assert page.locator("table.sparklines svg.sparkline").count() >= 3  # two runs: a trend per reason
    assert errors == []
    page.close()


def test_report_prints_without_scroll_boxes_and_shows_no_listed_url(browser, report):
    """Printed (print media emulated): tables unclipped, links only to the report's own files, each
    followed by its name; no URL of the hash-listed samples appears in the page's text."""
    path, listed, _ = report
    errors: list[str] = []
    page = opened(browser, path, 1280, errors)
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('.scrutineer-report .scroll')).overflowX") == "visible"
    links = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => [a.className, a.getAttribute('href')])")
    assert links and all(kind == "file" and ":" not in href for kind, href in links)  # the CSV exports beside the report
    assert "(" + links[0][1] + ")" in page.evaluate("getComputedStyle(document.querySelector('a.file'), '::after').content")
    text = page.inner_text("body")
    assert not [u for u in listed if u.split("://", 1)[-1] in text]
    assert page.pdf(format="A4")[:4] == b"%PDF"
    assert errors == []
    page.close()


@pytest.fixture(scope="module")
def app(report):
    """The review app serving the same workspace, and a reviewer's name and password."""
    config = report[2]
    crowd = CrowdStore(load_config(config).crowd)
    password, _ = crowd.add_account("riley", "reviewer")
    crowd.close()
    with serve(config) as base:
        yield base, password


def test_app_reports_page_fits_both_widths_and_prints_without_navigation(browser, app):
    base, password = app
    for width in WIDTHS:
        errors: list[str] = []
        page = opened(browser, "/login", width, errors, base)
        page.fill("input[name=name]", "riley")
        page.fill("input[name=password]", password)
        page.click("text=Log in")
        page.wait_for_url(re.compile(r"/queue"))
        page.goto("/reports")
        assert page.locator("h1").count() == 1 and page.locator(".headline .figures li").count() >= 6
        assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("innerWidth")
        assert min(label_sizes(page)) >= MIN_LABEL_PX
        page.emulate_media(media="print")
        assert not page.locator("header nav").is_visible()
        assert page.locator("table.bars").first.is_visible()
        assert errors == []
        page.close()
