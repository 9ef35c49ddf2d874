"""robots.txt's syntax read once (scrutineer/observing/optouts/rules.py) and judged as protego judges it.

Hypothesis writes robots.txt files, agents and URLs from the pieces websites use (groups, the
spellings protego accepts, wildcards, ``$``, escapes, non-ASCII, comments, blank and stray lines);
for each, :class:`RobotsPolicy` must disallow exactly the agents protego 0.7 (the reference)
disallows, asked agent by agent. Where Scrutineer reads differently on purpose it is said here:
protego answers every ``/robots.txt`` URL with "allowed", a case no image URL is, so URLs here are
never that path.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from protego import Protego

from scrutineer.observing.optouts import ai_txt, rules, tdmrep
from scrutineer.observing.optouts.robots import RobotsPolicy

#: Hypothesis warns when the global ``random`` changes while it draws an example. These strategies
#: never use it, but the threads Prefect leaves running in the test process after an earlier test's
#: flow (GlobalEventLoopThread, EventsWorkerThread) may, and under load did (CI failed on it once).
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning")

#: Pieces of patterns and paths: the wildcards, escapes (of unreserved, reserved and non-ASCII
#: characters), a query, and few letters, so that patterns often match and tie.
_PIECES = ["/", "a", "b", "*", "$", "%61", "%2F", "%2f", "%24", "%", "é", "?", "=", ".jpg", "index.html", ":"]
_patterns = st.lists(st.sampled_from(_PIECES), max_size=5).map("".join)
_paths = st.lists(st.sampled_from([p for p in _PIECES if p != "*"]), max_size=5).map(lambda parts: "/" + "".join(parts))
_names = st.sampled_from(["GPTBot", "gptbot", "GPT", "CCBot", "Google-Extended", "google", "extended", "bot", "b", "*", "*", "GPT*Bot", "x y", "a", ""])
_fields = st.sampled_from(["User-agent"] * 5 + ["Allow"] * 3 + ["Disallow"] * 4 + [
    "user-agent", "USER-AGENT", "User agent", "useragent", "disallow", "Dissallow", "Sitemap", "Host", "Crawl-delay", "Content-Usage", "Unknown"])


@st.composite
def _lines(draw) -> str:
    kind = draw(st.sampled_from(["directive"] * 6 + ["no colon", "comment", "blank", "prose"]))
    field = draw(_fields)
    value = draw(_names) if "agent" in field.lower() else draw(_patterns)
    if kind == "directive":
        return f"{draw(st.sampled_from(['', ' ']))}{field}{draw(st.sampled_from([':', ': ', ' : ']))}{value}{draw(st.sampled_from(['', '', ' # note', '#']))}"
    if kind == "no colon":
        return f"{field} {value}"
    return {"comment": "# a comment", "blank": draw(st.sampled_from(["", "  ", "\t"])), "prose": "We reserve: all rights"}[kind]


_files = st.lists(_lines(), max_size=14).map("\n".join) | st.lists(_lines(), max_size=14).map("\r\n".join)
_agent_lists = st.lists(st.sampled_from(["GPTBot", "CCBot", "Google-Extended", "google-other", "Scrutineer", "bot", "a b", "gpt bot"]),
                        min_size=1, max_size=5, unique=True).map(tuple)


@settings(max_examples=600, deadline=None, database=None)
@given(text=_files, agents=_agent_lists, paths=st.lists(_paths, min_size=1, max_size=3))
# found by this test: a Content-Usage line without its colon is no line at all, so it does not end
# the run of User-agent lines around it
@example(text="User-agent:GPTBot\nUser-agent bot\nContent-Usage \nUser-agent:GPTBot\nDisallow:/", agents=("GPTBot", "bot"), paths=["/"])
@example(text="User-agent bot\nContent-Usage train-ai=n\nUser-agent:GPTBot\nDisallow:/", agents=("GPTBot", "bot"), paths=["/"])
def test_robots_policy_disallows_what_protego_disallows(text, agents, paths):
    ours, reference = RobotsPolicy(text, agents), Protego.parse(text)
    for path in paths:
        url = f"https://a.example{path}"
        assert sorted(ours.disallowed(url)) == sorted(a for a in agents if not reference.can_fetch(url, a)), (text, url)


@settings(max_examples=1500, deadline=None, database=None)
@given(pattern=_patterns.filter(bool), path=_paths)
def test_a_pattern_matches_where_protego_disallows(pattern, path):
    """One ``Disallow: <pattern>``: the linear matcher against protego's decision (the same
    normalisation of escapes, the same ``*`` and final ``$``)."""
    text = f"User-agent: *\nDisallow: {pattern}\n"
    url = f"https://a.example{path}"
    assert bool(RobotsPolicy(text, ("bot",)).disallowed(url)) == (not Protego.parse(text).can_fetch(url, "bot")), (pattern, path)


def test_ties_are_broken_as_rfc_9309_and_protego_break_them():
    """RFC 9309 §2.2.2: of two matching rules of one length, ``Allow`` wins; an agent named by two
    groups of one length obeys the first (protego's order)."""
    assert RobotsPolicy("User-agent: *\nDisallow: /a\nAllow: /a\n", ("bot",)).disallowed("https://a.example/a") == []
    two = "User-agent: gpt\nDisallow: /\n\nUser-agent: bot\nAllow: /\n"
    assert RobotsPolicy(two, ("gpt bot",)).disallowed("https://a.example/x") == ["gpt bot"]
    assert not Protego.parse(two).can_fetch("https://a.example/x", "gpt bot")


def test_wildcards_are_matched_without_backtracking():
    """Fault 2 (issue 23): ``/`` + ``*a`` x 12 + ``*b`` against 40 ``a``\\ s kept a regex engine busy
    for minutes (about 3.3x per ``*``). The matcher finds each literal part once, left to right."""
    pattern, path = "/" + "*a" * 12 + "*b", "/" + "a" * 40
    started = time.thread_time()
    assert not rules.Pattern(pattern).match(path)
    assert ai_txt.judge(ai_txt.parse(f"User-agent: *\nDisallow: {pattern}\n"), f"https://a.example{path}") is None
    assert tdmrep.from_file(tdmrep.parse_file(f'[{{"location": "{pattern}", "tdm-reservation": 1}}]'), f"https://a.example{path}") is None
    assert time.thread_time() - started < 0.05  # the whole of it, with the 50 ms bound of tests/test_policy_readers_fuzz.py
    assert rules.Pattern(pattern).match(path + "b")  # and a match is still found


def test_the_reader_keeps_the_first_500_kib_to_the_last_line_and_at_most_10000_rules():
    """RFC 9309 §2.5: a crawler must parse at least the first 500 KiB; the rest is not read."""
    line = "Disallow: /p/\n"
    kept = rules.read("User-agent: *\n" + line * 50_000, frozenset({"disallow"}))
    assert len(kept) == rules.MAX_RULES
    text = "User-agent: *\n" + "#" * (rules.MAX_BYTES - 20) + "\nDisallow: /cut-in-two-by-the-limit/\n"
    assert rules.read(text, frozenset({"disallow"})) == []  # its line starts before the limit but ends after it
    assert RobotsPolicy(text, ("bot",)).disallowed("https://a.example/cut-in-two-by-the-limit/x") == []


def test_groups_follow_rfc_9309():
    text = "User-agent: a\nUser-agent: b\nDisallow: /x\nSitemap: /s.xml\nAllow: /x/y\nUser-agent: c\nDisallow: /\n"
    assert [(line.agents, line.field, line.value, line.number) for line in rules.read(text, frozenset({"allow", "disallow"}))] == [
        (("a", "b"), "disallow", "/x", 3),  # consecutive User-agent lines share a group
        (("a", "b"), "allow", "/x/y", 5),  # a Sitemap line belongs to no group and ends none
        (("c",), "disallow", "/", 7),  # a User-agent line after a rule starts a new group
    ]
    assert rules.read("Disallow: /\n", frozenset({"disallow"})) == []  # a rule before any group is dropped


def test_ai_txt_extensions_differ_from_robots_txt_on_purpose():
    """Spawning's ``*.jpg`` is a file extension at the path's end; in robots.txt it matches any
    path holding ``.jpg``."""
    text = "User-agent: *\nDisallow: *.jpg\n"
    assert ai_txt.judge(ai_txt.parse(text), "https://a.example/a.jpg.html") is None
    assert ai_txt.judge(ai_txt.parse(text), "https://a.example/a/B.JPG").evidence["rule"] == "Disallow: *.jpg"
    assert RobotsPolicy(text, ("bot",)).disallowed("https://a.example/a.jpg.html") == ["bot"]
