"""The canonical URL of duplicate.url: each rule's example, and the vectorised path against the
definition (w3lib inside) on every real LAION and CC3M URL in tests/data."""

from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scrutineer.samples.canonical_url import canonical_url, canonical_urls

RULES = [
    # (URL, its key, the rule)
    ("https://a.example/p?x=1&amp;y=2", "a.example/p?x=1&y=2", "a literal &amp; in the query is &"),
    ("http://a.example/p.jpg", "a.example/p.jpg", "the scheme is dropped"),
    ("HTTP://WWW.A.example:80/p.jpg", "a.example/p.jpg", "host lowercased, www. and a default port dropped"),
    ("https://a.example:443/p.jpg", "a.example/p.jpg", "443 is a default port too"),
    ("https://a.example:8080/p.jpg", "a.example:8080/p.jpg", "another port stays"),
    ("https://a.example/", "a.example", "one trailing slash dropped"),
    ("https://a.example/dir/?x=1", "a.example/dir?x=1", "... before a query too"),
    ("https://a.example/%7euser/a%2fb", "a.example/~user/a%2Fb", "percent-encoding normalised (w3lib)"),
    ("https://a.example/p?b=2&a=1", "a.example/p?a=1&b=2", "parameters sorted (w3lib)"),
    ("https://a.example/p.jpg?id=3&utm_source=x&fbclid=y", "a.example/p.jpg?id=3", "tracking parameters dropped"),
    ("https://a.example/p.jpg?gclid=1", "a.example/p.jpg", "... even the only one"),
    ("https://a.example/p.jpg#top", "a.example/p.jpg", "the fragment dropped"),
    ("https://a.example/a b.jpg", "a.example/a%20b.jpg", "a space percent-encoded (w3lib)"),
    ("ftp://Files.example/F#x", "ftp://Files.example/F", "not http(s): trimmed and cut at #"),
    ("  ", None, "nothing left"),
]


@pytest.mark.parametrize(("url", "key", "rule"), RULES)
def test_each_rule(url, key, rule):
    assert canonical_url(url) == key, rule


def test_the_variants_of_one_url_share_a_key():
    variants = ["http://www.a.example/img/p.jpg", "https://a.example/img/p.jpg/", "HTTPS://A.EXAMPLE:443/img/p.jpg?utm_medium=x", "https://a.example/img/p.jpg#1",
                "https://WWW.A.Example/img/p.jpg"]
    assert {canonical_url(v) for v in variants} == {"a.example/img/p.jpg"}
    assert set(canonical_urls(pa.array(variants)).to_pylist()) == {"a.example/img/p.jpg"}


def test_vectorised_keys_match_the_definition_on_real_urls(test_data):
    metadata = test_data / "metadata"
    urls = [u for f in ("laion400m_img2dataset_test_1000.parquet", "laion400m_img2dataset_test_10000_rows1000-4999.parquet")
            for u in pq.read_table(metadata / f, columns=["URL"])["URL"].to_pylist()]
    with (metadata / "cc3m_Validation_GCC-1.1.0_rows0-7916.tsv").open(newline="") as f:
        urls += [row[1] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    urls += [url for url, _key, _rule in RULES] + [None]
    assert len(urls) > 12_000
    assert canonical_urls(pa.array(urls, pa.string())).to_pylist() == [canonical_url(u) for u in urls]


#: Hosts with upper-case letters in otherwise fast-path URLs (the vectorised path lowercases the
#: host only), and look-alikes whose upper case is outside the host.
UPPER_HOSTS = [
    "https://A.Example/Img/P.JPG", "http://WWW.A.EXAMPLE/p.jpg", "https://Www.a.example?Q=1", "https://www.A.example/x/Y?k=V",
    "https://a.example/A/B", "https://a.example?ID=X", "https://WWW.Example", "http://xn--BCHER-KVA.example/b.jpg", "https://A-1.Example/",
]


def test_upper_case_hosts_are_keyed_as_the_definition_keys_them():
    keys = canonical_urls(pa.array(UPPER_HOSTS, pa.string())).to_pylist()
    assert keys == [canonical_url(u) for u in UPPER_HOSTS]
    assert keys[:3] == ["a.example/Img/P.JPG", "a.example/p.jpg", "a.example?Q=1"]
