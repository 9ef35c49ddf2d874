"""Hosts and registrable domains (eTLD+1) of URLs, from tldextract's bundled Public Suffix List
snapshot (no network)."""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

import tldextract


@cache
def _extractor() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def host_and_domain(url: str) -> tuple[str, str]:
    """(host, registrable domain) of a URL, both lowercase; an IP address or a bare host is its own
    domain, and an unparsable URL gives ``("", "")``."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        host = ""
    return host, registrable_domain(host)


def registrable_domain(host: str) -> str:
    """The registrable domain of a host (``cdn.images.example.co.uk`` → ``example.co.uk``); the
    host itself for IP addresses, ``localhost`` and other names without a public suffix."""
    return _extractor()(host).top_domain_under_public_suffix or host
