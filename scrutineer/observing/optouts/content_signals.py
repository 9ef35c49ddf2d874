"""Cloudflare's Content Signals: a robots.txt group's ``Content-Signal`` line.

The Content Signals Policy (contentsignals.org, CC0; the comment block Cloudflare's managed
robots.txt serves, as its docs quote it, cloudflare/cloudflare-docs ``managed-robots-txt.mdx``) names
three signals, each ``yes`` or ``no``, written in a ``User-agent`` group as ``Content-Signal:
search=yes, ai-train=no``:

- ``search``: building a search index and providing search results;
- ``ai-input``: inputting content into AI models (retrieval-augmented generation, grounding);
- ``ai-train``: "training or fine-tuning AI models".

"(b) If a content-signal = no, you may not collect content for the corresponding use. (c) If the
website operator does not include a content signal for a corresponding use, the website operator
neither grants nor restricts permission", and the policy declares every restriction "an express
reservation of rights under Article 4" of Directive (EU) 2019/790. The vocabulary went to the IETF
as draft-romm-aipref-contentsignals-00 (2025-09-25), which defines the three terms only.

So ``ai-train=no`` reserves a sample for a dataset built to train models; ``search`` and
``ai-input`` do not. The policy states no syntax beyond its examples, and this reader takes what
they show, and no more: comma-separated ``key=value`` items, blanks around them ignored; keys and
values compared case-insensitively (robots.txt's field names are, RFC 9309 §2.2, and Cloudflare
writes both ``Content-signal`` and ``Content-Signal``). Keys the policy does not name (Cloudflare's
2026 ``use=reference``) and values other than ``yes``/``no`` state nothing; a key given twice
keeps its most restrictive value (``no``), as aipref combines preferences
(draft-ietf-aipref-vocab-07 §5.1). A line with no ``key=value`` item at all is not a content
signal: ``optout.invalid``.

Bound: a value over :data:`~scrutineer.observing.optouts.headers.MAX_VALUE` characters is not read
(``optout.invalid``); reading is one split, linear in the value.
"""

from __future__ import annotations

from scrutineer.observing.optouts import Signal
from scrutineer.observing.optouts.headers import MAX_VALUE, too_long

#: The policy's signals.
SIGNALS = ("search", "ai-input", "ai-train")
#: What the evidence names as the rule's source.
SPEC = "Content Signals Policy (contentsignals.org); draft-romm-aipref-contentsignals-00"


def parse(value: str) -> dict[str, str]:
    """``{signal: "yes" | "no"}`` of the :data:`SIGNALS` a ``Content-Signal`` value states.

    Raises:
        ValueError: the value has no ``key=value`` item.
    """
    stated: dict[str, str] = {}
    items = 0
    for item in value.split(","):
        key, equals, said = item.partition("=")
        if not equals or not key.strip():
            continue
        items += 1
        key, said = key.strip().lower(), said.strip().lower()
        if key in SIGNALS and said in ("yes", "no") and stated.get(key) != "no":
            stated[key] = said
    if not items:
        raise ValueError("no key=value item")
    return stated


def judge(value: str) -> Signal | None:
    """``optout.content_signal`` when a ``Content-Signal`` value says ``ai-train=no``,
    ``optout.invalid`` when it is not one (:func:`parse`) or is too long, else None.

    Evidence: ``{"signal": "robots.txt Content-Signal", "rule": "ai-train=no", "value", "signals":
    every signal stated, "spec"}`` (the robots.txt reader adds the line's group and number).
    """
    signal = "robots.txt Content-Signal"
    if len(value) > MAX_VALUE:
        return too_long(value, signal)
    try:
        stated = parse(value)
    except ValueError as e:
        return Signal("optout.invalid", {"signal": signal, "value": value, "fault": str(e)})
    if stated.get("ai-train") != "no":
        return None
    return Signal("optout.content_signal", {"signal": signal, "rule": "ai-train=no", "value": value, "signals": stated, "spec": SPEC})
