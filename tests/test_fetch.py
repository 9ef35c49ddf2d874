"""The fetcher against the fixture web server (a real aiohttp server in its own process)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from urllib.parse import quote

import pytest

from scrutineer.core.config import FetchConfig
from scrutineer.core.errors import NetworkDownError
from scrutineer.flows.content import check_urls
from scrutineer.observing.fetch import Fetcher, refused_address
from scrutineer.observing.hashing import hash_fetched
from scrutineer.observing.optouts.headers import MAX_VALUE, x_robots_tag
from scrutineer.testing.fixture_web import FixtureWeb

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
SLOW_ROBOTS = "127.0.0.5"  # its robots.txt answers after 3 s


@pytest.fixture(scope="module")
def web(test_data):
    with FixtureWeb([*HOSTS, SLOW_ROBOTS], images=[test_data / "images" / "skimage"], slow_robots={SLOW_ROBOTS: 3}) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_counters(web):
    web.reset()


def cfg(**overrides) -> FetchConfig:
    base = {"allow_private_networks": True, "retries": 2, "backoff": 0.05, "connect_timeout": 2, "read_timeout": 5}
    return FetchConfig(**{**base, **overrides})


def fetch_all(config: FetchConfig, urls: list[str]):
    async def run():
        async with Fetcher(config) as f:
            return await asyncio.gather(*(f.fetch(u) for u in urls))

    return asyncio.run(run())


def test_status_classes(web, test_data):
    urls = {
        "alive": web.url("/img/coins.png"),
        "dead-410": web.url("/gone/coins.png"),
        "dead-404": web.url("/missing/coins.png"),
        "not_image": web.url("/parking/coins.png"),
        "moved-host": web.url("/redirect?to=" + web.url("/img/coins.png", host=1)),
        "moved-html": web.url("/redirect?to=" + web.url("/parking/x", host=0)),
        "blocked-robots": web.url("/private/coins.png"),
        "invalid": "ftp://127.0.0.2/coins.png",
        "transient": web.url("/error/coins.png"),
        "nxdomain": "http://no-such-host.invalid/a.jpg",
    }
    got = dict(zip(urls, fetch_all(cfg(), list(urls.values()))))
    assert {k: r.status for k, r in got.items()} == {
        "alive": "alive",
        "dead-410": "dead",
        "dead-404": "dead",
        "not_image": "not_image",
        "moved-host": "moved",
        "moved-html": "moved",
        "blocked-robots": "blocked",
        "invalid": "invalid",
        "transient": "transient",
        "nxdomain": "dead",
    }
    assert hashlib.sha256(got["alive"].body).digest() == hashlib.sha256((test_data / "images/skimage/coins.png").read_bytes()).digest()
    assert got["moved-host"].final_url == web.url("/img/coins.png", host=1)
    assert got["transient"].attempts == 3  # first try + 2 retries
    assert "NXDOMAIN" in got["nxdomain"].error
    requests = web.stats()["by_host"]["127.0.0.2"]
    assert "/private/coins.png" not in requests  # robots.txt was read and obeyed
    assert requests["/robots.txt"] == 1  # once per origin


def test_x_robots_tag_is_recorded(web):
    (r,) = fetch_all(cfg(), [web.url("/noai/coins.png")])
    assert r.status == "alive" and r.x_robots_tag == "noai, noimageai"


def test_user_agent_names_scrutineer_and_the_contact(web):
    config = cfg(contact="mailto:abuse@example.org")
    assert "Scrutineer" in config.user_agent_header and "mailto:abuse@example.org" in config.user_agent_header


def test_per_domain_concurrency_is_never_exceeded(web):
    urls = [web.url(f"/slow/coins.png?seconds=0.2&n={i}", host=i % 2) for i in range(24)]
    results = fetch_all(cfg(per_domain=3, concurrency=64), urls)
    assert {r.status for r in results} == {"alive"}
    in_flight = web.stats()["max_in_flight"]
    # 127.0.0.2 also answers the test's own /_reset and /_stats calls, which are never concurrent with the run
    assert in_flight["127.0.0.2"] <= 3 and in_flight["127.0.0.3"] <= 3
    assert max(in_flight.values()) == 3  # the limit was reached, so it was what held requests back


def test_min_interval_spaces_requests_to_a_domain(web):
    urls = [web.url(f"/img/coins.png?n={i}", host=2) for i in range(4)]
    fetch_all(cfg(min_interval=0.3), urls)
    times = sorted(t for host, path, t in web.stats()["log"] if host == "127.0.0.4" and path.startswith("/img/"))
    assert len(times) == 4
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.25  # server clock; some scheduling slack


def test_retry_after_is_respected(web):
    started = time.time()
    (r,) = fetch_all(cfg(), [web.url("/busy/coins.png?times=1")])
    assert r.status == "alive" and r.attempts == 2
    times = [t for _, path, t in web.stats()["log"] if path.startswith("/busy/")]
    assert len(times) == 2 and times[1] - times[0] >= 0.95  # Retry-After: 1
    assert time.time() - started >= 1.0


def test_retry_after_beyond_max_backoff_gives_up_at_once_and_pauses_nothing(web):
    config = cfg(max_backoff=5, total_timeout=2, retries=1)

    async def run():
        async with Fetcher(config) as f:
            return await f.fetch(web.url("/busy/coins.png?times=5&retry_after=3600")), await f.fetch(web.url("/img/coins.png"))

    busy, same_domain = asyncio.run(run())
    assert busy.status == "transient" and busy.attempts == 1 and "max_backoff" in busy.error
    assert same_domain.status == "alive"  # not held back for an hour


def test_a_429_pauses_the_domain_that_answered_it(web, monkeypatch):
    # 127.0.0.2 redirects to 127.0.0.3, which answers 429 with Retry-After: 3
    busy = web.url("/redirect?to=" + quote(web.url("/busy/coins.png?times=1&retry_after=3", host=1)))
    pause = Fetcher._pause_domain

    async def run():
        paused, until = asyncio.Event(), []

        def pause_and_tell(self, url: str, seconds: float) -> None:  # the 429 has come back: the fetcher pauses its domain
            pause(self, url, seconds)
            until.append(time.monotonic() + seconds)
            paused.set()

        monkeypatch.setattr(Fetcher, "_pause_domain", pause_and_tell)
        async with Fetcher(cfg(retries=1)) as f:
            first = asyncio.ensure_future(f.fetch(busy))
            await asyncio.wait_for(paused.wait(), 60)  # the deadline only bounds a hang
            await f.fetch(web.url("/img/coins.png", host=0))
            redirecting_done_within_the_pause = time.monotonic() < until[0]
            await f.fetch(web.url("/img/coins.png", host=1))
            return await first, redirecting_done_within_the_pause

    first, redirecting_done_within_the_pause = asyncio.run(run())
    assert first.attempts == 2
    assert redirecting_done_within_the_pause  # the redirecting domain was not paused: it was served while the other one was
    log = web.stats()["log"]
    answered_429 = min(t for _, path, t in log if path.startswith("/busy/"))
    served = {host: t for host, path, t in log if path.startswith("/img/")}
    assert served["127.0.0.3"] - answered_429 >= 2.9  # the answering one was paused, for Retry-After's 3 s (server clock)


def test_a_slow_robots_txt_neither_breaks_the_run_nor_stalls_other_hosts(web):
    # Each first attempt on the slow host times out (2 s) waiting for robots.txt (3 s); the retries
    # wait for the same robots.txt load, which must survive the first waiters' timeouts.
    slow = [web.url(f"/img/coins.png?n={i}", host=3) for i in range(3)]
    fast = web.url("/img/coins.png", host=1)
    config = cfg(total_timeout=2, retries=1)

    async def inline(url: str, body: bytes):
        return hash_fetched(body, config)

    async def run():
        async with Fetcher(config) as f:
            return await check_urls(f, [*slow, fast], config, inline)

    checked = asyncio.run(run())
    assert {u: c.last.status for u, c in checked.items()} == dict.fromkeys([*slow, fast], "alive")
    assert {c.last.attempts for u, c in checked.items() if u in slow} == {2}
    assert checked[fast].last.attempts == 1  # not held up by the slow host: its first attempt did not time out
    assert web.stats()["by_host"][SLOW_ROBOTS]["/robots.txt"] == 1  # one load, shared by every waiter


def test_a_response_header_over_aiohttps_limit_is_transient_and_not_retried_at_once(web):
    (r,) = fetch_all(cfg(retries=2), [web.url("/big-header/coins.png")])  # 9000 bytes > 8190
    assert r.status == "transient" and "8190 bytes" in r.error and r.attempts == 1


def test_one_content_coding_is_decoded(web, test_data):
    (r,) = fetch_all(cfg(), [web.url("/encoded/coins.png?coding=gzip")])
    assert r.status == "alive" and r.body == (test_data / "images/skimage/coins.png").read_bytes()


def test_stacked_content_codings_are_never_decoded(web):
    """Two gzip layers over 64 MiB of zeros (~100 bytes on the wire; a few KB for gigabytes): a
    decompression bomb that httpx would decode whole, a layer at a time. Refused before any byte
    is decoded, and not retried (the server would send the same)."""
    (r,) = fetch_all(cfg(), [web.url("/encoded/zeros?mib=64&coding=gzip&coding=gzip")])
    assert r.status == "transient" and r.attempts == 1 and r.body is None
    assert r.error == "Content-Encoding stacks 2 content codings (gzip, gzip); at most one is decoded"


def test_a_body_that_does_not_decode_is_transient_and_says_why(web):
    (r,) = fetch_all(cfg(), [web.url("/encoded/coins.png?coding=raw")])  # declared gzip, sent as it is
    assert r.status == "transient" and r.attempts == 1
    assert r.error.startswith("the body does not decode as its Content-Encoding gzip says: ") and "header" in r.error


def test_a_repeated_header_is_kept_to_the_readers_bound(web):
    """120 X-Robots-Tag headers of 8,000 characters join to ~960,000: kept as the first MAX_VALUE
    characters and "…", still too long for the reader, which calls it invalid as before."""
    (r,) = fetch_all(cfg(), [web.url("/big-header/coins.png?name=X-Robots-Tag&bytes=8000&repeat=120")])
    assert r.status == "alive" and r.x_robots_tag == ", ".join(["x" * 8000] * 120)[:MAX_VALUE] + "…"  # httpx joins a repeated header
    signal = x_robots_tag(r.x_robots_tag, frozenset({"noai"}), frozenset({"scrutineer"}))
    assert signal.reason == "optout.invalid" and signal.evidence["value"] == "x" * 200 + "…"


@pytest.mark.parametrize("respect_robots", [True, False])
def test_urls_the_http_client_refuses_are_invalid(web, respect_robots):
    config = cfg(respect_robots=respect_robots)
    with_credentials = web.url("/img/coins.png", host=1).replace("://", "://user:secret@")
    direct, redirected = fetch_all(config, [with_credentials, web.url("/redirect?to=" + with_credentials)])
    assert direct.status == redirected.status == "invalid" and "credentials" in direct.error
    assert "127.0.0.3" not in web.stats()["by_host"]  # the credentials were never sent
    (r,) = fetch_all(config, [web.url("/img/co\x00ins.png")])
    assert r.status == "invalid" and "non-printable" in r.error


def test_ssrf_guard_refuses_loopback_by_default(web):
    (r,) = fetch_all(FetchConfig(), [web.url("/img/coins.png")])
    assert r.status == "blocked" and "SSRF" in r.error
    assert web.stats()["requests"] == 0  # not even robots.txt was asked


def test_ssrf_guard_refuses_a_redirect_to_a_private_address(web):
    # 127.0.0.2 stands for a public host (allowed explicitly); it redirects to 127.0.0.3
    target = web.url("/img/coins.png", host=1)
    (r,) = fetch_all(FetchConfig(allowed_networks=["127.0.0.2/32"]), [web.url("/redirect?to=" + target)])
    assert r.status == "blocked" and "SSRF" in r.error
    assert "127.0.0.3" not in web.stats()["by_host"]


def test_refused_addresses():
    for ip in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1", "240.0.0.1",
               "100.64.0.1", "100.100.100.200", "100.127.255.254",  # shared address space (RFC 6598): carrier NAT, cloud metadata
               "2002:7f00:1::", "2002:a01:203::", "224.0.0.1", "2001:db8::1"]:  # 6to4 of 127.0.0.1 and 10.1.2.3; multicast; documentation
        assert refused_address(ip), ip
    for ip in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "100.128.0.1", "2002:5db8:d70e::"]:  # 6to4 of 93.184.215.14
        assert not refused_address(ip), ip


def test_network_cut_mid_run_opens_the_breaker(test_data):
    server = FixtureWeb(HOSTS, images=[test_data / "images" / "skimage"])
    server.start()
    urls = [server.url(f"/slow/coins.png?seconds=0.5&n={i}", host=i % 3) for i in range(60)]
    config = cfg(per_domain=2, retries=1, breaker={"failures": 6, "hosts": 3})

    async def run():
        async with Fetcher(config) as f:
            tasks = [asyncio.ensure_future(f.fetch(u)) for u in urls]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)  # one completes, then the network goes away
            server.cut()
            return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(run())
    finally:
        server.stop()
    down = [r for r in results if isinstance(r, NetworkDownError)]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert down, "the breaker never opened"
    assert "inconclusive" in str(down[0])
    assert any(r.status == "alive" for r in done)
    assert not any(r.status == "dead" for r in done)
