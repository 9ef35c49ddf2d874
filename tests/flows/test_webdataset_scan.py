"""img2dataset output as a source (bytes from the tar, no HTTP) and img2dataset's ``verify_hash``
check, on img2dataset's own hash fixture: row 0's sha256 is original.png's, row 1's has one hex
digit changed."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scrutineer.core.config import load_config
from scrutineer.core.errors import ConfigError
from scrutineer.release.build import build_release
from scrutineer.testing.fixture_web import FixtureWeb
from tests.conftest import scan, write_config
from tests.flows.test_content_scan import query

FIXTURE = "img2dataset_sample_image_sha256.parquet"


@pytest.fixture(scope="module")
def original(test_data) -> dict:
    """original.png's path and its digests as img2dataset's tests record them (hashes.json)."""
    folder = test_data / "images" / "img2dataset_hash_fixture"
    return {"path": folder / "original.png", **json.loads((folder / "hashes.json").read_text())}


def write_img2dataset_shard(directory: Path, stem: str, source: pa.Table, images: dict[str, bytes]) -> Path:
    """An img2dataset webdataset shard as its ``output_format="webdataset"`` writes one:
    ``<stem>.parquet`` (the input columns plus ``key``, ``status``, ``error_message``, one row per
    input sample) and ``<stem>.tar`` (``<key>.png``, ``<key>.txt``, ``<key>.json`` per downloaded
    sample). ``images`` maps keys to bytes; other keys are failed downloads."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = [f"{stem}{i:04d}" for i in range(source.num_rows)]
    table = source.append_column("key", pa.array(keys)).append_column(
        "status", pa.array(["success" if k in images else "failed_to_download" for k in keys])
    ).append_column("error_message", pa.array([None if k in images else "connection refused" for k in keys], pa.string()))
    pq.write_table(table, directory / f"{stem}.parquet")
    with tarfile.open(directory / f"{stem}.tar", "w") as tar:
        for row in table.to_pylist():
            if row["key"] not in images:
                continue
            meta = json.dumps({k: row[k] for k in ("url", "key", "status", "error_message")} | {"caption": row["txt"]}).encode()
            for suffix, data in ((".png", images[row["key"]]), (".txt", row["txt"].encode()), (".json", meta)):
                info = tarfile.TarInfo(row["key"] + suffix)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return directory / f"{stem}.parquet"


def verify_config(tmp: Path, shards: list[str], fmt: str, original: dict, **extra) -> Path:
    banks = tmp / "banks"
    banks.mkdir(parents=True, exist_ok=True)
    (banks / "sha256.txt").write_text(original["sha256"] + "\n")
    return write_config(
        tmp,
        {
            "dataset": {"name": "i2d", "shards": shards, "format": fmt, "columns": {"caption": "txt"}},
            "banks": [{"name": "sha-list", "path": str(banks / "sha256.txt"), "signal_type": "sha256", "source": "test", "version": "1"}],
            "detectors": {"verify_hash": {"column": "sha256hash"}, "content_hashlist": {}},
            # The bank only proves content_hashlist reads the tar's bytes: the release keeps its matches on purpose.
            "release": {"variants": {"verified": {"remove": ["content.hash_mismatch"], "keep_restricted": True}}},
            **extra,
        },
    )


def mismatches(ws: Path) -> dict[int, dict]:
    return {row: json.loads(ev) for row, ev in query(ws, "SELECT row_index, evidence FROM findings WHERE reason = 'content.hash_mismatch'")}


def test_webdataset_tar_verifies_row_0_and_fails_row_1_with_no_http(tmp_path, test_data, original):
    source = pq.read_table(test_data / "metadata" / FIXTURE)
    png = original["path"].read_bytes()
    # Both rows name the same URL, so img2dataset would store the same bytes for both.
    shard = write_img2dataset_shard(tmp_path / "i2d", "00000", source, {"000000000": png, "000000001": png})
    config = verify_config(tmp_path, [str(shard)], "webdataset", original)

    summary = scan(config)

    assert summary["status"] == "completed", summary
    ws = tmp_path / "work"
    assert query(ws, "SELECT row_index, sample_id, sha256 FROM content_hashes ORDER BY row_index") == [
        (0, "000000000", original["sha256"]),
        (1, "000000001", original["sha256"]),
    ]
    assert query(ws, "SELECT count(*) FROM fetches") == [(0,)]  # nothing went over HTTP
    expected = source["sha256hash"].to_pylist()
    assert mismatches(ws) == {1: {"algorithm": "sha256", "column": "sha256hash", "expected": expected[1], "actual": original["sha256"]}}
    assert sorted(r for (r,) in query(ws, "SELECT row_index FROM findings WHERE reason = 'hash_match.sha256'")) == [0, 1]

    # A release of an img2dataset dataset is its parquet files, same schema, minus the failed row.
    release = build_release(load_config(config), "verified")
    out = pq.read_table(release / "data" / "00000.parquet")
    assert out.schema.equals(pq.read_schema(shard), check_metadata=True)
    assert out["key"].to_pylist() == ["000000000"]
    assert "keeps rows with restricted findings" in " ".join((release / "README.md").read_text().split())


def test_near_image_groups_a_tars_images_with_no_http(tmp_path, test_data, original):
    """dedup's near_image reads the tar's images as content_hashlist does: the same picture in two
    rows groups (0 bits), and nothing goes over HTTP."""
    source = pq.read_table(test_data / "metadata" / FIXTURE)
    png = original["path"].read_bytes()
    shard = write_img2dataset_shard(tmp_path / "i2d", "00000", source, {"000000000": png, "000000001": png})
    config = write_config(tmp_path, {"dataset": {"name": "i2d", "shards": [str(shard)], "format": "webdataset", "columns": {"caption": "txt"}},
                                     "detectors": {"dedup": {"on": ["near_image"]}}})
    assert scan(config)["status"] == "completed"
    ws = tmp_path / "work"
    found = query(ws, "SELECT row_index, evidence FROM findings WHERE reason = 'duplicate.near_image'")
    assert [(row, json.loads(ev)["kept_row_index"], json.loads(ev)["pdq_distance"]) for row, ev in found] == [(1, 0, 0)]
    assert query(ws, "SELECT count(*) FROM fetches") == [(0,)]


def test_fetched_bytes_verify_row_0_and_fail_row_1(tmp_path, test_data, original):
    source = pq.read_table(test_data / "metadata" / FIXTURE)
    with FixtureWeb(["127.0.0.5"], images=[original["path"].parent]) as web:
        url = web.url("/img/original.png")
        shard = tmp_path / "data" / "sample.parquet"
        shard.parent.mkdir()
        pq.write_table(source.set_column(0, "url", pa.array([url] * source.num_rows)), shard)
        config = verify_config(tmp_path, [str(shard)], "parquet", original, fetch={"allow_private_networks": True})
        summary = scan(config)
    assert summary["status"] == "completed", summary
    ws = tmp_path / "work"
    assert query(ws, "SELECT DISTINCT sha256 FROM content_hashes") == [(original["sha256"],)]
    assert list(mismatches(ws)) == [1]


def test_missing_or_truncated_tar_fails_only_that_shard(tmp_path, test_data, original):
    source = pq.read_table(test_data / "metadata" / FIXTURE)
    png = original["path"].read_bytes()
    folder = tmp_path / "i2d"
    good = write_img2dataset_shard(folder, "00000", source, {"000000000": png})
    lost = write_img2dataset_shard(folder, "00001", source, {"000010000": png})
    (folder / "00001.tar").unlink()
    cut = write_img2dataset_shard(folder, "00002", source, {"000020000": png, "000020001": png})
    tar = folder / "00002.tar"
    tar.write_bytes(tar.read_bytes()[: len(png) // 2])
    config = verify_config(tmp_path, [str(folder / "*.parquet")], "webdataset", original)

    summary = scan(config)

    assert summary["status"] == "partial"
    by_shard = {s["shard_id"]: s for s in summary["shards"]}
    assert by_shard["00000.parquet"]["status"] == "observed"
    assert by_shard["00001.parquet"]["status"] == "failed" and str(lost.with_suffix(".tar")) in by_shard["00001.parquet"]["error"]
    assert by_shard["00002.parquet"]["status"] == "failed" and str(cut.with_suffix(".tar")) in by_shard["00002.parquet"]["error"]
    assert query(tmp_path / "work", "SELECT shard_id, row_index FROM content_hashes") == [("00000.parquet", 0)]
    assert good.exists()


def test_webdataset_has_no_dead_links(tmp_path, original):
    (tmp_path / "00000.parquet").write_bytes(b"")
    config = write_config(
        tmp_path,
        {"dataset": {"name": "i2d", "shards": ["00000.parquet"], "format": "webdataset"}, "detectors": {"dead_links": {}}},
    )
    with pytest.raises(ConfigError, match="dead_links checks URLs on the web"):
        load_config(config)


def test_webdataset_shards_are_the_parquet_files(tmp_path, test_data, original):
    source = pq.read_table(test_data / "metadata" / FIXTURE)
    write_img2dataset_shard(tmp_path / "i2d", "00000", source, {})
    config = verify_config(tmp_path, [str(tmp_path / "i2d" / "*.tar")], "webdataset", original)
    from scrutineer.formats.sources import list_shards

    with pytest.raises(ConfigError, match=r"img2dataset's \.parquet file .*00000\.tar"):
        list_shards(load_config(config))


def test_a_tar_member_over_max_bytes_is_not_read(tmp_path, test_data, original):
    """Fault 15: tar members were read whole with no size cap, unlike HTTP bodies."""
    from PIL import Image

    small = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(small, "PNG")
    png = original["path"].read_bytes()  # 282 KB
    source = pq.read_table(test_data / "metadata" / FIXTURE)
    shard = write_img2dataset_shard(tmp_path / "i2d", "00000", source, {"000000000": small.getvalue(), "000000001": png})
    config = verify_config(tmp_path, [str(shard)], "webdataset", original, fetch={"max_bytes": 100_000})

    assert scan(config)["status"] == "completed"
    ws = tmp_path / "work"
    assert query(ws, "SELECT row_index, bytes FROM content_hashes") == [(0, len(small.getvalue()))]
    content = pq.read_table(next((ws / "observations").glob("*/content.parquet")))
    assert content["status"].to_pylist() == [None, "too_large"] and "max_bytes" in content["error"][1].as_py()
