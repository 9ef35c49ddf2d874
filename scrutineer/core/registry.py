"""Detector registry: every detector, built-in or third-party, is found through the
``scrutineer.detectors`` entry-point group (``pyproject.toml``), and what each reason code it
declares means (:class:`Reason`, :func:`reason_label`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from scrutineer.core.errors import ConfigError

GROUP = "scrutineer.detectors"
#: The prefix of the reasons of crowd findings: ``crowd.<category>`` (``scrutineer sync``).
CROWD_PREFIX = "crowd."


@dataclass(frozen=True)
class Reason:
    """What one reason code of a detector means (:attr:`scrutineer.detectors.base.Detector.reasons`).

    Attributes:
        restricted: whether its findings are restricted: shown as counts only, never their URLs
            (hash-bank matches, ``hash_match.*``: DESIGN.md "Restricted and public outputs").
        label: what it means in plain language, for a watchdog reading a report (a short phrase,
            capitalised, no final full stop), e.g. ``"URL on a hash list"``.
    """

    restricted: bool
    label: str


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


def registered_reasons() -> dict[str, dict[str, Reason]]:
    """The reasons of every registered detector (:attr:`scrutineer.detectors.base.Detector.reasons`).

    Returns:
        ``{detector name: {reason code: Reason}}``, e.g.
        ``{"url_hashlist": {"hash_match.url": Reason(True, "URL on a hash list")}, ...}``.

    Raises:
        ConfigError: as :func:`get_detector_class`, for any registered detector.
    """
    return {name: dict(get_detector_class(name).reasons) for name in available()}


@cache
def _labels() -> dict[str, str]:
    return {code: reason.label for reasons in registered_reasons().values() for code, reason in reasons.items()}


def reason_label(code: str, categories: Mapping[str, str | None] | None = None) -> str:
    """A reason code in plain language: the label its detector declares (:class:`Reason`).

    A crowd reason ``crowd.<category>`` takes the category's description from ``categories``
    (``crowd.categories`` of the config: name -> description), or, with none, a phrase made of its
    name (``crowd.personal_data``: "Flagged by people as personal data"). A code no registered
    detector declares (a report of a run made with a detector since removed) is its own label.

    Args:
        code: a finding's reason, e.g. ``"link.dead"``.
        categories: crowd category name -> its description (None where it has none).

    Raises:
        ConfigError: as :func:`get_detector_class`, for any registered detector.
    """
    if code.startswith(CROWD_PREFIX):
        category = code.removeprefix(CROWD_PREFIX)
        return (categories or {}).get(category) or f"Flagged by people as {category.replace('_', ' ')}"
    return _labels().get(code, code)
