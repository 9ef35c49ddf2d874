"""The opt-out signal readers (scrutineer/observing/optouts) on the real files in tests/data/optout.

Each expected verdict says why, quoting the spec or the file's own words."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from protego import Protego

from scrutineer.observing.optouts import ai_txt, c2pa, headers, tdmrep
from scrutineer.observing.optouts.robots import RobotsPolicy, default_agents
from scrutineer.observing.policy_files import origin, policy_file

URL = "https://example.org/img/photo.jpg"
NO_AGENTS = frozenset()
IMG2DATASET_DIRECTIVES = frozenset({"noai", "noimageai"})


@pytest.fixture(scope="module")
def optout(test_data):
    return test_data / "optout"


# --- ai.txt -----------------------------------------------------------------------------------------

AI_TXT = {
    # file: (reserved for an image at /img/photo.jpg?, the deciding rule, why)
    "arne.me__ai.txt": (True, "Disallow: /", "'User-Agent: *' then 'Disallow: /': everything"),
    "chemaclass.com__ai.txt": (False, None, "'Allow: /' and 'permits AI agents to ... train on its public content'"),
    "hacdias.com__ai.txt": (True, "Disallow: *.jpg", "the per-extension list has 'Disallow: *.jpg' (and 'Disallow: /')"),
    "lunnova_blog__ai.txt": (False, None, "'Spawning AI - Allow all': 'Allow: *.jpg', 'Allow: /'"),
    "mltshp.com__ai.txt": (True, "Disallow: *.jpg", "'Prevent datasets from using the following file types' lists *.jpg"),
    "omid.dev__ai.txt": (False, None, "free prose, no User-Agent/Allow/Disallow lines: no directives, no signal"),
    "taricorp.net__ai.txt": (True, "Disallow: /", "'Deny use of content for AI training': 'Disallow: /'"),
    "usbills.ai__ai.txt": (False, None, "'Disallow: *.svg', '*.json', '/static/' do not match /img/photo.jpg; 'Allow: /' does"),
}


@pytest.mark.parametrize("name", sorted(AI_TXT))
def test_ai_txt_files(optout, name):
    reserved, rule, _why = AI_TXT[name]
    found = ai_txt.judge(ai_txt.parse((optout / "ai_txt" / name).read_text()), URL)
    assert (found is not None) == reserved
    if found:
        assert found.reason == "optout.ai_txt" and found.evidence["rule"] == rule


def test_ai_txt_paths_and_extensions(optout):
    rules = ai_txt.parse((optout / "ai_txt" / "usbills.ai__ai.txt").read_text())
    # 'Disallow: /static/' is longer than 'Allow: /', so it decides under /static/ (RFC 9309 §2.2.2)
    assert ai_txt.judge(rules, "https://usbills.ai/static/chart.png").evidence["rule"] == "Disallow: /static/"
    assert ai_txt.judge(rules, "https://usbills.ai/logo.SVG").evidence["rule"] == "Disallow: *.svg"
    assert ai_txt.judge(rules, "https://usbills.ai/a.svg.html") is None  # an extension is the path's end
    scoped = "User-Agent: GPTBot\nDisallow: /\n"
    assert ai_txt.judge(ai_txt.parse(scoped), URL) is None  # a group for another agent does not apply
    assert ai_txt.judge(ai_txt.parse(scoped, frozenset({"gptbot"})), URL).evidence["agents"] == ["gptbot"]


# --- tdmrep.json ----------------------------------------------------------------------------------

TDMREP = {
    "cofob.dev__tdmrep.json": (True, None, "location '/', 'tdm-reservation': 1 (tab-indented JSON is still JSON)"),
    "debats.co__tdmrep.json": (True, "https://debats.co/mentions-legales", "location '/', reservation 1 with a tdm-policy"),
    "healsdata_ai-training-opt-out__tdmrep.json": (True, None, "location '/', 'tdm-reservation': 1"),
    "licence.thibaultsan.com__tdmrep.json": (True, "https://licence.thibaultsan.com/", "reservation 1 with a tdm-policy"),
    "xlr8harder.github.io__tdmrep.json": (False, None, "location '/*' with 'tdm-reservation': 0: TDM rights are not reserved"),
}


@pytest.mark.parametrize("name", sorted(TDMREP))
def test_tdmrep_files(optout, name):
    reserved, policy, _why = TDMREP[name]
    found = tdmrep.from_file(tdmrep.parse_file((optout / "tdmrep" / name).read_text()), URL)
    assert (found is not None) == reserved
    if found:
        assert found.reason == "optout.tdmrep" and found.evidence["tdm_policy"] == policy


def test_tdmrep_spec_examples(optout):
    examples = json.loads((optout / "tdmrep" / "w3c_tdmrep_spec_examples.json").read_text())
    files = [e["example"] for e in examples if e["preceding_paragraph"].startswith("`tdmrep.json`")]
    assert len(files) == 2
    # "simply structured as": one rule for the whole site
    assert tdmrep.from_file(tdmrep.parse_file(files[0]), URL).evidence["location"] == "/"
    # per-directory rules: reserved under /directory-a/ and /directory-b/html/, not for JPEGs under
    # /directory-b/images/ (reservation 0), nothing said elsewhere
    rules = tdmrep.parse_file(files[1])
    assert tdmrep.from_file(rules, "https://provider.com/directory-a/page.html").evidence["location"] == "/directory-a/"
    html = tdmrep.from_file(rules, "https://provider.com/directory-b/html/x.html")
    assert html.evidence["tdm_policy"] == "https://provider.com/policies/policy.json"
    assert tdmrep.from_file(rules, "https://provider.com/directory-b/images/cat.jpg") is None
    assert tdmrep.from_file(rules, "https://provider.com/elsewhere/cat.jpg") is None


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('{"location": "/", "tdm-reservation": 1}', "not an array"),
        ('[{"location": "/", "tdm-reservation": "1"}]', "tdm-reservation '1' is not 0 or 1"),
        ('[{"location": "/", "tdm-reservation": true}]', "is not 0 or 1"),
        ('[{"tdm-reservation": 1}]', "location None is not a path pattern"),
        ('[{"location": "/", "tdm-reservation": 1, "tdm-policy": "policy.json"}]', "is not an http(s) URL"),
        ("<!doctype html>", "not JSON"),
    ],
)
def test_tdmrep_non_conformant_files_are_refused_with_the_fault(text, fault):
    with pytest.raises(ValueError, match=fault.replace("(", r"\(").replace(")", r"\)")):
        tdmrep.parse_file(text)


def test_tdmrep_headers(optout):
    examples = json.loads((optout / "tdmrep" / "w3c_tdmrep_spec_examples.json").read_text())
    headers_example = next(e["example"] for e in examples if "tdm-policy:" in e["example"] and e["section"].startswith("TDM Header"))
    fields = dict(line.strip().split(": ", 1) for line in headers_example.strip().splitlines()[1:])
    found = tdmrep.from_headers(fields["tdm-reservation"], fields["tdm-policy"])
    assert found.reason == "optout.tdmrep" and found.evidence["tdm_policy"] == "https://provider.com/policies/policy.json"
    assert tdmrep.from_headers("0", None) is None
    assert tdmrep.from_headers("yes", None).reason == "optout.invalid"


# --- X-Robots-Tag and Content-Usage ----------------------------------------------------------------


def test_img2dataset_header_directives(optout):
    readme = (optout / "http_headers" / "img2dataset_README_optout_directives_excerpt.md").read_text()
    for directive in ("noai", "noindex", "noimageai", "noimageindex"):
        assert f"`X-Robots-Tag: {directive}`" in readme
        found = headers.x_robots_tag(directive, IMG2DATASET_DIRECTIVES, NO_AGENTS)
        # noai / noimageai reserve AI use; noindex / noimageindex are about search indexing, which
        # img2dataset's default also refuses ("default '["noai", "noimageai", "noindex", "noimageindex"]'")
        assert (found is not None) == (directive in ("noai", "noimageai"))
    img2dataset_default = frozenset({"noai", "noimageai", "noindex", "noimageindex"})
    assert headers.x_robots_tag("noindex", img2dataset_default, NO_AGENTS).evidence["directive"] == "noindex"


def test_x_robots_tag_agent_scope():
    agents = frozenset({"gptbot"})
    assert headers.x_robots_tag("GPTBot: noai", IMG2DATASET_DIRECTIVES, agents).evidence["agent"] == "gptbot"
    assert headers.x_robots_tag("googlebot: noai", IMG2DATASET_DIRECTIVES, agents) is None
    # a scope holds up to the next one; 'unavailable_after: <date>' is a directive, not a scope
    assert headers.x_robots_tag("googlebot: nofollow, gptbot: noindex, noimageai", IMG2DATASET_DIRECTIVES, agents).evidence["agent"] == "gptbot"
    assert headers.x_robots_tag("unavailable_after: 25 Jun 2010, noai", IMG2DATASET_DIRECTIVES, agents).evidence["agent"] is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("train-ai=n", "optout.aipref"),  # the attach draft's own example
        ("train-genai=n", "optout.aipref"),
        ("bots=n", "optout.aipref"),  # the top category covers AI training below it
        ("bots=n, train-ai=y", None),  # a child's own preference beats its parent's
        ("search=n", None),  # search is not AI training
        ("train-ai=maybe", None),  # neither y nor n: no preference
        ("train-ai=n;;", "optout.invalid"),  # not a structured field dictionary (RFC 9651)
    ],
)
def test_content_usage(value, reason):
    found = headers.content_usage(value)
    assert (found.reason if found else None) == reason
    if reason == "optout.aipref":
        assert found.evidence["value"] == value and found.evidence["drafts"] == headers.AIPREF_DRAFTS


# --- robots.txt --------------------------------------------------------------------------------------


def test_agent_list_is_the_ai_robots_txt_list_plus_img2dataset_and_our_own(optout):
    listed = json.loads((optout / "ai_robots_txt_reference" / "robots.json").read_text())
    assert set(default_agents()) == set(listed) | {"img2dataset", "Scrutineer"}


@pytest.fixture(scope="module")
def news_sites(optout) -> dict[str, str]:
    """Website -> the text of its robots.txt, from the 2025-03-29 snapshot of 100 news sites."""
    csv.field_size_limit(1 << 24)
    with (optout / "robots_txt" / "news_top100_robots_txt_2025-03-29.csv").open(newline="") as f:
        return {row["Website"]: row["robots"] or "" for row in csv.DictReader(f)}


def test_disallowed_agents_agree_with_protego_on_every_news_site(news_sites):
    """Acceptance 2: for each site's real robots.txt, the agents Scrutineer calls disallowed are
    exactly those protego, asked agent by agent, refuses (the CSV's own labels are not used)."""
    assert len(news_sites) == 100
    agents = default_agents()
    disagreements, disallowing = [], 0
    for site, text in news_sites.items():
        ours, reference = RobotsPolicy(text, agents), Protego.parse(text)
        for path in ("/", "/images/photo.jpg", "/wp-content/uploads/2025/03/a.png", "/search?q=x"):
            url = f"https://www.{site}{path}"
            expected = [a for a in agents if not reference.can_fetch(url, a)]
            if sorted(ours.disallowed(url)) != sorted(expected):
                disagreements.append((site, path))
            disallowing += bool(expected)
    assert disagreements == []
    assert disallowing > 100  # most of these sites refuse some AI agent: the comparison is not vacuous


def test_robots_verdicts_on_news_sites(news_sites):
    sites = news_sites
    agents = default_agents()
    # globo.com: "User-agent: CCBot / Disallow: /", the same for GPTBot and Google-Extended
    found = RobotsPolicy(sites["globo.com"], agents).judge("https://www.globo.com/img/a.jpg")
    assert [(s.evidence["named"], s.evidence["others"]) for s in found] == [(["CCBot", "Google-Extended", "GPTBot"], False)]
    # the fixture web's own robots.txt disallows /private/ to Scrutineer only; 'User-agent: *' then 'Disallow: /' to every agent
    everyone = RobotsPolicy("User-agent: *\nDisallow: /\n", agents).judge("https://a.example/x.jpg")[0].evidence
    assert everyone == {"signal": "robots.txt", "agents": len(agents), "named": [], "others": True}
    # foxnews.com: only 'User-agent: *' with search and print pages disallowed; nothing for AI agents
    assert RobotsPolicy(sites["foxnews.com"], agents).judge("https://www.foxnews.com/img/a.jpg") == []
    # yahoo.co.jp: the snapshot's fetch failed (empty text): no rules
    assert RobotsPolicy(sites["yahoo.co.jp"], agents).judge("https://www.yahoo.co.jp/a.jpg") == []


def test_robots_content_usage_lines():
    text = "User-Agent: *\nAllow: /\nContent-Usage: train-ai=n\nContent-Usage: /public/ train-ai=y\n"
    policy = RobotsPolicy(text, default_agents())
    assert [s.reason for s in policy.judge("https://a.example/img/x.jpg")] == ["optout.aipref"]
    assert policy.judge("https://a.example/public/x.jpg") == []  # the longer path's line decides
    other = RobotsPolicy("User-Agent: somebot\nContent-Usage: train-ai=n\n", default_agents())
    assert other.judge("https://a.example/x.jpg") == []  # a group for an agent not on the list


def test_an_html_page_is_not_a_policy_file():
    """A site answering every path with its home page (a soft 404) has no ai.txt or tdmrep.json."""
    page = policy_file("https://a.example", "tdmrep.json", datetime.now(UTC), "alive", b"<!doctype html>", http_status=200, content_type="text/html; charset=utf-8")
    assert page.sha256 and page.served is None
    served = policy_file("https://a.example", "ai.txt", datetime.now(UTC), "alive", b"User-Agent: *\nDisallow: /\n", http_status=200, content_type="text/plain")
    assert served.served == "User-Agent: *\nDisallow: /\n" and served.url == "https://a.example/ai.txt"


# --- C2PA -----------------------------------------------------------------------------------------------


def test_c2pa_training_mining(optout):
    signed = c2pa.read_training_mining((optout / "c2pa" / "datadiligence_sample_c2pa.png").read_bytes())
    found = c2pa.judge(signed)
    # the PNG's c2pa.training-mining assertion sets ai_training, ai_generative_training and
    # data_mining to notAllowed (ai_inference too, which is not about training and is left out)
    assert found.reason == "optout.c2pa"
    assert found.evidence["not_allowed"] == ["c2pa.ai_generative_training", "c2pa.ai_training", "c2pa.data_mining"]
    # CA.jpg carries a C2PA manifest without any training-mining assertion: no signal
    assert c2pa.read_training_mining((optout / "c2pa" / "c2pa-rs_CA.jpg").read_bytes()) is None


def test_c2pa_constrained_is_for_review():
    observed = json.dumps({"label": "cawg.training-mining", "entries": {"cawg.ai_training": "constrained", "cawg.ai_inference": "notAllowed"},
                           "constraints": {"cawg.ai_training": "licence required"}, "validation_state": "Valid"})
    found = c2pa.judge(observed)
    assert found.reason == "optout.constrained" and found.evidence["constraints"] == {"cawg.ai_training": "licence required"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://A.Example:80/x.jpg", "http://a.example"),  # host lowercased, the default port left out
        ("https://a.example:8443/x?y#z", "https://a.example:8443"),
        ("http://[::1]:8080/a", "http://[::1]:8080"),
        ("ftp://a.example/x", None),
        ("http://user:pw@a.example/x", None),  # credentials: never fetched, no policy files either
        ("http://a.example:99999/x", None),
        (None, None),
    ],
)
def test_origin_of_a_url(url, expected):
    assert origin(url) == expected
