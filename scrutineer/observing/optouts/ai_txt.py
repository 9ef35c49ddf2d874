"""Spawning's ``/ai.txt`` (https://site.spawning.ai/spawning-ai-txt): robots.txt's syntax, read
as the site's wishes for AI training.

Groups and lines are read as robots.txt's (:mod:`scrutineer.observing.optouts.rules`: RFC 9309 §2.2, the
first 500 KiB, at most 10,000 rules); ``User-Agent`` starts a group, ``Allow`` and ``Disallow``
give its rules; other fields (``License:``, ``Contact:``) and prose are ignored. Rules are read as
Spawning's generator writes them:

- ``*.jpg``: a file extension, matched against the end of the URL's path (without its query),
  case-insensitively (``/a/B.JPG`` has it; ``/a.jpg.html`` has not). This is where ai.txt differs
  from robots.txt, where ``*.jpg`` matches any path holding ``.jpg``;
- other patterns are robots.txt path patterns (RFC 9309 §2.2.3: from the path's start, ``*`` any
  characters, a final ``$`` the end), matched in linear time (:class:`~scrutineer.observing.optouts.rules.Pattern`)
  against the URL's path, percent-encoding normalised (RFC 9309 §2.2.2); ``*`` alone matches
  every path.

The groups for ``*`` and for the configured AI agents apply (all of them: unlike robots.txt's most
specific group, ai.txt states the site's wishes for AI training, and any group may). Of their rules that match, the
longest pattern decides, and an ``Allow`` wins a tie (RFC 9309 §2.2.2). A file with no directives
(a prose policy, an HTML error page) is no signal.
"""

from __future__ import annotations

from typing import NamedTuple

from scrutineer.observing.optouts import Signal
from scrutineer.observing.optouts.rules import Pattern, read, url_path

_FIELDS = frozenset({"allow", "disallow"})


class Rule(NamedTuple):
    """One ``Allow``/``Disallow`` line of a group: its agents (lowercase), pattern, line number,
    ``extension`` (lowercase, with its dot) for a ``*.ext`` rule, and its matcher."""

    agents: tuple[str, ...]
    allow: bool
    pattern: str
    line: int
    extension: str | None
    matcher: Pattern


def parse(text: str, agents: frozenset[str] = frozenset()) -> list[Rule]:
    """The ``Allow``/``Disallow`` rules of an ai.txt (empty: no directives) in the groups for ``*``
    or for one of ``agents`` (lowercase product tokens), in the order they decide: the longest
    pattern first, an ``Allow`` first on a tie (RFC 9309 §2.2.2), then file order."""
    rules: dict[tuple, Rule] = {}  # a rule repeated in a group decides as its first line does
    for line in read(text, _FIELDS):
        key = (line.agents, line.field, line.value)
        if key in rules or not any(a == "*" or a in agents for a in line.agents):
            continue
        value = line.value
        extension = value[1:].lower() if value.startswith("*.") and value[2:].isalnum() and value.isascii() else None
        rules[key] = Rule(line.agents, line.field == "allow", value, line.number, extension, Pattern(value))
    return sorted(rules.values(), key=lambda r: (len(r.pattern), r.allow), reverse=True)


def judge(rules: list[Rule], url: str) -> Signal | None:
    """``optout.ai_txt`` when the deciding rule of ``rules`` (:func:`parse`) for ``url`` disallows
    it, else None.

    Evidence: ``{"signal": "ai.txt", "rule": "Disallow: <pattern>", "line", "agents"}``.
    """
    path = url_path(url, query=False)
    lowered = path.lower()
    best = next((rule for rule in rules if (lowered.endswith(rule.extension) if rule.extension else rule.matcher.match(path))), None)
    if best is None or best.allow:
        return None
    return Signal("optout.ai_txt", {"signal": "ai.txt", "rule": f"Disallow: {best.pattern}", "line": best.line, "agents": list(best.agents)})
