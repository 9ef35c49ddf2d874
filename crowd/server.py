"""The process manager behind ``scrutineer serve``: gunicorn, running uvicorn in each worker process.

Each worker binds a listening socket of its own with ``SO_REUSEPORT``, so the kernel spreads the
connections over the workers by a hash of their address and port. The other way is one socket
that all workers accept from: that is uvicorn's own ``--workers``, and gunicorn's default. There,
whichever worker wakes first accepts every connection waiting in the backlog. Measured with
bench/serve_load.py's 50 keep-alive clients on 2 workers, the split was 39 and 11 connections, and
the busy worker set the p99. With one socket per worker it was 29 and 21 (bench/README.md). Peers
made the same change: gunicorn 27's ``reuse_port`` binds per worker, and SkyPilot's API server
does the same on uvicorn (skypilot-org/skypilot#10016).

``serve`` says where it listens (:func:`ready_line`) once the first worker has loaded the app
with its socket listening: gunicorn's ``post_worker_init`` hook of the worker spawned first
(``age`` 1). Its ``when_ready`` hook runs in the arbiter before any worker is forked, and with a
socket per worker nothing listens yet then; from the first worker's socket on, the kernel queues
connections for it.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from scrutineer.core.errors import ConfigError
from scrutineer.crowd.app import app_from_environment


class Worker(UvicornWorker):
    """uvicorn on uvloop and httptools (bench/serve_load.py is measured with them), with no
    ``Server`` header."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "uvloop", "http": "httptools", "server_header": False}


class Server(BaseApplication):
    """``workers`` processes serving :func:`scrutineer.crowd.app.app_from_environment` on ``host:port``.

    Raises:
        ConfigError: ``host:port`` is in use. Sockets with ``SO_REUSEPORT`` would share a port
            with another server of the same user and split its traffic, so a port must be free.
    """

    def __init__(self, host: str, port: int, workers: int) -> None:
        _check_free(host, port)
        self.options = {
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "workers": workers,
            "worker_class": f"{__name__}.Worker",
            "reuse_port": True,
            "loglevel": "warning",
            "post_worker_init": _announcer(ready_line(host, port, workers)),
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return app_from_environment()


def ready_line(host: str, port: int, workers: int) -> str:
    """What ``serve`` prints once it listens: ``Review app on http://HOST:PORT/ (N workers). Ctrl-C stops it.``
    (an IPv6 address in brackets)."""
    where = f"[{host}]" if ":" in host else host
    return f"Review app on http://{where}:{port}/ ({workers} worker{'s' if workers != 1 else ''}). Ctrl-C stops it."


def _announcer(line: str) -> Callable[[Any], None]:
    """gunicorn's ``post_worker_init`` hook: the first worker spawned (age 1) prints ``line`` to
    stdout, flushed; a worker spawned later (a restart) prints nothing."""

    def announce(worker: Any) -> None:
        if worker.age == 1:
            print(line, file=sys.stdout, flush=True)

    return announce


def plain_http_warning(host: str) -> str | None:
    """What ``serve --host HOST`` warns of: None for a loopback address or ``localhost``; for any
    other host (``0.0.0.0`` included), that the app serves plain HTTP to the network there, naming
    the README's section on running it behind a TLS proxy."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name
        loopback = host == "localhost"
    if loopback:
        return None
    return (f"serving plain HTTP on {host}: passwords, API tokens and session cookies would cross the network unencrypted. "
            'Keep the app on 127.0.0.1 and put a TLS reverse proxy in front (README "Behind TLS").')


def _check_free(host: str, port: int) -> None:
    """Bind ``host:port`` without ``SO_REUSEPORT`` and let go: any listener there refuses it.
    (``SO_REUSEADDR`` lets the bind pass over the closed connections of a server just stopped.)

    Raises:
        ConfigError: the port is in use, or ``host`` is no address of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(f"cannot serve on {host}:{port}: {e.strerror}") from e
