"""Spawning's ``/ai.txt`` (https://site.spawning.ai/spawning-ai-txt): robots.txt's syntax, read
as the site's wishes for AI training.

Lines are ``Field: value``; ``User-Agent`` starts a group, ``Allow`` and ``Disallow`` give its
rules; other fields (``License:``, ``Contact:``) and prose are ignored. Rules are read as
Spawning's generator writes them:

- ``*.jpg``: a file extension, matched against the end of the URL's path, case-insensitively
  (``/a/B.JPG`` has it; ``/a.jpg.html`` has not);
- ``*`` alone and ``/`` match every path; other patterns are robots.txt path patterns (RFC 9309
  §2.2.3: from the path's start, ``*`` any characters, a final ``$`` the end).

The groups for ``*`` and for the configured AI agents apply. Of their rules that match, the
longest pattern decides, and an ``Allow`` wins a tie (RFC 9309 §2.2.2). A file with no directives
(a prose policy, an HTML error page) is no signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from urllib.parse import unquote, urlsplit

from scrutineer.optouts import Signal


@dataclass(frozen=True)
class Rule:
    """One ``Allow``/``Disallow`` line of a group: its agents (lowercase), pattern and line number."""

    agents: tuple[str, ...]
    allow: bool
    pattern: str
    line: int


def parse(text: str) -> list[Rule]:
    """The ``Allow``/``Disallow`` rules of an ai.txt, in file order (empty: no directives)."""
    rules: list[Rule] = []
    agents: list[str] = []
    in_rules = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        field, colon, value = line.partition(":")
        if not colon:
            continue
        field, value = field.strip().lower(), value.strip()
        if field == "user-agent":
            if in_rules:  # a User-Agent after rules starts a new group
                agents, in_rules = [], False
            agents.append(value.lower())
        elif field in ("allow", "disallow") and value:
            in_rules = True
            rules.append(Rule(tuple(agents) or ("*",), field == "allow", value, number))
    return rules


@cache
def _matcher(pattern: str) -> re.Pattern:
    if pattern in ("*", "/"):
        return re.compile("")
    if re.fullmatch(r"\*\.[A-Za-z0-9]+", pattern):
        return re.compile(".*" + re.escape(pattern[1:]) + "$", re.IGNORECASE)
    end = pattern.endswith("$")
    return re.compile(re.escape(pattern.removesuffix("$")).replace(r"\*", ".*") + ("$" if end else ""))


def judge(rules: list[Rule], url: str, agents: frozenset[str]) -> Signal | None:
    """``optout.ai_txt`` when the deciding rule for ``url`` disallows it, else None.

    Args:
        agents: lowercase product tokens whose groups apply besides ``*``.

    Evidence: ``{"signal": "ai.txt", "rule": "Disallow: <pattern>", "line", "agents"}``.
    """
    path = unquote(urlsplit(url).path) or "/"
    best: Rule | None = None
    for rule in rules:
        if not any(a == "*" or a in agents for a in rule.agents) or not _matcher(rule.pattern).match(path):
            continue
        if best is None or len(rule.pattern) > len(best.pattern) or (len(rule.pattern) == len(best.pattern) and rule.allow):
            best = rule
    if best is None or best.allow:
        return None
    return Signal("optout.ai_txt", {"signal": "ai.txt", "rule": f"Disallow: {best.pattern}", "line": best.line, "agents": list(best.agents)})
