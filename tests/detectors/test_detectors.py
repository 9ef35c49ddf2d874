import json
import re
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest

from scrutineer.core.banks import Bank, BankRef, url_md5
from scrutineer.core.contract import DETECT
from scrutineer.core.errors import ConfigError
from scrutineer.core.registry import (
    get_detector_class,
    reason_label,
    registered_reasons,
)
from scrutineer.detectors.base import DetectContext
from scrutineer.detectors.conformance import DetectorConformance
from scrutineer.detectors.content_hashlist import ContentHashlist
from scrutineer.detectors.dead_links import REASONS as DEAD_LINK_REASONS
from scrutineer.detectors.dead_links import DeadLinks
from scrutineer.detectors.dedup import Dedup
from scrutineer.detectors.license_gaps import LicenseGaps
from scrutineer.detectors.optouts import REASONS as OPTOUT_REASONS
from scrutineer.detectors.optouts import Optouts
from scrutineer.detectors.url_hashlist import UrlHashlist
from scrutineer.detectors.verify_hash import VerifyHash
from scrutineer.observing.policy_files import policy_file
from scrutineer.samples.canonical_url import canonical_url
from scrutineer.samples.licenses import conditions


def bank(signal_type: str, hashes, name: str | None = None, version: str = "v1") -> Bank:
    entries = pa.array(sorted(set(hashes)), pa.string())
    ref = BankRef(name or f"{signal_type}-list", "test", version, signal_type, "e" * 64, len(entries))
    return Bank(ref, entries)


def url_bank(*urls):
    return bank("url_md5", [url_md5(u) for u in urls], name="watch", version="v7")


class TestUrlHashlist(DetectorConformance):
    detector_class = UrlHashlist
    # rows 0 and 1 differ from the listed URL only in scheme and host case
    expected = {(0, "hash_match.url"), (1, "hash_match.url")}

    def context(self):
        return DetectContext("shard-0", [url_bank("https://a.example/1.jpg")])

    def test_evidence_names_the_bank_entry(self):
        found = self.make().detect(self.sample_batch())
        assert json.loads(found["evidence"][0].as_py()) == {
            "bank": "watch", "bank_version": "v7", "signal": "url_md5", "entry": url_md5("http://a.example/1.jpg"), "distance": 0,
        }


class TestLicenseGaps(DetectorConformance):
    detector_class = LicenseGaps
    params = {"allow": ["CC-BY-4.0"], "conditions": ["NC", "ND", "SA"]}
    # row 3, "CC BY-NC 2.0": outside the allow-list, and NonCommercial
    expected = {(1, "license.unknown"), (2, "license.missing"), (3, "license.disallowed"), (3, "license.nc")}

    def test_conditions_are_read_from_the_spdx_id(self):
        assert conditions("CC-BY-NC-SA-2.0") == {"NC", "SA"}
        assert conditions("CC-BY-NC-ND-3.0-IGO") == {"NC", "ND"}
        assert conditions("CC-BY-SA-2.0-UK") == {"SA"}
        assert conditions("CC-BY-4.0") == conditions("CC0-1.0") == conditions("MIT") == conditions(None) == frozenset()

    def test_only_the_configured_conditions_are_flagged(self):
        for flagged in (["ND"], []):
            found = LicenseGaps(LicenseGaps.Params(conditions=flagged), self.context()).detect(self.sample_batch())
            assert "license.nc" not in found["reason"].to_pylist()

    def test_allow_list_must_hold_spdx_ids(self):
        with pytest.raises(ValueError, match="not SPDX license ids"):
            LicenseGaps.Params(allow=["CC BY 4.0"])


class TestDedup(DetectorConformance):
    detector_class = Dedup
    # row 1 repeats row 0's URL (scheme and host case aside) and caption (case and spaces aside)
    expected = {(1, "duplicate.url"), (1, "duplicate.caption")}

    def test_keys_match_a_python_reference_on_both_paths(self):
        # Each list mixes values the Arrow fast path keys with values only the slow path (w3lib for
        # URLs, SQL for captions) keys.
        urls = [
            "https://a.example/P?q=1", "HTTP://www.A.Example:443/P/?q=1#frag", "http://a.example:80/P?q=1&amp;utm_source=x", " https://a.example/P?q=1 ",
            "//a.example/x", "a.example/x#y", "https://a.example", "https://a.example/x y", "ftp://Files.Example/F", "", None, "https://b.example/Q", "https://B.example/Q",
        ]
        captions = [
            "A  Red\tCar ", " a red car", "a\u00a0red\u3000car", "a\x85red\x1fcar", "a\u2028red car\u2003",
            "Ünï  Cödé", "zero\u200bwidth", "", " \t\n", None, "x\x0bY", "A Red Car", "a red car",
        ]

        def caption_key(c):
            return re.sub(r"\s+", " ", c.lower()).strip(" ") or None

        def md5_number(values):  # as the signatures carry it: DuckDB's UHUGEINT exported to Arrow
            con = duckdb.connect()
            con.register("keys", pa.table({"v": pa.array(values, pa.string())}))
            return con.sql("SELECT md5_number(v) AS k FROM keys").to_arrow_table()["k"].to_pylist()

        batch = pa.RecordBatch.from_pydict(
            {
                "row_index": pa.array(range(len(urls)), pa.int64()),
                "sample_id": pa.array([f"s{i}" for i in range(len(urls))]),
                "url": pa.array(urls, pa.string()),
                "caption": pa.array(captions, pa.string()),
                "license": pa.nulls(len(urls), pa.string()),
            },
            schema=DETECT,
        )
        sig = self.make().signatures(batch)
        assert sig["url"].to_pylist() == urls and sig["row_index"].to_pylist() == list(range(len(urls)))
        assert sig["url_key"].to_pylist() == md5_number([None if u is None else canonical_url(u) for u in urls])
        assert sig["caption_key"].to_pylist() == md5_number([None if c is None else caption_key(c) for c in captions])
        assert len(set(sig["url_key"].to_pylist()[:4])) == 1  # one URL, whichever path keyed each copy
        assert len(set(sig["caption_key"].to_pylist()[:5] + sig["caption_key"].to_pylist()[-2:])) == 1  # one caption


class TestContentHashlist(DetectorConformance):
    detector_class = ContentHashlist
    # row 2's MD5 is listed; row 0's PDQ is 31 bits from a listed one; its pHash (8888..) is 16 bits
    # from the listed 9999.., beyond the 10-bit default
    expected = {(2, "hash_match.md5"), (0, "hash_match.pdq")}
    near = "%064x" % (int("f" * 64, 16) ^ (2**31 - 1))

    def context(self):
        farther = "%064x" % (int("f" * 64, 16) ^ (2**20 - 1))  # 20 bits from row 0's PDQ
        return DetectContext("shard-0", [bank("md5", ["1" * 32]), bank("pdq", [self.near, farther, "0" * 64]), bank("phash", ["9" * 16])])

    def test_evidence_names_every_entry_within_the_threshold_nearest_first(self):
        found = self.make().detect(self.sample_batch())
        pdq = json.loads(found.filter(pa.compute.equal(found["reason"], "hash_match.pdq"))["evidence"][0].as_py())
        farther = "%064x" % (int("f" * 64, 16) ^ (2**20 - 1))
        assert pdq["entry"] == farther and pdq["distance"] == 20
        assert pdq["entries"] == [[farther, 20], [self.near, 31]] and pdq["more"] == 0
        md5 = json.loads(found.filter(pa.compute.equal(found["reason"], "hash_match.md5"))["evidence"][0].as_py())
        assert md5 == {"bank": "md5-list", "bank_version": "v1", "signal": "md5", "entry": "1" * 32, "distance": 0}

    def test_low_quality_pdq_never_matches(self):
        det = ContentHashlist(ContentHashlist.Params(pdq_min_quality=50), self.context())
        batch = self.sample_batch()
        low = batch.set_column(batch.schema.get_field_index("pdq_quality"), "pdq_quality", pa.array([49, None, None, None], pa.int32()))
        assert "hash_match.pdq" not in det.detect(low)["reason"].to_pylist()


class TestDeadLinks(DetectorConformance):
    detector_class = DeadLinks
    expected = {(1, "link.dead"), (2, "link.moved"), (3, "link.transient")}

    def test_one_failed_check_is_not_link_rot(self):
        found = DeadLinks(DeadLinks.Params(min_checks=3), self.context()).detect(self.sample_batch())
        assert "link.dead" not in found["reason"].to_pylist()

    def test_a_url_no_crawler_can_fetch_or_no_url_is_invalid(self):
        batch = self.sample_batch()
        batch = batch.set_column(batch.schema.get_field_index("url"), "url", pa.array(["javascript:alert(1)", None, " ", "http://a.example/3.jpg"]))
        batch = batch.set_column(batch.schema.get_field_index("status"), "status", pa.array(["invalid", None, None, "alive"]))
        batch = batch.set_column(batch.schema.get_field_index("error"), "error", pa.array(["not an http(s) URL with a host", None, None, None]))
        found = self.make().detect(batch)
        assert list(zip(found["row_index"].to_pylist(), found["reason"].to_pylist(), strict=True)) == [
            (0, "link.invalid"), (1, "link.invalid"), (2, "link.invalid")]
        errors = [json.loads(e)["error"] for e in found["evidence"].to_pylist()]
        assert errors == ["not an http(s) URL with a host", "no URL", "no URL"]


class TestVerifyHash(DetectorConformance):
    detector_class = VerifyHash
    params = {"column": "sha256hash"}
    expected = {(2, "content.hash_mismatch")}

    def extra_values(self):
        # row 0 as recorded (padded with whitespace: still equal), row 1 recorded but no bytes now,
        # row 2 changed, row 3 nothing recorded
        return {"sha256hash": [" " + "0" * 64 + "\n", "2" * 64, "3" * 64, None]}

    def test_evidence_gives_both_digests(self):
        found = self.make().detect(self.sample_batch())
        assert json.loads(found["evidence"][0].as_py()) == {"algorithm": "sha256", "column": "sha256hash", "expected": "3" * 64, "actual": "1" * 64}

    def test_other_algorithms(self):
        det = VerifyHash(VerifyHash.Params(column="sha256hash", algorithm="md5"), self.context())
        assert det.detect(self.sample_batch())["row_index"].to_pylist() == [0, 2]  # sha256 strings never equal md5s


class TestOptouts(DetectorConformance):
    detector_class = Optouts
    # row 0: X-Robots-Tag noai; row 1: Content-Usage train-ai=n; row 2: tdm-reservation 1 (the
    # response's header, over a file saying 0); row 3: robots.txt disallows /3 to GPTBot
    expected = {(0, "optout.header"), (1, "optout.aipref"), (2, "optout.tdmrep"), (3, "optout.robots")}

    def context(self):
        read = datetime(2026, 1, 1, tzinfo=UTC)
        files = {
            "robots.txt": policy_file("http://a.example", "robots.txt", read, "alive", b"User-agent: GPTBot\nDisallow: /3\n", http_status=200),
            "tdmrep.json": policy_file("http://a.example", "tdmrep.json", read, "alive", b'[{"location": "/", "tdm-reservation": 0}]', http_status=200),
        }
        return DetectContext(shard_id="shard-0", banks=[], policy_files={"http://a.example": files})

    def test_evidence_of_a_policy_file_names_it(self):
        found = self.make().detect(self.sample_batch())
        evidence = json.loads(found.filter(pa.compute.equal(found["reason"], "optout.robots"))["evidence"][0].as_py())
        assert evidence["named"] == ["GPTBot"] and evidence["file"] == "http://a.example/robots.txt" and evidence["read_at"].startswith("2026-01-01")


def test_unknown_detector_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown detector 'nsfw'; available: .*dedup.*license_gaps.*url_hashlist"):
        get_detector_class("nsfw")


def test_registered_reasons_mark_hash_matches_restricted():
    reasons = registered_reasons()
    assert set(reasons) >= {"url_hashlist", "content_hashlist", "dead_links", "license_gaps", "dedup", "verify_hash"}
    restricted = {code for declared in reasons.values() for code, reason in declared.items() if reason.restricted}
    assert restricted == {f"hash_match.{s}" for s in ("url", "md5", "sha1", "sha256", "pdq", "phash")}
    assert {code: r.restricted for code, r in reasons["dedup"].items()} == dict.fromkeys(
        ["duplicate.url", "duplicate.caption", "duplicate.near_caption", "duplicate.near_image"], False
    )


def test_reason_labels_come_from_the_declarations():
    """One source: the registry's label is the detector's declared one; a crowd reason takes its
    category's description, or a phrase made of its name; an undeclared code is its own label."""
    for name, declared in registered_reasons().items():
        for code, reason in declared.items():
            assert reason_label(code) == reason.label, (name, code)
    assert reason_label("link.dead") == "Dead link"
    assert reason_label("crowd.copyright", {"copyright": "Used without permission"}) == "Used without permission"
    assert reason_label("crowd.personal_data", {"personal_data": None}) == "Flagged by people as personal data"
    assert reason_label("crowd.personal_data") == "Flagged by people as personal data"
    assert reason_label("retired.reason") == "retired.reason"
    labels = [r.label for declared in registered_reasons().values() for r in declared.values()]
    assert len(labels) == len(set(labels)), "two reasons share a label"


def test_reason_tables_beside_the_declarations_name_the_same_codes():
    """dead_links maps fetch statuses to reasons and optouts lists its reasons in report order
    (scrutineer.reports.data): both name exactly the declared codes."""
    assert set(DEAD_LINK_REASONS.values()) == set(DeadLinks.reasons)
    assert OPTOUT_REASONS == tuple(Optouts.reasons)
