"""Prefect's temporary API server, whose process ends with the process that started it.

Prefect starts a temporary server (uvicorn in a subprocess) when no ``PREFECT_API_URL`` is set,
and stops it at exit; a scan killed by SIGKILL never reaches its exit, and the server lived on.
:class:`TemporaryServer` is Prefect's own ``SubprocessASGIServer`` with one change: uvicorn builds
the app through :func:`create_app`, which first arranges for the server to end when its parent
does (:func:`scrutineer.core.children.die_with`).
"""

from __future__ import annotations

import os
import subprocess
import sys

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import get_current_settings

from scrutineer.core.children import die_with

PARENT_PID = "SCRUTINEER_PREFECT_PARENT_PID"


def create_app():
    """The uvicorn app factory of :class:`TemporaryServer`: Prefect's ``create_app``, in a process
    that ends with its parent."""
    die_with(int(os.environ[PARENT_PID]))
    # start-up: ~4.7 s at import (python -X importtime); only the server's process needs it
    from prefect.server.api.server import create_app as prefect_app

    return prefect_app()


class TemporaryServer(SubprocessASGIServer):
    """Prefect's temporary server (one per process: ``SubprocessASGIServer`` is a singleton per
    port), ending with this process."""

    def _run_uvicorn_command(self) -> subprocess.Popen:
        # Prefect 3.8's own command and environment (prefect/server/api/server.py), with our factory.
        server_env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1", PARENT_PID: str(os.getpid())}
        return subprocess.Popen(
            args=[
                sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                "--factory", "scrutineer.flows.prefect_server:create_app",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on",
            ],
            env={**os.environ, **server_env, **get_current_settings().to_environment_variables(exclude_unset=True)},
        )
