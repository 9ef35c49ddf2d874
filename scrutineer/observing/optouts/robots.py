"""robots.txt (RFC 9309) read for AI crawlers: which of a list of AI user agents it disallows for a
URL, and the preferences its groups state: aipref ``Content-Usage`` rules
(draft-ietf-aipref-attach-05 §3) and Cloudflare's ``Content-Signal`` lines
(:mod:`~scrutineer.observing.optouts.content_signals`).

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

A group's preferences hold for the agents that obey it, as its Allow and Disallow rules do: the
``*`` group's for the agents no group names (img2dataset, as a rule), a named group's for its
own. Each group an agent of the list obeys is judged, and a sample is reserved when one of them
reserves it:

- ``Content-Usage: [path] prefs`` (attach-05 §3): the rules whose path matches the URL's, the
  longest deciding as for Allow/Disallow (a rule with no path is ``/``); rules of equal length
  combine, any ``n`` winning (attach-05 §3.1, vocab-07 §5.1); and they hold only on a path the
  group may crawl: "paths that cannot be crawled have no associated usage preferences" (§3.1).
- ``Content-Signal: search=yes, ai-train=no``: the group's lines, whatever the path (the policy
  gives them none), any ``no`` winning; lines before any ``User-agent`` line hold for every agent
  (:data:`~scrutineer.observing.optouts.rules.UNGROUPED`), their evidence's group ``null``.

protego itself is not used: on a 64 KB file of wildcard or ``$`` rules it spends 30-60 ms parsing
and up to 4 ms per URL, and choosing a group costs it (agents x groups) name searches, 130 ms for
~170 agents on a 64 KB file of user-agent lines. Here choosing groups costs (agents x the
substrings of an agent's name) dictionary look-ups, whatever the file, and each group chosen is
judged once per URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, cached_property
from importlib import resources

from scrutineer.core.config import FetchConfig
from scrutineer.observing.optouts import Signal, content_signals, rsl
from scrutineer.observing.optouts.headers import content_usage
from scrutineer.observing.optouts.rules import Pattern, read, url_path

_FIELDS = frozenset({"user-agent", "allow", "disallow", "content-usage", "content-signal", "license"})
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
        self._constant: dict[str, bool] = {}  # the groups whose verdict is the same for every path
        #: Group name -> its Content-Usage rules (path as written -> its pattern and its (preferences,
        #: line)s: a path is made a pattern once, however many rules give it) and its Content-Signal
        #: lines (value, line).
        self._usage: dict[str, dict[str, tuple[Pattern, list[tuple[str, int]]]]] = {}
        self._content_signal: dict[str, list[tuple[str, int]]] = {}
        #: Group name ("" for the lines outside any group) -> its RSL License URLs.
        self._licences: dict[str, list[str]] = {}
        self._judged: dict[tuple, Signal | None] = {}  # the signal of a set of lines, judged when first deciding
        for line in read(text, _FIELDS):
            if line.field == "user-agent":
                for name in line.agents:
                    order.setdefault(name, len(order))
            elif line.field == "content-usage":
                # a value starting with "/" starts with its path, up to the first SP or HTAB (attach-05 §3.2)
                path, *rest = line.value.split(None, 1) if line.value.startswith("/") else ("/", line.value)
                for name in line.agents:
                    rules = self._usage.setdefault(name, {})
                    rules.setdefault(path, (Pattern(path), []))[1].append((rest[0] if rest else "", line.number))
            elif line.field == "license":
                for name in line.agents or ("",):
                    self._licences.setdefault(name, []).append(line.value)
            elif line.field == "content-signal":
                for name in line.agents or ("",):  # "": before any group, for every agent
                    self._content_signal.setdefault(name, []).append((line.value, line.number))
            else:
                for name in line.agents:
                    self._rules.setdefault(name, []).append((line.value, line.field == "allow"))
        #: Agent -> the group it obeys ("*" for the catch-all group), for the agents some group covers.
        self.group_of = _groups_of(tuple(agents), order)
        self._groups = tuple(dict.fromkeys(self.group_of.values()))  # the groups some agent obeys
        self._refused: dict[frozenset[str], list[str]] = {}  # the agents of each set of refusing groups

    def _group(self, name: str) -> list[tuple[Pattern, bool]]:
        """The rules of group ``name``, longest pattern first and ``Allow`` first on a tie (RFC 9309
        §2.2.2), made when first judged: only the groups some agent obeys are."""
        if name not in self._sorted:
            found = [p for value, allow in dict.fromkeys(self._rules.get(name, ())) for p in _patterns(value, allow)]
            self._sorted[name] = sorted(found, key=lambda r: (len(r[0].text), r[1]), reverse=True)
            if all(pattern.text == "/" for pattern, _ in found):  # "Disallow: /", "Allow: /" or none: every path alike
                self._constant[name] = self._sorted[name][0][1] if found else True
        return self._sorted[name]

    def _allowed(self, group: str, path: str) -> bool:
        """Whether group ``group`` may crawl ``path`` (normalised): its longest matching rule's verdict."""
        rules = self._group(group)
        if group in self._constant:
            return self._constant[group]
        return next((allow for pattern, allow in rules if pattern.match(path)), True)

    def disallowed(self, url: str, path: str | None = None) -> list[str]:
        """The agents robots.txt disallows for ``url`` (whose :func:`url_path` is ``path``, if given),
        in the order given: each group an agent obeys is judged once, and the agents of the groups
        that disallow are listed once per such set of groups."""
        path = path or url_path(url)
        refusing = frozenset(g for g in self._groups if not self._allowed(g, path))
        if refusing not in self._refused:
            self._refused[refusing] = [a for a, g in self.group_of.items() if g in refusing]
        return self._refused[refusing]

    def judge(self, url: str) -> list[Signal]:
        """``optout.robots`` when an agent is disallowed for ``url``; what the ``Content-Usage``
        rules of a group an agent obeys say for its path
        (:func:`scrutineer.observing.optouts.headers.content_usage`: ``optout.aipref``), and what its
        ``Content-Signal`` lines say (``optout.content_signal``): at most one of each kind, the
        first group's in the agents' order, a reservation before an ``optout.invalid``.

        Evidence of ``optout.robots``: ``{"signal": "robots.txt", "agents": how many are
        disallowed, "named": those disallowed by a group that names them, "others": whether
        agents are disallowed by the ``*`` group}``. A preference's adds ``"group"`` (the
        ``User-agent`` name of the group it was read in) and ``"line"`` (its number in the file).
        """
        found = []
        path = url_path(url)
        if disallowed := self.disallowed(url, path):
            named = [a for a in disallowed if self.group_of[a] != "*"]
            found.append(Signal("optout.robots", {"signal": "robots.txt", "agents": len(disallowed), "named": named, "others": len(named) < len(disallowed)}))
        usage = [self._usage_of(group, path) for group in self._groups if self._usage.get(group) and self._allowed(group, path)]
        signals = [self._decided(("signal", group), group, self._content_signal[group], content_signals.judge)
                   for group in ("", *self._groups) if group in self._content_signal]
        for said in (usage, signals):
            said = [s for s in said if s]
            if said:
                found.append(next((s for s in said if s.reason != "optout.invalid"), said[0]))
        return found

    @cached_property
    def licences(self) -> dict[str, str]:
        """The RSL licences that hold for the agents, each URL with the ``License`` lines it was read
        from: a group's own, else those outside any group (RSL 1.0 §4.4.2-3), for each group an agent
        obeys (all agents when no group covers any); absolute http(s) URLs only, at most
        :data:`~scrutineer.observing.optouts.rsl.MAX_LICENCES` per group. Made once per file."""
        found: dict[str, str] = {}
        for group in self._groups or ("",):
            own = self._licences.get(group) if group else None
            urls = [u for v in own or self._licences.get("", ()) if (u := rsl.licence_url(v))]
            where = f"robots.txt License (group {group})" if own else "robots.txt License (outside any group)"
            for url in list(dict.fromkeys(urls))[: rsl.MAX_LICENCES]:
                found.setdefault(url, where)
        return found

    def _usage_of(self, group: str, path: str) -> Signal | None:
        """The signal of the group's Content-Usage rules of the longest path matching ``path``
        (:meth:`_decided`): each distinct path is matched once per URL."""
        matching = [(written, pattern) for written, (pattern, _) in self._usage[group].items() if pattern.match(path)]
        if not matching:
            return None
        longest = max(len(pattern.text) for _, pattern in matching)
        paths = tuple(written for written, pattern in matching if len(pattern.text) == longest)
        lines = [line for written in paths for line in self._usage[group][written][1]]
        if len(paths) > 1:
            lines.sort(key=lambda line: line[1])  # file order
        return self._decided(("usage", group, paths), group, lines, lambda value: content_usage(value, "robots.txt Content-Usage"))

    def _decided(self, key: tuple, group: str, lines: list[tuple[str, int]], judge: Callable[[str], Signal | None]) -> Signal | None:
        """What the ``lines`` (value, number; in file order) of ``group`` say together, judged once
        per policy under ``key`` (its URLs share it): the first reservation (any one wins), else the
        first ``optout.invalid``, else None; with the group and the deciding line in its evidence.
        The lines after the first reservation are not read."""
        if key not in self._judged:
            invalid = None
            for value, number in lines:
                signal = judge(value)
                if signal and signal.reason != "optout.invalid":
                    self._judged[key] = _placed(signal, group, number)
                    break
                if signal and invalid is None:
                    invalid = _placed(signal, group, number)
            else:
                self._judged[key] = invalid
        return self._judged[key]


def licence_urls(text: str) -> list[str]:
    """Every RSL licence URL a robots.txt names (``License:`` lines, in any group or none; absolute
    http(s) URLs, first :data:`~scrutineer.observing.optouts.rsl.MAX_LICENCES` distinct): what the
    content stage reads for its origin."""
    urls = (u for line in read(text, frozenset({"license"})) if (u := rsl.licence_url(line.value)))
    return list(dict.fromkeys(urls))[: rsl.MAX_LICENCES]


def _placed(signal: Signal | None, group: str, number: int) -> Signal | None:
    """``signal`` with the group (null for ``""``: before any group) and the line it was read at in its evidence."""
    return Signal(signal.reason, {**signal.evidence, "group": group or None, "line": number}) if signal else None


def _patterns(value: str, allow: bool) -> list[tuple[Pattern, bool]]:
    """The patterns of one ``Allow``/``Disallow`` value, with protego's two additions: a ``$`` is
    also a literal dollar (``%24``), and an allowed ``…/index.html`` also allows ``…/``."""
    pattern = Pattern(value)
    found = [(Pattern(pattern.text.replace("$", "%24"), normal=True), allow)] if "$" in value else []
    found.append((pattern, allow))
    if allow and pattern.text.endswith("/index.html"):
        found.append((Pattern(pattern.text.removesuffix("index.html") + "$", normal=True), allow))
    return found
