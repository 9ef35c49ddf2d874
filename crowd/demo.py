"""The demo's people: one account per role in the bundled demo's review app, and one flag pending
review (``scrutineer demo``; the dataset is :mod:`scrutineer.testing.demo`'s)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from scrutineer.core.config import Config
from scrutineer.core.errors import WorkspaceError
from scrutineer.core.layout import Layout
from scrutineer.crowd.flags import FlagItem
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore
from scrutineer.crowd.tables import accounts, flags

#: The demo's accounts, one per role.
PEOPLE = {"contributor": "casey", "reviewer": "riley", "maintainer": "morgan"}
#: The demo sample left flagged and pending review.
PENDING = (1, "copyright", "This is my photo; I never licensed it.")


def refuse_to_overwrite(workspace: Path) -> None:
    """Refuse to rebuild a demo whose crowd store (``workspace``'s default one, :meth:`Layout.crowd_store`)
    holds accounts or flags: :func:`add_people` would delete them, and their passwords were shown
    once. Read-only: the store is opened with SQLite's ``mode=ro``, so no row or table changes
    (SQLite's WAL index, ``-shm``, may).

    Raises:
        WorkspaceError: the store holds accounts or flags, or cannot be read (the message names
            it and ``--force``).
    """
    store = Layout(workspace).crowd_store
    if not store.exists():
        return
    engine = sa.create_engine(f"sqlite:///file:{store}?mode=ro&uri=true")
    try:
        with engine.connect() as c:
            people, flagged = (c.scalar(sa.select(sa.func.count()).select_from(table)) for table in (accounts, flags))
    except sa.exc.SQLAlchemyError as e:
        raise WorkspaceError(f"{store} exists and cannot be read ({e.orig or e}): pass --force to delete it and rebuild the demo") from None
    finally:
        engine.dispose()
    if people or flagged:
        raise WorkspaceError(f"{store} holds an earlier demo's {people} account(s) and {flagged} flag(s): "
                             "pass --force to delete them and rebuild the demo")


def add_people(cfg: Config) -> list[tuple[str, str, str, str]]:
    """Create one account per role (:data:`PEOPLE`) in a fresh crowd store (an earlier demo
    run's is deleted: its passwords were shown once) and leave one flag pending review.

    Returns:
        (role, name, password, API token) per account.
    """
    for leftover in Layout(cfg.workspace).crowd_store_files():
        leftover.unlink()
    with CrowdStore(cfg.crowd) as crowd, Snapshot(cfg.workspace) as snapshot:
        people = [(role, name, *crowd.add_account(name, role)) for role, name in PEOPLE.items()]
        n, category, note = PENDING
        [[pending]] = snapshot.samples([("sample_id", f"{1_000_000 + n}")])
        crowd.flag(crowd.by_name(PEOPLE["contributor"]), [FlagItem(pending, category, note)], "form")
    return people
