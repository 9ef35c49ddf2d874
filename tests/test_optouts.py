"""The opt-out signal readers (scrutineer/observing/optouts) on the real files in tests/data/optout.

Each expected verdict says why, quoting the spec or the file's own words."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from protego import Protego

from scrutineer.detectors.optouts import OptoutsParams
from scrutineer.observing.optouts import ai_txt, c2pa, content_signals, headers, iptc, rsl, tdmrep
from scrutineer.observing.optouts.robots import RobotsPolicy, default_agents, licence_urls
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


def test_noml_as_mojeek_proposes_it(optout):
    """NoML: "The proposal here is to add a new 'noml' value to the already-existing meta and
    X-Robots tag ... for non-HTML using: X-Robots-Tag: noml"; img2dataset#365 asks for it beside
    noai and noimageai. It is in the detector's default directives, and its evidence names the
    proposal."""
    letter = (optout / "http_headers" / "mojeek_noml_open_letter_excerpt.md").read_text()
    assert "X-Robots-Tag: noml" in letter and "should not be used in machine learning" in letter
    default = frozenset(OptoutsParams().header_directives)
    assert default == {"noai", "noimageai", "noml"}
    found = headers.x_robots_tag("noindex, nofollow, noml", default, NO_AGENTS)  # the letter's combination
    assert found.reason == "optout.header" and found.evidence["directive"] == "noml"
    assert "NoML" in found.evidence["spec"] and "DeviantArt" in headers.x_robots_tag("noai", default, NO_AGENTS).evidence["spec"]
    # scoped as the letter's <meta name="gptbot" content="noml">: for an agent on the list only
    assert headers.x_robots_tag("gptbot: noml", default, frozenset({"gptbot"})).evidence["agent"] == "gptbot"
    assert headers.x_robots_tag("googlebot: noml", default, frozenset({"gptbot"})) is None


def test_x_robots_tag_agent_scope():
    agents = frozenset({"gptbot"})
    assert headers.x_robots_tag("GPTBot: noai", IMG2DATASET_DIRECTIVES, agents).evidence["agent"] == "gptbot"
    assert headers.x_robots_tag("googlebot: noai", IMG2DATASET_DIRECTIVES, agents) is None
    # a scope holds up to the next one; 'unavailable_after: <date>' is a directive, not a scope
    assert headers.x_robots_tag("googlebot: nofollow, gptbot: noindex, noimageai", IMG2DATASET_DIRECTIVES, agents).evidence["agent"] == "gptbot"
    assert headers.x_robots_tag("unavailable_after: 25 Jun 2010, noai", IMG2DATASET_DIRECTIVES, agents).evidence["agent"] is None


@pytest.mark.parametrize(
    ("value", "reason", "rule", "draft"),
    [
        # draft-ietf-aipref-vocab-07 §6: "train-ai=y, search=n" is its example; "n" disallows
        ("train-ai=n", "optout.aipref", "train-ai=n", "draft-ietf-aipref-vocab-07"),
        ("train-ai=y, search=n", None, None, None),  # search is not AI training
        ("search=n", None, None, None),
        # §6.5: a repeated key keeps its last value (RFC 9651 §4.2.2)
        ("train-ai=n, train-ai=y", None, None, None),
        ("train-ai=y, train-ai=n", "optout.aipref", "train-ai=n", "draft-ietf-aipref-vocab-07"),
        # §6.5: "values that are not Tokens, and Token values that are other than y or n ... are not errors": unknown
        ('train-ai="n"', None, None, None),
        ("train-ai=maybe", None, None, None),
        ("train-ai", None, None, None),  # a bare key is Boolean true
        ("unknown-use=n, train-ai=y", None, None, None),  # unknown labels MUST be ignored
        ("train-ai;allow=n, train-ai=y", None, None, None),  # only the selected value's parameters apply
        # §6.5: "If the parsing of the Dictionary fails, preferences are unknown. This includes where
        # keys include uppercase characters": not a reservation; a reviewer sees optout.invalid
        ("Train-AI=n", "optout.invalid", None, None),
        ("train-ai=n;;", "optout.invalid", None, None),
        # older tokens, read as the drafts that defined them said
        ("train-genai=n", "optout.aipref", "train-genai=n", "draft-ietf-aipref-vocab-03"),  # Generative AI Training, vocab-02/-03
        ("bots=n", "optout.aipref", "bots=n", "draft-ietf-aipref-vocab-04"),  # Automated Processing covers train-ai below it (-03/-04)
        ("bots=y, train-ai=n", "optout.aipref", "train-ai=n", "draft-ietf-aipref-vocab-07"),  # vocab-04's own example
        ("bots=n, train-ai=y", None, None, None),  # a category's own preference beats its parent's
        ("all=n", "optout.aipref", "all=n", "draft-ietf-aipref-vocab-02"),
        ("tdm=n, ai=y", "optout.aipref", "tdm=n", "draft-ietf-aipref-vocab-01"),  # train-ai has no own preference: tdm's holds
        ("genai=n", "optout.aipref", "genai=n", "draft-ietf-aipref-vocab-01"),
        ("ai-use=n", None, None, None),  # AI Use (vocab-02) is using a trained model, not training one
        ("bots=n, train-ai=y, train-genai=n", "optout.aipref", "train-genai=n", "draft-ietf-aipref-vocab-03"),  # any n wins (vocab-07 §5.1)
    ],
)
def test_content_usage(value, reason, rule, draft):
    found = headers.content_usage(value)
    assert (found.reason if found else None) == reason
    if reason == "optout.aipref":
        assert found.evidence["value"] == value and found.evidence["drafts"] == headers.AIPREF_DRAFTS
        assert (found.evidence["rule"], found.evidence["draft"]) == (rule, draft)


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


def test_robots_content_usage_rules_as_attach_05_shows_them():
    """draft-ietf-aipref-attach-05 §3.4's example and table: /test -> train-ai=n; /never/test
    "Not crawlable" (no preference); /ai-ok/test -> train-ai=y; and ExampleBot obeys its own group."""
    example = (
        "User-Agent: *\nAllow: /\nDisallow: /never/\nContent-Usage: train-ai=n\nContent-Usage: /ai-ok/ train-ai=y\n\n"
        "User-Agent: ExampleBot\nAllow: /\nContent-Usage: train-ai=y\n"
    )
    policy = RobotsPolicy(example, default_agents())
    found = policy.judge("https://a.example/test")
    assert [s.reason for s in found] == ["optout.aipref"]
    assert {k: found[0].evidence[k] for k in ("rule", "draft", "group", "line")} == {"rule": "train-ai=n", "draft": "draft-ietf-aipref-vocab-07", "group": "*", "line": 4}
    assert [s.reason for s in policy.judge("https://a.example/never/test")] == ["optout.robots"]  # disallowed: no preference
    assert policy.judge("https://a.example/ai-ok/test") == []  # the longer path's rule decides
    assert RobotsPolicy(example, ("ExampleBot",)).judge("https://a.example/test") == []
    # rules of equal length combine, any n winning (attach-05 §3.1), whatever their order (§3.1: "no semantics")
    for rules in ("Content-Usage: /a/ train-ai=y\nContent-Usage: /a/\ttrain-ai=n\n", "Content-Usage: /a/ train-ai=n\nContent-Usage: /a/ train-ai=y\n"):
        assert [s.reason for s in RobotsPolicy("User-agent: *\n" + rules, default_agents()).judge("https://a.example/a/x.jpg")] == ["optout.aipref"]
    # two spellings of one path (RFC 9309 §2.2.2 decodes %61 to a) combine too, and the evidence
    # names the first reservation in file order
    spelled = RobotsPolicy("User-agent: *\nContent-Usage: /%61 train-ai=n\nContent-Usage: /a bots=n\n", default_agents())
    assert [(s.evidence["rule"], s.evidence["line"]) for s in spelled.judge("https://a.example/a/x.jpg")] == [("train-ai=n", 2)]
    other = RobotsPolicy("User-Agent: somebot\nContent-Usage: train-ai=n\n", default_agents())
    assert other.judge("https://a.example/x.jpg") == []  # a group for an agent not on the list


CONTENT_SIGNAL = {
    # file: (its Content-Signal line, the line's number, why)
    "matchory.com__robots.txt": ("search=yes,ai-train=no,use=reference", 30, "the managed block's 'User-agent: *' group says ai-train=no"),
    "serchen.com__robots.txt": ("search=yes,ai-train=no,use=reference", 30, "the same managed block; the site's own '*' group joins it"),
    "crawlstop.com__robots.txt": ("search=yes, ai-train=no", 29, "'Content-signal' (lower-case s, spaces): the same field"),
}


@pytest.mark.parametrize("name", sorted(CONTENT_SIGNAL))
def test_content_signal_files(optout, name):
    """Cloudflare's policy, quoted in each file: "(b) If a Content-Signal = no, you may not collect
    content for the corresponding use", and "ai-train: training or fine-tuning AI models". Each file
    says ai-train=no in its 'User-agent: *' group, which every agent no group names obeys
    (img2dataset), so an image of the site is reserved; the named AI bots (GPTBot ...) are
    disallowed by their own groups besides."""
    value, line, _why = CONTENT_SIGNAL[name]
    text = (optout / "robots_txt" / "content_signal" / name).read_text()
    assert "ai-train: training or fine-tuning AI models" in text
    found = {s.reason: s for s in RobotsPolicy(text, default_agents()).judge(f"https://{name.split('__')[0]}/img/a.jpg")}
    assert set(found) == {"optout.content_signal", "optout.robots"}
    evidence = found["optout.content_signal"].evidence
    assert (evidence["value"], evidence["line"], evidence["group"], evidence["rule"]) == (value, line, "*", "ai-train=no")
    assert evidence["signals"] == {"search": "yes", "ai-train": "no"} and evidence["spec"] == content_signals.SPEC
    # img2dataset alone: the '*' group's signal, and nothing disallowed ('Allow: /')
    assert [s.reason for s in RobotsPolicy(text, ("img2dataset",)).judge(f"https://{name.split('__')[0]}/img/a.jpg")] == ["optout.content_signal"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("search=yes, ai-train=no", "optout.content_signal"),
        ("AI-Train=No", "optout.content_signal"),  # no case rule is stated; robots.txt fields are case-insensitive
        ("search=no, ai-input=no", None),  # search and ai-input are not training
        ("ai-train=yes", None),
        ("search=yes", None),  # (c): a signal left out neither grants nor restricts
        ("ai-train=yes, ai-train=no", "optout.content_signal"),  # the most restrictive of a repeated key
        ("ai-train=maybe, use=reference", None),  # not yes/no; use= is not a permission
        ("noai", "optout.invalid"),  # no key=value item: not a content signal
    ],
)
def test_content_signal_values(value, reason):
    found = RobotsPolicy(f"User-agent: *\nContent-Signal: {value}\n", default_agents()).judge("https://a.example/x.jpg")
    assert [s.reason for s in found] == ([reason] if reason else [])


def test_content_signal_of_a_named_group_holds_for_its_agent_only():
    text = "User-agent: GPTBot\nContent-Signal: ai-train=no\nAllow: /\n\nUser-agent: *\nContent-Signal: ai-train=yes\n"
    assert [s.evidence["group"] for s in RobotsPolicy(text, default_agents()).judge("https://a.example/x.jpg")] == ["gptbot"]
    assert RobotsPolicy(text, ("img2dataset",)).judge("https://a.example/x.jpg") == []
    # a line before any User-agent line (gujianjun.net's generator writes it there) holds for every
    # agent, as RSL's License lines there do: the policy states no placement
    for agents in (default_agents(), ("img2dataset",)):
        found = RobotsPolicy("Content-Signal: search=yes, ai-input=yes, ai-train=no\nUser-agent: GPTBot\nAllow: /\n", agents).judge("https://a.example/x.jpg")
        assert [(s.reason, s.evidence["group"], s.evidence["line"]) for s in found] == [("optout.content_signal", None, 1)]


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


# --- RSL licences -----------------------------------------------------------------------------------------

RSL = {
    # licence file: (the sample URL, the reason, the rule or conditions, why)
    "mezzode.com__license.xml": ("https://mezzode.com/img/a.jpg", "optout.rsl", '<prohibits type="usage">ai-all all</prohibits>',
                                 "'<prohibits type=\"usage\">all ai-all search</prohibits>' on url '/'"),
    "dylmye.me__license.xml": ("https://dylmye.me/a.png", "optout.constrained", ["licence server: https://api.rslcollective.org", "payment: attribution"],
                               "ai-train is permitted, but with attribution and a token from the RSL Collective's server"),
    "sourcelibrary.org__license.xml": ("https://sourcelibrary.org/book/1.jpg", "optout.rsl", '<prohibits type="usage">ai-train</prohibits>',
                                       "the second licence prohibits 'train-ai' (the drafts' name of ai-train): prohibited beats permitted"),
}


@pytest.mark.parametrize("name", sorted(RSL))
def test_rsl_licence_files(optout, name):
    url, reason, said, _why = RSL[name]
    found = rsl.judge(rsl.parse((optout / "rsl" / name).read_text()), url)
    assert found.reason == reason and found.evidence["spec"] == rsl.SPEC
    assert found.evidence["conditions" if reason == "optout.constrained" else "rule"] == said
    # a URL no <content> covers: sourcelibrary's scope is its own site's URL
    if name.startswith("sourcelibrary"):
        assert rsl.judge(rsl.parse((optout / "rsl" / name).read_text()), "https://elsewhere.example/book/1.jpg") is None


def test_rsl_licence_lines_in_robots_txt(optout):
    """RSL 1.0 §4.4: a License line outside any group holds for every agent; one in a group holds
    for that group's agents instead."""
    mezzode = (optout / "rsl" / "mezzode.com__robots.txt").read_text()  # 'License: https://mezzode.com/license.xml' before 'User-Agent: *'
    assert licence_urls(mezzode) == ["https://mezzode.com/license.xml"]
    assert RobotsPolicy(mezzode, default_agents()).licences == {"https://mezzode.com/license.xml": "robots.txt License (outside any group)"}
    # dylmye.me: after 'Sitemap:' at the end, in the 'User-agent: *' group; its named group (img2dataset, GPTBot ...) has none
    dylmye = (optout / "rsl" / "dylmye.me__robots.txt").read_text()
    assert RobotsPolicy(dylmye, default_agents()).licences == {"https://dylmye.me/license.xml": "robots.txt License (group *)"}
    assert RobotsPolicy(dylmye, ("img2dataset",)).licences == {}
    scoped = "License: https://a.example/all.xml\nUser-agent: GPTBot\nLicense: https://a.example/gpt.xml\nDisallow: /\nUser-agent: *\nAllow: /\n"
    assert RobotsPolicy(scoped, default_agents()).licences == {"https://a.example/all.xml": "robots.txt License (outside any group)",
                                                               "https://a.example/gpt.xml": "robots.txt License (group gptbot)"}
    assert RobotsPolicy(scoped, ("img2dataset",)).licences == {"https://a.example/all.xml": "robots.txt License (outside any group)"}
    assert RobotsPolicy("License: https://a.example/l.xml\n", ("img2dataset",)).licences == {"https://a.example/l.xml": "robots.txt License (outside any group)"}  # no group at all
    assert licence_urls("License: /relative.xml\nLicense: ftp://a.example/l.xml\n") == []  # "must be a fully qualified URL"
    # a URL that does not parse, or carries credentials (never fetched), names no licence
    assert licence_urls("License: http://[x/l.xml\nLicense: https://u:p@a.example/l.xml\nLicense: https://a.example/l.xml\n") == ["https://a.example/l.xml"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('<https://example.com/license.xml>; rel="license"; type="application/rsl+xml"', ["https://example.com/license.xml"]),  # RSL's guide
        ('<https://creativecommons.org/licenses/by/4.0/>; rel="license"', []),  # a licence, not an RSL one
        ('<https://e.example/cc>; rel="license", <https://e.example/l.xml>; rel="license nofollow"; type="application/rsl+xml"', ["https://e.example/l.xml"]),
        ("<https://e.example/a,b.xml>; rel=license; type=application/rsl+xml", ["https://e.example/a,b.xml"]),
        ('</relative.xml>; rel="license"; type="application/rsl+xml"', []),  # the target MUST be absolute (§4.5)
        # a comma, "<" or ";" inside a quoted string is the value's (RFC 9110 §5.6.4), not a new link or parameter
        ('<https://e.example/a.xml>; title="a, <https://e.example/b.xml>; rel=license"; rel="license"; type="application/rsl+xml"',
         ["https://e.example/a.xml"]),
        ('<https://e.example/a.xml>; title="x\\"; type=text/html"; rel=LICENSE; type=Application/RSL+XML', ["https://e.example/a.xml"]),
        # what does not parse is skipped up to the next link-value
        ('junk, "quoted, <x>", <https://e.example/l.xml>; rel="license"; type="application/rsl+xml"', ["https://e.example/l.xml"]),
        ('<https://e.example/a.xml>; rel="license"; type="application/rsl+xml"; type="text/html"', ["https://e.example/a.xml"]),  # the first
        ('<https://e.example/a.xml>; rel="license"; type="application/rsl+xml', ["https://e.example/a.xml"]),  # unterminated: to the end
        ("<https://e.example/a.xml", []),
    ],
)
def test_rsl_link_header(value, expected):
    assert rsl.link_licences(value) == expected


def test_rsl_link_header_agrees_with_httpx_on_single_links():
    """httpx's Response.links is the reference; it keeps one link per rel, so it is compared on
    headers of one link each."""
    import httpx

    for value in ['<https://e.example/l.xml>; rel="license"; type="application/rsl+xml"', "<https://e.example/l.xml>;rel=license;type=application/rsl+xml",
                  '<https://e.example/l.xml> ; rel="license" ; type="application/rsl+xml"']:
        link = httpx.Response(200, headers={"link": value}).links["license"]
        assert rsl.link_licences(value) == [link["url"]] and link["type"] == "application/rsl+xml"


@pytest.mark.parametrize(
    ("document", "url", "reason"),
    [
        # permits training, nothing asked: licensed
        ('<content url="/"><license><permits type="usage">ai-train search</permits></license></content>', "/a.jpg", None),
        ('<content url="/"><license><payment type="free"/></license></content>', "/a.jpg", None),  # no permits: every use
        # a closed list without training: not licensed (§3.5)
        ('<content url="/"><license><permits type="usage">search ai-input</permits></license></content>', "/a.jpg", "optout.rsl"),
        # permitted and prohibited: not licensed; the narrowest scope decides (§3.1.2's example)
        ('<content url="/"><license><permits type="usage">all</permits></license></content>'
         '<content url="/articles/"><license><prohibits type="usage">ai-train</prohibits></license></content>', "/articles/a.jpg", "optout.rsl"),
        ('<content url="/"><license><permits type="usage">all</permits></license></content>'
         '<content url="/articles/"><license><prohibits type="usage">ai-train</prohibits></license></content>', "/img/a.jpg", None),
        # paid, or for some users only: for a reviewer
        ('<content url="/"><license><permits type="usage">ai-train</permits><payment type="training"><amount currency="USD">0.01</amount></payment></license></content>',
         "/a.jpg", "optout.constrained"),
        ('<content url="/"><license><permits type="usage">ai-all</permits><permits type="user">non-commercial</permits></license></content>', "/a.jpg", "optout.constrained"),
        # one free licence among paid ones: licensed
        ('<content url="/"><license><payment type="subscription"/></license><license><permits type="usage">ai-train</permits></license></content>', "/a.jpg", None),
        ('<content url="/*.png$"><license><prohibits type="usage">ai-train</prohibits></license></content>', "/a.jpg", None),  # RFC 9309 patterns
        ('<content url="/*.png$"><license><prohibits type="usage">ai-train</prohibits></license></content>', "/x/a.png", "optout.rsl"),
    ],
)
def test_rsl_rules(document, url, reason):
    found = rsl.judge(rsl.parse(f'<rsl xmlns="{rsl.NAMESPACE}">{document}</rsl>'), "https://a.example" + url)
    assert (found.reason if found else None) == reason


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("not xml", "not an XML document"),
        ('<rsl xmlns="https://example.org/other"><content url="/"/></rsl>', "not <rsl>"),
        ('<rsl xmlns="https://rslstandard.org/rsl"></rsl>', "no <content>"),
        ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><rsl xmlns="https://rslstandard.org/rsl">&b;</rsl>',
         "EntitiesForbidden"),  # defusedxml refuses entity declarations: no billion laughs
    ],
)
def test_rsl_documents_that_are_not_rsl(text, fault):
    with pytest.raises(ValueError, match=fault):
        rsl.parse(text)


# --- IPTC Data Mining -------------------------------------------------------------------------------

IPTC = {
    # file: (its plus:DataMining value, the reason, why)
    "IPTC-PhotometadataRef-Std2023.2.jpg": ("DMI-PROHIBITED-GENAIMLTRAINING", "optout.iptc",
                                            "IPTC's own reference image: 'Prohibited for Generative AI/ML training'"),
    "IPTC-Empty_stamped-DMI-PROHIBITED-AIMLTRAINING.jpg": ("DMI-PROHIBITED-AIMLTRAINING", "optout.iptc", "'Prohibited for AI/ML training'"),
    "retina_DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING.jpg": ("DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING", "optout.iptc",
                                                             "IPTC: it 'prohibits all other uses, such as AI/ML training'"),
    "horse_DMI-PROHIBITED-SEECONSTRAINT.png": ("DMI-PROHIBITED-SEECONSTRAINT", "optout.iptc",
                                               "'Prohibited, see plus:OtherConstraints': prohibited, the text says more (a PNG's iTXt)"),
    "coffee_DMI-ALLOWED.jpg": ("DMI-ALLOWED", None, "'Allowed'"),
}


@pytest.mark.parametrize("name", sorted(IPTC))
def test_iptc_data_mining_files(optout, name):
    value, reason, _why = IPTC[name]
    read = iptc.read_data_mining((optout / "iptc" / name).read_bytes())
    assert json.loads(read)["data_mining"] == iptc.VOCABULARY_URI + value
    found = iptc.judge(read)
    assert (found.reason if found else None) == reason
    if found:
        assert found.evidence["label"] == iptc.VOCABULARY[value] and found.evidence["spec"] == iptc.SPEC


def test_iptc_other_constraints_and_what_reserves_nothing(optout, test_data):
    reference = iptc.judge(iptc.read_data_mining((optout / "iptc" / "IPTC-PhotometadataRef-Std2023.2.jpg").read_bytes()))
    assert reference.evidence["other_constraints"] == "Data Mining for Generative AI/ML training is definitely prohibited"
    # the same photo without the property (the pixels are a test image's): nothing declared, nothing read
    assert iptc.read_data_mining((test_data / "images" / "jpeg" / "coffee.jpg").read_bytes()) is None
    # "the absence of a prohibition does not indicate ... permission": unspecified is no finding either way
    assert iptc.judge(json.dumps({"data_mining": iptc.VOCABULARY_URI + "DMI-UNSPECIFIED", "other_constraints": None})) is None
    # a value off the vocabulary is non-conformant: reported, never a reservation
    odd = iptc.judge(json.dumps({"data_mining": "prohibited", "other_constraints": None}))
    assert odd.reason == "optout.invalid" and odd.evidence["value"] == "prohibited"


def test_iptc_hostile_xmp_is_a_value_not_an_error(optout):
    """defusedxml refuses entity expansion; a packet over the cap is not parsed."""
    photo = (optout / "iptc" / "coffee_DMI-ALLOWED.jpg").read_bytes()
    laughs = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
              '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" plus:DataMining="&b;"/></rdf:RDF></x:xmpmeta>')
    found = iptc.judge(iptc.read_data_mining(_with_xmp(photo, laughs.encode())))
    assert found.reason == "optout.invalid" and found.evidence["fault"] == "EntitiesForbidden"
    padding = b"<!--" + b"x" * iptc.MAX_XMP + b"-->"
    big = _with_xmp(photo, padding + b'<x:xmpmeta xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"><plus:DataMining/></x:xmpmeta>', png=True)
    assert "over 262,144" in iptc.judge(iptc.read_data_mining(big)).evidence["fault"]


_PROHIBITED = iptc.VOCABULARY_URI + "DMI-PROHIBITED-AIMLTRAINING"


@pytest.mark.parametrize("form", [
    f'plus:DataMining="{_PROHIBITED}"/>',  # an attribute (how ExifTool writes it)
    f'><plus:DataMining>{_PROHIBITED}</plus:DataMining></rdf:Description>',  # an element
    f'><plus:DataMining rdf:resource="{_PROHIBITED}"/></rdf:Description>',  # a URI value
    f'><plus:DataMining rdf:parseType="Resource"><rdf:value>{_PROHIBITED}</rdf:value></plus:DataMining></rdf:Description>',  # qualified
    f'><plus:DataMining><rdf:Description><rdf:value rdf:resource="{_PROHIBITED}"/></rdf:Description></plus:DataMining></rdf:Description>',
])
def test_iptc_data_mining_in_each_rdf_form_xmp_writes(optout, form):
    """XMP's RDF/XML serialisation (XMP Part 1, ISO 16684-1) writes one simple value in several
    forms; the PLUS value is a URI of the vocabulary in each, and each reserves."""
    photo = (optout / "iptc" / "coffee_DMI-ALLOWED.jpg").read_bytes()
    packet = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              f'<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" {form}</rdf:RDF></x:xmpmeta>')
    found = iptc.judge(iptc.read_data_mining(_with_xmp(photo, packet.encode())))
    assert (found.reason, found.evidence["value"]) == ("optout.iptc", _PROHIBITED)


def _with_xmp(jpeg: bytes, packet: bytes, png: bool = False) -> bytes:
    """The photo re-encoded (in memory) with ``packet`` as its XMP (PNG: an iTXt chunk, which may exceed JPEG's 64 KB segment)."""
    from PIL import Image, PngImagePlugin

    out = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as image:
        if png:
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", packet.decode())
            image.save(out, "PNG", pnginfo=info)
        else:
            image.save(out, "JPEG", xmp=packet)
    return out.getvalue()


# --- CAWG 1.1 and C2PA 1.x assertion shapes ---------------------------------------------------------------


def _store(*assertions: tuple[str, dict]) -> dict:
    """A manifest store as c2pa-rs gives it, its active manifest holding ``assertions`` (label, data)."""
    return {"active_manifest": "m", "validation_state": "Valid", "manifests": {"m": {"assertions": [{"label": label, "data": data} for label, data in assertions]}}}


def test_cawg_1_1_constrained_without_its_text_is_not_allowed():
    """CAWG training-mining 1.1: "In the absence of additional information, constrained shall be
    treated as equivalent to notAllowed. More details on the constraints may be provided in the
    constraints_info text field"; its example gives data_mining constrained with its text."""
    example = {"entries": {"cawg.ai_training": {"use": "allowed"}, "cawg.ai_generative_training": {"use": "notAllowed"},
                           "cawg.data_mining": {"use": "constrained", "constraint_info": "may only be mined on days whose names end in 'y'"}}}
    found = c2pa.judge(c2pa.training_mining(_store(("cawg.training-mining", example))))
    assert found.reason == "optout.c2pa" and found.evidence["not_allowed"] == ["cawg.ai_generative_training"]
    bare = {"entries": {"cawg.ai_training": {"use": "constrained"}}}
    found = c2pa.judge(c2pa.training_mining(_store(("cawg.training-mining", bare))))
    assert found.reason == "optout.c2pa" and found.evidence["constrained_as_not_allowed"] == ["cawg.ai_training"]
    # the prose's spelling, constraints_info, is a text too: for a reviewer
    spelled = {"entries": {"cawg.ai_training": {"use": "constrained", "constraints_info": "licence required"}}}
    found = c2pa.judge(c2pa.training_mining(_store(("cawg.training-mining", spelled))))
    assert found.reason == "optout.constrained" and found.evidence["constraints"] == {"cawg.ai_training": "licence required"}


def test_c2pa_1_x_entries_without_the_entries_map_and_both_labels():
    """CAWG 1.0 and C2PA 1.x's CDDL put the entries in the assertion's data itself (no "entries"
    map); a manifest may carry both labels, and an entry given twice keeps its most restrictive use."""
    old = {"c2pa.ai_training": {"use": "notAllowed"}, "metadata": {"dateTime": "2024-01-01"}}
    found = c2pa.judge(c2pa.training_mining(_store(("c2pa.training-mining", old))))
    assert found.reason == "optout.c2pa" and found.evidence["not_allowed"] == ["c2pa.ai_training"]
    both = _store(("c2pa.training-mining", {"entries": {"c2pa.ai_training": {"use": "allowed"}}}),
                  ("cawg.training-mining", {"entries": {"cawg.ai_training": {"use": "allowed"}, "cawg.data_mining": {"use": "notAllowed"}}}),
                  ("cawg.training-mining__1", {"entries": {"cawg.ai_training": {"use": "notAllowed"}}}))
    read = json.loads(c2pa.training_mining(both))
    assert read["labels"] == ["c2pa.training-mining", "cawg.training-mining"] and read["entries"]["cawg.ai_training"] == "notAllowed"
    assert c2pa.judge(json.dumps(read)).evidence["not_allowed"] == ["cawg.ai_training", "cawg.data_mining"]
    assert c2pa.training_mining(_store(("c2pa.actions", {"actions": []}))) is None


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
