"""The bundled demo: a small LAION-shaped dataset built at run time, offline, with no real data,
whose images are served by the local fixture web (:mod:`scrutineer.testing.fixture_web`).

Two parquet shards of LAION-400M's shape (``SAMPLE_ID, URL, TEXT, LICENSE, WIDTH, HEIGHT``) with
exact URL and caption duplicates (some across shards), a licence column with gaps (nulls, ``?``,
free text, non-allowed licences), and URLs on a few loopback hosts: synthetic JPEGs, links that
are gone (410) or missing (404), redirects to a parked-domain page, and a host that answers 429
before serving. The hash banks are synthetic too: a ``url_md5`` bank matching four rows (one
written in the dataset with an upper-case scheme, which HMA's normalisation still matches), an
``md5`` bank holding one served image, and a ``pdq`` bank holding a re-encoded, resized copy of
another (a near-duplicate). :func:`add_later_bank` then plays a hotline sending a pHash list after
the scan, for ``scrutineer rematch``. :func:`scrutineer.crowd.demo.add_people`
opens the review app to one account per role, with one flag pending review.
"""

from __future__ import annotations

import hashlib
import io
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image

from scrutineer.core.banks import url_md5
from scrutineer.observing.hashing import hash_content
from scrutineer.testing.fixture_web import FixtureWeb, synthetic_jpeg

ROWS_PER_SHARD = 150
#: The demo's workspace, beside its config (``workspace: ./work``).
WORKSPACE = "work"
#: Distinct loopback addresses stand for distinct hosts; only Linux routes all of 127/8 by default.
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"] if sys.platform.startswith("linux") else ["127.0.0.1"]
SUBJECTS = ["a red bicycle", "a lighthouse", "two cats", "a bowl of ramen", "a mountain lake", "an old map",
            "a city tram", "a wooden chair", "a field of tulips", "a snowy street"]
STYLES = ["photo of", "watercolour of", "close-up of", "vintage postcard of", "drawing of"]
LICENSES = ["https://creativecommons.org/licenses/by/4.0/", "CC0-1.0", "CC BY-SA 4.0",
            "https://creativecommons.org/licenses/by-nc/2.0/", "?", None, "all rights reserved", "cc-by-4.0"]
#: Rows whose URLs (url_md5), image bytes (md5), near-duplicate (PDQ) and later pHash are listed.
URL_LISTED, MD5_LISTED, PDQ_LISTED, PHASH_LISTED = (10, 42, 160, 299), 77, 200, (123, 250)


#: The demo's flag categories (a real deployment chooses its own).
CATEGORIES = {
    "csam_suspected": {"sensitive": True, "description": "Suspected child sexual abuse material. Do not open it; report it to a hotline too."},
    "personal_data": {"description": "A private person identifiable, or their private data."},
    "copyright": {"description": "Used without the rights holder's permission."},
    "mislabelled": {"description": "The caption does not describe the image."},
}


def web() -> FixtureWeb:
    """The fixture web the demo dataset's URLs point at (start it before :func:`build_demo`)."""
    return FixtureWeb(HOSTS, synthetic=2 * ROWS_PER_SHARD)


def _path(n: int) -> str:
    name = f"synthetic-{n:05d}.jpg"
    if n % 23 == 3:
        return f"/gone/{name}"  # 410: dead once two checks agree
    if n % 29 == 4:
        return f"/missing/{name}"  # 404: dead
    if n % 41 == 8:
        return f"/busy/{name}?times=1"  # 429 with Retry-After, then the image
    return f"/img/{name}"


def build_demo(root: Path, server: FixtureWeb, seed: int = 2023) -> Path:
    """Write the demo dataset, banks and config under ``root``, with URLs on ``server``.

    Returns:
        Path of the demo config (``root/demo.yaml``).
    """
    rng = random.Random(seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "banks").mkdir(parents=True, exist_ok=True)
    all_urls: list[str] = []
    for shard in range(2):
        rows = []
        for i in range(ROWS_PER_SHARD):
            n = shard * ROWS_PER_SHARD + i
            url = server.url(_path(n), host=n % len(HOSTS))
            if n % 31 == 6:  # redirected to a parked-domain page on another host
                url = server.url("/redirect?to=" + server.url(f"/parking/{n}", host=(n + 1) % len(HOSTS)), host=n % len(HOSTS))
            caption = f"{rng.choice(STYLES)} {rng.choice(SUBJECTS)} #{n}"
            if n % 17 == 5 and all_urls:  # exact URL copy of an earlier sample, maybe in the other shard
                url = all_urls[rng.randrange(len(all_urls))]
            if n % 13 == 7:  # a stock caption many samples share
                caption = "stock photo"
            if n == URL_LISTED[1]:  # HMA's url_md5 lowercases, so the bank still matches this spelling
                url = url.replace("http://", "HTTP://")
            rows.append({"SAMPLE_ID": f"{1_000_000 + n}", "URL": url, "TEXT": caption,
                         "LICENSE": rng.choice(LICENSES), "WIDTH": 256, "HEIGHT": 256})
            all_urls.append(url)
        table = pa.Table.from_pylist(rows, schema=pa.schema([("SAMPLE_ID", pa.string()), ("URL", pa.string()), ("TEXT", pa.string()),
                                                              ("LICENSE", pa.string()), ("WIDTH", pa.int32()), ("HEIGHT", pa.int32())]))
        pq.write_table(table, root / "data" / f"part-{shard:05d}.parquet")
    _write_bank(root / "banks" / "demo-urls.txt", "url_md5 of synthetic URLs (HMA's URL MD5 signal)",
                [url_md5(all_urls[n]) for n in URL_LISTED])
    _write_bank(root / "banks" / "demo-md5.txt", "MD5 of one served image", [hashlib.md5(synthetic_jpeg(MD5_LISTED)).hexdigest()])
    _write_bank(root / "banks" / "demo-pdq.txt", "PDQ of a re-encoded, resized copy of one served image", [hash_content(_near_duplicate(PDQ_LISTED)).pdq])
    config = {
        "dataset": {"name": "demo-laion", "shards": ["data/*.parquet"],
                    "columns": {"sample_id": "SAMPLE_ID", "url": "URL", "caption": "TEXT", "license": "LICENSE"}},
        "workspace": f"./{WORKSPACE}",
        "banks": [_bank("demo-watchlist", "demo-urls.txt", "url_md5"), _bank("demo-md5", "demo-md5.txt", "md5"),
                  _bank("demo-pdq", "demo-pdq.txt", "pdq")],
        "detectors": {"url_hashlist": {}, "content_hashlist": {}, "dead_links": {},
                      "license_gaps": {"allow": ["CC0-1.0", "CC-BY-4.0"]}, "dedup": {"on": ["url", "caption"]}},
        # The demo's 9 hash-listed rows are about 8 in 30 of the removals an outsider cannot
        # recompute, over the default limit of 1 in 10: each variant acknowledges up to 0.35, and
        # lists the removals an outsider can recompute (README "What a release tells whoever holds the original").
        "release": {"variants": {
            "research": {"remove": ["hash_match", "crowd", "duplicate.url", "link.dead"], "list_removed": True, "acknowledge_restricted_share": 0.35},
            "research-safe": {"remove": ["hash_match", "crowd", "duplicate", "link", "license.disallowed"], "list_removed": True,
                              "acknowledge_restricted_share": 0.35},
        }},
        "crowd": {"categories": CATEGORIES, "confirm": {"reviewers": 1}},
        # The demo's hosts are loopback addresses, which a crawler refuses by default.
        "fetch": {"allow_private_networks": True, "recheck_interval": 0.5, "backoff": 0.2},
    }
    path = root / "demo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def add_later_bank(config_path: Path) -> str:
    """A hotline's pHash list arriving after the scan: write it and add it to the config.

    Returns:
        The new bank's name.
    """
    name = "hotline-phash"
    _write_bank(config_path.parent / "banks" / f"{name}.txt", "pHash of two served images",
                [hash_content(synthetic_jpeg(n)).phash for n in PHASH_LISTED])
    config = yaml.safe_load(config_path.read_text())
    config["banks"].append(_bank(name, f"{name}.txt", "phash", version="demo-2"))
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return name


def _near_duplicate(n: int) -> bytes:
    out = io.BytesIO()
    with Image.open(io.BytesIO(synthetic_jpeg(n))) as image:
        image.resize((200, 200)).save(out, "JPEG", quality=40)
    return out.getvalue()


def _bank(name: str, file: str, signal_type: str, version: str = "demo-1") -> dict:
    return {"name": name, "path": f"banks/{file}", "signal_type": signal_type, "source": "Scrutineer demo (synthetic)", "version": version}


def _write_bank(path: Path, what: str, hashes: list[str]) -> None:
    path.write_text(f"# Scrutineer demo hash list: {what}\n" + "\n".join(hashes) + "\n")
