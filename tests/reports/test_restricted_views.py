"""A contributor cannot tell a restricted sample from any other (issue 23, fault 4 and acceptance 4):
the demo workspace served by ``scrutineer serve``, its contributor flagging hash-listed and
unlisted samples alike, every page and API answer they get compared byte for byte once ids,
times, tokens and the samples' own public fields are taken out."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import scan
from markupsafe import escape

from scrutineer.core.config import Config, load_config
from scrutineer.core.layout import Layout
from scrutineer.crowd.demo import add_people
from scrutineer.crowd.store import CrowdStore
from scrutineer.testing import demo
from scrutineer.testing.served import serve

#: (listed, unlisted, category): the url_md5, md5 and PDQ banks' demo rows, each beside a plain row.
PAIRS = [(demo.URL_LISTED[0], 11, "copyright"), (demo.MD5_LISTED, 78, "personal_data"), (demo.PDQ_LISTED, 201, "csam_suspected")]
NOTE = "I think this should not be in the dataset."
#: Keys of a flag that name the sample or the flag, or are times.
OWN = {"id", "ids", "sample_id", "shard_id", "row_index", "url", "host", "registrable_domain", "caption", "created_at", "updated_at", "at"}


@dataclass
class Demo:
    url: str
    cfg: Config
    people: dict[str, tuple[str, str, str]]  # role -> (name, password, token)


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory) -> Iterator[Demo]:
    """The demo, scanned, with its accounts (:func:`scrutineer.crowd.demo.add_people`), served."""
    root = tmp_path_factory.mktemp("demo")
    with demo.web() as server:
        config = demo.build_demo(root, server)
        assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    people = {role: (name, password, token) for role, name, password, token in add_people(cfg)}
    with serve(config) as url:
        yield Demo(url, cfg, people)


def sample_id(n: int) -> str:
    return str(1_000_000 + n)  # the demo's SAMPLE_ID


@dataclass
class Person:
    api: httpx.Client
    web: httpx.Client

    @property
    def csrftoken(self) -> str:
        return self.web.cookies["csrftoken"]


@pytest.fixture
def person(served_demo) -> Iterator:
    """``person(role)``: the demo's account of that role, or ``person(role, name)`` a new one."""
    clients = []

    def make(role: str, name: str | None = None) -> Person:
        if name is None:
            name, password, token = served_demo.people[role]
        else:
            with CrowdStore(served_demo.cfg.crowd) as crowd:
                password, token = crowd.add_account(name, role)
        api = httpx.Client(base_url=served_demo.url, headers={"Authorization": f"Bearer {token}"})
        web = httpx.Client(base_url=served_demo.url)
        clients.extend((api, web))
        web.get("/login")
        assert web.post("/login", data={"name": name, "password": password, "csrftoken": web.cookies["csrftoken"]}).status_code == 303
        return Person(api, web)

    yield make
    for client in clients:
        client.close()


def without_own(value):
    """A JSON answer without the keys that name its sample or flag, or are times."""
    if isinstance(value, dict):
        return {k: without_own(v) for k, v in value.items() if k not in OWN}
    if isinstance(value, list):
        return [without_own(v) for v in value]
    return value


def page_without_own(text: str, flag: dict, token: str) -> str:
    """An HTML page without its CSRF token, times, the flag's id and its sample's public fields
    (as a reviewer's API answer gives them: ``flag``)."""
    text = text.replace(token, "<token>")
    text = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?", "<time>", text)
    text = re.sub(rf"(?<=Flag ){flag['id']}\b|(?<=/flags/){flag['id']}\b", "<flag>", text)
    text = re.sub(r"(<th>Shard, row</th><td><code>[^<]*</code>, )\d+", r"\1<row>", text)
    for field in sorted((f for f in (flag[k] for k in ("url", "caption", "sample_id", "shard_id", "host", "registrable_domain")) if f), key=len, reverse=True):
        text = text.replace(str(escape(field)), "<public>")
    return text


def test_a_contributors_view_of_a_listed_sample_is_that_of_an_unlisted_one(served_demo, person):
    contributor, reviewer = person("contributor"), person("reviewer")
    for listed, unlisted, category in PAIRS:
        views = []
        for n in (listed, unlisted):
            made = contributor.api.post("/api/flags", json={"sample_id": sample_id(n), "category": category, "note": NOTE})
            assert made.status_code == 201, made.text
            flag_id = made.json()["id"]
            public = reviewer.api.get(f"/api/flags/{flag_id}").json()
            [listed_entry] = [f for f in contributor.api.get("/api/flags?limit=500").json()["flags"] if f["id"] == flag_id]
            views.append({
                "made": (made.status_code, without_own(made.json())),
                "list": json.dumps(without_own(listed_entry), sort_keys=True),
                "detail": json.dumps(without_own(contributor.api.get(f"/api/flags/{flag_id}").json()), sort_keys=True),
                "item": page_without_own(contributor.web.get(f"/flags/{flag_id}").text, public, contributor.csrftoken),
                "image": (lambda r: (r.status_code, page_without_own(r.text, public, contributor.csrftoken)))(contributor.web.get(f"/flags/{flag_id}/image")),
            })
            assert public["restricted"] is (n == listed or category == "csam_suspected")  # reviewers keep their view
        for channel in views[0]:
            assert views[0][channel] == views[1][channel], (category, channel)
        assert "hotline" in views[0]["item"] if category == "csam_suspected" else "hotline" not in views[0]["item"]  # their own category, known to them


def test_a_contributor_learns_nothing_from_other_peoples_sensitive_flags(served_demo, person):
    """Another contributor's sensitive flag of a sample, confirmed by a reviewer, shows in neither
    the second contributor's flag of it under another category nor their flag under the same one."""
    first, second, reviewer = person("contributor", "ash"), person("contributor", "bo"), person("reviewer")
    sensitive = first.api.post("/api/flags", json={"sample_id": sample_id(20), "category": "csam_suspected", "note": "first"}).json()["id"]
    confirmed = reviewer.api.post(f"/api/flags/{sensitive}/review", json={"decision": "confirm", "reason": "matches_category", "note": "seen"})
    assert confirmed.json()["status"] == "confirmed"
    other = second.api.post("/api/flags", json={"sample_id": sample_id(20), "category": "copyright", "note": "mine"}).json()["id"]
    plain = second.api.post("/api/flags", json={"sample_id": sample_id(21), "category": "copyright", "note": "mine"}).json()["id"]
    assert without_own(second.api.get(f"/api/flags/{other}").json()) == without_own(second.api.get(f"/api/flags/{plain}").json())
    same = second.api.post("/api/flags", json={"sample_id": sample_id(20), "category": "csam_suspected", "note": "second"})
    assert same.json()["id"] == sensitive  # one flag per sample and category: its outcome is still not theirs
    detail = second.api.get(f"/api/flags/{sensitive}").json()
    assert (detail["status"], detail["reviews"], [r["note"] for r in detail["reports"]]) == ("pending", [], ["second"])
    assert [(a["actor"], a["action"]) for a in detail["audit"]] == [("bo", "report")]
    [entry] = [f for f in second.api.get("/api/flags?category=csam_suspected").json()["flags"] if f["id"] == sensitive]
    assert (entry["status"], entry["reports"], entry["restricted"]) == ("pending", 1, True)
    assert reviewer.api.get(f"/api/flags/{sensitive}").json()["status"] == "confirmed"  # as it is, to reviewers


def test_counts_of_everyones_flags_are_for_reviewers(served_demo, person):
    contributor, reviewer = person("contributor"), person("reviewer")
    assert 'class="counts"' not in contributor.web.get("/queue").text and 'class="counts"' in reviewer.web.get("/queue").text
    assert "Crowd flags by status" in reviewer.web.get("/reports").text
    shown = contributor.web.get("/reports").text
    assert "Crowd flags by status" not in shown
    assert "No crowd flags" not in shown and "shown to reviewers and maintainers" in shown  # hidden, not said to be none


def test_a_contributors_pages_read_no_review_snapshot(served_demo, person):
    """What a contributor is shown is never looked up in the snapshot (a lookup made for some
    samples only would show in the time a page takes): with the snapshot gone for a moment, their
    pages still answer, a reviewer's do not."""
    contributor, reviewer = person("contributor"), person("reviewer")
    flag_id = contributor.api.post("/api/flags", json={"sample_id": sample_id(30), "category": "copyright"}).json()["id"]
    snapshot = Layout(served_demo.cfg.workspace).snapshot
    aside = snapshot.with_name("aside.duckdb")
    snapshot.rename(aside)
    try:
        answers = [contributor.web.get(f"/flags/{flag_id}"), contributor.api.get(f"/api/flags/{flag_id}"), contributor.api.get("/api/flags"),
                   contributor.web.get("/queue"), contributor.web.get(f"/flags/{flag_id}/image")]
        assert [a.status_code for a in answers] == [200, 200, 200, 303, 403]  # the queue sends a contributor to their own flags
        assert reviewer.web.get(f"/flags/{flag_id}").status_code == 503
    finally:
        aside.rename(snapshot)
    assert reviewer.web.get(f"/flags/{flag_id}").status_code == 200
