"""CSV that a spreadsheet opens as data, never as formulas (OWASP "CSV Injection",
https://owasp.org/www-community/attacks/CSV_Injection), and text that shows Unicode's bidi
controls rather than obeying them.

A text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a ``'`` before
it, and lines end in CRLF so that a carriage return or line feed inside a cell is quoted rather
than starting a new row (Python's csv module quotes only the characters of its line terminator).
Each bidi control in a cell is written as ``<U+202E>`` (:func:`shown_controls`), as the review
app and the report show it: obeyed, one reorders the URL or note a reader sees. Every CSV
Scrutineer writes (the takedown manifest, the report's exports, the AI Act summary, flag exports)
goes through :func:`csv_text` or :func:`spreadsheet_safe`; the JSON files beside them carry every
value exactly.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

#: What a CSV cell a spreadsheet would read as a formula starts with (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Unicode's explicit bidirectional formatting characters (UAX #9 section 2: the embeddings,
#: overrides and isolates, and the marks LRM, RLM and ALM). Obeyed, one in a caption or a note
#: reorders what the reader sees ("Trojan Source", CVE-2021-42574).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown_controls(text: str) -> str:
    """``text`` with each of :data:`BIDI_CONTROLS` written as ``<U+XXXX>`` (its code point)."""
    return BIDI_CONTROLS.sub(lambda m: f"<U+{ord(m[0]):04X}>", text)


def spreadsheet_safe(value: object) -> object:
    """``value`` as a CSV cell no spreadsheet evaluates and no bidi control reorders: a string has
    its bidi controls shown (:func:`shown_controls`), then, starting with one of
    :data:`FORMULA_STARTS`, gets a ``'`` before it; anything else is returned as it is."""
    if not isinstance(value, str):
        return value
    value = shown_controls(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document: ``header``, then one line per row, every cell through
    :func:`spreadsheet_safe`, lines ending in CRLF; ``None`` is written as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in (header, *rows):
        writer.writerow([spreadsheet_safe(v) for v in row])
    return buf.getvalue()
