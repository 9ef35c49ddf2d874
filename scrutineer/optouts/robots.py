"""robots.txt (RFC 9309) read for AI crawlers: which of a list of AI user agents it disallows for a
URL (decided by protego), and its aipref ``Content-Usage`` lines (draft-ietf-aipref-attach §4).

The default list of agents (:func:`default_agents`) is the ai-robots-txt project's ``robots.json``
(MIT, shipped as package data: ``ai_robots.json``), plus ``img2dataset`` (LAION's downloader) and
Scrutineer's own product token.

Speed: protego answers one (URL, agent) question in ~1.5 µs, so asking it for each of ~170 agents
would cost ~250 µs per sample. An agent that no ``User-agent`` line can name (protego matches a
group's token inside the agent's name, RFC 9309 §2.2.1) gets the ``*`` group's answer, as every
such agent does; so protego is asked once for all of them and once for each agent a line may name.
``tests/test_optouts.py`` checks the result against protego asked agent by agent.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from urllib.parse import urlsplit

from protego import Protego

from scrutineer.config import FetchConfig
from scrutineer.optouts import Signal
from scrutineer.optouts.headers import content_usage

_USER_AGENT = re.compile(r"^\s*user[- ]?agent\s*:\s*([^#\s/]+)", re.IGNORECASE | re.MULTILINE)
_CONTENT_USAGE = re.compile(r"^\s*content-usage\s*:\s*(.*?)\s*(?:#.*)?$", re.IGNORECASE)


@cache
def default_agents() -> tuple[str, ...]:
    """The ai-robots-txt ``robots.json`` agents (166 at commit 738c80d), ``img2dataset`` and
    Scrutineer's default product token (``fetch.robots_agent``)."""
    listed = json.loads(resources.files("scrutineer.optouts").joinpath("ai_robots.json").read_text())
    return tuple(dict.fromkeys([*listed, "img2dataset", FetchConfig.model_fields["robots_agent"].default]))


class RobotsPolicy:
    """One robots.txt, read for a list of agents.

    Args:
        text: the file's text.
        agents: product tokens to check (e.g. :func:`default_agents`).
    """

    def __init__(self, text: str, agents: tuple[str, ...]) -> None:
        self.parser = Protego.parse(text)
        named = {n.lower().replace("*", "") for n in _USER_AGENT.findall(text)} - {""}
        self.specific = [a for a in agents if any(n in a.lower() for n in named)]
        self.unnamed = [a for a in agents if a not in set(self.specific)]
        self.usage = _usage_lines(text, {a.lower() for a in agents})

    def disallowed(self, url: str) -> list[str]:
        """The agents robots.txt disallows for ``url``, as protego decides for each."""
        out = [a for a in self.specific if not self.parser.can_fetch(url, a)]
        if self.unnamed and not self.parser.can_fetch(url, self.unnamed[0]):
            out += self.unnamed
        return out

    def judge(self, url: str) -> list[Signal]:
        """``optout.robots`` when an agent is disallowed for ``url``, and what a ``Content-Usage``
        line for its path says (:func:`scrutineer.optouts.headers.content_usage`).

        Evidence of ``optout.robots``: ``{"signal": "robots.txt", "agents": how many are
        disallowed, "named": those disallowed by a group that may name them, "others": whether
        every other agent of the list is disallowed too (by the ``*`` group)}``.
        """
        found = []
        if disallowed := self.disallowed(url):
            named = [a for a in disallowed if a in self.specific]
            others = len(disallowed) > len(named)
            found.append(Signal("optout.robots", {"signal": "robots.txt", "agents": len(disallowed), "named": named, "others": others}))
        path = urlsplit(url).path or "/"
        matching = [(p, v) for p, v in self.usage if path.startswith(p)]
        if matching and (signal := content_usage(max(matching, key=lambda m: len(m[0]))[1], "robots.txt Content-Usage")):
            found.append(signal)
        return found


def _usage_lines(text: str, agents: set[str]) -> list[tuple[str, str]]:
    """``(path prefix, preferences)`` of the Content-Usage lines in groups for ``*`` or for one of
    ``agents``; a line without a path (``Content-Usage: train-ai=n``) covers ``/``."""
    lines, group, in_rules = [], [], False
    for raw in text.splitlines():
        ua = _USER_AGENT.match(raw)
        if ua:
            if in_rules:
                group, in_rules = [], False
            group.append(ua.group(1).lower())
            continue
        usage = _CONTENT_USAGE.match(raw)
        if usage is None:
            in_rules = in_rules or bool(raw.split("#", 1)[0].strip())
            continue
        in_rules = True
        if any(g == "*" or g in agents for g in group):
            value = usage.group(1)
            path, _, rest = value.partition(" ")
            lines.append((path, rest.strip()) if path.startswith("/") else ("/", value))
    return lines
