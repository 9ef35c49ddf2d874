"""The fetcher's reads of policy files (robots.txt, ai.txt, tdmrep.json) from hostile or broken
hosts of the fixture web (a real aiohttp server in its own process): an unreadable robots.txt makes
its URLs ``transient``, never ``blocked`` (issue 23, fault 8); an unreadable file is never cached;
a file is read up to 500 KiB (RFC 9309 §2.5).

No test waits on the clock: the dripping robots.txt sends a byte a minute, and the fetcher gives
up after ``read_timeout`` (2 s) without a byte.
"""

from __future__ import annotations

import asyncio

import pytest

from scrutineer.core.config import FetchConfig
from scrutineer.observing.fetch import Fetcher
from scrutineer.observing.policy_files import MAX_BYTES, PolicyCache
from scrutineer.testing.fixture_web import FixtureWeb

IMAGE = "/img/synthetic-00000.jpg"
DRIP, REFUSED_REDIRECT, ERROR, MISSING, PLAIN, BIG = (f"127.0.7.{i}" for i in range(1, 7))


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    big = tmp_path_factory.mktemp("big")
    # 600 KiB: its first 500 KiB disallow /noai/ to Scrutineer, the rest /private/ (routes of the fixture web serving the image)
    filler = "# " + "x" * 97 + "\n"
    (big / "robots.txt").write_text("User-agent: Scrutineer\nDisallow: /noai/\n" + filler * 6000 + "Disallow: /private/\n")
    (big / "tdmrep.json").write_text('[{"location": "/", "tdm-reservation": 1, "padding": "' + "x" * 600_000 + '"}]')
    (big / "ai.txt").write_text("User-agent: *\nDisallow: /noai/\n" + filler * 6000 + "Disallow: /private/\n")
    behaviours = {
        DRIP: {"/robots.txt": "drip=60", "/ai.txt": "drip=60"},
        REFUSED_REDIRECT: {"/robots.txt": "redirect=http://127.0.0.1:9/robots.txt"},  # loopback outside the allowed network
        ERROR: {"/robots.txt": "status=503"},
        MISSING: {"/robots.txt": "status=404"},
    }
    with FixtureWeb([DRIP, REFUSED_REDIRECT, ERROR, MISSING, PLAIN, BIG], synthetic=1, sites={BIG: big}, behaviours=behaviours) as server:
        yield server


def cfg(**overrides) -> FetchConfig:
    base = {"allowed_networks": ["127.0.7.0/24"], "retries": 0, "connect_timeout": 2, "read_timeout": 2}
    return FetchConfig(**{**base, **overrides})


def fetch(urls: list[str], cache: PolicyCache | None = None, config: FetchConfig | None = None):
    async def run():
        async with Fetcher(config or cfg(), policy_cache=cache) as f:
            results = await asyncio.gather(*(f.fetch(u) for u in urls))
            return results, f.new_policy_files()

    return asyncio.run(run())


def url(web: FixtureWeb, host: str, path: str = IMAGE) -> str:
    return f"http://{host}:{web.port}{path}"


def test_an_unreadable_robots_txt_makes_its_urls_transient_not_blocked(web):
    """Fault 8 (issue 23): a robots.txt that drips past ``read_timeout``, answers 503, or redirects
    where the SSRF guard refuses to go was read as "disallow all", and the host's images were
    recorded ``blocked`` for good. RFC 9309 §2.3.1.4 has the crawler not fetch them; they are
    ``transient``, so the next run or ``recheck`` tries again."""
    (drip, refused, error), reads = fetch([url(web, DRIP), url(web, REFUSED_REDIRECT), url(web, ERROR)])
    for result, reason in ((drip, "ReadTimeout"), (refused, "SSRF guard"), (error, "HTTP 503")):
        assert result.status == "transient", (result.status, result.error)
        assert result.error.startswith("robots.txt unreadable: ") and reason in result.error
    robots = {r.origin.split("//")[1].split(":")[0]: r for r in reads if r.name == "robots.txt"}
    assert {host: r.status for host, r in robots.items()} == dict.fromkeys([DRIP, REFUSED_REDIRECT, ERROR], "transient")
    assert all(r.error and r.text is None for r in robots.values())  # a per-host status with its reason


def test_a_robots_txt_that_was_read_blocks_what_it_disallows_and_a_4xx_allows_all(web):
    missing, allowed, disallowed = fetch([url(web, MISSING), url(web, PLAIN), url(web, PLAIN, "/private/synthetic-00000.jpg")])[0]
    assert missing.status == allowed.status == "alive"  # RFC 9309 §2.3.1.3: 4xx, no restriction
    assert disallowed.status == "blocked" and disallowed.error == "disallowed by robots.txt"


def test_an_unreadable_policy_file_is_recorded_but_not_cached(web, tmp_path):
    """A transient read is not kept for ``policy_ttl``: the next fetcher reads the file again."""
    cache = PolicyCache(tmp_path, ttl=3600)
    web.reset()
    for _ in range(2):
        (result,), reads = fetch([url(web, DRIP)], cache)
        assert result.status == "transient"
        assert {r.name: r.status for r in reads if r.name == "robots.txt"} == {"robots.txt": "transient"}
    assert web.stats()["by_host"][DRIP]["/robots.txt"] == 2
    origin = f"http://{DRIP}:{web.port}"
    assert cache.get(origin, "robots.txt") is None

    async def ai_txt():
        async with Fetcher(cfg(), policy_cache=cache) as f:
            return await f.policy_file(origin, "ai.txt")

    read = asyncio.run(ai_txt())
    assert read.status == "transient" and "ReadTimeout" in read.error and cache.get(origin, "ai.txt") is None


def test_a_policy_file_is_read_up_to_500_kib(web):
    """RFC 9309 §2.5: a crawler must parse at least the first 500 KiB of a robots.txt, and may stop
    there. robots.txt and ai.txt are read to the last line break before the limit; a tdmrep.json
    over it cannot be read in part: ``too_large``, which the detector reports as ``optout.invalid``
    naming the limit (tests/flows/test_optouts_scan.py)."""
    (early, late), reads = fetch([url(web, BIG, "/noai/synthetic-00000.jpg"), url(web, BIG, "/private/synthetic-00000.jpg")])
    assert early.status == "blocked" and late.status == "alive"
    robots = next(r for r in reads if r.name == "robots.txt")
    assert robots.status == "alive" and robots.bytes <= MAX_BYTES and robots.text.endswith("\n") and "first" in robots.error

    async def read_all():
        async with Fetcher(cfg()) as f:
            origin = f"http://{BIG}:{web.port}"
            return {name: await f.policy_file(origin, name) for name in ("ai.txt", "tdmrep.json")}

    files = asyncio.run(read_all())
    assert files["ai.txt"].status == "alive" and files["ai.txt"].bytes <= MAX_BYTES
    assert files["tdmrep.json"].status == "too_large" and files["tdmrep.json"].text is None
    assert files["tdmrep.json"].error == f"body larger than {MAX_BYTES:,} bytes (the policy file limit)"
