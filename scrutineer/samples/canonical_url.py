"""The canonical URL: one key for the spellings of one image URL that real datasets hold (LAION's
URLs show each of them), used by ``dedup``'s ``duplicate.url``.

:func:`canonical_url` is the definition: w3lib's ``canonicalize_url`` (Scrapy's; it sorts the
query's parameters, normalises percent-encoding and drops the fragment), between these rules of
ours (each with an example, ``→`` its key):

- a literal ``&amp;`` in the query is ``&`` (HTML-escaped alt-text sources):
  ``https://a.example/p?x=1&amp;y=2`` → ``a.example/p?x=1&y=2``;
- the scheme is dropped, so http and https copies are one image:
  ``http://a.example/p.jpg`` and ``https://a.example/p.jpg`` → ``a.example/p.jpg``;
- the host is lowercased, a leading ``www.`` dropped and a default port (80, 443) dropped:
  ``HTTP://WWW.A.example:80/p.jpg`` → ``a.example/p.jpg``;
- one trailing slash of the path is dropped: ``https://a.example/`` and ``https://a.example`` →
  ``a.example``; ``https://a.example/dir/?x=1`` → ``a.example/dir?x=1``;
- percent-encoding is normalised (w3lib): ``https://a.example/%7euser/a%2fb`` →
  ``a.example/~user/a%2Fb``; query parameters are sorted (w3lib): ``?b=2&a=1`` → ``?a=1&b=2``;
- tracking parameters are dropped: every ``utm_*`` and those of :data:`TRACKING`:
  ``https://a.example/p.jpg?id=3&utm_source=x&fbclid=y`` → ``a.example/p.jpg?id=3``.

A URL without an http(s) scheme is only trimmed and cut at ``#`` (null when nothing is left).

:func:`canonical_urls` keys an Arrow array: URLs already in the form these rules leave alone but
for the scheme, ``www.`` and the host's case (84% of the LAION sample's, 87% of CC3M's) are keyed
with Arrow string kernels, ~0.5 µs each (a host with an upper-case letter is lowercased in Python
first, ~1 µs more); the others go through :func:`canonical_url`, ~28 µs each for the LAION ones
(w3lib), so real LAION URLs cost ~5 µs per row on average (bench/README.md). The tests check the
fast path against the definition on every real URL in ``../shared/data``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from w3lib.url import canonicalize_url

from scrutineer.samples.domains import after_scheme

#: Click identifiers and campaign parameters that only track who shared a link (besides every
#: ``utm_*``): a selection of those ClearURLs' global rules and Firefox's query stripping remove.
TRACKING = frozenset(
    {"fbclid", "gclid", "gclsrc", "dclid", "msclkid", "yclid", "igshid", "twclid", "ttclid", "mc_cid", "mc_eid", "_ga", "_gl",
     "mkt_tok", "_hsenc", "_hsmi", "oly_anon_id", "oly_enc_id", "vero_id", "wickedid"}
)
_HTTP = re.compile(r"^https?://", re.IGNORECASE)
_UNRESERVED = "[A-Za-z0-9._~-]"
_TRACKING_NAME = "utm_[A-Za-z0-9._~-]*|" + "|".join(sorted(TRACKING))
_FAST_PATH = r"(/[A-Za-z0-9._~!$'()*+,;=:@-]+)*(\?" + _UNRESERVED + "+=" + _UNRESERVED + "*)?$"
#: The URLs the fast path keys: http(s) in lower case, a lowercase ASCII host without a port, a path
#: of non-empty segments (no trailing slash) of characters w3lib leaves as they are, and at most one
#: query parameter (so sorting does nothing) of unreserved characters, not a tracking one
#: (:data:`TRACKING_QUERY`).
FAST_FORM = r"^https?://[a-z0-9-]+(\.[a-z0-9-]+)*" + _FAST_PATH
#: :data:`FAST_FORM` with upper-case letters in the host too: such a URL is keyed as its spelling
#: with the host lowercased (the canonical URL's host is lowercase).
CASED_HOST_FORM = r"^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*" + _FAST_PATH
TRACKING_QUERY = rf"\?({_TRACKING_NAME})="


def canonical_url(url: str | None) -> str | None:
    """The canonical URL of ``url`` (module docstring), None for None or nothing left."""
    if url is None:
        return None
    text = url.strip()
    if not _HTTP.match(text):
        return text.split("#", 1)[0] or None
    base, question, rest = text.partition("?")
    query, hash_, fragment = rest.partition("#")
    try:
        parts = urlsplit(canonicalize_url(base + question + query.replace("&amp;", "&") + hash_ + fragment))
        host, port = parts.hostname or "", parts.port
    except ValueError:  # an unparsable host or port: keyed as written
        return text.split("#", 1)[0] or None
    host = f"[{host}]" if ":" in host else host.removeprefix("www.")
    port = f":{port}" if port and port not in (80, 443) else ""
    path = parts.path.removesuffix("/")
    kept = [p for p in parts.query.split("&") if p and not _tracking(p.split("=", 1)[0])]
    return host + port + path + ("?" + "&".join(kept) if kept else "")


def _lower_host(url: str) -> str:
    """``url`` (``https://A.Example/P.jpg``) with the host lowercased (``https://a.example/P.jpg``)."""
    scheme, sep, rest = url.partition("://")
    end = next((i for i, c in enumerate(rest) if c in "/?"), len(rest))
    return scheme + sep + rest[:end].lower() + rest[end:]


def _tracking(name: str) -> bool:
    return name.startswith("utm_") or name in TRACKING


def canonical_urls(urls: pa.Array) -> pa.Array:
    """:func:`canonical_url` of each URL of a string array (nulls stay null): Arrow kernels for the
    URLs in :data:`FAST_FORM` without a tracking parameter (their key is what follows ``://``, less
    a leading ``www.``), and for those of :data:`CASED_HOST_FORM` once their host is lowercased;
    :func:`canonical_url` for the rest."""
    fast = pc.fill_null(pc.match_substring_regex(urls, FAST_FORM), False)
    others = pc.indices_nonzero(pc.invert(fast))
    if len(others):  # the few not in FAST_FORM: those it leaves out only for the host's case take the fast path too
        cased = others.filter(pc.fill_null(pc.match_substring_regex(urls.take(others), CASED_HOST_FORM), False))
        if len(cased):
            mask = np.zeros(len(urls), bool)
            mask[cased.to_numpy()] = True
            urls = pc.replace_with_mask(urls, mask, pa.array([_lower_host(u) for u in urls.take(cased).to_pylist()], pa.string()))
            fast = pc.or_(fast, pa.array(mask))
    fast = pc.and_not(fast, pc.fill_null(pc.match_substring_regex(urls, TRACKING_QUERY), False))
    cut = after_scheme(urls.filter(fast))
    www = pc.starts_with(cut, "www.")
    if pc.any(www).as_py():
        cut = pc.replace_with_mask(cut, www, pc.utf8_slice_codeunits(cut.filter(www), 4))
    slow = pc.indices_nonzero(pc.invert(fast))
    if len(slow) == 0:
        return cut
    keys = pc.replace_with_mask(pa.nulls(len(urls), pa.string()), fast, cut)
    rest = pa.array([canonical_url(u) for u in urls.take(slow).to_pylist()], pa.string())
    return pc.replace_with_mask(keys, pc.invert(fast), rest)
