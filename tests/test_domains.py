"""Hosts and registrable domains: an internationalised name is one host in both its spellings."""

import pytest

from scrutineer.samples.domains import host_and_domain


@pytest.mark.parametrize(
    ("url", "host", "domain"),
    [
        ("http://café.com/a.jpg", "xn--caf-dma.com", "xn--caf-dma.com"),
        ("http://CAFÉ.com/b.jpg", "xn--caf-dma.com", "xn--caf-dma.com"),
        ("https://xn--caf-dma.com/c.jpg", "xn--caf-dma.com", "xn--caf-dma.com"),
        ("https://cdn.bücher.example.co.uk/d.jpg", "cdn.xn--bcher-kva.example.co.uk", "example.co.uk"),
        ("http://Images.Example.org./e.jpg", "images.example.org", "example.org"),
        ("http://r\u202eev.com/f.jpg", "r\u202eev.com", "r\u202eev.com"),  # IDNA refuses a bidi control: kept as written
        ("http://[::1/g.jpg", "", ""),
    ],
)
def test_hosts_are_lowercase_and_an_idn_is_in_its_ascii_form(url, host, domain):
    assert host_and_domain(url) == (host, domain)
