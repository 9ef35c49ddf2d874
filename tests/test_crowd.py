"""The crowd store, `flags import`, `sync` and a release removing confirmed flags."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
import sqlalchemy as sa
from conftest import scan, write_config
from limits import parse
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core.banks import url_md5
from scrutineer.core.config import CrowdConfig, load_config
from scrutineer.core.errors import ConfigError, CrowdError, RateLimited
from scrutineer.crowd import tables as crowd_tables
from scrutineer.crowd.api import http_status
from scrutineer.crowd.flag_import import import_flags
from scrutineer.crowd.flags import FlagItem, FlagRequest, Sample
from scrutineer.crowd.snapshot import LOOKUP_IDS, Snapshot
from scrutineer.crowd.store import CrowdStore, crowd_counts
from scrutineer.crowd.sync import sync_latest
from scrutineer.reports.html import write_report

CROWD = {
    "categories": {"csam_suspected": {"sensitive": True}, "copyright": {"description": "Used without permission"}},
    "confirm": {"reviewers": 1, "contributors": 2},
}
ROWS = [{"key": f"k{i}", "url": f"http://h{i % 3}.example/{i}.jpg", "caption": f"caption {i}"} for i in range(8)]


def dataset(tmp_path, crowd=CROWD, remove=("hash_match", "crowd")):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "urls.txt").write_text(url_md5(ROWS[7]["url"]) + "\n")
    return write_config(
        tmp_path,
        {
            "dataset": {"name": "d", "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
            "banks": [{"name": "w", "path": "urls.txt", "signal_type": "url_md5", "source": "test", "version": "1"}],
            "detectors": {"url_hashlist": {}},
            "crowd": crowd,
            # the hash-list match and the sensitive flag are 2 of the 4 removals no one can recompute
            "release": {"variants": {"clean": {"remove": list(remove), "acknowledge_restricted_share": 0.5}}},
        },
    )


@pytest.fixture
def scanned(tmp_path):
    config = dataset(tmp_path)
    assert scan(config)["status"] == "completed"
    return load_config(config)


def people(crowd: CrowdStore):
    for name, role in (("ann", "contributor"), ("cal", "contributor"), ("rev", "reviewer")):
        crowd.add_account(name, role)
    return [crowd.by_name(n) for n in ("ann", "cal", "rev")]


def sample(i: int) -> Sample:
    return Sample(f"k{i}", "d.jsonl", i, ROWS[i]["url"], ROWS[i]["caption"])


def test_quorum_review_and_audit_trail(scanned):
    crowd = CrowdStore(scanned.crowd)
    ann, cal, rev = people(crowd)
    [(first, new)] = crowd.flag(ann, [FlagItem(sample(0), "copyright", "mine")], "api")
    assert new and crowd.flag(ann, [FlagItem(sample(0), "copyright", "again")], "form") == [(first, False)]  # recorded once
    assert crowd.flag_detail(rev, first)["status"] == "pending"
    crowd.flag(cal, [FlagItem(sample(0), "copyright", "me too")], "api")  # two distinct contributors: the quorum
    assert crowd.flag_detail(rev, first)["status"] == "confirmed"

    [(second, _)] = crowd.flag(ann, [FlagItem(sample(1), "csam_suspected", "")], "api")
    with pytest.raises(CrowdError) as e:
        crowd.review(ann, second, "confirm", "matches_category", "")
    assert http_status(e.value) == 403
    with pytest.raises(CrowdError, match="reason for 'reject' must be one of"):
        crowd.review(rev, second, "reject", "because", "")
    assert crowd.review(rev, second, "reject", "not_in_category", "a cartoon") == "rejected"
    assert crowd.review(rev, second, "confirm", "hotline_confirmed", "hotline says yes") == "confirmed"
    trail = [(a["actor"], a["action"], a["from_status"], a["to_status"]) for a in crowd.flag_detail(rev, second)["audit"]]
    assert trail == [
        ("ann", "flag", None, "pending"),
        ("ann", "report", None, None),
        ("rev", "review", None, None),
        ("rev", "flag", "pending", "rejected"),  # the rejection stays in the trail
        ("rev", "review", None, None),
        ("rev", "flag", "rejected", "confirmed"),
    ]
    assert [a["actor"] for a in crowd.flag_detail(cal, first)["audit"]][:3] == ["another contributor", "another contributor", "cal"]  # who else flagged it stays hidden
    with pytest.raises(CrowdError) as e:
        crowd.flag_detail(cal, second)  # not cal's flag
    assert http_status(e.value) == 404
    with crowd.engine.connect() as c, pytest.raises(sa.exc.IntegrityError, match="append-only"):
        c.exec_driver_sql("UPDATE audit SET actor = 'nobody'")


def test_passwords_and_tokens_are_stored_hashed(scanned):
    crowd = CrowdStore(scanned.crowd)
    password, token = crowd.add_account("ann", "contributor")
    assert crowd.by_token(token).name == "ann" and crowd.by_token(token + "x") is None
    assert crowd.by_password("ann", password).role == "contributor" and crowd.by_password("ann", "wrong") is None
    stored = (scanned.workspace / "crowd.sqlite").read_bytes() + (scanned.workspace / "crowd.sqlite-wal").read_bytes()
    assert password.encode() not in stored and token.encode() not in stored
    with pytest.raises(CrowdError, match="exists already"):
        crowd.add_account("ann", "reviewer")
    with pytest.raises(CrowdError, match="unknown role"):
        crowd.add_account("bob", "admin")


def test_import_is_all_or_nothing_and_names_each_bad_line(scanned, tmp_path):
    crowd = CrowdStore(scanned.crowd)
    people(crowd)
    bad = tmp_path / "flags.csv"
    bad.write_text(
        "sample_id,url,category,note\n"
        "k1,,copyright,fine\n"
        "nope,,copyright,unknown sample\n"
        ",http://h0.example/0.jpg,copyright,a URL\n"
        "k2,,weird,unknown category\n"
    )
    with pytest.raises(CrowdError) as e:
        import_flags(scanned, bad, "ann")
    assert "line 3: unknown sample_id 'nope'" in str(e.value) and "line 5: unknown category 'weird'" in str(e.value)
    assert str(e.value).index("line 3:") < str(e.value).index("line 5:")  # in file order, whichever check found each
    assert crowd.counts()["by_status"]["pending"] == 0  # nothing imported
    good = tmp_path / "flags.jsonl"
    good.write_text(json.dumps({"url": "http://h1.example/4.jpg", "category": "copyright", "note": "n"}) + "\n\n"
                    + json.dumps({"sample_id": "k1", "category": "copyright"}) + "\n")
    assert import_flags(scanned, good, "ann") == (2, 2)
    assert import_flags(scanned, good, "ann") == (2, 0)  # the same contributor again: recorded once
    assert {f["sample_id"] for f in crowd.flags(crowd.by_name("rev"))} == {"k1", "k4"}


def test_a_jsonl_line_nested_too_deep_is_a_bad_line_not_a_traceback(scanned, tmp_path):
    """The standard library's parser raises RecursionError on a line nested 100,000 levels deep:
    the import names the line, where it gave a traceback."""
    people(CrowdStore(scanned.crowd))
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"sample_id": "k1", "category": "copyright", "note": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(CrowdError, match="line 1: nested too deep to read"):
        import_flags(scanned, deep, "ann")


def test_a_disabled_account_imports_no_flags(scanned, tmp_path):
    """`users disable` takes an account's access back everywhere: `flags import --by` it too."""
    crowd = CrowdStore(scanned.crowd)
    people(crowd)
    crowd.change_account("ann", "disable", "test")
    good = tmp_path / "flags.jsonl"
    good.write_text(json.dumps({"sample_id": "k1", "category": "copyright", "note": "n"}) + "\n")
    with pytest.raises(CrowdError, match="account 'ann' is disabled") as e:
        import_flags(scanned, good, "ann")
    assert http_status(e.value) == 403 and crowd.counts()["by_status"]["pending"] == 0
    crowd.change_account("ann", "enable", "test")
    assert import_flags(scanned, good, "ann") == (1, 1)


def test_sync_is_idempotent_and_release_removes_exactly_the_confirmed_samples(scanned):
    crowd = CrowdStore(scanned.crowd)
    ann, _, rev = people(crowd)
    ids = {i: fid for i, [(fid, _)] in ((i, crowd.flag(ann, [FlagItem(sample(i), c, "")], "api")) for i, c in ((2, "copyright"), (3, "csam_suspected"), (4, "copyright")))}
    crowd.review(rev, ids[2], "confirm", "matches_category", "")
    crowd.review(rev, ids[3], "confirm", "hotline_confirmed", "")
    crowd.review(rev, ids[4], "reject", "not_in_category", "")
    run_id, n = sync_latest(scanned)
    assert n == 2 and sync_latest(scanned) == (run_id, 2)
    con = duckdb.connect(str(scanned.workspace / "scrutineer.duckdb"), read_only=True)
    found = con.sql("SELECT sample_id, reason, restricted, evidence FROM findings WHERE detector = 'crowd' ORDER BY sample_id").fetchall()
    con.close()
    assert [(s, r, x) for s, r, x, _ in found] == [("k2", "crowd.copyright", False), ("k3", "crowd.csam_suspected", True)]
    assert json.loads(found[1][3])["flag_id"] == ids[3] and json.loads(found[1][3])["review_ids"]

    crowd.review(rev, ids[4], "confirm", "matches_category", "changed my mind")  # decided after the sync: release syncs first
    released = CliRunner().invoke(app, ["release", str(scanned.config_path), "--variant", "clean"])
    assert released.exit_code == 0, released.output
    release = scanned.workspace / "releases" / "RE-d-clean"
    kept = {json.loads(line)["key"] for line in (release / "data" / "d.jsonl").read_text().splitlines()}
    assert kept == {r["key"] for r in ROWS} - {"k2", "k3", "k4", "k7"}  # k7: the hash-list match
    # no removal is listed; the restricted rows (the sensitive flag, the match) hide among the crowd's decisions
    assert not (release / "removed.parquet").exists()
    hidden = json.loads((release / "manifest.json").read_text())["removed"]["anonymity_set"]
    assert hidden == {"rows": 4, "restricted": 2, "restricted_share": 0.5}
    # the watchdog report counts the crowd's flags, and names no URL of the sensitive one
    html = write_report(scanned, crowd=crowd_counts(scanned)).read_text()  # as `scrutineer report` does
    assert '<code class="reason">copyright</code></td>\n<td class="n">0</td><td class="n">2</td><td class="n">0</td>' in html  # pending, confirmed, rejected
    assert ROWS[3]["url"] not in html and "(sensitive: counts only)" in html


def test_the_review_snapshot_follows_the_latest_run(scanned):
    snapshot = Snapshot(scanned.workspace)
    k0, zz, url = snapshot.samples([("sample_id", "k0"), ("sample_id", "zz"), ("url", ROWS[3]["url"])])
    assert [s.caption for s in k0] == ["caption 0"] and zz == [] and [s.sample_id for s in url] == ["k3"]
    many = snapshot.samples([("sample_id", f"k{i}") for i in range(LOOKUP_IDS + 1)])  # in two lookups
    assert [[s.sample_id for s in found] for found in many] == [[f"k{i}"] for i in range(8)] + [[]] * (LOOKUP_IDS - 7)
    assert snapshot.restricted(["k0", "k7"]) == {"k7"}
    before = snapshot.run_id()
    assert scan(scanned.config_path)["status"] == "completed"
    assert snapshot.run_id() != before  # reopened on the new file


def test_a_sensitive_category_must_be_removed_or_kept_on_purpose(tmp_path):
    with pytest.raises(ConfigError, match=r"restricted findings \['crowd.csam_suspected'\]"):
        load_config(dataset(tmp_path, remove=["hash_match", "crowd.copyright"]))


def test_the_cli_adds_users_imports_flags_and_syncs(scanned, tmp_path):
    def run(*args):
        return CliRunner().invoke(app, list(args))

    added = run("users", "add", str(scanned.config_path), "ann", "--role", "contributor")
    assert added.exit_code == 0, added.output
    token = added.stdout.split("API token: ")[1].split()[0]
    assert CrowdStore(scanned.crowd).by_token(token).name == "ann"
    flags = tmp_path / "f.csv"
    flags.write_text("sample_id,category,note\nk5,copyright,=HYPERLINK(\"x\")\n")
    imported = run("flags", "import", str(scanned.config_path), str(flags), "--by", "ann")
    assert imported.exit_code == 0 and "1 flags recorded" in imported.stdout, imported.output
    bad = run("flags", "import", str(scanned.config_path), str(flags), "--by", "nobody")
    assert bad.exit_code == 1 and "no account 'nobody'" in bad.stderr
    synced = run("sync", str(scanned.config_path))
    assert synced.exit_code == 0 and "0 crowd findings" in synced.stdout, synced.output


def test_a_sensitive_flag_restricts_its_sample_under_any_category(scanned):
    crowd = CrowdStore(scanned.crowd)
    ann, cal, _ = people(crowd)
    crowd.flag(ann, [FlagItem(sample(0), "copyright", ""), FlagItem(sample(1), "copyright", "")], "api")
    crowd.flag(cal, [FlagItem(sample(1), "csam_suspected", "")], "api")
    rev = crowd.by_name("rev")
    shown = {(f["sample_id"], f["category"]): f["sensitive"] for f in crowd.flags(rev)}
    assert shown == {("k0", "copyright"): False, ("k1", "copyright"): True, ("k1", "csam_suspected"): True}
    assert crowd.flag_detail(rev, crowd.flags(rev, category="copyright")[0]["id"])["sensitive"]  # k1's, the newest
    assert crowd.status_counts() == crowd.counts()["by_status"] == {"pending": 3, "confirmed": 0, "rejected": 0}


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path):
    """The crowd store on SQLite (the default) and on a real PostgreSQL server."""
    url = f"sqlite:///{tmp_path / 'crowd.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    crowd = CrowdStore(CrowdConfig(database=url, categories=CROWD["categories"], confirm=CROWD["confirm"]))
    yield crowd
    if request.param == "postgres":  # the server is the session's: leave it empty
        crowd_tables.metadata.drop_all(crowd.engine)
    crowd.close()


def test_concurrent_reports_reach_the_quorum_once_and_the_log_stays_append_only(any_store):
    crowd = any_store
    for n in range(8):
        crowd.add_account(f"c{n}", "contributor")
    everyone = [crowd.by_name(f"c{n}") for n in range(8)]
    with ThreadPoolExecutor(8) as pool:  # eight contributors flag one sample at once
        made = list(pool.map(lambda who: crowd.flag(who, [FlagItem(sample(0), "copyright", who.name)], "api"), everyone))
    assert len({fid for [(fid, _)] in made}) == 1 and all(new for [(_, new)] in made)
    rev = crowd.by_name("c0")
    detail = crowd.flag_detail(rev, made[0][0][0])
    assert detail["status"] == "confirmed" and len(detail["reports"]) == 1  # a contributor sees only their own report
    transitions = [(a["from_status"], a["to_status"]) for a in detail["audit"] if a["action"] == "flag"]
    assert transitions == [(None, "pending"), ("pending", "confirmed")]
    with crowd.engine.connect() as c, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        c.execute(crowd_tables.audit.delete())


def test_a_batch_of_requests_records_each_all_or_nothing(any_store):
    """The app's group commit: one transaction for many accounts' requests; a refused request
    records nothing and refuses no other."""
    crowd = any_store
    for name in ("ann", "cal"):
        crowd.add_account(name, "contributor")
    ann, cal = crowd.by_name("ann"), crowd.by_name("cal")
    three = parse("3/minute")
    made = crowd.flag_many([
        FlagRequest(ann, [FlagItem(sample(0), "copyright", "first")], "api", three),
        FlagRequest(cal, [FlagItem(sample(0), "copyright", "second"), FlagItem(sample(1), "copyright", "")], "api", three),
        FlagRequest(ann, [FlagItem(sample(0), "copyright", "repeated")], "form", three),  # ann's second request in the window
        FlagRequest(ann, [FlagItem(sample(2), "no such category", "")], "api"),
        FlagRequest(ann, [FlagItem(sample(i), "copyright", "") for i in (3, 4, 6)], "api", three),  # 1 + 3 > 3 (the repeat counts nothing)
        FlagRequest(cal, [FlagItem(sample(5), "csam_suspected", "")], "import"),
    ])
    k0 = made[0][0][0]
    assert made[0] == [(k0, True)] and made[1][0] == (k0, True) and made[2] == [(k0, False)]
    assert isinstance(made[3], CrowdError) and http_status(made[3]) == 422 and "no such category" in str(made[3])
    assert isinstance(made[4], RateLimited) and http_status(made[4]) == 429 and 1 <= made[4].retry_after <= 60
    assert made[1][1][1] and made[5][0][1] and len({k0, made[1][1][0], made[5][0][0]}) == 3
    assert crowd.status_counts() == {"pending": 2, "confirmed": 1, "rejected": 0}  # k0 reached the quorum of two contributors
    detail = crowd.flag_detail(crowd.by_name("ann"), k0)
    assert [r["note"] for r in detail["reports"]] == ["first"]  # ann's repeat is not a second report
    assert [(a["action"], a["from_status"], a["to_status"]) for a in detail["audit"]] == [
        ("flag", None, "pending"), ("report", None, None), ("report", None, None), ("flag", "pending", "confirmed")]
    assert {f["sample_id"] for f in crowd.flags(ann)} == {"k0"}  # ann's refused requests left nothing
    assert {f["sample_id"] for f in crowd.flags(cal)} == {"k0", "k1", "k5"}


def test_a_repeated_flag_is_not_counted_against_the_rate_limit(any_store):
    """README: a repeated flag records nothing and is not counted; at the limit, repeating a flag
    is answered as a repeat (200), and only a new report is refused (429)."""
    crowd = any_store
    crowd.add_account("ann", "contributor")
    ann, three = crowd.by_name("ann"), parse("3/minute")
    first = crowd.flag(ann, [FlagItem(sample(i), "copyright", "") for i in range(3)], "api", three)  # at the limit
    again = crowd.flag_many([
        FlagRequest(ann, [FlagItem(sample(0), "copyright", "again")], "api", three),
        FlagRequest(ann, [FlagItem(sample(1), "copyright", ""), FlagItem(sample(2), "copyright", "")], "form", three),
        FlagRequest(ann, [FlagItem(sample(0), "csam_suspected", "")], "api", three),  # another category: a new report
    ])
    assert again[0] == [(first[0][0], False)] and again[1] == [(first[1][0], False), (first[2][0], False)]
    assert isinstance(again[2], RateLimited)
    assert len(crowd.flags(ann)) == 3


def test_the_queue_pages_newest_first_and_a_contributor_sees_their_own_flags(scanned):
    crowd = CrowdStore(scanned.crowd)
    ann, cal, rev = people(crowd)
    ids = [fid for [(fid, _)] in (crowd.flag(ann, [FlagItem(sample(i), "copyright", "")], "api") for i in range(6))]
    crowd.flag(cal, [FlagItem(sample(4), "copyright", ""), FlagItem(sample(1), "copyright", "")], "api")  # both reach the quorum of two

    def pages(who, **filters):
        shown, before = [], None
        while page := crowd.flags(who, before=before, limit=4, **filters):
            shown.append([f["id"] for f in page])
            before = page[-1]["id"]
        return shown

    assert pages(rev) == [ids[:1:-1], ids[1::-1]]
    assert pages(cal) == [[ids[4], ids[1]]]
    assert pages(cal, status="pending") == [] and pages(ann, status="confirmed") == [[ids[4], ids[1]]]
    assert pages(ann, status="pending") == [[ids[5], ids[3], ids[2], ids[0]]]


def test_staff_reports_do_not_count_toward_the_contributor_quorum(any_store):
    """Issue 23, fault 12: a contributor's and a reviewer's flags of one sample are not the quorum
    of two contributors; the staff flag waits for a review, which another reviewer can give."""
    crowd = any_store
    for name, role in (("ann", "contributor"), ("rev", "reviewer"), ("boss", "maintainer"), ("eve", "reviewer"), ("cal", "contributor")):
        crowd.add_account(name, role)
    ann, rev, boss, eve, cal = (crowd.by_name(n) for n in ("ann", "rev", "boss", "eve", "cal"))
    [(flag_id, _)] = crowd.flag(ann, [FlagItem(sample(0), "copyright", "")], "api")
    crowd.flag(rev, [FlagItem(sample(0), "copyright", "")], "api")
    crowd.flag(boss, [FlagItem(sample(0), "copyright", "")], "api")
    detail = crowd.flag_detail(eve, flag_id)
    assert detail["status"] == "pending" and len(detail["reports"]) == 3  # recorded, not counted
    with pytest.raises(CrowdError) as refused:
        crowd.review(rev, flag_id, "confirm", "matches_category", "")  # four eyes: not the reviewer who flagged it
    assert http_status(refused.value) == 403
    assert crowd.review(eve, flag_id, "confirm", "matches_category", "") == "confirmed"  # another reviewer can

    [(other, _)] = crowd.flag(rev, [FlagItem(sample(1), "copyright", "")], "api")
    crowd.flag(ann, [FlagItem(sample(1), "copyright", "")], "api")
    assert crowd.flag_detail(eve, other)["status"] == "pending"
    crowd.flag(cal, [FlagItem(sample(1), "copyright", "")], "api")  # the second contributor: the quorum
    audit = crowd.flag_detail(eve, other)["audit"]
    assert crowd.flag_detail(eve, other)["status"] == "confirmed" and audit[-1]["actor"] == "quorum"
    assert json.loads(audit[-1]["detail"]) == {"contributors": 2}


def test_the_cli_lists_disables_enables_rotates_and_resets_accounts(scanned):
    """Issue 23, fault 5: every credential can be listed, disabled and rotated, at once, audited."""
    config = str(scanned.config_path)

    def run(*args):
        return CliRunner().invoke(app, [*args[:1], args[1], config, *args[2:]])

    added = run("users", "add", "ann", "--role", "contributor").stdout
    password, token = (added.split(f"{k}: ")[1].split()[0] for k in ("password", "API token"))
    run("users", "add", "rev", "--role", "reviewer")
    crowd = CrowdStore(scanned.crowd)
    session = crowd.sign_in("ann", password, "192.0.2.1")
    listed = run("users", "list")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1:] for line in listed.stdout.splitlines()[1:]}
    assert rows["ann"][:2] == ["contributor", "enabled"] and rows["ann"][-2:] == ["1", "1"]  # one token, one live session
    assert rows["rev"][-3:] == ["never", "1", "0"] and password not in listed.stdout and token not in listed.stdout

    disabled = run("users", "disable", "ann")
    assert disabled.exit_code == 0, disabled.output
    assert crowd.by_token(token) is None and crowd.by_session(session) is None and crowd.by_password("ann", password) is None
    assert crowd.sign_in("ann", password, "192.0.2.1") is None
    assert run("users", "enable", "ann").exit_code == 0
    assert crowd.by_token(token) is None  # ended for good
    assert crowd.by_password("ann", password).name == "ann"

    rotated = run("users", "rotate-token", "ann")
    new_token = rotated.stdout.split("API token of 'ann': ")[1].split()[0]
    assert crowd.by_token(new_token).name == "ann"
    session = crowd.sign_in("ann", password, "192.0.2.1")
    assert run("users", "rotate-token", "ann").exit_code == 0 and crowd.by_token(new_token) is None
    assert crowd.by_session(session).name == "ann"  # a new token leaves the sessions alone

    reset = run("users", "reset-password", "ann")
    new_password = reset.stdout.split("password of 'ann': ")[1].split()[0]
    assert crowd.by_session(session) is None and crowd.by_password("ann", password) is None
    assert crowd.by_password("ann", new_password).name == "ann"

    missing = run("users", "disable", "nobody")
    assert missing.exit_code == 1 and "no account 'nobody'" in missing.stderr
    with crowd.engine.connect() as c:
        changes = [(actor, json.loads(detail)) for actor, detail in c.execute(
            sa.select(crowd_tables.audit.c.actor, crowd_tables.audit.c.detail).where(crowd_tables.audit.c.action == "account").order_by(crowd_tables.audit.c.id))]
    assert [(actor, d.get("change")) for actor, d in changes] == [
        ("cli", None), ("cli", None), ("cli", "disable"), ("cli", "enable"), ("cli", "rotate-token"), ("cli", "rotate-token"), ("cli", "reset-password")]
    assert changes[2][1] == {"name": "ann", "change": "disable", "sessions_ended": 1, "tokens_ended": 1}
    stored = "".join(str(d) for _, d in changes)
    assert not any(secret in stored for secret in (password, new_password, token, new_token))


def test_sessions_are_records_that_end_on_log_out_and_expire(any_store):
    crowd = any_store
    password, _ = crowd.add_account("ann", "contributor")
    first, second = (crowd.sign_in("ann", password, "192.0.2.1") for _ in range(2))
    assert crowd.by_session(first).name == "ann" and crowd.by_session(second).name == "ann"
    crowd.end_session(first)
    assert crowd.by_session(first) is None and crowd.by_session(second).name == "ann"  # one log-out ends one session
    with crowd.engine.begin() as c:
        c.execute(crowd_tables.sessions.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert crowd.by_session(second) is None
    assert crowd.by_session("made up") is None
    [ann] = crowd.list_accounts()
    assert ann["sessions"] == 0 and ann["signed_in_at"] is not None
    with crowd.engine.connect() as c:  # nothing left that signs a session: sessions are looked up, not verified
        assert c.execute(sa.select(crowd_tables.settings.c.key)).scalars().all() == ["csrf_secret"]
        assert first not in str(c.execute(sa.select(crowd_tables.sessions)).all())


def test_failed_sign_ins_are_throttled_per_name_and_per_address_alike(any_store, monkeypatch):
    """NIST SP 800-63B §5.2.2 and OWASP's Authentication Cheat Sheet: failures are limited per
    account and per address, and an account that does not exist is answered as a wrong password,
    in message and in work (argon2 runs either way)."""
    crowd = any_store
    password, _ = crowd.add_account("ann", "contributor")
    crowd.add_account("off", "contributor")
    crowd.change_account("off", "disable", "cli")
    argon2 = []
    for method in ("hash", "verify"):
        real = getattr(crowd._passwords, method)
        monkeypatch.setattr(crowd._passwords, method, lambda *a, real=real, method=method: argon2.append(method) or real(*a))
    per_name = parse(crowd.config.failed_logins_per_account).amount
    answers = {}
    for name in ("ann", "nobody", "off"):
        argon2.clear()
        for n in range(per_name):
            assert crowd.sign_in(name, "wrong", f"192.0.2.{n}") is None
        assert len(argon2) == per_name  # one argon2 run per attempt, whatever the name
        with pytest.raises(RateLimited) as limited:
            crowd.sign_in(name, password, "198.51.100.1")  # the right password too, from a fresh address
        answers[name] = str(limited.value).split(":")[0]
        assert len(argon2) == per_name and 1 <= limited.value.retry_after <= 15 * 60  # refused before argon2
    assert set(answers.values()) == {"too many failed sign-ins"}
    assert crowd.sign_in("cal", "x", "198.51.100.1") is None  # another name is not held up by ann's failures

    per_address = parse(crowd.config.failures_per_address).amount
    for n in range(per_address - 1):
        crowd.failed_token("203.0.113.9")
    assert crowd.sign_in("someone", "wrong", "203.0.113.9") is None  # the last failure the address may have
    with pytest.raises(RateLimited):
        crowd.failed_token("203.0.113.9")
    with pytest.raises(RateLimited):
        crowd.sign_in("bob", "wrong", "203.0.113.9")  # a name with no failures, from that address
    crowd.failed_token("203.0.113.10")  # another address has its own count


def test_a_store_made_before_sessions_gains_them(tmp_path):
    """A crowd store made by an earlier version (no account states, a session-signing secret)
    opens: the new columns are added and the old secret is deleted."""
    url = f"sqlite:///{tmp_path / 'crowd.sqlite'}"
    CrowdStore(CrowdConfig(database=url)).close()
    with sa.create_engine(url).begin() as c:
        for column in ("disabled_at", "signed_in_at"):
            c.exec_driver_sql(f"ALTER TABLE accounts DROP COLUMN {column}")
        c.exec_driver_sql("INSERT INTO settings VALUES ('session_secret', 'forges sessions')")
    with CrowdStore(CrowdConfig(database=url)) as crowd:
        password, token = crowd.add_account("ann", "contributor")
        assert crowd.by_token(token).name == "ann" and crowd.list_accounts()[0]["state"] == "enabled"
        with crowd.engine.connect() as c:
            assert "forges sessions" not in str(c.execute(sa.select(crowd_tables.settings)).all())


def test_accounts_can_be_added_before_the_first_scan(tmp_path):
    """`users add` on a workspace no scan has made yet makes it (its owner's only), not a traceback."""
    config = dataset(tmp_path)
    added = CliRunner().invoke(app, ["users", "add", str(config), "ann", "--role", "maintainer"])
    assert added.exit_code == 0, added.output
    assert (tmp_path / "work").stat().st_mode & 0o777 == 0o700
