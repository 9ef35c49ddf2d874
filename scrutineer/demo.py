"""The bundled demo: a small LAION-shaped dataset built at run time, offline, with no real data.

Two parquet shards of LAION-400M's shape (``SAMPLE_ID, URL, TEXT, LICENSE, WIDTH, HEIGHT``) with
exact URL and caption duplicates (some across shards), a licence column with gaps (nulls, ``?``,
free text, non-allowed licences), and a ``url_md5`` hash bank matching a few rows — one of them
written in the dataset with an upper-case scheme and host, which HMA's normalisation still matches.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from scrutineer.banks import url_md5

ROWS_PER_SHARD = 150
SUBJECTS = ["a red bicycle", "a lighthouse", "two cats", "a bowl of ramen", "a mountain lake", "an old map",
            "a city tram", "a wooden chair", "a field of tulips", "a snowy street"]
STYLES = ["photo of", "watercolour of", "close-up of", "vintage postcard of", "drawing of"]
HOSTS = ["images.example.com", "cdn.example.org", "media.example.co.uk", "static.example.net", "pics.example.com.au"]
LICENSES = ["https://creativecommons.org/licenses/by/4.0/", "CC0-1.0", "CC BY-SA 4.0",
            "https://creativecommons.org/licenses/by-nc/2.0/", "?", None, "all rights reserved", "cc-by-4.0"]

CONFIG = {
    "dataset": {"name": "demo-laion", "shards": ["data/*.parquet"], "columns": {"sample_id": "SAMPLE_ID", "url": "URL", "caption": "TEXT", "license": "LICENSE"}},
    "workspace": "./work",
    "banks": [{"name": "demo-watchlist", "path": "banks/demo-urls.txt", "signal_type": "url_md5",
               "source": "Scrutineer demo (synthetic)", "version": "demo-1"}],
    "detectors": {"url_hashlist": {}, "license_gaps": {"allow": ["CC0-1.0", "CC-BY-4.0"]}, "dedup": {"on": ["url", "caption"]}},
    "release": {"variants": {"research": {"remove": ["hash_match", "duplicate.url"]},
                             "research-safe": {"remove": ["hash_match", "duplicate", "license.disallowed"]}}},
}


def build_demo(root: Path, seed: int = 2023) -> Path:
    """Write the demo dataset, bank and config under ``root``.

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
            url = f"https://{rng.choice(HOSTS)}/img/{n:05d}-{rng.randrange(16**6):06x}.jpg"
            caption = f"{rng.choice(STYLES)} {rng.choice(SUBJECTS)} #{n}"
            if n % 17 == 5 and all_urls:  # exact URL copy of an earlier sample, maybe in the other shard
                url = all_urls[rng.randrange(len(all_urls))]
            if n % 13 == 7:  # a stock caption many samples share
                caption = "stock photo"
            rows.append({"SAMPLE_ID": f"{1_000_000 + n}", "URL": url, "TEXT": caption,
                         "LICENSE": rng.choice(LICENSES), "WIDTH": rng.choice([256, 512, 640]), "HEIGHT": rng.choice([256, 384, 480])})
            all_urls.append(url)
        table = pa.Table.from_pylist(rows, schema=pa.schema([("SAMPLE_ID", pa.string()), ("URL", pa.string()), ("TEXT", pa.string()),
                                                              ("LICENSE", pa.string()), ("WIDTH", pa.int32()), ("HEIGHT", pa.int32())]))
        pq.write_table(table, root / "data" / f"part-{shard:05d}.parquet")
    listed = [all_urls[i] for i in (3, 42, 160, 299)]
    # The dataset spells one listed URL with an upper-case scheme and host: HMA's url_md5 lowercases.
    shard0 = pq.read_table(root / "data" / "part-00000.parquet")
    urls = shard0["URL"].to_pylist()
    urls[42] = urls[42].replace("https://", "HTTPS://").replace(urls[42].split("/")[2], urls[42].split("/")[2].upper())
    pq.write_table(shard0.set_column(1, "URL", pa.array(urls, pa.string())), root / "data" / "part-00000.parquet")
    (root / "banks" / "demo-urls.txt").write_text(
        "# Scrutineer demo hash list: url_md5 of synthetic URLs (HMA/ThreatExchange URL MD5 signal)\n"
        + "\n".join(url_md5(u) for u in listed) + "\n"
    )
    path = root / "demo.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    return path
