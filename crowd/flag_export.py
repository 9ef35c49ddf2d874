"""``scrutineer flags export``: every flag with its reports and reviews, as one account may see
them; and the shown flag details behind "My flags" (:mod:`scrutineer.crowd.mine`).

What an export holds follows the API's rules for the account it is made as
(:mod:`scrutineer.crowd.access`: :func:`~scrutineer.crowd.access.shown_detail`, the rules of
``GET /api/flags/{id}``): a contributor gets the flags they reported, without any URL, their own
report alone, no reviewer's note, and a flag of a sensitive category pending with no review; a
reviewer or a maintainer gets every flag, URLs and notes included. Made as no account, an export
is a maintainer's view (whoever runs the command holds the crowd store on disk already): the file
then holds restricted facts, and ``flags export`` writes it readable by its owner only.

Formats, one flag per line or row, newest first:

- **JSONL** (exact): the flag as ``GET /api/flags/{id}`` shows it, without its audit trail and
  claim: the ``flags`` columns, ``restricted``, ``reports`` (``by``, ``note``, ``source``,
  ``created_at``) and ``reviews`` (``by``, ``decision``, ``reason``, ``note``, ``created_at``,
  ``duplicate_of``), plus ``note``: the shown reports' notes, one per line. Times in ISO 8601.
- **CSV** (for spreadsheets: :func:`scrutineer.reports.csvsafe.spreadsheet_safe`, CRLF lines):
  :data:`COLUMNS`, the lists flattened one entry per line of a cell.

``flags import`` reads an export back (its ``sample_id``, ``url``, ``category`` and ``note``;
:data:`COLUMNS` are known to it): a contributor's export, which names each sample by its id
alone, re-imports as it is.

The flags are read a page at a time (keyset paging by id, :data:`PAGE` flags), so an export of
any size holds one page in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, TextIO

from scrutineer.core.errors import NotFound
from scrutineer.crowd.access import Services, shown_detail, shown_flags
from scrutineer.crowd.accounts import Account
from scrutineer.reports.csvsafe import spreadsheet_safe

#: Flags read per page.
PAGE = 500
#: The account an export made as no account is made as: a maintainer's view. (``cli`` is how the
#: audit log names the command line, :meth:`scrutineer.crowd.store.CrowdStore.change_account`.)
OPERATOR = Account(0, "cli", "maintainer")
#: The columns of a CSV export, in order (JSONL has the same keys, ``reports`` and ``reviews`` as lists).
COLUMNS = ("id", "sample_id", "url", "category", "note", "status", "restricted", "shard_id", "row_index", "host", "registrable_domain",
           "caption", "created_at", "updated_at", "reported_by", "decisions", "reviewed_by", "review_notes", "duplicate_of")
Format = Literal["csv", "jsonl"]


def shown_details(s: Services, who: Account, ids: list[int]) -> list[dict[str, Any]]:
    """The flags ``ids`` as ``who`` may see them: :meth:`scrutineer.crowd.reading.Reading.flag_detail`
    then :func:`scrutineer.crowd.access.shown_detail`, in the order given. For reviewers and
    maintainers that rule is :func:`~scrutineer.crowd.access.shown_flags` of the one flag, so a
    page of them is shown at once (one read of the review snapshot, not one per flag).

    Raises:
        NotFound: a flag that does not exist, or that a contributor did not report.
        WorkspaceError: no review snapshot yet (reviewers and maintainers).
    """
    details = [s.crowd.flag_detail(who, flag_id) for flag_id in ids]
    if who.reviews:
        return shown_flags(s, who, details)
    return [shown_detail(s, who, detail) for detail in details]


def exported(s: Services, who: Account, status: str | None = None, page: int = PAGE) -> Iterator[dict[str, Any]]:
    """Every flag ``who`` may see (a contributor's own, everyone's for reviewers and
    maintainers), newest first, with ``status`` if given, as export records (module docstring).

    Raises:
        WorkspaceError: no review snapshot yet (reviewers and maintainers).
    """
    before = None
    while rows := s.crowd.flags(who, status=status, before=before, limit=page):
        yield from map(as_record, shown_details(s, who, [r["id"] for r in rows]))
        before = rows[-1]["id"]


def as_record(detail: dict[str, Any]) -> dict[str, Any]:
    """A shown flag detail (:func:`shown_details`) as an export record: without its audit trail
    and claim, with ``note``: its shown reports' notes, one per line (module docstring)."""
    return {k: v for k, v in detail.items() if k not in ("audit", "claim")} | {"note": "\n".join(r["note"] for r in detail["reports"])}


def export_as(s: Services, name: str | None) -> Account:
    """The account an export is made as: the one named, or :data:`OPERATOR` for None.

    Raises:
        NotFound: no account of that name.
    """
    if name is None:
        return OPERATOR
    who = s.crowd.by_name(name)
    if who is None:
        raise NotFound(f"no account {name!r}: `scrutineer users list` names them")
    return who


def write_export(records: Iterator[dict[str, Any]], out: TextIO, fmt: Format) -> int:
    """Write ``records`` (:func:`exported`) to ``out`` as CSV or JSONL (module docstring).

    Returns:
        How many flags were written.
    """
    n = 0
    if fmt == "jsonl":
        for n, record in enumerate(records, 1):
            out.write(json.dumps(record, ensure_ascii=False, default=_iso) + "\n")
        return n
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for n, record in enumerate(records, 1):
        writer.writerow([spreadsheet_safe(v) for v in _row(record)])
    return n


def _row(record: dict[str, Any]) -> list[object]:
    """A CSV row of :data:`COLUMNS`: times in ISO 8601, each list one entry per line of its cell."""
    reviews = record["reviews"]
    flat = {
        "reported_by": "\n".join(r["by"] for r in record["reports"]),
        "decisions": "\n".join(f"{r['decision']} {r['reason']}" for r in reviews),
        "reviewed_by": "\n".join(r["by"] for r in reviews),
        "review_notes": "\n".join(r["note"] or "" for r in reviews),
        "duplicate_of": "\n".join(str(r["duplicate_of"]) for r in reviews if r.get("duplicate_of") is not None),
    }
    row = record | flat
    return [_iso(row[c]) if isinstance(row[c], datetime) else row[c] for c in COLUMNS]


def _iso(value: object) -> str:
    """A time in ISO 8601 (JSON's ``default``)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
