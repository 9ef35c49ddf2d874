"""Imported once, by the content workers' forkserver (:data:`scrutineer.flows.content_workers.PRELOAD`),
before it forks any worker: it imports the workers' module and runs once what a worker's first
job runs (numba's compiled PDQ steps, loaded from its cache; scipy's DCT for pHash; the C2PA
reader; the public suffix list), so every worker forked from it starts warm. Issue 26's profile
put that first run at ~0.8 s of CPU in each worker, at the start of every run's first shard task.

Its one image is made here, in memory: 96 x 80 of one colour (over 64 px a side, so PDQ takes its
numba path), a JPEG; nothing is read or written.
"""

from __future__ import annotations

import io

from PIL import Image

from scrutineer.core.config import FetchConfig
from scrutineer.flows import content_workers  # noqa: F401 - what every worker runs
from scrutineer.observing.hashing import hash_fetched
from scrutineer.samples.domains import host_and_domain


def _warm() -> None:
    body = io.BytesIO()
    Image.new("RGB", (96, 80), (120, 60, 30)).save(body, "JPEG")
    hash_fetched(body.getvalue(), FetchConfig())
    host_and_domain("https://example.com/")


_warm()
