"""RSL (Really Simple Licensing) 1.0 licences: an XML document a site names in robots.txt
(``License: <absolute URL>``) or on a response (``Link: <URL>; rel="license";
type="application/rsl+xml"``), saying per ``<content url>`` what each ``<license>`` permits,
prohibits and asks in payment.

The rules read here are RSL 1.0's (RSL-SPEC-1.0, rslstandard.org/rsl, a Recommendation of
December 2025; its text, under CC BY-ND, is quoted from rslstandard.org's guide pages and from
write-ups citing its sections, as no repository holds it):

- the document's root is ``<rsl>`` in the namespace ``https://rslstandard.org/rsl``;
- ``<content url>`` is a full URL or a path "that follows the URL-matching rules of the Robots
  Exclusion Protocol (RFC 9309), including ... ``*`` ... and ``$``": matched here by
  :class:`~scrutineer.observing.optouts.rules.Pattern`, the narrowest (longest) scope deciding;
- ``<permits type="usage">`` and ``<prohibits type="usage">`` list usage tokens separated by blanks
  (the drafts used commas: both are read): ``all``, ``ai-all`` (every AI use, training among them),
  ``ai-train`` ("training or fine-tuning AI models", Content Signals' term), ``ai-input``,
  ``ai-index``, ``search``. The drafts' ``train-ai`` is read as ``ai-train``. A ``<permits>`` of
  a type is a closed list (what it leaves out is not licensed), and what is both permitted and
  prohibited is not licensed;
- ``<payment type>``: absent or ``free``, nothing is asked; ``attribution`` asks for credit;
  ``purchase``, ``subscription``, ``training``, ``crawl``, ``use`` (the draft's ``inference``) and
  ``contribution`` ask for payment. A ``server`` attribute on ``<content>`` asks for a licence
  token before any use, even a free one.
- a ``License`` line in a ``User-agent`` group holds for that group's agents, replacing the lines
  outside any group, which hold for the others (RSL 1.0 §4.4;
  :meth:`scrutineer.observing.optouts.robots.RobotsPolicy.licences`).

So for a sample's URL, a licence in scope that prohibits AI training (``ai-train``, ``ai-all``,
``all``), or a scope whose licences all leave it unlisted in their ``<permits>``, reserves the
sample (``optout.rsl``); if training is licensed only with payment, attribution, a licence
server or permits of other types (users, places), it is ``optout.constrained``, for a reviewer;
if one licence permits it free and unconditioned, nothing. A document that is not RSL (not XML,
another root, no ``<content>``) is ``optout.invalid``; a URL no ``<content>`` covers gets nothing.

Bounds: the document is a policy file (at most
:data:`~scrutineer.observing.policy_files.MAX_BYTES`, else ``too_large``) parsed by defusedxml
(no DTD entities, no external entities) into at most :data:`MAX_CONTENTS` scopes; a Link header
value is read up to :data:`~scrutineer.observing.optouts.headers.MAX_VALUE` characters; robots.txt
and a Link header each give at most :data:`MAX_LICENCES` licence URLs. Every fault is a value, never an
exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from scrutineer.observing.optouts import Signal
from scrutineer.observing.optouts.headers import MAX_VALUE
from scrutineer.observing.optouts.rules import Pattern, url_path
from scrutineer.observing.policy_files import LICENCE_PREFIX, MAX_BYTES, origin

#: The RSL namespace, the document's default.
NAMESPACE = "https://rslstandard.org/rsl"
#: What the evidence names as the rule's source.
SPEC = "RSL 1.0 (RSL-SPEC-1.0, rslstandard.org/rsl)"
#: The usage tokens that cover AI training.
TRAINING = frozenset({"ai-train", "ai-all", "all"})
#: Draft tokens -> their RSL 1.0 names (usage ``train-ai``; payment ``inference``).
ALIASES = {"train-ai": "ai-train", "inference": "use"}
#: Payment types that ask for nothing.
FREE = frozenset({"free"})
#: The most licence URLs read from one robots.txt, and the most ``<content>`` scopes read from one document.
MAX_LICENCES = 8
MAX_CONTENTS = 10_000
#: The most tokens of a list the evidence shows.
SHOWN = 20
_TOKENS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Licence:
    """One ``<license>``: the tokens it permits and prohibits, by type; its payment type (None:
    none asked)."""

    permits: dict[str, frozenset[str]] = field(default_factory=dict)
    prohibits: dict[str, frozenset[str]] = field(default_factory=dict)
    payment: str | None = None


@dataclass(frozen=True)
class Scope:
    """One ``<content>``: its URL pattern (``url`` as written), whether it asks for a licence
    server, and its licences; ``path`` is the pattern's path (:func:`_pattern_text`, whose length
    ranks scopes) and ``pattern`` it as matched, made once (None: it covers nothing)."""

    url: str
    server: str | None
    licences: tuple[Licence, ...]
    path: str
    pattern: Pattern | None


def policy_name(url: str) -> str:
    """The policy file name of the licence at ``url`` (``rsl:`` and the URL)."""
    return LICENCE_PREFIX + url


def licence_url(value: str) -> str | None:
    """A ``License:`` value, if it is an absolute http(s) URL (RSL 1.0 §4.4), else None."""
    value = value.strip()
    if len(value) > MAX_VALUE or not origin(value):  # origin: an http(s) URL whose authority parses
        return None
    return value


def link_licences(value: str | None) -> list[str]:
    """The RSL licence URLs of a ``Link`` header value: its links with ``rel`` ``license`` and
    ``type`` ``application/rsl+xml`` and an absolute http(s) target (RSL 1.0 §4.5; RFC 8288's
    syntax), the first :data:`MAX_LICENCES` distinct ones. A longer value than :data:`MAX_VALUE`
    characters gives none.

    Not httpx's ``Response.links``: it keeps one link per ``rel``, and a page may link both a
    Creative Commons licence and an RSL one; tests compare this with it on single links. Nor the
    standard library's ``urllib.request.parse_http_list``: it splits a target at its commas
    (``<https://e.example/a,b.xml>``), and parameters are not split at all.
    """
    if not value or len(value) > MAX_VALUE:
        return []
    found = []
    for target, params in _links(value):
        if "license" in params.get("rel", "").lower().split() and params.get("type", "").lower() == "application/rsl+xml":
            if (url := licence_url(target)) and url not in found:
                found.append(url)
                if len(found) == MAX_LICENCES:
                    break
    return found


def _links(value: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Each link-value of a ``Link`` header value (RFC 8288 §3), in one pass: its target and its
    parameters (names lowercased, the first of a repeated name kept, a quoted-string's value
    unquoted as RFC 9110 §5.6.4 says). A comma or semicolon inside a quoted string belongs to the
    value. A link-value that does not parse is skipped up to the next comma outside quotes."""
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i == n:
            return
        if value[i] != "<":
            i = _after_comma(value, i)
            continue
        end = value.find(">", i)
        if end < 0:
            return
        target, i, params = value[i + 1 : end], end + 1, {}
        while True:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] != ";":
                break
            start = i = i + 1
            while i < n and value[i] not in "=;,":
                i += 1
            name, said = value[start:i].strip().lower(), ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    said, i = _quoted(value, i)
                else:
                    start = i
                    while i < n and value[i] not in ";,":
                        i += 1
                    said = value[start:i].strip()
            params.setdefault(name, said)
        yield target, params
        i = _after_comma(value, i)


def _quoted(value: str, i: int) -> tuple[str, int]:
    """The quoted string opening at ``value[i]`` (a ``"``), unquoted, and the index after it (an
    unterminated one runs to the end)."""
    out, i, n = [], i + 1, len(value)
    while i < n and value[i] != '"':
        if value[i] == "\\" and i + 1 < n:
            i += 1
        out.append(value[i])
        i += 1
    return "".join(out), min(i + 1, n)


def _after_comma(value: str, i: int) -> int:
    """The index after the first comma at or after ``i`` that is outside a quoted string (the
    value's length if there is none)."""
    n = len(value)
    while i < n and value[i] != ",":
        i = _quoted(value, i)[1] if value[i] == '"' else i + 1
    return min(i + 1, n)


def parse(text: str) -> tuple[Scope, ...]:
    """The scopes of an RSL document, in document order.

    Raises:
        ValueError: not well-formed XML, entities declared (defusedxml), a root other than RSL's
            ``<rsl>``, no ``<content>``, or over :data:`MAX_BYTES` characters.
    """
    if len(text) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES:,} characters")
    try:
        root = fromstring(text)
    except (ParseError, DefusedXmlException, ValueError) as e:
        raise ValueError(f"not an XML document: {type(e).__name__}: {str(e)[:200]}") from None
    if root.tag != f"{{{NAMESPACE}}}rsl":
        raise ValueError(f"the root is {root.tag[:200]!r}, not <rsl> in {NAMESPACE}")
    scopes = tuple(_scope(c) for c in islice(root.iterfind(f"{{{NAMESPACE}}}content"), MAX_CONTENTS))
    if not scopes:
        raise ValueError("no <content> element")
    return scopes


def judge(scopes: tuple[Scope, ...], url: str) -> Signal | None:
    """What the narrowest scope covering ``url`` says of AI training: ``optout.rsl``,
    ``optout.constrained`` or None (module docstring).

    Evidence: ``{"signal": "RSL", "content": the scope's url, "rule": what decided, "spec"}``, and
    for ``optout.constrained`` ``"conditions"``: the payment types and other terms asked.
    """
    path = url_path(url)
    covering = [s for s in scopes if _covers(s, url, path)]
    if not covering:
        return None
    scope = max(covering, key=lambda s: len(s.path))  # the first of the narrowest
    base = {"signal": "RSL", "content": scope.url[:200], "spec": SPEC}
    for licence in scope.licences:
        if refused := sorted(licence.prohibits.get("usage", frozenset()) & TRAINING):
            return Signal("optout.rsl", {**base, "rule": f"<prohibits type=\"usage\">{' '.join(refused)}</prohibits>"})
    permitting = [lic for lic in scope.licences if "usage" not in lic.permits or lic.permits["usage"] & TRAINING]
    if not permitting:
        listed = sorted(set().union(*(lic.permits.get("usage", frozenset()) for lic in scope.licences)))
        return Signal("optout.rsl", {**base, "rule": f"<permits type=\"usage\"> lists only {_shown(listed) or 'nothing'}: AI training is not licensed"})
    conditions = [_conditions(lic, scope) for lic in permitting]
    if any(not c for c in conditions):
        return None  # one licence permits training, free and unconditioned
    asked = sorted(set().union(*conditions))
    return Signal("optout.constrained", {**base, "rule": "AI training is licensed only under conditions", "conditions": asked})


def _conditions(licence: Licence, scope: Scope) -> set[str]:
    """What a licence permitting AI training asks: its payment type, a licence server, and
    permits of types other than usage (``user``, ``geo``)."""
    asked = {f"payment: {licence.payment[:40]}"} if licence.payment and licence.payment not in FREE else set()
    asked |= {f"permits {kind[:40]}: {_shown(sorted(tokens))}" for kind, tokens in licence.permits.items() if kind != "usage"}
    return asked | ({f"licence server: {scope.server[:200]}"} if scope.server else set())


def _shown(tokens: list[str]) -> str:
    """Tokens as evidence shows them: the first :data:`SHOWN` of them, each cut to 40 characters (a
    document a website wrote may list thousands)."""
    shown = " ".join(t[:40] for t in tokens[:SHOWN])
    return shown + (f" and {len(tokens) - SHOWN:,} more" if len(tokens) > SHOWN else "")


def _scope(content: Element) -> Scope:
    licences = []
    for element in content.iterfind(f"{{{NAMESPACE}}}license"):
        permits: dict[str, frozenset[str]] = {}
        prohibits: dict[str, frozenset[str]] = {}
        for tag, into in (("permits", permits), ("prohibits", prohibits)):
            for terms in element.iterfind(f"{{{NAMESPACE}}}{tag}"):
                kind = (terms.get("type") or "usage").strip().lower()
                tokens = frozenset(ALIASES.get(t, t) for t in _TOKENS.split((terms.text or "").strip().lower()) if t)
                into[kind] = into.get(kind, frozenset()) | tokens  # two lists of one type (non-conformant): their union
        payment = element.find(f"{{{NAMESPACE}}}payment")
        kind = (payment.get("type") or "unspecified").strip().lower() if payment is not None else None
        licences.append(Licence(permits, prohibits, ALIASES.get(kind, kind)))
    url = content.get("url") or ""
    path = _pattern_text(url)
    return Scope(url, content.get("server"), tuple(licences), path, Pattern(path) if path.startswith("/") else None)


def _pattern_text(url: str) -> str:
    """A scope's path pattern: a full URL's path (and query), else the value as written ("" for a
    URL that does not parse: it covers nothing)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _covers(scope: Scope, url: str, path: str) -> bool:
    """Whether ``scope`` covers ``url`` (its normalised ``path``): a full URL on the URL's origin
    whose path matches as a pattern, or a path pattern (RFC 9309 §2.2.2)."""
    if scope.pattern is None or "://" in scope.url and origin(scope.url) != origin(url):
        return False
    return scope.pattern.match(path)
