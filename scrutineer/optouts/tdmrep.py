"""W3C TDMRep, the TDM Reservation Protocol (Final Community Group Report, 2024): the
``tdm-reservation`` and ``tdm-policy`` HTTP headers, and ``/.well-known/tdmrep.json``.

- ``tdm-reservation: 1``: TDM rights are reserved; ``0``: they are not. ``tdm-policy`` gives the URL
  of a policy saying how a TDM licence may be obtained.
- ``tdmrep.json`` is a JSON array of objects, each with ``location`` (a path pattern),
  ``tdm-reservation`` (0 or 1) and optionally ``tdm-policy`` (a URL). Location patterns follow
  robots.txt's (RFC 9309 §2.2.3): they match a URL's path from its start, ``*`` matches any
  characters and a final ``$`` the end; when several match, the longest pattern decides, as in
  robots.txt.
- Headers override the file: a ``tdm-reservation`` header on the response is the resource's own
  statement and decides alone, the site-wide file only applies where there is none.

A file that is not JSON, not an array of such objects, or has a ``tdm-reservation`` other than
0/1 is non-conformant: :func:`parse_file` raises, and the detector reports ``optout.invalid``
naming the fault, never a reservation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from scrutineer.optouts import Signal


@dataclass(frozen=True)
class Rule:
    """One object of a ``tdmrep.json``: a location pattern, its reservation (0/1) and policy URL."""

    location: str
    reservation: int
    policy: str | None


def parse_file(text: str) -> list[Rule]:
    """The rules of a ``tdmrep.json``.

    Raises:
        ValueError: the file is non-conformant; the message names the fault (and the entry).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, list):
        raise ValueError(f"the top level is a JSON {type(data).__name__}, not an array")  # noqa: TRY004 - one error for every fault of the file
    rules = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"entry {i} is not an object")  # noqa: TRY004 - one error for every fault of the file
        location, reservation, policy = entry.get("location"), entry.get("tdm-reservation"), entry.get("tdm-policy")
        if not isinstance(location, str) or not location.startswith(("/", "*")):
            raise ValueError(f"entry {i}: location {location!r} is not a path pattern")
        if type(reservation) is not int or reservation not in (0, 1):
            raise ValueError(f"entry {i}: tdm-reservation {reservation!r} is not 0 or 1")
        if policy is not None and (not isinstance(policy, str) or urlsplit(policy).scheme not in ("http", "https")):
            raise ValueError(f"entry {i}: tdm-policy {policy!r} is not an http(s) URL")
        rules.append(Rule(location, reservation, policy))
    return rules


@cache
def _pattern(location: str) -> re.Pattern:
    end = location.endswith("$")
    body = re.escape(location.removesuffix("$")).replace(r"\*", ".*")
    return re.compile(body + ("$" if end else ""))


def matching_rule(rules: list[Rule], path: str) -> Rule | None:
    """The rule whose location matches ``path`` (a URL's path and query), the longest if several."""
    matched = [r for r in rules if _pattern(r.location).match(path)]
    return max(matched, key=lambda r: len(r.location)) if matched else None


def from_headers(reservation: str | None, policy: str | None) -> Signal | None:
    """What a response's TDMRep headers say: ``optout.tdmrep`` for ``tdm-reservation: 1``,
    ``optout.invalid`` for a value other than 0 or 1, None for 0 or no header.

    Evidence: ``{"signal": "tdm-reservation header", "value", "tdm_policy"}``.
    """
    if reservation is None:
        return None
    value = reservation.strip()
    if value == "1":
        return Signal("optout.tdmrep", {"signal": "tdm-reservation header", "value": value, "tdm_policy": policy})
    if value != "0":
        return Signal("optout.invalid", {"signal": "tdm-reservation header", "value": reservation, "fault": "tdm-reservation is not 0 or 1"})
    return None


def from_file(rules: list[Rule], url: str) -> Signal | None:
    """``optout.tdmrep`` when the rule matching ``url``'s path reserves TDM, else None.

    Evidence: ``{"signal": "tdmrep.json", "location", "tdm_reservation", "tdm_policy"}``.
    """
    parts = urlsplit(url)
    rule = matching_rule(rules, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    if rule is None or rule.reservation == 0:
        return None
    return Signal("optout.tdmrep", {"signal": "tdmrep.json", "location": rule.location, "tdm_reservation": 1, "tdm_policy": rule.policy})
