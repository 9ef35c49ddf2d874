"""Release policy: which findings remove a row from a release variant, and which of those an
outsider can recompute.

A variant's ``remove`` list holds reason codes (``duplicate.url``) or dotted prefixes
(``hash_match`` covers ``hash_match.url``, ``hash_match.pdq`` …). A prefix matches whole dotted
segments only: ``license`` matches ``license.missing``, never ``licenses.x``.

Whoever holds the original dataset and a release can diff them and list every removed row; they
can then recompute some of the removals themselves and set those aside. A reason is
**unrecomputable** (:data:`UNRECOMPUTABLE`) when its findings rest on what such an outsider cannot
see: a private hash list (``hash_match.*``, and any restricted finding), a reviewer's decision
(``crowd.*``), or a link's status at the scan's checks (``link.*``: a link dead then may be dead
or alive now, and a hash-listed URL goes dead too once its host acts on the takedown manifest).
Every other reason counts as recomputable, the side on which a release never overstates how well
it hides its restricted rows: the rows' own metadata (``duplicate.*``, ``license.*``) and what the
web still serves (``optout.*``: policy files and headers, which change slowly; ``content.hash_mismatch``:
the digest of bytes anyone can fetch again, against the row's recorded one).
"""

from __future__ import annotations

#: Reason prefixes an outsider holding the original cannot recompute (module docstring); issue 23.
UNRECOMPUTABLE = ("hash_match", "crowd", "link")


def reason_filter_sql(patterns: list[str] | tuple[str, ...], column: str = "reason") -> tuple[str, list[str]]:
    """A SQL boolean expression (with ``?`` parameters) true when ``column`` matches a pattern.

    Returns:
        (expression, parameters), e.g. ``("(reason = ? OR starts_with(reason, ?))", ["x", "x."])``.
    """
    parts, params = [], []
    for p in patterns:
        parts.append(f"({column} = ? OR starts_with({column}, ?))")
        params += [p, p + "."]
    return "(" + " OR ".join(parts) + ")", params


def recomputable_sql(patterns: list[str]) -> tuple[str, list[str]]:
    """A SQL boolean expression over a finding's ``reason`` and ``restricted`` columns, true when
    ``patterns`` remove the finding's row for a reason an outsider can recompute: not restricted,
    and not :data:`UNRECOMPUTABLE`.

    Returns:
        (expression, parameters), as :func:`reason_filter_sql`.
    """
    removes, params = reason_filter_sql(patterns)
    hidden, hidden_params = reason_filter_sql(UNRECOMPUTABLE)
    return f"({removes} AND NOT restricted AND NOT {hidden})", params + hidden_params


def matches(pattern: str, reason: str) -> bool:
    """Whether a ``remove`` pattern covers ``reason``: the reason itself or a dotted prefix of it
    (the rule :func:`reason_filter_sql` applies in SQL)."""
    return reason == pattern or reason.startswith(pattern + ".")
