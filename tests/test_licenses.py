import csv

import pytest

from scrutineer.samples.licenses import to_spdx


def test_every_creative_commons_url_on_the_spdx_list_maps_to_its_id(test_data):
    with open(test_data / "licenses" / "spdx_creativecommons_seeAlso_urls.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # CC-PDM-1.0's seeAlso is CC's generic "cclicenses" overview page, which names no licence;
    # the Public Domain Mark's own URL (publicdomain/mark/1.0) is tested below.
    rows = [r for r in rows if "share-your-work" not in r["creativecommons_url"]]
    assert len(rows) >= 50
    wrong = {r["creativecommons_url"]: to_spdx(r["creativecommons_url"]) for r in rows if to_spdx(r["creativecommons_url"]) != r["spdx_license_id"]}
    assert wrong == {}


@pytest.mark.parametrize(
    "raw, spdx",
    [
        ("CC-BY-4.0", "CC-BY-4.0"),
        ("cc-by-4.0", "CC-BY-4.0"),
        ("CC BY 4.0", "CC-BY-4.0"),
        ("CC BY-SA 4.0", "CC-BY-SA-4.0"),
        ("cc_by_nc_2.0", "CC-BY-NC-2.0"),
        ("CC0", "CC0-1.0"),
        ("Creative Commons Attribution 4.0 International", "CC-BY-4.0"),
        ("http://creativecommons.org/licenses/by-nc-sa/2.0/", "CC-BY-NC-SA-2.0"),
        ("https://creativecommons.org/licenses/by/4.0/deed.en", "CC-BY-4.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/legalcode", "CC0-1.0"),
        ("https://creativecommons.org/publicdomain/mark/1.0/", "CC-PDM-1.0"),
        ("MIT", "MIT"),
        ("?", None),
        ("all rights reserved", None),
        ("http://flickr.com/commons/usage/", None),
        ("CC BY", None),  # no version: not one licence
        ("", None),
        (None, None),
    ],
)
def test_spellings(raw, spdx):
    assert to_spdx(raw) == spdx
