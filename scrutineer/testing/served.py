"""``scrutineer serve`` in a process of its own, for the tests and bench/serve_load.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(config: Path, *options: str) -> Iterator[str]:
    """``scrutineer serve CONFIG [options]`` on a free loopback port, in its own process, until the
    block ends (then stopped by PID); yields its base URL once ``/api/health`` answers.

    Raises:
        RuntimeError: the server exited before answering (the message holds its stderr).
    """
    port = free_port()
    exe = Path(sys.executable).parent / "scrutineer"
    log = tempfile.TemporaryFile("w+")  # not a pipe: a server writing more than a pipe holds would block
    server = subprocess.Popen([str(exe), "serve", str(config), "--host", "127.0.0.1", "--port", str(port), *options], stderr=log, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"scrutineer serve exited {server.returncode}: {log.read()}")
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
