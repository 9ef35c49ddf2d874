"""The distribution's extras: what each brings, and the check a feature makes before it starts.

A feature that needs an extra calls :func:`require` before it imports the extra's modules, so a
missing one stops it in one line naming the extra (as datatrove's ``_requires_dependencies``), not
with an ``ImportError`` traceback halfway through. The extras themselves are declared in
``pyproject.toml`` (``[project.optional-dependencies]``); ``all`` installs every one of them.
"""

from __future__ import annotations

from importlib.util import find_spec

from scrutineer.core.errors import MissingExtraError

#: The distribution's name on PyPI (``scrutineer`` is an unrelated project's).
DISTRIBUTION = "scrutineer-audit"

#: Per extra: the feature that needs it, and the modules it must make importable.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "serve": ("the review app (scrutineer serve)",
              ("fastapi", "asgi_csrf", "fastapi_offline", "cachetools", "gunicorn", "uvicorn", "uvicorn_worker", "httptools")),
    "dask": ("the Dask runner (runner: {kind: dask})", ("dask", "distributed", "prefect_dask")),
    "c2pa": ("the optouts detector's C2PA manifests", ("c2pa",)),
    "postgres": ("a crowd store on PostgreSQL (crowd: {database: postgresql+psycopg://...})", ("psycopg",)),
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, not imported)."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing; a module without a spec
        return False


def require(extra: str) -> None:
    """Check that the modules of ``extra`` (:data:`EXTRAS`) can be imported.

    Raises:
        MissingExtraError: one or more is missing; the one-line message names the feature, the
            missing modules and the command that installs them, e.g. ``the review app (scrutineer
            serve) needs the serve extra (gunicorn missing): pip install 'scrutineer-audit[serve]'``.
    """
    feature, modules = EXTRAS[extra]
    if missing := [m for m in modules if not installed(m)]:
        raise MissingExtraError(f"{feature} needs the {extra} extra ({', '.join(missing)} missing): pip install '{DISTRIBUTION}[{extra}]'")
