"""A polite, guarded image fetcher (DESIGN.md "Fetching").

httpx's async API over aiohttp's connection pool (``httpx-aiohttp``): on these machines httpx's
default transport costs ~5 ms of client CPU per request against ~0.3 ms for aiohttp's
(MEASURED.md; ``bench/fetch_hash.py``'s transports leg re-measures both). Politeness and safety:

- at most ``concurrency`` requests in flight, ``per_domain`` per registrable domain, and
  ``min_interval`` seconds between two request starts on one registrable domain; the shard tasks
  of a scan that fetch at once split the per-domain limits between them (``share``), whichever
  processes or Dask workers they run in;
- retries of transient failures (429, 408, 5xx, timeouts, resets) with exponential backoff and
  full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015); ``Retry-After``
  (RFC 9110 §10.2.3) is honoured and pauses the whole registrable domain of the hop that sent it;
  a wait longer than ``max_backoff`` seconds gives up at once (``transient``) and pauses nothing;
- robots.txt (RFC 9309, read by :class:`~scrutineer.observing.optouts.robots.RobotsPolicy`) for the
  configured product token: a file that was read and disallows the URL makes it ``blocked``; 4xx
  means allow all (§2.3.1.3); a file that could not be read (a timeout, a connection failure, 5xx,
  a redirect refused or past ``max_redirects``: §2.3.1.4's "unreachable", which disallows all)
  makes the URL ``transient``, its error naming robots.txt and why, so a later run or ``recheck``
  tries again. It is loaded once per origin (and the DNS check once per host) for every request
  waiting on it, and one request's timeout never cancels that load; it is one of the origin's
  policy files (:meth:`Fetcher.policy_file`, with ai.txt and tdmrep.json);
- at most ``max_redirects`` (≤ 5) redirects, each hop checked again;
- SSRF guard: only http/https, and hosts resolving to an address that is not globally reachable
  (:func:`refused_address`) are refused unless ``allow_private_networks``; the check runs before
  each hop and again in the resolver aiohttp connects with, so a DNS answer that changes between
  the two cannot slip through;
- at most one content coding: a response whose ``Content-Encoding`` stacks two or more (``gzip,
  gzip``) is ``transient`` and never decoded. httpx decodes a stack with no output limit, so a
  5 KB response of two gzip layers grew one process by ~6 GB; one layer grows a 16 KiB read by at
  most ~1,032x (deflate's limit) before ``max_bytes`` stops the read. urllib3 2.6 caps its
  decoder chain at 5 for the same reason (CVE-2025-66418), but two layers already make a bomb;
  real servers apply one. A body that does not decode as its coding says is ``transient`` too,
  not retried;
- a circuit breaker: connection-level failures spreading across many hosts mean the network is
  down, not the links; :class:`~scrutineer.core.errors.NetworkDownError` is raised and nothing may be called dead.

Every result is a :class:`Fetched` with one status class: ``alive``, ``dead`` (404, 410,
NXDOMAIN), ``moved`` (redirected to another registrable domain, or to HTML where an image was
expected), ``not_image`` (a non-image body), ``too_large`` (a body over ``max_bytes``, or, once
hashed, an image over ``max_pixels``), ``transient``,
``blocked`` (robots.txt, or 401/403/451) or ``invalid`` (unparsable URL, not http/https, a
URL carrying credentials, or one the HTTP client refuses). The body is kept in memory only, for
the hashers; it is never written or logged.

Policy files (:meth:`Fetcher.policy_file`) are read with bounds of their own: at most
``total_timeout * (retries + 1)`` seconds for the whole read (every attempt a URL waiting on its
robots.txt makes: a longer read would serve none of them; redirects followed, robots.txt not
consulted), and
:data:`~scrutineer.observing.policy_files.MAX_BYTES` (500 KiB, RFC 9309 §2.5) of body, not ``max_bytes``:
a larger robots.txt or ai.txt is read to the last whole line before the limit, its error saying
so; a larger tdmrep.json is ``too_large`` (one JSON value cannot be read in part). A read that
says what the origin holds (a 2xx body, or a 4xx) is kept by the policy cache for ``policy_ttl``
seconds across fetchers; any other outcome is ``transient``, recorded with its reason, never
cached, and read again by the next shard task or run (within one fetcher, by the next request
only after a connection-level failure, which is quick to find again). The response headers of the opt-out signals
(:data:`OPT_OUT_HEADERS`) are kept with it, each (and ``Content-Type``) to at most
:data:`~scrutineer.observing.optouts.headers.MAX_VALUE` characters and "…": a longer value is one
no reader reads (each calls it too long), and a server repeating a header 100 times would
otherwise store ~1 MB for every URL.

:meth:`Fetcher.fetch` raises nothing but :class:`~scrutineer.core.errors.NetworkDownError`: every transport error is a
status. Connection failures and timeouts are ``transient``; so is a response aiohttp refuses to
parse (a header line over its 8190-byte limit, more than 128 headers, a malformed status line),
since a server may answer better later, but it is not retried at once: the same server would
send the same response. A URL the HTTP client refuses (non-printable characters) is ``invalid``,
and so is a URL, or a redirect target, carrying ``user:password@``: those credentials are never
sent (httpx would send them as Basic authorization, which aiohttp then rejects anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from scrutineer.core.config import FetchConfig
from scrutineer.core.errors import NetworkDownError, RefusedAddress
from scrutineer.observing.optouts.headers import MAX_VALUE
from scrutineer.observing.optouts.robots import RobotsPolicy
from scrutineer.observing.policy_files import (
    MAX_BYTES,
    READ_IN_PART,
    PolicyCache,
    PolicyFile,
    policy_file,
    policy_url,
)
from scrutineer.observing.policy_files import origin as url_origin
from scrutineer.samples.domains import host_and_domain, registrable_domain

#: Response headers kept for the opt-out signals (``x_robots_tag`` is the header X-Robots-Tag).
OPT_OUT_HEADERS = ("x_robots_tag", "tdm_reservation", "tdm_policy", "content_usage", "link")
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
T = TypeVar("T")


@dataclass
class Fetched:
    """One URL's outcome. ``elapsed`` is seconds over every attempt; ``bytes`` the body length.
    ``body`` lives only in memory, for the hashers, and is dropped once hashed."""

    url: str
    status: str
    fetched_at: datetime
    http_status: int | None = None
    final_url: str | None = None
    content_type: str | None = None
    bytes: int | None = None
    elapsed: float = 0.0
    attempts: int = 0
    error: str | None = None
    x_robots_tag: str | None = None
    tdm_reservation: str | None = None
    tdm_policy: str | None = None
    content_usage: str | None = None
    link: str | None = None
    body: bytes | None = field(default=None, repr=False)
    retry_after: float | None = field(default=None, repr=False)
    connection_failed: bool = field(default=False, repr=False)
    retry: bool = field(default=True, repr=False)  # False: another attempt now would get the same answer


def refused_address(ip: str, allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()) -> bool:
    """True for addresses an internet crawler must not reach, unless inside one of the ``allowed``
    networks: loopback, private, link-local, reserved, multicast, unspecified, and any other
    address Python's ``is_global`` says is not globally reachable (the IANA special-purpose
    address registries, RFC 6890: the shared address space 100.64.0.0/10 of RFC 6598, which cloud
    metadata services and carrier NAT use, among them). An IPv6 address that carries an IPv4 one
    (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002:aabb:ccdd::``, RFC 3056) is checked as that IPv4."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        addr = addr.ipv4_mapped or addr.sixtofour or addr
    if any(addr in net for net in allowed):
        return False
    return (addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_reserved or addr.is_multicast or addr.is_unspecified
            or not addr.is_global)


class GuardedResolver(aiohttp.ThreadedResolver):
    """aiohttp's resolver, refusing answers the SSRF guard forbids (so the address connected to
    is the address checked)."""

    def __init__(self, allowed: tuple = ()) -> None:
        super().__init__()
        self.allowed = allowed

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        answers = await super().resolve(host, port, family)
        for a in answers:
            if refused_address(a["host"], self.allowed):
                raise RefusedAddress(f"{host} resolves to a refused address")
        return answers


def _kept(value: str | None) -> str | None:
    """A response header's value as kept: at most :data:`MAX_VALUE` characters and "…" (so a cut
    value stays longer than any reader reads)."""
    return value if value is None or len(value) <= MAX_VALUE else value[:MAX_VALUE] + "…"


def _connection_level(e: httpx.HTTPError) -> bool:
    """Whether a request failed before any HTTP exchange: refused, reset, disconnected or not
    resolved. httpx-aiohttp maps some of these to ``httpx.ConnectTimeout``, so the aiohttp cause
    decides; a genuine timeout is not connection-level."""
    cause = e.__cause__
    if isinstance(cause, aiohttp.ClientConnectionError):
        return not isinstance(cause, (aiohttp.ServerTimeoutError, TimeoutError))
    return isinstance(e, httpx.ConnectError)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or HTTP-date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class Fetcher:
    """Fetch URLs politely; an async context manager (one per event loop).

    Example::

        async with Fetcher(cfg.fetch) as f:
            result = await f.fetch("https://example.com/a.jpg")
    """

    def __init__(self, cfg: FetchConfig, share: int = 1, policy_cache: PolicyCache | None = None) -> None:
        """
        Args:
            share: how many fetchers share the politeness limits at once (a scan's shard tasks
                running together, in one process or on several Dask workers). Each takes
                ``per_domain // share`` requests in flight per registrable domain and spaces its
                request starts to a domain ``min_interval * share`` seconds apart, so that together
                they keep to ``per_domain`` and ``min_interval``. At most ``per_domain``
                (flows/scan.py checks it before a scan starts).
            policy_cache: where policy files (robots.txt among them) read within ``policy_ttl``
                are taken from, and new reads kept; None: each fetcher reads them itself.
        """
        self.cfg = cfg
        self._per_domain = cfg.per_domain // share
        self._min_interval = cfg.min_interval * share
        self._global = asyncio.Semaphore(cfg.concurrency)
        self._domains: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._host_checks: dict[str, asyncio.Future] = {}
        self._robots: dict[str, asyncio.Future] = {}
        self._policies: dict[str, asyncio.Future] = {}
        self._new_reads: list[PolicyFile] = []  # since the last new_policy_files()
        self._policy_cache = policy_cache
        self._failures: deque[str] = deque(maxlen=cfg.breaker.failures)
        self._allowed = tuple(ipaddress.ip_network(n) for n in cfg.allowed_networks)
        self.network_down = False

    async def __aenter__(self) -> Self:
        resolver = None if self.cfg.allow_private_networks else GuardedResolver(self._allowed)
        connector = aiohttp.TCPConnector(limit=self.cfg.concurrency, limit_per_host=0, resolver=resolver, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector)
        self._client = httpx.AsyncClient(
            transport=AiohttpTransport(client=self._session),
            headers={"User-Agent": self.cfg.user_agent_header, "Accept": "image/*,*/*;q=0.5"},
            timeout=httpx.Timeout(connect=self.cfg.connect_timeout, read=self.cfg.read_timeout, write=None, pool=None),
            follow_redirects=False,
        )
        return self

    async def __aexit__(self, *exc) -> None:
        for task in (*self._robots.values(), *self._policies.values(), *self._host_checks.values()):
            task.cancel()  # a shared load outlives its waiters, not the fetcher
        await self._client.aclose()
        await self._session.close()

    # --- public ---------------------------------------------------------------------------

    async def fetch(self, url: str) -> Fetched:
        """Fetch one URL, retrying transient failures up to ``retries`` times, each after a
        backoff or the response's ``Retry-After``; if that wait would exceed ``max_backoff``
        seconds, the transient result is returned at once.

        Raises:
            NetworkDownError: the circuit breaker is open (before or during this fetch).
        """
        started = time.monotonic()
        fetched_at = datetime.now(UTC)
        attempt = 0
        while True:
            if self.network_down:
                raise NetworkDownError(self._breaker_message())
            attempt += 1
            try:
                async with asyncio.timeout(self.cfg.total_timeout):
                    result = await self._attempt(url)
            except TimeoutError:
                result = Fetched(url, "transient", fetched_at, error=f"no complete response within {self.cfg.total_timeout:g} s")
            self._record_connection(url, result)
            result.fetched_at, result.attempts = fetched_at, attempt
            result.elapsed = time.monotonic() - started
            if result.status != "transient" or result.http_status not in RETRY_STATUSES | {None} or not result.retry or attempt > self.cfg.retries:
                return result
            delay = self.cfg.backoff * 2 ** (attempt - 1) * random.random()
            if result.retry_after is not None:
                delay = result.retry_after
            if delay > self.cfg.max_backoff:
                result.error = f"{result.error}; retry wait of {delay:g} s exceeds max_backoff ({self.cfg.max_backoff:g} s)"
                return result
            if result.retry_after is not None:
                self._pause_domain(result.final_url, delay)
            await asyncio.sleep(delay)

    # --- one attempt, following redirects ----------------------------------------------------

    async def _attempt(self, url: str) -> Fetched:
        """One attempt at ``url``: follow its redirects, then classify what the last hop served."""
        result, redirects = await self._follow(url, obey_robots=self.cfg.respect_robots)
        if result.status == "alive":
            kind = (result.content_type or "").split(";")[0].strip().lower()
            if redirects and (host_and_domain(result.final_url)[1] != host_and_domain(url)[1] or not kind.startswith("image/")):
                result.status = "moved"
            elif kind and not kind.startswith("image/") and kind != "application/octet-stream":
                result.status = "not_image"
        return result

    async def _follow(self, url: str, obey_robots: bool, policy: str | None = None) -> tuple[Fetched, int]:
        """GET ``url``, following up to ``max_redirects`` redirects. Every hop is checked: http(s)
        only, the SSRF guard and DNS, and robots.txt when ``obey_robots``. Returns the last hop's
        result and how many redirects were followed. ``policy``: the policy file being read
        (its body limits apply, see :meth:`_get`)."""
        now = datetime.now(UTC)
        current = url
        for hop in range(self.cfg.max_redirects + 1):
            try:
                parts = urlsplit(current)
                host = (parts.hostname or "").lower()
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError as e:
                return Fetched(url, "invalid", now, final_url=current, error=f"unparsable URL: {e}"), hop
            if parts.scheme not in ("http", "https") or not host:
                return Fetched(url, "invalid", now, final_url=current, error="not an http(s) URL with a host"), hop
            if "@" in parts.netloc:
                return Fetched(url, "invalid", now, final_url=current, error="URL carries credentials (user:password@)"), hop
            refusal = await self._check_host(host)
            if refusal is not None:
                status, error = refusal
                return Fetched(url, status, now, final_url=current, error=error, connection_failed=status == "transient"), hop
            if obey_robots and (refusal := await self._robots_refusal(current)) is not None:
                return Fetched(url, fetched_at=now, final_url=current, **refusal), hop
            result = await self._get(url, current, registrable_domain(host), policy)
            if result.http_status in REDIRECT_STATUSES and result.final_url:
                current = result.final_url
                continue
            return result, hop
        error = f"more than {self.cfg.max_redirects} redirects"
        return Fetched(url, "transient", now, final_url=current, error=error), self.cfg.max_redirects

    async def _get(self, url: str, current: str, domain: str, policy: str | None = None) -> Fetched:
        """One GET of ``current`` (for ``url``), classified. The body is read up to ``max_bytes``
        (``too_large`` beyond); for a policy file (``policy``: its name), up to
        :data:`~scrutineer.observing.policy_files.MAX_BYTES`, beyond which a file of
        :data:`~scrutineer.observing.policy_files.READ_IN_PART` keeps its first part to the last line break
        (RFC 9309 §2.5) and another is ``too_large``."""
        now = datetime.now(UTC)
        cap = MAX_BYTES if policy else self.cfg.max_bytes
        limit = f"{cap:,} bytes ({'the policy file limit' if policy else 'fetch.max_bytes'})"
        async with self._slot(domain):
            try:
                async with self._client.stream("GET", current) as r:
                    base = {
                        "http_status": r.status_code,
                        "final_url": current,
                        "content_type": _kept(r.headers.get("content-type")),
                        **{name: _kept(r.headers.get(name.replace("_", "-"))) for name in OPT_OUT_HEADERS},
                    }
                    if r.is_redirect:
                        location = r.headers.get("location")
                        if not location:
                            return Fetched(url, "transient", now, error="redirect without Location", **base)
                        return Fetched(url, "alive", now, **{**base, "final_url": urljoin(current, location)})
                    if r.status_code in (404, 410):
                        return Fetched(url, "dead", now, error=f"HTTP {r.status_code}", **base)
                    if r.status_code in (401, 403, 451):
                        return Fetched(url, "blocked", now, error=f"HTTP {r.status_code}", **base)
                    if not 200 <= r.status_code < 300:
                        return Fetched(url, "transient", now, error=f"HTTP {r.status_code}",
                                       retry_after=_retry_after(r.headers.get("retry-after")), **base)
                    codings = [c for c in (v.strip().lower() for v in r.headers.get_list("content-encoding", split_commas=True))
                               if c not in ("", "identity")]
                    if len(codings) > 1:
                        shown = ", ".join(codings[:3]) + (", …" if len(codings) > 3 else "")
                        return Fetched(url, "transient", now, retry=False, **base,
                                       error=f"Content-Encoding stacks {len(codings)} content codings ({shown}); at most one is decoded")
                    in_part = policy in READ_IN_PART
                    declared = r.headers.get("content-length")
                    if not in_part and declared and declared.isdigit() and int(declared) > cap:
                        return Fetched(url, "too_large", now, error=f"body larger than {limit}", **base)
                    try:
                        body, more = await self._read_capped(r, cap)
                    except httpx.DecodingError as e:
                        return Fetched(url, "transient", now, retry=False, **base,
                                       error=f"the body does not decode as its Content-Encoding {codings[0] if codings else ''} says: {e}")
                    if more and not in_part:
                        return Fetched(url, "too_large", now, error=f"body larger than {limit}", **base)
                    error = None
                    if more:
                        body = body[: max(body.rfind(b"\n"), body.rfind(b"\r")) + 1]
                        error = f"larger than {limit}: its first {len(body):,} bytes, to the last whole line, are read (RFC 9309 §2.5)"
                    return Fetched(url, "alive", now, bytes=len(body), body=body, error=error, **base)
            except httpx.InvalidURL as e:
                return Fetched(url, "invalid", now, final_url=current, error=f"URL refused by the HTTP client: {e}")
            except aiohttp.ClientError as e:  # outside httpx-aiohttp's exception map: an oversized or malformed response
                reason = getattr(e, "message", type(e).__name__)
                return Fetched(url, "transient", now, final_url=current, error=f"response refused by the HTTP client: {reason}", retry=False)
            except httpx.HTTPError as e:
                cause = e.__cause__
                if isinstance(cause, aiohttp.ClientConnectorError) and isinstance(cause.os_error, RefusedAddress):
                    return Fetched(url, "blocked", now, final_url=current, error="host resolves to a refused address (SSRF guard)")
                if _connection_level(e):
                    return Fetched(url, "transient", now, final_url=current, error=f"connection failed: {type(cause or e).__name__}", connection_failed=True)
                return Fetched(url, "transient", now, final_url=current, error=f"{type(e).__name__}: {type(cause).__name__ if cause else ''}")

    async def _read_capped(self, r: httpx.Response, cap: int) -> tuple[bytes, bool]:
        """The body's first ``cap`` bytes at most, and whether it has more (reading stops there)."""
        chunks, size = [], 0
        async for chunk in r.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                return b"".join(chunks)[:cap], True
        return b"".join(chunks), False

    # --- politeness ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _slot(self, domain: str):
        """Hold a request slot: the domain's first (so one busy domain never holds global slots),
        its ``min_interval`` spacing, then the global one."""
        sem = self._domains.setdefault(domain, asyncio.Semaphore(self._per_domain))
        async with sem:
            while (wait := self._next_start.get(domain, 0.0) - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            self._next_start[domain] = time.monotonic() + self._min_interval
            async with self._global:
                yield

    def _pause_domain(self, url: str, seconds: float) -> None:
        """Start no request to ``url``'s registrable domain for ``seconds``: the ``Retry-After``
        (RFC 9110 §10.2.3) of a response from ``url``, the hop that answered, not the URL that
        redirected there."""
        domain = host_and_domain(url)[1]
        self._next_start[domain] = max(self._next_start.get(domain, 0.0), time.monotonic() + seconds)

    async def _robots_refusal(self, url: str) -> dict | None:
        """None if robots.txt lets our product token fetch ``url`` (an http(s) URL with a host),
        else the refusal's :class:`Fetched` fields: ``blocked`` when the file was read and
        disallows it, ``transient`` (not retried by this fetcher) when it could not be read."""
        origin = url_origin(url)
        robots = await self._shared(self._robots, origin, self._load_robots, failed=None)
        if isinstance(robots, RobotsPolicy):
            return {"status": "blocked", "error": "disallowed by robots.txt"} if robots.disallowed(url) else None
        read, connection_failed = robots or (None, False)
        if robots is None or connection_failed:
            self._robots.pop(origin, None)  # quick to find again: the next request reads it again
        reason = read.error if read else "its read failed"
        return {"status": "transient", "error": f"robots.txt unreadable: {reason}", "connection_failed": connection_failed, "retry": connection_failed}

    async def _load_robots(self, origin: str) -> RobotsPolicy | tuple[PolicyFile, bool]:
        """robots.txt of an origin, for our product token, per RFC 9309 §2.3.1: a served file is
        read, 4xx allows all; an unreadable file is returned as its read, with whether that was a
        connection-level failure."""
        read, connection_failed = await self._policy(origin, "robots.txt")
        if read.status == "transient":
            return read, connection_failed
        return RobotsPolicy(read.text or "", (self.cfg.robots_agent,))

    async def policy_file(self, origin: str, name: str) -> PolicyFile:
        """Policy file ``name`` (:data:`~scrutineer.observing.policy_files.POLICY_PATHS`, or an RSL
        licence: :func:`~scrutineer.observing.policy_files.policy_url`) of ``origin``
        (``scheme://host[:port]``), read once for every request waiting on it: from the policy
        cache when fresh there, else fetched (redirects followed, robots.txt not consulted, within
        the bounds in the module's docstring) and cached unless ``transient``."""
        return (await self._policy(origin, name))[0]

    async def _policy(self, origin: str, name: str) -> tuple[PolicyFile, bool]:
        """:meth:`policy_file`, and whether its read failed at the connection level (then it is
        forgotten, so the next request reads it again)."""
        key = f"{origin} {name}"
        found = await self._shared(self._policies, key, self._load_policy, failed=None)
        if found is None or found[1]:
            self._policies.pop(key, None)
        if found is None:  # the load raised or was cancelled (the fetcher is closing)
            return policy_file(origin, name, datetime.now(UTC), "transient", error="the read was cancelled"), False
        return found

    def new_policy_files(self) -> list[PolicyFile]:
        """The policy files this fetcher has read (or taken from the cache) since the last call."""
        reads, self._new_reads = self._new_reads, []
        return reads

    async def _load_policy(self, key: str) -> tuple[PolicyFile, bool]:
        origin, name = key.split(" ", 1)
        if self._policy_cache and (cached := self._policy_cache.get(origin, name)):
            self._new_reads.append(cached)
            return cached, False
        fetched_at = datetime.now(UTC)
        seconds = self.cfg.total_timeout * (self.cfg.retries + 1)
        try:
            async with asyncio.timeout(seconds):
                result, _ = await self._follow(policy_url(origin, name), obey_robots=False, policy=name)
        except TimeoutError:
            result = Fetched(policy_url(origin, name), "transient", fetched_at, error=f"no complete response within {seconds:g} s")
        answered = result.status in ("alive", "too_large") or 400 <= (result.http_status or 0) < 500
        served = result.body if result.status == "alive" else None
        read = policy_file(origin, name, fetched_at, result.status if answered else "transient", served, http_status=result.http_status,
                           content_type=result.content_type, error=result.error)
        if self._policy_cache:
            self._policy_cache.put(read)
        self._new_reads.append(read)
        return read, result.connection_failed

    async def _shared(self, loads: dict[str, asyncio.Task], key: str, load: Callable[[str], Awaitable[T]], failed: T) -> T:
        """What ``load(key)`` returns, loaded once for every waiter of ``key`` (robots.txt per
        origin, the DNS check per host), or ``failed`` if that load raised or was cancelled.

        The load is a task of its own, and waiting for it never cancels it (``asyncio.wait``, like
        ``asyncio.shield``): one waiter's timeout or cancellation ends only its own wait, and the
        other waiters still get the load's result. Callers forget the results they want retried.
        """
        if key not in loads:
            loads[key] = asyncio.ensure_future(load(key))
        task = loads[key]
        if not task.done():  # a finished load (the usual case) is read without yielding to the loop
            await asyncio.wait([task])
        if task.cancelled() or task.exception() is not None:
            return failed
        return task.result()

    # --- SSRF guard and DNS -------------------------------------------------------------------

    async def _check_host(self, host: str) -> tuple[str, str] | None:
        """None if the host may be fetched, else (status, error)."""
        verdict = await self._shared(self._host_checks, host, self._resolve_and_check, failed=("transient", "DNS check failed"))
        if verdict is not None and verdict[0] == "transient":
            self._host_checks.pop(host, None)  # a DNS hiccup is retried, not remembered
        return verdict

    async def _resolve_and_check(self, host: str) -> tuple[str, str] | None:
        try:
            ips = [ipaddress.ip_address(host.strip("[]")).compressed]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                    return "dead", "NXDOMAIN: the host name does not resolve"
                return "transient", f"DNS failure: {e.strerror}"
            except UnicodeError:
                return "invalid", "host name cannot be encoded (IDNA)"
            ips = [info[4][0] for info in infos]
        if not self.cfg.allow_private_networks and any(refused_address(ip, self._allowed) for ip in ips):
            return "blocked", "host resolves to a loopback, private, link-local or reserved address (SSRF guard)"
        return None

    # --- circuit breaker ----------------------------------------------------------------------

    def _record_connection(self, url: str, result: Fetched) -> None:
        if result.connection_failed or (result.status == "dead" and result.http_status is None):
            self._failures.append(host_and_domain(url)[0])
            hosts = len(set(self._failures))
            if len(self._failures) == self._failures.maxlen and hosts >= self.cfg.breaker.hosts:
                self.network_down = True
        elif result.http_status is not None:
            self._failures.clear()

    def _breaker_message(self) -> str:
        return (
            f"network down: {self.cfg.breaker.failures} connection-level failures in a row across "
            f"{len(set(self._failures))} hosts; link checks are inconclusive and nothing is flagged dead"
        )
