"""A release's ``croissant.json`` (issue 27): it passes mlcroissant's validation (Croissant 1.1),
mlcroissant reads back exactly the release's rows, the sha256 of every file is the file's, the
licence the dataset declares is its SPDX URL; and the manifest's opt-out policy counts the rows
each signal removed."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import mlcroissant as mlc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import scan, write_config

from scrutineer.core import store
from scrutineer.core.config import load_config
from scrutineer.core.contract import JUDGEMENT
from scrutineer.core.errors import ConfigError
from scrutineer.flows.scan import run_scan
from scrutineer.observing.optouts import content_signals, headers
from scrutineer.release.build import build_release
from scrutineer.release.card import hf_license
from scrutineer.testing import demo

# mlcroissant 1.1.1's own deprecation warnings: rdflib 7 deprecates the ConjunctiveGraph it parses
# JSON-LD with, and pandas 3.1 the reset_index(inplace=True) it reads parquet with
pytestmark = [pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index is deprecated")]

MLCROISSANT = Path(sys.executable).with_name("mlcroissant")
#: What mlcroissant may warn of: a release has no version of its own, and a dataset may declare
#: no licence. Anything else is a fault of the file.
ALLOWED_WARNINGS = ("https://schema.org/version", "https://schema.org/license")


def read_back(release: Path) -> tuple[dict, int]:
    """``croissant.json`` as JSON, and the records mlcroissant reads from all its record sets
    (validating it first: a validation error raises)."""
    logging.getLogger("absl").setLevel(logging.ERROR)
    path = release / "croissant.json"
    dataset = mlc.Dataset(jsonld=str(path))
    issues = dataset.metadata.ctx.issues
    assert not issues.errors
    assert all(any(w in warning for w in ALLOWED_WARNINGS) for warning in issues.warnings), issues.warnings
    doc = json.loads(path.read_text())
    return doc, sum(1 for rs in doc["recordSet"] for _ in dataset.records(rs["@id"]))


def assert_files_match(release: Path, doc: dict) -> None:
    """Every data file is a FileObject whose sha256 is the file's, and nothing else is."""
    objects = {d["contentUrl"]: d["sha256"] for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    files = {p.relative_to(release).as_posix() for p in (release / "data").rglob("*") if p.is_file()}
    assert set(objects) == files
    for path, sha256 in objects.items():
        assert hashlib.sha256((release / path).read_bytes()).hexdigest() == sha256


@pytest.fixture(scope="module")
def demo_releases(tmp_path_factory):
    """The bundled demo's releases, as `scrutineer demo` builds them (scan, rematch, release)."""
    root = tmp_path_factory.mktemp("demo")
    with demo.web() as server:
        config = demo.build_demo(root, server)
        assert scan(config)["status"] == "completed"
    demo.add_later_bank(config)
    cfg = load_config(config)
    assert run_scan(cfg, "rematch")["status"] == "completed"
    return [build_release(cfg, v) for v in cfg.release.variants]


def test_the_demo_releases_pass_mlcroissant_and_read_back_their_rows(demo_releases):
    """Acceptance 3 of issue 27, with the command line on one of them."""
    for release in demo_releases:
        manifest = json.loads((release / "manifest.json").read_text())
        doc, records = read_back(release)
        assert records == manifest["rows"]["output"] > 0
        assert_files_match(release, doc)
        assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
        assert manifest["license"] is None and "license" not in doc  # the demo declares none
        assert [d["sha256"] for d in doc["prov:wasDerivedFrom"]] == [s["input"]["sha256"] for s in manifest["shards"]]
        assert manifest["croissant"]["sha256"] == hashlib.sha256((release / "croissant.json").read_bytes()).hexdigest()
        assert "opt_out" not in manifest  # the demo runs no optouts detector
        # two shards of one schema: one record set, read through one FileSet
        [rows] = doc["recordSet"]
        assert {f["name"]: f["dataType"] for f in rows["field"]} == {
            "SAMPLE_ID": "sc:Text", "URL": "sc:URL", "TEXT": "sc:Text", "LICENSE": "sc:Text", "WIDTH": "sc:Integer", "HEIGHT": "sc:Integer"}
        # counts only: no URL and no sample id in the RAI fields
        rai = json.dumps({k: v for k, v in doc.items() if k.startswith("rai:")})
        assert "http" not in rai and "1000" not in rai
    result = subprocess.run([str(MLCROISSANT), "validate", "--jsonld", str(demo_releases[0] / "croissant.json")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_a_coco_release_passes_mlcroissant_with_its_licence(tmp_path, test_data):
    """COCO's annotations are CC BY 4.0 (cocodataset.org/#termsofuse); a release's rows are its
    annotations, read back by JSONPath from the COCO file it writes."""
    path = test_data / "metadata" / "coco_captions_val2017_images0-2499.json"
    config = write_config(tmp_path, {
        "dataset": {"name": "coco", "shards": [str(path)], "format": "coco", "license": "CC-BY-4.0"},
        "detectors": {"dedup": {"on": ["caption"]}},
        "release": {"variants": {"v": {"remove": ["duplicate"]}}},
    })
    assert scan(config)["status"] == "completed"
    release = build_release(load_config(config), "v")
    manifest = json.loads((release / "manifest.json").read_text())
    assert 0 < manifest["rows"]["output"] < manifest["rows"]["input"]
    doc, records = read_back(release)
    assert records == manifest["rows"]["output"]
    assert_files_match(release, doc)
    assert doc["license"] == "https://spdx.org/licenses/CC-BY-4.0.html"
    assert doc["distribution"][0]["encodingFormat"] == "application/json"
    result = subprocess.run([str(MLCROISSANT), "validate", "--jsonld", str(release / "croissant.json")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    card = (release / "README.md").read_text()
    assert "\nlicense: cc-by-4.0\n" in card.split("---")[1]


def test_the_dataset_licence_is_an_spdx_id(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"url": "http://x.org/a.jpg"}\n')
    config = write_config(tmp_path, {"dataset": {"name": "d", "shards": ["d.jsonl"], "license": "cc-by-4.0"}, "detectors": {"dedup": {}}})
    with pytest.raises(ConfigError, match=r"dataset.license: .*'cc-by-4.0' is not an SPDX license id"):
        load_config(config)


def test_the_card_licence_is_the_hubs_identifier():
    """huggingface/hub-docs ``docs/hub/repositories-licenses.md``: lower-case ids, the Hub's own
    spelling where it differs, ``other`` with a name and a link for a licence it does not list."""
    assert hf_license("CC-BY-NC-SA-4.0") == {"license": "cc-by-nc-sa-4.0"}
    assert hf_license("ODbL-1.0") == {"license": "odbl"}
    assert hf_license("GPL-3.0-or-later") == {"license": "gpl-3.0"}
    assert hf_license("CC-BY-2.5-AU") == {"license": "other", "license_name": "cc-by-2.5-au",
                                          "license_link": "https://spdx.org/licenses/CC-BY-2.5-AU.html"}


#: Synthetic opt-out findings (row -> reasons), as the optouts detector reports them; row 7 is also
#: a real URL duplicate of row 6, found by the scan.
OPTOUTS = {0: ["optout.robots", "optout.ai_txt"], 1: ["optout.robots"], 2: ["optout.constrained"], 3: ["optout.invalid"],
           4: ["optout.content_signal"], 6: ["optout.invalid", "optout.header"]}
AGENTS = ["GPTBot", "img2dataset"]


@pytest.fixture(scope="module")
def opted_out(tmp_path_factory):
    """Eight rows in one parquet shard (ints, floats, a list column) scanned by dedup, with the
    findings of OPTOUTS stored in the scan as the optouts detector (params ``agents: AGENTS``)
    gives them: a real content scan of the opt-out signals is tests/flows/test_optouts_scan.py's."""
    root = tmp_path_factory.mktemp("opted-out")
    rows = [{"key": f"s{i}", "url": f"http://h{i}.example/{i}.jpg", "caption": f"c{i}", "width": 10 * i, "score": i / 8,
             "tags": ["a", "b"][: i % 3]} for i in range(8)]
    rows[7]["url"] = rows[6]["url"]
    (root / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "part-0.parquet")
    reservations = ["optout.robots", "optout.ai_txt", "optout.header", "optout.content_signal"]
    config = write_config(root, {
        "dataset": {"name": "o", "shards": ["data/part-0.parquet"], "columns": {"sample_id": "key"}, "license": "CC-BY-4.0"},
        "detectors": {"dedup": {"on": ["url"]}},
        "release": {"variants": {"all": {"remove": ["optout", "duplicate"]}, "reservations": {"remove": [*reservations, "duplicate.url"]}}},
    })
    summary = scan(config)
    assert summary["status"] == "completed"
    cfg = load_config(config)
    with store.connect(cfg.workspace) as con:
        store.insert_findings(con, summary["run_id"], [
            dict.fromkeys(JUDGEMENT.names) | {"shard_id": "part-0.parquet", "row_index": i, "sample_id": rows[i]["key"], "url": rows[i]["url"],
                                              "detector": "optouts", "detector_version": "2", "reason": reason, "evidence": "{}", "restricted": False}
            for i, reasons in OPTOUTS.items() for reason in reasons
        ])
        detectors = json.loads(con.sql("SELECT detectors FROM runs WHERE run_id = ?", params=[summary["run_id"]]).fetchall()[0][0])
        detectors["optouts"] = {"version": "2", "params": {"agents": AGENTS, "header_directives": sorted(headers.DIRECTIVES)}}
        con.execute("UPDATE runs SET detectors = ? WHERE run_id = ?", [json.dumps(detectors), summary["run_id"]])
    return {"cfg": cfg, "rows": rows}


def test_the_manifest_counts_the_rows_each_opt_out_signal_removed(opted_out):
    """rom1504/img2dataset#304: which signals, agents and drafts a release honoured, how many rows
    each removed, and what it did with constrained and invalid signals."""
    release = build_release(opted_out["cfg"], "reservations")
    manifest = json.loads((release / "manifest.json").read_text())
    opt = manifest["opt_out"]
    counts = {r: (s["rows"], s["removed"]) for r, s in opt["signals"].items() if s["rows"]}
    # row 6 is removed for its header signal, so its invalid signal is among the removed rows too
    assert counts == {"optout.robots": (2, 2), "optout.ai_txt": (1, 1), "optout.content_signal": (1, 1), "optout.header": (1, 1),
                      "optout.constrained": (1, 0), "optout.invalid": (2, 1)}
    assert set(opt["honoured"]) == {"optout.robots", "optout.ai_txt", "optout.header", "optout.content_signal"}
    assert opt["rows_removed"] == 4  # rows 0 (two signals, once), 1, 4, 6
    assert (opt["constrained"], opt["invalid"]) == ("kept", "kept")
    assert opt["agents"] == {"source": "params", "description": "optouts.agents: GPTBot, img2dataset", "count": 2, "names": AGENTS}
    assert opt["specs"]["aipref"] == headers.AIPREF_DRAFTS and opt["specs"]["content_signals"] == content_signals.SPEC
    assert manifest["rows"] == {"input": 8, "output": 3}  # rows 2, 3 and 5
    assert manifest["license"] == "CC-BY-4.0"
    card = " ".join((release / "README.md").read_text().split())
    assert "## Opt-out policy" in card and "optout.robots (2 rows)" in card and "(optout.constrained) were kept" in card

    everything = json.loads((build_release(opted_out["cfg"], "all") / "manifest.json").read_text())["opt_out"]
    assert everything["rows_removed"] == 6 and (everything["constrained"], everything["invalid"]) == ("removed", "removed")
    assert everything["signals"]["optout.invalid"] == {**everything["signals"]["optout.invalid"], "rows": 2, "removed": 2}


def test_a_release_croissant_gives_types_licence_and_opt_out_policy(opted_out):
    release = build_release(opted_out["cfg"], "reservations")
    doc, records = read_back(release)
    assert records == 3
    assert_files_match(release, doc)
    assert doc["license"] == "https://spdx.org/licenses/CC-BY-4.0.html"
    [rows] = doc["recordSet"]
    fields = {f["name"]: (f["dataType"], f.get("isArray", False)) for f in rows["field"]}
    assert fields == {"key": ("sc:Text", False), "url": ("sc:URL", False), "caption": ("sc:Text", False), "width": ("sc:Integer", False),
                      "score": ("sc:Float", False), "tags": ("sc:Text", True)}
    assert any("Opt-out policy: the release honours" in step for step in doc["rai:dataPreprocessingProtocol"])
    assert doc["prov:wasGeneratedBy"]["prov:wasAssociatedWith"]["name"] == "scrutineer"
    card = yaml.safe_load((release / "README.md").read_text().split("---")[1])
    assert card["license"] == "cc-by-4.0"
