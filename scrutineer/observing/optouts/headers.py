"""Opt-out signals in the image response's own headers: ``X-Robots-Tag`` and IETF aipref
``Content-Usage``.

``X-Robots-Tag`` (Google's robots meta tag and X-Robots-Tag specification): a comma-separated list
of directives, each optionally scoped to one crawler as ``<agent>: <directive>``; a scope holds for
the directives after it up to the next scope. The directives that refuse machine learning
(:data:`DIRECTIVES`, each with its source): ``noai`` and ``noimageai``, which DeviantArt introduced
and img2dataset honours, and ``noml``, Mojeek's NoML proposal, which img2dataset's tracker asks
for beside them (rom1504/img2dataset#365). img2dataset's default list also refuses ``noindex``
and ``noimageindex``, which are about search indexing (configurable: ``optouts.header_directives``).

``Content-Usage``: IETF aipref's preferences (draft-ietf-aipref-attach-05 §2, the HTTP field; its
§3, the robots.txt rule, is read by :mod:`~scrutineer.observing.optouts.robots`), read as
draft-ietf-aipref-vocab-07 says: the value is an HTTP Structured Field Dictionary (RFC 9651, parsed
by ``http-sf`` on bytes); a key's preference is the Token ``y`` or ``n``, anything else is unknown;
unknown keys are ignored; a repeated key keeps its last value (RFC 9651 §4.2.2); a value that does
not parse, an upper-case key included, states no preference at all (vocab-07 §6.5). vocab-07 has two
categories, ``train-ai`` (AI Model Training) and ``search``, with no hierarchy.

Older tokens are still served, and each is read as the last draft that defined it said
(:data:`LEGACY`): ``train-genai`` (Generative AI Training, vocab-02 and -03) and vocab-01's
``ai``/``genai`` are training categories below a top category (``tdm`` in vocab-01, ``all`` in
-02, ``bots`` in -03 and -04), and a category with no preference of its own takes its parent's
(vocab-01 to -05, "Applying Statements of Preference"). ``ai-use``, ``ai-output``, ``inference`` and
``search`` are not training. Any category that resolves to ``n`` reserves the sample: in a conflict
any ``n`` wins (vocab-07 §5.1, "Combining Preferences"). The evidence names the key and the draft
that decided.

Bound: a value longer than :data:`MAX_VALUE` characters is not read; it is ``optout.invalid``
(never a reservation), its evidence showing the first 200 characters.
"""

from __future__ import annotations

import re
from functools import cache

import http_sf

from scrutineer.observing.optouts import Signal

#: The aipref drafts this reading implements; kept with every aipref finding.
AIPREF_DRAFTS = "draft-ietf-aipref-vocab-07, draft-ietf-aipref-attach-05"
#: Each key that states a preference about AI training -> (the last draft that defined it, its
#: parent category in that draft, whose preference it takes when it has none of its own).
#: vocab-07's ``train-ai`` has no parent; the older drafts put it below ``bots`` (-03, -04) or
#: ``all`` (-02), which are read as its parent only when it states nothing (a key's own preference
#: beats its parent's in every draft).
LEGACY = {
    "train-ai": ("draft-ietf-aipref-vocab-07", None),
    "train-genai": ("draft-ietf-aipref-vocab-03", "train-ai"),
    "ai": ("draft-ietf-aipref-vocab-01", "tdm"),
    "genai": ("draft-ietf-aipref-vocab-01", "ai"),
}
#: The top categories (Automated Processing, or TDM in vocab-01), which cover AI training below
#: them: key -> the last draft that defined it. ``train-ai`` takes the first one given.
TOP = {"bots": "draft-ietf-aipref-vocab-04", "all": "draft-ietf-aipref-vocab-02", "tdm": "draft-ietf-aipref-vocab-01"}
#: A Dictionary of ``key=token`` members only (RFC 9651 §3.1.2 key, §3.3.4 token; members joined
#: by OWS "," OWS, §4.2.2): no part can match where another may, so matching is linear.
_KEY_TOKEN = r"[a-z*][a-z0-9_.*-]*=[A-Za-z*][!#$%&'*+.^_`|~:/0-9A-Za-z-]*"
_SIMPLE = re.compile(rf"{_KEY_TOKEN}(?:[ \t]*,[ \t]*{_KEY_TOKEN})*")
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")
#: The keys a preference about AI training may be stated with.
_KEYS = frozenset(LEGACY) | frozenset(TOP)
#: The X-Robots-Tag directives that refuse machine learning -> where they were defined (the
#: evidence names it). None is an IETF or W3C standard.
DIRECTIVES = {
    "noai": "DeviantArt, 'All Deviations Are Opted Out of AI Datasets' (2022-11)",
    "noimageai": "DeviantArt, 'All Deviations Are Opted Out of AI Datasets' (2022-11)",
    "noml": "Mojeek, 'NoML Proposal for Fair Use of Content in AI and Search' (noml.info, 2023-10-25)",
}
#: The longest header value read, in characters: aiohttp, which the fetcher reads responses with,
#: refuses a header line over 8,190 bytes (its ``max_field_size``), and RFC 9651 §4.2 asks a parser
#: to take Dictionaries of at least 1,024 members; a longer value is several lines of one header
#: joined, or a robots.txt line. http-sf parses ~1 µs per character: 8 KiB is ~10 ms at worst.
MAX_VALUE = 8192
#: X-Robots-Tag directives with a value after a colon (so the colon is not a scope).
_VALUED = {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}


def x_robots_tag(value: str | None, directives: frozenset[str], agents: frozenset[str]) -> Signal | None:
    """``optout.header`` when ``value`` carries one of ``directives`` (lowercase), unscoped or
    scoped to one of ``agents`` (lowercase product tokens); None otherwise.

    Evidence: ``{"signal": "X-Robots-Tag", "directive", "agent" (null: every crawler), "value",
    "spec": where the directive was defined (:data:`DIRECTIVES`; null for another)}``.
    """
    if not value:
        return None
    if len(value) > MAX_VALUE:
        return too_long(value, "X-Robots-Tag")
    scope = None
    for token in value.split(","):
        token = token.strip()
        name, colon, rest = token.partition(":")
        if colon and name.strip().lower() not in _VALUED:
            scope, token = name.strip().lower(), rest.strip()
        directive = token.lower()
        if directive in directives and (scope is None or scope in agents):
            return Signal("optout.header", {"signal": "X-Robots-Tag", "directive": directive, "agent": scope, "value": value,
                                            "spec": DIRECTIVES.get(directive)})
    return None


def clipped(value: str) -> str:
    """A header value over :data:`MAX_VALUE` characters as evidence shows it: its first 200
    characters and "…"."""
    return value[:200] + "…"


def too_long(value: str, signal: str) -> Signal:
    """``optout.invalid`` for a header value over :data:`MAX_VALUE` characters.

    Evidence: ``{"signal", "value": clipped (:func:`clipped`), "fault"}``.
    """
    return Signal("optout.invalid", {"signal": signal, "value": clipped(value), "fault": f"longer than {MAX_VALUE:,} characters"})


def tokens(value: str) -> dict[str, str]:
    """The members of Structured Field Dictionary ``value`` (RFC 9651 §4.2) whose value is a Token:
    key -> the token, a repeated key keeping its last value.

    A value whose every member is ``key=token`` with no parameters (the form aipref values take
    in the wild) is split at its commas; any other is parsed by ``http-sf``. http-sf, pure Python,
    takes ~5 µs per member: a robots.txt of 10,000 ``Content-Usage`` rules cost 0.10 s of its
    0.27 s bound (issue 23: 50 ms per 64 KiB) in http-sf alone, the split ~0.02 s. Every value
    :data:`_SIMPLE` matches is a Dictionary, and ``tests/test_policy_readers_fuzz.py`` checks the
    split against http-sf on generated values.

    Raises:
        ValueError: ``value`` is not a Dictionary (an upper-case key, for one).
    """
    core = value.strip(" ")  # the leading and trailing SP a parser discards (RFC 9651 §4.2)
    if _SIMPLE.fullmatch(core):
        return dict(member.split("=", 1) for member in _SEPARATOR.split(core))
    try:
        parsed = http_sf.parse(value.encode(), tltype="dictionary")
    except http_sf.StructuredFieldError as e:
        raise ValueError(f"not a structured field dictionary: {e}") from None
    return {k: str(item) for k, (item, _params) in parsed.items() if isinstance(item, http_sf.Token)}


def usage_preferences(value: str) -> dict[str, tuple[str, str]]:
    """Each AI-training category of :data:`LEGACY` that a Content-Usage value gives a preference,
    itself or through its parents: category -> (``y`` or ``n``, the key that stated it).

    Raises:
        ValueError: ``value`` is not a Structured Field Dictionary (RFC 9651 §4.2), an upper-case
            key included: it states no preference (draft-ietf-aipref-vocab-07 §6.5).
    """
    stated = {k: token for k, token in tokens(value).items() if k in _KEYS and token in ("y", "n")}
    return {category: (stated[key], key) for category, key in _deciding(frozenset(stated)).items()}


@cache
def _deciding(stated: frozenset[str]) -> dict[str, str]:
    """Each category of :data:`LEGACY` -> the key that states its preference when the keys
    ``stated`` state one: itself, else its nearest parent that does (none: left out)."""
    top = next((k for k in TOP if k in stated), None)
    found = {}
    for category in LEGACY:
        key: str | None = category
        while key is not None and key not in stated:
            # the older drafts' tree: train-ai below bots, all (or tdm)
            key = top if key == "train-ai" else LEGACY[key][1] if key in LEGACY else None
        if key is not None:
            found[category] = key
    return found


def draft_of(key: str) -> str:
    """The draft that defined ``key`` last (:data:`LEGACY`, :data:`TOP`)."""
    return LEGACY[key][0] if key in LEGACY else TOP[key]


def content_usage(value: str | None, signal: str = "Content-Usage") -> Signal | None:
    """``optout.aipref`` when ``value`` says ``n`` to an AI-training category (:func:`usage_preferences`),
    ``optout.invalid`` when it does not parse (it states no preference: never a reservation), else None.

    Evidence: ``{"signal", "value", "rule": the key=n that decided, "draft": the draft that defined
    that key, "preferences": {category: y|n}, "drafts": AIPREF_DRAFTS}`` (``{"signal", "value",
    "fault", "drafts"}`` when invalid).
    """
    if not value:
        return None
    if len(value) > MAX_VALUE:
        return too_long(value, signal)
    try:
        preferences = usage_preferences(value)
    except ValueError as e:
        return Signal("optout.invalid", {"signal": signal, "value": value, "fault": str(e), "drafts": AIPREF_DRAFTS})
    refused = [key for p, key in preferences.values() if p == "n"]
    if not refused:
        return None
    return Signal("optout.aipref", {"signal": signal, "value": value, "rule": f"{refused[0]}=n", "draft": draft_of(refused[0]),
                                    "preferences": {c: p for c, (p, _) in preferences.items()}, "drafts": AIPREF_DRAFTS})
