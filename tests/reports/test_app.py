"""The review app as its users meet it: ``scrutineer serve`` on loopback, spoken to over HTTP
(issue 11, acceptance 2: escaping, 403s, anonymous requests, CSRF, the rate limit, restricted URLs;
and the flag and review rules the app enforces)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import scan, write_config
from fastapi.routing import iter_route_contexts
from limits import parse
from starlette.routing import Mount

from scrutineer.core.banks import url_md5
from scrutineer.core.config import Config, load_config
from scrutineer.core.errors import CrowdError
from scrutineer.crowd.api import http_status
from scrutineer.crowd.app import create_app
from scrutineer.crowd.flag_writer import FlagWriter, Submission
from scrutineer.crowd.flags import FlagItem
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore
from scrutineer.testing.served import free_port, serve

SCRIPT, ONERROR, JS_URL = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)"
ROWS = [
    {"key": "k0", "url": "http://a.example/0.jpg", "caption": SCRIPT},
    {"key": "k1", "url": 'http://b.example/x"><script>alert(1)</script>.jpg', "caption": ONERROR},
    {"key": "k2", "url": JS_URL, "caption": JS_URL},
    {"key": "k3", "url": "http://matched.example/3.jpg", "caption": "on the hash list"},  # a restricted finding
    {"key": "k4", "url": "http://sensitive.example/4.jpg", "caption": "flagged csam_suspected"},  # a sensitive flag
    *({"key": f"k{i}", "url": f"http://plain.example/{i}.jpg", "caption": f"plain {i}"} for i in range(5, 17)),  # one or two per test
    {"key": "k17", "url": "http://twice.example/same.jpg", "caption": "one URL"},
    {"key": "k18", "url": "http://twice.example/same.jpg", "caption": "two samples"},
]
URL = {r["key"]: r["url"] for r in ROWS}
RESTRICTED_URLS = (URL["k3"], URL["k4"])
CROWD = {
    "categories": {
        "csam_suspected": {"sensitive": True, "description": "Suspected child sexual abuse material"},
        "copyright": {"description": "Used without the rights holder's permission"},
    },
    "confirm": {"reviewers": 1, "contributors": 2},
    "rate_limit": "3/minute",
    "claim_minutes": 0.001,  # opening a flag claims it for 60 ms: these tests' reviewers open and decide flags in any order
}
#: The routes an anonymous request may reach.
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/api/health"), ("GET", "/favicon.ico")}
names = itertools.count()


@dataclass
class Served:
    url: str
    cfg: Config
    crowd: CrowdStore
    run_id: str
    owner: tuple[str, str]  # the password and token of the contributor "owner"
    flags: dict[str, int]  # sample id -> the flag "owner" made of it


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """``scrutineer serve`` of a scanned workspace in which the contributor ``owner`` flagged k0–k4
    (k4 as csam_suspected, the others as copyright)."""
    root = tmp_path_factory.mktemp("app")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "urls.txt").write_text(url_md5(URL["k3"]) + "\n")
    config = write_config(root, {
        "dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
        "banks": [{"name": "hotline", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
        "detectors": {"url_hashlist": {}},
        "crowd": CROWD,
    })
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    crowd = CrowdStore(cfg.crowd)
    owner = crowd.add_account("owner", "contributor")
    snapshot = Snapshot(cfg.workspace)
    by_id = {found.sample_id: found for [found] in snapshot.samples([("sample_id", f"k{i}") for i in range(5)])}
    run_id = snapshot.run_id()
    snapshot.close()
    made = crowd.flag(crowd.by_name("owner"), [FlagItem(by_id[k], "csam_suspected" if k == "k4" else "copyright", f"note on {k}") for k in sorted(by_id)], "import")
    with serve(config) as url:
        yield Served(url, cfg, crowd, run_id, owner, {sample: flag_id for sample, (flag_id, _) in zip(sorted(by_id), made)})
    crowd.close()


@dataclass
class Person:
    name: str
    role: str
    api: httpx.Client  # with the account's API token
    web: httpx.Client  # logged in through the form: a session cookie and a CSRF cookie

    @property
    def csrftoken(self) -> str:
        return self.web.cookies["csrftoken"]

    def form(self, path: str, data: dict) -> httpx.Response:
        return self.web.post(path, data={"csrftoken": self.csrftoken, **data})


@pytest.fixture
def person(served) -> Iterator:
    """``person(role)``: a new account, with an API client and a logged-in browser-like client."""
    clients = []

    def make(role: str, name: str | None = None) -> Person:
        name = name or f"{role}{next(names)}"
        password, token = served.owner if name == "owner" else served.crowd.add_account(name, role)
        api = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"})
        web = httpx.Client(base_url=served.url)
        clients.extend((api, web))
        assert web.get("/login").status_code == 200
        logged_in = web.post("/login", data={"name": name, "password": password, "csrftoken": web.cookies["csrftoken"]})
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/"
        return Person(name, role, api, web)

    yield make
    for client in clients:
        client.close()


def flag(who: Person, **body) -> httpx.Response:
    return who.api.post("/api/flags", json={"category": "copyright", "note": "", **body})


def test_health_is_public_and_names_the_run(served):
    health = httpx.get(f"{served.url}/api/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "run_id": served.run_id}


def test_serve_prints_its_url_once_it_listens(served):
    """``scrutineer serve`` says where it listens, once, and the URL it names answers at once."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "scrutineer"), "serve", str(served.cfg.config_path), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(server.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=120)  # a bound on a hang only
        assert lines == [f"Review app on http://127.0.0.1:{port}/ (2 workers). Ctrl-C stops it.\n"]
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).json()["run_id"] == served.run_id
    finally:
        server.terminate()
        rest, _ = server.communicate(timeout=30)
    assert "Review app on" not in rest  # the second worker says nothing


def test_a_second_server_on_the_port_is_refused_and_the_first_keeps_serving(served):
    """The workers' sockets share their port (SO_REUSEPORT), so a second server there would take
    half the first one's connections: ``serve`` refuses a port that is in use."""
    port = httpx.URL(served.url).port
    second = subprocess.run([str(Path(sys.executable).parent / "scrutineer"), "serve", str(served.cfg.config_path), "--port", str(port)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode != 0 and f"cannot serve on 127.0.0.1:{port}" in second.stderr + second.stdout
    with httpx.Client(base_url=served.url) as fresh:  # new connections, each to a worker of the first server
        assert all(fresh.get("/api/health", headers={"Connection": "close"}).json()["run_id"] == served.run_id for _ in range(20))


def test_every_route_but_log_in_health_and_static_refuses_anonymous_requests(served):
    app = create_app(served.cfg)
    app.state.services.close()
    contexts = list(iter_route_contexts(app.routes))  # every route, through the included routers
    routes = [(m, r.path) for r in contexts if not isinstance(r.original_route, Mount) for m in sorted(r.methods)]
    assert PUBLIC < set(routes) and [r.path for r in contexts if isinstance(r.original_route, Mount)] == ["/static"]
    with httpx.Client(base_url=served.url) as anonymous:
        for method, path in sorted(set(routes) - PUBLIC):
            answer = anonymous.request(method, path.replace("{flag_id}", str(served.flags["k0"])).replace("{name}", "swagger-ui.css"))
            if path.startswith("/api/") or path == "/openapi.json":
                assert answer.status_code == 401 and "detail" in answer.json(), (method, path)
            else:
                assert (answer.status_code, answer.headers.get("location")) == (303, "/login"), (method, path)
            assert "Content-Security-Policy" in answer.headers
        assert anonymous.get("/static/htmx.min.js").status_code == 200
        assert anonymous.get("/favicon.ico").headers["content-type"] == "image/svg+xml"
        assert anonymous.get("/queue", headers={"HX-Request": "true"}).headers["HX-Redirect"] == "/login"
        assert anonymous.get("/api/flags", headers={"Authorization": "Bearer scr_not-a-token"}).status_code == 401


def test_payloads_in_captions_and_urls_are_shown_as_text(served, person):
    for who in (person("contributor", "owner"), person("reviewer")):  # the reviewer last: contributors get no URL
        if who.role == "contributor":  # the queue is for reviewers: a contributor's list of flags is their own (/mine)
            assert who.web.get("/queue").headers["location"] == "/mine"
        pages = [who.web.get("/queue?status=any")] * (who.role == "reviewer") + [who.web.get(f"/flags/{served.flags[k]}") for k in ("k0", "k1", "k2")] + [who.web.get("/reports")]
        for page in pages:
            assert page.status_code == 200
            assert {s for s in re.findall(r"<script[^>]*>", page.text) if not re.fullmatch(r'<script src="/static/[a-z.]+\.js"( defer)?>', s)} == set()  # the app's own scripts only
            assert "<img" not in page.text
            assert not re.search(r"""(href|src|action)=["']?javascript:""", page.text)
        queue = pages[0].text if who.role == "reviewer" else "".join(p.text for p in pages[:3])
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in queue and "&lt;img src=x onerror=alert(1)&gt;" in queue and JS_URL in queue
    assert "http://b.example/x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in pages[2].text  # the URL, as text
    assert "<svg" in pages[-1].text and "Crowd flags" in pages[-1].text  # the watchdog report, with the flags by status
    image = who.web.get(f"/flags/{served.flags['k1']}/image")
    assert image.status_code == 200 and 'src="http://b.example/x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;.jpg"' in image.text
    assert "<script" not in image.text
    assert who.web.get(f"/flags/{served.flags['k2']}/image").status_code == 404  # a javascript: URL is no image


def test_an_image_is_offered_only_on_request_blurred_and_never_for_a_restricted_item(served, person):
    owner = person("contributor", "owner")
    for sample in ("k0", "k3", "k4"):  # a contributor gets no image of any sample, listed or not
        page = owner.web.get(f"/flags/{served.flags[sample]}")
        assert page.status_code == 200 and "<img" not in page.text and "/image" not in page.text
        assert owner.web.get(f"/flags/{served.flags[sample]}/image").status_code == 403
    assert owner.web.get("/flags/999999/image").status_code == 403  # nothing looked up: the same answer for any id
    for who in (person("reviewer"), person("maintainer")):
        plain = who.web.get(f"/flags/{served.flags['k0']}")
        assert f'hx-get="/flags/{served.flags["k0"]}/image"' in plain.text and "<img" not in plain.text
        fragment = who.web.get(f"/flags/{served.flags['k0']}/image", headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and re.search(r'<div class="reveal">\s*<input type="checkbox"', fragment.text)
        assert f'<img src="{URL["k0"]}" referrerpolicy="no-referrer"' in fragment.text
        for sample in ("k3", "k4"):
            restricted = who.web.get(f"/flags/{served.flags[sample]}")
            assert restricted.status_code == 200 and "<img" not in restricted.text and "/image" not in restricted.text
            assert "hotline" in restricted.text
            assert who.web.get(f"/flags/{served.flags[sample]}/image").status_code == 403
            assert who.api.get(f"/api/flags/{served.flags[sample]}").json()["restricted"] is True


def _everything(who: Person, served: Served) -> list[httpx.Response]:
    """Every page and API response ``who`` can get about the module's flags."""
    ids = served.flags.values()
    out = [who.web.get(p) for p in ("/mine", "/mine?category=csam_suspected", "/flags/new", "/reports", "/takedown", "/takedown.csv", "/takedown.json")]
    out += [who.web.get(f"/flags/{i}") for i in ids] + [who.web.get(f"/flags/{i}/image") for i in ids]
    out += [who.api.get("/api/flags"), who.api.get("/api/flags?status=pending&limit=500")] + [who.api.get(f"/api/flags/{i}") for i in ids]
    return out


def test_restricted_urls_reach_reviewers_and_maintainers_only(served, person):
    owner, other, reviewer = person("contributor", "owner"), person("contributor"), person("reviewer")
    decided = reviewer.api.post(f"/api/flags/{served.flags['k4']}/review", json={"decision": "reject", "reason": "insufficient_evidence", "note": f"{URL['k4']} is a drawing"})
    assert decided.status_code == 200  # a reviewer's note quoting a restricted URL
    assert flag(other, sample_id="k3").status_code == 201  # a hash-matched sample, under a category that is not sensitive
    assert flag(other, sample_id="k5").status_code == 201
    for contributor in (owner, other):
        answers = _everything(contributor, served)
        assert {a.status_code for a in answers} <= {200, 403, 404}
        leaks = [(str(a.url), u) for a in answers for u in RESTRICTED_URLS if u in a.text]
        assert not leaks
        assert all(f["url"] is None for f in contributor.api.get("/api/flags").json()["flags"] if f["restricted"])
    assert owner.api.get(f"/api/flags/{served.flags['k0']}").json()["url"] is None  # nor an unrestricted one: whether it is restricted is not theirs to learn
    assert "<strong>Sensitive.</strong>" in owner.web.get(f"/flags/{served.flags['k4']}").text
    for reviewer in (reviewer, person("maintainer")):
        listed = {f["sample_id"]: f["url"] for f in reviewer.api.get("/api/flags?limit=500").json()["flags"]}
        assert listed["k3"] == URL["k3"] and listed["k4"] == URL["k4"]
        for sample in ("k3", "k4"):
            assert URL[sample] in reviewer.web.get(f"/flags/{served.flags[sample]}").text


def test_a_contributor_and_a_reviewer_get_403_where_they_may_not_go(served, person):
    contributor, reviewer, maintainer = person("contributor"), person("reviewer"), person("maintainer")
    flag_id = served.flags["k0"]
    assert contributor.api.post(f"/api/flags/{flag_id}/review", json={"decision": "confirm", "reason": "matches_category"}).status_code == 403
    assert contributor.form(f"/flags/{flag_id}/review", {"decision": "confirm", "reason": "matches_category"}).status_code == 403
    assert '<form class="stack decide" id="decide"' not in contributor.web.get(f"/flags/{flag_id}").text  # not a contributor's flag: 404
    assert '<form class="stack decide" id="decide"' in reviewer.web.get(f"/flags/{flag_id}").text
    for who in (contributor, reviewer):
        assert who.web.get("/takedown").status_code == 403
    takedown = maintainer.web.get("/takedown")
    assert takedown.status_code == 200 and "<h2>matched.example" in takedown.text and URL["k3"] in takedown.text
    assert flag(reviewer, sample_id="k6").status_code == 201  # a reviewer may flag too, but then not decide it
    flag_id = reviewer.api.get("/api/flags?limit=1").json()["flags"][0]["id"]
    assert reviewer.api.post(f"/api/flags/{flag_id}/review", json={"decision": "confirm", "reason": "matches_category"}).status_code == 403
    assert '<form class="stack decide" id="decide"' not in reviewer.web.get(f"/flags/{flag_id}").text


def test_a_post_without_its_csrf_token_is_refused(served, person):
    who = person("contributor")
    before = who.api.get("/api/flags").json()["flags"]
    assert who.web.post("/flags", data={"sample_id": "k7", "category": "copyright"}).status_code == 403
    assert who.web.post("/flags", data={"sample_id": "k7", "category": "copyright", "csrftoken": "forged"}).status_code == 403
    assert who.web.post("/api/flags", json={"sample_id": "k7", "category": "copyright"}).status_code == 403  # a session's JSON too
    assert who.web.post("/logout").status_code == 403
    assert who.api.get("/api/flags").json()["flags"] == before  # nothing recorded
    with httpx.Client(base_url=served.url) as stranger:
        assert stranger.post("/login", data={"name": who.name, "password": "x"}).status_code == 403  # no log-in CSRF either
    made = who.form("/flags", {"sample_id": "k7", "category": "copyright", "note": "by the form"})
    assert made.status_code == 303 and re.fullmatch(r"/flags/new\?recorded=\d+", made.headers["location"])
    assert who.web.post("/api/flags", json={"sample_id": "k8", "category": "copyright"}, headers={"x-csrftoken": who.csrftoken}).status_code == 201
    assert who.form("/logout", {}).headers["location"] == "/login"
    assert who.web.get("/queue").headers["location"] == "/login"


def test_flag_submissions_are_rate_limited_per_account(served, person):
    who, other = person("contributor"), person("contributor")
    # crowd.rate_limit: 3 flags a minute; a repeated flag records nothing, so it is not counted
    assert [flag(who, sample_id=k).status_code for k in ("k9", "k9", "k15", "k16")] == [201, 200, 201, 201]
    limited = flag(who, sample_id="k10")
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    form = who.form("/flags", {"sample_id": "k10", "category": "copyright"})
    assert form.status_code == 429 and int(form.headers["Retry-After"]) > 0 and "too many flags" in form.text
    assert flag(other, sample_id="k10").status_code == 201  # another account has its own allowance


def test_flags_name_one_sample_by_id_or_url(served, person):
    who = person("contributor")
    assert flag(who, sample_id="k11", category="nonsense").status_code == 422
    assert flag(who, sample_id="k11", url=URL["k11"]).status_code == 422
    assert flag(who).status_code == 422
    assert flag(who, sample_id="nope").status_code == 404
    other = person("contributor")
    assert flag(other, url="http://nowhere.example/x.jpg").status_code == 404
    twice = flag(other, url=URL["k17"])
    assert twice.status_code == 201 and len(twice.json()["ids"]) == 2  # every sample with that URL
    assert other.form("/flags", {"sample_id": "k11", "url": URL["k11"], "category": "copyright"}).status_code == 422


def test_concurrent_flags_each_get_their_own_answer(served, person):
    """Flags submitted at once are written together (one transaction per batch): each still gets
    its own status, and a refused one refuses no other."""
    people = [person("contributor") for _ in range(8)]
    reviewer = person("reviewer")
    bodies = [{"sample_id": "k16"}] * 5 + [{"sample_id": "nope"}, {"sample_id": "k16", "category": "nonsense"}, {"url": URL["k17"]}]
    start = threading.Barrier(len(people))

    def submit(who: Person, body: dict) -> httpx.Response:
        start.wait()
        return flag(who, **body)

    with ThreadPoolExecutor(len(people)) as pool:
        answers = list(pool.map(submit, people, bodies))
    assert [a.status_code for a in answers] == [201] * 5 + [404, 422, 201]
    assert len({a.json()["id"] for a in answers[:5]}) == 1 and len(answers[7].json()["ids"]) == 2
    reporters = {r["by"] for r in reviewer.api.get(f"/api/flags/{answers[0].json()['id']}").json()["reports"]}
    assert {p.name for p in people[:5]} <= reporters and not {p.name for p in people[5:]} & reporters


def test_the_flag_writer_answers_what_was_queued_when_it_stops_and_refuses_what_comes_after(served):
    """Stopping the app closes its flag writer: a flag queued before is written and answered; one
    submitted after is refused with 503 at once, rather than waiting for an answer that never comes."""
    served.crowd.add_account(name := f"contributor{next(names)}", "contributor")
    who = served.crowd.by_name(name)
    snapshot = Snapshot(served.cfg.workspace)
    writer = FlagWriter(served.crowd, snapshot, parse(served.cfg.crowd.rate_limit))

    async def stop_between_two_flags() -> tuple[list, int]:
        queued = asyncio.ensure_future(writer(Submission(who, ("sample_id", "k15"), "copyright", "", "api")))
        await asyncio.sleep(0)  # the flag is on the writer's queue
        await asyncio.to_thread(writer.close)
        written = await asyncio.wait_for(queued, 10)
        with pytest.raises(CrowdError) as refused:
            await asyncio.wait_for(writer(Submission(who, ("sample_id", "k16"), "copyright", "", "api")), 10)
        return written, http_status(refused.value)

    try:
        written, status = asyncio.run(stop_between_two_flags())
    finally:
        snapshot.close()
    assert [new for _, new in written] == [True] and status == 503
    assert [f["sample_id"] for f in served.crowd.flags(who)] == ["k15"]


def test_a_repeated_flag_is_recorded_once(served, person):
    who = person("contributor")
    first = flag(who, sample_id="k12", note="first")
    again = flag(who, url=URL["k12"], note="again")
    assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    [listed] = [f for f in who.api.get("/api/flags").json()["flags"] if f["id"] == first.json()["id"]]
    assert listed["reports"] == 1


def test_two_contributors_confirm_a_flag_without_a_reviewer(served, person):
    ann, cal = person("contributor"), person("contributor")
    flag_id = flag(ann, sample_id="k13", category="copyright").json()["id"]
    assert ann.api.get(f"/api/flags/{flag_id}").json()["status"] == "pending"
    assert flag(cal, sample_id="k13", category="copyright").status_code == 201  # crowd.confirm.contributors: 2
    detail = ann.api.get(f"/api/flags/{flag_id}").json()
    assert detail["status"] == "confirmed" and detail["audit"][-1]["actor"] == "quorum"
    assert [r["by"] for r in detail["reports"]] == [ann.name]  # not who else flagged it


def test_a_decision_needs_a_reason_from_the_config(served, person):
    who, reviewer = person("contributor"), person("reviewer")
    flag_id = flag(who, sample_id="k14", category="copyright").json()["id"]
    review = f"/api/flags/{flag_id}/review"
    assert reviewer.api.post(review, json={"decision": "reject", "reason": "because"}).status_code == 422
    assert reviewer.api.post(review, json={"decision": "reject", "reason": "matches_category"}).status_code == 422  # a confirm reason
    assert reviewer.form(f"/flags/{flag_id}/review", {"decision": "reject", "reason": "because"}).status_code == 422
    assert reviewer.api.post(review, json={"decision": "maybe", "reason": "not_in_category"}).status_code == 422
    decided = reviewer.api.post(review, json={"decision": "reject", "reason": "not_in_category", "note": "a landscape"})
    assert decided.status_code == 200 and decided.json() == {"id": flag_id, "status": "rejected"}
    confirmed = reviewer.form(f"/flags/{flag_id}/review", {"decision": "confirm", "reason": "matches_category", "note": "on a second look"})
    assert confirmed.status_code == 303 and who.api.get(f"/api/flags/{flag_id}").json()["status"] == "confirmed"
    trail = [(a["from_status"], a["to_status"]) for a in who.api.get(f"/api/flags/{flag_id}").json()["audit"] if a["to_status"]]
    assert trail == [(None, "pending"), ("pending", "rejected"), ("rejected", "confirmed")]  # the rejection stays in the trail


def test_pages_carry_security_headers_and_the_api_is_documented(served, person):
    who = person("contributor")
    for answer in (who.web.get("/queue"), who.web.post("/flags", data={}), httpx.get(f"{served.url}/api/health")):
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self';")
        assert answer.headers["X-Content-Type-Options"] == "nosniff" and answer.headers["Referrer-Policy"] == "no-referrer"
    docs = who.web.get("/docs")
    assert docs.status_code == 200 and "script-src 'self' 'sha256-" in docs.headers["Content-Security-Policy"]
    assert all(who.web.get(f"/docs/{name}").status_code == 200 for name in ("swagger-ui-bundle.js", "swagger-ui.css"))
    assert "cdn" not in docs.text
    schema = who.api.get("/openapi.json").json()
    assert {"/api/flags", "/api/flags/{flag_id}", "/api/flags/{flag_id}/review", "/api/health"} <= set(schema["paths"])
    assert not any(p.startswith(("/queue", "/flags", "/login")) for p in schema["paths"])
    assert who.web.get("/queue").headers["location"] == "/mine"  # the queue is for reviewers
    queue = person("reviewer").web.get("/queue?status=pending", headers={"HX-Request": "true", "HX-Target": "flags"})
    assert queue.text.startswith('<div id="flags"')  # the paging link swaps the table alone
