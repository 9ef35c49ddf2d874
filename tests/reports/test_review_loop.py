"""The review loop (issue 25, "What to build" 2, acceptance 3): the queue's default and links,
claims, decide and next, the decision form's inline errors, bulk reject, "duplicate of #N",
evidence read as sentences, and a reviewer deciding 20 flags by keyboard alone in Chromium."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from conftest import scan, write_config

from scrutineer.core.config import Config, CrowdConfig, load_config
from scrutineer.core.errors import ClaimHeld, CrowdError, NotPending
from scrutineer.crowd.database import now_utc
from scrutineer.crowd.flags import FlagItem, Sample
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore
from scrutineer.reports.evidence import audit_sentence, evidence_sentence
from scrutineer.testing.served import serve

ROWS = [{"key": f"k{i}", "url": f"http://h{i % 4}.example/{i}.jpg", "caption": f"caption <b>{i}</b>"} for i in range(40)]
CROWD = {"categories": {"copyright": {"description": "Used without permission"}, "csam_suspected": {"sensitive": True}},
         "rate_limit": "1000/minute"}
names = itertools.count()


def _samples(n: int) -> list[Sample]:
    return [Sample(f"s{i}", "shard", i, f"http://x.example/{i}.jpg", f"caption {i}") for i in range(n)]


@pytest.fixture
def store(tmp_path) -> Iterator[CrowdStore]:
    crowd = CrowdStore(CrowdConfig(database=f"sqlite:///{tmp_path / 'crowd.sqlite'}", categories=CROWD["categories"]))
    yield crowd
    crowd.close()


def test_a_claim_holds_a_flag_for_its_reviewer_until_it_runs_out_or_they_decide(store):
    for name, role in (("casey", "contributor"), ("ana", "reviewer"), ("ben", "reviewer")):
        store.add_account(name, role)
    casey, ana, ben = (store.by_name(n) for n in ("casey", "ana", "ben"))
    first, second, third = (i for i, _ in store.flag(casey, [FlagItem(s, "copyright", "") for s in _samples(3)], "import"))
    until = store.claim(ana, first)
    assert timedelta(minutes=59) < until - now_utc() <= timedelta(minutes=60)  # crowd.claim_minutes' default
    with pytest.raises(ClaimHeld, match=f"flag {first} is being reviewed by ana until"):
        store.claim(ben, first)
    with pytest.raises(ClaimHeld):
        store.review(ben, first, "reject", "not_in_category", "")
    assert store.flag_detail(ben, first)["claim"]["by"] == "ana"
    assert store.flag_detail(casey, first)["claim"] is None  # a contributor learns nothing of reviewers' work
    held = {f["id"]: f["claimed_by"] for f in store.flags(ben, status="pending", oldest=True)}
    assert held == {first: "ana", second: None, third: None}
    assert store.next_pending(ben) == second and store.next_pending(ana) == first  # one's own claim is no bar
    assert store.next_pending(ben, skip=second) == third and store.next_pending(ben, skip=third) == second  # then from the start

    assert store.review(ana, first, "confirm", "matches_category", "") == "confirmed"  # a decision releases the claim
    assert store.flag_detail(ben, first)["claim"] is None
    store.claim(ana, second)
    store.clock = lambda: now_utc() + timedelta(minutes=61)  # the claim has run out
    assert store.next_pending(ben) == second
    assert store.review(ben, second, "reject", "insufficient_evidence", "") == "rejected"
    with pytest.raises(NotPending, match="no longer pending"):
        store.review(ana, second, "reject", "not_in_category", "", pending_only=True)
    store.clock = now_utc  # back to now: 61 minutes on, after 22:59 UTC, "today" would be tomorrow (CI failed on it at 23:05)
    assert store.decided_today(ana) == (1, 2) and store.decided_today(casey) == (0, 2)
    assert not any(a["action"] == "claim" for a in store.flag_detail(ana, second)["audit"])  # claims are working state


def test_a_duplicate_reject_names_another_flag_that_exists(store):
    store.add_account("casey", "contributor")
    store.add_account("ana", "reviewer")
    casey, ana = store.by_name("casey"), store.by_name("ana")
    first, second = (i for i, _ in store.flag(casey, [FlagItem(s, "copyright", "") for s in _samples(2)], "import"))
    for duplicate_of, message in ((None, "names the flag it duplicates"), (second, "cannot be a duplicate of itself"), (999, "no flag #999")):
        with pytest.raises(CrowdError, match=message):
            store.review(ana, second, "reject", "duplicate_flag", "", duplicate_of)
    with pytest.raises(CrowdError, match="goes with a reject as duplicate_flag only"):
        store.review(ana, second, "reject", "not_in_category", "", first)
    assert store.review(ana, second, "reject", "duplicate_flag", "same photo", first) == "rejected"
    detail = store.flag_detail(ana, second)
    assert [r["duplicate_of"] for r in detail["reviews"]] == [first]
    assert audit_sentence(detail["audit"][-1]["detail"]) == f"decision reject, reason duplicate_flag, duplicate of #{first}"
    mine = store.flag_detail(casey, second)  # another flag's id is not the contributor's to learn
    assert [r["duplicate_of"] for r in mine["reviews"]] == [None] and "duplicate_of" not in json.dumps([a["detail"] for a in mine["audit"]])


# evidence as sentences: one shape per detector (detectors/*.py)


@pytest.mark.parametrize(("reason", "evidence", "sentence"), [
    ("hash_match.pdq", {"bank": "hotline-pdq", "bank_version": "2", "signal": "pdq", "entry": "f8f8" + "0" * 56 + "a1b2", "distance": 6,
                        "entries": [["f8f8", 6]], "more": 2, "transform": "rot90"},
     "matched hotline-pdq v2 entry f8f8…a1b2 at 6 bits, by pdq after rot90; 2 more entries within the threshold"),
    ("hash_match.pdq", {"bank": "b", "bank_version": "1", "signal": "pdq", "entry": "ab", "distance": 6, "threshold": 10},
     "matched b v1 entry ab at 6 bits (threshold 10), by pdq"),
    ("hash_match.url", {"bank": "hotline", "bank_version": "1", "signal": "url_md5", "entry": "0123456789abcdef", "distance": 0},
     "matched hotline v1 entry 0123…cdef exactly, by url_md5"),
    ("link.dead", {"status": "dead", "http_status": 404, "final_url": None, "error": None, "checks": 3}, "URL returned HTTP 404 on 3 checks"),
    ("link.transient", {"status": "transient", "http_status": None, "final_url": None, "error": "timeout", "checks": 1},
     "URL failed (timeout) on 1 check"),
    ("link.moved", {"status": "moved", "http_status": 200, "final_url": "http://other.example/", "error": None, "checks": 1},
     "URL returned HTTP 200 on 1 check, ending at http://other.example/"),
    ("license.missing", {"license": None, "spdx": None}, "no licence given"),
    ("license.unknown", {"license": "ask me", "spdx": None}, "licence 'ask me' is not a recognised SPDX licence"),
    ("license.disallowed", {"license": "GPL", "spdx": "GPL-3.0-only"}, "licence GPL-3.0-only is not on the allowed list"),
    ("license.nc", {"license": "cc by-nc", "spdx": "CC-BY-NC-4.0", "condition": "NC"}, "licence CC-BY-NC-4.0 carries the NC condition"),
    ("optout.robots", {"signal": "robots.txt", "agents": 2, "named": ["GPTBot"], "others": True, "checked_at": "2026-01-01"},
     "robots.txt reserves AI training or mining"),
    ("optout.ai_txt", {"signal": "ai.txt", "rule": "Disallow: /", "line": 3, "agents": ["*"]}, "ai.txt reserves AI training or mining: rule 'Disallow: /'"),
    ("optout.invalid", {"signal": "tdm-reservation header", "value": "2", "fault": "tdm-reservation is not 0 or 1"},
     "tdm-reservation header is not conformant (tdm-reservation is not 0 or 1): value '2'"),
    ("content.hash_mismatch", {"column": "sha256", "algorithm": "sha256", "expected": "a" * 64, "actual": "b" * 64},
     "the image's sha256 is bbbb…bbbb, but the sha256 column says aaaa…aaaa"),
    ("duplicate.url", {"kept_row_index": 3, "kept_sample_id": "k3", "kept_shard_id": "d.jsonl"}, "duplicate of sample k3 (shard d.jsonl, row 3), which is kept"),
    ("duplicate.near_image", {"kept_row_index": 1, "kept_sample_id": "k1", "kept_shard_id": "d", "cluster_id": "x", "cluster_size": 3,
                              "pdq_distance": 4, "phash_distance": None, "transform": None, "near_image": {}},
     "duplicate of sample k1 (shard d, row 1), which is kept; a cluster of 3 samples; images 4 bits apart by PDQ"),
    ("duplicate.near_caption", {"kept_row_index": 1, "kept_sample_id": "k1", "kept_shard_id": "d", "cluster_size": 2, "jaccard": 0.91, "minhash": {}},
     "duplicate of sample k1 (shard d, row 1), which is kept; a cluster of 2 samples; captions 0.91 similar (Jaccard)"),
    ("crowd.copyright", {"flag_id": 7, "report_ids": [1, 2], "review_ids": [3], "confirmed_at": "2026-12-06T10:00:00"},
     "crowd flag #7 confirmed 2026-12-06T10:00:00, from 2 reports and 1 review"),
    ("newfamily.x", {"b": 1, "a": "two"}, "recorded a two, b 1"),
    ("link.dead", {"unexpected": True}, "recorded unexpected True"),  # another version's shape
    ("license.missing", None, "no evidence recorded"),
])
def test_evidence_reads_as_a_sentence(reason, evidence, sentence):
    assert evidence_sentence(reason, evidence) == sentence
    assert evidence_sentence(reason, json.dumps(evidence)) == sentence  # as stored


def test_audit_details_read_as_text():
    assert audit_sentence('{"category": "copyright", "source": "form"}') == "category copyright, from the form"
    assert audit_sentence({"contributors": 2}) == "2 contributors reported it"
    assert audit_sentence({"name": "ana", "role": "reviewer"}) == "name ana, role reviewer"


# the app


@dataclass
class Served:
    url: str
    cfg: Config
    flags: list[int]  # pending flags by the contributor "casey", one per row of ROWS
    casey: tuple[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("loop")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    config = write_config(root, {"dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}}, "detectors": {"license_gaps": {}}, "crowd": CROWD})
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    snapshot = Snapshot(cfg.workspace)
    samples = [found for [found] in snapshot.samples([("sample_id", r["key"]) for r in ROWS])]
    snapshot.close()
    with CrowdStore(cfg.crowd) as crowd:
        casey = crowd.add_account("casey", "contributor")
        made = crowd.flag(crowd.by_name("casey"), [FlagItem(s, "copyright", f"note {s.sample_id}") for s in samples], "import")
    with serve(config) as url:
        yield Served(url, cfg, [i for i, _ in made], casey)


@dataclass
class Person:
    name: str
    api: httpx.Client
    web: httpx.Client

    def form(self, path: str, data: dict) -> httpx.Response:
        return self.web.post(path, data={"csrftoken": self.web.cookies["csrftoken"], **data})


@pytest.fixture
def person(served) -> Iterator:
    clients = []

    def make(role: str) -> Person:
        name = f"{role}{next(names)}"
        with CrowdStore(served.cfg.crowd) as crowd:
            password, token = crowd.add_account(name, role)
        api = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"})
        web = httpx.Client(base_url=served.url)
        clients.extend((api, web))
        web.get("/login")
        logged_in = web.post("/login", data={"name": name, "password": password, "csrftoken": web.cookies["csrftoken"]})
        assert (logged_in.status_code, logged_in.headers["location"]) == (303, "/")
        return Person(name, api, web)

    yield make
    for client in clients:
        client.close()


def test_home_and_queue_by_role(served, person):
    reviewer, contributor = person("reviewer"), person("contributor")
    assert reviewer.web.get("/").headers["location"] == "/queue" and contributor.web.get("/").headers["location"] == "/samples"
    assert contributor.web.get("/queue").headers["location"] == "/mine"  # no global counts above "No flags" any more
    queue = reviewer.web.get("/queue")
    ids = [int(i) for i in re.findall(r'<tr data-flag="(\d+)">', queue.text)]
    pending = [f["id"] for f in reviewer.api.get("/api/flags?status=pending&limit=500").json()["flags"]]
    assert ids == sorted(pending)[:len(ids)] and ids  # pending, oldest first
    assert f'<a class="row-link" href="/flags/{ids[0]}">' in queue.text  # the row leads to the flag
    assert 'href="/queue?status=rejected"' in queue.text and 'href="/queue?order=newest"' in queue.text  # filters are links
    assert re.search(r"Pending: <strong>\d+</strong>\. Decided today \(UTC\): <strong>\d+</strong> by you", queue.text)
    filtered = reviewer.web.get("/queue?status=any&order=newest&domain=h1.example")
    rows = [int(i) for i in re.findall(r'<tr data-flag="(\d+)">', filtered.text)]
    assert rows == sorted(rows, reverse=True) and rows
    assert 'href="/queue?order=newest&amp;domain=h1.example" aria-label="Remove the filter status: any"' in filtered.text
    assert 'aria-label="Remove the filter domain: h1.example"' in filtered.text


def test_claims_through_the_app(served, person):
    ana, ben = person("reviewer"), person("reviewer")
    flag_id = served.flags[-1]
    assert ana.web.get(f"/flags/{flag_id}").status_code == 200  # opening it claims it
    page = ben.web.get(f"/flags/{flag_id}")
    assert f"Being reviewed by <strong>{ana.name}</strong> until" in page.text
    assert ben.api.post(f"/api/flags/{flag_id}/claim").status_code == 409
    refused = ben.api.post(f"/api/flags/{flag_id}/review", json={"decision": "reject", "reason": "not_in_category"})
    assert refused.status_code == 409 and f"being reviewed by {ana.name}" in refused.json()["detail"]
    form = ben.form(f"/flags/{flag_id}/review", {"decision": "reject", "reason": "not_in_category", "note": "mine to keep"})
    assert form.status_code == 409 and "mine to keep" in form.text and '<nav aria-label="Main">' in form.text
    assert f"being reviewed by {ana.name}" in ben.web.get(f"/queue?status=pending&after={flag_id - 1}").text
    claimed = ana.api.post(f"/api/flags/{flag_id}/claim")
    assert claimed.status_code == 200 and claimed.json()["by"] == ana.name
    assert ana.api.get(f"/api/flags/{flag_id}").json()["claim"]["by"] == ana.name
    assert ana.api.post(f"/api/flags/{flag_id}/review", json={"decision": "reject", "reason": "not_in_category"}).status_code == 200
    assert ben.api.get(f"/api/flags/{flag_id}").json()["claim"] is None  # released


def test_decide_and_next_goes_to_the_oldest_flag_left(served, person):
    ana, ben = person("reviewer"), person("reviewer")
    first = ana.web.get("/queue/next").headers["location"]
    held = int(first.rsplit("/", 1)[1])
    ana.web.get(first)  # claimed by ana
    assert ben.web.get("/queue/next").headers["location"] != first  # held by another: not offered
    decided = ana.form(f"{first}/review", {"decision": "reject", "reason": "not_in_category", "then": "next"})
    assert (decided.status_code, decided.headers["location"]) == (303, "/queue/next")
    following = ana.web.get("/queue/next").headers["location"]
    assert int(following.rsplit("/", 1)[1]) > held  # the oldest flag left: not the one decided
    assert ana.web.get(f"/queue/next?skip={following.rsplit('/', 1)[1]}").headers["location"] != following
    stay = ben.form(f"/flags/{held}/review", {"decision": "confirm", "reason": "matches_category", "then": "stay"})
    assert stay.headers["location"] == f"/flags/{held}"


def test_invalid_decisions_re_render_the_form_with_the_message_inline(served, person):
    ana = person("reviewer")
    flag_id = int(ana.web.get("/queue/next").headers["location"].rsplit("/", 1)[1])
    note = "<b>keep me</b> please"
    cases = [({"decision": "confirm", "reason": "not_in_category"}, "Reason for &#39;confirm&#39; must be one of"),
             ({"decision": "reject"}, "Choose a reason to reject."),
             ({}, "Choose a decision: confirm or reject."),
             ({"decision": "reject", "reason": "duplicate_flag", "duplicate_of": "x"}, "Duplicate of: give the other flag&#39;s number"),
             ({"decision": "reject", "reason": "not_in_category", "note_": "x" * 4001}, "at most 4,000")]
    for fields, message in cases:
        fields = {"note": fields.pop("note_", note), **fields}
        answer = ana.form(f"/flags/{flag_id}/review", fields)
        assert answer.status_code == 422, fields
        assert re.search(r'<p class="error" id="decide-error" role="alert">[^<]*' + re.escape(message), answer.text), (fields, answer.text[:200])
        assert '<nav aria-label="Main">' in answer.text and "<h1>Flag" in answer.text  # the whole page, not the error page
        if fields["note"] == note:
            assert "&lt;b&gt;keep me&lt;/b&gt; please</textarea>" in answer.text
        if fields.get("decision"):
            assert f'value="{fields["decision"]}" checked' in answer.text
    assert ana.api.get(f"/api/flags/{flag_id}").json()["status"] == "pending"  # nothing recorded


def test_a_duplicate_reject_links_the_other_flag(served, person):
    ana = person("reviewer")
    original, duplicate = served.flags[30], served.flags[31]
    answer = ana.form(f"/flags/{duplicate}/review", {"decision": "reject", "reason": "duplicate_flag", "duplicate_of": f"#{original}", "then": "stay"})
    assert answer.status_code == 303
    page = ana.web.get(f"/flags/{duplicate}").text
    assert f'duplicate of <a href="/flags/{original}">#{original}</a>' in page
    assert f"decision reject, reason duplicate_flag, duplicate of #{original}" in page
    assert ana.api.get(f"/api/flags/{duplicate}").json()["reviews"][-1]["duplicate_of"] == original
    assert "<tr><th>Licence</th><td>none given</td></tr>" in page  # the sample's licence (these rows give none)
    assert "no licence given" in page  # license_gaps' evidence, as a sentence


def test_bulk_reject_reports_each_flag(served, person):
    ana, ben, contributor = person("reviewer"), person("reviewer"), person("contributor")
    a, b, c, decided = served.flags[32:36]
    assert ben.web.get(f"/flags/{b}").status_code == 200  # ben holds b
    ana.api.post(f"/api/flags/{decided}/review", json={"decision": "confirm", "reason": "matches_category"})
    assert ana.api.post("/api/flags", json={"sample_id": "k36", "category": "csam_suspected"}).status_code == 201
    own = ana.api.get("/api/flags?limit=1").json()["flags"][0]["id"]
    answer = ana.web.post("/queue/reject", data={"csrftoken": ana.web.cookies["csrftoken"], "ids": [a, b, c, decided, own],
                                                  "reason": "insufficient_evidence", "note": "bulk"})
    assert answer.status_code == 200
    outcome = dict(re.findall(r'<li><a href="/flags/(\d+)">#\d+</a>: ([^<]+)</li>', answer.text))
    assert outcome == {str(a): "rejected", str(b): outcome[str(b)], str(c): "rejected", str(decided): "skipped: no longer pending",
                       str(own): "skipped: you reported it"}
    assert outcome[str(b)].startswith(f"skipped: held by {ben.name} until")
    assert {ana.api.get(f"/api/flags/{i}").json()["status"] for i in (a, c)} == {"rejected"}
    assert ana.api.get(f"/api/flags/{b}").json()["status"] == "pending"
    refused = contributor.web.post("/queue/reject", data={"csrftoken": contributor.web.cookies["csrftoken"], "ids": [b], "reason": "not_in_category"})
    assert refused.status_code == 403


# acceptance 3: 20 flags by keyboard alone

#: Counts the trusted mouse events a page sees, across its navigations (sessionStorage); a click
#: that the keyboard made (Enter on a button) has detail 0 and is not a mouse event.
COUNT_MOUSE = """
for (const type of ["mousedown", "mouseup", "pointerdown", "click", "dblclick", "contextmenu", "wheel"]) {
  window.addEventListener(type, (e) => {
    if (!e.isTrusted || (type === "click" && e.detail === 0)) return;
    sessionStorage.setItem("mouse", String(Number(sessionStorage.getItem("mouse") || 0) + 1));
  }, true);
}
"""


def test_a_reviewer_decides_20_flags_by_keyboard_alone(tmp_path, browser):
    root = tmp_path / "keys"
    (root).mkdir()
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS[:20]))
    config = write_config(root, {"dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}}, "detectors": {"license_gaps": {}}, "crowd": CROWD})
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    snapshot = Snapshot(cfg.workspace)
    samples = [found for [found] in snapshot.samples([("sample_id", r["key"]) for r in ROWS[:20]])]
    snapshot.close()
    with CrowdStore(cfg.crowd) as crowd:
        crowd.add_account("casey", "contributor")
        password, _ = crowd.add_account("riley", "reviewer")
        flags = sorted(i for i, _ in crowd.flag(crowd.by_name("casey"), [FlagItem(s, "copyright", "") for s in samples], "import"))  # oldest first
    errors: list[str] = []
    with serve(config) as base:
        context = browser.new_context(base_url=base)
        context.add_init_script(COUNT_MOUSE)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/login")
        page.fill("input[name=name]", "riley")
        page.fill("input[name=password]", password)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/queue$"))
        page.keyboard.press("?")  # the shortcuts overlay: a dialog that takes the focus, and gives it back
        assert page.locator("dialog#shortcuts").evaluate("d => d.open && d.contains(document.activeElement)")
        page.keyboard.press("Escape")
        assert not page.locator("dialog#shortcuts").evaluate("d => d.open")
        page.keyboard.press("j")
        page.keyboard.press("o")
        page.wait_for_url(re.compile(rf"/flags/{flags[0]}$"))
        for n, flag_id in enumerate(flags):
            page.wait_for_url(re.compile(rf"/flags/{flag_id}$"))
            assert page.locator("fieldset.reasons:visible").count() == 0  # no decision, no reasons shown
            decision, submit = ("c", "Control+Enter") if n % 2 else ("r", "Enter")
            page.keyboard.press(decision)
            assert page.locator("fieldset.reasons:visible").count() == 1  # the reasons of that decision only
            page.keyboard.press("2" if n % 3 == 0 else "1")
            if n == 5:
                page.keyboard.press("n")
                page.keyboard.type("decided by keyboard")
            page.keyboard.press(submit)
        page.wait_for_url(re.compile(r"/queue\?done=true$"))
        assert page.locator("#done").is_visible()
        assert page.evaluate("sessionStorage.getItem('mouse')") is None  # no mouse event reached any page
        context.close()
    assert errors == []
    with CrowdStore(cfg.crowd) as crowd:
        riley = crowd.by_name("riley")
        decided = {f["id"]: f["status"] for f in crowd.flags(riley, limit=100)}
        reviews = [crowd.flag_detail(riley, i)["reviews"] for i in flags]
    assert decided == {i: "confirmed" if n % 2 else "rejected" for n, i in enumerate(flags)}
    assert all(len(r) == 1 and r[0]["by"] == "riley" for r in reviews)
    assert reviews[0][0]["reason"] == "insufficient_evidence" and reviews[1][0]["reason"] == "matches_category"
    assert reviews[5][0]["note"] == "decided by keyboard"
