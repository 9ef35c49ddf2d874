"""CSV that a spreadsheet opens as data, never as formulas (OWASP "CSV Injection",
https://owasp.org/www-community/attacks/CSV_Injection).

A text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a ``'`` before
it, and lines end in CRLF so that a carriage return or line feed inside a cell is quoted rather
than starting a new row (Python's csv module quotes only the characters of its line terminator).
Every CSV Scrutineer writes (the takedown manifest, the report's exports) goes through
:func:`csv_text`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

#: What a CSV cell a spreadsheet would read as a formula starts with (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """``value`` as a CSV cell no spreadsheet evaluates: a string starting with one of
    :data:`FORMULA_STARTS` gets a ``'`` before it; anything else is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document: ``header``, then one line per row, every cell through
    :func:`spreadsheet_safe`, lines ending in CRLF; ``None`` is written as an empty cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in (header, *rows):
        writer.writerow([spreadsheet_safe(v) for v in row])
    return buf.getvalue()
