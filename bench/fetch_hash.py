"""Fetch + hash throughput: Scrutineer against img2dataset on the same URLs from the same server.

Serves N distinct synthetic JPEGs (~15-25 KB, :func:`scrutineer.testing.fixture_web.synthetic_jpeg`) from
the fixture web on several loopback hosts, then, one after another:

1. the transport comparison: the same httpx ``AsyncClient`` code fetching every URL (body read,
   nothing hashed) over httpx's default transport and over httpx-aiohttp's, at the same
   concurrency;
2. hashing alone: ``hash_content`` over every body, already in memory, in 2 processes (no HTTP):
   the ceiling of fetch + hash here; and its CPU per image in one process, without and with the
   dihedral PDQ hashes (``fetch.pdq_dihedral``, issue 14);
3. ``scrutineer scan`` with ``content_hashlist`` (so MD5, SHA-1, SHA-256, PDQ and pHash of every
   image), in a child process so its peak RSS (and its hash workers') is its own;
4. img2dataset (in its own venv, ``bench/.venv-img2dataset`` by default, created on first use)
   downloading the same URL list with ``processes_count=2, thread_count=64``, decoding and
   re-encoding as its default ``resize_mode`` does;
5. ``scrutineer scan`` of img2dataset's output (``format: webdataset``): every image it stored,
   hashed from its tars with no HTTP;
6. opt-outs (issue 13): ``scrutineer scan`` with ``content_hashlist`` and with ``content_hashlist``
   + ``optouts``, back to back and then in the other order, every host serving a real robots.txt,
   ai.txt and tdmrep.json from ``../shared/data/optout`` (so each origin's three policy files are
   read and every sample judged against them); target: with opt-outs >= 0.9 x without;
7. runners (issue 12): the URL list as 2 shards, scanned by the local runner (2 shard tasks as
   threads of one process, one hash pool of 2 processes) and by ``runner: {kind: dask, workers:
   2}`` (each Dask worker process with its own event loop, fetcher and hash pool), the latter with
   ``hash_workers`` 2 and 1.

Prints images/s for each, the ratio Scrutineer / img2dataset (target >= 1.0) and Scrutineer's
peak RSS (target < 1.5 GB). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

BENCH = Path(__file__).resolve().parent
I2D_VENV = BENCH / ".venv-img2dataset"
I2D_PIP = ["img2dataset==1.47.0"]  # ~36 s, 782 MB; resolves cleanly with pip on Python 3.11

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
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=16, help="loopback hosts the images are spread over")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--img2dataset-python", type=Path, default=None, help="a python with img2dataset (default: bench/.venv-img2dataset, created if missing)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["transports", "hashing", "scrutineer", "img2dataset", "optouts", "runners"])
    ap.add_argument("--optout-rounds", type=int, default=1, help="pairs of optouts scans in each order (the machine's speed drifts)")
    ap.add_argument("--shared-data", type=Path, default=Path(os.environ.get("SCRUTINEER_SHARED_DATA", BENCH.parents[1] / "shared" / "data")))
    args = ap.parse_args()

    from scrutineer.testing.fixture_web import FixtureWeb

    work = args.workdir or Path(tempfile.mkdtemp(prefix="scrutineer-bench-fetch-"))
    work.mkdir(parents=True, exist_ok=True)
    hosts = [f"127.0.0.{2 + i}" for i in range(args.hosts)]
    print(f"workdir {work}; load average {os.getloadavg()[0]:.2f}", flush=True)
    started = time.perf_counter()
    with FixtureWeb(hosts, synthetic=args.images, sites=_policy_sites(work, hosts, args.shared_data)) as web:
        print(f"fixture web: {args.images:,} synthetic JPEGs on {len(hosts)} hosts, up in {time.perf_counter() - started:.1f} s", flush=True)
        urls = [web.url(f"/img/synthetic-{i:05d}.jpg", host=i % len(hosts)) for i in range(args.images)]
        data = work / "data"
        data.mkdir(exist_ok=True)
        pq.write_table(pa.table({"key": [f"{i:06d}" for i in range(len(urls))], "url": urls, "caption": ["synthetic"] * len(urls)}), data / "urls.parquet")
        results: dict[str, dict] = {}
        if "transports" not in args.skip:
            for name in ("httpx default", "httpx-aiohttp"):
                web.reset()
                results[name] = asyncio.run(_fetch_all(urls, args.concurrency, aiohttp=name == "httpx-aiohttp"))
                _report(name, results[name])
        if "hashing" not in args.skip:
            results["hashing"] = _hashing_ceiling(asyncio.run(_bodies(urls, args.concurrency)))
            _report("hashing alone (2 processes, no HTTP)", results["hashing"])
            h = results["hashing"]
            print(f"hash_content: {h['ms_per_image']:.2f} ms of CPU per image in one process; with the 8 dihedral PDQ hashes "
                  f"(fetch.pdq_dihedral) {h['ms_per_image_dihedral']:.2f} ms, taken in alternation", flush=True)
        if "scrutineer" not in args.skip:
            web.reset()
            fetch = {"allow_private_networks": True, "concurrency": args.concurrency, "per_domain": max(1, args.concurrency // len(hosts))}
            results["scrutineer"] = _scrutineer(work, "fetch", {"shards": ["data/urls.parquet"], "columns": {"sample_id": "key"}}, fetch)
            _report("scrutineer (fetch+hash, shard task)", {"images": results["scrutineer"]["images"], "seconds": results["scrutineer"]["shard_seconds"]})
            _report("scrutineer (whole scan, Prefect included)", {"images": results["scrutineer"]["images"], "seconds": results["scrutineer"]["scan_seconds"]})
            print(f"scrutineer peak RSS: main process {results['scrutineer']['rss_main_mb']:.0f} MB; "
                  f"with its children (Prefect API server, hash workers) {results['scrutineer']['rss_tree_mb']:.0f} MB  [target < 1.5 GB]", flush=True)
        if "img2dataset" not in args.skip:
            web.reset()
            python = args.img2dataset_python or _img2dataset_venv()
            results["img2dataset"] = _img2dataset(python, data / "urls.parquet", work / "img2dataset-out", args.concurrency)
            _report("img2dataset (2 processes x 64 threads)", results["img2dataset"])
            # img2dataset's real output through Scrutineer's webdataset source: bytes from the tars
            wds = _scrutineer(work, "webdataset", {"shards": ["img2dataset-out/*.parquet"], "format": "webdataset"}, {})
            results["scrutineer webdataset"] = wds
            _report("scrutineer on img2dataset's tars (hash only)", {"images": wds["images"], "seconds": wds["shard_seconds"]})
        if "optouts" not in args.skip:
            fetch = {"allow_private_networks": True, "concurrency": args.concurrency, "per_domain": max(1, args.concurrency // len(hosts))}
            dataset = {"shards": ["data/urls.parquet"], "columns": {"sample_id": "key"}}
            ratios = []
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
                    results[f"optouts {n} {order[0]} first"] = pair
            print(f"ratio with/without optouts (images/s of the shard task), each pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
                  f"median {sorted(ratios)[len(ratios) // 2]:.2f}  [target >= 0.9]", flush=True)
        if "runners" not in args.skip:
            halves = [data / f"half-{n}.parquet" for n in range(2)]
            for n, path in enumerate(halves):
                pq.write_table(pq.read_table(data / "urls.parquet").slice(n * (len(urls) // 2), len(urls) // 2 if n == 0 else None), path)
            per_domain = max(2, args.concurrency // len(hosts))
            dataset = {"shards": [f"data/{p.name}" for p in halves], "columns": {"sample_id": "key"}}
            for tag, runner, hash_workers in (("local", {"kind": "local"}, 2), ("dask", {"kind": "dask", "workers": 2}, 2),
                                              ("dask-1-hasher", {"kind": "dask", "workers": 2}, 1)):
                web.reset()
                fetch = {"allow_private_networks": True, "concurrency": args.concurrency, "per_domain": per_domain, "hash_workers": hash_workers}
                results[f"runner {tag}"] = r = _scrutineer(work, f"runner-{tag}", dataset, fetch, runner)
                _report(f"2 shards, runner {tag}, hash_workers {hash_workers}: shard tasks", {"images": r["images"], "seconds": r["shard_seconds"]})
                _report(f"2 shards, runner {tag}, hash_workers {hash_workers}: whole scan", {"images": r["images"], "seconds": r["scan_seconds"]})
    if "scrutineer" in results and "img2dataset" in results:
        i2d = results["img2dataset"]["images"] / results["img2dataset"]["seconds"]
        s = results["scrutineer"]
        print(f"ratio scrutineer/img2dataset: {s['images'] / s['shard_seconds'] / i2d:.2f} (fetch+hash), "
              f"{s['images'] / s['scan_seconds'] / i2d:.2f} (whole scan)  [target >= 1.0]")
    if "hashing" in results and "img2dataset" in results:
        h = results["hashing"]
        print(f"ratio hashing alone/img2dataset: {h['images'] / h['seconds'] / i2d:.2f}  (the ceiling of fetch+hash on this machine)")
    (work / "results.json").write_text(json.dumps(results, indent=2))


def _report(name: str, r: dict) -> None:
    print(f"{name:45s} {r['images']:>7,} images in {r['seconds']:7.2f} s = {r['images'] / r['seconds']:8.1f} images/s", flush=True)


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


async def _bodies(urls: list[str], concurrency: int) -> list[bytes]:
    """Every URL's body, in memory (httpx over httpx-aiohttp)."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=30) as client:

        async def one(url: str) -> bytes:
            async with sem:
                return (await client.get(url)).content

        return await asyncio.gather(*(one(u) for u in urls))


def _hashing_ceiling(bodies: list[bytes]) -> dict:
    """``hash_content`` over bodies already in memory: in one process (CPU ms per image), then in a
    pool of 2 processes started as the scan starts its own (images/s). No HTTP and no pipeline, so
    fetch + hash cannot be faster than this here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from scrutineer.observing.hashing import hash_content

    sample = bodies[:500]
    cpu = {False: 0.0, True: 0.0}
    for body in sample:  # plain and dihedral in alternation: the machine's speed drifts
        for dihedral in (False, True):
            cpu0 = time.process_time()
            hash_content(body, dihedral=dihedral)
            cpu[dihedral] += time.process_time() - cpu0
    ms_per_image, ms_per_image_dihedral = (1000 * cpu[d] / len(sample) for d in (False, True))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        list(pool.map(hash_content, bodies[:64], chunksize=8))  # workers up and imports done
        t0 = time.perf_counter()
        hashed = sum(h.pdq is not None for h in pool.map(hash_content, bodies, chunksize=32))
        seconds = time.perf_counter() - t0
    return {"images": hashed, "seconds": seconds, "ms_per_image": ms_per_image, "ms_per_image_dihedral": ms_per_image_dihedral}


def _policy_sites(work: Path, hosts: list[str], shared: Path) -> dict[str, Path]:
    """host -> a directory of real policy files: the robots.txt of a news site (from the 2025
    snapshot, in rank order, among those that let Scrutineer fetch ``/img/``), an ai.txt and a
    tdmrep.json, taken in turn; none without the shared data."""
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
    sites = {}
    for i, host in enumerate(hosts):
        folder = work / "sites" / host
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "robots.txt").write_text(robots[i % len(robots)])
        (folder / "ai.txt").write_bytes(ai_txts[i % len(ai_txts)].read_bytes())
        (folder / "tdmrep.json").write_bytes(tdmreps[i % len(tdmreps)].read_bytes())
        sites[host] = folder
    return sites


def _scrutineer(work: Path, tag: str, dataset: dict, fetch: dict, runner: dict | None = None, detectors: dict | None = None) -> dict:
    """Run ``scrutineer scan`` (``content_hashlist`` with a PDQ bank, or ``detectors``) in a child process."""
    banks = work / "banks"
    banks.mkdir(exist_ok=True)
    (banks / "pdq.txt").write_text("0" * 64 + "\n")
    config = {
        "dataset": {"name": f"bench-{tag}", **dataset},
        "workspace": str(work / f"workspace-{tag}"),
        "banks": [{"name": "pdq", "path": "banks/pdq.txt", "signal_type": "pdq", "source": "bench", "version": "1"}],
        "detectors": detectors or {"content_hashlist": {}},
        "fetch": fetch,
        "runner": runner or {"kind": "local"},
    }
    path = work / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home")}
    out = subprocess.run([sys.executable, __file__, "_scan", str(path)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"scan failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _scan_child(config_path: str) -> None:
    """In the child: run the scan, print JSON figures on the last line of stdout."""
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
    }))


class TreeRss(threading.Thread):
    """Peak summed RSS (bytes) of this process and all its descendants (Prefect's API server, the
    forkserver and the hash workers), sampled from /proc every 0.2 s."""

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
    res = subprocess.run([str(python), str(driver), str(urls), str(out), "2", str(threads), str(n)], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"img2dataset failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_scan":
        _scan_child(sys.argv[2])
    else:
        main()
