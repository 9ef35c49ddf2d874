"""The crowd store's part of the flood guard (:mod:`scrutineer.core.flood`): the maintainers'
decisions on held bank entries, and the holds of crowd categories.

- **Held entries** are found by a run's load in the findings store; a maintainer's decision on
  one (``confirm``: its findings act; ``dismiss``: they never act) is recorded here, in
  ``hold_decisions``, keyed by the entry's hold id, and copied into the findings store by ``sync``.
- **Held categories**: when a category gets more new flags than ``crowd.flood`` allows in a
  moving window, it is held (``category_holds``) from the flag that passed the limit (with the
  flags recorded in the same write, which share its time): its flags made since then do not
  become findings at ``sync`` until a maintainer confirms the hold; a dismissal idles them for
  good (the flags made after the dismissal act again, and can start a new hold).

Every decision and every hold goes to the audit log (action ``hold``). A decision is final: a
hold is decided once, by a maintainer (or ``cli``), with a note.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from limits import parse

from scrutineer.core.errors import AlreadyDecided, CrowdError, NotAllowed, NotFound
from scrutineer.core.flood import DECISIONS, hold_id
from scrutineer.crowd.accounts import Account
from scrutineer.crowd.database import Database, as_utc, dicts, now_utc
from scrutineer.crowd.flags import stored_note
from scrutineer.crowd.tables import category_holds, flags, hold_decisions

#: The audit log's actor for a hold the flood guard made.
GUARD = "flood guard"
#: How a category hold's short id is written: ``crowd-<id>``.
CATEGORY_PREFIX = "crowd-"

#: Confirmed flags that a category hold idles: made from its start, while undecided, or until its dismissal.
_IDLE_FLAGS = (
    sa.select(flags.c.id).join(category_holds, sa.and_(category_holds.c.category == flags.c.category, flags.c.created_at >= category_holds.c.held_at))
    .where(flags.c.status == "confirmed",
           sa.or_(category_holds.c.decision.is_(None),
                  sa.and_(category_holds.c.decision == "dismissed", flags.c.created_at < category_holds.c.decided_at)))
)


class Holds(Database):
    """Decisions on held bank entries, and category holds (module docstring)."""

    def decide_entry(self, who: Account | str, entry: dict, decision: str, note: str = "") -> str:
        """Record a decision on a held bank entry.

        Args:
            who: a maintainer's account, or ``"cli"``.
            entry: ``bank``, ``bank_version``, ``signal`` and ``entry`` of the hold (its row in the
                findings store or the review snapshot).
            decision: ``confirm`` or ``dismiss``.

        Returns:
            The hold id.

        Raises:
            NotAllowed: ``who`` is an account that is not a maintainer.
            CrowdError: an unknown decision.
            AlreadyDecided: the entry was decided already (the message says how and by whom).
        """
        actor = self._actor(who)
        state = self._state(decision)
        key = {k: entry[k] for k in ("bank", "bank_version", "signal", "entry")}
        hid = hold_id(**key)
        with self._write() as c:
            done = c.execute(sa.select(hold_decisions.c.decision, hold_decisions.c.decided_by).where(hold_decisions.c.hold_id == hid)).first()
            if done:
                raise AlreadyDecided(f"hold {hid} was {done.decision} by {done.decided_by} already: a decision is final")
            c.execute(hold_decisions.insert().values(hold_id=hid, **key, decision=state, decided_by=actor, decided_at=now_utc(), note=stored_note(note)))
            self._audit(c, actor, "hold", None, "held", state, {"hold": hid, "kind": "entry", "bank": key["bank"],
                                                               "bank_version": key["bank_version"], "signal": key["signal"], "note": stored_note(note)})
        return hid

    def entry_decisions(self) -> dict[str, dict]:
        """Every decision on a bank entry: hold id -> the ``hold_decisions`` row as a dict."""
        with self._read() as c:
            return {r["hold_id"]: r | {"decided_at": as_utc(r["decided_at"])} for r in dicts(c.execute(sa.select(hold_decisions)))}

    def hold_flooded(self, categories: set[str]) -> list[int]:
        """Hold each of ``categories`` that has more new flags than ``crowd.flood`` allows in the
        moving window ending now (counted since its last decided hold, if later), unless it is held already.

        Returns:
            The ids of the holds made.
        """
        limit = self.config.flood
        item = parse(limit)
        now = now_utc()
        window = now - timedelta(seconds=item.get_expiry())
        made = []
        with self._read() as c:
            over = []
            for category in sorted(categories):
                last = c.execute(sa.select(sa.func.max(category_holds.c.decided_at), sa.func.count().filter(category_holds.c.decision.is_(None)))
                                 .where(category_holds.c.category == category)).first()
                if last[1]:
                    continue  # held already
                since = max(window, as_utc(last[0])) if last[0] else window
                recent = sa.and_(flags.c.category == category, flags.c.created_at > since)
                n = c.execute(sa.select(sa.func.count()).where(recent)).scalar_one()
                if n > item.amount:  # held from the flag that passed the limit (a batch's flags share its time)
                    start = c.execute(sa.select(flags.c.created_at).where(recent).order_by(flags.c.created_at).offset(item.amount).limit(1)).scalar_one()
                    over.append((category, n, as_utc(start)))
        for category, n, start in over:
            with self._write() as c:
                made_id = self._insert_ignore(c, category_holds, {"category": category, "held_at": start, "flags": n})
                if made_id is not None:
                    self._audit(c, GUARD, "hold", None, None, "held", {"hold": f"{CATEGORY_PREFIX}{made_id}", "kind": "category",
                                                                       "category": category, "flags": n, "limit": limit})
                    made.append(made_id)
        return made

    def category_holds(self) -> list[dict]:
        """Every category hold, newest first: dicts of the ``category_holds`` columns (times in UTC)
        and ``hold`` (its short id, ``crowd-<id>``)."""
        with self._read() as c:
            rows = dicts(c.execute(sa.select(category_holds).order_by(category_holds.c.id.desc())))
        return [r | {"hold": f"{CATEGORY_PREFIX}{r['id']}", "held_at": as_utc(r["held_at"]),
                     "decided_at": as_utc(r["decided_at"]) if r["decided_at"] else None} for r in rows]

    def decide_category(self, who: Account | str, hold: str, decision: str, note: str = "") -> str:
        """Record a decision on a category hold (``crowd-<id>``).

        Returns:
            The category.

        Raises:
            NotAllowed: ``who`` is an account that is not a maintainer.
            NotFound: no such hold.
            CrowdError: an unknown decision.
            AlreadyDecided: the hold was decided already.
        """
        actor = self._actor(who)
        state = self._state(decision)
        try:
            hid = int(hold.removeprefix(CATEGORY_PREFIX)) if hold.startswith(CATEGORY_PREFIX) else None
        except ValueError:
            hid = None
        with self._write() as c:
            row = c.execute(sa.select(category_holds).where(category_holds.c.id == hid)).first() if hid is not None else None
            if row is None:
                raise NotFound(f"no category hold {hold!r}")
            if row.decision:
                raise AlreadyDecided(f"hold {hold} was {row.decision} by {row.decided_by} already: a decision is final")
            c.execute(category_holds.update().where(category_holds.c.id == hid)
                      .values(decision=state, decided_by=actor, decided_at=now_utc(), note=stored_note(note)))
            self._audit(c, actor, "hold", None, "held", state, {"hold": hold, "kind": "category", "category": row.category, "note": stored_note(note)})
        return row.category

    def idle_flags(self) -> set[int]:
        """The confirmed flags a category hold keeps from acting (module docstring): ``sync`` makes no finding of them."""
        with self._read() as c:
            return set(c.execute(_IDLE_FLAGS).scalars())

    @staticmethod
    def _actor(who: Account | str) -> str:
        if isinstance(who, str):
            return who
        if who.role != "maintainer":
            raise NotAllowed("only maintainers decide held entries and categories")
        return who.name

    @staticmethod
    def _state(decision: str) -> str:
        if decision not in DECISIONS:
            raise CrowdError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        return DECISIONS[decision]


def with_decisions(entries: list[dict], decisions: dict[str, dict]) -> list[dict]:
    """Held entries (rows of the store's or the snapshot's ``holds``) with the crowd store's
    decisions on them, which are current (the store's copy waits for ``sync``): each entry's dict
    with ``decision`` (None: held), ``decided_by``, ``decided_at`` and ``note``."""
    empty = {"decision": None, "decided_by": None, "decided_at": None, "note": None}
    return [h | {k: d[k] for k in empty} if (d := decisions.get(h["hold_id"])) else h | empty for h in entries]
