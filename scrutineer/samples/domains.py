"""Hosts and registrable domains (eTLD+1) of URLs, from tldextract's bundled Public Suffix List
snapshot (no network), and the part of a URL after its scheme.

An internationalised host name is taken in its ASCII form (IDNA 2008 with UTS #46 mapping, the
``idna`` package: ``café.com`` and ``CAFÉ.com`` are ``xn--caf-dma.com``), so that the two spellings
of one name are one host and one domain, for politeness, the takedown manifest and the AI Act
summary alike, as they are for ``duplicate.url`` (w3lib's canonical URL) and in DNS. A host IDNA
refuses (a bidi control, a label over 63 characters) is kept as written."""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

import idna
import pyarrow as pa
import pyarrow.compute as pc
import tldextract


@cache
def _extractor() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def host_and_domain(url: str) -> tuple[str, str]:
    """(host, registrable domain) of a URL, both lowercase, an internationalised name in its ASCII
    form (module docstring); an IP address or a bare host is its own domain, and an unparsable URL
    gives ``("", "")``."""
    try:
        host = (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        host = ""
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            pass  # not a name IDNA allows: kept as written
    return host, registrable_domain(host)


def registrable_domain(host: str) -> str:
    """The registrable domain of a host (``cdn.images.example.co.uk`` → ``example.co.uk``); the
    host itself for IP addresses, ``localhost`` and other names without a public suffix."""
    return _extractor()(host).top_domain_under_public_suffix or host


def after_scheme(urls: pa.Array) -> pa.Array:
    """What follows the first ``://`` of each URL (``https://Example.com/a`` → ``Example.com/a``),
    vectorised: a string ``pa.Array`` of the same length, nulls kept.

    Raises:
        pyarrow.ArrowInvalid: a non-null URL has no ``://`` (callers select URLs with a scheme first).
    """
    return pc.list_element(pc.split_pattern(urls, "://", max_splits=1), 1)
