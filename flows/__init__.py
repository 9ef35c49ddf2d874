"""Prefect flows. Call :func:`configure_prefect` before importing a flow module: Prefect reads
its settings from the environment when it is first imported."""

from __future__ import annotations

import os


def configure_prefect() -> None:
    """Set quiet, offline Prefect defaults, keeping any value the environment already has.

    Without ``PREFECT_API_URL`` Prefect starts a temporary local API server for the run; its
    database lives under ``PREFECT_HOME`` (Prefect's default ``~/.prefect``). Keeping that home
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
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    if "PREFECT_HOME" in os.environ:
        os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
