"""Conformance kit for detector authors: a pytest mixin every detector's tests inherit.

Usage::

    class TestMyDetector(DetectorConformance):
        detector_class = MyDetector
        params = {"threshold": 3}

Override :meth:`context` (e.g. to supply hash banks) or :meth:`sample_batch` (rows your detector
flags) as needed. The mixin checks the rules of ``detectors/base.py``: one name everywhere, a
version, parameters that reject unknown keys, findings in ``FINDINGS_SCHEMA`` naming the detector
and rows of the batch, nothing for an empty batch, the same answer twice.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from detectors.base import FINDINGS_SCHEMA, DetectContext, Detector
from detectors.registry import get_detector_class
from scrutineer.sources import DETECT_SCHEMA


class DetectorConformance:
    detector_class: ClassVar[type[Detector]]
    params: ClassVar[dict[str, Any]] = {}

    def context(self) -> DetectContext:
        return DetectContext(shard_id="shard-0", banks=[])

    def schema(self) -> pa.Schema:
        """The batch schema the detector sees (``needs``: metadata or content), its extra source
        columns (:attr:`Detector.columns`) appended as text."""
        base = DETECT_SCHEMA
        if self.detector_class.needs == "content":
            from flows.content import CONTENT_SCHEMA

            base = CONTENT_SCHEMA
        return pa.schema([*base, *(pa.field(c, pa.string()) for c in self.make().columns if c not in base.names)])

    def extra_values(self) -> dict[str, list]:
        """Values of the detector's extra source columns for :meth:`sample_batch` (default: null)."""
        return {}

    def sample_batch(self) -> pa.RecordBatch:
        if self.detector_class.needs == "content":
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
            schema=DETECT_SCHEMA,
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
        from flows.content import CONTENT_SCHEMA

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
                "x_robots_tag": [None] * n,
                "checks": [1, 2, 1, 1],
                "bytes": [1234, None, 300, None],
                "md5": ["0" * 32, None, "1" * 32, None],
                "sha1": ["0" * 40, None, "1" * 40, None],
                "sha256": ["0" * 64, None, "1" * 64, None],
                "pdq": ["f" * 64, None, None, None],
                "pdq_quality": [100, None, None, None],
                "phash": ["8" * 16, None, None, None],
                "width": [64, None, None, None],
                "height": [64, None, None, None],
            },
            schema=CONTENT_SCHEMA,
        )
        return self._with_extra(batch)

    def make(self) -> Detector:
        cls = self.detector_class
        return cls(cls.Params.model_validate(self.params), self.context())

    def test_registered_under_its_name(self):
        assert get_detector_class(self.detector_class.name) is self.detector_class

    def test_has_a_version(self):
        assert isinstance(self.detector_class.version, str) and self.detector_class.version

    def test_params_reject_unknown_keys(self):
        import pydantic
        import pytest

        with pytest.raises(pydantic.ValidationError):
            self.detector_class.Params.model_validate({**self.params, "no_such_setting": 1})

    def test_findings_follow_the_schema(self):
        batch = self.sample_batch()
        found = self.make().detect(batch)
        assert found.schema == FINDINGS_SCHEMA
        assert set(found["detector"].to_pylist()) <= {self.detector_class.name}
        assert set(found["detector_version"].to_pylist()) <= {self.detector_class.version}
        assert set(found["shard_id"].to_pylist()) <= {self.context().shard_id}
        assert set(found["row_index"].to_pylist()) <= set(batch["row_index"].to_pylist())
        assert found["reason"].null_count == 0

    def test_empty_batch_gives_no_findings(self):
        batch = pa.RecordBatch.from_pylist([], schema=self.schema())
        assert self.make().detect(batch).num_rows == 0

    def test_same_answer_twice(self):
        det = self.make()
        assert det.detect(self.sample_batch()).equals(det.detect(self.sample_batch()))
