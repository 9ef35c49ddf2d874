"""W3C TDMRep, the TDM Reservation Protocol (Final Community Group Report, 2024): the
``tdm-reservation`` and ``tdm-policy`` HTTP headers, and ``/.well-known/tdmrep.json``.

- ``tdm-reservation: 1``: TDM rights are reserved; ``0``: they are not. ``tdm-policy`` gives the URL
  of a policy saying how a TDM licence may be obtained.
- ``tdmrep.json`` is a JSON array of objects, each with ``location`` (a path pattern),
  ``tdm-reservation`` (0 or 1) and optionally ``tdm-policy`` (a URL). Location patterns follow
  robots.txt's (RFC 9309 §2.2.3): they match a URL's path and query from its start, ``*`` matches
  any characters and a final ``$`` the end; when several match, the longest pattern decides, as in
  robots.txt. They are matched in linear time (:class:`~scrutineer.observing.optouts.rules.Pattern`, with
  RFC 9309 §2.2.2's percent-encoding normalisation), never by a backtracking regex.
- Headers override the file: a ``tdm-reservation`` header on the response is the resource's own
  statement and decides alone, the site-wide file only applies where there is none.

A file that is not JSON, not an array of such objects, or has a ``tdm-reservation`` other than
0/1 is non-conformant: :func:`parse_file` raises, and the detector reports ``optout.invalid``
naming the fault, never a reservation. So is a file the readers refuse to read whole, whatever
it holds (the spec sets no limits; these are Scrutineer's): one over
:data:`~scrutineer.observing.policy_files.MAX_BYTES` characters (the cap of every policy file, RFC 9309
§2.5's for robots.txt; the real files are under 200 bytes), nested deeper than 1,024 (orjson's
limit: the stdlib parser recurses in C until a ``RecursionError``), or with more than
:data:`~scrutineer.observing.optouts.rules.MAX_RULES` entries.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from scrutineer.observing.optouts import Signal
from scrutineer.observing.optouts.headers import MAX_VALUE, clipped, too_long
from scrutineer.observing.optouts.rules import MAX_RULES, Pattern, url_path
from scrutineer.observing.policy_files import MAX_BYTES

#: How a value the file gave is shown in a fault: at most 3 levels and 60 characters of a string.
_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother = 3, 60, 60
_shown = _repr.repr


@dataclass(frozen=True)
class Rule:
    """One object of a ``tdmrep.json``: a location pattern, its reservation (0/1) and policy URL."""

    location: str
    reservation: int
    policy: str | None
    pattern: Pattern = field(compare=False, repr=False)


def parse_file(text: str) -> list[Rule]:
    """The rules of a ``tdmrep.json``, the longest location first (then in file order).

    Raises:
        ValueError: the file is non-conformant, or over a bound (see the module); the message
            names the fault (and the entry). Nothing else, whatever ``text`` is.
    """
    if len(text) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES:,} characters, the policy file limit")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(data, list):
        raise ValueError(f"the top level is a JSON {type(data).__name__}, not an array")  # noqa: TRY004 - one error for every fault of the file
    if len(data) > MAX_RULES:
        raise ValueError(f"more than {MAX_RULES:,} entries")
    rules = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ValueError(f"entry {i} is not an object")  # noqa: TRY004 - one error for every fault of the file
        location, reservation, policy = entry.get("location"), entry.get("tdm-reservation"), entry.get("tdm-policy")
        if not isinstance(location, str) or not location.startswith(("/", "*")):
            raise ValueError(f"entry {i}: location {_shown(location)} is not a path pattern")
        if type(reservation) is not int or reservation not in (0, 1):
            raise ValueError(f"entry {i}: tdm-reservation {_shown(reservation)} is not 0 or 1")
        if policy is not None and (not isinstance(policy, str) or urlsplit(policy).scheme not in ("http", "https")):
            raise ValueError(f"entry {i}: tdm-policy {_shown(policy)} is not an http(s) URL")
        rules.append(Rule(location, reservation, policy, Pattern(location)))
    return sorted(rules, key=lambda r: len(r.location), reverse=True)


def matching_rule(rules: list[Rule], path: str) -> Rule | None:
    """The rule whose location matches ``path`` (a URL's path and query, normalised:
    :func:`~scrutineer.observing.optouts.rules.url_path`), the longest if several (``rules`` as
    :func:`parse_file` orders them)."""
    return next((r for r in rules if r.pattern.match(path)), None)


def from_headers(reservation: str | None, policy: str | None) -> Signal | None:
    """What a response's TDMRep headers say: ``optout.tdmrep`` for ``tdm-reservation: 1``,
    ``optout.invalid`` for a value other than 0 or 1, None for 0 or no header.

    Evidence: ``{"signal": "tdm-reservation header", "value", "tdm_policy"}`` (a ``tdm-policy``
    over :data:`~scrutineer.observing.optouts.headers.MAX_VALUE` characters :func:`~scrutineer.observing.optouts.headers.clipped`); a
    ``tdm-reservation`` over that is ``optout.invalid`` (:func:`~scrutineer.observing.optouts.headers.too_long`).
    """
    if reservation is None:
        return None
    if len(reservation) > MAX_VALUE:
        return too_long(reservation, "tdm-reservation header")
    value = reservation.strip()
    if value == "1":
        shown = policy if policy is None or len(policy) <= MAX_VALUE else clipped(policy)
        return Signal("optout.tdmrep", {"signal": "tdm-reservation header", "value": value, "tdm_policy": shown})
    if value != "0":
        return Signal("optout.invalid", {"signal": "tdm-reservation header", "value": reservation, "fault": "tdm-reservation is not 0 or 1"})
    return None


def from_file(rules: list[Rule], url: str) -> Signal | None:
    """``optout.tdmrep`` when the rule matching ``url``'s path reserves TDM, else None.

    Evidence: ``{"signal": "tdmrep.json", "location", "tdm_reservation", "tdm_policy"}``.
    """
    rule = matching_rule(rules, url_path(url))
    if rule is None or rule.reservation == 0:
        return None
    return Signal("optout.tdmrep", {"signal": "tdmrep.json", "location": rule.location, "tdm_reservation": 1, "tdm_policy": rule.policy})
