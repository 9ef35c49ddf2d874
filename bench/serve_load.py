"""Load on the review app, measured as arrival rate (issue 25, "Load"): open loop, Poisson arrivals,
a review session's mix of routes, and the highest rate at which every route's p99 stays under 250 ms.

Builds a dataset of ``--samples`` rows from real LAION captions and URLs (the 5,000 rows of
``$SCRUTINEER_SHARED_DATA/metadata``, repeated with distinct sample ids; a repeat's URL gets a
``copy`` query parameter, so ``dedup`` finds no duplicates the source did not have), with
licences in LAION's proportions (bench/scan_metadata.py's :data:`LICENSES`), scans it
(``dedup`` on URLs, ``license_gaps``) and publishes the review snapshot (and the search index
beside it) as ``scrutineer scan`` does, creates ``--reviewers`` reviewers and ``--contributors`` contributors, each with an API
token, and records ``--flags`` pending flags in the crowd store. Then it starts ``scrutineer serve``
in its own processes on 127.0.0.1 and, for each rate of ``--rates`` (requests/s), sends requests
at exponential inter-arrival times from a seeded RNG (a Poisson process) for ``--warmup`` +
``--seconds``, counting the last ``--seconds``:

- **Open loop.** Each request is sent at its scheduled time whether or not earlier ones have
  returned, and its latency runs from that scheduled time to the last byte of the answer, so a
  stalled server or generator shows in the latency instead of thinning the load (no coordinated
  omission). Each rate's requests are all answered (or time out after :data:`TIMEOUT` s), and
  the app has finished what they left it (:func:`settle`), before the next rate starts.
- **The mix** (:data:`MIX`), a review session's: for every flag a contributor submits, they run
  3 searches and open 2 sample pages; for every decision a reviewer makes, they open the flag
  (which claims it) and look at the queue once. Decisions keep pace with flags, as a crowd whose
  backlog is not growing. So per 9 requests: 3 searches, 2 sample pages, 1 flag, 1 flag page,
  1 decision, 1 queue page. Each reviewer opens and decides only flags of its own slice of the
  pending ones (nobody else holds them); a decision takes the flag that reviewer opened last, or
  a fresh one of its slice when it has none open.
- **Errors**: any status >= 400 and any exception. None is expected: ``POST /api/flags``
  answering 200 (already flagged by this account) is not an error.
- **The generator** is aiohttp on uvloop, one process, a pool of ``--connections`` HTTP/1.1
  keep-alive connections: httpx (the project's client elsewhere) cost 1.5-7 ms of CPU per request
  here, 0.3-0.8 of a core at 200 requests/s, aiohttp 0.4-0.5 ms (bench/README.md). Its send lag
  (actual send time minus scheduled) is reported; when its p99 passes :data:`LAG_LIMIT_MS`, the
  generator fell behind and the rate's figures are the generator's as much as the app's.
- **CPU**: the generator's own (``resource.getrusage``), the app's processes' (psutil, the serve
  process and its workers) and the whole machine's busy cores, in CPU seconds per second over
  the counted window; what the machine did beyond the two is other load.

Per rate it prints the achieved arrival rate, per route p50/p99 (ms) and errors, and whether the
rate holds: 0 errors and every route's p99 < :data:`TARGET_MS` (issue 25, acceptance 6, on 2 cores
with the generator on them). Then (``--find-max``, the default) it searches for the highest rate
that holds: doubling past the highest listed rate that holds until one fails, then bisecting to
:data:`STEP` requests/s (each rate measured once: on a shared machine a neighbour's load moves
it). Before loading it sends one request per route and names any route that answers 404 (a page
not built yet); such routes are left out of the mix, and the report says so. Then it sends
:data:`COST_REQUESTS` of each route one at a time and prints each one's CPU in the app and in the
generator per request: what the mix costs, and so the rate at which it would take every core,
less sensitive to a neighbour's load than latency is. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import uvloop
import yaml
from scan_metadata import LICENSES

from scrutineer.testing.served import serve

BENCH = Path(__file__).resolve().parent
CATEGORIES = ["copyright", "personal_data", "mislabelled"]
#: Relative weights of the routes (see the module docstring for why).
MIX = {"search": 3, "sample": 2, "flag": 1, "flag_page": 1, "decision": 1, "queue": 1}
#: The latency target of every route's p99, in ms (issue 11, kept by issue 25's acceptance 6).
TARGET_MS = 250.0
#: Send lag p99 past which the generator is behind its schedule: a tenth of the target.
LAG_LIMIT_MS = TARGET_MS / 10
#: The resolution of the search for the highest rate that holds, in requests/s.
STEP = 10
#: Seconds the generator keeps an idle connection: under the app's keep-alive timeout (gunicorn's default 2 s).
KEEPALIVE = 1.0
#: An app whose processes use less CPU than this (cores, over a second) has finished a rate's backlog.
IDLE_CORES = 0.05
#: Requests of each route sent one at a time to measure its cost before the load.
COST_REQUESTS = 50
#: Seconds a request may take before it counts as an error.
TIMEOUT = 30.0
#: The reason code each decision gives (the config's defaults, crowd.reasons).
REASONS = {"confirm": "matches_category", "reject": "not_in_category"}


def build(root: Path, shared_data: Path, samples: int, flags: int, reviewers: int, contributors: int) -> dict:
    """The dataset, its scan (which publishes the review snapshot), the accounts and ``flags``
    pending flags: ``{"config", "reviewers", "contributors", "flag_ids", "captions"}`` (tokens,
    the pending flags' ids, the distinct captions)."""
    from scrutineer.flows import configure_prefect

    configure_prefect()
    from scrutineer.core.config import load_config
    from scrutineer.crowd.flags import FlagItem
    from scrutineer.crowd.snapshot import Snapshot
    from scrutineer.crowd.store import CrowdStore
    from scrutineer.crowd.sync import after_run
    from scrutineer.flows.scan import run_scan

    source = pa.concat_tables(
        pq.read_table(f, columns=["URL", "TEXT"]) for f in sorted((shared_data / "metadata").glob("laion400m_*.parquet"))
    )
    urls, captions = source["URL"].to_pylist(), source["TEXT"].to_pylist()
    n = len(urls)
    rng = random.Random(2025)
    values, shares = zip(*LICENSES, strict=True)
    rows = {
        "key": [f"s{i:07d}" for i in range(samples)],
        "URL": [urls[i % n] if i < n else f"{urls[i % n]}{'&' if '?' in urls[i % n] else '?'}copy={i // n}" for i in range(samples)],
        "TEXT": [captions[i % n] for i in range(samples)],
        "LICENSE": rng.choices(values, shares, k=samples),
    }
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.table(rows), root / "data" / "part-0.parquet")
    config = {
        "dataset": {"name": "load", "shards": ["data/part-0.parquet"],
                    "columns": {"sample_id": "key", "url": "URL", "caption": "TEXT", "license": "LICENSE"}},
        "workspace": str(root / "work"),
        "detectors": {"dedup": {"on": ["url"]}, "license_gaps": {"allow": ["CC0-1.0", "CC-BY-4.0"]}},
        "crowd": {"categories": {c: {} for c in CATEGORIES}, "rate_limit": "1000000/minute"},
    }
    path = root / "load.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(path)
    t = time.perf_counter()
    after_run(cfg, run_scan(cfg))
    print(f"scan of {samples:,} samples: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    with CrowdStore(cfg.crowd) as crowd, Snapshot(cfg.workspace) as snapshot:
        review = [crowd.add_account(f"rev{i}", "reviewer")[1] for i in range(reviewers)]
        contribute = [crowd.add_account(f"con{i}", "contributor")[1] for i in range(contributors)]
        crowd.add_account("bulk", "contributor")
        who = crowd.by_name("bulk")
        print(f"{reviewers + contributors + 1} accounts: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        ids: list[int] = []
        for start in range(0, flags, 10_000):
            found = snapshot.samples([("sample_id", f"s{i:07d}") for i in range(start, min(start + 10_000, flags))])
            items = [FlagItem(sample, CATEGORIES[n % len(CATEGORIES)], "bulk") for n, [sample] in enumerate(found)]
            ids += [flag_id for flag_id, _ in crowd.flag(who, items, "import")]
    print(f"{flags:,} flags recorded: {time.perf_counter() - t:.1f} s", flush=True)
    return {"config": path, "reviewers": review, "contributors": contribute, "flag_ids": ids, "captions": sorted(set(captions) - {None})}


def search_terms(captions: list[str], rng: random.Random, k: int = 2000) -> list[str]:
    """``k`` searches of 1-3 consecutive words (3+ letters) of real captions, so each finds the
    caption it came from."""
    words = [w for w in (re.findall(r"[^\W\d_]{3,}", c) for c in captions) if w]
    terms = []
    for _ in range(k):
        caption = rng.choice(words)
        size = min(len(caption), rng.randint(1, 3))
        start = rng.randrange(len(caption) - size + 1)
        terms.append(" ".join(caption[start:start + size]))
    return terms


@dataclass
class Load:
    """What the requests draw on: tokens, samples, search terms, and each reviewer's pending flags
    (its ``fresh`` slice, and the ones it ``opened`` and has not decided yet)."""

    reviewers: list[str]
    contributors: list[str]
    samples: int
    terms: list[str]
    fresh: list[list[int]]
    opened: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.opened = [[] for _ in self.reviewers]

    def request(self, route: str, rng: random.Random) -> tuple[str, str, dict, dict | None]:
        """(method, path, headers, JSON body) of one request of ``route``.

        Raises:
            RuntimeError: a reviewer's slice of pending flags is used up (give more ``--flags``).
        """
        if route in ("queue", "flag_page", "decision"):
            n = rng.randrange(len(self.reviewers))
            headers = {"Authorization": f"Bearer {self.reviewers[n]}"}
        else:
            headers = {"Authorization": f"Bearer {rng.choice(self.contributors)}"}
        sample = f"s{rng.randrange(self.samples):07d}"
        if route == "queue":
            return "GET", "/queue?status=pending", headers, None
        if route == "search":
            return "GET", f"/samples?q={quote(rng.choice(self.terms))}", headers, None
        if route == "sample":
            return "GET", f"/samples/{quote(sample, safe='')}", headers, None
        if route == "flag":
            return "POST", "/api/flags", headers, {"sample_id": sample, "category": rng.choice(CATEGORIES), "note": "load"}
        if route == "decision" and self.opened[n]:
            flag_id = self.opened[n].pop()
        elif self.fresh[n]:
            flag_id = self.fresh[n].pop()
        else:
            raise RuntimeError(f"reviewer {n} has no pending flag left: give more --flags")
        if route == "flag_page":
            self.opened[n].append(flag_id)
            return "GET", f"/flags/{flag_id}", headers, None
        decision = rng.choice(list(REASONS))
        return "POST", f"/api/flags/{flag_id}/review", headers, {"decision": decision, "reason": REASONS[decision], "note": "load"}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def cpu_sample() -> tuple[float, dict[int, float], float]:
    """CPU seconds so far: this process's (the generator), each child process's by PID (the app:
    ``scrutineer serve`` and its workers), and the whole machine's busy time."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    app = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        app[p.pid] = t.user + t.system
    m = psutil.cpu_times()
    return me.ru_utime + me.ru_stime, app, m.user + m.nice + m.system + m.irq + m.softirq + m.steal


async def probe(http: aiohttp.ClientSession, load: Load, routes: list[str], n: int) -> tuple[dict[str, str], dict[str, dict]]:
    """One request per route, then ``n`` more of each route that did not answer 404, one at a time.

    Returns:
        (the routes that answered 404, with what they answered; per other route ``{"app_ms",
        "generator_ms", "wall_ms", "errors"}``: the app's and the generator's CPU ms per request,
        and the p50 of its wall time, with nothing else in flight).
    """
    missing, costs = {}, {}
    rng = random.Random(0)

    async def send(route: str) -> tuple[int, str]:
        method, path, headers, body = load.request(route, rng)
        async with http.request(method, path, headers=headers, json=body) as r:
            return r.status, f"{method} {path} answered {r.status} {(await r.text())[:120]!r}"

    for route in routes:
        status, what = await send(route)
        if status == 404:
            missing[route] = what
            continue
        generator, app, _ = cpu_sample()
        walls, errors = [], 0
        for _ in range(n):
            t = time.perf_counter()
            status, _ = await send(route)
            walls.append((time.perf_counter() - t) * 1000)
            errors += status >= 400
        generator_after, app_after, _ = cpu_sample()
        costs[route] = {"app_ms": sum(t - app[pid] for pid, t in app_after.items() if pid in app) * 1000 / n,
                        "generator_ms": (generator_after - generator) * 1000 / n, "wall_ms": percentile(walls, 0.5), "errors": errors}
    return missing, costs


async def run_rate(http: aiohttp.ClientSession, load: Load, routes: list[str], rate: float, seconds: float, warmup: float, seed: int) -> dict:
    """Poisson arrivals at ``rate``/s for ``warmup`` + ``seconds``, the last ``seconds`` counted:
    ``{"rate", "arrivals", "sent", "lag_ms": [...], "routes": {route: {"ms": [...], "errors": [...]}},
    "cpu": {"generator", "app", "machine"}}`` (arrivals: scheduled in the counted window; sent:
    actually sent in it; latencies in ms from the scheduled send time; CPU in seconds per second)."""
    loop = asyncio.get_running_loop()
    # the schedule (arrival times, routes) has an RNG of its own, so it is the same in every run whatever the responses
    schedule, rng = random.Random(seed), random.Random(seed + 1)
    weights = [MIX[r] for r in routes]
    out: dict = {"rate": rate, "arrivals": 0, "sent": 0, "lag_ms": [], "routes": {r: {"ms": [], "errors": []} for r in routes}}
    start = loop.time() + 0.05
    counted_from, end = start + warmup, start + warmup + seconds

    async def one(route: str, at: float, counted: bool) -> None:
        method, path, headers, body = load.request(route, rng)
        sent = loop.time()
        out["sent"] += counted_from <= sent < end
        error = None
        try:
            async with http.request(method, path, headers=headers, json=body) as r:
                text = await r.text()
            if r.status >= 400:
                error = f"{r.status} {method} {path} {text[:100]!r}"
        except (aiohttp.ClientError, TimeoutError) as e:
            error = f"{type(e).__name__} {method} {path}: {e}"
        if counted:
            out["lag_ms"].append((sent - at) * 1000)
            out["routes"][route]["ms"].append((loop.time() - at) * 1000)
            if error:
                out["routes"][route]["errors"].append(error)

    async def window() -> dict[str, float]:
        await asyncio.sleep(counted_from - loop.time())
        generator, app, machine = cpu_sample()
        await asyncio.sleep(end - loop.time())
        generator_after, app_after, machine_after = cpu_sample()
        return {"generator": (generator_after - generator) / seconds,
                "app": sum(t - app[pid] for pid, t in app_after.items() if pid in app) / seconds,
                "machine": (machine_after - machine) / seconds}

    measuring = asyncio.create_task(window())
    tasks = []
    at = start
    while True:
        at += schedule.expovariate(rate)
        if at >= end:
            break
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        counted = at >= counted_from
        out["arrivals"] += counted
        tasks.append(asyncio.create_task(one(schedule.choices(routes, weights)[0], at, counted)))
    await asyncio.gather(*tasks)
    out["cpu"] = await measuring
    return out


def holds(result: dict) -> bool:
    """0 errors and every route's p99 under :data:`TARGET_MS`."""
    return all(not r["errors"] and percentile(r["ms"], 0.99) < TARGET_MS for r in result["routes"].values())


def report(result: dict, seconds: float) -> None:
    """Print one rate's figures."""
    lag50, lag99 = percentile(result["lag_ms"], 0.5), percentile(result["lag_ms"], 0.99)
    cpu = result["cpu"]
    errors = sum(len(r["errors"]) for r in result["routes"].values())
    kept = "kept to its schedule" if lag99 <= LAG_LIMIT_MS else f"FELL BEHIND its schedule (p99 > {LAG_LIMIT_MS:.0f} ms): these figures are the generator's"
    print(f"\nrate {result['rate']:.0f}/s: {result['sent'] / seconds:.1f} requests/s sent ({result['arrivals']:,} scheduled in {seconds:.0f} s), "
          f"{errors} errors; {'HOLDS' if holds(result) else 'does not hold'}")
    print(f"  generator: send lag p50 {lag50:.1f} ms, p99 {lag99:.1f} ms ({kept}); CPU {cpu['generator']:.3f} s/s")
    print(f"  app processes: CPU {cpu['app']:.2f} s/s; machine busy {cpu['machine']:.2f} of {psutil.cpu_count()} cores "
          f"(other load {max(0.0, cpu['machine'] - cpu['app'] - cpu['generator']):.2f})")
    print(f"  {'route':<10} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for route, r in result["routes"].items():
        print(f"  {route:<10} {len(r['ms']):>8,} {percentile(r['ms'], 0.5):>8.1f} {percentile(r['ms'], 0.99):>8.1f} {len(r['errors']):>6}")
    for line in sorted({e for r in result["routes"].values() for e in r["errors"]})[:5]:
        print(f"  error: {line}")


async def settle(limit: float = 120.0) -> float:
    """Wait until the app has done the work a rate left it (requests the generator gave up on are
    still answered): its processes' CPU under :data:`IDLE_CORES` over a second, at most ``limit``
    seconds. Returns the seconds waited."""
    waited = 0.0
    while waited < limit:
        _, app, _ = cpu_sample()
        await asyncio.sleep(1.0)
        waited += 1.0
        _, app_after, _ = cpu_sample()
        if sum(t - app[pid] for pid, t in app_after.items() if pid in app) < IDLE_CORES:
            break
    return waited


async def find_max(measure: Callable, results: dict[float, dict]) -> float:
    """The highest rate that holds, to :data:`STEP` requests/s: doubling past the highest measured
    rate that holds, then bisecting between the highest that holds and the lowest that fails
    (0 when none holds). Measures new rates with ``measure(rate)``, adding them to ``results``."""

    def bounds() -> tuple[float, float | None]:
        held = [r for r, res in results.items() if holds(res)]
        lo = max(held, default=0.0)
        failed = [r for r, res in results.items() if not holds(res) and r > lo]
        return lo, min(failed, default=None)

    lo, hi = bounds()
    while hi is None:
        results[lo * 2] = await measure(lo * 2)
        lo, hi = bounds()
    while hi - lo > STEP:
        mid = round((lo + hi) / 2 / STEP) * STEP
        if mid in (lo, hi):
            break
        results[mid] = await measure(mid)
        lo, hi = bounds()
    return lo


async def main_async(args: argparse.Namespace, built: dict, base: str) -> dict:
    """Probe the routes, run every rate (and the search), print each; the summary."""
    ids = built["flag_ids"]
    load = Load(built["reviewers"], built["contributors"], args.samples, search_terms(built["captions"], random.Random(7)),
                [ids[n::len(built["reviewers"])] for n in range(len(built["reviewers"]))])
    # idle connections are dropped before the app's keep-alive timeout (gunicorn's `keepalive`, 2 s by default, which
    # uvicorn's workers take): a request sent on a connection the server is closing fails with a reset
    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections, keepalive_timeout=KEEPALIVE)
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
        missing, costs = await probe(http, load, list(MIX), COST_REQUESTS)
        for route, what in missing.items():
            print(f"route {route} left out of the mix: {what} (not built yet?)")
        print(f"cost per request, {COST_REQUESTS} of each route one at a time (CPU ms of the app, of the generator; wall ms p50):")
        for route, c in costs.items():
            print(f"  {route:<10} app {c['app_ms']:5.1f}, generator {c['generator_ms']:4.2f}; wall {c['wall_ms']:5.1f}" + (f"; {c['errors']} errors" if c["errors"] else ""))
        mean = sum(MIX[r] * c["app_ms"] for r, c in costs.items()) / sum(MIX[r] for r in costs)
        cores = psutil.cpu_count()
        print(f"  the mix: app {mean:.1f} ms per request, so {cores * 1000 / mean:.0f} requests/s would take all {cores} cores")
        routes = [r for r in MIX if r not in missing]
        share = sum(MIX[r] for r in routes)
        print("mix: " + ", ".join(f"{r} {MIX[r] / share:.0%}" for r in routes))
        results: dict[float, dict] = {}

        async def measure(rate: float) -> dict:
            if (waited := await settle()) > 1:
                print(f"\n(waited {waited:.0f} s for the app to finish the previous rate's work)")
            result = await run_rate(http, load, routes, rate, args.seconds, args.warmup, seed=int(rate))
            report(result, args.seconds)
            return result

        for rate in args.rates:
            results[rate] = await measure(rate)
        best = await find_max(measure, results) if args.find_max else max((r for r, res in results.items() if holds(res)), default=0.0)
    print(f"\nhighest rate that holds (0 errors, every p99 < {TARGET_MS:.0f} ms){'' if args.find_max else ' of those listed'}: {best:.0f} requests/s")
    if missing:
        print(f"NOT the acceptance figure: routes left out ({', '.join(missing)})")
    return {
        "highest_rate": best,
        "missing_routes": sorted(missing),
        "costs": costs,
        "rates": {
            f"{rate:g}": {
                "holds": holds(res),
                "sent_per_s": res["sent"] / args.seconds,
                "lag_p99_ms": percentile(res["lag_ms"], 0.99),
                "cpu": res["cpu"],
                "routes": {r: {"p50_ms": percentile(v["ms"], 0.5), "p99_ms": percentile(v["ms"], 0.99), "errors": len(v["errors"])}
                           for r, v in res["routes"].items()},
            }
            for rate, res in sorted(results.items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--open-loop", action="store_true", help="the only mode (accepted: issue 25 names it)")
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[50.0, 100.0, 200.0], help="requests/s, comma-separated")
    ap.add_argument("--find-max", action=argparse.BooleanOptionalAction, default=True, help="search for the highest rate that holds")
    ap.add_argument("--seconds", type=float, default=30.0, help="counted seconds per rate")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before each rate's counted seconds")
    ap.add_argument("--samples", type=int, default=150_000)
    ap.add_argument("--flags", type=int, default=100_000, help="pending flags in the crowd store")
    ap.add_argument("--reviewers", type=int, default=20)
    ap.add_argument("--contributors", type=int, default=50)
    ap.add_argument("--connections", type=int, default=64, help="the generator's keep-alive connections")
    ap.add_argument("--workers", type=int, default=2, help="app processes (scrutineer serve --workers)")
    ap.add_argument("--shared-data", type=Path, default=Path(os.environ.get("SCRUTINEER_SHARED_DATA", BENCH.parents[1] / "shared" / "data")))
    ap.add_argument("--workdir", type=Path, help="where to build (default: a temporary directory, deleted)")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="serve-load-"))
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect"))
    try:
        # built in a process of its own: the scan's embedded Prefect server (a subprocess) and threads
        # end with it, instead of taking CPU from the generator and the app while they are measured
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as builder:
            built = builder.submit(build, root / "bench", args.shared_data, args.samples, args.flags, args.reviewers, args.contributors).result()
        with serve(built["config"], "--workers", str(args.workers)) as base:
            print(f"{base}: {args.workers} app processes; rates {', '.join(f'{r:g}' for r in args.rates)}/s, "
                  f"{args.seconds:.0f} s each after {args.warmup:.0f} s of warm-up; load average {os.getloadavg()[0]:.2f}", flush=True)
            summary = uvloop.run(main_async(args, built, base))
        print(json.dumps(summary))
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
