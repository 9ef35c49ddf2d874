"""Fetch + hash throughput: Scrutineer against img2dataset on the same URLs from the same server.

Two legs (``--sizes``), each N distinct JPEGs served by the fixture web from 16 loopback hosts, the
same bytes to every side:

- ``coco``: photographic JPEGs of COCO's sizes (:func:`scrutineer.testing.fixture_web.photo_jpeg`:
  crops of the real photos of ``tests/data/images`` listed in :data:`PHOTOS`, with film grain,
  quality 90, ~143 KB each), the i-th of the size of the i-th image of
  ``tests/data/metadata/coco_captions_val2017_images0-2499.json`` (COCO val2017's first 2,500, in
  file order, again from the start after 2,500; most are 640 px on the longer side);
- ``256``: the synthetic 256 x 256 JPEGs of earlier issues (~15-25 KB,
  :func:`scrutineer.testing.fixture_web.synthetic_jpeg`).

In each leg, one after another (never two at once: the machine has 2 cores):

1. **transports**: the same httpx ``AsyncClient`` code fetching every URL (body read, nothing
   hashed) over httpx's default transport and over httpx-aiohttp's, at the same concurrency;
2. **CPU per image, broken down** (issue 26): a :class:`~scrutineer.observing.fetch.Fetcher` on a
   uvloop loop, as the content workers run it, fetching every URL with nothing hashed (this
   process's CPU time over the images); then, over the first ``--breakdown-images`` bodies held in
   memory, in this process, each step of :mod:`scrutineer.observing.hashing` with
   ``time.process_time``: decoding, MD5, SHA-1, SHA-256, PDQ (and PDQ with its 7 dihedral hashes,
   ``fetch.pdq_dihedral``), pHash, the C2PA/XMP read, and ``hash_fetched`` whole (what a scan runs,
   with the fetch options' defaults); then writing: the content rows and fetch rows of those
   images made and written as a shard task writes them;
3. **hashing alone**: ``hash_fetched`` over every body, already in memory, in one process per core
   (no HTTP): the ceiling of fetch + hash on this machine;
4. **the protocol of issue 26's acceptance 1**, ``--rounds`` times: img2dataset (in its own venv,
   ``bench/.venv-img2dataset`` by default, created on first use) downloading the URL list with
   ``processes_count=2, thread_count=64``, decoding and re-encoding as its default ``resize_mode``
   does; then ``scrutineer scan`` with ``content_hashlist`` (MD5, SHA-1, SHA-256, PDQ and pHash of
   every image), first with the code of ``--baseline REV`` (default: the parent of issue 26's work)
   and then with this checkout's, each run twice: with Prefect's temporary API server (the shard
   task's images/s: fetch + hash; and the whole scan's) and against a ``prefect server start``
   launched before timing (``PREFECT_API_URL`` set, as scheduled runs have: the whole scan's);
5. **scrutineer on img2dataset's output**: a ``format: webdataset`` scan of the tars img2dataset
   wrote in the first round: every image it stored, hashed from its tars with no HTTP;
6. **opt-outs** (issues 13, 27): ``scrutineer scan`` with ``content_hashlist`` and with
   ``content_hashlist`` + ``optouts``, back to back and then in the other order, every host serving
   a real robots.txt, ai.txt and tdmrep.json from ``../shared/data/optout``, with every signal of
   issue 27 on: each robots.txt names an RSL licence the host serves (a real one, from
   ``tests/data/optout/rsl``), and a third of them are the real Content-Signal files of
   ``tests/data/optout/robots_txt/content_signal``, another third end with a ``Content-Usage``
   group (the images' XMP is read in both scans, as every content scan reads it); target: with
   opt-outs >= 0.9 x without;
7. **runners** (issue 12): the URL list as 2 shards, scanned by the local runner and by ``runner:
   {kind: dask, workers: 2}``.

Every scan runs in a child process (this file's ``_scan``), with ``PYTHONPATH`` set to the
baseline's build for the baseline. Prints a table per leg, version and round (images/s and the
ratios to img2dataset: targets >= 1.0 for fetch + hash, >= 0.8 for the whole scan with a running
Prefect server) and Scrutineer's peak RSS (target < 1.5 GB); writes every figure to
``<workdir>/results.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import scan_metadata  # bench/ is no package: this script's directory is on sys.path (its _prefect_server)
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
I2D_VENV = BENCH / ".venv-img2dataset"
I2D_PIP = ["img2dataset==1.47.0"]  # ~36 s, 782 MB; resolves cleanly with pip on Python 3.11
#: The parent of issue 26's work: the code the protocol's baseline runs by default.
BASELINE = "969f0bd"
#: The COCO annotations whose images' sizes the ``coco`` leg's photos take, in file order.
COCO_SIZES = REPO / "tests" / "data" / "metadata" / "coco_captions_val2017_images0-2499.json"
#: The real photographs (tests/data/PROVENANCE.md) the ``coco`` leg's photos are cropped from; the
#: derived copies of rocket.jpg and the pictures that are no photographs (text, a clip-art horse,
#: cells, a synthetic blur) left out.
PHOTOS = [
    REPO / "tests" / "data" / "images" / path
    for path in (
        "jpeg/rocket.jpg", "jpeg/coffee.jpg", "jpeg/hubble_deep_field.jpg", "jpeg/ihc.jpg", "jpeg/retina.jpg",
        "skimage/astronaut.png", "skimage/chelsea.png", "skimage/camera.png", "skimage/brick.png", "skimage/grass.png",
        "skimage/coins.png", "img2dataset_hash_fixture/original.png",
    )
]
SKIPPABLE = ["transports", "breakdown", "hashing", "scrutineer", "baseline", "prefect-server", "img2dataset", "webdataset", "optouts", "runners"]

I2D_DRIVER = r"""
import glob, json, os, sys, time
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"  # else every spawned process asks PyPI for updates

if __name__ == "__main__":  # img2dataset starts its processes with "spawn"
    from img2dataset import download

    urls, out, processes, threads, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    t0 = time.perf_counter()
    download(
        url_list=urls, input_format="parquet", url_col="url", caption_col="caption", output_folder=out,
        output_format="webdataset", processes_count=processes, thread_count=threads,
        number_sample_per_shard=max(1, n // processes),  # one shard per process, or one process idles
        image_size=256, resize_mode="border",  # its defaults: decode, resize, re-encode
        compute_hash="sha256", enable_wandb=False, disallowed_header_directives=[], timeout=20, retries=0,
    )
    seconds = time.perf_counter() - t0
    ok = sum(json.load(open(p))["successes"] for p in glob.glob(out + "/*_stats.json"))
    print(json.dumps({"seconds": seconds, "images": ok}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10_000, help="images in each leg")
    ap.add_argument("--sizes", nargs="+", default=["coco", "256"], choices=["coco", "256"], help="the legs to run")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the protocol: img2dataset, the baseline's scans, this checkout's")
    ap.add_argument("--baseline", default=BASELINE, help="the commit whose code the protocol's baseline scans run")
    ap.add_argument("--breakdown-images", type=int, default=1000, help="images whose hashing steps are timed one by one")
    ap.add_argument("--hosts", type=int, default=16, help="loopback hosts the images are spread over")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--img2dataset-python", type=Path, default=None, help="a python with img2dataset (default: bench/.venv-img2dataset, created if missing)")
    ap.add_argument("--skip", nargs="*", default=[], choices=SKIPPABLE)
    ap.add_argument("--optout-rounds", type=int, default=1, help="pairs of optouts scans in each order (the machine's speed drifts)")
    ap.add_argument("--shared-data", type=Path, default=Path(os.environ.get("SCRUTINEER_SHARED_DATA", BENCH.parents[1] / "shared" / "data")))
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="scrutineer-bench-fetch-"))
    work.mkdir(parents=True, exist_ok=True)
    head = _git("rev-parse", "--short", "HEAD")
    print(f"workdir {work}; this checkout: HEAD {head}; load average {os.getloadavg()[0]:.2f}", flush=True)
    versions = [("current", None)]
    if "scrutineer" not in args.skip and "baseline" not in args.skip:
        versions.insert(0, _baseline(work, args.baseline))
    results: dict = {"head": head, "versions": [v for v, _ in versions], "args": {k: str(v) for k, v in vars(args).items()}, "legs": {}}
    with contextlib.ExitStack() as stack:
        api_url = None
        if "scrutineer" not in args.skip and "prefect-server" not in args.skip:
            api_url = stack.enter_context(scan_metadata._prefect_server(work / "prefect-server-home"))
            print(f"prefect: a running `prefect server start` at {api_url}, for the scans with PREFECT_API_URL set", flush=True)
        for leg in args.sizes:
            results["legs"][leg] = _leg(args, work / leg, leg, versions, api_url)
            (work / "results.json").write_text(json.dumps(results, indent=2))
    _summary(results)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"figures in {work / 'results.json'}")


def _leg(args: argparse.Namespace, work: Path, leg: str, versions: list[tuple[str, Path | None]], api_url: str | None) -> dict:
    """Every figure of one leg (``coco`` or ``256``), its fixture web up throughout."""
    from scrutineer.core.config import FetchConfig
    from scrutineer.testing.fixture_web import FixtureWeb

    work.mkdir(parents=True, exist_ok=True)
    hosts = [f"127.0.0.{2 + i}" for i in range(args.hosts)]
    images = {"photos": args.images, "photo_sources": PHOTOS, "photo_sizes": COCO_SIZES} if leg == "coco" else {"synthetic": args.images}
    prefix = "photo" if leg == "coco" else "synthetic"
    started = time.perf_counter()
    print(f"\n=== leg {leg} ===", flush=True)
    results: dict = {}
    sites = _policy_sites(work, hosts, args.shared_data)
    with FixtureWeb(hosts, sites=sites, **images) as web:
        for host, folder in sites.items():  # the licence each robots.txt names is the host's own: its URL holds the port
            robots = folder / "robots.txt"
            robots.write_text(robots.read_text().replace("{licence}", f"http://{host}:{web.port}/license.xml"))
        print(f"fixture web: {args.images:,} {prefix} JPEGs on {len(hosts)} hosts, up in {time.perf_counter() - started:.1f} s", flush=True)
        urls = [web.url(f"/img/{prefix}-{i:05d}.jpg", host=i % len(hosts)) for i in range(args.images)]
        data = work / "data"
        data.mkdir(exist_ok=True)
        pq.write_table(pa.table({"key": [f"{i:06d}" for i in range(len(urls))], "url": urls, "caption": ["synthetic"] * len(urls)}), data / "urls.parquet")
        per_domain = max(1, args.concurrency // len(hosts))
        fetch = {"allow_private_networks": True, "concurrency": args.concurrency, "per_domain": per_domain}
        dataset = {"shards": ["data/urls.parquet"], "columns": {"sample_id": "key"}}
        if "transports" not in args.skip:
            for name in ("httpx default", "httpx-aiohttp"):
                web.reset()
                results[name] = asyncio.run(_fetch_all(urls, args.concurrency, aiohttp=name == "httpx-aiohttp"))
                _report(name, results[name])
        if "breakdown" not in args.skip or "hashing" not in args.skip:
            web.reset()
            cfg = FetchConfig(**fetch)
            loop, fetched = _fetch_loop(urls, cfg)
            results["fetch loop"] = loop
            _report("fetch loop (a Fetcher on uvloop, nothing hashed)", loop)
            sizes = [len(f.body) for f in fetched if f.body]
            results["bytes per image"] = statistics.fmean(sizes)
            print(f"bodies: {len(sizes):,} of {statistics.fmean(sizes) / 1e3:.1f} KB on average", flush=True)
            if "breakdown" not in args.skip:
                results["breakdown"] = _breakdown(fetched[: args.breakdown_images], cfg, loop["cpu_ms_per_image"], work)
            if "hashing" not in args.skip:
                results["hashing"] = _hashing_ceiling([f.body for f in fetched if f.body], cfg)
                _report(f"hashing alone ({results['hashing']['processes']} processes, no HTTP)", results["hashing"])
            del fetched
        if "scrutineer" not in args.skip or "img2dataset" not in args.skip:
            results["rounds"] = _protocol(args, work, web, versions, api_url, dataset, fetch)
        if "webdataset" not in args.skip and "img2dataset" not in args.skip and "scrutineer" not in args.skip:
            wds = _scrutineer(work, "webdataset", {"shards": ["img2dataset-1/*.parquet"], "format": "webdataset"}, {})
            results["scrutineer webdataset"] = wds
            _report("scrutineer on img2dataset's tars (hash only)", {"images": wds["images"], "seconds": wds["shard_seconds"]})
        if "optouts" not in args.skip:
            results["optouts"] = _optouts(args, work, web, dataset, fetch)
        if "runners" not in args.skip:
            results["runners"] = _runners(args, work, web, data, urls, fetch)
    return results


def _protocol(args: argparse.Namespace, work: Path, web, versions: list[tuple[str, Path | None]], api_url: str | None,
              dataset: dict, fetch: dict) -> list[dict]:
    """Acceptance 1's rounds: img2dataset, then each version's scan with Prefect's temporary server
    and with the running one (``api_url``), back to back; a warm-up scan first, untimed."""
    if "scrutineer" not in args.skip and not (work.parent / "prefect-home").exists():
        print("warm-up: a scan of 200 images with each Prefect server, untimed (the first makes Prefect's home)", flush=True)
        pq.write_table(pq.read_table(work / "data" / "urls.parquet").slice(0, 200), work / "data" / "warm-up.parquet")
        for url in dict.fromkeys([None, api_url]):
            _scrutineer(work, "warm-up", {**dataset, "shards": ["data/warm-up.parquet"]}, fetch, api_url=url)
    rounds = []
    for n in range(1, args.rounds + 1):
        row: dict = {"round": n}
        if "img2dataset" not in args.skip:
            web.reset()
            python = args.img2dataset_python or _img2dataset_venv()
            out = work / f"img2dataset-{n}"
            shutil.rmtree(out, ignore_errors=True)
            row["img2dataset"] = _img2dataset(python, work / "data" / "urls.parquet", out, args.concurrency)
            _report(f"round {n}: img2dataset (2 processes x 64 threads)", row["img2dataset"])
            if n > 1:
                shutil.rmtree(out)  # the first round's tars are the webdataset scan's
        if "scrutineer" not in args.skip:
            for version, site in versions:
                web.reset()
                r = row[version] = {"scan": _scrutineer(work, f"{version}-{n}", dataset, fetch, site=site)}
                _report(f"round {n}: {version}: fetch + hash (shard task)", {"images": r["scan"]["images"], "seconds": r["scan"]["shard_seconds"]})
                _report(f"round {n}: {version}: whole scan", {"images": r["scan"]["images"], "seconds": r["scan"]["scan_seconds"]})
                if api_url:
                    web.reset()
                    r["server"] = _scrutineer(work, f"{version}-{n}-server", dataset, fetch, site=site, api_url=api_url)
                    _report(f"round {n}: {version}: whole scan, Prefect server running", {"images": r["server"]["images"], "seconds": r["server"]["scan_seconds"]})
        rounds.append(row)
    return rounds


def _summary(results: dict) -> None:
    """The protocol's table: images/s of each leg, version and round, and the ratios to img2dataset."""
    if any(figures.get("rounds") for figures in results["legs"].values()):
        _table(results)
    for leg, figures in results["legs"].items():
        rss = [row["current"][k]["rss_tree_mb"] for row in figures.get("rounds", []) if "current" in row for k in ("scan", "server") if k in row["current"]]
        if rss:
            print(f"{leg}: this checkout's scans' peak RSS, the process tree summed (Prefect's server, the content workers): {max(rss):.0f} MB  [target < 1.5 GB]")
        if "breakdown" in figures:
            print(f"{leg}: CPU ms per image: " + ", ".join(f"{k} {v:.2f}" for k, v in figures["breakdown"]["ms_per_image"].items()))


def _table(results: dict) -> None:
    """Each leg's rows: images/s of each version and round, img2dataset's, the ratios; then each
    version's median ratios (kept in ``results`` too)."""
    print(f"\n{'leg':5} {'version':8} {'round':>6} {'fetch+hash':>11} {'scan':>8} {'scan+srv':>9} {'img2dataset':>12}"
          f" {'f+h/i2d':>8} {'scan/i2d':>9} {'srv/i2d':>8}")
    print(f"{'':21} {'images/s':>11} {'images/s':>8} {'images/s':>9} {'images/s':>12}  targets: >= 1.0, -, >= 0.8")
    for leg, figures in results["legs"].items():
        ratios: dict[str, list[list[float | None]]] = {}
        for row in figures.get("rounds", []):
            i2d = _rate(row.get("img2dataset"), "seconds")
            for version in results["versions"]:
                if version not in row:
                    continue
                scan, server = row[version]["scan"], row[version].get("server")
                rates = [_rate(scan, "shard_seconds"), _rate(scan, "scan_seconds"), _rate(server, "scan_seconds")]
                row[version]["images_per_s"] = dict(zip(("fetch_hash", "scan", "scan_server"), rates, strict=True))
                quotients = [r / i2d if r and i2d else None for r in rates]
                ratios.setdefault(version, []).append(quotients)
                print(f"{leg:5} {version:8} {row['round']:>6} {_cells(rates, (11, 8, 9), 1)} {_cells([i2d], (12,), 1)} {_cells(quotients, (8, 9, 8), 2)}")
        for version, rows in ratios.items():
            medians = [statistics.median(c) if (c := [q[i] for q in rows if q[i]]) else None for i in range(3)]
            figures.setdefault("median ratios", {})[version] = dict(zip(("fetch_hash", "scan", "scan_server"), medians, strict=True))
            print(f"{leg:5} {version:8} {'median':>6} {'':44} {_cells(medians, (8, 9, 8), 2)}")


def _cells(values: list[float | None], widths: tuple[int, ...], digits: int) -> str:
    """Right-aligned numbers, ``-`` for a missing one."""
    return " ".join(f"{v:>{w}.{digits}f}" if v else f"{'-':>{w}}" for v, w in zip(values, widths, strict=True))


def _rate(r: dict | None, seconds: str) -> float | None:
    return r["images"] / r[seconds] if r and r.get(seconds) else None


def _report(name: str, r: dict) -> None:
    print(f"{name:60s} {r['images']:>7,} images in {r['seconds']:7.2f} s = {r['images'] / r['seconds']:8.1f} images/s", flush=True)


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def _baseline(work: Path, rev: str) -> tuple[str, Path]:
    """The code of commit ``rev``, built once as a plain (non-editable) install under the workdir:
    its label (the short hash) and the directory to put on ``PYTHONPATH``."""
    commit = _git("rev-parse", "--short", rev)
    root = work / f"baseline-{commit}"
    site = root / "site"
    if not (site / "scrutineer").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        (root / "src").mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(root / "src", filter="data")
        print(f"baseline {commit}: building its code into {site}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(root / "src")], check=True)
    return commit, site


async def _fetch_all(urls: list[str], concurrency: int, aiohttp: bool) -> dict:
    """Every URL through one httpx ``AsyncClient`` (body read), ``concurrency`` at a time."""
    import httpx

    transport = None
    if aiohttp:
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    ok = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    async with httpx.AsyncClient(transport=transport, limits=limits, timeout=30) as client:

        async def one(url: str) -> None:
            nonlocal ok
            async with sem:
                r = await client.get(url)
                if r.status_code == 200 and r.content:
                    ok += 1

        await asyncio.gather(*(one(u) for u in urls))
    seconds = time.perf_counter() - t0
    return {"images": ok, "seconds": seconds, "client_cpu_ms_per_request": 1000 * (time.process_time() - cpu0) / len(urls)}


def _fetch_loop(urls: list[str], cfg) -> tuple[dict, list]:
    """Every URL fetched by one :class:`~scrutineer.observing.fetch.Fetcher` on a uvloop loop, as a
    content worker runs it, ``2 * concurrency`` URLs in progress, nothing hashed: images/s, this
    process's CPU ms per image, and the :class:`~scrutineer.observing.fetch.Fetched` results,
    bodies kept."""
    import uvloop

    from scrutineer.observing.fetch import Fetcher

    async def every() -> list:
        async with Fetcher(cfg) as fetcher:
            queue = iter(urls)
            fetched = []

            async def worker() -> None:
                for url in queue:
                    fetched.append(await fetcher.fetch(url))

            await asyncio.gather(*(worker() for _ in range(2 * cfg.concurrency)))
            return fetched

    cpu0, t0 = time.process_time(), time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        fetched = runner.run(every())
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    images = sum(f.body is not None for f in fetched)
    return {"images": images, "seconds": seconds, "cpu_ms_per_image": 1000 * cpu / len(urls)}, fetched


WHOLE, DIHEDRAL, WRITING = "hash_fetched (all the above, as a scan runs it)", "PDQ with its 7 dihedral hashes", "writing (content and fetch rows)"


def _breakdown(fetched: list, cfg, fetch_ms: float, work: Path) -> dict:
    """CPU ms per image of each step over the ``fetched`` bodies, in this process: each hashing
    step (:mod:`scrutineer.observing.hashing`), body by body so that the machine's drift is shared,
    and ``hash_fetched`` whole; then the content rows and fetch rows made and written as a shard
    task writes them (flows/content.py, flows/shard.py's ``WORKING_FILE``)."""
    from scrutineer.core.contract import CONTENT, FETCH
    from scrutineer.core.layout import Layout
    from scrutineer.flows import content
    from scrutineer.flows.shard import WORKING_FILE
    from scrutineer.observing.hashing import (
        decode_image,
        hash_fetched,
        pdq_of,
        phash_of,
    )
    from scrutineer.observing.optouts.c2pa import read_training_mining

    fetched = [f for f in fetched if f.body is not None]
    decoded, hashes = {}, {}
    steps = {
        "decode": lambda i, body: decoded.__setitem__(i, decode_image(body, cfg.max_pixels, cfg.decode)),
        "MD5": lambda i, body: hashlib.md5(body).hexdigest(),
        "SHA-1": lambda i, body: hashlib.sha1(body).hexdigest(),
        "SHA-256": lambda i, body: hashlib.sha256(body).hexdigest(),
        "PDQ": lambda i, body: pdq_of(decoded[i]),
        "pHash": lambda i, body: phash_of(decoded[i]),
        "C2PA/XMP read": lambda i, body: read_training_mining(body),
        WHOLE: lambda i, body: hashes.__setitem__(i, hash_fetched(body, cfg)),
        DIHEDRAL: lambda i, body: pdq_of(decoded.pop(i), dihedral=True),
    }
    for name, step in steps.items():  # untimed: first calls load and compile what they need
        step(0, fetched[0].body)
    cpu = dict.fromkeys(steps, 0.0)
    for i, f in enumerate(fetched):
        for name, step in steps.items():
            t = time.process_time()
            step(i, f.body)
            cpu[name] += time.process_time() - t
    n = len(fetched)
    ms = {name: 1000 * seconds / n for name, seconds in cpu.items()}
    urls = [f.url for f in fetched]
    checked = {f.url: content.Checked([f], hashes[i]) for i, f in enumerate(fetched)}
    rows = pa.RecordBatch.from_pydict({"row_index": pa.array(range(n), pa.int64()), "sample_id": [f"{i:06d}" for i in range(n)], "url": urls},
                                      schema=pa.schema([CONTENT.field(c) for c in ("row_index", "sample_id", "url")]))
    out = work / "breakdown-writes"
    out.mkdir(exist_ok=True)
    t = time.process_time()
    with pq.ParquetWriter(out / Layout.CONTENT, CONTENT, **WORKING_FILE) as w:
        w.write(content.content_batch(rows, content.fetch_outcomes(urls, checked), by="url"))
    with pq.ParquetWriter(out / Layout.FETCHES, FETCH, **WORKING_FILE) as w:
        w.write(content.fetch_rows(checked))
    ms[WRITING] = 1000 * (time.process_time() - t) / n
    shutil.rmtree(out)
    ms = {"fetch loop": fetch_ms, **ms}
    print(f"CPU per image, in one process, over {n:,} images (ms):", flush=True)
    for name, value in ms.items():
        print(f"  {name:50s} {value:7.2f}", flush=True)
    steps_sum = sum(v for name, v in ms.items() if name not in ("fetch loop", WHOLE, DIHEDRAL, WRITING))
    print(f"  {'(decode to C2PA/XMP read, summed)':50s} {steps_sum:7.2f}", flush=True)
    return {"images": n, "ms_per_image": ms}


def _hashing_ceiling(bodies: list[bytes], cfg) -> dict:
    """``hash_fetched`` over bodies already in memory in one process per core, started as the
    content workers are (``forkserver``): images/s with no HTTP and no pipeline, so fetch + hash
    cannot be faster than this here."""
    import functools
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from scrutineer.observing.hashing import hash_fetched

    processes = os.cpu_count() or 1
    hasher = functools.partial(hash_fetched, cfg=cfg)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("forkserver")) as pool:
        list(pool.map(hasher, bodies[:64], chunksize=8))  # workers up and imports done
        t0 = time.perf_counter()
        hashed = sum(h.pdq is not None for h in pool.map(hasher, bodies, chunksize=32))
        seconds = time.perf_counter() - t0
    return {"images": hashed, "seconds": seconds, "processes": processes}


def _optouts(args: argparse.Namespace, work: Path, web, dataset: dict, fetch: dict) -> dict:
    """Scans with and without the ``optouts`` detector, alternated in both orders."""
    ratios, results = [], {}
    for n in range(args.optout_rounds):
        for order in (("without", "with"), ("with", "without")):
            pair = {}
            for tag in order:
                web.reset()
                detectors = {"content_hashlist": {}, **({"optouts": {}} if tag == "with" else {})}
                pair[tag] = r = _scrutineer(work, f"optouts-{n}-{tag}-{order[0]}", dataset, fetch, detectors=detectors)
                _report(f"scrutineer {tag} optouts: shard task", {"images": r["images"], "seconds": r["shard_seconds"]})
                print(f"  CPU of the scan's main process: {r['cpu_main_s']:.1f} s", flush=True)
            ratios.append(pair["without"]["shard_seconds"] / pair["with"]["shard_seconds"])
            results[f"{n} {order[0]} first"] = pair
    print(f"ratio with/without optouts (images/s of the shard task), each pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}  [target >= 0.9]", flush=True)
    return results


def _runners(args: argparse.Namespace, work: Path, web, data: Path, urls: list[str], fetch: dict) -> dict:
    """The URL list as 2 shards, scanned by the local runner and by 2 Dask workers."""
    halves = [data / f"half-{n}.parquet" for n in range(2)]
    for n, path in enumerate(halves):
        pq.write_table(pq.read_table(data / "urls.parquet").slice(n * (len(urls) // 2), len(urls) // 2 if n == 0 else None), path)
    dataset = {"shards": [f"data/{p.name}" for p in halves], "columns": {"sample_id": "key"}}
    fetch = {**fetch, "per_domain": max(2, args.concurrency // args.hosts)}
    results = {}
    for tag, runner in (("local", {"kind": "local"}), ("dask", {"kind": "dask", "workers": 2})):
        web.reset()
        results[tag] = r = _scrutineer(work, f"runner-{tag}", dataset, fetch, runner)
        _report(f"2 shards, runner {tag}: shard tasks", {"images": r["images"], "seconds": r["shard_seconds"]})
        _report(f"2 shards, runner {tag}: whole scan", {"images": r["images"], "seconds": r["scan_seconds"]})
    return results


def _policy_sites(work: Path, hosts: list[str], shared: Path) -> dict[str, Path]:
    """host -> a directory of real policy files: a robots.txt (by turns, that of a news site from
    the 2025 snapshot, in rank order, among those that let Scrutineer fetch ``/img/``; a real
    Content-Signal file; a news site's with a ``User-agent: *`` / ``Content-Usage: train-ai=n``
    group after it), each with a ``License: {licence}`` line first (the caller writes in the host's
    licence URL); an ai.txt, a tdmrep.json and an RSL ``license.xml``, taken in turn; none without
    the shared data."""
    optout = shared / "optout"
    if not optout.is_dir():
        print(f"no policy files: {optout} not found (set SCRUTINEER_SHARED_DATA)", flush=True)
        return {}
    import csv

    from protego import Protego

    csv.field_size_limit(1 << 24)
    with (optout / "robots_txt" / "news_top100_robots_txt_2025-03-29.csv").open(newline="") as f:
        # those that let Scrutineer fetch the images, so both scans fetch every one
        robots = [text for r in csv.DictReader(f) if (text := r["robots"]) and Protego.parse(text).can_fetch("/img/synthetic-00000.jpg", "Scrutineer")]
    ai_txts, tdmreps = sorted((optout / "ai_txt").iterdir()), sorted((optout / "tdmrep").glob("*__tdmrep.json"))
    ours = BENCH.parent / "tests" / "data" / "optout"  # issue 27's real files, in the repository
    signals = [p.read_text() for p in sorted((ours / "robots_txt" / "content_signal").iterdir())]
    licences = sorted((ours / "rsl").glob("*__license.xml"))
    sites = {}
    for i, host in enumerate(hosts):
        folder = work / "sites" / host
        folder.mkdir(parents=True, exist_ok=True)
        text = [robots[i % len(robots)], signals[i % len(signals)], robots[i % len(robots)] + "\nUser-agent: *\nContent-Usage: train-ai=n\n"][i % 3]
        (folder / "robots.txt").write_text("License: {licence}\n" + text)
        (folder / "license.xml").write_bytes(licences[i % len(licences)].read_bytes())
        (folder / "ai.txt").write_bytes(ai_txts[i % len(ai_txts)].read_bytes())
        (folder / "tdmrep.json").write_bytes(tdmreps[i % len(tdmreps)].read_bytes())
        sites[host] = folder
    return sites


def _scrutineer(work: Path, tag: str, dataset: dict, fetch: dict, runner: dict | None = None, detectors: dict | None = None,
                site: Path | None = None, api_url: str | None = None) -> dict:
    """Run ``scrutineer scan`` (``content_hashlist`` with a PDQ bank, or ``detectors``) in a child
    process: with the code in ``site`` (a baseline's build) if given, else this checkout's; against
    the Prefect server at ``api_url`` if given, else Prefect's temporary one. The config sets only
    keys every version since issue 12 takes."""
    banks = work / "banks"
    banks.mkdir(exist_ok=True)
    (banks / "pdq.txt").write_text("0" * 64 + "\n")
    config = {
        "dataset": {"name": f"bench-{tag}", **dataset},
        "workspace": str(work / f"workspace-{tag}"),
        "banks": [{"name": "pdq", "path": "banks/pdq.txt", "signal_type": "pdq", "source": "bench", "version": "1"}],
        "detectors": detectors or {"content_hashlist": {}},
        "fetch": fetch,
        **({"runner": runner} if runner else {}),
    }
    shutil.rmtree(work / f"workspace-{tag}", ignore_errors=True)  # a finished shard would be reused
    path = work / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PYTHONPATH")}
    env["PREFECT_HOME"] = str(work.parent / "prefect-home")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    if site:
        env["PYTHONPATH"] = str(site)
    # cwd: the workdir, so that no child run with `python -m` (Prefect's server) imports this checkout's code first
    out = subprocess.run([sys.executable, __file__, "_scan", str(path)], check=False, capture_output=True, text=True, env=env, cwd=work)
    if out.returncode != 0:
        raise SystemExit(f"scan {tag} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    expected = site or REPO
    if not Path(result["scrutineer"]).is_relative_to(expected):
        raise SystemExit(f"scan {tag} ran the code in {result['scrutineer']}, not {expected}")
    return result


def _scan_child(config_path: str) -> None:
    """In the child: run the scan, print JSON figures on the last line of stdout."""
    import scrutineer
    from scrutineer import Workspace
    from scrutineer.core.config import load_config
    from scrutineer.flows import configure_prefect

    configure_prefect()
    from scrutineer.flows.scan import run_scan

    cfg = load_config(config_path)
    sampler = TreeRss()
    sampler.start()
    t0 = time.perf_counter()
    summary = run_scan(cfg)
    scan_seconds = time.perf_counter() - t0
    sampler.stop()
    with Workspace(cfg.workspace) as ws:
        (shard_seconds,) = ws.sql("SELECT max(seconds) FROM shards WHERE run_id = ?", params=[summary["run_id"]]).fetchall()[0]
        (images,) = ws.content_hashes(summary["run_id"]).filter("pdq IS NOT NULL").aggregate("count(*)").fetchall()[0]
    print(json.dumps({
        "status": summary["status"], "images": images, "shard_seconds": shard_seconds, "scan_seconds": scan_seconds,
        "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_tree_mb": sampler.peak / 2**20,
        "cpu_main_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        "scrutineer": str(Path(scrutineer.__file__).resolve().parent),
    }))


class TreeRss(threading.Thread):
    """Peak summed RSS (bytes) of this process and all its descendants (Prefect's API server, the
    content workers), sampled from /proc every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._done.wait(0.2):
            parents: dict[int, int] = {}
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                    parents[int(stat.parent.name)] = int(fields[1])
                except (OSError, ValueError, IndexError):
                    continue
            tree, grew = {os.getpid()}, True
            while grew:
                more = {p for p, pp in parents.items() if pp in tree} - tree
                tree |= more
                grew = bool(more)
            total = 0
            for pid in tree:
                try:
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                except (OSError, ValueError, IndexError):
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _img2dataset_venv() -> Path:
    python = I2D_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {I2D_VENV} with {' '.join(I2D_PIP)} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(I2D_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *I2D_PIP], check=True)
    return python


def _img2dataset(python: Path, urls: Path, out: Path, threads: int) -> dict:
    driver = out.parent / "img2dataset_driver.py"
    driver.write_text(I2D_DRIVER)
    n = pq.read_metadata(urls).num_rows
    res = subprocess.run([str(python), str(driver), str(urls), str(out), "2", str(threads), str(n)], check=False, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"img2dataset failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_scan":
        _scan_child(sys.argv[2])
    else:
        main()
