"""The optouts detector end to end: every real opt-out file in tests/data/optout served by the
fixture web, each on a host of its own, scanned, and judged one by one (issue 13, acceptance 1);
policy files read once per host per TTL (acceptance 4)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from scrutineer.core import store
from scrutineer.testing.fixture_web import FixtureWeb
from tests.conftest import scan, write_config

IMAGE = "camera.png"  # any plain image (skimage); no C2PA manifest, no opt-out of its own


def _site(root: Path, name: str, **files: Path | str) -> Path:
    """A directory of policy files for one fixture host: robots_txt=, ai_txt=, tdmrep_json=."""
    folder = root / name
    folder.mkdir(parents=True)
    for key, content in files.items():
        target = folder / key.replace("_", ".")
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content)
    return folder


def _news_robots(optout: Path, site: str) -> str:
    csv.field_size_limit(1 << 24)
    with (optout / "robots_txt" / "news_top100_robots_txt_2025-03-29.csv").open(newline="") as f:
        return next(r["robots"] for r in csv.DictReader(f) if r["Website"] == site)


def _optout_config(directory: Path, name: str, urls: list[str], detectors: dict | None = None, **fetch) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "d.jsonl").write_text("".join(json.dumps({"key": f"s{i}", "url": u}) + "\n" for i, u in enumerate(urls)))
    return write_config(directory, {
        "dataset": {"name": name, "shards": ["d.jsonl"], "columns": {"sample_id": "key"}},
        "detectors": {"optouts": {}, **(detectors or {})},
        "fetch": {"allow_private_networks": True, "retries": 0, **fetch},
    })


def _findings(workspace: Path) -> dict[str, dict[str, dict]]:
    """url -> {reason: evidence} of the optouts findings of the latest run."""
    with store.connect(workspace, read_only=True) as con:
        rows = con.execute(
            "SELECT url, reason, evidence FROM findings WHERE detector = 'optouts' "
            "AND run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)"
        ).fetchall()
    out: dict[str, dict[str, dict]] = {}
    for url, reason, evidence in rows:
        out.setdefault(url, {})[reason] = json.loads(evidence)
    return out


@pytest.fixture(scope="module")
def judged(tmp_path_factory, test_data):
    optout = test_data / "optout"
    tmp = tmp_path_factory.mktemp("optouts")
    sites_dir = tmp / "sites"
    # host -> (its policy files, the path scanned on it, the reasons expected, why)
    cases: dict[str, tuple[dict, str, set[str], str]] = {}

    def case(host: str, files: dict, path: str, expected: set[str], why: str) -> None:
        cases[f"{host} {path}"] = (files, path, expected, why)

    ai = optout / "ai_txt"
    case("127.0.1.1", {"ai_txt": ai / "arne.me__ai.txt"}, f"/img/{IMAGE}", {"optout.ai_txt"}, "arne.me: 'User-Agent: *', 'Disallow: /'")
    case("127.0.1.2", {"ai_txt": ai / "chemaclass.com__ai.txt"}, f"/img/{IMAGE}", set(), "chemaclass.com: 'Allow: /', 'permits AI agents to ... train'")
    case("127.0.1.3", {"ai_txt": ai / "hacdias.com__ai.txt"}, f"/img/{IMAGE}", {"optout.ai_txt"}, "hacdias.com: 'Disallow: *.png'")
    case("127.0.1.4", {"ai_txt": ai / "lunnova_blog__ai.txt"}, f"/img/{IMAGE}", set(), "LunNova: 'Spawning AI - Allow all'")
    case("127.0.1.5", {"ai_txt": ai / "mltshp.com__ai.txt"}, f"/img/{IMAGE}", {"optout.ai_txt"}, "mltshp: 'Prevent datasets from using' *.png")
    case("127.0.1.6", {"ai_txt": ai / "omid.dev__ai.txt"}, f"/img/{IMAGE}", set(), "omid.dev: prose, no directives: no signal")
    case("127.0.1.7", {"ai_txt": ai / "taricorp.net__ai.txt"}, f"/img/{IMAGE}", {"optout.ai_txt"}, "taricorp.net: 'Deny use of content for AI training'")
    case("127.0.1.8", {"ai_txt": ai / "usbills.ai__ai.txt"}, f"/img/{IMAGE}", set(), "usbills.ai: only *.svg, *.json, /static/ disallowed; 'Allow: /'")
    td = optout / "tdmrep"
    case("127.0.2.1", {"tdmrep_json": td / "cofob.dev__tdmrep.json"}, f"/img/{IMAGE}", {"optout.tdmrep"}, "cofob.dev: location '/', reservation 1")
    case("127.0.2.2", {"tdmrep_json": td / "debats.co__tdmrep.json"}, f"/img/{IMAGE}", {"optout.tdmrep"}, "debats.co: reservation 1 + tdm-policy")
    case("127.0.2.3", {"tdmrep_json": td / "healsdata_ai-training-opt-out__tdmrep.json"}, f"/img/{IMAGE}", {"optout.tdmrep"}, "location '/', 1")
    case("127.0.2.4", {"tdmrep_json": td / "licence.thibaultsan.com__tdmrep.json"}, f"/img/{IMAGE}", {"optout.tdmrep"}, "reservation 1 + policy")
    case("127.0.2.5", {"tdmrep_json": td / "xlr8harder.github.io__tdmrep.json"}, f"/img/{IMAGE}", set(), "xlr8harder: location '/*', reservation 0")
    case("127.0.2.6", {"tdmrep_json": '[{"location": "/", "tdm-reservation": "1"}]'}, f"/img/{IMAGE}", {"optout.invalid"},
         "TDMRep: tdm-reservation is 0 or 1 (a number); the string '1' is non-conformant, reported, not a reservation")
    # "Headers override the file": cofob.dev's file reserves, the response's own header says 0
    case("127.0.2.1", {}, f"/with/{IMAGE}?h=tdm-reservation:0", set(), "tdm-reservation: 0 on the response overrides the file")
    news = {"globo.com": {"optout.robots"}, "foxnews.com": set()}
    for i, (site, expected) in enumerate(news.items()):
        case(f"127.0.3.{i + 1}", {"robots_txt": _news_robots(optout, site)}, f"/img/{IMAGE}", expected,
             "globo.com: 'User-agent: GPTBot / Disallow: /'" if expected else "foxnews.com: no group for an AI agent")
    signals = optout / "robots_txt" / "content_signal"
    for i, site in enumerate(sorted(p.name for p in signals.iterdir())):
        # the managed block's 'User-agent: *' says ai-train=no; GPTBot and others are disallowed by their own groups
        case(f"127.0.5.{i + 1}", {"robots_txt": signals / site}, f"/img/{IMAGE}", {"optout.content_signal", "optout.robots"},
             f"{site}: 'Content-Signal: ... ai-train=no' (Content Signals Policy (b): 'you may not collect content for the corresponding use')")
    # RSL: robots.txt names a licence on the host itself ("{port}" is the fixture's, filled in when it listens)
    licence = "License: http://{host}:{port}/license.xml\nUser-agent: *\nAllow: /\n"
    rsl_dir = optout / "rsl"
    case("127.0.6.1", {"robots_txt": licence, "license_xml": rsl_dir / "mezzode.com__license.xml"}, f"/img/{IMAGE}", {"optout.rsl"},
         "mezzode.com's licence: '<prohibits type=\"usage\">all ai-all search</prohibits>'")
    case("127.0.6.2", {"robots_txt": licence, "license_xml": rsl_dir / "dylmye.me__license.xml"}, f"/img/{IMAGE}", {"optout.constrained"},
         "dylmye.me's licence: ai-train permitted with attribution, through a licence server")
    case("127.0.6.3", {"license_xml": rsl_dir / "mezzode.com__license.xml"},
         f"/with/{IMAGE}?h=Link:<http://127.0.6.3:{{port}}/license.xml>;%20rel=%22license%22;%20type=%22application/rsl%2Bxml%22", {"optout.rsl"},
         "the response's 'Link: <...>; rel=\"license\"; type=\"application/rsl+xml\"' (RSL 1.0 §4.5)")
    case("127.0.6.4", {"robots_txt": licence}, f"/img/{IMAGE}", {"optout.invalid"}, "robots.txt names a licence its URL does not serve (404)")
    # one host with no policy files of its own (the fixture's robots.txt disallows /private/ to Scrutineer)
    plain = "127.0.4.1"
    for path, expected, why in [
        ("/with/camera.png?h=X-Robots-Tag:noai", {"optout.header"}, "img2dataset README: 'X-Robots-Tag: noai'"),
        ("/with/coins.png?h=X-Robots-Tag:noimageai", {"optout.header"}, "'X-Robots-Tag: noimageai'"),
        ("/with/cell.png?h=X-Robots-Tag:noindex", set(), "'noindex' is about search indexing (img2dataset refuses it by default)"),
        ("/with/clock_motion.png?h=X-Robots-Tag:noimageindex", set(), "'noimageindex': search indexing"),
        ("/with/horse.png?h=X-Robots-Tag:GPTBot:%20noai", {"optout.header"}, "scoped to GPTBot, an agent on the list"),
        ("/with/text.png?h=X-Robots-Tag:otherbot: noai", set(), "scoped to an agent not on the list"),
        ("/with/astronaut.png?h=Content-Usage:train-ai=n", {"optout.aipref"}, "aipref attach draft's example 'Content-Usage: train-ai=n'"),
        ("/with/brick.png?h=Content-Usage:search=n", set(), "search is not AI training"),
        ("/with/grass.png?h=Content-Usage:bots=n", {"optout.aipref"}, "vocab-03/-04's Automated Processing covers AI training"),
        ("/with/cell.png?h=Content-Usage:Train-AI=n", {"optout.invalid"}, "vocab-07 §6.5: an upper-case key fails the parse: no preference"),
        ("/with/coins.png?h=X-Robots-Tag:noindex,%20noml", {"optout.header"}, "NoML: 'X-Robots-Tag: noml'"),
        ("/img/IPTC-PhotometadataRef-Std2023.2.jpg", {"optout.iptc"}, "IPTC's reference image: DMI-PROHIBITED-GENAIMLTRAINING"),
        ("/img/IPTC-Empty_stamped-DMI-PROHIBITED-AIMLTRAINING.jpg", {"optout.iptc"}, "plus:DataMining 'Prohibited for AI/ML training'"),
        ("/img/horse_DMI-PROHIBITED-SEECONSTRAINT.png", {"optout.iptc"}, "'Prohibited, see plus:OtherConstraints', in a PNG's XMP"),
        ("/img/coffee_DMI-ALLOWED.jpg", set(), "plus:DataMining 'Allowed'"),
        ("/with/chelsea.png?h=tdm-reservation:1&h=tdm-policy:https://provider.com/policies/policy.json", {"optout.tdmrep"},
         "TDMRep spec example: 'tdm-reservation: 1' with 'tdm-policy'"),
        ("/img/datadiligence_sample_c2pa.png", {"optout.c2pa"}, "c2pa.training-mining: ai_training etc. 'notAllowed'"),
        ("/img/c2pa-rs_CA.jpg", set(), "a C2PA manifest without a training-mining assertion"),
        ("/private/grass.png", {"optout.robots"}, "the host's robots.txt: 'User-agent: Scrutineer / Disallow: /private/'"),
    ]:
        case(plain, {}, path, expected, why)

    hosts = sorted({key.split()[0] for key in cases})
    sites = {}
    for key, (files, _path, _expected, _why) in cases.items():
        host = key.split()[0]
        if files:
            sites[host] = _site(sites_dir, host, **files)
    images = [test_data / "images" / "skimage", optout / "c2pa", optout / "iptc"]
    with FixtureWeb(hosts, images=images, sites=sites) as web:
        for host, folder in sites.items():  # a file naming the fixture's own URLs: read at each request, so written now
            for file in folder.iterdir():
                file.write_text(file.read_text().replace("{host}", host).replace("{port}", str(web.port)))
        urls = {key: f"http://{key.split()[0]}:{web.port}{path.replace('{port}', str(web.port))}" for key, (_f, path, _e, _w) in cases.items()}
        config = _optout_config(tmp / "scan", "optouts-real-files", list(urls.values()))
        summary = scan(config)
        yield {"cases": cases, "urls": urls, "findings": _findings(tmp / "scan" / "work"), "summary": summary,
               "workspace": tmp / "scan" / "work", "stats": web.stats()}


def test_every_real_file_gets_its_verdict(judged):
    """Acceptance 1: each case's expected reasons, exactly (the case list says why for each)."""
    assert judged["summary"]["status"] == "completed"
    got = {key: set(judged["findings"].get(url, {})) for key, url in judged["urls"].items()}
    expected = {key: case[2] for key, case in judged["cases"].items()}
    assert got == expected
    with store.connect(judged["workspace"], read_only=True) as con:
        statuses = dict(con.execute("SELECT url, status FROM fetches").fetchall())
    # every image was served (so a header case cannot pass on a 404), but the one robots.txt keeps us from
    assert {url: statuses[url] for url in judged["urls"].values()} == {
        url: "blocked" if "/private/" in url else "alive" for url in judged["urls"].values()
    }


def test_evidence_names_the_signal_the_rule_and_the_file(judged):
    by_key = {key: judged["findings"].get(url, {}) for key, url in judged["urls"].items()}
    ai = by_key[f"127.0.1.3 /img/{IMAGE}"]["optout.ai_txt"]
    assert ai["rule"] == "Disallow: *.png" and ai["file"].endswith("/ai.txt") and len(ai["file_sha256"]) == 64 and ai["read_at"]
    tdm = by_key[f"127.0.2.2 /img/{IMAGE}"]["optout.tdmrep"]
    assert tdm["tdm_policy"] == "https://debats.co/mentions-legales" and tdm["file"].endswith("/.well-known/tdmrep.json")
    invalid = by_key[f"127.0.2.6 /img/{IMAGE}"]["optout.invalid"]
    assert invalid["fault"] == "entry 0: tdm-reservation '1' is not 0 or 1"
    robots = by_key[f"127.0.3.1 /img/{IMAGE}"]["optout.robots"]
    assert robots["named"] == ["CCBot", "Google-Extended", "GPTBot"] and robots["others"] is False
    aipref = next(v for k, v in by_key.items() if "Content-Usage:train-ai" in k)["optout.aipref"]
    assert aipref["value"] == "train-ai=n" and aipref["drafts"].startswith("draft-ietf-aipref-vocab")


def test_policy_files_are_observations_in_the_store(judged):
    with store.connect(judged["workspace"], read_only=True) as con:
        rows = con.execute("SELECT origin, name, http_status, sha256 FROM policy_files").fetchall()
    served = {(o.split("//")[1].split(":")[0], n) for o, n, status, sha in rows if status == 200}
    assert ("127.0.1.1", "ai.txt") in served and ("127.0.2.1", "tdmrep.json") in served and ("127.0.3.1", "robots.txt") in served
    assert ("127.0.4.1", "ai.txt") not in served  # 404: recorded, but not served


def test_policy_files_fetched_once_per_host_per_ttl(tmp_path, test_data):
    """Acceptance 4: 1,000 URLs on one host read each policy file once; a second scan within the
    TTL (another shard, same host) reads none; after the TTL, each once more."""
    with FixtureWeb(["127.0.5.1"], images=[test_data / "images" / "skimage"]) as web:
        urls = [web.url(f"/img/{IMAGE}?n={i}") for i in range(1000)]
        config = _optout_config(tmp_path / "a", "ttl", urls, policy_ttl=3600)
        workspace = tmp_path / "a" / "work"
        assert scan(config)["status"] == "completed"
        policy_paths = ("/robots.txt", "/ai.txt", "/.well-known/tdmrep.json")

        def reads() -> dict[str, int]:
            by_path = web.stats()["by_host"].get("127.0.5.1", {})
            return {p: by_path.get(p, 0) for p in policy_paths}

        assert reads() == dict.fromkeys(policy_paths, 1)
        assert web.stats()["by_host"]["127.0.5.1"][f"/img/{IMAGE}"] == 1000
        web.reset()
        (tmp_path / "a" / "d.jsonl").write_text(json.dumps({"key": "other", "url": web.url(f"/img/{IMAGE}?other")}) + "\n")
        assert scan(config)["status"] == "completed"
        assert reads() == dict.fromkeys(policy_paths, 0)  # within the TTL: from the workspace's policy cache
        web.reset()
        expired = _optout_config(tmp_path / "a", "ttl", [web.url(f"/img/{IMAGE}?third")], policy_ttl=0.001)
        assert scan(expired)["status"] == "completed"
        assert reads() == dict.fromkeys(policy_paths, 1)
    with store.connect(workspace, read_only=True) as con:
        times = con.execute("SELECT count(DISTINCT fetched_at) FROM policy_files WHERE name = 'ai.txt'").fetchone()[0]
    assert times == 2  # the first read (used by two scans) and the one after the TTL


def test_a_recheck_keeps_the_policy_files_it_builds_on(tmp_path, test_data):
    """A recheck's content observation starts from the stored one: its policy files come along (so
    its judgements still see them) and none is fetched again within the TTL."""
    from scrutineer.core.config import load_config
    from scrutineer.flows.scan import run_scan

    site = _site(tmp_path / "sites", "127.0.5.2", ai_txt=test_data / "optout" / "ai_txt" / "taricorp.net__ai.txt")
    with FixtureWeb(["127.0.5.2"], images=[test_data / "images" / "skimage"], sites={"127.0.5.2": site}) as web:
        urls = [web.url(f"/img/{IMAGE}"), web.url("/error/coins.png")]  # the second stays transient: due for a recheck
        config = load_config(_optout_config(tmp_path / "scan", "recheck-optouts", urls, {"dead_links": {}}, recheck_interval=0))
        assert run_scan(config)["status"] == "completed"
        web.reset()
        recheck = run_scan(config, "recheck")
        assert web.stats()["by_host"]["127.0.5.2"] == {"/error/coins.png": 1}  # the due URL only: no policy file again
    found = _findings(config.workspace)
    assert {url: set(r) for url, r in found.items()} == {u: {"optout.ai_txt"} for u in urls}  # taricorp: 'Disallow: /'
    with store.connect(config.workspace, read_only=True) as con:
        observations = con.execute("SELECT count(DISTINCT observation_id) FROM policy_files WHERE name = 'ai.txt'").fetchone()[0]
        latest = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    assert observations == 2 and latest == recheck["run_id"]


# --- hostile hosts (issue 23) -----------------------------------------------------------------------

DATA = Path(__file__).parents[1] / "data" / "optout"
GOOD = ["127.0.8.1", "127.0.8.2", "127.0.8.3"]
HOSTILE = ["127.0.6.1", "127.0.6.2", "127.0.6.3", "127.0.6.4"]
REDOS = "/" + "*a" * 12 + "*b"  # issue 23, fault 2: minutes of regex backtracking against 40 a's
SYNTHETIC = "synthetic-00000.jpg"


def _good_urls(port: int) -> list[str]:
    paths = [f"/img/{SYNTHETIC}", "/img/synthetic-00001.jpg", f"/with/{SYNTHETIC}?h=X-Robots-Tag:noai", "/private/synthetic-00002.jpg"]
    return [f"http://{host}:{port}{path}" for host in GOOD for path in paths]


def _comparable(workspace: Path, urls: list[str]) -> tuple[set, set, set]:
    """The latest run's findings (evidence less its times), fetches and content hashes of ``urls``."""
    with store.connect(workspace, read_only=True) as con:
        latest = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
        con.execute("CREATE TEMP TABLE wanted AS SELECT unnest(?::VARCHAR[]) AS url", [urls])
        findings = con.execute("SELECT url, detector, reason, evidence FROM findings JOIN wanted USING (url) WHERE run_id = ?", [latest]).fetchall()
        fetches = con.execute("SELECT url, status, http_status, final_url, content_type, error, x_robots_tag, bytes, attempts "
                              "FROM fetches JOIN wanted USING (url)").fetchall()
        hashes = con.execute("SELECT sample_id, url, md5, sha256, phash, pdq, width, height, bytes FROM content_hashes JOIN wanted USING (url)").fetchall()
    untimed = {(u, d, r, json.dumps({k: v for k, v in json.loads(e).items() if k not in ("read_at", "checked_at")}, sort_keys=True))
               for u, d, r, e in findings}
    return untimed, set(fetches), set(hashes)


def test_hostile_hosts_neither_fail_nor_change_a_scan(tmp_path):
    """Acceptance 3 (issue 23): hosts serving every hostile policy file, beside 3 good hosts: the
    scan ends ``completed``, and the good hosts' findings, fetches and hashes are those of a scan
    without the hostile hosts. The dripping robots.txt drips until the fetcher gives up
    (``read_timeout``); nothing here waits on the clock."""
    sites = {
        GOOD[0]: _site(tmp_path / "sites", GOOD[0], ai_txt=DATA / "ai_txt" / "arne.me__ai.txt"),
        GOOD[1]: _site(tmp_path / "sites", GOOD[1], tdmrep_json=DATA / "tdmrep" / "debats.co__tdmrep.json"),
        GOOD[2]: _site(tmp_path / "sites", GOOD[2], robots_txt=_news_robots(DATA, "globo.com")),
        HOSTILE[0]: _site(tmp_path / "sites", HOSTILE[0], tdmrep_json="[" * 200_000 + "]" * 200_000,  # fault 1
                          ai_txt=f"User-agent: *\nDisallow: {REDOS}\n", robots_txt="User-agent: *\nAllow: /\n" * 500_000),  # 10 MB
        HOSTILE[1]: _site(tmp_path / "sites", HOSTILE[1], tdmrep_json=json.dumps([{"location": REDOS, "tdm-reservation": 1}]),
                          ai_txt="\n" * 100_000 + f"User-agent: *\nDisallow: {REDOS}\n" * 200_000),  # 100k lines, then 10 MB of rules
        HOSTILE[3]: _site(tmp_path / "sites", HOSTILE[3], tdmrep_json="[" + '{"location": "/*", "tdm-reservation": 1},' * 300_000 + "]",
                          robots_txt="User-agent: *\nContent-Usage: " + "a=n," * 20_000 + "\n"),
    }
    behaviours = {
        HOSTILE[1]: {"/robots.txt": "drip=60"},  # fault 8
        HOSTILE[2]: {"/robots.txt": "redirect=http://127.0.0.1:9/robots.txt", "/ai.txt": "status=503", "/.well-known/tdmrep.json": "drip=60"},
    }
    with FixtureWeb([*GOOD, *HOSTILE], synthetic=3, sites=sites, behaviours=behaviours) as web:
        good = _good_urls(web.port)
        hostile = [f"http://{host}:{web.port}{path}" for host in HOSTILE for path in (f"/img/{SYNTHETIC}", "/img/" + "a" * 40)]
        fetch = {"allow_private_networks": False, "allowed_networks": ["127.0.6.0/24", "127.0.8.0/24"], "read_timeout": 2}
        alone = _optout_config(tmp_path / "alone", "good-hosts", good, **fetch)
        beside = _optout_config(tmp_path / "beside", "good-and-hostile-hosts", good + hostile, **fetch)
        assert scan(alone)["status"] == "completed"
        assert scan(beside)["status"] == "completed"
    expected = _comparable(tmp_path / "alone" / "work", good)
    assert _comparable(tmp_path / "beside" / "work", good) == expected
    assert {r for _u, _d, r, _e in expected[0]} >= {"optout.ai_txt", "optout.tdmrep", "optout.robots", "optout.header"}  # not vacuous
    found = _findings(tmp_path / "beside" / "work")
    deep = found[hostile[0]]["optout.invalid"]
    assert deep["signal"] == "tdmrep.json" and "depth" in deep["fault"]  # fault 1: a finding, not a failed shard
    with store.connect(tmp_path / "beside" / "work", read_only=True) as con:
        invalid = {json.loads(e)["signal"]: json.loads(e)["fault"] for (e,) in con.execute(
            "SELECT evidence FROM findings WHERE url = ? AND reason = 'optout.invalid'", [hostile[6]]).fetchall()}
        statuses = dict(con.execute("SELECT url, status FROM fetches").fetchall())
        unread = con.execute("SELECT origin, name, error FROM policy_files WHERE status = 'transient' ORDER BY origin, name").fetchall()
    assert invalid == {"tdmrep.json": "body larger than 512,000 bytes (the policy file limit)",  # 13 MB of JSON
                       "robots.txt Content-Usage": "longer than 8,192 characters"}
    assert statuses[hostile[2]] == statuses[hostile[4]] == "transient"  # fault 8: robots.txt unreadable, not blocked
    assert [(o.split("//")[1].split(":")[0], n) for o, n, _e in unread] == [
        (HOSTILE[1], "robots.txt"), (HOSTILE[2], "ai.txt"), (HOSTILE[2], "robots.txt"), (HOSTILE[2], "tdmrep.json")]


def test_a_recheck_reads_again_the_policy_files_a_scan_could_not_read(tmp_path):
    """Fault 8 (issue 23): a robots.txt that dripped past ``read_timeout`` left the host's images
    ``blocked`` for good, and a recheck reused that. Now they are ``transient``, the read is not
    cached, and ``recheck`` checks them again, with the robots.txt and ai.txt read again; so does
    it for a host whose ai.txt alone could not be read (its images were fetched)."""
    from scrutineer.core.config import load_config
    from scrutineer.flows.scan import run_scan

    both, ai_only = "127.0.9.1", "127.0.9.2"
    sites = {host: _site(tmp_path / "sites", host, ai_txt=DATA / "ai_txt" / "taricorp.net__ai.txt") for host in (both, ai_only)}
    once = "drip=60;times=1"  # the first read drips until the fetcher gives up; later ones are served
    behaviours = {both: {"/robots.txt": once, "/ai.txt": once}, ai_only: {"/ai.txt": once}}
    with FixtureWeb([both, ai_only], synthetic=1, sites=sites, behaviours=behaviours) as web:
        urls = [web.url(f"/img/{SYNTHETIC}", host=0), web.url(f"/img/{SYNTHETIC}", host=1)]
        config = load_config(_optout_config(tmp_path / "scan", "recheck-unread", urls, {"dead_links": {}}, read_timeout=2, recheck_interval=0))
        assert run_scan(config)["status"] == "completed"
        with store.connect(config.workspace, read_only=True) as con:
            first = dict(con.execute("SELECT url, status || ': ' || coalesce(error, '') FROM fetches").fetchall())
        assert first[urls[0]].startswith("transient: robots.txt unreadable: ") and first[urls[1]] == "alive: "
        assert _findings(config.workspace) == {}  # nothing read, nothing found: neither a reservation nor a block
        assert run_scan(config, "recheck")["status"] == "completed"
        by_host = web.stats()["by_host"]
    assert by_host[both]["/robots.txt"] == by_host[both]["/ai.txt"] == by_host[ai_only]["/ai.txt"] == 2
    assert {url: set(r) for url, r in _findings(config.workspace).items()} == dict.fromkeys(urls, {"optout.ai_txt"})  # taricorp: 'Disallow: /'
