"""The flood guard (issue 25, acceptance 4): a bank entry that matches too many samples is held
for review before it acts (HMA's open request facebook/ThreatExchange#1994).

The bad entry is the PDQ of a blank image. A blank image's PDQ is degenerate: quality 0 (no
gradients to hash), its bits the rounding noise of a flat DCT, and every copy of the same blank
image hashes alike, so one such entry matches every blank placeholder a crawl holds. The
detector's default ``pdq_min_quality`` (50, Meta's PDQ docs) already keeps a sample of quality 0
from matching; this dataset lowers it to 0, standing for any entry that passes the quality gate
and still matches far too much (an exact hash of a placeholder has no quality to gate). 1,000
samples serve the blank JPEG from the fixture web, on three hosts; three serve rocket.jpg, whose
PDQ is a genuine entry of the same bank, under the limit.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image
from typer.testing import CliRunner

from scrutineer.cli.main import app
from scrutineer.core import flood, store
from scrutineer.core.config import FloodConfig, load_config
from scrutineer.core.errors import HeldError
from scrutineer.core.layout import Layout
from scrutineer.crowd.flags import FlagItem
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore
from scrutineer.crowd.sync import before_release, sync_latest
from scrutineer.crowd.tables import audit
from scrutineer.observing.hashing import hash_content
from scrutineer.reports.takedown import takedown_rows
from scrutineer.testing.fixture_web import FixtureWeb
from scrutineer.testing.served import serve
from tests.conftest import scan, write_config

HOSTS = ["127.0.6.1", "127.0.6.2", "127.0.6.3"]
BLANK_SAMPLES = 1000
GENUINE_SAMPLES = 3
LIMIT = 100
runner = CliRunner()


def blank_jpeg() -> bytes:
    """A blank (white) 256 x 256 JPEG, made in memory."""
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (255, 255, 255)).save(out, "JPEG")
    return out.getvalue()


def make_config(root: Path, workspace: Path, crowd_flood: str = "200/hour") -> Path:
    return write_config(root, {
        "dataset": {"name": "flood", "shards": [str(root.parent / "data" / "d.jsonl")], "columns": {"sample_id": "key"}},
        "workspace": str(workspace),
        "banks": [{"name": "hotline", "path": str(root.parent / "data" / "pdq.txt"), "signal_type": "pdq", "source": "test", "version": "7"}],
        "detectors": {"content_hashlist": {"pdq_min_quality": 0}},
        "flood": {"max_matches": LIMIT},
        "crowd": {"categories": {"csam_suspected": {"sensitive": True}, "copyright": {}}, "flood": crowd_flood},
        "release": {"variants": {"clean": {"remove": ["hash_match", "crowd"], "acknowledge_restricted_share": 1}}},
        "fetch": {"allow_private_networks": True},
    })


@pytest.fixture(scope="module")
def flooded(tmp_path_factory, test_data):
    """A scanned workspace whose bank holds the blank image's PDQ and rocket.jpg's; a pristine copy
    of it (workspace and crowd store) is taken per scenario."""
    root = tmp_path_factory.mktemp("flood")
    images, data = root / "images", root / "data"
    images.mkdir()
    data.mkdir()
    blank = blank_jpeg()
    (images / "blank.jpg").write_bytes(blank)
    shutil.copy(test_data / "images" / "jpeg" / "rocket.jpg", images / "rocket.jpg")
    blank_hashes, rocket = hash_content(blank), hash_content((images / "rocket.jpg").read_bytes())
    assert blank_hashes.pdq_quality == 0 and rocket.pdq_quality >= 50  # degenerate, and genuine
    (data / "pdq.txt").write_text(f"{blank_hashes.pdq}\n{rocket.pdq}\n")
    with FixtureWeb(HOSTS, images=[images]) as web:
        rows = [{"key": f"blank-{i}", "url": web.url(f"/img/blank.jpg?n={i}", host=i % 3), "caption": "placeholder"} for i in range(BLANK_SAMPLES)]
        rows += [{"key": f"rocket-{i}", "url": web.url(f"/img/rocket.jpg?n={i}", host=i % 3), "caption": "a rocket"} for i in range(GENUINE_SAMPLES)]
        (data / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = make_config(root / "scanned", root / "scanned" / "work")
        summary = scan(config)
    assert summary["status"] == "completed"
    return {"root": root, "config": config, "summary": summary, "blank": blank_hashes.pdq, "rocket": rocket.pdq}


@pytest.fixture
def copy(flooded, tmp_path):
    """A copy of the scanned workspace, its own config, for one scenario."""
    def make(crowd_flood: str = "200/hour") -> Path:
        workspace = tmp_path / "work"
        shutil.copytree(flooded["root"] / "scanned" / "work", workspace)
        return make_config(flooded["root"] / tmp_path.name, workspace, crowd_flood)
    return make


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def held_entry(config: Path) -> dict:
    cfg = load_config(config)
    with store.connect(cfg.workspace, read_only=True) as con:
        [hold] = flood.run_holds(con, store.latest_run(con, "flood", cfg.workspace)[0])
    return hold


def hold_audit(config: Path) -> list[tuple]:
    with CrowdStore(load_config(config).crowd) as crowd, crowd.engine.connect() as c:
        return c.execute(sa.select(audit.c.actor, audit.c.to_status, audit.c.detail).where(audit.c.action == "hold").order_by(audit.c.id)).all()


def test_the_blank_entry_is_held_and_the_genuine_one_is_not(flooded):
    hold = held_entry(flooded["config"])
    assert (hold["bank"], hold["bank_version"], hold["signal"], hold["entry"]) == ("hotline", "7", "pdq", flooded["blank"])
    assert hold["matches"] == BLANK_SAMPLES and hold["max_matches"] == LIMIT and hold["hosts"] == 3
    assert hold["hold_id"] == flood.hold_id("hotline", "7", "pdq", flooded["blank"]) and hold["decision"] is None
    assert flooded["summary"]["held"] == {"entries": 1, "findings": BLANK_SAMPLES, "dismissed_entries": 0, "dismissed_findings": 0}
    assert flooded["summary"]["findings"]["hash_match.pdq"] == BLANK_SAMPLES + GENUINE_SAMPLES  # the findings are there, held


def test_the_takedown_omits_the_held_rows(flooded):
    _, rows = takedown_rows(load_config(flooded["config"]))
    assert sorted(r["url"].split("/img/")[1] for r in rows) == [f"rocket.jpg?n={i}" for i in range(GENUINE_SAMPLES)]
    with Snapshot(load_config(flooded["config"]).workspace) as snapshot:  # the app's takedown page reads the same rows
        assert len(snapshot.takedown()) == GENUINE_SAMPLES
        assert [h["hold_id"] for h in snapshot.holds()] == [held_entry(flooded["config"])["hold_id"]]


def test_release_refuses_naming_the_entry_until_confirmed(copy, flooded):
    config = copy()
    hold = held_entry(config)
    result = invoke("release", config, "--variant", "clean")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "release refused" in message and hold["hold_id"] in message and "bank hotline v7 pdq" in message
    assert flooded["blank"][:flood.ENTRY_PREFIX] in message and f"matches {BLANK_SAMPLES} samples (limit {LIMIT})" in message
    assert f"scrutineer holds confirm CONFIG {hold['hold_id']}" in message and f"scrutineer holds dismiss CONFIG {hold['hold_id']}" in message
    assert not Layout(load_config(config).workspace).release("RE-flood-clean").exists()

    listed = invoke("holds", "list", config)
    assert listed.exit_code == 0 and hold["hold_id"] in listed.stdout and "held" in listed.stdout
    result = invoke("holds", "confirm", config, hold["hold_id"], "--note", "hotline says it is real")
    assert result.exit_code == 0, result.output
    _, rows = takedown_rows(load_config(config))
    assert len(rows) == BLANK_SAMPLES + GENUINE_SAMPLES  # confirmed: its rows are taken down as usual
    result = invoke("release", config, "--variant", "clean")
    assert result.exit_code == 0, result.output
    manifest = json.loads((Layout(load_config(config).workspace).release("RE-flood-clean") / Layout.MANIFEST).read_text())
    assert manifest["removed"]["rows"] == BLANK_SAMPLES + GENUINE_SAMPLES
    assert [h["hold_id"] for h in manifest["flood_guard"]["confirmed"]] == [hold["hold_id"]]
    assert flooded["blank"] not in json.dumps(manifest)  # entries are restricted: never published
    [(actor, state, detail)] = hold_audit(config)
    assert (actor, state) == ("cli", "confirmed") and json.loads(detail)["hold"] == hold["hold_id"]
    assert "already" in invoke("holds", "dismiss", config, hold["hold_id"]).stderr  # a decision is final


def test_a_dismissed_entry_acts_nowhere(copy, flooded):
    config = copy()
    hold = held_entry(config)
    result = invoke("holds", "dismiss", config, hold["hold_id"], "--note", "a blank placeholder")
    assert result.exit_code == 0, result.output
    _, rows = takedown_rows(load_config(config))
    assert len(rows) == GENUINE_SAMPLES
    result = invoke("release", config, "--variant", "clean")
    assert result.exit_code == 0, result.output
    folder = Layout(load_config(config).workspace).release("RE-flood-clean")
    manifest = json.loads((folder / Layout.MANIFEST).read_text())
    assert manifest["removed"]["rows"] == GENUINE_SAMPLES  # the blank rows stay
    assert manifest["rows"]["output"] == BLANK_SAMPLES
    [dismissed] = manifest["flood_guard"]["dismissed"]
    assert dismissed["hold_id"] == hold["hold_id"] and dismissed["decided_by"] == "cli" and dismissed["matches"] == BLANK_SAMPLES
    assert "dismissed by cli" in (folder / Layout.CARD).read_text()
    [(actor, state, detail)] = hold_audit(config)
    assert (actor, state) == ("cli", "dismissed") and json.loads(detail)["note"] == "a blank placeholder"
    with store.connect(load_config(config).workspace, read_only=True) as con:
        assert flood.held_counts(con, store.latest_run(con, "flood", load_config(config).workspace)[0]).dismissed_findings == BLANK_SAMPLES


def test_a_decision_holds_for_later_runs_of_the_bank_version(copy):
    config = copy()
    hold = held_entry(config)
    assert invoke("holds", "confirm", config, hold["hold_id"]).exit_code == 0
    summary = scan(config)  # a new run of the same bank version: held again, decided already
    assert summary["held"]["entries"] == 0 and held_entry(config)["decision"] == "confirmed"
    before_release(load_config(config))  # nothing refused


def test_a_genuine_entry_under_the_limit_is_never_held(flooded):
    cfg = load_config(flooded["config"])
    with store.connect(cfg.workspace, read_only=True) as con:
        run_id = store.latest_run(con, "flood", cfg.workspace)[0]
        held = {h["entry"] for h in flood.run_holds(con, run_id)}
        idle = con.execute(f"SELECT count(*) FROM ({flood.HELD_FINDINGS}) WHERE sample_id LIKE 'rocket-%'", {"run_id": run_id}).fetchall()[0][0]
    assert flooded["rocket"] not in held and idle == 0


def test_a_flooded_crowd_category_is_held(copy):
    config = copy(crowd_flood="5/hour")
    cfg = load_config(config)
    with CrowdStore(cfg.crowd) as crowd, Snapshot(cfg.workspace) as snapshot:
        crowd.add_account("ann", "contributor")
        crowd.add_account("rev", "reviewer")
        ann, rev = crowd.by_name("ann"), crowd.by_name("rev")
        samples = [found[0] for found in snapshot.samples([("sample_id", f"blank-{i}") for i in range(7)])]
        made = crowd.flag(ann, [FlagItem(s, "copyright", "mine") for s in samples], "form")
        [hold] = crowd.category_holds()
        assert hold["category"] == "copyright" and hold["flags"] == 7 and hold["decision"] is None
        for flag_id, _ in made:
            crowd.review(rev, flag_id, "confirm", "matches_category", "")
    assert sync_latest(cfg)[1] == 0  # confirmed, but held: no crowd finding
    with pytest.raises(HeldError, match=r"crowd-\d+: crowd category copyright had 7 new flags"):
        before_release(cfg)
    assert "crowd-" in invoke("holds", "list", config).stdout
    invoke("holds", "confirm", config, held_entry(config)["hold_id"])  # the blank entry: out of the way
    result = invoke("holds", "dismiss", config, hold["hold"], "--note", "a bot")
    assert result.exit_code == 0, result.output
    assert sync_latest(cfg)[1] == 0  # dismissed: those flags never act
    before_release(cfg)  # nothing held now
    actions = [(actor, state, json.loads(detail).get("kind")) for actor, state, detail in hold_audit(config)]
    assert ("flood guard", "held", "category") in actions and ("cli", "dismissed", "category") in actions


def test_max_matches_takes_a_count_or_a_percentage():
    assert FloodConfig().limit(10**9) == 2500
    assert FloodConfig(max_matches="0.1%").limit(100_000) == 100 and FloodConfig(max_matches="0.1%").limit(10) == 1
    for bad in (0, 0.001, "0.1", "0%", "101%", True):
        with pytest.raises(ValueError, match="flood.max_matches"):
            FloodConfig(max_matches=bad)


VIEWPORTS = {"1280": {"width": 1280, "height": 800}, "390": {"width": 390, "height": 844}}


def test_the_holds_page_in_a_browser(copy, browser):
    """A maintainer sees the held entry and the held category on /holds at 1280 and 390 px (no
    console error, no overflow, no serious axe violation) and confirms the entry from its form; a
    reviewer gets 403."""
    axe_playwright = pytest.importorskip("axe_playwright_python.sync_playwright")
    config = copy(crowd_flood="5/hour")
    cfg = load_config(config)
    with CrowdStore(cfg.crowd) as crowd, Snapshot(cfg.workspace) as snapshot:
        passwords = {role: crowd.add_account(role, role)[0] for role in ("contributor", "reviewer", "maintainer")}
        samples = [found[0] for found in snapshot.samples([("sample_id", f"rocket-{i}") for i in range(GENUINE_SAMPLES)]
                                                          + [("sample_id", f"blank-{i}") for i in range(5)])]
        crowd.flag(crowd.by_name("contributor"), [FlagItem(s, "copyright", "mine") for s in samples], "form")
    hold = held_entry(config)["hold_id"]
    with serve(config) as base:
        pages = {}
        errors: list[str] = []
        for role in ("reviewer", "maintainer"):
            page = pages[role] = browser.new_context(base_url=base).new_page()
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto("/login")
            page.fill("input[name=name]", role)
            page.fill("input[name=password]", passwords[role])
            page.click("button:has-text('Log in')")
            page.wait_for_url(lambda url: "/login" not in url)
        assert pages["reviewer"].goto("/holds").status == 403
        errors.clear()
        page, axe = pages["maintainer"], axe_playwright.Axe()
        for size in VIEWPORTS.values():
            page.set_viewport_size(size)
            assert page.goto("/holds").status == 200
            text = page.inner_text("main")
            assert hold in text and f"{BLANK_SAMPLES}" in text and "copyright" in text and page.locator("h1").count() == 1
            wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)"
                                 ".slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))")
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (size, wide)
            violations = [v["id"] for v in axe.run(page).response["violations"] if v["impact"] in ("serious", "critical")]
            assert violations == []
        page.fill(f"input[aria-label='Note on hold {hold}']", "hotline confirmed")
        page.click(f"button[aria-label='Confirm hold {hold}']")
        page.wait_for_url(lambda url: url.endswith("/holds"))
        assert "confirmed by maintainer: hotline confirmed" in page.inner_text("main")
        assert errors == []
    assert [(actor, state) for actor, state, _ in hold_audit(config)] == [("flood guard", "held"), ("maintainer", "confirmed")]
