"""Shared fixtures: the real data in tests/data, a quiet embedded Prefect, config writing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

# Prefect reads its settings when first imported: one API-server database for the whole session
# (and for the CLI subprocesses the tests start, which inherit the environment, and the hash
# workers that import this module for hash_after_marking, which make no directory of their own).
if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="scrutineer-test-prefect-")
from scrutineer.flows import configure_prefect  # noqa: E402
from scrutineer.testing.served import free_port  # noqa: E402

configure_prefect()

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def test_data() -> Path:
    """``tests/data``: the real samples, pictures and policy files that the tests read (metadata/,
    images/, licenses/, optout/), each file's source and licence in its PROVENANCE.md."""
    return DATA


def command_line(process: psutil.Process) -> str:
    """A process's command line; "" once it has exited since it was listed (a zombie's is gone)."""
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # ZombieProcess is one
        return ""


def write_config(directory: Path, config: dict) -> Path:
    """Write ``config`` as ``directory/config.yaml`` (workspace defaults to ``directory/work``)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"workspace": str(directory / "work"), **config}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def url_list_config(directory: Path, name: str, urls: list[str], detectors: dict | None = None, **fetch) -> Path:
    """A content scan of ``urls`` (one JSONL shard) on the fixture web: ``content_hashlist`` against
    an MD5 bank that lists nothing served, plus ``detectors``; ``fetch`` settings added to
    ``allow_private_networks``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "d.jsonl").write_text("".join(json.dumps({"url": u}) + "\n" for u in urls))
    (directory / "md5.txt").write_text("0" * 32 + "\n")
    return write_config(
        directory,
        {
            "dataset": {"name": name, "shards": ["d.jsonl"]},
            "banks": [{"name": "b", "path": "md5.txt", "signal_type": "md5", "source": "test", "version": "1"}],
            "detectors": {"content_hashlist": {}, **(detectors or {})},
            "fetch": {"allow_private_networks": True, **fetch},
        },
    )


def hash_after_marking(marker: str, body: bytes, max_pixels: int, dihedral: bool):
    """A hash worker's work (:class:`scrutineer.observing.hashing.HashPool`'s ``hasher``) that shows a test
    which worker is busy: the first call of all claims ``marker`` (a path), writes its process id
    there, and holds its body until the test kills the process (300 s at most: a bound on a hang
    only); every other call hashes at once."""
    from scrutineer.observing.hashing import hash_content

    try:
        os.close(os.open(marker + ".claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return hash_content(body, max_pixels, dihedral)
    Path(marker + ".tmp").write_text(str(os.getpid()))
    os.replace(marker + ".tmp", marker)  # whole, or not there
    threading.Event().wait(300)
    return hash_content(body, max_pixels, dihedral)


def wait_until(what: str, check, timeout: float = 120):
    """Poll ``check()`` every 0.05 s until it returns something truthy, and return that; fail after
    ``timeout`` seconds (a bound on a hang, never a wait for a state)."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return got


def scan(path: Path) -> dict:
    """Load a config and scan as ``scrutineer scan`` does, in this process: the scan flow, then the
    crowd's confirmed flags and review snapshot (:func:`scrutineer.crowd.sync.after_run`)."""
    from scrutineer.core.config import load_config
    from scrutineer.crowd.sync import after_run
    from scrutineer.flows.scan import run_scan

    cfg = load_config(path)
    return after_run(cfg, run_scan(cfg))


_FILE_SIZE_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit raises OSError (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from scrutineer.cli.main import app
app(sys.argv[2:])
"""


def scrutineer_with_file_size_limit(limit: int, *args: str) -> subprocess.CompletedProcess:
    """Run ``scrutineer *args`` in a subprocess that cannot write any file past ``limit`` bytes
    (``RLIMIT_FSIZE``), as on a full disk."""
    return subprocess.run([sys.executable, "-c", _FILE_SIZE_LIMITED, str(limit), *args], capture_output=True, text=True, timeout=300)


POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 in a temporary directory (Debian's ``postgresql``
    package, which .ci/run installs), stopped by PID at the end; its SQLAlchemy URL."""
    if not (POSTGRES_BIN / "postgres").exists():
        pytest.skip(f"PostgreSQL not found in {POSTGRES_BIN}: apt-get install postgresql")
    data = Path(tempfile.mkdtemp(prefix="scrutineer-test-postgres-"))  # not under pytest's 0700 tree: the postgres user reads it
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # postgres refuses to run as root
    if as_postgres:
        shutil.chown(data, "postgres")
    subprocess.run([*as_postgres, str(POSTGRES_BIN / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "scrutineer"], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([*as_postgres, str(POSTGRES_BIN / "postgres"), "-D", str(data / "db"), "-h", "127.0.0.1", "-p", str(port), "-k", str(data)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("PostgreSQL to accept connections",
                   lambda: subprocess.run([str(POSTGRES_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode == 0)
        yield f"postgresql+psycopg://scrutineer@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


#: Debian's Chromium: the browser tests drive it through Playwright and never download one (MEASURED.md).
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Chromium launched by Playwright for one test module; skipped where Playwright or Debian's
    chromium is missing (.ci/run installs both)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])  # root in CI: no sandbox
        yield chromium
        chromium.close()


def readable_by_others(root: Path) -> list:
    """Paths under ``root`` (``root`` included) that a user other than the owner may read, write or enter."""
    found = [root] if root.stat().st_mode & 0o077 else []
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            if not os.path.islink(path) and os.stat(path).st_mode & 0o077:
                found.append(path)
    return found
