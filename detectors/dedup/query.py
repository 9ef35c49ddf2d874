"""The one query ``dedup``'s ``finalize`` gives the store: common table expressions, then the
findings of each kind as parts of one ``UNION ALL``, with their parameters bound (``?``) in the
order they appear.

The SQL beside this module (``*.sql``) and in its modules' constants binds every value as a
``?``; only identifiers are formatted in (the signatures view's name, a kind's table prefix, a key
or signal column), because a parameter cannot stand for a table or a column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files


def sql_file(name: str) -> str:
    """The text of ``name``, a ``.sql`` file beside this module (package data)."""
    return (files(__package__) / name).read_text(encoding="utf-8")


@dataclass
class Query:
    """A ``WITH RECURSIVE`` query built piece by piece: each piece's ``?`` in its own order."""

    ctes: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    cte_params: list = field(default_factory=list)
    part_params: list = field(default_factory=list)

    def with_(self, sql: str, *params: object) -> None:
        """Add common table expressions (``name AS (...)``, several separated by commas)."""
        _check(sql, params)
        self.ctes.append(sql)
        self.cte_params += params

    def union(self, sql: str, *params: object) -> None:
        """Add a ``SELECT`` of findings."""
        _check(sql, params)
        self.parts.append(sql)
        self.part_params += params

    def build(self) -> tuple[str, list]:
        """The query and its parameters, in the order of their ``?``."""
        return "WITH RECURSIVE " + ",\n".join(self.ctes) + "\n" + " UNION ALL ".join(self.parts), [*self.cte_params, *self.part_params]


def _check(sql: str, params: tuple) -> None:
    """Refuse a piece whose ``?`` count is not its parameters' (none of this SQL has a ``?`` in a
    string literal)."""
    if sql.count("?") != len(params):
        raise ValueError(f"{sql.count('?')} parameters in the SQL, {len(params)} given")
