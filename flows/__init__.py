"""Prefect flows. Call :func:`configure_prefect` before importing a flow module: Prefect reads
its settings from the environment when it is first imported."""

from __future__ import annotations

import os
from pathlib import Path


def configure_prefect(workspace: Path) -> None:
    """Set quiet, offline Prefect defaults, keeping any value the environment already has.

    Without ``PREFECT_API_URL`` Prefect starts a temporary local API server (10-30 s on first
    use, MEASURED.md), whose database lives under ``PREFECT_HOME`` (default
    ``<workspace>/.prefect``). Point ``PREFECT_API_URL`` at a real ``prefect server`` for
    scheduled runs.
    """
    defaults = {
        "PREFECT_HOME": str(workspace / ".prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
