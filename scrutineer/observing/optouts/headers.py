"""Opt-out signals in the image response's own headers: ``X-Robots-Tag`` and IETF aipref
``Content-Usage``.

``X-Robots-Tag`` (Google's robots meta tag and X-Robots-Tag specification): a comma-separated list
of directives, each optionally scoped to one crawler as ``<agent>: <directive>``; a scope holds for
the directives after it up to the next scope. ``noai`` and ``noimageai`` are the AI-training
directives DeviantArt introduced and img2dataset honours; img2dataset's default list also refuses
``noindex`` and ``noimageindex``, which are about search indexing (configurable:
``optouts.header_directives``).

``Content-Usage``: an HTTP Structured Field Dictionary (RFC 9651, parsed by ``http-sf``) of usage
categories to ``y``/``n`` (draft-ietf-aipref-attach). The vocabulary is a draft
(:data:`AIPREF_DRAFTS`): its categories form a tree, Automated Processing ▸ AI Training ▸
Generative AI Training; a category with no preference takes its parent's, and when one category
is given both ``y`` and ``n``, ``n`` wins (the drafts' editor's reference implementation). The top
category's key changed across drafts (``tdm``, ``bots``, ``all``): all three are read.

Bound: a value longer than :data:`MAX_VALUE` characters is not read; it is ``optout.invalid``
(never a reservation), its evidence showing the first 200 characters.
"""

from __future__ import annotations

import http_sf

from scrutineer.observing.optouts import Signal

#: The aipref drafts this reading implements; kept with every aipref finding.
AIPREF_DRAFTS = "draft-ietf-aipref-vocab-05, draft-ietf-aipref-attach-04"
#: Keys of the top category (Automated Processing) across the drafts.
AIPREF_TOP = ("tdm", "bots", "all")
#: Category -> its parent below the top.
AIPREF_PARENT = {"train-ai": None, "train-genai": "train-ai"}
#: The categories whose ``n`` reserves a sample from an AI-training dataset.
AIPREF_TRAINING = ("train-ai", "train-genai")
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

    Evidence: ``{"signal": "X-Robots-Tag", "directive", "agent" (null: every crawler), "value"}``.
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
            return Signal("optout.header", {"signal": "X-Robots-Tag", "directive": directive, "agent": scope, "value": value})
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


def usage_preferences(value: str) -> dict[str, str]:
    """The resolved ``y``/``n`` of each category of :data:`AIPREF_TRAINING` in a Content-Usage
    value (categories with no preference, themselves or inherited, are left out).

    Raises:
        ValueError: ``value`` is not a Structured Field Dictionary (RFC 9651 §4.2).
    """
    try:
        parsed = http_sf.parse(value.encode(), tltype="dictionary")
    except http_sf.StructuredFieldError as e:
        raise ValueError(f"not a structured field dictionary: {e}") from None
    stated: dict[str, str] = {}
    for key, (item, _params) in parsed.items():
        if isinstance(item, http_sf.Token) and str(item) in ("y", "n"):
            stated[key] = "n" if stated.get(key) == "n" else str(item)
    top = next((stated[k] for k in AIPREF_TOP if k in stated), None)

    def resolve(category: str | None) -> str | None:
        while category is not None:
            if category in stated:
                return stated[category]
            category = AIPREF_PARENT[category]
        return top

    return {c: p for c in AIPREF_TRAINING if (p := resolve(c))}


def content_usage(value: str | None, signal: str = "Content-Usage") -> Signal | None:
    """``optout.aipref`` when ``value`` says ``n`` to AI training (:data:`AIPREF_TRAINING`),
    ``optout.invalid`` when it does not parse, else None.

    Evidence: ``{"signal", "value", "preferences", "drafts"}`` (``{"signal", "value", "fault"}``
    when invalid).
    """
    if not value:
        return None
    if len(value) > MAX_VALUE:
        return too_long(value, signal)
    try:
        preferences = usage_preferences(value)
    except ValueError as e:
        return Signal("optout.invalid", {"signal": signal, "value": value, "fault": str(e)})
    if "n" in preferences.values():
        return Signal("optout.aipref", {"signal": signal, "value": value, "preferences": preferences, "drafts": AIPREF_DRAFTS})
    return None
