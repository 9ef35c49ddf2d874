"""The crowd store: accounts, API tokens, flags, reviews and the append-only audit log, through
SQLAlchemy (DESIGN.md "Store (DuckDB) and crowd store").

People's data lives apart from the findings store: SQLite in WAL mode at
``<workspace>/crowd.sqlite`` by default, or Postgres for a shared deployment
(``crowd: {database: postgresql+psycopg://…}``). The review app, ``flags import`` and ``sync``
use it; none of them holds the DuckDB store's write lock.

:class:`CrowdStore` is its four parts over one database (:mod:`scrutineer.crowd.database`, the
schema in :mod:`scrutineer.crowd.tables`), each a module saying what it holds:

- :mod:`scrutineer.crowd.accounts`: accounts and their roles, API tokens, sessions, and the
  throttling of failed sign-ins;
- :mod:`scrutineer.crowd.flags`: flags and their reports, reviews, the quorum that confirms a flag,
  and the audit log of every change;
- :mod:`scrutineer.crowd.reading`: what the review app and ``sync`` read: the queue, one flag's
  detail, the counts, the confirmed flags;
- :mod:`scrutineer.crowd.holds`: the flood guard's part: decisions on held bank entries, and the
  holds of crowd categories flagged too often.
"""

from __future__ import annotations

from typing import Any

from scrutineer.core.config import Config
from scrutineer.core.errors import CrowdError
from scrutineer.crowd.accounts import Accounts
from scrutineer.crowd.flags import FlagRequest, Flags
from scrutineer.crowd.holds import Holds
from scrutineer.crowd.reading import Reading


class CrowdStore(Accounts, Flags, Reading, Holds):
    """The crowd store of one workspace: its accounts, its flags and reviews, what is read of
    them, and the flood guard's holds and decisions (module docstring), over one database.

    Args:
        crowd: the config's ``crowd`` section (its ``database`` resolved by ``load_config``).

    Raises:
        CrowdStoreError: the database cannot be opened or created.
    """

    def flag_many(self, requests: list[FlagRequest]) -> list[list[tuple[int, bool]] | CrowdError]:
        """:meth:`Flags.flag_many`, then the flood guard's check of each category that got a new
        report (:meth:`Holds.hold_flooded`): every channel that records flags passes here."""
        made = super().flag_many(requests)
        touched = {item.category for r, m in zip(requests, made) if not isinstance(m, CrowdError) and any(new for _, new in m)
                   for item in r.items}
        if touched:
            self.hold_flooded(touched)
        return made


def crowd_counts(cfg: Config) -> dict[str, Any] | None:
    """:meth:`CrowdStore.counts` of the config's crowd store; None when it has no categories.

    Raises:
        CrowdStoreError: the crowd store cannot be opened.
    """
    if not cfg.crowd.categories:
        return None
    with CrowdStore(cfg.crowd) as crowd:
        return crowd.counts()
