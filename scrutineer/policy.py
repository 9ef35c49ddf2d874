"""Release policy: which findings remove a row from a release variant.

A variant's ``remove`` list holds reason codes (``duplicate.url``) or dotted prefixes
(``hash_match`` covers ``hash_match.url``, ``hash_match.pdq`` …). A prefix matches whole dotted
segments only: ``license`` matches ``license.missing``, never ``licenses.x``.
"""

from __future__ import annotations


def reason_filter_sql(patterns: list[str], column: str = "reason") -> tuple[str, list[str]]:
    """A SQL boolean expression (with ``?`` parameters) true when ``column`` matches a pattern.

    Returns:
        (expression, parameters), e.g. ``("(reason = ? OR starts_with(reason, ?))", ["x", "x."])``.
    """
    parts, params = [], []
    for p in patterns:
        parts.append(f"({column} = ? OR starts_with({column}, ?))")
        params += [p, p + "."]
    return "(" + " OR ".join(parts) + ")", params


def matches(pattern: str, reason: str) -> bool:
    """Whether a ``remove`` pattern covers ``reason``: the reason itself or a dotted prefix of it
    (the rule :func:`reason_filter_sql` applies in SQL)."""
    return reason == pattern or reason.startswith(pattern + ".")
