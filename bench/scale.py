"""Benchmark: the metadata scan over 1, 2 and 4 equal shards, with the local runner and on Dask
(issue 12, acceptance 5).

For each layout, ``--rows`` rows (default 4M) are split into k equal parquet shards (k = 1, 2, 4;
bench/scan_metadata.py's synthetic LAION rows, one seed per shard) and scanned with
``url_hashlist``, ``license_gaps`` and ``dedup``, as in bench/scan_metadata.py:

- **local**: ``runner: {kind: local}``, ``workers: 2`` (threads);
- **dask**: ``runner: {kind: dask, workers: 2}``, a LocalCluster of 2 processes started by the scan
  (its start is part of the figure, as it is of such a scan);
- **running**: ``runner: {kind: dask, address: …}``, a LocalCluster of 2 processes that this
  benchmark starts (and warms up with one untimed scan) before timing, as a deployment points its
  scans at a running cluster: the engine's own cost, without the cluster's start.

Every scan runs in a fresh process against one ``prefect server start`` started before timing
(``PREFECT_API_URL`` set, as scheduled runs have), so Prefect's temporary server is in no figure.
It prints, per layout and runner: wall seconds of ``run_scan``, rows/s, the speed-up over one
shard, the summed seconds of the shard tasks (as the store records them), and dask/local. Then
Prefect's per-task overhead on each runner: after a warm-up flow, a flow of 1 and of 41 no-op tasks,
(t41 - t1) / 40 (each dask flow starts and stops its own LocalCluster, so that cost cancels out).

Target: dask at 2 workers >= 0.9 x local on this 2-core machine (the engine costs little).

Usage::

    .venv/bin/python bench/scale.py                 # 4M rows, ~4 minutes on 2 cores
    .venv/bin/python bench/scale.py --rows 400000   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import scan_metadata  # bench/ is no package: its directory is on sys.path

LAYOUTS = (1, 2, 4)
RUNNERS = {"local": {"kind": "local"}, "dask": {"kind": "dask", "workers": 2}, "running": None}  # running: the address, at run time
NOOP_TASKS = 40


def task_overhead(config_path: Path) -> float:
    """In a fresh process: Prefect's seconds per task on the config's runner (the scan's own
    :func:`scrutineer.flows.scan.task_runner`), from flows of 1 and of :data:`NOOP_TASKS` + 1 no-op tasks."""
    from scrutineer.flows import configure_prefect

    configure_prefect()
    from prefect import flow, task

    from scrutineer.core.config import load_config
    from scrutineer.flows.scan import task_runner

    cfg = load_config(config_path)

    @task
    def noop(i: int) -> int:
        return i

    @flow(persist_result=False)
    def many(n: int) -> int:
        return sum(f.result() for f in [noop.submit(i) for i in range(n)])

    many.with_options(task_runner=task_runner(cfg))(1)  # warm-up: Prefect's client, the imports
    times = {}
    for n in (1, NOOP_TASKS + 1):
        t = time.perf_counter()
        many.with_options(task_runner=task_runner(cfg))(n)
        times[n] = time.perf_counter() - t
    return (times[NOOP_TASKS + 1] - times[1]) / NOOP_TASKS


@contextmanager
def _running_cluster(api_url: str) -> Iterator[str]:
    """A LocalCluster of 2 worker processes of one thread, non-daemonic (a shard task starts its
    hash pool; README "Scale-out"), for the ``running`` runner; yields its scheduler's address.
    ``PREFECT_API_URL`` is set first, for this process and the workers it starts: the tasks
    report to that server, not to a temporary one each."""
    os.environ["PREFECT_API_URL"] = api_url
    from scrutineer.flows import configure_prefect

    configure_prefect()  # the quiet defaults the scans have, for this cluster's workers too
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _run_self(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=4_000_000, help="rows per layout, split into equal shards (default 4M)")
    ap.add_argument("--workdir", type=Path, help="where data and workspaces go (default: a temporary directory, deleted)")
    ap.add_argument("--one-scan", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--task-overhead", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_scan:  # in a fresh process: the scan's own seconds and its shard tasks' (summed)
        scanned = scan_metadata.run_pipeline(args.one_scan)
        print(json.dumps({"wall": scanned.run_scan_s, "shard_s": scanned.shard_s}))
        return
    if args.task_overhead:
        print(json.dumps({"seconds": task_overhead(args.task_overhead)}))
        return

    root = (args.workdir or Path(tempfile.mkdtemp(prefix="scrutineer-scale-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        data: dict[int, list[Path]] = {}
        for k in LAYOUTS:
            (root / f"{k}-shards").mkdir(exist_ok=True)
            data[k] = [root / f"{k}-shards" / f"part-{i}.parquet" for i in range(k)]
            for i, path in enumerate(data[k]):
                scan_metadata.generate(path, root / f"{k}-shards" / f"bank-{i}.txt", args.rows // k, seed=i)
            # one bank per layout: every shard's banked URLs
            (root / f"{k}-shards" / "bank.txt").write_text("".join((root / f"{k}-shards" / f"bank-{i}.txt").read_text() for i in range(k)))
        print(f"generated {args.rows:,} rows as 1, 2 and 4 shards in {time.perf_counter() - t:.0f} s: {root}")
        with scan_metadata._prefect_server(root / "prefect-server-home") as url, _running_cluster(url) as address:
            print(f"prefect: a running `prefect server start` at {url}; a running LocalCluster at {address}; "
                  f"load average {os.getloadavg()[0]:.2f}")
            runners = {**RUNNERS, "running": {"kind": "dask", "address": address}}
            # warm-up, not timed: a running cluster's workers have imported the shard task's code
            warm = root / "warm-up.yaml"
            scan_metadata.write_config(warm, data[1], root / "1-shards" / "bank.txt", root / "work-warm-up", workers=2, runner=runners["running"])
            _run_self("--one-scan", str(warm))
            shutil.rmtree(root / "work-warm-up", ignore_errors=True)
            results: dict[tuple[int, str], dict] = {}
            for k in LAYOUTS:
                for name, runner in runners.items():
                    workspace = root / f"work-{k}-{name}"
                    shutil.rmtree(workspace, ignore_errors=True)
                    config = root / f"{k}-{name}.yaml"
                    scan_metadata.write_config(config, data[k], root / f"{k}-shards" / "bank.txt", workspace, workers=2, runner=runner)
                    results[k, name] = r = _run_self("--one-scan", str(config))
                    rows = args.rows // k * k
                    print(f"{k} shard(s), {name:>5}: {r['wall']:6.1f} s, {rows / r['wall']:>9,.0f} rows/s, "
                          f"speed-up {results[1, name]['wall'] / r['wall']:.2f}x over 1 shard, shard tasks {r['shard_s']:.1f} s in all")
                    shutil.rmtree(workspace, ignore_errors=True)
                print(f"{k} shard(s): throughput over local: dask {results[k, 'local']['wall'] / results[k, 'dask']['wall']:.2f}, "
                      f"running {results[k, 'local']['wall'] / results[k, 'running']['wall']:.2f}")
            for name in RUNNERS:
                overhead = _run_self("--task-overhead", str(root / f"1-{name}.yaml"))["seconds"]
                print(f"prefect's overhead per task, {name}: {overhead * 1000:.0f} ms")
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
