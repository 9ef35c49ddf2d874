"""Accounts, sessions and their revocation in the running review app, and its browser-facing
hardening (issue 23, faults 3, 5 and 11, acceptance 4): ``scrutineer serve`` on loopback with its
two app processes, spoken to over HTTP, while the command line changes accounts in the same crowd
store."""

from __future__ import annotations

import base64
import itertools
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from conftest import scan, write_config
from itsdangerous import TimestampSigner
from limits import parse
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core.banks import url_md5
from scrutineer.core.config import Config, CrowdConfig, load_config
from scrutineer.crowd import tables as crowd_tables
from scrutineer.crowd.store import CrowdStore
from scrutineer.testing.served import serve

ROWS = [{"key": f"k{i}", "url": f"http://h{i}.example/{i}.jpg", "caption": f"caption {i}"} for i in range(4)]
LISTED = ROWS[3]["url"]  # on the hash list: the takedown view shows it
names = itertools.count()
#: The session cookie's name, as a browser sees it (scrutineer.crowd.access.SESSION_COOKIE; unchanged since sessions were signed).
SESSION_COOKIE = "scrutineer_session"
#: Fresh connections: the kernel spreads them over both app processes.
CLOSE = {"Connection": "close"}


@dataclass
class Served:
    url: str
    cfg: Config
    crowd: CrowdStore


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("accounts")
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "urls.txt").write_text(url_md5(LISTED) + "\n")
    config = write_config(root, {
        "dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
        "banks": [{"name": "hotline", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
        "detectors": {"url_hashlist": {}},
        "crowd": {"categories": {"copyright": {}}},
    })
    assert scan(config)["status"] == "completed"
    cfg = load_config(config)
    crowd = CrowdStore(cfg.crowd)
    with serve(config) as url:
        yield Served(url, cfg, crowd)
    crowd.close()


def cli(served: Served, *args: str):
    """``scrutineer users COMMAND CONFIG ARGS`` in this process."""
    return CliRunner().invoke(app, ["users", args[0], str(served.cfg.config_path), *args[1:]])


@dataclass
class Person:
    name: str
    password: str
    token: str
    api: httpx.Client  # with the account's API token
    web: httpx.Client  # logged in through the form: a session cookie and a CSRF cookie

    def form(self, path: str, data: dict | None = None, **kw) -> httpx.Response:
        return self.web.post(path, data={"csrftoken": self.web.cookies["csrftoken"], **(data or {})}, **kw)


def log_in(web: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    web.get("/login")
    return web.post("/login", data={"name": name, "password": password, "csrftoken": web.cookies["csrftoken"]}, headers=headers)


def attempt(served: Served, name: str, password: str, **headers: str) -> tuple[httpx.Response, str]:
    """A log-in from a fresh client: the answer, and its page with the name and the client's CSRF token blanked."""
    with httpx.Client(base_url=served.url) as web:
        answer = log_in(web, name, password, **headers)
        return answer, answer.text.replace(web.cookies["csrftoken"], "CSRF").replace(name, "NAME")


@pytest.fixture
def person(served) -> Iterator:
    """``person(role)``: a new account with an API client and a logged-in browser-like client."""
    clients = []

    def make(role: str, name: str | None = None) -> Person:
        name = name or f"{role}{next(names)}"
        password, token = served.crowd.add_account(name, role)
        web = httpx.Client(base_url=served.url)
        api = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"})
        clients.extend((api, web))
        logged_in = log_in(web, name, password)
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/"
        return Person(name, password, token, api, web)

    yield make
    for client in clients:
        client.close()


def signed_out(who: Person) -> bool:
    """Whether every app process refuses ``who``'s token and session: API 401, pages to /login."""
    answers = [(who.api.get("/api/flags", headers=CLOSE).status_code, who.web.get("/api/flags", headers=CLOSE).status_code,
                who.web.get("/mine", headers=CLOSE).headers.get("location")) for _ in range(10)]
    return set(answers) == {(401, 401, "/login")}


def signed_on(who: Person) -> bool:
    """Whether every app process accepts ``who``'s token and session."""
    answers = [(who.api.get("/api/flags", headers=CLOSE).status_code, who.web.get("/mine", headers=CLOSE).status_code) for _ in range(10)]
    return set(answers) == {(200, 200)}


def test_users_disable_ends_a_live_session_and_a_token_at_once(served, person):
    """Acceptance 4: ``users disable`` ends a live session and a token; the next request gets
    401, in every app process (both have just served the account)."""
    who = person("contributor")
    assert signed_on(who)
    disabled = cli(served, "disable", who.name)
    assert disabled.exit_code == 0, disabled.output
    assert signed_out(who)
    assert attempt(served, who.name, who.password)[0].status_code == 401
    assert cli(served, "enable", who.name).exit_code == 0
    with httpx.Client(base_url=served.url) as again:
        assert log_in(again, who.name, who.password).status_code == 303 and again.get("/mine").status_code == 200
    assert who.api.get("/api/flags").status_code == 401  # its tokens stay ended


def test_a_session_copied_before_log_out_stops_working_after_it(served, person):
    """Fault 5: sessions are server-side records, so a log-out ends every copy of the cookie."""
    who = person("reviewer")
    with httpx.Client(base_url=served.url, cookies={SESSION_COOKIE: who.web.cookies[SESSION_COOKIE]}) as copy:
        assert copy.get("/mine").status_code == 200
        assert who.form("/logout").headers["location"] == "/login"
        assert (copy.get("/mine").status_code, copy.get("/api/flags").status_code) == (303, 401)
    assert who.web.get("/mine").headers["location"] == "/login"


def test_a_rotated_token_and_a_reset_password_stop_at_once(served, person):
    who = person("contributor")
    assert signed_on(who)
    rotated = cli(served, "rotate-token", who.name)
    token = re.search(r"API token of '.+': (\S+)", rotated.stdout)[1]
    assert all(who.api.get("/api/flags", headers=CLOSE).status_code == 401 for _ in range(10))
    assert httpx.get(f"{served.url}/api/flags", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert who.web.get("/mine").status_code == 200  # the session stays
    reset = cli(served, "reset-password", who.name)
    password = re.search(r"password of '.+': (\S+)", reset.stdout)[1]
    assert all(who.web.get("/mine", headers=CLOSE).headers.get("location") == "/login" for _ in range(10))
    assert attempt(served, who.name, who.password)[0].status_code == 401
    assert attempt(served, who.name, password)[0].status_code == 303


def test_nothing_in_the_crowd_store_forges_a_session(served, person):
    """Fault 3: whoever reads crowd.sqlite could sign ``{"account": <maintainer id>}`` with the
    stored session secret and read /takedown. No stored value signs a session or is one now."""
    boss = person("maintainer")
    assert LISTED in boss.web.get("/takedown").text
    account_id = served.crowd.by_name(boss.name).id
    with served.crowd.engine.connect() as c:  # every text the store holds: secrets, hashes of passwords, tokens and sessions
        tables = sa.inspect(c).get_table_names()
        stored = {v for t in tables for row in c.exec_driver_sql(f"SELECT * FROM {t}") for v in row if isinstance(v, str) and len(v) >= 16}
    claim = base64.b64encode(json.dumps({"account": account_id}).encode())
    forged = [TimestampSigner(v).sign(claim).decode() for v in stored] + sorted(stored)  # Starlette's signed cookie; a stored value as is
    answers = []
    with httpx.Client(base_url=served.url) as forger:
        for cookie in forged:
            forger.cookies.set(SESSION_COOKIE, cookie)
            answers.append(forger.get("/takedown"))
    assert {(a.status_code, a.headers.get("location")) for a in answers} == {(303, "/login")}


def test_failed_log_ins_and_tokens_are_throttled_per_account_and_address(served, person):
    """Fault 5: failed log-ins count per name tried and per address, failed tokens per address
    (``X-Forwarded-For`` from the loopback proxy names the address); 429 with Retry-After, and
    the same answer for a name that does not exist as for a wrong password."""
    defaults = CrowdConfig()
    per_name, per_address = parse(defaults.failed_logins_per_account).amount, parse(defaults.failures_per_address).amount
    who = person("contributor")
    pages = []
    for name in (who.name, "nobody-at-all"):
        answers = [attempt(served, name, "wrong", **{"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(per_name)]
        assert {a.status_code for a, _ in answers} == {401}
        limited, limited_page = attempt(served, name, who.password, **{"X-Forwarded-For": "198.51.100.1"})
        assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 15 * 60
        assert "Too many failed sign-ins" in limited.text
        pages.append((answers[0][1], re.sub(r"\d+ s", "N s", limited_page)))
    assert pages[0] == pages[1]  # the same answers, whether or not the account exists
    assert who.api.get("/api/flags").status_code == 200 and who.web.get("/mine").status_code == 200  # held names keep their sessions

    address = {"X-Forwarded-For": "203.0.113.7"}
    wrong = {"Authorization": "Bearer scr_not-a-token", **address}
    assert {httpx.get(f"{served.url}/api/flags", headers=wrong).status_code for _ in range(per_address)} == {401}
    limited = httpx.get(f"{served.url}/api/flags", headers=wrong)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0 and "detail" in limited.json()
    assert attempt(served, "someone-else", "wrong", **address)[0].status_code == 429  # the address's log-ins too
    assert who.api.get("/api/flags", headers=address).status_code == 200  # a token that matches is no failure
    assert httpx.get(f"{served.url}/api/flags", headers={**wrong, "X-Forwarded-For": "203.0.113.8"}).status_code == 401


def test_a_state_changing_request_from_another_site_is_refused(served, person):
    """Fault 11: POSTs carrying cookies whose Origin or Sec-Fetch-Site says another site get 403,
    even with a valid CSRF token; a token-only client is no browser and is not checked."""
    who = person("contributor")
    csrf = {"x-csrftoken": who.web.cookies["csrftoken"]}
    foreigners = ({"Origin": "https://evil.example"}, {"Origin": "http://127.0.0.1:1"}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                  {"Sec-Fetch-Site": "same-site"}, {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"})
    for foreign in foreigners:
        assert who.form("/flags", {"sample_id": "k1", "category": "copyright"}, headers=foreign).status_code == 403
        refused = who.web.post("/api/flags", json={"sample_id": "k1", "category": "copyright"}, headers={**csrf, **foreign})
        assert refused.status_code == 403 and "another site" in refused.json()["detail"]
        assert who.form("/logout", headers=foreign).status_code == 403
    assert who.api.get("/api/flags").json()["flags"] == []  # nothing recorded
    same = {"Origin": served.url, "Sec-Fetch-Site": "same-origin"}
    assert who.form("/flags", {"sample_id": "k1", "category": "copyright"}, headers=same).status_code == 303
    own_form = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # what Chromium sends from a page with Referrer-Policy: no-referrer
    assert who.form("/flags", {"sample_id": "k3", "category": "copyright"}, headers=own_form).status_code == 303
    made = who.api.post("/api/flags", json={"sample_id": "k2", "category": "copyright"}, headers={"Origin": "https://evil.example"})
    assert made.status_code == 201


def set_cookies(answer: httpx.Response) -> list[str]:
    return answer.headers.get_list("set-cookie")


def test_cookies_are_secure_over_https_and_with_secure_cookies(served, person):
    """Fault 11: over HTTPS (a TLS proxy on loopback saying ``X-Forwarded-Proto: https``) every
    cookie, the session's too, is ``Secure``; over plain HTTP only with ``serve --secure-cookies``."""
    who = person("contributor")
    https = {"X-Forwarded-Proto": "https"}
    plain = set_cookies(httpx.get(f"{served.url}/login"))
    assert plain and not any("secure" in c.lower() for c in plain)
    logged_in, _ = attempt(served, who.name, who.password, **https)
    cookies = set_cookies(httpx.get(f"{served.url}/login", headers=https)) + set_cookies(logged_in)
    assert any(c.startswith(f"{SESSION_COOKIE}=") for c in cookies) and all("; Secure" in c for c in cookies)
    assert all("httponly" in c.lower() and "samesite=strict" in c.lower() for c in set_cookies(logged_in))
    with serve(served.cfg.config_path, "--secure-cookies") as url:
        secure = set_cookies(httpx.get(f"{url}/login"))
        assert secure and all("; Secure" in c for c in secure)


def test_serving_beyond_loopback_warns_of_plain_http(served):
    """Fault 11: ``serve --host`` with a host other than loopback warns that it serves plain HTTP
    and names the README's section on a TLS proxy. (The port is taken, so nothing is served.)"""
    exe = str(Path(sys.executable).parent / "scrutineer")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for host, warned in (("0.0.0.0", True), ("127.0.0.1", False)):
            run = subprocess.run([exe, "serve", str(served.cfg.config_path), "--host", host, "--port", port], capture_output=True, text=True, timeout=60)
            assert run.returncode == 1 and "cannot serve" in run.stderr
            assert ("plain HTTP" in run.stderr and 'README "Behind TLS"' in run.stderr) is warned, run.stderr


def test_maintainers_manage_accounts_in_the_app(served, person):
    """Fault 5: the accounts page lists every account without secrets; a maintainer disables,
    enables, rotates a token and resets a password there (CSRF-protected forms, audited), and a
    new secret is shown once."""
    boss, target = person("maintainer"), person("contributor", f'<script>alert("{next(names)}")</script>')
    reviewer = person("reviewer")
    target_id = served.crowd.by_name(target.name).id
    for other in (reviewer, target):
        assert other.web.get("/accounts").status_code == 403
        assert other.form(f"/accounts/{target_id}/disable").status_code == 403
    page = boss.web.get("/accounts")
    assert page.status_code == 200 and "&lt;script&gt;alert(" in page.text and target.name not in page.text
    assert not any(secret in page.text for secret in (target.password, target.token, boss.password, boss.token))
    assert 'href="/accounts"' in page.text
    assert boss.web.post(f"/accounts/{target_id}/disable").status_code == 403  # no CSRF token

    disabled = boss.form(f"/accounts/{target_id}/disable")
    assert disabled.status_code == 303 and disabled.headers["location"] == "/accounts"
    assert signed_out(target)
    assert boss.form(f"/accounts/{target_id}/enable").status_code == 303
    rotated = boss.form(f"/accounts/{target_id}/rotate-token")
    token = re.search(r"<code>(scr_[^<]+)</code>", rotated.text)[1]
    assert rotated.status_code == 200 and httpx.get(f"{served.url}/api/flags", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert token not in boss.web.get("/accounts").text  # shown once
    reset = boss.form(f"/accounts/{target_id}/reset-password")
    password = re.search(r"New password of <strong>[^<]+</strong>: <code>([^<]+)</code>", reset.text)[1]
    assert attempt(served, target.name, password)[0].status_code == 303

    boss_id = served.crowd.by_name(boss.name).id
    assert boss.form(f"/accounts/{boss_id}/disable").status_code == 422
    assert boss.form("/accounts/999999/disable").status_code == 404
    assert boss.form(f"/accounts/{target_id}/delete").status_code == 422
    with served.crowd.engine.connect() as c:
        audited = [(actor, json.loads(detail)["change"]) for actor, detail in c.execute(
            sa.select(crowd_tables.audit.c.actor, crowd_tables.audit.c.detail).where(crowd_tables.audit.c.action == "account"))
            if json.loads(detail).get("name") == target.name and "change" in json.loads(detail)]
    assert audited == [(boss.name, change) for change in ("disable", "enable", "rotate-token", "reset-password")]
