"""Counts in words, the same in every page, file and message: ``number`` (thousands separators)
and ``plural`` (a count with its noun, singular for 1)."""

from __future__ import annotations


def number(count: int) -> str:
    """``count`` with thousands separators: ``number(1200)`` is ``"1,200"``."""
    return f"{count:,}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and its noun, singular for 1 and plural otherwise (``nouns``, default ``noun + "s"``),
    the count with thousands separators: ``plural(1, "sample")`` is ``"1 sample"``,
    ``plural(1200, "entry", "entries")`` is ``"1,200 entries"``."""
    return f"{number(count)} {noun if count == 1 else nouns or noun + 's'}"
