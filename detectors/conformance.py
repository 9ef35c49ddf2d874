"""Conformance kit for detector authors: a pytest mixin every detector's tests inherit.

Usage::

    class TestMyDetector(DetectorConformance):
        detector_class = MyDetector
        params = {"threshold": 3}
        expected = {(2, "my.reason")}   # (row_index, reason) the sample batch must give

Override :meth:`context` (e.g. to supply hash banks), :meth:`sample_batch` (rows your detector
flags) or :meth:`extra_values` (values of its source columns) as needed. ``expected`` is required
and must not be empty: a detector is shown to find something, not only to stay quiet. The mixin
checks the rules of ``detectors/base.py``: one name everywhere, a version, every reason declared
and named in the class docstring, parameters that reject unknown keys and describe every field,
findings in the contract's schema naming the detector and rows of the batch with ``restricted`` as
declared, signatures and ``finalize`` output in the contract's schema, nothing for an empty batch,
the same answer twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pydantic

from scrutineer.core.contract import (
    CONTENT,
    DETECT,
    FINDING,
    JUDGEMENT,
    SIGNATURE,
    stored_signatures,
)
from scrutineer.core.registry import get_detector_class
from scrutineer.detectors.base import CorpusDetector, DetectContext, Detector, Reason


def register_signatures(con: duckdb.DuckDBPyConnection, detector: CorpusDetector, signatures: pa.Table, name: str = "signatures_view") -> str:
    """Register one shard's ``signatures`` (of ``detector``, judged in its ``ctx.shard_id``) on
    ``con`` as the store's view of them is (:func:`~scrutineer.core.contract.stored_signatures`); returns
    the view's name, for :meth:`CorpusDetector.finalize`."""
    con.register(name, stored_signatures(signatures, detector.ctx.shard_id, "observation-0"))
    return name


class DetectorConformance:
    detector_class: ClassVar[type[Detector]]
    params: ClassVar[dict[str, Any]] = {}
    #: (row_index, reason) of every finding :meth:`sample_batch` gives, through ``detect`` and
    #: ``finalize`` together.
    expected: ClassVar[set[tuple[int, str]]]

    def context(self) -> DetectContext:
        return DetectContext(shard_id="shard-0", banks=[])

    def schema(self) -> pa.Schema:
        """The batch schema the detector sees (``needs``: metadata or content), its source columns
        (:meth:`Detector.source_columns`) appended as text."""
        params = self.detector_class.Params.model_validate(self.params)
        base = pa.schema([*CONTENT, DETECT.field("caption"), DETECT.field("license")]) if self.content() else DETECT
        extra = self.detector_class.source_columns(params)
        return pa.schema([*base, *(pa.field(c, pa.string()) for c in extra if c not in base.names)])

    def content(self) -> bool:
        """Whether the detector, with :attr:`params`, judges content batches
        (:meth:`~scrutineer.detectors.base.Detector.needs_for`)."""
        cls = self.detector_class
        return cls.needs_for(cls.Params.model_validate(self.params)) == "content"

    def extra_values(self) -> dict[str, list]:
        """Values of the detector's source columns for :meth:`sample_batch` (default: null)."""
        return {}

    def sample_batch(self) -> pa.RecordBatch:
        if self.content():
            return self.content_sample_batch()
        urls = ["http://a.example/1.jpg", "HTTP://A.EXAMPLE/1.jpg", "https://b.example/2.png", None]
        batch = pa.RecordBatch.from_pydict(
            {
                "row_index": pa.array([0, 1, 2, 3], pa.int64()),
                "sample_id": pa.array(["s0", "s1", "s2", "s3"]),
                "url": pa.array(urls, pa.string()),
                "caption": pa.array(["a cat", "A  cat", "", None], pa.string()),
                "license": pa.array(["CC-BY-4.0", "?", None, "CC BY-NC 2.0"], pa.string()),
            },
            schema=DETECT,
        )
        return self._with_extra(batch)

    def _with_extra(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        values = self.extra_values()
        for field in self.schema():
            if field.name not in batch.schema.names:
                batch = batch.append_column(field, pa.array(values.get(field.name, [None] * batch.num_rows), field.type))
        return batch

    def content_sample_batch(self) -> pa.RecordBatch:
        """Rows as the content stage gives them: an image, a dead link, a moved one, a timeout."""
        n = 4
        batch = pa.RecordBatch.from_pydict(
            {
                "row_index": [0, 1, 2, 3],
                "sample_id": ["s0", "s1", "s2", "s3"],
                "url": [f"http://a.example/{i}.jpg" for i in range(n)],
                "status": ["alive", "dead", "moved", "transient"],
                "http_status": [200, 404, 200, None],
                "final_url": ["http://a.example/0.jpg", "http://a.example/1.jpg", "http://b.example/parked", None],
                "content_type": ["image/jpeg", "text/html", "text/html", None],
                "error": [None, "HTTP 404", None, "timeout"],
                "x_robots_tag": ["noai", None, None, None],
                "checks": [1, 2, 1, 1],
                "checked_at": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
                "bytes": [1234, None, 300, None],
                "md5": ["0" * 32, None, "1" * 32, None],
                "sha1": ["0" * 40, None, "1" * 40, None],
                "sha256": ["0" * 64, None, "1" * 64, None],
                "pdq": ["f" * 64, None, None, None],
                "pdq_quality": [100, None, None, None],
                "phash": ["8" * 16, None, None, None],
                "width": [64, None, None, None],
                "height": [64, None, None, None],
                "pdq_dihedral": [None] * n,
                "tdm_reservation": [None, None, "1", None],
                "tdm_policy": [None] * n,
                "content_usage": [None, "train-ai=n", None, None],
                "link": [None] * n,
                "c2pa": [None] * n,
                "iptc": [None] * n,
            },
            schema=CONTENT,
        )
        return self._with_extra(batch)

    def make(self) -> Detector:
        cls = self.detector_class
        return cls(cls.Params.model_validate(self.params), self.context())

    def judge(self, batch: pa.RecordBatch) -> pa.Table:
        """Every finding of ``batch``: ``detect``'s, then ``finalize``'s over its signatures (as
        the store runs it: a view with ``shard_id`` and ``observation_id`` added), each checked
        against the contract."""
        det = self.make()
        found = det.detect(batch)
        assert found.schema == FINDING, found.schema
        if not isinstance(det, CorpusDetector):
            return found
        signatures = det.signatures(batch)
        assert det.signature_schema.names[: len(SIGNATURE)] == SIGNATURE.names
        assert signatures.schema == det.signature_schema, signatures.schema
        con = duckdb.connect()
        query, params = type(det).finalize(det.params, register_signatures(con, det, signatures))
        final = con.sql(query, params=params).to_arrow_table()
        assert {(f.name, f.type) for f in final.schema} == {(f.name, f.type) for f in JUDGEMENT}, final.schema
        return pa.concat_tables([found, final.select(FINDING.names).cast(FINDING)])

    def test_registered_under_its_name(self):
        assert get_detector_class(self.detector_class.name) is self.detector_class

    def test_has_a_version(self):
        assert isinstance(self.detector_class.version, str) and self.detector_class.version

    def test_reasons_are_declared_and_documented(self):
        cls = self.detector_class
        assert cls.reasons, "declare reasons: every reason code -> Reason(restricted, label)"
        missing = [r for r in cls.reasons if f"``{r}``" not in (cls.__doc__ or "")]
        assert not missing, f"reasons not named in {cls.__name__}'s docstring: {missing}"

    def test_every_reason_has_a_label(self):
        """Reports and the review app show each reason by its label (scrutineer.core.registry.reason_label):
        a phrase in plain language, not the code again."""
        cls = self.detector_class
        shapeless = [code for code, r in cls.reasons.items() if not isinstance(r, Reason) or not isinstance(r.restricted, bool)]
        assert not shapeless, f"reasons not declared as Reason(restricted: bool, label: str): {shapeless}"
        unlabelled = [code for code, r in cls.reasons.items() if not r.label.strip() or r.label.strip() == code or r.label.endswith(".")]
        assert not unlabelled, f"reasons without a plain-language label (a phrase, not the code, no final full stop): {unlabelled}"

    def test_params_reject_unknown_keys(self):
        import pytest  # optional: the test extra (the kit runs under pytest; importing it needs none)

        with pytest.raises(pydantic.ValidationError):
            self.detector_class.Params.model_validate({**self.params, "no_such_setting": 1})

    def test_params_are_described(self):
        undescribed = [n for n, f in self.detector_class.Params.model_fields.items() if not f.description]
        assert not undescribed, f"parameters without a description: {undescribed}"

    def test_finds_the_expected_samples(self):
        expected = getattr(self, "expected", None)
        assert expected, "give positive examples: `expected`, the (row_index, reason) the sample batch must give"
        found = self.judge(self.sample_batch())
        assert set(zip(found["row_index"].to_pylist(), found["reason"].to_pylist())) == expected

    def test_findings_follow_the_contract(self):
        batch = self.sample_batch()
        found = self.judge(batch)
        cls = self.detector_class
        assert set(found["detector"].to_pylist()) == {cls.name}
        assert set(found["detector_version"].to_pylist()) == {cls.version}
        assert set(found["shard_id"].to_pylist()) == {self.context().shard_id}
        assert set(found["row_index"].to_pylist()) <= set(batch["row_index"].to_pylist())
        assert set(found["reason"].to_pylist()) <= set(cls.reasons)
        assert found["restricted"].to_pylist() == [cls.reasons[r].restricted for r in found["reason"].to_pylist()]

    def test_empty_batch_gives_no_findings(self):
        batch = pa.RecordBatch.from_pylist([], schema=self.schema())
        assert self.judge(batch).num_rows == 0

    def test_same_answer_twice(self):
        assert self.judge(self.sample_batch()).equals(self.judge(self.sample_batch()))
