"""Prefect flows. Call :func:`configure_prefect` before importing a flow module: Prefect reads
its settings from the environment when it is first imported."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def configure_prefect() -> None:
    """Set quiet, offline Prefect (and Dask) defaults, keeping any value the environment already has.

    Without ``PREFECT_API_URL``, a run starts a temporary local API server (:func:`prefect_api`);
    its database lives under ``PREFECT_HOME`` (Prefect's default ``~/.prefect``). Keeping that home
    across runs matters: a fresh database costs 11-12 s more per run than an existing one
    (bench/scan_metadata.py). Point ``PREFECT_API_URL`` at a real ``prefect server`` for
    scheduled runs.
    """
    defaults = {
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        # dask.distributed logs at INFO (every worker's start and stop), and Prefect's console
        # handler shows it; the runner: {kind: dask} scan's workers inherit this
        "DASK_LOGGING__DISTRIBUTED": "warning",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if "PREFECT_HOME" in os.environ:
        os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    """The Prefect API for a run: ``PREFECT_API_URL`` when set, else a temporary server of this
    process (:class:`scrutineer.flows.prefect_server.TemporaryServer`, started once, ending with the process),
    with the flow heartbeat off: a temporary server has nobody watching for crashed runs, and the
    heartbeat thread's join costs ~1 s per run (MEASURED.md)."""
    # start-up: Prefect reads its settings from the environment when first imported, so it is
    # imported only after configure_prefect (this module's other function) has set them
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        yield
        return
    # start-up: imports Prefect (see above)
    from scrutineer.flows.prefect_server import TemporaryServer

    server = TemporaryServer()
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
