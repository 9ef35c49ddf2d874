"""robots.txt (RFC 9309) read for AI crawlers: which of a list of AI user agents it disallows for a
URL, and its aipref ``Content-Usage`` lines (draft-ietf-aipref-attach §4).

The default list of agents (:func:`default_agents`) is the ai-robots-txt project's ``robots.json``
(MIT, shipped as package data: ``ai_robots.json``), plus ``img2dataset`` (LAION's downloader) and
Scrutineer's own product token.

The file is read by :mod:`scrutineer.observing.optouts.rules` (one group and line reader, one linear-time
pattern matcher, the bounds of RFC 9309 §2.5) and judged as protego 0.7 judges it, the reference
``tests/test_optouts.py`` and ``tests/test_policy_readers_fuzz.py`` compare with:

- an agent obeys the group whose ``User-agent`` name occurs in the agent's name at a token start
  (the start, or after a character that is neither alphanumeric nor ``-``/``_``), the longest such
  name, the first in the file on a tie; else the ``*`` group (RFC 9309 §2.2.1); several groups with
  one name are one;
- of that group's rules matching the URL's path and query, the longest pattern decides, and an
  ``Allow`` wins a tie (RFC 9309 §2.2.2); none matching allows;
- as protego does, a pattern with a ``$`` also holds with the ``$`` taken literally (``%24``), and
  ``Allow: /x/index.html`` also allows ``/x/``.

protego itself is not used: on a 64 KB file of wildcard or ``$`` rules it spends 30-60 ms parsing
and up to 4 ms per URL, and choosing a group costs it (agents x groups) name searches, 130 ms for
~170 agents on a 64 KB file of user-agent lines. Here choosing groups costs (agents x the
substrings of an agent's name) dictionary look-ups, whatever the file, and each group chosen is
judged once per URL.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from scrutineer.core.config import FetchConfig
from scrutineer.observing.optouts import Signal
from scrutineer.observing.optouts.headers import content_usage
from scrutineer.observing.optouts.rules import Pattern, read, url_path

_FIELDS = frozenset({"user-agent", "allow", "disallow", "content-usage"})
#: Characters after which a group's name may start inside an agent's name (protego's token start).
_IN_TOKEN = set("-_")


@cache
def default_agents() -> tuple[str, ...]:
    """The ai-robots-txt ``robots.json`` agents (166 at commit 738c80d), ``img2dataset`` and
    Scrutineer's default product token (``fetch.robots_agent``)."""
    listed = json.loads(resources.files("scrutineer.observing.optouts").joinpath("ai_robots.json").read_text())
    return tuple(dict.fromkeys([*listed, "img2dataset", FetchConfig.model_fields["robots_agent"].default]))


@cache
def _token_index(agents: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Each substring of an agent's name (lowercase) that starts at a token start -> the agents
    whose names hold it there: the group names that may choose them (about 30,000 keys for the
    default agents, made once)."""
    index: dict[str, list[str]] = {}
    for agent in agents:
        name = agent.strip().lower()
        for start in range(len(name)):
            if start == 0 or not (name[start - 1].isalnum() or name[start - 1] in _IN_TOKEN):
                for end in range(start + 1, len(name) + 1):
                    index.setdefault(name[start:end], []).append(agent)
    return {k: tuple(dict.fromkeys(v)) for k, v in index.items()}


def _groups_of(agents: tuple[str, ...], order: dict[str, int]) -> dict[str, str]:
    """Agent -> the group name it obeys (``order``: a file's names by first appearance): the longest
    name at a token start of its name, the first on a tie, ``*`` (length 1) if present; agents no
    group covers are left out. Costs one look-up per name of the file and one step per agent a
    name may choose."""
    index = _token_index(agents)
    best: dict[str, tuple[int, int]] = {a: (1, -order["*"]) for a in agents} if "*" in order else {}
    chosen = dict.fromkeys(best, "*")
    for name, at in order.items():
        for agent in index.get(name, ()):
            if (key := (len(name), -at)) > best.get(agent, (0, 0)):
                best[agent], chosen[agent] = key, name
    return {a: chosen[a] for a in agents if a in chosen}


class RobotsPolicy:
    """One robots.txt, read for a list of agents.

    Args:
        text: the file's text, any size (:func:`scrutineer.observing.optouts.rules.read` reads its first
            500 KiB).
        agents: product tokens to check (e.g. :func:`default_agents`).
    """

    def __init__(self, text: str, agents: tuple[str, ...]) -> None:
        order: dict[str, int] = {}
        self._rules: dict[str, list[tuple[str, bool]]] = {}
        self._sorted: dict[str, list[tuple[Pattern, bool]]] = {}
        self.usage: list[tuple[Pattern, str]] = []
        self._usage_signals: dict[int, Signal | None] = {}  # by index in usage, parsed when first deciding
        tokens = {a.lower() for a in agents}
        for line in read(text, _FIELDS):
            if line.field == "user-agent":
                for name in line.agents:
                    order.setdefault(name, len(order))
            elif line.field == "content-usage":
                if any(a == "*" or a in tokens for a in line.agents):
                    path, _, rest = line.value.partition(" ")
                    self.usage.append((Pattern(path), rest.strip()) if path.startswith("/") else (Pattern("/"), line.value))
            else:
                for name in line.agents:
                    self._rules.setdefault(name, []).append((line.value, line.field == "allow"))
        #: Agent -> the group it obeys ("*" for the catch-all group), for the agents some group covers.
        self.group_of = _groups_of(tuple(agents), order)

    def _group(self, name: str) -> list[tuple[Pattern, bool]]:
        """The rules of group ``name``, longest pattern first and ``Allow`` first on a tie (RFC 9309
        §2.2.2), made when first judged: only the groups some agent obeys are."""
        if name not in self._sorted:
            found = [p for value, allow in dict.fromkeys(self._rules.get(name, ())) for p in _patterns(value, allow)]
            self._sorted[name] = sorted(found, key=lambda r: (len(r[0].text), r[1]), reverse=True)
        return self._sorted[name]

    def disallowed(self, url: str) -> list[str]:
        """The agents robots.txt disallows for ``url``, in the order given, each group judged once."""
        path = url_path(url)
        verdicts: dict[str, bool] = {}
        out = []
        for agent, group in self.group_of.items():
            if group not in verdicts:
                verdicts[group] = next((allow for pattern, allow in self._group(group) if pattern.match(path)), True)
            if not verdicts[group]:
                out.append(agent)
        return out

    def judge(self, url: str) -> list[Signal]:
        """``optout.robots`` when an agent is disallowed for ``url``, and what a ``Content-Usage``
        line for its path says (:func:`scrutineer.observing.optouts.headers.content_usage`).

        Evidence of ``optout.robots``: ``{"signal": "robots.txt", "agents": how many are
        disallowed, "named": those disallowed by a group that names them, "others": whether
        agents are disallowed by the ``*`` group}``.
        """
        found = []
        if disallowed := self.disallowed(url):
            named = [a for a in disallowed if self.group_of[a] != "*"]
            found.append(Signal("optout.robots", {"signal": "robots.txt", "agents": len(disallowed), "named": named, "others": len(named) < len(disallowed)}))
        path = url_path(url)
        matching = [i for i, (pattern, _) in enumerate(self.usage) if pattern.match(path)]
        if matching:
            line = max(matching, key=lambda i: len(self.usage[i][0].text))  # the first of the longest
            if line not in self._usage_signals:
                self._usage_signals[line] = content_usage(self.usage[line][1], "robots.txt Content-Usage")
            if signal := self._usage_signals[line]:
                found.append(signal)
        return found


def _patterns(value: str, allow: bool) -> list[tuple[Pattern, bool]]:
    """The patterns of one ``Allow``/``Disallow`` value, with protego's two additions: a ``$`` is
    also a literal dollar (``%24``), and an allowed ``…/index.html`` also allows ``…/``."""
    pattern = Pattern(value)
    found = [(Pattern(pattern.text.replace("$", "%24"), normal=True), allow)] if "$" in value else []
    found.append((pattern, allow))
    if allow and pattern.text.endswith("/index.html"):
        found.append((Pattern(pattern.text.removesuffix("index.html") + "$", normal=True), allow))
    return found
