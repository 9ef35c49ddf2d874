"""``scrutineer flags import``: flags from a file, all or nothing.

The file is CSV with a header (``.csv``) or JSON Lines (``.jsonl``, ``.ndjson``), UTF-8. Each row
names a sample by ``sample_id`` or by ``url`` (exactly one of them; a URL flags every sample of
the latest run that has it), a ``category`` from the config's ``crowd.categories``, and an
optional ``note``; the other columns of a ``flags export`` are read past
(:mod:`scrutineer.crowd.flag_export`). Every row is checked against the review snapshot of the latest run
(:mod:`scrutineer.crowd.snapshot`) before anything is recorded: a file with any bad row records nothing,
and the error lists every bad row by line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from scrutineer.core.config import Config
from scrutineer.core.errors import CrowdError, NotAllowed, NotFound
from scrutineer.crowd.flag_export import COLUMNS
from scrutineer.crowd.flags import FlagItem
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore

FIELDS = ("sample_id", "url", "category", "note")
#: The other columns of ``flags export`` (:data:`scrutineer.crowd.flag_export.COLUMNS`, and JSONL's
#: lists): read past, so that an export re-imports.
EXPORTED = (*(c for c in COLUMNS if c not in FIELDS), "reports", "reviews")
#: Bad rows listed in the error before the rest are counted.
SHOWN_ERRORS = 50


def import_flags(cfg: Config, path: Path, by: str) -> tuple[int, int]:
    """Record the file's flags for account ``by``.

    Returns:
        (flags in the file, after a URL's expansion to its samples; how many were new reports).

    Raises:
        NotFound: no such account.
        NotAllowed: a disabled account.
        CrowdError: an unreadable file or one with bad rows (nothing recorded; the message names
            the file and each bad line: unknown sample, URL or category, a missing or doubled key,
            an unknown column).
        WorkspaceError: no review snapshot yet (no finished scan).
    """
    rows, errors = [], []
    for line, row in _rows(path):
        unknown = sorted(set(row) - set(FIELDS) - set(EXPORTED))
        key = [k for k in ("sample_id", "url") if row.get(k)]
        if unknown:
            errors.append((line, f"unknown column(s) {', '.join(unknown)}; columns: {', '.join(FIELDS)}"))
        elif len(key) != 1:
            errors.append((line, "needs exactly one of sample_id and url"))
        elif row.get("category") not in cfg.crowd.categories:
            errors.append((line, f"unknown category {row.get('category')!r}; categories: {', '.join(cfg.crowd.categories) or 'none configured'}"))
        elif not isinstance(row[key[0]], str) or not isinstance(row.get("note") or "", str):
            errors.append((line, f"{key[0]} and note must be strings"))
        else:
            rows.append((line, key[0], row[key[0]], row["category"], row.get("note") or ""))
    with Snapshot(cfg.workspace) as snapshot:
        found = snapshot.samples([(key, value) for _, key, value, _, _ in rows])
    items = []
    for (line, key, value, category, note), samples in zip(rows, found):
        if not samples:
            errors.append((line, f"unknown {key} {value!r} (not in the latest scan)"))
        items += [FlagItem(s, category, note) for s in samples]
    if errors:
        more = f"\n  … and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        listed = [f"line {line}: {message}" for line, message in sorted(errors)[:SHOWN_ERRORS]]  # in file order
        raise CrowdError(f"{path}: nothing imported, {len(errors)} bad row(s):\n  " + "\n  ".join(listed) + more)
    with CrowdStore(cfg.crowd) as crowd:
        who = crowd.by_name(by, enabled=True)
        if who is None and crowd.by_name(by):
            raise NotAllowed(f"account {by!r} is disabled: `scrutineer users enable` it first")
        if who is None:
            raise NotFound(f"no account {by!r}: create it with `scrutineer users add`")
        made = crowd.flag(who, items, "import")
    return len(made), sum(new for _, new in made)


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a CSV or JSONL file.

    Raises:
        CrowdError: an unknown suffix, an unreadable file, a line that is not a JSON object.
    """
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if suffix == ".csv":
                reader = csv.DictReader(f)
                for row in reader:
                    if None in row:
                        raise CrowdError(f"{path} line {reader.line_num}: more cells than the header has columns")
                    yield reader.line_num, {k: v for k, v in row.items() if v is not None}
            elif suffix in (".jsonl", ".ndjson"):
                for n, text in enumerate(f, 1):
                    if not text.strip():
                        continue
                    try:
                        # the standard library's parser, not orjson: it reads a lone surrogate
                        # ("\ud800"), which the crowd store then writes as U+FFFD (crowd/flags.py)
                        row = json.loads(text)
                    except json.JSONDecodeError as e:
                        raise CrowdError(f"{path} line {n}: not JSON ({e.msg})") from None
                    except RecursionError:
                        raise CrowdError(f"{path} line {n}: nested too deep to read") from None
                    if not isinstance(row, dict):
                        raise CrowdError(f"{path} line {n}: expected a JSON object")
                    yield n, row
            else:
                raise CrowdError(f"{path}: flags are read from .csv or .jsonl files")
    except (OSError, UnicodeDecodeError) as e:
        raise CrowdError(f"cannot read {path}: {e}") from None
