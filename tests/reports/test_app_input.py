"""Hostile input to the review app answers 4xx, never a 500 with a traceback, and notes, captions
and URLs are stored and shown safely (issue 23, fault 9): ``scrutineer serve`` on loopback, its
log read after each request."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import scan, write_config

from scrutineer.core.config import Config, load_config
from scrutineer.crowd.store import CrowdStore
from scrutineer.testing.served import free_port

RLO, LRI, RLM = "\u202e", "\u2066", "\u200f"
ROWS = [
    {"key": "k0", "url": "http://plain.example/0.jpg", "caption": "plain"},
    {"key": "k1", "url": f"http://bidi.example/{RLO}gpj.jpg", "caption": f"a cat {RLO}gpj.exe"},
    *({"key": f"k{i}", "url": f"http://plain.example/{i}.jpg", "caption": f"plain {i}"} for i in range(2, 8)),
]
#: SQLite's largest INTEGER (a signed 64-bit number).
MAX_ID = 2**63 - 1
CROWD = {"categories": {"csam_suspected": {"sensitive": True}, "copyright": {}}, "confirm": {"reviewers": 1}, "rate_limit": "100/minute"}


@dataclass
class App:
    url: str
    cfg: Config
    log: Path  # the server's stderr
    contributor: tuple[str, str]  # password, token
    reviewer: tuple[str, str]
    seen: int = 0  # characters of the log written before the running test

    def tracebacks(self) -> int:
        """Tracebacks the server logged during the running test."""
        return self.log.read_text()[self.seen:].count("Traceback")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[App]:
    """``scrutineer serve`` of a scanned workspace, its stderr in a file the tests read."""
    root = tmp_path_factory.mktemp("input")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    config = write_config(root, {"dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}}, "detectors": {"license_gaps": {}}, "crowd": CROWD})
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    with CrowdStore(cfg.crowd) as crowd:
        contributor, reviewer = crowd.add_account("casey", "contributor"), crowd.add_account("riley", "reviewer")
    port = free_port()
    log = root / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([str(Path(sys.executable).parent / "scrutineer"), "serve", str(config), "--host", "127.0.0.1", "--port", str(port)],
                                  stderr=stderr, stdout=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # until it answers (as scrutineer.testing.served.serve, which keeps its log to itself)
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield App(base, cfg, log, contributor, reviewer)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(autouse=True)
def from_here(app: App) -> None:
    app.seen = len(app.log.read_text())


def api(app: App, who: str = "contributor") -> httpx.Client:
    return httpx.Client(base_url=app.url, headers={"Authorization": f"Bearer {getattr(app, who)[1]}"})


@contextmanager
def browser(app: App, name: str, password: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client signed in through the log-in form, and its CSRF token."""
    with httpx.Client(base_url=app.url) as web:
        web.get("/login")
        assert web.post("/login", data={"name": name, "password": password, "csrftoken": web.cookies["csrftoken"]}).status_code == 303
        yield web, web.cookies["csrftoken"]


def test_ids_past_sqlites_integer_are_422(app):
    """SQLite's INTEGER is a signed 64-bit number: a larger id was an OverflowError (500)."""
    too_big = "99999999999999999999"
    with api(app) as contributor, api(app, "reviewer") as reviewer, browser(app, "casey", app.contributor[0]) as (web, _):
        answers = [contributor.get(f"/api/flags?before={too_big}000"), contributor.get(f"/api/flags/{too_big}"),
                   reviewer.post(f"/api/flags/{too_big}/review", json={"decision": "reject", "reason": "not_in_category"}),
                   web.get(f"/flags/{too_big}"), web.get(f"/flags/{too_big}/image"), web.get(f"/queue?before={too_big}")]
        assert [a.status_code for a in answers] == [422] * 6
        assert answers[0].json()["detail"][0]["loc"] == ["query", "before"] and "<h1>Error 422</h1>" in answers[3].text
        assert contributor.get(f"/api/flags?before={MAX_ID}").status_code == 200  # the bound is SQLite's largest
        assert contributor.get(f"/api/flags/{MAX_ID}").status_code == 404
    assert app.tracebacks() == 0


def test_text_that_is_not_unicode_is_422(app):
    """A lone surrogate (``\\ud800``, valid JSON, not encodable as UTF-8) was a UnicodeEncodeError
    (500) when FastAPI echoed it in its 422."""
    with api(app) as contributor, api(app, "reviewer") as reviewer:
        note = contributor.post("/api/flags", content='{"sample_id": "k2", "category": "copyright", "note": "a\\ud800"}',
                                headers={"Content-Type": "application/json"})
        assert note.status_code == 422 and note.json()["detail"][0]["loc"] == ["body", "note"]
        key = contributor.post("/api/flags", content='{"sample_id": "k2", "category": "copyright", "\\ud800": 1}', headers={"Content-Type": "application/json"})
        assert key.status_code == 422 and key.json()["detail"][0]["loc"][0] == "body"
        review = reviewer.post("/api/flags/1/review", content='{"decision": "reject", "reason": "not_in_category", "note": "\\udfff"}',
                               headers={"Content-Type": "application/json"})
        assert review.status_code == 422
        assert contributor.get("/api/flags").json()["flags"] == []  # nothing recorded
    assert app.tracebacks() == 0


def test_bodies_the_app_does_not_read_are_refused_before_any_route(app):
    """A multipart form with a file part was a TypeError inside asgi-csrf (500); a multipart type
    without a boundary dropped the connection; a form that is not UTF-8 was a UnicodeDecodeError."""
    with browser(app, "casey", app.contributor[0]) as (web, token), api(app) as contributor:
        form = {"sample_id": "k3", "category": "copyright", "csrftoken": token}
        assert web.post("/flags", data=form, files={"note": ("note.txt", b"a file")}).status_code == 415
        assert web.post("/flags", content=b"x", headers={"Content-Type": "multipart/form-data"}).status_code == 415
        assert contributor.post("/api/flags", data={"sample_id": "k3", "category": "copyright"}, files={"f": ("f", b"x")}).status_code == 415
        for body in (b"note=%ED%A0%80", b"note=\xff"):  # a UTF-8-encoded surrogate; a byte that starts no UTF-8 character
            refused = web.post("/flags", content=body + b"&" + f"csrftoken={token}".encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert refused.status_code == 400 and "UTF-8" in refused.text
        big = contributor.post("/api/flags", json={"sample_id": "k3", "category": "copyright", "note": "x" * 2**20})  # a MiB: past any flag's size
        assert big.status_code == 413 and "at most" in big.json()["detail"]
        assert contributor.get("/api/flags").json()["flags"] == []
        assert web.post("/flags", data=form | {"note": "by the form"}).status_code == 303  # a form the app takes still works
    assert app.tracebacks() == 0


def test_nul_is_stripped_from_notes_in_every_channel(app, tmp_path):
    with browser(app, "casey", app.contributor[0]) as (web, token), api(app) as contributor, api(app, "reviewer") as reviewer:
        by_api = contributor.post("/api/flags", json={"sample_id": "k4", "category": "copyright", "note": "api\x00 note"}).json()["id"]
        by_form = web.post("/flags", data={"sample_id": "k5", "category": "copyright", "note": "form\x00 note", "csrftoken": token})
        assert by_form.status_code == 303
        rows = [{"sample_id": "k6", "category": "copyright", "note": "import\x00 note"}, {"sample_id": "k7", "category": "copyright", "note": "lone \ud800"}]
        (tmp_path / "flags.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # json.dumps escapes both
        imported = subprocess.run([str(Path(sys.executable).parent / "scrutineer"), "flags", "import", str(app.cfg.config_path), str(tmp_path / "flags.jsonl"),
                                   "--by", "casey"], capture_output=True, text=True, timeout=120, check=False)
        assert imported.returncode == 0, imported.stderr
        decided = reviewer.post(f"/api/flags/{by_api}/review", json={"decision": "reject", "reason": "not_in_category", "note": "review\x00 note"})
        assert decided.status_code == 200
        flags = {f["sample_id"]: f["id"] for f in reviewer.get("/api/flags").json()["flags"]}
        notes = {sample: reviewer.get(f"/api/flags/{flags[sample]}").json()["reports"][0]["note"] for sample in ("k4", "k5", "k6", "k7")}
        assert notes == {"k4": "api note", "k5": "form note", "k6": "import note", "k7": "lone \ufffd"}
        assert reviewer.get(f"/api/flags/{by_api}").json()["reviews"][0]["note"] == "review note"
    assert app.tracebacks() == 0


def test_bidi_controls_in_notes_captions_and_urls_are_shown_not_obeyed(app):
    note = f"see {RLO}gpj.exe and {LRI}x and {RLM}y"
    with api(app) as contributor:
        flag_id = contributor.post("/api/flags", json={"sample_id": "k1", "category": "copyright", "note": note}).json()["id"]
        assert contributor.get(f"/api/flags/{flag_id}").json()["reports"][0]["note"] == note  # stored as given: the API is data
    for name, password in (("casey", app.contributor[0]), ("riley", app.reviewer[0])):
        with browser(app, name, password) as (web, _):
            for path in (f"/flags/{flag_id}", "/queue") if name == "riley" else (f"/flags/{flag_id}",):  # the queue is for reviewers
                page = web.get(path).text
                assert not re.search("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", page), (name, path)
                assert '<code class="control">&lt;U+202E&gt;</code>gpj.exe' in page  # the caption (and the note on the item)
            item = web.get(f"/flags/{flag_id}").text
            assert '<code class="control">&lt;U+202E&gt;</code>gpj.exe and <code class="control">&lt;U+2066&gt;</code>x' in item
            assert '<code class="control">&lt;U+200F&gt;</code>y' in item
    with browser(app, "riley", app.reviewer[0]) as (web, _):
        assert '<code>http://bidi.example/<code class="control">&lt;U+202E&gt;</code>gpj.jpg</code>' in web.get(f"/flags/{flag_id}").text
    assert app.tracebacks() == 0
