import csv
import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scrutineer.core.banks import (
    URL_MD5_SIMPLE_REGEX,
    Bank,
    BankRef,
    load_bank,
    url_md5,
    url_md5_normalize,
)
from scrutineer.core.config import BankConfig
from scrutineer.core.errors import ConfigError
from scrutineer.detectors.base import DetectContext
from scrutineer.detectors.url_hashlist import UrlHashlist


def bank_config(path, signal_type="url_md5"):
    return BankConfig(name="b", path=path, signal_type=signal_type, source="test", version="1")


def test_url_md5_follows_hma_normalisation():
    # HMA lowercases the whole URL and drops the first "scheme://".
    assert url_md5("HTTPS://WWW.Example.COM/Path?Q=1") == hashlib.md5(b"www.example.com/path?q=1").hexdigest()
    assert url_md5("http://example.com/a") == url_md5("https://example.com/a")
    # urlparse().geturl() drops an empty query and fragment, as HMA does.
    assert url_md5_normalize("http://example.com/a?") == "example.com/a"
    assert url_md5_normalize("http://example.com/a#") == "example.com/a"
    assert url_md5_normalize("example.com/a") == "example.com/a"


EDGE_URLS = [
    "http://example.com/a?",
    "http://example.com/a#frag",
    "http://example.com/a;p?q=1",
    "HTTP://EXAMPLE.COM/Ünïcode/Straße.jpg",
    "https://example.com/a b.jpg",
    "https://[::1]/x",
    "https://[bad/x",
    "//example.com/x",
    "ftp://example.com/file",
    "http://example.com/a?x=1?y=2",
    "http://example.com/İ.jpg",
]


def test_fast_path_agrees_with_reference_on_real_urls(test_data):
    urls = []
    for name in ("laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet"):
        urls += pq.read_table(test_data / "metadata" / name)["URL"].to_pylist()
    with open(test_data / "metadata" / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv", newline="") as f:
        urls += [row[1] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    urls += EDGE_URLS
    urls += [u.upper() for u in urls[:500]]
    # Most real URLs take the Arrow + DuckDB path; the rest are hashed by url_md5 itself.
    assert pc.sum(pc.match_substring_regex(pa.array(urls), URL_MD5_SIMPLE_REGEX)).as_py() > 10_000
    # A bank of every other distinct url_md5: exactly the rows whose url_md5 is listed are found.
    digests = [url_md5(u) for u in urls]
    listed = set(sorted(set(digests))[::2])
    bank = Bank(BankRef("x", "test", "1", "url_md5", "0" * 64, len(listed)), pa.array(sorted(listed)))
    det = UrlHashlist(UrlHashlist.Params(), DetectContext("s", [bank]))
    batch = pa.RecordBatch.from_pydict(
        {
            "row_index": pa.array(range(len(urls)), pa.int64()),
            "sample_id": pa.array([str(i) for i in range(len(urls))]),
            "url": pa.array(urls),
            "caption": pa.nulls(len(urls), pa.string()),
            "license": pa.nulls(len(urls), pa.string()),
        }
    )
    found = det.detect(batch)
    assert found["row_index"].to_pylist() == [i for i, d in enumerate(digests) if d in listed]
    assert [json.loads(e)["entry"] for e in found["evidence"].to_pylist()] == [d for d in digests if d in listed]


def test_bank_file_formats(tmp_path):
    digest = url_md5("http://example.com/x")
    txt = tmp_path / "b.txt"
    txt.write_text(f"# a comment\n\n{digest}\n{digest.upper()}\n")
    bank = load_bank(bank_config(txt))
    assert bank.entries.to_pylist() == [digest]  # upper case is the same hash (HMA lowercases)
    assert bank.ref.sha256 == hashlib.sha256(txt.read_bytes()).hexdigest()
    assert bank.ref.public()["entries"] == 1 and digest not in str(bank.ref.public())
    c = tmp_path / "b.csv"
    c.write_text(f"hash,note\n{digest},seen 2026\n")
    assert load_bank(bank_config(c)).entries.to_pylist() == [digest]


@pytest.mark.parametrize(
    "content, line",
    [
        ("# ok\nd41d8cd98f00b204e9800998ecf8427e\nNOT-HEX\n", 3),
        ("d41d8cd98f00b204e9800998ecf8427e00\n", 1),  # wrong length
    ],
)
def test_invalid_bank_line_names_file_and_line(tmp_path, content, line):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(ConfigError, match=rf"bad\.txt:{line}: not a url_md5 hash"):
        load_bank(bank_config(path))


def test_sha256_bank_checks_length(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(hashlib.md5(b"x").hexdigest() + "\n")
    with pytest.raises(ConfigError, match="s.txt:1: not a sha256 hash"):
        load_bank(bank_config(path, "sha256"))
