"""Detector registry: every detector, built-in or third-party, is found through the
``scrutineer.detectors`` entry-point group (``pyproject.toml``)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from scrutineer.core.errors import ConfigError

GROUP = "scrutineer.detectors"


@cache
def available() -> dict[str, object]:
    """Entry points by name.

    Raises:
        ConfigError: two distributions register the same detector name.
    """
    found: dict[str, object] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise ConfigError(f"detector {ep.name!r} is registered twice: {found[ep.name].value} and {ep.value}")
        found[ep.name] = ep
    return found


def get_detector_class(name: str):
    """The detector class registered as ``name``.

    Raises:
        ConfigError: unknown name (the message lists the known ones), or a class whose ``name``
            differs from its entry point.
    """
    eps = available()
    if name not in eps:
        raise ConfigError(f"unknown detector {name!r}; available: {', '.join(sorted(eps)) or 'none'}")
    cls = eps[name].load()
    if getattr(cls, "name", None) != name:
        raise ConfigError(f"detector entry point {name!r} loads {cls.__name__} whose name is {getattr(cls, 'name', None)!r}")
    return cls


def registered_reasons() -> dict[str, dict[str, bool]]:
    """The reasons of every registered detector (:attr:`scrutineer.detectors.base.Detector.reasons`).

    Returns:
        ``{detector name: {reason code: restricted}}``, e.g.
        ``{"url_hashlist": {"hash_match.url": True}, ...}``.

    Raises:
        ConfigError: as :func:`get_detector_class`, for any registered detector.
    """
    return {name: dict(get_detector_class(name).reasons) for name in available()}
