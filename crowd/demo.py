"""The demo's people: one account per role in the bundled demo's review app, and one flag pending
review (``scrutineer demo``; the dataset is :mod:`scrutineer.testing.demo`'s)."""

from __future__ import annotations

from scrutineer.core.config import Config
from scrutineer.core.layout import Layout
from scrutineer.crowd.flags import FlagItem
from scrutineer.crowd.snapshot import Snapshot
from scrutineer.crowd.store import CrowdStore

#: The demo's accounts, one per role.
PEOPLE = {"contributor": "casey", "reviewer": "riley", "maintainer": "morgan"}
#: The demo sample left flagged and pending review.
PENDING = (1, "copyright", "This is my photo; I never licensed it.")


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
