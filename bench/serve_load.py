"""Load on the review app: 50 concurrent clients for 60 s on loopback, against the queue page and
the flag API, with 100,000 flags in the crowd store.

Builds a synthetic dataset (``--samples`` rows), scans it, creates a reviewer and a contributor
per client, records ``--flags`` flags in the crowd store, starts ``scrutineer serve`` in its own
process on 127.0.0.1, and runs ``--clients`` asyncio clients (httpx, one process) for
``--seconds``: each alternates ``GET /queue`` (as the reviewer, a random filter of status,
category or registrable domain) and ``POST /api/flags`` (as the contributor, a random sample and
category), back to back with no think time; each client is its own reviewer and contributor. The
first ``--warmup`` seconds (each app process compiling its templates, opening its stores, filling
its caches) are not counted. Prints requests, errors (any status >= 400, any
exception), throughput, and p50/p99 latency in milliseconds per route. Target: 0 errors, p99 <
250 ms on 2 cores (issue 11). The config's ``rate_limit`` is raised so that the limiter admits the
load (it is tested, not timed, in tests/reports/test_app.py). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from scrutineer.testing.served import serve

CATEGORIES = ["copyright", "personal_data", "mislabelled"]


def build(root: Path, samples: int, flags: int, clients: int) -> tuple[Path, list[str], list[str]]:
    """The dataset, a scan of it, a reviewer and a contributor per client, and ``flags`` flags;
    (config, reviewers' tokens, contributors' tokens)."""
    from scrutineer.flows import configure_prefect

    configure_prefect()
    from scrutineer.core.config import load_config
    from scrutineer.crowd.flags import FlagItem
    from scrutineer.crowd.snapshot import Snapshot
    from scrutineer.crowd.store import CrowdStore
    from scrutineer.flows.scan import run_scan

    rng = random.Random(2023)
    (root / "data").mkdir(parents=True)
    rows = {
        "key": [f"s{i:07d}" for i in range(samples)],
        "url": [f"https://img{rng.randrange(500)}.host{rng.randrange(200)}.com/{i}.jpg" for i in range(samples)],
        "caption": [f"caption {i} <b>{rng.random():.6f}</b>" for i in range(samples)],
    }
    pq.write_table(pa.table(rows), root / "data" / "part-0.parquet")
    config = {
        "dataset": {"name": "load", "shards": ["data/part-0.parquet"], "columns": {"sample_id": "key"}},
        "workspace": str(root / "work"),
        "detectors": {"dedup": {"on": ["url"]}},
        "crowd": {"categories": {c: {} for c in CATEGORIES}, "rate_limit": "1000000/minute"},
    }
    path = root / "load.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(path)
    t = time.perf_counter()
    run_scan(cfg)
    print(f"scan of {samples:,} samples: {time.perf_counter() - t:.1f} s")
    with CrowdStore(cfg.crowd) as crowd, Snapshot(cfg.workspace) as snapshot:
        reviewers = [crowd.add_account(f"rev{n}", "reviewer")[1] for n in range(clients)]
        contributors = [crowd.add_account(f"con{n}", "contributor")[1] for n in range(clients)]
        who = crowd.by_name("con0")
        t = time.perf_counter()
        for start in range(0, flags, 10_000):
            ids = [f"s{i:07d}" for i in range(start, min(start + 10_000, flags))]
            found = snapshot.samples([("sample_id", i) for i in ids])
            crowd.flag(who, [FlagItem(s, CATEGORIES[n % len(CATEGORIES)], "bulk") for n, [s] in enumerate(found)], "import")
        print(f"{flags:,} flags recorded: {time.perf_counter() - t:.1f} s")
    return path, reviewers, contributors


async def load(base: str, reviewers: list[str], contributors: list[str], seconds: float, samples: int, warmup: float = 0.0) -> dict[str, list]:
    """Run the clients for ``warmup`` + ``seconds``; latencies and errors of the last ``seconds``
    only, and the clients' CPU seconds in them (they share the app's cores)."""
    latencies: dict[str, list[float]] = {"queue": [], "flag": []}
    errors: list[str] = []
    domains = [f"host{i}.com" for i in range(200)]
    start = time.perf_counter() + warmup
    deadline = start + seconds

    async def client(n: int) -> None:
        rng = random.Random(n)
        reviewer, contributor = reviewers[n], contributors[n]
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
            while time.perf_counter() < deadline:
                for route in ("queue", "flag"):
                    params = rng.choice([{"status": "pending"}, {"category": rng.choice(CATEGORIES)}, {"domain": rng.choice(domains)}, {}])
                    t = time.perf_counter()
                    try:
                        if route == "queue":
                            r = await http.get("/queue", params=params, headers={"Authorization": f"Bearer {reviewer}"})
                        else:
                            body = {"sample_id": f"s{rng.randrange(samples):07d}", "category": rng.choice(CATEGORIES), "note": "load"}
                            r = await http.post("/api/flags", json=body, headers={"Authorization": f"Bearer {contributor}"})
                        error = f"{route} {r.status_code} {r.text[:100]}" if r.status_code >= 400 else None
                    except httpx.HTTPError as e:
                        error = f"{route} {type(e).__name__}: {e}"
                    if t >= start:
                        latencies[route].append(time.perf_counter() - t)
                        if error:
                            errors.append(error)

    async def clients_cpu() -> float:
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        before = time.process_time()
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        return time.process_time() - before

    cpu, *_ = await asyncio.gather(clients_cpu(), *(client(n) for n in range(len(reviewers))))
    return {"errors": errors, "clients_cpu": cpu, **latencies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=150_000)
    ap.add_argument("--flags", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before timing starts (not counted)")
    ap.add_argument("--workers", type=int, default=2, help="app processes (scrutineer serve --workers)")
    ap.add_argument("--workdir", type=Path, help="where to build (default: a temporary directory, deleted)")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="serve-load-"))
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
    try:
        # built in a process of its own: the scan's embedded Prefect server (a subprocess) and threads
        # end with it, instead of taking CPU from the clients and the app while they are measured
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as builder:
            config, reviewers, contributors = builder.submit(build, root / "bench", args.samples, args.flags, args.clients).result()
        with serve(config, "--workers", str(args.workers)) as base:
            print(f"{args.clients} clients for {args.seconds:.0f} s (after {args.warmup:.0f} s of warm-up) against {base}, {args.workers} app processes (load average {os.getloadavg()[0]:.2f})")
            result = asyncio.run(load(base, reviewers, contributors, args.seconds, args.samples, args.warmup))
        total = sum(len(result[r]) for r in ("queue", "flag"))
        print(f"requests: {total:,} in {args.seconds:.0f} s ({total / args.seconds:.0f}/s); errors: {len(result['errors'])}; "
              f"the clients used {result['clients_cpu'] / args.seconds:.2f} of the cores")
        for line in sorted(set(result["errors"]))[:10]:
            print(f"  error: {line}")
        for route in ("queue", "flag"):
            ms = sorted(x * 1000 for x in result[route])
            if ms:
                p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
                print(f"{route:>5}: {len(ms):,} requests, p50 {statistics.median(ms):.0f} ms, p99 {p99:.0f} ms, max {ms[-1]:.0f} ms")
        print(json.dumps({"errors": len(result["errors"]), "requests": total}))
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
